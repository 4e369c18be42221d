/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_core.h -- the closed-loop state shared by the twin encoder and
 * decoder, and the per-value logic both must run identically: lattice
 * mapping, predictors, predictor choice, contexts and tokens. The normative
 * description is the twin section of docs/wire-format.md.
 *
 * The adaptive token contexts (tables, counts, rebuilds), the little-endian
 * helpers and varints are hpc/'s (hpc_rans.h, hpc_internal.h); only the
 * rANS framing is twin's own (one small state for small messages, below).
 */
#ifndef NGL_TWIN_CORE_H
#define NGL_TWIN_CORE_H

#include "hpc_internal.h"
#include "hpc_rans.h"
#include "nangila_twin.h"

#include <math.h>

/* ---------------------------------------------------------------- format */
#define TWIN_MAGIC       0xF7u /* never starts UTF-8 text: JSON/CSV payloads fail fast */
#define TWIN_CRC_SIZE    4u
#define TWIN_MIN_MESSAGE (2u + 4u + TWIN_CRC_SIZE) /* + length, id, seq, nsamples varints */
#define TWIN_WIRE_F32    0u
#define TWIN_WIRE_F64    1u
#define TWIN_LAYOUT_ONE  0u /* one bound for every channel */
#define TWIN_LAYOUT_EACH 1u /* one bound per channel */
#define TWIN_BOUND_SIZE  9u /* mode(1) eps(f64) */
#define TWIN_DIV_NONE    0u /* keyframe: no lossless divisors follow */
#define TWIN_DIV_EACH    1u /* keyframe: one divisor varint per channel follows */
#define TWIN_DIV_MAX     ((uint64_t)1 << 40)

/* ---------------------------------------------------------------- tokens */
#define TWIN_TOK_DIRECT   16u /* zigzag residuals 0..15 are their own token */
#define TWIN_TOK_SPLIT_LO 5u  /* bit lengths 5..40: 4 tokens each (2 bits below the top) */
#define TWIN_TOK_SPLIT_HI 40u
#define TWIN_TOK_WIDE     160u /* bit lengths 41..64: one token each */
#define TWIN_TOK_EXACT    184u /* the value follows bit for bit (32 or 64 raw bits) */
#define TWIN_TOK_SAME     185u /* the channel's last exact bit pattern again (NaN runs) */
#define TWIN_TOK_COUNT    186u /* tokens >= this never occur (254 is the coder's escape) */

/* ------------------------------------------------------------- contexts */
#define TWIN_LEVELS 24u                /* magnitude levels of a channel's recent residuals */
#define TWIN_NCTX   (2u * TWIN_LEVELS) /* x2: the last residual above the level or not */

/* ----------------------------------------------------------- predictors */
#define TWIN_NPRED  3u /* previous, linear, NLMS */
#define TWIN_TAPS   3u /* NLMS taps on the last differences */
#define TWIN_HIST   (TWIN_TAPS + 1u)
#define TWIN_Q_LIM  ((int64_t)1 << 50) /* |lattice index| limit of ABS and divisor channels */
#define TWIN_D_LIM  ((int64_t)1 << 40) /* differences fed to the NLMS are clamped here */
#define TWIN_W_LIM  8.0                /* NLMS weights are clamped to [-8, 8] */
#define TWIN_MU     0.25               /* NLMS step size (times [1, 2) of 1/norm) */
#define TWIN_COST_K 3                  /* cost decay: c -= c >> 3 per value */

/* channel kinds */
#define TWIN_K_LOSSLESS 0u
#define TWIN_K_ABS      1u
#define TWIN_K_REL      2u
#define TWIN_K_DIV      3u /* lossless, values are f(k / div) for integers k */

/* Quantizer parameters of one channel, derived from its bound (and, for
 * lossless channels, the keyframe's divisor). */
