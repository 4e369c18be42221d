/* SPDX-License-Identifier: Apache-2.0 */
/*
 * topk.c -- Top-K sparsification with error feedback.
 *
 * Selection is exact and O(n): the key of an element is the bit pattern of
 * |r| plus one (IEEE magnitudes order like their bits), 0 for ineligible
 * elements, and a three-pass MSD radix select finds the k-th largest key.
 * Ties at the threshold go to the lowest indices, so every run (and every
 * kernel variant) selects the same set. Selected values are quantized with
 * the stream's INT8/INT4 codec in groups of block_size; everything else goes
 * to error feedback.
 */
#include "ngl_stream.h"

#define TK_SELECTED 0xffffffffu /* key sentinel once an element is chosen */

/* Smallest key T such that at least k keys are >= T, and how many keys
 * equal to T to take (the lowest-indexed ones). Requires 1 <= k <= #keys>0. */
static uint32_t radix_select(const uint32_t *key, size_t n, uint64_t k, uint64_t *take_eq)
{
    static const unsigned shift[3] = {21, 10, 0};
    static const uint32_t width[3] = {0x7ffu, 0x7ffu, 0x3ffu};
    uint32_t prefix = 0, pmask = 0;
    uint64_t remaining = k;
    uint32_t hist[2048];

    for (int pass = 0; pass < 3; pass++) {
        memset(hist, 0, sizeof hist);
        for (size_t i = 0; i < n; i++) {
            uint32_t v = key[i];
            if ((v & pmask) == prefix) {
                hist[(v >> shift[pass]) & width[pass]]++;
            }
        }
        uint32_t d = width[pass];
        for (;; d--) {
            if (remaining <= hist[d] || d == 0) {
                break;
            }
            remaining -= hist[d];
        }
        prefix |= d << shift[pass];
        pmask |= width[pass] << shift[pass];
    }
    *take_eq = remaining;
    return prefix;
}

static void job_for_state(ngl_stream *s, ngl_dense_job *j)
{
    memset(j, 0, sizeof *j);
    j->count = s->count;
    j->block = s->block;
    j->nblocks = s->nblocks;
    j->int4 = s->cfg.codec == NGL_CODEC_INT4;
    j->qmax = j->int4 ? NGL_QMAX_INT4 : NGL_QMAX_INT8;
    j->pred = s->cfg.predictor;
    j->hist = s->hist;
    j->beta = s->cfg.momentum_beta;
    j->one_minus_beta = 1.0f - s->cfg.momentum_beta;
    j->st1 = (float *)s->st1;
    j->st2 = (float *)s->st2;
    j->gate = s->gate;
    j->exc_dsize = (uint32_t)s->dsize;
    j->dtype = s->cfg.dtype;
}

static void put_code(uint8_t *codes, uint64_t pos, int32_t q, int int4)
{
    if (!int4) {
        codes[pos] = (uint8_t)(int8_t)q;
        return;
    }
    uint8_t *p = codes + (pos >> 1);
    uint8_t nib = (uint8_t)(q & 0xf);
    *p = (pos & 1u) ? (uint8_t)((*p & 0x0fu) | (nib << 4)) : (uint8_t)((*p & 0xf0u) | nib);
}

static int32_t get_code(const uint8_t *codes, uint64_t pos, int int4)
{
    if (!int4) {
        return (int8_t)codes[pos];
    }
    uint8_t b = codes[pos >> 1];
    int32_t nib = (pos & 1u) ? (b >> 4) : (b & 0xf);
    return (nib ^ 8) - 8;
}

