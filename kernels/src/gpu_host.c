/* SPDX-License-Identifier: Apache-2.0 */
/* gpu_host.c -- geometry, allocation and state helpers of the GPU path. */
#include "ngl_gpu_host.h"

#include <stdlib.h>

int ngl_cuda_device_count(void)
{
    int n = 0;
    if (ngl_gpu_device_count(&n) != 0) {
        return 0;
    }
    return n;
}

/* ---- helpers for callers that poll (ngl_cuda.h) ------------------------ */

ngl_status ngl_cuda_stream_create(ngl_cuda_stream *out)
{
    int last = 0;
    if (out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    return ngl_gpu_check(ngl_gpu_stream_create((ngl_gpu_stream *)out), &last, "stream create");
}

void ngl_cuda_stream_destroy(ngl_cuda_stream s)
{
    ngl_gpu_stream_destroy((ngl_gpu_stream)s);
}

ngl_status ngl_cuda_event_create(ngl_cuda_event *out)
{
    int last = 0;
    if (out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    return ngl_gpu_check(ngl_gpu_event_create((ngl_gpu_event *)out), &last, "event create");
}

void ngl_cuda_event_destroy(ngl_cuda_event ev)
{
    if (ev != NULL) {
        ngl_gpu_event_destroy((ngl_gpu_event)ev);
    }
}

ngl_status ngl_cuda_event_record(ngl_cuda_event ev, ngl_cuda_stream s)
{
    int last = 0;
    if (ev == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    return ngl_gpu_check(ngl_gpu_event_record((ngl_gpu_event)ev, (ngl_gpu_stream)s), &last,
                         "event record");
}

ngl_status ngl_cuda_event_query(ngl_cuda_event ev, int *done)
{
    int last = 0;
    if (ev == NULL || done == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *done = 0;
    return ngl_gpu_check(ngl_gpu_event_query((ngl_gpu_event)ev, done), &last, "event query");
}

ngl_status ngl_cuda_memcpy_async(void *dst, const void *src, size_t bytes, ngl_cuda_stream s)
{
    int last = 0;
    if (bytes > 0 && (dst == NULL || src == NULL)) {
        return NGL_ERR_INVALID_ARG;
    }
    if (bytes == 0 || dst == src) {
        return NGL_OK;
    }
    return ngl_gpu_check(ngl_gpu_memcpy_async(dst, src, bytes, (ngl_gpu_stream)s), &last, "copy");
}

ngl_status ngl_cuda_host_alloc(void **p, size_t bytes)
{
    int last = 0;
    if (p == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    return ngl_gpu_alloc_host(p, bytes, &last);
}

void ngl_cuda_host_free(void *p)
{
    if (p != NULL) {
        ngl_gpu_host_free(p);
    }
}

ngl_status ngl_cuda_get_device(int *dev)
{
    int last = 0;
    if (dev == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    return ngl_gpu_check(ngl_gpu_get_device(dev), &last, "get device");
}

ngl_status ngl_cuda_set_device(int dev)
{
    int last = 0;
    return ngl_gpu_check(ngl_gpu_set_device(dev), &last, "set device");
}

int ngl_cuda_pointer_device(const void *p)
{
    int dev = -1;
    if (p == NULL || ngl_gpu_pointer_device(p, &dev) != 0) {
        return -1;
    }
    return dev;
}

const char *ngl_cuda_error_name(int err)
{
    return ngl_gpu_error_name(err);
}

ngl_status ngl_gpu_geom_init(ngl_gpu_geom *g, const ngl_stream_config *cfg)
{
    const char *why = NULL;
    memset(g, 0, sizeof *g);
    ngl_status st = ngl_stream_config_check(cfg, &why);
    if (st != NGL_OK) {
        if (why) {
            NGL_LOG_DEBUG_("cuda: stream config rejected: %s", why);
        }
        return st;
    }
    if (cfg->codec != NGL_CODEC_INT8 && cfg->codec != NGL_CODEC_INT4) {
        NGL_LOG_DEBUG_("cuda: only the int8 and int4 codecs run on the GPU");
        return NGL_ERR_UNSUPPORTED;
    }
    if (cfg->lossless != NGL_LOSSLESS_NONE) {
        NGL_LOG_DEBUG_("cuda: lossless back ends do not run on the GPU");
        return NGL_ERR_UNSUPPORTED;
    }
    g->cfg = *cfg;
    g->count = cfg->count;
    g->block = cfg->block_size;
    g->nblocks = (uint32_t)NGL_DIV_CEIL(cfg->count, (uint64_t)cfg->block_size);
    g->dsize = (uint32_t)ngl_dtype_size(cfg->dtype);
    g->esz = 4u + g->dsize;
    g->int4 = cfg->codec == NGL_CODEC_INT4;
    g->topk = cfg->topk_fraction > 0.0;
    g->ef = cfg->error_feedback != 0;
    g->k_max = ngl_topk_k_max(cfg);
    g->ngroups_max = NGL_DIV_CEIL(g->k_max, (uint64_t)g->block);
    g->ntiles = (uint32_t)NGL_DIV_CEIL(cfg->count, (uint64_t)NGL_GPU_TILE);
    g->mask_bytes = ngl_mask_bytes(g->nblocks);
    return NGL_OK;
}

void ngl_gpu_args_init(ngl_gpu_args *a, const ngl_gpu_geom *g, uint32_t hist, float *st1,
                       float *st2, uint8_t *gate)
{
    memset(a, 0, sizeof *a);
    a->count = g->count;
    a->block = g->block;
    a->nblocks = g->nblocks;
    a->int4 = g->int4;
    a->qmax = g->int4 ? NGL_QMAX_INT4 : NGL_QMAX_INT8;
    a->pred = (int32_t)g->cfg.predictor;
    a->dtype = (int32_t)g->cfg.dtype;
    a->hist = hist;
    a->esz = g->esz;
    a->beta = g->cfg.momentum_beta;
    a->omb = 1.0f - g->cfg.momentum_beta; /* f32, as core computes it */
    a->st1 = st1;
    a->st2 = st2;
    a->gate = gate;
    a->k_max = g->k_max;
    a->ntiles = g->ntiles;
}

ngl_status ngl_gpu_check(int err, int *last, const char *what)
{
    if (err == 0) {
        return NGL_OK;
    }
    *last = err;
    ngl_log(NGL_LOG_ERROR, "cuda: %s failed: %s (%d)", what, ngl_gpu_error_name(err), err);
    return NGL_ERR_DEVICE;
}

ngl_status ngl_gpu_alloc(void **p, size_t bytes, int *err)
{
    int e = ngl_gpu_malloc(p, bytes < 64u ? 64u : bytes);
    if (e != 0) {
        *p = NULL;
        *err = e;
        ngl_log(NGL_LOG_ERROR, "cuda: device allocation of %zu bytes failed: %s", bytes,
                ngl_gpu_error_name(e));
        return NGL_ERR_NO_MEMORY;
    }
    return NGL_OK;
}

ngl_status ngl_gpu_alloc_host(void **p, size_t bytes, int *err)
{
    int e = ngl_gpu_host_malloc(p, bytes < 64u ? 64u : bytes);
    if (e != 0) {
        *p = NULL;
        *err = e;
        ngl_log(NGL_LOG_ERROR, "cuda: pinned allocation of %zu bytes failed: %s", bytes,
                ngl_gpu_error_name(e));
        return NGL_ERR_NO_MEMORY;
    }
    return NGL_OK;
}

uint64_t ngl_gpu_state_hash(const ngl_gpu_geom *g, uint64_t step, uint32_t hist, const float *d_st1,
                            const float *d_st2, const uint8_t *d_gate, int *last, ngl_status *st)
{
    *st = NGL_OK;
    if (d_st1 == NULL) {
        return ngl_state_hash(step, hist, NULL, NULL, 0, NULL, 0);
    }
    const size_t n = (size_t)g->count;
    float *s1 = malloc(n * sizeof(float) + 1u);
    float *s2 = malloc(n * sizeof(float) + 1u);
    uint8_t *gt = malloc((size_t)g->nblocks + 1u);
    uint64_t h = 0;
    if (s1 == NULL || s2 == NULL || gt == NULL) {
        *st = NGL_ERR_NO_MEMORY;
        goto out;
    }
    *st = ngl_gpu_state_get(g, NULL, d_st1, d_st2, d_gate, NULL, s1, s2, gt, last);
    if (*st == NGL_OK) {
        h = ngl_state_hash(step, hist, s1, d_st2 != NULL ? s2 : NULL, n * sizeof(float), gt,
                           g->nblocks);
    }
out:
    free(gt);
    free(s2);
    free(s1);
    return h;
}

ngl_status ngl_gpu_state_zero(const ngl_gpu_geom *g, float *d_st1, float *d_st2, uint8_t *d_gate,
                              float *d_ef, ngl_gpu_stream s, int sync, int *last)
{
    const size_t fbytes = (size_t)g->count * sizeof(float);
    int e = 0;
    if (d_st1 && e == 0) {
        e = ngl_gpu_memset_async(d_st1, 0, fbytes, s);
    }
    if (d_st2 && e == 0) {
        e = ngl_gpu_memset_async(d_st2, 0, fbytes, s);
    }
    if (d_gate && e == 0) {
        e = ngl_gpu_memset_async(d_gate, 0, g->nblocks, s);
    }
    if (d_ef && e == 0) {
        e = ngl_gpu_memset_async(d_ef, 0, fbytes, s);
    }
    if (e == 0 && sync) {
        e = ngl_gpu_stream_sync(s);
    }
    return ngl_gpu_check(e, last, "state reset");
}

ngl_status ngl_gpu_state_get(const ngl_gpu_geom *g, const float *d_ef, const float *d_st1,
                             const float *d_st2, const uint8_t *d_gate, float *ef, float *st1,
                             float *st2, uint8_t *gate, int *last)
{
    const size_t fbytes = (size_t)g->count * sizeof(float);
    int e = 0;
    if (ef && d_ef && e == 0) {
        e = ngl_gpu_memcpy_async(ef, d_ef, fbytes, NULL);
    }
    if (st1 && d_st1 && e == 0) {
        e = ngl_gpu_memcpy_async(st1, d_st1, fbytes, NULL);
    }
    if (st2 && d_st2 && e == 0) {
        e = ngl_gpu_memcpy_async(st2, d_st2, fbytes, NULL);
    }
    if (gate && d_gate && e == 0) {
        e = ngl_gpu_memcpy_async(gate, d_gate, g->nblocks, NULL);
    }
    if (e == 0) {
        e = ngl_gpu_stream_sync(NULL);
    }
    return ngl_gpu_check(e, last, "state copy");
}

void ngl_gpu_sent_index(const ngl_gpu_geom *g, const uint8_t *mask, uint32_t *sent,
                        uint64_t *n_sent, uint64_t *coded)
{
    uint32_t next = 0;
    uint64_t c = 0;
    for (uint32_t b = 0; b < g->nblocks; b++) {
        sent[b] = next;
        if (!ngl_gpu_bit(mask, b)) {
            next++;
            c += ngl_gpu_geom_block_len(g, b);
        }
    }
    *n_sent = next;
    *coded = c;
}
