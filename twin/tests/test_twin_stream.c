/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_twin_stream.c -- the twin stream over an unreliable transport:
 * state hashes after 10^6 samples, random loss / duplication / reordering
 * with every emitted value checked and hashes compared after each resync,
 * late join, keyframe requests, end of stream, encoder restart, foreign
 * streams.
 */
#include "twin_testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

/* A recorded stream: messages, the samples each holds, the encoder's state
 * hash after each. */
typedef struct tape {
    uint32_t C;
    size_t batch, nmsg;
    float *data; /* nmsg * batch * C */
    uint8_t **msg;
    size_t *len;
    uint64_t *hash;
    int *key;
} tape;

typedef struct fixture {
    ngl_twin_encoder *enc;
    ngl_twin_decoder *dec;
    tape t;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (size_t m = 0; m < f->t.nmsg; m++) {
        free(f->t.msg[m]);
    }
    free(f->t.msg);
    free(f->t.len);
    free(f->t.hash);
    free(f->t.key);
    free(f->t.data);
    ngl_twin_encoder_destroy(f->enc);
    ngl_twin_decoder_destroy(f->dec);
    free(f);
    return 0;
}

static const ngl_twin_bound bound = {NGL_TWIN_EPS_ABS, 1e-3};

static void make_encoder(fixture *f, uint32_t C, size_t batch, uint32_t kf, uint32_t sid)
{
    ngl_twin_config cfg;
    ngl_twin_config_init(&cfg);
    cfg.channels = C;
    cfg.bound = bound;
    cfg.max_samples = (uint32_t)batch;
    cfg.keyframe_interval = kf;
    cfg.stream_id = sid;
    ngl_twin_encoder_destroy(f->enc);
    f->enc = NULL;
    assert_int_equal(ngl_twin_encoder_create(&cfg, &f->enc), NGL_OK);
    if (f->dec == NULL) {
        assert_int_equal(ngl_twin_decoder_create(NULL, &f->dec), NGL_OK);
    }
}

/* Record @p nmsg messages of a random-walk signal. */
static void record(fixture *f, uint32_t C, size_t batch, size_t nmsg, uint32_t kf)
{
    tape *t = &f->t;
    make_encoder(f, C, batch, kf, 77);
    t->C = C;
    t->batch = batch;
    t->nmsg = nmsg;
    t->data = malloc(nmsg * batch * C * sizeof(float));
    t->msg = calloc(nmsg, sizeof(*t->msg));
    t->len = calloc(nmsg, sizeof(*t->len));
    t->hash = calloc(nmsg, sizeof(*t->hash));
    t->key = calloc(nmsg, sizeof(*t->key));
    tt_fill(t->data, NGL_DTYPE_F32, TT_RANDOM_WALK, nmsg * batch, C, 3);
    const size_t cap = ngl_twin_encoder_bound(f->enc, batch);
    uint64_t rng = 17;
    for (size_t m = 0; m < nmsg; m++) {
        if (tt_rand(&rng) % 97 == 0) {
            assert_int_equal(ngl_twin_encoder_request_keyframe(f->enc), NGL_OK);
        }
        t->msg[m] = malloc(cap);
        assert_int_equal(ngl_twin_encoder_encode(f->enc, t->data + m * batch * C, batch, t->msg[m],
                                                 cap, &t->len[m]),
                         NGL_OK);
        t->hash[m] = ngl_twin_encoder_state_hash(f->enc);
        ngl_twin_header h;
        assert_int_equal(ngl_twin_frame_peek(t->msg[m], t->len[m], 1, &h), NGL_OK);
        assert_int_equal(h.seq, m);
        assert_int_equal(h.stream_id, 77);
        t->key[m] = h.type == NGL_TWIN_MSG_KEY;
    }
}

/* Deliver message @p m; check what the decoder says and every value it
 * writes. @return the info. */
