/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_determinism.c -- bit-exact reproducibility of whole streams.
 *
 * 1. Fixed 100-step streams (fixed seeds, inputs from integer hashing and
 *    single IEEE operations only, no libm) hash every frame's bytes and every
 *    decoded output; the hashes are committed below and must come out the
 *    same on every kernel variant, every machine and every build.
 * 2. Closed-loop lockstep: encoder (best ISA) and decoder (reference
 *    kernels) keep equal state hashes after each of 1000 steps with momentum,
 *    linear prediction, masks, user masks, Top-K and NaN/Inf bursts, and
 *    every decoded value is the one docs/wire-format.md defines (tu_model).
 *
 * Regenerating the committed hashes. They change only when the frame
 * format, the encoder rules (docs/wire-format.md section 5) or the
 * reconstruction change, and any such change must be deliberate: bump the
 * format version or say so in the commit. Then run
 *     build/<dir>/tests/test_determinism
 * which prints one line "stream <name>: 0x..." per stream (also on
 * failure), and paste the values into det_streams[] below.
 */
#include "ngl_testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct det_stream {
    const char *name;
    ngl_codec codec;
    ngl_dtype dtype;
    ngl_predictor pred;
    int ef;
    double topk, mask, eps;
    ngl_lossless lossless;
    uint32_t block;
    int zeros;       /* long runs of zeros in the input (for the back end) */
    uint64_t expect; /* committed hash */
} det_stream;

/* zstd output may differ between zstd releases: only our RLE back end
 * takes part here. */
static const det_stream det_streams[] = {
    {"int8-f32-ef-momentum", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, 1, 0.0, 0.0, 0.0,
     NGL_LOSSLESS_NONE, 256, 0, 0x00943c5f7eab28d5ull},
    {"int4-f32-topk-ef", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_NONE, 1, 0.05, 0.0, 0.0,
     NGL_LOSSLESS_NONE, 64, 0, 0x19346c2c6ef3582cull},
    {"eps-f64-linear", NGL_CODEC_EPS, NGL_DTYPE_F64, NGL_PRED_LINEAR, 0, 0.0, 0.0, 1e-4,
     NGL_LOSSLESS_NONE, 128, 0, 0xc05a25ce6807bc65ull},
    {"int8-bf16-linear-mask-ef", NGL_CODEC_INT8, NGL_DTYPE_BF16, NGL_PRED_LINEAR, 1, 0.0, 0.25, 0.0,
     NGL_LOSSLESS_NONE, 200, 0, 0x0f1951f6c9dc9bfeull},
    {"int4-f16-momentum-topk", NGL_CODEC_INT4, NGL_DTYPE_F16, NGL_PRED_MOMENTUM, 1, 0.3, 0.0, 0.0,
     NGL_LOSSLESS_NONE, 256, 0, 0x94e7581cb9737fcaull},
    {"int8-f32-rle", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, 0, 0.0, 0.0, 0.0,
     NGL_LOSSLESS_RLE, 64, 1, 0x3491c8ca50bc25faull},
};
#define DET_N     3001
#define DET_STEPS 100

static void det_config(ngl_stream_config *c, const det_stream *d, ngl_isa isa)
{
    ngl_stream_config_init(c);
    c->codec = d->codec;
    c->dtype = d->dtype;
    c->predictor = d->pred;
    c->error_feedback = d->ef;
    c->topk_fraction = d->topk;
    c->mask_fraction = d->mask;
    c->eps = d->eps;
    c->lossless = d->lossless;
    c->block_size = d->block;
    c->count = DET_N;
    c->seed = 0x5eed;
    c->stream_id = 0x1d;
    c->isa = isa;
    c->momentum_beta = 0.875f;
}

/* Inputs: tu_fill_signal (no libm) plus NaN/Inf at fixed places. */
static void det_input(void *x, ngl_dtype dt, uint64_t step, int zeros)
{
    tu_fill_signal(x, dt, DET_N, 0xd5, step, 3.0f);
    for (uint64_t i = 0; zeros && i < DET_N; i++) {
        if ((i + 40 * step) % 500 < 400) {
            tu_elem_set(x, dt, (size_t)i, 0.0);
        }
    }
    if (step % 17 == 5) {
        tu_elem_set(x, dt, (size_t)(step * 7 % DET_N), NAN);
        tu_elem_set(x, dt, (size_t)(step * 13 % DET_N), -INFINITY);
    }
}

