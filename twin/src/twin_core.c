/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_core.c -- stream state shared by the twin encoder and decoder, the
 * message parser, and the configuration helpers (docs/wire-format.md, "Twin
 * messages").
 */
#include "twin_core.h"

#include <float.h>
#include <stdlib.h>

size_t twin_value_size(ngl_dtype dt)
{
    return dt == NGL_DTYPE_F64 ? 8u : 4u;
}

int twin_bound_ok(const ngl_twin_bound *b)
{
    return (b->mode == NGL_TWIN_EPS_ABS || b->mode == NGL_TWIN_EPS_REL) && isfinite(b->eps) &&
           b->eps >= 0.0;
}

ngl_status twin_stream_alloc(twin_stream *s, uint32_t channels)
{
    ngl_twin_bound *bounds = NULL;
    uint64_t *divs = NULL;
    twin_param *par = NULL;
    twin_chan *ch = NULL;
    hpc_ctx *ctx = s->ctx;

    bounds = calloc(channels, sizeof(*bounds));
    if (bounds == NULL) {
        goto fail;
    }
    divs = calloc(channels, sizeof(*divs));
    if (divs == NULL) {
        goto fail_bounds;
    }
    par = calloc(channels, sizeof(*par));
    if (par == NULL) {
        goto fail_divs;
    }
    ch = calloc(channels, sizeof(*ch));
    if (ch == NULL) {
        goto fail_par;
    }
    if (ctx == NULL) {
        ctx = calloc(TWIN_NCTX, sizeof(*ctx));
        if (ctx == NULL) {
            goto fail_ch;
        }
    }
    free(s->bounds);
    free(s->divs);
    free(s->par);
    free(s->ch);
    s->bounds = bounds;
    s->divs = divs;
    s->par = par;
    s->ch = ch;
    s->ctx = ctx;
    s->cap = channels;
    return NGL_OK;

fail_ch:
    free(ch);
fail_par:
    free(par);
fail_divs:
    free(divs);
fail_bounds:
    free(bounds);
fail:
    return NGL_ERR_NO_MEMORY;
}

void twin_stream_free(twin_stream *s)
{
    free(s->bounds);
    free(s->divs);
    free(s->par);
    free(s->ch);
    free(s->ctx);
    memset(s, 0, sizeof(*s));
}

/* Quantizer parameters of one bound (docs/wire-format.md, "Lattice"). */
static void param_from_bound(twin_param *pp, const ngl_twin_bound *b, ngl_dtype dt)
{
    memset(pp, 0, sizeof(*pp));
    pp->eps = b->eps;
    if (b->eps == 0.0) {
        pp->kind = TWIN_K_LOSSLESS;
        return;
    }
    if (b->mode == NGL_TWIN_EPS_ABS) {
        pp->kind = TWIN_K_ABS;
        /* A sliver below 2 eps, so that the reconstruction's own rounding
         * (to the dtype) rarely pushes a value past the bound; those that
         * still fail go exact. */
        pp->step = 2.0 * b->eps * (1.0 - 0x1p-6);
        pp->inv_step = 1.0 / pp->step;
        if (!(pp->step > 0.0) || !isfinite(pp->step) || !isfinite(pp->inv_step)) {
            pp->kind = TWIN_K_LOSSLESS; /* eps too small to resolve: exact */
        }
        return;
    }
    /* REL: keep k mantissa bits, rounding to nearest: the relative error is
     * at most 2^-(k+1); the smallest such k, capped at the mantissa width
     * (then nothing is dropped and the channel is lossless in effect). */
    const unsigned mant = dt == NGL_DTYPE_F64 ? 52u : 23u;
    unsigned k = 0;
    while (k < mant && ldexp(1.0, -(int)(k + 1u)) > b->eps) {
        k++;
    }
    pp->kind = k == mant ? TWIN_K_LOSSLESS : TWIN_K_REL;
    pp->shift = mant - k;
}

void twin_stream_configure(twin_stream *s, uint32_t channels, ngl_dtype dtype,
                           const ngl_twin_bound *bounds, ngl_twin_bound one)
{
    assert(channels <= s->cap);
    s->channels = channels;
    s->dtype = dtype;
    for (uint32_t j = 0; j < channels; j++) {
        s->bounds[j] = bounds ? bounds[j] : one;
        s->divs[j] = 0;
        param_from_bound(&s->par[j], &s->bounds[j], dtype);
    }
}

void twin_stream_set_divs(twin_stream *s, const uint64_t *divs)
{
    for (uint32_t j = 0; j < s->channels; j++) {
        twin_param *pp = &s->par[j];
        const uint64_t d = divs ? divs[j] : 0;
        if (s->bounds[j].eps != 0.0) {
            continue;
        }
        s->divs[j] = d;
        pp->kind = d ? TWIN_K_DIV : TWIN_K_LOSSLESS;
        pp->div = (double)d; /* d <= 2^40: exact */
    }
}

void twin_stream_reset(twin_stream *s)
{
    const uint64_t qnan = s->dtype == NGL_DTYPE_F64 ? 0x7FF8000000000000ull : 0x7FC00000u;
    memset(s->ch, 0, (size_t)s->channels * sizeof(*s->ch));
    for (uint32_t j = 0; j < s->channels; j++) {
        s->ch[j].xbits = qnan;
    }
    for (unsigned i = 0; i < TWIN_NCTX; i++) {
        hpc_ctx_init(&s->ctx[i], HPC_CTX_TOKEN);
    }
}

uint64_t twin_stream_hash(const twin_stream *s)
{
    uint64_t h = 0xCBF29CE484222325ull;
    h = twin_hash_u64(h, s->seq);
    h = twin_hash_u64(h, s->channels);
    h = twin_hash_u64(h, (uint64_t)s->dtype);
    for (uint32_t j = 0; j < s->channels; j++) {
        const twin_chan *c = &s->ch[j];
        uint64_t e;
        memcpy(&e, &s->bounds[j].eps, 8);
        h = twin_hash_u64(h, (uint64_t)s->bounds[j].mode);
        h = twin_hash_u64(h, e);
        h = twin_hash_u64(h, s->divs[j]);
        h = twin_hash_u64(h, c->xbits);
        for (unsigned i = 0; i < TWIN_HIST; i++) {
            h = twin_hash_u64(h, (uint64_t)c->h[i]);
        }
        for (unsigned i = 0; i < TWIN_TAPS; i++) {
            uint64_t w;
            memcpy(&w, &c->w[i], 8);
            h = twin_hash_u64(h, w);
        }
        for (unsigned k = 0; k < TWIN_NPRED; k++) {
            h = twin_hash_u64(h, c->cost[k]);
        }
        h = twin_hash_u64(h, c->age);
        h = twin_hash_u64(h, c->ema);
        h = twin_hash_u64(h, c->last);
    }
    for (unsigned i = 0; i < TWIN_NCTX; i++) {
        const hpc_ctx *c = &s->ctx[i];
        h = twin_hash_u64(h, c->total);
        h = twin_hash_u64(h, c->since);
        for (unsigned k = 0; k < c->nsym; k++) {
            h = twin_hash_u64(h, c->acc[k]);
        }
    }
    return h == 0 ? 1 : h; /* 0 is the waiting decoder's */
}

/* ------------------------------------------------------------- parsing */
/* A varint that must fit @p max: BAD_LENGTH if malformed or past the end,
 * @p range_err if too large. */
static ngl_status get_varint(const uint8_t *p, size_t end, size_t *pos, uint64_t max,
                             ngl_status range_err, uint64_t *out)
{
    if (ngl_varint_get(p, end, pos, out) != 0) {
        return NGL_ERR_BAD_LENGTH;
    }
    return *out > max ? range_err : NGL_OK;
}

ngl_status twin_parse(const uint8_t *p, size_t len, int check_crc, twin_msg *m)
{
    ngl_status st;
    uint64_t v;
    memset(m, 0, sizeof(*m));
    /* The magic first, on whatever bytes there are: a foreign payload is
     * named as such even when it is short. */
    if (len >= 1 && p[0] != TWIN_MAGIC) {
        return NGL_ERR_BAD_MAGIC;
    }
    if (len < TWIN_MIN_MESSAGE) {
        return NGL_ERR_TRUNCATED;
    }
    const unsigned version = p[1] >> 4, type = p[1] & 0x0Fu;
    if (version != NGL_TWIN_FORMAT_VERSION) {
        return NGL_ERR_BAD_VERSION;
    }
    if (type < NGL_TWIN_MSG_KEY || type > NGL_TWIN_MSG_END) {
        return NGL_ERR_BAD_CODEC;
    }
    m->hdr.version = (uint8_t)version;
    m->hdr.type = (ngl_twin_msg_type)type;
    m->hdr.dtype = NGL_DTYPE_F32;

    size_t pos = 2;
    /* the declared length tells a truncated message from a corrupted one */
    if (ngl_varint_get(p, len, &pos, &v) != 0) {
        return NGL_ERR_BAD_LENGTH;
    }
    if (v > len) {
        return NGL_ERR_TRUNCATED;
    }
    if (v < len || v < TWIN_MIN_MESSAGE) {
        return NGL_ERR_BAD_LENGTH;
    }
    const size_t end = len - TWIN_CRC_SIZE;
    if (check_crc && ngl_crc32c(0, p, end) != ngl_rd_u32(p + end)) {
        return NGL_ERR_CRC_MISMATCH;
    }
    if ((st = get_varint(p, end, &pos, UINT32_MAX, NGL_ERR_BAD_LENGTH, &v)) != NGL_OK) {
        return st;
    }
    m->hdr.stream_id = (uint32_t)v;
    if ((st = get_varint(p, end, &pos, UINT64_MAX, NGL_OK, &m->hdr.seq)) != NGL_OK) {
        return st;
    }
    if ((st = get_varint(p, end, &pos, NGL_TWIN_MAX_SAMPLES, NGL_ERR_COUNT_MISMATCH, &v)) !=
        NGL_OK) {
        return st;
    }
    m->hdr.nsamples = (uint32_t)v;
    if (type == NGL_TWIN_MSG_END) {
        if (v != 0) {
            return NGL_ERR_COUNT_MISMATCH;
        }
        return pos == end ? NGL_OK : NGL_ERR_BAD_LENGTH;
    }
    if (v == 0) {
        return NGL_ERR_COUNT_MISMATCH;
    }
    if (type == NGL_TWIN_MSG_KEY) {
        if ((st = get_varint(p, end, &pos, NGL_TWIN_MAX_CHANNELS, NGL_ERR_COUNT_MISMATCH, &v)) !=
            NGL_OK) {
            return st;
        }
        if (v == 0 || v * m->hdr.nsamples > NGL_TWIN_MAX_VALUES) {
            return NGL_ERR_COUNT_MISMATCH;
        }
        m->hdr.channels = (uint32_t)v;
        if (end - pos < 2) {
            return NGL_ERR_BAD_SECTION;
        }
        if (p[pos] > TWIN_WIRE_F64) {
            return NGL_ERR_BAD_DTYPE;
        }
        m->hdr.dtype = p[pos] == TWIN_WIRE_F64 ? NGL_DTYPE_F64 : NGL_DTYPE_F32;
        m->layout = p[pos + 1];
        pos += 2;
        if (m->layout > TWIN_LAYOUT_EACH) {
            return NGL_ERR_BAD_FLAGS;
        }
        const size_t nb = m->layout == TWIN_LAYOUT_EACH ? m->hdr.channels : 1u;
        if ((end - pos) / TWIN_BOUND_SIZE < nb) {
            return NGL_ERR_BAD_SECTION;
        }
        m->bounds = p + pos;
        for (size_t i = 0; i < nb; i++, pos += TWIN_BOUND_SIZE) {
            ngl_twin_bound b = {(ngl_twin_eps_mode)p[pos], ngl_rd_f64(p + pos + 1)};
            if (p[pos] > NGL_TWIN_EPS_REL || !twin_bound_ok(&b)) {
                return NGL_ERR_BAD_SCALE;
            }
        }
        if (end - pos < 1) {
            return NGL_ERR_BAD_SECTION;
        }
        if (p[pos] > TWIN_DIV_EACH) {
            return NGL_ERR_BAD_FLAGS;
        }
        m->divs_present = p[pos++];
        if (m->divs_present) {
            m->divs = p + pos;
            for (uint32_t j = 0; j < m->hdr.channels; j++) {
                if (ngl_varint_get(p, end, &pos, &v) != 0) {
                    return NGL_ERR_BAD_SECTION;
                }
                /* only lossless channels have a divisor */
                if (v > TWIN_DIV_MAX || (v != 0 && twin_msg_bound(m, j).eps != 0.0)) {
                    return NGL_ERR_BAD_SCALE;
                }
            }
        }
    }
    m->body = p + pos;
    m->body_len = end - pos;
    return NGL_OK;
}

ngl_twin_bound twin_msg_bound(const twin_msg *m, uint32_t i)
{
    const uint8_t *b =
        m->bounds + (m->layout == TWIN_LAYOUT_EACH ? (size_t)i * TWIN_BOUND_SIZE : 0);
    ngl_twin_bound r = {(ngl_twin_eps_mode)b[0], ngl_rd_f64(b + 1)};
    return r;
}

void twin_msg_divs(const twin_msg *m, uint64_t *out)
{
    size_t pos = 0;
    for (uint32_t j = 0; j < m->hdr.channels; j++) {
        out[j] = 0;
        if (m->divs_present) {
            /* checked by twin_parse: well formed and in range */
            (void)ngl_varint_get(m->divs, SIZE_MAX, &pos, &out[j]);
        }
    }
}

/* The encoder side of twin_rdec (twin_core.h): the record backwards, bytes
 * out from the end of the buffer, then the final state. */
size_t twin_rans_encode(const twin_rec *r, uint8_t *buf, size_t cap)
{
    uint8_t *p = buf + cap;
    uint32_t x = TWIN_RANS_L;
    for (size_t i = r->n; i-- > 0;) {
        const uint32_t w = r->w[i];
        if (w & TWIN_REC_RAW) {
            /* uniform symbol of n bits: frequency 2^sh, all shifts */
            const unsigned n = (w >> 16) & 0xFFu, sh = HPC_PROB_BITS - n;
            const uint32_t x_max = (TWIN_RANS_L >> HPC_PROB_BITS << 8) << sh;
            while (x >= x_max) {
                *--p = (uint8_t)x;
                x >>= 8;
            }
            x = ((x >> sh) << HPC_PROB_BITS) | ((w & 0x7FFFu) << sh) | (x & ((1u << sh) - 1u));
        } else {
            const uint32_t f = (w >> 16) + 1u, c = w & 0xFFFFu;
            const uint32_t x_max = (TWIN_RANS_L >> HPC_PROB_BITS << 8) * f;
            while (x >= x_max) {
                *--p = (uint8_t)x;
                x >>= 8;
            }
            x = ((x / f) << HPC_PROB_BITS) + (x % f) + c;
        }
        assert(p >= buf + TWIN_RANS_STATE);
    }
    *--p = (uint8_t)(x >> 16);
    *--p = (uint8_t)(x >> 8);
    *--p = (uint8_t)x;
    return (size_t)(buf + cap - p);
}

ngl_status ngl_twin_frame_peek(const void *msg, size_t msg_len, int check_crc, ngl_twin_header *out)
{
    twin_msg m;
    if (msg == NULL || out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    ngl_status st = twin_parse(msg, msg_len, check_crc, &m);
    *out = m.hdr;
    return st;
}

/* ------------------------------------------------------------- config */
void ngl_twin_config_init(ngl_twin_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->dtype = NGL_DTYPE_F32;
    cfg->bound.mode = NGL_TWIN_EPS_ABS;
    cfg->bound.eps = 0.0;
    cfg->keyframe_interval = 100;
    cfg->max_samples = 64;
}

ngl_status ngl_twin_config_check(const ngl_twin_config *cfg, const char **why)
{
    const char *w = NULL;
    if (cfg == NULL) {
        w = "config is NULL";
    } else if (cfg->channels == 0 || cfg->channels > NGL_TWIN_MAX_CHANNELS) {
        w = "channels must be in 1 .. NGL_TWIN_MAX_CHANNELS";
    } else if (cfg->dtype != NGL_DTYPE_F32 && cfg->dtype != NGL_DTYPE_F64) {
        w = "dtype must be NGL_DTYPE_F32 or NGL_DTYPE_F64";
    } else if (cfg->keyframe_interval == 0) {
        w = "keyframe_interval must be >= 1";
    } else if (cfg->max_samples == 0 || cfg->max_samples > NGL_TWIN_MAX_SAMPLES ||
               (uint64_t)cfg->max_samples * cfg->channels > NGL_TWIN_MAX_VALUES) {
        w = "max_samples must be in 1 .. NGL_TWIN_MAX_SAMPLES with max_samples * channels <= "
            "NGL_TWIN_MAX_VALUES";
    } else if (cfg->bounds == NULL && !twin_bound_ok(&cfg->bound)) {
        w = "bound: mode ABS or REL, eps finite and >= 0";
    } else if (cfg->bounds != NULL) {
        for (uint32_t j = 0; j < cfg->channels; j++) {
            if (!twin_bound_ok(&cfg->bounds[j])) {
                w = "bounds[]: mode ABS or REL, eps finite and >= 0";
                break;
            }
        }
    }
    if (why != NULL) {
        *why = w;
    }
    return w == NULL ? NGL_OK : NGL_ERR_INVALID_ARG;
}
