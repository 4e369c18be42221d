/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_engine_auto.c -- NANGILA_MODE=auto decisions (engine_auto.c) with
 * several simulated ranks whose clocks disagree: every rank must run the
 * same arm (plain variant or codec) at every call (a rank that passes
 * through while the others compress would hang the job), the choice must
 * be the fastest arm, must hold steady under noise, must follow a change
 * of the link, must respect NANGILA_MODE_MAX and NANGILA_MIN_BYTES, and
 * exploring many plain variants must stay cheap.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ngl_engine.h"

#define P 4

typedef struct sim {
    ngl_auto *rank[P];
    double skew[P];   /* rank r's clock reads skew[r] x the true time */
    uint64_t rng;     /* noise */
    double noise;     /* relative noise amplitude per sample */
    uint64_t changes; /* choice changes seen by rank 0 after settling */
} sim;

static double uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) * 0x1.0p-53;
}

/* Names as the MPI wrapper gives them. */
static const char *const plain_names[NGL_AUTO_PLAIN_MAX] = {"default (Open MPI's own choice)",
                                                            "alg1 (basic linear)",
                                                            "alg2 (nonoverlapping)",
                                                            "alg3 (recursive doubling)",
                                                            "alg4 (ring)",
                                                            "alg5 (segmented ring, 1 MiB segments)",
                                                            "alg6 (Rabenseifner)"};

/* @p nplain plain arms (0: one, unnamed), floor @p min_bytes. */
static void sim_init_arms(sim *s, ngl_mode cap, int auto_on, uint32_t nplain, uint64_t min_bytes)
{
    memset(s, 0, sizeof *s);
    ngl_engine_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.nranks = P;
    ngl_settings_defaults(&cfg.codec);
    cfg.codec.mode_auto = auto_on;
    cfg.codec.mode_max = cap;
    cfg.codec.mode = cap;
    cfg.codec.min_bytes = min_bytes;
    cfg.auto_plain = nplain;
    for (uint32_t k = 0; k < nplain && nplain > 1; k++) {
        cfg.auto_plain_names[k] = plain_names[k];
    }
    for (int r = 0; r < P; r++) {
        cfg.rank = r;
        assert_int_equal(ngl_auto_create(&cfg, &s->rank[r]), NGL_OK);
        /* deliberately skewed: rank 3 measures everything 2.5x slower */
        s->skew[r] = 1.0 + 0.5 * r;
    }
    s->rng = 12345;
}

static void sim_init(sim *s, ngl_mode cap, int auto_on)
{
    sim_init_arms(s, cap, auto_on, 0, 0);
}

static void sim_free(sim *s)
{
    for (int r = 0; r < P; r++) {
        ngl_auto_destroy(s->rank[r]);
    }
}

static uint32_t plan_arm_of(const ngl_auto_plan *p)
{
    return p->mode == NGL_MODE_OFF    ? p->plain
           : p->mode == NGL_MODE_INT8 ? NGL_AUTO_ARM_INT8
                                      : NGL_AUTO_ARM_INT4;
}

/* Every rank's MIN-reduced vector handed to every rank's decision. */
static void sim_agree(sim *s, uint32_t cls)
{
    double vmin[NGL_AUTO_VEC];
    ngl_auto_local(s->rank[0], cls, vmin);
    for (int r = 1; r < P; r++) {
        double v[NGL_AUTO_VEC];
        ngl_auto_local(s->rank[r], cls, v);
        for (int i = 0; i < NGL_AUTO_VEC; i++) {
            vmin[i] = v[i] < vmin[i] ? v[i] : vmin[i];
        }
    }
    int settled0 = 0;
    ngl_auto_choice(s->rank[0], cls, &settled0);
    const uint32_t before = ngl_auto_choice_arm(s->rank[0], cls);
    for (int r = 0; r < P; r++) {
        ngl_auto_agree(s->rank[r], cls, vmin);
    }
    const uint32_t after = ngl_auto_choice_arm(s->rank[0], cls);
    s->changes += settled0 && after != before;
    for (int r = 1; r < P; r++) {
        assert_int_equal(ngl_auto_choice_arm(s->rank[r], cls), after);
        assert_int_equal(ngl_auto_choice(s->rank[r], cls, NULL),
                         ngl_auto_choice(s->rank[0], cls, NULL));
    }
}

