/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_api.c -- the contracts written in nangila.h: destroy(NULL) is a
 * no-op, NULL and invalid arguments give NGL_ERR_INVALID_ARG and change
 * nothing, a destination below ngl_encode_bound() gives
 * NGL_ERR_DST_TOO_SMALL and changes nothing, ngl_stream_config_check()
 * explains each rejection, NGL_DECODE_ACCUMULATE adds into the output (f32,
 * f64, f16, bf16), reset returns to step 0, stats count what happened, and
 * the small helpers (versions, status names, dtype sizes, ISA names,
 * logger) behave.
 */
#include "ngl_testutil.h"

#include "ngl_arith.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void api_cfg(ngl_stream_config *c, ngl_codec codec, ngl_dtype dt, uint64_t n)
{
    ngl_stream_config_init(c);
    c->codec = codec;
    c->dtype = dt;
    c->count = n;
    c->block_size = 64;
    c->eps = 1e-3;
    c->predictor = codec == NGL_CODEC_RAW ? NGL_PRED_NONE : NGL_PRED_MOMENTUM;
}

/* ---- fixture: one INT8 pair after two steps ------------------------------ */
typedef struct api_fixture {
    tu_pair p;
    float x[300], y[300];
} api_fixture;

static int api_setup(void **state)
{
    api_fixture *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return -1;
    }
    ngl_stream_config c;
    api_cfg(&c, NGL_CODEC_INT8, NGL_DTYPE_F32, 300);
    tu_pair_open(&f->p, &c);
    for (int s = 0; s < 2; s++) {
        tu_fill_signal(f->x, NGL_DTYPE_F32, 300, 1, (uint64_t)s, 1.0f);
        tu_pair_step(&f->p, f->x, f->y);
    }
    *state = f;
    return 0;
}

static int api_teardown(void **state)
{
    api_fixture *f = *state;
    tu_pair_close(&f->p);
    free(f);
    return 0;
}

static void test_api_destroy_null_is_noop(void **state)
{
    (void)state;
    ngl_encoder_destroy(NULL);
    ngl_decoder_destroy(NULL);
    ngl_encoder_reset(NULL);
    ngl_decoder_reset(NULL);
    ngl_stream_config_init(NULL);
    ngl_encoder_get_stats(NULL, NULL);
    assert_true(ngl_encoder_state_hash(NULL) == 0);
    assert_true(ngl_decoder_state_hash(NULL) == 0);
    assert_true(ngl_encoder_step(NULL) == 0);
    assert_true(ngl_decoder_step(NULL) == 0);
}

