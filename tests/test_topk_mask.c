/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_topk_mask.c -- Top-K selection and block masks.
 *
 * Top-K: exactly k = ceil(f * count) elements (fewer only when fewer are
 * eligible), the largest |r| with ties to the lower index, indices
 * ascending, bitmap or varint gaps whichever is smaller (bitmap on a tie),
 * and with error feedback every element is sent eventually.
 * Masks: the rotation sends every block at least once in every
 * NGL_MASK_PERIOD consecutive steps, user masks apply to the next frame
 * only, and skipped blocks decode to the (gated) prediction.
 */
#include "ngl_testutil.h"

#include "ngl_arith.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct tm_fixture {
    tu_pair pair;
    tu_model model;
    float *x, *y;
    uint32_t *idx;
    int open;
} tm_fixture;

static int tm_setup(void **state)
{
    tm_fixture *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return -1;
    }
    *state = f;
    return 0;
}

static int tm_teardown(void **state)
{
    tm_fixture *f = *state;
    if (f->open) {
        tu_pair_close(&f->pair);
        tu_model_fini(&f->model);
    }
    free(f->x);
    free(f->y);
    free(f->idx);
    free(f);
    return 0;
}

static void tm_open(tm_fixture *f, const ngl_stream_config *c)
{
    if (f->open) {
        tu_pair_close(&f->pair);
        tu_model_fini(&f->model);
    }
    tu_pair_open(&f->pair, c);
    tu_model_init(&f->model, c);
    f->open = 1;
    free(f->x);
    free(f->y);
    free(f->idx);
    f->x = calloc((size_t)c->count + 1, sizeof(float));
    f->y = calloc((size_t)c->count + 1, sizeof(float));
    f->idx = calloc((size_t)c->count + 1, sizeof(uint32_t));
    assert_true(f->x && f->y && f->idx);
}

/* Encode f->x, decode, check against the spec model; return the frame's
 * Top-K indices in f->idx and their number. */
static uint32_t tm_step(tm_fixture *f)
{
    tu_pair_step(&f->pair, f->x, f->y);
    tu_model_step(&f->model, f->x, f->pair.frame, f->pair.len, f->y);
    tu_frame fr;
    tu_frame_parse_quant(f->pair.frame, f->pair.len, &fr);
    if (fr.fi.flags & 2u) {
        tu_frame_topk_indices(&fr, f->pair.cfg.count, f->idx);
        return fr.k;
    }
    return 0;
}

static void tm_config(ngl_stream_config *c, uint64_t count, uint32_t block, double topk, int ef)
{
    ngl_stream_config_init(c);
    c->codec = NGL_CODEC_INT8;
    c->count = count;
    c->block_size = block;
    c->topk_fraction = topk;
    c->error_feedback = ef;
    c->seed = 3;
    c->stream_id = 9;
}

/* qsort by |x| descending, index ascending: the definition, independent of
 * the library's radix selection. */
static const float *tm_sort_keys;
static int tm_cmp(const void *a, const void *b)
{
    const uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    const float fa = fabsf(tm_sort_keys[i]), fb = fabsf(tm_sort_keys[j]);
    if (fa != fb) {
        return fa > fb ? -1 : 1;
    }
    return i < j ? -1 : (i > j);
}

static void tm_expect_topk(const tm_fixture *f, uint32_t k_got, uint64_t k_want)
{
    const uint64_t n = f->pair.cfg.count;
    uint32_t *order = malloc((size_t)n * sizeof *order);
    uint32_t m = 0;
    assert_non_null(order);
    for (uint32_t i = 0; i < n; i++) {
        if (isfinite(f->x[i])) {
            order[m++] = i;
        }
    }
    tm_sort_keys = f->x;
    qsort(order, m, sizeof *order, tm_cmp);
    assert_int_equal(k_got, k_want);
    uint8_t *want = calloc((size_t)n, 1);
    assert_non_null(want);
    for (uint64_t e = 0; e < k_want; e++) {
        want[order[e]] = 1;
    }
    for (uint32_t e = 0; e < k_got; e++) {
        if (!want[f->idx[e]]) {
            fail_msg("selected index %u is not among the %llu largest", f->idx[e],
                     (unsigned long long)k_want);
        }
        if (e > 0) {
            assert_true(f->idx[e] > f->idx[e - 1]);
        }
    }
    free(want);
    free(order);
}