typedef struct twin_param {
    unsigned kind;
    unsigned shift; /* REL: mantissa bits dropped */
    double eps;     /* the bound as configured */
    double step;    /* ABS: lattice step (a sliver below 2 eps) */
    double inv_step;
    double div; /* DIV: the divisor (an integer, 1 .. 2^40) */
} twin_param;

/* Closed-loop state of one channel (identical on both sides). */
typedef struct twin_chan {
    int64_t h[TWIN_HIST]; /* last valid lattice values, h[0] newest; all equal to the first */
    double d[TWIN_TAPS];  /* f64(clamp(h[i] - h[i + 1], 2^40)): the NLMS inputs */
    double w[TWIN_TAPS];  /* NLMS weights */
    uint32_t cost[TWIN_NPRED];
    uint32_t age;   /* 0 until the first coded value, then 1 */
    uint32_t ema;   /* EMA of residual bit lengths, 16x (Q4) */
    uint32_t last;  /* bit length of the last residual */
    uint64_t xbits; /* last exact bit pattern (a quiet NaN after a keyframe) */
} twin_chan;

/* Everything the two sides share about one stream. */
typedef struct twin_stream {
    uint32_t channels;
    ngl_dtype dtype;
    ngl_twin_bound *bounds; /* channels entries */
    uint64_t *divs;         /* channels entries: lossless divisors, 0 = none */
    twin_param *par;
    twin_chan *ch;
    hpc_ctx *ctx; /* TWIN_NCTX */
    uint32_t cap; /* channels allocated */
    uint64_t seq; /* next sequence number */
} twin_stream;

/* ------------------------------------------------------------ functions */
ngl_status twin_stream_alloc(twin_stream *s, uint32_t channels);
void twin_stream_free(twin_stream *s);
/* Set parameters (bounds[] is copied; NULL = @p one for all). Caller checked them.
 * Divisors are cleared (twin_stream_set_divs sets them). */
void twin_stream_configure(twin_stream *s, uint32_t channels, ngl_dtype dtype,
                           const ngl_twin_bound *bounds, ngl_twin_bound one);
/* Lossless divisors of a keyframe (NULL: none); a channel that is not
 * lossless ignores its entry (the parser rejects nonzero ones). */
void twin_stream_set_divs(twin_stream *s, const uint64_t *divs);
/* Keyframe: every channel and context back to its initial state. */
void twin_stream_reset(twin_stream *s);
uint64_t twin_stream_hash(const twin_stream *s);
/* @return 1 if @p b is a valid bound. */
int twin_bound_ok(const ngl_twin_bound *b);
size_t twin_value_size(ngl_dtype dt);

/* Parsed message (twin_parse). */
typedef struct twin_msg {
    ngl_twin_header hdr;
    uint32_t layout; /* keyframes */
    const uint8_t *bounds;
    uint32_t divs_present;
    const uint8_t *divs; /* keyframes with divisors: C canonical varints */
    const uint8_t *body; /* coded section */
    size_t body_len;
} twin_msg;

/* Parse and check a whole message but its coded section; keyframe bounds
 * and divisors are validated. */
ngl_status twin_parse(const uint8_t *p, size_t len, int check_crc, twin_msg *m);
/* Bound @p i of a parsed keyframe. */
ngl_twin_bound twin_msg_bound(const twin_msg *m, uint32_t i);
/* Divisors of a parsed keyframe into @p out (C entries, zeros if none). */
void twin_msg_divs(const twin_msg *m, uint64_t *out);

/* ---------------------------------------------------------------- inline */
static inline uint32_t twin_bitlen(uint64_t v)
{
    return hpc_bitlen(v);
}

/* Predictions of the three predictors from the channel's history. The
 * history starts all zero and is filled with the first value, so no
 * predictor needs to know how much history there is: the linear one
 * predicts the previous value and the NLMS sees zero differences until real
 * ones arrive. The NLMS output y (its predicted difference) and inputs d are
 * returned for the update. */
