/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-element functions of ngl_gpu_ops.h against core's own helpers
 * (ngl_kernels.h) on edge values: every pair of specials, including those
 * the stream tests rarely reach (Inf predictions, signalling NaNs, values
 * at FLT_MAX). Runs on the CPU: these are the same functions the GPU
 * kernels inline.
 */
/* cmocka.h needs these first */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "ngl_gpu_ops.h"
#include "ngl_kernels.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t specials[] = {
    0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u, 0x3f000000u, 0x7f7fffffu, 0xff7fffffu,
    0x7f7ffffeu, 0x7f000000u, 0xff000000u, 0x00800000u, 0x00000001u, 0x807fffffu, 0x0000abcdu,
    0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xffbfffffu, 0x7fc12345u,
    0x3dcccccdu, 0x0d800000u, 0x0d000000u, 0x4effffffu, 0xc2fe0000u, 0x42fe0000u, 0x7e800000u,
};
#define NSPECIAL (sizeof specials / sizeof specials[0])

static float sp(size_t i)
{
    return ngl_bits_f32(specials[i]);
}

static void test_gpu_ops_state_update(void **state)
{
    (void)state;
    static const float betas[] = {0.9f, 0.0f, 0.5f, 0.999f, 0.3f};
    for (int pred = NGL_PRED_NONE; pred <= NGL_PRED_LINEAR; pred++) {
        for (size_t bi = 0; bi < sizeof betas / sizeof betas[0]; bi++) {
            for (size_t m = 0; m < NSPECIAL; m++) {
                if (!ngl_f32_finite(sp(m))) {
                    continue; /* state only ever holds finite values */
                }
                for (size_t x = 0; x < NSPECIAL; x++) {
                    for (uint32_t hist = 0; hist <= 2; hist++) {
                        ngl_dense_job j;
                        memset(&j, 0, sizeof j);
                        float c1 = sp(m), c2 = sp((m + 3) % NSPECIAL);
                        if (!ngl_f32_finite(c2)) {
                            c2 = 1.0f;
                        }
                        j.pred = (ngl_predictor)pred;
                        j.hist = hist;
                        j.beta = betas[bi];
                        j.one_minus_beta = 1.0f - betas[bi];
                        j.st1 = &c1;
                        j.st2 = &c2;
                        ngl_gpu_args a;
                        memset(&a, 0, sizeof a);
                        a.pred = pred;
                        a.hist = hist;
                        a.beta = j.beta;
                        a.omb = j.one_minus_beta;
                        float g1 = c1, g2 = c2;
                        const float xhat = sp(x);
                        float praw_c = ngl_pred_raw(&j, 0);
                        float praw_g = ngl_gpu_praw(pred, g1, g2, hist);
                        assert_int_equal(ngl_f32_bits(praw_c), ngl_f32_bits(praw_g));
                        float ac = 0.0f, cc = 0.0f;
                        uint32_t ag = 0, cg = 0;
                        ngl_state_update(&j, 0, xhat, praw_c, &ac, &cc);
                        ngl_gpu_state_update(&a, xhat, praw_g, &g1, &g2, &ag, &cg);
                        assert_int_equal(ngl_f32_bits(c1), ngl_f32_bits(g1));
                        assert_int_equal(ngl_f32_bits(c2), ngl_f32_bits(g2));
                        assert_int_equal(ngl_f32_bits(ac), ag);
                        assert_int_equal(ngl_f32_bits(cc), cg);
                    }
                }
            }
        }
    }
}

/* ngl_gpu_add_x86 must give what this (x86-64) CPU's addss gives, except
 * when both operands are NaN (then the CPU's answer depends on operand
 * order chosen by the compiler). */
static void test_gpu_ops_add_matches_x86(void **state)
{
    (void)state;
#if defined(__x86_64__) || defined(__i386__)
    for (size_t i = 0; i < NSPECIAL; i++) {
        for (size_t k = 0; k < NSPECIAL; k++) {
            volatile float a = sp(i), b = sp(k);
            int an = (specials[i] & 0x7fffffffu) > 0x7f800000u;
            int bn = (specials[k] & 0x7fffffffu) > 0x7f800000u;
            if (an && bn) {
                continue;
            }
            float hw = a + b;
            float sw = ngl_gpu_add_x86(a, b);
            assert_int_equal(ngl_f32_bits(hw), ngl_f32_bits(sw));
        }
    }
#else
    skip();
#endif
}

