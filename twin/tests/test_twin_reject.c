/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_twin_reject.c -- corrupt, truncated and foreign payloads: each gets
 * its own status, no sample is emitted, and the decoder state is unchanged
 * (or, for coded data that passed the CRC but does not decode, dropped until
 * the next keyframe).
 */
#include "twin_testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

enum { C = 3, N = 2 };

typedef struct fixture {
    ngl_twin_encoder *enc;
    ngl_twin_decoder *dec;
    uint8_t key[512], delta[512], delta2[512], key2[512];
    size_t key_len, delta_len, delta2_len, key2_len;
    float out[N * C];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ngl_twin_config cfg;
    ngl_twin_config_init(&cfg);
    cfg.channels = C;
    cfg.max_samples = N;
    cfg.bound.eps = 1e-3;
    cfg.stream_id = 0xABCD;
    if (f == NULL || ngl_twin_encoder_create(&cfg, &f->enc) != NGL_OK ||
        ngl_twin_decoder_create(NULL, &f->dec) != NGL_OK) {
        return -1;
    }
    float x[N * C];
    for (int i = 0; i < N * C; i++) {
        x[i] = (float)i * 1.5f;
    }
    ngl_twin_encoder_encode(f->enc, x, N, f->key, sizeof(f->key), &f->key_len);
    x[0] += 1.0f;
    ngl_twin_encoder_encode(f->enc, x, N, f->delta, sizeof(f->delta), &f->delta_len);
    x[1] += 1.0f;
    ngl_twin_encoder_encode(f->enc, x, N, f->delta2, sizeof(f->delta2), &f->delta2_len);
    ngl_twin_encoder_request_keyframe(f->enc);
    ngl_twin_encoder_encode(f->enc, x, N, f->key2, sizeof(f->key2), &f->key2_len);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ngl_twin_encoder_destroy(f->enc);
    ngl_twin_decoder_destroy(f->dec);
    free(f);
    return 0;
}

static void put_crc(uint8_t *p, size_t n)
{
    uint32_t c = ngl_crc32c(0, p, n - 4);
    for (int i = 0; i < 4; i++) {
        p[n - 4 + i] = (uint8_t)(c >> (8 * i));
    }
}

/* Decode @p msg expecting @p want; no sample, state unchanged. */
static void expect_reject(fixture *f, const uint8_t *msg, size_t len, ngl_status want)
{
    const uint64_t h = ngl_twin_decoder_state_hash(f->dec);
    ngl_twin_info info;
    ngl_status st = ngl_twin_decoder_decode(f->dec, msg, len, f->out, sizeof(f->out), &info);
    if (st != want) {
        fail_msg("got %s, want %s", ngl_status_str(st), ngl_status_str(want));
    }
    assert_int_equal(info.nsamples, 0);
    assert_int_equal(ngl_twin_decoder_state_hash(f->dec), h);
}

static void test_twin_reject_foreign_payloads(void **state)
{
    fixture *f = *state;
    const char *json = "{\"rpm\": 3000}";
    expect_reject(f, (const uint8_t *)json, strlen(json), NGL_ERR_BAD_MAGIC);
    expect_reject(f, (const uint8_t *)"", 0, NGL_ERR_TRUNCATED);
    const uint8_t one = 0xF7, zeros[32] = {0};
    expect_reject(f, &one, 1, NGL_ERR_TRUNCATED);
    expect_reject(f, zeros, sizeof(zeros), NGL_ERR_BAD_MAGIC);
    /* a core Nangila frame is not a twin message either */
    ngl_twin_header h;
    assert_int_equal(ngl_twin_frame_peek(json, strlen(json), 0, &h), NGL_ERR_BAD_MAGIC);
    assert_int_equal(ngl_twin_frame_peek(NULL, 0, 0, &h), NGL_ERR_INVALID_ARG);
}

