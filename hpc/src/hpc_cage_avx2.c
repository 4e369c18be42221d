/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_cage_avx2.c -- the cage predictor's neighbour search and pair energy,
 * four at a time with AVX2 (hpc_cage_isa.h). Built alone with -mavx2 only
 * (never -mfma), in hpc's AVX2 static library.
 */
#include "hpc_cage_isa.h"

#include <immintrin.h>
#include <math.h>

/* gather() four candidates at a time: the same operations per candidate as
 * cage_keep(), so the same neighbours with the same bits; their order in a set
 * does not matter (the energy's sums are exact). Runs are read in whole
 * vectors (the arrays have 4 spare elements) with the lanes past the end
 * masked off. */
typedef struct keep4 {
    __m256d org[3], half[3], nhalf[3], len[3], inv, reach2;
    __m128i bias, kk, lane;
} keep4;

static inline void keep_run4(const keep4 *c, hpc_cage_nbs *set, const double *xs, const double *ys,
                             const double *zs, const uint32_t *later, uint32_t s, uint32_t e)
{
    const double *src[3] = {xs, ys, zs};
    for (; s < e; s += 4) {
        __m256d u[3];
        for (int a = 0; a < 3; a++) {
            __m256d d = _mm256_sub_pd(_mm256_loadu_pd(src[a] + s), c->org[a]);
            __m256d hi = _mm256_cmp_pd(d, c->half[a], _CMP_GT_OQ);
            __m256d lo = _mm256_cmp_pd(d, c->nhalf[a], _CMP_LT_OQ);
            d = _mm256_blendv_pd(_mm256_blendv_pd(d, _mm256_add_pd(d, c->len[a]), lo),
                                 _mm256_sub_pd(d, c->len[a]), hi);
            u[a] = _mm256_mul_pd(d, c->inv);
        }
        __m256d r2 =
            _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(u[0], u[0]), _mm256_mul_pd(u[1], u[1])),
                          _mm256_mul_pd(u[2], u[2]));
        /* lanes s + l < e (signed compare of small counts) */
        __m128i ok = _mm_cmpgt_epi32(_mm_set1_epi32((int)(e - s)), c->lane);
        if (later != NULL) { /* unsigned later > k */
            __m128i lt = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(later + s)), c->bias);
            ok = _mm_and_si128(ok, _mm_cmpgt_epi32(lt, c->kk));
        }
        __m256d in = _mm256_and_pd(_mm256_cmp_pd(r2, c->reach2, _CMP_LT_OQ),
                                   _mm256_castsi256_pd(_mm256_cvtepi32_epi64(ok)));
        unsigned bits = (unsigned)_mm256_movemask_pd(in);
        if (bits == 0) {
            continue;
        }
        double lx[4], ly[4], lz[4];
        _mm256_storeu_pd(lx, u[0]);
        _mm256_storeu_pd(ly, u[1]);
        _mm256_storeu_pd(lz, u[2]);
        for (; bits; bits &= bits - 1) {
            const unsigned l = (unsigned)__builtin_ctz(bits), m = set->m;
            if (m < HPC_CAGE_MAX_NB - 4) {
                set->x[m] = lx[l];
                set->y[m] = ly[l];
                set->z[m] = lz[l];
            }
            set->m = m + 1;
        }
    }
}

unsigned hpc_cage_gather_avx2(hpc_cage *g, uint64_t k, const double o[3])
{
    keep4 c;
    for (int a = 0; a < 3; a++) {
        c.org[a] = _mm256_set1_pd(o[a]);
        /* a free axis: nothing is ever beyond +-inf */
        c.half[a] = _mm256_set1_pd(g->per[a] ? g->half[a] : INFINITY);
        c.nhalf[a] = _mm256_set1_pd(g->per[a] ? -g->half[a] : -INFINITY);
        c.len[a] = _mm256_set1_pd(g->per[a] ? g->len[a] : 0.0);
    }
    c.inv = _mm256_set1_pd(g->inv_rc);
    c.reach2 = _mm256_set1_pd(CAGE_REACH * CAGE_REACH);
    c.bias = _mm_set1_epi32((int)0x80000000u);
    c.kk = _mm_xor_si128(_mm_set1_epi32((int)(uint32_t)k), c.bias);
    c.lane = _mm_setr_epi32(0, 1, 2, 3);
    uint64_t cells[27];
    const unsigned ncl = cage_gather_begin(g, o, cells);
    hpc_cage_nbs *nn = &g->nb_new, *no = &g->nb_old;
    for (unsigned i = 0; i < ncl; i++) {
        const uint64_t cl = cells[i];
        const uint32_t ns = g->nstart[cl], os = g->ostart[cl];
        keep_run4(&c, nn, g->nx, g->ny, g->nz, NULL, ns, ns + g->ncount[cl]);
        keep_run4(&c, no, g->ox, g->oy, g->oz, g->olater, os, g->ostart[cl + 1]);
        cage_keep_overflow(g, o, cl);
    }
    return nn->m + no->m;
}