static inline void twin_predict(const twin_chan *c, int64_t p[TWIN_NPRED], double d[TWIN_TAPS],
                                double *y)
{
    const int64_t *h = c->h;
    p[0] = h[0];
    p[1] = hpc_wsub(hpc_wadd(h[0], h[0]), h[1]);
    /* d_i = clamp(h_i - h_(i+1)), kept from the updates (no conversions here) */
    d[0] = c->d[0];
    d[1] = c->d[1];
    d[2] = c->d[2];
    const double acc = (c->w[0] * d[0] + c->w[1] * d[1]) + c->w[2] * d[2];
    *y = acc;
    /* |acc| <= 3 * 8 * 2^40 < 2^52: the conversion is in range */
    p[2] = hpc_wadd(h[0], hpc_floor_i64(acc + 0.5));
}

/* The predictor with the lowest recent cost (ties: the simpler one). */
static inline unsigned twin_choose(const twin_chan *c)
{
    unsigned best = c->cost[1] < c->cost[0] ? 1u : 0u;
    return c->cost[2] < c->cost[best] ? 2u : best;
}

static inline unsigned twin_ctx_index(const twin_chan *c)
{
    uint32_t level = (c->ema + 8u) >> 4;
    if (level > TWIN_LEVELS - 1u) {
        level = TWIN_LEVELS - 1u;
    }
    return 2u * level + (c->last > level ? 1u : 0u);
}

/* After lattice value @p q was coded (residual bit length @p bl against the
 * chosen predictor): costs, NLMS, contexts and history. */
static inline void twin_update(twin_chan *c, int64_t q, const int64_t p[TWIN_NPRED],
                               const double d[TWIN_TAPS], double y, uint32_t bl)
{
    for (unsigned k = 0; k < TWIN_NPRED; k++) {
        uint32_t b = twin_bitlen(ngl_zigzag(hpc_wsub(q, p[k])));
        c->cost[k] = c->cost[k] - (c->cost[k] >> TWIN_COST_K) + (b << 4);
    }
    /* normalised LMS on the differences: w += mu e d / (1 + |d|^2) */
    const double target = (double)hpc_clamp_i64(hpc_wsub(q, c->h[0]), TWIN_D_LIM);
    const double norm = ((1.0 + d[0] * d[0]) + d[1] * d[1]) + d[2] * d[2];
    /* 1 / norm rounded down to a power of two, from the exponent bits:
     * no division on the per-value path, and the step stays within
     * [mu/2, mu] of the exact NLMS one (norm >= 1 is finite and normal). */
    uint64_t nb;
    memcpy(&nb, &norm, 8);
    const uint64_t inv_bits = (2046u - (nb >> 52)) << 52; /* 2^-(e - 1023) */
    double inv;
    memcpy(&inv, &inv_bits, 8);
    const double g = (TWIN_MU * (target - y)) * inv;
    for (unsigned i = 0; i < TWIN_TAPS; i++) {
        double w = c->w[i] + g * d[i];
        c->w[i] = w > TWIN_W_LIM ? TWIN_W_LIM : (w < -TWIN_W_LIM ? -TWIN_W_LIM : w);
    }
    c->ema = c->ema - (c->ema >> 2) + (bl << 2);
    c->last = bl;
    if (__builtin_expect(c->age == 0, 0)) {
        /* the first value fills the history (see twin_predict) */
        c->h[1] = c->h[2] = c->h[3] = q;
        c->age = 1;
    } else {
        c->h[3] = c->h[2];
        c->h[2] = c->h[1];
        c->h[1] = c->h[0];
        c->d[2] = c->d[1];
        c->d[1] = c->d[0];
        c->d[0] = target;
    }
    c->h[0] = q;
}

/* Token of zigzag residual @p z; *nraw: the number of low bits of z that
 * follow. */