static void test_twin_reject_truncated(void **state)
{
    fixture *f = *state;
    for (size_t n = 2; n < f->key_len; n++) {
        expect_reject(f, f->key, n, NGL_ERR_TRUNCATED);
    }
    for (size_t n = 2; n < f->delta_len; n++) {
        expect_reject(f, f->delta, n, NGL_ERR_TRUNCATED);
    }
    uint8_t longer[600];
    memcpy(longer, f->key, f->key_len);
    longer[f->key_len] = 0;
    expect_reject(f, longer, f->key_len + 1, NGL_ERR_BAD_LENGTH);
}

/* Every single-bit flip is caught before anything changes. */
static void test_twin_reject_bit_flips(void **state)
{
    fixture *f = *state;
    ngl_twin_info info;
    assert_int_equal(
        ngl_twin_decoder_decode(f->dec, f->key, f->key_len, f->out, sizeof(f->out), &info), NGL_OK);
    uint8_t m[512];
    for (size_t bit = 0; bit < 8 * f->delta_len; bit++) {
        memcpy(m, f->delta, f->delta_len);
        m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        const uint64_t h = ngl_twin_decoder_state_hash(f->dec);
        ngl_status st =
            ngl_twin_decoder_decode(f->dec, m, f->delta_len, f->out, sizeof(f->out), &info);
        assert_int_not_equal(st, NGL_OK);
        assert_true(st == NGL_ERR_BAD_MAGIC || st == NGL_ERR_BAD_VERSION ||
                    st == NGL_ERR_BAD_CODEC || st == NGL_ERR_BAD_FLAGS || st == NGL_ERR_TRUNCATED ||
                    st == NGL_ERR_BAD_LENGTH || st == NGL_ERR_CRC_MISMATCH ||
                    st == NGL_ERR_STREAM_MISMATCH);
        assert_int_equal(ngl_twin_decoder_state_hash(f->dec), h);
    }
    /* the untouched message still decodes */
    assert_int_equal(
        ngl_twin_decoder_decode(f->dec, f->delta, f->delta_len, f->out, sizeof(f->out), &info),
        NGL_OK);
    assert_int_equal(info.nsamples, N);
}

/* Header fields with the CRC made right: each its own status. Keyframe
 * layout here: 0 magic, 1 version/type, 2 length, 3-5 stream id (0xABCD),
 * 6 seq, 7 nsamples, 8 channels, 9 dtype, 10 layout, 11 mode, 12-19 eps,
 * 20 divisors flag, then the coded section. */
static void test_twin_reject_bad_fields(void **state)
{
    fixture *f = *state;
    assert_true(f->key_len < 128);
    uint8_t m[512];
    const size_t n = f->key_len;
#define PATCH(off, val, want)                                                                      \
    do {                                                                                           \
        memcpy(m, f->key, n);                                                                      \
        m[off] = (uint8_t)(val);                                                                   \
        put_crc(m, n);                                                                             \
        expect_reject(f, m, n, want);                                                              \
    } while (0)
    PATCH(1, 0x31, NGL_ERR_BAD_VERSION);
    PATCH(1, 0x20, NGL_ERR_BAD_CODEC);
    PATCH(1, 0x24, NGL_ERR_BAD_CODEC);
    PATCH(7, 0, NGL_ERR_COUNT_MISMATCH);
    PATCH(8, 0, NGL_ERR_COUNT_MISMATCH);
    PATCH(9, 2, NGL_ERR_BAD_DTYPE);
    PATCH(10, 2, NGL_ERR_BAD_FLAGS);
    PATCH(11, 2, NGL_ERR_BAD_SCALE);
    PATCH(19, 0xFF, NGL_ERR_BAD_SCALE); /* negative eps */
    PATCH(20, 2, NGL_ERR_BAD_FLAGS);    /* unknown divisor layout */
#undef PATCH
    /* parameters cut short (a consistent length and CRC): BAD_SECTION */
    memcpy(m, f->key, 11);
    m[2] = 15;
    put_crc(m, 15);
    expect_reject(f, m, 15, NGL_ERR_BAD_SECTION);
    /* a divisor on a channel that is not lossless: BAD_SCALE */
    memcpy(m, f->key, 20);
    m[20] = 1;
    m[21] = m[22] = m[23] = 10;
    memcpy(m + 24, f->key + 21, n - 21);
    m[2] = (uint8_t)(n + 3);
    put_crc(m, n + 3);
    expect_reject(f, m, n + 3, NGL_ERR_BAD_SCALE);
    /* a foreign stream id once the decoder follows 0xABCD */
    ngl_twin_info info;
    assert_int_equal(ngl_twin_decoder_decode(f->dec, f->key, n, f->out, sizeof(f->out), &info),
                     NGL_OK);
    memcpy(m, f->key, n);
    m[4] ^= 1;
    put_crc(m, n);
    expect_reject(f, m, n, NGL_ERR_STREAM_MISMATCH);
    /* more channels than the decoder allows */
    ngl_twin_decoder_opts o;
    ngl_twin_decoder_opts_init(&o);
    o.max_channels = 2;
    ngl_twin_decoder *small = NULL;
    assert_int_equal(ngl_twin_decoder_create(&o, &small), NGL_OK);
    assert_int_equal(ngl_twin_decoder_decode(small, f->key, n, f->out, sizeof(f->out), &info),
                     NGL_ERR_UNSUPPORTED);
    ngl_twin_decoder_destroy(small);
}

