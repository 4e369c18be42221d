/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_keytrack.h -- which stream state an MPI_Allreduce call uses.
 *
 * PMPI sees no tensor names, only the sequence of calls on a communicator.
 * MPI makes every rank issue the same collectives on a communicator in the
 * same order with matching sizes, so any function of that call history is
 * the same on all ranks without any communication. This module is such a
 * function. It is pure C (no MPI), so it is unit-tested on its own.
 *
 * Model: every MPI_Allreduce on the communicator contributes one *token*
 * (a hash of its byte size, datatype class and op, chosen by the caller).
 * Training issues the same token sequence every step. The tracker finds the
 * period of that sequence: the smallest p such that the last 2p tokens are
 * two equal copies (one full cycle seen twice, exactly; and at least
 * NGL_KT_MIN_EVIDENCE calls, so a call made twice in a row is no cycle). Once locked, call
 * number n of a cycle maps to the persistent key (token, k), k being the
 * number of earlier positions of the cycle with the same token. Two
 * tensors of the same size in one step therefore get different keys, and a
 * fresh buffer every step still maps to the same key.
 *
 * While no period is known (the first two cycles), and for calls that do
 * not fit the locked cycle (an extra evaluation call, say), the tracker
 * answers NGL_KT_TRANSIENT: the caller then uses a stream without error
 * feedback or predictor state, which is correct but carries nothing across
 * calls, so a wrong guess never mixes the state of two tensors. A locked
 * cycle tolerates insertions (answered transient) and short skips; a new
 * exact period replaces it as soon as one is visible.
 *
 * Known limit: tensors of equal size issued back to back with no other
 * MPI_Allreduce between them ([A A] every step, nothing else) are
 * indistinguishable from a period-1 sequence and share one key. See
 * mpi-pmpi/README.md.
 */
#ifndef NGL_PMPI_KEYTRACK_H
#define NGL_PMPI_KEYTRACK_H

#include <stdint.h>

/* Tokens remembered: periods up to NGL_KT_HIST / 2 calls are found. */
#define NGL_KT_HIST 4096u
/* Returned instead of an occurrence index: use a stateless stream. */
#define NGL_KT_TRANSIENT UINT32_MAX
/* Longest run of cycle positions a call may skip and still match. */
#define NGL_KT_MAX_SKIP 4u
/* A period is accepted only over at least this many calls. */
#define NGL_KT_MIN_EVIDENCE 8u
/* Token comparisons one period search may spend before giving up. */
#define NGL_KT_SEARCH_BUDGET (1u << 16)

typedef struct ngl_pmpi_keytrack {
    uint64_t hist[NGL_KT_HIST];    /* ring buffer of the last tokens */
    uint64_t ncalls;               /* tokens seen so far */
    uint32_t period;               /* locked cycle length, 0 = none */
    uint32_t phase;                /* next expected position in ref */
    uint64_t last_miss;            /* ncalls after the last call off the cycle */
    uint64_t ref[NGL_KT_HIST / 2]; /* the locked cycle */
    uint32_t occ[NGL_KT_HIST / 2]; /* occ[i]: ref[i]'s earlier occurrences in ref */
    /* counters, for statistics and tests */
    uint64_t n_matched;   /* calls that matched the locked cycle */
    uint64_t n_transient; /* keyed calls answered NGL_KT_TRANSIENT */
    uint64_t n_skipped;   /* cycle positions skipped */
    uint64_t n_locks;     /* periods locked (first lock and every change) */
} ngl_pmpi_keytrack;

/** Start with an empty history. */
void ngl_pmpi_keytrack_init(ngl_pmpi_keytrack *kt);

/**
 * Record one call with @p token.
 * @param keyed  1 if the caller needs a key for this call (a compressed
 *               call), 0 to only record it (a call that passes through).
 *               Period searches run only on keyed calls, which bounds the
 *               cost of the calls that pass through to O(1).
 * @return for keyed calls, the occurrence index k of the persistent key
 *         (token, k), or NGL_KT_TRANSIENT; for other calls, 0.
 * Deterministic: equal token sequences give equal answers on every rank.
 */
uint32_t ngl_pmpi_keytrack_next(ngl_pmpi_keytrack *kt, uint64_t token, int keyed);

#endif /* NGL_PMPI_KEYTRACK_H */
