/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gpu_decoder.c -- ngl_cuda_decoder: the host validates a whole frame with
 * the checks of core's decoder.c and topk.c, in the same order and with the
 * same statuses, before anything is enqueued; the GPU then reconstructs,
 * writes the output and updates the state. The validation is written again
 * here because core keeps it inside its decode functions;
 * tests/test_kernels_reject.c holds the two to the same verdict on every
 * corrupted frame it makes.
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

/* Where a validated body's sections are. */
typedef struct gpu_frame {
    const uint8_t *mask; /* NULL: no mask */
    const uint8_t *scales, *codes, *exc;
    uint64_t n_scales, codes_len, k;
    uint32_t n_exc;
} gpu_frame;

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
        /* one spare entry: the index parser writes before it counts */
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

/* ---- validation: decoder.c and topk.c, check for check ---------------- */

static ngl_status check_preamble(const ngl_gpu_geom *g, const uint8_t *body)
{
    const uint32_t param = ngl_rd_u32(body + 4);
    const int mom = g->cfg.predictor == NGL_PRED_MOMENTUM;
    const uint32_t want = mom ? ngl_f32_bits(g->cfg.momentum_beta) : 0u;
    if (mom) {
        float beta = ngl_bits_f32(param);
        if (!(beta >= 0.0f && beta < 1.0f)) {
            return NGL_ERR_BAD_FLAGS;
        }
    }
    if (param == want) {
        return NGL_OK;
    }
    return mom ? NGL_ERR_CONFIG_MISMATCH : NGL_ERR_BAD_FLAGS;
}

static ngl_status check_scales(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint32_t bits = ngl_rd_u32(p + 4 * i);
        if ((bits & 0x80000000u) || (bits & 0x7f800000u) == 0x7f800000u) {
            return NGL_ERR_BAD_SCALE;
        }
    }
    return NGL_OK;
}

static ngl_status check_mask(const uint8_t *mask, const ngl_gpu_geom *g)
{
    if ((g->nblocks % 8u) && (mask[g->mask_bytes - 1] >> (g->nblocks % 8u))) {
        return NGL_ERR_BAD_MASK;
    }
    return NGL_OK;
}

static ngl_status validate_dense(ngl_cuda_decoder *dec, const uint8_t *body, size_t body_len,
                                 int has_mask, gpu_frame *f)
{
    const ngl_gpu_geom *g = &dec->g;
    const uint32_t n_exc = ngl_rd_u32(body);
    const uint64_t esz = g->esz;
    uint64_t off = NGL_PREAMBLE_COMMON;
    uint64_t n_sent = g->nblocks, coded = g->count;
    const uint8_t *mask = NULL;
    if (has_mask) {
        if (off + g->mask_bytes > body_len) {
            return NGL_ERR_BAD_SECTION;
        }
        mask = body + off;
        ngl_status st = check_mask(mask, g);
        if (st != NGL_OK) {
            return st;
        }
        off += g->mask_bytes;
        ngl_gpu_sent_index(g, mask, dec->h_sent, &n_sent, &coded);
    }
    const uint64_t codes_off = off + 4u * n_sent;
    const uint64_t codes_len = g->int4 ? NGL_DIV_CEIL(coded, 2u) : coded;
    const uint64_t exc_off = codes_off + codes_len;
    if (n_exc > g->count || exc_off + (uint64_t)n_exc * esz != body_len) {
        return NGL_ERR_BAD_SECTION;
    }
    ngl_status st = check_scales(body + off, n_sent);
    if (st != NGL_OK) {
        return st;
    }
    const uint8_t *codes = body + codes_off;
    const int qmin = g->int4 ? -NGL_QMAX_INT4 : -NGL_QMAX_INT8;
    for (uint64_t i = 0; i < coded; i++) {
        if (ngl_gpu_get_code(codes, i, g->int4) < qmin) {
            return NGL_ERR_BAD_CODE;
        }
    }
    if (g->int4 && (coded & 1u) && (codes[codes_len - 1] & 0xf0u)) {
        return NGL_ERR_BAD_CODE;
    }
    /* exceptions: strictly increasing, in range, code 0 where coded */
    uint64_t prev = 0;
    for (uint32_t e = 0; e < n_exc; e++) {
        uint64_t idx = ngl_rd_u32(body + exc_off + (uint64_t)e * esz);
        if (idx >= g->count || (e > 0 && idx <= prev)) {
            return NGL_ERR_BAD_EXCEPTION;
        }
        prev = idx;
        uint32_t b = (uint32_t)(idx / g->block);
        if (mask && ngl_gpu_bit(mask, b)) {
            continue;
        }
        uint64_t sent = mask ? dec->h_sent[b] : b;
        if (ngl_gpu_get_code(codes, sent * g->block + (idx - (uint64_t)b * g->block), g->int4) !=
            0) {
            return NGL_ERR_BAD_CODE;
        }
    }
    f->mask = mask;
    f->scales = body + off;
    f->n_scales = n_sent;
    f->codes = codes;
    f->codes_len = codes_len;
    f->exc = body + exc_off;
    f->n_exc = n_exc;
    f->k = 0;
    return NGL_OK;
}

