/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU decoder validates frames on the host with its own copy of core's
 * checks (gpu_decoder.c). This test holds the two to the same verdict: for
 * thousands of corrupted frames (bit flips with and without a fixed CRC,
 * field edits, truncations, wrong lengths, wrong step/stream/config) the
 * GPU decoder returns exactly the status ngl_decoder_decode() returns, and
 * when both accept a frame they write the same output and state.
 */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "ngl_cuda.h"
#include "ngl_gpu_dev.h"
#include "ngl_stream.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

typedef struct rcase {
    ngl_codec codec;
    ngl_dtype dtype;
    ngl_predictor pred;
    double topk, mask;
    uint32_t block;
    uint64_t count;
} rcase;

typedef struct rig {
    ngl_stream_config c;
    ngl_decoder *cd;
    ngl_cuda_decoder *gd;
    uint8_t *oc, *og;
    void *dout;
    size_t nbytes;
    uint64_t checked, accepted;
} rig;

static void fill_input(const rcase *rc, uint8_t *x, int step)
{
    const size_t ds = ngl_dtype_size(rc->dtype);
    for (size_t i = 0; i < rc->count; i++) {
        float f = (float)((int)((i * 7u + (size_t)step * 3u) % 23u) - 11) * 0.37f;
        if (i % 97u == 5u) {
            uint32_t nan = 0x7fc00001u;
            memcpy(&f, &nan, 4);
        }
        if (ds == 4) {
            memcpy(x + i * 4, &f, 4);
        } else {
            uint16_t h = rc->dtype == NGL_DTYPE_F16 ? ngl_f32_to_f16(f) : ngl_f32_to_bf16(f);
            memcpy(x + i * 2, &h, 2);
        }
    }
}

/* Decode @p f on both sides from a fresh state; statuses must agree, and
 * accepted frames must decode to the same bits. */
static void check_frame(rig *r, const uint8_t *f, size_t len, const char *what)
{
    ngl_decoder_reset(r->cd);
    assert_int_equal(ngl_cuda_decoder_reset(r->gd), NGL_OK);
    memset(r->oc, 0x5a, r->nbytes);
    memset(r->og, 0x5a, r->nbytes);
    assert_int_equal(ngl_gpu_memcpy_async(r->dout, r->og, r->nbytes, NULL), 0);
    assert_int_equal(ngl_gpu_stream_sync(NULL), 0);
    ngl_status sc = ngl_decoder_decode(r->cd, f, len, r->oc, 0);
    ngl_status sg = ngl_cuda_decode(r->gd, f, len, r->dout, 0, NULL);
    r->checked++;
    if (sc != sg) {
        fail_msg("%s: cpu %s, gpu %s (codec %d topk %g mask %g count %llu)", what,
                 ngl_status_str(sc), ngl_status_str(sg), (int)r->c.codec, r->c.topk_fraction,
                 r->c.mask_fraction, (unsigned long long)r->c.count);
    }
    if (sc != NGL_OK) {
        assert_int_equal(ngl_cuda_decoder_step(r->gd), 0);
        return;
    }
    r->accepted++;
    assert_int_equal(ngl_gpu_memcpy_async(r->og, r->dout, r->nbytes, NULL), 0);
    assert_int_equal(ngl_gpu_stream_sync(NULL), 0);
    assert_memory_equal(r->oc, r->og, r->nbytes);
    assert_true(ngl_decoder_state_hash(r->cd) == ngl_cuda_decoder_state_hash(r->gd));
}

static void reseal(uint8_t *f, size_t len)
{
    ngl_wr_u32(f + NGL_HDR_PAYLOAD_LEN, (uint32_t)(len - NGL_FRAME_HEADER_SIZE));
    ngl_wire_seal(f, len);
}

