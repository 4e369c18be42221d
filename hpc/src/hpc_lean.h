/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_lean.h -- the first coding pass of level-0 and level-1 encoders,
 * vectorised.
 *
 * Levels 0 and 1 keep their closed-loop state in per-value arrays
 * (hpc_encoder.c, lean_state). The first pass is independent per value: predict, choose the
 * periodic image, quantize, check the bound on the decoder's reconstruction,
 * residual. The scalar code (quantize_value() in hpc_encoder.c) defines it;
 * the kernels (AVX-512, AVX2) run the same IEEE double operations in the same
 * order on eight or four values at once, so their results are identical bit for bit
 * (test_hpc_lean compares the two on whole streams). It takes only the common
 * case: lossy streams, values with history, finite, on the lattice, within
 * the bound. A vector with any other lane is left to the scalar code whole.
 * It also does the second pass' per-value arithmetic where it can (token,
 * token context: HPC_VI_CODED), so that pass is left with the serial part.
 */
#ifndef NGL_HPC_LEAN_H
#define NGL_HPC_LEAN_H

#include "hpc_internal.h"

typedef struct ngl_hpc_encoder ngl_hpc_encoder;

/* What the kernel reads and writes for one frame. */
typedef struct hpc_lean_args {
    const void *xyz;                 /* the frame's input values */
    int f32;                         /* xyz and dec are float (else double) */
    const int64_t *q1, *q2, *q3;     /* the last three lattice values */
    const int64_t *qh[HPC_TAPS + 1]; /* qh[k] = q_{k+1}, for the MODEL selector (level 1) */
    int model_valid;                 /* a model exists: MODEL blocks use it */
    int64_t taps[HPC_TAPS];
    int64_t *qnew; /* out: the new lattice values (may be q3's array: read first) */
    int32_t *img;  /* in/out: image of q_1 / of the new entry */
    uint16_t *mag; /* in/out */
    uint8_t *age;  /* in/out */
    int64_t *vres; /* out: residuals */
    uint16_t *vinfo;
    uint32_t *vcode; /* out: HPC_CODE() of values marked HPC_VI_CODED */
    void *dec;       /* out: decoded values */
    double step, inv_step, eps;
    double len[3];                  /* periodic box length per axis, else 0 */
    double loq[3], hiq[3], lenq[3]; /* hpc_waxis per axis */
    int per[3];
} hpc_lean_args;

/* The vector kernels, in order of preference. */
typedef enum hpc_lean_kernel {
    HPC_LEAN_SCALAR = 0, /* no kernel: quantize_lean_value() for every value */
    HPC_LEAN_AVX2 = 1,   /* four values at a time */
    HPC_LEAN_AVX512 = 2  /* eight values at a time (F, DQ, CD, VL) */
} hpc_lean_kernel;

/* Whether this CPU runs kernel @p k. */
int hpc_lean_kernel_available(hpc_lean_kernel k);
/* The fastest kernel this CPU runs. */
hpc_lean_kernel hpc_lean_best_kernel(void);
const char *hpc_lean_kernel_name(hpc_lean_kernel k);

/* Values per vector of kernel @p k. */
static inline unsigned hpc_lean_width(hpc_lean_kernel k)
{
    return k == HPC_LEAN_AVX512 ? 8u : 4u;
}

/*
 * Pass 1 with kernel @p k (available, not SCALAR) over the 3 *
 * HPC_BLOCK_ATOMS values [v0, v0 + 768) of one full block coded with integer
 * selector @p sel (v0 a multiple of 768). Vectors the kernel does not take are
 * left untouched and their first value index is appended to @p redo (room for
 * 768 / hpc_lean_width(k)). @return the number appended.
 */
unsigned hpc_lean_block_simd(hpc_lean_kernel k, const hpc_lean_args *a, uint64_t v0, unsigned sel,
                             uint64_t *redo);

/* Test and benchmark hook: level-0 encoder @p enc uses kernel @p k from now
 * on, or the scalar code if this CPU lacks it. @return the kernel in use. */
hpc_lean_kernel hpc_encoder_set_kernel(ngl_hpc_encoder *enc, hpc_lean_kernel k);
/* Test hook: values the kernel coded in @p enc so far. */
uint64_t hpc_encoder_kernel_values(const ngl_hpc_encoder *enc);
/* Test hook: a level-1 encoder @p enc keeps its state in the history ring
 * like level 2 instead of the lean arrays (same stream). Before the first
 * frame only. @return 0, or -1 if too late. */
int hpc_encoder_use_ring(ngl_hpc_encoder *enc);

#endif /* NGL_HPC_LEAN_H */
