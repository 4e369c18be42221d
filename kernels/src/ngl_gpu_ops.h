/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_gpu_ops.h -- the device side of the CUDA kernels, written once for two
 * compilers.
 *
 * Under nvcc every function here is __device__ and a warp has 32 lanes.
 * Under a C compiler (the CPU emulator in gpu_dev_emu.c, which the parity
 * tests run on every machine) a warp has one lane and the warp operations
 * are identities. Each function performs, per element, exactly the IEEE
 * operations of core's reference (core/src/kernels_ref.c, core/src/topk.c)
 * through core's ngl_arith.h, so the GPU, the emulator and the CPU encoder
 * produce the same bits. The only thing that differs between lanes counts is
 * which lane handles which chunk; every cross-lane combination is either a
 * maximum of non-negative floats compared as bit patterns (exact and
 * order-free) or an integer prefix sum.
 *
 * Work unit: a chunk of NGL_GPU_CHUNK = 8 consecutive elements. Block sizes
 * are multiples of 8, so a chunk never straddles a scale block, a chunk's
 * codes start on a byte (INT4) and its bitmap bits fill one byte.
 */
#ifndef NGL_GPU_OPS_H
#define NGL_GPU_OPS_H

#include "nangila.h"
#include "ngl_arith.h"
#include "ngl_byteorder.h"
#include "ngl_varint.h"

#if defined(__CUDACC__)
#define NGL_GPU_FN __device__ __forceinline__
#else
#define NGL_GPU_FN static inline
#endif

/* Chunk loops are fully unrolled on the GPU so that the 8-element arrays
 * live in registers, not in local memory. */
#if defined(__CUDACC__)
#define NGL_GPU_UNROLL _Pragma("unroll")
#else
#define NGL_GPU_UNROLL
#endif

#define NGL_GPU_CHUNK 8u
/* Top-K works in tiles of 256 threads x 8 elements. */
#define NGL_GPU_TILE_THREADS 256u
#define NGL_GPU_TILE         (NGL_GPU_TILE_THREADS * NGL_GPU_CHUNK)
/* Radix select digits, as in core/src/topk.c: 11, 11 and 10 bits. */
#define NGL_GPU_HIST_BINS 2048u

/* Device-side counters of one step. Zeroed before every encode. */
typedef struct ngl_gpu_ctl {
    uint32_t n_exc;     /* exceptions written this step */
    uint32_t active;    /* Top-K: radix select still running */
    uint64_t eligible;  /* Top-K: keys != 0 */
    uint64_t k;         /* Top-K: min(k_max, eligible) */
    uint64_t remaining; /* Top-K: rank still to place within the current digit */
    uint32_t prefix;    /* Top-K: digits of the threshold found so far */
    uint32_t pmask;
    uint32_t thresh; /* Top-K: threshold key T */
    uint32_t pad;
    uint64_t take_eq; /* Top-K: keys == T to select, lowest indices first */
    uint64_t nsel;    /* Top-K: selected elements (must equal k) */
    uint64_t vbytes;  /* Top-K: bytes of the varint index form */
    uint32_t n_late;  /* Top-K: selected elements sent as exceptions */
    uint32_t pad2;
} ngl_gpu_ctl;

/* Everything a kernel needs, by value. Pointers are device pointers (host
 * pointers under the emulator). Unused pointers are NULL. */
typedef struct ngl_gpu_args {
    uint64_t count;
    uint32_t block, nblocks;
    int32_t qmax, int4;
    int32_t pred;  /* ngl_predictor */
    int32_t dtype; /* ngl_dtype of the input (encoder) or output (decoder) */
    uint32_t hist; /* steps of history, saturating at 2 */
    uint32_t esz;  /* bytes per exception entry: 4 + element size */
    float beta, omb;
    ngl_rng_key key;

    /* closed-loop state */
    float *ef; /* error feedback, NULL when off */
    float *st1, *st2;
    uint8_t *gate;

    /* block mask of this step: NULL, or a bitmap plus each block's index
     * among the sent blocks */
    const uint8_t *skip;
    const uint32_t *sent;
    ngl_gpu_ctl *ctl;

    /* dense encoder */
    const void *src;
    int32_t src_vec; /* src is 16-byte aligned: vector loads allowed */
    int32_t pad0;
    uint8_t *scales, *codes, *exc;
    uint32_t *exc_idx; /* exception indices, block b's at [b*block, ...) */
    uint32_t *blk_exc; /* exceptions per block */

    /* Top-K encoder */
    uint64_t k_max;
    uint32_t ntiles, pad1;
    float *tk_r;
    uint32_t *tk_key;
    uint32_t *tk_hist;       /* 3 x NGL_GPU_HIST_BINS */
    uint32_t *tk_tiles;      /* per tile: gt, eq, exc, eq_before, sel_before, exc_before */
    uint32_t *tk_sel;        /* selected indices in order */
    float *tk_inv;           /* per group */
    uint32_t *tk_ga, *tk_gc; /* per block gate evidence, as bits */
    uint8_t *tk_bitmap;
    uint8_t *tk_late; /* exception entries of selected elements, any order */

    /* decoder */
    void *dst;
    int32_t dst_vec, accumulate;
    const uint8_t *in_scales, *in_codes, *in_exc;
    const uint32_t *in_sel;
    uint64_t in_k;
    uint32_t in_n_exc, pad2;
} ngl_gpu_args;

/* ---------------------------------------------------------------------- */
/* Warp operations. A warp is 32 lanes on the GPU and 1 lane on the CPU.  */
/* Every caller reaches them with the whole warp (no lane returns early). */
/* ---------------------------------------------------------------------- */
#if defined(__CUDA_ARCH__)
#define NGL_GPU_FULL 0xffffffffu
NGL_GPU_FN uint32_t ngl_warp_max(uint32_t v)
{
#if __CUDA_ARCH__ >= 800
    return __reduce_max_sync(NGL_GPU_FULL, v);
#else
    for (int d = 16; d > 0; d >>= 1) {
        uint32_t y = __shfl_xor_sync(NGL_GPU_FULL, v, d);
        v = y > v ? y : v;
    }
    return v;
#endif
}

