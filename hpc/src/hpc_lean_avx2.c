/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_lean_avx2.c -- the level-0/1 first pass on four values at once (AVX2).
 * Compiled alone with -mavx2, in its own static library (hpc/meson.build);
 * hpc_lean_simd.c calls it only on CPUs that have AVX2. Same contract and
 * same bits as the scalar code and the AVX-512 kernel (hpc_lean_avx512.c).
 */
#include "hpc_core.h"
#include "hpc_lean_isa.h"

#include <immintrin.h>
#include <string.h>

/*
 * Four values at once. AVX2 has no 64-bit integer <-> double conversion, no
 * 64-bit arithmetic shift, no lzcnt: integers meet doubles through the
 * 2^52 + 2^51 bias (exact for |v| < 2^51; a prediction beyond that sends the
 * vector to the scalar code), buckets are counted against their thresholds,
 * and the token's exponent is read off a double.
 */
#define BIAS_BITS 0x4338000000000000ll /* the double 2^52 + 2^51 */

static inline __m256d i64_to_f64(__m256i v)
{
    const __m256i bias = _mm256_set1_epi64x(BIAS_BITS);
    return _mm256_sub_pd(_mm256_castsi256_pd(_mm256_add_epi64(v, bias)), _mm256_castsi256_pd(bias));
}

/* An integer-valued double with |x| < 2^51 as int64. */
static inline __m256i f64_to_i64(__m256d x)
{
    const __m256i bias = _mm256_set1_epi64x(BIAS_BITS);
    return _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(x, _mm256_castsi256_pd(bias))), bias);
}

/* Low 32 bits of each 64-bit lane, in order. */
static inline __m128i narrow32(__m256i v)
{
    return _mm256_castsi256_si128(
        _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7)));
}

/* hpc_mag_bucket() of four magnitudes < 2^16: 2 + the thresholds 3, 5, 9,
 * ..., 513 reached (1 + ceil(log2 m), capped at 11); m itself below 3. */
static inline __m128i mag_bucket4(__m128i m)
{
    __m128i b = _mm_set1_epi32(2);
    for (int t = 2; t <= 512; t *= 2) { /* m >= t + 1 */
        b = _mm_sub_epi32(b, _mm_cmpgt_epi32(m, _mm_set1_epi32(t)));
    }
    return _mm_blendv_epi8(b, m, _mm_cmplt_epi32(m, _mm_set1_epi32(3)));
}

typedef struct lane_axes4 {
    __m256d len, loq, hiq, lenq, per; /* per: all ones on periodic axes */
    __m128i axis_x;                   /* all ones on lanes holding axis x */
} lane_axes4;

static lane_axes4 make_lanes4(const hpc_lean_args *a, unsigned phase)
{
    double len[4], loq[4], hiq[4], lenq[4], per[4];
    int32_t ax0[4];
    for (unsigned i = 0; i < 4; i++) {
        unsigned ax = (phase + i) % 3;
        len[i] = a->len[ax];
        loq[i] = a->loq[ax];
        hiq[i] = a->hiq[ax];
        lenq[i] = a->lenq[ax];
        uint64_t ones = a->per[ax] ? ~(uint64_t)0 : 0;
        memcpy(&per[i], &ones, 8);
        ax0[i] = ax == 0 ? -1 : 0;
    }
    lane_axes4 l = {_mm256_loadu_pd(len), _mm256_loadu_pd(loq),
                    _mm256_loadu_pd(hiq), _mm256_loadu_pd(lenq),
                    _mm256_loadu_pd(per), _mm_loadu_si128((const __m128i *)ax0)};
    return l;
}

/*
 * The block runs each vector through the steps below, in order; each step
 * is always inlined, so the vector's state stays in registers.
 */
#define LEAN_STEP static inline __attribute__((always_inline))

/* The frame's constants, set up once per block. */
typedef struct lean_consts4 {
    lane_axes4 lanes[3];
    __m256d step, inv, eps;
} lean_consts4;

/* One vector of four values on its way through the steps. */
typedef struct lean_vec4 {
    /* the last entry's state and the input */
    __m128i age, mag, img;
    __m256i q1, q2, q3, age64;
    __m256d x;
    int odd; /* lanes the kernel does not take: the scalar code takes all four */
    /* prediction */
    __m256i pred;
    __m128i pc, mb, info;
    /* image and lattice value */
    __m128i imgf;
    __m256d fl, rec;
    __m128 rec32;
    /* residual, new entry, token and context */
    __m256i qv, r;
    __m128i newmag, newage, newbucket, code, fits;
} lean_vec4;

