/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine_exact.c -- exact reductions of any element type, and the codec ops
 * that carry them: frames that copy the elements verbatim behind a header
 * with a CRC, decoded by verifying and then reducing.
 *
 * This is what a layer uses for the calls it must not compress but still
 * serve (NCCL asks a collNet for integer, fp64 and fp8 sums and for
 * products, maxima and minima once a user forces the algorithm). The
 * reduction is the type's own arithmetic, rounded to the type after every
 * step, applied by the chunk's owner in the engine's fixed order, so every
 * rank ends with the same bits.
 *
 * Frame (little endian, 32-byte header, then count * size bytes):
 *   0 magic "NGLX"   4 version 1   5 element type   6 op   7 zero
 *   8 count u32      12 step u32   16 stream id u64 24 CRC32C of bytes
 *   0..23 and the payload
 */
#include "ngl_engine.h"

#include "ngl_byteorder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EXACT_MAGIC   0x584c474eu /* "NGLX" */
#define EXACT_VERSION 1u
#define EXACT_HEADER  32u

/* ---- element types ----------------------------------------------------- */

size_t ngl_elem_size(ngl_elem t)
{
    switch (t) {
    case NGL_ELEM_I8:
    case NGL_ELEM_U8:
    case NGL_ELEM_F8E4M3:
    case NGL_ELEM_F8E5M2: return 1;
    case NGL_ELEM_F16:
    case NGL_ELEM_BF16: return 2;
    case NGL_ELEM_I32:
    case NGL_ELEM_U32:
    case NGL_ELEM_F32: return 4;
    case NGL_ELEM_I64:
    case NGL_ELEM_U64:
    case NGL_ELEM_F64: return 8;
    default: return 0;
    }
}

/* A binary floating-point format narrower than float. */
typedef struct mini_fmt {
    int ebits, mbits;
    int has_inf;  /* IEEE-like: all-ones exponent is inf/NaN; else only all ones is NaN */
    double max;   /* largest finite value */
    uint32_t nan; /* the NaN we produce, without sign */
} mini_fmt;

static const mini_fmt FMT_F16 = {5, 10, 1, 65504.0, 0x7e00u};
static const mini_fmt FMT_BF16 = {8, 7, 1, 3.3895313892515355e38, 0x7fc0u};
static const mini_fmt FMT_E4M3 = {4, 3, 0, 448.0, 0x7fu};
static const mini_fmt FMT_E5M2 = {5, 2, 1, 57344.0, 0x7eu};

static float mini_to_float(uint32_t x, const mini_fmt *f)
{
    const int bias = (1 << (f->ebits - 1)) - 1;
    const uint32_t emask = (1u << f->ebits) - 1u, mmask = (1u << f->mbits) - 1u;
    const uint32_t e = (x >> f->mbits) & emask, man = x & mmask;
    const double sign = (x >> (f->ebits + f->mbits)) & 1u ? -1.0 : 1.0;
    if (e == emask && (f->has_inf || man == mmask)) {
        if (f->has_inf && man == 0) {
            return (float)(sign * INFINITY);
        }
        return NAN;
    }
    if (e == 0) {
        return (float)(sign * ldexp((double)man, 1 - bias - f->mbits));
    }
    return (float)(sign * ldexp(1.0 + ldexp((double)man, -f->mbits), (int)e - bias));
}

/* Round @p v to the format, to nearest even; overflow gives inf, or NaN for
 * formats without one. Every float of the format's range is exact in a
 * double, so the division and product below round nothing but r. */
