/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels_avx2.c -- AVX2 (+F16C) variant of the dense kernels, 8 lanes.
 * Same structure and the same fallbacks as kernels_avx512.c.
 */
#include "ngl_kernels.h"

#include <immintrin.h>
#include <pthread.h>

#define W 8

static inline __m256 v_finite(__m256 v)
{
    __m256i e = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7f800000));
    __m256i inf = _mm256_cmpeq_epi32(e, _mm256_set1_epi32(0x7f800000));
    return _mm256_castsi256_ps(_mm256_xor_si256(inf, _mm256_set1_epi32(-1)));
}

static inline __m256 v_abs(__m256 v)
{
    return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
}

static inline float v_hmax(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

static inline __m256 v_pred_raw(const ngl_dense_job *j, uint64_t i, int pred)
{
    if (pred == NGL_PRED_MOMENTUM) {
        return _mm256_loadu_ps(j->st1 + i);
    }
    if (pred == NGL_PRED_LINEAR) {
        if (j->hist >= 2) {
            __m256 twice = _mm256_mul_ps(_mm256_set1_ps(2.0f), _mm256_loadu_ps(j->st1 + i));
            return _mm256_sub_ps(twice, _mm256_loadu_ps(j->st2 + i));
        }
        return j->hist == 1 ? _mm256_loadu_ps(j->st1 + i) : _mm256_setzero_ps();
    }
    return _mm256_setzero_ps();
}

static inline void v_state_update(ngl_dense_job *j, uint64_t i, __m256 xhat, __m256 praw, int pred,
                                  __m256 *a, __m256 *c)
{
    if (pred == NGL_PRED_NONE) {
        return;
    }
    const __m256 fx = v_finite(xhat);
    /* masked-out lanes contribute 0, which never raises a maximum */
    *a = _mm256_max_ps(*a, _mm256_and_ps(fx, v_abs(_mm256_sub_ps(xhat, praw))));
    *c = _mm256_max_ps(*c, _mm256_and_ps(fx, v_abs(xhat)));
    if (pred == NGL_PRED_MOMENTUM) {
        __m256 t1 = _mm256_mul_ps(_mm256_set1_ps(j->beta), praw);
        __m256 t2 = _mm256_mul_ps(_mm256_set1_ps(j->one_minus_beta), xhat);
        __m256 nm = _mm256_add_ps(t1, t2);
        __m256 keep = _mm256_and_ps(fx, v_finite(nm));
        _mm256_storeu_ps(j->st1 + i, _mm256_blendv_ps(praw, nm, keep));
    } else {
        __m256 x1 = _mm256_loadu_ps(j->st1 + i);
        __m256 x2 = _mm256_loadu_ps(j->st2 + i);
        _mm256_storeu_ps(j->st2 + i, _mm256_blendv_ps(x2, x1, fx));
        _mm256_storeu_ps(j->st1 + i, _mm256_blendv_ps(x1, xhat, fx));
    }
}

static inline __m256 v_target(const ngl_dense_job *j, uint64_t i, __m256 x, int has_ef)
{
    if (!has_ef) {
        return x;
    }
    __m256 t = _mm256_add_ps(x, _mm256_loadu_ps(j->ef + i));
    return _mm256_blendv_ps(x, t, v_finite(t));
}

static inline __m256 v_uniform(ngl_rng_key key, uint32_t index)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i h = _mm256_add_epi32(_mm256_set1_epi32((int)index), lane);
    h = _mm256_xor_si256(h, _mm256_set1_epi32((int)key.hi));
    h = _mm256_mullo_epi32(h, _mm256_set1_epi32((int)0x9e3779b1u));
    h = _mm256_add_epi32(h, _mm256_set1_epi32((int)key.lo));
    h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
    h = _mm256_mullo_epi32(h, _mm256_set1_epi32((int)0x85ebca6bu));
    h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 13));
    h = _mm256_mullo_epi32(h, _mm256_set1_epi32((int)0xc2b2ae35u));
    h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
    __m256 u = _mm256_cvtepi32_ps(_mm256_srli_epi32(h, 8));
    return _mm256_mul_ps(u, _mm256_set1_ps(0x1p-24f));
}

