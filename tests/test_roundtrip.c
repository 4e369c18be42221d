/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_roundtrip.c -- every codec, dtype, predictor and sparsity mode round
 * trips at awkward counts and block sizes, within the codec's stated error:
 *
 *   RAW       bit-exact;
 *   INT8/INT4 every frame checked by the spec model (tu_model): exact
 *             decoded bits, scales, Top-K selection, masks, exceptions,
 *             and |q*scale - r| <= one step of its block; with EF off and
 *             no predictor also |decoded - x| <= max|x in block| / qmax;
 *   EPS       |decoded - x| <= eps for every finite element;
 *
 * NaN and Inf come back bit for bit, encoder and decoder state hashes are
 * equal after every step, and every frame fits in ngl_encode_bound().
 */
#include "ngl_testutil.h"

#include "ngl_arith.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RT_STEPS 3

static const uint64_t rt_counts[] = {0, 1, 2, 3, 251, 255, 256, 257, 1009, 65537};
static const uint32_t rt_blocks[] = {8, 64, 200, 256};
#define RT_LARGE_COUNT ((1ull << 20) + 3)

typedef enum { RT_DENSE, RT_TOPK, RT_MASK } rt_mode;

typedef struct rt_buffers {
    uint8_t *src;
    uint8_t *dst;
    size_t cap_elems;
} rt_buffers;

static int rt_setup(void **state)
{
    rt_buffers *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return -1;
    }
    b->cap_elems = RT_LARGE_COUNT;
    b->src = malloc(b->cap_elems * 8);
    b->dst = malloc(b->cap_elems * 8);
    if (b->src == NULL || b->dst == NULL) {
        free(b->src);
        free(b->dst);
        free(b);
        return -1;
    }
    *state = b;
    return 0;
}

static int rt_teardown(void **state)
{
    rt_buffers *b = *state;
    free(b->src);
    free(b->dst);
    free(b);
    return 0;
}

/* Inputs of one step: a drifting signal, a block of zeros, a block below
 * the tiny-scale threshold, and NaN/-Inf at step 1. */
static void rt_fill(void *src, ngl_dtype dt, uint64_t n, uint32_t block, uint64_t seed,
                    uint64_t step)
{
    tu_fill_signal(src, dt, (size_t)n, seed, step, 1.0f);
    const uint64_t nb = (n + block - 1) / block;
    if (nb > 2) {
        for (uint64_t i = block; i < 2ull * block && i < n; i++) {
            tu_elem_set(src, dt, (size_t)i, 0.0);
        }
    }
    if (nb > 3 && dt != NGL_DTYPE_F16) {
        /* below 2^-100: such a block goes out with scale 0 */
        for (uint64_t i = 2ull * block; i < 3ull * block && i < n; i++) {
            tu_elem_set(src, dt, (size_t)i, ldexp((double)(i & 7) - 3.5, -110));
        }
    }
    if (step == 1 && n >= 3) {
        tu_elem_set(src, dt, (size_t)(n / 2), NAN);
        tu_elem_set(src, dt, (size_t)(n - 1), -INFINITY);
    }
}

static void rt_check_raw(const void *src, const void *dst, ngl_dtype dt, uint64_t n)
{
    const size_t bytes = (size_t)n * ngl_dtype_size(dt);
    if (bytes && memcmp(src, dst, bytes) != 0) {
        for (uint64_t i = 0; i < n; i++) {
            if (tu_elem_bits(src, dt, (size_t)i) != tu_elem_bits(dst, dt, (size_t)i)) {
                fail_msg("raw: element %llu differs", (unsigned long long)i);
            }
        }
    }
}

static void rt_check_eps(const void *src, const void *dst, ngl_dtype dt, uint64_t n, double eps)
{
    for (uint64_t i = 0; i < n; i++) {
        if (!tu_elem_finite(src, dt, (size_t)i)) {
            if (tu_elem_bits(src, dt, (size_t)i) != tu_elem_bits(dst, dt, (size_t)i)) {
                fail_msg("eps: non-finite element %llu not bit-exact", (unsigned long long)i);
            }
            continue;
        }
        const double x = tu_elem_get(src, dt, (size_t)i), y = tu_elem_get(dst, dt, (size_t)i);
        if (!(fabs(y - x) <= eps)) {
            fail_msg("eps: element %llu: |%.17g - %.17g| > eps %.17g", (unsigned long long)i, y, x,
                     eps);
        }
    }
}

/* The brief's bound for INT8/INT4 without EF and predictor:
 * |decoded - x| <= max|x in block| / qmax, plus the output rounding of
 * f16/bf16. */
