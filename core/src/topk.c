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

#include <math.h>

#define TK_SELECTED 0xffffffffu /* key sentinel once an element is chosen */

/* Smallest key T such that at least k keys are >= T, and how many keys
 * equal to T to take (the lowest-indexed ones). Requires 1 <= k <= #keys>0.
 * The keys are key[0..n) or, with @p idx, key[idx[0..n)]. @p hist0, if
 * not NULL, is the histogram of key >> 21 over those keys. */
static uint32_t radix_select(const uint32_t *key, const uint32_t *idx, size_t n, uint64_t k,
                             const uint32_t *hist0, uint64_t *take_eq)
{
    static const unsigned shift[3] = {21, 10, 0};
    static const uint32_t width[3] = {0x7ffu, 0x7ffu, 0x3ffu};
    uint32_t prefix = 0, pmask = 0;
    uint64_t remaining = k;
    uint32_t hist[2048];

    for (int pass = 0; pass < 3; pass++) {
        const uint32_t *h = hist0;
        if (pass > 0 || hist0 == NULL) {
            memset(hist, 0, sizeof hist);
            for (size_t i = 0; i < n; i++) {
                uint32_t v = idx ? key[idx[i]] : key[i];
                if ((v & pmask) == prefix) {
                    hist[(v >> shift[pass]) & width[pass]]++;
                }
            }
            h = hist;
        }
        uint32_t d = width[pass];
        for (;; d--) {
            if (remaining <= h[d] || d == 0) {
                break;
            }
            remaining -= h[d];
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

/* Pass A: residual r and selection key of every element, and the
 * histogram of the keys' top digit. Specialised per predictor and EF. */
static inline __attribute__((always_inline)) uint64_t
topk_residuals(ngl_stream *s, ngl_dense_job *j, const float *ef, const float *x,
               const uint8_t *skip, uint32_t *hist4, uint64_t *gated, const int pred,
               const int has_ef)
{
    float *R = s->tk_r;
    uint32_t *K = s->tk_key;
    uint64_t eligible = 0;
    for (uint32_t b = 0; b < s->nblocks; b++) {
        const uint64_t lo = (uint64_t)b * s->block, hi = lo + ngl_block_len(s, b);
        const int use_pred = pred != NGL_PRED_NONE && j->gate[b];
        const uint32_t live = (skip && ngl_bit_get(skip, b)) ? 0u : 0xffffffffu;
        *gated += (uint64_t)use_pred;
        for (uint64_t i = lo; i < hi; i++) {
            float xv = x[i];
            float t = xv;
            if (has_ef) {
                t = xv + ef[i];
                t = ngl_f32_finite(t) ? t : xv;
            }
            float p = use_pred ? ngl_pred_raw(j, i) : 0.0f;
            float r = t - p;
            R[i] = r;
            uint32_t mag = ngl_f32_bits(r) & 0x7fffffffu;
            /* eligible: finite and not in a skipped block; key = |r| bits + 1 */
            uint32_t key = (mag < 0x7f800000u ? mag + 1u : 0u) & live;
            K[i] = key;
            hist4[((i & 3u) << 11) | (key >> 21)]++;
            eligible += key != 0;
        }
    }
    return eligible;
}

typedef struct topk_out {
    uint8_t *scales;
    uint8_t *codes;
    float *ga, *gc; /* per-block gate evidence */
    ngl_rng_key key;
    uint64_t n_late; /* selected elements turned exceptions (s->tk_late) */
} topk_out;

/* Append the late exceptions (selected elements whose reconstruction would
 * overflow) and restore index order. They are rare: a plain sort will do. */
static void topk_merge_late(ngl_stream *s, ngl_dense_job *j, uint64_t n_late)
{
    if (n_late == 0) {
        return;
    }
    for (uint64_t e = 0; e < n_late; e++) {
        ngl_exc_append(j, s->tk_late[e]);
    }
    ngl_exc_sort(j->exc, j->n_exc, 4u + j->exc_dsize);
}

/* Target t = x + e as in pass A (the same operations, so the same bits). */
static inline float topk_target(const float *ef, const float *x, uint64_t i, int has_ef)
{
    float xv = x[i];
    if (!has_ef) {
        return xv;
    }
    float t = xv + ef[i];
    return ngl_f32_finite(t) ? t : xv;
}

/* Quantize group g (selected elements tk_sel[g*B ..]) and finish them:
 * reconstruct, error feedback, state. */
static inline __attribute__((always_inline)) void
topk_flush_group(ngl_stream *s, ngl_dense_job *j, topk_out *o, float *ef, const float *x,
                 uint64_t g, uint64_t end, const int pred, const int has_ef)
{
    const float *R = s->tk_r;
    const uint64_t lo = g * s->block;
    float maxabs = 0.0f;
    for (uint64_t e = lo; e < end; e++) {
        float a = ngl_absf(R[s->tk_sel[e]]);
        maxabs = a > maxabs ? a : maxabs;
    }
    float scale, inv;
    ngl_block_scale(maxabs, j->qmax, &scale, &inv);
    ngl_wr_u32(o->scales + 4 * g, ngl_f32_bits(scale));
    for (uint64_t e = lo; e < end; e++) {
        const uint32_t i = s->tk_sel[e];
        const uint32_t b = i / s->block;
        int32_t q = ngl_sr_quantize(R[i], inv, ngl_rng_uniform(o->key, i), j->qmax);
        float praw = pred != NGL_PRED_NONE ? ngl_pred_raw(j, i) : 0.0f;
        float p = (pred != NGL_PRED_NONE && j->gate[b]) ? praw : 0.0f;
        float xhat = p + ngl_dequantize(q, scale);
        if (!ngl_f32_finite(xhat)) {
            /* a finite input never decodes to Inf: send it exactly (code 0);
             * it joins the exception list in index order at the end */
            q = 0;
            xhat = x[i];
            s->tk_late[o->n_late++] = i;
        }
        put_code(o->codes, e, q, j->int4);
        if (has_ef) {
            ef[i] = topk_target(ef, x, i, 1) - xhat;
        }
        if (pred != NGL_PRED_NONE) {
            ngl_state_update(j, i, xhat, praw, &o->ga[b], &o->gc[b]);
        }
    }
}

/* Final pass, in index order: select (key > T, or == T while ties remain),
 * stream selected elements into groups, finish every other element at once
 * (exception, or reconstruction = prediction). */
static inline __attribute__((always_inline)) void
topk_finish(ngl_stream *s, ngl_dense_job *j, topk_out *o, float *ef, const float *x, uint32_t T,
            uint64_t take_eq, uint8_t *bitmap, size_t *varint_bytes, const int pred,
            const int has_ef)
{
    const float *R = s->tk_r;
    const uint32_t *K = s->tk_key;
    const uint64_t B = s->block;
    uint64_t nsel = 0;
    uint32_t prev = 0;
    size_t vb = 0;
    for (uint32_t b = 0; b < s->nblocks; b++) {
        const uint64_t lo = (uint64_t)b * s->block, hi = lo + ngl_block_len(s, b);
        const int use_pred = pred != NGL_PRED_NONE && j->gate[b];
        for (uint64_t i = lo; i < hi; i++) {
            const uint32_t key = K[i];
            int sel = key > T;
            if (key == T && take_eq > 0) {
                sel = 1;
                take_eq--;
            }
            if (sel) {
                ngl_bit_set(bitmap, i);
                vb += ngl_varint_put(s->tk_varint + vb,
                                     nsel == 0 ? (uint32_t)i : (uint32_t)i - prev - 1u);
                prev = (uint32_t)i;
                s->tk_sel[nsel++] = (uint32_t)i;
                if (nsel % B == 0) {
                    topk_flush_group(s, j, o, ef, x, nsel / B - 1, nsel, pred, has_ef);
                }
                continue;
            }
            float praw = pred != NGL_PRED_NONE ? ngl_pred_raw(j, i) : 0.0f;
            float xhat = use_pred ? praw : 0.0f;
            /* NaN/Inf input, residual overflow, or a prediction that is not
             * finite: sent exactly */
            if (!ngl_f32_finite(R[i]) || !ngl_f32_finite(xhat)) {
                ngl_exc_append(j, i);
                xhat = x[i];
            }
            if (has_ef) {
                ef[i] = ngl_f32_finite(x[i]) ? topk_target(ef, x, i, 1) - xhat : 0.0f;
            }
            if (pred != NGL_PRED_NONE) {
                ngl_state_update(j, i, xhat, praw, &o->ga[b], &o->gc[b]);
            }
        }
    }
    if (nsel % B != 0) {
        topk_flush_group(s, j, o, ef, x, nsel / B, nsel, pred, has_ef);
    }
    *varint_bytes = vb;
}

#define TOPK_SPECIALISE(FN, ...)                                                                   \
    do {                                                                                           \
        switch (j.pred * 2 + (ef != NULL)) {                                                       \
        case 0: FN(__VA_ARGS__, NGL_PRED_NONE, 0); break;                                          \
        case 1: FN(__VA_ARGS__, NGL_PRED_NONE, 1); break;                                          \
        case 2: FN(__VA_ARGS__, NGL_PRED_MOMENTUM, 0); break;                                      \
        case 3: FN(__VA_ARGS__, NGL_PRED_MOMENTUM, 1); break;                                      \
        case 4: FN(__VA_ARGS__, NGL_PRED_LINEAR, 0); break;                                        \
        default: FN(__VA_ARGS__, NGL_PRED_LINEAR, 1); break;                                       \
        }                                                                                          \
    } while (0)

/* ---- Top-K without a predictor (the default for gradients) -------------
 * Here r = t = x + e, so pass A is one SIMD kernel (keys, EF = t); the
 * threshold comes from a bounded candidate set: a deterministic sample of
 * the keys gives a lower bound L that about k(1 + margin) keys reach, one
 * SIMD pass collects those candidates in index order, and the exact radix
 * select runs on them. The selected set is the same as the full select's
 * (it is defined by the keys alone); if the bound misses, the full select
 * runs instead. */
#define TOPK_SAMPLES 8192u

static uint64_t topk_select_nopred(ngl_stream *s, uint64_t k)
{
    const uint64_t n = s->count;
    const uint32_t *K = s->tk_key;
    uint32_t *cand = (uint32_t *)s->tk_r; /* n floats of scratch, unused here */
    uint64_t take_eq = 0, c = 0;
    uint32_t T = 0;
    int bounded = 0;
    const uint32_t *ckey = NULL; /* candidates' keys, contiguous, if gathered */

    if (n >= 16u * TOPK_SAMPLES && k < n / 2) {
        uint32_t *sample = s->tk_hist; /* 8192 entries */
        const uint64_t stride = n / TOPK_SAMPLES;
        uint64_t m_elig = 0;
        for (uint64_t j = 0; j < TOPK_SAMPLES; j++) {
            sample[j] = K[j * stride + stride / 2];
            m_elig += sample[j] != 0;
        }
        double ks = (double)k * (double)TOPK_SAMPLES / (double)n;
        uint64_t rank = (uint64_t)(ks + 4.0 * sqrt(ks) + 16.0);
        uint32_t L = 1;
        if (rank < m_elig) {
            uint64_t unused;
            L = radix_select(sample, NULL, TOPK_SAMPLES, rank, NULL, &unused);
        }
        const uint64_t cap = n > 32 ? n - 16 : 0;
        c = s->k->topk_collect(K, n, L < 1 ? 1 : L, cand, cap);
        if (c >= k && c <= cap) {
            if (2 * c <= n) {
                /* Gather the candidates' keys once (with the top digit's
                 * histogram) so the three select passes stream through a
                 * contiguous array instead of gathering from K each time. */
                uint32_t *keys = cand + c;
                uint32_t *hist0 = s->tk_hist;
                memset(hist0, 0, 2048 * sizeof *hist0);
                for (uint64_t e = 0; e < c; e++) {
                    uint32_t v = K[cand[e]];
                    keys[e] = v;
                    hist0[v >> 21]++;
                }
                T = radix_select(keys, NULL, (size_t)c, k, hist0, &take_eq);
                ckey = keys;
            } else {
                T = radix_select(K, cand, (size_t)c, k, NULL, &take_eq);
            }
            bounded = 1;
        }
    }
    uint64_t nsel = 0;
    if (bounded) {
        for (uint64_t e = 0; e < c; e++) {
            uint32_t key = ckey ? ckey[e] : K[cand[e]];
            if (key > T || (key == T && take_eq > 0)) {
                take_eq -= key == T;
                s->tk_sel[nsel++] = cand[e];
            }
        }
    } else {
        T = radix_select(K, NULL, (size_t)n, k, NULL, &take_eq);
        for (uint64_t i = 0; i < n; i++) {
            uint32_t key = K[i];
            if (key > T || (key == T && take_eq > 0)) {
                take_eq -= key == T;
                s->tk_sel[nsel++] = (uint32_t)i;
            }
        }
    }
    return nsel;
}

static ngl_status topk_encode_nopred(ngl_stream *s, float *ef, const float *x, const void *src_raw,
                                     const uint8_t *skip, uint8_t *body, size_t *body_len,
                                     uint64_t *n_exc_out)
{
    const uint64_t n = s->count;
    ngl_dense_job j;
    job_for_state(s, &j);
    j.src_raw = src_raw;
    uint64_t nonfinite = 0;
    const uint64_t eligible = s->k->topk_scan(x, ef, s->tk_key, skip, s->block, n, &nonfinite);
    const uint64_t k = NGL_MIN(s->k_max, eligible);
    const uint64_t nsel = k > 0 ? topk_select_nopred(s, k) : 0;

    /* index section: the smaller of bitmap and varint gaps */
    const size_t bitmap_bytes = NGL_DIV_CEIL((size_t)n, 8u);
    const size_t varint_bytes = ngl_topk_gaps_len(s->tk_sel, nsel);
    const unsigned fmt = varint_bytes < bitmap_bytes ? NGL_TOPK_FMT_VARINT : NGL_TOPK_FMT_BITMAP;
    const size_t idx_bytes = fmt == NGL_TOPK_FMT_VARINT ? varint_bytes : bitmap_bytes;
    size_t off = NGL_PREAMBLE_COMMON + NGL_PREAMBLE_TOPK;
    if (skip) {
        size_t mb = ngl_mask_bytes(s->nblocks);
        memcpy(body + off, skip, mb);
        off += mb;
    }
    uint8_t *idx = body + off;
    if (fmt == NGL_TOPK_FMT_BITMAP) {
        memset(idx, 0, bitmap_bytes);
        for (uint64_t e = 0; e < nsel; e++) {
            ngl_bit_set(idx, s->tk_sel[e]);
        }
    } else {
        ngl_topk_gaps_put(idx, s->tk_sel, nsel);
    }
    off += idx_bytes;
    const uint64_t ngroups = NGL_DIV_CEIL(nsel, (uint64_t)s->block);
    uint8_t *scales = body + off;
    off += 4u * (size_t)ngroups;
    uint8_t *codes = body + off;
    const size_t codes_len = j.int4 ? (size_t)NGL_DIV_CEIL(nsel, 2u) : (size_t)nsel;
    if (j.int4 && codes_len > 0) {
        codes[codes_len - 1] = 0;
    }
    off += codes_len;

    /* Quantize group by group. The value is t: ef[i] after the scan, or x.
     * The reconstruction is 0 + r-hat, and the error t - reconstruction. */
    const float *V = ef ? ef : x;
    const ngl_rng_key key = ngl_rng_key_make(s->cfg.seed, s->cfg.stream_id, s->step);
    uint64_t n_late = 0;
    for (uint64_t g = 0; g < ngroups; g++) {
        const uint64_t lo = g * s->block, hi = NGL_MIN(lo + s->block, nsel);
        float maxabs = 0.0f;
        for (uint64_t e = lo; e < hi; e++) {
            float a = ngl_absf(V[s->tk_sel[e]]);
            maxabs = a > maxabs ? a : maxabs;
        }
        float scale, inv;
        ngl_block_scale(maxabs, j.qmax, &scale, &inv);
        ngl_wr_u32(scales + 4 * g, ngl_f32_bits(scale));
        for (uint64_t e = lo; e < hi; e++) {
            const uint32_t i = s->tk_sel[e];
            int32_t q = ngl_sr_quantize(V[i], inv, ngl_rng_uniform(key, i), j.qmax);
            float xhat = 0.0f + ngl_dequantize(q, scale);
            if (!ngl_f32_finite(xhat)) {
                /* a finite input never decodes to Inf: sent exactly */
                q = 0;
                xhat = x[i];
                s->tk_late[n_late++] = i;
            }
            put_code(codes, e, q, j.int4);
            if (ef) {
                ef[i] = ef[i] - xhat; /* ef[i] held t */
            }
        }
    }

    /* exceptions: the non-finite inputs (the scan counted them) merged, in
     * index order, with the selected elements whose reconstruction would
     * overflow */
    j.exc = body + off;
    uint64_t late = 0;
    if (nonfinite > 0) {
        for (uint64_t i = 0; i < n; i++) {
            if (!ngl_f32_finite(x[i])) {
                while (late < n_late && s->tk_late[late] < i) {
                    ngl_exc_append(&j, s->tk_late[late++]);
                }
                ngl_exc_append(&j, i);
            }
        }
    }
    while (late < n_late) {
        ngl_exc_append(&j, s->tk_late[late++]);
    }
    ngl_write_preamble(&s->cfg, body, j.n_exc);
    ngl_topk_write_preamble(body, nsel, idx_bytes, fmt);
    *body_len = off + (size_t)j.n_exc * (4u + s->dsize);
    *n_exc_out = j.n_exc;
    return NGL_OK;
}

ngl_status ngl_topk_encode_body(ngl_stream *s, float *ef, const float *x, const void *src_raw,
                                const uint8_t *skip, uint8_t *body, size_t *body_len,
                                uint64_t *n_exc_out, uint64_t *gated)
{
    if (s->cfg.predictor == NGL_PRED_NONE) {
        *gated = 0;
        return topk_encode_nopred(s, ef, x, src_raw, skip, body, body_len, n_exc_out);
    }
    const size_t n = (size_t)s->count;
    ngl_dense_job j;
    job_for_state(s, &j);
    j.src_raw = src_raw;
    uint32_t *hist4 = s->tk_hist;
    uint64_t eligible = 0;
    *gated = 0;

    memset(hist4, 0, 4u * 2048u * sizeof(uint32_t));
#define PASS_A(...) (eligible = topk_residuals(__VA_ARGS__))
    TOPK_SPECIALISE(PASS_A, s, &j, ef, x, skip, hist4, gated);
#undef PASS_A
    for (uint32_t d = 0; d < 2048; d++) {
        hist4[d] += hist4[2048 + d] + hist4[4096 + d] + hist4[6144 + d];
    }

    /* Selection threshold: exactly k, lowest index first among ties. */
    const uint64_t k = NGL_MIN(s->k_max, eligible);
    uint32_t T = 0xffffffffu; /* no key reaches it: nothing selected */
    uint64_t take_eq = 0;
    if (k > 0) {
        T = radix_select(s->tk_key, NULL, n, k, hist4, &take_eq);
    }

    /* Layout, with room for a bitmap index section; if the varint form
     * turns out smaller, the tail moves down afterwards. */
    const size_t bitmap_bytes = NGL_DIV_CEIL(n, 8u);
    const uint64_t ngroups = NGL_DIV_CEIL(k, (uint64_t)s->block);
    size_t off = NGL_PREAMBLE_COMMON + NGL_PREAMBLE_TOPK;
    if (skip) {
        size_t mb = ngl_mask_bytes(s->nblocks);
        memcpy(body + off, skip, mb);
        off += mb;
    }
    uint8_t *idx = body + off;
    memset(idx, 0, bitmap_bytes);
    topk_out o;
    o.scales = idx + bitmap_bytes;
    o.codes = o.scales + 4u * (size_t)ngroups;
    const size_t codes_len = j.int4 ? (size_t)NGL_DIV_CEIL(k, 2u) : (size_t)k;
    if (j.int4 && codes_len > 0) {
        o.codes[codes_len - 1] = 0;
    }
    j.exc = o.codes + codes_len;
    o.key = ngl_rng_key_make(s->cfg.seed, s->cfg.stream_id, s->step);
    o.ga = s->tk_gate;
    o.gc = s->tk_gate + s->nblocks;
    if (j.pred != NGL_PRED_NONE) {
        memset(s->tk_gate, 0, 2u * (size_t)s->nblocks * sizeof(float));
    }

    size_t varint_bytes = 0;
    o.n_late = 0;
    TOPK_SPECIALISE(topk_finish, s, &j, &o, ef, x, T, take_eq, idx, &varint_bytes);
    topk_merge_late(s, &j, o.n_late);
    if (j.pred != NGL_PRED_NONE) {
        for (uint32_t b = 0; b < s->nblocks; b++) {
            ngl_gate_store(&j, b, o.ga[b], o.gc[b]);
        }
    }

    const size_t esz = 4u + s->dsize;
    const size_t tail = 4u * (size_t)ngroups + codes_len + (size_t)j.n_exc * esz;
    unsigned fmt = NGL_TOPK_FMT_BITMAP;
    size_t idx_bytes = bitmap_bytes;
    if (varint_bytes < bitmap_bytes) {
        fmt = NGL_TOPK_FMT_VARINT;
        idx_bytes = varint_bytes;
        memcpy(idx, s->tk_varint, varint_bytes);
        memmove(idx + varint_bytes, idx + bitmap_bytes, tail);
    }

    ngl_write_preamble(&s->cfg, body, j.n_exc);
    ngl_topk_write_preamble(body, k, idx_bytes, fmt);
    *body_len = off + idx_bytes + tail;
    *n_exc_out = j.n_exc;
    return NGL_OK;
}

/* Reconstruct a frame ngl_frame_validate() accepted (selected indices in
 * v->sel) and update the state. */
void ngl_topk_decode_body(ngl_stream *s, const ngl_frame_view *v, float *out, int accumulate)
{
    const int int4 = s->cfg.codec == NGL_CODEC_INT4;
    const size_t esz = 4u + s->dsize;
    const uint32_t n_exc = v->n_exc;
    const uint64_t k = v->k;
    const uint32_t *sel = v->sel;
    const uint8_t *scales = v->scales;
    const uint8_t *codes = v->codes;

    if (s->cfg.predictor == NGL_PRED_NONE) {
        /* No state: x-hat is 0 + r-hat where selected, the exception value
         * where listed (exceptions win over a zero-coded selection), +0
         * elsewhere. Storing can scatter over zeros; accumulating must add
         * x-hat exactly once per element (adding +0 turns -0 into +0). */
        float *o = out;
        const uint8_t *exc = v->exc;
        ngl_dense_job jx;
        job_for_state(s, &jx);
        uint32_t ecur = 0;
        uint64_t e = 0;
        if (accumulate) {
            for (uint64_t i = 0; i < s->count; i++) {
                float xhat = 0.0f;
                int is_sel = e < k && sel[e] == i;
                if (ecur < n_exc && ngl_rd_u32(exc + (size_t)ecur * esz) == i) {
                    xhat = ngl_exc_value(&jx, exc + (size_t)ecur * esz + 4);
                    ecur++;
                } else if (is_sel) {
                    float scale = ngl_bits_f32(ngl_rd_u32(scales + 4 * (e / s->block)));
                    xhat = 0.0f + ngl_dequantize(get_code(codes, e, int4), scale);
                }
                e += (uint64_t)is_sel;
                o[i] += xhat;
            }
        } else {
            memset(o, 0, (size_t)s->count * sizeof(float));
            for (e = 0; e < k; e++) {
                float scale = ngl_bits_f32(ngl_rd_u32(scales + 4 * (e / s->block)));
                o[sel[e]] = 0.0f + ngl_dequantize(get_code(codes, e, int4), scale);
            }
            for (ecur = 0; ecur < n_exc; ecur++) {
                const uint8_t *en = exc + (size_t)ecur * esz;
                o[ngl_rd_u32(en)] = ngl_exc_value(&jx, en + 4);
            }
        }
        return;
    }
    ngl_dense_job j;
    job_for_state(s, &j);
    j.exc = (uint8_t *)(uintptr_t)v->exc;
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
            int selected = cur < k && sel[cur] == i;
            if (j.exc_cursor < n_exc && ngl_rd_u32(j.exc + (size_t)j.exc_cursor * esz) == i) {
                xhat = ngl_exc_value(&j, j.exc + (size_t)j.exc_cursor * esz + 4);
                j.exc_cursor++;
            } else if (selected) {
                float scale = ngl_bits_f32(ngl_rd_u32(scales + 4 * (cur / s->block)));
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
}
