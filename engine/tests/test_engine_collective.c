/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_engine_collective.c -- the engine without MPI or sockets: P engines
 * (one per simulated rank) run the reduce-scatter + allgather protocol of
 * ngl_engine.h in one process, frames handed over by pointer. Checks the
 * layout, that every rank builds matching streams, that results are
 * bit-identical, that the closed loop holds the error of a sum over many
 * steps to about one step's error, the state bound and eviction.
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

#define MAXP 4

typedef struct sim {
    int P;
    ngl_engine *e[MAXP];
} sim;

static void sim_init(sim *sm, int P, const ngl_settings *s, int seg_policy, uint32_t fixed)
{
    sm->P = P;
    for (int r = 0; r < P; r++) {
        ngl_engine_config cfg = {.nranks = P,
                                 .rank = r,
                                 .uid = 0x1234,
                                 .codec = *s,
                                 .seg_policy = seg_policy,
                                 .fixed_period = fixed};
        assert_int_equal(ngl_engine_create(&cfg, &sm->e[r]), NGL_OK);
    }
}

static void sim_fini(sim *sm)
{
    for (int r = 0; r < sm->P; r++) {
        ngl_engine_destroy(sm->e[r]);
    }
}

/* One compressed allreduce of @p count floats: in[r] -> out[r]. Returns
 * the key rank 0 used. */
static uint32_t sim_allreduce(sim *sm, uint64_t count, float *const *in, float *const *out)
{
    const int P = sm->P;
    ngl_engine_set *set[MAXP];
    uint32_t key0 = 0;
    const uint64_t token = ngl_engine_token(count * 4u, 1, 1);
    for (int r = 0; r < P; r++) {
        const uint32_t k = ngl_engine_identify(sm->e[r], token, NGL_IDENT_KEYED);
        if (r == 0) {
            key0 = k;
        }
        assert_int_equal(k, r == 0 ? k : key0); /* every rank the same key */
        int created = 0;
        const ngl_engine_shape shape = {
            .count = count, .dtype = NGL_DTYPE_F32, .ops = &ngl_cc_host_ops};
        assert_int_equal(ngl_engine_set_get(sm->e[r], token, k, &shape, &set[r], &created), NGL_OK);
    }
    const size_t cap = set[0]->frame_cap;
    unsigned char *rs = malloc((size_t)P * P * cap); /* [sender][owner] */
    size_t *rs_len = calloc((size_t)P * P, sizeof *rs_len);
    unsigned char *ag = malloc((size_t)P * cap); /* [owner] */
    size_t ag_len[MAXP];
    assert_non_null(rs);
    assert_non_null(ag);
    for (uint32_t s = 0; s < set[0]->nseg; s++) {
        for (int i = 0; i < P; i++) { /* reduce-scatter encodes */
            for (int j = 0; j < P; j++) {
                uint64_t off;
                const uint64_t len = ngl_engine_seg_len(set[i], j, s, &off);
                ngl_cc_stream *st = set[i]->rs_enc[(size_t)s * P + j];
                if (j == i || len == 0) {
                    assert_null(st);
                    continue;
                }
                unsigned char *f = rs + ((size_t)i * P + j) * cap;
                int done = 0;
                assert_int_equal(ngl_cc_host_ops.encode(st, in[i] + off, f, cap), NGL_OK);
                assert_int_equal(ngl_cc_host_ops.poll(st, &done, &rs_len[i * P + j]), NGL_OK);
            }
        }
        for (int j = 0; j < P; j++) { /* owners reduce and encode the sum */
            uint64_t off;
            const uint64_t len = ngl_engine_seg_len(set[j], j, s, &off);
            if (len == 0) {
                continue;
            }
            memcpy(out[j] + off, in[j] + off, len * sizeof(float));
            for (int i = 0; i < P; i++) {
                if (i != j) {
                    assert_int_equal(ngl_cc_host_ops.decode(set[j]->rs_dec[(size_t)s * P + i],
                                                            rs + ((size_t)i * P + j) * cap,
                                                            rs_len[i * P + j], out[j] + off, 1),
                                     NGL_OK);
                }
            }
            int done = 0;
            assert_int_equal(
                ngl_cc_host_ops.encode(set[j]->ag_enc[s], out[j] + off, ag + (size_t)j * cap, cap),
                NGL_OK);
            assert_int_equal(ngl_cc_host_ops.poll(set[j]->ag_enc[s], &done, &ag_len[j]), NGL_OK);
        }
        for (int r = 0; r < P; r++) { /* everyone decodes every owner's sum */
            for (int o = 0; o < P; o++) {
                uint64_t off;
                if (ngl_engine_seg_len(set[r], o, s, &off) == 0) {
                    continue;
                }
                assert_int_equal(ngl_cc_host_ops.decode(set[r]->ag_dec[(size_t)s * P + o],
                                                        ag + (size_t)o * cap, ag_len[o],
                                                        out[r] + off, 0),
                                 NGL_OK);
            }
        }
    }
    for (int r = 0; r < P; r++) {
        ngl_engine_evict(sm->e[r]);
    }
    free(rs);
    free(rs_len);
    free(ag);
    return key0;
}

