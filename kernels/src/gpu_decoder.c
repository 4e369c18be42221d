/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gpu_decoder.c -- ngl_cuda_decoder: the host validates a whole frame with
 * core's ngl_frame_validate() (the validator core's decoder runs, so both
 * accept the same frames and give the same status for every other one)
 * before anything is enqueued; the GPU then reconstructs, writes the output
 * and updates the state. kernels/tests/test_gpu_reject.c holds the two to
 * the same verdict on every corrupted frame it makes.
 */
#include "ngl_gpu_host.h"

#include <stdlib.h>

struct ngl_cuda_decoder {
    ngl_gpu_geom g;
    uint64_t step;
    uint32_t hist;
    int last_err;
    int broken;

    float *st1, *st2;
    uint8_t *gate;
    uint8_t *skip;
    uint32_t *sent;
    uint8_t *scales, *codes, *exc;
    uint32_t *sel;

    uint32_t *h_sent; /* pinned staging */
    uint32_t *h_sel;

    int pending;
    ngl_gpu_event ev; /* end of the submitted decode */
    ngl_gpu_stream stream;
};

static void dec_free(ngl_cuda_decoder *d)
{
    void *dev[] = {d->st1, d->st2, d->gate, d->skip, d->sent, d->scales, d->codes, d->exc, d->sel};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) {
        if (dev[i]) {
            ngl_gpu_free(dev[i]);
        }
    }
    if (d->h_sent) {
        ngl_gpu_host_free(d->h_sent);
    }
    if (d->h_sel) {
        ngl_gpu_host_free(d->h_sel);
    }
    if (d->ev) {
        ngl_gpu_event_destroy(d->ev);
    }
    free(d);
}

