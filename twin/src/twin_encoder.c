/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_encoder.c -- ngl_twin_encoder: samples in, one message out per call
 * (docs/wire-format.md, "Twin messages").
 */
#include "twin_core.h"

#include <stdlib.h>

struct ngl_twin_encoder {
    ngl_twin_config cfg; /* bounds points into st.bounds */
    twin_stream st;
    int key_pending;    /* the next message is a keyframe */
    uint32_t since_key; /* messages since the last keyframe, itself included */
    uint32_t *rec;      /* coder record, max_samples * C * TWIN_REC_PER_VALUE */
    uint8_t *body;      /* coded section (written backwards from the end) */
    size_t body_cap;
    /* Lossless channels: the last TWIN_RESV bit patterns seen, from which a
     * keyframe picks the channel's divisor (encoder only, never sent). */
    uint64_t *resv;   /* C * TWIN_RESV */
    uint32_t *resv_n; /* C: entries held */
    uint64_t *divs;   /* C: scratch for the keyframe's choice */
    ngl_twin_encoder_stats stats;
};

#define TWIN_RESV 32u

ngl_status ngl_twin_encoder_create(const ngl_twin_config *cfg, ngl_twin_encoder **out)
{
    ngl_twin_encoder *enc = NULL;
    ngl_status st;
    if (out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *out = NULL;
    if ((st = ngl_twin_config_check(cfg, NULL)) != NGL_OK) {
        return st;
    }
    const size_t nval = (size_t)cfg->max_samples * cfg->channels;
    enc = calloc(1, sizeof(*enc));
    if (enc == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    if (twin_stream_alloc(&enc->st, cfg->channels) != NGL_OK) {
        goto fail_enc;
    }
    enc->rec = malloc(nval * TWIN_REC_PER_VALUE * sizeof(*enc->rec));
    if (enc->rec == NULL) {
        goto fail_stream;
    }
    enc->body_cap = nval * TWIN_BODY_PER_VALUE + TWIN_RANS_STATE;
    enc->body = malloc(enc->body_cap);
    if (enc->body == NULL) {
        goto fail_rec;
    }
    enc->resv = malloc((size_t)cfg->channels * TWIN_RESV * sizeof(*enc->resv));
    enc->resv_n = calloc(cfg->channels, sizeof(*enc->resv_n));
    enc->divs = calloc(cfg->channels, sizeof(*enc->divs));
    if (enc->resv == NULL || enc->resv_n == NULL || enc->divs == NULL) {
        goto fail_resv;
    }
    twin_stream_configure(&enc->st, cfg->channels, cfg->dtype, cfg->bounds, cfg->bound);
    enc->cfg = *cfg;
    enc->cfg.bounds = enc->st.bounds;
    enc->st.seq = cfg->first_seq;
    enc->key_pending = 1;
    twin_stream_reset(&enc->st);
    *out = enc;
    return NGL_OK;

fail_resv:
    free(enc->divs);
    free(enc->resv_n);
    free(enc->resv);
    free(enc->body);
fail_rec:
    free(enc->rec);
fail_stream:
    twin_stream_free(&enc->st);
fail_enc:
    free(enc);
    return NGL_ERR_NO_MEMORY;
}

void ngl_twin_encoder_destroy(ngl_twin_encoder *enc)
{
    if (enc == NULL) {
        return;
    }
    free(enc->divs);
    free(enc->resv_n);
    free(enc->resv);
    free(enc->body);
    free(enc->rec);
    twin_stream_free(&enc->st);
    free(enc);
}

/* Size of the keyframe's stream parameters. */
static size_t key_params_size(const ngl_twin_encoder *enc, int *each)
{
    const twin_stream *s = &enc->st;
    *each = 0;
    for (uint32_t j = 1; j < s->channels; j++) {
        if (s->bounds[j].mode != s->bounds[0].mode ||
            memcmp(&s->bounds[j].eps, &s->bounds[0].eps, sizeof(double)) != 0) {
            *each = 1;
            break;
        }
    }
    return 3u /* channels varint, at most */ + 2u +
           (*each ? (size_t)s->channels : 1u) * TWIN_BOUND_SIZE + 1u +
           (size_t)s->channels * 6u /* divisors, at most */;
}

size_t ngl_twin_encoder_bound(const ngl_twin_encoder *enc, size_t nsamples)
{
    int each;
    if (enc == NULL || nsamples > enc->cfg.max_samples) {
        return 0;
    }
    const size_t nval = nsamples * enc->cfg.channels;
    return 2u + 10u /* length */ + 5u /* stream id */ + 10u /* seq */ + 3u /* nsamples */ +
           key_params_size(enc, &each) + nval * TWIN_BODY_PER_VALUE + TWIN_RANS_STATE +
           TWIN_CRC_SIZE;
}

ngl_status ngl_twin_encoder_request_keyframe(ngl_twin_encoder *enc)
{
    if (enc == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    enc->key_pending = 1;
    return NGL_OK;
}

uint64_t ngl_twin_encoder_seq(const ngl_twin_encoder *enc)
{
    return enc ? enc->st.seq : 0;
}

uint64_t ngl_twin_encoder_state_hash(const ngl_twin_encoder *enc)
{
    return enc ? twin_stream_hash(&enc->st) : 0;
}

void ngl_twin_encoder_get_stats(const ngl_twin_encoder *enc, ngl_twin_encoder_stats *out)
{
    if (out == NULL) {
        return;
    }
    if (enc == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = enc->stats;
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Bit pattern of value @p v of @p src (native byte order, as the caller's
 * floats are). */
static inline uint64_t load_bits(const void *src, size_t v, int is64)
{
    if (is64) {
        uint64_t b;
        memcpy(&b, (const uint8_t *)src + 8 * v, 8);
        return b;
    }
    uint32_t b32;
    memcpy(&b32, (const uint8_t *)src + 4 * v, 4);
    return b32;
}

/* Code one value of channel @p j (bit pattern @p bits). */
static inline __attribute__((always_inline)) void
code_value(twin_stream *s, uint32_t j, int is64, uint64_t bits, twin_rec *r, uint64_t *exceptions)
{
    twin_chan *c = &s->ch[j];
    const twin_param *pp = &s->par[j];
    int64_t p[TWIN_NPRED], q;
    double d[TWIN_TAPS], y;
    twin_predict(c, p, d, &y);
    const unsigned k = twin_choose(c);
    hpc_ctx *cx = &s->ctx[twin_ctx_index(c)];
    int ok;
    if (is64) {
        double x;
        memcpy(&x, &bits, 8);
        ok = twin_quant64(pp, x, bits, &q);
    } else {
        float x;
        uint32_t b32 = (uint32_t)bits;
        memcpy(&x, &b32, 4);
        ok = twin_quant32(pp, x, b32, &q);
    }
    if (__builtin_expect(ok, 1)) {
        const uint64_t z = ngl_zigzag(hpc_wsub(q, p[k]));
        unsigned nraw;
        const unsigned tok = twin_token(z, &nraw);
        twin_rec_sym(r, cx, tok);
        if (nraw) {
            twin_rec_raw(r, z, nraw);
        }
        twin_update(c, q, p, d, y, twin_bitlen(z));
    } else if (bits == c->xbits) {
        twin_rec_sym(r, cx, TWIN_TOK_SAME);
        (*exceptions)++;
    } else {
        twin_rec_sym(r, cx, TWIN_TOK_EXACT);
        twin_rec_raw(r, bits, is64 ? 64u : 32u);
        c->xbits = bits;
        (*exceptions)++;
    }
}

/* Code every value of the message into enc->rec. */
static void code_values(ngl_twin_encoder *enc, const void *samples, size_t nsamples, twin_rec *r)
{
    twin_stream *s = &enc->st;
    const uint32_t C = s->channels;
    const int is64 = s->dtype == NGL_DTYPE_F64;
    const void *src = samples;
    r->w = enc->rec;
    r->n = 0;
    /* Tables are rebuilt at the start of every message and every HPC_CHUNK
     * values (counted from the message start), on both sides alike. */
    twin_refresh(s->ctx, 0);
    size_t v = 0, next_refresh = HPC_CHUNK;
    for (size_t i = 0; i < nsamples; i++) {
        for (uint32_t j = 0; j < C; j++, v++) {
            if (__builtin_expect(v == next_refresh, 0)) {
                twin_refresh(s->ctx, 0);
                next_refresh += HPC_CHUNK;
            }
            code_value(s, j, is64, load_bits(src, v, is64), r, &enc->stats.exceptions);
        }
    }
}

/* Is the value of bit pattern @p b (NaN and Inf always are) f(k / D) bit
 * for bit for some k? */
static int div_fits(const twin_stream *s, uint64_t d, uint64_t b)
{
    const twin_param pp = {.kind = TWIN_K_DIV, .div = (double)d};
    int64_t q;
    if (s->dtype == NGL_DTYPE_F64) {
        double x;
        memcpy(&x, &b, 8);
        return (b & ~TWIN_F64_SIGN) >= TWIN_F64_EXP || twin_quant64(&pp, x, b, &q);
    }
    const uint32_t b32 = (uint32_t)b;
    float xf;
    memcpy(&xf, &b32, 4);
    return (b32 & ~TWIN_F32_SIGN) >= TWIN_F32_EXP || twin_quant32(&pp, xf, b32, &q);
}

/* The smallest divisor D (of a fixed list: powers of two and ten and their
 * common products) for which every finite value of @p vals is f(k / D)
 * bit for bit; 0 if none or no finite value. Encoder only: a wrong guess
 * costs bytes (values go exact), never correctness. */
static uint64_t find_div(const twin_stream *s, const uint64_t *vals, size_t n)
{
    static const uint64_t cand[] = {1,
                                    2,
                                    4,
                                    5,
                                    8,
                                    10,
                                    16,
                                    20,
                                    25,
                                    32,
                                    40,
                                    50,
                                    64,
                                    80,
                                    100,
                                    125,
                                    128,
                                    200,
                                    250,
                                    256,
                                    400,
                                    500,
                                    512,
                                    1000,
                                    1024,
                                    2000,
                                    2500,
                                    4096,
                                    5000,
                                    10000,
                                    100000,
                                    1000000,
                                    10000000,
                                    100000000,
                                    1000000000,
                                    10000000000,
                                    100000000000,
                                    1000000000000};
    const int is64 = s->dtype == NGL_DTYPE_F64;
    size_t finite = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t m = is64 ? vals[i] & ~TWIN_F64_SIGN : vals[i] & ~(uint64_t)TWIN_F32_SIGN;
        finite += m < (is64 ? TWIN_F64_EXP : TWIN_F32_EXP);
    }
    if (finite == 0) {
        return 0;
    }
    for (size_t c = 0; c < sizeof(cand) / sizeof(cand[0]); c++) {
        size_t i = 0;
        while (i < n && div_fits(s, cand[c], vals[i])) {
            i++;
        }
        if (i == n) {
            return cand[c];
        }
    }
    return 0;
}

/* Does coding k (values f(k / D)) beat coding the ordered bit patterns?
 * Compared on the ring's finite values in time order (oldest at @p at when
 * full), by the bit lengths of consecutive differences: the previous-value
 * predictor's cost. A float32 fits some large D nearly always, with k no
 * cheaper than its bits; decimal and ADC data fit a small D with much
 * smaller steps. */
static int div_pays(const twin_stream *s, uint64_t d, const uint64_t *ring, uint32_t n, uint32_t at)
{
    const twin_param pp = {.kind = TWIN_K_DIV, .div = (double)d};
    const int is64 = s->dtype == NGL_DTYPE_F64;
    uint64_t cost_k = 0, cost_o = 0;
    int64_t pk = 0, po = 0;
    int have = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint64_t b = ring[n < TWIN_RESV ? i : (at + i) % TWIN_RESV];
        int64_t k, o;
        if (is64) {
            double x;
            memcpy(&x, &b, 8);
            if (!twin_quant64(&pp, x, b, &k)) {
                continue; /* NaN, Inf */
            }
            o = hpc_ord_from_bits64(b);
        } else {
            const uint32_t b32 = (uint32_t)b;
            float xf;
            memcpy(&xf, &b32, 4);
            if (!twin_quant32(&pp, xf, b32, &k)) {
                continue;
            }
            o = hpc_ord_from_bits32(b32);
        }
        if (have) {
            cost_k += twin_bitlen(ngl_zigzag(hpc_wsub(k, pk)));
            cost_o += twin_bitlen(ngl_zigzag(hpc_wsub(o, po)));
        }
        pk = k;
        po = o;
        have = 1;
    }
    /* a single value: small integers (k < 2^16) are worth it */
    return cost_o > 0 ? cost_k < cost_o : (uint64_t)(pk < 0 ? -pk : pk) < 65536u;
}

/* Keep the last TWIN_RESV values of each lossless channel (the message's
 * samples; only the newest TWIN_RESV matter). */
static void remember(ngl_twin_encoder *enc, const void *samples, size_t nsamples)
{
    const twin_stream *s = &enc->st;
    const uint32_t C = s->channels;
    const int is64 = s->dtype == NGL_DTYPE_F64;
    const size_t first = nsamples > TWIN_RESV ? nsamples - TWIN_RESV : 0;
    for (uint32_t j = 0; j < C; j++) {
        if (s->bounds[j].eps != 0.0) {
            continue;
        }
        uint64_t *ring = enc->resv + (size_t)j * TWIN_RESV;
        for (size_t i = first; i < nsamples; i++) {
            const size_t v = i * C + j;
            const uint64_t b = load_bits(samples, v, is64);
            /* a ring: the order of its entries does not matter */
            ring[enc->resv_n[j] % TWIN_RESV] = b;
            enc->resv_n[j]++;
        }
    }
}

/* Keyframe: each lossless channel's divisor, from its remembered values
 * and this message's. */
static void choose_divs(ngl_twin_encoder *enc, const void *samples, size_t nsamples)
{
    twin_stream *s = &enc->st;
    const uint32_t C = s->channels;
    const int is64 = s->dtype == NGL_DTYPE_F64;
    int any = 0;
    remember(enc, samples, nsamples);
    for (uint32_t j = 0; j < C; j++) {
        enc->divs[j] = 0;
        if (s->bounds[j].eps != 0.0) {
            continue;
        }
        any = 1;
        const uint32_t n = enc->resv_n[j] < TWIN_RESV ? enc->resv_n[j] : TWIN_RESV;
        const uint64_t *ring = enc->resv + (size_t)j * TWIN_RESV;
        enc->divs[j] = find_div(s, ring, n);
        if (enc->divs[j] && !div_pays(s, enc->divs[j], ring, n, enc->resv_n[j] % TWIN_RESV)) {
            enc->divs[j] = 0;
        }
        /* the message's own values before the ring's must fit too */
        for (size_t i = 0; enc->divs[j] && i + TWIN_RESV < nsamples; i++) {
            const size_t v = i * C + j;
            const uint64_t b = load_bits(samples, v, is64);
            if (!div_fits(s, enc->divs[j], b)) {
                enc->divs[j] = 0;
            }
        }
    }
    twin_stream_set_divs(s, any ? enc->divs : NULL);
}

/* Write the message whose coded section is ready. */
static size_t write_message(ngl_twin_encoder *enc, ngl_twin_msg_type type, size_t nsamples,
                            const uint8_t *body, size_t body_len, uint8_t *dst)
{
    const twin_stream *s = &enc->st;
    int each = 0, divs = 0;
    size_t params = 0;
    if (type == NGL_TWIN_MSG_KEY) {
        key_params_size(enc, &each);
        params = varint_size(s->channels) + 2u +
                 (each ? (size_t)s->channels : 1u) * TWIN_BOUND_SIZE + 1u;
        for (uint32_t j = 0; j < s->channels; j++) {
            divs |= s->divs[j] != 0;
        }
        for (uint32_t j = 0; divs && j < s->channels; j++) {
            params += varint_size(s->divs[j]);
        }
    }
    size_t rest = 2u + varint_size(enc->cfg.stream_id) + varint_size(s->seq) +
                  varint_size(nsamples) + params + TWIN_CRC_SIZE;
    if (type != NGL_TWIN_MSG_END) {
        rest += body_len;
    }
    /* the length field counts itself */
    size_t total = rest + 1;
    while (varint_size(total) != total - rest) {
        total++;
    }
    uint8_t *p = dst;
    p[0] = TWIN_MAGIC;
    p[1] = (uint8_t)((NGL_TWIN_FORMAT_VERSION << 4) | (unsigned)type);
    p += 2;
    p += ngl_varint_put(p, total);
    p += ngl_varint_put(p, enc->cfg.stream_id);
    p += ngl_varint_put(p, s->seq);
    p += ngl_varint_put(p, nsamples);
    if (type == NGL_TWIN_MSG_KEY) {
        p += ngl_varint_put(p, s->channels);
        *p++ = s->dtype == NGL_DTYPE_F64 ? TWIN_WIRE_F64 : TWIN_WIRE_F32;
        *p++ = each ? TWIN_LAYOUT_EACH : TWIN_LAYOUT_ONE;
        for (uint32_t j = 0; j < (each ? s->channels : 1u); j++) {
            *p++ = (uint8_t)s->bounds[j].mode;
            ngl_wr_f64(p, s->bounds[j].eps);
            p += 8;
        }
        *p++ = divs ? TWIN_DIV_EACH : TWIN_DIV_NONE;
        for (uint32_t j = 0; divs && j < s->channels; j++) {
            p += ngl_varint_put(p, s->divs[j]);
        }
    }
    if (type != NGL_TWIN_MSG_END) {
        memcpy(p, body, body_len);
        p += body_len;
    }
    ngl_wr_u32(p, ngl_crc32c(0, dst, (size_t)(p - dst)));
    p += TWIN_CRC_SIZE;
    assert((size_t)(p - dst) == total);
    return total;
}

ngl_status ngl_twin_encoder_encode(ngl_twin_encoder *enc, const void *samples, size_t nsamples,
                                   void *dst, size_t dst_cap, size_t *out_len)
{
    if (enc == NULL || samples == NULL || dst == NULL || out_len == NULL || nsamples == 0 ||
        nsamples > enc->cfg.max_samples) {
        return NGL_ERR_INVALID_ARG;
    }
    /* Checked up front: past this point the state moves. */
    if (dst_cap < ngl_twin_encoder_bound(enc, nsamples)) {
        return NGL_ERR_DST_TOO_SMALL;
    }
    const int key = enc->key_pending || enc->since_key >= enc->cfg.keyframe_interval;
    if (key) {
        choose_divs(enc, samples, nsamples);
        twin_stream_reset(&enc->st);
    } else {
        remember(enc, samples, nsamples);
    }
    twin_rec r;
    code_values(enc, samples, nsamples, &r);
    const size_t body_len = twin_rans_encode(&r, enc->body, enc->body_cap);
    const size_t len = write_message(enc, key ? NGL_TWIN_MSG_KEY : NGL_TWIN_MSG_DELTA, nsamples,
                                     enc->body + enc->body_cap - body_len, body_len, dst);
    enc->st.seq++;
    if (key) {
        enc->key_pending = 0;
        enc->since_key = 1;
        enc->stats.keyframes++;
    } else {
        enc->since_key++;
    }
    enc->stats.messages++;
    enc->stats.samples += nsamples;
    enc->stats.bytes_in += nsamples * enc->st.channels * twin_value_size(enc->st.dtype);
    enc->stats.bytes_out += len;
    *out_len = len;
    return NGL_OK;
}

ngl_status ngl_twin_encoder_end_of_stream(ngl_twin_encoder *enc, void *dst, size_t dst_cap,
                                          size_t *out_len)
{
    if (enc == NULL || dst == NULL || out_len == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    if (dst_cap < ngl_twin_encoder_bound(enc, 0)) {
        return NGL_ERR_DST_TOO_SMALL;
    }
    const size_t len = write_message(enc, NGL_TWIN_MSG_END, 0, NULL, 0, dst);
    enc->st.seq++;
    enc->key_pending = 1;
    enc->stats.messages++;
    enc->stats.bytes_out += len;
    *out_len = len;
    return NGL_OK;
}
