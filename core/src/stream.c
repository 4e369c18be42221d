/* SPDX-License-Identifier: Apache-2.0 */
/* stream.c -- configuration checks, size bounds and the shared stream state. */
#include "ngl_stream.h"

#include <math.h>

void ngl_stream_config_init(ngl_stream_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->codec = NGL_CODEC_INT8;
    cfg->dtype = NGL_DTYPE_F32;
    cfg->predictor = NGL_PRED_NONE;
    cfg->lossless = NGL_LOSSLESS_NONE;
    cfg->isa = NGL_ISA_AUTO;
    cfg->block_size = NGL_BLOCK_DEFAULT;
    cfg->momentum_beta = 0.9f;
    cfg->error_feedback = 1;
}

static int is_quantizer(ngl_codec c)
{
    return c == NGL_CODEC_INT8 || c == NGL_CODEC_INT4;
}

uint64_t ngl_topk_k_max(const ngl_stream_config *cfg)
{
    if (!(cfg->topk_fraction > 0.0) || cfg->count == 0) {
        return 0;
    }
    double k = ceil(cfg->topk_fraction * (double)cfg->count);
    if (k > (double)cfg->count) {
        k = (double)cfg->count;
    }
    return (uint64_t)k;
}

uint64_t ngl_body_bound(const ngl_stream_config *cfg)
{
    const uint64_t n = cfg->count;
    const uint64_t B = cfg->block_size;
    const uint64_t nblocks = NGL_DIV_CEIL(n, B);
    const uint64_t ds = ngl_dtype_size(cfg->dtype);
    uint64_t total = NGL_PREAMBLE_COMMON;

    switch (cfg->codec) {
    case NGL_CODEC_RAW: return total + n * ds;
    case NGL_CODEC_EPS:
        /* a code is at most 5 bytes; an exception has a 1-byte code */
        return total + NGL_PREAMBLE_EPS + n * (5u + ds);
    case NGL_CODEC_INT8:
    case NGL_CODEC_INT4: break;
    }
    const int int4 = cfg->codec == NGL_CODEC_INT4;
    total += NGL_DIV_CEIL(nblocks, 8u); /* a mask may be set at any step */
    if (cfg->topk_fraction > 0.0) {
        const uint64_t k = ngl_topk_k_max(cfg);
        total += NGL_PREAMBLE_TOPK + NGL_DIV_CEIL(n, 8u); /* indices <= bitmap */
        total += 4u * NGL_DIV_CEIL(k, B);
        total += int4 ? NGL_DIV_CEIL(k, 2u) : k;
    } else {
        total += 4u * nblocks;
        total += int4 ? NGL_DIV_CEIL(n, 2u) : n;
    }
    total += n * (4u + ds); /* every element may be an exception */
    return total;
}