static uint64_t det_run(const det_stream *d, ngl_isa isa)
{
    ngl_stream_config c;
    det_config(&c, d, isa);
    tu_pair p;
    tu_pair_open(&p, &c);
    const size_t bytes = DET_N * ngl_dtype_size(d->dtype);
    uint8_t *x = malloc(bytes), *y = malloc(bytes);
    assert_true(x && y);
    uint64_t h = TU_FNV_INIT, backend_frames = 0;
    for (uint64_t step = 0; step < DET_STEPS; step++) {
        det_input(x, d->dtype, step, d->zeros);
        tu_pair_step(&p, x, y);
        h = tu_fnv(h, p.frame, p.len);
        h = tu_fnv(h, y, bytes);
        ngl_frame_info fi;
        assert_int_equal(ngl_frame_inspect(p.frame, p.len, 1, &fi), NGL_OK);
        backend_frames += ((fi.flags >> 3) & 3u) != 0;
    }
    /* a stream configured with a back end does use it */
    assert_true((backend_frames > DET_STEPS / 2) == (d->lossless != NGL_LOSSLESS_NONE));
    tu_pair_close(&p);
    free(x);
    free(y);
    return h;
}

static void test_determinism_fixed_streams_match_committed_hash(void **state)
{
    (void)state;
    int mismatches = 0;
    for (size_t s = 0; s < sizeof det_streams / sizeof det_streams[0]; s++) {
        const det_stream *d = &det_streams[s];
        const uint64_t h = det_run(d, NGL_ISA_REF);
        print_message("stream %s: 0x%016llxull\n", d->name, (unsigned long long)h);
        if (h != d->expect) {
            print_error("stream %s: hash 0x%016llx, committed 0x%016llx\n", d->name,
                        (unsigned long long)h, (unsigned long long)d->expect);
            mismatches++;
        }
        for (int isa = NGL_ISA_AVX2; isa <= NGL_ISA_AVX512; isa++) {
            if (ngl_isa_available((ngl_isa)isa)) {
                const uint64_t hv = det_run(d, (ngl_isa)isa);
                if (hv != h) {
                    print_error("stream %s: %s gives 0x%016llx, ref 0x%016llx\n", d->name,
                                ngl_isa_name((ngl_isa)isa), (unsigned long long)hv,
                                (unsigned long long)h);
                    mismatches++;
                }
            }
        }
    }
    assert_int_equal(mismatches, 0);
}

/* ---- lockstep ---------------------------------------------------------- */

typedef struct lock_case {
    const char *name;
    ngl_codec codec;
    ngl_dtype dtype;
    ngl_predictor pred;
    double topk, mask;
    int user_masks;
} lock_case;