static inline void v_store_codes(uint8_t *codes, uint64_t pos, __m256i q, int int4)
{
    if (!int4) {
        __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(codes + pos), _mm_packs_epi16(w16, w16));
        return;
    }
    __m256i nib = _mm256_and_si256(q, _mm256_set1_epi32(0xf));
    __m256i pair = _mm256_or_si256(nib, _mm256_srli_epi64(nib, 32 - 4));
    pair = _mm256_and_si256(pair, _mm256_set1_epi64x(0xff));
    /* the four pair bytes sit in dwords 0, 2, 4, 6 */
    __m256i packed = _mm256_permutevar8x32_epi32(pair, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    __m128i lo = _mm256_castsi256_si128(packed);
    __m128i b = _mm_packus_epi16(_mm_packus_epi32(lo, lo), _mm_setzero_si128());
    uint32_t v = (uint32_t)_mm_cvtsi128_si32(b);
    memcpy(codes + (pos >> 1), &v, 4);
}

static inline __m256i v_load_codes(const uint8_t *codes, uint64_t pos, int int4)
{
    if (!int4) {
        return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(codes + pos)));
    }
    uint32_t raw;
    memcpy(&raw, codes + (pos >> 1), 4);
    __m128i bytes = _mm_cvtsi32_si128((int)raw);
    __m256i v = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(bytes, bytes));
    v = _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4)),
                         _mm256_set1_epi32(0xf));
    return _mm256_sub_epi32(_mm256_xor_si256(v, _mm256_set1_epi32(8)), _mm256_set1_epi32(8));
}

