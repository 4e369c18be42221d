/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_engine_ident.c -- which stream state each collective call gets,
 * for the call patterns training and HPC codes issue, and the failure
 * modes of the scheme (see engine_ident.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ngl_engine.h"

/* A call: token and whether it is compressed (keyed). */
typedef struct call {
    uint64_t token;
    int keyed;
} call;

static int setup(void **state)
{
    ngl_ident *kt = malloc(sizeof *kt);
    if (kt == NULL) {
        return -1;
    }
    ngl_ident_init(kt);
    *state = kt;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* Feed @p steps repetitions of @p step; keys[s * n + i] gets call i of step s. */
static void feed(ngl_ident *kt, const call *step, size_t n, size_t steps, uint32_t *keys)
{
    for (size_t s = 0; s < steps; s++) {
        for (size_t i = 0; i < n; i++) {
            keys[s * n + i] = ngl_ident_next(kt, step[i].token, step[i].keyed);
        }
    }
}

/* From step @p from on, every keyed call has a persistent key equal to the
 * one it had in step @p from, and no two keyed calls with the same token in
 * one step share a key. */
static void assert_stable_distinct(const call *step, size_t n, size_t steps, size_t from,
                                   const uint32_t *keys)
{
    for (size_t s = from; s < steps; s++) {
        for (size_t i = 0; i < n; i++) {
            if (!step[i].keyed) {
                continue;
            }
            assert_int_not_equal(keys[s * n + i], NGL_IDENT_TRANSIENT);
            assert_int_equal(keys[s * n + i], keys[from * n + i]);
            for (size_t j = 0; j < i; j++) {
                if (step[j].keyed && step[j].token == step[i].token) {
                    assert_int_not_equal(keys[s * n + i], keys[s * n + j]);
                }
            }
        }
    }
}

static void test_engine_ident_single_buffer_locks_at_second_call(void **state)
{
    ngl_ident *kt = *state;
    const call step[] = {{100, 1}};
    uint32_t keys[20];
    feed(kt, step, 1, 20, keys);
    /* nothing is known before NGL_IDENT_MIN_EVIDENCE calls */
    for (unsigned i = 0; i + 1 < NGL_IDENT_MIN_EVIDENCE; i++) {
        assert_int_equal(keys[i], NGL_IDENT_TRANSIENT);
    }
    assert_stable_distinct(step, 1, 20, NGL_IDENT_MIN_EVIDENCE - 1, keys);
    assert_int_equal(kt->period, 1);
}

static void test_engine_ident_distinct_sizes(void **state)
{
    ngl_ident *kt = *state;
    const call step[] = {{1, 1}, {2, 1}, {3, 1}, {4, 0}};
    uint32_t keys[4 * 8];
    feed(kt, step, 4, 8, keys);
    assert_stable_distinct(step, 4, 8, 2, keys);
    assert_int_equal(kt->period, 4);
}

static void test_engine_ident_same_size_tensors_get_distinct_state(void **state)
{
    ngl_ident *kt = *state;
    /* Two layers of the same size separated by a small uncompressed call,
     * and a fresh buffer every step (buffers never enter the token). */
    const call step[] = {{7, 1}, {1, 0}, {7, 1}, {9, 1}};
    uint32_t keys[4 * 20];
    feed(kt, step, 4, 20, keys);
    assert_stable_distinct(step, 4, 20, 2, keys);
    assert_int_not_equal(keys[19 * 4 + 0], keys[19 * 4 + 2]);
}

static void test_engine_ident_transformer_like_steps(void **state)
{
    ngl_ident *kt = *state;
    /* Embedding, 6 identical layers of (W, b, W, b, W2, b2), head: the
     * per-layer period locks first and must give way to the step period. */
    call step[1 + 6 * 6 + 1];
    size_t n = 0;
    step[n++] = (call){50, 1};
    for (int l = 0; l < 6; l++) {
        step[n++] = (call){10, 1};
        step[n++] = (call){11, 0};
        step[n++] = (call){10, 1};
        step[n++] = (call){11, 0};
        step[n++] = (call){12, 1};
        step[n++] = (call){13, 0};
    }
    step[n++] = (call){60, 1};
    enum { STEPS = 12 };
    uint32_t keys[sizeof step / sizeof step[0] * STEPS];
    feed(kt, step, n, STEPS, keys);
    assert_stable_distinct(step, n, STEPS, 3, keys);
    assert_int_equal(kt->period, n);
}

static void test_engine_ident_bucket_slices_never_share_state(void **state)
{
    ngl_ident *kt = *state;
    /* NCCL's collNet view of a step: a 1 MiB first bucket (2 slices of a
     * smaller count), then two buckets whose 12 slices all have one count.
     * A run of equal slices must not lock a period of 1 (which would share
     * one state between slices): until the step is seen twice, calls are
     * transient, then every slice has its own key. */
    ngl_ident_set_short_cycles(kt, NGL_IDENT_SHORT_MAX, NGL_IDENT_HIST);
    call step[2 + 12];
    for (size_t i = 0; i < 2; i++) {
        step[i] = (call){5, 1};
    }
    for (size_t i = 2; i < 14; i++) {
        step[i] = (call){6, 1};
    }
    enum { STEPS = 6 };
    uint32_t keys[14 * STEPS];
    feed(kt, step, 14, STEPS, keys);
    for (size_t i = 0; i < 14; i++) {
        assert_int_equal(keys[i], NGL_IDENT_TRANSIENT); /* first step: nothing known */
    }
    assert_stable_distinct(step, 14, STEPS, 2, keys);
    assert_int_equal(kt->period, 14);
}

static void test_engine_ident_one_slice_per_step_locks_after_the_whole_history(void **state)
{
    ngl_ident *kt = *state;
    /* A model of one slice: a run of one token is a step of one call once
     * the whole history says so. */
    ngl_ident_set_short_cycles(kt, NGL_IDENT_SHORT_MAX, NGL_IDENT_HIST);
    const call step[] = {{8, 1}};
    uint32_t *keys = malloc((NGL_IDENT_HIST + 10) * sizeof *keys);
    assert_non_null(keys);
    feed(kt, step, 1, NGL_IDENT_HIST + 10, keys);
    assert_int_equal(keys[NGL_IDENT_HIST - 2], NGL_IDENT_TRANSIENT);
    assert_int_equal(keys[NGL_IDENT_HIST + 9], 0);
    assert_int_equal(kt->period, 1);
    free(keys);
}

static void test_engine_ident_inserted_call_is_transient(void **state)
{
    ngl_ident *kt = *state;
    const call step[] = {{1, 1}, {2, 1}, {3, 1}};
    uint32_t keys[3 * 6];
    feed(kt, step, 3, 6, keys);
    /* An unrelated extra call in the middle of a step is transient and
     * leaves the cycle alone. */
    assert_int_equal(ngl_ident_next(kt, 1, 1), keys[5 * 3 + 0]);
    assert_int_equal(ngl_ident_next(kt, 99, 1), NGL_IDENT_TRANSIENT);
    assert_int_equal(ngl_ident_next(kt, 2, 1), keys[5 * 3 + 1]);
    assert_int_equal(ngl_ident_next(kt, 3, 1), keys[5 * 3 + 2]);
    /* An extra call of a size the step already has disturbs at most that
     * step (it may take the other call's key once); the next steps get the
     * old keys back and the lock is kept. */
    ngl_ident_next(kt, 1, 1);
    ngl_ident_next(kt, 2, 1);
    ngl_ident_next(kt, 2, 1);
    ngl_ident_next(kt, 3, 1);
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 3; i++) {
            assert_int_equal(ngl_ident_next(kt, step[i].token, 1), keys[5 * 3 + i]);
        }
    }
    assert_int_equal(kt->period, 3);
    assert_int_equal(kt->n_locks, 1);
}