static inline unsigned twin_token(uint64_t z, unsigned *nraw)
{
    if (z < TWIN_TOK_DIRECT) {
        *nraw = 0;
        return (unsigned)z;
    }
    unsigned n = twin_bitlen(z);
    if (n <= TWIN_TOK_SPLIT_HI) {
        *nraw = n - 3u;
        return TWIN_TOK_DIRECT + (n - TWIN_TOK_SPLIT_LO) * 4u + (unsigned)((z >> (n - 3u)) & 3u);
    }
    *nraw = n - 1u;
    return TWIN_TOK_WIDE + (n - TWIN_TOK_SPLIT_HI - 1u);
}

/* Inverse of twin_token for a token < TWIN_TOK_EXACT: the implied top bits
 * of z and, in *nraw, how many low bits follow. */
static inline uint64_t twin_untoken(unsigned tok, unsigned *nraw)
{
    if (tok < TWIN_TOK_DIRECT) {
        *nraw = 0;
        return tok;
    }
    if (tok < TWIN_TOK_WIDE) {
        unsigned t = tok - TWIN_TOK_DIRECT;
        unsigned n = t / 4u + TWIN_TOK_SPLIT_LO;
        *nraw = n - 3u;
        return (uint64_t)(4u | (t & 3u)) << (n - 3u);
    }
    unsigned n = tok - TWIN_TOK_WIDE + TWIN_TOK_SPLIT_HI + 1u;
    *nraw = n - 1u;
    return (uint64_t)1 << (n - 1u);
}

/* ------------------------------------------------------------ the coder */
/* One rANS state (hpc's 15-bit tables, byte renormalisation, state in
 * [2^16, 2^24)), so that a message pays 3 bytes for the final state where
 * hpc's two interleaved 32-bit states cost 8: twin messages are a few dozen
 * bytes. Raw bits travel in the same state as uniform symbols of at most 15
 * bits (frequency 2^(15-n)), coded with shifts: no raw section, no section
 * length, no padding. docs/wire-format.md, "Twin messages", §T5. */
#define TWIN_RANS_L     ((uint32_t)1 << 16)
#define TWIN_RANS_STATE 3u  /* bytes of the flushed state */
#define TWIN_RAW_CHUNK  15u /* raw bits per uniform symbol, at most */
/* Records per value at most: token, escape byte, 64 raw bits in 5 chunks. */
#define TWIN_REC_PER_VALUE 7u
/* Bytes per value at most: every record renormalises at most 2 bytes out. */
#define TWIN_BODY_PER_VALUE (2u * TWIN_REC_PER_VALUE)
#define TWIN_REC_RAW        0x80000000u /* record: raw chunk (n << 16 | bits) */

/* The encoder's record of what to code, in coding order. */
typedef struct twin_rec {
    uint32_t *w; /* symbol: cum | (freq - 1) << 16; raw: TWIN_REC_RAW | n << 16 | bits */
    size_t n;
} twin_rec;

/* Record @p n <= 64 raw bits of @p v, low chunks first. */
static inline __attribute__((always_inline)) void twin_rec_raw(twin_rec *r, uint64_t v, unsigned n)
{
    while (n > TWIN_RAW_CHUNK) {
        r->w[r->n++] = TWIN_REC_RAW | (TWIN_RAW_CHUNK << 16) | (uint32_t)(v & 0x7FFFu);
        v >>= TWIN_RAW_CHUNK;
        n -= TWIN_RAW_CHUNK;
    }
    if (n) {
        r->w[r->n++] = TWIN_REC_RAW | (n << 16) | (uint32_t)(v & ((1u << n) - 1u));
    }
}

/* Record token @p s of context @p c (an escape and 8 raw bits when the
 * context cannot code it directly), then count it. */