static ngl_twin_info deliver(fixture *f, size_t m, float *out)
{
    tape *t = &f->t;
    ngl_twin_info info;
    const size_t cap = t->batch * t->C * sizeof(float);
    assert_int_equal(ngl_twin_decoder_decode(f->dec, t->msg[m], t->len[m], out, cap, &info),
                     NGL_OK);
    assert_int_equal(info.seq, m);
    if (info.nsamples != 0) {
        assert_int_equal(info.nsamples, t->batch);
        for (size_t i = 0; i < t->batch * t->C; i++) {
            if (!tt_value_ok(NGL_DTYPE_F32, t->data + m * t->batch * t->C, out, i, bound)) {
                fail_msg("message %zu value %zu: wrong value emitted", m, i);
            }
        }
        /* whatever was emitted, the decoder now has the encoder's state */
        assert_int_equal(ngl_twin_decoder_state_hash(f->dec), t->hash[m]);
    }
    return info;
}

/* 10^6 samples (8 channels x 125 000), no loss: hashes equal at the end and
 * at every keyframe on the way. */
static void test_twin_stream_hash_million_samples(void **state)
{
    fixture *f = *state;
    enum { C = 8, BATCH = 25, NMSG = 5000 }; /* 125 000 samples per channel */
    make_encoder(f, C, BATCH, 500, 1);
    float *x = malloc((size_t)BATCH * C * sizeof(float));
    float *out = malloc((size_t)BATCH * C * sizeof(float));
    const size_t cap = ngl_twin_encoder_bound(f->enc, BATCH);
    uint8_t *msg = malloc(cap);
    uint64_t rng = 5;
    double walk[C] = {0};
    size_t samples = 0;
    for (size_t m = 0; m < NMSG; m++) {
        for (size_t i = 0; i < (size_t)BATCH * C; i++) {
            walk[i % C] += tt_gauss(&rng) * 0.01;
            x[i] = (float)(walk[i % C] + sin((double)(samples + i / C) * 0.003));
        }
        size_t len;
        ngl_twin_info info;
        assert_int_equal(ngl_twin_encoder_encode(f->enc, x, BATCH, msg, cap, &len), NGL_OK);
        assert_int_equal(
            ngl_twin_decoder_decode(f->dec, msg, len, out, (size_t)BATCH * C * 4, &info), NGL_OK);
        assert_int_equal(info.nsamples, BATCH);
        for (size_t i = 0; i < (size_t)BATCH * C; i++) {
            assert_true(fabsf(out[i] - x[i]) <= 1e-3f);
        }
        if (info.flags & NGL_TWIN_INFO_KEYFRAME) {
            assert_int_equal(ngl_twin_encoder_state_hash(f->enc),
                             ngl_twin_decoder_state_hash(f->dec));
        }
        samples += BATCH;
    }
    assert_int_equal(samples * C, 1000000);
    assert_int_equal(ngl_twin_encoder_state_hash(f->enc), ngl_twin_decoder_state_hash(f->dec));
    ngl_twin_decoder_stats ds;
    ngl_twin_decoder_get_stats(f->dec, &ds);
    assert_int_equal(ds.samples, samples);
    assert_int_equal(ds.gaps, 0);
    assert_int_equal(ds.resyncs, 1); /* the first keyframe */
    free(msg);
    free(out);
    free(x);
}

/* Random loss, duplication and reordering: gaps reported, nothing wrong
 * emitted, resume at keyframes with equal hashes. */