/* The state of the last entry, and the lanes that have none (spatial) or
 * hold no finite value. */
LEAN_STEP void load_vec4(const hpc_lean_args *a, uint64_t v, lean_vec4 *s)
{
    const __m256d absmask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
    int32_t age4;
    memcpy(&age4, a->age + v, 4);
    s->age = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(age4));
    s->mag = _mm_cvtepu16_epi32(_mm_loadl_epi64((const __m128i *)(a->mag + v)));
    s->img = _mm_loadu_si128((const __m128i *)(a->img + v));
    s->q1 = _mm256_loadu_si256((const __m256i *)(a->q1 + v));
    s->q2 = _mm256_loadu_si256((const __m256i *)(a->q2 + v));
    s->q3 = _mm256_loadu_si256((const __m256i *)(a->q3 + v));
    s->x = a->f32 ? _mm256_cvtps_pd(_mm_loadu_ps((const float *)a->xyz + v))
                  : _mm256_loadu_pd((const double *)a->xyz + v);
    s->age64 = _mm256_cvtepi32_epi64(s->age);
    s->odd = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(s->age, _mm_setzero_si128())));
    s->odd |= _mm256_movemask_pd(
        _mm256_cmp_pd(_mm256_and_pd(s->x, absmask), _mm256_set1_pd(INFINITY), _CMP_NLT_UQ));
}

/* hpc_predict_int(), then hpc_predict_model() where the block uses the
 * model; predictions beyond 2^51 send the vector away. */
LEAN_STEP void predict4(const hpc_lean_args *a, uint64_t v, unsigned sel, lean_vec4 *s)
{
    const __m256i one64 = _mm256_set1_epi64x(1);
    const __m256i plim = _mm256_set1_epi64x(((int64_t)1 << 51) - 1);
    const __m256i nlim = _mm256_set1_epi64x(-((int64_t)1 << 51));
    __m256i pred = s->q1;
    __m128i pc = _mm_set1_epi32(HPC_PC_INT);
    if (sel != HPC_SEL_ORDER0) {
        const __m256i lin = _mm256_sub_epi64(_mm256_add_epi64(s->q1, s->q1), s->q2);
        pred = _mm256_blendv_epi8(pred, lin, _mm256_cmpgt_epi64(s->age64, one64));
        if (sel == HPC_SEL_ORDER2) {
            const __m256i d12 = _mm256_sub_epi64(s->q1, s->q2);
            const __m256i quad =
                _mm256_add_epi64(_mm256_add_epi64(_mm256_add_epi64(d12, d12), d12), s->q3);
            pred =
                _mm256_blendv_epi8(pred, quad, _mm256_cmpgt_epi64(s->age64, _mm256_set1_epi64x(2)));
        }
    }
    if (sel == HPC_SEL_MODEL && a->model_valid) {
        /* hpc_predict_model() where age >= 7 (see the AVX-512 kernel); the
         * floor shift of acc (|acc| < 2^50) via a 2^62 offset */
        const __m256i full = _mm256_cmpgt_epi64(s->age64, _mm256_set1_epi64x(HPC_TAPS));
        const __m256i lim = _mm256_set1_epi64x(((int64_t)1 << 31) - 1);
        const __m256i nlim31 = _mm256_set1_epi64x(-(((int64_t)1 << 31) - 1));
        __m256i acc = _mm256_set1_epi64x((int64_t)1 << (HPC_PRED_SHIFT - 1));
        __m256i big = _mm256_setzero_si256();
        __m256i qk = s->q1;
        for (unsigned k = 1; k <= HPC_TAPS; k++) {
            const __m256i qk1 = k == 1   ? s->q2
                                : k == 2 ? s->q3
                                         : _mm256_loadu_si256((const __m256i *)(a->qh[k] + v));
            const __m256i dk = _mm256_sub_epi64(qk, qk1);
            big = _mm256_or_si256(
                big, _mm256_or_si256(_mm256_cmpgt_epi64(dk, lim), _mm256_cmpgt_epi64(nlim31, dk)));
            acc = _mm256_add_epi64(acc, _mm256_mul_epi32(dk, _mm256_set1_epi64x(a->taps[k - 1])));
            qk = qk1;
        }
        s->odd |= _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_and_si256(big, full)));
        const __m256i off = _mm256_set1_epi64x((int64_t)1 << 62);
        const __m256i fl =
            _mm256_sub_epi64(_mm256_srli_epi64(_mm256_add_epi64(acc, off), HPC_PRED_SHIFT),
                             _mm256_set1_epi64x((int64_t)1 << (62 - HPC_PRED_SHIFT)));
        const __m256i mpred = _mm256_add_epi64(s->q1, fl);
        const __m128i mpc = narrow32(
            _mm256_srli_epi64(_mm256_and_si256(acc, _mm256_set1_epi64x((1 << HPC_PRED_SHIFT) - 1)),
                              HPC_PRED_SHIFT - 2));
        pred = _mm256_blendv_epi8(pred, mpred, full);
        pc = _mm_blendv_epi8(pc, mpc, narrow32(full));
    }
    s->odd |= _mm256_movemask_pd(_mm256_castsi256_pd(
        _mm256_or_si256(_mm256_cmpgt_epi64(pred, plim), _mm256_cmpgt_epi64(nlim, pred))));
    s->pred = pred;
    s->pc = pc;
    s->mb = mag_bucket4(s->mag);
    s->info = _mm_or_si128(s->mb, _mm_slli_epi32(pc, HPC_VI_PC_SHIFT));
}