NGL_GPU_FN uint32_t ngl_warp_sum(uint32_t v)
{
#if __CUDA_ARCH__ >= 800
    return __reduce_add_sync(NGL_GPU_FULL, v);
#else
    for (int d = 16; d > 0; d >>= 1) {
        v += __shfl_xor_sync(NGL_GPU_FULL, v, d);
    }
    return v;
#endif
}

NGL_GPU_FN int ngl_warp_any(int p)
{
    return __any_sync(NGL_GPU_FULL, p);
}

/* Exclusive prefix sum over the lanes; *total gets the warp's sum. */
NGL_GPU_FN uint32_t ngl_warp_excl_sum(uint32_t v, uint32_t *total)
{
    const uint32_t lane = threadIdx.x & 31u;
    uint32_t incl = v;
    for (uint32_t d = 1; d < 32u; d <<= 1) {
        uint32_t y = __shfl_up_sync(NGL_GPU_FULL, incl, d);
        if (lane >= d) {
            incl += y;
        }
    }
    *total = __shfl_sync(NGL_GPU_FULL, incl, 31);
    return incl - v;
}

NGL_GPU_FN void ngl_gpu_atomic_max(uint32_t *p, uint32_t v)
{
    atomicMax((unsigned int *)p, (unsigned int)v);
}

NGL_GPU_FN void ngl_gpu_atomic_add32(uint32_t *p, uint32_t v)
{
    atomicAdd((unsigned int *)p, (unsigned int)v);
}

NGL_GPU_FN void ngl_gpu_atomic_add64(uint64_t *p, uint64_t v)
{
    atomicAdd((unsigned long long *)p, (unsigned long long)v);
}

/* @return the value before the increment. */
NGL_GPU_FN uint32_t ngl_gpu_atomic_inc32(uint32_t *p)
{
    return atomicAdd((unsigned int *)p, 1u);
}
#else
NGL_GPU_FN uint32_t ngl_warp_max(uint32_t v)
{
    return v;
}

NGL_GPU_FN uint32_t ngl_warp_sum(uint32_t v)
{
    return v;
}

NGL_GPU_FN int ngl_warp_any(int p)
{
    return p;
}

NGL_GPU_FN uint32_t ngl_warp_excl_sum(uint32_t v, uint32_t *total)
{
    *total = v;
    return 0;
}

NGL_GPU_FN void ngl_gpu_atomic_max(uint32_t *p, uint32_t v)
{
    if (v > *p) {
        *p = v;
    }
}

NGL_GPU_FN void ngl_gpu_atomic_add32(uint32_t *p, uint32_t v)
{
    *p += v;
}

NGL_GPU_FN void ngl_gpu_atomic_add64(uint64_t *p, uint64_t v)
{
    *p += v;
}

NGL_GPU_FN uint32_t ngl_gpu_atomic_inc32(uint32_t *p)
{
    return (*p)++;
}
#endif

NGL_GPU_FN uint32_t ngl_gpu_umax(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

NGL_GPU_FN uint32_t ngl_gpu_popc8(uint32_t m)
{
    uint32_t n = 0;
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        n += (m >> j) & 1u;
    }
    return n;
}

/* ---------------------------------------------------------------------- */
/* Chunk loads/stores (little-endian bytes: common's ngl_byteorder.h).  */
/* ---------------------------------------------------------------------- */
NGL_GPU_FN int ngl_gpu_bit(const uint8_t *bits, uint64_t i)
{
    return (bits[i >> 3] >> (i & 7u)) & 1;
}

/* Elements of the chunk at i0 that exist (0 for a lane with no chunk). */
NGL_GPU_FN uint32_t ngl_gpu_chunk_len(uint64_t i0, uint64_t hi)
{
    if (i0 >= hi) {
        return 0;
    }
    return hi - i0 < NGL_GPU_CHUNK ? (uint32_t)(hi - i0) : NGL_GPU_CHUNK;
}

/* Load n <= 8 floats at p + i0 (missing ones read as 0). @p vec: p + i0 is
 * 16-byte aligned, so a full chunk may use two 16-byte loads. */
NGL_GPU_FN void ngl_gpu_ld8(const float *p, uint64_t i0, uint32_t n, int vec, float v[8])
{
#if defined(__CUDA_ARCH__)
    if (vec && n == NGL_GPU_CHUNK) {
        const float4 *q = (const float4 *)(p + i0);
        float4 a = q[0], b = q[1];
        v[0] = a.x;
        v[1] = a.y;
        v[2] = a.z;
        v[3] = a.w;
        v[4] = b.x;
        v[5] = b.y;
        v[6] = b.z;
        v[7] = b.w;
        return;
    }
#else
    (void)vec;
#endif
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        v[j] = j < n ? p[i0 + j] : 0.0f;
    }
}

NGL_GPU_FN void ngl_gpu_st8(float *p, uint64_t i0, uint32_t n, int vec, const float v[8])
{
#if defined(__CUDA_ARCH__)
    if (vec && n == NGL_GPU_CHUNK) {
        float4 *q = (float4 *)(p + i0);
        q[0] = make_float4(v[0], v[1], v[2], v[3]);
        q[1] = make_float4(v[4], v[5], v[6], v[7]);
        return;
    }
#else
    (void)vec;
#endif
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        if (j >= n) {
            continue;
        }
        p[i0 + j] = v[j];
    }
}

NGL_GPU_FN void ngl_gpu_ld8_u16(const uint16_t *p, uint64_t i0, uint32_t n, int vec, uint16_t h[8])
{
#if defined(__CUDA_ARCH__)
    if (vec && n == NGL_GPU_CHUNK) {
        uint4 w = *(const uint4 *)(p + i0);
        h[0] = (uint16_t)w.x;
        h[1] = (uint16_t)(w.x >> 16);
        h[2] = (uint16_t)w.y;
        h[3] = (uint16_t)(w.y >> 16);
        h[4] = (uint16_t)w.z;
        h[5] = (uint16_t)(w.z >> 16);
        h[6] = (uint16_t)w.w;
        h[7] = (uint16_t)(w.w >> 16);
        return;
    }
#else
    (void)vec;
#endif
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        h[j] = j < n ? p[i0 + j] : (uint16_t)0;
    }
}