static void test_twin_stream_random_loss_resyncs(void **state)
{
    fixture *f = *state;
    enum { C = 4, BATCH = 3, NMSG = 3000 };
    record(f, C, BATCH, NMSG, 40);
    float out[BATCH * C];
    uint64_t rng = 1234;
    size_t emitted = 0, gaps = 0, resyncs = 0, stale = 0, waiting = 0;
    size_t held = SIZE_MAX; /* a message delayed to be delivered late */
    int synced = 0;
    for (size_t m = 0; m < NMSG; m++) {
        uint64_t r = tt_rand(&rng) % 100;
        if (r < 8) {
            continue; /* lost */
        }
        if (r < 12 && held == SIZE_MAX && m >= 50) {
            held = m; /* delivered after a later one: reordered */
            continue;
        }
        ngl_twin_info info = deliver(f, m, out);
        if (info.flags & NGL_TWIN_INFO_GAP) {
            gaps++;
            assert_true(info.missing > 0);
        }
        if (info.flags & NGL_TWIN_INFO_RESYNC) {
            resyncs++;
            assert_true(f->t.key[m]);
        }
        if (info.flags & NGL_TWIN_INFO_WAITING) {
            waiting++;
            assert_int_equal(info.nsamples, 0);
        }
        /* a decoder in sync emits exactly the delivered in-order messages */
        if (synced && !(info.flags & NGL_TWIN_INFO_GAP)) {
            assert_int_equal(info.nsamples, BATCH);
        }
        synced = ngl_twin_decoder_synced(f->dec);
        emitted += info.nsamples;
        if (r < 15) {
            info = deliver(f, m, out); /* duplicate */
            assert_true(info.flags & NGL_TWIN_INFO_STALE);
            assert_int_equal(info.nsamples, 0);
            stale++;
        }
        if (held != SIZE_MAX && m > held + 1) {
            info = deliver(f, held, out); /* late */
            assert_true(info.flags & NGL_TWIN_INFO_STALE);
            assert_int_equal(info.nsamples, 0);
            stale++;
            held = SIZE_MAX;
        }
    }
    print_message("emitted %zu of %d samples, %zu gaps, %zu resyncs, %zu waiting, %zu stale\n",
                  emitted, NMSG * BATCH, gaps, resyncs, waiting, stale);
    assert_true(gaps > 50);
    assert_true(resyncs > 20);
    assert_true(emitted > NMSG * BATCH / 5);
    ngl_twin_decoder_stats ds;
    ngl_twin_decoder_get_stats(f->dec, &ds);
    assert_int_equal(ds.stale, stale);
    assert_int_equal(ds.rejected, 0);
}

/* Joining late: wait (no gap count, it is unknown), resync at the keyframe. */
static void test_twin_stream_late_join(void **state)
{
    fixture *f = *state;
    enum { C = 3, BATCH = 2, NMSG = 100 };
    record(f, C, BATCH, NMSG, 25);
    float out[BATCH * C];
    size_t m = 0;
    while (!f->t.key[m + 30]) {
        m++;
    }
    for (size_t k = 30; k < 30 + m; k++) {
        ngl_twin_info info = deliver(f, k, out);
        assert_true(info.flags & NGL_TWIN_INFO_WAITING);
        assert_int_equal(info.nsamples, 0);
        assert_int_equal(ngl_twin_decoder_state_hash(f->dec), 0);
    }
    ngl_twin_info info = deliver(f, 30 + m, out);
    assert_true(info.flags & NGL_TWIN_INFO_RESYNC);
    assert_int_equal(info.nsamples, BATCH);
    for (size_t k = 31 + m; k < NMSG; k++) {
        info = deliver(f, k, out);
        assert_int_equal(info.nsamples, BATCH);
        assert_int_equal(info.flags & (NGL_TWIN_INFO_GAP | NGL_TWIN_INFO_RESYNC), 0);
    }
}