/* hpc_wrap_ctx() and quantize_value(): the periodic image, the lattice
 * value, hpc_recon() and the bound, on the value the decoder will produce. */
LEAN_STEP void image_quantize4(const lean_consts4 *k, const lane_axes4 *L, int f32, lean_vec4 *s)
{
    const __m256d absmask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFll));
    const __m256d two = _mm256_set1_pd(2.0);
    const __m128i one = _mm_set1_epi32(1);
    /* hpc_wrap_ctx() */
    const __m256d pd = i64_to_f64(s->pred);
    const __m256d imgd = _mm256_cvtepi32_pd(s->img);
    const __m256d u = _mm256_sub_pd(pd, _mm256_mul_pd(imgd, L->lenq));
    const __m256d dhi = _mm256_sub_pd(L->hiq, u);
    const __m256d dlo = _mm256_sub_pd(u, L->loq);
    const __m256d up = _mm256_cmp_pd(dhi, dlo, _CMP_LT_OQ);
    const __m256d d = _mm256_blendv_pd(dlo, dhi, up);
    const __m256d magd = _mm256_cvtepi32_pd(s->mag);
    const __m256d typ = _mm256_blendv_pd(magd, two, _mm256_cmp_pd(magd, two, _CMP_LT_OQ));
    const __m256i c3 = _mm256_add_epi64(
        _mm256_add_epi64(_mm256_castpd_si256(_mm256_cmp_pd(d, _mm256_setzero_pd(), _CMP_GE_OQ)),
                         _mm256_castpd_si256(_mm256_cmp_pd(d, typ, _CMP_GE_OQ))),
        _mm256_castpd_si256(_mm256_cmp_pd(d, _mm256_mul_pd(_mm256_set1_pd(3.0), typ), _CMP_GE_OQ)));
    const __m128i ctx = _mm_sub_epi32(_mm_setzero_si128(), narrow32(c3)); /* 0..3 */
    const __m256d near = _mm256_and_pd(
        L->per, _mm256_cmp_pd(
                    d, _mm256_add_pd(_mm256_set1_pd(16.0), _mm256_mul_pd(_mm256_set1_pd(8.0), typ)),
                    _CMP_LT_OQ));
    const __m128i near32 = narrow32(_mm256_castpd_si256(near));
    s->info = _mm_or_si128(
        s->info, _mm_and_si128(near32, _mm_slli_epi32(_mm_add_epi32(ctx, one), HPC_VI_W_SHIFT)));

    /* quantize_value(): the image img + dimg if it lands nearer p */
    const __m128i up32 = narrow32(_mm256_castpd_si256(up));
    const __m128i img1 =
        _mm_blendv_epi8(_mm_sub_epi32(s->img, one), _mm_add_epi32(s->img, one), up32);
    const __m256d img1d = _mm256_cvtepi32_pd(img1);
    const __m256d u0 = _mm256_add_pd(s->x, _mm256_mul_pd(imgd, L->len));
    const __m256d u1 = _mm256_add_pd(s->x, _mm256_mul_pd(img1d, L->len));
    const __m256d e0 = _mm256_and_pd(_mm256_sub_pd(_mm256_mul_pd(u0, k->inv), pd), absmask);
    const __m256d e1 = _mm256_and_pd(_mm256_sub_pd(_mm256_mul_pd(u1, k->inv), pd), absmask);
    const __m128i inrange = _mm_and_si128(_mm_cmplt_epi32(img1, _mm_set1_epi32((1 << 30) + 1)),
                                          _mm_cmpgt_epi32(img1, _mm_set1_epi32(-(1 << 30) - 1)));
    const __m128i wrap32 =
        _mm_and_si128(_mm_and_si128(near32, inrange),
                      narrow32(_mm256_castpd_si256(_mm256_cmp_pd(e1, e0, _CMP_LT_OQ))));
    const __m256d wrap = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(wrap32));
    s->info = _mm_or_si128(s->info, _mm_and_si128(wrap32, _mm_set1_epi32(HPC_VI_WRAP)));
    s->imgf = _mm_blendv_epi8(s->img, img1, wrap32);
    const __m256d imgfd = _mm256_blendv_pd(imgd, img1d, wrap);

    /* lattice value: floor(qd + 0.5), |qd| < 2^50 */
    const __m256d qd = _mm256_mul_pd(_mm256_add_pd(s->x, _mm256_mul_pd(imgfd, L->len)), k->inv);
    s->odd |= _mm256_movemask_pd(_mm256_cmp_pd(_mm256_and_pd(qd, absmask),
                                               _mm256_set1_pd((double)HPC_Q_LIMIT), _CMP_NLT_UQ));
    s->fl = _mm256_floor_pd(_mm256_add_pd(qd, _mm256_set1_pd(0.5)));

    /* hpc_recon() and the bound */
    s->rec = _mm256_sub_pd(_mm256_mul_pd(s->fl, k->step), _mm256_mul_pd(imgfd, L->len));
    s->rec32 = _mm_setzero_ps();
    __m256d got = s->rec;
    if (f32) {
        s->rec32 = _mm256_cvtpd_ps(s->rec);
        got = _mm256_cvtps_pd(s->rec32);
    }
    s->odd |= _mm256_movemask_pd(
        _mm256_cmp_pd(_mm256_and_pd(_mm256_sub_pd(got, s->x), absmask), k->eps, _CMP_NLE_UQ));
}

