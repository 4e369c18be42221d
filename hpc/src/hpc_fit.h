/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_fit.h -- small dense least squares (normal equations + Cholesky) for
 * the encoder's per-frame model fit. Encoder only: the decoder receives the
 * fitted, quantized model, so nothing here needs to be bit-reproducible.
 */
#ifndef NGL_HPC_FIT_H
#define NGL_HPC_FIT_H

#include "hpc_internal.h"

#define HPC_LS_MAX (HPC_TAPS + HPC_KNOTS)

typedef struct hpc_ls {
    unsigned n;
    uint64_t count;
    double A[HPC_LS_MAX * HPC_LS_MAX]; /* upper triangle used */
    double b[HPC_LS_MAX];
} hpc_ls;

void hpc_ls_init(hpc_ls *ls, unsigned n);

static inline void hpc_ls_add(hpc_ls *ls, const double *f, double y)
{
    const unsigned n = ls->n;
    for (unsigned i = 0; i < n; i++) {
        double fi = f[i];
        double *row = ls->A + i * HPC_LS_MAX;
        for (unsigned j = i; j < n; j++) {
            row[j] += fi * f[j];
        }
        ls->b[i] += fi * y;
    }
    ls->count++;
}

/* Solve (A + ridge * diag(A)) x = b. @return 0, or -1 if not positive definite. */
int hpc_ls_solve(const hpc_ls *ls, double ridge, double *x);

#endif /* NGL_HPC_FIT_H */
