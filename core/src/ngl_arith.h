/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_arith.h -- per-element arithmetic, the single source of truth for every
 * kernel variant: portable C, AVX2, AVX-512 and CUDA (kernels/ includes this
 * file under nvcc). Every function here is a short sequence of IEEE-754
 * single operations with one rounding each; nothing may be contracted into
 * an FMA (the build uses -ffp-contract=off, nvcc uses --fmad=false), and
 * nothing relies on fast-math. SIMD variants must perform the same
 * operations in the same order, so all variants produce identical bits.
 */
#ifndef NGL_ARITH_H
#define NGL_ARITH_H

#include "ngl_hash.h" /* ngl_hash_splitmix64(): the per-step key */

#include <stdint.h>
#include <string.h>
#if !defined(__CUDACC__)
#include <math.h>
#endif

#if defined(__CUDACC__)
#define NGL_HD __host__ __device__ __forceinline__
#else
#define NGL_HD static inline
#endif

/* Largest code magnitude per codec. Codes are symmetric, [-qmax, qmax], so
 * stochastic rounding never needs to clamp and stays unbiased at the block
 * maximum. */
#define NGL_QMAX_INT8 127
#define NGL_QMAX_INT4 7

/* A block whose largest |residual| is below this is sent with scale 0 (all
 * codes zero): qmax/maxabs would overflow near the subnormal range. Error
 * feedback carries such blocks to the next step. */
#define NGL_TINY_MAXABS 0x1p-100f

NGL_HD uint32_t ngl_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

NGL_HD float ngl_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

NGL_HD uint64_t ngl_f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

NGL_HD double ngl_bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Finite test on the bit pattern: immune to -ffinite-math assumptions. */
NGL_HD int ngl_f32_finite(float f)
{
    return (ngl_f32_bits(f) & 0x7f800000u) != 0x7f800000u;
}

