/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gen_golden -- writes the golden frames of tests/golden/ (see README.md there).
 *
 *   gen_golden OUTDIR        writes OUTDIR/valid/... and OUTDIR/invalid/...
 *
 * Written against the public API (nangila.h) and docs/wire-format.md only:
 * valid streams come from ngl_encoder_encode(), invalid frames are valid ones
 * edited byte by byte following the spec's layout, with the CRC recomputed by
 * ngl_crc32c() so that each carries exactly one defect. Regenerate only for a
 * deliberate format change: the committed files are the reference, and
 * test_golden checks the library against them.
 *
 * Assumes a little-endian host (input and output files are the in-memory
 * element arrays); the tests check that too.
 */
#include "golden_util.h"
#include "nangila.h"
#include "ngl_byteorder.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FRAME_MAX 65536u
#define STEPS_MAX 16u

/* Data patterns (bit set per case). */
enum {
    P_SMOOTH = 1u << 0,   /* predictable blocks next to noise blocks (gate varies) */
    P_SPECIAL = 1u << 1,  /* NaN (quiet, signalling, payloads) and +-Inf at one step */
    P_OVERFLOW = 1u << 2, /* residuals or quotients that overflow the codec */
    P_SPARSE = 1u << 3,   /* mostly exact zeros (for the back ends) */
    P_TINY = 1u << 4,     /* a block below the scale threshold, subnormals */
    P_EXTREME = 1u << 5,  /* values at the dtype's largest finite magnitude */
    P_MAXBLOCK = 1u << 6, /* block 0 all +-largest finite: error feedback pushes the
                             reconstruction past it (f16/bf16 saturation) */
};

typedef struct gen_case {
    const char *name;
    ngl_codec codec;
    ngl_dtype dtype;
    ngl_predictor pred;
    ngl_lossless lossless;
    uint32_t block;
    float beta; /* 0: default */
    int ef;     /* -1: default */
    double topk;
    double mask;
    double eps;
    uint64_t count;
    unsigned steps;
    unsigned pattern;
    int override_mask;
} gen_case;

#define BETA_DEF 0.0f
#define EF_DEF   (-1)

static const gen_case cases[] = {
    /* RAW: exact copies in every dtype; counts 0 and 1; back ends. */
    {"raw_f32_n0", NGL_CODEC_RAW, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 0, 2, 0, 0},
    {"raw_f32_n1", NGL_CODEC_RAW, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 1, 2, 0, 0},
    {"raw_f32", NGL_CODEC_RAW, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF, EF_DEF,
     0, 0, 0, 37, 2, P_SPECIAL | P_TINY, 0},
    {"raw_f16", NGL_CODEC_RAW, NGL_DTYPE_F16, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF, EF_DEF,
     0, 0, 0, 21, 2, P_SPECIAL | P_EXTREME, 0},
    {"raw_bf16", NGL_CODEC_RAW, NGL_DTYPE_BF16, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 21, 2, P_SPECIAL | P_EXTREME, 0},
    {"raw_f64", NGL_CODEC_RAW, NGL_DTYPE_F64, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF, EF_DEF,
     0, 0, 0, 19, 2, P_SPECIAL | P_TINY, 0},
    {"raw_f32_zstd", NGL_CODEC_RAW, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_ZSTD, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 64, 2, P_SPARSE, 0},
    {"raw_f64_rle", NGL_CODEC_RAW, NGL_DTYPE_F64, NGL_PRED_NONE, NGL_LOSSLESS_RLE, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 40, 2, P_SPARSE, 0},

    /* INT8, dense. */
    {"int8_f32_n0", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 0, 2, 0, 0},
    {"int8_f32_n1", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_LINEAR, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 1, 3, P_SMOOTH, 0},
    {"int8_f32_none", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 37, 3, P_SPECIAL | P_TINY, 0},
    {"int8_f32_noef", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 16, BETA_DEF,
     0, 0, 0, 0, 37, 2, P_SPECIAL, 0},
    {"int8_f32_momentum", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, NGL_LOSSLESS_NONE, 16,
     0.75f, EF_DEF, 0, 0, 0, 61, 8, P_SMOOTH | P_SPECIAL, 0},
    {"int8_f32_linear", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_LINEAR, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0, 0, 0, 67, 8, P_SMOOTH | P_SPECIAL | P_OVERFLOW, 0},
    {"int8_f16_linear", NGL_CODEC_INT8, NGL_DTYPE_F16, NGL_PRED_LINEAR, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0, 0, 0, 45, 6, P_SMOOTH | P_SPECIAL | P_EXTREME, 0},
    {"int8_f16_saturate", NGL_CODEC_INT8, NGL_DTYPE_F16, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0, 0, 0, 19, 6, P_MAXBLOCK, 0},
    {"int8_bf16_saturate", NGL_CODEC_INT8, NGL_DTYPE_BF16, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0, 0, 0, 19, 6, P_MAXBLOCK, 0},
    {"int4_bf16_saturate", NGL_CODEC_INT4, NGL_DTYPE_BF16, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0, 0, 0, 19, 6, P_MAXBLOCK, 0},
    {"int8_bf16_momentum", NGL_CODEC_INT8, NGL_DTYPE_BF16, NGL_PRED_MOMENTUM, NGL_LOSSLESS_NONE, 16,
     BETA_DEF, EF_DEF, 0, 0, 0, 45, 6, P_SMOOTH | P_SPECIAL | P_EXTREME, 0},
    {"int8_f32_mask", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_LINEAR, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0, 0.25, 0, 70, 6, P_SMOOTH | P_SPECIAL, 0},
    {"int8_f32_mask_override", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, NGL_LOSSLESS_NONE,
     8, BETA_DEF, EF_DEF, 0, 0, 0, 40, 4, P_SMOOTH, 1},

    /* INT8, Top-K (bitmap and varint index formats). */
    {"int8_f32_topk_n1", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 1.0, 0, 0, 1, 2, 0, 0},
    {"int8_f32_topk_bitmap", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_LINEAR, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0.5, 0, 0, 64, 4, P_SMOOTH | P_SPECIAL, 0},
    {"int8_f32_topk_varint", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, NGL_LOSSLESS_NONE,
     32, BETA_DEF, EF_DEF, 0.03, 0, 0, 300, 4, P_SMOOTH | P_SPECIAL, 0},
    {"int8_f32_topk_mask", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, NGL_LOSSLESS_NONE, 16,
     BETA_DEF, EF_DEF, 0.1, 0.3, 0, 200, 5, P_SMOOTH | P_SPECIAL, 0},

    /* INT8, back ends. */
    {"int8_f32_rle", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_RLE, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 100, 3, P_SPARSE | P_SPECIAL, 0},
    {"int8_f32_zstd", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_LINEAR, NGL_LOSSLESS_ZSTD, 16,
     BETA_DEF, EF_DEF, 0, 0, 0, 100, 3, P_SPARSE | P_SMOOTH, 0},
    {"int8_f32_auto", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_AUTO, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 100, 2, P_SPARSE, 0},
    {"int8_f32_topk_rle", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_RLE, 8,
     BETA_DEF, EF_DEF, 0.5, 0, 0, 160, 2, P_SPARSE, 0},

    /* INT4. */
    {"int4_f32_none", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 37, 3, P_SPECIAL | P_TINY, 0},
    {"int4_f32_momentum", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, NGL_LOSSLESS_NONE, 16,
     0.5f, EF_DEF, 0, 0, 0, 61, 6, P_SMOOTH, 0},
    {"int4_f32_linear", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_LINEAR, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0, 0, 0, 51, 6, P_SMOOTH | P_SPECIAL | P_OVERFLOW, 0},
    {"int4_f16_none", NGL_CODEC_INT4, NGL_DTYPE_F16, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 0, 23, 2, P_SPECIAL | P_EXTREME, 0},
    {"int4_bf16_linear", NGL_CODEC_INT4, NGL_DTYPE_BF16, NGL_PRED_LINEAR, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0, 0, 0, 33, 4, P_SMOOTH | P_SPECIAL, 0},
    {"int4_f32_topk_bitmap", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0.6, 0, 0, 41, 3, P_SPECIAL, 0},
    {"int4_f32_topk_varint", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_LINEAR, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0.02, 0, 0, 257, 3, P_SMOOTH, 0},
    {"int4_f32_mask_rle", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_LINEAR, NGL_LOSSLESS_RLE, 8,
     BETA_DEF, EF_DEF, 0, 0.5, 0, 96, 4, P_SMOOTH | P_SPARSE, 0},

    /* EPS, f32 and f64. */
    {"eps_f32_n1", NGL_CODEC_EPS, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 1e-3, 1, 2, 0, 0},
    {"eps_f32_none", NGL_CODEC_EPS, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 1e-3, 37, 2, P_SPECIAL | P_OVERFLOW | P_TINY, 0},
    {"eps_f32_linear", NGL_CODEC_EPS, NGL_DTYPE_F32, NGL_PRED_LINEAR, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0, 0, 1e-2, 50, 6, P_SMOOTH | P_SPECIAL | P_OVERFLOW, 0},
    {"eps_f32_momentum", NGL_CODEC_EPS, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, NGL_LOSSLESS_NONE, 8,
     0.8f, EF_DEF, 0, 0, 0.05, 33, 6, P_SMOOTH, 0},
    {"eps_f32_rle", NGL_CODEC_EPS, NGL_DTYPE_F32, NGL_PRED_NONE, NGL_LOSSLESS_RLE, 16, BETA_DEF,
     EF_DEF, 0, 0, 1e-4, 80, 2, P_SPARSE, 0},
    {"eps_f64_n0", NGL_CODEC_EPS, NGL_DTYPE_F64, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 1e-6, 0, 2, 0, 0},
    {"eps_f64_none", NGL_CODEC_EPS, NGL_DTYPE_F64, NGL_PRED_NONE, NGL_LOSSLESS_NONE, 8, BETA_DEF,
     EF_DEF, 0, 0, 1e-9, 29, 2, P_SPECIAL | P_OVERFLOW | P_TINY, 0},
    {"eps_f64_linear", NGL_CODEC_EPS, NGL_DTYPE_F64, NGL_PRED_LINEAR, NGL_LOSSLESS_NONE, 8,
     BETA_DEF, EF_DEF, 0, 0, 1e-6, 40, 6, P_SMOOTH | P_SPECIAL, 0},
    {"eps_f64_zstd", NGL_CODEC_EPS, NGL_DTYPE_F64, NGL_PRED_MOMENTUM, NGL_LOSSLESS_ZSTD, 16,
     BETA_DEF, EF_DEF, 0, 0, 1e-4, 128, 3, P_SPARSE, 0},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Frames of every valid case, kept for the invalid ones. */
typedef struct frame {
    uint8_t *b;
    size_t n;
} frame;

static frame case_frames[NCASES][STEPS_MAX];
static const char *outdir;
static FILE *invalid_manifest;
static unsigned invalid_count;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void die(const char *what)
{
    fprintf(stderr, "gen_golden: %s\n", what);
    exit(1);
}

static void check(ngl_status st, const char *what)
{
    if (st != NGL_OK) {
        fprintf(stderr, "gen_golden: %s: %s\n", what, ngl_status_str(st));
        exit(1);
    }
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        die(path);
    }
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        die(path);
    }
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* splitmix64: the generator's own deterministic data source. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Uniform in [-1, 1), from (case, step, i). */
static double unit(unsigned c, unsigned step, uint64_t i)
{
    uint64_t h = mix64(mix64(((uint64_t)c << 48) ^ ((uint64_t)step << 32)) ^ i);
    return (double)(h >> 11) * 0x1p-52 - 1.0;
}