static void run_rcase(const rcase *rc)
{
    rig r;
    memset(&r, 0, sizeof r);
    ngl_stream_config_init(&r.c);
    r.c.codec = rc->codec;
    r.c.dtype = rc->dtype;
    r.c.predictor = rc->pred;
    r.c.topk_fraction = rc->topk;
    r.c.mask_fraction = rc->mask;
    r.c.block_size = rc->block;
    r.c.count = rc->count;
    r.c.seed = 99;
    r.c.stream_id = 7;
    const size_t cap = ngl_encode_bound(&r.c);
    r.nbytes = rc->count * ngl_dtype_size(rc->dtype);
    ngl_encoder *ce = NULL;
    assert_int_equal(ngl_encoder_create(&r.c, &ce), NGL_OK);
    assert_int_equal(ngl_decoder_create(&r.c, &r.cd), NGL_OK);
    assert_int_equal(ngl_cuda_decoder_create(&r.c, &r.gd), NGL_OK);
    uint8_t *x = malloc(r.nbytes + 16), *f0 = malloc(cap + 64), *f1 = malloc(cap + 64);
    uint8_t *m = malloc(cap + 64);
    r.oc = malloc(r.nbytes + 16);
    r.og = malloc(r.nbytes + 16);
    assert_non_null(x);
    assert_non_null(f0);
    assert_non_null(f1);
    assert_non_null(m);
    assert_non_null(r.oc);
    assert_non_null(r.og);
    assert_int_equal(ngl_gpu_malloc(&r.dout, r.nbytes + 64), 0);

    size_t l0 = 0, l1 = 0;
    fill_input(rc, x, 0);
    assert_int_equal(ngl_encoder_encode(ce, x, f0, cap, &l0), NGL_OK);
    fill_input(rc, x, 1);
    assert_int_equal(ngl_encoder_encode(ce, x, f1, cap, &l1), NGL_OK);

    check_frame(&r, f0, l0, "valid frame");
    check_frame(&r, f1, l1, "frame of step 1 at step 0");
    check_frame(&r, f0, l0 - 1, "short buffer");
    check_frame(&r, f0, NGL_FRAME_HEADER_SIZE - 1, "short header");

    const size_t body_len = l0 - NGL_FRAME_HEADER_SIZE;
    for (int it = 0; it < 600; it++) {
        memcpy(m, f0, l0);
        size_t len = l0;
        const unsigned kind = rnd() % 6u;
        char what[64];
        snprintf(what, sizeof what, "mutation %d kind %u", it, kind);
        if (kind == 0) {
            /* header bit, CRC left as is */
            size_t at = rnd() % NGL_FRAME_HEADER_SIZE;
            m[at] ^= (uint8_t)(1u << (rnd() % 8u));
        } else if (kind == 1 && body_len > 0) {
            size_t at = NGL_FRAME_HEADER_SIZE + rnd() % body_len;
            m[at] ^= (uint8_t)(1u << (rnd() % 8u));
            reseal(m, len);
        } else if (kind == 2 && body_len > 0) {
            size_t at = NGL_FRAME_HEADER_SIZE + rnd() % body_len;
            m[at] = (uint8_t)rnd();
            reseal(m, len);
        } else if (kind == 3) {
            /* body shorter or longer, header and CRC consistent */
            size_t d = 1u + rnd() % 9u;
            if ((rnd() & 1u) && body_len >= d) {
                len -= d;
            } else {
                for (size_t i = 0; i < d; i++) {
                    m[len + i] = (uint8_t)rnd();
                }
                len += d;
            }
            reseal(m, len);
        } else if (kind == 4) {
            /* a preamble field: n_exc, beta, k, index bytes, index format */
            static const size_t fields[] = {0, 4, 8, 12, 16, 17};
            size_t at = NGL_FRAME_HEADER_SIZE + fields[rnd() % 6u];
            if (at + 4 <= len) {
                uint32_t v = ngl_rd_u32(m + at);
                static const int32_t deltas[] = {1, -1, 2, 0x100, -0x100};
                v += (uint32_t)deltas[rnd() % 5u];
                ngl_wr_u32(m + at, v);
                reseal(m, len);
            }
        } else {
            /* header field with a fixed CRC: flags, block, step, count */
            static const size_t fields[] = {8, 9, 10, 12, 16, 24, 32};
            size_t at = fields[rnd() % 7u];
            m[at] ^= (uint8_t)(1u << (rnd() % 8u));
            ngl_wire_seal(m, len);
        }
        check_frame(&r, m, len, what);
    }
    printf("  %llu frames checked, %llu accepted by both\n", (unsigned long long)r.checked,
           (unsigned long long)r.accepted);

    ngl_gpu_free(r.dout);
    free(r.og);
    free(r.oc);
    free(m);
    free(f1);
    free(f0);
    free(x);
    ngl_cuda_decoder_destroy(r.gd);
    ngl_decoder_destroy(r.cd);
    ngl_encoder_destroy(ce);
}

