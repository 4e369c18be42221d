/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gpu_encoder.c -- ngl_cuda_encoder: the GPU computes the body sections
 * (scales, codes, exceptions, Top-K indices) and the closed-loop state; the
 * host lays out the body exactly as core's encoder.c / topk.c do and seals
 * the frame with core's wire code.
 */
#include "ngl_gpu_host.h"

#include <stdlib.h>

struct ngl_cuda_encoder {
    ngl_gpu_geom g;
    uint64_t step;
    uint32_t hist;
    int last_err;
    int broken; /* a CUDA call failed: state unknown until reset */

    /* device: state */
    float *ef, *st1, *st2;
    uint8_t *gate;
    /* device: mask, sections and scratch */
    uint8_t *skip;
    uint32_t *sent;
    ngl_gpu_ctl *ctl;
    uint8_t *scales, *codes, *exc;
    uint32_t *exc_idx, *blk_exc;
    float *tk_r, *tk_inv;
    uint32_t *tk_key, *tk_hist, *tk_tiles, *tk_sel, *tk_ga;
    uint8_t *tk_bitmap, *tk_late;

    /* pinned host staging */
    ngl_gpu_ctl *h_ctl;
    uint8_t *h_mask;
    uint32_t *h_sent;
    uint32_t *h_sel;
    uint8_t *h_late;

    /* one-shot mask override (ngl_cuda_encoder_set_block_mask) */
    uint8_t *user_mask;
    int user_mask_set;

    /* the submitted step: phase 1 waits for the kernels and the control
     * block, phase 2 for the section copies that depend on it */
    int pending;
    int phase;
    ngl_gpu_event ev; /* marks the end of the current phase's work */
    ngl_gpu_stream stream;
    uint8_t *frame;
    uint64_t frame_step;
    int has_mask;
    size_t exc_off;    /* dense: body offset of the exception section */
    size_t idx_off;    /* Top-K: body offset of the index section */
    size_t body_len;   /* known once phase 1 is over */
    uint32_t n_exc;    /* exception entries in the frame */
    uint32_t n_late;   /* Top-K: entries to merge on the host */
    unsigned topk_fmt; /* Top-K: index format */
};

static void enc_free(ngl_cuda_encoder *e)
{
    void *dev[] = {e->ef,    e->st1,       e->st2,    e->gate,    e->skip,     e->sent,
                   e->ctl,   e->scales,    e->codes,  e->exc,     e->exc_idx,  e->blk_exc,
                   e->tk_r,  e->tk_inv,    e->tk_key, e->tk_hist, e->tk_tiles, e->tk_sel,
                   e->tk_ga, e->tk_bitmap, e->tk_late};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) {
        if (dev[i]) {
            ngl_gpu_free(dev[i]);
        }
    }
    void *host[] = {e->h_ctl, e->h_mask, e->h_sent, e->h_sel, e->h_late};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) {
        if (host[i]) {
            ngl_gpu_host_free(host[i]);
        }
    }
    if (e->ev) {
        ngl_gpu_event_destroy(e->ev);
    }
    free(e->user_mask);
    free(e);
}

