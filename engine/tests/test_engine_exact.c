/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_engine_exact.c -- exact reductions of every element type, and the
 * exact frames that carry them: values checked against hand-computed
 * results, every malformed frame rejected with its own status before the
 * destination changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "ngl_engine.h"

static void test_engine_exact_integers_wrap_and_order(void **state)
{
    (void)state;
    int8_t a8[4] = {100, -100, 5, -128}, b8[4] = {100, -100, -7, -1};
    ngl_engine_reduce(a8, b8, 4, NGL_ELEM_I8, NGL_REDOP_SUM);
    assert_int_equal(a8[0], -56); /* 200 wraps */
    assert_int_equal(a8[1], 56);
    assert_int_equal(a8[2], -2);
    assert_int_equal(a8[3], 127);
    uint32_t u[3] = {3, 0xffffffffu, 7}, v[3] = {5, 2, 7};
    ngl_engine_reduce(u, v, 3, NGL_ELEM_U32, NGL_REDOP_MAX);
    assert_int_equal(u[0], 5);
    assert_int_equal(u[1], 0xffffffffu);
    int64_t p[2] = {INT64_MAX, -3}, q[2] = {2, 4};
    ngl_engine_reduce(p, q, 2, NGL_ELEM_I64, NGL_REDOP_PROD);
    assert_true(p[0] == -2); /* wraps modulo 2^64 */
    assert_true(p[1] == -12);
    int32_t m[2] = {-5, 9}, n[2] = {3, -9};
    ngl_engine_reduce(m, n, 2, NGL_ELEM_I32, NGL_REDOP_MIN);
    assert_int_equal(m[0], -5);
    assert_int_equal(m[1], -9);
}

static void test_engine_exact_floats_keep_nan_and_round_per_type(void **state)
{
    (void)state;
    double d[2] = {1.0, NAN}, e[2] = {NAN, 2.0};
    ngl_engine_reduce(d, e, 2, NGL_ELEM_F64, NGL_REDOP_MAX);
    assert_true(isnan(d[0]) && isnan(d[1]));
    float f[2] = {-0.0f, 3.0f}, g[2] = {0.5f, INFINITY};
    ngl_engine_reduce(f, g, 2, NGL_ELEM_F32, NGL_REDOP_MIN);
    assert_true(f[0] == -0.0f);
    assert_true(f[1] == 3.0f);
    /* fp16: 65504 + 8 rounds to 65504 (below half an ulp), + 32 to inf */
    uint16_t h[3] = {0x7bff, 0x7bff, 0x3c00}, k[3] = {0x4800, 0x5000, 0x3c00};
    ngl_engine_reduce(h, k, 3, NGL_ELEM_F16, NGL_REDOP_SUM);
    assert_int_equal(h[0], 0x7bff);
    assert_int_equal(h[1], 0x7c00);
    assert_int_equal(h[2], 0x4000); /* 1 + 1 = 2 */
    /* bf16: 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even, so 1 */
    uint16_t bf[1] = {0x3f80}, bg[1] = {0x3b80};
    ngl_engine_reduce(bf, bg, 1, NGL_ELEM_BF16, NGL_REDOP_SUM);
    assert_int_equal(bf[0], 0x3f80);
    /* E4M3: 448 + 64 overflows to NaN (no infinity); 1 * 0.5 = 0.5;
     * the smallest subnormal 2^-9 survives */
    uint8_t e4[3] = {0x7e, 0x38, 0x01}, f4[3] = {0x60, 0x30, 0x00};
    ngl_engine_reduce(e4, f4, 3, NGL_ELEM_F8E4M3, NGL_REDOP_PROD);
    assert_int_equal(e4[1], 0x30); /* 1 * 0.5 */
    assert_int_equal(e4[2], 0x00); /* 2^-9 * 0 */
    uint8_t s4[1] = {0x7e}, t4[1] = {0x60};
    ngl_engine_reduce(s4, t4, 1, NGL_ELEM_F8E4M3, NGL_REDOP_SUM);
    assert_int_equal(s4[0] & 0x7f, 0x7f);
    /* E5M2: 57344 + 57344 is inf */
    uint8_t e5[1] = {0x7b}, f5[1] = {0x7b};
    ngl_engine_reduce(e5, f5, 1, NGL_ELEM_F8E5M2, NGL_REDOP_SUM);
    assert_int_equal(e5[0], 0x7c);
}

