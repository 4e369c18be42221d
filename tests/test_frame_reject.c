/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_frame_reject.c -- a decoder rejects every damaged frame, never
 * crashes, and a rejected frame changes nothing.
 *
 * For valid frames of every codec (RAW, INT8, INT4, EPS f32/f64), with and
 * without a lossless back end, Top-K in both index formats, masks and
 * exceptions:
 *   - every truncation (lengths 0 .. len-1) and every single-bit flip is
 *     rejected with a frame error; the decoder state hash and the output
 *     buffer (plain and NGL_DECODE_ACCUMULATE) stay as they were, and the
 *     intact frame still decodes afterwards;
 *   - every single-bit flip with the CRC recomputed (so the structural
 *     checks behind the CRC are reached) either decodes or is rejected
 *     without touching state or output (run under ASan/UBSan in CI).
 * Then the stream checks: another stream id, a replayed or skipped step,
 * another count, and every other configuration difference.
 */
#include "ngl_testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FR_HISTORY 3 /* frames decoded before the frame under test */

typedef struct fr_fixture {
    ngl_stream_config cfg;
    ngl_encoder *enc;
    ngl_decoder *dec;
    uint8_t *history[FR_HISTORY];
    size_t history_len[FR_HISTORY];
    uint8_t *frame, *work;
    size_t len, cap;
    uint8_t *dst, *dst_saved;
    size_t dst_bytes;
} fr_fixture;

static int fr_setup(void **state)
{
    fr_fixture *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return -1;
    }
    *state = f;
    return 0;
}

static void fr_close(fr_fixture *f)
{
    ngl_encoder_destroy(f->enc);
    ngl_decoder_destroy(f->dec);
    for (int k = 0; k < FR_HISTORY; k++) {
        free(f->history[k]);
    }
    free(f->frame);
    free(f->work);
    free(f->dst);
    free(f->dst_saved);
    memset(f, 0, sizeof *f);
}

static int fr_teardown(void **state)
{
    fr_close(*state);
    free(*state);
    return 0;
}

static void fr_input(const ngl_stream_config *c, uint8_t *x, uint64_t step, int zeros)
{
    tu_fill_signal(x, c->dtype, (size_t)c->count, 0xf4, step, 1.0f);
    for (uint64_t i = 0; i < c->count; i++) {
        if (zeros && (i % 40) < 30) {
            tu_elem_set(x, c->dtype, (size_t)i, 0.0);
        }
    }
    if (c->count > 20) {
        /* exceptions in every frame */
        tu_elem_set(x, c->dtype, 3, NAN);
        tu_elem_set(x, c->dtype, (size_t)c->count - 5, -INFINITY);
        tu_elem_set(x, c->dtype, (size_t)c->count / 2 + 1, INFINITY);
    }
}

/* Encode FR_HISTORY frames (decoded) and one more (not decoded). */
static void fr_open(fr_fixture *f, const ngl_stream_config *c, int zeros, const uint8_t *user_mask)
{
    fr_close(f);
    f->cfg = *c;
    assert_int_equal(ngl_encoder_create(c, &f->enc), NGL_OK);
    assert_int_equal(ngl_decoder_create(c, &f->dec), NGL_OK);
    f->cap = ngl_encode_bound(c);
    const size_t ds = ngl_dtype_size(c->dtype);
    f->dst_bytes = (size_t)c->count * ds;
    f->dst = malloc(f->dst_bytes + 1);
    f->dst_saved = malloc(f->dst_bytes + 1);
    f->frame = malloc(f->cap);
    f->work = malloc(f->cap);
    uint8_t *x = malloc(f->dst_bytes + 1);
    assert_true(f->dst && f->dst_saved && f->frame && f->work && x);
    for (int k = 0; k <= FR_HISTORY; k++) {
        fr_input(c, x, (uint64_t)k, zeros);
        if (user_mask && k == FR_HISTORY) {
            assert_int_equal(ngl_encoder_set_block_mask(f->enc, user_mask), NGL_OK);
        }
        size_t len = 0;
        assert_int_equal(ngl_encoder_encode(f->enc, x, f->frame, f->cap, &len), NGL_OK);
        if (k < FR_HISTORY) {
            f->history[k] = malloc(len);
            assert_non_null(f->history[k]);
            memcpy(f->history[k], f->frame, len);
            f->history_len[k] = len;
            assert_int_equal(ngl_decoder_decode(f->dec, f->frame, len, f->dst, 0), NGL_OK);
        } else {
            f->len = len;
        }
    }
    free(x);
}

