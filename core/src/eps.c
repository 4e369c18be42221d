/* SPDX-License-Identifier: Apache-2.0 */
/*
 * eps.c -- the error-bounded codec: |decoded - original| <= eps for every
 * element, always. Residuals from the (gated) predictor are quantized with
 * step 2*eps and round-half-even; the encoder reconstructs each element
 * exactly as the decoder will, in the output precision, and sends the
 * element verbatim (an exception) whenever the bound would not hold:
 * non-finite input, a code beyond 2^30, or rounding in the output type.
 * State and arithmetic are binary64 for both f32 and f64 streams.
 */
#include "ngl_stream.h"

#include <math.h>

#define EPS_QLIM 1073741824.0 /* 2^30 */

typedef struct eps_ctx {
    ngl_predictor pred;
    uint32_t hist;
    double beta, omb;
    double *st1, *st2;
    uint8_t *gate;
} eps_ctx;

static void eps_ctx_init(const ngl_stream *s, eps_ctx *c)
{
    c->pred = s->cfg.predictor;
    c->hist = s->hist;
    c->beta = (double)s->cfg.momentum_beta;
    c->omb = 1.0 - c->beta;
    c->st1 = (double *)s->st1;
    c->st2 = (double *)s->st2;
    c->gate = s->gate;
}

static inline double eps_pred_raw(const eps_ctx *c, uint64_t i)
{
    switch (c->pred) {
    case NGL_PRED_MOMENTUM: return c->st1[i];
    case NGL_PRED_LINEAR:
        if (c->hist >= 2) {
            double twice = 2.0 * c->st1[i];
            return twice - c->st2[i];
        }
        return c->hist == 1 ? c->st1[i] : 0.0;
    default: return 0.0;
    }
}

static inline void eps_state_update(eps_ctx *c, uint64_t i, double xhat, double praw, double *a,
                                    double *m)
{
    if (!ngl_f64_finite(xhat)) {
        return;
    }
    double d = fabs(xhat - praw);
    if (!(d <= *a)) {
        *a = d;
    }
    if (fabs(xhat) > *m) {
        *m = fabs(xhat);
    }
    if (c->pred == NGL_PRED_MOMENTUM) {
        double x1 = c->beta * c->st1[i];
        double x2 = c->omb * xhat;
        double nm = x1 + x2;
        if (ngl_f64_finite(nm)) {
            c->st1[i] = nm;
        }
    } else if (c->pred == NGL_PRED_LINEAR) {
        c->st2[i] = c->st1[i];
        c->st1[i] = xhat;
    }
}

static inline double load_elem(const void *src, ngl_dtype dt, uint64_t i)
{
    if (dt == NGL_DTYPE_F64) {
        double d;
        memcpy(&d, (const uint8_t *)src + 8 * i, 8);
        return d;
    }
    float f;
    memcpy(&f, (const uint8_t *)src + 4 * i, 4);
    return (double)f;
}

/* The decoder's output value, widened back to f64. */
static inline double round_to_dtype(double v, ngl_dtype dt)
{
    return dt == NGL_DTYPE_F64 ? v : (double)(float)v;
}