static inline __attribute__((always_inline)) void twin_rec_sym(twin_rec *r, hpc_ctx *c, unsigned s)
{
    const uint32_t w = c->word[s];
    if (__builtin_expect(w != 0, 1)) {
        r->w[r->n++] = w - 0x10000u; /* cum | freq << 16 -> cum | (freq - 1) << 16 */
    } else {
        assert(c->freq[HPC_TOK_RARE] != 0);
        r->w[r->n++] = c->word[HPC_TOK_RARE] - 0x10000u;
        twin_rec_raw(r, s, 8);
    }
    hpc_ctx_count(c, s);
}

/* rANS-code the record backwards into the tail of [buf, buf + cap);
 * @return the byte count (they start at buf + cap - return value). */
size_t twin_rans_encode(const twin_rec *r, uint8_t *buf, size_t cap);

/* The decoder side: state, and the bytes left. */
typedef struct twin_rdec {
    uint32_t x;
    const uint8_t *p, *end;
    int overrun;
} twin_rdec;

/* @return 0, or -1 if the section cannot hold a valid state. */
static inline int twin_rdec_init(twin_rdec *d, const uint8_t *buf, size_t len)
{
    if (len < TWIN_RANS_STATE) {
        return -1;
    }
    d->x = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16;
    d->p = buf + TWIN_RANS_STATE;
    d->end = buf + len;
    d->overrun = 0;
    return d->x < TWIN_RANS_L ? -1 : 0;
}

static inline void twin_rdec_renorm(twin_rdec *d)
{
    while (d->x < TWIN_RANS_L) {
        if (__builtin_expect(d->p < d->end, 1)) {
            d->x = (d->x << 8) | *d->p++;
        } else {
            d->overrun = 1;
            d->x = TWIN_RANS_L; /* keep going; the message is rejected at the end */
        }
    }
}

/* One symbol of context @p c (escapes are resolved by the caller). */
static inline unsigned twin_rdec_sym(twin_rdec *d, const hpc_ctx *c)
{
    const uint32_t slot = d->x & (HPC_PROB_SCALE - 1u);
    unsigned s = c->lut[slot >> 7];
    while (c->cum[s + 1] <= slot) {
        s++;
    }
    d->x = (uint32_t)c->freq[s] * (d->x >> HPC_PROB_BITS) + slot - c->cum[s];
    twin_rdec_renorm(d);
    return s;
}

/* @p n <= 64 raw bits, low chunks first. */
static inline uint64_t twin_rdec_raw(twin_rdec *d, unsigned n)
{
    uint64_t v = 0;
    unsigned at = 0;
    while (n) {
        const unsigned k = n > TWIN_RAW_CHUNK ? TWIN_RAW_CHUNK : n;
        const unsigned sh = HPC_PROB_BITS - k; /* frequency 2^sh */
        const uint32_t slot = d->x & (HPC_PROB_SCALE - 1u);
        v |= (uint64_t)(slot >> sh) << at;
        d->x = ((d->x >> HPC_PROB_BITS) << sh) | (slot & ((1u << sh) - 1u));
        twin_rdec_renorm(d);
        at += k;
        n -= k;
    }
    return v;
}

/* After the last symbol: 0 if the state is back at its initial value and
 * the section is consumed exactly. */
static inline int twin_rdec_finish(const twin_rdec *d)
{
    return d->overrun || d->x != TWIN_RANS_L || d->p != d->end ? -1 : 0;
}

/* Rebuild the tables of the contexts whose counts moved enough: since >=
 * TWIN_REBUILD_MIN and TWIN_REBUILD_DIV * since >= total. hpc rebuilds at
 * 8 since >= total; twin messages are small (often one sample), so refresh
 * points come every few dozen values, and after every keyframe's reset the
 * contexts are young again: with hpc's rule rebuilds took 11% of the time
 * on the rotor benchmark, with this one 3%, for 0.5% more bytes. */
#define TWIN_REBUILD_MIN 16u
#define TWIN_REBUILD_DIV 2u

static inline void twin_refresh(hpc_ctx *set, int with_lut)
{
    for (unsigned i = 0; i < TWIN_NCTX; i++) {
        hpc_ctx *c = &set[i];
        if (c->since >= TWIN_REBUILD_MIN && (uint64_t)c->since * TWIN_REBUILD_DIV >= c->total) {
            hpc_ctx_build(c, with_lut);
        }
    }
}

