/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_lean_avx512.c -- the level-0/1 first pass on eight values at once
 * (AVX-512 F/DQ/CD/VL). Compiled alone with those ISA flags, in its own
 * static library (hpc/meson.build); hpc_lean_simd.c calls it only on CPUs
 * that have them. Every step names the scalar expression it reproduces
 * (quantize_value() and quantize_lean_value() in hpc_encoder.c,
 * hpc_wrap_ctx(), hpc_predict_int(), hpc_token() and hpc_ctx_temporal() in
 * hpc_core.h). Same IEEE operations, same order, no contraction
 * (-ffp-contract=off): the same bits.
 */
#include "hpc_core.h"
#include "hpc_lean_isa.h"

#include <immintrin.h>
#include <string.h>

/* Per-lane constants of one axis phase: lane i holds axis (phase + i) % 3. */
typedef struct lane_axes {
    __m512d len, loq, hiq, lenq;
    __mmask8 per;
} lane_axes;

static lane_axes make_lanes(const hpc_lean_args *a, unsigned phase)
{
    double len[8], loq[8], hiq[8], lenq[8];
    __mmask8 per = 0;
    for (unsigned i = 0; i < 8; i++) {
        unsigned ax = (phase + i) % 3;
        len[i] = a->len[ax];
        loq[i] = a->loq[ax];
        hiq[i] = a->hiq[ax];
        lenq[i] = a->lenq[ax];
        per |= (__mmask8)((a->per[ax] ? 1u : 0u) << i);
    }
    lane_axes l = {_mm512_loadu_pd(len), _mm512_loadu_pd(loq), _mm512_loadu_pd(hiq),
                   _mm512_loadu_pd(lenq), per};
    return l;
}

/* hpc_mag_bucket() of eight magnitudes < 2^16 (32-bit lanes). */
static inline __m256i mag_bucket(__m256i m)
{
    const __m256i one = _mm256_set1_epi32(1);
    /* 1 + bitlen((m - 1) | 1), capped at 11; m itself below 3 */
    __m256i bl = _mm256_sub_epi32(
        _mm256_set1_epi32(32), _mm256_lzcnt_epi32(_mm256_or_si256(_mm256_sub_epi32(m, one), one)));
    __m256i b = _mm256_min_epu32(_mm256_add_epi32(bl, one), _mm256_set1_epi32(11));
    return _mm256_mask_blend_epi32(_mm256_cmplt_epu32_mask(m, _mm256_set1_epi32(3)), b, m);
}

/*
 * Lattice values, prediction and residual live in 64-bit lanes (__m512i /
 * __m512d); everything small (age, magnitude, image, buckets, contexts,
 * tokens, the info word) in 32-bit lanes (__m256i), which cost half as much.
 * Masks (__mmask8) are per value in both.
 *
 * The block runs each vector through the steps below, in order; each step
 * is always inlined, so the vector's state stays in registers.
 */
#define LEAN_STEP static inline __attribute__((always_inline))

/* The frame's constants, set up once per block. */
typedef struct lean_consts {
    lane_axes lanes[3];
    __m512d step, inv, eps;
} lean_consts;

/* One vector of eight values on its way through the steps. */
typedef struct lean_vec {
    /* the last entry's state and the input */
    __m256i age, mag, img;
    __m512i q1, q2, q3;
    __m512d x;
    __mmask8 odd; /* lanes the kernel does not take: the scalar code takes all eight */
    /* prediction */
    __m512i pred;
    __m256i pc, mb, info;
    /* image and lattice value */
    __m256i imgf;
    __m512i qv;
    __m512d rec;
    __m256 rec32;
    /* residual, new entry, token and context */
    __m512i r;
    __m256i newmag, newage, newbucket, code;
    __mmask8 fits;
} lean_vec;

/* The state of the last entry, and the lanes that have none (spatial) or
 * hold no finite value. */