static inline __attribute__((always_inline)) void enc_block(ngl_dense_job *j, uint32_t b,
                                                            uint64_t sent, const int pred,
                                                            const int has_ef, const int int4)
{
    const uint64_t lo = (uint64_t)b * j->block;
    const uint32_t len = j->block;
    const int use_pred = pred != NGL_PRED_NONE && j->gate[b];

    __m256 maxv = _mm256_setzero_ps(), maxp = _mm256_setzero_ps();
    __m256 allfin = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    for (uint32_t k = 0; k < len; k += W) {
        const uint64_t i = lo + k;
        __m256 t = v_target(j, i, _mm256_loadu_ps(j->x + i), has_ef);
        __m256 p = use_pred ? v_pred_raw(j, i, pred) : _mm256_setzero_ps();
        __m256 r = _mm256_sub_ps(t, p);
        allfin = _mm256_and_ps(allfin, v_finite(r));
        maxv = _mm256_max_ps(maxv, v_abs(r));
        maxp = _mm256_max_ps(maxp, v_abs(p));
        _mm256_storeu_ps(j->rbuf + k, r);
    }
    /* Exceptions, and magnitudes where p + q*scale could overflow (only
     * beyond 2^125): the reference handles them. */
    if (_mm256_movemask_ps(allfin) != 0xff || v_hmax(_mm256_max_ps(maxv, maxp)) >= 0x1p125f) {
        ngl_ref_encode_block(j, b, sent);
        return;
    }
    if (use_pred) {
        j->gated_blocks++;
    }
    float scale, inv;
    ngl_block_scale(v_hmax(maxv), j->qmax, &scale, &inv);
    ngl_wr_u32(j->scales + sent * 4, ngl_f32_bits(scale));

    const __m256 vinv = _mm256_set1_ps(inv), vscale = _mm256_set1_ps(scale);
    const __m256 vqmax = _mm256_set1_ps((float)j->qmax), vqmin = _mm256_set1_ps((float)-j->qmax);
    const uint64_t code0 = sent * j->block;
    __m256 a = _mm256_setzero_ps(), c = _mm256_setzero_ps();
    for (uint32_t k = 0; k < len; k += W) {
        const uint64_t i = lo + k;
        __m256 r = _mm256_loadu_ps(j->rbuf + k);
        __m256 w = _mm256_add_ps(_mm256_mul_ps(r, vinv), v_uniform(j->key, (uint32_t)i));
        __m256 qf = _mm256_round_ps(w, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        qf = _mm256_min_ps(_mm256_max_ps(qf, vqmin), vqmax);
        __m256i q = _mm256_cvttps_epi32(qf);
        v_store_codes(j->codes, code0 + k, q, int4);

        __m256 praw = v_pred_raw(j, i, pred);
        __m256 p = use_pred ? praw : _mm256_setzero_ps();
        __m256 xhat = _mm256_add_ps(p, _mm256_mul_ps(_mm256_cvtepi32_ps(q), vscale));
        if (has_ef) {
            __m256 t = v_target(j, i, _mm256_loadu_ps(j->x + i), 1);
            _mm256_storeu_ps(j->ef + i, _mm256_sub_ps(t, xhat));
        }
        v_state_update(j, i, xhat, praw, pred, &a, &c);
    }
    if (pred != NGL_PRED_NONE) {
        j->gate[b] = (uint8_t)(v_hmax(a) < v_hmax(c));
    }
}

static inline __attribute__((always_inline)) void
dec_block(ngl_dense_job *j, uint32_t b, uint64_t sent, const int pred, const int int4)
{
    const uint64_t lo = (uint64_t)b * j->block;
    const uint32_t len = j->block;
    const int use_pred = pred != NGL_PRED_NONE && j->gate[b];
    const __m256 vscale = _mm256_set1_ps(ngl_bits_f32(ngl_rd_u32(j->scales + sent * 4)));
    const uint64_t code0 = sent * j->block;
    __m256 a = _mm256_setzero_ps(), c = _mm256_setzero_ps();

    if (use_pred) {
        j->gated_blocks++;
    }
    for (uint32_t k = 0; k < len; k += W) {
        const uint64_t i = lo + k;
        __m256i q = v_load_codes(j->codes, code0 + k, int4);
        __m256 praw = v_pred_raw(j, i, pred);
        __m256 p = use_pred ? praw : _mm256_setzero_ps();
        __m256 xhat = _mm256_add_ps(p, _mm256_mul_ps(_mm256_cvtepi32_ps(q), vscale));
        if (j->accumulate) {
            _mm256_storeu_ps(j->out + i, _mm256_add_ps(_mm256_loadu_ps(j->out + i), xhat));
        } else {
            _mm256_storeu_ps(j->out + i, xhat);
        }
        v_state_update(j, i, xhat, praw, pred, &a, &c);
    }
    if (pred != NGL_PRED_NONE) {
        j->gate[b] = (uint8_t)(v_hmax(a) < v_hmax(c));
    }
}

#define ENC_CASE(P, E, I4)                                                                         \
    static void enc_##P##_##E##_##I4(ngl_dense_job *j, uint32_t b, uint64_t s)                     \
    {                                                                                              \
        enc_block(j, b, s, P, E, I4);                                                              \
    }
#define DEC_CASE(P, I4)                                                                            \
    static void dec_##P##_##I4(ngl_dense_job *j, uint32_t b, uint64_t s)                           \
    {                                                                                              \
        dec_block(j, b, s, P, I4);                                                                 \
    }
/* clang-format off */
ENC_CASE(0, 0, 0) ENC_CASE(0, 0, 1) ENC_CASE(0, 1, 0) ENC_CASE(0, 1, 1)
ENC_CASE(1, 0, 0) ENC_CASE(1, 0, 1) ENC_CASE(1, 1, 0) ENC_CASE(1, 1, 1)
ENC_CASE(2, 0, 0) ENC_CASE(2, 0, 1) ENC_CASE(2, 1, 0) ENC_CASE(2, 1, 1)
DEC_CASE(0, 0) DEC_CASE(0, 1) DEC_CASE(1, 0) DEC_CASE(1, 1) DEC_CASE(2, 0) DEC_CASE(2, 1)
    /* clang-format on */

    typedef void (*block_fn)(ngl_dense_job *, uint32_t, uint64_t);

static const block_fn enc_table[3][2][2] = {
    {{enc_0_0_0, enc_0_0_1}, {enc_0_1_0, enc_0_1_1}},
    {{enc_1_0_0, enc_1_0_1}, {enc_1_1_0, enc_1_1_1}},
    {{enc_2_0_0, enc_2_0_1}, {enc_2_1_0, enc_2_1_1}},
};
static const block_fn dec_table[3][2] = {
    {dec_0_0, dec_0_1}, {dec_1_0, dec_1_1}, {dec_2_0, dec_2_1}};

static void avx2_encode_dense(ngl_dense_job *j, uint32_t b0, uint32_t b1, uint64_t sent)
{
    const block_fn fast = j->block % W == 0 ? enc_table[j->pred][j->ef != NULL][j->int4] : NULL;
    for (uint32_t b = b0; b < b1; b++) {
        const int skipped = j->skip != NULL && ngl_bit_get(j->skip, b);
        const int full = (uint64_t)(b + 1) * j->block <= j->count;
        if (fast && full && !skipped) {
            fast(j, b, sent);
        } else {
            ngl_ref_encode_block(j, b, sent);
        }
        sent += (uint64_t)!skipped;
    }
}

static void avx2_decode_dense(ngl_dense_job *j, uint32_t b0, uint32_t b1, uint64_t sent)
{
    const block_fn fast = j->block % W == 0 ? dec_table[j->pred][j->int4] : NULL;
    const size_t esz = 4u + j->exc_dsize;
    for (uint32_t b = b0; b < b1; b++) {
        const uint64_t hi = (uint64_t)(b + 1) * j->block;
        const int skipped = j->skip != NULL && ngl_bit_get(j->skip, b);
        const int has_exc =
            j->exc_cursor < j->n_exc && ngl_rd_u32(j->exc + (size_t)j->exc_cursor * esz) < hi;
        if (fast && hi <= j->count && !skipped && !has_exc) {
            fast(j, b, sent);
        } else {
            ngl_ref_decode_block(j, b, sent);
        }
        sent += (uint64_t)!skipped;
    }
}

/* ---- conversions ------------------------------------------------------ */

static void avx2_f16_to_f32(const void *src, float *dst, size_t n)
{
    const uint16_t *s = (const uint16_t *)src;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    }
    for (; i < n; i++) {
        dst[i] = ngl_f16_to_f32(s[i]);
    }
}