static ngl_status enc_create(const ngl_stream_config *cfg, ngl_gpu_stream stream, int sync,
                             ngl_cuda_encoder **out)
{
    if (out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (ngl_cuda_device_count() <= 0) {
        return NGL_ERR_UNSUPPORTED;
    }
    ngl_cuda_encoder *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    ngl_status st = ngl_gpu_geom_init(&e->g, cfg);
    if (st != NGL_OK) {
        free(e);
        return st;
    }
    const ngl_gpu_geom *g = &e->g;
    const size_t n = (size_t)g->count;
    const size_t nb = g->nblocks;
    int *err = &e->last_err;
#define DALLOC(ptr, bytes)                                                                         \
    do {                                                                                           \
        if (st == NGL_OK) {                                                                        \
            st = ngl_gpu_alloc((void **)&(ptr), (bytes), err);                                     \
        }                                                                                          \
    } while (0)
#define HALLOC(ptr, bytes)                                                                         \
    do {                                                                                           \
        if (st == NGL_OK) {                                                                        \
            st = ngl_gpu_alloc_host((void **)&(ptr), (bytes), err);                                \
        }                                                                                          \
    } while (0)
    if (g->ef) {
        DALLOC(e->ef, n * sizeof(float));
    }
    if (cfg->predictor != NGL_PRED_NONE) {
        DALLOC(e->st1, n * sizeof(float));
        DALLOC(e->gate, nb);
    }
    if (cfg->predictor == NGL_PRED_LINEAR) {
        DALLOC(e->st2, n * sizeof(float));
    }
    DALLOC(e->skip, g->mask_bytes);
    DALLOC(e->sent, nb * sizeof(uint32_t));
    DALLOC(e->ctl, sizeof(ngl_gpu_ctl));
    DALLOC(e->exc, n * g->esz);
    HALLOC(e->h_ctl, sizeof(ngl_gpu_ctl));
    HALLOC(e->h_mask, g->mask_bytes);
    HALLOC(e->h_sent, nb * sizeof(uint32_t));
    if (g->topk) {
        const size_t ng = (size_t)g->ngroups_max;
        const size_t km = (size_t)g->k_max;
        DALLOC(e->scales, ng * 4u);
        DALLOC(e->codes, g->int4 ? NGL_DIV_CEIL(km, 2u) : km);
        DALLOC(e->tk_r, n * sizeof(float));
        DALLOC(e->tk_key, n * sizeof(uint32_t));
        DALLOC(e->tk_hist, 3u * NGL_GPU_HIST_BINS * sizeof(uint32_t));
        DALLOC(e->tk_tiles, 6u * (size_t)g->ntiles * sizeof(uint32_t));
        DALLOC(e->tk_sel, km * sizeof(uint32_t));
        DALLOC(e->tk_inv, ng * sizeof(float));
        DALLOC(e->tk_bitmap, NGL_DIV_CEIL(n, 8u));
        if (cfg->predictor != NGL_PRED_NONE) {
            DALLOC(e->tk_ga, 2u * nb * sizeof(uint32_t));
        }
        DALLOC(e->tk_late, km * g->esz);
        HALLOC(e->h_sel, km * sizeof(uint32_t));
        HALLOC(e->h_late, km * g->esz);
    } else {
        DALLOC(e->scales, nb * 4u);
        DALLOC(e->codes, g->int4 ? NGL_DIV_CEIL(n, 2u) : n);
        DALLOC(e->exc_idx, n * sizeof(uint32_t));
        DALLOC(e->blk_exc, nb * sizeof(uint32_t));
    }
#undef DALLOC
#undef HALLOC
    if (st == NGL_OK) {
        e->user_mask = calloc(1, g->mask_bytes + 1u);
        if (e->user_mask == NULL) {
            st = NGL_ERR_NO_MEMORY;
        }
    }
    if (st == NGL_OK) {
        st = ngl_gpu_check(ngl_gpu_event_create(&e->ev), err, "event create");
    }
    if (st == NGL_OK) {
        st = ngl_gpu_state_zero(g, e->st1, e->st2, e->gate, e->ef, stream, sync, err);
    }
    if (st != NGL_OK) {
        enc_free(e);
        return st;
    }
    *out = e;
    return NGL_OK;
}

ngl_status ngl_cuda_encoder_create(const ngl_stream_config *cfg, ngl_cuda_encoder **out)
{
    return enc_create(cfg, NULL, 1, out);
}

ngl_status ngl_cuda_encoder_create_on(const ngl_stream_config *cfg, ngl_cuda_stream stream,
                                      ngl_cuda_encoder **out)
{
    return enc_create(cfg, (ngl_gpu_stream)stream, 0, out);
}

void ngl_cuda_encoder_destroy(ngl_cuda_encoder *enc)
{
    if (enc == NULL) {
        return;
    }
    if (enc->pending) {
        (void)ngl_gpu_stream_sync(enc->stream);
    }
    enc_free(enc);
}

ngl_status ngl_cuda_encoder_reset(ngl_cuda_encoder *enc)
{
    if (enc == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    if (enc->pending) {
        (void)ngl_gpu_stream_sync(enc->stream);
        enc->pending = 0;
    }
    enc->step = 0;
    enc->hist = 0;
    enc->user_mask_set = 0;
    ngl_status st = ngl_gpu_state_zero(&enc->g, enc->st1, enc->st2, enc->gate, enc->ef, NULL, 1,
                                       &enc->last_err);
    enc->broken = st != NGL_OK;
    return st;
}

uint64_t ngl_cuda_encoder_step(const ngl_cuda_encoder *enc)
{
    return enc ? enc->step : 0;
}

int ngl_cuda_encoder_cuda_error(const ngl_cuda_encoder *enc)
{
    return enc ? enc->last_err : 0;
}

uint64_t ngl_cuda_encoder_state_hash(ngl_cuda_encoder *enc)
{
    if (enc == NULL) {
        return 0;
    }
    ngl_status st;
    return ngl_gpu_state_hash(&enc->g, enc->step, enc->hist, enc->st1, enc->st2, enc->gate,
                              &enc->last_err, &st);
}

ngl_status ngl_cuda_encoder_get_state(ngl_cuda_encoder *enc, float *ef, float *st1, float *st2,
                                      uint8_t *gate)
{
    if (enc == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    return ngl_gpu_state_get(&enc->g, enc->ef, enc->st1, enc->st2, enc->gate, ef, st1, st2, gate,
                             &enc->last_err);
}

ngl_status ngl_cuda_encoder_set_block_mask(ngl_cuda_encoder *enc, const uint8_t *skip_bits)
{
    if (enc == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    if (skip_bits == NULL) {
        enc->user_mask_set = 0;
        return NGL_OK;
    }
    ngl_mask_copy(enc->user_mask, skip_bits, enc->g.nblocks);
    enc->user_mask_set = 1;
    return NGL_OK;
}

/* This step's skip bitmap in h_mask, by core's rule (ngl_mask_build()).
 * @return 1 if any block is skipped. */
static int enc_build_mask(ngl_cuda_encoder *enc)
{
    const ngl_gpu_geom *g = &enc->g;
    const uint8_t *user = enc->user_mask_set ? enc->user_mask : NULL;
    enc->user_mask_set = 0;
    return ngl_mask_build(enc->h_mask, g->nblocks, user, g->cfg.mask_fraction, enc->step);
}

static void enc_args(ngl_cuda_encoder *enc, ngl_gpu_args *a, const void *d_src, int has_mask)
{
    const ngl_gpu_geom *g = &enc->g;
    ngl_gpu_args_init(a, g, enc->hist, enc->st1, enc->st2, enc->gate);
    a->key = ngl_rng_key_make(g->cfg.seed, g->cfg.stream_id, enc->step);
    a->ef = enc->ef;
    a->skip = has_mask ? enc->skip : NULL;
    a->sent = has_mask ? enc->sent : NULL;
    a->ctl = enc->ctl;
    a->src = d_src;
    a->src_vec = ((uintptr_t)d_src & 15u) == 0;
    a->scales = enc->scales;
    a->codes = enc->codes;
    a->exc = enc->exc;
    a->exc_idx = enc->exc_idx;
    a->blk_exc = enc->blk_exc;
    a->tk_r = enc->tk_r;
    a->tk_key = enc->tk_key;
    a->tk_hist = enc->tk_hist;
    a->tk_tiles = enc->tk_tiles;
    a->tk_sel = enc->tk_sel;
    a->tk_inv = enc->tk_inv;
    a->tk_ga = enc->tk_ga;
    a->tk_gc = enc->tk_ga ? enc->tk_ga + g->nblocks : NULL;
    a->tk_bitmap = enc->tk_bitmap;
    a->tk_late = enc->tk_late;
}

/* Enqueue a dense step: kernels, then the copies of the mask-independent
 * sections straight into the frame (the exception count is known only
 * when the stream gets there; finish() copies those). */
static int enc_submit_dense(ngl_cuda_encoder *enc, const ngl_gpu_args *a, uint8_t *body,
                            int has_mask, ngl_gpu_stream s)
{
    const ngl_gpu_geom *g = &enc->g;
    uint64_t n_sent = g->nblocks, coded = g->count;
    size_t off = NGL_PREAMBLE_COMMON;
    if (has_mask) {
        ngl_gpu_sent_index(g, enc->h_mask, enc->h_sent, &n_sent, &coded);
        memcpy(body + off, enc->h_mask, g->mask_bytes);
        off += g->mask_bytes;
    }
    const size_t scales_len = 4u * (size_t)n_sent;
    const size_t codes_len = (size_t)ngl_codes_bytes(coded, g->int4);
    int e = 0;
    if (has_mask) {
        e = ngl_gpu_memcpy_async(enc->skip, enc->h_mask, g->mask_bytes, s);
        if (e == 0) {
            e = ngl_gpu_memcpy_async(enc->sent, enc->h_sent, (size_t)g->nblocks * 4u, s);
        }
    }
    if (e == 0) {
        e = ngl_gpu_launch(NGL_GK_ENC_DENSE, a, s);
    }
    if (e == 0) {
        e = ngl_gpu_launch(NGL_GK_EXC_GATHER, a, s);
    }
    if (e == 0 && scales_len > 0) {
        e = ngl_gpu_memcpy_async(body + off, enc->scales, scales_len, s);
    }
    if (e == 0 && codes_len > 0) {
        e = ngl_gpu_memcpy_async(body + off + scales_len, enc->codes, codes_len, s);
    }
    enc->exc_off = off + scales_len + codes_len;
    return e;
}

static int enc_submit_topk(ngl_cuda_encoder *enc, const ngl_gpu_args *a, int has_mask,
                           ngl_gpu_stream s)
{
    const ngl_gpu_geom *g = &enc->g;
    int e = 0;
    if (has_mask) {
        e = ngl_gpu_memcpy_async(enc->skip, enc->h_mask, g->mask_bytes, s);
    }
    if (e == 0) {
        e = ngl_gpu_memset_async(enc->tk_hist, 0, 3u * NGL_GPU_HIST_BINS * sizeof(uint32_t), s);
    }
    if (e == 0 && enc->tk_ga) {
        e = ngl_gpu_memset_async(enc->tk_ga, 0, 2u * (size_t)g->nblocks * sizeof(uint32_t), s);
    }
    static const ngl_gpu_kernel seq[] = {
        NGL_GK_TK_KEYS,  NGL_GK_TK_PICK0, NGL_GK_TK_HIST1, NGL_GK_TK_PICK1,
        NGL_GK_TK_HIST2, NGL_GK_TK_PICK2, NGL_GK_TK_COUNT, NGL_GK_TK_SCAN,
        NGL_GK_TK_RANK,  NGL_GK_TK_GROUP, NGL_GK_TK_QUANT, NGL_GK_TK_GATE,
    };
    for (size_t i = 0; e == 0 && i < sizeof seq / sizeof seq[0]; i++) {
        e = ngl_gpu_launch(seq[i], a, s);
    }
    return e;
}

ngl_status ngl_cuda_encoder_submit(ngl_cuda_encoder *enc, const void *d_src, void *dst,
                                   size_t dst_cap, ngl_cuda_stream stream)
{
    if (enc == NULL || dst == NULL || (d_src == NULL && enc->g.count > 0) || enc->pending) {
        return NGL_ERR_INVALID_ARG;
    }
    if (enc->broken) {
        return NGL_ERR_DEVICE;
    }
    if (dst_cap < ngl_encode_bound(&enc->g.cfg)) {
        return NGL_ERR_DST_TOO_SMALL;
    }
    uint8_t *body = (uint8_t *)dst + NGL_FRAME_HEADER_SIZE;
    const int has_mask = enc_build_mask(enc);
    ngl_gpu_args a;
    enc_args(enc, &a, d_src, has_mask);

    int e = ngl_gpu_memset_async(enc->ctl, 0, sizeof(ngl_gpu_ctl), stream);
    if (e == 0) {
        e = enc->g.topk ? enc_submit_topk(enc, &a, has_mask, stream)
                        : enc_submit_dense(enc, &a, body, has_mask, stream);
    }
    if (e == 0) {
        e = ngl_gpu_memcpy_async(enc->h_ctl, enc->ctl, sizeof(ngl_gpu_ctl), stream);
    }
    if (e == 0) {
        e = ngl_gpu_event_record(enc->ev, stream);
    }
    if (e != 0) {
        enc->broken = 1;
        return ngl_gpu_check(e, &enc->last_err, "encode submit");
    }
    enc->pending = 1;
    enc->phase = 1;
    enc->stream = stream;
    enc->frame = (uint8_t *)dst;
    enc->frame_step = enc->step;
    enc->has_mask = has_mask;
    /* The device state now belongs to the next step (ngl_stream_advance). */
    enc->step++;
    if (enc->hist < 2) {
        enc->hist++;
    }
    return NGL_OK;
}

/* The selected elements whose reconstruction would overflow become
 * exceptions too (as in core's topk.c); the GPU lists them in any order.
 * Sort them and merge them, from the back, into the index-ordered list of
 * n_exc entries at @p exc, which has room for both. */
static void enc_merge_late(uint8_t *exc, uint32_t n_exc, uint8_t *late, uint32_t n_late,
                           uint32_t esz)
{
    ngl_exc_sort(late, n_late, esz);
    uint64_t a = n_exc, b = n_late, w = (uint64_t)n_exc + n_late;
    while (b > 0) {
        const uint8_t *src;
        if (a > 0 && ngl_rd_u32(exc + (a - 1) * esz) > ngl_rd_u32(late + (b - 1) * esz)) {
            src = exc + --a * esz;
        } else {
            src = late + --b * esz;
        }
        memmove(exc + --w * esz, src, esz);
    }
}

/* Top-K body after the kernels: [preamble][topk preamble][mask][indices]
 * [scales][codes][exceptions], index form chosen as topk.c does. The
 * control block tells every section's size, so the copies of all sections
 * are enqueued at once (phase 2); the varint index list is written on the
 * host from the selected indices once they arrived (topk_complete). */
static ngl_status enc_topk_layout(ngl_cuda_encoder *enc, int *e)
{
    const ngl_gpu_geom *g = &enc->g;
    const ngl_gpu_ctl *c = enc->h_ctl;
    const uint64_t k = c->k;
    const uint32_t n_exc = c->n_exc, n_late = c->n_late;
    ngl_gpu_stream s = enc->stream;
    uint8_t *body = enc->frame + NGL_FRAME_HEADER_SIZE;
    if (c->nsel != k || k > g->k_max || n_late > k || (uint64_t)n_exc + n_late > g->count) {
        ngl_log(NGL_LOG_ERROR, "cuda: top-k selected %llu of k=%llu (bug)",
                (unsigned long long)c->nsel, (unsigned long long)k);
        return NGL_ERR_DEVICE;
    }
    size_t off = NGL_PREAMBLE_COMMON + NGL_PREAMBLE_TOPK;
    if (enc->has_mask) {
        memcpy(body + off, enc->h_mask, g->mask_bytes);
        off += g->mask_bytes;
    }
    const size_t bitmap_bytes = (size_t)NGL_DIV_CEIL(g->count, 8u);
    const uint64_t ngroups = NGL_DIV_CEIL(k, (uint64_t)g->block);
    const size_t codes_len = (size_t)ngl_codes_bytes(k, g->int4);
    enc->idx_off = off;
    if (c->vbytes < bitmap_bytes) {
        /* varint gaps, written by the host from the selected indices */
        enc->topk_fmt = NGL_TOPK_FMT_VARINT;
        if (c->vbytes > 5u * k) {
            ngl_log(NGL_LOG_ERROR, "cuda: top-k varint bytes %llu for k=%llu (bug)",
                    (unsigned long long)c->vbytes, (unsigned long long)k);
            return NGL_ERR_DEVICE;
        }
        if (k > 0) {
            *e = ngl_gpu_memcpy_async(enc->h_sel, enc->tk_sel, (size_t)k * 4u, s);
        }
        off += (size_t)c->vbytes;
    } else {
        enc->topk_fmt = NGL_TOPK_FMT_BITMAP;
        if (bitmap_bytes > 0) {
            *e = ngl_gpu_memcpy_async(body + off, enc->tk_bitmap, bitmap_bytes, s);
        }
        off += bitmap_bytes;
    }
    if (*e == 0 && ngroups > 0) {
        *e = ngl_gpu_memcpy_async(body + off, enc->scales, 4u * (size_t)ngroups, s);
    }
    off += 4u * (size_t)ngroups;
    if (*e == 0 && codes_len > 0) {
        *e = ngl_gpu_memcpy_async(body + off, enc->codes, codes_len, s);
    }
    off += codes_len;
    enc->exc_off = off;
    if (*e == 0 && n_exc > 0) {
        *e = ngl_gpu_memcpy_async(body + off, enc->exc, (size_t)n_exc * g->esz, s);
    }
    if (*e == 0 && n_late > 0) {
        *e = ngl_gpu_memcpy_async(enc->h_late, enc->tk_late, (size_t)n_late * g->esz, s);
    }
    enc->n_exc = n_exc;
    enc->n_late = n_late;
    enc->body_len = off + ((size_t)n_exc + n_late) * g->esz;
    return NGL_OK;
}

/* Top-K, once the section copies have landed: index list, late
 * exceptions, Top-K preamble. */
static ngl_status enc_topk_complete(ngl_cuda_encoder *enc)
{
    const ngl_gpu_geom *g = &enc->g;
    const ngl_gpu_ctl *c = enc->h_ctl;
    const uint64_t k = c->k;
    uint8_t *body = enc->frame + NGL_FRAME_HEADER_SIZE;
    size_t idx_bytes = (size_t)NGL_DIV_CEIL(g->count, 8u);
    if (enc->topk_fmt == NGL_TOPK_FMT_VARINT) {
        size_t vb = ngl_topk_gaps_len(enc->h_sel, k);
        if (vb != c->vbytes) {
            ngl_log(NGL_LOG_ERROR, "cuda: top-k varint bytes %zu != %llu (bug)", vb,
                    (unsigned long long)c->vbytes);
            return NGL_ERR_DEVICE;
        }
        idx_bytes = ngl_topk_gaps_put(body + enc->idx_off, enc->h_sel, k);
    }
    if (enc->n_late > 0) {
        enc_merge_late(body + enc->exc_off, enc->n_exc, enc->h_late, enc->n_late, g->esz);
    }
    ngl_topk_write_preamble(body, k, idx_bytes, enc->topk_fmt);
    enc->n_exc += enc->n_late;
    return NGL_OK;
}

/* Common preamble, header and CRC, with core's writers. */
static size_t enc_seal(ngl_cuda_encoder *enc)
{
    const ngl_gpu_geom *g = &enc->g;
    ngl_write_preamble(&g->cfg, enc->frame + NGL_FRAME_HEADER_SIZE, enc->n_exc);
    uint16_t flags = 0;
    if (enc->has_mask) {
        flags |= NGL_FLAG_MASK;
    }
    if (g->ef) {
        flags |= NGL_FLAG_EF;
    }
    if (g->topk) {
        flags |= NGL_FLAG_TOPK;
    }
    return ngl_frame_seal(enc->frame, &g->cfg, flags, enc->frame_step, enc->body_len);
}

/* The control block is on the host: enqueue the copies that depend on it
 * (phase 2), or go straight to sealing when there are none. */
static ngl_status enc_after_ctl(ngl_cuda_encoder *enc, int *e)
{
    const ngl_gpu_geom *g = &enc->g;
    if (g->topk) {
        ngl_status st = enc_topk_layout(enc, e);
        if (st != NGL_OK || *e != 0) {
            return st;
        }
        *e = ngl_gpu_event_record(enc->ev, enc->stream);
        enc->phase = 2;
        return NGL_OK;
    }
    const uint32_t n_exc = enc->h_ctl->n_exc;
    if (n_exc > g->count) {
        ngl_log(NGL_LOG_ERROR, "cuda: %u exceptions for %llu elements (bug)", n_exc,
                (unsigned long long)g->count);
        return NGL_ERR_DEVICE;
    }
    enc->n_exc = n_exc;
    enc->n_late = 0;
    enc->body_len = enc->exc_off + (size_t)n_exc * g->esz;
    if (n_exc == 0) {
        enc->phase = 3;
        return NGL_OK;
    }
    uint8_t *body = enc->frame + NGL_FRAME_HEADER_SIZE;
    *e = ngl_gpu_memcpy_async(body + enc->exc_off, enc->exc, (size_t)n_exc * g->esz, enc->stream);
    if (*e == 0) {
        *e = ngl_gpu_event_record(enc->ev, enc->stream);
    }
    enc->phase = 2;
    return NGL_OK;
}

ngl_status ngl_cuda_encoder_poll(ngl_cuda_encoder *enc, int *done, size_t *out_len)
{
    if (enc == NULL || done == NULL || out_len == NULL || !enc->pending) {
        return NGL_ERR_INVALID_ARG;
    }
    *done = 0;
    ngl_status st = NGL_OK;
    int e = 0;
    /* At most phase 1 -> 2 -> 3 in one call. */
    for (int round = 0; round < 3 && st == NGL_OK && e == 0; round++) {
        if (enc->phase == 3) {
            *out_len = enc_seal(enc);
            enc->pending = 0;
            enc->phase = 0;
            *done = 1;
            return NGL_OK;
        }
        int ready = 0;
        e = ngl_gpu_event_query(enc->ev, &ready);
        if (e != 0 || !ready) {
            break;
        }
        if (enc->phase == 1) {
            st = enc_after_ctl(enc, &e);
        } else {
            st = enc->g.topk ? enc_topk_complete(enc) : NGL_OK;
            enc->phase = 3;
        }
    }
    if (e != 0 || st != NGL_OK) {
        enc->broken = 1;
        enc->pending = 0;
        enc->phase = 0;
        return e != 0 ? ngl_gpu_check(e, &enc->last_err, "encode completion") : st;
    }
    return NGL_OK;
}

ngl_status ngl_cuda_encoder_finish(ngl_cuda_encoder *enc, size_t *out_len)
{
    if (enc == NULL || out_len == NULL || !enc->pending) {
        return NGL_ERR_INVALID_ARG;
    }
    /* Each wait completes one phase: three rounds at most. */
    for (int round = 0; round < 4; round++) {
        int done = 0;
        ngl_status st = ngl_cuda_encoder_poll(enc, &done, out_len);
        if (st != NGL_OK || done) {
            return st;
        }
        int e = ngl_gpu_event_sync(enc->ev);
        if (e != 0) {
            enc->broken = 1;
            enc->pending = 0;
            enc->phase = 0;
            return ngl_gpu_check(e, &enc->last_err, "encode finish");
        }
    }
    enc->broken = 1;
    enc->pending = 0;
    ngl_log(NGL_LOG_ERROR, "cuda: encode did not complete after its event (bug)");
    return NGL_ERR_DEVICE;
}

ngl_status ngl_cuda_encode(ngl_cuda_encoder *enc, const void *d_src, void *dst, size_t dst_cap,
                           size_t *out_len, ngl_cuda_stream stream)
{
    if (out_len == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    ngl_status st = ngl_cuda_encoder_submit(enc, d_src, dst, dst_cap, stream);
    if (st != NGL_OK) {
        return st;
    }
    return ngl_cuda_encoder_finish(enc, out_len);
}