static void assert_digests(const sim *sm)
{
    uint64_t pairs_all = 0, shared0 = 0;
    for (int r = 0; r < sm->P; r++) {
        uint64_t pairs, shared;
        assert_int_equal(ngl_engine_state_digest(sm->e[r], &pairs, &shared), 1);
        pairs_all ^= pairs;
        if (r == 0) {
            shared0 = shared;
        }
        assert_true(shared == shared0);
    }
    assert_true(pairs_all == 0);
}

static float grad(int r, int tensor, int step, uint64_t i)
{
    /* persistent base per (rank, tensor, element) plus per-step noise,
     * magnitudes spanning decades across blocks */
    uint64_t h = ngl_hash_mix64(((uint64_t)r << 56) ^ ((uint64_t)tensor << 40) ^ i);
    uint64_t g = ngl_hash_mix64(h ^ ((uint64_t)step << 20) ^ 0x77);
    const double mag = ldexp(1.0, (int)((i / 256 + (uint64_t)tensor) % 7) - 4);
    const double base = ((double)(h >> 11) / 9007199254740992.0 * 2 - 1) * mag;
    const double noise = ((double)(g >> 11) / 9007199254740992.0 * 2 - 1) * mag * 0.1;
    return (float)(base + noise);
}

/* ---- layout ------------------------------------------------------------------ */

static void test_engine_layout_balanced_by_blocks(void **state)
{
    (void)state;
    const uint64_t counts[] = {0, 1, 255, 256, 257, 1000, 65537, 524288, 3000001};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        for (int P = 1; P <= 7; P++) {
            for (int pol = 0; pol < 2; pol++) {
                uint64_t lo[8], seg;
                uint32_t nseg;
                ngl_engine_layout(counts[c], P, 256, pol, lo, &seg, &nseg);
                assert_int_equal(lo[0], 0);
                assert_int_equal(lo[P], counts[c]);
                uint64_t mn = UINT64_MAX, mx = 0;
                for (int j = 0; j < P; j++) {
                    assert_true(lo[j] <= lo[j + 1]);
                    if (lo[j + 1] < counts[c]) {
                        assert_int_equal(lo[j + 1] % 256, 0);
                    }
                    const uint64_t len = lo[j + 1] - lo[j];
                    mn = len < mn ? len : mn;
                    mx = len > mx ? len : mx;
                    assert_true((uint64_t)nseg * seg >= len);
                }
                assert_true(mx - mn < 2 * 256); /* a block, plus the short last block */
                if (pol == NGL_ENGINE_SEG_NONE) {
                    assert_int_equal(nseg, 1);
                } else {
                    assert_int_equal(seg % 256, 0);
                }
            }
        }
    }
}

/* ---- the collective ------------------------------------------------------------- */

typedef struct run_result {
    double ratio;  /* mean|sum of errors| / (T * mean|error|) */
    double worst1; /* largest single-call error / that call's scale */
} run_result;

/* T steps of a step made of tensors of @p sizes (n of them); results must
 * be bit-identical on every rank, and state digests must match. */
static run_result run_steps(const ngl_settings *s, int P, const uint64_t *sizes, int n, int T,
                            uint32_t fixed)
{
    sim sm;
    sim_init(&sm, P, s, NGL_ENGINE_SEG_PIPELINE, fixed);
    uint64_t total = 0;
    for (int t = 0; t < n; t++) {
        total += sizes[t];
    }
    double *cum = calloc(total, sizeof *cum);
    double abs_sum = 0.0;
    float *in[MAXP], *out[MAXP];
    uint64_t maxn = 0;
    for (int t = 0; t < n; t++) {
        maxn = sizes[t] > maxn ? sizes[t] : maxn;
    }
    for (int r = 0; r < P; r++) {
        in[r] = malloc(maxn * sizeof(float));
        out[r] = malloc(maxn * sizeof(float));
    }
    for (int step = 0; step < T + 3; step++) {
        uint64_t base = 0;
        for (int t = 0; t < n; t++) {
            for (int r = 0; r < P; r++) {
                for (uint64_t i = 0; i < sizes[t]; i++) {
                    in[r][i] = grad(r, t, step, i);
                }
            }
            (void)sim_allreduce(&sm, sizes[t], in, out);
            for (int r = 1; r < P; r++) {
                assert_memory_equal(out[r], out[0], sizes[t] * sizeof(float));
            }
            if (step >= 3) { /* after the lock: the steady state */
                for (uint64_t i = 0; i < sizes[t]; i++) {
                    double exact = 0.0;
                    for (int r = 0; r < P; r++) {
                        exact += (double)in[r][i];
                    }
                    const double err = (double)out[0][i] - exact;
                    cum[base + i] += err;
                    abs_sum += fabs(err);
                }
            }
            base += sizes[t];
        }
        assert_digests(&sm);
    }
    double cum_sum = 0.0;
    for (uint64_t i = 0; i < total; i++) {
        cum_sum += fabs(cum[i]);
    }
    run_result res = {.ratio = cum_sum / abs_sum, .worst1 = 0};
    for (int r = 0; r < P; r++) {
        free(in[r]);
        free(out[r]);
    }
    free(cum);
    sim_fini(&sm);
    return res;
}