/* binary32 -> binary16 bits, round to nearest even, overflow to Inf. */
static uint16_t half_from_float(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
    }
    if (ax >= 0x477ff000u) { /* rounds to >= 65520: Inf */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (ax < 0x33000001u) { /* below half the smallest subnormal */
        return sign;
    }
    int e = (int)(ax >> 23) - 127;
    uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    int shift = e < -14 ? 13 + (-14 - e) : 13;
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1u))) {
        q++;
    }
    if (e < -14) {
        return (uint16_t)(sign | q);
    }
    return (uint16_t)(sign | (((uint32_t)(e + 15) << 10) + (q - 0x400u)));
}

/* binary32 -> bfloat16 bits, round to nearest even (finite inputs). */
static uint16_t bf16_from_float(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((x >> 16) | 0x40u);
    }
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* ------------------------------------------------------------------------ */
/* Input data                                                               */
/* ------------------------------------------------------------------------ */

static double extreme_of(ngl_dtype d)
{
    switch (d) {
    case NGL_DTYPE_F16: return 65504.0;
    case NGL_DTYPE_BF16: return 3.3895313892515355e38;
    case NGL_DTYPE_F32: return (double)FLT_MAX;
    default: return DBL_MAX;
    }
}

static double value_of(unsigned ci, const gen_case *k, unsigned step, uint64_t i)
{
    uint64_t b = i / k->block;
    double u = unit(ci, step, i);
    double v;
    if ((k->pattern & P_SMOOTH) && b % 3 != 2) {
        /* A slowly moving signal with a trend: predictable. */
        v = 2.0 * sin(0.7 * (double)i) + 0.05 * sin(0.3 * step + (double)i) +
            0.1 * step * cos((double)i) + 0.01 * u;
    } else {
        v = u * (double)(1 + b % 4);
    }
    if ((k->pattern & P_SPARSE) && (mix64(i * 31u + step) % 5u) != 0) {
        v = 0.0;
    }
    if ((k->pattern & P_TINY) && b == 1) {
        v = k->dtype == NGL_DTYPE_F64 ? u * 1e-310 : u * 1e-36;
    }
    if (k->pattern & P_EXTREME) {
        double m = extreme_of(k->dtype);
        if (i == 0) {
            v = m;
        } else if (i == 2) {
            v = -m;
        } else if (i == 4) {
            v = m * 0.99;
        }
    }
    if ((k->pattern & P_MAXBLOCK) && b == 0) {
        v = ((i & 1) ? -extreme_of(k->dtype) : extreme_of(k->dtype)) * (1.0 - 0.02 * fabs(u));
    }
    if (k->pattern & P_OVERFLOW) {
        if (k->codec == NGL_CODEC_EPS) {
            if (i == 2) {
                v = 1e30 * (step + 1); /* |q| beyond 2^30 */
            } else if (i == 3) {
                v = 65536.3 + step; /* f32 output rounding breaks eps */
            } else if (i == 5) {
                v = -1e300 * (k->dtype == NGL_DTYPE_F64); /* beyond f64 q range */
            }
        } else if (i < 4) {
            /* A steady huge block the linear predictor learns, then a sign
             * flip whose residual overflows binary32. */
            if (step < 2) {
                v = 1e38;
            } else if (step == 2) {
                v = i == 0 ? -3e38 : (i == 1 ? (double)FLT_MAX : 1e38);
            } else {
                v = (i & 1) ? (double)FLT_MAX : -(double)FLT_MAX;
            }
        }
    }
    return v;
}

/* Special bit patterns, per dtype: quiet NaN, signalling NaN, negative NaN
 * with payload, +Inf, -Inf. */
static const uint64_t specials[4][5] = {
    {0x7fc00000u, 0x7f800001u, 0xffc00abcu, 0x7f800000u, 0xff800000u},
    {0x7e00u, 0x7c01u, 0xfd01u, 0x7c00u, 0xfc00u},
    {0x7fc0u, 0x7f81u, 0xff81u, 0x7f80u, 0xff80u},
    {0x7ff8000000000000ull, 0x7ff0000000000001ull, 0xfff80000000abcdeull, 0x7ff0000000000000ull,
     0xfff0000000000000ull},
};

static void store(ngl_dtype d, uint8_t *dst, uint64_t i, double v)
{
    switch (d) {
    case NGL_DTYPE_F32: {
        float f = (float)v;
        memcpy(dst + 4 * i, &f, 4);
        break;
    }
    case NGL_DTYPE_F16: ngl_wr_u16(dst + 2 * i, half_from_float((float)v)); break;
    case NGL_DTYPE_BF16: ngl_wr_u16(dst + 2 * i, bf16_from_float((float)v)); break;
    default: memcpy(dst + 8 * i, &v, 8); break;
    }
}

static void store_bits(ngl_dtype d, uint8_t *dst, uint64_t i, uint64_t bits)
{
    size_t s = ngl_dtype_size(d);
    for (size_t j = 0; j < s; j++) {
        dst[s * i + j] = (uint8_t)(bits >> (8 * j));
    }
}