static void test_topk_exact_k_largest_magnitudes(void **state)
{
    tm_fixture *f = *state;
    ngl_stream_config c;
    tm_config(&c, 1000, 64, 0.1, 0);
    tm_open(f, &c);
    tu_rng rng;
    tu_rng_seed(&rng, 1);
    for (int step = 0; step < 4; step++) {
        for (uint32_t i = 0; i < 1000; i++) {
            f->x[i] = tu_rng_float(&rng, -4.0f, 4.0f);
        }
        tm_expect_topk(f, tm_step(f), 100);
    }
}

static void test_topk_ties_go_to_lower_index(void **state)
{
    tm_fixture *f = *state;
    ngl_stream_config c;
    tm_config(&c, 1000, 64, 0.1, 0);
    tm_open(f, &c);
    tu_rng rng;
    tu_rng_seed(&rng, 2);

    /* all magnitudes equal, signs random: the first 100 indices */
    for (uint32_t i = 0; i < 1000; i++) {
        f->x[i] = tu_rng_below(&rng, 2) ? 1.5f : -1.5f;
    }
    assert_int_equal(tm_step(f), 100);
    for (uint32_t e = 0; e < 100; e++) {
        assert_int_equal(f->idx[e], e);
    }

    /* 60 fives and 300 threes (+-) at random places: every five, then the
     * 40 lowest-indexed threes */
    for (uint32_t i = 0; i < 1000; i++) {
        f->x[i] = tu_rng_float(&rng, -1.0f, 1.0f);
    }
    for (int placed = 0; placed < 60;) {
        uint32_t i = tu_rng_below(&rng, 1000);
        if (fabsf(f->x[i]) < 2.0f) {
            f->x[i] = tu_rng_below(&rng, 2) ? 5.0f : -5.0f;
            placed++;
        }
    }
    for (int placed = 0; placed < 300;) {
        uint32_t i = tu_rng_below(&rng, 1000);
        if (fabsf(f->x[i]) < 2.0f) {
            f->x[i] = tu_rng_below(&rng, 2) ? 3.0f : -3.0f;
            placed++;
        }
    }
    assert_int_equal(tm_step(f), 100);
    uint32_t fives = 0, threes = 0, last_three = 0;
    for (uint32_t e = 0; e < 100; e++) {
        const float a = fabsf(f->x[f->idx[e]]);
        if (a == 5.0f) {
            fives++;
        } else {
            assert_true(a == 3.0f);
            threes++;
            last_three = f->idx[e];
        }
    }
    assert_int_equal(fives, 60);
    assert_int_equal(threes, 40);
    for (uint32_t i = 0; i < last_three; i++) {
        if (fabsf(f->x[i]) == 3.0f) {
            int found = 0;
            for (uint32_t e = 0; e < 100 && !found; e++) {
                found = f->idx[e] == i;
            }
            if (!found) {
                fail_msg("tied element %u left out while %u was taken", i, last_three);
            }
        }
    }
}