static void test_engine_closed_loop_holds_the_error_of_a_sum(void **state)
{
    (void)state;
    ngl_settings s;
    ngl_settings_defaults(&s);
    /* two tensors of one size and one of another, every step */
    const uint64_t sizes[] = {20000, 20000, 7000};
    const int T = 40;
    const run_result closed = run_steps(&s, 3, sizes, 3, T, 0);
    s.error_feedback = 0;
    const run_result open = run_steps(&s, 3, sizes, 3, T, 0);
    printf("engine, 3 ranks, int8, %d steps: time-averaged error 1/%.1f of one call with the "
           "closed loop, 1/%.1f without\n",
           T, 1.0 / closed.ratio, 1.0 / open.ratio);
    assert_true(closed.ratio <= 1.0 / 12.0);
    assert_true(open.ratio > 1.0 / 12.0); /* stateless rounding: about 1/sqrt(T) */
}

static void test_engine_closed_loop_int4(void **state)
{
    (void)state;
    ngl_settings s;
    ngl_settings_defaults(&s);
    s.mode = NGL_MODE_INT4;
    const uint64_t sizes[] = {9000, 9000, 4000};
    const run_result closed = run_steps(&s, 4, sizes, 3, 40, 0);
    printf("engine, 4 ranks, int4: time-averaged error 1/%.1f of one call\n", 1.0 / closed.ratio);
    assert_true(closed.ratio <= 1.0 / 12.0);
}

static void test_engine_fixed_period_keys_by_position(void **state)
{
    (void)state;
    ngl_settings s;
    ngl_settings_defaults(&s);
    sim sm;
    sim_init(&sm, 2, &s, NGL_ENGINE_SEG_NONE, 3);
    float a[2][600], b[2][600];
    float *in[2] = {a[0], a[1]}, *out[2] = {b[0], b[1]};
    memset(a, 0, sizeof a);
    for (int call = 0; call < 9; call++) {
        /* one size only: automatic identity could not tell the calls apart */
        const uint32_t k = sim_allreduce(&sm, 600, in, out);
        assert_int_equal(k, (uint32_t)(call % 3));
    }
    assert_digests(&sm);
    sim_fini(&sm);
}

static void test_engine_state_bound_is_the_same_on_every_rank(void **state)
{
    (void)state;
    ngl_settings s;
    ngl_settings_defaults(&s);
    s.state_max_mb = 1; /* room for one 200 Ki-float tensor's error feedback, not two */
    sim sm;
    sim_init(&sm, 3, &s, NGL_ENGINE_SEG_PIPELINE, 0);
    const uint64_t n = 200000;
    float *in[3], *out[3];
    for (int r = 0; r < 3; r++) {
        in[r] = calloc(n, sizeof(float));
        out[r] = calloc(n, sizeof(float));
    }
    for (int step = 0; step < 12; step++) {
        (void)sim_allreduce(&sm, n, in, out);
        (void)sim_allreduce(&sm, n - 1000, in, out);
    }
    for (int r = 0; r < 3; r++) {
        char line[256];
        ngl_engine_describe(sm.e[r], line, sizeof line);
        assert_non_null(strstr(line, "state 0.8 of 1 MiB"));
    }
    assert_digests(&sm);
    for (int r = 0; r < 3; r++) {
        free(in[r]);
        free(out[r]);
    }
    sim_fini(&sm);
}

static void test_engine_unused_sets_are_evicted_alike(void **state)
{
    (void)state;
    ngl_settings s;
    ngl_settings_defaults(&s);
    sim sm;
    sim_init(&sm, 2, &s, NGL_ENGINE_SEG_NONE, 0);
    float a[2][512], b[2][512];
    float *in[2] = {a[0], a[1]}, *out[2] = {b[0], b[1]};
    memset(a, 0, sizeof a);
    for (int i = 0; i < 20; i++) {
        (void)sim_allreduce(&sm, 512, in, out);
    }
    /* then 1100 calls recorded but never compressed: the 512-float set goes */
    for (int i = 0; i < 1100; i++) {
        for (int r = 0; r < 2; r++) {
            (void)ngl_engine_identify(sm.e[r], 99, 0);
            ngl_engine_evict(sm.e[r]);
        }
    }
    for (int r = 0; r < 2; r++) {
        char line[256];
        ngl_engine_describe(sm.e[r], line, sizeof line);
        assert_non_null(strstr(line, "0 stream sets"));
    }
    sim_fini(&sm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_layout_balanced_by_blocks),
        cmocka_unit_test(test_engine_closed_loop_holds_the_error_of_a_sum),
        cmocka_unit_test(test_engine_closed_loop_int4),
        cmocka_unit_test(test_engine_fixed_period_keys_by_position),
        cmocka_unit_test(test_engine_state_bound_is_the_same_on_every_rank),
        cmocka_unit_test(test_engine_unused_sets_are_evicted_alike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