/*
 * One call of @p bytes whose true cost in arm a is t[a]: every rank plans
 * it (the plans must be equal), measures it with its own skew and noise,
 * and the ranks agree by element-wise MIN when the plan says so.
 * @return the arm the call ran in.
 */
static uint32_t sim_call_arm(sim *s, uint64_t bytes, const double t[NGL_AUTO_NARMS])
{
    ngl_auto_plan plan[P];
    for (int r = 0; r < P; r++) {
        plan[r] = ngl_auto_plan_call(s->rank[r], bytes);
        assert_int_equal(plan[r].mode, plan[0].mode);
        assert_int_equal(plan[r].plain, plan[0].plain);
        assert_int_equal(plan[r].timed, plan[0].timed);
        assert_int_equal(plan[r].agree, plan[0].agree);
        assert_int_equal(plan[r].cls, plan[0].cls);
        const double meas = t[plan_arm_of(&plan[r])] * s->skew[r] *
                            (1.0 + s->noise * (2.0 * uniform(&s->rng) - 1.0));
        ngl_auto_record(s->rank[r], &plan[r], meas, 0.3 * meas, 0);
    }
    if (plan[0].agree) {
        sim_agree(s, plan[0].cls);
    }
    return plan_arm_of(&plan[0]);
}

/* The same with one plain arm and costs per codec mode (off, int8, int4). */
static ngl_mode sim_call(sim *s, uint64_t bytes, const double t[NGL_AUTO_NMODES])
{
    double ta[NGL_AUTO_NARMS] = {0};
    ta[0] = t[NGL_MODE_OFF];
    ta[NGL_AUTO_ARM_INT8] = t[NGL_MODE_INT8];
    ta[NGL_AUTO_ARM_INT4] = t[NGL_MODE_INT4];
    const uint32_t arm = sim_call_arm(s, bytes, ta);
    return arm == NGL_AUTO_ARM_INT8   ? NGL_MODE_INT8
           : arm == NGL_AUTO_ARM_INT4 ? NGL_MODE_INT4
                                      : NGL_MODE_OFF;
}

/* With a fixed mode nothing is explored or timed. */
static void test_fixed_mode_is_fixed(void **state)
{
    (void)state;
    sim s;
    sim_init(&s, NGL_MODE_INT4, 0);
    const double t[3] = {1e-3, 1e-3, 1e-3};
    for (int i = 0; i < 100; i++) {
        const ngl_auto_plan p = ngl_auto_plan_call(s.rank[0], 1u << 20);
        assert_int_equal(p.mode, NGL_MODE_INT4);
        assert_false(p.timed);
        assert_false(p.agree);
    }
    (void)t;
    char buf[256];
    assert_int_equal(ngl_auto_describe(s.rank[0], "", buf, sizeof buf), 0);
    sim_free(&s);
}

/* Exploration: each allowed mode once untimed then timed; the slow one
 * drops out after its first round, and the fastest mode settles. The cap
 * keeps int4 out. */
