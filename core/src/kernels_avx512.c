/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels_avx512.c -- AVX-512 (F/BW/VL/DQ) variant of the dense kernels.
 *
 * Same operations, same order as kernels_ref.c, 16 lanes at a time. Only
 * full blocks whose elements are all finite take this path; partial
 * blocks, skipped blocks and blocks holding exceptions go to the reference
 * block functions, which keeps this file small and the semantics in one
 * place. tests/test_kernels.c checks both produce identical bytes.
 */
#include "ngl_kernels.h"

#include <immintrin.h>

#define W 16

static inline __mmask16 v_finite(__m512 v)
{
    __m512i e = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7f800000));
    return _mm512_cmpneq_epi32_mask(e, _mm512_set1_epi32(0x7f800000));
}

static inline __m512 v_abs(__m512 v)
{
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
}

/* Raw prediction, the vector form of ngl_pred_raw(). */
static inline __m512 v_pred_raw(const ngl_dense_job *j, uint64_t i, int pred)
{
    if (pred == NGL_PRED_MOMENTUM) {
        return _mm512_loadu_ps(j->st1 + i);
    }
    if (pred == NGL_PRED_LINEAR) {
        if (j->hist >= 2) {
            __m512 twice = _mm512_mul_ps(_mm512_set1_ps(2.0f), _mm512_loadu_ps(j->st1 + i));
            return _mm512_sub_ps(twice, _mm512_loadu_ps(j->st2 + i));
        }
        return j->hist == 1 ? _mm512_loadu_ps(j->st1 + i) : _mm512_setzero_ps();
    }
    return _mm512_setzero_ps();
}

/* Vector form of ngl_state_update(). */
static inline void v_state_update(ngl_dense_job *j, uint64_t i, __m512 xhat, __m512 praw, int pred,
                                  __m512 *a, __m512 *c)
{
    if (pred == NGL_PRED_NONE) {
        return;
    }
    const __mmask16 fx = v_finite(xhat);
    *a = _mm512_mask_max_ps(*a, fx, *a, v_abs(_mm512_sub_ps(xhat, praw)));
    *c = _mm512_mask_max_ps(*c, fx, *c, v_abs(xhat));
    if (pred == NGL_PRED_MOMENTUM) {
        __m512 t1 = _mm512_mul_ps(_mm512_set1_ps(j->beta), praw);
        __m512 t2 = _mm512_mul_ps(_mm512_set1_ps(j->one_minus_beta), xhat);
        __m512 nm = _mm512_add_ps(t1, t2);
        _mm512_mask_storeu_ps(j->st1 + i, fx & v_finite(nm), nm);
    } else {
        __m512 x1 = _mm512_loadu_ps(j->st1 + i);
        _mm512_mask_storeu_ps(j->st2 + i, fx, x1);
        _mm512_mask_storeu_ps(j->st1 + i, fx, xhat);
    }
}

/* Target including carried error: x + ef, or x where that overflows. */
static inline __m512 v_target(const ngl_dense_job *j, uint64_t i, __m512 x, int has_ef)
{
    if (!has_ef) {
        return x;
    }
    __m512 t = _mm512_add_ps(x, _mm512_loadu_ps(j->ef + i));
    return _mm512_mask_blend_ps(v_finite(t), x, t);
}

/* ngl_rng_uniform() for lanes index .. index+15. */
static inline __m512 v_uniform(ngl_rng_key key, uint32_t index)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i h = _mm512_add_epi32(_mm512_set1_epi32((int)index), lane);
    h = _mm512_xor_si512(h, _mm512_set1_epi32((int)key.hi));
    h = _mm512_mullo_epi32(h, _mm512_set1_epi32((int)0x9e3779b1u));
    h = _mm512_add_epi32(h, _mm512_set1_epi32((int)key.lo));
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
    h = _mm512_mullo_epi32(h, _mm512_set1_epi32((int)0x85ebca6bu));
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 13));
    h = _mm512_mullo_epi32(h, _mm512_set1_epi32((int)0xc2b2ae35u));
    h = _mm512_xor_si512(h, _mm512_srli_epi32(h, 16));
    __m512 u = _mm512_cvtepi32_ps(_mm512_srli_epi32(h, 8));
    return _mm512_mul_ps(u, _mm512_set1_ps(0x1p-24f));
}