NGL_GPU_FN void ngl_gpu_st8_u16(uint16_t *p, uint64_t i0, uint32_t n, int vec, const uint16_t h[8])
{
#if defined(__CUDA_ARCH__)
    if (vec && n == NGL_GPU_CHUNK) {
        uint4 w;
        w.x = (uint32_t)h[0] | ((uint32_t)h[1] << 16);
        w.y = (uint32_t)h[2] | ((uint32_t)h[3] << 16);
        w.z = (uint32_t)h[4] | ((uint32_t)h[5] << 16);
        w.w = (uint32_t)h[6] | ((uint32_t)h[7] << 16);
        *(uint4 *)(p + i0) = w;
        return;
    }
#else
    (void)vec;
#endif
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        if (j >= n) {
            continue;
        }
        p[i0 + j] = h[j];
    }
}

/* The input chunk as f32 (f16/bf16 widened exactly, as core's x32 copy). */
NGL_GPU_FN void ngl_gpu_ld_src8(const ngl_gpu_args *A, uint64_t i0, uint32_t n, float x[8])
{
    if (A->dtype == NGL_DTYPE_F32) {
        ngl_gpu_ld8((const float *)A->src, i0, n, A->src_vec, x);
        return;
    }
    uint16_t h[8];
    ngl_gpu_ld8_u16((const uint16_t *)A->src, i0, n, A->src_vec, h);
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        x[j] = A->dtype == NGL_DTYPE_F16 ? ngl_f16_to_f32(h[j]) : ngl_bf16_to_f32(h[j]);
    }
}

/* One input element as f32 (Top-K touches selected elements one by one). */
NGL_GPU_FN float ngl_gpu_ld_src1(const ngl_gpu_args *A, uint64_t i)
{
    if (A->dtype == NGL_DTYPE_F32) {
        return ((const float *)A->src)[i];
    }
    uint16_t h = ((const uint16_t *)A->src)[i];
    return A->dtype == NGL_DTYPE_F16 ? ngl_f16_to_f32(h) : ngl_bf16_to_f32(h);
}

/* Codes of a chunk at code position pos (a multiple of 8): INT8 one byte
 * each; INT4 two per byte, earlier element in the low nibble, and an odd
 * tail leaves the last high nibble 0. */
NGL_GPU_FN void ngl_gpu_put_codes(uint8_t *codes, uint64_t pos, uint32_t n, int int4,
                                  const int32_t q[8])
{
    if (!int4) {
        uint8_t b[8];
        NGL_GPU_UNROLL
        for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
            b[j] = (uint8_t)(int8_t)q[j];
        }
#if defined(__CUDA_ARCH__)
        if (n == NGL_GPU_CHUNK) {
            uint2 w;
            w.x = ngl_rd_u32(b);
            w.y = ngl_rd_u32(b + 4);
            *(uint2 *)(codes + pos) = w;
            return;
        }
#endif
        NGL_GPU_UNROLL
        for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
            if (j >= n) {
                continue;
            }
            codes[pos + j] = b[j];
        }
        return;
    }
    uint32_t w = 0;
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        if (j >= n) {
            continue;
        }
        w |= ((uint32_t)q[j] & 0xfu) << (4u * j);
    }
#if defined(__CUDA_ARCH__)
    if (n == NGL_GPU_CHUNK) {
        *(uint32_t *)(codes + (pos >> 1)) = w;
        return;
    }
#endif
    for (uint32_t t = 0; t < (n + 1u) / 2u; t++) {
        codes[(pos >> 1) + t] = (uint8_t)(w >> (8u * t));
    }
}

NGL_GPU_FN int32_t ngl_gpu_get_code(const uint8_t *codes, uint64_t pos, int int4)
{
    if (!int4) {
        return (int8_t)codes[pos];
    }
    uint32_t byte = codes[pos >> 1];
    int32_t nib = (int32_t)((pos & 1u) ? (byte >> 4) : (byte & 0xfu));
    return (nib ^ 8) - 8;
}

/* One exception entry: u32 index, then the element's bits in dtype width. */
NGL_GPU_FN void ngl_gpu_put_exc(const ngl_gpu_args *A, uint8_t *exc, uint64_t slot, uint64_t i)
{
    uint8_t *e = exc + slot * A->esz;
    ngl_wr_u32(e, (uint32_t)i);
    if (A->esz == 8u) {
        ngl_wr_u32(e + 4, ((const uint32_t *)A->src)[i]);
    } else {
        ngl_wr_u16(e + 4, ((const uint16_t *)A->src)[i]);
    }
}

/* An exception's value as the f32 the state sees (ngl_exc_value). */
NGL_GPU_FN float ngl_gpu_exc_value(int32_t dtype, const uint8_t *v)
{
    if (dtype == NGL_DTYPE_F16) {
        return ngl_f16_to_f32(ngl_rd_u16(v));
    }
    if (dtype == NGL_DTYPE_BF16) {
        return ngl_bf16_to_f32(ngl_rd_u16(v));
    }
    return ngl_bits_f32(ngl_rd_u32(v));
}

/* First entry in [lo, hi) of a sorted u32 list (entries @p stride bytes
 * apart, index in the first four bytes) that is >= key. */
