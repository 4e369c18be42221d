/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hpc_force.c -- white box: the cell-list force term equals, bit for
 * bit, a brute-force sum over all pairs written from FORMAT.md §6.7, for
 * periodic and free axes, boxes just above 3 r_cut, clustered atoms and atoms
 * slightly outside the box; and the grid fails exactly where the format says
 * the term is unavailable.
 */
#include "hpc_force.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

static uint64_t rs = 99;

static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) * 0x1p-53;
}

static int64_t ref_round(double v)
{
    if (!(fabs(v) < 0x1p40)) {
        return v != v ? 0 : (v > 0 ? ((int64_t)1 << 40) : -((int64_t)1 << 40));
    }
    double a = floor(fabs(v) + 0.5);
    return v < 0 ? -(int64_t)a : (int64_t)a;
}

/* FORMAT.md §6.7, O(N^2). */
static void reference(const double *pos, const uint8_t *valid, size_t n, const double len[3],
                      const int per[3], const hpc_pairfn *fn, double K, int64_t *F)
{
    const double h = (double)(fn->nknots - 1) / (fn->r2hi - fn->r2lo);
    memset(F, 0, 3 * n * sizeof(*F));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            if (!valid[i] || !valid[j]) {
                continue;
            }
            double d[3], r2 = 0;
            for (int a = 0; a < 3; a++) {
                d[a] = pos[3 * i + a] - pos[3 * j + a];
                if (per[a]) {
                    if (d[a] > len[a] / 2) {
                        d[a] = d[a] - len[a];
                    } else if (d[a] < -len[a] / 2) {
                        d[a] = d[a] + len[a];
                    }
                }
            }
            r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            if (!(r2 < fn->r2hi)) {
                continue;
            }
            double s = (r2 - fn->r2lo) * h;
            if (!(s > 0)) {
                s = 0;
            }
            int k = (int)s;
            if (k > (int)fn->nknots - 2) {
                k = (int)fn->nknots - 2;
            }
            double t = s - k;
            if (t > 1) {
                t = 1;
            }
            double w = (double)fn->psi[k] + t * ((double)fn->psi[k + 1] - (double)fn->psi[k]);
            for (int a = 0; a < 3; a++) {
                int64_t c = ref_round(w * d[a] * K);
                F[3 * i + a] += c;
                F[3 * j + a] -= c;
            }
        }
    }
}

static void check(size_t n, const double L[3], const int per[3], double rc, int clustered)
{
    double *pos = malloc(3 * n * sizeof(double));
    uint8_t *valid = malloc(n);
    int64_t *F = malloc(3 * n * sizeof(int64_t)), *G = malloc(3 * n * sizeof(int64_t));
    for (size_t i = 0; i < n; i++) {
        valid[i] = (i % 17) != 5;
        for (int a = 0; a < 3; a++) {
            double x = clustered ? 0.5 * L[a] + 0.2 * L[a] * (urand() - 0.5) : L[a] * urand();
            if (i % 23 == 0) {
                x += (urand() - 0.5) * 0.01 * L[a]; /* slightly outside the box */
            }
            pos[3 * i + a] = x;
        }
    }
    hpc_pairfn fn = {.r2lo = 0.25 * rc * rc, .r2hi = rc * rc, .nknots = HPC_KNOTS};
    for (unsigned k = 0; k < HPC_KNOTS; k++) {
        fn.psi[k] = (float)(50.0 * (urand() - 0.3));
    }
    hpc_cells c;
    hpc_cells_init(&c);
    double lo[3] = {0, 0, 0};
    uint8_t p8[3] = {(uint8_t)per[0], (uint8_t)per[1], (uint8_t)per[2]};
    assert_int_equal(hpc_cells_build(&c, pos, valid, n, 1, lo, L, p8, rc), NGL_OK);
    const double K = 4096.0 / 0.002;
    hpc_force_compute(&c, pos, n, &fn, K, F);
    reference(pos, valid, n, L, per, &fn, K, G);
    size_t nonzero = 0;
    for (size_t i = 0; i < 3 * n; i++) {
        if (F[i] != G[i]) {
            fail_msg("atom %zu axis %zu: cells %lld, reference %lld", i / 3, i % 3, (long long)F[i],
                     (long long)G[i]);
        }
        nonzero += F[i] != 0;
    }
    assert_true(nonzero > n); /* the test did compute forces */
    hpc_cells_free(&c);
    free(pos);
    free(valid);
    free(F);
    free(G);
}

static void test_hpc_force_matches_reference(void **state)
{
    (void)state;
    const double rc = 1.41;
    const double big[3] = {10.0, 10.0, 10.0};
    const double tight[3] = {3.0 * rc + 0.01, 3.2 * rc, 4.5 * rc}; /* 3 cells per axis */
    const int all[3] = {1, 1, 1}, mixed[3] = {1, 0, 1}, none[3] = {0, 0, 0};
    check(800, big, all, rc, 0);
    check(300, tight, all, rc, 0);
    check(600, big, mixed, rc, 0);
    check(500, big, none, rc, 1);
    check(200, tight, mixed, rc, 1);
}

static void test_hpc_force_unavailable(void **state)
{
    (void)state;
    double pos[6] = {0.1, 0.1, 0.1, 1.0, 1.0, 1.0};
    uint8_t valid[2] = {1, 1};
    double lo[3] = {0, 0, 0}, hi[3] = {2.9 * 1.41, 10, 10};
    uint8_t per[3] = {1, 1, 1};
    hpc_cells c;
    hpc_cells_init(&c);
    /* a periodic axis shorter than 3 r_cut */
    assert_int_equal(hpc_cells_build(&c, pos, valid, 2, 1, lo, hi, per, 1.41), NGL_ERR_UNSUPPORTED);
    /* few atoms in a large periodic box: the grid would shrink below 3 cells */
    double hi2[3] = {100, 100, 100};
    assert_int_equal(hpc_cells_build(&c, pos, valid, 2, 1, lo, hi2, per, 1.41),
                     NGL_ERR_UNSUPPORTED);
    /* free axes always work */
    uint8_t free3[3] = {0, 0, 0};
    assert_int_equal(hpc_cells_build(&c, pos, valid, 2, 1, lo, hi2, free3, 1.41), NGL_OK);
    hpc_cells_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hpc_force_matches_reference),
        cmocka_unit_test(test_hpc_force_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
