/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_quant_stats.c -- statistical properties of the quantizers.
 *
 * - Stochastic rounding is unbiased: per sign and per position inside a
 *   quantization level (mid-level, just above a level, just below the next)
 *   the mean error over many steps and seeds is within 5 standard errors of
 *   zero, for INT8 and INT4. The same statistic, applied to the codec's own
 *   rounding noise shifted by 1/16 LSB, rejects: the test can fail.
 * - Error feedback is unbiased in time: the running sum of decoded values
 *   tracks the running sum of inputs; the difference is the current EF
 *   residual, which stays bounded (dense, Top-K and masked streams). Without
 *   EF a sparse stream drifts away: the check can fail.
 * - NaN/Inf/overflow bursts do not poison scales, predictor state or EF:
 *   the error level after the burst returns to that of a clean stream.
 */
#include "ngl_testutil.h"

#include "ngl_arith.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- unbiasedness of stochastic rounding ------------------------------ */

/* Position of a value inside its level, in units of the step. */
static const float sr_fracs[] = {0.5f, 0x1p-10f, 1.0f - 0x1p-10f, 0.25f, 0.875f};
#define SR_NFRAC (sizeof sr_fracs / sizeof sr_fracs[0])
#define SR_NCAT  (2 * SR_NFRAC) /* x sign */

typedef struct sr_acc {
    double sum[SR_NCAT], sum2[SR_NCAT];
    uint64_t n[SR_NCAT];
} sr_acc;

static void sr_add(sr_acc *a, unsigned cat, double err)
{
    a->sum[cat] += err;
    a->sum2[cat] += err * err;
    a->n[cat]++;
}

/* Largest |mean| / standard error over the categories. */
static double sr_max_z(const sr_acc *a, double *worst_mean)
{
    double zmax = 0.0;
    for (unsigned c = 0; c < SR_NCAT; c++) {
        assert_true(a->n[c] > 1000);
        const double n = (double)a->n[c];
        const double mean = a->sum[c] / n;
        const double var = a->sum2[c] / n - mean * mean;
        /* the error of a Bernoulli rounding has variance f(1-f): use the
         * larger of the sample and the theoretical value */
        const double f = sr_fracs[c % SR_NFRAC];
        const double se = sqrt(fmax(var, f * (1.0 - f)) / n);
        const double z = fabs(mean) / se;
        if (z > zmax) {
            zmax = z;
            *worst_mean = mean;
        }
    }
    return zmax;
}

