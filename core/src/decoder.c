/* SPDX-License-Identifier: Apache-2.0 */
/*
 * decoder.c -- the receiver side of a stream. A frame is validated in full
 * (header, CRC, back end, every section: ngl_frame_validate() in frame.c)
 * before the output or the state is touched, so a rejected frame loses
 * nothing.
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

/* ---- dense INT8/INT4 ------------------------------------------------- */

static void decode_dense_body(ngl_stream *s, const ngl_frame_view *v, float *out, int accumulate)
{
    const int int4 = s->cfg.codec == NGL_CODEC_INT4;
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
    job.skip = v->mask;
    job.scales = (uint8_t *)(uintptr_t)v->scales;
    job.codes = (uint8_t *)(uintptr_t)v->codes;
    job.exc = (uint8_t *)(uintptr_t)v->exc;
    job.n_exc = v->n_exc;
    job.exc_dsize = (uint32_t)s->dsize;
    job.dtype = s->cfg.dtype;
    job.out = out;
    job.accumulate = accumulate;
    s->k->decode_dense(&job, 0, s->nblocks, 0);
}

/* f16/bf16 output: convert the f32 reconstruction, then put exceptions
 * back bit for bit (the conversion would quiet a signalling NaN). */
static void finish_half_output(ngl_stream *s, const ngl_frame_view *v, void *dst, int accumulate)
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
    const uint8_t *exc = v->exc;
    uint16_t *d = (uint16_t *)dst;
    for (uint32_t e = 0; e < v->n_exc; e++) {
        d[ngl_rd_u32(exc + 6u * e)] = ngl_rd_u16(exc + 6u * e + 4);
    }
}

/* ---- raw ------------------------------------------------------------- */

static void decode_raw_body(ngl_stream *s, const ngl_frame_view *v, void *dst, int accumulate)
{
    const size_t n = (size_t)s->count;
    const uint8_t *p = v->codes;
    if (!accumulate) {
        if (n) {
            memcpy(dst, p, n * s->dsize);
        }
        return;
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
    const ngl_frame_scratch scratch = {&s->backend, s->body, s->body_cap, s->tk_sel, s->flags};
    ngl_frame_view v;
    ngl_status st =
        ngl_frame_validate(&s->cfg, s->step, (const uint8_t *)src, src_len, &scratch, &v);
    if (st != NGL_OK) {
        return st;
    }

    /* Everything checked: reconstruct, write the output, update the state. */
    switch (s->cfg.codec) {
    case NGL_CODEC_RAW: decode_raw_body(s, &v, dst, accumulate); break;
    case NGL_CODEC_EPS: ngl_eps_decode_body(s, &v, dst, accumulate); break;
    case NGL_CODEC_INT8:
    case NGL_CODEC_INT4: {
        float *out = s->x32 ? s->x32 : (float *)dst;
        const int acc32 = accumulate && s->x32 == NULL;
        if (s->topk) {
            ngl_topk_decode_body(s, &v, out, acc32);
        } else {
            decode_dense_body(s, &v, out, acc32);
        }
        if (s->x32 && s->count > 0) {
            finish_half_output(s, &v, dst, accumulate);
        }
        break;
    }
    }
    ngl_stream_advance(s);
    return NGL_OK;
}
