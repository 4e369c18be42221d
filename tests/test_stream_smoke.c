/* SPDX-License-Identifier: Apache-2.0 */
/* A first end-to-end check: every codec/predictor/ISA combination round-trips
 * a 20-step stream with NaN/Inf, keeps encoder and decoder state identical,
 * and produces the same bytes on every kernel variant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

/* cmocka.h needs the three headers above first. */
#include <cmocka.h>

#include "nangila.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t run_stream(ngl_codec codec, ngl_predictor pred, double topk, ngl_isa isa)
{
    ngl_stream_config c;
    ngl_stream_config_init(&c);
    c.codec = codec;
    c.predictor = pred;
    c.count = 10007;
    c.isa = isa;
    c.topk_fraction = topk;
    c.seed = 7;
    ngl_encoder *e = NULL;
    ngl_decoder *d = NULL;
    assert_int_equal(ngl_encoder_create(&c, &e), NGL_OK);
    assert_int_equal(ngl_decoder_create(&c, &d), NGL_OK);
    size_t cap = ngl_encode_bound(&c);
    uint8_t *buf = malloc(cap);
    float *x = malloc(4 * c.count), *y = malloc(4 * c.count);
    uint64_t h = 1469598103934665603ull;
    for (int step = 0; step < 20; step++) {
        for (size_t i = 0; i < c.count; i++) {
            x[i] =
                (float)(sin((double)i * 0.001 + step * 0.1) + 0.05 * cos((double)i * 7.3 + step));
        }
        if (step == 3) {
            x[5] = NAN;
            x[700] = INFINITY;
            x[701] = -INFINITY;
        }
        size_t len = 0;
        assert_int_equal(ngl_encoder_encode(e, x, buf, cap, &len), NGL_OK);
        for (size_t i = 0; i < len; i++) {
            h = (h ^ buf[i]) * 1099511628211ull;
        }
        assert_int_equal(ngl_decoder_decode(d, buf, len, y, 0), NGL_OK);
        for (size_t i = 0; i < c.count; i++) {
            if (!isfinite(x[i])) {
                assert_memory_equal(&x[i], &y[i], 4);
            } else {
                assert_true(isfinite(y[i]));
            }
        }
        assert_true(ngl_encoder_state_hash(e) == ngl_decoder_state_hash(d));
    }
    ngl_encoder_destroy(e);
    ngl_decoder_destroy(d);
    free(buf);
    free(x);
    free(y);
    return h;
}

static void test_stream_all_variants_agree(void **state)
{
    (void)state;
    for (int codec = NGL_CODEC_INT8; codec <= NGL_CODEC_INT4; codec++) {
        for (int pred = NGL_PRED_NONE; pred <= NGL_PRED_LINEAR; pred++) {
            for (int topk = 0; topk <= 1; topk++) {
                uint64_t ref = run_stream((ngl_codec)codec, (ngl_predictor)pred, topk ? 0.1 : 0.0,
                                          NGL_ISA_REF);
                for (int isa = NGL_ISA_AVX2; isa <= NGL_ISA_AVX512; isa++) {
                    if (!ngl_isa_available((ngl_isa)isa)) {
                        continue;
                    }
                    uint64_t h = run_stream((ngl_codec)codec, (ngl_predictor)pred, topk ? 0.1 : 0.0,
                                            (ngl_isa)isa);
                    assert_true(h == ref);
                }
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_all_variants_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
