/* SPDX-License-Identifier: Apache-2.0 */
/* engine_ident.c -- stream identity: period detection over a communicator's call history. */
#include "ngl_engine.h"

#include <string.h>

void ngl_ident_init(ngl_ident *kt)
{
    memset(kt, 0, sizeof *kt);
}

void ngl_ident_force_period(ngl_ident *kt, uint32_t period)
{
    kt->forced = period;
}

void ngl_ident_set_short_cycles(ngl_ident *kt, uint32_t max_len, uint32_t evidence)
{
    kt->short_max = max_len > NGL_IDENT_SHORT_MAX ? NGL_IDENT_SHORT_MAX : max_len;
    kt->short_evidence = evidence > NGL_IDENT_HIST ? NGL_IDENT_HIST : evidence;
}

/* Length of the longest @p q-periodic suffix of the history. */
static uint64_t qrun(const ngl_ident *kt, uint32_t q)
{
    return kt->qmatch[q - 1] + q;
}

static uint64_t hist_at(const ngl_ident *kt, uint64_t idx)
{
    return kt->hist[idx % NGL_IDENT_HIST];
}

/* 1 if the last @p span tokens are @p p-periodic, 0 if not, -1 if the
 * budget ran out before it could tell; spends the budget. */
static int tail_periodic(const ngl_ident *kt, uint64_t p, uint64_t span, uint32_t *budget)
{
    const uint64_t last = kt->ncalls - 1;
    for (uint64_t j = 0; j + p < span; j++) {
        if (*budget == 0) {
            return -1;
        }
        (*budget)--;
        if (hist_at(kt, last - j) != hist_at(kt, last - j - p)) {
            return 0;
        }
    }
    return 1;
}

/*
 * Smallest period p >= pmin such that the last max(2p, NGL_IDENT_MIN_EVIDENCE)
 * tokens are p-periodic (at least two full copies of the cycle), or 0.
 * The evidence floor keeps a doubled call ([.. B B]) from passing for a
 * period-1 cycle. A tail that is also @p avoid-periodic (the current lock)
 * is no evidence of a longer cycle: [A A A A] fits every period. A window
 * inside a run with a cycle of at most short_max calls fits every multiple
 * of it too; it counts only with short_evidence calls behind it. Bounded by
 * NGL_IDENT_SEARCH_BUDGET comparisons (a search that runs out finds
 * nothing), so a history without structure costs microseconds.
 */
static uint32_t find_period(const ngl_ident *kt, uint32_t pmin, uint32_t avoid)
{
    const uint64_t n = kt->ncalls;
    const uint64_t last = n - 1;
    const uint64_t cur = hist_at(kt, last);
    uint32_t budget = NGL_IDENT_SEARCH_BUDGET;
    for (uint64_t p = pmin; p <= NGL_IDENT_HIST / 2; p++) {
        const uint64_t span = 2u * p > NGL_IDENT_MIN_EVIDENCE ? 2u * p : NGL_IDENT_MIN_EVIDENCE;
        if (span > n || budget == 0) {
            return 0;
        }
        /* A window inside a run with a short cycle (one token repeated,
         * or a few alternating) is periodic for every multiple of that
         * cycle: as much one NCCL bucket's slices (its channel groups take
         * turns) as a step of a few calls. The latter only with
         * short_evidence calls behind it. */
        uint64_t inside = 0;
        for (uint32_t q = 1; q <= kt->short_max; q++) {
            const uint64_t r = qrun(kt, q);
            if (r >= span && r > inside) {
                inside = r;
            }
        }
        if (inside != 0) {
            if (avoid == 0 && inside >= kt->short_evidence) {
                return (uint32_t)p;
            }
            p = inside / 2; /* no window inside the run says more */
            continue;
        }
        budget--;
        if (hist_at(kt, last - p) != cur) {
            continue;
        }
        const int periodic = tail_periodic(kt, p, span, &budget);
        if (periodic <= 0) {
            if (periodic < 0) {
                return 0;
            }
            continue;
        }
        if (avoid != 0 && avoid < span) {
            const int explained = tail_periodic(kt, avoid, span, &budget);
            if (explained != 0) {
                if (explained < 0) {
                    return 0;
                }
                continue;
            }
        }
        return (uint32_t)p;
    }
    return 0;
}