static void test_explore_then_fastest(void **state)
{
    (void)state;
    sim s;
    sim_init(&s, NGL_MODE_INT8, 1);
    const double slow_link[3] = {8e-3, 2.5e-3, 1.5e-3}; /* int4 would win, capped */
    int ran[3] = {0};
    for (int i = 0; i < 12; i++) {
        ran[sim_call(&s, 16u << 20, slow_link)]++;
    }
    /* first round: 1 + 2 calls each; off is 3.2x slower, so int8 alone is
     * left and settles at once */
    assert_int_equal(ran[NGL_MODE_OFF], 3);
    assert_int_equal(ran[NGL_MODE_INT8], 9);
    assert_int_equal(ran[NGL_MODE_INT4], 0);
    int settled = 0;
    assert_int_equal(ngl_auto_choice(s.rank[0], ngl_auto_class_of(16u << 20), &settled),
                     NGL_MODE_INT8);
    assert_true(settled);
    for (int i = 0; i < 1000; i++) {
        assert_int_not_equal(sim_call(&s, 16u << 20, slow_link), NGL_MODE_INT4);
    }

    /* a class of its own for small calls on the same link: off wins there */
    const double small[3] = {40e-6, 90e-6, 95e-6};
    for (int i = 0; i < 12; i++) {
        sim_call(&s, 32u << 10, small);
    }
    assert_int_equal(ngl_auto_choice(s.rank[0], ngl_auto_class_of(32u << 10), NULL), NGL_MODE_OFF);
    char buf[1024];
    assert_true(ngl_auto_describe(s.rank[0], "  ", buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "16..32 MiB: int8"));
    assert_non_null(strstr(buf, "32..64 KiB: off"));
    assert_non_null(strstr(buf, "link"));
    sim_free(&s);

    /* with the cap at int4, int4 is explored and wins */
    sim_init(&s, NGL_MODE_INT4, 1);
    for (int i = 0; i < 18; i++) {
        sim_call(&s, 16u << 20, slow_link);
    }
    assert_int_equal(ngl_auto_choice(s.rank[0], ngl_auto_class_of(16u << 20), NULL), NGL_MODE_INT4);
    sim_free(&s);
}

/* Two modes within noise of each other: the choice must not flip-flop, and
 * re-probing must cost only a small fraction of the calls. */
static void test_hysteresis_and_probe_cost(void **state)
{
    (void)state;
    sim s;
    sim_init(&s, NGL_MODE_INT4, 1);
    s.noise = 0.08;
    const double close[3] = {1.00e-3, 0.97e-3, 1.30e-3};
    int ran[3] = {0};
    const int n = 40000;
    for (int i = 0; i < n; i++) {
        ran[sim_call(&s, 4u << 20, close)]++;
    }
    assert_true(s.changes <= 2);
    /* the runner-up modes ran only while exploring and re-probing */
    const int chosen = ran[NGL_MODE_OFF] > ran[NGL_MODE_INT8] ? NGL_MODE_OFF : NGL_MODE_INT8;
    assert_true(ran[chosen] > n - n / 50);
    assert_true(ran[NGL_MODE_INT4] < n / 100);
    sim_free(&s);
}

/* The link becomes fast (or congestion ends): re-probes notice, and the
 * choice moves to off within a bounded number of calls. */
static void test_follows_a_changed_link(void **state)
{
    (void)state;
    sim s;
    sim_init(&s, NGL_MODE_INT8, 1);
    s.noise = 0.05;
    const double slow[3] = {8e-3, 2.5e-3, 2e-3};
    const double fast[3] = {0.5e-3, 1.5e-3, 1.4e-3};
    const uint32_t cls = ngl_auto_class_of(8u << 20);
    for (int i = 0; i < 20000; i++) {
        sim_call(&s, 8u << 20, slow);
    }
    assert_int_equal(ngl_auto_choice(s.rank[0], cls, NULL), NGL_MODE_INT8);
    int switched_after = -1;
    for (int i = 0; i < 10000 && switched_after < 0; i++) {
        sim_call(&s, 8u << 20, fast);
        if (ngl_auto_choice(s.rank[0], cls, NULL) == NGL_MODE_OFF) {
            switched_after = i;
        }
    }
    /* at most one longest re-probe interval plus the probe itself */
    assert_true(switched_after >= 0);
    assert_true(switched_after <= 4096 + 8);
    sim_free(&s);
}

/* Calls that created their streams are not typical and are dropped; if a
 * round measured nothing the class stays exact and explores again. */