/* Bring the decoder back to the state before the frame under test. */
static void fr_rewind(fr_fixture *f)
{
    ngl_decoder_reset(f->dec);
    for (int k = 0; k < FR_HISTORY; k++) {
        assert_int_equal(ngl_decoder_decode(f->dec, f->history[k], f->history_len[k], f->dst, 0),
                         NGL_OK);
    }
}

static void fr_fill_dst(fr_fixture *f, unsigned round)
{
    for (size_t i = 0; i < f->dst_bytes; i++) {
        f->dst[i] = (uint8_t)(0xC3 ^ (i * 7) ^ round);
    }
    memcpy(f->dst_saved, f->dst, f->dst_bytes);
}

/* Decode f->work[0..len): a rejection must leave everything untouched.
 * @return the status. */
static ngl_status fr_try(fr_fixture *f, size_t len, unsigned flags, const char *what, size_t pos)
{
    const uint64_t h = ngl_decoder_state_hash(f->dec);
    const uint64_t step = ngl_decoder_step(f->dec);
    fr_fill_dst(f, (unsigned)pos);
    const ngl_status st = ngl_decoder_decode(f->dec, f->work, len, f->dst, flags);
    if (st == NGL_OK) {
        return st;
    }
    if (st < NGL_ERR_TRUNCATED || st > NGL_ERR_BACKEND_UNAVAILABLE) {
        fail_msg("%s %zu: status %d (%s) is not a frame error", what, pos, (int)st,
                 ngl_status_str(st));
    }
    if (ngl_decoder_state_hash(f->dec) != h || ngl_decoder_step(f->dec) != step) {
        fail_msg("%s %zu: rejected (%s) but the decoder state changed", what, pos,
                 ngl_status_str(st));
    }
    if (f->dst_bytes && memcmp(f->dst, f->dst_saved, f->dst_bytes) != 0) {
        fail_msg("%s %zu: rejected (%s) but the output buffer changed", what, pos,
                 ngl_status_str(st));
    }
    return st;
}

static void fr_reseal(uint8_t *frame, size_t len)
{
    uint32_t c = ngl_crc32c(0, frame, 44);
    c = ngl_crc32c(c, frame + NGL_FRAME_HEADER_SIZE, len - NGL_FRAME_HEADER_SIZE);
    ngl_wr_u32(frame + 44, c);
}

typedef struct fr_counts {
    uint64_t truncations, flips, resealed_ok, resealed_rejected;
} fr_counts;

static void fr_attack(fr_fixture *f, fr_counts *n)
{
    const size_t len = f->len;
    /* truncations */
    for (size_t l = 0; l < len; l++) {
        memcpy(f->work, f->frame, l);
        if (fr_try(f, l, (l & 1) ? NGL_DECODE_ACCUMULATE : 0, "truncation to", l) == NGL_OK) {
            fail_msg("a frame truncated to %zu of %zu bytes was accepted", l, len);
        }
        n->truncations++;
    }
    /* single-bit flips, CRC as sent */
    for (size_t bit = 0; bit < 8 * len; bit++) {
        memcpy(f->work, f->frame, len);
        f->work[bit >> 3] ^= (uint8_t)(1u << (bit & 7u));
        if (fr_try(f, len, (bit & 1) ? NGL_DECODE_ACCUMULATE : 0, "bit flip", bit) == NGL_OK) {
            fail_msg("a frame with bit %zu flipped was accepted", bit);
        }
        n->flips++;
    }
    /* the intact frame still decodes after all that */
    memcpy(f->work, f->frame, len);
    assert_int_equal(ngl_decoder_decode(f->dec, f->work, len, f->dst, 0), NGL_OK);
    assert_true(ngl_decoder_state_hash(f->dec) == ngl_encoder_state_hash(f->enc));
    fr_rewind(f);

    /* single-bit flips with a valid CRC: past the checksum, every section
     * check is exercised; nothing may crash or half-apply */
    for (size_t bit = 0; bit < 8 * len; bit++) {
        if (bit >= 8 * 44 && bit < 8 * 48) {
            continue; /* the CRC field itself is recomputed */
        }
        memcpy(f->work, f->frame, len);
        f->work[bit >> 3] ^= (uint8_t)(1u << (bit & 7u));
        fr_reseal(f->work, len);
        if (fr_try(f, len, 0, "resealed bit flip", bit) == NGL_OK) {
            n->resealed_ok++;
            fr_rewind(f);
        } else {
            n->resealed_rejected++;
        }
    }
}