static void lock_run(const lock_case *lc)
{
    enum { N = 700, STEPS = 1000 };
    ngl_stream_config ce, cd;
    ngl_stream_config_init(&ce);
    ce.codec = lc->codec;
    ce.dtype = lc->dtype;
    ce.predictor = lc->pred;
    ce.topk_fraction = lc->topk;
    ce.mask_fraction = lc->mask;
    ce.eps = 1e-3;
    ce.count = N;
    ce.block_size = 64;
    ce.seed = 4242;
    ce.isa = NGL_ISA_AUTO;
    cd = ce;
    cd.isa = NGL_ISA_REF; /* the decoder runs the other kernels */
    ngl_encoder *enc = NULL;
    ngl_decoder *dec = NULL;
    assert_int_equal(ngl_encoder_create(&ce, &enc), NGL_OK);
    assert_int_equal(ngl_decoder_create(&cd, &dec), NGL_OK);
    const int quant = lc->codec == NGL_CODEC_INT8 || lc->codec == NGL_CODEC_INT4;
    tu_model m;
    memset(&m, 0, sizeof m);
    if (quant) {
        tu_model_init(&m, &ce);
    }
    const size_t cap = ngl_encode_bound(&ce);
    const size_t bytes = N * ngl_dtype_size(lc->dtype);
    uint8_t *frame = malloc(cap), *x = malloc(bytes), *y = malloc(bytes);
    assert_true(frame && x && y);
    tu_rng rng;
    tu_rng_seed(&rng, 8);
    const uint64_t h0 = ngl_decoder_state_hash(dec);
    uint64_t h_mid = 0;
    for (uint64_t step = 0; step < STEPS; step++) {
        tu_fill_signal(x, lc->dtype, N, 0x10c, step, 2.0f);
        if ((step >= 300 && step < 310) || step % 97 == 13) {
            for (uint32_t i = 0; i < N; i++) {
                const uint32_t roll = tu_rng_below(&rng, 20);
                if (roll == 0) {
                    tu_elem_set(x, lc->dtype, i, NAN);
                } else if (roll == 1) {
                    tu_elem_set(x, lc->dtype, i, i & 1 ? INFINITY : -INFINITY);
                }
            }
        }
        uint8_t user[2] = {0, 0};
        if (lc->user_masks && step % 11 == 4) {
            user[0] = (uint8_t)tu_rng_u64(&rng);
            user[1] = (uint8_t)(tu_rng_u64(&rng) & 0x07); /* 11 blocks */
            assert_int_equal(ngl_encoder_set_block_mask(enc, user), NGL_OK);
            m.expect_mask = user;
        }
        size_t len = 0;
        assert_int_equal(ngl_encoder_encode(enc, x, frame, cap, &len), NGL_OK);
        assert_true(len <= cap);
        assert_int_equal(ngl_decoder_decode(dec, frame, len, y, 0), NGL_OK);
        const uint64_t he = ngl_encoder_state_hash(enc), hd = ngl_decoder_state_hash(dec);
        if (he != hd) {
            fail_msg("%s: state hashes differ after step %llu", lc->name, (unsigned long long)step);
        }
        if (quant) {
            tu_model_step(&m, x, frame, len, y);
        } else {
            for (uint32_t i = 0; i < N; i++) {
                if (!tu_elem_finite(x, lc->dtype, i)) {
                    assert_true(tu_elem_bits(x, lc->dtype, i) == tu_elem_bits(y, lc->dtype, i));
                } else {
                    assert_true(fabs(tu_elem_get(x, lc->dtype, i) - tu_elem_get(y, lc->dtype, i)) <=
                                ce.eps);
                }
            }
        }
        if (step == STEPS / 2) {
            h_mid = hd;
        }
    }
    /* the state did evolve (a constant hash would prove nothing) */
    assert_true(ngl_decoder_step(dec) == STEPS);
    assert_true(ngl_decoder_state_hash(dec) != h0);
    assert_true(ngl_decoder_state_hash(dec) != h_mid);
    if (quant) {
        tu_model_fini(&m);
    }
    ngl_encoder_destroy(enc);
    ngl_decoder_destroy(dec);
    free(frame);
    free(x);
    free(y);
}

static void test_determinism_lockstep_1000_steps(void **state)
{
    (void)state;
    static const lock_case cases[] = {
        {"int8 momentum mask", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, 0.0, 0.25, 1},
        {"int4 linear topk mask", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_LINEAR, 0.1, 0.125, 1},
        {"int8 bf16 momentum topk", NGL_CODEC_INT8, NGL_DTYPE_BF16, NGL_PRED_MOMENTUM, 0.3, 0.0, 0},
        {"int4 f16 linear", NGL_CODEC_INT4, NGL_DTYPE_F16, NGL_PRED_LINEAR, 0.0, 0.0, 1},
        {"eps f32 linear", NGL_CODEC_EPS, NGL_DTYPE_F32, NGL_PRED_LINEAR, 0.0, 0.0, 0},
        {"eps f64 momentum", NGL_CODEC_EPS, NGL_DTYPE_F64, NGL_PRED_MOMENTUM, 0.0, 0.0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        lock_run(&cases[k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism_fixed_streams_match_committed_hash),
        cmocka_unit_test(test_determinism_lockstep_1000_steps),
    };
    return cmocka_run_group_tests_name("determinism", tests, NULL, NULL);
}