static inline void v_store_codes(uint8_t *codes, uint64_t pos, __m512i q, int int4)
{
    if (!int4) {
        _mm_storeu_si128((__m128i *)(codes + pos), _mm512_cvtepi32_epi8(q));
        return;
    }
    /* lanes 2k (low nibble) and 2k+1 (high nibble) share a byte */
    __m512i nib = _mm512_and_si512(q, _mm512_set1_epi32(0xf));
    __m512i pair = _mm512_or_si512(nib, _mm512_srli_epi64(nib, 32 - 4));
    pair = _mm512_and_si512(pair, _mm512_set1_epi64(0xff));
    _mm_storel_epi64((__m128i *)(codes + (pos >> 1)), _mm512_cvtepi64_epi8(pair));
}

static inline __m512i v_load_codes(const uint8_t *codes, uint64_t pos, int int4)
{
    if (!int4) {
        return _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(codes + pos)));
    }
    __m128i bytes = _mm_loadl_epi64((const __m128i *)(codes + (pos >> 1)));
    __m512i v = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(bytes, bytes));
    const __m512i sh = _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
    v = _mm512_and_si512(_mm512_srlv_epi32(v, sh), _mm512_set1_epi32(0xf));
    /* sign-extend the nibble: (v ^ 8) - 8 */
    return _mm512_sub_epi32(_mm512_xor_si512(v, _mm512_set1_epi32(8)), _mm512_set1_epi32(8));
}

static inline __attribute__((always_inline)) void enc_block(ngl_dense_job *j, uint32_t b,
                                                            uint64_t sent, const int pred,
                                                            const int has_ef, const int int4)
{
    const uint64_t lo = (uint64_t)b * j->block;
    const uint32_t len = j->block;
    const int use_pred = pred != NGL_PRED_NONE && j->gate[b];

    __m512 maxv = _mm512_setzero_ps(), maxp = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (uint32_t k = 0; k < len; k += W) {
        const uint64_t i = lo + k;
        __m512 t = v_target(j, i, _mm512_loadu_ps(j->x + i), has_ef);
        __m512 p = use_pred ? v_pred_raw(j, i, pred) : _mm512_setzero_ps();
        __m512 r = _mm512_sub_ps(t, p);
        bad |= (__mmask16)~v_finite(r);
        maxv = _mm512_max_ps(maxv, v_abs(r));
        maxp = _mm512_max_ps(maxp, v_abs(p));
        _mm512_storeu_ps(j->rbuf + k, r);
    }
    /* Exceptions, and magnitudes where p + q*scale could overflow (only
     * beyond 2^125): the reference handles them. */
    if (bad || _mm512_reduce_max_ps(_mm512_max_ps(maxv, maxp)) >= 0x1p125f) {
        ngl_ref_encode_block(j, b, sent);
        return;
    }
    if (use_pred) {
        j->gated_blocks++;
    }
    float scale, inv;
    ngl_block_scale(_mm512_reduce_max_ps(maxv), j->qmax, &scale, &inv);
    ngl_wr_u32(j->scales + sent * 4, ngl_f32_bits(scale));

    const __m512 vinv = _mm512_set1_ps(inv), vscale = _mm512_set1_ps(scale);
    const __m512 vqmax = _mm512_set1_ps((float)j->qmax), vqmin = _mm512_set1_ps((float)-j->qmax);
    const uint64_t code0 = sent * j->block;
    __m512 a = _mm512_setzero_ps(), c = _mm512_setzero_ps();
    for (uint32_t k = 0; k < len; k += W) {
        const uint64_t i = lo + k;
        __m512 r = _mm512_loadu_ps(j->rbuf + k);
        __m512 w = _mm512_add_ps(_mm512_mul_ps(r, vinv), v_uniform(j->key, (uint32_t)i));
        __m512 qf = _mm512_roundscale_ps(w, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        qf = _mm512_min_ps(_mm512_max_ps(qf, vqmin), vqmax);
        __m512i q = _mm512_cvttps_epi32(qf);
        v_store_codes(j->codes, code0 + k, q, int4);

        __m512 praw = v_pred_raw(j, i, pred);
        __m512 p = use_pred ? praw : _mm512_setzero_ps();
        __m512 xhat = _mm512_add_ps(p, _mm512_mul_ps(_mm512_cvtepi32_ps(q), vscale));
        if (has_ef) {
            __m512 t = v_target(j, i, _mm512_loadu_ps(j->x + i), 1);
            _mm512_storeu_ps(j->ef + i, _mm512_sub_ps(t, xhat));
        }
        v_state_update(j, i, xhat, praw, pred, &a, &c);
    }
    if (pred != NGL_PRED_NONE) {
        j->gate[b] = (uint8_t)(_mm512_reduce_max_ps(a) < _mm512_reduce_max_ps(c));
    }
}

static inline __attribute__((always_inline)) void
dec_block(ngl_dense_job *j, uint32_t b, uint64_t sent, const int pred, const int int4)
{
    const uint64_t lo = (uint64_t)b * j->block;
    const uint32_t len = j->block;
    const int use_pred = pred != NGL_PRED_NONE && j->gate[b];
    const __m512 vscale = _mm512_set1_ps(ngl_bits_f32(ngl_rd_u32(j->scales + sent * 4)));
    const uint64_t code0 = sent * j->block;
    __m512 a = _mm512_setzero_ps(), c = _mm512_setzero_ps();

    if (use_pred) {
        j->gated_blocks++;
    }
    for (uint32_t k = 0; k < len; k += W) {
        const uint64_t i = lo + k;
        __m512i q = v_load_codes(j->codes, code0 + k, int4);
        __m512 praw = v_pred_raw(j, i, pred);
        __m512 p = use_pred ? praw : _mm512_setzero_ps();
        __m512 xhat = _mm512_add_ps(p, _mm512_mul_ps(_mm512_cvtepi32_ps(q), vscale));
        if (j->accumulate) {
            _mm512_storeu_ps(j->out + i, _mm512_add_ps(_mm512_loadu_ps(j->out + i), xhat));
        } else {
            _mm512_storeu_ps(j->out + i, xhat);
        }
        v_state_update(j, i, xhat, praw, pred, &a, &c);
    }
    if (pred != NGL_PRED_NONE) {
        j->gate[b] = (uint8_t)(_mm512_reduce_max_ps(a) < _mm512_reduce_max_ps(c));
    }
}

/* Instantiate the block bodies for every (predictor, EF, width) combination
 * so each inner loop is branch-free. */
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

static void avx512_encode_dense(ngl_dense_job *j, uint32_t b0, uint32_t b1, uint64_t sent)
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

static void avx512_decode_dense(ngl_dense_job *j, uint32_t b0, uint32_t b1, uint64_t sent)
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

static void avx512_f16_to_f32(const void *src, float *dst, size_t n)
{
    const uint16_t *s = (const uint16_t *)src;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + i))));
    }
    for (; i < n; i++) {
        dst[i] = ngl_f16_to_f32(s[i]);
    }
}