static void fr_case(void **state, const char *name, const ngl_stream_config *c, int zeros,
                    const uint8_t *user_mask, unsigned want_flags_set)
{
    fr_fixture *f = *state;
    fr_open(f, c, zeros, user_mask);
    ngl_frame_info fi;
    assert_int_equal(ngl_frame_inspect(f->frame, f->len, 1, &fi), NGL_OK);
    if ((fi.flags & want_flags_set) != want_flags_set) {
        fail_msg("%s: frame flags %#x lack %#x: the case does not test what it says", name,
                 fi.flags, want_flags_set);
    }
    fr_counts n = {0, 0, 0, 0};
    fr_attack(f, &n);
    print_message("%-28s %5zu bytes: %llu truncations, %llu flips rejected; resealed flips: "
                  "%llu rejected, %llu valid\n",
                  name, f->len, (unsigned long long)n.truncations, (unsigned long long)n.flips,
                  (unsigned long long)n.resealed_rejected, (unsigned long long)n.resealed_ok);
}

static void fr_cfg(ngl_stream_config *c, ngl_codec codec, ngl_dtype dt, ngl_predictor pred,
                   uint64_t count, uint32_t block)
{
    ngl_stream_config_init(c);
    c->codec = codec;
    c->dtype = dt;
    c->predictor = pred;
    c->count = count;
    c->block_size = block;
    c->eps = 1e-3;
    c->seed = 12;
    c->stream_id = 0x5151;
}

#define FL_EF   0x1u
#define FL_TOPK 0x2u
#define FL_MASK 0x4u
#define FL_RLE  0x8u
#define FL_ZSTD 0x10u

static void test_frame_reject_raw(void **state)
{
    ngl_stream_config c;
    fr_cfg(&c, NGL_CODEC_RAW, NGL_DTYPE_F32, NGL_PRED_NONE, 37, 8);
    fr_case(state, "raw f32", &c, 0, NULL, 0);
    fr_cfg(&c, NGL_CODEC_RAW, NGL_DTYPE_F16, NGL_PRED_NONE, 160, 8);
    c.lossless = NGL_LOSSLESS_RLE;
    fr_case(state, "raw f16 rle", &c, 1, NULL, FL_RLE);
}

static void test_frame_reject_int8_dense(void **state)
{
    ngl_stream_config c;
    fr_cfg(&c, NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, 150, 64);
    fr_case(state, "int8 f32 momentum exc", &c, 0, NULL, FL_EF);
    fr_cfg(&c, NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_LINEAR, 300, 16);
    c.lossless = NGL_LOSSLESS_RLE;
    fr_case(state, "int8 f32 linear rle", &c, 1, NULL, FL_EF | FL_RLE);
}

static void test_frame_reject_int4_mask(void **state)
{
    ngl_stream_config c;
    const uint8_t user[2] = {0x25, 0x01}; /* blocks 0, 2, 5, 8 of 9 */
    fr_cfg(&c, NGL_CODEC_INT4, NGL_DTYPE_BF16, NGL_PRED_LINEAR, 8 * 16 + 3, 16);
    fr_case(state, "int4 bf16 user mask exc", &c, 0, user, FL_EF | FL_MASK);
    fr_cfg(&c, NGL_CODEC_INT4, NGL_DTYPE_F16, NGL_PRED_NONE, 99, 8);
    c.mask_fraction = 0.25;
    c.error_feedback = 0;
    fr_case(state, "int4 f16 rotation mask", &c, 0, NULL, FL_MASK);
}