ngl_status ngl_stream_config_check(const ngl_stream_config *cfg, const char **why)
{
    const char *dummy;
    if (why == NULL) {
        why = &dummy;
    }
    *why = NULL;
#define BAD(msg)                                                                                   \
    do {                                                                                           \
        *why = (msg);                                                                              \
        return NGL_ERR_INVALID_ARG;                                                                \
    } while (0)
    if (cfg == NULL) {
        BAD("config is NULL");
    }
    if ((unsigned)cfg->codec > NGL_CODEC_EPS) {
        BAD("unknown codec");
    }
    if ((unsigned)cfg->dtype > NGL_DTYPE_F64) {
        BAD("unknown dtype");
    }
    if (cfg->dtype == NGL_DTYPE_F64 && is_quantizer(cfg->codec)) {
        BAD("f64 is supported by the raw and eps codecs only");
    }
    if (cfg->codec == NGL_CODEC_EPS && cfg->dtype != NGL_DTYPE_F32 && cfg->dtype != NGL_DTYPE_F64) {
        BAD("the eps codec takes f32 or f64");
    }
    if ((unsigned)cfg->predictor > NGL_PRED_LINEAR) {
        BAD("unknown predictor");
    }
    if (cfg->codec == NGL_CODEC_RAW && cfg->predictor != NGL_PRED_NONE) {
        BAD("the raw codec takes no predictor");
    }
    if ((unsigned)cfg->lossless > NGL_LOSSLESS_AUTO) {
        BAD("unknown lossless back end");
    }
    if ((unsigned)cfg->isa > NGL_ISA_AVX512) {
        BAD("unknown isa");
    }
    if (cfg->block_size < NGL_BLOCK_MIN || cfg->block_size > NGL_BLOCK_MAX ||
        cfg->block_size % 8u != 0) {
        BAD("block_size must be a multiple of 8 in [8, 65536]");
    }
    if (cfg->predictor == NGL_PRED_MOMENTUM &&
        !(cfg->momentum_beta >= 0.0f && cfg->momentum_beta < 1.0f)) {
        BAD("momentum_beta must be in [0, 1)");
    }
    if (cfg->error_feedback != 0 && cfg->error_feedback != 1) {
        BAD("error_feedback must be 0 or 1");
    }
    if (!(cfg->topk_fraction == 0.0 || (cfg->topk_fraction > 0.0 && cfg->topk_fraction <= 1.0))) {
        BAD("topk_fraction must be 0 or in (0, 1]");
    }
    if (cfg->topk_fraction > 0.0 && !is_quantizer(cfg->codec)) {
        BAD("Top-K needs the int8 or int4 codec");
    }
    if (!(cfg->mask_fraction >= 0.0 && cfg->mask_fraction < 1.0)) {
        BAD("mask_fraction must be in [0, 1)");
    }
    if (cfg->mask_fraction > 0.0 && !is_quantizer(cfg->codec)) {
        BAD("block masks need the int8 or int4 codec");
    }
    if (cfg->codec == NGL_CODEC_EPS && !(isfinite(cfg->eps) && cfg->eps > 0.0)) {
        BAD("eps must be finite and > 0 (use the raw codec for lossless)");
    }
    if (cfg->count > NGL_COUNT_MAX) {
        BAD("count exceeds NGL_COUNT_MAX; split the vector");
    }
    if (ngl_body_bound(cfg) + NGL_FRAME_HEADER_SIZE + 4u > UINT32_MAX) {
        BAD("worst-case frame exceeds 4 GiB; split the vector");
    }
#undef BAD
    if (cfg->lossless != NGL_LOSSLESS_AUTO && !ngl_backend_available((unsigned)cfg->lossless)) {
        *why = "lossless back end not built in";
        return NGL_ERR_UNSUPPORTED;
    }
    if (!ngl_isa_available(cfg->isa)) {
        *why = "instruction set not available on this CPU or build";
        return NGL_ERR_UNSUPPORTED;
    }
    return NGL_OK;
}

size_t ngl_encode_bound(const ngl_stream_config *cfg)
{
    if (ngl_stream_config_check(cfg, NULL) != NGL_OK) {
        return 0;
    }
    uint64_t b = NGL_FRAME_HEADER_SIZE + ngl_body_bound(cfg);
    if (cfg->lossless != NGL_LOSSLESS_NONE) {
        b += 4u;
    }
    return (size_t)b;
}

