/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_testutil.h -- signals and round-trip checks shared by the twin tests
 * and the benchmark (static inline: each program uses what it needs).
 */
#ifndef NGL_TWIN_TESTUTIL_H
#define NGL_TWIN_TESTUTIL_H

#include "nangila_twin.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: reproducible pseudo-random numbers */
static inline uint64_t tt_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static inline double tt_unif(uint64_t *s)
{
    return (double)(tt_rand(s) >> 11) * 0x1p-53;
}

/* standard normal (Box-Muller) */
static inline double tt_gauss(uint64_t *s)
{
    double u = tt_unif(s), v = tt_unif(s);
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

typedef enum tt_signal {
    TT_RANDOM_WALK,
    TT_SINE_NOISE,
    TT_STEPS,
    TT_CONSTANT,
    TT_DENORMAL,
    TT_HUGE,
    TT_SPECIAL, /* NaN, +-Inf, -0.0 mixed into a sine */
    TT_ROTOR,   /* rotor-like: harmonics of a drifting speed, noise */
    TT_WHITE
} tt_signal;

/* Value @p t of channel @p j of signal @p kind (double; the caller narrows). */
static inline double tt_value(tt_signal kind, uint64_t *rng, double *state, size_t t, uint32_t j)
{
    const double tj = (double)t;
    switch (kind) {
    case TT_RANDOM_WALK: *state += tt_gauss(rng) * (0.01 + 0.01 * j); return *state;
    case TT_SINE_NOISE: return (1.0 + j) * sin(0.01 * tj * (1.0 + 0.1 * j)) + 0.001 * tt_gauss(rng);
    case TT_STEPS:
        if (tt_unif(rng) < 0.01) {
            *state = floor(tt_unif(rng) * 100.0) - 50.0;
        }
        return *state;
    case TT_CONSTANT: return 3.25 + j;
    case TT_DENORMAL: return ldexp(tt_unif(rng), -1060) * (tt_unif(rng) < 0.5 ? -1.0 : 1.0);
    case TT_HUGE: return ldexp(1.0 + tt_unif(rng), 100 + (int)(tt_rand(rng) % 800));
    case TT_SPECIAL: {
        uint64_t r = tt_rand(rng) % 16;
        if (r == 0) {
            return NAN;
        }
        if (r == 1) {
            return INFINITY;
        }
        if (r == 2) {
            return -INFINITY;
        }
        if (r == 3) {
            return -0.0;
        }
        return sin(0.02 * tj) * 10.0;
    }
    case TT_ROTOR: {
        /* speed drifts slowly; vibration = harmonics of the rotation + noise */
        double rpm = 3000.0 + 300.0 * sin(tj * 1e-4);
        double phase = 6.283185307179586 * rpm / 60.0 * tj * 1e-3;
        switch (j % 4) {
        case 0: return rpm + 0.5 * tt_gauss(rng);
        case 1: return 60.0 + 0.001 * tj * 1e-3 + 0.02 * tt_gauss(rng);
        case 2: return 12.0 + 2.0 * sin(phase) + 0.05 * tt_gauss(rng);
        default:
            return sin(phase * (1 + j % 3)) + 0.3 * sin(3.0 * phase + j) + 0.05 * tt_gauss(rng);
        }
    }
    case TT_WHITE: return tt_gauss(rng);
    }
    return 0.0;
}

/* Fill @p n samples of @p C channels (row-major) of dtype @p dt. */
static inline void tt_fill(void *buf, ngl_dtype dt, tt_signal kind, size_t n, uint32_t C,
                           uint64_t seed)
{
    uint64_t rng = seed;
    double *state = calloc(C, sizeof(double));
    for (size_t t = 0; t < n; t++) {
        for (uint32_t j = 0; j < C; j++) {
            double v = tt_value(kind, &rng, &state[j], t, j);
            if (dt == NGL_DTYPE_F64) {
                ((double *)buf)[t * C + j] = v;
            } else {
                ((float *)buf)[t * C + j] = (float)v;
            }
        }
    }
    free(state);
}

/* Is decoded value @p got (value index @p i) acceptable for @p want under @p b? */
static inline int tt_value_ok(ngl_dtype dt, const void *want, const void *got, size_t i,
                              ngl_twin_bound b)
{
    long double x, y;
    if (dt == NGL_DTYPE_F64) {
        double a = ((const double *)want)[i], c = ((const double *)got)[i];
        if (!isfinite(a) || b.eps == 0.0) {
            return memcmp(&a, &c, 8) == 0;
        }
        x = a;
        y = c;
    } else {
        float a = ((const float *)want)[i], c = ((const float *)got)[i];
        if (!isfinite(a) || b.eps == 0.0) {
            return memcmp(&a, &c, 4) == 0;
        }
        x = a;
        y = c;
    }
    if (!isfinite((double)y)) {
        return 0;
    }
    long double err = fabsl(y - x);
    return b.mode == NGL_TWIN_EPS_ABS ? err <= (long double)b.eps
                                      : err <= (long double)b.eps * fabsl(x);
}

#endif /* NGL_TWIN_TESTUTIL_H */