static uint32_t mini_from_float(float v, const mini_fmt *f)
{
    const uint32_t sbit = (signbit(v) ? 1u : 0u) << (f->ebits + f->mbits);
    const int bias = (1 << (f->ebits - 1)) - 1, emin = 1 - bias;
    const uint32_t emask = (1u << f->ebits) - 1u;
    if (isnan(v)) {
        return sbit | f->nan;
    }
    const double a = fabs((double)v);
    if (a == 0.0) {
        return sbit;
    }
    int ex = 0;
    if (!isinf(a)) {
        (void)frexp(a, &ex);
        ex -= 1; /* a = 1.x * 2^ex */
    }
    if (isinf(a) || ex > bias + 2) {
        return sbit | (f->has_inf ? emask << f->mbits : f->nan);
    }
    if (ex < emin) {
        ex = emin;
    }
    const double q = ldexp(1.0, ex - f->mbits);
    const double r = nearbyint(a / q); /* the default rounding mode: to nearest even */
    const double w = r * q;
    if (w > f->max) {
        return sbit | (f->has_inf ? emask << f->mbits : f->nan);
    }
    if (w < ldexp(1.0, emin)) {
        return sbit | (uint32_t)(w / ldexp(1.0, emin - f->mbits)); /* subnormal or zero */
    }
    (void)frexp(w, &ex);
    ex -= 1;
    const uint32_t man = (uint32_t)((w / ldexp(1.0, ex) - 1.0) * (double)(1u << f->mbits));
    return sbit | ((uint32_t)(ex + bias) << f->mbits) | man;
}

/* ---- reductions ----------------------------------------------------------- */

/* NaN in, NaN out; otherwise the larger (smaller) operand. */
static double fmax_nan(double a, double b)
{
    return isnan(a) || isnan(b) ? a + b : (a > b ? a : b);
}

static double fmin_nan(double a, double b)
{
    return isnan(a) || isnan(b) ? a + b : (a < b ? a : b);
}

#define REDUCE_INT(T, UT)                                                                          \
    do {                                                                                           \
        T *d = acc;                                                                                \
        const T *s = src;                                                                          \
        for (uint64_t i = 0; i < n; i++) {                                                         \
            T a, b;                                                                                \
            memcpy(&a, d + i, sizeof a);                                                           \
            memcpy(&b, s + i, sizeof b);                                                           \
            T r;                                                                                   \
            switch (op) {                                                                          \
            case NGL_REDOP_SUM: r = (T)((UT)a + (UT)b); break; /* wraps, as NCCL's */              \
            case NGL_REDOP_PROD: r = (T)((UT)a * (UT)b); break;                                    \
            case NGL_REDOP_MAX: r = a > b ? a : b; break;                                          \
            default: r = a < b ? a : b; break;                                                     \
            }                                                                                      \
            memcpy(d + i, &r, sizeof r);                                                           \
        }                                                                                          \
    } while (0)

/* One step of a floating-point reduction, in the precision of its
 * operands: double for fp64, float for fp32 and for the narrow formats
 * (widened exactly to float, combined in float as NCCL's kernels do). */
static double apply_d(double a, double b, ngl_redop op)
{
    switch (op) {
    case NGL_REDOP_SUM: return a + b;
    case NGL_REDOP_PROD: return a * b;
    case NGL_REDOP_MAX: return fmax_nan(a, b);
    default: return fmin_nan(a, b);
    }
}

static float apply_f(float a, float b, ngl_redop op)
{
    switch (op) {
    case NGL_REDOP_SUM: return a + b;
    case NGL_REDOP_PROD: return a * b;
    default: return (float)apply_d(a, b, op); /* exact: picks one operand or NaN */
    }
}

#define REDUCE_FLOAT(T, APPLY)                                                                     \
    do {                                                                                           \
        T *d = acc;                                                                                \
        const T *s = src;                                                                          \
        for (uint64_t i = 0; i < n; i++) {                                                         \
            T a, b;                                                                                \
            memcpy(&a, d + i, sizeof a);                                                           \
            memcpy(&b, s + i, sizeof b);                                                           \
            const T r = APPLY(a, b, op);                                                           \
            memcpy(d + i, &r, sizeof r);                                                           \
        }                                                                                          \
    } while (0)