static void avx2_bf16_to_f32(const void *src, float *dst, size_t n)
{
    const uint16_t *s = (const uint16_t *)src;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) {
        dst[i] = ngl_bf16_to_f32(s[i]);
    }
}

/* 8 x u32 (each < 65536) -> 8 x u16 */
static inline __m128i v_narrow16(__m256i r)
{
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}

static inline __m128i v_f32_to_f16(__m256 v, int saturate)
{
    __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (saturate) {
        __m256 fin = v_finite(v);
        __m128i fin16 = _mm_packs_epi32(_mm256_castsi256_si128(_mm256_castps_si256(fin)),
                                        _mm256_extracti128_si256(_mm256_castps_si256(fin), 1));
        __m128i inf =
            _mm_cmpeq_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7fff)), _mm_set1_epi16(0x7c00));
        __m128i sat =
            _mm_or_si128(_mm_and_si128(h, _mm_set1_epi16((short)0x8000)), _mm_set1_epi16(0x7bff));
        h = _mm_blendv_epi8(h, sat, _mm_and_si128(fin16, inf));
    }
    return h;
}

static inline __m128i v_f32_to_bf16(__m256 v, int saturate)
{
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    __m256i mag = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    __m256i nan =
        _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7f800000)); /* mag < 2^31: signed ok */
    __m256i qn = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    r = _mm256_blendv_epi8(r, qn, nan);
    if (saturate) {
        __m256i fin = _mm256_castps_si256(v_finite(v));
        __m256i inf = _mm256_cmpeq_epi32(_mm256_and_si256(r, _mm256_set1_epi32(0x7fff)),
                                         _mm256_set1_epi32(0x7f80));
        __m256i sat = _mm256_or_si256(_mm256_and_si256(r, _mm256_set1_epi32(0x8000)),
                                      _mm256_set1_epi32(0x7f7f));
        r = _mm256_blendv_epi8(r, sat, _mm256_and_si256(fin, inf));
    }
    return v_narrow16(r);
}

