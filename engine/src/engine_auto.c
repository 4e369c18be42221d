/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine_auto.c -- NANGILA_MODE=auto: for every message-size class of a
 * communicator, pick an arm -- one of the layer's plain (exact) variants,
 * or a codec, int8 or int4 (up to NANGILA_MODE_MAX) -- from times measured
 * on that communicator, the same pick on every rank.
 *
 * Why measure instead of model: what a call costs depends on the link
 * (bandwidth, latency, contention), on the codec's speed on this CPU while
 * the application computes, on how well the layer overlaps the two, and,
 * for plain calls, on which of the MPI library's algorithms runs (at 4 KiB
 * on four ranks Open MPI's own choice was up to 1.7x slower than its best
 * forced one). Each of these changes by an order of magnitude between a
 * laptop, a 2-core CI box and a cluster node; a fixed threshold tuned on
 * one of them (COCCL's 8 MiB, our former 256 KiB) is wrong on the others.
 * A call that actually ran in each arm is the one measurement that
 * includes all of it.
 *
 * How:
 *   - exploration, in two rounds: first every allowed arm runs one untimed
 *     warm-up call (a plain variant only in the first class it runs in: its
 *     connections and buffers are the process's, not the class's) and
 *     NGL_AUTO_SCREEN timed calls; the ranks agree, and an arm whose
 *     fastest call was more than NGL_AUTO_CONTEND x the best estimate
 *     drops out of the round (a 256 MiB call on a slow link takes seconds,
 *     so clearly slower arms must not get more). The contenders, if more
 *     than one is left, run NGL_AUTO_REFINE more timed calls each and the
 *     ranks agree again; the class then settles on the fastest;
 *   - agreement: the ranks exchange the times of their latest calls in each
 *     arm (the same calls on every rank: sampling depends only on call
 *     counts and agreed numbers), negated, and take the element-wise MIN,
 *     i.e. per call the time of its slowest rank: when the last rank is
 *     done, which is what the caller waits for. Why not the fastest rank
 *     (the one that arrived last, whose time excludes the application's
 *     imbalance; our former choice): algorithms finish their ranks at
 *     different times. On four ranks sharing two cores, at 4-32 KiB, the
 *     fastest rank put recursive doubling 1.5-2.5x ahead of basic linear,
 *     while from a common start (scripts/bench-mpi.sh's barrier) basic
 *     linear finished all ranks first, by up to 1.6x. Arrival imbalance
 *     adds to every arm alike, and an arm's estimate is the median over its
 *     calls, so one stalled call does not decide. These agreed numbers go
 *     to ngl_auto_agree(), which decides from them only: every rank
 *     computes the same choice from the same inputs, at the same call,
 *     whatever its own clock said;
 *   - exploitation with re-probes: the chosen arm runs (and is timed);
 *     every `interval` calls of the class each other allowed arm runs,
 *     NGL_AUTO_PROBE_CALLS times if it was a contender, once if not, then
 *     the ranks agree again. The interval doubles while the choice holds
 *     (to NGL_AUTO_REPROBE_MAX) and falls back to NGL_AUTO_REPROBE_MIN when
 *     it changes, so a stable job spends well under 1% of its calls on
 *     other arms, and a link that becomes congested is noticed within a
 *     few hundred calls;
 *   - hysteresis: a settled choice changes only for an arm at least
 *     NGL_AUTO_HYSTERESIS faster over NGL_AUTO_PROBE_CALLS calls or more;
 *     one lucky call of a far arm only earns it a full re-probe soon.
 * Schedules depend only on the class's call count and on agreed numbers,
 * which are the same on every rank (MPI and NCCL require the same sequence
 * of collectives), so every rank runs the same arm at the same call.
 */
#include "ngl_engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NGL_AUTO_WARMUP      1u   /* untimed calls before an arm's first samples */
#define NGL_AUTO_SCREEN      2u   /* timed calls per arm in exploration's first round */
#define NGL_AUTO_REFINE      3u   /* more per contender in its second round */
#define NGL_AUTO_CONTEND     1.25 /* contender: fastest call within this x the best */
#define NGL_AUTO_PROBE_CALLS 3u   /* calls per other contender in a re-probe */
#define NGL_AUTO_REPROBE_MIN 256u /* class calls between re-probes, after a change */
#define NGL_AUTO_REPROBE_MAX 4096u
#define NGL_AUTO_HYSTERESIS  0.10 /* a new arm must be this much faster */
#define NGL_AUTO_QUEUE       64u  /* steps of one round (exploration: 3 per arm) */
#define NGL_AUTO_REPLAN_MAX  64u  /* re-queued steps per round (ngl_auto_replan) */

typedef struct auto_step {
    uint8_t arm;
    uint8_t timed;
} auto_step;

typedef struct auto_class {
    uint64_t calls;      /* calls planned in this class */
    uint64_t next_probe; /* class call index of the next re-probe */
    uint32_t interval;   /* current re-probe interval */
    uint32_t changes;    /* choice changes after the first */
    uint32_t rounds;     /* agreements */
    int settled;
    int screened;                    /* exploration's first round agreed, its second queued */
    uint32_t choice;                 /* an arm */
    auto_step queue[NGL_AUTO_QUEUE]; /* steps before the next agreement */
    uint32_t qlen, qpos;
    uint32_t replans; /* steps re-queued this round */
    /* this rank's latest samples since the last agreement (rings) */
    double t_smp[NGL_AUTO_NARMS][NGL_AUTO_KEEP];
    double c_smp[2][NGL_AUTO_KEEP]; /* codec seconds, int8 and int4 */
    uint32_t t_n[NGL_AUTO_NARMS];
    /* agreed estimates (0 = never measured) */
    double est[NGL_AUTO_NARMS];     /* seconds per call: median of the latest round */
    double lo[NGL_AUTO_NARMS];      /* its fastest call */
    uint32_t n_est[NGL_AUTO_NARMS]; /* calls behind est in the latest agreement (0: none) */
    double codec[2];                /* encode + decode seconds per call, int8 and int4 */
    uint64_t bytes;                 /* bytes of the class's latest call */
} auto_class;

struct ngl_auto {
    ngl_engine_config cfg;
    int enabled;
    ngl_mode cap;
    uint32_t nplain; /* plain arms, >= 1 */
    uint32_t warmed; /* plain variants that have had their warm-up call (bit p) */
    auto_class cls[NGL_AUTO_SLOTS];
};

ngl_status ngl_auto_create(const ngl_engine_config *cfg, ngl_auto **out)
{
    *out = NULL;
    if (cfg->auto_plain > NGL_AUTO_PLAIN_MAX) {
        return NGL_ERR_INVALID_ARG;
    }
    ngl_auto *a = calloc(1, sizeof *a);
    if (a == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    a->cfg = *cfg;
    a->enabled = cfg->codec.mode_auto;
    a->cap = cfg->codec.mode_auto ? cfg->codec.mode_max : cfg->codec.mode;
    a->nplain = cfg->auto_plain > 1u ? cfg->auto_plain : 1u;
    *out = a;
    return NGL_OK;
}

void ngl_auto_destroy(ngl_auto *a)
{
    free(a);
}

int ngl_auto_enabled(const ngl_auto *a)
{
    return a->enabled;
}

uint32_t ngl_auto_class_of(uint64_t bytes)
{
    uint32_t c = 0;
    while (c + 1u < NGL_AUTO_CLASSES && (bytes >> (c + 1u)) != 0) {
        c++;
    }
    return c;
}

/* 1 if size class @p c (not the extra slot) has a call of at least
 * NANGILA_MIN_BYTES: its upper end is above the floor. */
static int class_reaches_floor(const ngl_auto *a, uint32_t c)
{
    return c + 1u >= 63u || (1ull << (c + 1u)) > a->cfg.codec.min_bytes;
}

/* Plan class of a call of @p bytes: its size class, or the extra slot for
 * the calls below the floor of the class that holds the floor. */
static uint32_t slot_of(const ngl_auto *a, uint64_t bytes)
{
    const uint32_t c = ngl_auto_class_of(bytes);
    return bytes < a->cfg.codec.min_bytes && class_reaches_floor(a, c) ? NGL_AUTO_CLASSES : c;
}

/* Codecs may run in plan class @p slot. */
static int slot_codec(const ngl_auto *a, uint32_t slot)
{
    return slot < NGL_AUTO_CLASSES && class_reaches_floor(a, slot);
}

static int arm_allowed(const ngl_auto *a, uint32_t slot, uint32_t arm)
{
    if (arm < a->nplain) {
        return 1;
    }
    return slot_codec(a, slot) &&
           (arm == NGL_AUTO_ARM_INT8 || (arm == NGL_AUTO_ARM_INT4 && a->cap == NGL_MODE_INT4));
}

static int arm_is_codec(uint32_t arm)
{
    return arm >= NGL_AUTO_ARM_INT8;
}

static uint32_t arm_of(const ngl_auto *a, const ngl_auto_plan *p)
{
    if (p->mode == NGL_MODE_OFF) {
        return p->plain < a->nplain ? p->plain : 0u;
    }
    return p->mode == NGL_MODE_INT8 ? NGL_AUTO_ARM_INT8 : NGL_AUTO_ARM_INT4;
}

static void plan_arm(ngl_auto_plan *p, uint32_t arm)
{
    p->mode = arm == NGL_AUTO_ARM_INT8   ? NGL_MODE_INT8
              : arm == NGL_AUTO_ARM_INT4 ? NGL_MODE_INT4
                                         : NGL_MODE_OFF;
    p->plain = arm_is_codec(arm) ? 0u : arm;
}

/* Arms still in the running after a round: those measured, whose fastest
 * call was within NGL_AUTO_CONTEND x the best estimate, and those never
 * measured (every sample dropped). @return how many; *best the best arm
 * (-1 if none measured). */
static unsigned contenders(const ngl_auto *a, const auto_class *c, uint32_t slot,
                           int in[NGL_AUTO_NARMS], int *best)
{
    *best = -1;
    for (uint32_t m = 0; m < NGL_AUTO_NARMS; m++) {
        if (arm_allowed(a, slot, m) && c->est[m] > 0.0 &&
            (*best < 0 || c->est[m] < c->est[*best])) {
            *best = (int)m;
        }
    }
    unsigned n = 0;
    for (uint32_t m = 0; m < NGL_AUTO_NARMS; m++) {
        in[m] = arm_allowed(a, slot, m) &&
                (c->est[m] <= 0.0 || (*best >= 0 && c->lo[m] <= NGL_AUTO_CONTEND * c->est[*best]));
        n += (unsigned)in[m];
    }
    return n;
}

static void queue_add(auto_class *c, uint32_t arm, unsigned untimed, unsigned timed)
{
    for (unsigned i = 0; i < untimed + timed && c->qlen < NGL_AUTO_QUEUE; i++) {
        c->queue[c->qlen].arm = (uint8_t)arm;
        c->queue[c->qlen].timed = i >= untimed;
        c->qlen++;
    }
}

/* The steps up to the class's next agreement. */
static void queue_round(ngl_auto *a, auto_class *c, uint32_t slot)
{
    c->qlen = c->qpos = 0;
    c->replans = 0;
    int in[NGL_AUTO_NARMS], best;
    if (!c->settled) {
        contenders(a, c, slot, in, &best);
    }
    for (uint32_t m = 0; m < NGL_AUTO_NARMS; m++) {
        if (!arm_allowed(a, slot, m)) {
            continue;
        }
        if (!c->settled && !c->screened) {
            /* exploration, first round: every allowed arm */
            unsigned warm = NGL_AUTO_WARMUP;
            if (!arm_is_codec(m)) {
                warm = a->warmed & (1u << m) ? 0u : NGL_AUTO_WARMUP;
                a->warmed |= 1u << m;
            }
            queue_add(c, m, warm, NGL_AUTO_SCREEN);
        } else if (!c->settled) {
            /* second round: the contenders (a warm-up for one never measured) */
            if (in[m]) {
                queue_add(c, m, c->est[m] > 0.0 ? 0u : NGL_AUTO_WARMUP, NGL_AUTO_REFINE);
            }
        } else if (m != c->choice) {
            /* re-probe: the other arms; the chosen one has been timed on
             * every call since the last agreement */
            const int close = c->est[m] <= 0.0 || c->lo[m] <= NGL_AUTO_CONTEND * c->est[c->choice];
            queue_add(c, m, 0, close ? NGL_AUTO_PROBE_CALLS : 1u);
        }
    }
}

ngl_auto_plan ngl_auto_plan_call(ngl_auto *a, uint64_t bytes)
{
    ngl_auto_plan p = {.mode = a->cap, .cls = ngl_auto_class_of(bytes)};
    if (!a->enabled) {
        return p;
    }
    p.cls = slot_of(a, bytes);
    if (!slot_codec(a, p.cls) && a->nplain < 2u) {
        p.mode = NGL_MODE_OFF; /* nothing to choose: plain, not planned */
        return p;
    }
    auto_class *c = &a->cls[p.cls];
    c->bytes = bytes;
    if (c->qpos == c->qlen && (!c->settled || c->calls >= c->next_probe)) {
        queue_round(a, c, p.cls);
    }
    c->calls++;
    if (c->qpos < c->qlen) {
        const auto_step s = c->queue[c->qpos++];
        plan_arm(&p, s.arm);
        p.timed = s.timed;
        p.agree = c->qpos == c->qlen;
        return p;
    }
    plan_arm(&p, c->choice);
    p.timed = c->settled;
    return p;
}

ngl_auto_plan ngl_auto_replan(ngl_auto *a, ngl_auto_plan p)
{
    if (!a->enabled || !p.timed || p.cls >= NGL_AUTO_SLOTS) {
        return p;
    }
    auto_class *c = &a->cls[p.cls];
    /* The step just taken is at qpos - 1 (a timed step of this round: the
     * chosen arm between rounds has an empty queue and nothing to redo). */
    if (c->qpos == 0 || c->qpos > c->qlen || c->qlen >= NGL_AUTO_QUEUE ||
        c->replans >= NGL_AUTO_REPLAN_MAX) {
        p.timed = 0;
        return p;
    }
    memmove(&c->queue[c->qpos + 1], &c->queue[c->qpos], (c->qlen - c->qpos) * sizeof c->queue[0]);
    c->queue[c->qpos] = c->queue[c->qpos - 1];
    c->qlen++;
    c->replans++;
    p.timed = 0;
    p.agree = 0; /* the round now ends one step later */
    return p;
}

void ngl_auto_record(ngl_auto *a, const ngl_auto_plan *p, double seconds, double codec_seconds,
                     int created)
{
    /* A call that created its streams paid for allocation and first touch;
     * the same holds on every rank, so dropping it keeps counts aligned. */
    if (!a->enabled || !p->timed || created || p->cls >= NGL_AUTO_SLOTS) {
        return;
    }
    auto_class *c = &a->cls[p->cls];
    const uint32_t arm = arm_of(a, p);
    const uint32_t slot = c->t_n[arm]++ % NGL_AUTO_KEEP;
    c->t_smp[arm][slot] = seconds;
    if (arm_is_codec(arm)) {
        c->c_smp[arm - NGL_AUTO_ARM_INT8][slot] = codec_seconds;
    }
}

void ngl_auto_local(const ngl_auto *a, uint32_t cls, double v[NGL_AUTO_VEC])
{
    const auto_class *c = &a->cls[cls < NGL_AUTO_SLOTS ? cls : 0];
    for (uint32_t m = 0; m < NGL_AUTO_NARMS; m++) {
        const uint32_t n = c->t_n[m] < NGL_AUTO_KEEP ? c->t_n[m] : NGL_AUTO_KEEP;
        for (uint32_t i = 0; i < NGL_AUTO_KEEP; i++) {
            v[NGL_AUTO_T(m, i)] = i < n ? -c->t_smp[m][i] : 0.0; /* MIN: the slowest rank */
            if (arm_is_codec(m)) {
                v[NGL_AUTO_C(m - NGL_AUTO_ARM_INT8 + 1, i)] =
                    i < n ? c->c_smp[m - NGL_AUTO_ARM_INT8][i] : 0.0;
            }
        }
    }
}

/* Median of the nonzero values among @p n; 0 if none. *k their count,
 * *lo the smallest. */
static double median_nonzero(const double *v, uint32_t n, uint32_t *count, double *lo)
{
    double s[NGL_AUTO_KEEP];
    uint32_t k = 0;
    for (uint32_t i = 0; i < n && i < NGL_AUTO_KEEP; i++) {
        const double x = v[i];
        if (x > 0.0) {
            uint32_t j = k++;
            for (; j > 0 && s[j - 1] > x; j--) {
                s[j] = s[j - 1];
            }
            s[j] = x;
        }
    }
    if (count) {
        *count = k;
    }
    if (lo) {
        *lo = k ? s[0] : 0.0;
    }
    return k == 0 ? 0.0 : k % 2 ? s[k / 2] : 0.5 * (s[k / 2 - 1] + s[k / 2]);
}

static const char *class_range(const ngl_auto *a, uint32_t cls, char *buf, size_t cap)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (cls >= NGL_AUTO_CLASSES) {
        /* below a floor that is not a power of two */
        const uint64_t fl = a->cfg.codec.min_bytes;
        snprintf(buf, cap, "%llu..%llu B", 1ull << ngl_auto_class_of(fl), (unsigned long long)fl);
        return buf;
    }
    const unsigned u = cls / 10u < 4u ? cls / 10u : 4u;
    const unsigned lo = 1u << (cls - 10u * u);
    snprintf(buf, cap, "%u..%u %s", lo, 2u * lo, unit[u]);
    return buf;
}

/* snprintf at buf + *n, advancing *n; output past @p cap is cut (the
 * buffer stays terminated). */
static void appendf(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void appendf(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    if (*n + 1 >= cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    const int w = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (w > 0) {
        *n = *n + (size_t)w < cap ? *n + (size_t)w : cap - 1;
    }
}

/* An arm's name: "int8", "int4", "off" (the one plain arm of a layer that
 * names none), the layer's name of a plain variant ("alg1"), or with
 * @p full "plain alg1 (basic linear)". */
static void arm_name(const ngl_auto *a, uint32_t arm, int full, char *buf, size_t cap)
{
    if (arm_is_codec(arm)) {
        snprintf(buf, cap, "%s", arm == NGL_AUTO_ARM_INT8 ? "int8" : "int4");
        return;
    }
    const char *name = a->cfg.auto_plain_names[arm];
    if (name == NULL) {
        if (a->nplain == 1u) {
            snprintf(buf, cap, "off");
        } else {
            snprintf(buf, cap, "%splain%u", full ? "plain " : "", arm);
        }
    } else if (full) {
        snprintf(buf, cap, "plain %s", name);
    } else {
        snprintf(buf, cap, "%.*s", (int)strcspn(name, " "), name);
    }
}

/* "off 2.31 ms (link 0.68 GB/s), int8 0.81 ms (codec 3.9 GB/s), ..."; the
 * link speed for the fastest plain arm only. */
static size_t describe_estimates(const ngl_auto *a, const auto_class *c, uint32_t slot, char *buf,
                                 size_t cap)
{
    size_t n = 0;
    const int P = a->cfg.nranks;
    if (cap) {
        buf[0] = '\0';
    }
    int fastest_plain = -1;
    for (uint32_t m = 0; m < a->nplain; m++) {
        if (c->est[m] > 0.0 && (fastest_plain < 0 || c->est[m] < c->est[fastest_plain])) {
            fastest_plain = (int)m;
        }
    }
    for (uint32_t m = 0; m < NGL_AUTO_NARMS; m++) {
        if (!arm_allowed(a, slot, m) || c->est[m] <= 0.0) {
            continue;
        }
        char name[64];
        arm_name(a, m, 0, name, sizeof name);
        appendf(buf, cap, &n, "%s%s %.3g ms", n ? ", " : "", name, 1e3 * c->est[m]);
        if ((int)m == fastest_plain) {
            /* what a ring allreduce moves per rank, over the time it took */
            const double ring = 2.0 * (P - 1) / (double)P * (double)c->bytes;
            appendf(buf, cap, &n, " (link %.3g GB/s)", ring / c->est[m] * 1e-9);
        } else if (arm_is_codec(m) && c->codec[m - NGL_AUTO_ARM_INT8] > 0.0) {
            appendf(buf, cap, &n, " (codec %.3g GB/s)",
                    (double)c->bytes / c->codec[m - NGL_AUTO_ARM_INT8] * 1e-9);
        }
    }
    return n;
}

void ngl_auto_agree(ngl_auto *a, uint32_t cls, const double vmin[NGL_AUTO_VEC])
{
    if (cls >= NGL_AUTO_SLOTS) {
        return;
    }
    auto_class *c = &a->cls[cls];
    for (uint32_t m = 0; m < NGL_AUTO_NARMS; m++) {
        /* vmin holds, per call sampled, minus its slowest rank's time:
         * until every rank was done. The median over those calls is the
         * arm's typical cost. */
        double slowest[NGL_AUTO_KEEP];
        for (uint32_t i = 0; i < NGL_AUTO_KEEP; i++) {
            slowest[i] = -vmin[NGL_AUTO_T(m, i)];
        }
        uint32_t k = 0;
        double lo = 0.0;
        const double t = median_nonzero(slowest, NGL_AUTO_KEEP, &k, &lo);
        c->n_est[m] = k;
        if (t > 0.0) {
            c->est[m] = t;
            c->lo[m] = lo;
            if (arm_is_codec(m)) {
                const uint32_t mode = m - NGL_AUTO_ARM_INT8 + 1u;
                c->codec[mode - 1u] =
                    median_nonzero(vmin + NGL_AUTO_C(mode, 0), NGL_AUTO_KEEP, NULL, NULL);
            }
        }
    }
    c->qlen = c->qpos = 0;
    c->rounds++;
    int in[NGL_AUTO_NARMS], best;
    const unsigned ncont = contenders(a, c, cls, in, &best);
    if (!c->settled && !c->screened && best >= 0) {
        c->screened = 1;
        if (ncont > 1u) {
            /* the contenders' second round adds to these samples */
            return;
        }
    }
    memset(c->t_n, 0, sizeof c->t_n);
    const uint32_t before = c->choice;
    const int was_settled = c->settled;
    int soon = 0; /* re-probe after NGL_AUTO_REPROBE_MIN calls */
    if (best < 0) {
        /* nothing measured (every sample dropped): stay plain, explore again */
        c->choice = 0;
        c->screened = 0;
    } else if (!c->settled) {
        c->choice = (uint32_t)best;
    } else if ((uint32_t)best != c->choice &&
               !(c->est[c->choice] > 0.0 &&
                 c->est[best] > (1.0 - NGL_AUTO_HYSTERESIS) * c->est[c->choice])) {
        if (c->n_est[best] >= NGL_AUTO_PROBE_CALLS) {
            c->choice = (uint32_t)best;
        } else {
            soon = 1; /* faster on a call or two: a full re-probe decides */
        }
    }
    c->settled = best >= 0;
    if (was_settled && c->choice != before) {
        c->changes++;
        c->interval = NGL_AUTO_REPROBE_MIN;
    } else if (!was_settled || c->interval == 0 || soon) {
        c->interval = NGL_AUTO_REPROBE_MIN;
    } else if (c->interval < NGL_AUTO_REPROBE_MAX) {
        c->interval *= 2u;
    }
    c->next_probe = c->calls + (c->settled ? c->interval : 1u);

    if (c->settled && (!was_settled || c->choice != before)) {
        char range[48], est[640], name[80];
        describe_estimates(a, c, cls, est, sizeof est);
        arm_name(a, c->choice, 1, name, sizeof name);
        ngl_engine_logf(&a->cfg, NGL_LOG_INFO, "auto %s: %s%s (%s)",
                        class_range(a, cls, range, sizeof range), name,
                        was_settled ? " (changed)" : "", est);
    }
}

ngl_mode ngl_auto_choice(const ngl_auto *a, uint32_t cls, int *settled)
{
    const auto_class *c = &a->cls[cls < NGL_AUTO_SLOTS ? cls : 0];
    if (settled) {
        *settled = c->settled;
    }
    ngl_auto_plan p = {.mode = NGL_MODE_OFF};
    plan_arm(&p, c->choice);
    return p.mode;
}

uint32_t ngl_auto_choice_arm(const ngl_auto *a, uint32_t cls)
{
    return a->cls[cls < NGL_AUTO_SLOTS ? cls : 0].choice;
}

size_t ngl_auto_describe(const ngl_auto *a, const char *prefix, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap) {
        buf[0] = '\0';
    }
    if (!a->enabled) {
        return 0;
    }
    for (uint32_t k = 0; k < NGL_AUTO_SLOTS; k++) {
        const auto_class *c = &a->cls[k];
        if (c->calls == 0) {
            continue;
        }
        char range[48], est[640], name[80] = "exploring";
        describe_estimates(a, c, k, est, sizeof est);
        if (c->settled) {
            arm_name(a, c->choice, 1, name, sizeof name);
        }
        appendf(buf, cap, &n, "%sauto %s: %s, %llu calls, %u agreements, %u changes (%s)\n", prefix,
                class_range(a, k, range, sizeof range), name, (unsigned long long)c->calls,
                c->rounds, c->changes, est);
    }
    return n;
}