static void reduce_mini(void *acc, const void *src, uint64_t n, ngl_redop op, const mini_fmt *f)
{
    const size_t size = f->ebits + f->mbits + 1 > 8 ? 2 : 1;
    uint8_t *d = acc;
    const uint8_t *s = src;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t a = d[i * size], b = s[i * size];
        if (size == 2) {
            a |= (uint32_t)d[i * size + 1] << 8;
            b |= (uint32_t)s[i * size + 1] << 8;
        }
        /* One float operation, then one rounding to the format. Only the
         * chunk's owner computes it. */
        const uint32_t x =
            mini_from_float(apply_f(mini_to_float(a, f), mini_to_float(b, f), op), f);
        d[i * size] = (uint8_t)x;
        if (size == 2) {
            d[i * size + 1] = (uint8_t)(x >> 8);
        }
    }
}

void ngl_engine_reduce(void *acc, const void *src, uint64_t n, ngl_elem t, ngl_redop op)
{
    switch (t) {
    case NGL_ELEM_I8: REDUCE_INT(int8_t, uint8_t); break;
    case NGL_ELEM_U8: REDUCE_INT(uint8_t, uint8_t); break;
    case NGL_ELEM_I32: REDUCE_INT(int32_t, uint32_t); break;
    case NGL_ELEM_U32: REDUCE_INT(uint32_t, uint32_t); break;
    case NGL_ELEM_I64: REDUCE_INT(int64_t, uint64_t); break;
    case NGL_ELEM_U64: REDUCE_INT(uint64_t, uint64_t); break;
    case NGL_ELEM_F32: REDUCE_FLOAT(float, apply_f); break;
    case NGL_ELEM_F64: REDUCE_FLOAT(double, apply_d); break;
    case NGL_ELEM_F16: reduce_mini(acc, src, n, op, &FMT_F16); break;
    case NGL_ELEM_BF16: reduce_mini(acc, src, n, op, &FMT_BF16); break;
    case NGL_ELEM_F8E4M3: reduce_mini(acc, src, n, op, &FMT_E4M3); break;
    case NGL_ELEM_F8E5M2: reduce_mini(acc, src, n, op, &FMT_E5M2); break;
    default: break;
    }
}

/* ---- codec ops: exact frames ------------------------------------------------ */

struct ngl_cc_stream {
    ngl_elem elem;
    ngl_redop op;
    size_t esize;
    uint64_t count;
    uint64_t stream_id;
    uint32_t step; /* frames coded so far: sender and receiver count alike */
    size_t len;    /* length of the last frame encoded */
};

static size_t exact_frame_bound(uint64_t count, uint32_t variant)
{
    const size_t esize = ngl_elem_size(ngl_exact_elem(variant));
    return esize == 0 ? 0 : EXACT_HEADER + (size_t)count * esize;
}

static ngl_status exact_create(const ngl_stream_config *cfg, int is_encoder, void *queue,
                               uint32_t variant, ngl_cc_stream **out)
{
    (void)is_encoder;
    (void)queue;
    *out = NULL;
    const ngl_elem elem = ngl_exact_elem(variant);
    const ngl_redop op = ngl_exact_op(variant);
    if (variant == 0 || ngl_elem_size(elem) == 0 || (unsigned)op >= NGL_REDOP_COUNT ||
        cfg->count > UINT32_MAX) {
        return NGL_ERR_INVALID_ARG;
    }
    ngl_cc_stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    s->elem = elem;
    s->op = op;
    s->esize = ngl_elem_size(elem);
    s->count = cfg->count;
    s->stream_id = cfg->stream_id;
    *out = s;
    return NGL_OK;
}

static void exact_destroy(ngl_cc_stream *s)
{
    free(s);
}