static void test_gpu_reject_same_verdicts(void **state)
{
    (void)state;
    static const rcase cases[] = {
        {NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, 0.0, 0.0, 64, 1000},
        {NGL_CODEC_INT4, NGL_DTYPE_F16, NGL_PRED_LINEAR, 0.0, 0.3, 24, 999},
        {NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, 0.05, 0.0, 64, 1000},
        {NGL_CODEC_INT4, NGL_DTYPE_BF16, NGL_PRED_MOMENTUM, 0.6, 0.25, 32, 777},
        {NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_NONE, 0.01, 0.5, 8, 501},
        {NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, 0.0, 0.0, 256, 0},
        {NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_NONE, 1.0, 0.0, 8, 13},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_rcase(&cases[i]);
    }
}

/* A decoder configured differently rejects a frame the same way. */
static void test_gpu_reject_config_mismatch(void **state)
{
    (void)state;
    ngl_stream_config a;
    ngl_stream_config_init(&a);
    a.count = 300;
    a.predictor = NGL_PRED_MOMENTUM;
    const size_t cap = ngl_encode_bound(&a);
    ngl_encoder *ce = NULL;
    assert_int_equal(ngl_encoder_create(&a, &ce), NGL_OK);
    float x[300];
    for (int i = 0; i < 300; i++) {
        x[i] = (float)i * 0.01f;
    }
    uint8_t *f = malloc(cap);
    assert_non_null(f);
    size_t len = 0;
    assert_int_equal(ngl_encoder_encode(ce, x, f, cap, &len), NGL_OK);
    for (int v = 0; v < 6; v++) {
        ngl_stream_config b = a;
        switch (v) {
        case 0: b.block_size = 128; break;
        case 1: b.stream_id = 9; break;
        case 2: b.count = 301; break;
        case 3: b.momentum_beta = 0.5f; break;
        case 4: b.topk_fraction = 0.5; break;
        default: b.codec = NGL_CODEC_INT4; break;
        }
        rig r;
        memset(&r, 0, sizeof r);
        r.c = b;
        r.nbytes = b.count * 4;
        assert_int_equal(ngl_decoder_create(&b, &r.cd), NGL_OK);
        assert_int_equal(ngl_cuda_decoder_create(&b, &r.gd), NGL_OK);
        r.oc = malloc(r.nbytes);
        r.og = malloc(r.nbytes);
        assert_non_null(r.oc);
        assert_non_null(r.og);
        assert_int_equal(ngl_gpu_malloc(&r.dout, r.nbytes), 0);
        check_frame(&r, f, len, "foreign config");
        ngl_gpu_free(r.dout);
        free(r.og);
        free(r.oc);
        ngl_cuda_decoder_destroy(r.gd);
        ngl_decoder_destroy(r.cd);
    }
    free(f);
    ngl_encoder_destroy(ce);
}

/* Configurations the GPU path does not serve are refused at create(). */
static void test_gpu_reject_unsupported_config(void **state)
{
    (void)state;
    ngl_stream_config c;
    ngl_stream_config_init(&c);
    c.count = 100;
    ngl_cuda_encoder *e = NULL;
    ngl_cuda_decoder *d = NULL;
    c.codec = NGL_CODEC_RAW;
    assert_int_equal(ngl_cuda_encoder_create(&c, &e), NGL_ERR_UNSUPPORTED);
    assert_null(e);
    c.codec = NGL_CODEC_INT8;
    c.lossless = NGL_LOSSLESS_RLE;
    assert_int_equal(ngl_cuda_decoder_create(&c, &d), NGL_ERR_UNSUPPORTED);
    assert_null(d);
    c.lossless = NGL_LOSSLESS_NONE;
    c.block_size = 12;
    assert_int_equal(ngl_cuda_encoder_create(&c, &e), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_cuda_encoder_create(NULL, &e), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_cuda_encoder_create(&c, NULL), NGL_ERR_INVALID_ARG);
    ngl_cuda_encoder_destroy(NULL);
    ngl_cuda_decoder_destroy(NULL);
}