static void avx512_bf16_to_f32(const void *src, float *dst, size_t n)
{
    const uint16_t *s = (const uint16_t *)src;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    for (; i < n; i++) {
        dst[i] = ngl_bf16_to_f32(s[i]);
    }
}

static inline __m256i v_f32_to_f16(__m512 v, int saturate)
{
    __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    if (saturate) {
        /* finite input that rounded to Inf -> largest finite, same sign */
        __mmask16 fin = v_finite(v);
        __m256i mag = _mm256_and_si256(h, _mm256_set1_epi16(0x7fff));
        __mmask16 inf = _mm256_cmpeq_epi16_mask(mag, _mm256_set1_epi16(0x7c00));
        __m256i sat = _mm256_or_si256(_mm256_and_si256(h, _mm256_set1_epi16((short)0x8000)),
                                      _mm256_set1_epi16(0x7bff));
        h = _mm256_mask_blend_epi16(fin & inf, h, sat);
    }
    return h;
}

static inline __m256i v_f32_to_bf16(__m512 v, int saturate)
{
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __m512i mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_blend_epi32(nan, r,
                                _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    if (saturate) {
        __mmask16 fin = v_finite(v);
        __mmask16 inf = _mm512_cmpeq_epi32_mask(_mm512_and_si512(r, _mm512_set1_epi32(0x7fff)),
                                                _mm512_set1_epi32(0x7f80));
        __m512i sat = _mm512_or_si512(_mm512_and_si512(r, _mm512_set1_epi32(0x8000)),
                                      _mm512_set1_epi32(0x7f7f));
        r = _mm512_mask_blend_epi32(fin & inf, r, sat);
    }
    return _mm512_cvtepi32_epi16(r);
}

static void avx512_f32_to_f16_sat(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        _mm256_storeu_si256((__m256i *)(d + i), v_f32_to_f16(_mm512_loadu_ps(src + i), 1));
    }
    for (; i < n; i++) {
        d[i] = ngl_f32_to_f16_sat(src[i]);
    }
}

static void avx512_f32_to_bf16_sat(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        _mm256_storeu_si256((__m256i *)(d + i), v_f32_to_bf16(_mm512_loadu_ps(src + i), 1));
    }
    for (; i < n; i++) {
        d[i] = ngl_f32_to_bf16_sat(src[i]);
    }
}

static void avx512_f16_accumulate(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        __m512 cur = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d + i)));
        __m512 sum = _mm512_add_ps(cur, _mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(d + i), v_f32_to_f16(sum, 0));
    }
    for (; i < n; i++) {
        d[i] = ngl_f32_to_f16(ngl_f16_to_f32(d[i]) + src[i]);
    }
}

