/* SPDX-License-Identifier: Apache-2.0 */
/* encoder.c -- the sender side of a stream: one frame per step. */
#include "ngl_stream.h"

struct ngl_encoder {
    ngl_stream s;
    float *ef;          /* error feedback, count floats (INT8/INT4) */
    uint8_t *user_mask; /* one-shot override from set_block_mask() */
    int user_mask_set;
    ngl_encoder_stats stats;
};

ngl_status ngl_encoder_create(const ngl_stream_config *cfg, ngl_encoder **out)
{
    if (out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *out = NULL;
    ngl_encoder *enc = ngl_malloc(sizeof *enc);
    if (enc == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    ngl_status st = ngl_stream_init(&enc->s, cfg, 1);
    if (st != NGL_OK) {
        goto fail_free;
    }
    if (enc->s.cfg.error_feedback) {
        enc->ef = ngl_malloc((size_t)enc->s.count * sizeof(float));
        if (enc->ef == NULL) {
            st = NGL_ERR_NO_MEMORY;
            goto fail_stream;
        }
    }
    if (enc->s.mask != NULL) {
        enc->user_mask = ngl_malloc(ngl_mask_bytes(enc->s.nblocks));
        if (enc->user_mask == NULL) {
            st = NGL_ERR_NO_MEMORY;
            goto fail_ef;
        }
    }
    *out = enc;
    return NGL_OK;

fail_ef:
    ngl_free(enc->ef);
fail_stream:
    ngl_stream_fini(&enc->s);
fail_free:
    ngl_free(enc);
    return st;
}

void ngl_encoder_destroy(ngl_encoder *enc)
{
    if (enc == NULL) {
        return;
    }
    ngl_free(enc->user_mask);
    ngl_free(enc->ef);
    ngl_stream_fini(&enc->s);
    ngl_free(enc);
}

void ngl_encoder_reset(ngl_encoder *enc)
{
    if (enc == NULL) {
        return;
    }
    ngl_stream_reset(&enc->s);
    if (enc->ef) {
        memset(enc->ef, 0, (size_t)enc->s.count * sizeof(float));
    }
    enc->user_mask_set = 0;
    memset(&enc->stats, 0, sizeof enc->stats);
}

uint64_t ngl_encoder_state_hash(const ngl_encoder *enc)
{
    return enc ? ngl_stream_hash(&enc->s) : 0;
}

uint64_t ngl_encoder_step(const ngl_encoder *enc)
{
    return enc ? enc->s.step : 0;
}

void ngl_encoder_get_stats(const ngl_encoder *enc, ngl_encoder_stats *out)
{
    if (enc && out) {
        *out = enc->stats;
    }
}

const ngl_stream *ngl_encoder_stream(const ngl_encoder *enc)
{
    return enc ? &enc->s : NULL;
}

const float *ngl_encoder_ef(const ngl_encoder *enc)
{
    return enc ? enc->ef : NULL;
}

ngl_status ngl_encoder_set_block_mask(ngl_encoder *enc, const uint8_t *skip_bits)
{
    if (enc == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    if (enc->user_mask == NULL) {
        return skip_bits ? NGL_ERR_UNSUPPORTED : NGL_OK; /* not a quantizer codec */
    }
    if (skip_bits == NULL) {
        enc->user_mask_set = 0;
        return NGL_OK;
    }
    ngl_mask_copy(enc->user_mask, skip_bits, enc->s.nblocks);
    enc->user_mask_set = 1;
    return NGL_OK;
}

/* Fill s->mask for this step. @return 1 if any block is skipped. */
static int encoder_build_mask(ngl_encoder *enc)
{
    ngl_stream *s = &enc->s;
    const uint8_t *user = enc->user_mask_set ? enc->user_mask : NULL;
    enc->user_mask_set = 0;
    return ngl_mask_build(s->mask, s->nblocks, user, s->cfg.mask_fraction, s->step);
}

/* Dense INT8/INT4 body: [preamble][mask][scales][codes][exceptions]. */
static ngl_status encode_dense_body(ngl_encoder *enc, const float *x, const void *src_raw,
                                    int has_mask, uint8_t *body, size_t *body_len, uint64_t *n_exc,
                                    uint64_t *gated)
{
    ngl_stream *s = &enc->s;
    const int int4 = s->cfg.codec == NGL_CODEC_INT4;
    size_t off = NGL_PREAMBLE_COMMON;
    uint64_t n_sent = s->nblocks, coded = s->count;

    if (has_mask) {
        size_t mb = ngl_mask_bytes(s->nblocks);
        memcpy(body + off, s->mask, mb);
        off += mb;
        ngl_mask_count(s->mask, s->nblocks, s->block, s->count, &n_sent, &coded);
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
    job.skip = has_mask ? s->mask : NULL;
    job.scales = body + off;
    off += 4u * (size_t)n_sent;
    job.codes = body + off;
    size_t codes_len = (size_t)ngl_codes_bytes(coded, int4);
    if (int4 && codes_len > 0) {
        body[off + codes_len - 1] = 0; /* the unused high nibble must be 0 */
    }
    off += codes_len;
    job.exc = body + off;
    job.exc_dsize = (uint32_t)s->dsize;
    job.dtype = s->cfg.dtype;
    job.x = x;
    job.src_raw = src_raw;
    job.ef = enc->ef;
    job.key = ngl_rng_key_make(s->cfg.seed, s->cfg.stream_id, s->step);
    job.rbuf = s->rbuf;

    s->k->encode_dense(&job, 0, s->nblocks, 0);

    ngl_write_preamble(&s->cfg, body, job.n_exc);
    *body_len = off + (size_t)job.n_exc * (4u + s->dsize);
    *n_exc = job.n_exc;
    *gated = job.gated_blocks;
    return NGL_OK;
}

static size_t encode_raw_body(const ngl_stream *s, const void *src, uint8_t *body)
{
    ngl_write_preamble(&s->cfg, body, 0);
    size_t bytes = (size_t)s->count * s->dsize;
    /* The wire is little-endian and so are the hosts we build for. */
    if (bytes) {
        memcpy(body + NGL_PREAMBLE_COMMON, src, bytes);
    }
    return NGL_PREAMBLE_COMMON + bytes;
}

/* Choose the back end and write the payload after the header. */
static size_t encoder_emit_payload(ngl_stream *s, const uint8_t *body, size_t body_len,
                                   uint8_t *payload, unsigned *backend_out)
{
    unsigned backend = (unsigned)s->cfg.lossless;
    if (backend == NGL_LOSSLESS_AUTO) {
        backend = ngl_backend_available(NGL_LOSSLESS_ZSTD) ? NGL_LOSSLESS_ZSTD : NGL_LOSSLESS_RLE;
    }
    *backend_out = NGL_LOSSLESS_NONE;
    if (backend == NGL_LOSSLESS_NONE) {
        return body_len; /* body was written in place */
    }
    /* Keep the back end only if it saves bytes, prefix included. */
    if (body_len > 5) {
        size_t c =
            ngl_backend_compress(&s->backend, backend, body, body_len, payload + 4, body_len - 5);
        if (c > 0) {
            ngl_wr_u32(payload, (uint32_t)body_len);
            *backend_out = backend;
            return 4 + c;
        }
    }
    memcpy(payload, body, body_len);
    return body_len;
}

ngl_status ngl_encoder_encode(ngl_encoder *enc, const void *src, void *dst, size_t dst_cap,
                              size_t *out_len)
{
    if (enc == NULL || dst == NULL || out_len == NULL || (src == NULL && enc->s.count > 0)) {
        return NGL_ERR_INVALID_ARG;
    }
    ngl_stream *s = &enc->s;
    if (dst_cap < ngl_encode_bound(&s->cfg)) {
        return NGL_ERR_DST_TOO_SMALL;
    }
    uint8_t *frame = (uint8_t *)dst;
    uint8_t *payload = frame + NGL_FRAME_HEADER_SIZE;
    const int in_place = s->cfg.lossless == NGL_LOSSLESS_NONE;
    uint8_t *body = in_place ? payload : s->body;
    size_t body_len = 0;
    uint64_t n_exc = 0, gated = 0;
    uint16_t flags = 0;
    ngl_status st = NGL_OK;

    const float *x = (const float *)src;
    if (s->x32 != NULL && s->count > 0) {
        if (s->cfg.dtype == NGL_DTYPE_F16) {
            s->k->f16_to_f32(src, s->x32, (size_t)s->count);
        } else {
            s->k->bf16_to_f32(src, s->x32, (size_t)s->count);
        }
        x = s->x32;
    }

    switch (s->cfg.codec) {
    case NGL_CODEC_RAW: body_len = encode_raw_body(s, src, body); break;
    case NGL_CODEC_EPS: st = ngl_eps_encode_body(s, src, body, &body_len, &n_exc, &gated); break;
    case NGL_CODEC_INT8:
    case NGL_CODEC_INT4: {
        int has_mask = encoder_build_mask(enc);
        if (has_mask) {
            flags |= NGL_FLAG_MASK;
        }
        if (enc->ef) {
            flags |= NGL_FLAG_EF;
        }
        if (s->topk) {
            flags |= NGL_FLAG_TOPK;
            st = ngl_topk_encode_body(s, enc->ef, x, src, has_mask ? s->mask : NULL, body,
                                      &body_len, &n_exc, &gated);
        } else {
            st = encode_dense_body(enc, x, src, has_mask, body, &body_len, &n_exc, &gated);
        }
        break;
    }
    }
    if (st != NGL_OK) {
        return st;
    }

    unsigned backend = NGL_LOSSLESS_NONE;
    size_t payload_len =
        in_place ? body_len : encoder_emit_payload(s, body, body_len, payload, &backend);
    flags |= (uint16_t)(backend << NGL_FLAG_BACKEND_SHIFT);

    *out_len = ngl_frame_seal(frame, &s->cfg, flags, s->step, payload_len);

    ngl_stream_advance(s);
    enc->stats.steps++;
    enc->stats.bytes_in += s->count * s->dsize;
    enc->stats.bytes_out += *out_len;
    enc->stats.exceptions += n_exc;
    enc->stats.gated_blocks += gated;
    return NGL_OK;
}
