/* SPDX-License-Identifier: Apache-2.0 */
/*
 * decoder.c -- the receiver side of a stream. A frame is validated in full
 * (header, CRC, back end, every section) before the output or the state is
 * touched, so a rejected frame loses nothing.
 */
#include "ngl_stream.h"

struct ngl_decoder {
    ngl_stream s;
};

ngl_status ngl_decoder_create(const ngl_stream_config *cfg, ngl_decoder **out)
{
    if (out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *out = NULL;
    ngl_decoder *dec = ngl_malloc(sizeof *dec);
    if (dec == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    ngl_status st = ngl_stream_init(&dec->s, cfg, 0);
    if (st != NGL_OK) {
        ngl_free(dec);
        return st;
    }
    *out = dec;
    return NGL_OK;
}

void ngl_decoder_destroy(ngl_decoder *dec)
{
    if (dec == NULL) {
        return;
    }
    ngl_stream_fini(&dec->s);
    ngl_free(dec);
}

void ngl_decoder_reset(ngl_decoder *dec)
{
    if (dec) {
        ngl_stream_reset(&dec->s);
    }
}

uint64_t ngl_decoder_state_hash(const ngl_decoder *dec)
{
    return dec ? ngl_stream_hash(&dec->s) : 0;
}

uint64_t ngl_decoder_step(const ngl_decoder *dec)
{
    return dec ? dec->s.step : 0;
}

/* ---- validation helpers --------------------------------------------- */

static ngl_status check_scales(const uint8_t *p, uint64_t n)
{
    for (uint64_t g = 0; g < n; g++) {
        uint32_t bits = ngl_rd_u32(p + 4 * g);
        /* finite, sign clear (+0.0 allowed) */
        if ((bits & 0x80000000u) || (bits & 0x7f800000u) == 0x7f800000u) {
            return NGL_ERR_BAD_SCALE;
        }
    }
    return NGL_OK;
}

/* INT8: -128 never appears. INT4: nibble 8 never appears; an odd count
 * leaves the last high nibble zero. */
static ngl_status check_codes(const uint8_t *codes, uint64_t coded, int int4)
{
    if (!int4) {
        return memchr(codes, 0x80, (size_t)coded) ? NGL_ERR_BAD_CODE : NGL_OK;
    }
    size_t nbytes = (size_t)NGL_DIV_CEIL(coded, 2u);
    /* A nibble is 8 iff its top bit is set and its low three bits are
     * zero; adding 7 to the low bits sets bit 3 exactly when they are not
     * zero, with no carry out of the nibble. Eight bytes at a time. */
    const uint64_t hi8 = 0x8888888888888888ull, lo7 = 0x7777777777777777ull;
    uint64_t bad64 = 0;
    size_t i = 0;
    for (; i + 8 <= nbytes; i += 8) {
        uint64_t w;
        memcpy(&w, codes + i, 8);
        bad64 |= w & hi8 & ~((w & lo7) + lo7);
    }
    unsigned bad = bad64 != 0;
    for (; i < nbytes; i++) {
        uint8_t b = codes[i];
        bad |= ((b & 0x0fu) == 0x08u) | ((b & 0xf0u) == 0x80u);
    }
    if (bad || ((coded & 1u) && (codes[nbytes - 1] & 0xf0u))) {
        return NGL_ERR_BAD_CODE;
    }
    return NGL_OK;
}

static int code_is_zero(const uint8_t *codes, uint64_t pos, int int4)
{
    if (!int4) {
        return codes[pos] == 0;
    }
    uint8_t b = codes[pos >> 1];
    return ((pos & 1u) ? (b >> 4) : (b & 0x0fu)) == 0;
}

static ngl_status check_mask(const uint8_t *mask, uint32_t nblocks)
{
    size_t nb = ngl_mask_bytes(nblocks);
    if ((nblocks % 8u) && (mask[nb - 1] >> (nblocks % 8u))) {
        return NGL_ERR_BAD_MASK;
    }
    return NGL_OK;
}

/* ---- dense INT8/INT4 ------------------------------------------------- */

static ngl_status decode_dense_body(ngl_stream *s, const uint8_t *body, size_t body_len,
                                    int has_mask, float *out, int accumulate)
{
    const int int4 = s->cfg.codec == NGL_CODEC_INT4;
    const uint32_t n_exc = ngl_rd_u32(body);
    const size_t esz = 4u + s->dsize;
    uint64_t off = NGL_PREAMBLE_COMMON;
    uint64_t n_sent = s->nblocks, coded = s->count;
    const uint8_t *mask = NULL;

    if (has_mask) {
        size_t mb = ngl_mask_bytes(s->nblocks);
        if (off + mb > body_len) {
            return NGL_ERR_BAD_SECTION;
        }
        mask = body + off;
        ngl_status st = check_mask(mask, s->nblocks);
        if (st != NGL_OK) {
            return st;
        }
        off += mb;
        for (uint32_t b = 0; b < s->nblocks; b++) {
            if (ngl_bit_get(mask, b)) {
                n_sent--;
                coded -= ngl_block_len(s, b);
            }
        }
    }
    const uint64_t scales_off = off;
    const uint64_t codes_off = scales_off + 4u * n_sent;
    const uint64_t codes_len = int4 ? NGL_DIV_CEIL(coded, 2u) : coded;
    const uint64_t exc_off = codes_off + codes_len;
    if (n_exc > s->count || exc_off + (uint64_t)n_exc * esz != body_len) {
        return NGL_ERR_BAD_SECTION;
    }
    ngl_status st = check_scales(body + scales_off, n_sent);
    if (st == NGL_OK) {
        st = check_codes(body + codes_off, coded, int4);
    }
    if (st != NGL_OK) {
        return st;
    }
    /* exceptions: strictly increasing, in range, and code 0 where coded */
    {
        uint64_t prev = 0;
        uint32_t b = 0;
        uint64_t skipped_before = 0; /* skipped blocks before block b */
        for (uint32_t e = 0; e < n_exc; e++) {
            uint64_t idx = ngl_rd_u32(body + exc_off + (uint64_t)e * esz);
            if (idx >= s->count || (e > 0 && idx <= prev)) {
                return NGL_ERR_BAD_EXCEPTION;
            }
            prev = idx;
            uint32_t eb = (uint32_t)(idx / s->block);
            while (b < eb) {
                if (mask && ngl_bit_get(mask, b)) {
                    skipped_before++;
                }
                b++;
            }
            if (mask && ngl_bit_get(mask, eb)) {
                continue;
            }
            uint64_t pos = idx - skipped_before * s->block;
            if (!code_is_zero(body + codes_off, pos, int4)) {
                return NGL_ERR_BAD_CODE;
            }
        }
    }

    ngl_dense_job job;
    memset(&job, 0, sizeof job);
    job.count = s->count;
    job.block = s->block;
    job.nblocks = s->nblocks;
    job.qmax = int4 ? NGL_QMAX_INT4 : NGL_QMAX_INT8;
    job.int4 = int4;
    job.pred = s->cfg.predictor;
    job.hist = s->hist;
    job.beta = s->cfg.momentum_beta;
    job.one_minus_beta = 1.0f - s->cfg.momentum_beta;
    job.st1 = (float *)s->st1;
    job.st2 = (float *)s->st2;
    job.gate = s->gate;
    job.skip = mask;
    job.scales = (uint8_t *)(uintptr_t)(body + scales_off);
    job.codes = (uint8_t *)(uintptr_t)(body + codes_off);
    job.exc = (uint8_t *)(uintptr_t)(body + exc_off);
    job.n_exc = n_exc;
    job.exc_dsize = (uint32_t)s->dsize;
    job.dtype = s->cfg.dtype;
    job.out = out;
    job.accumulate = accumulate;
    s->k->decode_dense(&job, 0, s->nblocks, 0);
    return NGL_OK;
}

/* f16/bf16 output: convert the f32 reconstruction, then put exceptions
 * back bit for bit (the conversion would quiet a signalling NaN). */
static void finish_half_output(ngl_stream *s, const uint8_t *body, size_t body_len, void *dst,
                               int accumulate)
{
    const size_t n = (size_t)s->count;
    if (accumulate) {
        if (s->cfg.dtype == NGL_DTYPE_F16) {
            s->k->f16_accumulate(s->x32, dst, n);
        } else {
            s->k->bf16_accumulate(s->x32, dst, n);
        }
        return;
    }
    if (s->cfg.dtype == NGL_DTYPE_F16) {
        s->k->f32_to_f16_sat(s->x32, dst, n);
    } else {
        s->k->f32_to_bf16_sat(s->x32, dst, n);
    }
    const uint32_t n_exc = ngl_rd_u32(body);
    const uint8_t *exc = body + body_len - (size_t)n_exc * 6u;
    uint16_t *d = (uint16_t *)dst;
    for (uint32_t e = 0; e < n_exc; e++) {
        d[ngl_rd_u32(exc + 6u * e)] = ngl_rd_u16(exc + 6u * e + 4);
    }
}

/* ---- raw ------------------------------------------------------------- */

static ngl_status decode_raw_body(ngl_stream *s, const uint8_t *body, size_t body_len, void *dst,
                                  int accumulate)
{
    const size_t n = (size_t)s->count;
    if (body_len != NGL_PREAMBLE_COMMON + n * s->dsize) {
        return NGL_ERR_BAD_SECTION;
    }
    if (ngl_rd_u32(body) != 0) {
        return NGL_ERR_BAD_EXCEPTION;
    }
    const uint8_t *p = body + NGL_PREAMBLE_COMMON;
    if (!accumulate) {
        if (n) {
            memcpy(dst, p, n * s->dsize);
        }
        return NGL_OK;
    }
    switch (s->cfg.dtype) {
    case NGL_DTYPE_F32: {
        float *d = (float *)dst;
        for (size_t i = 0; i < n; i++) {
            d[i] += ngl_bits_f32(ngl_rd_u32(p + 4 * i));
        }
        break;
    }
    case NGL_DTYPE_F64: {
        double *d = (double *)dst;
        for (size_t i = 0; i < n; i++) {
            d[i] += ngl_bits_f64(ngl_rd_u64(p + 8 * i));
        }
        break;
    }
    case NGL_DTYPE_F16: {
        uint16_t *d = (uint16_t *)dst;
        for (size_t i = 0; i < n; i++) {
            d[i] = ngl_f32_to_f16(ngl_f16_to_f32(d[i]) + ngl_f16_to_f32(ngl_rd_u16(p + 2 * i)));
        }
        break;
    }
    case NGL_DTYPE_BF16: {
        uint16_t *d = (uint16_t *)dst;
        for (size_t i = 0; i < n; i++) {
            d[i] = ngl_f32_to_bf16(ngl_bf16_to_f32(d[i]) + ngl_bf16_to_f32(ngl_rd_u16(p + 2 * i)));
        }
        break;
    }
    }
    return NGL_OK;
}

/* ---- entry point ----------------------------------------------------- */

ngl_status ngl_decoder_decode(ngl_decoder *dec, const void *src, size_t src_len, void *dst,
                              unsigned flags)
{
    if (dec == NULL || src == NULL || (dst == NULL && dec->s.count > 0) ||
        (flags & ~NGL_DECODE_ACCUMULATE) != 0) {
        return NGL_ERR_INVALID_ARG;
    }
    ngl_stream *s = &dec->s;
    const int accumulate = (flags & NGL_DECODE_ACCUMULATE) != 0;
    ngl_frame_info fi;
    ngl_status st = ngl_wire_parse((const uint8_t *)src, src_len, 1, &fi);
    if (st != NGL_OK) {
        return st;
    }
    if (fi.count != s->count) {
        return NGL_ERR_COUNT_MISMATCH;
    }
    if (fi.codec != s->cfg.codec || fi.dtype != s->cfg.dtype ||
        fi.predictor != s->cfg.predictor || fi.block_size != s->block ||
        ((fi.flags & NGL_FLAG_TOPK) != 0) != (s->topk != 0)) {
        return NGL_ERR_CONFIG_MISMATCH;
    }
    if (fi.stream_id != s->cfg.stream_id) {
        return NGL_ERR_STREAM_MISMATCH;
    }
    if (fi.step != s->step) {
        return NGL_ERR_STEP_MISMATCH;
    }

    const uint8_t *payload = (const uint8_t *)src + NGL_FRAME_HEADER_SIZE;
    const uint8_t *body = payload;
    size_t body_len = fi.payload_len;
    unsigned backend = ngl_flags_backend(fi.flags);
    if (backend != NGL_LOSSLESS_NONE) {
        if (!ngl_backend_available(backend)) {
            return NGL_ERR_BACKEND_UNAVAILABLE;
        }
        if (s->body == NULL) {
            return NGL_ERR_CONFIG_MISMATCH; /* stream configured without back end */
        }
        if (fi.payload_len < 4) {
            return NGL_ERR_BAD_BACKEND;
        }
        body_len = ngl_rd_u32(payload);
        if (body_len > s->body_cap || body_len < NGL_PREAMBLE_COMMON) {
            return NGL_ERR_BAD_BACKEND;
        }
        st = ngl_backend_decompress(&s->backend, backend, payload + 4, fi.payload_len - 4,
                                    s->body, body_len);
        if (st != NGL_OK) {
            return st;
        }
        body = s->body;
    }
    if (body_len < NGL_PREAMBLE_COMMON) {
        return NGL_ERR_BAD_SECTION;
    }
    st = ngl_check_preamble(s, body);
    if (st != NGL_OK) {
        return st;
    }

    switch (s->cfg.codec) {
    case NGL_CODEC_RAW:
        st = decode_raw_body(s, body, body_len, dst, accumulate);
        break;
    case NGL_CODEC_EPS:
        st = ngl_eps_decode_body(s, body, body_len, dst, accumulate);
        break;
    case NGL_CODEC_INT8:
    case NGL_CODEC_INT4: {
        const int has_mask = (fi.flags & NGL_FLAG_MASK) != 0;
        float *out = s->x32 ? s->x32 : (float *)dst;
        const int acc32 = accumulate && s->x32 == NULL;
        if (s->topk) {
            st = ngl_topk_decode_body(s, body, body_len, has_mask, out, acc32, NULL);
        } else {
            st = decode_dense_body(s, body, body_len, has_mask, out, acc32);
        }
        if (st == NGL_OK && s->x32 && s->count > 0) {
            finish_half_output(s, body, body_len, dst, accumulate);
        }
        break;
    }
    }
    if (st != NGL_OK) {
        return st;
    }
    ngl_stream_advance(s);
    return NGL_OK;
}