static void rt_check_int_step(const void *src, const void *dst, ngl_dtype dt, uint64_t n,
                              uint32_t block, int qmax)
{
    for (uint64_t lo = 0; lo < n; lo += block) {
        const uint64_t hi = lo + block < n ? lo + block : n;
        double maxabs = 0.0;
        for (uint64_t i = lo; i < hi; i++) {
            if (tu_elem_finite(src, dt, (size_t)i)) {
                maxabs = fmax(maxabs, fabs(tu_elem_get(src, dt, (size_t)i)));
            }
        }
        const double step = maxabs < 0x1p-100 ? maxabs : maxabs / qmax;
        for (uint64_t i = lo; i < hi; i++) {
            if (!tu_elem_finite(src, dt, (size_t)i)) {
                continue;
            }
            const double x = tu_elem_get(src, dt, (size_t)i);
            const double y = tu_elem_get(dst, dt, (size_t)i);
            const double out_round = dt == NGL_DTYPE_F32 ? 0.0 : tu_ulp(dt, fabs(x) + step);
            if (!(fabs(y - x) <= step * (1.0 + 0x1p-15) + out_round)) {
                fail_msg("element %llu: |%.9g - %.9g| exceeds one step %.9g", (unsigned long long)i,
                         y, x, step);
            }
        }
    }
}

static void rt_run(rt_buffers *bufs, const ngl_stream_config *cfg, int steps)
{
    tu_pair pair;
    tu_model model;
    const int quant = cfg->codec == NGL_CODEC_INT8 || cfg->codec == NGL_CODEC_INT4;
    tu_pair_open(&pair, cfg);
    if (quant) {
        tu_model_init(&model, cfg);
    }
    const uint64_t seed = cfg->count * 1315423911ull + cfg->block_size * 2654435761ull +
                          (uint64_t)cfg->codec * 97 + (uint64_t)cfg->dtype * 13;
    for (int step = 0; step < steps; step++) {
        rt_fill(bufs->src, cfg->dtype, cfg->count, cfg->block_size, seed, (uint64_t)step);
        memset(bufs->dst, 0xA5, (size_t)cfg->count * ngl_dtype_size(cfg->dtype));
        tu_pair_step(&pair, bufs->src, bufs->dst);
        switch (cfg->codec) {
        case NGL_CODEC_RAW: rt_check_raw(bufs->src, bufs->dst, cfg->dtype, cfg->count); break;
        case NGL_CODEC_EPS:
            rt_check_eps(bufs->src, bufs->dst, cfg->dtype, cfg->count, cfg->eps);
            break;
        case NGL_CODEC_INT8:
        case NGL_CODEC_INT4:
            tu_model_step(&model, bufs->src, pair.frame, pair.len, bufs->dst);
            if (!cfg->error_feedback && cfg->predictor == NGL_PRED_NONE &&
                cfg->topk_fraction == 0.0 && cfg->mask_fraction == 0.0) {
                rt_check_int_step(bufs->src, bufs->dst, cfg->dtype, cfg->count, cfg->block_size,
                                  cfg->codec == NGL_CODEC_INT4 ? 7 : 127);
            }
            break;
        }
    }
    if (quant) {
        tu_model_fini(&model);
    }
    tu_pair_close(&pair);
}

static void rt_config(ngl_stream_config *c, ngl_codec codec, ngl_dtype dt, ngl_predictor pred,
                      uint64_t count, uint32_t block)
{
    ngl_stream_config_init(c);
    c->codec = codec;
    c->dtype = dt;
    c->predictor = pred;
    c->count = count;
    c->block_size = block;
    c->seed = 0x1234 + count;
    c->stream_id = 77;
    c->eps = dt == NGL_DTYPE_F64 ? 1e-9 : 1e-3;
}

static void rt_sweep(rt_buffers *bufs, ngl_codec codec, ngl_dtype dt, ngl_predictor pred, int ef,
                     rt_mode mode)
{
    for (size_t ci = 0; ci < sizeof rt_counts / sizeof rt_counts[0]; ci++) {
        for (size_t bi = 0; bi < sizeof rt_blocks / sizeof rt_blocks[0]; bi++) {
            /* The largest count takes one block size per configuration,
             * rotating so that each codec still meets all four; the full
             * cross product would cost most of the suite's time. */
            if (rt_counts[ci] > 4096 &&
                bi != ((unsigned)dt + (unsigned)pred + 2u * (unsigned)ef + (unsigned)mode) % 4u) {
                continue;
            }
            ngl_stream_config c;
            rt_config(&c, codec, dt, pred, rt_counts[ci], rt_blocks[bi]);
            c.error_feedback = ef;
            if (mode == RT_TOPK) {
                /* sparse (varint indices) at large counts, dense (bitmap)
                 * at small ones; both also in test_topk_mask.c */
                c.topk_fraction = rt_counts[ci] > 2000 ? 0.01 : 0.3;
            } else if (mode == RT_MASK) {
                c.mask_fraction = 0.25;
            }
            rt_run(bufs, &c, RT_STEPS);
        }
    }
}

