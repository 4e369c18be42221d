/* SPDX-License-Identifier: Apache-2.0 */
/* hpc_fit.c -- see hpc_fit.h. */
#include "hpc_fit.h"

#include <math.h>

void hpc_ls_init(hpc_ls *ls, unsigned n)
{
    assert(n <= HPC_LS_MAX);
    memset(ls, 0, sizeof(*ls));
    ls->n = n;
}

int hpc_ls_solve(const hpc_ls *ls, double ridge, double *x)
{
    assert(ridge > 0);
    const unsigned n = ls->n;
    double L[HPC_LS_MAX * HPC_LS_MAX];
    double scale[HPC_LS_MAX];
    if (n == 0 || ls->count < n) {
        return -1;
    }
    /* Jacobi scaling keeps features of very different magnitudes (taps in
     * lattice units, force knots in lattice units per length) well posed. */
    for (unsigned i = 0; i < n; i++) {
        double d = ls->A[i * HPC_LS_MAX + i];
        if (!isfinite(d) || d < 0) {
            return -1;
        }
        /* a feature that is zero on every sample (e.g. a force knot no pair
         * reaches) gets weight 0 through the ridge term */
        scale[i] = d > 0 ? 1.0 / sqrt(d) : 0.0;
    }
    for (unsigned i = 0; i < n; i++) {
        for (unsigned j = 0; j <= i; j++) {
            double a = ls->A[j * HPC_LS_MAX + i] * scale[i] * scale[j];
            if (i == j) {
                a += ridge;
            }
            for (unsigned k = 0; k < j; k++) {
                a -= L[i * HPC_LS_MAX + k] * L[j * HPC_LS_MAX + k];
            }
            if (i == j) {
                if (!(a > 0)) {
                    return -1;
                }
                L[i * HPC_LS_MAX + i] = sqrt(a);
            } else {
                L[i * HPC_LS_MAX + j] = a / L[j * HPC_LS_MAX + j];
            }
        }
    }
    double y[HPC_LS_MAX];
    for (unsigned i = 0; i < n; i++) {
        double s = ls->b[i] * scale[i];
        for (unsigned k = 0; k < i; k++) {
            s -= L[i * HPC_LS_MAX + k] * y[k];
        }
        y[i] = s / L[i * HPC_LS_MAX + i];
    }
    for (unsigned i = n; i-- > 0;) {
        double s = y[i];
        for (unsigned k = i + 1; k < n; k++) {
            s -= L[k * HPC_LS_MAX + i] * x[k];
        }
        x[i] = s / L[i * HPC_LS_MAX + i];
    }
    for (unsigned i = 0; i < n; i++) {
        x[i] *= scale[i];
        if (!isfinite(x[i])) {
            return -1;
        }
    }
    return 0;
}