LEAN_STEP void load_vec(const hpc_lean_args *a, uint64_t v, lean_vec *s)
{
    s->age = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(a->age + v)));
    s->mag = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(a->mag + v)));
    s->img = _mm256_loadu_si256((const __m256i *)(a->img + v));
    s->q1 = _mm512_loadu_si512(a->q1 + v);
    s->q2 = _mm512_loadu_si512(a->q2 + v);
    s->q3 = _mm512_loadu_si512(a->q3 + v);
    s->x = a->f32 ? _mm512_cvtps_pd(_mm256_loadu_ps((const float *)a->xyz + v))
                  : _mm512_loadu_pd((const double *)a->xyz + v);
    s->odd = _mm256_cmpeq_epi32_mask(s->age, _mm256_setzero_si256());           /* spatial */
    s->odd |= _mm512_cmp_pd_mask(_mm512_abs_pd(s->x), _mm512_set1_pd(INFINITY), /* !isfinite */
                                 _CMP_NLT_UQ);
}

/* hpc_predict_int(): q1; 2 q1 - q2 from age 2; 3 q1 - 3 q2 + q3 from age 3
 * (ORDER2); then hpc_predict_model() where the block uses the model. */
LEAN_STEP void predict(const hpc_lean_args *a, uint64_t v, unsigned sel, lean_vec *s)
{
    const __m256i two32 = _mm256_set1_epi32(2), three32 = _mm256_set1_epi32(3);
    s->pred = s->q1;
    s->pc = _mm256_set1_epi32(HPC_PC_INT);
    if (sel != HPC_SEL_ORDER0) {
        const __m512i lin = _mm512_sub_epi64(_mm512_add_epi64(s->q1, s->q1), s->q2);
        s->pred = _mm512_mask_blend_epi64(_mm256_cmpge_epu32_mask(s->age, two32), s->pred, lin);
        if (sel == HPC_SEL_ORDER2) {
            const __m512i d12 = _mm512_sub_epi64(s->q1, s->q2);
            const __m512i quad =
                _mm512_add_epi64(_mm512_add_epi64(_mm512_add_epi64(d12, d12), d12), s->q3);
            s->pred =
                _mm512_mask_blend_epi64(_mm256_cmpge_epu32_mask(s->age, three32), s->pred, quad);
        }
    }
    if (sel == HPC_SEL_MODEL && a->model_valid) {
        /* hpc_predict_model() where age >= 7: acc = sum w_k (q_k - q_k+1) + 2^11,
         * p = q1 + floor(acc / 2^12), pc = (acc mod 2^12) >> 10. The kernel
         * takes differences below 2^31 (no clamping needed, products by
         * _mm512_mul_epi32 exact); a larger one sends the vector away. */
        const __mmask8 full = _mm256_cmpge_epu32_mask(s->age, _mm256_set1_epi32(HPC_TAPS + 1));
        const __m512i lim = _mm512_set1_epi64(((int64_t)1 << 31) - 1);
        __m512i acc = _mm512_set1_epi64((int64_t)1 << (HPC_PRED_SHIFT - 1));
        __m512i qk = s->q1;
        for (unsigned k = 1; k <= HPC_TAPS; k++) {
            const __m512i qk1 = k == 1 ? s->q2 : k == 2 ? s->q3 : _mm512_loadu_si512(a->qh[k] + v);
            const __m512i dk = _mm512_sub_epi64(qk, qk1);
            s->odd |=
                full & (_mm512_cmpgt_epi64_mask(dk, lim) |
                        _mm512_cmpgt_epi64_mask(_mm512_sub_epi64(_mm512_setzero_si512(), lim), dk));
            acc = _mm512_add_epi64(acc, _mm512_mul_epi32(dk, _mm512_set1_epi64(a->taps[k - 1])));
            qk = qk1;
        }
        const __m512i mpred = _mm512_add_epi64(s->q1, _mm512_srai_epi64(acc, HPC_PRED_SHIFT));
        const __m512i mpc =
            _mm512_srli_epi64(_mm512_and_si512(acc, _mm512_set1_epi64((1 << HPC_PRED_SHIFT) - 1)),
                              HPC_PRED_SHIFT - 2);
        s->pred = _mm512_mask_blend_epi64(full, s->pred, mpred);
        s->pc = _mm256_mask_blend_epi32(full, s->pc, _mm512_cvtepi64_epi32(mpc));
    }
    s->mb = mag_bucket(s->mag);
    s->info = _mm256_or_si256(s->mb, _mm256_slli_epi32(s->pc, HPC_VI_PC_SHIFT));
}