static void test_created_samples_dropped(void **state)
{
    (void)state;
    sim s;
    sim_init(&s, NGL_MODE_INT8, 1);
    ngl_auto *a = s.rank[0];
    for (int i = 0; i < 12; i++) {
        const ngl_auto_plan p = ngl_auto_plan_call(a, 1u << 20);
        ngl_auto_record(a, &p, 1.0, 0.0, 1);
        if (p.agree) {
            double v[NGL_AUTO_VEC];
            ngl_auto_local(a, p.cls, v);
            for (int k = 0; k < NGL_AUTO_VEC; k++) {
                assert_true(v[k] == 0.0);
            }
            ngl_auto_agree(a, p.cls, v);
        }
    }
    int settled = 1;
    assert_int_equal(ngl_auto_choice(a, ngl_auto_class_of(1u << 20), &settled), NGL_MODE_OFF);
    assert_false(settled);
    /* and explores again from the next call on (plain had its warm-up) */
    ngl_auto_plan p = ngl_auto_plan_call(a, 1u << 20);
    assert_int_equal(p.mode, NGL_MODE_OFF);
    assert_true(p.timed);
    for (int i = 0; i < 3 && p.mode == NGL_MODE_OFF; i++) {
        p = ngl_auto_plan_call(a, 1u << 20);
    }
    assert_int_equal(p.mode, NGL_MODE_INT8); /* and a codec gets its warm-up */
    assert_false(p.timed);
    sim_free(&s);
}

/* A size class holding many tensors (a DDP model's buckets): the first
 * call of each tensor in a mode creates its streams. Those calls are not
 * typical and get re-planned, so the round still ends with real samples of
 * every mode and picks the fast one, on every rank alike. */
static void test_replan_created_streams(void **state)
{
    (void)state;
    sim s;
    sim_init(&s, NGL_MODE_INT8, 1);
    enum { KEYS = 10 };
    int made[KEYS][NGL_AUTO_NMODES] = {{0}};
    const double t[3] = {6e-3, 2e-3, 2e-3};
    const uint32_t cls = ngl_auto_class_of(4u << 20);
    int settled = 0;
    int calls = 0;
    for (; calls < 200 && !settled; calls++) {
        const int key = calls % KEYS;
        ngl_auto_plan plan[P];
        for (int r = 0; r < P; r++) {
            plan[r] = ngl_auto_plan_call(s.rank[r], 4u << 20);
            assert_int_equal(plan[r].mode, plan[0].mode);
        }
        const int created = plan[0].mode != NGL_MODE_OFF && !made[key][plan[0].mode];
        made[key][plan[0].mode] = 1;
        for (int r = 0; r < P; r++) {
            if (created) {
                plan[r] = ngl_auto_replan(s.rank[r], plan[r]);
                assert_false(plan[r].timed);
                assert_false(plan[r].agree);
            }
            assert_int_equal(plan[r].agree, plan[0].agree);
            ngl_auto_record(s.rank[r], &plan[r], t[plan[r].mode] * s.skew[r], 0.0, created);
        }
        if (plan[0].agree) {
            double vmin[NGL_AUTO_VEC];
            ngl_auto_local(s.rank[0], cls, vmin);
            for (int r = 1; r < P; r++) {
                double v[NGL_AUTO_VEC];
                ngl_auto_local(s.rank[r], cls, v);
                for (int i = 0; i < NGL_AUTO_VEC; i++) {
                    vmin[i] = v[i] < vmin[i] ? v[i] : vmin[i];
                }
            }
            for (int r = 0; r < P; r++) {
                ngl_auto_agree(s.rank[r], cls, vmin);
            }
            ngl_auto_choice(s.rank[0], cls, &settled);
        }
    }
    assert_true(settled);
    assert_int_equal(ngl_auto_choice(s.rank[0], cls, NULL), NGL_MODE_INT8);
    /* 12 exploration steps, plus one per stream creation in int8 (the
     * round's off calls need none: plain MPI has no streams here) */
    assert_true(calls <= 12 + KEYS);
    sim_free(&s);
}

/* Below the floor, with the MPI wrapper's six plain arms (Open MPI's
 * choice and forced algorithms): only plain arms run, the fastest is
 * chosen on every rank alike, an arm more than NGL_AUTO_CONTEND x slower
 * gets no second round, and the whole exploration takes 24 calls. */
