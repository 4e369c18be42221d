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
    uint32_t *sym;      /* rANS symbol record, max_samples * C */
    uint8_t *rans;      /* rANS output (written backwards from the end) */
    size_t rans_cap;
    uint8_t *raw; /* raw bits */
    size_t raw_cap;
    ngl_twin_encoder_stats stats;
};

/* Raw bits per value at worst: the coder's 8-bit escape plus 64 value bits. */
#define RAW_BYTES_PER_VALUE 9u

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
    enc->sym = malloc(nval * sizeof(*enc->sym));
    if (enc->sym == NULL) {
        goto fail_stream;
    }
    enc->rans_cap = hpc_rans_bound(nval);
    enc->rans = malloc(enc->rans_cap);
    if (enc->rans == NULL) {
        goto fail_sym;
    }
    /* hpc_bitw stores 4 bytes at a time: room for one more word */
    enc->raw_cap = nval * RAW_BYTES_PER_VALUE + 8u;
    enc->raw = malloc(enc->raw_cap);
    if (enc->raw == NULL) {
        goto fail_rans;
    }
    twin_stream_configure(&enc->st, cfg->channels, cfg->dtype, cfg->bounds, cfg->bound);
    enc->cfg = *cfg;
    enc->cfg.bounds = enc->st.bounds;
    enc->st.seq = cfg->first_seq;
    enc->key_pending = 1;
    twin_stream_reset(&enc->st);
    *out = enc;
    return NGL_OK;

fail_rans:
    free(enc->rans);
fail_sym:
    free(enc->sym);
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
    free(enc->raw);
    free(enc->rans);
    free(enc->sym);
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
           (*each ? (size_t)s->channels : 1u) * TWIN_BOUND_SIZE;
}

size_t ngl_twin_encoder_bound(const ngl_twin_encoder *enc, size_t nsamples)
{
    int each;
    if (enc == NULL || nsamples > enc->cfg.max_samples) {
        return 0;
    }
    const size_t nval = nsamples * enc->cfg.channels;
    return TWIN_FIXED_HEADER + 10u /* length */ + 10u /* seq */ + 3u /* nsamples */ +
           key_params_size(enc, &each) + 5u /* rans length */ + hpc_rans_bound(nval) +
           nval * RAW_BYTES_PER_VALUE + 8u + TWIN_CRC_SIZE;
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

/* Code one value of channel @p j (bit pattern @p bits; x its value). */
static inline __attribute__((always_inline)) void code_value(twin_stream *s, uint32_t j, int is64,
                                                             uint64_t bits, hpc_symbuf *sb,
                                                             hpc_bitw *rw, uint64_t *exceptions)
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
        const uint64_t z = hpc_zigzag(hpc_wsub(q, p[k]));
        unsigned nraw;
        uint64_t raw;
        const unsigned tok = twin_token(z, &nraw, &raw);
        hpc_enc_sym(sb, rw, cx, tok);
        if (nraw) {
            hpc_bitw_put(rw, raw, nraw);
        }
        twin_update(c, q, p, d, y, twin_bitlen(z));
    } else {
        hpc_enc_sym(sb, rw, cx, TWIN_TOK_EXACT);
        hpc_bitw_put(rw, bits, is64 ? 64u : 32u);
        (*exceptions)++;
    }
}

/* Code every value of the message: symbols into enc->sym, raw bits into
 * enc->raw. @return the raw section's length. */