static void test_frame_reject_topk(void **state)
{
    ngl_stream_config c;
    fr_cfg(&c, NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, 100, 8);
    c.topk_fraction = 0.5;
    fr_case(state, "int8 topk bitmap exc", &c, 0, NULL, FL_EF | FL_TOPK);
    assert_int_equal(((fr_fixture *)*state)->frame[48 + 16], 0); /* bitmap */
    fr_cfg(&c, NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, 1000, 32);
    c.topk_fraction = 0.02;
    fr_case(state, "int4 topk varint exc", &c, 0, NULL, FL_EF | FL_TOPK);
    assert_int_equal(((fr_fixture *)*state)->frame[48 + 16], 1); /* varint gaps */
    fr_cfg(&c, NGL_CODEC_INT8, NGL_DTYPE_BF16, NGL_PRED_LINEAR, 200, 16);
    c.topk_fraction = 0.1;
    c.mask_fraction = 0.25;
    fr_case(state, "int8 bf16 topk mask", &c, 0, NULL, FL_EF | FL_TOPK | FL_MASK);
}

static void test_frame_reject_eps(void **state)
{
    ngl_stream_config c;
    fr_cfg(&c, NGL_CODEC_EPS, NGL_DTYPE_F32, NGL_PRED_LINEAR, 100, 32);
    fr_case(state, "eps f32 linear exc", &c, 0, NULL, 0);
    fr_cfg(&c, NGL_CODEC_EPS, NGL_DTYPE_F64, NGL_PRED_MOMENTUM, 120, 8);
    c.lossless = NGL_LOSSLESS_RLE;
    fr_case(state, "eps f64 momentum rle", &c, 1, NULL, FL_RLE);
}

static void test_frame_reject_zstd(void **state)
{
    ngl_stream_config c;
    fr_cfg(&c, NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, 400, 64);
    c.lossless = NGL_LOSSLESS_ZSTD;
    const char *why = NULL;
    if (ngl_stream_config_check(&c, &why) == NGL_ERR_UNSUPPORTED) {
        skip(); /* built without zstd */
    }
    fr_case(state, "int8 zstd", &c, 1, NULL, FL_EF | FL_ZSTD);
    fr_cfg(&c, NGL_CODEC_INT4, NGL_DTYPE_F16, NGL_PRED_MOMENTUM, 300, 32);
    c.topk_fraction = 0.3;
    c.lossless = NGL_LOSSLESS_AUTO;
    fr_case(state, "int4 topk auto(zstd)", &c, 1, NULL, FL_EF | FL_TOPK | FL_ZSTD);
}

/* ---- stream checks ----------------------------------------------------- */

/* Decode @p frame with a new decoder for @p c, after the fixture's history
 * if @p replay; expect @p want with output and state untouched. Checks in
 * the preamble (beta, eps, back end) come after the step check, so those
 * cases decode the first frame with no history. */
static void fr_expect_frame(fr_fixture *f, const ngl_stream_config *c, const uint8_t *frame,
                            size_t frame_len, int replay, ngl_status want, const char *what)
{
    ngl_decoder *d = NULL;
    assert_int_equal(ngl_decoder_create(c, &d), NGL_OK);
    const size_t ds = ngl_dtype_size(c->dtype);
    const size_t bytes = (size_t)c->count * ds;
    uint8_t *out = malloc(bytes + 1), *saved = malloc(bytes + 1);
    assert_true(out && saved);
    memset(out, 0x3C, bytes);
    memcpy(saved, out, bytes);
    /* the same history, where the configuration allows it */
    for (int k = 0; replay && k < FR_HISTORY; k++) {
        if (ngl_decoder_decode(d, f->history[k], f->history_len[k], out, 0) != NGL_OK) {
            break;
        }
        memcpy(saved, out, bytes);
    }
    const uint64_t h = ngl_decoder_state_hash(d), step = ngl_decoder_step(d);
    const ngl_status st = ngl_decoder_decode(d, frame, frame_len, out, 0);
    if (st != want) {
        fail_msg("%s: status %s, expected %s", what, ngl_status_str(st), ngl_status_str(want));
    }
    if (want != NGL_OK) {
        assert_true(ngl_decoder_state_hash(d) == h && ngl_decoder_step(d) == step);
        if (bytes) {
            assert_memory_equal(out, saved, bytes);
        }
    }
    free(out);
    free(saved);
    ngl_decoder_destroy(d);
}

static void fr_expect(fr_fixture *f, const ngl_stream_config *c, ngl_status want, const char *what)
{
    fr_expect_frame(f, c, f->frame, f->len, 1, want, what);
}

static void fr_expect_first(fr_fixture *f, const ngl_stream_config *c, ngl_status want,
                            const char *what)
{
    fr_expect_frame(f, c, f->history[0], f->history_len[0], 0, want, what);
}