/* Coded data that passes the CRC but does not decode: BAD_CODE, nothing
 * emitted, the decoder waits for the next keyframe and resumes there. */
static void test_twin_reject_bad_code_waits_for_keyframe(void **state)
{
    fixture *f = *state;
    ngl_twin_info info;
    assert_int_equal(
        ngl_twin_decoder_decode(f->dec, f->key, f->key_len, f->out, sizeof(f->out), &info), NGL_OK);
    uint8_t m[512];
    int bad_code = 0;
    /* flip bits in the coded section of the delta (after its 8-byte header) */
    for (size_t pos = 8; pos + 4 < f->delta_len; pos++) {
        memcpy(m, f->delta, f->delta_len);
        m[pos] ^= 0x5A;
        put_crc(m, f->delta_len);
        ngl_twin_decoder *d = NULL;
        assert_int_equal(ngl_twin_decoder_create(NULL, &d), NGL_OK);
        assert_int_equal(
            ngl_twin_decoder_decode(d, f->key, f->key_len, f->out, sizeof(f->out), &info), NGL_OK);
        ngl_status st = ngl_twin_decoder_decode(d, m, f->delta_len, f->out, sizeof(f->out), &info);
        if (st == NGL_OK) {
            /* a flip the coder cannot see: values may differ, but the
             * stream stays consistent with itself (no crash, no state
             * beyond the message) -- only possible past the CRC */
            ngl_twin_decoder_destroy(d);
            continue;
        }
        assert_true(st == NGL_ERR_BAD_CODE || st == NGL_ERR_BAD_SECTION ||
                    st == NGL_ERR_BAD_LENGTH || st == NGL_ERR_COUNT_MISMATCH);
        assert_int_equal(info.nsamples, 0);
        if (st == NGL_ERR_BAD_CODE) {
            bad_code++;
            assert_false(ngl_twin_decoder_synced(d));
            /* the next delta finds the decoder waiting */
            assert_int_equal(
                ngl_twin_decoder_decode(d, f->delta2, f->delta2_len, f->out, sizeof(f->out), &info),
                NGL_OK);
            assert_true(info.flags & NGL_TWIN_INFO_WAITING);
            assert_int_equal(info.nsamples, 0);
            /* and the keyframe brings it back */
            assert_int_equal(
                ngl_twin_decoder_decode(d, f->key2, f->key2_len, f->out, sizeof(f->out), &info),
                NGL_OK);
            assert_true(info.flags & NGL_TWIN_INFO_RESYNC);
            assert_int_equal(info.nsamples, N);
            assert_int_equal(ngl_twin_decoder_state_hash(d), ngl_twin_encoder_state_hash(f->enc));
        }
        ngl_twin_decoder_destroy(d);
    }
    assert_true(bad_code > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_twin_reject_foreign_payloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_reject_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_reject_bit_flips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_reject_bad_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_reject_bad_code_waits_for_keyframe, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