ngl_status ngl_stream_init(ngl_stream *s, const ngl_stream_config *cfg, int encoder)
{
    const char *why = NULL;
    memset(s, 0, sizeof *s);
    ngl_status st = ngl_stream_config_check(cfg, &why);
    if (st != NGL_OK) {
        if (why) {
            NGL_LOG_DEBUG_("stream config rejected: %s", why);
        }
        return st;
    }
    s->cfg = *cfg;
    if (!is_quantizer(cfg->codec)) {
        s->cfg.error_feedback = 0;
    }
    s->k = ngl_kernels_get(cfg->isa);
    s->count = cfg->count;
    s->block = cfg->block_size;
    s->nblocks = (uint32_t)NGL_DIV_CEIL(cfg->count, (uint64_t)cfg->block_size);
    s->dsize = ngl_dtype_size(cfg->dtype);
    s->topk = cfg->topk_fraction > 0.0;
    s->k_max = ngl_topk_k_max(cfg);

    const size_t n = (size_t)s->count;
    const size_t state_elem = cfg->codec == NGL_CODEC_EPS ? sizeof(double) : sizeof(float);
    int fail = 0;
#define ALLOC(ptr, bytes)                                                                          \
    do {                                                                                           \
        (ptr) = ngl_malloc(bytes);                                                                 \
        fail |= (ptr) == NULL;                                                                     \
    } while (0)

    if (cfg->predictor != NGL_PRED_NONE) {
        ALLOC(s->st1, n * state_elem);
        ALLOC(s->gate, s->nblocks);
        if (cfg->predictor == NGL_PRED_LINEAR) {
            ALLOC(s->st2, n * state_elem);
        }
    }
    if (is_quantizer(cfg->codec) && (cfg->dtype == NGL_DTYPE_F16 || cfg->dtype == NGL_DTYPE_BF16)) {
        ALLOC(s->x32, n * sizeof(float));
    }
    if (is_quantizer(cfg->codec)) {
        ALLOC(s->mask, ngl_mask_bytes(s->nblocks));
        if (encoder) {
            ALLOC(s->rbuf, (size_t)s->block * sizeof(float));
        }
    }
    if (s->topk) {
        ALLOC(s->tk_sel, (size_t)s->k_max * sizeof(uint32_t) + 4);
        if (encoder) {
            ALLOC(s->tk_r, n * sizeof(float));
            ALLOC(s->tk_key, n * sizeof(uint32_t));
            ALLOC(s->tk_varint, 5u * (size_t)s->k_max + 8u);
            ALLOC(s->tk_late, (size_t)s->k_max * sizeof(uint32_t) + 4u);
            ALLOC(s->tk_gate, 2u * (size_t)s->nblocks * sizeof(float) + 8u);
            ALLOC(s->tk_hist, 4u * 2048u * sizeof(uint32_t));
        }
    }
    if (cfg->codec == NGL_CODEC_EPS) {
        ALLOC(s->flags, NGL_DIV_CEIL(n, 8u));
    }
    if (cfg->lossless != NGL_LOSSLESS_NONE) {
        s->body_cap = (size_t)ngl_body_bound(cfg);
        ALLOC(s->body, s->body_cap);
    }
#undef ALLOC
    if (fail) {
        ngl_stream_fini(s);
        return NGL_ERR_NO_MEMORY;
    }
    int want_zstd =
        cfg->lossless == NGL_LOSSLESS_ZSTD ||
        (cfg->lossless == NGL_LOSSLESS_AUTO && ngl_backend_available(NGL_LOSSLESS_ZSTD));
    st = ngl_backend_ctx_init(&s->backend, want_zstd);
    if (st != NGL_OK) {
        ngl_stream_fini(s);
        return st;
    }
    return NGL_OK;
}

void ngl_stream_fini(ngl_stream *s)
{
    ngl_backend_ctx_fini(&s->backend);
    ngl_free(s->st1);
    ngl_free(s->st2);
    ngl_free(s->gate);
    ngl_free(s->x32);
    ngl_free(s->rbuf);
    ngl_free(s->body);
    ngl_free(s->mask);
    ngl_free(s->tk_r);
    ngl_free(s->tk_key);
    ngl_free(s->tk_sel);
    ngl_free(s->tk_varint);
    ngl_free(s->tk_late);
    ngl_free(s->tk_gate);
    ngl_free(s->tk_hist);
    ngl_free(s->flags);
    memset(s, 0, sizeof *s);
}

void ngl_stream_reset(ngl_stream *s)
{
    const size_t state_elem = s->cfg.codec == NGL_CODEC_EPS ? sizeof(double) : sizeof(float);
    s->step = 0;
    s->hist = 0;
    if (s->st1) {
        memset(s->st1, 0, (size_t)s->count * state_elem);
    }
    if (s->st2) {
        memset(s->st2, 0, (size_t)s->count * state_elem);
    }
    if (s->gate) {
        memset(s->gate, 0, s->nblocks);
    }
}

void ngl_stream_advance(ngl_stream *s)
{
    s->step++;
    if (s->hist < 2) {
        s->hist++;
    }
}

uint64_t ngl_state_hash(uint64_t step, uint32_t hist, const void *st1, const void *st2,
                        size_t st_bytes, const uint8_t *gate, uint32_t nblocks)
{
    uint8_t head[12];
    ngl_wr_u64(head, step);
    ngl_wr_u32(head + 8, hist);
    uint64_t h = ngl_fnv1a(NGL_FNV_INIT, head, sizeof head);
    if (st1) {
        h = ngl_fnv1a(h, st1, st_bytes);
    }
    if (st2) {
        h = ngl_fnv1a(h, st2, st_bytes);
    }
    if (gate) {
        h = ngl_fnv1a(h, gate, nblocks);
    }
    return h;
}

uint64_t ngl_stream_hash(const ngl_stream *s)
{
    const size_t state_elem = s->cfg.codec == NGL_CODEC_EPS ? sizeof(double) : sizeof(float);
    return ngl_state_hash(s->step, s->hist, s->st1, s->st2, (size_t)s->count * state_elem, s->gate,
                          s->nblocks);
}