static void test_roundtrip_raw_all_dtypes(void **state)
{
    const ngl_dtype dts[] = {NGL_DTYPE_F32, NGL_DTYPE_F16, NGL_DTYPE_BF16, NGL_DTYPE_F64};
    for (size_t d = 0; d < 4; d++) {
        rt_sweep(*state, NGL_CODEC_RAW, dts[d], NGL_PRED_NONE, 0, RT_DENSE);
    }
}

static void rt_quant_all(void **state, ngl_codec codec, rt_mode mode)
{
    const ngl_dtype dts[] = {NGL_DTYPE_F32, NGL_DTYPE_F16, NGL_DTYPE_BF16};
    for (size_t d = 0; d < 3; d++) {
        for (int pred = NGL_PRED_NONE; pred <= NGL_PRED_LINEAR; pred++) {
            for (int ef = 0; ef <= 1; ef++) {
                rt_sweep(*state, codec, dts[d], (ngl_predictor)pred, ef, mode);
            }
        }
    }
}

static void test_roundtrip_int8_dense(void **state)
{
    rt_quant_all(state, NGL_CODEC_INT8, RT_DENSE);
}

static void test_roundtrip_int8_topk(void **state)
{
    rt_quant_all(state, NGL_CODEC_INT8, RT_TOPK);
}

static void test_roundtrip_int8_mask(void **state)
{
    rt_quant_all(state, NGL_CODEC_INT8, RT_MASK);
}

static void test_roundtrip_int4_dense(void **state)
{
    rt_quant_all(state, NGL_CODEC_INT4, RT_DENSE);
}

static void test_roundtrip_int4_topk(void **state)
{
    rt_quant_all(state, NGL_CODEC_INT4, RT_TOPK);
}

static void test_roundtrip_int4_mask(void **state)
{
    rt_quant_all(state, NGL_CODEC_INT4, RT_MASK);
}

static void test_roundtrip_eps_all_predictors(void **state)
{
    const ngl_dtype dts[] = {NGL_DTYPE_F32, NGL_DTYPE_F64};
    for (size_t d = 0; d < 2; d++) {
        for (int pred = NGL_PRED_NONE; pred <= NGL_PRED_LINEAR; pred++) {
            rt_sweep(*state, NGL_CODEC_EPS, dts[d], (ngl_predictor)pred, 0, RT_DENSE);
        }
    }
}

/* One large vector per codec family (> 2^20 elements). */
static void test_roundtrip_large_count(void **state)
{
    static const struct {
        ngl_codec codec;
        ngl_dtype dt;
        ngl_predictor pred;
        int ef;
        double topk;
        double mask;
    } cases[] = {
        {NGL_CODEC_RAW, NGL_DTYPE_F32, NGL_PRED_NONE, 0, 0.0, 0.0},
        {NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, 1, 0.0, 0.0},
        {NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, 0, 0.0, 0.0},
        {NGL_CODEC_INT4, NGL_DTYPE_BF16, NGL_PRED_LINEAR, 1, 0.0, 0.25},
        {NGL_CODEC_INT4, NGL_DTYPE_F16, NGL_PRED_NONE, 1, 0.01, 0.0},
        {NGL_CODEC_EPS, NGL_DTYPE_F64, NGL_PRED_LINEAR, 0, 0.0, 0.0},
        {NGL_CODEC_EPS, NGL_DTYPE_F32, NGL_PRED_NONE, 0, 0.0, 0.0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ngl_stream_config c;
        rt_config(&c, cases[k].codec, cases[k].dt, cases[k].pred, RT_LARGE_COUNT, 256);
        c.error_feedback = cases[k].ef;
        c.topk_fraction = cases[k].topk;
        c.mask_fraction = cases[k].mask;
        rt_run(*state, &c, 2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_raw_all_dtypes),
        cmocka_unit_test(test_roundtrip_int8_dense),
        cmocka_unit_test(test_roundtrip_int8_topk),
        cmocka_unit_test(test_roundtrip_int8_mask),
        cmocka_unit_test(test_roundtrip_int4_dense),
        cmocka_unit_test(test_roundtrip_int4_topk),
        cmocka_unit_test(test_roundtrip_int4_mask),
        cmocka_unit_test(test_roundtrip_eps_all_predictors),
        cmocka_unit_test(test_roundtrip_large_count),
    };
    return cmocka_run_group_tests_name("roundtrip", tests, rt_setup, rt_teardown);
}