/* Calls out of order or with bad arguments change nothing. */
static void test_gpu_reject_api_misuse(void **state)
{
    (void)state;
    ngl_stream_config c;
    ngl_stream_config_init(&c);
    c.count = 64;
    const size_t cap = ngl_encode_bound(&c);
    ngl_cuda_encoder *e = NULL;
    ngl_cuda_decoder *d = NULL;
    assert_int_equal(ngl_cuda_encoder_create(&c, &e), NGL_OK);
    assert_int_equal(ngl_cuda_decoder_create(&c, &d), NGL_OK);
    uint8_t *f = malloc(cap);
    float x[64];
    for (int i = 0; i < 64; i++) {
        x[i] = (float)i;
    }
    void *dx = NULL;
    assert_non_null(f);
    assert_int_equal(ngl_gpu_malloc(&dx, sizeof x), 0);
    assert_int_equal(ngl_gpu_memcpy_async(dx, x, sizeof x, NULL), 0);
    assert_int_equal(ngl_gpu_stream_sync(NULL), 0);
    size_t len = 0;
    assert_int_equal(ngl_cuda_encoder_finish(e, &len), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_cuda_encode(e, dx, f, cap - 1, &len, NULL), NGL_ERR_DST_TOO_SMALL);
    assert_int_equal(ngl_cuda_encode(e, NULL, f, cap, &len, NULL), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_cuda_encode(e, dx, NULL, cap, &len, NULL), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_cuda_encoder_step(e), 0);
    assert_int_equal(ngl_cuda_encoder_submit(e, dx, f, cap, NULL), NGL_OK);
    assert_int_equal(ngl_cuda_encoder_submit(e, dx, f, cap, NULL), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_cuda_encoder_finish(e, &len), NGL_OK);
    assert_int_equal(ngl_cuda_encoder_step(e), 1);
    assert_int_equal(ngl_cuda_decoder_finish(d), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_cuda_decode(d, f, len, dx, 2u, NULL), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_cuda_decode(d, f, len, NULL, 0, NULL), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_cuda_decoder_step(d), 0);
    assert_int_equal(ngl_cuda_decode(d, f, len, dx, 0, NULL), NGL_OK);
    assert_int_equal(ngl_cuda_decode(d, f, len, dx, 0, NULL), NGL_ERR_STEP_MISMATCH);
    assert_true(ngl_cuda_decoder_state_hash(d) == ngl_cuda_encoder_state_hash(e));
    assert_int_equal(ngl_cuda_encoder_reset(e), NGL_OK);
    assert_int_equal(ngl_cuda_decoder_reset(d), NGL_OK);
    assert_int_equal(ngl_cuda_encoder_step(e), 0);
    assert_int_equal(ngl_cuda_encoder_cuda_error(e), 0);
    assert_int_equal(ngl_cuda_decoder_cuda_error(d), 0);
    ngl_gpu_free(dx);
    free(f);
    ngl_cuda_decoder_destroy(d);
    ngl_cuda_encoder_destroy(e);
}

/* poll() completes exactly the frames finish() completes, and decodes the
 * same bits, without ever blocking: dense with exceptions (a second copy
 * phase), Top-K with varint and bitmap indices, on a non-blocking stream
 * with create_on(). Polls are bounded; each must eventually say done. */