/* request_keyframe: the next message is one, whatever the interval. */
static void test_twin_stream_keyframe_on_request(void **state)
{
    fixture *f = *state;
    make_encoder(f, 2, 1, 1000, 9);
    float x[2] = {1.0f, 2.0f};
    uint8_t buf[256];
    size_t len;
    ngl_twin_header h;
    for (int m = 0; m < 10; m++) {
        if (m == 4 || m == 7) {
            assert_int_equal(ngl_twin_encoder_request_keyframe(f->enc), NGL_OK);
            assert_int_equal(ngl_twin_encoder_request_keyframe(f->enc), NGL_OK);
        }
        assert_int_equal(ngl_twin_encoder_encode(f->enc, x, 1, buf, sizeof(buf), &len), NGL_OK);
        assert_int_equal(ngl_twin_frame_peek(buf, len, 1, &h), NGL_OK);
        const int want_key = m == 0 || m == 4 || m == 7;
        assert_int_equal(h.type, want_key ? NGL_TWIN_MSG_KEY : NGL_TWIN_MSG_DELTA);
        assert_int_equal(h.channels, want_key ? 2 : 0);
    }
    assert_int_equal(ngl_twin_encoder_request_keyframe(NULL), NGL_ERR_INVALID_ARG);
}

/* End of stream, then the stream continues with a keyframe; an encoder
 * restart (seq 0 again) resyncs the decoder. */
static void test_twin_stream_end_and_restart(void **state)
{
    fixture *f = *state;
    make_encoder(f, 2, 1, 1000, 9);
    float x[2] = {1.0f, 2.0f}, out[2];
    uint8_t buf[256];
    size_t len;
    ngl_twin_info info;
    for (int m = 0; m < 5; m++) {
        x[0] += 0.5f;
        assert_int_equal(ngl_twin_encoder_encode(f->enc, x, 1, buf, sizeof(buf), &len), NGL_OK);
        assert_int_equal(ngl_twin_decoder_decode(f->dec, buf, len, out, sizeof(out), &info),
                         NGL_OK);
        assert_int_equal(info.nsamples, 1);
    }
    assert_int_equal(ngl_twin_encoder_end_of_stream(f->enc, buf, sizeof(buf), &len), NGL_OK);
    assert_int_equal(ngl_twin_decoder_decode(f->dec, buf, len, NULL, 0, &info), NGL_OK);
    assert_int_equal(info.flags, NGL_TWIN_INFO_END);
    assert_int_equal(info.seq, 5);
    assert_false(ngl_twin_decoder_synced(f->dec));
    /* continues: a keyframe at seq 6, not a resync */
    assert_int_equal(ngl_twin_encoder_encode(f->enc, x, 1, buf, sizeof(buf), &len), NGL_OK);
    assert_int_equal(ngl_twin_decoder_decode(f->dec, buf, len, out, sizeof(out), &info), NGL_OK);
    assert_int_equal(info.flags, NGL_TWIN_INFO_KEYFRAME);
    assert_int_equal(info.seq, 6);
    assert_int_equal(ngl_twin_encoder_state_hash(f->enc), ngl_twin_decoder_state_hash(f->dec));
    /* restart: a new encoder for the same stream starts at seq 0 */
    make_encoder(f, 3, 1, 1000, 9);
    float y[3] = {4.0f, 5.0f, 6.0f}, out3[3];
    assert_int_equal(ngl_twin_encoder_encode(f->enc, y, 1, buf, sizeof(buf), &len), NGL_OK);
    assert_int_equal(ngl_twin_decoder_decode(f->dec, buf, len, out3, sizeof(out3), &info), NGL_OK);
    assert_int_equal(info.flags,
                     NGL_TWIN_INFO_KEYFRAME | NGL_TWIN_INFO_RESYNC | NGL_TWIN_INFO_RESTART);
    assert_int_equal(info.channels, 3);
    assert_int_equal(info.nsamples, 1);
    assert_int_equal(ngl_twin_encoder_state_hash(f->enc), ngl_twin_decoder_state_hash(f->dec));
    /* a delta duplicate of seq 0 is stale */
    assert_int_equal(ngl_twin_decoder_decode(f->dec, buf, len, out3, sizeof(out3), &info), NGL_OK);
    assert_int_equal(info.flags, NGL_TWIN_INFO_STALE | NGL_TWIN_INFO_KEYFRAME);
}