static void avx2_f32_to_f16_sat(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        _mm_storeu_si128((__m128i *)(d + i), v_f32_to_f16(_mm256_loadu_ps(src + i), 1));
    }
    for (; i < n; i++) {
        d[i] = ngl_f32_to_f16_sat(src[i]);
    }
}

static void avx2_f32_to_bf16_sat(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        _mm_storeu_si128((__m128i *)(d + i), v_f32_to_bf16(_mm256_loadu_ps(src + i), 1));
    }
    for (; i < n; i++) {
        d[i] = ngl_f32_to_bf16_sat(src[i]);
    }
}

static void avx2_f16_accumulate(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        __m256 cur = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(d + i)));
        __m256 sum = _mm256_add_ps(cur, _mm256_loadu_ps(src + i));
        _mm_storeu_si128((__m128i *)(d + i), v_f32_to_f16(sum, 0));
    }
    for (; i < n; i++) {
        d[i] = ngl_f32_to_f16(ngl_f16_to_f32(d[i]) + src[i]);
    }
}

static void avx2_bf16_accumulate(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        __m256i cur =
            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(d + i))), 16);
        __m256 sum = _mm256_add_ps(_mm256_castsi256_ps(cur), _mm256_loadu_ps(src + i));
        _mm_storeu_si128((__m128i *)(d + i), v_f32_to_bf16(sum, 0));
    }
    for (; i < n; i++) {
        d[i] = ngl_f32_to_bf16(ngl_bf16_to_f32(d[i]) + src[i]);
    }
}

/* ---- Top-K helpers ------------------------------------------------------ */

static void scan_range(const float *x, float *ef, uint32_t *key, uint64_t lo, uint64_t hi,
                       uint32_t live, uint64_t *eligible, uint64_t *bad)
{
    const __m256i vlive = _mm256_set1_epi32((int)live);
    uint64_t i = lo;
    for (; i + W <= hi; i += W) {
        __m256 xv = _mm256_loadu_ps(x + i);
        __m256 t = xv;
        if (ef) {
            __m256 te = _mm256_add_ps(xv, _mm256_loadu_ps(ef + i));
            t = _mm256_blendv_ps(xv, te, v_finite(te));
        }
        __m256i mag = _mm256_and_si256(_mm256_castps_si256(t), _mm256_set1_epi32(0x7fffffff));
        /* mag < 2^31, so the signed compare is an unsigned one */
        __m256i fin = _mm256_cmpgt_epi32(_mm256_set1_epi32(0x7f800000), mag);
        __m256i k = _mm256_and_si256(
            _mm256_and_si256(_mm256_add_epi32(mag, _mm256_set1_epi32(1)), fin), vlive);
        _mm256_storeu_si256((__m256i *)(key + i), k);
        __m256i zero = _mm256_cmpeq_epi32(k, _mm256_setzero_si256());
        *eligible += (uint64_t)(W - __builtin_popcount(
                                        (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(zero))));
        *bad += (uint64_t)(W - __builtin_popcount(
                                   (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(fin))));
        if (ef) {
            _mm256_storeu_ps(ef + i, _mm256_and_ps(t, _mm256_castsi256_ps(fin)));
        }
    }
    for (; i < hi; i++) {
        float t = x[i];
        if (ef) {
            float te = x[i] + ef[i];
            t = ngl_f32_finite(te) ? te : x[i];
        }
        uint32_t mag = ngl_f32_bits(t) & 0x7fffffffu;
        int f = mag < 0x7f800000u;
        uint32_t k = (f ? mag + 1u : 0u) & live;
        key[i] = k;
        *eligible += k != 0;
        *bad += !f;
        if (ef) {
            ef[i] = f ? t : 0.0f;
        }
    }
}