/* Index section into h_sel (topk.c parse_indices). */
static ngl_status parse_indices(ngl_cuda_decoder *dec, const uint8_t *idx, size_t idx_bytes,
                                unsigned fmt, uint64_t k, const uint8_t *mask)
{
    const ngl_gpu_geom *g = &dec->g;
    const uint64_t n = g->count;
    uint32_t *sel = dec->h_sel;
    uint64_t got = 0;
    if (fmt == NGL_TOPK_FMT_BITMAP) {
        if (idx_bytes != NGL_DIV_CEIL(n, 8u)) {
            return NGL_ERR_BAD_INDEX;
        }
        if ((n % 8u) && (idx[idx_bytes - 1] >> (n % 8u))) {
            return NGL_ERR_BAD_INDEX;
        }
        for (size_t byte = 0; byte < idx_bytes; byte++) {
            for (unsigned bit = 0; bit < 8u; bit++) {
                if ((idx[byte] >> bit) & 1u) {
                    if (got >= k) {
                        return NGL_ERR_BAD_INDEX;
                    }
                    sel[got++] = (uint32_t)(byte * 8u + bit);
                }
            }
        }
    } else if (fmt == NGL_TOPK_FMT_VARINT) {
        size_t pos = 0;
        uint64_t prev = 0;
        for (got = 0; got < k; got++) {
            uint32_t v;
            size_t used = ngl_varint_get32(idx + pos, idx_bytes - pos, &v);
            if (used == 0) {
                return NGL_ERR_BAD_INDEX;
            }
            pos += used;
            uint64_t i = got == 0 ? v : prev + 1u + v;
            if (i >= n) {
                return NGL_ERR_BAD_INDEX;
            }
            sel[got] = (uint32_t)i;
            prev = i;
        }
        if (pos != idx_bytes) {
            return NGL_ERR_BAD_INDEX;
        }
    } else {
        return NGL_ERR_BAD_INDEX;
    }
    if (got != k) {
        return NGL_ERR_BAD_INDEX;
    }
    if (mask) {
        for (uint64_t e = 0; e < k; e++) {
            if (ngl_gpu_bit(mask, sel[e] / g->block)) {
                return NGL_ERR_BAD_INDEX;
            }
        }
    }
    return NGL_OK;
}