static void test_api_invalid_arguments(void **state)
{
    api_fixture *f = *state;
    ngl_stream_config c = f->p.cfg;
    ngl_encoder *e = (ngl_encoder *)(uintptr_t)1;
    ngl_decoder *d = (ngl_decoder *)(uintptr_t)1;
    assert_int_equal(ngl_encoder_create(NULL, &e), NGL_ERR_INVALID_ARG);
    assert_null(e);
    assert_int_equal(ngl_decoder_create(NULL, &d), NGL_ERR_INVALID_ARG);
    assert_null(d);
    assert_int_equal(ngl_encoder_create(&c, NULL), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_decoder_create(&c, NULL), NGL_ERR_INVALID_ARG);
    c.block_size = 12;
    e = (ngl_encoder *)(uintptr_t)1;
    assert_int_equal(ngl_encoder_create(&c, &e), NGL_ERR_INVALID_ARG);
    assert_null(e);
    assert_true(ngl_encode_bound(&c) == 0);
    assert_true(ngl_encode_bound(NULL) == 0);

    const uint64_t he = ngl_encoder_state_hash(f->p.enc), hd = ngl_decoder_state_hash(f->p.dec);
    size_t len = 12345;
    assert_int_equal(ngl_encoder_encode(NULL, f->x, f->p.frame, f->p.cap, &len),
                     NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_encoder_encode(f->p.enc, NULL, f->p.frame, f->p.cap, &len),
                     NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_encoder_encode(f->p.enc, f->x, NULL, f->p.cap, &len), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_encoder_encode(f->p.enc, f->x, f->p.frame, f->p.cap, NULL),
                     NGL_ERR_INVALID_ARG);
    assert_true(ngl_encoder_state_hash(f->p.enc) == he && ngl_encoder_step(f->p.enc) == 2);

    assert_int_equal(ngl_encoder_encode(f->p.enc, f->x, f->p.frame, f->p.cap, &len), NGL_OK);
    assert_int_equal(ngl_decoder_decode(NULL, f->p.frame, len, f->y, 0), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_decoder_decode(f->p.dec, NULL, len, f->y, 0), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_decoder_decode(f->p.dec, f->p.frame, len, NULL, 0), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_decoder_decode(f->p.dec, f->p.frame, len, f->y, 2u), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_decoder_decode(f->p.dec, f->p.frame, len, f->y, 0x80000000u),
                     NGL_ERR_INVALID_ARG);
    assert_true(ngl_decoder_state_hash(f->p.dec) == hd && ngl_decoder_step(f->p.dec) == 2);
    assert_int_equal(ngl_decoder_decode(f->p.dec, f->p.frame, len, f->y, 0), NGL_OK);
    assert_true(ngl_decoder_state_hash(f->p.dec) == ngl_encoder_state_hash(f->p.enc));

    assert_int_equal(ngl_encoder_set_block_mask(NULL, NULL), NGL_ERR_INVALID_ARG);
    ngl_frame_info fi;
    assert_int_not_equal(ngl_frame_inspect(NULL, 100, 1, &fi), NGL_OK);
    assert_int_equal(ngl_frame_inspect(f->p.frame, len, 1, NULL), NGL_OK);

    /* count 0: src and dst may be NULL */
    ngl_stream_config z;
    api_cfg(&z, NGL_CODEC_INT4, NGL_DTYPE_F32, 0);
    tu_pair p0;
    tu_pair_open(&p0, &z);
    assert_int_equal(ngl_encoder_encode(p0.enc, NULL, p0.frame, p0.cap, &len), NGL_OK);
    assert_int_equal(ngl_decoder_decode(p0.dec, p0.frame, len, NULL, 0), NGL_OK);
    tu_pair_close(&p0);
}

/* Too small a destination changes nothing: the next frames are exactly
 * those of a twin encoder that never saw the failed call. */
static void test_api_dst_too_small_leaves_state(void **state)
{
    (void)state;
    for (int codec = NGL_CODEC_RAW; codec <= NGL_CODEC_EPS; codec++) {
        ngl_stream_config c;
        api_cfg(&c, (ngl_codec)codec, NGL_DTYPE_F32, 500);
        c.mask_fraction = codec == NGL_CODEC_INT4 ? 0.25 : 0.0;
        tu_pair a, b;
        tu_pair_open(&a, &c);
        tu_pair_open(&b, &c);
        float x[500], y[500];
        uint8_t *sentinel = malloc(a.cap);
        assert_non_null(sentinel);
        for (uint64_t s = 0; s < 4; s++) {
            tu_fill_signal(x, NGL_DTYPE_F32, 500, 2, s, 1.0f);
            if (s == 2) {
                const uint64_t h = ngl_encoder_state_hash(a.enc);
                ngl_encoder_stats st0, st1;
                ngl_encoder_get_stats(a.enc, &st0);
                memset(a.frame, 0x6b, a.cap);
                memset(sentinel, 0x6b, a.cap);
                size_t len = 777;
                const size_t caps[] = {0, 1, NGL_FRAME_HEADER_SIZE, a.cap - 1};
                for (size_t k = 0; k < 4; k++) {
                    assert_int_equal(ngl_encoder_encode(a.enc, x, a.frame, caps[k], &len),
                                     NGL_ERR_DST_TOO_SMALL);
                }
                assert_true(ngl_encoder_state_hash(a.enc) == h);
                assert_true(ngl_encoder_step(a.enc) == 2);
                ngl_encoder_get_stats(a.enc, &st1);
                assert_memory_equal(&st0, &st1, sizeof st0);
                assert_memory_equal(a.frame, sentinel, a.cap); /* nothing written */
            }
            tu_pair_step(&a, x, y);
            tu_pair_step(&b, x, y);
            assert_int_equal(a.len, b.len);
            assert_memory_equal(a.frame, b.frame, a.len);
        }
        free(sentinel);
        tu_pair_close(&a);
        tu_pair_close(&b);
    }
}