/* The residual, the new entry, and the second pass' arithmetic for z < 2^31:
 * hpc_token() (the exponent of (double)(z | 1)), hpc_ob() against
 * @p prev_bucket (the previous vector's new buckets) and hpc_ctx_temporal().
 * @p axis_x: all ones on the lanes holding axis x. */
LEAN_STEP void token_context4(lean_vec4 *s, __m128i prev_bucket, __m128i axis_x)
{
    const __m256i one64 = _mm256_set1_epi64x(1);
    const __m128i one = _mm_set1_epi32(1), two32 = _mm_set1_epi32(2), three32 = _mm_set1_epi32(3);
    s->qv = f64_to_i64(s->fl);

    /* residual and the new entry */
    s->r = _mm256_sub_epi64(s->qv, s->pred);
    const __m256i neg = _mm256_cmpgt_epi64(_mm256_setzero_si256(), s->r);
    const __m256i z = _mm256_xor_si256(_mm256_slli_epi64(s->r, 1), neg);
    const __m256i absr = _mm256_add_epi64(_mm256_srli_epi64(z, 1), _mm256_and_si256(z, one64));
    const __m256i cap = _mm256_set1_epi64x(65535);
    s->newmag = narrow32(_mm256_blendv_epi8(absr, cap, _mm256_cmpgt_epi64(absr, cap)));
    s->newage = _mm_min_epu32(_mm_add_epi32(s->age, one), _mm_set1_epi32(255));

    /* hpc_token() for z < 2^31: the exponent of (double)(z | 1) */
    const __m256i zlim = _mm256_set1_epi64x(((int64_t)1 << 31) - 1);
    s->fits = narrow32(_mm256_andnot_si256(_mm256_cmpgt_epi64(z, zlim), _mm256_set1_epi64x(-1)));
    const __m256i zb = _mm256_or_si256(z, one64);
    const __m256i e64 = _mm256_sub_epi64(_mm256_srli_epi64(_mm256_castpd_si256(i64_to_f64(zb)), 52),
                                         _mm256_set1_epi64x(1023));
    const __m128i e = narrow32(e64);
    const __m128i z32 = narrow32(z);
    const __m128i big = _mm_cmpgt_epi32(z32, _mm_set1_epi32(7)); /* z < 2^31: signed ok */
    const __m128i sh = _mm_and_si128(big, _mm_sub_epi32(e, two32));
    const __m128i top = narrow32(_mm256_srlv_epi64(z, _mm256_cvtepi32_epi64(sh)));
    const __m128i tokbig = _mm_add_epi32(
        _mm_add_epi32(_mm_set1_epi32(8), _mm_slli_epi32(_mm_sub_epi32(e, three32), 2)),
        _mm_and_si128(top, three32));
    const __m128i tok = _mm_blendv_epi8(z32, tokbig, big);
    /* hpc_ob() and hpc_ctx_temporal() */
    const __m128i mb = s->mb, pc = s->pc;
    s->newbucket = mag_bucket4(s->newmag);
    const __m128i pb = _mm_alignr_epi8(s->newbucket, prev_bucket, 12);
    __m128i ob = _mm_sub_epi32(_mm_setzero_si128(),
                               _mm_add_epi32(_mm_cmpgt_epi32(pb, _mm_sub_epi32(mb, one)),
                                             _mm_cmpgt_epi32(pb, mb))); /* pb >= mb, pb > mb */
    ob = _mm_blendv_epi8(ob, three32, axis_x);
    const __m128i mbob = _mm_add_epi32(_mm_slli_epi32(mb, 2), ob);
    const __m128i lo = _mm_add_epi32(_mm_add_epi32(_mm_slli_epi32(mbob, 2), mbob), pc);
    const __m128i hi =
        _mm_sub_epi32(_mm_add_epi32(_mm_slli_epi32(_mm_sub_epi32(mbob, _mm_set1_epi32(12)), 1),
                                    _mm_set1_epi32(60)),
                      _mm_cmpeq_epi32(pc, _mm_set1_epi32(HPC_PC_INT))); /* + [pc = 4] */
    const __m128i ci = _mm_add_epi32(_mm_set1_epi32(HPC_CTX_TEMPORAL),
                                     _mm_blendv_epi8(hi, lo, _mm_cmplt_epi32(mb, three32)));
    s->code = _mm_or_si128(_mm_or_si128(ci, _mm_slli_epi32(tok, 8)),
                           _mm_or_si128(_mm_slli_epi32(sh, 16), _mm_slli_epi32(s->newbucket, 24)));
}

