/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_kernels.h -- the hot kernels behind one dispatch table.
 *
 * Each variant (ref, avx2, avx512; the CUDA kernels in kernels/ mirror the
 * same jobs) fills one ngl_kernels table. The reference is the definition:
 * every other variant must produce the same bytes and the same state,
 * which tests/test_kernels.c checks on awkward sizes. A SIMD variant may
 * hand any block it does not want to handle (partial block, block holding
 * an exception) to the reference block functions below.
 */
#ifndef NGL_KERNELS_H
#define NGL_KERNELS_H

#include "ngl_arith.h"
#include "ngl_internal.h"

/*
 * One step of the dense INT8/INT4 path over blocks [b0, b1).
 *
 * Encoder: reads x (+ ef), writes scales[], codes[], appends exceptions,
 * updates ef, the predictor state and the gate.
 * Decoder: reads scales[], codes[], the exception list, writes out[],
 * updates the predictor state and the gate.
 */
typedef struct ngl_dense_job {
    /* geometry */
    uint64_t count;
    uint32_t block; /* elements per block, multiple of 8 */
    uint32_t nblocks;
    int qmax; /* NGL_QMAX_INT8 or NGL_QMAX_INT4 */
    int int4; /* 1: two codes per byte */

    /* closed-loop state (identical in encoder and decoder) */
    ngl_predictor pred;
    uint32_t hist; /* steps of history, saturating at 2 */
    float beta, one_minus_beta;
    float *st1;    /* momentum m, or linear x1 */
    float *st2;    /* linear x2 */
    uint8_t *gate; /* per block: in = this step's gate, out = next step's */
    uint64_t gated_blocks;

    /* block mask: bit b set = block b skipped this step (NULL = none) */
    const uint8_t *skip;

    /* wire sections (the frame body) */
    uint8_t *scales; /* f32 LE per sent block */
    uint8_t *codes;  /* int8 per element, or packed nibbles */

    /* exceptions: entries of u32 index + raw element bits (dtype width) */
    uint8_t *exc;
    uint32_t n_exc;      /* encoder: appended so far; decoder: total */
    uint32_t exc_cursor; /* decoder: next entry to apply */
    uint32_t exc_dsize;  /* bytes of the value part: 2 or 4 */
    ngl_dtype dtype;     /* element type of the exception values */

    /* encoder side */
    const float *x;      /* input as f32 */
    const void *src_raw; /* original input, for exact exception bits */
    float *ef;           /* error feedback, NULL when off */
    ngl_rng_key key;
    float *rbuf; /* block-sized scratch */

    /* decoder side */
    float *out;     /* decoded values (f32) */
    int accumulate; /* out += xhat instead of out = xhat */
} ngl_dense_job;

static inline int ngl_bit_get(const uint8_t *bits, size_t i)
{
    return (bits[i >> 3] >> (i & 7u)) & 1u;
}

static inline void ngl_bit_set(uint8_t *bits, size_t i)
{
    bits[i >> 3] = (uint8_t)(bits[i >> 3] | (1u << (i & 7u)));
}

typedef void (*ngl_dense_fn)(ngl_dense_job *job, uint32_t b0, uint32_t b1, uint64_t sent0);
typedef void (*ngl_cvt_to_f32_fn)(const void *src, float *dst, size_t n);
typedef void (*ngl_cvt_from_f32_fn)(const float *src, void *dst, size_t n);
typedef void (*ngl_acc_from_f32_fn)(const float *src, void *dst, size_t n);

/*
 * Top-K without a predictor, pass A: t = x + ef (x where that overflows),
 * key[i] = (bits of |t|) + 1 for finite t outside skipped blocks, else 0;
 * with EF, ef[i] = t where finite, else 0 (the error if i is not selected).
 * @return the number of eligible (non-zero key) elements; *n_nonfinite
 * counts non-finite t (NaN/Inf inputs, the exceptions).
 */
typedef uint64_t (*ngl_topk_scan_fn)(const float *x, float *ef, uint32_t *key, const uint8_t *skip,
                                     uint32_t block, uint64_t n, uint64_t *n_nonfinite);
/*
 * Indices i (ascending) with key[i] >= min_key, written to out.
 * @return their number if it is <= cap; otherwise some value > cap (the
 * scan may stop early). out must have room for cap + 16 entries.
 */
typedef uint64_t (*ngl_topk_collect_fn)(const uint32_t *key, uint64_t n, uint32_t min_key,
                                        uint32_t *out, uint64_t cap);