static void test_plain_arms_below_floor(void **state)
{
    (void)state;
    sim s;
    sim_init_arms(&s, NGL_MODE_INT4, 1, 6, 64u << 10);
    s.noise = 0.05;
    double t[NGL_AUTO_NARMS] = {60e-6, 35e-6, 80e-6, 40e-6, 90e-6, 150e-6};
    t[NGL_AUTO_ARM_INT8] = t[NGL_AUTO_ARM_INT4] = 1e-6; /* must never run here */
    const uint32_t cls = ngl_auto_class_of(4096);
    int ran[NGL_AUTO_NARMS] = {0};
    int settled = 0, calls = 0;
    for (; calls < 100 && !settled; calls++) {
        ran[sim_call_arm(&s, 4096, t)]++;
        ngl_auto_choice(s.rank[0], cls, &settled);
    }
    assert_true(settled);
    assert_int_equal(calls, 6 * 3 + 2 * 3); /* first round, then alg1 and alg3 again */
    assert_int_equal(ngl_auto_choice_arm(s.rank[0], cls), 1);
    assert_int_equal(ngl_auto_choice(s.rank[0], cls, NULL), NGL_MODE_OFF);
    assert_int_equal(ran[5], 3);
    assert_int_equal(ran[1], 6);
    assert_int_equal(ran[NGL_AUTO_ARM_INT8] + ran[NGL_AUTO_ARM_INT4], 0);
    /* exploitation, with re-probes: the codecs never, the far arm rarely */
    for (int i = 0; i < 20000; i++) {
        ran[sim_call_arm(&s, 4096, t)]++;
    }
    assert_int_equal(ran[NGL_AUTO_ARM_INT8] + ran[NGL_AUTO_ARM_INT4], 0);
    assert_true(ran[1] > 20000 - 20000 / 100);
    assert_true(ran[5] < 20);
    assert_true(s.changes == 0);
    char buf[2048];
    assert_true(ngl_auto_describe(s.rank[0], "", buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "auto 4..8 KiB: plain alg1 (basic linear), "));
    assert_non_null(strstr(buf, "alg5 "));
    assert_null(strstr(buf, "int8"));
    sim_free(&s);
}

/* With one plain arm there is nothing to choose below the floor: such calls
 * are not planned, timed or agreed on, and not listed. */
static void test_single_plain_arm_small_not_planned(void **state)
{
    (void)state;
    sim s;
    sim_init_arms(&s, NGL_MODE_INT8, 1, 1, 64u << 10);
    for (int i = 0; i < 50; i++) {
        const ngl_auto_plan p = ngl_auto_plan_call(s.rank[0], 4096);
        assert_int_equal(p.mode, NGL_MODE_OFF);
        assert_int_equal(p.plain, 0);
        assert_false(p.timed);
        assert_false(p.agree);
    }
    char buf[256];
    assert_int_equal(ngl_auto_describe(s.rank[0], "", buf, sizeof buf), 0);
    sim_free(&s);
}

/* A floor that is not a power of two splits its class: calls below it run
 * plain arms only (a plan class of their own), the class's others may
 * compress. */
static void test_floor_splits_its_class(void **state)
{
    (void)state;
    sim s;
    sim_init_arms(&s, NGL_MODE_INT8, 1, 3, 100000);
    double t[NGL_AUTO_NARMS] = {3e-3, 2e-3, 4e-3};
    t[NGL_AUTO_ARM_INT8] = 0.5e-3;
    ngl_auto_plan p = ngl_auto_plan_call(s.rank[0], 80000);
    assert_int_equal(p.cls, NGL_AUTO_CLASSES);
    p = ngl_auto_plan_call(s.rank[0], 120000);
    assert_int_equal(p.cls, ngl_auto_class_of(120000));
    sim_free(&s);

    sim_init_arms(&s, NGL_MODE_INT8, 1, 3, 100000);
    for (int i = 0; i < 200; i++) {
        const uint32_t arm = sim_call_arm(&s, i % 2 ? 120000 : 80000, t);
        if (i % 2 == 0) {
            assert_false(arm == NGL_AUTO_ARM_INT8);
        }
    }
    assert_int_equal(ngl_auto_choice_arm(s.rank[0], NGL_AUTO_CLASSES), 1);
    assert_int_equal(ngl_auto_choice(s.rank[0], ngl_auto_class_of(120000), NULL), NGL_MODE_INT8);
    char buf[2048];
    ngl_auto_describe(s.rank[0], "", buf, sizeof buf);
    assert_non_null(strstr(buf, "auto 65536..100000 B: plain alg1 (basic linear)"));
    assert_non_null(strstr(buf, "auto 64..128 KiB: int8"));
    sim_free(&s);
}

