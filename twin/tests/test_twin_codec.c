/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_twin_codec.c -- the error bound of the twin codec on every kind of
 * signal, dtype, bound mode and batch size; eps = 0 bit-exact; NaN, Inf and
 * -0.0 carried exactly; encoder and decoder state hashes equal throughout.
 */
#include "twin_testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

typedef struct rt_result {
    uint64_t bytes_in, bytes_out, exceptions, messages;
} rt_result;

/* Encode @p n samples of @p data in batches of @p batch, decode every
 * message, check every value against its bound and the state hashes.
 * @p bounds: per-channel bounds or NULL (then @p one for all). */
static void roundtrip(ngl_dtype dt, const void *data, uint32_t C, size_t n, size_t batch,
                      const ngl_twin_bound *bounds, ngl_twin_bound one, uint32_t kf, rt_result *res)
{
    ngl_twin_config cfg;
    ngl_twin_config_init(&cfg);
    cfg.channels = C;
    cfg.dtype = dt;
    cfg.bound = one;
    cfg.bounds = bounds;
    cfg.keyframe_interval = kf;
    cfg.max_samples = (uint32_t)batch;
    cfg.stream_id = 7;
    ngl_twin_encoder *enc = NULL;
    ngl_twin_decoder *dec = NULL;
    assert_int_equal(ngl_twin_encoder_create(&cfg, &enc), NGL_OK);
    assert_int_equal(ngl_twin_decoder_create(NULL, &dec), NGL_OK);
    const size_t vs = dt == NGL_DTYPE_F64 ? 8 : 4;
    const size_t cap = ngl_twin_encoder_bound(enc, batch);
    uint8_t *msg = malloc(cap);
    uint8_t *out = malloc(batch * C * vs);
    assert_non_null(msg);
    assert_non_null(out);
    size_t done = 0, m = 0;
    while (done < n) {
        size_t k = n - done < batch ? n - done : batch;
        size_t len = 0;
        const uint8_t *src = (const uint8_t *)data + done * C * vs;
        assert_int_equal(ngl_twin_encoder_encode(enc, src, k, msg, cap, &len), NGL_OK);
        assert_true(len <= cap);
        ngl_twin_info info;
        assert_int_equal(ngl_twin_decoder_decode(dec, msg, len, out, batch * C * vs, &info),
                         NGL_OK);
        assert_int_equal(info.nsamples, k);
        assert_int_equal(info.channels, C);
        assert_int_equal(info.dtype, dt);
        assert_int_equal(info.seq, m);
        assert_int_equal(info.flags & ~(NGL_TWIN_INFO_KEYFRAME | NGL_TWIN_INFO_RESYNC), 0);
        for (size_t i = 0; i < k * C; i++) {
            ngl_twin_bound b = bounds ? bounds[i % C] : one;
            if (!tt_value_ok(dt, src, out, i, b)) {
                fail_msg("message %zu value %zu (channel %zu) out of bound", m, i, i % C);
            }
        }
        if (m % 64 == 0 || done + k == n) {
            assert_int_equal(ngl_twin_encoder_state_hash(enc), ngl_twin_decoder_state_hash(dec));
        }
        done += k;
        m++;
    }
    ngl_twin_encoder_stats st;
    ngl_twin_encoder_get_stats(enc, &st);
    assert_int_equal(st.messages, m);
    assert_int_equal(st.samples, n);
    if (res != NULL) {
        res->bytes_in = st.bytes_in;
        res->bytes_out = st.bytes_out;
        res->exceptions = st.exceptions;
        res->messages = st.messages;
    }
    free(out);
    free(msg);
    ngl_twin_decoder_destroy(dec);
    ngl_twin_encoder_destroy(enc);
}

static const tt_signal all_signals[] = {TT_RANDOM_WALK, TT_SINE_NOISE, TT_STEPS,
                                        TT_CONSTANT,    TT_DENORMAL,   TT_HUGE,
                                        TT_SPECIAL,     TT_ROTOR,      TT_WHITE};
#define NSIG (sizeof(all_signals) / sizeof(all_signals[0]))