static void sr_check_codec(ngl_codec codec)
{
    enum { N = 4096, B = 256, STEPS = 48, SEEDS = 2 };
    const int qmax = codec == NGL_CODEC_INT4 ? NGL_QMAX_INT4 : NGL_QMAX_INT8;
    /* scale = anchor / qmax is a power of two, so every test value and
     * every reconstruction is exact and the error is all rounding noise */
    const float step = codec == NGL_CODEC_INT4 ? 0x1p-4f : 0x1p-7f;
    const float anchor = (float)qmax * step;
    const int kmax = qmax - 2; /* stay clear of the clamp */
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t *cat = malloc(N);
    assert_true(x && y && cat);
    sr_acc codec_acc, biased_acc;
    memset(&codec_acc, 0, sizeof codec_acc);
    memset(&biased_acc, 0, sizeof biased_acc);

    for (uint64_t seed = 0; seed < SEEDS; seed++) {
        ngl_stream_config c;
        ngl_stream_config_init(&c);
        c.codec = codec;
        c.count = N;
        c.block_size = B;
        c.error_feedback = 0;
        c.seed = 0xabc0 + seed + 16u * (uint64_t)codec;
        c.stream_id = 5 + seed;
        tu_pair p;
        tu_pair_open(&p, &c);
        tu_rng rng;
        tu_rng_seed(&rng, 1000 + seed + 16u * (uint64_t)codec);
        for (uint64_t s = 0; s < STEPS; s++) {
            for (uint32_t i = 0; i < N; i++) {
                if (i % B == 0) {
                    x[i] = (i / B) & 1 ? -anchor : anchor; /* sets the block's scale */
                    cat[i] = 0xff;
                    continue;
                }
                const unsigned fi = tu_rng_below(&rng, SR_NFRAC);
                const unsigned neg = tu_rng_below(&rng, 2);
                const float k = (float)tu_rng_below(&rng, (uint32_t)kmax);
                const float v = (k + sr_fracs[fi]) * step;
                x[i] = neg ? -v : v;
                cat[i] = (uint8_t)(neg * SR_NFRAC + fi);
            }
            tu_pair_step(&p, x, y);
            const ngl_rng_key key = ngl_rng_key_make(c.seed, c.stream_id, s);
            for (uint32_t i = 0; i < N; i++) {
                if (cat[i] == 0xff) {
                    assert_true(y[i] == x[i]); /* the anchor is a level */
                    continue;
                }
                const double err = ((double)y[i] - (double)x[i]) / step;
                sr_add(&codec_acc, cat[i], err);
                /* The codec's rounding reproduced from the spec's noise
                 * u, then the same u shifted by 1/16: a quantizer biased
                 * by 1/16 LSB. */
                const float u = ngl_rng_uniform(key, i);
                const float inv = 1.0f / step;
                const int32_t q = ngl_sr_quantize(x[i], inv, u, qmax);
                assert_true((float)q * step == y[i]);
                const int32_t qb = ngl_sr_quantize(x[i], inv, u + 0.0625f, qmax);
                sr_add(&biased_acc, cat[i], ((double)((float)qb * step) - (double)x[i]) / step);
            }
        }
        tu_pair_close(&p);
    }
    double mean_ok = 0.0, mean_bad = 0.0;
    const double z_ok = sr_max_z(&codec_acc, &mean_ok);
    const double z_bad = sr_max_z(&biased_acc, &mean_bad);
    print_message("%s: largest |mean error| %.5f LSB at %.2f standard errors; "
                  "with a 1/16 LSB bias: %.2f standard errors\n",
                  codec == NGL_CODEC_INT4 ? "int4" : "int8", fabs(mean_ok), z_ok, z_bad);
    if (z_ok > 5.0) {
        fail_msg("stochastic rounding is biased: mean error %.5f LSB, %.2f standard errors",
                 mean_ok, z_ok);
    }
    /* every category of the biased quantizer must be caught */
    for (unsigned cc = 0; cc < SR_NCAT; cc++) {
        const double n = (double)biased_acc.n[cc];
        const double f = sr_fracs[cc % SR_NFRAC];
        const double z = fabs(biased_acc.sum[cc] / n) / sqrt(fmax(f * (1 - f), 0.0) / n + 1e-300);
        if (!(z > 5.0)) {
            fail_msg("a 1/16 LSB bias in category %u goes unnoticed (z %.2f)", cc, z);
        }
    }
    free(x);
    free(y);
    free(cat);
}

static void test_quant_int8_rounding_unbiased_per_sign(void **state)
{
    (void)state;
    sr_check_codec(NGL_CODEC_INT8);
}

static void test_quant_int4_rounding_unbiased_per_sign(void **state)
{
    (void)state;
    sr_check_codec(NGL_CODEC_INT4);
}

/* ---- error feedback is unbiased in time -------------------------------- */

typedef struct ef_run {
    double max_first;  /* max |sum x - sum y| over the first half of the run */
    double max_second; /* ... over the second half */
    double mid, final; /* max over the elements at the middle and at the end */
    double max_track;  /* max | (sum x - sum y) - e_tracked | */
} ef_run;

static ef_run ef_stream(ngl_codec codec, int ef, double topk, double mask, ngl_predictor pred,
                        int steps)
{
    enum { N = 512 };
    ngl_stream_config c;
    ngl_stream_config_init(&c);
    c.codec = codec;
    c.count = N;
    c.block_size = 64;
    c.error_feedback = ef;
    c.topk_fraction = topk;
    c.mask_fraction = mask;
    c.predictor = pred;
    c.seed = 17;
    tu_pair p;
    tu_model m;
    tu_pair_open(&p, &c);
    tu_model_init(&m, &c);
    float x[N], y[N];
    double sx[N], sy[N];
    memset(sx, 0, sizeof sx);
    memset(sy, 0, sizeof sy);
    tu_rng base;
    tu_rng_seed(&base, 21);
    float bias[N];
    for (uint32_t i = 0; i < N; i++) {
        bias[i] = tu_rng_float(&base, -1.0f, 1.0f);
    }
    tu_rng noise;
    tu_rng_seed(&noise, 22);
    ef_run out = {0.0, 0.0, 0.0, 0.0, 0.0};
    for (int s = 0; s < steps; s++) {
        for (uint32_t i = 0; i < N; i++) {
            x[i] = bias[i] + tu_rng_float(&noise, -0.5f, 0.5f);
        }
        tu_pair_step(&p, x, y);
        tu_model_step(&m, x, p.frame, p.len, y); /* tracks e exactly */
        double worst = 0.0;
        for (uint32_t i = 0; i < N; i++) {
            sx[i] += x[i];
            sy[i] += y[i];
            const double d = sx[i] - sy[i];
            worst = fmax(worst, fabs(d));
            if (ef) {
                out.max_track = fmax(out.max_track, fabs(d - (double)m.ef[i]));
            }
        }
        if (s < steps / 2) {
            out.max_first = fmax(out.max_first, worst);
        } else {
            out.max_second = fmax(out.max_second, worst);
        }
        if (s == steps / 2 - 1) {
            out.mid = worst;
        }
        out.final = worst;
    }
    tu_model_fini(&m);
    tu_pair_close(&p);
    return out;
}

