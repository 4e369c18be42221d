/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine_auto.c -- NANGILA_MODE=auto: for every message-size class of a
 * communicator, pick off, int8 or int4 (up to NANGILA_MODE_MAX) from times
 * measured on that communicator, the same pick on every rank.
 *
 * Why measure instead of model: what a compressed call costs depends on the
 * link (bandwidth, latency, contention), on the codec's speed on this CPU
 * while the application computes, and on how well the layer overlaps the
 * two. Each of these changes by an order of magnitude between a laptop, a
 * 2-core CI box and a cluster node; a fixed threshold tuned on one of them
 * (COCCL's 8 MiB, our former 256 KiB) is wrong on the others. A call that
 * actually ran in each mode is the one measurement that includes all of it.
 *
 * How:
 *   - exploration: the first calls of a class run each allowed mode in turn
 *     (one untimed warm-up call, then NGL_AUTO_SAMPLES timed calls each);
 *   - agreement: the ranks exchange the times of their latest calls in each
 *     mode (the same calls on every rank: sampling depends only on call
 *     counts) and take the element-wise MIN, i.e. per call the time of its
 *     fastest rank. Why: a rank's time for a call includes waiting for the
 *     others to arrive (the application's imbalance, noise of milliseconds
 *     on a busy node, larger than a small call's cost); the rank that
 *     arrived last timed the collective itself, which includes waiting for
 *     the slowest rank's frames and codec work. A mode's estimate is the
 *     median over its calls, so one stalled call does not decide. These
 *     agreed numbers go to ngl_auto_agree(), which decides from them only:
 *     every rank computes the same choice from the same inputs, at the same
 *     call, whatever its own clock said;
 *   - exploitation with re-probes: the chosen mode runs (and is timed);
 *     every `interval` calls of the class each other allowed mode runs
 *     NGL_AUTO_PROBE_CALLS times, then the ranks agree again. The interval
 *     doubles while the choice holds (to NGL_AUTO_REPROBE_MAX) and falls
 *     back to NGL_AUTO_REPROBE_MIN when it changes, so a stable job spends
 *     at most ~0.1% of its calls on other modes, and a link that becomes
 *     congested is noticed within a few hundred calls;
 *   - hysteresis: a settled choice changes only for a mode at least
 *     NGL_AUTO_HYSTERESIS faster, so noise does not flip it.
 * Schedules depend only on the class's call count, which is the same on
 * every rank (MPI and NCCL require the same sequence of collectives), so
 * every rank runs the same mode at the same call.
 */
#include "ngl_engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NGL_AUTO_WARMUP      1u   /* untimed calls before a mode's first samples */
#define NGL_AUTO_SAMPLES     5u   /* timed calls per mode while exploring */
#define NGL_AUTO_PROBE_CALLS 3u   /* calls per other mode in a re-probe */
#define NGL_AUTO_REPROBE_MIN 256u /* class calls between re-probes, after a change */
#define NGL_AUTO_REPROBE_MAX 4096u
#define NGL_AUTO_HYSTERESIS  0.10 /* a new mode must be this much faster */
#define NGL_AUTO_QUEUE       32u  /* steps of one round (exploration: 18) */
#define NGL_AUTO_REPLAN_MAX  64u  /* re-queued steps per round (ngl_auto_replan) */

typedef struct auto_step {
    uint8_t mode;
    uint8_t timed;
} auto_step;

typedef struct auto_class {
    uint64_t calls;      /* calls planned in this class */
    uint64_t next_probe; /* class call index of the next re-probe */
    uint32_t interval;   /* current re-probe interval */
    uint32_t changes;    /* choice changes after the first */
    uint32_t rounds;     /* agreements */
    int settled;
    ngl_mode choice;
    auto_step queue[NGL_AUTO_QUEUE]; /* steps before the next agreement */
    uint32_t qlen, qpos;
    uint32_t replans; /* steps re-queued this round */
    /* this rank's latest samples since the last agreement (a ring) */
    double t_smp[NGL_AUTO_NMODES][NGL_AUTO_KEEP], c_smp[NGL_AUTO_NMODES][NGL_AUTO_KEEP];
    uint32_t t_n[NGL_AUTO_NMODES];
    /* agreed estimates (0 = never measured) */
    double est[NGL_AUTO_NMODES];   /* seconds per call */
    double codec[NGL_AUTO_NMODES]; /* encode + decode seconds per call */
    uint64_t bytes;                /* bytes of the class's latest call */
} auto_class;

struct ngl_auto {
    ngl_engine_config cfg;
    int enabled;
    ngl_mode cap;
    auto_class cls[NGL_AUTO_CLASSES];
};

static const char *mode_name(ngl_mode m)
{
    return m == NGL_MODE_OFF ? "off" : m == NGL_MODE_INT8 ? "int8" : "int4";
}

ngl_status ngl_auto_create(const ngl_engine_config *cfg, ngl_auto **out)
{
    *out = NULL;
    ngl_auto *a = calloc(1, sizeof *a);
    if (a == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    a->cfg = *cfg;
    a->enabled = cfg->codec.mode_auto;
    a->cap = cfg->codec.mode_auto ? cfg->codec.mode_max : cfg->codec.mode;
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

static int mode_allowed(const ngl_auto *a, unsigned m)
{
    return m == NGL_MODE_OFF || m == NGL_MODE_INT8 ||
           (m == NGL_MODE_INT4 && a->cap == NGL_MODE_INT4);
}

static void queue_add(auto_class *c, ngl_mode m, unsigned untimed, unsigned timed)
{
    for (unsigned i = 0; i < untimed + timed && c->qlen < NGL_AUTO_QUEUE; i++) {
        c->queue[c->qlen].mode = (uint8_t)m;
        c->queue[c->qlen].timed = i >= untimed;
        c->qlen++;
    }
}

ngl_auto_plan ngl_auto_plan_call(ngl_auto *a, uint64_t bytes)
{
    ngl_auto_plan p = {.mode = a->cap, .cls = ngl_auto_class_of(bytes)};
    if (!a->enabled) {
        return p;
    }
    auto_class *c = &a->cls[p.cls];
    c->bytes = bytes;
    if (c->qpos == c->qlen && (!c->settled || c->calls >= c->next_probe)) {
        c->qlen = c->qpos = 0;
        c->replans = 0;
        for (unsigned m = 0; m < NGL_AUTO_NMODES; m++) {
            if (!mode_allowed(a, m)) {
                continue;
            }
            if (!c->settled) {
                /* exploration: every allowed mode, warm-up first */
                queue_add(c, (ngl_mode)m, NGL_AUTO_WARMUP, NGL_AUTO_SAMPLES);
            } else if (m != (unsigned)c->choice) {
                /* re-probe: the other modes; the chosen one has been timed
                 * on every call since the last agreement */
                queue_add(c, (ngl_mode)m, 0, NGL_AUTO_PROBE_CALLS);
            }
        }
    }
    c->calls++;
    if (c->qpos < c->qlen) {
        const auto_step s = c->queue[c->qpos++];
        p.mode = (ngl_mode)s.mode;
        p.timed = s.timed;
        p.agree = c->qpos == c->qlen;
        return p;
    }
    p.mode = c->choice;
    p.timed = 1;
    return p;
}

ngl_auto_plan ngl_auto_replan(ngl_auto *a, ngl_auto_plan p)
{
    if (!a->enabled || !p.timed || p.cls >= NGL_AUTO_CLASSES) {
        return p;
    }
    auto_class *c = &a->cls[p.cls];
    /* The step just taken is at qpos - 1 (a timed step of this round: the
     * chosen mode between rounds has an empty queue and nothing to redo). */
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
    if (!a->enabled || !p->timed || created || p->cls >= NGL_AUTO_CLASSES) {
        return;
    }
    auto_class *c = &a->cls[p->cls];
    const uint32_t slot = c->t_n[p->mode]++ % NGL_AUTO_KEEP;
    c->t_smp[p->mode][slot] = seconds;
    c->c_smp[p->mode][slot] = codec_seconds;
}

void ngl_auto_local(const ngl_auto *a, uint32_t cls, double v[NGL_AUTO_VEC])
{
    const auto_class *c = &a->cls[cls];
    for (unsigned m = 0; m < NGL_AUTO_NMODES; m++) {
        const uint32_t n = c->t_n[m] < NGL_AUTO_KEEP ? c->t_n[m] : NGL_AUTO_KEEP;
        for (uint32_t i = 0; i < NGL_AUTO_KEEP; i++) {
            v[NGL_AUTO_T(m, i)] = i < n ? c->t_smp[m][i] : 0.0;
            v[NGL_AUTO_C(m, i)] = i < n ? c->c_smp[m][i] : 0.0;
        }
    }
}

/* Median of the nonzero values among @p n; 0 if none. */
static double median_nonzero(const double *v, uint32_t n, uint32_t stride)
{
    double s[NGL_AUTO_KEEP];
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        const double x = v[(size_t)i * stride];
        if (x > 0.0) {
            uint32_t j = k++;
            for (; j > 0 && s[j - 1] > x; j--) {
                s[j] = s[j - 1];
            }
            s[j] = x;
        }
    }
    return k == 0 ? 0.0 : k % 2 ? s[k / 2] : 0.5 * (s[k / 2 - 1] + s[k / 2]);
}

static const char *class_range(uint32_t cls, char *buf, size_t cap)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
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

/* "off 2.31 ms (link 0.68 GB/s), int8 0.81 ms (codec 3.9 GB/s), ..." */
static size_t describe_estimates(const ngl_auto *a, const auto_class *c, char *buf, size_t cap)
{
    size_t n = 0;
    const int P = a->cfg.nranks;
    if (cap) {
        buf[0] = '\0';
    }
    for (unsigned m = 0; m < NGL_AUTO_NMODES; m++) {
        if (!mode_allowed(a, m) || c->est[m] <= 0.0) {
            continue;
        }
        appendf(buf, cap, &n, "%s%s %.3g ms", n ? ", " : "", mode_name((ngl_mode)m),
                1e3 * c->est[m]);
        if (m == NGL_MODE_OFF) {
            /* what a ring allreduce moves per rank, over the time it took */
            const double ring = 2.0 * (P - 1) / (double)P * (double)c->bytes;
            appendf(buf, cap, &n, " (link %.3g GB/s)", ring / c->est[m] * 1e-9);
        } else if (c->codec[m] > 0.0) {
            appendf(buf, cap, &n, " (codec %.3g GB/s)", (double)c->bytes / c->codec[m] * 1e-9);
        }
    }
    return n;
}

void ngl_auto_agree(ngl_auto *a, uint32_t cls, const double vmin[NGL_AUTO_VEC])
{
    auto_class *c = &a->cls[cls];
    for (unsigned m = 0; m < NGL_AUTO_NMODES; m++) {
        /* vmin holds, per call sampled, its fastest rank's time: the
         * collective without the application's arrival skew. The median
         * over those calls is the mode's typical cost. */
        const double t = median_nonzero(vmin + NGL_AUTO_T(m, 0), NGL_AUTO_KEEP, 1);
        if (t > 0.0) {
            c->est[m] = t;
            c->codec[m] = median_nonzero(vmin + NGL_AUTO_C(m, 0), NGL_AUTO_KEEP, 1);
        }
        c->t_n[m] = 0;
    }
    c->qlen = c->qpos = 0;
    c->rounds++;
    int best = -1;
    for (unsigned m = 0; m < NGL_AUTO_NMODES; m++) {
        if (mode_allowed(a, m) && c->est[m] > 0.0 && (best < 0 || c->est[m] < c->est[best])) {
            best = (int)m;
        }
    }
    const ngl_mode before = c->choice;
    const int was_settled = c->settled;
    if (best < 0) {
        /* nothing measured (every sample dropped): stay exact, ask again */
        c->choice = NGL_MODE_OFF;
    } else if (!c->settled) {
        c->choice = (ngl_mode)best;
    } else if ((ngl_mode)best != c->choice &&
               !(c->est[c->choice] > 0.0 &&
                 c->est[best] > (1.0 - NGL_AUTO_HYSTERESIS) * c->est[c->choice])) {
        c->choice = (ngl_mode)best;
    }
    c->settled = best >= 0;
    if (was_settled && c->choice != before) {
        c->changes++;
        c->interval = NGL_AUTO_REPROBE_MIN;
    } else if (!was_settled || c->interval == 0) {
        c->interval = NGL_AUTO_REPROBE_MIN;
    } else if (c->interval < NGL_AUTO_REPROBE_MAX) {
        c->interval *= 2u;
    }
    c->next_probe = c->calls + (c->settled ? c->interval : 1u);

    if (!was_settled || c->choice != before) {
        char range[32], est[256];
        describe_estimates(a, c, est, sizeof est);
        ngl_engine_logf(&a->cfg, NGL_LOG_INFO, "auto %s: %s%s (%s)",
                        class_range(cls, range, sizeof range), mode_name(c->choice),
                        was_settled ? " (changed)" : "", est);
    }
}

ngl_mode ngl_auto_choice(const ngl_auto *a, uint32_t cls, int *settled)
{
    const auto_class *c = &a->cls[cls < NGL_AUTO_CLASSES ? cls : 0];
    if (settled) {
        *settled = c->settled;
    }
    return c->choice;
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
    for (uint32_t k = 0; k < NGL_AUTO_CLASSES; k++) {
        const auto_class *c = &a->cls[k];
        if (c->calls == 0) {
            continue;
        }
        char range[32], est[256];
        describe_estimates(a, c, est, sizeof est);
        appendf(buf, cap, &n, "%sauto %s: %s, %llu calls, %u agreements, %u changes (%s)\n", prefix,
                class_range(k, range, sizeof range),
                c->settled ? mode_name(c->choice) : "exploring", (unsigned long long)c->calls,
                c->rounds, c->changes, est);
    }
    return n;
}