static void test_gpu_reject_poll(void **state)
{
    (void)state;
    static const struct {
        ngl_codec codec;
        double topk;
        uint64_t count;
    } pc[] = {
        {NGL_CODEC_INT8, 0.0, 4099},
        {NGL_CODEC_INT4, 0.0, 70001},
        {NGL_CODEC_INT8, 0.01, 65536},
        {NGL_CODEC_INT8, 0.5, 1021},
    };
    ngl_cuda_stream q = NULL;
    assert_int_equal(ngl_cuda_stream_create(&q), NGL_OK);
    for (size_t t = 0; t < sizeof pc / sizeof pc[0]; t++) {
        ngl_stream_config c;
        ngl_stream_config_init(&c);
        c.codec = pc[t].codec;
        c.topk_fraction = pc[t].topk;
        c.count = pc[t].count;
        c.error_feedback = 1;
        const size_t n = (size_t)c.count, cap = ngl_encode_bound(&c);
        float *x = malloc(n * sizeof(float));
        float *oc = malloc(n * sizeof(float)), *og = malloc(n * sizeof(float));
        uint8_t *fc = malloc(cap), *fg = NULL;
        void *dx = NULL, *dout = NULL;
        assert_non_null(x);
        assert_non_null(oc);
        assert_non_null(og);
        assert_non_null(fc);
        assert_int_equal(ngl_cuda_host_alloc((void **)&fg, cap), NGL_OK);
        assert_int_equal(ngl_gpu_malloc(&dx, n * sizeof(float)), 0);
        assert_int_equal(ngl_gpu_malloc(&dout, n * sizeof(float)), 0);
        ngl_encoder *ce = NULL;
        ngl_decoder *cd = NULL;
        ngl_cuda_encoder *ge = NULL;
        ngl_cuda_decoder *gd = NULL;
        assert_int_equal(ngl_encoder_create(&c, &ce), NGL_OK);
        assert_int_equal(ngl_decoder_create(&c, &cd), NGL_OK);
        assert_int_equal(ngl_cuda_encoder_create_on(&c, q, &ge), NGL_OK);
        assert_int_equal(ngl_cuda_decoder_create_on(&c, q, &gd), NGL_OK);
        int done = 0;
        size_t lg = 0, lc = 0;
        assert_int_equal(ngl_cuda_encoder_poll(ge, &done, &lg), NGL_ERR_INVALID_ARG);
        assert_int_equal(ngl_cuda_decoder_poll(gd, &done), NGL_ERR_INVALID_ARG);
        for (int step = 0; step < 3; step++) {
            for (size_t i = 0; i < n; i++) {
                x[i] = (float)(rnd() % 20001) * 1e-4f - 1.0f;
            }
            x[(size_t)step * 7 % n] = step == 1 ? (float)INFINITY : (float)NAN;
            assert_int_equal(ngl_encoder_encode(ce, x, fc, cap, &lc), NGL_OK);
            assert_int_equal(ngl_cuda_memcpy_async(dx, x, n * sizeof(float), q), NGL_OK);
            assert_int_equal(ngl_cuda_encoder_submit(ge, dx, fg, cap, q), NGL_OK);
            int polls = 0;
            for (done = 0; !done; polls++) {
                assert_true(polls < 1000000);
                assert_int_equal(ngl_cuda_encoder_poll(ge, &done, &lg), NGL_OK);
            }
            assert_int_equal(lg, lc);
            assert_memory_equal(fg, fc, lc);
            assert_int_equal(ngl_decoder_decode(cd, fc, lc, oc, 0), NGL_OK);
            assert_int_equal(ngl_cuda_decoder_submit(gd, fg, lg, dout, 0, q), NGL_OK);
            for (done = 0, polls = 0; !done; polls++) {
                assert_true(polls < 1000000);
                assert_int_equal(ngl_cuda_decoder_poll(gd, &done), NGL_OK);
            }
            assert_int_equal(ngl_cuda_memcpy_async(og, dout, n * sizeof(float), q), NGL_OK);
            assert_int_equal(ngl_gpu_stream_sync(q), 0);
            assert_memory_equal(og, oc, n * sizeof(float));
        }
        ngl_cuda_decoder_destroy(gd);
        ngl_cuda_encoder_destroy(ge);
        ngl_decoder_destroy(cd);
        ngl_encoder_destroy(ce);
        ngl_gpu_free(dout);
        ngl_gpu_free(dx);
        ngl_cuda_host_free(fg);
        free(fc);
        free(og);
        free(oc);
        free(x);
    }
    /* Events: a fresh event counts as complete; a recorded one completes. */
    ngl_cuda_event ev = NULL;
    int done = 0;
    assert_int_equal(ngl_cuda_event_create(&ev), NGL_OK);
    assert_int_equal(ngl_cuda_event_query(ev, &done), NGL_OK);
    assert_int_equal(done, 1);
    assert_int_equal(ngl_cuda_event_record(ev, q), NGL_OK);
    for (int polls = 0, d = 0; !d; polls++) {
        assert_true(polls < 1000000);
        assert_int_equal(ngl_cuda_event_query(ev, &d), NGL_OK);
    }
    assert_int_equal(ngl_cuda_event_query(NULL, &done), NGL_ERR_INVALID_ARG);
    ngl_cuda_event_destroy(ev);
    ngl_cuda_stream_destroy(q);
}

#if defined(NGL_TEST_CUDA)
/* Under AddressSanitizer: the CUDA driver maps memory where ASan keeps its
 * shadow gap, so a GPU run needs the gap unprotected. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "protect_shadow_gap=0";
}
#endif

int main(void)
{
    if (ngl_cuda_device_count() <= 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpu_reject_same_verdicts),
        cmocka_unit_test(test_gpu_reject_config_mismatch),
        cmocka_unit_test(test_gpu_reject_unsupported_config),
        cmocka_unit_test(test_gpu_reject_api_misuse),
        cmocka_unit_test(test_gpu_reject_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