/* 64-bit FNV-1a step over one word (the state hash). */
static inline uint64_t twin_hash_u64(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xFFu;
        h *= 0x100000001B3ull;
    }
    return h;
}

/* ------------------------------------------------------- lattice mapping */
/* Encoder: the lattice value of x (bits = its bit pattern), or 0 when x must
 * be carried exactly. Decoder: twin_recon*() gives the bits of a lattice
 * value, or 0 when no encoder produces it. The encoder accepts q only if
 * twin_recon*(q) is within the bound of x, so both use the same function. */
#define TWIN_F64_EXP  0x7FF0000000000000ull
#define TWIN_F64_SIGN 0x8000000000000000ull
#define TWIN_F32_EXP  0x7F800000u
#define TWIN_F32_SIGN 0x80000000u

static inline int twin_recon64(const twin_param *pp, int64_t q, uint64_t *bits)
{
    if (pp->kind == TWIN_K_DIV) {
        if (q > TWIN_Q_LIM || q < -TWIN_Q_LIM) {
            return 0;
        }
        double v = (double)q / pp->div;
        memcpy(bits, &v, 8);
        return 1;
    }
    if (pp->kind == TWIN_K_ABS) {
        if (q > TWIN_Q_LIM || q < -TWIN_Q_LIM) {
            return 0;
        }
        double v = (double)q * pp->step;
        memcpy(bits, &v, 8);
        return 1;
    }
    if (pp->kind == TWIN_K_REL) {
        const uint64_t maxr = (TWIN_F64_EXP - 1u) >> pp->shift;
        if (q < -(int64_t)maxr || q > (int64_t)maxr) {
            return 0;
        }
        uint64_t r = q < 0 ? (uint64_t)-q : (uint64_t)q;
        *bits = (q < 0 ? TWIN_F64_SIGN : 0u) | (r << pp->shift);
        return 1;
    }
    uint64_t u = hpc_bits64_from_ord(q);
    *bits = u;
    return (u & ~TWIN_F64_SIGN) < TWIN_F64_EXP;
}

static inline int twin_recon32(const twin_param *pp, int64_t q, uint32_t *bits)
{
    if (pp->kind == TWIN_K_DIV) {
        if (q > TWIN_Q_LIM || q < -TWIN_Q_LIM) {
            return 0;
        }
        float v = (float)((double)q / pp->div);
        memcpy(bits, &v, 4);
        return 1;
    }
    if (pp->kind == TWIN_K_ABS) {
        if (q > TWIN_Q_LIM || q < -TWIN_Q_LIM) {
            return 0;
        }
        float v = (float)((double)q * pp->step);
        memcpy(bits, &v, 4);
        return 1;
    }
    if (pp->kind == TWIN_K_REL) {
        const int64_t maxr = (int64_t)((TWIN_F32_EXP - 1u) >> pp->shift);
        if (q < -maxr || q > maxr) {
            return 0;
        }
        uint32_t r = (uint32_t)(q < 0 ? -q : q);
        *bits = (q < 0 ? TWIN_F32_SIGN : 0u) | (r << pp->shift);
        return 1;
    }
    if (q < INT32_MIN || q > INT32_MAX) {
        return 0;
    }
    uint32_t u = hpc_bits32_from_ord(q);
    *bits = u;
    return (u & ~TWIN_F32_SIGN) < TWIN_F32_EXP;
}

/* Is the reconstruction xr within the bound of x? Strict "<" on the rounded
 * difference is exact: with round-to-nearest, fl(|d|) < eps implies |d| <
 * eps (an eps between them would be nearer). REL also discounts the
 * rounding of eps * |x| and refuses subnormal bounds. */