/* Lock onto the last @p p tokens as the cycle; the current call is its end. */
static void lock_period(ngl_ident *kt, uint32_t p)
{
    const uint64_t first = kt->ncalls - p;
    for (uint32_t i = 0; i < p; i++) {
        kt->ref[i] = hist_at(kt, first + i);
        uint32_t c = 0;
        for (uint32_t j = 0; j < i; j++) {
            c += kt->ref[j] == kt->ref[i];
        }
        kt->occ[i] = c;
    }
    kt->period = p;
    kt->phase = 0;
    kt->n_locks++;
}

uint32_t ngl_ident_next(ngl_ident *kt, uint64_t token, int flags)
{
    const int keyed = (flags & NGL_IDENT_KEYED) != 0;
    for (uint32_t q = 1; q <= kt->short_max; q++) {
        const int same =
            kt->ncalls >= q && hist_at(kt, kt->ncalls - q) == token && !(flags & NGL_IDENT_WHOLE);
        kt->qmatch[q - 1] = same ? kt->qmatch[q - 1] + 1 : 0;
    }
    kt->hist[kt->ncalls % NGL_IDENT_HIST] = token;
    kt->ncalls++;
    if (kt->forced != 0) {
        /* The user said how many compressed calls a step has: position in
         * the step, counted over keyed calls so that small calls in between
         * (evaluation, metrics) do not shift it. */
        if (!keyed) {
            return 0;
        }
        kt->n_matched++;
        return (uint32_t)(kt->n_keyed++ % kt->forced);
    }

    /* Does the call fit the locked cycle, possibly after a short skip? */
    int matched = 0;
    uint32_t k = 0;
    if (kt->period != 0) {
        for (uint32_t j = 0; j <= NGL_IDENT_MAX_SKIP && kt->phase + j < kt->period; j++) {
            if (kt->ref[kt->phase + j] == token) {
                kt->n_skipped += j;
                kt->phase += j;
                k = kt->occ[kt->phase];
                kt->phase = kt->phase + 1 == kt->period ? 0 : kt->phase + 1;
                kt->n_matched++;
                matched = 1;
                break;
            }
        }
    }
    if (!matched && keyed) {
        /* Only calls that carry state count as a break: a small call that
         * comes every few steps (metrics, logging) is an insertion, not a
         * reason to trade the step for a cycle of several steps. */
        kt->last_miss = kt->ncalls;
    }
    if (!keyed) {
        return 0;
    }

    /*
     * Look for an exact period while the lock is missing or was recently
     * broken: a spurious short lock (the per-layer pattern inside one step)
     * breaks at every step boundary, and the true, longer period becomes
     * visible two steps in. A matching call only accepts a longer period;
     * a failing one accepts any, so a program that changes its pattern
     * relocks.
     */
    const int recent_miss =
        kt->period == 0 || kt->ncalls - kt->last_miss <= 2u * (uint64_t)kt->period;
    if (recent_miss) {
        /* A matching call only looks for a longer cycle, and a tail the lock
         * explains is no evidence for one. A failing lock takes any period,
         * its own length included (the same shape with new sizes). */
        const uint32_t p =
            matched ? find_period(kt, kt->period + 1, kt->period) : find_period(kt, 1, 0);
        if (p != 0) {
            lock_period(kt, p);
            return kt->occ[p - 1];
        }
    }
    if (matched) {
        return k;
    }
    kt->n_transient++;
    return NGL_IDENT_TRANSIENT;
}