static void test_quant_error_feedback_unbiased_in_time(void **state)
{
    (void)state;
    static const struct {
        ngl_codec codec;
        double topk, mask;
        ngl_predictor pred;
    } cases[] = {
        {NGL_CODEC_INT8, 0.0, 0.0, NGL_PRED_NONE},
        {NGL_CODEC_INT4, 0.0, 0.0, NGL_PRED_MOMENTUM},
        {NGL_CODEC_INT4, 0.0, 0.5, NGL_PRED_LINEAR},
        {NGL_CODEC_INT8, 0.05, 0.0, NGL_PRED_NONE},
        {NGL_CODEC_INT4, 0.1, 0.25, NGL_PRED_MOMENTUM},
    };
    enum { STEPS = 400 };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const ef_run r =
            ef_stream(cases[k].codec, 1, cases[k].topk, cases[k].mask, cases[k].pred, STEPS);
        print_message("case %zu: max |sum x - sum y| %.4g (first half) %.4g (second half), "
                      "max |(sum x - sum y) - e| %.3g\n",
                      k, r.max_first, r.max_second, r.max_track);
        /* the difference is the EF residual, up to the rounding of the
         * running sums (~ steps * 2^-24 * |x|) */
        assert_true(r.max_track < 1e-3);
        /* and it is bounded: no growth from the first half of the run to
         * the second (a lost share of the input would grow linearly) */
        if (!(r.max_second <= 2.0 * r.max_first)) {
            fail_msg("case %zu: |sum x - sum y| grows: %g then %g", k, r.max_first, r.max_second);
        }
        if (cases[k].topk == 0.0 && cases[k].mask == 0.0) {
            /* dense: e is one rounding step, max|t| / qmax */
            const double qmax = cases[k].codec == NGL_CODEC_INT4 ? 7.0 : 127.0;
            assert_true(r.max_second < 3.0 * 1.5 / qmax);
        } else {
            /* without EF the sparse stream loses its mass step after step:
             * the same statistic sees linear growth */
            const ef_run n =
                ef_stream(cases[k].codec, 0, cases[k].topk, cases[k].mask, NGL_PRED_NONE, STEPS);
            print_message("    without EF: %.4g at the middle, %.4g at the end\n", n.mid, n.final);
            if (!(n.final > 1.8 * n.mid && n.final > 2.0 * r.max_second)) {
                fail_msg("case %zu: the drift without EF (%g, %g) is not told apart", k, n.mid,
                         n.final);
            }
        }
    }
}

/* ---- NaN/Inf/overflow bursts ------------------------------------------ */

typedef struct burst_result {
    double rms_late; /* RMS error over the last steps */
    uint64_t exceptions;
} burst_result;