static void fill_input(unsigned ci, const gen_case *k, unsigned step, uint8_t *dst)
{
    for (uint64_t i = 0; i < k->count; i++) {
        store(k->dtype, dst, i, value_of(ci, k, step, i));
    }
    unsigned special_step = k->steps > 1 ? 1 : 0;
    if ((k->pattern & P_SPECIAL) && step == special_step && k->count >= 8) {
        const uint64_t at[5] = {1, k->count / 3, k->count / 3 + 1, k->count / 2, k->count - 1};
        for (int j = 0; j < 5; j++) {
            store_bits(k->dtype, dst, at[j], specials[k->dtype][j]);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Valid streams                                                            */
/* ------------------------------------------------------------------------ */

static void case_config(const gen_case *k, uint64_t ci, golden_case *gc)
{
    memset(gc, 0, sizeof(*gc));
    snprintf(gc->name, sizeof(gc->name), "%s", k->name);
    ngl_stream_config *c = &gc->cfg;
    ngl_stream_config_init(c);
    c->codec = k->codec;
    c->dtype = k->dtype;
    c->predictor = k->pred;
    c->lossless = k->lossless;
    c->block_size = k->block;
    if (k->beta != BETA_DEF) {
        c->momentum_beta = k->beta;
    }
    /* The documented default: error feedback for INT8/INT4 only. */
    c->error_feedback = k->codec == NGL_CODEC_INT8 || k->codec == NGL_CODEC_INT4;
    if (k->ef != EF_DEF) {
        c->error_feedback = k->ef;
    }
    c->topk_fraction = k->topk;
    c->mask_fraction = k->mask;
    c->eps = k->eps;
    c->seed = 0x6e67c0de00000000ull + ci;
    c->stream_id = 1000 + ci;
    c->count = k->count;
    gc->steps = k->steps;
    gc->override_mask = k->override_mask;
}

static void gen_valid(FILE *manifest)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/valid", outdir);
    make_dir(path);
    for (unsigned ci = 0; ci < NCASES; ci++) {
        const gen_case *k = &cases[ci];
        golden_case gc;
        case_config(k, ci, &gc);
        const char *why = NULL;
        if (ngl_stream_config_check(&gc.cfg, &why) != NGL_OK) {
            fprintf(stderr, "gen_golden: case %s: %s\n", k->name, why ? why : "?");
            exit(1);
        }
        if (k->steps > STEPS_MAX) {
            die("too many steps");
        }
        golden_case_print(manifest, &gc);
        fputc('\n', manifest);

        ngl_encoder *enc = NULL;
        ngl_decoder *dec = NULL;
        check(ngl_encoder_create(&gc.cfg, &enc), "encoder_create");
        check(ngl_decoder_create(&gc.cfg, &dec), "decoder_create");
        size_t esz = ngl_dtype_size(k->dtype);
        size_t step_bytes = (size_t)k->count * esz;
        size_t nblocks = (size_t)((k->count + k->block - 1) / k->block);
        size_t mask_bytes = (nblocks + 7) / 8;
        size_t cap = ngl_encode_bound(&gc.cfg);
        uint8_t *in = calloc(k->steps, step_bytes + 1);
        uint8_t *out = calloc(k->steps, step_bytes + 1);
        uint8_t *skip = calloc(k->steps, mask_bytes + 1);
        uint8_t *buf = malloc(cap);
        if (in == NULL || out == NULL || skip == NULL || buf == NULL) {
            die("out of memory");
        }
        snprintf(path, sizeof(path), "%s/valid/%s", outdir, k->name);
        make_dir(path);
        for (unsigned s = 0; s < k->steps; s++) {
            uint8_t *x = in + s * step_bytes;
            fill_input(ci, k, s, x);
            if (k->override_mask) {
                uint8_t *sk = skip + s * mask_bytes;
                for (size_t b = 0; b < nblocks; b++) {
                    if (mix64(b * 7u + s) % 3u == 0) {
                        sk[b / 8] = (uint8_t)(sk[b / 8] | (1u << (b % 8)));
                    }
                }
                check(ngl_encoder_set_block_mask(enc, sk), "set_block_mask");
            }
            size_t len = 0;
            check(ngl_encoder_encode(enc, x, buf, cap, &len), "encode");
            check(ngl_decoder_decode(dec, buf, len, out + s * step_bytes, 0), "decode");
            if (ngl_encoder_state_hash(enc) != ngl_decoder_state_hash(dec)) {
                die("encoder and decoder state differ");
            }
            if (len > FRAME_MAX) {
                die("frame too large for a golden file");
            }
            case_frames[ci][s].b = malloc(len);
            if (case_frames[ci][s].b == NULL) {
                die("out of memory");
            }
            memcpy(case_frames[ci][s].b, buf, len);
            case_frames[ci][s].n = len;
            snprintf(path, sizeof(path), "%s/valid/%s/frame-%03u.bin", outdir, k->name, s);
            write_file(path, buf, len);
        }
        snprintf(path, sizeof(path), "%s/valid/%s/input.bin", outdir, k->name);
        write_file(path, in, k->steps * step_bytes);
        snprintf(path, sizeof(path), "%s/valid/%s/output.bin", outdir, k->name);
        write_file(path, out, k->steps * step_bytes);
        if (k->override_mask) {
            snprintf(path, sizeof(path), "%s/valid/%s/skip.bin", outdir, k->name);
            write_file(path, skip, k->steps * mask_bytes);
        }
        free(buf);
        free(skip);
        free(out);
        free(in);
        ngl_decoder_destroy(dec);
        ngl_encoder_destroy(enc);
    }
}

/* ------------------------------------------------------------------------ */
/* Frame editing, following docs/wire-format.md                             */
/* ------------------------------------------------------------------------ */

enum { S_MASK, S_IDX, S_SCALE, S_CODE, S_EXC, S_COUNT };

#define SEC_MAX 16384u

/* A frame without back end, split into its parts. */
typedef struct parts {
    uint8_t hdr[48];
    uint32_t n_exc;
    uint32_t pred_param;
    uint8_t cpre[16];
    size_t cpre_n;
    uint8_t sec[S_COUNT][SEC_MAX];
    size_t sec_n[S_COUNT];
} parts;

typedef struct work {
    uint8_t b[FRAME_MAX];
    size_t n;
} work;

static unsigned find_case(const char *name)
{
    for (unsigned ci = 0; ci < NCASES; ci++) {
        if (!strcmp(cases[ci].name, name)) {
            return ci;
        }
    }
    fprintf(stderr, "gen_golden: no case %s\n", name);
    exit(1);
}

static void frame_crc(uint8_t *b, size_t n)
{
    uint32_t crc = ngl_crc32c(0, b, 44);
    crc = ngl_crc32c(crc, b + 48, n - 48);
    ngl_wr_u32(b + 44, crc);
}

/* Sets payload_len from the buffer length and recomputes the CRC. */
static void frame_fix(work *w)
{
    ngl_wr_u32(w->b + 40, (uint32_t)(w->n - 48));
    frame_crc(w->b, w->n);
}

static void load(work *w, const char *base, unsigned step)
{
    unsigned ci = find_case(base);
    if (step >= cases[ci].steps) {
        die("step out of range");
    }
    memcpy(w->b, case_frames[ci][step].b, case_frames[ci][step].n);
    w->n = case_frames[ci][step].n;
}

static void emit(const char *name, const char *status, const char *base, unsigned after,
                 const uint8_t *b, size_t n, const char *why)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/invalid/%s.bin", outdir, name);
    write_file(path, b, n);
    fprintf(invalid_manifest, "%-32s %-16s base=%s after=%u  # %s\n", name, status, base, after,
            why);
    invalid_count++;
}

static void emitw(const char *name, const char *status, const char *base, unsigned after,
                  const work *w, const char *why)
{
    emit(name, status, base, after, w->b, w->n, why);
}

static size_t ceil_div(uint64_t a, uint64_t b)
{
    return (size_t)((a + b - 1) / b);
}

static void split(const work *w, parts *p)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->hdr, w->b, 48);
    uint8_t codec = w->b[5], dtype = w->b[6];
    uint16_t flags = ngl_rd_u16(w->b + 8);
    uint32_t block = ngl_rd_u32(w->b + 12);
    uint64_t count = ngl_rd_u64(w->b + 32);
    if (((flags >> 3) & 3u) != 0) {
        die("split: frame has a back end");
    }
    const uint8_t *body = w->b + 48;
    size_t body_n = w->n - 48;
    size_t esz = ngl_dtype_size((ngl_dtype)dtype);
    p->n_exc = ngl_rd_u32(body);
    p->pred_param = ngl_rd_u32(body + 4);
    size_t off = 8;
    int topk = (flags >> 1) & 1, mask = (flags >> 2) & 1;
    uint32_t k = 0;
    if (topk) {
        p->cpre_n = 12;
        k = ngl_rd_u32(body + 8);
    } else if (codec == NGL_CODEC_EPS) {
        p->cpre_n = 16;
    }
    memcpy(p->cpre, body + off, p->cpre_n);
    off += p->cpre_n;
    size_t nblocks = ceil_div(count, block);
    size_t sent_blocks = nblocks;
    uint64_t ncoded = count;
    p->sec_n[S_MASK] = mask ? ceil_div(nblocks, 8) : 0;
    if (mask) {
        for (size_t b = 0; b < nblocks; b++) {
            if (body[off + b / 8] & (1u << (b % 8))) {
                sent_blocks--;
                uint64_t end =
                    (uint64_t)(b + 1) * block < count ? (uint64_t)(b + 1) * block : count;
                ncoded -= end - (uint64_t)b * block;
            }
        }
    }
    p->sec_n[S_IDX] = topk ? ngl_rd_u32(body + 12) : 0;
    if (topk) {
        ncoded = k;
    }
    if (codec == NGL_CODEC_INT8 || codec == NGL_CODEC_INT4) {
        p->sec_n[S_SCALE] = 4 * (topk ? ceil_div(k, block) : sent_blocks);
        p->sec_n[S_CODE] = codec == NGL_CODEC_INT8 ? (size_t)ncoded : ceil_div(ncoded, 2);
    } else if (codec == NGL_CODEC_EPS) {
        p->sec_n[S_CODE] = ngl_rd_u32(body + 8 + 8);
    } else {
        p->sec_n[S_CODE] = (size_t)count * esz;
    }
    p->sec_n[S_EXC] = (size_t)p->n_exc * (4 + esz);
    for (int s = 0; s < S_COUNT; s++) {
        if (p->sec_n[s] > SEC_MAX || off + p->sec_n[s] > body_n) {
            die("split: section does not fit");
        }
        memcpy(p->sec[s], body + off, p->sec_n[s]);
        off += p->sec_n[s];
    }
    if (off != body_n) {
        die("split: sections do not add up");
    }
}

static void join(const parts *p, work *w)
{
    memcpy(w->b, p->hdr, 48);
    size_t off = 48;
    ngl_wr_u32(w->b + off, p->n_exc);
    ngl_wr_u32(w->b + off + 4, p->pred_param);
    off += 8;
    memcpy(w->b + off, p->cpre, p->cpre_n);
    off += p->cpre_n;
    for (int s = 0; s < S_COUNT; s++) {
        memcpy(w->b + off, p->sec[s], p->sec_n[s]);
        off += p->sec_n[s];
    }
    w->n = off;
    frame_fix(w);
}