ngl_status ngl_eps_encode_body(ngl_stream *s, const void *src, uint8_t *body, size_t *body_len,
                               uint64_t *n_exc_out, uint64_t *gated)
{
    const ngl_dtype dt = s->cfg.dtype;
    const double eps = s->cfg.eps;
    const double two_eps = eps + eps;
    const double limit = eps * (1.0 - 0x1p-40);
    eps_ctx c;
    eps_ctx_init(s, &c);
    uint8_t *codes = body + NGL_PREAMBLE_COMMON + NGL_PREAMBLE_EPS;
    size_t w = 0;
    uint64_t n_exc = 0;
    *gated = 0;
    memset(s->flags, 0, NGL_DIV_CEIL((size_t)s->count, 8u));

    for (uint32_t b = 0; b < s->nblocks; b++) {
        const uint64_t lo = (uint64_t)b * s->block, hi = lo + ngl_block_len(s, b);
        const int use_pred = c.pred != NGL_PRED_NONE && c.gate[b];
        double a = 0.0, m = 0.0;
        *gated += (uint64_t)use_pred;
        for (uint64_t i = lo; i < hi; i++) {
            double xv = load_elem(src, dt, i);
            double praw = eps_pred_raw(&c, i);
            double p = use_pred ? praw : 0.0;
            double xhat = xv;
            int64_t q = 0;
            int exc = 1;
            if (ngl_f64_finite(xv)) {
                double d = (xv - p) / two_eps;
                if (fabs(d) <= EPS_QLIM) {
                    double qd = nearbyint(d);
                    double xo = round_to_dtype(p + qd * two_eps, dt);
                    if (fabs(xo - xv) <= limit) {
                        q = (int64_t)qd;
                        xhat = xo;
                        exc = 0;
                    }
                }
            }
            if (exc) {
                ngl_bit_set(s->flags, i);
                n_exc++;
            }
            w += ngl_varint_put(codes + w, (uint32_t)ngl_zigzag(q));
            eps_state_update(&c, i, xhat, praw, &a, &m);
        }
        if (c.pred != NGL_PRED_NONE) {
            c.gate[b] = (uint8_t)(a < m);
        }
    }

    /* exceptions, in index order, carrying the input bits */
    const size_t ds = s->dsize;
    uint8_t *exc = codes + w;
    size_t e = 0;
    for (uint64_t i = 0; i < s->count; i++) {
        if (ngl_bit_get(s->flags, i)) {
            uint8_t *p = exc + e * (4u + ds);
            ngl_wr_u32(p, (uint32_t)i);
            if (ds == 8) {
                uint64_t v;
                memcpy(&v, (const uint8_t *)src + 8 * i, 8);
                ngl_wr_u64(p + 4, v);
            } else {
                uint32_t v;
                memcpy(&v, (const uint8_t *)src + 4 * i, 4);
                ngl_wr_u32(p + 4, v);
            }
            e++;
        }
    }
    ngl_write_preamble(&s->cfg, body, (uint32_t)n_exc);
    ngl_wr_u64(body + 8, ngl_f64_bits(eps));
    ngl_wr_u32(body + 16, (uint32_t)w);
    ngl_wr_u32(body + 20, 0);
    *body_len = NGL_PREAMBLE_COMMON + NGL_PREAMBLE_EPS + w + (size_t)n_exc * (4u + ds);
    *n_exc_out = n_exc;
    return NGL_OK;
}

/* Reconstruct a frame ngl_frame_validate() accepted and update the state. */
void ngl_eps_decode_body(ngl_stream *s, const ngl_frame_view *v, void *dst, int accumulate)
{
    const ngl_dtype dt = s->cfg.dtype;
    const size_t ds = s->dsize;
    const size_t esz = 4u + ds;
    const uint32_t n_exc = v->n_exc;
    const double eps = v->eps;
    const uint8_t *codes = v->codes;
    const size_t code_bytes = (size_t)v->codes_len;
    size_t pos = 0;

    eps_ctx c;
    eps_ctx_init(s, &c);
    const double two_eps = eps + eps;
    const uint8_t *exc = v->exc;
    uint32_t ecur = 0;
    for (uint32_t b = 0; b < s->nblocks; b++) {
        const uint64_t lo = (uint64_t)b * s->block, hi = lo + ngl_block_len(s, b);
        const int use_pred = c.pred != NGL_PRED_NONE && c.gate[b];
        double a = 0.0, m = 0.0;
        for (uint64_t i = lo; i < hi; i++) {
            uint32_t z = 0;
            pos += ngl_varint_get32(codes + pos, code_bytes - pos, &z);
            double praw = eps_pred_raw(&c, i);
            double p = use_pred ? praw : 0.0;
            double xhat;
            uint64_t raw_bits = 0;
            int is_exc = ecur < n_exc && ngl_rd_u32(exc + (size_t)ecur * esz) == i;
            if (is_exc) {
                const uint8_t *val = exc + (size_t)ecur * esz + 4;
                if (ds == 8) {
                    raw_bits = ngl_rd_u64(val);
                    xhat = ngl_bits_f64(raw_bits);
                } else {
                    raw_bits = ngl_rd_u32(val);
                    xhat = (double)ngl_bits_f32((uint32_t)raw_bits);
                }
                ecur++;
            } else {
                double qd = (double)ngl_unzigzag(z);
                xhat = round_to_dtype(p + qd * two_eps, dt);
            }
            if (dt == NGL_DTYPE_F64) {
                double *d = (double *)dst;
                if (accumulate) {
                    d[i] += xhat;
                } else if (is_exc) {
                    memcpy(&d[i], &raw_bits, 8); /* bit-exact, NaN payload included */
                } else {
                    d[i] = xhat;
                }
            } else {
                float *d = (float *)dst;
                if (accumulate) {
                    d[i] += (float)xhat;
                } else if (is_exc) {
                    uint32_t bits32 = (uint32_t)raw_bits;
                    memcpy(&d[i], &bits32, 4);
                } else {
                    d[i] = (float)xhat;
                }
            }
            eps_state_update(&c, i, xhat, praw, &a, &m);
        }
        if (c.pred != NGL_PRED_NONE) {
            c.gate[b] = (uint8_t)(a < m);
        }
    }
}