typedef struct ngl_kernels {
    ngl_isa isa;
    const char *name;
    ngl_dense_fn encode_dense;
    ngl_dense_fn decode_dense;
    ngl_cvt_to_f32_fn f16_to_f32;
    ngl_cvt_to_f32_fn bf16_to_f32;
    ngl_cvt_from_f32_fn f32_to_f16_sat;
    ngl_cvt_from_f32_fn f32_to_bf16_sat;
    ngl_acc_from_f32_fn f16_accumulate; /* dst16 = rn(dst16 + src) */
    ngl_acc_from_f32_fn bf16_accumulate;
    ngl_topk_scan_fn topk_scan;
    ngl_topk_collect_fn topk_collect;
} ngl_kernels;

/* @return the table for @p isa (AUTO resolves), or NULL if unavailable. */
NGL_HIDDEN const ngl_kernels *ngl_kernels_get(ngl_isa isa);

/* Reference tables and single-block entry points (for SIMD fallbacks). */
NGL_HIDDEN extern const ngl_kernels ngl_kernels_ref;
NGL_HIDDEN void ngl_ref_encode_block(ngl_dense_job *job, uint32_t b, uint64_t sent);
NGL_HIDDEN void ngl_ref_decode_block(ngl_dense_job *job, uint32_t b, uint64_t sent);

#if defined(NGL_HAVE_AVX2)
NGL_HIDDEN extern const ngl_kernels ngl_kernels_avx2;
#endif
#if defined(NGL_HAVE_AVX512)
NGL_HIDDEN extern const ngl_kernels ngl_kernels_avx512;
#endif

/* Shared helpers for the block functions. */
static inline void ngl_exc_append(ngl_dense_job *job, uint64_t i)
{
    uint8_t *e = job->exc + (size_t)job->n_exc * (4u + job->exc_dsize);
    ngl_wr_u32(e, (uint32_t)i);
    if (job->exc_dsize == 4) {
        uint32_t v;
        memcpy(&v, (const uint8_t *)job->src_raw + i * 4, 4);
        ngl_wr_u32(e + 4, v);
    } else {
        uint16_t v;
        memcpy(&v, (const uint8_t *)job->src_raw + i * 2, 2);
        ngl_wr_u16(e + 4, v);
    }
    job->n_exc++;
}

/* An exception's value as the f32 the closed-loop state sees. */
static inline float ngl_exc_value(const ngl_dense_job *job, const uint8_t *e)
{
    switch (job->dtype) {
    case NGL_DTYPE_F16: return ngl_f16_to_f32(ngl_rd_u16(e));
    case NGL_DTYPE_BF16: return ngl_bf16_to_f32(ngl_rd_u16(e));
    default: return ngl_bits_f32(ngl_rd_u32(e));
    }
}

/* ---- closed-loop state, shared by every scalar path ----------------- */
static inline float ngl_pred_raw(const ngl_dense_job *j, uint64_t i)
{
    switch (j->pred) {
    case NGL_PRED_MOMENTUM: return j->st1[i];
    case NGL_PRED_LINEAR: return ngl_linear_predict(j->st1[i], j->st2[i], j->hist);
    default: return 0.0f;
    }
}

/* Closed-loop state update for one element; a/c accumulate the gate's
 * evidence for the block. Non-finite reconstructions leave state alone. */
static inline void ngl_state_update(ngl_dense_job *j, uint64_t i, float xhat, float praw, float *a,
                                    float *c)
{
    if (!ngl_f32_finite(xhat)) {
        return;
    }
    /* praw is finite or +-Inf (state holds finite values only), so d is
     * never NaN and these maxima do not depend on evaluation order. */
    float d = ngl_absf(xhat - praw);
    float m = ngl_absf(xhat);
    if (d > *a) {
        *a = d;
    }
    if (m > *c) {
        *c = m;
    }
    switch (j->pred) {
    case NGL_PRED_MOMENTUM: {
        float nm = ngl_momentum_update(j->st1[i], xhat, j->beta, j->one_minus_beta);
        if (ngl_f32_finite(nm)) {
            j->st1[i] = nm;
        }
        break;
    }
    case NGL_PRED_LINEAR:
        j->st2[i] = j->st1[i];
        j->st1[i] = xhat;
        break;
    default: break;
    }
}

static inline void ngl_gate_store(ngl_dense_job *j, uint32_t b, float a, float c)
{
    if (j->pred == NGL_PRED_NONE) {
        return;
    }
    j->gate[b] = (uint8_t)(a < c);
}

#endif /* NGL_KERNELS_H */