static burst_result burst_stream(const ngl_stream_config *c, int with_burst, int with_huge)
{
    enum { STEPS = 140, BURST0 = 20, BURST1 = 25, LATE0 = 120 };
    const uint64_t n = c->count;
    tu_pair p;
    tu_model m;
    tu_pair_open(&p, c);
    tu_model_init(&m, c);
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    assert_true(x && y);
    tu_rng rng;
    tu_rng_seed(&rng, 77);
    double se = 0.0;
    uint64_t cnt = 0;
    burst_result out = {0.0, 0};
    for (int s = 0; s < STEPS; s++) {
        tu_fill_signal(x, NGL_DTYPE_F32, (size_t)n, 31, (uint64_t)s, 1.0f);
        if (with_burst && s >= BURST0 && s < BURST1) {
            for (uint64_t i = 0; i < n; i++) {
                const uint32_t roll = tu_rng_below(&rng, 10);
                if (roll == 0) {
                    x[i] = NAN;
                } else if (roll == 1) {
                    x[i] = (i & 1) ? INFINITY : -INFINITY;
                }
            }
            /* a whole block of NaN, a whole block of +Inf */
            for (uint64_t i = 0; i < c->block_size && i < n; i++) {
                x[i] = NAN;
                if (c->block_size + i < n) {
                    x[c->block_size + i] = INFINITY;
                }
            }
            if (with_huge && s >= BURST1 - 3) {
                /* finite but at the edge of the range: t = x + e and
                 * x - p overflow */
                x[2 * c->block_size + 1] = s & 1 ? FLT_MAX : -FLT_MAX;
                x[2 * c->block_size + 2] = s & 1 ? -FLT_MAX : FLT_MAX;
                x[3 * c->block_size + 5] = 1e38f;
            }
        }
        tu_pair_step(&p, x, y);
        tu_model_step(&m, x, p.frame, p.len, y);
        tu_frame fr;
        tu_frame_parse_quant(p.frame, p.len, &fr);
        for (uint64_t g = 0; g < fr.nscales; g++) {
            assert_true(isfinite(ngl_bits_f32(ngl_rd_u32(fr.scales + 4 * g))));
        }
        out.exceptions += fr.n_exc;
        for (uint64_t i = 0; i < n; i++) {
            if (isfinite(x[i])) {
                if (!isfinite(y[i])) {
                    fail_msg("step %d: finite input %llu decoded to %g", s, (unsigned long long)i,
                             (double)y[i]);
                }
                if (s >= LATE0) {
                    const double d = (double)y[i] - (double)x[i];
                    se += d * d;
                    cnt++;
                }
            }
        }
    }
    out.rms_late = sqrt(se / (double)cnt);
    tu_model_fini(&m);
    tu_pair_close(&p);
    free(x);
    free(y);
    return out;
}

static void test_quant_nan_inf_burst_does_not_poison(void **state)
{
    (void)state;
    static const struct {
        ngl_codec codec;
        ngl_predictor pred;
        double topk, mask;
        int huge;
    } cases[] = {
        {NGL_CODEC_INT8, NGL_PRED_NONE, 0.0, 0.0, 1},
        {NGL_CODEC_INT8, NGL_PRED_MOMENTUM, 0.0, 0.0, 0},
        {NGL_CODEC_INT8, NGL_PRED_LINEAR, 0.0, 0.0, 1},
        {NGL_CODEC_INT4, NGL_PRED_LINEAR, 0.0, 0.25, 1},
        {NGL_CODEC_INT4, NGL_PRED_MOMENTUM, 0.1, 0.0, 0},
        {NGL_CODEC_INT8, NGL_PRED_NONE, 0.2, 0.0, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ngl_stream_config c;
        ngl_stream_config_init(&c);
        c.codec = cases[k].codec;
        c.predictor = cases[k].pred;
        c.topk_fraction = cases[k].topk;
        c.mask_fraction = cases[k].mask;
        c.count = 2048 + 17;
        c.block_size = 64;
        c.seed = 99;
        const burst_result clean = burst_stream(&c, 0, 0);
        const burst_result dirty = burst_stream(&c, 1, cases[k].huge);
        print_message("case %zu: late RMS error clean %.4g, after burst %.4g (%llu exceptions)\n",
                      k, clean.rms_late, dirty.rms_late, (unsigned long long)dirty.exceptions);
        assert_true(dirty.exceptions > 1000);
        if (!(dirty.rms_late <= 1.1 * clean.rms_late + 1e-7)) {
            fail_msg("case %zu: error level after the burst %g vs clean %g", k, dirty.rms_late,
                     clean.rms_late);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quant_int8_rounding_unbiased_per_sign),
        cmocka_unit_test(test_quant_int4_rounding_unbiased_per_sign),
        cmocka_unit_test(test_quant_error_feedback_unbiased_in_time),
        cmocka_unit_test(test_quant_nan_inf_burst_does_not_poison),
    };
    return cmocka_run_group_tests_name("quant_stats", tests, NULL, NULL);
}