/* energy() four pairs at a time: the same operations per pair, and the sums
 * are exact, so the result is identical (test_hpc_cage checks it). */
double hpc_cage_energy_avx2(const double *W, const hpc_cage_nbs *set, const double x[3],
                            double grad[3])
{
    const unsigned m = set->m;
    const __m256d X = _mm256_set1_pd(x[0]), Y = _mm256_set1_pd(x[1]), Z = _mm256_set1_pd(x[2]);
    const __m256d one = _mm256_set1_pd(1.0), kn = _mm256_set1_pd((double)HPC_CAGE_KNOTS);
    const __m256d sk = _mm256_set1_pd(2.0 * (double)HPC_CAGE_KNOTS);
    const __m256d es = _mm256_set1_pd(CAGE_E_SCALE), gs = _mm256_set1_pd(CAGE_G_SCALE);
    const __m256d rnd = _mm256_set1_pd(CAGE_ROUNDER);
    __m256d e = _mm256_setzero_pd(), gx = e, gy = e, gz = e;
    for (unsigned j = 0; j < m; j += 4) {
        __m256d dx = _mm256_sub_pd(X, _mm256_loadu_pd(set->x + j));
        __m256d dy = _mm256_sub_pd(Y, _mm256_loadu_pd(set->y + j));
        __m256d dz = _mm256_sub_pd(Z, _mm256_loadu_pd(set->z + j));
        __m256d r2 = _mm256_add_pd(_mm256_add_pd(_mm256_mul_pd(dx, dx), _mm256_mul_pd(dy, dy)),
                                   _mm256_mul_pd(dz, dz));
        __m256d in = _mm256_and_pd(_mm256_cmp_pd(r2, one, _CMP_LT_OQ), one);
        __m256d t = _mm256_mul_pd(_mm256_mul_pd(r2, in), kn);
        __m128i i = _mm256_cvttpd_epi32(t);
        i = _mm_sub_epi32(i, _mm_srai_epi32(i, 6));
        __m256d w0 = _mm256_i32gather_pd(W, i, 8);
        __m256d w1 = _mm256_i32gather_pd(W + 1, i, 8);
        __m256d dw = _mm256_sub_pd(w1, w0);
        __m256d ev = _mm256_mul_pd(
            _mm256_add_pd(w0, _mm256_mul_pd(_mm256_sub_pd(t, _mm256_cvtepi32_pd(i)), dw)), in);
        __m256d sv = _mm256_mul_pd(_mm256_mul_pd(sk, dw), in);
#define CAGE_FIXED(v, s) _mm256_sub_pd(_mm256_add_pd(_mm256_mul_pd((v), (s)), rnd), rnd)
        e = _mm256_add_pd(e, CAGE_FIXED(ev, es));
        gx = _mm256_add_pd(gx, CAGE_FIXED(_mm256_mul_pd(sv, dx), gs));
        gy = _mm256_add_pd(gy, CAGE_FIXED(_mm256_mul_pd(sv, dy), gs));
        gz = _mm256_add_pd(gz, CAGE_FIXED(_mm256_mul_pd(sv, dz), gs));
#undef CAGE_FIXED
    }
    double le[4], lx[4], ly[4], lz[4];
    _mm256_storeu_pd(le, e);
    _mm256_storeu_pd(lx, gx);
    _mm256_storeu_pd(ly, gy);
    _mm256_storeu_pd(lz, gz);
    grad[0] = ((lx[0] + lx[1]) + (lx[2] + lx[3])) * (1.0 / CAGE_G_SCALE);
    grad[1] = ((ly[0] + ly[1]) + (ly[2] + ly[3])) * (1.0 / CAGE_G_SCALE);
    grad[2] = ((lz[0] + lz[1]) + (lz[2] + lz[3])) * (1.0 / CAGE_G_SCALE);
    return (le[0] + le[1]) + (le[2] + le[3]);
}
