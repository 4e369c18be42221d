/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_eps_bound.c -- the EPS codec keeps |decoded - x| <= eps for every
 * finite element, always, and returns NaN/Inf bit for bit.
 *
 * Inputs: random at several scales, huge (+-1e30, +-FLT_MAX, +-DBL_MAX),
 * tiny and subnormal, constant, alternating sign, jumps between steps,
 * NaN payloads and +-Inf, exact ties of the quantizer, and values where the
 * rounding of p + q*2eps to the output type lands just outside eps. f32 and
 * f64, every predictor, eps from 1e-12 to 1e3. The comparison is exact
 * (in binary64, where both f32 values are exact): no tolerance.
 */
#include "ngl_testutil.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { EB_N = 4099, EB_STEPS = 6 };

typedef struct eb_fixture {
    uint8_t *x, *y;
} eb_fixture;

static int eb_setup(void **state)
{
    eb_fixture *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return -1;
    }
    f->x = malloc(EB_N * 8);
    f->y = malloc(EB_N * 8);
    if (f->x == NULL || f->y == NULL) {
        free(f->x);
        free(f->y);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int eb_teardown(void **state)
{
    eb_fixture *f = *state;
    free(f->x);
    free(f->y);
    free(f);
    return 0;
}

typedef enum {
    EB_RANDOM,      /* uniform at a scale chosen per block */
    EB_HUGE,        /* +-1e30, +-FLT_MAX, +-DBL_MAX, 1e300 */
    EB_TINY,        /* tiny normals and subnormals */
    EB_CONSTANT,    /* one value for the whole vector and every step */
    EB_ALTERNATING, /* +v, -v, +v, ... and flipping every step */
    EB_JUMPS,       /* a level that jumps by many eps between steps */
    EB_SPECIAL,     /* NaN payloads, +-Inf sprinkled in */
    EB_TIES,        /* x = (k + 1/2) * 2eps exactly */
    EB_ROUNDING,    /* ulp(x) comparable to eps: output rounding matters */
    EB_MIXED,       /* all of the above, element by element */
    EB_NKINDS
} eb_kind;

static const char *const eb_kind_names[] = {"random", "huge",    "tiny", "constant", "alternating",
                                            "jumps",  "special", "ties", "rounding", "mixed"};

static double eb_value(eb_kind kind, tu_rng *rng, ngl_dtype dt, double eps, uint64_t i,
                       uint64_t step)
{
    const int f64 = dt == NGL_DTYPE_F64;
    switch (kind) {
    case EB_RANDOM: {
        static const double scales[] = {1e-3, 1.0, 1e3, 1e6, 1e9};
        return (2.0 * tu_rng_unit(rng) - 1.0) * scales[(i / 64) % 5];
    }
    case EB_HUGE: {
        const double big[] = {1e30, FLT_MAX, f64 ? DBL_MAX : FLT_MAX, f64 ? 1e300 : 3e38,
                              f64 ? 0x1p1000 : 0x1p126};
        const double v = big[tu_rng_below(rng, 5)];
        return tu_rng_below(rng, 2) ? v : -v;
    }
    case EB_TINY: {
        const double tiny[] = {1e-30,
                               FLT_MIN,
                               0x1p-149,
                               0x1p-140 * 3.0,
                               f64 ? 0x1p-1074 : 0x1p-148,
                               f64 ? DBL_MIN : 1e-38,
                               f64 ? 1e-310 : 1e-44};
        const double v = tiny[tu_rng_below(rng, 7)] * (double)(1 + tu_rng_below(rng, 3));
        return tu_rng_below(rng, 2) ? v : -v;
    }
    case EB_CONSTANT: return 0.3 + 1000.0 * eps;
    case EB_ALTERNATING: {
        const double v = 1.0 + (double)(i % 13) * 0.37;
        return ((i + step) & 1) ? v : -v;
    }
    case EB_JUMPS: {
        const double lvl = (step % 3 == 0) ? 0.0 : (step % 3 == 1 ? 1e5 : -7e4);
        return lvl * (1.0 + eps) + (double)(i % 7) * eps * 0.9;
    }
    case EB_SPECIAL: {
        const uint32_t roll = tu_rng_below(rng, 8);
        if (roll == 0) {
            return NAN;
        }
        if (roll == 1) {
            return (i & 1) ? INFINITY : -INFINITY;
        }
        return 2.0 * tu_rng_unit(rng) - 1.0;
    }
    case EB_TIES: {
        const double k = (double)((int)tu_rng_below(rng, 2001) - 1000);
        return (k + 0.5) * (2.0 * eps);
    }
    case EB_ROUNDING: {
        /* |x| such that one ulp of the output type is 0.6 .. 4 eps, and
         * off-level by a random amount */
        const double ulp_over_eps = 0.6 + 3.4 * tu_rng_unit(rng);
        const int mant = f64 ? 52 : 23;
        const double mag = ldexp(1.0, ilogb(ulp_over_eps * eps) + mant);
        const double v = mag * (1.0 + tu_rng_unit(rng)) + eps * (tu_rng_unit(rng) - 0.5);
        return tu_rng_below(rng, 2) ? v : -v;
    }
    case EB_MIXED:
    case EB_NKINDS: break;
    }
    return eb_value((eb_kind)tu_rng_below(rng, EB_MIXED), rng, dt, eps, i, step);
}

static void eb_fill(uint8_t *x, ngl_dtype dt, eb_kind kind, double eps, uint64_t step,
                    uint64_t seed)
{
    tu_rng rng;
    tu_rng_seed(&rng, seed * 1000003u + step);
    for (uint64_t i = 0; i < EB_N; i++) {
        const double v = eb_value(kind, &rng, dt, eps, i, step);
        if (dt == NGL_DTYPE_F64) {
            memcpy(x + 8 * i, &v, 8);
        } else {
            const float f = (float)v;
            memcpy(x + 4 * i, &f, 4);
        }
    }
    if (kind == EB_SPECIAL || kind == EB_MIXED) {
        /* NaN payloads, signalling and negative, must come back as sent */
        if (dt == NGL_DTYPE_F64) {
            const uint64_t nans[] = {0x7ff8000000000001ull, 0xfff4000000000abcull,
                                     0x7ff0000000000001ull};
            for (int k = 0; k < 3; k++) {
                memcpy(x + 8 * (size_t)(17 * k + 3), &nans[k], 8);
            }
        } else {
            const uint32_t nans[] = {0x7fc00001u, 0xffa0abcdu, 0x7f800001u};
            for (int k = 0; k < 3; k++) {
                memcpy(x + 4 * (size_t)(17 * k + 3), &nans[k], 4);
            }
        }
    }
}

/* |y - x| > eps, decided exactly: the rounded difference s and its
 * rounding error (TwoSum) give y - x = s + err; only s == +-eps needs err. */
static int eb_exceeds(double y, double x, double eps)
{
    const double s = y - x;
    const double bb = s - y;
    const double err = (y - (s - bb)) + (-x - bb);
    if (!(fabs(s) <= eps)) {
        return 1;
    }
    if (fabs(s) < eps) {
        return 0;
    }
    return s > 0.0 ? err > 0.0 : err < 0.0;
}

/* Check the bound; count the elements where the plain reconstruction
 * dtype(q * 2eps) with q = round(x / 2eps) (no prediction) would have
 * broken it, to show that the inputs do probe the escape path. */
static uint64_t eb_check(const uint8_t *x, const uint8_t *y, ngl_dtype dt, double eps, eb_kind kind,
                         ngl_predictor pred, uint64_t step)
{
    uint64_t naive_bad = 0;
    for (uint64_t i = 0; i < EB_N; i++) {
        if (!tu_elem_finite(x, dt, (size_t)i)) {
            if (tu_elem_bits(x, dt, (size_t)i) != tu_elem_bits(y, dt, (size_t)i)) {
                fail_msg("%s eps %g pred %d step %llu: non-finite element %llu changed",
                         eb_kind_names[kind], eps, (int)pred, (unsigned long long)step,
                         (unsigned long long)i);
            }
            continue;
        }
        const double xv = tu_elem_get(x, dt, (size_t)i);
        const double yv = tu_elem_get(y, dt, (size_t)i);
        if (eb_exceeds(yv, xv, eps)) {
            fail_msg(
                "%s (%s) eps %g pred %d step %llu: element %llu: |%.17g - %.17g| = %.17g > eps",
                eb_kind_names[kind], dt == NGL_DTYPE_F64 ? "f64" : "f32", eps, (int)pred,
                (unsigned long long)step, (unsigned long long)i, yv, xv, fabs(yv - xv));
        }
        const double q = nearbyint(xv / (2.0 * eps));
        if (fabs(q) <= 0x1p30) {
            double xo = q * (2.0 * eps);
            if (dt == NGL_DTYPE_F32) {
                xo = (double)(float)xo;
            }
            naive_bad += (uint64_t)eb_exceeds(xo, xv, eps);
        }
    }
    return naive_bad;
}

typedef struct eb_totals {
    uint64_t exceptions, naive_bad, frames;
} eb_totals;

static void eb_stream(eb_fixture *f, ngl_dtype dt, ngl_predictor pred, double eps, eb_kind kind,
                      eb_totals *tot)
{
    ngl_stream_config c;
    ngl_stream_config_init(&c);
    c.codec = NGL_CODEC_EPS;
    c.dtype = dt;
    c.predictor = pred;
    c.eps = eps;
    c.count = EB_N;
    c.block_size = 64;
    c.momentum_beta = 0.75f;
    tu_pair p;
    tu_pair_open(&p, &c);
    for (uint64_t step = 0; step < EB_STEPS; step++) {
        eb_fill(f->x, dt, kind, eps, step, (uint64_t)kind * 31 + (uint64_t)pred);
        memset(f->y, 0xEE, EB_N * 8);
        tu_pair_step(&p, f->x, f->y);
        tot->naive_bad += eb_check(f->x, f->y, dt, eps, kind, pred, step);
        tot->frames++;
    }
    ngl_encoder_stats st;
    ngl_encoder_get_stats(p.enc, &st);
    tot->exceptions += st.exceptions;
    tu_pair_close(&p);
}

static const double eb_eps[] = {1e-12, 1e-9, 1e-6, 1e-3, 0.1, 1.0, 1e3};

static void eb_all(eb_fixture *f, ngl_dtype dt)
{
    for (int kind = 0; kind < EB_NKINDS; kind++) {
        eb_totals tot = {0, 0, 0};
        for (int pred = NGL_PRED_NONE; pred <= NGL_PRED_LINEAR; pred++) {
            for (size_t e = 0; e < sizeof eb_eps / sizeof eb_eps[0]; e++) {
                eb_stream(f, dt, (ngl_predictor)pred, eb_eps[e], (eb_kind)kind, &tot);
            }
        }
        print_message("%s %-11s: %llu frames, %llu exceptions, %llu elements where plain "
                      "rounding would break eps\n",
                      dt == NGL_DTYPE_F64 ? "f64" : "f32", eb_kind_names[kind],
                      (unsigned long long)tot.frames, (unsigned long long)tot.exceptions,
                      (unsigned long long)tot.naive_bad);
        if (kind == EB_HUGE || kind == EB_SPECIAL) {
            assert_true(tot.exceptions > 0);
        }
        if ((kind == EB_ROUNDING && dt == NGL_DTYPE_F32) || kind == EB_TIES) {
            /* the inputs really sit where rounding breaks the bound: the
             * f32 output rounding, or (f64, where the output is not
             * rounded again) p + q*2eps at an exact tie. In f64 the
             * "rounding" inputs need |q| > 2^30 and go out as exceptions. */
            assert_true(tot.naive_bad > 1000);
        }
    }
}

static void test_eps_bound_f32_adversarial(void **state)
{
    eb_all(*state, NGL_DTYPE_F32);
}

static void test_eps_bound_f64_adversarial(void **state)
{
    eb_all(*state, NGL_DTYPE_F64);
}

/* Random streams with random eps per stream (log-uniform 1e-12 .. 1e3). */
static void test_eps_bound_random_eps(void **state)
{
    eb_fixture *f = *state;
    tu_rng rng;
    tu_rng_seed(&rng, 2024);
    for (int k = 0; k < 24; k++) {
        const double eps = pow(10.0, -12.0 + 15.0 * tu_rng_unit(&rng));
        eb_totals tot = {0, 0, 0};
        eb_stream(f, k & 1 ? NGL_DTYPE_F64 : NGL_DTYPE_F32, (ngl_predictor)(k % 3), eps,
                  (eb_kind)(k % EB_NKINDS), &tot);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eps_bound_f32_adversarial),
        cmocka_unit_test(test_eps_bound_f64_adversarial),
        cmocka_unit_test(test_eps_bound_random_eps),
    };
    return cmocka_run_group_tests_name("eps_bound", tests, eb_setup, eb_teardown);
}