static void test_topk_k_rounding_and_eligibility(void **state)
{
    tm_fixture *f = *state;
    ngl_stream_config c;
    tu_rng rng;
    tu_rng_seed(&rng, 4);

    /* k = ceil(0.1234 * 1000) = 124 */
    tm_config(&c, 1000, 64, 0.1234, 0);
    tm_open(f, &c);
    for (uint32_t i = 0; i < 1000; i++) {
        f->x[i] = tu_rng_float(&rng, -1.0f, 1.0f);
    }
    tm_expect_topk(f, tm_step(f), 124);

    /* f = 1: every element */
    tm_config(&c, 777, 200, 1.0, 1);
    tm_open(f, &c);
    for (uint32_t i = 0; i < 777; i++) {
        f->x[i] = tu_rng_float(&rng, -1.0f, 1.0f);
    }
    tm_expect_topk(f, tm_step(f), 777);

    /* 950 NaN/Inf: only 50 eligible, so k = 50, all of them */
    tm_config(&c, 1000, 64, 0.1, 1);
    tm_open(f, &c);
    for (uint32_t i = 0; i < 1000; i++) {
        f->x[i] = (i % 20 == 7) ? tu_rng_float(&rng, -1.0f, 1.0f) : (i & 1 ? NAN : -INFINITY);
    }
    tm_expect_topk(f, tm_step(f), 50);
    for (uint32_t i = 0; i < 1000; i++) {
        if (!isfinite(f->x[i])) {
            assert_memory_equal(&f->x[i], &f->y[i], 4);
        }
    }

    /* a mask leaves fewer eligible elements: half the blocks skipped */
    tm_config(&c, 1024, 64, 0.9, 1);
    tm_open(f, &c);
    uint8_t skip[2] = {0x55, 0x55};
    assert_int_equal(ngl_encoder_set_block_mask(f->pair.enc, skip), NGL_OK);
    f->model.expect_mask = skip;
    for (uint32_t i = 0; i < 1024; i++) {
        f->x[i] = tu_rng_float(&rng, -1.0f, 1.0f);
    }
    assert_int_equal(tm_step(f), 512);
    for (uint32_t e = 0; e < 512; e++) {
        assert_int_equal((f->idx[e] / 64) & 1, 1);
    }
}

static void test_topk_index_formats(void **state)
{
    tm_fixture *f = *state;
    ngl_stream_config c;
    tu_rng rng;
    tu_rng_seed(&rng, 5);
    static const struct {
        uint64_t count;
        double frac;
        unsigned want_fmt;
    } cases[] = {
        {4096, 0.5, 0},     /* dense: bitmap */
        {4096, 0.01, 1},    /* sparse: varint gaps */
        {64, 8.0 / 64, 0},  /* 8 one-byte gaps = 8 bitmap bytes: tie -> bitmap */
        {64, 7.0 / 64, 1},  /* 7 bytes < 8 */
        {100003, 0.001, 1}, /* gaps beyond one varint byte */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tm_config(&c, cases[k].count, 256, cases[k].frac, 1);
        c.codec = k & 1 ? NGL_CODEC_INT4 : NGL_CODEC_INT8;
        tm_open(f, &c);
        for (int step = 0; step < 3; step++) {
            for (uint64_t i = 0; i < cases[k].count; i++) {
                f->x[i] = tu_rng_float(&rng, -1.0f, 1.0f);
            }
            tm_step(f); /* the model checks the format rule on every frame */
            tu_frame fr;
            tu_frame_parse_quant(f->pair.frame, f->pair.len, &fr);
            if (fr.idx_fmt != cases[k].want_fmt) {
                fail_msg("count %llu f %g: index format %u, expected %u",
                         (unsigned long long)cases[k].count, cases[k].frac, fr.idx_fmt,
                         cases[k].want_fmt);
            }
        }
    }
}

/* With EF, constant inputs: every element is sent again and again; without
 * EF the same k are chosen every step and the rest never go out. */
static void test_topk_error_feedback_sends_every_element(void **state)
{
    tm_fixture *f = *state;
    enum { N = 1000, STEPS = 1000 };
    for (int with_mask = 0; with_mask <= 1; with_mask++) {
        for (int ef = 1; ef >= 0; ef--) {
            ngl_stream_config c;
            tm_config(&c, N, 64, 0.01, ef);
            c.mask_fraction = with_mask ? 0.25 : 0.0;
            c.predictor = with_mask ? NGL_PRED_MOMENTUM : NGL_PRED_NONE;
            tm_open(f, &c);
            tu_rng rng;
            tu_rng_seed(&rng, 6);
            for (uint32_t i = 0; i < N; i++) {
                f->x[i] = tu_rng_float(&rng, 0.5f, 1.0f) * (i & 1 ? 1.0f : -1.0f);
            }
            int64_t last[N];
            uint32_t max_gap = 0;
            for (uint32_t i = 0; i < N; i++) {
                last[i] = -1;
            }
            for (int64_t step = 0; step < STEPS; step++) {
                const uint32_t k = tm_step(f);
                for (uint32_t e = 0; e < k; e++) {
                    const uint32_t i = f->idx[e];
                    const uint32_t gap = (uint32_t)(step - last[i]);
                    max_gap = gap > max_gap ? gap : max_gap;
                    last[i] = step;
                }
            }
            uint32_t never = 0;
            for (uint32_t i = 0; i < N; i++) {
                never += last[i] < 0;
                const uint32_t gap = (uint32_t)(STEPS - last[i]);
                max_gap = gap > max_gap ? gap : max_gap;
            }
            if (ef) {
                /* k = 10 per step: a full rotation takes ~100 steps; the
                 * smallest inputs wait about twice as long */
                if (never != 0 || max_gap > 400) {
                    fail_msg("mask %d: with EF %u elements never sent, longest wait %u steps",
                             with_mask, never, max_gap);
                }
            } else if (!with_mask) {
                assert_true(never > N / 2); /* the criterion does tell them apart */
            }
        }
    }
}