static inline int twin_within(const twin_param *pp, double x, double xr)
{
    double d = fabs(xr - x);
    if (d == 0.0) {
        return 1;
    }
    if (pp->kind == TWIN_K_ABS) {
        return d < pp->eps;
    }
    double b = pp->eps * fabs(x);
    return b >= 0x1p-1022 && d < b * (1.0 - 0x1p-40);
}

static inline int twin_quant64(const twin_param *pp, double x, uint64_t bits, int64_t *q)
{
    if ((bits & ~TWIN_F64_SIGN) >= TWIN_F64_EXP) {
        return 0; /* NaN, Inf: exact, never in predictor state */
    }
    if (pp->kind == TWIN_K_LOSSLESS) {
        *q = hpc_ord_from_bits64(bits);
        return 1;
    }
    if (pp->kind == TWIN_K_DIV) {
        /* lossless: only a k whose reconstruction is x bit for bit */
        const double t = x * pp->div;
        uint64_t rb;
        if (!(fabs(t) < (double)TWIN_Q_LIM)) {
            return 0;
        }
        const int64_t k = hpc_floor_i64(t + 0.5);
        if (!twin_recon64(pp, k, &rb) || rb != bits) {
            return 0;
        }
        *q = k;
        return 1;
    }
    int64_t v;
    if (pp->kind == TWIN_K_ABS) {
        double t = x * pp->inv_step;
        if (!(fabs(t) < (double)TWIN_Q_LIM)) {
            return 0;
        }
        v = hpc_floor_i64(t + 0.5);
    } else {
        const uint64_t m = bits & ~TWIN_F64_SIGN;
        const uint64_t half = pp->shift ? (uint64_t)1 << (pp->shift - 1u) : 0u;
        const uint64_t r = (m + half) >> pp->shift;
        v = (bits & TWIN_F64_SIGN) ? -(int64_t)r : (int64_t)r;
    }
    uint64_t rb;
    double xr;
    if (!twin_recon64(pp, v, &rb)) {
        return 0;
    }
    memcpy(&xr, &rb, 8);
    if (!twin_within(pp, x, xr)) {
        return 0;
    }
    *q = v;
    return 1;
}

static inline int twin_quant32(const twin_param *pp, float xf, uint32_t bits, int64_t *q)
{
    if ((bits & ~TWIN_F32_SIGN) >= TWIN_F32_EXP) {
        return 0;
    }
    if (pp->kind == TWIN_K_LOSSLESS) {
        *q = hpc_ord_from_bits32(bits);
        return 1;
    }
    const double x = (double)xf;
    if (pp->kind == TWIN_K_DIV) {
        const double t = x * pp->div;
        uint32_t rb;
        if (!(fabs(t) < (double)TWIN_Q_LIM)) {
            return 0;
        }
        const int64_t k = hpc_floor_i64(t + 0.5);
        if (!twin_recon32(pp, k, &rb) || rb != bits) {
            return 0;
        }
        *q = k;
        return 1;
    }
    int64_t v;
    if (pp->kind == TWIN_K_ABS) {
        double t = x * pp->inv_step;
        if (!(fabs(t) < (double)TWIN_Q_LIM)) {
            return 0;
        }
        v = hpc_floor_i64(t + 0.5);
    } else {
        const uint32_t m = bits & ~TWIN_F32_SIGN;
        const uint32_t half = pp->shift ? 1u << (pp->shift - 1u) : 0u;
        const uint32_t r = (m + half) >> pp->shift; /* m + half < 2^32 */
        v = (bits & TWIN_F32_SIGN) ? -(int64_t)r : (int64_t)r;
    }
    uint32_t rb;
    float xr;
    if (!twin_recon32(pp, v, &rb)) {
        return 0;
    }
    memcpy(&xr, &rb, 4);
    if (!twin_within(pp, x, (double)xr)) {
        return 0;
    }
    *q = v;
    return 1;
}

#endif /* NGL_TWIN_CORE_H */