NGL_GPU_FN uint64_t ngl_gpu_lower_bound(const uint8_t *list, uint32_t stride, uint64_t lo,
                                        uint64_t hi, uint64_t key)
{
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2u;
        if ((uint64_t)ngl_rd_u32(list + mid * stride) < key) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* ---------------------------------------------------------------------- */
/* Per-element semantics (docs/wire-format.md sections 4 and 5).          */
/* ---------------------------------------------------------------------- */

/* Raw prediction from the state of one element (ngl_pred_raw). */
NGL_GPU_FN float ngl_gpu_praw(int32_t pred, float s1, float s2, uint32_t hist)
{
    if (pred == NGL_PRED_MOMENTUM) {
        return s1;
    }
    if (pred == NGL_PRED_LINEAR) {
        return ngl_linear_predict(s1, s2, hist);
    }
    return 0.0f;
}

/* Target t = x + e; x alone when EF is off or t is not finite. */
NGL_GPU_FN float ngl_gpu_target(float x, float e, int has_ef)
{
    if (!has_ef) {
        return x;
    }
    float t = x + e;
    return ngl_f32_finite(t) ? t : x;
}

/* Closed-loop state update of one element (ngl_state_update); a and c
 * collect the block's gate evidence as bit patterns of non-negative floats,
 * whose integer order is their numeric order. */
NGL_GPU_FN void ngl_gpu_state_update(const ngl_gpu_args *A, float xhat, float praw, float *s1,
                                     float *s2, uint32_t *a, uint32_t *c)
{
    if (!ngl_f32_finite(xhat)) {
        return;
    }
    *a = ngl_gpu_umax(*a, ngl_f32_bits(ngl_absf(xhat - praw)));
    *c = ngl_gpu_umax(*c, ngl_f32_bits(ngl_absf(xhat)));
    if (A->pred == NGL_PRED_MOMENTUM) {
        float nm = ngl_momentum_update(*s1, xhat, A->beta, A->omb);
        if (ngl_f32_finite(nm)) {
            *s1 = nm;
        }
    } else if (A->pred == NGL_PRED_LINEAR) {
        *s2 = *s1;
        *s1 = xhat;
    }
}

/* g <- (a < c), only when a predictor is configured (ngl_gate_store). */
NGL_GPU_FN void ngl_gpu_gate_store(const ngl_gpu_args *A, uint32_t b, uint32_t a, uint32_t c)
{
    if (A->pred != NGL_PRED_NONE) {
        A->gate[b] = (uint8_t)(ngl_bits_f32(a) < ngl_bits_f32(c));
    }
}

/* f32 addition with x86 SSE NaN rules, so an accumulating decode gives the
 * CPU's bits: a NaN operand comes back quieted with its payload (the first
 * one if both are NaN), and Inf + -Inf gives the x86 default NaN
 * 0xffc00000. A GPU add would return its canonical NaN 0x7fffffff instead.
 * Finite and infinite sums are the same IEEE operation everywhere. */
NGL_GPU_FN float ngl_gpu_add_x86(float a, float b)
{
    uint32_t ua = ngl_f32_bits(a), ub = ngl_f32_bits(b);
    if ((ua & 0x7fffffffu) > 0x7f800000u) {
        return ngl_bits_f32(ua | 0x00400000u);
    }
    if ((ub & 0x7fffffffu) > 0x7f800000u) {
        return ngl_bits_f32(ub | 0x00400000u);
    }
    float s = a + b;
    if ((ngl_f32_bits(s) & 0x7fffffffu) > 0x7f800000u) {
        return ngl_bits_f32(0xffc00000u);
    }
    return s;
}

/* ---------------------------------------------------------------------- */
/* Dense encoder: one warp per scale block.                               */
/* ---------------------------------------------------------------------- */

/* A chunk in registers between the two passes. */
typedef struct ngl_gpu_chunk {
    float x[8], e[8], s1[8], s2[8], r[8];
} ngl_gpu_chunk;

NGL_GPU_FN void ngl_gpu_load_state8(const ngl_gpu_args *A, uint64_t i0, uint32_t n,
                                    ngl_gpu_chunk *k)
{
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        k->e[j] = 0.0f;
        k->s1[j] = 0.0f;
        k->s2[j] = 0.0f;
    }
    if (A->ef != NULL) {
        ngl_gpu_ld8(A->ef, i0, n, 1, k->e);
    }
    if (A->pred != NGL_PRED_NONE) {
        ngl_gpu_ld8(A->st1, i0, n, 1, k->s1);
    }
    if (A->pred == NGL_PRED_LINEAR) {
        ngl_gpu_ld8(A->st2, i0, n, 1, k->s2);
    }
}

NGL_GPU_FN void ngl_gpu_store_state8(const ngl_gpu_args *A, uint64_t i0, uint32_t n,
                                     const ngl_gpu_chunk *k)
{
    if (A->ef != NULL) {
        ngl_gpu_st8(A->ef, i0, n, 1, k->e);
    }
    if (A->pred != NGL_PRED_NONE) {
        ngl_gpu_st8(A->st1, i0, n, 1, k->s1);
    }
    if (A->pred == NGL_PRED_LINEAR) {
        ngl_gpu_st8(A->st2, i0, n, 1, k->s2);
    }
}

/* Pass 1 (kernels_ref.c): residuals of the chunk and its largest finite
 * |r| as bits. */
NGL_GPU_FN uint32_t ngl_gpu_enc_residual8(const ngl_gpu_args *A, uint64_t i0, uint32_t n,
                                          int use_pred, ngl_gpu_chunk *k)
{
    ngl_gpu_ld_src8(A, i0, n, k->x);
    ngl_gpu_load_state8(A, i0, n, k);
    uint32_t m = 0;
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        k->r[j] = 0.0f;
        if (j >= n) {
            continue;
        }
        float t = ngl_gpu_target(k->x[j], k->e[j], A->ef != NULL);
        float p = use_pred ? ngl_gpu_praw(A->pred, k->s1[j], k->s2[j], A->hist) : 0.0f;
        float r = t - p;
        k->r[j] = r;
        if (ngl_f32_finite(r)) {
            m = ngl_gpu_umax(m, ngl_f32_bits(ngl_absf(r)));
        }
    }
    return m;
}

/* Pass 2 (kernels_ref.c): quantize, reconstruct as the decoder will, error
 * feedback, state; writes the chunk's codes at code position pos. Returns
 * the chunk's exceptions as a bit mask (bit j = element i0 + j). */