static void test_engine_ident_skipped_call_keeps_the_others(void **state)
{
    ngl_ident *kt = *state;
    const call step[] = {{1, 1}, {2, 1}, {3, 1}, {4, 1}};
    uint32_t keys[4 * 6];
    feed(kt, step, 4, 6, keys);
    /* A step in which the tensor of token 2 has no gradient. */
    assert_int_equal(ngl_ident_next(kt, 1, 1), keys[5 * 4 + 0]);
    assert_int_equal(ngl_ident_next(kt, 3, 1), keys[5 * 4 + 2]);
    assert_int_equal(ngl_ident_next(kt, 4, 1), keys[5 * 4 + 3]);
    assert_int_equal(ngl_ident_next(kt, 1, 1), keys[5 * 4 + 0]);
    assert_int_equal(kt->n_skipped, 1);
}

static void test_engine_ident_relocks_when_the_pattern_changes(void **state)
{
    ngl_ident *kt = *state;
    const call a[] = {{1, 1}, {2, 1}, {3, 1}};
    const call b[] = {{5, 1}, {5, 1}, {6, 1}, {7, 0}, {5, 1}};
    uint32_t ka[3 * 5];
    uint32_t kb[5 * 10];
    feed(kt, a, 3, 5, ka);
    feed(kt, b, 5, 10, kb);
    assert_stable_distinct(b, 5, 10, 3, kb);
    assert_int_equal(kt->period, 5);
}