static void sweep(ngl_dtype dt, ngl_twin_eps_mode mode, const double *eps, size_t neps)
{
    const uint32_t C = 5;
    const size_t n = 1500;
    const size_t vs = dt == NGL_DTYPE_F64 ? 8 : 4;
    void *data = malloc(n * C * vs);
    for (size_t s = 0; s < NSIG; s++) {
        tt_fill(data, dt, all_signals[s], n, C, 1234 + s);
        for (size_t e = 0; e < neps; e++) {
            ngl_twin_bound b = {mode, eps[e]};
            roundtrip(dt, data, C, n, 1, NULL, b, 50, NULL);
            roundtrip(dt, data, C, n, 37, NULL, b, 7, NULL);
        }
    }
    free(data);
}

static const double abs_eps[] = {1e-6, 1e-3, 0.1, 10.0};
static const double rel_eps[] = {1e-6, 1e-3, 0.05, 0.5, 3.0};

static void test_twin_bound_abs_f32(void **state)
{
    (void)state;
    sweep(NGL_DTYPE_F32, NGL_TWIN_EPS_ABS, abs_eps, 4);
}

static void test_twin_bound_abs_f64(void **state)
{
    (void)state;
    sweep(NGL_DTYPE_F64, NGL_TWIN_EPS_ABS, abs_eps, 4);
}

static void test_twin_bound_rel_f32(void **state)
{
    (void)state;
    sweep(NGL_DTYPE_F32, NGL_TWIN_EPS_REL, rel_eps, 5);
}

static void test_twin_bound_rel_f64(void **state)
{
    (void)state;
    sweep(NGL_DTYPE_F64, NGL_TWIN_EPS_REL, rel_eps, 5);
}

static void test_twin_lossless_bit_exact(void **state)
{
    (void)state;
    static const double zero[] = {0.0};
    sweep(NGL_DTYPE_F32, NGL_TWIN_EPS_ABS, zero, 1);
    sweep(NGL_DTYPE_F64, NGL_TWIN_EPS_ABS, zero, 1);
    sweep(NGL_DTYPE_F64, NGL_TWIN_EPS_REL, zero, 1);
}

/* Raw bit patterns: every NaN payload, signalling NaNs, -0.0, Inf, the
 * smallest subnormals and the largest finite values, in every mode. */
static void test_twin_special_bits_exact(void **state)
{
    (void)state;
    enum { C = 3, N = 400 };
    uint64_t d64[N * C];
    uint32_t d32[N * C];
    uint64_t rng = 99;
    for (size_t i = 0; i < N * C; i++) {
        uint64_t r = tt_rand(&rng);
        switch (r % 8) {
        case 0: d64[i] = 0x7FF0000000000000ull | (r >> 13) | 1u; break; /* NaN payloads */
        case 1: d64[i] = 0xFFF0000000000000ull; break;                  /* -Inf */
        case 2: d64[i] = 0x8000000000000000ull; break;                  /* -0.0 */
        case 3: d64[i] = r % 5; break;                                  /* tiny subnormals */
        case 4: d64[i] = 0x7FEFFFFFFFFFFFFFull - r % 3; break;          /* near DBL_MAX */
        default: {
            double v = sin((double)i * 0.01);
            memcpy(&d64[i], &v, 8);
        }
        }
        switch (r % 7) {
        case 0: d32[i] = 0x7F800000u | (uint32_t)(r >> 41) | 1u; break;
        case 1: d32[i] = 0xFF800000u; break;
        case 2: d32[i] = 0x80000000u; break;
        case 3: d32[i] = (uint32_t)(r % 5); break;
        case 4: d32[i] = 0x7F7FFFFFu; break;
        default: {
            float v = (float)sin((double)i * 0.01);
            memcpy(&d32[i], &v, 4);
        }
        }
    }
    const ngl_twin_bound bs[] = {{NGL_TWIN_EPS_ABS, 0.0},
                                 {NGL_TWIN_EPS_ABS, 1e-3},
                                 {NGL_TWIN_EPS_REL, 1e-3},
                                 {NGL_TWIN_EPS_ABS, 1e300}};
    for (size_t k = 0; k < sizeof(bs) / sizeof(bs[0]); k++) {
        roundtrip(NGL_DTYPE_F64, d64, C, N, 1, NULL, bs[k], 10, NULL);
        roundtrip(NGL_DTYPE_F64, d64, C, N, 16, NULL, bs[k], 10, NULL);
        roundtrip(NGL_DTYPE_F32, d32, C, N, 1, NULL, bs[k], 10, NULL);
        roundtrip(NGL_DTYPE_F32, d32, C, N, 16, NULL, bs[k], 10, NULL);
    }
}