static ngl_status dec_create(const ngl_stream_config *cfg, ngl_gpu_stream stream, int sync,
                             ngl_cuda_decoder **out)
{
    if (out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (ngl_cuda_device_count() <= 0) {
        return NGL_ERR_UNSUPPORTED;
    }
    ngl_cuda_decoder *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    ngl_status st = ngl_gpu_geom_init(&d->g, cfg);
    if (st != NGL_OK) {
        free(d);
        return st;
    }
    const ngl_gpu_geom *g = &d->g;
    const size_t n = (size_t)g->count;
    const size_t nb = g->nblocks;
    const size_t ncodes = g->topk ? (size_t)g->k_max : n;
    int *err = &d->last_err;
#define DALLOC(ptr, bytes)                                                                         \
    do {                                                                                           \
        if (st == NGL_OK) {                                                                        \
            st = ngl_gpu_alloc((void **)&(ptr), (bytes), err);                                     \
        }                                                                                          \
    } while (0)
    if (cfg->predictor != NGL_PRED_NONE) {
        DALLOC(d->st1, n * sizeof(float));
        DALLOC(d->gate, nb);
    }
    if (cfg->predictor == NGL_PRED_LINEAR) {
        DALLOC(d->st2, n * sizeof(float));
    }
    DALLOC(d->skip, g->mask_bytes);
    DALLOC(d->sent, nb * sizeof(uint32_t));
    DALLOC(d->scales, 4u * (g->topk ? (size_t)g->ngroups_max : nb));
    DALLOC(d->codes, g->int4 ? NGL_DIV_CEIL(ncodes, 2u) : ncodes);
    DALLOC(d->exc, n * g->esz);
    if (g->topk) {
        DALLOC(d->sel, (size_t)g->k_max * sizeof(uint32_t));
    }
#undef DALLOC
    if (st == NGL_OK) {
        st = ngl_gpu_alloc_host((void **)&d->h_sent, nb * sizeof(uint32_t), err);
    }
    if (st == NGL_OK && g->topk) {
        /* the validator's index list: k_max entries, one spare as core's */
        st = ngl_gpu_alloc_host((void **)&d->h_sel, ((size_t)g->k_max + 1u) * 4u, err);
    }
    if (st == NGL_OK) {
        st = ngl_gpu_check(ngl_gpu_event_create(&d->ev), err, "event create");
    }
    if (st == NGL_OK) {
        st = ngl_gpu_state_zero(g, d->st1, d->st2, d->gate, NULL, stream, sync, err);
    }
    if (st != NGL_OK) {
        dec_free(d);
        return st;
    }
    *out = d;
    return NGL_OK;
}

ngl_status ngl_cuda_decoder_create(const ngl_stream_config *cfg, ngl_cuda_decoder **out)
{
    return dec_create(cfg, NULL, 1, out);
}

ngl_status ngl_cuda_decoder_create_on(const ngl_stream_config *cfg, ngl_cuda_stream stream,
                                      ngl_cuda_decoder **out)
{
    return dec_create(cfg, (ngl_gpu_stream)stream, 0, out);
}

void ngl_cuda_decoder_destroy(ngl_cuda_decoder *dec)
{
    if (dec == NULL) {
        return;
    }
    if (dec->pending) {
        (void)ngl_gpu_stream_sync(dec->stream);
    }
    dec_free(dec);
}

ngl_status ngl_cuda_decoder_reset(ngl_cuda_decoder *dec)
{
    if (dec == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    if (dec->pending) {
        (void)ngl_gpu_stream_sync(dec->stream);
        dec->pending = 0;
    }
    dec->step = 0;
    dec->hist = 0;
    ngl_status st =
        ngl_gpu_state_zero(&dec->g, dec->st1, dec->st2, dec->gate, NULL, NULL, 1, &dec->last_err);
    dec->broken = st != NGL_OK;
    return st;
}

uint64_t ngl_cuda_decoder_step(const ngl_cuda_decoder *dec)
{
    return dec ? dec->step : 0;
}

int ngl_cuda_decoder_cuda_error(const ngl_cuda_decoder *dec)
{
    return dec ? dec->last_err : 0;
}

uint64_t ngl_cuda_decoder_state_hash(ngl_cuda_decoder *dec)
{
    if (dec == NULL) {
        return 0;
    }
    ngl_status st;
    return ngl_gpu_state_hash(&dec->g, dec->step, dec->hist, dec->st1, dec->st2, dec->gate,
                              &dec->last_err, &st);
}

ngl_status ngl_cuda_decoder_get_state(ngl_cuda_decoder *dec, float *st1, float *st2, uint8_t *gate)
{
    if (dec == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    return ngl_gpu_state_get(&dec->g, NULL, dec->st1, dec->st2, dec->gate, NULL, st1, st2, gate,
                             &dec->last_err);
}

/* The frame against the stream, with core's validator (no back end on the
 * GPU path: ngl_gpu_geom_init() refuses one, so the scratch has no body);
 * for a dense frame with a mask, also each block's index among the sent
 * blocks, for the kernel. */
static ngl_status dec_validate(ngl_cuda_decoder *dec, const uint8_t *src, size_t src_len,
                               ngl_frame_view *v)
{
    const ngl_frame_scratch scratch = {NULL, NULL, 0, dec->h_sel, NULL};
    ngl_status st = ngl_frame_validate(&dec->g.cfg, dec->step, src, src_len, &scratch, v);
    if (st == NGL_OK && v->mask != NULL && !dec->g.topk) {
        uint64_t n_sent, coded;
        ngl_gpu_sent_index(&dec->g, v->mask, dec->h_sent, &n_sent, &coded);
    }
    return st;
}

ngl_status ngl_cuda_decoder_submit(ngl_cuda_decoder *dec, const void *src, size_t src_len,
                                   void *d_dst, unsigned flags, ngl_cuda_stream stream)
{
    if (dec == NULL || src == NULL || (d_dst == NULL && dec->g.count > 0) ||
        (flags & ~NGL_DECODE_ACCUMULATE) != 0 || dec->pending) {
        return NGL_ERR_INVALID_ARG;
    }
    if (dec->broken) {
        return NGL_ERR_DEVICE;
    }
    const ngl_gpu_geom *g = &dec->g;
    ngl_frame_view f;
    ngl_status st = dec_validate(dec, (const uint8_t *)src, src_len, &f);
    if (st != NGL_OK) {
        return st;
    }

    ngl_gpu_args a;
    ngl_gpu_args_init(&a, g, dec->hist, dec->st1, dec->st2, dec->gate);
    a.dst = d_dst;
    a.dst_vec = ((uintptr_t)d_dst & 15u) == 0;
    a.accumulate = (flags & NGL_DECODE_ACCUMULATE) != 0;
    a.in_scales = dec->scales;
    a.in_codes = dec->codes;
    a.in_exc = dec->exc;
    a.in_n_exc = f.n_exc;
    a.in_k = f.k;
    a.in_sel = dec->sel;
    if (f.mask != NULL && !g->topk) {
        a.skip = dec->skip;
        a.sent = dec->sent;
    }
    int e = 0;
    if (a.skip != NULL) {
        e = ngl_gpu_memcpy_async(dec->skip, f.mask, g->mask_bytes, stream);
        if (e == 0) {
            e = ngl_gpu_memcpy_async(dec->sent, dec->h_sent, (size_t)g->nblocks * 4u, stream);
        }
    }
    if (e == 0 && f.n_scales > 0) {
        e = ngl_gpu_memcpy_async(dec->scales, f.scales, 4u * (size_t)f.n_scales, stream);
    }
    if (e == 0 && f.codes_len > 0) {
        e = ngl_gpu_memcpy_async(dec->codes, f.codes, (size_t)f.codes_len, stream);
    }
    if (e == 0 && f.n_exc > 0) {
        e = ngl_gpu_memcpy_async(dec->exc, f.exc, (size_t)f.n_exc * g->esz, stream);
    }
    if (e == 0 && f.k > 0) {
        e = ngl_gpu_memcpy_async(dec->sel, f.sel, (size_t)f.k * 4u, stream);
    }
    if (e == 0) {
        e = ngl_gpu_launch(g->topk ? NGL_GK_DEC_TOPK : NGL_GK_DEC_DENSE, &a, stream);
    }
    if (e == 0) {
        e = ngl_gpu_event_record(dec->ev, stream);
    }
    if (e != 0) {
        dec->broken = 1;
        return ngl_gpu_check(e, &dec->last_err, "decode submit");
    }
    dec->pending = 1;
    dec->stream = stream;
    dec->step++;
    if (dec->hist < 2) {
        dec->hist++;
    }
    return NGL_OK;
}

ngl_status ngl_cuda_decoder_poll(ngl_cuda_decoder *dec, int *done)
{
    if (dec == NULL || done == NULL || !dec->pending) {
        return NGL_ERR_INVALID_ARG;
    }
    *done = 0;
    int e = ngl_gpu_event_query(dec->ev, done);
    if (e != 0) {
        *done = 0;
        dec->pending = 0;
        dec->broken = 1;
        return ngl_gpu_check(e, &dec->last_err, "decode completion");
    }
    if (*done) {
        dec->pending = 0;
    }
    return NGL_OK;
}

ngl_status ngl_cuda_decoder_finish(ngl_cuda_decoder *dec)
{
    if (dec == NULL || !dec->pending) {
        return NGL_ERR_INVALID_ARG;
    }
    dec->pending = 0;
    int e = ngl_gpu_event_sync(dec->ev);
    if (e != 0) {
        dec->broken = 1;
        return ngl_gpu_check(e, &dec->last_err, "decode finish");
    }
    return NGL_OK;
}

ngl_status ngl_cuda_decode(ngl_cuda_decoder *dec, const void *src, size_t src_len, void *d_dst,
                           unsigned flags, ngl_cuda_stream stream)
{
    ngl_status st = ngl_cuda_decoder_submit(dec, src, src_len, d_dst, flags, stream);
    if (st != NGL_OK) {
        return st;
    }
    return ngl_cuda_decoder_finish(dec);
}