static void test_engine_ident_relocks_to_a_new_size_of_the_same_period(void **state)
{
    ngl_ident *kt = *state;
    /* A benchmark loop: many calls of one size, then of another. */
    uint32_t k = 0;
    for (int i = 0; i < 20; i++) {
        ngl_ident_next(kt, 1000, 1);
    }
    for (unsigned i = 0; i < 20; i++) {
        k = ngl_ident_next(kt, 2000, 1);
        if (i + 1 >= NGL_IDENT_MIN_EVIDENCE) {
            assert_int_equal(k, 0);
        }
    }
    assert_int_equal(kt->period, 1);
    assert_int_equal(kt->ref[0], 2000);
    assert_int_equal(kt->n_transient, NGL_IDENT_MIN_EVIDENCE - 1 + NGL_IDENT_MIN_EVIDENCE - 1);
}

static void test_engine_ident_back_to_back_same_size_is_the_known_limit(void **state)
{
    ngl_ident *kt = *state;
    /* [A A] every step and nothing else is indistinguishable from [A]:
     * both calls share one key. Documented in mpi-pmpi/README.md. */
    const call step[] = {{8, 1}, {8, 1}};
    uint32_t keys[2 * 6];
    feed(kt, step, 2, 6, keys);
    assert_int_not_equal(keys[5 * 2 + 0], NGL_IDENT_TRANSIENT);
    assert_int_equal(keys[5 * 2 + 0], keys[5 * 2 + 1]);
    assert_int_equal(kt->period, 1);
}

static void test_engine_ident_no_structure_stays_transient(void **state)
{
    ngl_ident *kt = *state;
    /* Distinct tokens forever: nothing repeats, nothing may be shared. */
    uint64_t x = 12345;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        assert_int_equal(ngl_ident_next(kt, x, 1), NGL_IDENT_TRANSIENT);
    }
    assert_int_equal(kt->period, 0);
}

static void test_engine_ident_cycle_longer_than_history_stays_transient(void **state)
{
    ngl_ident *kt = *state;
    enum { N = NGL_IDENT_HIST / 2 + 10 };
    for (int s = 0; s < 3; s++) {
        for (uint64_t i = 0; i < N; i++) {
            assert_int_equal(ngl_ident_next(kt, 1000 + i, 1), NGL_IDENT_TRANSIENT);
        }
    }
}

static void test_engine_ident_longest_findable_cycle_locks(void **state)
{
    ngl_ident *kt = *state;
    enum { N = NGL_IDENT_HIST / 2 };
    uint32_t last = 0;
    for (int s = 0; s < 3; s++) {
        for (uint64_t i = 0; i < N; i++) {
            last = ngl_ident_next(kt, 7000 + i % 300, 1);
        }
    }
    assert_int_not_equal(last, NGL_IDENT_TRANSIENT);
    assert_int_equal(kt->period, N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_engine_ident_single_buffer_locks_at_second_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_distinct_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_same_size_tensors_get_distinct_state,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_transformer_like_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_bucket_slices_never_share_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_engine_ident_one_slice_per_step_locks_after_the_whole_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_inserted_call_is_transient, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_skipped_call_keeps_the_others, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_relocks_when_the_pattern_changes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_relocks_to_a_new_size_of_the_same_period,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_back_to_back_same_size_is_the_known_limit,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_no_structure_stays_transient, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_cycle_longer_than_history_stays_transient,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_ident_longest_findable_cycle_locks, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