/* hpc_wrap_ctx() and quantize_value(): the periodic image, the lattice
 * value, hpc_recon() and the bound, on the value the decoder will produce. */
LEAN_STEP void image_quantize(const lean_consts *k, const lane_axes *L, int f32, lean_vec *s)
{
    const __m256i one = _mm256_set1_epi32(1);
    /* hpc_wrap_ctx(): u = p - img Lq; d = distance to the nearer face */
    const __m512d pd = _mm512_cvtepi64_pd(s->pred);
    const __m512d imgd = _mm512_cvtepi32_pd(s->img);
    const __m512d u = _mm512_sub_pd(pd, _mm512_mul_pd(imgd, L->lenq));
    const __m512d dhi = _mm512_sub_pd(L->hiq, u);
    const __m512d dlo = _mm512_sub_pd(u, L->loq);
    const __mmask8 up = _mm512_cmp_pd_mask(dhi, dlo, _CMP_LT_OQ);
    const __m512d d = _mm512_mask_blend_pd(up, dlo, dhi);
    const __m512d typ = _mm512_mask_blend_pd(_mm256_cmplt_epu32_mask(s->mag, _mm256_set1_epi32(2)),
                                             _mm512_cvtepi32_pd(s->mag), _mm512_set1_pd(2.0));
    __m256i ctx =
        _mm256_maskz_mov_epi32(_mm512_cmp_pd_mask(d, _mm512_setzero_pd(), _CMP_GE_OQ), one);
    ctx = _mm256_mask_add_epi32(ctx, _mm512_cmp_pd_mask(d, typ, _CMP_GE_OQ), ctx, one);
    ctx = _mm256_mask_add_epi32(
        ctx, _mm512_cmp_pd_mask(d, _mm512_mul_pd(_mm512_set1_pd(3.0), typ), _CMP_GE_OQ), ctx, one);
    const __mmask8 near =
        L->per & _mm512_cmp_pd_mask(
                     d,
                     _mm512_add_pd(_mm512_set1_pd(16.0), _mm512_mul_pd(_mm512_set1_pd(8.0), typ)),
                     _CMP_LT_OQ);
    s->info = _mm256_mask_or_epi32(s->info, near, s->info,
                                   _mm256_slli_epi32(_mm256_add_epi32(ctx, one), HPC_VI_W_SHIFT));

    /* quantize_value(): take the image img + dimg if it lands nearer p */
    const __m256i img1 =
        _mm256_mask_blend_epi32(up, _mm256_sub_epi32(s->img, one), _mm256_add_epi32(s->img, one));
    const __m512d img1d = _mm512_cvtepi32_pd(img1);
    const __m512d u0 = _mm512_add_pd(s->x, _mm512_mul_pd(imgd, L->len));
    const __m512d u1 = _mm512_add_pd(s->x, _mm512_mul_pd(img1d, L->len));
    const __m512d e0 = _mm512_abs_pd(_mm512_sub_pd(_mm512_mul_pd(u0, k->inv), pd));
    const __m512d e1 = _mm512_abs_pd(_mm512_sub_pd(_mm512_mul_pd(u1, k->inv), pd));
    const __mmask8 wrap = near & _mm256_cmple_epi32_mask(img1, _mm256_set1_epi32(1 << 30)) &
                          _mm256_cmpge_epi32_mask(img1, _mm256_set1_epi32(-(1 << 30))) &
                          _mm512_cmp_pd_mask(e1, e0, _CMP_LT_OQ);
    s->info = _mm256_mask_or_epi32(s->info, wrap, s->info, _mm256_set1_epi32(HPC_VI_WRAP));
    s->imgf = _mm256_mask_blend_epi32(wrap, s->img, img1);
    const __m512d imgfd = _mm512_mask_blend_pd(wrap, imgd, img1d);

    /* lattice value: floor(qd + 0.5), |qd| < 2^50 */
    const __m512d qd = _mm512_mul_pd(_mm512_add_pd(s->x, _mm512_mul_pd(imgfd, L->len)), k->inv);
    s->odd |=
        _mm512_cmp_pd_mask(_mm512_abs_pd(qd), _mm512_set1_pd((double)HPC_Q_LIMIT), _CMP_NLT_UQ);
    const __m512d fl = _mm512_roundscale_pd(_mm512_add_pd(qd, _mm512_set1_pd(0.5)),
                                            _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    s->qv = _mm512_cvttpd_epi64(fl);

    /* hpc_recon() and the bound, on the value the decoder will produce */
    s->rec = _mm512_sub_pd(_mm512_mul_pd(fl, k->step), _mm512_mul_pd(imgfd, L->len));
    s->rec32 = _mm256_setzero_ps();
    __m512d got = s->rec;
    if (f32) {
        s->rec32 = _mm512_cvtpd_ps(s->rec);
        got = _mm512_cvtps_pd(s->rec32);
    }
    s->odd |= _mm512_cmp_pd_mask(_mm512_abs_pd(_mm512_sub_pd(got, s->x)), k->eps, _CMP_NLE_UQ);
}

/* The residual, the new entry, and the second pass' arithmetic
 * (code_values()) for z < 2^31 (other values are rare and left to it):
 * hpc_token(), the other-axis compare hpc_ob() against the previous value's
 * new bucket (lane 0: the last lane of @p prev_bucket, the previous vector's)
 * and hpc_ctx_temporal(). @p ax0: the lanes holding axis x. */
LEAN_STEP void token_context(lean_vec *s, __m256i prev_bucket, __mmask8 ax0)
{
    const __m512i one64 = _mm512_set1_epi64(1);
    const __m256i one = _mm256_set1_epi32(1), two32 = _mm256_set1_epi32(2);
    const __m256i three32 = _mm256_set1_epi32(3), eight32 = _mm256_set1_epi32(8);
    /* residual and the new entry */
    s->r = _mm512_sub_epi64(s->qv, s->pred);
    const __m512i z = _mm512_xor_si512(_mm512_slli_epi64(s->r, 1), _mm512_srai_epi64(s->r, 63));
    const __m512i absr = _mm512_add_epi64(_mm512_srli_epi64(z, 1), _mm512_and_si512(z, one64));
    s->newmag = _mm512_cvtepi64_epi32(_mm512_min_epu64(absr, _mm512_set1_epi64(65535)));
    s->newage = _mm256_min_epu32(_mm256_add_epi32(s->age, one), _mm256_set1_epi32(255));

    /* hpc_token() */
    s->fits = _mm512_cmplt_epu64_mask(z, _mm512_set1_epi64((int64_t)1 << 31));
    const __m256i z32 = _mm512_cvtepi64_epi32(z);
    const __m256i e =
        _mm256_sub_epi32(_mm256_set1_epi32(31), _mm256_lzcnt_epi32(_mm256_or_si256(z32, one)));
    const __mmask8 big = _mm256_cmpge_epu32_mask(z32, eight32);
    const __m256i sh = _mm256_maskz_sub_epi32(big, e, two32);
    const __m256i tokbig = _mm256_add_epi32(
        _mm256_add_epi32(eight32, _mm256_slli_epi32(_mm256_sub_epi32(e, three32), 2)),
        _mm256_and_si256(_mm256_srlv_epi32(z32, sh), three32));
    const __m256i tok = _mm256_mask_blend_epi32(big, z32, tokbig);
    /* hpc_ob() */
    const __m256i mb = s->mb;
    s->newbucket = mag_bucket(s->newmag);
    const __m256i pb = _mm256_alignr_epi32(s->newbucket, prev_bucket, 7);
    __m256i ob = _mm256_add_epi32(_mm256_maskz_mov_epi32(_mm256_cmpge_epu32_mask(pb, mb), one),
                                  _mm256_maskz_mov_epi32(_mm256_cmpgt_epu32_mask(pb, mb), one));
    ob = _mm256_mask_mov_epi32(ob, ax0, three32);
    /* hpc_ctx_temporal() */
    const __m256i pc = s->pc;
    const __m256i mbob = _mm256_add_epi32(_mm256_slli_epi32(mb, 2), ob); /* 4 mb + ob */
    const __m256i lo = _mm256_add_epi32(_mm256_add_epi32(_mm256_slli_epi32(mbob, 2), mbob),
                                        pc); /* 5 (4 mb + ob) + pc */
    const __m256i hi = _mm256_add_epi32(
        _mm256_slli_epi32(_mm256_sub_epi32(mbob, _mm256_set1_epi32(12)), 1),
        _mm256_add_epi32(
            _mm256_set1_epi32(60),
            _mm256_maskz_mov_epi32(_mm256_cmpeq_epi32_mask(pc, _mm256_set1_epi32(HPC_PC_INT)),
                                   one))); /* 60 + 2 (4 (mb - 3) + ob) + [pc = 4] */
    const __m256i ci =
        _mm256_add_epi32(_mm256_set1_epi32(HPC_CTX_TEMPORAL),
                         _mm256_mask_blend_epi32(_mm256_cmple_epu32_mask(mb, two32), hi, lo));
    s->code = _mm256_or_si256(
        _mm256_or_si256(ci, _mm256_slli_epi32(tok, 8)),
        _mm256_or_si256(_mm256_slli_epi32(sh, 16), _mm256_slli_epi32(s->newbucket, 24)));
}

/* The new entry, the residuals, the codes and the decoded values. */
LEAN_STEP void store_vec(const hpc_lean_args *a, uint64_t v, const lean_vec *s)
{
    _mm512_storeu_si512(a->qnew + v, s->qv);
    _mm512_storeu_si512(a->vres + v, s->r);
    _mm256_storeu_si256((__m256i *)(a->img + v), s->imgf);
    _mm_storeu_si128((__m128i *)(a->mag + v), _mm256_cvtepi32_epi16(s->newmag));
    _mm_storel_epi64((__m128i *)(a->age + v), _mm256_cvtepi32_epi8(s->newage));
    _mm_storeu_si128((__m128i *)(a->vinfo + v), _mm256_cvtepi32_epi16(s->info));
    _mm256_storeu_si256((__m256i *)(a->vcode + v), s->code);
    if (a->f32) {
        _mm256_storeu_ps((float *)a->dec + v, s->rec32);
    } else {
        _mm512_storeu_pd((double *)a->dec + v, s->rec);
    }
}

unsigned hpc_lean_block_avx512(const hpc_lean_args *a, uint64_t v0, unsigned sel, uint64_t *redo)
{
    const lean_consts k = {{make_lanes(a, 0), make_lanes(a, 1), make_lanes(a, 2)},
                           _mm512_set1_pd(a->step),
                           _mm512_set1_pd(a->inv_step),
                           _mm512_set1_pd(a->eps)};
    /* lanes holding axis x, per phase: no other-axis context */
    const __mmask8 axis_x[3] = {0x49, 0x24, 0x92}; /* phase p: lanes i with (p + i) % 3 == 0 */
    __m256i prev_bucket = _mm256_setzero_si256();  /* new buckets of the last vector coded here */
    int prev_ok = 0;
    unsigned nredo = 0;
    for (unsigned j = 0; j < 3 * HPC_BLOCK_ATOMS / 8; j++) {
        const uint64_t v = v0 + 8u * j;
        const unsigned phase = (2u * j) % 3u; /* v mod 3 = 8 j mod 3 */
        lean_vec s;
        load_vec(a, v, &s);
        predict(a, v, sel, &s);
        image_quantize(&k, &k.lanes[phase], a->f32, &s);
        if (s.odd) {
            redo[nredo++] = v; /* the scalar code takes all eight */
            prev_ok = 0;
            continue;
        }
        const __mmask8 ax0 = axis_x[phase];
        token_context(&s, prev_bucket, ax0);
        /* lane 0 after a vector the scalar code takes: the second pass decides */
        const __mmask8 coded = s.fits & ((prev_ok || (ax0 & 1)) ? 0xFF : 0xFE);
        s.info = _mm256_mask_or_epi32(s.info, coded, s.info, _mm256_set1_epi32(HPC_VI_CODED));
        prev_bucket = s.newbucket;
        prev_ok = 1;
        store_vec(a, v, &s);
    }
    return nredo;
}