/* The new entry, the residuals, the codes and the decoded values. */
LEAN_STEP void store_vec4(const hpc_lean_args *a, uint64_t v, const lean_vec4 *s)
{
    _mm256_storeu_si256((__m256i *)(a->qnew + v), s->qv);
    _mm256_storeu_si256((__m256i *)(a->vres + v), s->r);
    _mm_storeu_si128((__m128i *)(a->img + v), s->imgf);
    _mm_storel_epi64((__m128i *)(a->mag + v), _mm_packus_epi32(s->newmag, s->newmag));
    const int32_t age_out = _mm_cvtsi128_si32(
        _mm_packus_epi16(_mm_packus_epi32(s->newage, s->newage), _mm_setzero_si128()));
    memcpy(a->age + v, &age_out, 4);
    _mm_storel_epi64((__m128i *)(a->vinfo + v), _mm_packus_epi32(s->info, s->info));
    _mm_storeu_si128((__m128i *)(a->vcode + v), s->code);
    if (a->f32) {
        _mm_storeu_ps((float *)a->dec + v, s->rec32);
    } else {
        _mm256_storeu_pd((double *)a->dec + v, s->rec);
    }
}

unsigned hpc_lean_block_avx2(const hpc_lean_args *a, uint64_t v0, unsigned sel, uint64_t *redo)
{
    const lean_consts4 k = {{make_lanes4(a, 0), make_lanes4(a, 1), make_lanes4(a, 2)},
                            _mm256_set1_pd(a->step),
                            _mm256_set1_pd(a->inv_step),
                            _mm256_set1_pd(a->eps)};
    __m128i prev_bucket = _mm_setzero_si128();
    int prev_ok = 0;
    unsigned nredo = 0;
    for (unsigned j = 0; j < 3 * HPC_BLOCK_ATOMS / 4; j++) {
        const uint64_t v = v0 + 4u * j;
        const lane_axes4 *L = &k.lanes[j % 3u]; /* v mod 3 = 4 j mod 3 */
        lean_vec4 s;
        load_vec4(a, v, &s);
        predict4(a, v, sel, &s);
        image_quantize4(&k, L, a->f32, &s);
        if (s.odd) {
            redo[nredo++] = v;
            prev_ok = 0;
            continue;
        }
        token_context4(&s, prev_bucket, L->axis_x);
        __m128i coded = s.fits;
        if (!prev_ok && (j % 3u) != 0) { /* lane 0 is axis y or z: its previous value was scalar */
            coded = _mm_and_si128(coded, _mm_setr_epi32(0, -1, -1, -1));
        }
        s.info = _mm_or_si128(s.info, _mm_and_si128(coded, _mm_set1_epi32(HPC_VI_CODED)));
        prev_bucket = s.newbucket;
        prev_ok = 1;
        store_vec4(a, v, &s);
    }
    return nredo;
}