/* Another stream's messages are refused, state unchanged; with
 * match_stream_id the decoder never locks onto another. */
static void test_twin_stream_foreign_stream_refused(void **state)
{
    fixture *f = *state;
    make_encoder(f, 2, 1, 1000, 9);
    ngl_twin_config cfg;
    ngl_twin_config_init(&cfg);
    cfg.channels = 2;
    cfg.stream_id = 10;
    ngl_twin_encoder *other = NULL;
    assert_int_equal(ngl_twin_encoder_create(&cfg, &other), NGL_OK);
    float x[2] = {1.0f, 2.0f}, out[2];
    uint8_t buf[256], obuf[256];
    size_t len, olen;
    ngl_twin_info info;
    assert_int_equal(ngl_twin_encoder_encode(f->enc, x, 1, buf, sizeof(buf), &len), NGL_OK);
    assert_int_equal(ngl_twin_decoder_decode(f->dec, buf, len, out, sizeof(out), &info), NGL_OK);
    const uint64_t h = ngl_twin_decoder_state_hash(f->dec);
    assert_int_equal(ngl_twin_encoder_encode(other, x, 1, obuf, sizeof(obuf), &olen), NGL_OK);
    assert_int_equal(ngl_twin_decoder_decode(f->dec, obuf, olen, out, sizeof(out), &info),
                     NGL_ERR_STREAM_MISMATCH);
    assert_int_equal(ngl_twin_decoder_state_hash(f->dec), h);
    /* after reset the decoder follows whichever keyframe comes first */
    ngl_twin_decoder_reset(f->dec);
    assert_int_equal(ngl_twin_decoder_decode(f->dec, obuf, olen, out, sizeof(out), &info), NGL_OK);
    assert_int_equal(info.stream_id, 10);
    assert_int_equal(ngl_twin_decoder_state_hash(f->dec), ngl_twin_encoder_state_hash(other));
    /* a decoder bound to stream 9 */
    ngl_twin_decoder_opts o;
    ngl_twin_decoder_opts_init(&o);
    o.match_stream_id = 1;
    o.stream_id = 9;
    ngl_twin_decoder *d9 = NULL;
    assert_int_equal(ngl_twin_decoder_create(&o, &d9), NGL_OK);
    assert_int_equal(ngl_twin_decoder_decode(d9, obuf, olen, out, sizeof(out), &info),
                     NGL_ERR_STREAM_MISMATCH);
    assert_int_equal(ngl_twin_decoder_decode(d9, buf, len, out, sizeof(out), &info), NGL_OK);
    assert_int_equal(info.nsamples, 1);
    ngl_twin_decoder_destroy(d9);
    ngl_twin_encoder_destroy(other);
}

/* Too small an output buffer: nothing changes, the retry works. */
static void test_twin_stream_dst_too_small_retry(void **state)
{
    fixture *f = *state;
    enum { C = 5, BATCH = 4, NMSG = 6 };
    record(f, C, BATCH, NMSG, 100);
    float out[BATCH * C];
    ngl_twin_info info;
    for (size_t m = 0; m < NMSG; m++) {
        const uint64_t h = ngl_twin_decoder_state_hash(f->dec);
        assert_int_equal(
            ngl_twin_decoder_decode(f->dec, f->t.msg[m], f->t.len[m], out, sizeof(out) - 1, &info),
            NGL_ERR_DST_TOO_SMALL);
        assert_int_equal(info.nsamples, BATCH);
        assert_int_equal(ngl_twin_decoder_state_hash(f->dec), h);
        info = deliver(f, m, out);
        assert_int_equal(info.nsamples, BATCH);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_twin_stream_hash_million_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_stream_random_loss_resyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_stream_late_join, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_stream_keyframe_on_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_stream_end_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_stream_foreign_stream_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_twin_stream_dst_too_small_retry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