NGL_GPU_FN uint32_t ngl_gpu_enc_finish8(const ngl_gpu_args *A, uint64_t i0, uint32_t n,
                                        int use_pred, int skipped, float scale, float inv,
                                        uint64_t pos, ngl_gpu_chunk *k, uint32_t *a, uint32_t *c)
{
    int32_t q[8];
    uint32_t emask = 0;
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        q[j] = 0;
        if (j >= n) {
            continue;
        }
        const uint64_t i = i0 + j;
        const float x = k->x[j];
        const float r = k->r[j];
        const float praw = ngl_gpu_praw(A->pred, k->s1[j], k->s2[j], A->hist);
        const float p = use_pred ? praw : 0.0f;
        float xhat = p;
        /* NaN/Inf input or residual overflow: carried exactly */
        int exc = !ngl_f32_finite(r);
        if (!exc && !skipped) {
            float u = ngl_rng_uniform(A->key, (uint32_t)i);
            q[j] = ngl_sr_quantize(r, inv, u, A->qmax);
            xhat = p + ngl_dequantize(q[j], scale);
        }
        if (!exc && !ngl_f32_finite(xhat)) {
            /* a finite input whose reconstruction overflows is carried
             * exactly too: a finite value never decodes to Inf */
            exc = 1;
            q[j] = 0;
        }
        if (exc) {
            emask |= 1u << j;
            xhat = x;
        }
        if (A->ef != NULL) {
            /* e <- t - xhat; nothing to carry for a non-finite input */
            k->e[j] = ngl_f32_finite(x) ? ngl_gpu_target(x, k->e[j], 1) - xhat : 0.0f;
        }
        ngl_gpu_state_update(A, xhat, praw, &k->s1[j], &k->s2[j], a, c);
    }
    if (!skipped) {
        ngl_gpu_put_codes(A->codes, pos, n, A->int4, q);
    }
    ngl_gpu_store_state8(A, i0, n, k);
    return emask;
}

/* Block b of a dense encode, run by one warp (lane of nlanes). Writes the
 * block's scale and codes, appends its exceptions in index order to
 * exc_idx[b*block ...], and leaves their number in blk_exc[b]. */
NGL_GPU_FN void ngl_gpu_encode_block(const ngl_gpu_args *A, uint32_t b, uint32_t lane,
                                     uint32_t nlanes)
{
    const uint64_t lo = (uint64_t)b * A->block;
    const uint64_t hi = lo + A->block < A->count ? lo + A->block : A->count;
    const uint32_t nchunks = (uint32_t)((hi - lo + NGL_GPU_CHUNK - 1u) / NGL_GPU_CHUNK);
    const uint32_t iters = (nchunks + nlanes - 1u) / nlanes; /* the same for every lane */
    const int skipped = A->skip != NULL && ngl_gpu_bit(A->skip, b);
    const int use_pred = A->pred != NGL_PRED_NONE && A->gate[b];
    const uint64_t sent = A->skip != NULL ? A->sent[b] : b;
    const uint64_t code0 = sent * A->block;
    ngl_gpu_chunk k;

    uint32_t mx = 0;
    for (uint32_t it = 0; it < iters; it++) {
        const uint64_t i0 = lo + (uint64_t)(it * nlanes + lane) * NGL_GPU_CHUNK;
        mx =
            ngl_gpu_umax(mx, ngl_gpu_enc_residual8(A, i0, ngl_gpu_chunk_len(i0, hi), use_pred, &k));
    }
    mx = ngl_warp_max(mx);

    float scale = 0.0f, inv = 0.0f;
    if (!skipped) {
        ngl_block_scale(ngl_bits_f32(mx), A->qmax, &scale, &inv);
        if (lane == 0) {
            ngl_wr_u32(A->scales + sent * 4u, ngl_f32_bits(scale));
        }
    }

    uint32_t a = 0, c = 0, nexc = 0;
    for (uint32_t it = 0; it < iters; it++) {
        const uint64_t i0 = lo + (uint64_t)(it * nlanes + lane) * NGL_GPU_CHUNK;
        const uint32_t n = ngl_gpu_chunk_len(i0, hi);
        if (iters > 1u) {
            /* the chunk is no longer in registers: recompute (same bits) */
            (void)ngl_gpu_enc_residual8(A, i0, n, use_pred, &k);
        }
        uint32_t emask = ngl_gpu_enc_finish8(A, i0, n, use_pred, skipped, scale, inv,
                                             code0 + (i0 - lo), &k, &a, &c);
        if (ngl_warp_any(emask != 0)) {
            /* rare: append in index order (lane order = index order) */
            uint32_t total;
            uint32_t at = nexc + ngl_warp_excl_sum(ngl_gpu_popc8(emask), &total);
            NGL_GPU_UNROLL
            for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
                if (j >= n) {
                    continue;
                }
                if ((emask >> j) & 1u) {
                    A->exc_idx[lo + at++] = (uint32_t)(i0 + j);
                }
            }
            nexc += total;
        }
    }
    a = ngl_warp_max(a);
    c = ngl_warp_max(c);
    if (lane == 0) {
        ngl_gpu_gate_store(A, b, a, c);
        A->blk_exc[b] = nexc;
        if (nexc > 0) {
            ngl_gpu_atomic_add32(&A->ctl->n_exc, nexc);
        }
    }
}

/* Writes block b's exceptions as wire entries from slot @p base on. */
NGL_GPU_FN void ngl_gpu_exc_write_block(const ngl_gpu_args *A, uint32_t b, uint64_t base)
{
    const uint64_t lo = (uint64_t)b * A->block;
    const uint32_t n = A->blk_exc[b];
    for (uint32_t t = 0; t < n; t++) {
        ngl_gpu_put_exc(A, A->exc, base + t, A->exc_idx[lo + t]);
    }
}

/* ---------------------------------------------------------------------- */
/* Decoders: one warp per scale block.                                    */
/* ---------------------------------------------------------------------- */

/* Output of one chunk: store, or accumulate in f32 (f16/bf16 outputs are
 * rounded per element exactly as core's finish_half_output()). @p raw
 * holds the exception bits of elements flagged in emask. */