static void avx512_bf16_accumulate(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    size_t i = 0;
    for (; i + W <= n; i += W) {
        __m512i cur = _mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(d + i))), 16);
        __m512 sum = _mm512_add_ps(_mm512_castsi512_ps(cur), _mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(d + i), v_f32_to_bf16(sum, 0));
    }
    for (; i < n; i++) {
        d[i] = ngl_f32_to_bf16(ngl_bf16_to_f32(d[i]) + src[i]);
    }
}

/* ---- Top-K helpers ------------------------------------------------------ */

static inline void scan_range(const float *x, float *ef, uint32_t *key, uint64_t lo, uint64_t hi,
                              __m512i live, uint64_t *eligible, uint64_t *bad)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (uint64_t i = lo; i < hi; i += W) {
        const uint64_t left = hi - i;
        const __mmask16 m = left >= W ? (__mmask16)0xffff
                                      : _mm512_cmplt_epu32_mask(lane, _mm512_set1_epi32((int)left));
        __m512 xv = _mm512_maskz_loadu_ps(m, x + i);
        __m512 t = xv;
        if (ef) {
            __m512 te = _mm512_add_ps(xv, _mm512_maskz_loadu_ps(m, ef + i));
            t = _mm512_mask_blend_ps(v_finite(te), xv, te);
        }
        __m512i mag = _mm512_and_si512(_mm512_castps_si512(t), _mm512_set1_epi32(0x7fffffff));
        __mmask16 fin = _mm512_cmplt_epu32_mask(mag, _mm512_set1_epi32(0x7f800000));
        __m512i k = _mm512_and_si512(_mm512_maskz_add_epi32(fin, mag, _mm512_set1_epi32(1)), live);
        _mm512_mask_storeu_epi32(key + i, m, k);
        *eligible += (uint64_t)__builtin_popcount(_mm512_test_epi32_mask(k, k) & m);
        *bad += (uint64_t)__builtin_popcount((__mmask16)~fin & m);
        if (ef) {
            _mm512_mask_storeu_ps(ef + i, m, _mm512_maskz_mov_ps(fin, t));
        }
    }
}

static uint64_t avx512_topk_scan(const float *x, float *ef, uint32_t *key, const uint8_t *skip,
                                 uint32_t block, uint64_t n, uint64_t *n_nonfinite)
{
    uint64_t eligible = 0, bad = 0;
    if (skip == NULL) {
        scan_range(x, ef, key, 0, n, _mm512_set1_epi32(-1), &eligible, &bad);
    } else {
        for (uint64_t lo = 0, b = 0; lo < n; lo += block, b++) {
            __m512i live = _mm512_set1_epi32(ngl_bit_get(skip, b) ? 0 : -1);
            scan_range(x, ef, key, lo, NGL_MIN(lo + block, n), live, &eligible, &bad);
        }
    }
    *n_nonfinite = bad;
    return eligible;
}

static uint64_t avx512_topk_collect(const uint32_t *key, uint64_t n, uint32_t min_key,
                                    uint32_t *out, uint64_t cap)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i vmin = _mm512_set1_epi32((int)min_key);
    uint64_t found = 0;
    for (uint64_t i = 0; i < n; i += W) {
        const uint64_t left = n - i;
        const __mmask16 m = left >= W ? (__mmask16)0xffff
                                      : _mm512_cmplt_epu32_mask(lane, _mm512_set1_epi32((int)left));
        __mmask16 hit = _mm512_mask_cmpge_epu32_mask(m, _mm512_maskz_loadu_epi32(m, key + i), vmin);
        if (hit) {
            if (found > cap) {
                return found;
            }
            /* compress in a register, then a plain store: out has 16 spare */
            __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)i), lane);
            _mm512_storeu_si512(out + found, _mm512_maskz_compress_epi32(hit, idx));
            found += (uint64_t)__builtin_popcount(hit);
        }
    }
    return found;
}

const ngl_kernels ngl_kernels_avx512 = {
    .isa = NGL_ISA_AVX512,
    .name = "avx512",
    .encode_dense = avx512_encode_dense,
    .decode_dense = avx512_decode_dense,
    .f16_to_f32 = avx512_f16_to_f32,
    .bf16_to_f32 = avx512_bf16_to_f32,
    .f32_to_f16_sat = avx512_f32_to_f16_sat,
    .f32_to_bf16_sat = avx512_f32_to_bf16_sat,
    .f16_accumulate = avx512_f16_accumulate,
    .bf16_accumulate = avx512_bf16_accumulate,
    .topk_scan = avx512_topk_scan,
    .topk_collect = avx512_topk_collect,
};