/* One stream, every channel its own mode. */
static void test_twin_per_channel_bounds(void **state)
{
    (void)state;
    enum { C = 6, N = 2000 };
    const ngl_twin_bound b[C] = {{NGL_TWIN_EPS_ABS, 1e-3}, {NGL_TWIN_EPS_REL, 1e-4},
                                 {NGL_TWIN_EPS_ABS, 0.0},  {NGL_TWIN_EPS_ABS, 0.5},
                                 {NGL_TWIN_EPS_REL, 0.0},  {NGL_TWIN_EPS_REL, 0.01}};
    static double d[N * C];
    tt_fill(d, NGL_DTYPE_F64, TT_ROTOR, N, C, 5);
    roundtrip(NGL_DTYPE_F64, d, C, N, 1, b, b[0], 100, NULL);
    roundtrip(NGL_DTYPE_F64, d, C, N, 64, b, b[0], 3, NULL);
    static float f[N * C];
    tt_fill(f, NGL_DTYPE_F32, TT_SINE_NOISE, N, C, 6);
    roundtrip(NGL_DTYPE_F32, f, C, N, 5, b, b[0], 1, NULL);
}

/* Smooth signals compress: the predictors and the coder do their work. */
static void test_twin_smooth_signals_compress(void **state)
{
    (void)state;
    enum { C = 16, N = 4000 };
    static float f[N * C];
    rt_result r;
    tt_fill(f, NGL_DTYPE_F32, TT_ROTOR, N, C, 11);
    ngl_twin_bound b = {NGL_TWIN_EPS_ABS, 1e-2};
    roundtrip(NGL_DTYPE_F32, f, C, N, 10, NULL, b, 100, &r);
    print_message("rotor f32 eps 1e-2, 10 samples/message: ratio %.2f\n",
                  (double)r.bytes_in / (double)r.bytes_out);
    assert_true(r.bytes_out * 3 < r.bytes_in);
    tt_fill(f, NGL_DTYPE_F32, TT_CONSTANT, N, C, 11);
    roundtrip(NGL_DTYPE_F32, f, C, N, 100, NULL, b, 100, &r);
    assert_true(r.bytes_out * 20 < r.bytes_in);
    assert_int_equal(r.exceptions, 0);
}

static void test_twin_config_check_rejects(void **state)
{
    (void)state;
    ngl_twin_config cfg;
    const char *why = NULL;
    ngl_twin_encoder *enc = (ngl_twin_encoder *)&cfg;
    ngl_twin_config_init(&cfg);
    assert_int_equal(ngl_twin_config_check(&cfg, &why), NGL_ERR_INVALID_ARG); /* channels 0 */
    assert_non_null(why);
    cfg.channels = 4;
    assert_int_equal(ngl_twin_config_check(&cfg, &why), NGL_OK);
    assert_null(why);
    cfg.dtype = NGL_DTYPE_F16;
    assert_int_equal(ngl_twin_config_check(&cfg, NULL), NGL_ERR_INVALID_ARG);
    cfg.dtype = NGL_DTYPE_F64;
    cfg.bound.eps = -1.0;
    assert_int_equal(ngl_twin_config_check(&cfg, NULL), NGL_ERR_INVALID_ARG);
    cfg.bound.eps = NAN;
    assert_int_equal(ngl_twin_config_check(&cfg, NULL), NGL_ERR_INVALID_ARG);
    cfg.bound.eps = 1e-3;
    cfg.keyframe_interval = 0;
    assert_int_equal(ngl_twin_config_check(&cfg, NULL), NGL_ERR_INVALID_ARG);
    cfg.keyframe_interval = 10;
    cfg.max_samples = NGL_TWIN_MAX_SAMPLES + 1;
    assert_int_equal(ngl_twin_config_check(&cfg, NULL), NGL_ERR_INVALID_ARG);
    cfg.max_samples = 8;
    ngl_twin_bound bad[4] = {{NGL_TWIN_EPS_ABS, 1}, {NGL_TWIN_EPS_REL, 1}, {7, 1}, {0, 1}};
    cfg.bounds = bad;
    assert_int_equal(ngl_twin_encoder_create(&cfg, &enc), NGL_ERR_INVALID_ARG);
    assert_null(enc);
    ngl_twin_encoder_destroy(NULL);
    ngl_twin_decoder_destroy(NULL);
}