/* Plain arms and codecs together on a slow link: the plain arms drop out
 * after their first round, int4 (allowed by the cap) wins; a second class
 * no longer pays the plain arms' warm-up. */
static void test_plain_arms_and_codecs(void **state)
{
    (void)state;
    sim s;
    sim_init_arms(&s, NGL_MODE_INT4, 1, 6, 64u << 10);
    double t[NGL_AUTO_NARMS] = {8e-3, 20e-3, 12e-3, 11e-3, 8e-3, 8.5e-3};
    t[NGL_AUTO_ARM_INT8] = 2.5e-3;
    t[NGL_AUTO_ARM_INT4] = 1.5e-3;
    int settled = 0, calls = 0;
    for (; calls < 100 && !settled; calls++) {
        sim_call_arm(&s, 16u << 20, t);
        ngl_auto_choice(s.rank[0], ngl_auto_class_of(16u << 20), &settled);
    }
    assert_int_equal(calls, 8 * 3);
    assert_int_equal(ngl_auto_choice(s.rank[0], ngl_auto_class_of(16u << 20), NULL), NGL_MODE_INT4);
    settled = 0;
    for (calls = 0; calls < 100 && !settled; calls++) {
        sim_call_arm(&s, 8u << 20, t);
        ngl_auto_choice(s.rank[0], ngl_auto_class_of(8u << 20), &settled);
    }
    assert_int_equal(calls, 6 * 2 + 2 * 3);
    sim_free(&s);
}

/* The chosen plain algorithm becomes slow (another job shares a switch
 * port, say): a re-probe moves the choice to the next best plain arm. */
static void test_plain_choice_follows_change(void **state)
{
    (void)state;
    sim s;
    sim_init_arms(&s, NGL_MODE_INT8, 1, 6, 64u << 10);
    s.noise = 0.05;
    double t[NGL_AUTO_NARMS] = {60e-6, 35e-6, 80e-6, 45e-6, 90e-6, 150e-6};
    const uint32_t cls = ngl_auto_class_of(8192);
    for (int i = 0; i < 10000; i++) {
        sim_call_arm(&s, 8192, t);
    }
    assert_int_equal(ngl_auto_choice_arm(s.rank[0], cls), 1);
    t[1] = 120e-6;
    int moved_after = -1;
    for (int i = 0; i < 10000 && moved_after < 0; i++) {
        sim_call_arm(&s, 8192, t);
        if (ngl_auto_choice_arm(s.rank[0], cls) == 3) {
            moved_after = i;
        }
    }
    assert_true(moved_after >= 0);
    assert_true(moved_after <= 4096 + 16);
    sim_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_mode_is_fixed),
        cmocka_unit_test(test_explore_then_fastest),
        cmocka_unit_test(test_hysteresis_and_probe_cost),
        cmocka_unit_test(test_follows_a_changed_link),
        cmocka_unit_test(test_created_samples_dropped),
        cmocka_unit_test(test_replan_created_streams),
        cmocka_unit_test(test_plain_arms_below_floor),
        cmocka_unit_test(test_single_plain_arm_small_not_planned),
        cmocka_unit_test(test_floor_splits_its_class),
        cmocka_unit_test(test_plain_arms_and_codecs),
        cmocka_unit_test(test_plain_choice_follows_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