ngl_status ngl_topk_encode_body(ngl_stream *s, float *ef, const float *x, const void *src_raw,
                                const uint8_t *skip, uint8_t *body, size_t *body_len,
                                uint64_t *n_exc_out, uint64_t *gated)
{
    const size_t n = (size_t)s->count;
    ngl_dense_job j;
    job_for_state(s, &j);
    j.src_raw = src_raw;
    const int int4 = j.int4;
    float *R = s->tk_r;
    uint32_t *K = s->tk_key;
    uint64_t eligible = 0;
    *gated = 0;

    /* Pass A: residuals and selection keys. */
    for (uint32_t b = 0; b < s->nblocks; b++) {
        const uint64_t lo = (uint64_t)b * s->block, hi = lo + ngl_block_len(s, b);
        const int use_pred = j.pred != NGL_PRED_NONE && j.gate[b];
        const int skipped = skip && ngl_bit_get(skip, b);
        *gated += (uint64_t)use_pred;
        for (uint64_t i = lo; i < hi; i++) {
            float xv = x[i];
            float t = ef ? xv + ef[i] : xv;
            if (!ngl_f32_finite(t)) {
                t = xv;
            }
            float p = use_pred ? ngl_pred_raw(&j, i) : 0.0f;
            float r = t - p;
            R[i] = r;
            if (!ngl_f32_finite(r) || skipped) {
                K[i] = 0;
            } else {
                K[i] = ngl_f32_bits(r) & 0x7fffffffu;
                K[i] += 1u;
                eligible++;
            }
        }
    }

    /* Selection: exactly k, lowest index first among ties. */
    const uint64_t k = NGL_MIN(s->k_max, eligible);
    uint64_t nsel = 0;
    if (k > 0) {
        uint64_t take_eq = 0;
        uint32_t T = radix_select(K, n, k, &take_eq);
        for (size_t i = 0; i < n; i++) {
            uint32_t key = K[i];
            if (key > T || (key == T && take_eq > 0)) {
                if (key == T) {
                    take_eq--;
                }
                s->tk_sel[nsel++] = (uint32_t)i;
                K[i] = TK_SELECTED;
            }
        }
    }

    /* Index format: the smaller of bitmap and varint gaps. */
    const size_t bitmap_bytes = NGL_DIV_CEIL(n, 8u);
    size_t varint_bytes = 0;
    for (uint64_t e = 0; e < nsel; e++) {
        uint32_t v = e == 0 ? s->tk_sel[0] : s->tk_sel[e] - s->tk_sel[e - 1] - 1u;
        varint_bytes += ngl_varint_len(v);
    }
    const unsigned fmt = varint_bytes < bitmap_bytes ? NGL_TOPK_FMT_VARINT : NGL_TOPK_FMT_BITMAP;
    const size_t idx_bytes = fmt == NGL_TOPK_FMT_VARINT ? varint_bytes : bitmap_bytes;

    size_t off = NGL_PREAMBLE_COMMON + NGL_PREAMBLE_TOPK;
    if (skip) {
        size_t mb = ngl_mask_bytes(s->nblocks);
        memcpy(body + off, skip, mb);
        off += mb;
    }
    uint8_t *idx = body + off;
    off += idx_bytes;
    if (fmt == NGL_TOPK_FMT_BITMAP) {
        memset(idx, 0, idx_bytes);
        for (uint64_t e = 0; e < nsel; e++) {
            ngl_bit_set(idx, s->tk_sel[e]);
        }
    } else {
        size_t w = 0;
        for (uint64_t e = 0; e < nsel; e++) {
            uint32_t v = e == 0 ? s->tk_sel[0] : s->tk_sel[e] - s->tk_sel[e - 1] - 1u;
            w += ngl_varint_put(idx + w, v);
        }
    }
    const uint64_t ngroups = NGL_DIV_CEIL(nsel, (uint64_t)s->block);
    uint8_t *scales = body + off;
    off += 4u * (size_t)ngroups;
    uint8_t *codes = body + off;
    const size_t codes_len = int4 ? (size_t)NGL_DIV_CEIL(nsel, 2u) : (size_t)nsel;
    if (int4 && codes_len > 0) {
        codes[codes_len - 1] = 0;
    }
    off += codes_len;
    uint8_t *exc = body + off;

    /* Quantize the selected values group by group; keep r-hat in R. */
    const ngl_rng_key key = ngl_rng_key_make(s->cfg.seed, s->cfg.stream_id, s->step);
    for (uint64_t g = 0; g < ngroups; g++) {
        const uint64_t lo = g * s->block, hi = NGL_MIN(lo + s->block, nsel);
        float maxabs = 0.0f;
        for (uint64_t e = lo; e < hi; e++) {
            float a = ngl_absf(R[s->tk_sel[e]]);
            if (a > maxabs) {
                maxabs = a;
            }
        }
        float scale, inv;
        ngl_block_scale(maxabs, j.qmax, &scale, &inv);
        ngl_wr_u32(scales + 4 * g, ngl_f32_bits(scale));
        for (uint64_t e = lo; e < hi; e++) {
            uint32_t i = s->tk_sel[e];
            int32_t q = ngl_sr_quantize(R[i], inv, ngl_rng_uniform(key, i), j.qmax);
            put_code(codes, e, q, int4);
            R[i] = ngl_dequantize(q, scale);
        }
    }

    /* Reconstruct as the decoder will; update EF, exceptions and state. */
    const size_t esz = 4u + s->dsize;
    j.exc = exc;
    uint64_t cur = 0; /* position of the next selected element */
    for (uint32_t b = 0; b < s->nblocks; b++) {
        const uint64_t lo = (uint64_t)b * s->block, hi = lo + ngl_block_len(s, b);
        const int use_pred = j.pred != NGL_PRED_NONE && j.gate[b];
        float a = 0.0f, c = 0.0f;
        for (uint64_t i = lo; i < hi; i++) {
            float xv = x[i];
            float praw = ngl_pred_raw(&j, i);
            float p = use_pred ? praw : 0.0f;
            const int selected = K[i] == TK_SELECTED;
            /* NaN/Inf input or residual overflow: never selected, sent exactly */
            int is_exc = !selected && !ngl_f32_finite(R[i]);
            float xhat = selected ? p + R[i] : p;
            if (!is_exc && !ngl_f32_finite(xhat)) {
                /* finite input, reconstruction overflows: sent exactly,
                 * with code 0 if it was selected */
                is_exc = 1;
                if (selected) {
                    put_code(codes, cur, 0, int4);
                }
            }
            cur += (uint64_t)selected;
            if (is_exc) {
                ngl_exc_append(&j, i);
                xhat = xv;
            }
            if (ef) {
                float t = xv + ef[i];
                if (!ngl_f32_finite(t)) {
                    t = xv;
                }
                ef[i] = ngl_f32_finite(xv) ? t - xhat : 0.0f;
            }
            ngl_state_update(&j, i, xhat, praw, &a, &c);
        }
        ngl_gate_store(&j, b, a, c);
    }

    ngl_write_preamble(s, body, j.n_exc);
    ngl_wr_u32(body + 8, (uint32_t)nsel);
    ngl_wr_u32(body + 12, (uint32_t)idx_bytes);
    body[16] = (uint8_t)fmt;
    body[17] = body[18] = body[19] = 0;
    *body_len = off + (size_t)j.n_exc * esz;
    *n_exc_out = j.n_exc;
    return NGL_OK;
}