NGL_GPU_FN void ngl_gpu_output8(const ngl_gpu_args *A, uint64_t i0, uint32_t n, const float xh[8],
                                uint32_t emask, const uint16_t raw[8])
{
    if (A->dtype == NGL_DTYPE_F32) {
        float *o = (float *)A->dst;
        float v[8];
        if (A->accumulate) {
            ngl_gpu_ld8(o, i0, n, A->dst_vec, v);
            NGL_GPU_UNROLL
            for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
                v[j] = ngl_gpu_add_x86(v[j], xh[j]);
            }
        } else {
            NGL_GPU_UNROLL
            for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
                v[j] = xh[j];
            }
        }
        ngl_gpu_st8(o, i0, n, A->dst_vec, v);
        return;
    }
    uint16_t *o = (uint16_t *)A->dst;
    const int f16 = A->dtype == NGL_DTYPE_F16;
    uint16_t h[8];
    if (A->accumulate) {
        ngl_gpu_ld8_u16(o, i0, n, A->dst_vec, h);
        NGL_GPU_UNROLL
        for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
            float s = ngl_gpu_add_x86(f16 ? ngl_f16_to_f32(h[j]) : ngl_bf16_to_f32(h[j]), xh[j]);
            h[j] = f16 ? ngl_f32_to_f16(s) : ngl_f32_to_bf16(s);
        }
    } else {
        NGL_GPU_UNROLL
        for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
            if ((emask >> j) & 1u) {
                h[j] = raw[j];
            } else {
                h[j] = f16 ? ngl_f32_to_f16_sat(xh[j]) : ngl_f32_to_bf16_sat(xh[j]);
            }
        }
    }
    ngl_gpu_st8_u16(o, i0, n, A->dst_vec, h);
}

/* Block b of a decode (dense when @p topk is 0), run by one warp. */
NGL_GPU_FN void ngl_gpu_decode_block(const ngl_gpu_args *A, uint32_t b, uint32_t lane,
                                     uint32_t nlanes, int topk)
{
    const uint64_t lo = (uint64_t)b * A->block;
    const uint64_t hi = lo + A->block < A->count ? lo + A->block : A->count;
    const uint32_t nchunks = (uint32_t)((hi - lo + NGL_GPU_CHUNK - 1u) / NGL_GPU_CHUNK);
    const uint32_t iters = (nchunks + nlanes - 1u) / nlanes;
    const int skipped = !topk && A->skip != NULL && ngl_gpu_bit(A->skip, b);
    const int use_pred = A->pred != NGL_PRED_NONE && A->gate[b];
    const uint64_t sent = A->skip != NULL ? A->sent[b] : b;
    const uint64_t code0 = sent * A->block;
    float scale = 0.0f;
    if (!topk && !skipped) {
        scale = ngl_bits_f32(ngl_rd_u32(A->in_scales + sent * 4u));
    }
    /* this block's slices of the sorted exception and selection lists */
    uint64_t ex_lo = 0, ex_hi = 0, sl_lo = 0, sl_hi = 0;
    if (A->in_n_exc > 0) {
        ex_lo = ngl_gpu_lower_bound(A->in_exc, A->esz, 0, A->in_n_exc, lo);
        ex_hi = ngl_gpu_lower_bound(A->in_exc, A->esz, ex_lo, A->in_n_exc, hi);
    }
    if (topk && A->in_k > 0) {
        const uint8_t *sel = (const uint8_t *)A->in_sel;
        sl_lo = ngl_gpu_lower_bound(sel, 4u, 0, A->in_k, lo);
        sl_hi = ngl_gpu_lower_bound(sel, 4u, sl_lo, A->in_k, hi);
    }

    uint32_t a = 0, c = 0;
    for (uint32_t it = 0; it < iters; it++) {
        const uint64_t i0 = lo + (uint64_t)(it * nlanes + lane) * NGL_GPU_CHUNK;
        const uint32_t n = ngl_gpu_chunk_len(i0, hi);
        ngl_gpu_chunk k;
        float xh[8];
        uint16_t raw[8];
        uint32_t emask = 0;
        ngl_gpu_load_state8(A, i0, n, &k);
        uint64_t ex =
            ex_lo < ex_hi ? ngl_gpu_lower_bound(A->in_exc, A->esz, ex_lo, ex_hi, i0) : ex_hi;
        uint64_t sl = sl_lo < sl_hi
                          ? ngl_gpu_lower_bound((const uint8_t *)A->in_sel, 4u, sl_lo, sl_hi, i0)
                          : sl_hi;
        NGL_GPU_UNROLL
        for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
            xh[j] = 0.0f;
            raw[j] = 0;
            if (j >= n) {
                continue;
            }
            const uint64_t i = i0 + j;
            const float praw = ngl_gpu_praw(A->pred, k.s1[j], k.s2[j], A->hist);
            const float p = use_pred ? praw : 0.0f;
            const int selected = topk && sl < sl_hi && A->in_sel[sl] == i;
            float xhat;
            if (ex < ex_hi && (uint64_t)ngl_rd_u32(A->in_exc + ex * A->esz) == i) {
                const uint8_t *v = A->in_exc + ex * A->esz + 4;
                xhat = ngl_gpu_exc_value(A->dtype, v);
                raw[j] = ngl_rd_u16(v);
                emask |= 1u << j;
                ex++;
            } else if (topk) {
                xhat = p;
                if (selected) {
                    float s = ngl_bits_f32(ngl_rd_u32(A->in_scales + (sl / A->block) * 4u));
                    xhat = p + ngl_dequantize(ngl_gpu_get_code(A->in_codes, sl, A->int4), s);
                }
            } else if (skipped) {
                xhat = p;
            } else {
                xhat = p + ngl_dequantize(ngl_gpu_get_code(A->in_codes, code0 + (i - lo), A->int4),
                                          scale);
            }
            sl += (uint64_t)selected;
            xh[j] = xhat;
            ngl_gpu_state_update(A, xhat, praw, &k.s1[j], &k.s2[j], &a, &c);
        }
        ngl_gpu_output8(A, i0, n, xh, emask, raw);
        if (A->pred != NGL_PRED_NONE) {
            ngl_gpu_st8(A->st1, i0, n, 1, k.s1);
        }
        if (A->pred == NGL_PRED_LINEAR) {
            ngl_gpu_st8(A->st2, i0, n, 1, k.s2);
        }
    }
    a = ngl_warp_max(a);
    c = ngl_warp_max(c);
    if (lane == 0) {
        ngl_gpu_gate_store(A, b, a, c);
    }
}

/* ---------------------------------------------------------------------- */
/* Top-K encoder (core/src/topk.c): keys, radix select, ordered selection. */
/* ---------------------------------------------------------------------- */