static uint64_t avx2_topk_scan(const float *x, float *ef, uint32_t *key, const uint8_t *skip,
                               uint32_t block, uint64_t n, uint64_t *n_nonfinite)
{
    uint64_t eligible = 0, bad = 0;
    if (skip == NULL) {
        scan_range(x, ef, key, 0, n, 0xffffffffu, &eligible, &bad);
    } else {
        for (uint64_t lo = 0, b = 0; lo < n; lo += block, b++) {
            scan_range(x, ef, key, lo, NGL_MIN(lo + block, n),
                       ngl_bit_get(skip, b) ? 0u : 0xffffffffu, &eligible, &bad);
        }
    }
    *n_nonfinite = bad;
    return eligible;
}

/* Lane permutations that move the set lanes of an 8-bit mask to the front. */
static uint32_t compress_lut[256][8];
static pthread_once_t compress_once = PTHREAD_ONCE_INIT;

static void compress_lut_init(void)
{
    for (unsigned m = 0; m < 256; m++) {
        unsigned w = 0;
        for (unsigned l = 0; l < 8; l++) {
            if (m & (1u << l)) {
                compress_lut[m][w++] = l;
            }
        }
        while (w < 8) {
            compress_lut[m][w++] = 0;
        }
    }
}

static uint64_t avx2_topk_collect(const uint32_t *key, uint64_t n, uint32_t min_key, uint32_t *out,
                                  uint64_t cap)
{
    pthread_once(&compress_once, compress_lut_init);
    /* unsigned key >= min_key  <=>  max(key, min_key) == key */
    const __m256i vmin = _mm256_set1_epi32((int)min_key);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    uint64_t found = 0, i = 0;
    for (; i + W <= n; i += W) {
        __m256i k = _mm256_loadu_si256((const __m256i *)(key + i));
        __m256i ge = _mm256_cmpeq_epi32(_mm256_max_epu32(k, vmin), k);
        unsigned m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(ge));
        if (m) {
            if (found > cap) {
                return found;
            }
            __m256i perm = _mm256_loadu_si256((const __m256i *)compress_lut[m]);
            __m256i idx = _mm256_add_epi32(_mm256_set1_epi32((int)i), lane);
            _mm256_storeu_si256((__m256i *)(out + found), _mm256_permutevar8x32_epi32(idx, perm));
            found += (uint64_t)__builtin_popcount(m);
        }
    }
    for (; i < n; i++) {
        if (key[i] >= min_key) {
            if (found > cap) {
                return found;
            }
            out[found++] = (uint32_t)i;
        }
    }
    return found;
}

const ngl_kernels ngl_kernels_avx2 = {
    .isa = NGL_ISA_AVX2,
    .name = "avx2",
    .encode_dense = avx2_encode_dense,
    .decode_dense = avx2_decode_dense,
    .f16_to_f32 = avx2_f16_to_f32,
    .bf16_to_f32 = avx2_bf16_to_f32,
    .f32_to_f16_sat = avx2_f32_to_f16_sat,
    .f32_to_bf16_sat = avx2_f32_to_bf16_sat,
    .f16_accumulate = avx2_f16_accumulate,
    .bf16_accumulate = avx2_bf16_accumulate,
    .topk_scan = avx2_topk_scan,
    .topk_collect = avx2_topk_collect,
};