static ngl_cc_stream *make(int enc, uint64_t count, ngl_elem t, ngl_redop op, uint64_t sid)
{
    ngl_stream_config cfg;
    ngl_stream_config_init(&cfg);
    cfg.count = count;
    cfg.stream_id = sid;
    ngl_cc_stream *s = NULL;
    assert_int_equal(ngl_cc_exact_ops.create(&cfg, enc, NULL, ngl_exact_variant(t, op), &s),
                     NGL_OK);
    return s;
}

static void test_engine_exact_frames_reject_before_writing(void **state)
{
    (void)state;
    enum { N = 37 };
    int64_t src[N], acc[N], keep[N];
    for (int i = 0; i < N; i++) {
        src[i] = (int64_t)i * 1000003 - 17;
        acc[i] = keep[i] = -(int64_t)i;
    }
    ngl_cc_stream *enc = make(1, N, NGL_ELEM_I64, NGL_REDOP_SUM, 42);
    ngl_cc_stream *dec = make(0, N, NGL_ELEM_I64, NGL_REDOP_SUM, 42);
    const size_t cap = ngl_cc_exact_ops.frame_bound(N, ngl_exact_variant(NGL_ELEM_I64, 0));
    uint8_t *frame = malloc(cap), *bad = malloc(cap + 8);
    size_t len = 0;
    int done = 0;
    assert_int_equal(ngl_cc_exact_ops.encode(enc, src, frame, cap), NGL_OK);
    assert_int_equal(ngl_cc_exact_ops.poll(enc, &done, &len), NGL_OK);
    assert_int_equal(len, cap);

    struct {
        size_t at;
        uint8_t xor_;
        size_t len;
        ngl_status want;
    } cases[] = {
        {0, 0x01, 0, NGL_ERR_BAD_MAGIC},       {4, 0x02, 0, NGL_ERR_BAD_VERSION},
        {5, 0x01, 0, NGL_ERR_CONFIG_MISMATCH}, {7, 0x01, 0, NGL_ERR_BAD_FLAGS},
        {8, 0x01, 0, NGL_ERR_COUNT_MISMATCH},  {40, 0x80, 0, NGL_ERR_CRC_MISMATCH},
        {0, 0x00, 31, NGL_ERR_TRUNCATED},      {0, 0x00, 100, NGL_ERR_TRUNCATED},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(bad, frame, len);
        bad[cases[c].at] ^= cases[c].xor_;
        const size_t blen = cases[c].len ? cases[c].len : len;
        assert_int_equal(ngl_cc_exact_ops.decode(dec, bad, blen, acc, 1), cases[c].want);
        assert_memory_equal(acc, keep, sizeof acc);
    }
    memcpy(bad, frame, len);
    bad[len] = 0;
    assert_int_equal(ngl_cc_exact_ops.decode(dec, bad, len + 1, acc, 1), NGL_ERR_BAD_LENGTH);
    /* another stream's frame */
    ngl_cc_stream *other = make(0, N, NGL_ELEM_I64, NGL_REDOP_SUM, 43);
    assert_int_equal(ngl_cc_exact_ops.decode(other, frame, len, acc, 1), NGL_ERR_STREAM_MISMATCH);
    /* the good one: reduced, and the next frame of the same step is refused */
    assert_int_equal(ngl_cc_exact_ops.decode(dec, frame, len, acc, 1), NGL_OK);
    for (int i = 0; i < N; i++) {
        assert_true(acc[i] == keep[i] + src[i]);
    }
    assert_int_equal(ngl_cc_exact_ops.decode(dec, frame, len, acc, 1), NGL_ERR_STEP_MISMATCH);
    ngl_cc_exact_ops.destroy(enc);
    ngl_cc_exact_ops.destroy(dec);
    ngl_cc_exact_ops.destroy(other);
    free(frame);
    free(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_exact_integers_wrap_and_order),
        cmocka_unit_test(test_engine_exact_floats_keep_nan_and_round_per_type),
        cmocka_unit_test(test_engine_exact_frames_reject_before_writing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