/* Pass A for one chunk: residuals to tk_r, keys (|r| bits + 1, 0 when not
 * finite or in a skipped block) to tk_key and @p key. Returns the number of
 * eligible (non-zero) keys. */
NGL_GPU_FN uint32_t ngl_gpu_tk_keys8(const ngl_gpu_args *A, uint64_t i0, uint32_t n,
                                     uint32_t key[8])
{
    ngl_gpu_chunk k;
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        key[j] = 0;
        k.r[j] = 0.0f;
    }
    if (n == 0) {
        return 0;
    }
    const uint32_t b = (uint32_t)(i0 / A->block);
    const int use_pred = A->pred != NGL_PRED_NONE && A->gate[b];
    const uint32_t live = (A->skip != NULL && ngl_gpu_bit(A->skip, b)) ? 0u : 0xffffffffu;
    ngl_gpu_ld_src8(A, i0, n, k.x);
    ngl_gpu_load_state8(A, i0, n, &k);
    uint32_t elig = 0;
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        if (j >= n) {
            continue;
        }
        float t = ngl_gpu_target(k.x[j], k.e[j], A->ef != NULL);
        float p = use_pred ? ngl_gpu_praw(A->pred, k.s1[j], k.s2[j], A->hist) : 0.0f;
        float r = t - p;
        k.r[j] = r;
        uint32_t mag = ngl_f32_bits(r) & 0x7fffffffu;
        key[j] = (mag < 0x7f800000u ? mag + 1u : 0u) & live;
        elig += key[j] != 0u;
    }
    ngl_gpu_st8(A->tk_r, i0, n, 1, k.r);
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        if (j >= n) {
            continue;
        }
        A->tk_key[i0 + j] = key[j];
    }
    return elig;
}

/* Digit shift and width of radix pass 0, 1, 2. */
NGL_GPU_FN uint32_t ngl_gpu_tk_shift(uint32_t pass)
{
    return pass == 0 ? 21u : (pass == 1 ? 10u : 0u);
}

NGL_GPU_FN uint32_t ngl_gpu_tk_width(uint32_t pass)
{
    return pass == 2 ? 0x3ffu : 0x7ffu;
}

/* Histogram bin of key @p v in pass @p pass, or -1 when v does not carry
 * the threshold's digits found so far. */
NGL_GPU_FN int32_t ngl_gpu_tk_bin(const ngl_gpu_ctl *C, uint32_t pass, uint32_t v)
{
    if ((v & C->pmask) != C->prefix) {
        return -1;
    }
    return (int32_t)((v >> ngl_gpu_tk_shift(pass)) & ngl_gpu_tk_width(pass));
}

/* One digit of the MSD radix select (topk.c radix_select), by one thread:
 * walk the digit's histogram from the top until the k-th largest key's
 * bin. Pass 0 first fixes k = min(k_max, eligible); with k = 0 nothing is
 * selected (T above every key). */
NGL_GPU_FN void ngl_gpu_tk_pick(ngl_gpu_ctl *C, uint64_t k_max, const uint32_t *h, uint32_t pass)
{
    if (pass == 0) {
        C->k = k_max < C->eligible ? k_max : C->eligible;
        C->prefix = 0;
        C->pmask = 0;
        C->remaining = C->k;
        C->active = C->k > 0 ? 1u : 0u;
        C->thresh = 0xffffffffu;
        C->take_eq = 0;
    }
    if (!C->active) {
        return;
    }
    const uint32_t width = ngl_gpu_tk_width(pass);
    uint64_t remaining = C->remaining;
    uint32_t d = width;
    for (;; d--) {
        if (remaining <= h[d] || d == 0) {
            break;
        }
        remaining -= h[d];
    }
    C->prefix |= d << ngl_gpu_tk_shift(pass);
    C->pmask |= width << ngl_gpu_tk_shift(pass);
    C->remaining = remaining;
    if (pass == 2) {
        C->thresh = C->prefix;
        C->take_eq = remaining;
    }
}

/* Per chunk: keys above T, keys equal to T, exceptions (non-finite r). */
NGL_GPU_FN void ngl_gpu_tk_count8(const ngl_gpu_args *A, uint64_t i0, uint32_t n, uint32_t T,
                                  uint32_t *gt, uint32_t *eq, uint32_t *ex)
{
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        if (j >= n) {
            continue;
        }
        const uint32_t v = A->tk_key[i0 + j];
        *gt += v > T;
        *eq += v == T;
        *ex += !ngl_f32_finite(A->tk_r[i0 + j]);
    }
}

/* Selected elements of a tile: every key above T, plus the ties still
 * wanted after @p eq_before ties in earlier tiles (lowest indices first). */
NGL_GPU_FN uint32_t ngl_gpu_tk_tile_sel(uint32_t gt, uint32_t eq, uint64_t eq_before,
                                        uint64_t take_eq)
{
    uint64_t left = take_eq > eq_before ? take_eq - eq_before : 0u;
    return gt + (uint32_t)(left < eq ? left : eq);
}

/* Selection mask of a chunk, given the number of ties (key == T) at lower
 * indices. *excmask gets the elements that become exceptions. */
NGL_GPU_FN uint32_t ngl_gpu_tk_select8(const ngl_gpu_args *A, uint64_t i0, uint32_t n, uint32_t T,
                                       uint64_t take_eq, uint64_t eq_base, uint32_t *excmask)
{
    uint32_t sel = 0, exc = 0;
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        if (j >= n) {
            continue;
        }
        const uint32_t v = A->tk_key[i0 + j];
        if (v > T) {
            sel |= 1u << j;
        } else if (v == T) {
            if (eq_base < take_eq) {
                sel |= 1u << j;
            }
            eq_base++;
        }
        if (!ngl_f32_finite(A->tk_r[i0 + j])) {
            exc |= 1u << j; /* never selected: selected keys are finite */
        }
    }
    *excmask = exc;
    return sel;
}

/* Ranks the chunk's selected elements (sel_base on), writes its bitmap
 * byte and exception entries (exc_base on), and finishes every element
 * that is not selected: exception (x exactly, EF cleared) or reconstruction
 * = prediction, with error feedback and state (topk_finish). */