/* Encoder arguments: bad ones change nothing. */
static void test_twin_encode_rejects_args(void **state)
{
    (void)state;
    ngl_twin_config cfg;
    ngl_twin_config_init(&cfg);
    cfg.channels = 3;
    cfg.max_samples = 4;
    ngl_twin_encoder *enc = NULL;
    assert_int_equal(ngl_twin_encoder_create(&cfg, &enc), NGL_OK);
    float x[5 * 3] = {0};
    uint8_t buf[512];
    size_t len = 0;
    const uint64_t h0 = ngl_twin_encoder_state_hash(enc);
    assert_int_equal(ngl_twin_encoder_encode(enc, x, 0, buf, sizeof(buf), &len),
                     NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_twin_encoder_encode(enc, x, 5, buf, sizeof(buf), &len),
                     NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_twin_encoder_encode(enc, NULL, 1, buf, sizeof(buf), &len),
                     NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_twin_encoder_encode(enc, x, 1, buf, 10, &len), NGL_ERR_DST_TOO_SMALL);
    assert_int_equal(ngl_twin_encoder_state_hash(enc), h0);
    assert_int_equal(ngl_twin_encoder_seq(enc), 0);
    assert_int_equal(ngl_twin_encoder_bound(enc, 5), 0);
    assert_true(ngl_twin_encoder_bound(enc, 4) <= sizeof(buf));
    assert_int_equal(ngl_twin_encoder_encode(enc, x, 4, buf, sizeof(buf), &len), NGL_OK);
    assert_int_equal(ngl_twin_encoder_seq(enc), 1);
    ngl_twin_encoder_destroy(enc);
}

/* Decimal data (two decimals, parsed from text) with runs of NaN, and
 * ADC-style data (k / 200), at eps = 0: bit-exact, coded as integers in
 * units of the keyframe's divisor (well under 2 bytes a value where the raw
 * patterns would take about 6), and a step change in the quantum mid-stream
 * (three decimals) still round-trips (those values go exact until the next
 * keyframe). */
static void test_twin_lossless_divisor(void **state)
{
    (void)state;
    const uint32_t C = 2;
    const size_t n = 3000;
    double *x = malloc(n * C * sizeof(double));
    float *xf = malloc(n * C * sizeof(float));
    assert_non_null(x);
    assert_non_null(xf);
    for (size_t i = 0; i < n; i++) {
        double a = 20.0 + 5.0 * sin(0.01 * (double)i) + 0.01 * (double)(i % 7);
        double b = (double)((int)(300.0 * cos(0.02 * (double)i)) + (int)(i % 5)) / 200.0;
        x[i * C] = (i / 40) % 9 == 3 ? NAN : round(a * 100.0) / 100.0;
        x[i * C + 1] = i > 2000 ? round(a * 1000.0) / 1000.0 : b;
        xf[i * C] = (float)x[i * C];
        xf[i * C + 1] = (float)x[i * C + 1];
    }
    const ngl_twin_bound exact = {NGL_TWIN_EPS_ABS, 0.0};
    rt_result r;
    roundtrip(NGL_DTYPE_F64, x, C, 2000, 16, NULL, exact, 20, &r);
    assert_true(r.bytes_out * 4 < r.bytes_in); /* < 2 bytes a value */
    roundtrip(NGL_DTYPE_F64, x, C, n, 1, NULL, exact, 50, NULL);
    roundtrip(NGL_DTYPE_F64, x, C, n, 64, NULL, exact, 3, NULL);
    roundtrip(NGL_DTYPE_F32, xf, C, n, 1, NULL, exact, 50, NULL);
    roundtrip(NGL_DTYPE_F32, xf, C, n, 64, NULL, exact, 3, NULL);
    free(xf);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_twin_bound_abs_f32),
        cmocka_unit_test(test_twin_bound_abs_f64),
        cmocka_unit_test(test_twin_bound_rel_f32),
        cmocka_unit_test(test_twin_bound_rel_f64),
        cmocka_unit_test(test_twin_lossless_bit_exact),
        cmocka_unit_test(test_twin_lossless_divisor),
        cmocka_unit_test(test_twin_special_bits_exact),
        cmocka_unit_test(test_twin_per_channel_bounds),
        cmocka_unit_test(test_twin_smooth_signals_compress),
        cmocka_unit_test(test_twin_config_check_rejects),
        cmocka_unit_test(test_twin_encode_rejects_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