/* ---- masks ------------------------------------------------------------ */

static void test_mask_rotation_sends_every_block_each_period(void **state)
{
    tm_fixture *f = *state;
    static const double fractions[] = {0.05, 0.25, 0.5, 0.9, 0.95, 0.96875, 0.99, 0.999999};
    enum { NB = 37, B = 8, STEPS = 3 * NGL_MASK_PERIOD + 5 };
    for (size_t fi = 0; fi < sizeof fractions / sizeof fractions[0]; fi++) {
        ngl_stream_config c;
        tm_config(&c, NB * B - 3, B, 0.0, 1);
        c.mask_fraction = fractions[fi];
        tm_open(f, &c);
        uint8_t sent[STEPS][NB];
        tu_rng rng;
        tu_rng_seed(&rng, 8);
        for (int step = 0; step < STEPS; step++) {
            for (uint64_t i = 0; i < c.count; i++) {
                f->x[i] = tu_rng_float(&rng, -1.0f, 1.0f);
            }
            tm_step(f);
            tu_frame fr;
            tu_frame_parse_quant(f->pair.frame, f->pair.len, &fr);
            unsigned skipped = 0;
            for (uint32_t b = 0; b < NB; b++) {
                const int s = fr.mask ? (fr.mask[b >> 3] >> (b & 7u)) & 1 : 0;
                sent[step][b] = (uint8_t)!s;
                skipped += (unsigned)s;
            }
            /* about the requested share of blocks is skipped */
            const double share = (double)skipped / NB;
            assert_true(fabs(share - fractions[fi]) < 0.1 || fractions[fi] > 0.9);
        }
        for (int start = 0; start + (int)NGL_MASK_PERIOD <= STEPS; start++) {
            for (uint32_t b = 0; b < NB; b++) {
                int any = 0;
                for (int s = start; s < start + (int)NGL_MASK_PERIOD; s++) {
                    any |= sent[s][b];
                }
                if (!any) {
                    fail_msg("mask_fraction %g: block %u not sent in steps %d..%d", fractions[fi],
                             b, start, start + (int)NGL_MASK_PERIOD - 1);
                }
            }
        }
    }
}