NGL_GPU_FN void ngl_gpu_tk_rank8(const ngl_gpu_args *A, uint64_t i0, uint32_t n, uint32_t selmask,
                                 uint32_t excmask, uint64_t sel_base, uint64_t exc_base)
{
    if (n == 0) {
        return;
    }
    A->tk_bitmap[i0 >> 3] = (uint8_t)selmask;
    const uint32_t b = (uint32_t)(i0 / A->block);
    const int use_pred = A->pred != NGL_PRED_NONE && A->gate[b];
    ngl_gpu_chunk k;
    ngl_gpu_ld_src8(A, i0, n, k.x);
    ngl_gpu_load_state8(A, i0, n, &k);
    uint32_t a = 0, c = 0;
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        if (j >= n) {
            continue;
        }
        const uint64_t i = i0 + j;
        if ((selmask >> j) & 1u) {
            A->tk_sel[sel_base++] = (uint32_t)i;
            continue;
        }
        const float praw =
            A->pred != NGL_PRED_NONE ? ngl_gpu_praw(A->pred, k.s1[j], k.s2[j], A->hist) : 0.0f;
        /* An exception is a NaN/Inf input, a residual overflow or a
         * prediction that is not finite (then r is not finite either). */
        float xhat = use_pred ? praw : 0.0f;
        if ((excmask >> j) & 1u) {
            ngl_gpu_put_exc(A, A->exc, exc_base++, i);
            xhat = k.x[j];
        }
        if (A->ef != NULL) {
            k.e[j] = ngl_f32_finite(k.x[j]) ? ngl_gpu_target(k.x[j], k.e[j], 1) - xhat : 0.0f;
        }
        if (A->pred != NGL_PRED_NONE) {
            ngl_gpu_state_update(A, xhat, praw, &k.s1[j], &k.s2[j], &a, &c);
        }
    }
    /* selected elements keep their loaded values here; tk_quant8 runs later */
    ngl_gpu_store_state8(A, i0, n, &k);
    if (A->pred != NGL_PRED_NONE) {
        ngl_gpu_atomic_max(&A->tk_ga[b], a);
        ngl_gpu_atomic_max(&A->tk_gc[b], c);
    }
}

/* Scale of selection group g (selected elements g*B .. in rank order), by
 * one warp: largest |r| of the group, then ngl_block_scale. */
NGL_GPU_FN void ngl_gpu_tk_group(const ngl_gpu_args *A, uint64_t g, uint64_t k, uint32_t lane,
                                 uint32_t nlanes)
{
    const uint64_t lo = g * A->block;
    const uint64_t hi = lo + A->block < k ? lo + A->block : k;
    uint32_t m = 0;
    for (uint64_t e = lo + lane; e < hi; e += nlanes) {
        m = ngl_gpu_umax(m, ngl_f32_bits(ngl_absf(A->tk_r[A->tk_sel[e]])));
    }
    m = ngl_warp_max(m);
    if (lane == 0) {
        float scale, inv;
        ngl_block_scale(ngl_bits_f32(m), A->qmax, &scale, &inv);
        ngl_wr_u32(A->scales + g * 4u, ngl_f32_bits(scale));
        A->tk_inv[g] = inv;
    }
}

/* Quantize selected elements e0 .. e0+n-1 (one group: e0 is a multiple of
 * 8, the block size a multiple of 8) and finish them: codes, EF, state.
 * Returns the bytes their varint gaps take in the index section. */
NGL_GPU_FN uint32_t ngl_gpu_tk_quant8(const ngl_gpu_args *A, uint64_t e0, uint32_t n)
{
    if (n == 0) {
        return 0;
    }
    const uint64_t g = e0 / A->block;
    const float scale = ngl_bits_f32(ngl_rd_u32(A->scales + g * 4u));
    const float inv = A->tk_inv[g];
    int32_t q[8];
    uint32_t vbytes = 0;
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        q[j] = 0;
        if (j >= n) {
            continue;
        }
        const uint64_t e = e0 + j;
        const uint32_t i = A->tk_sel[e];
        const uint32_t b = i / A->block;
        q[j] = ngl_sr_quantize(A->tk_r[i], inv, ngl_rng_uniform(A->key, i), A->qmax);
        float s1 = A->pred != NGL_PRED_NONE ? A->st1[i] : 0.0f;
        float s2 = A->pred == NGL_PRED_LINEAR ? A->st2[i] : 0.0f;
        const float praw = A->pred != NGL_PRED_NONE ? ngl_gpu_praw(A->pred, s1, s2, A->hist) : 0.0f;
        const float p = (A->pred != NGL_PRED_NONE && A->gate[b]) ? praw : 0.0f;
        float xhat = p + ngl_dequantize(q[j], scale);
        const float x = ngl_gpu_ld_src1(A, i);
        if (!ngl_f32_finite(xhat)) {
            /* a finite input never decodes to Inf: sent exactly, code 0;
             * joins the exception list (in any order here; the host merges) */
            q[j] = 0;
            xhat = x;
            ngl_gpu_put_exc(A, A->tk_late, ngl_gpu_atomic_inc32(&A->ctl->n_late), i);
        }
        if (A->ef != NULL) {
            A->ef[i] = ngl_gpu_target(x, A->ef[i], 1) - xhat;
        }
        if (A->pred != NGL_PRED_NONE) {
            uint32_t a = 0, c = 0;
            ngl_gpu_state_update(A, xhat, praw, &s1, &s2, &a, &c);
            A->st1[i] = s1;
            if (A->pred == NGL_PRED_LINEAR) {
                A->st2[i] = s2;
            }
            ngl_gpu_atomic_max(&A->tk_ga[b], a);
            ngl_gpu_atomic_max(&A->tk_gc[b], c);
        }
        vbytes += (uint32_t)ngl_varint_len(e == 0 ? i : i - A->tk_sel[e - 1] - 1u);
    }
    ngl_gpu_put_codes(A->codes, e0, n, A->int4, q);
    return vbytes;
}

#endif /* NGL_GPU_OPS_H */