/* Little-endian base-128 varints. */
static size_t put_varint(uint8_t *dst, uint64_t v)
{
    size_t n = 0;
    do {
        uint8_t byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        dst[n++] = (uint8_t)(byte | (v ? 0x80 : 0));
    } while (v != 0);
    return n;
}

static size_t get_varint(const uint8_t *src, size_t n, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        x |= (uint64_t)(src[i] & 0x7f) << (7 * i);
        if (!(src[i] & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    die("get_varint: malformed");
    return 0;
}

/* Top-K indices of a split frame, and writing them back in either format. */
static size_t get_indices(const parts *p, uint64_t count, uint64_t *idx)
{
    uint32_t k = ngl_rd_u32(p->cpre);
    if (p->cpre[8] == 0) {
        size_t n = 0;
        for (uint64_t i = 0; i < count; i++) {
            if (p->sec[S_IDX][i / 8] & (1u << (i % 8))) {
                idx[n++] = i;
            }
        }
        return n;
    }
    size_t off = 0;
    for (uint32_t j = 0; j < k; j++) {
        uint64_t v;
        off += get_varint(p->sec[S_IDX] + off, p->sec_n[S_IDX] - off, &v);
        idx[j] = j == 0 ? v : idx[j - 1] + v + 1;
    }
    return k;
}

static void put_indices_varint(parts *p, const uint64_t *idx, size_t n)
{
    size_t off = 0;
    for (size_t j = 0; j < n; j++) {
        off += put_varint(p->sec[S_IDX] + off, j == 0 ? idx[0] : idx[j] - idx[j - 1] - 1);
    }
    p->sec_n[S_IDX] = off;
    ngl_wr_u32(p->cpre + 4, (uint32_t)off);
}

/* EPS codes of a split frame. */
static size_t get_eps_codes(const parts *p, uint64_t *z)
{
    size_t off = 0, n = 0;
    while (off < p->sec_n[S_CODE]) {
        off += get_varint(p->sec[S_CODE] + off, p->sec_n[S_CODE] - off, &z[n++]);
    }
    return n;
}

static void put_eps_codes(parts *p, const uint64_t *z, size_t n)
{
    size_t off = 0;
    for (size_t j = 0; j < n; j++) {
        off += put_varint(p->sec[S_CODE] + off, z[j]);
    }
    p->sec_n[S_CODE] = off;
    ngl_wr_u32(p->cpre + 8, (uint32_t)off);
}

/* Position of coded element @p elem in the code sequence of a dense frame
 * without a mask (and of an EPS frame): the element index itself. */
static uint32_t exc_index(const parts *p, size_t esz, uint32_t j)
{
    return ngl_rd_u32(p->sec[S_EXC] + j * (4 + esz));
}

static void set_exc_index(parts *p, size_t esz, uint32_t j, uint32_t v)
{
    ngl_wr_u32(p->sec[S_EXC] + j * (4 + esz), v);
}

/* ------------------------------------------------------------------------ */
/* RLE (back end 1) as the spec defines it, to build malformed streams.     */
/* ------------------------------------------------------------------------ */

static size_t rle_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    size_t in = 0, out = 0;
    while (in < n) {
        uint64_t lit, zeros;
        in += get_varint(src + in, n - in, &lit);
        if (out + lit > cap) {
            die("rle_decode: overflow");
        }
        memcpy(dst + out, src + in, (size_t)lit);
        in += (size_t)lit;
        out += (size_t)lit;
        in += get_varint(src + in, n - in, &zeros);
        if (out + zeros > cap) {
            die("rle_decode: overflow");
        }
        memset(dst + out, 0, (size_t)zeros);
        out += (size_t)zeros;
    }
    return out;
}

/* ------------------------------------------------------------------------ */
/* Invalid frames                                                           */
/* ------------------------------------------------------------------------ */

static void gen_invalid_header(void)
{
    work *w = malloc(sizeof(*w));
    if (w == NULL) {
        die("out of memory");
    }
    const char *B = "int8_f32_none";
    /* Lengths. */
    load(w, B, 0);
    emit("truncated_empty", "TRUNCATED", B, 0, w->b, 0, "empty buffer");
    emit("truncated_header", "TRUNCATED", B, 0, w->b, 47, "47 bytes, one short of a header");
    emit("truncated_payload", "TRUNCATED", B, 0, w->b, w->n - 1,
         "buffer one byte shorter than 48 + payload_len");
    emit("truncated_header_only", "TRUNCATED", B, 0, w->b, 48, "header without its payload");
    {
        w->b[w->n] = 0;
        emit("length_trailing_byte", "BAD_LENGTH", B, 0, w->b, w->n + 1,
             "buffer one byte longer than 48 + payload_len");
    }
    /* Magic, one per byte. */
    for (int i = 0; i < 4; i++) {
        char name[64];
        load(w, B, 0);
        w->b[i] ^= 0x20;
        frame_crc(w->b, w->n);
        snprintf(name, sizeof(name), "magic_byte%d", i);
        emitw(name, "BAD_MAGIC", B, 0, w, "one magic byte changed");
    }
    load(w, B, 0);
    w->b[4] = 0;
    frame_crc(w->b, w->n);
    emitw("version_0", "BAD_VERSION", B, 0, w, "version 0");
    w->b[4] = 2;
    frame_crc(w->b, w->n);
    emitw("version_2", "BAD_VERSION", B, 0, w, "version 2");
    /* Codec. */
    load(w, B, 0);
    w->b[5] = 4;
    frame_crc(w->b, w->n);
    emitw("codec_4", "BAD_CODEC", B, 0, w, "codec 4");
    w->b[5] = 0xff;
    frame_crc(w->b, w->n);
    emitw("codec_255", "BAD_CODEC", B, 0, w, "codec 255");
    /* Dtype. */
    load(w, B, 0);
    w->b[6] = 4;
    frame_crc(w->b, w->n);
    emitw("dtype_4", "BAD_DTYPE", B, 0, w, "dtype 4");
    w->b[6] = NGL_DTYPE_F64;
    frame_crc(w->b, w->n);
    emitw("dtype_f64_int8", "BAD_DTYPE", B, 0, w, "f64 with INT8");
    load(w, "int4_f32_none", 0);
    w->b[6] = NGL_DTYPE_F64;
    frame_crc(w->b, w->n);
    emitw("dtype_f64_int4", "BAD_DTYPE", "int4_f32_none", 0, w, "f64 with INT4");
    load(w, "eps_f32_none", 0);
    w->b[6] = NGL_DTYPE_F16;
    frame_crc(w->b, w->n);
    emitw("dtype_f16_eps", "BAD_DTYPE", "eps_f32_none", 0, w, "EPS with f16");
    w->b[6] = NGL_DTYPE_BF16;
    frame_crc(w->b, w->n);
    emitw("dtype_bf16_eps", "BAD_DTYPE", "eps_f32_none", 0, w, "EPS with bf16");
    /* Predictor. */
    load(w, B, 0);
    w->b[7] = 3;
    frame_crc(w->b, w->n);
    emitw("predictor_3", "BAD_PREDICTOR", B, 0, w, "predictor 3");
    load(w, "raw_f32", 0);
    w->b[7] = NGL_PRED_LINEAR;
    frame_crc(w->b, w->n);
    emitw("predictor_raw_linear", "BAD_PREDICTOR", "raw_f32", 0, w, "RAW with a predictor");
    /* Flags and reserved. */
    static const struct {
        const char *name;
        const char *base;
        unsigned byte;
        uint8_t xor_mask;
        const char *why;
    } flag_cases[] = {
        {"flags_bit5", "int8_f32_none", 8, 0x20, "reserved flag bit 5"},
        {"flags_bit7", "int8_f32_none", 8, 0x80, "reserved flag bit 7"},
        {"flags_bit15", "int8_f32_none", 9, 0x80, "reserved flag bit 15"},
        {"flags_backend3", "int8_f32_none", 8, 0x18, "back end 3"},
        {"reserved_byte10", "int8_f32_none", 10, 0x01, "reserved field byte 10"},
        {"reserved_byte11", "int8_f32_none", 11, 0x80, "reserved field byte 11"},
        {"flags_raw_topk", "raw_f32", 8, 0x02, "RAW with TOPK"},
        {"flags_raw_mask", "raw_f32", 8, 0x04, "RAW with MASK"},
        {"flags_eps_topk", "eps_f32_none", 8, 0x02, "EPS with TOPK"},
        {"flags_eps_mask", "eps_f32_none", 8, 0x04, "EPS with MASK"},
    };
    for (size_t i = 0; i < GOLDEN_COUNT_OF(flag_cases); i++) {
        load(w, flag_cases[i].base, 0);
        w->b[flag_cases[i].byte] ^= flag_cases[i].xor_mask;
        frame_crc(w->b, w->n);
        emitw(flag_cases[i].name, "BAD_FLAGS", flag_cases[i].base, 0, w, flag_cases[i].why);
    }
    /* Block size. */
    static const uint32_t bad_blocks[] = {0, 4, 12, 65544, 0x80000000u};
    for (size_t i = 0; i < GOLDEN_COUNT_OF(bad_blocks); i++) {
        char name[64], why[64];
        load(w, B, 0);
        ngl_wr_u32(w->b + 12, bad_blocks[i]);
        frame_crc(w->b, w->n);
        snprintf(name, sizeof(name), "block_%u", bad_blocks[i]);
        snprintf(why, sizeof(why), "block size %u", bad_blocks[i]);
        emitw(name, "BAD_BLOCK_SIZE", B, 0, w, why);
    }
    /* Count. */
    load(w, B, 0);
    ngl_wr_u64(w->b + 32, ((uint64_t)1 << 28) + 1);
    frame_crc(w->b, w->n);
    emitw("count_too_large", "BAD_LENGTH", B, 0, w, "count 2^28 + 1");
    ngl_wr_u64(w->b + 32, UINT64_MAX);
    frame_crc(w->b, w->n);
    emitw("count_max_u64", "BAD_LENGTH", B, 0, w, "count 2^64 - 1");
    /* CRC. */
    load(w, B, 0);
    w->b[44] ^= 1;
    emitw("crc_field", "CRC_MISMATCH", B, 0, w, "CRC field bit flipped");
    load(w, B, 0);
    w->b[w->n - 1] ^= 0x10;
    emitw("crc_payload", "CRC_MISMATCH", B, 0, w, "last payload byte changed");
    load(w, B, 0);
    w->b[16] ^= 1;
    emitw("crc_header", "CRC_MISMATCH", B, 0, w, "stream id changed, CRC not updated");

    /* Stream checks: header and CRC valid, frame does not fit the decoder. */
    load(w, B, 0);
    ngl_wr_u64(w->b + 32, ngl_rd_u64(w->b + 32) + 1);
    frame_crc(w->b, w->n);
    emitw("stream_count", "COUNT_MISMATCH", B, 0, w, "count + 1");
    load(w, B, 0);
    w->b[5] = NGL_CODEC_INT4;
    frame_crc(w->b, w->n);
    emitw("stream_codec", "CONFIG_MISMATCH", B, 0, w, "INT4 frame to an INT8 decoder");
    load(w, B, 0);
    w->b[6] = NGL_DTYPE_BF16;
    frame_crc(w->b, w->n);
    emitw("stream_dtype", "CONFIG_MISMATCH", B, 0, w, "bf16 frame to an f32 decoder");
    load(w, B, 0);
    w->b[7] = NGL_PRED_LINEAR;
    frame_crc(w->b, w->n);
    emitw("stream_predictor", "CONFIG_MISMATCH", B, 0, w, "linear frame to a none decoder");
    load(w, B, 0);
    ngl_wr_u32(w->b + 12, 16);
    frame_crc(w->b, w->n);
    emitw("stream_block", "CONFIG_MISMATCH", B, 0, w, "block 16 frame to a block 8 decoder");
    load(w, B, 0);
    ngl_wr_u64(w->b + 16, ngl_rd_u64(w->b + 16) ^ ((uint64_t)1 << 63));
    frame_crc(w->b, w->n);
    emitw("stream_id", "STREAM_MISMATCH", B, 0, w, "another stream id");
    load(w, B, 1);
    emitw("step_ahead", "STEP_MISMATCH", B, 0, w, "step 1 to a decoder at step 0");
    load(w, B, 0);
    emitw("step_replay", "STEP_MISMATCH", B, 1, w, "step 0 again to a decoder at step 1");
    load(w, B, 2);
    ngl_wr_u64(w->b + 24, UINT64_MAX);
    frame_crc(w->b, w->n);
    emitw("step_max", "STEP_MISMATCH", B, 2, w, "step 2^64 - 1 to a decoder at step 2");
    free(w);
}

/* The body of step @p step of case @p ci without its back end: the same
 * stream encoded again with lossless "none" (the back end only wraps it). */
static size_t body_of(unsigned ci, unsigned step, uint8_t *dst)
{
    const gen_case *k = &cases[ci];
    golden_case gc;
    case_config(k, ci, &gc);
    gc.cfg.lossless = NGL_LOSSLESS_NONE;
    ngl_encoder *enc = NULL;
    check(ngl_encoder_create(&gc.cfg, &enc), "encoder_create");
    size_t cap = ngl_encode_bound(&gc.cfg);
    uint8_t *x = malloc((size_t)k->count * ngl_dtype_size(k->dtype) + 1);
    uint8_t *buf = malloc(cap);
    if (x == NULL || buf == NULL || k->override_mask) {
        die("body_of");
    }
    size_t len = 0;
    for (unsigned s = 0; s <= step; s++) {
        fill_input(ci, k, s, x);
        check(ngl_encoder_encode(enc, x, buf, cap, &len), "encode");
    }
    memcpy(dst, buf + 48, len - 48);
    free(buf);
    free(x);
    ngl_encoder_destroy(enc);
    return len - 48;
}

static void gen_invalid_backend(void)
{
    work *w = malloc(sizeof(*w));
    uint8_t *body = malloc(FRAME_MAX), *rle = malloc(FRAME_MAX);
    if (w == NULL || body == NULL || rle == NULL) {
        die("out of memory");
    }
    /* RLE: decode the encoder's stream, then build malformed ones by hand. */
    const char *R = "int8_f32_rle";
    load(w, R, 1);
    if (((ngl_rd_u16(w->b + 8) >> 3) & 3u) != 1) {
        die("int8_f32_rle step 1 does not use RLE");
    }
    uint32_t body_len = ngl_rd_u32(w->b + 48);
    size_t got = rle_decode(w->b + 52, w->n - 52, body, FRAME_MAX);
    if (got != body_len || body_len < 8) {
        die("rle base does not decode");
    }
    /* Builds payload = body_len || pre || literal(body) || post. */
#define RLE_BUILD(declared_len, pre, npre, lit_n, post, npost)                                     \
    do {                                                                                           \
        size_t o_ = 52;                                                                            \
        ngl_wr_u32(w->b + 48, (uint32_t)(declared_len));                                           \
        memcpy(w->b + o_, (pre), (npre));                                                          \
        o_ += (npre);                                                                              \
        o_ += put_varint(w->b + o_, (lit_n));                                                      \
        memcpy(w->b + o_, body, (lit_n));                                                          \
        o_ += (lit_n);                                                                             \
        memcpy(w->b + o_, (post), (npost));                                                        \
        o_ += (npost);                                                                             \
        w->n = o_;                                                                                 \
        frame_fix(w);                                                                              \
    } while (0)
    static const uint8_t z0[] = {0x00};
    static const uint8_t z1[] = {0x01};
    static const uint8_t pair00[] = {0x00, 0x00};
    static const uint8_t z_noncanon[] = {0x80, 0x00};
    static const uint8_t z_2p32[] = {0x80, 0x80, 0x80, 0x80, 0x10};
    static const uint8_t z_trunc[] = {0x80};
    RLE_BUILD(body_len, z0, 0, body_len, z0, 1);
    emitw("rle_all_literal", "OK", R, 1, w, "valid: the whole body as one literal run");
    RLE_BUILD(body_len, z0, 0, body_len, z0, 0);
    emitw("rle_missing_zero_run", "BAD_BACKEND", R, 1, w, "last pair has no zero-run varint");
    RLE_BUILD(body_len, z0, 0, body_len, z_noncanon, 2);
    emitw("rle_noncanonical", "BAD_BACKEND", R, 1, w, "zero run 0 as a two-byte varint");
    RLE_BUILD(body_len, pair00, 2, body_len, z0, 1);
    emitw("rle_empty_pair", "BAD_BACKEND", R, 1, w, "a pair with L = 0 and Z = 0 before the last");
    RLE_BUILD(body_len, z0, 0, body_len, z_2p32, 5);
    emitw("rle_varint_2p32", "BAD_BACKEND", R, 1, w, "zero run of 2^32");
    RLE_BUILD(body_len, z0, 0, body_len, z_trunc, 1);
    emitw("rle_varint_truncated", "BAD_BACKEND", R, 1, w, "input ends inside a varint");
    static const uint8_t z0_pair00[] = {0x00, 0x00, 0x00};
    RLE_BUILD(body_len, z0, 0, body_len, z0_pair00, 3);
    emitw("rle_last_pair_empty", "BAD_BACKEND", R, 1, w, "a last pair with L = 0 and Z = 0");
    RLE_BUILD(body_len, z0, 0, body_len, z1, 1);
    emitw("rle_too_long", "BAD_BACKEND", R, 1, w, "decodes to body_len + 1 bytes");
    RLE_BUILD(body_len, z0, 0, body_len - 1, z0, 1);
    emitw("rle_too_short", "BAD_BACKEND", R, 1, w, "decodes to body_len - 1 bytes");
    RLE_BUILD(body_len + 1, z0, 0, body_len, z0, 1);
    emitw("rle_body_len_large", "BAD_BACKEND", R, 1, w, "body_len one more than the data");
    {
        /* a pair without zeros before the last: (1, 0) (body_len - 1, 0) */
        size_t o = 52;
        ngl_wr_u32(w->b + 48, body_len);
        o += put_varint(w->b + o, 1);
        w->b[o++] = body[0];
        o += put_varint(w->b + o, 0);
        o += put_varint(w->b + o, body_len - 1);
        memcpy(w->b + o, body + 1, body_len - 1);
        o += body_len - 1;
        o += put_varint(w->b + o, 0);
        w->n = o;
        frame_fix(w);
        emitw("rle_zero_run_0_mid", "BAD_BACKEND", R, 1, w, "Z = 0 in a pair before the last");
    }
    {
        /* literal length runs past the end of the input */
        size_t o = 52;
        ngl_wr_u32(w->b + 48, body_len);
        o += put_varint(w->b + o, body_len + 8);
        memcpy(w->b + o, body, body_len);
        o += body_len;
        w->n = o;
        frame_fix(w);
        emitw("rle_literal_overrun", "BAD_BACKEND", R, 1, w, "literal run longer than the input");
    }
    load(w, R, 1);
    w->n = 51;
    frame_fix(w);
    emitw("backend_no_body_len", "BAD_BACKEND", R, 1, w, "payload shorter than u32 body_len");
    w->n = 52;
    ngl_wr_u32(w->b + 48, 0);
    frame_fix(w);
    emitw("rle_body_len_zero", "BAD_BACKEND", R, 1, w, "body_len 0 and no RLE pairs");
#undef RLE_BUILD

    /* zstd */
    const char *Z = "int8_f32_zstd";
    unsigned zstep = 2;
    load(w, Z, zstep);
    if (((ngl_rd_u16(w->b + 8) >> 3) & 3u) != 2) {
        die("int8_f32_zstd step 2 does not use zstd");
    }
    ngl_wr_u32(w->b + 48, ngl_rd_u32(w->b + 48) + 1);
    frame_crc(w->b, w->n);
    emitw("zstd_body_len_large", "BAD_BACKEND", Z, zstep, w,
          "zstd data one byte short of body_len");
    load(w, Z, zstep);
    ngl_wr_u32(w->b + 48, ngl_rd_u32(w->b + 48) - 1);
    frame_crc(w->b, w->n);
    emitw("zstd_body_len_small", "BAD_BACKEND", Z, zstep, w, "zstd data one byte over body_len");
    load(w, Z, zstep);
    w->b[52] ^= 0xff;
    frame_crc(w->b, w->n);
    emitw("zstd_magic", "BAD_BACKEND", Z, zstep, w, "zstd frame magic broken");
    load(w, Z, zstep);
    w->b[w->n] = 0;
    w->n++;
    frame_fix(w);
    emitw("zstd_trailing", "BAD_BACKEND", Z, zstep, w, "a byte after the zstd frame");
    load(w, Z, zstep);
    w->n -= 1;
    frame_fix(w);
    emitw("zstd_truncated", "BAD_BACKEND", Z, zstep, w, "zstd frame missing its last byte");
    /* Hand-made zstd frames around the same body (RFC 8878): one raw block,
     * with and without a declared content size. */
    size_t zbody_len = body_of(find_case(Z), zstep, body);
    for (int with_size = 1; with_size >= 0; with_size--) {
        load(w, Z, zstep);
        size_t o = 48;
        ngl_wr_u32(w->b + o, (uint32_t)zbody_len);
        o += 4;
        static const uint8_t zmagic[] = {0x28, 0xb5, 0x2f, 0xfd};
        memcpy(w->b + o, zmagic, 4);
        o += 4;
        if (!with_size) {
            w->b[o++] = 0x00; /* no content size, not single segment */
            w->b[o++] = 0x00; /* window descriptor: 1 KiB */
        } else if (zbody_len < 256) {
            w->b[o++] = 0x20; /* single segment, 1-byte content size */
            w->b[o++] = (uint8_t)zbody_len;
        } else {
            w->b[o++] = 0x60; /* single segment, 2-byte content size - 256 */
            ngl_wr_u16(w->b + o, (uint16_t)(zbody_len - 256));
            o += 2;
        }
        uint32_t bh = ((uint32_t)zbody_len << 3) | 1u; /* raw block, last */
        w->b[o++] = (uint8_t)bh;
        w->b[o++] = (uint8_t)(bh >> 8);
        w->b[o++] = (uint8_t)(bh >> 16);
        memcpy(w->b + o, body, zbody_len);
        o += zbody_len;
        w->n = o;
        frame_fix(w);
        if (with_size) {
            emitw("zstd_raw_block", "OK", Z, zstep, w, "valid: one raw block declaring its size");
        } else {
            emitw("zstd_no_content_size", "BAD_BACKEND", Z, zstep, w,
                  "a raw block, no content size in the frame header");
        }
    }
    free(rle);
    free(body);
    free(w);
}

static void gen_invalid_body(void)
{
    work *w = malloc(sizeof(*w));
    parts *p = malloc(sizeof(*p)), *p0 = malloc(sizeof(*p0));
    uint64_t *idx = malloc(sizeof(uint64_t) * 4096), *z = malloc(sizeof(uint64_t) * 4096);
    if (w == NULL || p == NULL || p0 == NULL || idx == NULL || z == NULL) {
        die("out of memory");
    }

    /* --- sections: INT8 dense with a mask and exceptions (step 1) --- */
    const char *M = "int8_f32_mask";
    load(w, M, 1);
    split(w, p0);
    if (p0->n_exc < 3 || p0->sec_n[S_MASK] != 2) {
        die("int8_f32_mask step 1: expected exceptions and a 2-byte mask");
    }
    /* Section sums. */
    *p = *p0;
    join(p, w);
    w->b[w->n++] = 0;
    frame_fix(w);
    emitw("section_body_long", "BAD_SECTION", M, 1, w, "one byte after the last section");
    join(p, w);
    w->n--;
    frame_fix(w);
    emitw("section_body_short", "BAD_SECTION", M, 1, w, "last exception one byte short");
    *p = *p0;
    p->n_exc++;
    join(p, w);
    emitw("section_n_exc_plus1", "BAD_SECTION", M, 1, w, "n_exc one more than present");
    p->n_exc = UINT32_MAX;
    join(p, w);
    emitw("section_n_exc_max", "BAD_SECTION", M, 1, w, "n_exc 2^32 - 1");
    join(p0, w);
    w->n = 48 + 7;
    frame_fix(w);
    emitw("section_no_preamble", "BAD_SECTION", M, 1, w, "body of 7 bytes");
    w->n = 48;
    frame_fix(w);
    emitw("section_empty_body", "BAD_SECTION", M, 1, w, "payload_len 0");
    join(p0, w);
    w->n = 48 + 8;
    frame_fix(w);
    emitw("section_mask_missing", "BAD_SECTION", M, 1, w, "body ends after the common preamble");
    /* Mask. */
    *p = *p0;
    p->sec[S_MASK][1] |= 0x80;
    join(p, w);
    emitw("mask_bit_15", "BAD_MASK", M, 1, w, "mask bit 15 set, 9 blocks");
    *p = *p0;
    p->sec[S_MASK][1] |= 0x02;
    join(p, w);
    emitw("mask_bit_9", "BAD_MASK", M, 1, w, "mask bit 9 set, 9 blocks");
    /* Exceptions. */
    size_t esz = 4;
    *p = *p0;
    {
        uint32_t a = exc_index(p, esz, 0), b = exc_index(p, esz, 1);
        uint8_t tmp[8];
        memcpy(tmp, p->sec[S_EXC], 8);
        memcpy(p->sec[S_EXC], p->sec[S_EXC] + 8, 8);
        memcpy(p->sec[S_EXC] + 8, tmp, 8);
        if (exc_index(p, esz, 0) != b || exc_index(p, esz, 1) != a) {
            die("exception swap");
        }
    }
    join(p, w);
    emitw("exception_decreasing", "BAD_EXCEPTION", M, 1, w, "first two entries swapped");
    *p = *p0;
    set_exc_index(p, esz, 1, exc_index(p, esz, 0));
    join(p, w);
    emitw("exception_duplicate", "BAD_EXCEPTION", M, 1, w, "second index equals the first");
    *p = *p0;
    set_exc_index(p, esz, p->n_exc - 1, 70);
    join(p, w);
    emitw("exception_index_count", "BAD_EXCEPTION", M, 1, w, "last index equals count");
    *p = *p0;
    set_exc_index(p, esz, p->n_exc - 1, UINT32_MAX);
    join(p, w);
    emitw("exception_index_max", "BAD_EXCEPTION", M, 1, w, "last index 2^32 - 1");
    /* Scales. */
    static const struct {
        const char *name;
        uint32_t bits;
        const char *why;
    } bad_scales[] = {
        {"scale_negative", 0xbf800000u, "a scale of -1.0"},
        {"scale_negative_zero", 0x80000000u, "a scale of -0.0"},
        {"scale_nan", 0x7fc00000u, "a NaN scale"},
        {"scale_inf", 0x7f800000u, "a +Inf scale"},
    };
    for (size_t i = 0; i < GOLDEN_COUNT_OF(bad_scales); i++) {
        *p = *p0;
        ngl_wr_u32(p->sec[S_SCALE] + 4, bad_scales[i].bits);
        join(p, w);
        emitw(bad_scales[i].name, "BAD_SCALE", M, 1, w, bad_scales[i].why);
    }
    /* INT8 codes: a dense frame without mask, so that code j is element j. */
    const char *N8 = "int8_f32_none";
    load(w, N8, 1);
    split(w, p0);
    if (p0->n_exc < 3) {
        die("int8_f32_none step 1: expected exceptions");
    }
    *p = *p0;
    {
        uint32_t e0 = exc_index(p, esz, 0);
        uint32_t j = e0 == 0 ? 2 : 0;
        p->sec[S_CODE][j] = 0x80;
        join(p, w);
        emitw("code_int8_m128", "BAD_CODE", N8, 1, w, "INT8 code -128");
        *p = *p0;
        p->sec[S_CODE][e0] = 1;
        join(p, w);
        emitw("code_int8_exception", "BAD_CODE", N8, 1, w, "nonzero code at an exception");
    }
    /* INT4 codes (37 elements: the last byte has a padding nibble). */
    const char *N4 = "int4_f32_none";
    load(w, N4, 0);
    split(w, p0);
    *p = *p0;
    p->sec[S_CODE][5] = (uint8_t)((p->sec[S_CODE][5] & 0xf0) | 0x08);
    join(p, w);
    emitw("code_int4_low_m8", "BAD_CODE", N4, 0, w, "INT4 low nibble -8");
    *p = *p0;
    p->sec[S_CODE][6] = (uint8_t)((p->sec[S_CODE][6] & 0x0f) | 0x80);
    join(p, w);
    emitw("code_int4_high_m8", "BAD_CODE", N4, 0, w, "INT4 high nibble -8");
    *p = *p0;
    p->sec[S_CODE][18] = (uint8_t)((p->sec[S_CODE][18] & 0x0f) | 0x10);
    join(p, w);
    emitw("code_int4_padding", "BAD_CODE", N4, 0, w, "odd count, padding nibble 1");
    load(w, N4, 1);
    split(w, p0);
    *p = *p0;
    {
        uint32_t e0 = exc_index(p, esz, 0);
        uint8_t *byte = &p->sec[S_CODE][e0 / 2];
        *byte = (uint8_t)(*byte | (e0 % 2 ? 0x10 : 0x01));
        join(p, w);
        emitw("code_int4_exception", "BAD_CODE", N4, 1, w, "nonzero code at an exception");
    }

    /* --- Top-K, bitmap --- */
    const char *TB = "int4_f32_topk_bitmap"; /* count 41: 7 spare bits */
    load(w, TB, 0);
    split(w, p0);
    if (p0->cpre[8] != 0 || p0->sec_n[S_IDX] != 6) {
        die("int4_f32_topk_bitmap: expected a 6-byte bitmap");
    }
    size_t k = get_indices(p0, 41, idx);
    *p = *p0;
    p->sec[S_IDX][idx[0] / 8] &= (uint8_t) ~(1u << (idx[0] % 8));
    p->sec[S_IDX][5] |= 0x80;
    join(p, w);
    emitw("index_bitmap_spare_bit", "BAD_INDEX", TB, 0, w, "bit 47 set, count 41 (k bits set)");
    *p = *p0;
    p->sec[S_IDX][idx[0] / 8] &= (uint8_t) ~(1u << (idx[0] % 8));
    join(p, w);
    emitw("index_bitmap_k_minus1", "BAD_INDEX", TB, 0, w, "k - 1 bits set");
    *p = *p0;
    {
        uint64_t free_i = 0;
        for (uint64_t i = 0, j = 0; i < 41; i++) {
            if (j < k && idx[j] == i) {
                j++;
            } else {
                free_i = i;
                break;
            }
        }
        p->sec[S_IDX][free_i / 8] |= (uint8_t)(1u << (free_i % 8));
    }
    join(p, w);
    emitw("index_bitmap_k_plus1", "BAD_INDEX", TB, 0, w, "k + 1 bits set");
    *p = *p0;
    p->sec[S_IDX][6] = 0;
    p->sec_n[S_IDX] = 7;
    ngl_wr_u32(p->cpre + 4, 7);
    join(p, w);
    emitw("index_bitmap_long", "BAD_INDEX", TB, 0, w, "bitmap of 7 bytes for 41 elements");
    *p = *p0;
    p->cpre[8] = 2;
    join(p, w);
    emitw("index_format_2", "BAD_INDEX", TB, 0, w, "index format 2");
    *p = *p0;
    p->cpre[9] = 1;
    join(p, w);
    emitw("topk_pad_byte", "BAD_FLAGS", TB, 0, w, "Top-K preamble padding byte nonzero");
    *p = *p0;
    ngl_wr_u32(p->sec[S_SCALE], 0xbf800000u);
    join(p, w);
    emitw("scale_topk_negative", "BAD_SCALE", TB, 0, w, "Top-K group scale -1.0");
    *p = *p0;
    ngl_wr_u32(p->cpre, UINT32_MAX);
    join(p, w);
    emitw("topk_k_max", "BAD_INDEX", TB, 0, w, "k = 2^32 - 1");
    *p = *p0;
    ngl_wr_u32(p->cpre + 4, 7);
    join(p, w);
    emitw("topk_index_bytes_sum", "BAD_SECTION", TB, 0, w, "index_bytes + 1, body unchanged");

    /* --- Top-K, varint gaps --- */
    const char *TV = "int8_f32_topk_varint"; /* count 300 */
    load(w, TV, 1);
    split(w, p0);
    if (p0->cpre[8] != 1) {
        die("int8_f32_topk_varint: expected varint indices");
    }
    k = get_indices(p0, 300, idx);
    *p = *p0;
    {
        uint64_t save = idx[k - 1];
        idx[k - 1] = 300;
        put_indices_varint(p, idx, k);
        idx[k - 1] = save;
    }
    join(p, w);
    emitw("index_varint_count", "BAD_INDEX", TV, 1, w, "last index equals count");
    *p = *p0;
    {
        uint64_t save = idx[k - 1];
        idx[k - 1] = idx[k - 2] + 1 + ((uint64_t)1 << 32);
        put_indices_varint(p, idx, k);
        idx[k - 1] = save;
    }
    join(p, w);
    emitw("index_varint_2p32", "BAD_INDEX", TV, 1, w, "a gap varint of 2^32");
    *p = *p0;
    p->sec[S_IDX][p->sec_n[S_IDX]] = 0;
    p->sec_n[S_IDX]++;
    ngl_wr_u32(p->cpre + 4, (uint32_t)p->sec_n[S_IDX]);
    join(p, w);
    emitw("index_varint_leftover", "BAD_INDEX", TV, 1, w, "a byte left after k varints");
    *p = *p0;
    p->sec_n[S_IDX]--;
    ngl_wr_u32(p->cpre + 4, (uint32_t)p->sec_n[S_IDX]);
    join(p, w);
    emitw("index_varint_short", "BAD_INDEX", TV, 1, w, "index_bytes ends inside the k-th varint");
    *p = *p0;
    {
        /* the first varint with a redundant continuation group */
        uint8_t tmp[SEC_MAX];
        uint64_t v;
        size_t n0 = get_varint(p->sec[S_IDX], p->sec_n[S_IDX], &v);
        size_t o = 0;
        o += put_varint(tmp, v);
        tmp[o - 1] |= 0x80;
        tmp[o++] = 0;
        memcpy(tmp + o, p->sec[S_IDX] + n0, p->sec_n[S_IDX] - n0);
        o += p->sec_n[S_IDX] - n0;
        memcpy(p->sec[S_IDX], tmp, o);
        p->sec_n[S_IDX] = o;
        ngl_wr_u32(p->cpre + 4, (uint32_t)o);
    }
    join(p, w);
    emitw("index_varint_noncanonical", "BAD_INDEX", TV, 1, w, "first varint not canonical");

    /* --- Top-K with a mask: a selected element inside a skipped block --- */
    const char *TM = "int8_f32_topk_mask"; /* count 200, block 16 */
    load(w, TM, 1);
    split(w, p0);
    k = get_indices(p0, 200, idx);
    {
        uint64_t e = UINT64_MAX;
        for (size_t b = 0; b < 13 && e == UINT64_MAX; b++) {
            if (p0->sec[S_MASK][b / 8] & (1u << (b % 8))) {
                e = (uint64_t)b * 16;
            }
        }
        if (e == UINT64_MAX || k < 2) {
            die("int8_f32_topk_mask step 1: expected skipped blocks and k >= 2");
        }
        /* replace the first selected index by e, keeping the list sorted */
        idx[0] = e;
        for (size_t j = 0; j + 1 < k && idx[j] > idx[j + 1]; j++) {
            uint64_t t = idx[j];
            idx[j] = idx[j + 1];
            idx[j + 1] = t;
        }
        *p = *p0;
        if (p->cpre[8] == 1) {
            put_indices_varint(p, idx, k);
        } else {
            memset(p->sec[S_IDX], 0, p->sec_n[S_IDX]);
            for (size_t j = 0; j < k; j++) {
                p->sec[S_IDX][idx[j] / 8] |= (uint8_t)(1u << (idx[j] % 8));
            }
        }
        join(p, w);
        emitw("index_in_skipped_block", "BAD_INDEX", TM, 1, w,
              "a selected element inside a skipped block");
    }

    /* --- Top-K with k above count --- */
    const char *T1 = "int8_f32_topk_n1"; /* count 1, k 1 */
    load(w, T1, 1);
    split(w, p0);
    *p = *p0;
    ngl_wr_u32(p->cpre, 2);
    p->sec[S_CODE][1] = 0;
    p->sec_n[S_CODE] = 2;
    if (p->cpre[8] == 0) {
        p->sec[S_IDX][0] = 0x03;
    } else {
        p->sec[S_IDX][0] = 0;
        p->sec[S_IDX][1] = 0;
        p->sec_n[S_IDX] = 2;
        ngl_wr_u32(p->cpre + 4, 2);
    }
    join(p, w);
    emitw("index_k_above_count", "BAD_INDEX", T1, 1, w, "k = 2 with count 1");

    /* --- EPS codes and preamble (37 elements, exceptions at step 1) --- */
    const char *E = "eps_f32_none";
    load(w, E, 1);
    split(w, p0);
    size_t nz = get_eps_codes(p0, z);
    if (nz != 37 || p0->n_exc < 3) {
        die("eps_f32_none step 1: expected 37 codes and exceptions");
    }
    uint32_t e0 = exc_index(p0, 4, 0);
    uint32_t plain = e0 == 0 ? 1 : 0; /* not an exception */
    static const struct {
        const char *name;
        uint64_t z;
        const char *why;
    } bad_z[] = {
        {"code_eps_q_2p30_plus1", ((uint64_t)1 << 31) + 2, "q = 2^30 + 1"},
        {"code_eps_q_minus_2p30_minus1", ((uint64_t)1 << 31) + 1, "q = -2^30 - 1"},
        {"code_eps_varint_2p32", (uint64_t)1 << 32, "a varint of 2^32"},
    };
    for (size_t i = 0; i < GOLDEN_COUNT_OF(bad_z); i++) {
        *p = *p0;
        uint64_t save = z[plain];
        z[plain] = bad_z[i].z;
        put_eps_codes(p, z, nz);
        z[plain] = save;
        join(p, w);
        emitw(bad_z[i].name, "BAD_CODE", E, 1, w, bad_z[i].why);
    }
    *p = *p0;
    put_eps_codes(p, z, nz);
    {
        /* first varint with a redundant zero group */
        uint8_t tmp[SEC_MAX];
        size_t o = put_varint(tmp, z[0]);
        tmp[o - 1] |= 0x80;
        tmp[o++] = 0;
        size_t n0 = put_varint(p->sec[S_CODE] + SEC_MAX / 2, z[0]);
        memcpy(tmp + o, p->sec[S_CODE] + n0, p->sec_n[S_CODE] - n0);
        o += p->sec_n[S_CODE] - n0;
        memcpy(p->sec[S_CODE], tmp, o);
        p->sec_n[S_CODE] = o;
        ngl_wr_u32(p->cpre + 8, (uint32_t)o);
    }
    join(p, w);
    emitw("code_eps_noncanonical", "BAD_CODE", E, 1, w, "first varint not canonical");
    *p = *p0;
    z[nz] = 0;
    put_eps_codes(p, z, nz + 1);
    join(p, w);
    emitw("code_eps_extra", "BAD_CODE", E, 1, w, "count + 1 varints");
    *p = *p0;
    put_eps_codes(p, z, nz - 1);
    join(p, w);
    emitw("code_eps_missing", "BAD_CODE", E, 1, w, "count - 1 varints");
    *p = *p0;
    p->sec[S_CODE][p->sec_n[S_CODE]++] = 0x80;
    ngl_wr_u32(p->cpre + 8, (uint32_t)p->sec_n[S_CODE]);
    join(p, w);
    emitw("code_eps_truncated", "BAD_CODE", E, 1, w, "code bytes end inside a varint");
    *p = *p0;
    {
        uint64_t save = z[e0];
        z[e0] = 2;
        put_eps_codes(p, z, nz);
        z[e0] = save;
    }
    join(p, w);
    emitw("code_eps_exception", "BAD_CODE", E, 1, w, "nonzero code at an exception");
    *p = *p0;
    ngl_wr_u32(p->cpre + 8, (uint32_t)p->sec_n[S_CODE] + 1);
    join(p, w);
    emitw("eps_code_bytes_sum", "BAD_SECTION", E, 1, w, "code_bytes + 1, body unchanged");
    *p = *p0;
    ngl_wr_u32(p->cpre + 8, UINT32_MAX);
    join(p, w);
    emitw("eps_code_bytes_max", "BAD_SECTION", E, 1, w, "code_bytes 2^32 - 1");
    static const struct {
        const char *name;
        uint64_t bits;
        const char *why;
    } bad_eps[] = {
        {"eps_zero", 0, "eps = +0"},
        {"eps_negative_zero", 0x8000000000000000ull, "eps = -0"},
        {"eps_negative", 0xbf50624dd2f1a9fcull, "eps = -1e-3"},
        {"eps_inf", 0x7ff0000000000000ull, "eps = +Inf"},
        {"eps_nan", 0x7ff8000000000000ull, "eps = NaN"},
    };
    for (size_t i = 0; i < GOLDEN_COUNT_OF(bad_eps); i++) {
        *p = *p0;
        ngl_wr_u64(p->cpre, bad_eps[i].bits);
        join(p, w);
        emitw(bad_eps[i].name, "BAD_SCALE", E, 1, w, bad_eps[i].why);
    }
    *p = *p0;
    ngl_wr_u32(p->cpre + 12, 1);
    join(p, w);
    emitw("eps_reserved", "BAD_FLAGS", E, 1, w, "EPS preamble reserved u32 nonzero");
    *p = *p0;
    ngl_wr_u64(p->cpre, 0x3f60624dd2f1a9fcull); /* 2e-3 */
    join(p, w);
    emitw("eps_other", "CONFIG_MISMATCH", E, 1, w, "eps 2e-3, the decoder has 1e-3");

    /* --- The common preamble's predictor parameter --- */
    const char *MO = "int8_f32_momentum";
    load(w, MO, 1);
    split(w, p0);
    static const struct {
        const char *name;
        uint32_t bits;
        const char *status;
        const char *why;
    } bad_beta[] = {
        {"beta_one", 0x3f800000u, "BAD_FLAGS", "momentum beta = 1.0"},
        {"beta_negative", 0xbf000000u, "BAD_FLAGS", "momentum beta = -0.5"},
        {"beta_nan", 0x7fc00000u, "BAD_FLAGS", "momentum beta = NaN"},
        {"beta_inf", 0x7f800000u, "BAD_FLAGS", "momentum beta = +Inf"},
        {"beta_other", 0x3f000000u, "CONFIG_MISMATCH", "beta 0.5, the decoder has 0.75"},
        {"beta_negative_zero", 0x80000000u, "CONFIG_MISMATCH", "beta -0.0, the decoder has 0.75"},
    };
    for (size_t i = 0; i < GOLDEN_COUNT_OF(bad_beta); i++) {
        *p = *p0;
        p->pred_param = bad_beta[i].bits;
        join(p, w);
        emitw(bad_beta[i].name, bad_beta[i].status, MO, 1, w, bad_beta[i].why);
    }
    load(w, N8, 1);
    split(w, p0);
    *p = *p0;
    p->pred_param = 0x3f000000u;
    join(p, w);
    emitw("pred_param_none", "BAD_FLAGS", N8, 1, w, "pred_param nonzero without momentum");

    /* --- RAW: no exceptions allowed --- */
    const char *RW = "raw_f32";
    load(w, RW, 1);
    split(w, p0);
    *p = *p0;
    p->n_exc = 1;
    ngl_wr_u32(p->sec[S_EXC], 0);
    memcpy(p->sec[S_EXC] + 4, p->sec[S_CODE], 4);
    p->sec_n[S_EXC] = 8;
    join(p, w);
    emitw("exception_raw", "BAD_SECTION", RW, 1, w, "a RAW frame with an exception entry");
    *p = *p0;
    p->n_exc = 1;
    join(p, w);
    emitw("exception_raw_count", "BAD_EXCEPTION", RW, 1, w, "a RAW frame with n_exc = 1");

    /* n_exc above count, with its entries present */
    const char *C1 = "int8_f32_n1";
    load(w, C1, 1);
    split(w, p0);
    *p = *p0;
    p->n_exc = 2;
    memset(p->sec[S_EXC], 0, 16);
    p->sec_n[S_EXC] = 16;
    join(p, w);
    emitw("section_n_exc_above_count", "BAD_SECTION", C1, 1, w, "n_exc 2 with count 1");
    free(z);
    free(idx);
    free(p0);
    free(p);
    free(w);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_golden OUTDIR   (writes OUTDIR/valid and OUTDIR/invalid)\n");
        return 2;
    }
    const uint16_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    if (first != 1) {
        die("the golden files assume a little-endian host");
    }
    outdir = argv[1];
    make_dir(outdir);
    char path[512];
    snprintf(path, sizeof(path), "%s/valid/MANIFEST", outdir);
    make_dir(outdir);
    snprintf(path, sizeof(path), "%s/valid", outdir);
    make_dir(path);
    snprintf(path, sizeof(path), "%s/valid/MANIFEST", outdir);
    FILE *mf = fopen(path, "w");
    if (mf == NULL) {
        die(path);
    }
    fprintf(mf, "# Generated by tests/golden/gen_golden.c; format in golden_util.h.\n");
    gen_valid(mf);
    fclose(mf);

    snprintf(path, sizeof(path), "%s/invalid", outdir);
    make_dir(path);
    snprintf(path, sizeof(path), "%s/invalid/MANIFEST", outdir);
    invalid_manifest = fopen(path, "w");
    if (invalid_manifest == NULL) {
        die(path);
    }
    fprintf(invalid_manifest,
            "# Generated by tests/golden/gen_golden.c; format in golden_util.h.\n"
            "# name                           status           decoder          # defect\n");
    gen_invalid_header();
    gen_invalid_backend();
    gen_invalid_body();
    fclose(invalid_manifest);
    for (unsigned ci = 0; ci < NCASES; ci++) {
        for (unsigned s = 0; s < STEPS_MAX; s++) {
            free(case_frames[ci][s].b);
        }
    }
    printf("gen_golden: %zu valid streams, %u invalid frames in %s\n", (size_t)NCASES,
           invalid_count, outdir);
    return 0;
}
