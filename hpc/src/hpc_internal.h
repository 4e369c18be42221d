/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_internal.h -- shared by the hpc encoder, decoder and container code:
 * the format's constants (hpc/FORMAT.md is the normative description) and
 * the integer arithmetic both sides run alike. Byte order and varints are
 * common's (ngl_byteorder.h, ngl_varint.h), the raw bit stream hpc_bits.h's.
 */
#ifndef NGL_HPC_INTERNAL_H
#define NGL_HPC_INTERNAL_H

#include "hpc_bits.h"
#include "nangila_hpc.h"
#include "ngl_byteorder.h"
#include "ngl_varint.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- format */
#define HPC_REC_HEADER      8u /* magic(4) + payload_len(4) */
#define HPC_REC_TRAILER     4u /* crc32c */
#define HPC_REC_OVERHEAD    (HPC_REC_HEADER + HPC_REC_TRAILER)
#define HPC_REC_MAX_PAYLOAD ((uint32_t)1 << 31)
#define HPC_REC_STREAM      'S'
#define HPC_REC_FRAME       'F'
#define HPC_STREAM_PAYLOAD  32u

/* frame flags */
#define HPC_FF_IDS_SAME     0x01u /* same ids in the same order as the previous frame */
#define HPC_FF_IDS_IDENTITY 0x02u /* ids are 0..natoms-1 */
#define HPC_FF_BOX          0x04u /* a box follows */
#define HPC_FF_MODEL        0x08u /* a new model follows */
#define HPC_FF_SPATIAL2     0x10u /* atoms without history use the 2nd-order spatial delta */
#define HPC_FF_IDS_ZSTD     0x20u /* the ids section is zstd-compressed */
#define HPC_FF_CAGE         0x40u /* MODEL blocks use the cage (§6.8); its lambda follows */
#define HPC_FF_CAGE_TABLE   0x80u /* a new cage table follows (only with HPC_FF_CAGE) */
#define HPC_FF_KNOWN        0xFFu

/* predictors selectable per block */
#define HPC_BLOCK_ATOMS 256u
#define HPC_SEL_MODEL   0u
#define HPC_SEL_ORDER1  1u
#define HPC_SEL_ORDER0  2u
#define HPC_SEL_ORDER2  3u

/* model */
#define HPC_TAPS       6u  /* taps on the last displacements (needs HPC_TAPS+1 frames) */
#define HPC_KNOTS      16u /* knots of the learned pair-force profile */
#define HPC_PRED_SHIFT 12  /* model predictions are fixed point with 12 fraction bits */
#define HPC_HIST       8u  /* ring entries per value: HPC_TAPS + 1 history + 1 being written */

/* tokens */
#define HPC_TOK_DIRECT 8u
#define HPC_TOK_EXACT  252u
#define HPC_TOK_RARE   254u
#define HPC_NSYM       256u

/* lattice limit: |q| above this is stored exactly (keeps q*2eps exact enough and sums in range) */
#define HPC_Q_LIMIT ((int64_t)1 << 50)

/* ---------------------------------------------------------------- bytes */
/* Little-endian fields, LEB128 varints and zigzag are the common layer's
 * (ngl_byteorder.h, ngl_varint.h): hpc/ and twin/ call them by their ngl_
 * names. */

/* ---------------------------------------------------------- arithmetic */
static inline unsigned hpc_bitlen(uint64_t v)
{
    return v ? 64u - (unsigned)__builtin_clzll(v) : 0u;
}

/* floor(x) for |x| < 2^62, without a libm call (baseline x86-64 has no
 * roundsd); exact, as truncation of a double to int64 is exact in range. */
static inline int64_t hpc_floor_i64(double x)
{
    int64_t t = (int64_t)x;
    return (double)t > x ? t - 1 : t;
}

/* floor(a / 2^s) for signed a, without relying on >> of negative numbers. */
static inline int64_t hpc_floor_shift(int64_t a, int s)
{
    return a >= 0 ? (int64_t)((uint64_t)a >> s) : -(int64_t)(((uint64_t)(-(a + 1)) >> s) + 1);
}

/* Wrapping int64 add/sub (defined behaviour through uint64). */
static inline int64_t hpc_wadd(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

static inline int64_t hpc_wsub(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a - (uint64_t)b);
}

static inline int64_t hpc_clamp_i64(int64_t v, int64_t lim)
{
    return v > lim ? lim : (v < -lim ? -lim : v);
}

/* Magnitude bucket used as context: 0, 1, 2 exact, then one per power of two
 * (3-4, 5-8, 9-16, ...), capped at 11. */
static inline unsigned hpc_mag_bucket(uint64_t v)
{
    /* without branches: small magnitudes are common and unpredictable */
    unsigned b = 1u + hpc_bitlen((v - 1) | 1); /* v >= 3: 1 + ceil(log2 v) */
    b = b > 11u ? 11u : b;
    return v < 3 ? (unsigned)v : b;
}

/* Lossless mode: a bijection between float bit patterns and integers that is
 * monotonic in the float value (-0.0 maps to -1), so that temporal deltas of
 * nearby values are small. */
static inline int64_t hpc_ord_from_bits32(uint32_t u)
{
    return (u & 0x80000000u) ? -(int64_t)(u & 0x7FFFFFFFu) - 1 : (int64_t)u;
}

static inline uint32_t hpc_bits32_from_ord(int64_t o)
{
    return o < 0 ? (uint32_t)(-(o + 1)) | 0x80000000u : (uint32_t)o;
}

static inline int64_t hpc_ord_from_bits64(uint64_t u)
{
    return (u >> 63) ? -(int64_t)(u & 0x7FFFFFFFFFFFFFFFull) - 1 : (int64_t)u;
}

static inline uint64_t hpc_bits64_from_ord(int64_t o)
{
    return o < 0 ? (uint64_t)(-(o + 1)) | 0x8000000000000000ull : (uint64_t)o;
}

#endif /* NGL_HPC_INTERNAL_H */