static ngl_status exact_encode(ngl_cc_stream *s, const void *src, void *frame, size_t cap)
{
    const size_t bytes = (size_t)s->count * s->esize;
    if (cap < EXACT_HEADER + bytes) {
        return NGL_ERR_DST_TOO_SMALL;
    }
    uint8_t *h = frame;
    ngl_wr_u32(h, EXACT_MAGIC);
    h[4] = EXACT_VERSION;
    h[5] = (uint8_t)s->elem;
    h[6] = (uint8_t)s->op;
    h[7] = 0;
    ngl_wr_u32(h + 8, (uint32_t)s->count);
    ngl_wr_u32(h + 12, s->step);
    ngl_wr_u64(h + 16, s->stream_id);
    if (bytes > 0) {
        memcpy(h + EXACT_HEADER, src, bytes);
    }
    uint32_t crc = ngl_crc32c(0, h, 24);
    crc = ngl_crc32c(crc, h + EXACT_HEADER, bytes);
    ngl_wr_u32(h + 24, crc);
    ngl_wr_u32(h + 28, 0);
    s->len = EXACT_HEADER + bytes;
    s->step++;
    return NGL_OK;
}

/* Every check a frame must pass before it touches @p dst; each failure has
 * its own status, as for core frames. */
static ngl_status exact_check(const ngl_cc_stream *s, const uint8_t *h, size_t len)
{
    const size_t bytes = (size_t)s->count * s->esize;
    if (len < EXACT_HEADER) {
        return NGL_ERR_TRUNCATED;
    }
    if (ngl_rd_u32(h) != EXACT_MAGIC) {
        return NGL_ERR_BAD_MAGIC;
    }
    if (h[4] != EXACT_VERSION) {
        return NGL_ERR_BAD_VERSION;
    }
    if (h[5] != (uint8_t)s->elem || h[6] != (uint8_t)s->op) {
        return NGL_ERR_CONFIG_MISMATCH;
    }
    if (h[7] != 0 || ngl_rd_u32(h + 28) != 0) {
        return NGL_ERR_BAD_FLAGS;
    }
    if (ngl_rd_u32(h + 8) != s->count) {
        return NGL_ERR_COUNT_MISMATCH;
    }
    if (len != EXACT_HEADER + bytes) {
        return len < EXACT_HEADER + bytes ? NGL_ERR_TRUNCATED : NGL_ERR_BAD_LENGTH;
    }
    uint32_t crc = ngl_crc32c(0, h, 24);
    crc = ngl_crc32c(crc, h + EXACT_HEADER, bytes);
    if (crc != ngl_rd_u32(h + 24)) {
        return NGL_ERR_CRC_MISMATCH;
    }
    const uint64_t sid = ngl_rd_u64(h + 16);
    if (sid != s->stream_id) {
        return NGL_ERR_STREAM_MISMATCH;
    }
    if (ngl_rd_u32(h + 12) != s->step) {
        return NGL_ERR_STEP_MISMATCH;
    }
    return NGL_OK;
}

static ngl_status exact_decode(ngl_cc_stream *s, const void *frame, size_t len, void *dst,
                               int accumulate)
{
    const ngl_status st = exact_check(s, frame, len);
    if (st != NGL_OK) {
        return st;
    }
    const uint8_t *payload = (const uint8_t *)frame + EXACT_HEADER;
    if (accumulate) {
        ngl_engine_reduce(dst, payload, s->count, s->elem, s->op);
    } else if (s->count > 0) {
        memcpy(dst, payload, (size_t)s->count * s->esize);
    }
    s->step++;
    return NGL_OK;
}

static ngl_status exact_poll(ngl_cc_stream *s, int *done, size_t *len)
{
    *done = 1;
    if (len != NULL) {
        *len = s->len;
    }
    return NGL_OK;
}

static int exact_busy(const ngl_cc_stream *s)
{
    (void)s;
    return 0;
}

static uint64_t exact_state_hash(const ngl_cc_stream *s)
{
    return s->step; /* no state but the frame count */
}

const ngl_cc_ops ngl_cc_exact_ops = {
    .name = "exact",
    .create = exact_create,
    .destroy = exact_destroy,
    .encode = exact_encode,
    .decode = exact_decode,
    .poll = exact_poll,
    .busy = exact_busy,
    .state_hash = exact_state_hash,
    .frame_bound = exact_frame_bound,
};