static void test_gpu_ops_codes_layout(void **state)
{
    (void)state;
    for (int int4 = 0; int4 <= 1; int4++) {
        const int qmax = int4 ? NGL_QMAX_INT4 : NGL_QMAX_INT8;
        for (uint32_t n = 0; n <= NGL_GPU_CHUNK; n++) {
            for (int base = -qmax; base <= qmax; base++) {
                int32_t q[8];
                uint8_t buf[32];
                memset(buf, 0xaa, sizeof buf);
                for (int j = 0; j < 8; j++) {
                    q[j] = j < (int)n ? (base + 3 * j + qmax) % (2 * qmax + 1) - qmax : 0;
                }
                ngl_gpu_put_codes(buf, 8, n, int4, q);
                for (uint32_t j = 0; j < n; j++) {
                    assert_int_equal(ngl_gpu_get_code(buf, 8 + j, int4), q[j]);
                    /* wire layout: INT8 one byte; INT4 low nibble first */
                    if (int4) {
                        uint8_t byte = buf[(8 + j) / 2];
                        uint32_t nib = (j & 1u) ? (byte >> 4) : (byte & 0xfu);
                        assert_int_equal((int32_t)((nib ^ 8u) - 8u), q[j]);
                    } else {
                        assert_int_equal((int8_t)buf[8 + j], q[j]);
                    }
                }
                /* nothing outside the chunk's bytes; odd tail high nibble 0 */
                size_t lo = int4 ? 4 : 8, hi = lo + (int4 ? (n + 1) / 2 : n);
                for (size_t t = 0; t < sizeof buf; t++) {
                    if (t < lo || t >= hi) {
                        assert_int_equal(buf[t], 0xaa);
                    }
                }
                if (int4 && (n & 1u)) {
                    assert_int_equal(buf[hi - 1] >> 4, 0);
                }
            }
        }
    }
}

static void test_gpu_ops_exception_values(void **state)
{
    (void)state;
    ngl_dense_job j;
    memset(&j, 0, sizeof j);
    uint8_t e[4];
    for (int dt = NGL_DTYPE_F16; dt <= NGL_DTYPE_BF16; dt++) {
        j.dtype = (ngl_dtype)dt;
        for (uint32_t h = 0; h < 65536u; h++) {
            e[0] = (uint8_t)h;
            e[1] = (uint8_t)(h >> 8);
            assert_int_equal(ngl_f32_bits(ngl_exc_value(&j, e)),
                             ngl_f32_bits(ngl_gpu_exc_value(dt, e)));
        }
    }
    j.dtype = NGL_DTYPE_F32;
    for (size_t i = 0; i < NSPECIAL; i++) {
        ngl_wr_u32(e, specials[i]);
        assert_int_equal(ngl_f32_bits(ngl_exc_value(&j, e)),
                         ngl_f32_bits(ngl_gpu_exc_value(NGL_DTYPE_F32, e)));
    }
}

static void test_gpu_ops_lower_bound(void **state)
{
    (void)state;
    uint8_t list[6 * 64];
    for (uint32_t n = 0; n <= 64; n++) {
        for (uint32_t e = 0; e < n; e++) {
            ngl_wr_u32(list + 6 * e, 3 * e + 1);
        }
        for (uint32_t key = 0; key < 3 * n + 3; key++) {
            uint64_t want = 0;
            while (want < n && 3 * want + 1 < key) {
                want++;
            }
            assert_int_equal(ngl_gpu_lower_bound(list, 6, 0, n, key), want);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpu_ops_state_update),
        cmocka_unit_test(test_gpu_ops_add_matches_x86),
        cmocka_unit_test(test_gpu_ops_codes_layout),
        cmocka_unit_test(test_gpu_ops_exception_values),
        cmocka_unit_test(test_gpu_ops_lower_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