static size_t code_values(ngl_twin_encoder *enc, const void *samples, size_t nsamples,
                          hpc_symbuf *sb)
{
    twin_stream *s = &enc->st;
    const uint32_t C = s->channels;
    const int is64 = s->dtype == NGL_DTYPE_F64;
    hpc_bitw rw;
    hpc_bitw_init(&rw, enc->raw, enc->raw_cap);
    sb->sym = enc->sym;
    sb->n = 0;
    sb->cap = (size_t)enc->cfg.max_samples * C;
    /* Tables are rebuilt at the start of every message and every HPC_CHUNK
     * values (counted from the message start), on both sides alike. */
    twin_refresh(s->ctx, 0);
    size_t v = 0;
    for (size_t i = 0; i < nsamples; i++) {
        for (uint32_t j = 0; j < C; j++, v++) {
            if (v != 0 && v % HPC_CHUNK == 0) {
                twin_refresh(s->ctx, 0);
            }
            uint64_t bits;
            if (is64) {
                memcpy(&bits, (const uint8_t *)samples + 8 * v, 8);
            } else {
                uint32_t b32;
                memcpy(&b32, (const uint8_t *)samples + 4 * v, 4);
                bits = b32;
            }
            code_value(s, j, is64, bits, sb, &rw, &enc->stats.exceptions);
        }
    }
    return hpc_bitw_finish(&rw);
}

/* Write the message whose coded sections are ready. */
static size_t write_message(ngl_twin_encoder *enc, ngl_twin_msg_type type, size_t nsamples,
                            const uint8_t *rans, size_t rans_len, size_t raw_len, uint8_t *dst)
{
    const twin_stream *s = &enc->st;
    int each = 0;
    size_t params = 0;
    if (type == NGL_TWIN_MSG_KEY) {
        key_params_size(enc, &each);
        params =
            varint_size(s->channels) + 2u + (each ? (size_t)s->channels : 1u) * TWIN_BOUND_SIZE;
    }
    size_t rest =
        TWIN_FIXED_HEADER + varint_size(s->seq) + varint_size(nsamples) + params + TWIN_CRC_SIZE;
    if (type != NGL_TWIN_MSG_END) {
        rest += varint_size(rans_len) + rans_len + raw_len;
    }
    /* the length field counts itself */
    size_t total = rest + 1;
    while (varint_size(total) != total - rest) {
        total++;
    }
    uint8_t *p = dst;
    p[0] = TWIN_MAGIC0;
    p[1] = TWIN_MAGIC1;
    p[2] = (uint8_t)((NGL_TWIN_FORMAT_VERSION << 4) | (unsigned)type);
    p[3] = 0;
    hpc_put_u32(p + 4, enc->cfg.stream_id);
    p += TWIN_FIXED_HEADER;
    p += hpc_put_varint(p, total);
    p += hpc_put_varint(p, s->seq);
    p += hpc_put_varint(p, nsamples);
    if (type == NGL_TWIN_MSG_KEY) {
        p += hpc_put_varint(p, s->channels);
        *p++ = s->dtype == NGL_DTYPE_F64 ? TWIN_WIRE_F64 : TWIN_WIRE_F32;
        *p++ = each ? TWIN_LAYOUT_EACH : TWIN_LAYOUT_ONE;
        for (uint32_t j = 0; j < (each ? s->channels : 1u); j++) {
            *p++ = (uint8_t)s->bounds[j].mode;
            hpc_put_f64(p, s->bounds[j].eps);
            p += 8;
        }
    }
    if (type != NGL_TWIN_MSG_END) {
        p += hpc_put_varint(p, rans_len);
        memcpy(p, rans, rans_len);
        p += rans_len;
        memcpy(p, enc->raw, raw_len);
        p += raw_len;
    }
    hpc_put_u32(p, ngl_crc32c(0, dst, (size_t)(p - dst)));
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
        twin_stream_reset(&enc->st);
    }
    hpc_symbuf sb;
    const size_t raw_len = code_values(enc, samples, nsamples, &sb);
    const size_t rans_len = hpc_rans_encode(&sb, enc->rans, enc->rans_cap);
    const uint8_t *rans = enc->rans + enc->rans_cap - rans_len;
    const size_t len = write_message(enc, key ? NGL_TWIN_MSG_KEY : NGL_TWIN_MSG_DELTA, nsamples,
                                     rans, rans_len, raw_len, dst);
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
    const size_t len = write_message(enc, NGL_TWIN_MSG_END, 0, NULL, 0, 0, dst);
    enc->st.seq++;
    enc->key_pending = 1;
    enc->stats.messages++;
    enc->stats.bytes_out += len;
    *out_len = len;
    return NGL_OK;
}