static void test_frame_reject_stream_mismatches(void **state)
{
    fr_fixture *f = *state;
    ngl_stream_config c, o;
    fr_cfg(&c, NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, 200, 64);
    c.momentum_beta = 0.875f;
    fr_open(f, &c, 0, NULL);

    o = c;
    o.stream_id++;
    fr_expect(f, &o, NGL_ERR_STREAM_MISMATCH, "another stream id");
    o = c;
    o.count++;
    fr_expect(f, &o, NGL_ERR_COUNT_MISMATCH, "another count");
    o = c;
    o.codec = NGL_CODEC_INT4;
    fr_expect(f, &o, NGL_ERR_CONFIG_MISMATCH, "another codec");
    o = c;
    o.dtype = NGL_DTYPE_BF16;
    fr_expect(f, &o, NGL_ERR_CONFIG_MISMATCH, "another dtype");
    o = c;
    o.predictor = NGL_PRED_LINEAR;
    fr_expect(f, &o, NGL_ERR_CONFIG_MISMATCH, "another predictor");
    o = c;
    o.block_size = 128;
    fr_expect(f, &o, NGL_ERR_CONFIG_MISMATCH, "another block size");
    o = c;
    o.topk_fraction = 0.5;
    fr_expect(f, &o, NGL_ERR_CONFIG_MISMATCH, "Top-K decoder, dense frame");
    o = c;
    o.momentum_beta = 0.5f;
    fr_expect_first(f, &o, NGL_ERR_CONFIG_MISMATCH, "another momentum beta");
    fr_expect_first(f, &c, NGL_OK, "the first frame, same configuration");
    /* the wrong count wins over every other difference */
    o = c;
    o.count = 7;
    o.codec = NGL_CODEC_INT4;
    o.stream_id = 1;
    fr_expect(f, &o, NGL_ERR_COUNT_MISMATCH, "count and everything else");

    /* replay and skip on the fixture's decoder (which expects step 3) */
    memcpy(f->work, f->history[FR_HISTORY - 1], f->history_len[FR_HISTORY - 1]);
    fr_fill_dst(f, 1);
    assert_int_equal(fr_try(f, f->history_len[FR_HISTORY - 1], 0, "replay", 0),
                     NGL_ERR_STEP_MISMATCH);
    size_t len2 = 0;
    uint8_t *x = calloc((size_t)c.count, 4);
    assert_non_null(x);
    assert_int_equal(ngl_encoder_encode(f->enc, x, f->work, f->cap, &len2), NGL_OK); /* step 4 */
    assert_int_equal(fr_try(f, len2, 0, "skipped step", 0), NGL_ERR_STEP_MISMATCH);
    free(x);
    memcpy(f->work, f->frame, f->len);
    assert_int_equal(fr_try(f, f->len, 0, "the right step", 0), NGL_OK);

    /* EPS: another eps is another configuration */
    fr_cfg(&c, NGL_CODEC_EPS, NGL_DTYPE_F64, NGL_PRED_NONE, 50, 8);
    fr_open(f, &c, 0, NULL);
    o = c;
    o.eps = 2e-3;
    fr_expect_first(f, &o, NGL_ERR_CONFIG_MISMATCH, "another eps");

    /* a back-end frame for a decoder configured without one */
    fr_cfg(&c, NGL_CODEC_RAW, NGL_DTYPE_F32, NGL_PRED_NONE, 400, 8);
    c.lossless = NGL_LOSSLESS_RLE;
    fr_open(f, &c, 1, NULL);
    ngl_frame_info fi;
    assert_int_equal(ngl_frame_inspect(f->frame, f->len, 1, &fi), NGL_OK);
    assert_int_equal((fi.flags >> 3) & 3u, NGL_LOSSLESS_RLE);
    o = c;
    o.lossless = NGL_LOSSLESS_NONE;
    fr_expect_first(f, &o, NGL_ERR_CONFIG_MISMATCH, "back end not configured");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fr_setup, fr_teardown)
    const struct CMUnitTest tests[] = {
        T(test_frame_reject_raw),
        T(test_frame_reject_int8_dense),
        T(test_frame_reject_int4_mask),
        T(test_frame_reject_topk),
        T(test_frame_reject_eps),
        T(test_frame_reject_zstd),
        T(test_frame_reject_stream_mismatches),
    };
#undef T
    return cmocka_run_group_tests_name("frame_reject", tests, NULL, NULL);
}