/* Parse and validate the index section into s->tk_sel. */
static ngl_status parse_indices(ngl_stream *s, const uint8_t *idx, size_t idx_bytes, unsigned fmt,
                                uint64_t k, const uint8_t *mask)
{
    const uint64_t n = s->count;
    uint64_t got = 0;
    if (fmt == NGL_TOPK_FMT_BITMAP) {
        if (idx_bytes != NGL_DIV_CEIL(n, 8u)) {
            return NGL_ERR_BAD_INDEX;
        }
        if ((n % 8u) && (idx[idx_bytes - 1] >> (n % 8u))) {
            return NGL_ERR_BAD_INDEX;
        }
        for (size_t byte = 0; byte < idx_bytes; byte++) {
            uint8_t v = idx[byte];
            while (v) {
                unsigned bit = (unsigned)__builtin_ctz(v);
                v &= (uint8_t)(v - 1u);
                if (got >= k) {
                    return NGL_ERR_BAD_INDEX;
                }
                s->tk_sel[got++] = (uint32_t)(byte * 8u + bit);
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
            s->tk_sel[got] = (uint32_t)i;
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
            if (ngl_bit_get(mask, s->tk_sel[e] / s->block)) {
                return NGL_ERR_BAD_INDEX;
            }
        }
    }
    return NGL_OK;
}

ngl_status ngl_topk_decode_body(ngl_stream *s, const uint8_t *body, size_t body_len, int has_mask,
                                float *out, int accumulate, uint64_t *n_exc_out)
{
    const int int4 = s->cfg.codec == NGL_CODEC_INT4;
    const size_t esz = 4u + s->dsize;
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
    if (k > s->k_max) {
        return NGL_ERR_BAD_INDEX;
    }
    uint64_t off = NGL_PREAMBLE_COMMON + NGL_PREAMBLE_TOPK;
    const uint8_t *mask = NULL;
    if (has_mask) {
        size_t mb = ngl_mask_bytes(s->nblocks);
        if (off + mb > body_len) {
            return NGL_ERR_BAD_SECTION;
        }
        mask = body + off;
        if ((s->nblocks % 8u) && (mask[mb - 1] >> (s->nblocks % 8u))) {
            return NGL_ERR_BAD_MASK;
        }
        off += mb;
    }
    const uint64_t idx_off = off;
    const uint64_t ngroups = NGL_DIV_CEIL(k, (uint64_t)s->block);
    const uint64_t scales_off = idx_off + idx_bytes;
    const uint64_t codes_off = scales_off + 4u * ngroups;
    const uint64_t codes_len = int4 ? NGL_DIV_CEIL(k, 2u) : k;
    const uint64_t exc_off = codes_off + codes_len;
    if (n_exc > s->count || exc_off + (uint64_t)n_exc * esz != body_len) {
        return NGL_ERR_BAD_SECTION;
    }
    ngl_status st = parse_indices(s, body + idx_off, (size_t)idx_bytes, fmt, k, mask);
    if (st != NGL_OK) {
        return st;
    }
    for (uint64_t g = 0; g < ngroups; g++) {
        uint32_t bits = ngl_rd_u32(body + scales_off + 4 * g);
        if ((bits & 0x80000000u) || (bits & 0x7f800000u) == 0x7f800000u) {
            return NGL_ERR_BAD_SCALE;
        }
    }
    const uint8_t *codes = body + codes_off;
    for (uint64_t e = 0; e < k; e++) {
        int32_t q = get_code(codes, e, int4);
        if (q < -(int4 ? NGL_QMAX_INT4 : NGL_QMAX_INT8)) {
            return NGL_ERR_BAD_CODE;
        }
    }
    if (int4 && (k & 1u) && (codes[codes_len - 1] & 0xf0u)) {
        return NGL_ERR_BAD_CODE;
    }
    /* exceptions: strictly increasing, in range, code 0 if selected */
    {
        uint64_t cur = 0, prev = 0;
        for (uint32_t e = 0; e < n_exc; e++) {
            uint64_t i = ngl_rd_u32(body + exc_off + (uint64_t)e * esz);
            if (i >= s->count || (e > 0 && i <= prev)) {
                return NGL_ERR_BAD_EXCEPTION;
            }
            prev = i;
            while (cur < k && s->tk_sel[cur] < i) {
                cur++;
            }
            if (cur < k && s->tk_sel[cur] == i && get_code(codes, cur, int4) != 0) {
                return NGL_ERR_BAD_CODE;
            }
        }
    }

    /* Everything checked: reconstruct and update state. */
    ngl_dense_job j;
    job_for_state(s, &j);
    j.exc = (uint8_t *)(uintptr_t)(body + exc_off);
    j.n_exc = n_exc;
    uint64_t cur = 0;
    for (uint32_t b = 0; b < s->nblocks; b++) {
        const uint64_t lo = (uint64_t)b * s->block, hi = lo + ngl_block_len(s, b);
        const int use_pred = j.pred != NGL_PRED_NONE && j.gate[b];
        float a = 0.0f, c = 0.0f;
        for (uint64_t i = lo; i < hi; i++) {
            float praw = ngl_pred_raw(&j, i);
            float p = use_pred ? praw : 0.0f;
            float xhat = p;
            int selected = cur < k && s->tk_sel[cur] == i;
            if (j.exc_cursor < n_exc && ngl_rd_u32(j.exc + (size_t)j.exc_cursor * esz) == i) {
                xhat = ngl_exc_value(&j, j.exc + (size_t)j.exc_cursor * esz + 4);
                j.exc_cursor++;
            } else if (selected) {
                float scale = ngl_bits_f32(ngl_rd_u32(body + scales_off + 4 * (cur / s->block)));
                xhat = p + ngl_dequantize(get_code(codes, cur, int4), scale);
            }
            cur += (uint64_t)selected;
            if (accumulate) {
                out[i] += xhat;
            } else {
                out[i] = xhat;
            }
            ngl_state_update(&j, i, xhat, praw, &a, &c);
        }
        ngl_gate_store(&j, b, a, c);
    }
    if (n_exc_out) {
        *n_exc_out = n_exc;
    }
    return NGL_OK;
}