static ngl_status validate_topk(ngl_cuda_decoder *dec, const uint8_t *body, size_t body_len,
                                int has_mask, gpu_frame *f)
{
    const ngl_gpu_geom *g = &dec->g;
    const uint64_t esz = g->esz;
    if (body_len < NGL_PREAMBLE_COMMON + NGL_PREAMBLE_TOPK) {
        return NGL_ERR_BAD_SECTION;
    }
    const uint32_t n_exc = ngl_rd_u32(body);
    const uint64_t k = ngl_rd_u32(body + 8);
    const uint64_t idx_bytes = ngl_rd_u32(body + 12);
    const unsigned fmt = body[16];
    if (body[17] | body[18] | body[19]) {
        return NGL_ERR_BAD_FLAGS;
    }
    if (k > g->count) {
        return NGL_ERR_BAD_INDEX;
    }
    if (k > g->k_max) {
        return NGL_ERR_CONFIG_MISMATCH; /* a sender with a larger Top-K fraction */
    }
    uint64_t off = NGL_PREAMBLE_COMMON + NGL_PREAMBLE_TOPK;
    const uint8_t *mask = NULL;
    if (has_mask) {
        if (off + g->mask_bytes > body_len) {
            return NGL_ERR_BAD_SECTION;
        }
        mask = body + off;
        if (check_mask(mask, g) != NGL_OK) {
            return NGL_ERR_BAD_MASK;
        }
        off += g->mask_bytes;
    }
    const uint64_t ngroups = NGL_DIV_CEIL(k, (uint64_t)g->block);
    const uint64_t scales_off = off + idx_bytes;
    const uint64_t codes_off = scales_off + 4u * ngroups;
    const uint64_t codes_len = g->int4 ? NGL_DIV_CEIL(k, 2u) : k;
    const uint64_t exc_off = codes_off + codes_len;
    if (n_exc > g->count || exc_off + (uint64_t)n_exc * esz != body_len) {
        return NGL_ERR_BAD_SECTION;
    }
    ngl_status st = parse_indices(dec, body + off, (size_t)idx_bytes, fmt, k, mask);
    if (st == NGL_OK) {
        st = check_scales(body + scales_off, ngroups);
    }
    if (st != NGL_OK) {
        return st;
    }
    const uint8_t *codes = body + codes_off;
    const int qmin = g->int4 ? -NGL_QMAX_INT4 : -NGL_QMAX_INT8;
    for (uint64_t e = 0; e < k; e++) {
        if (ngl_gpu_get_code(codes, e, g->int4) < qmin) {
            return NGL_ERR_BAD_CODE;
        }
    }
    if (g->int4 && (k & 1u) && (codes[codes_len - 1] & 0xf0u)) {
        return NGL_ERR_BAD_CODE;
    }
    uint64_t cur = 0, prev = 0;
    for (uint32_t e = 0; e < n_exc; e++) {
        uint64_t i = ngl_rd_u32(body + exc_off + (uint64_t)e * esz);
        if (i >= g->count || (e > 0 && i <= prev)) {
            return NGL_ERR_BAD_EXCEPTION;
        }
        prev = i;
        while (cur < k && dec->h_sel[cur] < i) {
            cur++;
        }
        if (cur < k && dec->h_sel[cur] == i && ngl_gpu_get_code(codes, cur, g->int4) != 0) {
            return NGL_ERR_BAD_CODE;
        }
    }
    f->mask = mask;
    f->scales = body + scales_off;
    f->n_scales = ngroups;
    f->codes = codes;
    f->codes_len = codes_len;
    f->exc = body + exc_off;
    f->n_exc = n_exc;
    f->k = k;
    return NGL_OK;
}

/* Header and configuration checks of ngl_decoder_decode(), then the body. */
static ngl_status validate(ngl_cuda_decoder *dec, const uint8_t *src, size_t src_len, gpu_frame *f)
{
    const ngl_gpu_geom *g = &dec->g;
    ngl_frame_info fi;
    ngl_status st = ngl_wire_parse(src, src_len, 1, &fi);
    if (st != NGL_OK) {
        return st;
    }
    if (fi.count != g->count) {
        return NGL_ERR_COUNT_MISMATCH;
    }
    if (fi.codec != g->cfg.codec || fi.dtype != g->cfg.dtype || fi.predictor != g->cfg.predictor ||
        fi.block_size != g->block || ((fi.flags & NGL_FLAG_TOPK) != 0) != (g->topk != 0)) {
        return NGL_ERR_CONFIG_MISMATCH;
    }
    if (fi.stream_id != g->cfg.stream_id) {
        return NGL_ERR_STREAM_MISMATCH;
    }
    if (fi.step != dec->step) {
        return NGL_ERR_STEP_MISMATCH;
    }
    const unsigned backend = ngl_flags_backend(fi.flags);
    if (backend != NGL_LOSSLESS_NONE) {
        /* core: unknown back end first, then "stream has no back end" */
        return ngl_backend_available(backend) ? NGL_ERR_CONFIG_MISMATCH
                                              : NGL_ERR_BACKEND_UNAVAILABLE;
    }
    const uint8_t *body = src + NGL_FRAME_HEADER_SIZE;
    const size_t body_len = fi.payload_len;
    if (body_len < NGL_PREAMBLE_COMMON) {
        return NGL_ERR_BAD_SECTION;
    }
    st = check_preamble(g, body);
    if (st != NGL_OK) {
        return st;
    }
    const int has_mask = (fi.flags & NGL_FLAG_MASK) != 0;
    return g->topk ? validate_topk(dec, body, body_len, has_mask, f)
                   : validate_dense(dec, body, body_len, has_mask, f);
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
    gpu_frame f;
    ngl_status st = validate(dec, (const uint8_t *)src, src_len, &f);
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
        e = ngl_gpu_memcpy_async(dec->sel, dec->h_sel, (size_t)f.k * 4u, stream);
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