static void test_mask_user_mask_applies_once(void **state)
{
    tm_fixture *f = *state;
    ngl_stream_config c;
    tm_config(&c, 10 * 64 + 5, 64, 0.0, 1); /* 11 blocks */
    c.predictor = NGL_PRED_LINEAR;
    tm_open(f, &c);
    tu_rng rng;
    tu_rng_seed(&rng, 10);
    /* bits beyond the 11 blocks are set on purpose: they must be ignored */
    const uint8_t user[2] = {0x29, 0xfd}; /* blocks 0, 3, 5, 8, 10 (+ junk) */
    const uint8_t user_clean[2] = {0x29, 0x05};
    const uint8_t all[2] = {0xff, 0x07};
    for (int step = 0; step < 8; step++) {
        for (uint64_t i = 0; i < c.count; i++) {
            f->x[i] = (float)step * 0.25f + tu_rng_float(&rng, -0.01f, 0.01f);
        }
        if (step == 3 || step == 6) {
            assert_int_equal(ngl_encoder_set_block_mask(f->pair.enc, step == 3 ? user : all),
                             NGL_OK);
            f->model.expect_mask = step == 3 ? user_clean : all;
        }
        if (step == 5) {
            /* set, then cleared before the encode: no mask */
            assert_int_equal(ngl_encoder_set_block_mask(f->pair.enc, all), NGL_OK);
            assert_int_equal(ngl_encoder_set_block_mask(f->pair.enc, NULL), NGL_OK);
        }
        tm_step(f); /* the model checks mask section and skipped values */
        tu_frame fr;
        tu_frame_parse_quant(f->pair.frame, f->pair.len, &fr);
        if (step == 3) {
            assert_non_null(fr.mask);
            assert_memory_equal(fr.mask, user_clean, 2);
        } else if (step == 6) {
            assert_non_null(fr.mask);
            assert_int_equal(fr.nscales, 0);
        } else {
            assert_null(fr.mask);
        }
    }
    /* codecs without masks */
    ngl_stream_config r;
    ngl_stream_config_init(&r);
    r.codec = NGL_CODEC_RAW;
    r.count = 16;
    ngl_encoder *e = NULL;
    assert_int_equal(ngl_encoder_create(&r, &e), NGL_OK);
    assert_int_equal(ngl_encoder_set_block_mask(e, user), NGL_ERR_UNSUPPORTED);
    assert_int_equal(ngl_encoder_set_block_mask(e, NULL), NGL_OK);
    ngl_encoder_destroy(e);
    assert_int_equal(ngl_encoder_set_block_mask(NULL, user), NGL_ERR_INVALID_ARG);
}

/* A linear ramp: once the gate is on, a skipped block decodes to
 * 2*y[t-1] - y[t-2], computed here from the decoder's own outputs; with no
 * predictor it decodes to 0. */
static void test_mask_skipped_blocks_decode_to_prediction(void **state)
{
    tm_fixture *f = *state;
    for (int pred = NGL_PRED_NONE; pred <= NGL_PRED_LINEAR; pred += 2) {
        ngl_stream_config c;
        tm_config(&c, 4 * 64, 64, 0.0, 0);
        c.predictor = (ngl_predictor)pred;
        tm_open(f, &c);
        float y1[256], y2[256];
        uint8_t skip2 = 0x04; /* block 2 */
        for (int step = 0; step < 6; step++) {
            for (uint32_t i = 0; i < 256; i++) {
                f->x[i] = 1.0f + (float)i * 0.0625f + (float)step * 0.5f;
            }
            const int skipped = step == 3 || step == 5;
            if (skipped) {
                assert_int_equal(ngl_encoder_set_block_mask(f->pair.enc, &skip2), NGL_OK);
                f->model.expect_mask = &skip2;
            }
            tm_step(f);
            if (skipped) {
                for (uint32_t i = 128; i < 192; i++) {
                    if (pred == NGL_PRED_NONE) {
                        assert_true(f->y[i] == 0.0f);
                    } else {
                        const float twice = 2.0f * y1[i];
                        const float p = twice - y2[i];
                        assert_int_equal(ngl_f32_bits(f->y[i]), ngl_f32_bits(p));
                        /* and the prediction is close to the truth (a
                         * few quantization steps of the noisy history) */
                        assert_true(fabsf(f->y[i] - f->x[i]) < 0.25f);
                    }
                }
            }
            memcpy(y2, y1, sizeof y1);
            memcpy(y1, f->y, sizeof y1);
        }
    }
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, tm_setup, tm_teardown)
    const struct CMUnitTest tests[] = {
        T(test_topk_exact_k_largest_magnitudes),
        T(test_topk_ties_go_to_lower_index),
        T(test_topk_k_rounding_and_eligibility),
        T(test_topk_index_formats),
        T(test_topk_error_feedback_sends_every_element),
        T(test_mask_rotation_sends_every_block_each_period),
        T(test_mask_user_mask_applies_once),
        T(test_mask_skipped_blocks_decode_to_prediction),
    };
#undef T
    return cmocka_run_group_tests_name("topk_mask", tests, NULL, NULL);
}