static void test_api_config_check_messages(void **state)
{
    (void)state;
    ngl_stream_config base;
    ngl_stream_config_init(&base);
    base.count = 100;
    const char *why = "junk";
    assert_int_equal(ngl_stream_config_check(&base, &why), NGL_OK);
    assert_null(why);
    assert_int_equal(ngl_stream_config_check(&base, NULL), NGL_OK);
    assert_int_equal(ngl_stream_config_check(NULL, &why), NGL_ERR_INVALID_ARG);
    assert_non_null(why);

    /* each case edits one field of a valid configuration */
    static const struct {
        int id;
        const char *fragment;
    } cases[] = {
        {0, "codec"},
        {1, "dtype"},
        {2, "f64"},
        {3, "eps codec"},
        {4, "predictor"},
        {5, "raw codec"},
        {6, "lossless"},
        {7, "isa"},
        {8, "block_size"},
        {9, "block_size"},
        {10, "block_size"},
        {11, "momentum_beta"},
        {12, "momentum_beta"},
        {13, "error_feedback"},
        {14, "topk_fraction"},
        {15, "topk_fraction"},
        {16, "topk_fraction"},
        {17, "Top-K"},
        {18, "mask_fraction"},
        {19, "mask_fraction"},
        {20, "masks"},
        {21, "eps"},
        {22, "eps"},
        {23, "eps"},
        {24, "count"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ngl_stream_config c = base;
        switch (cases[k].id) {
        case 0: c.codec = (ngl_codec)9; break;
        case 1: c.dtype = (ngl_dtype)9; break;
        case 2: c.dtype = NGL_DTYPE_F64; break; /* INT8 */
        case 3:
            c.codec = NGL_CODEC_EPS;
            c.eps = 0.1;
            c.dtype = NGL_DTYPE_BF16;
            break;
        case 4: c.predictor = (ngl_predictor)7; break;
        case 5:
            c.codec = NGL_CODEC_RAW;
            c.predictor = NGL_PRED_LINEAR;
            break;
        case 6: c.lossless = (ngl_lossless)8; break;
        case 7: c.isa = (ngl_isa)8; break;
        case 8: c.block_size = 0; break;
        case 9: c.block_size = 12; break;
        case 10: c.block_size = NGL_BLOCK_MAX + 8; break;
        case 11:
            c.predictor = NGL_PRED_MOMENTUM;
            c.momentum_beta = 1.0f;
            break;
        case 12:
            c.predictor = NGL_PRED_MOMENTUM;
            c.momentum_beta = NAN;
            break;
        case 13: c.error_feedback = 2; break;
        case 14: c.topk_fraction = -0.1; break;
        case 15: c.topk_fraction = 1.5; break;
        case 16: c.topk_fraction = NAN; break;
        case 17:
            c.codec = NGL_CODEC_EPS;
            c.eps = 0.1;
            c.topk_fraction = 0.5;
            break;
        case 18: c.mask_fraction = 1.0; break;
        case 19: c.mask_fraction = -0.25; break;
        case 20:
            c.codec = NGL_CODEC_RAW;
            c.mask_fraction = 0.5;
            break;
        case 21:
            c.codec = NGL_CODEC_EPS;
            c.eps = 0.0;
            break;
        case 22:
            c.codec = NGL_CODEC_EPS;
            c.eps = INFINITY;
            break;
        case 23:
            c.codec = NGL_CODEC_EPS;
            c.eps = NAN;
            break;
        case 24: c.count = NGL_COUNT_MAX + 1; break;
        }
        why = NULL;
        assert_int_equal(ngl_stream_config_check(&c, &why), NGL_ERR_INVALID_ARG);
        if (why == NULL || strstr(why, cases[k].fragment) == NULL) {
            fail_msg("case %d: message '%s' does not mention '%s'", cases[k].id,
                     why ? why : "(null)", cases[k].fragment);
        }
        ngl_encoder *e = NULL;
        ngl_decoder *d = NULL;
        assert_int_equal(ngl_encoder_create(&c, &e), NGL_ERR_INVALID_ARG);
        assert_int_equal(ngl_decoder_create(&c, &d), NGL_ERR_INVALID_ARG);
        assert_true(ngl_encode_bound(&c) == 0);
    }
    /* what is valid at the edges */
    ngl_stream_config c = base;
    c.count = NGL_COUNT_MAX / 8;
    c.block_size = NGL_BLOCK_MAX;
    assert_int_equal(ngl_stream_config_check(&c, NULL), NGL_OK);
    c = base;
    c.topk_fraction = 1.0;
    c.mask_fraction = 0.99;
    c.block_size = NGL_BLOCK_MIN;
    assert_int_equal(ngl_stream_config_check(&c, NULL), NGL_OK);
    /* an ISA this CPU or build lacks is unsupported, not invalid */
    for (int isa = NGL_ISA_AVX2; isa <= NGL_ISA_AVX512; isa++) {
        c = base;
        c.isa = (ngl_isa)isa;
        assert_int_equal(ngl_stream_config_check(&c, &why),
                         ngl_isa_available((ngl_isa)isa) ? NGL_OK : NGL_ERR_UNSUPPORTED);
    }
}

/* ---- accumulate ---------------------------------------------------------- */

static void api_accumulate_case(ngl_codec codec, ngl_dtype dt)
{
    enum { N = 333 };
    ngl_stream_config c;
    api_cfg(&c, codec, dt, N);
    ngl_decoder *acc = NULL;
    tu_pair p;
    tu_pair_open(&p, &c);
    assert_int_equal(ngl_decoder_create(&c, &acc), NGL_OK);
    const size_t ds = ngl_dtype_size(dt);
    uint8_t x[N * 8], y[N * 8], w[N * 8], z[N * 8];
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    for (uint64_t s = 0; s < 4; s++) {
        tu_fill_signal(x, dt, N, 9, s, 1.0f);
        tu_elem_set(x, dt, 10, NAN);
        tu_elem_set(x, dt, 11, INFINITY);
        for (size_t i = 0; i < N; i++) {
            tu_elem_set(w, dt, i, (double)tu_rng_float(&rng, -2.0f, 2.0f));
        }
        tu_elem_set(w, dt, 12, 0.0);
        memcpy(z, w, N * ds);
        tu_pair_step(&p, x, y); /* y: the plain decode */
        assert_int_equal(ngl_decoder_decode(acc, p.frame, p.len, z, NGL_DECODE_ACCUMULATE), NGL_OK);
        assert_true(ngl_decoder_state_hash(acc) == ngl_decoder_state_hash(p.dec));
        for (size_t i = 0; i < N; i++) {
            const double yv = tu_elem_get(y, dt, i), wv = tu_elem_get(w, dt, i);
            const double zv = tu_elem_get(z, dt, i);
            if (i == 10) {
                assert_true(isnan(zv));
                continue;
            }
            if (i == 11) {
                assert_true(isinf(zv) && zv > 0);
                continue;
            }
            if (dt == NGL_DTYPE_F32 || dt == NGL_DTYPE_F64) {
                /* the sum in the output type: bit-exact */
                const double want = dt == NGL_DTYPE_F32 ? (double)((float)wv + (float)yv) : wv + yv;
                if (zv != want) {
                    fail_msg("codec %d dtype %d element %zu: accumulated %.17g, want %.17g + "
                             "%.17g",
                             codec, dt, i, zv, wv, yv);
                }
            } else {
                /* dst16 = rn(dst16 + xhat) with xhat the f32 reconstruction:
                 * y is xhat rounded once, so the two differ by at most the
                 * rounding of y and of the sum */
                const double tol = tu_ulp(dt, fabs(wv) + fabs(yv)) + tu_ulp(dt, yv);
                if (!(fabs(zv - (wv + yv)) <= tol)) {
                    fail_msg("codec %d dtype %d element %zu: accumulated %.9g, want %.9g + %.9g",
                             codec, dt, i, zv, wv, yv);
                }
                if (i == 12 && tu_elem_bits(z, dt, i) != tu_elem_bits(y, dt, i) &&
                    tu_elem_finite(y, dt, i)) {
                    /* 0 + xhat rounds exactly as the plain decode does
                     * (no saturation at these magnitudes) */
                    fail_msg("codec %d dtype %d: 0 + decoded != decoded", codec, dt);
                }
            }
        }
    }
    ngl_decoder_destroy(acc);
    tu_pair_close(&p);
}

static void test_api_decode_accumulate_adds(void **state)
{
    (void)state;
    api_accumulate_case(NGL_CODEC_RAW, NGL_DTYPE_F32);
    api_accumulate_case(NGL_CODEC_RAW, NGL_DTYPE_F64);
    api_accumulate_case(NGL_CODEC_RAW, NGL_DTYPE_F16);
    api_accumulate_case(NGL_CODEC_RAW, NGL_DTYPE_BF16);
    api_accumulate_case(NGL_CODEC_INT8, NGL_DTYPE_F32);
    api_accumulate_case(NGL_CODEC_INT8, NGL_DTYPE_F16);
    api_accumulate_case(NGL_CODEC_INT4, NGL_DTYPE_BF16);
    api_accumulate_case(NGL_CODEC_EPS, NGL_DTYPE_F32);
    api_accumulate_case(NGL_CODEC_EPS, NGL_DTYPE_F64);
}

/* ---- reset, stats, helpers ---------------------------------------------- */

static void test_api_reset_and_stats(void **state)
{
    api_fixture *f = *state;
    ngl_encoder_stats st;
    ngl_encoder_get_stats(f->p.enc, &st);
    assert_true(st.steps == 2);
    assert_true(st.bytes_in == 2 * 300 * 4);
    assert_true(st.bytes_out > 2 * NGL_FRAME_HEADER_SIZE);
    assert_true(st.exceptions == 0);

    /* reset both: the stream replays exactly as a fresh one */
    ngl_encoder_reset(f->p.enc);
    ngl_decoder_reset(f->p.dec);
    assert_true(ngl_encoder_step(f->p.enc) == 0 && ngl_decoder_step(f->p.dec) == 0);
    ngl_encoder_get_stats(f->p.enc, &st);
    assert_true(st.steps == 0 && st.bytes_out == 0);
    tu_pair fresh;
    tu_pair_open(&fresh, &f->p.cfg);
    assert_true(ngl_encoder_state_hash(fresh.enc) == ngl_encoder_state_hash(f->p.enc));
    uint64_t bytes = 0;
    for (uint64_t s = 0; s < 3; s++) {
        tu_fill_signal(f->x, NGL_DTYPE_F32, 300, 1, s, 1.0f);
        f->x[7] = NAN;
        f->x[8] = -INFINITY;
        tu_pair_step(&f->p, f->x, f->y);
        tu_pair_step(&fresh, f->x, f->y);
        assert_int_equal(f->p.len, fresh.len);
        assert_memory_equal(f->p.frame, fresh.frame, f->p.len);
        bytes += f->p.len;
    }
    ngl_encoder_get_stats(f->p.enc, &st);
    assert_true(st.steps == 3);
    assert_true(st.bytes_out == bytes);
    assert_true(st.exceptions == 6);
    assert_true(st.gated_blocks > 0); /* momentum on a smooth signal */
    tu_pair_close(&fresh);
}

static char g_log_last[256];
static void api_logger(void *user, ngl_log_level level, const char *msg)
{
    (void)level;
    *(int *)user += 1;
    snprintf(g_log_last, sizeof g_log_last, "%s", msg);
}

static void test_api_helpers(void **state)
{
    (void)state;
    assert_int_equal(ngl_version_number(), NGL_VERSION_NUMBER);
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", NGL_VERSION_MAJOR, NGL_VERSION_MINOR, NGL_VERSION_PATCH);
    assert_string_equal(ngl_version_string(), v);

    /* every status has its own name; unknown values still get a string */
    const char *names[64] = {0};
    int n = 0;
    for (int s = 0; s <= NGL_ERR_BACKEND_UNAVAILABLE; s++) {
        if (s > NGL_ERR_DEVICE && s < NGL_ERR_TRUNCATED) {
            continue;
        }
        const char *name = ngl_status_str((ngl_status)s);
        assert_non_null(name);
        assert_string_not_equal(name, "unknown status");
        for (int k = 0; k < n; k++) {
            assert_string_not_equal(name, names[k]);
        }
        names[n++] = name;
    }
    assert_string_equal(ngl_status_str((ngl_status)999), "unknown status");

    assert_int_equal(ngl_dtype_size(NGL_DTYPE_F32), 4);
    assert_int_equal(ngl_dtype_size(NGL_DTYPE_F16), 2);
    assert_int_equal(ngl_dtype_size(NGL_DTYPE_BF16), 2);
    assert_int_equal(ngl_dtype_size(NGL_DTYPE_F64), 8);
    assert_int_equal(ngl_dtype_size((ngl_dtype)9), 0);

    assert_string_equal(ngl_isa_name(NGL_ISA_AUTO), "auto");
    assert_string_equal(ngl_isa_name(NGL_ISA_REF), "ref");
    assert_string_equal(ngl_isa_name(NGL_ISA_AVX2), "avx2");
    assert_string_equal(ngl_isa_name(NGL_ISA_AVX512), "avx512");
    assert_string_equal(ngl_isa_name((ngl_isa)9), "unknown");
    assert_int_equal(ngl_isa_available(NGL_ISA_AUTO), 1);
    assert_int_equal(ngl_isa_available(NGL_ISA_REF), 1);
    assert_int_equal(ngl_isa_available((ngl_isa)9), 0);
    const ngl_isa best = ngl_isa_best();
    assert_int_equal(ngl_isa_available(best), 1);
    assert_true(best != NGL_ISA_AUTO);
    if (ngl_isa_available(NGL_ISA_AVX512)) {
        assert_int_equal(best, NGL_ISA_AVX512);
    }

    /* the logger receives core's messages at or below its level, and
     * nothing once removed */
    int calls = 0;
    ngl_set_logger(api_logger, &calls, NGL_LOG_DEBUG);
    ngl_stream_config c;
    ngl_stream_config_init(&c);
    c.block_size = 3;
    ngl_encoder *e = NULL;
    assert_int_equal(ngl_encoder_create(&c, &e), NGL_ERR_INVALID_ARG);
    assert_true(calls >= 1);
    assert_non_null(strstr(g_log_last, "block_size"));
    ngl_set_logger(api_logger, &calls, NGL_LOG_WARN); /* the rejection is debug */
    calls = 0;
    assert_int_equal(ngl_encoder_create(&c, &e), NGL_ERR_INVALID_ARG);
    assert_int_equal(calls, 0);
    ngl_set_logger(NULL, NULL, NGL_LOG_TRACE);
    assert_int_equal(ngl_encoder_create(&c, &e), NGL_ERR_INVALID_ARG);
    assert_int_equal(calls, 0);
}

/* The public dtype conversions are the codec's own (ngl_arith.h), element
 * for element, at awkward lengths; other dtypes and NULL buffers are refused. */
static void test_api_dtype_conversions(void **state)
{
    (void)state;
    enum { N = 253 };
    float x[N], back[N];
    uint16_t h[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)((i - 120) * 37) * 0.0123f;
    }
    x[0] = 1e30f; /* f16: infinity; bf16: finite */
    x[1] = -0.0f;
    x[2] = 65520.0f; /* rounds up to f16 infinity */
    const ngl_dtype half[] = {NGL_DTYPE_F16, NGL_DTYPE_BF16};
    for (int d = 0; d < 2; d++) {
        for (uint64_t n = 0; n <= N; n += (n < 3 ? 1 : 125)) {
            memset(h, 0xa5, sizeof h);
            assert_int_equal(ngl_dtype_from_f32(half[d], x, h, n), NGL_OK);
            assert_int_equal(ngl_dtype_to_f32(half[d], h, back, n), NGL_OK);
            for (uint64_t i = 0; i < n; i++) {
                const uint16_t want =
                    half[d] == NGL_DTYPE_F16 ? ngl_f32_to_f16(x[i]) : ngl_f32_to_bf16(x[i]);
                assert_int_equal(h[i], want);
                const float wf =
                    half[d] == NGL_DTYPE_F16 ? ngl_f16_to_f32(want) : ngl_bf16_to_f32(want);
                assert_memory_equal(&back[i], &wf, sizeof wf);
            }
            assert_int_equal(h[n < N ? n : N - 1] == 0xa5a5, n < N);
        }
    }
    assert_int_equal(ngl_dtype_from_f32(NGL_DTYPE_F32, x, back, N), NGL_OK);
    assert_memory_equal(back, x, sizeof x);
    assert_int_equal(ngl_dtype_to_f32(NGL_DTYPE_F64, x, back, 1), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_dtype_from_f32(NGL_DTYPE_F64, x, back, 1), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_dtype_to_f32(NGL_DTYPE_F16, NULL, back, 1), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_dtype_from_f32(NGL_DTYPE_F16, x, NULL, 1), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_dtype_to_f32(NGL_DTYPE_F16, NULL, NULL, 0), NGL_OK);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, api_setup, api_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_destroy_null_is_noop),
        T(test_api_invalid_arguments),
        cmocka_unit_test(test_api_dst_too_small_leaves_state),
        cmocka_unit_test(test_api_config_check_messages),
        cmocka_unit_test(test_api_decode_accumulate_adds),
        T(test_api_reset_and_stats),
        cmocka_unit_test(test_api_helpers),
        cmocka_unit_test(test_api_dtype_conversions),
    };
#undef T
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