NGL_HD int ngl_f64_finite(double d)
{
    return (ngl_f64_bits(d) & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
}

/* |f| by clearing the sign bit (exact, no NaN canonicalisation). */
NGL_HD float ngl_absf(float f)
{
    return ngl_bits_f32(ngl_f32_bits(f) & 0x7fffffffu);
}

/* ---------------------------------------------------------------------- */
/* Counter-based random stream.                                           */
/*                                                                        */
/* The rounding noise for element i of step t of stream s under seed k is */
/* a pure function of (k, s, t, i): any machine, any kernel variant and   */
/* any thread split draws the same bits. The per-step key is mixed once   */
/* with splitmix64; the per-element hash is a Weyl step followed by the   */
/* murmur3 32-bit finaliser (3 multiplies, cheap in SIMD and on GPUs).    */
/* ---------------------------------------------------------------------- */
typedef struct ngl_rng_key {
    uint32_t lo, hi;
} ngl_rng_key;

NGL_HD ngl_rng_key ngl_rng_key_make(uint64_t seed, uint64_t stream_id, uint64_t step)
{
    uint64_t k =
        ngl_hash_splitmix64(seed ^ ngl_hash_splitmix64(stream_id ^ ngl_hash_splitmix64(step)));
    ngl_rng_key key;
    key.lo = (uint32_t)k;
    key.hi = (uint32_t)(k >> 32);
    return key;
}

NGL_HD uint32_t ngl_rng_hash(ngl_rng_key key, uint32_t index)
{
    uint32_t h = (index ^ key.hi) * 0x9e3779b1u + key.lo;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* Uniform in [0, 1) with 24 bits: exact in binary32. */
NGL_HD float ngl_rng_uniform(ngl_rng_key key, uint32_t index)
{
    return (float)(ngl_rng_hash(key, index) >> 8) * 0x1p-24f;
}

/* ---------------------------------------------------------------------- */
/* Block scale and stochastic rounding.                                   */
/* ---------------------------------------------------------------------- */

/* scale = maxabs / qmax is what goes on the wire; the encoder multiplies
 * by inv = qmax / maxabs. Both are single correctly rounded divisions. */
NGL_HD void ngl_block_scale(float maxabs, int qmax, float *scale, float *inv)
{
    if (!(maxabs >= NGL_TINY_MAXABS)) {
        *scale = 0.0f;
        *inv = 0.0f;
        return;
    }
    *scale = maxabs / (float)qmax;
    *inv = (float)qmax / maxabs;
}

/* Unbiased stochastic rounding of r * inv to an integer in [-qmax, qmax]:
 * q = floor(v + u), u uniform in [0, 1), so E[q] = v (up to the 2^-24
 * resolution of u). The clamp only acts when v exceeds qmax by an ulp. */
NGL_HD int32_t ngl_sr_quantize(float r, float inv, float u, int qmax)
{
    float v = r * inv;
    float w = v + u;
    float q = floorf(w);
    if (q > (float)qmax) {
        q = (float)qmax;
    }
    if (q < (float)-qmax) {
        q = (float)-qmax;
    }
    return (int32_t)q;
}

NGL_HD float ngl_dequantize(int32_t q, float scale)
{
    return (float)q * scale;
}

/* ---------------------------------------------------------------------- */
/* Predictors. State is updated only from reconstructed values xhat.      */
/* ---------------------------------------------------------------------- */

/* Momentum/EMA: prediction is the state m itself. */
NGL_HD float ngl_momentum_update(float m, float xhat, float beta, float one_minus_beta)
{
    float a = beta * m;
    float b = one_minus_beta * xhat;
    return a + b;
}

/* Linear extrapolation from the last two reconstructions. With one sample
 * of history it predicts the last value; with none, zero. */
NGL_HD float ngl_linear_predict(float x1, float x2, uint32_t history)
{
    if (history >= 2) {
        float twice = 2.0f * x1;
        return twice - x2;
    }
    return history == 1 ? x1 : 0.0f;
}

/* ---------------------------------------------------------------------- */
/* Half-precision conversions (round to nearest even, like the hardware). */
/* ---------------------------------------------------------------------- */
NGL_HD float ngl_bf16_to_f32(uint16_t h)
{
    return ngl_bits_f32((uint32_t)h << 16);
}

/* Round to nearest even. NaN stays NaN (quiet bit forced so the payload
 * never turns into Inf). Finite values that round beyond the largest
 * bf16 become +-Inf, like a hardware conversion. */
NGL_HD uint16_t ngl_f32_to_bf16(float f)
{
    uint32_t u = ngl_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((u >> 16) | 0x0040u);
    }
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return (uint16_t)(u >> 16);
}

NGL_HD float ngl_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1fu) {
        /* Inf, or NaN made quiet with its payload kept, as F16C's
         * vcvtph2ps does: the SIMD variants must give the same bits. */
        u = sign | 0x7f800000u | (man << 13) | (man ? 0x00400000u : 0u);
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else {
        /* subnormal: normalise */
        uint32_t e = 113u;
        while ((man & 0x400u) == 0) {
            man <<= 1;
            e--;
        }
        u = sign | (e << 23) | ((man & 0x3ffu) << 13);
    }
    return ngl_bits_f32(u);
}

/* IEEE round-to-nearest-even binary32 -> binary16, identical to F16C
 * vcvtps2ph with imm 0 and to CUDA __float2half_rn. */
NGL_HD uint16_t ngl_f32_to_f16(float f)
{
    uint32_t u = ngl_f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        if (a == 0x7f800000u) {
            return (uint16_t)(sign | 0x7c00u);
        }
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    }
    if (a >= 0x477ff000u) { /* rounds to >= 65520 -> Inf */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (a >= 0x38800000u) { /* normal half */
        uint32_t lsb = (a >> 13) & 1u;
        a += 0x0fffu + lsb;
        return (uint16_t)(sign | ((a - 0x38000000u) >> 13));
    }
    if (a < 0x33000000u) { /* below half the smallest subnormal -> 0 */
        return sign;
    }
    /* subnormal half */
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e; /* 14..24 */
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) {
        q++;
    }
    return (uint16_t)(sign | q);
}

/* Decoded values are saturated to the largest finite half/bfloat16: a
 * codec's rounding noise must never turn a finite input into Inf (AMP
 * loss scaling would read that as an overflow). */
NGL_HD uint16_t ngl_f32_to_f16_sat(float f)
{
    uint16_t h = ngl_f32_to_f16(f);
    if (ngl_f32_finite(f) && (h & 0x7fffu) == 0x7c00u) {
        h = (uint16_t)((h & 0x8000u) | 0x7bffu);
    }
    return h;
}

NGL_HD uint16_t ngl_f32_to_bf16_sat(float f)
{
    uint16_t h = ngl_f32_to_bf16(f);
    if (ngl_f32_finite(f) && (h & 0x7fffu) == 0x7f80u) {
        h = (uint16_t)((h & 0x8000u) | 0x7f7fu);
    }
    return h;
}

#endif /* NGL_ARITH_H */
