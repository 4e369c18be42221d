/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_internal.h -- shared declarations of libnangila-mpi.so.
 *
 * Files:
 *   pmpi_entry.c       the exported MPI_* / mpi_*_ symbols: guard, pass-through
 *                      decisions, Fortran handle conversion
 *   pmpi_comm.c        global set-up, per-communicator context (keyval,
 *                      settings check, private duplicate, its collective
 *                      engine), agreement on new stream sets, statistics,
 *                      teardown at MPI_Finalize
 *   pmpi_collective.c  progress of the engine's reduce-scatter + allgather
 *                      over PMPI point-to-point, pipelined over segments
 *   pmpi_async.c       MPI_Iallreduce: a progress thread per communicator
 *   pmpi_hier.c        several ranks per node: exact inside the node,
 *                      compressed across nodes (NANGILA_HIER)
 *   pmpi_plain.c       auto's plain arms: Open MPI's forced tuned allreduce
 *                      algorithms on private duplicates (MPI_T)
 *
 * The protocol, the layout, stream identity and stream state are the
 * collective engine's (engine/include/ngl_engine.h); this layer only moves
 * the frames and makes progress.
 *
 * Every MPI call made here is a PMPI_* call; nothing here calls MPI_*.
 * Nothing is exported except the entry points (see libnangila_mpi.map).
 */
#ifndef NGL_PMPI_INTERNAL_H
#define NGL_PMPI_INTERNAL_H

#include "nangila.h"
#include "ngl_engine.h"

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define NGL_PMPI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NGL_PMPI_PRINTF(a, b)
#endif

/* ---- global state (pmpi_comm.c) ---------------------------------------- */

/**
 * Read and validate the settings, install the stderr logger, create the
 * keyvals and the MPI_COMM_SELF finalize hook. Runs once (pthread_once);
 * MPI must be initialized. On a bad NANGILA_* value it prints the reason on
 * stderr and aborts the job with PMPI_Abort.
 * @return 1 when the wrapper is ready, 0 when MPI is not initialized yet or
 *         has been finalized (callers then pass through).
 */
int ngl_pmpi_global_init(void);

/** The validated settings; valid after ngl_pmpi_global_init() returned 1. */
const ngl_settings *ngl_pmpi_settings(void);

struct ngl_topo;
/** Where this process runs (hwloc), probed by ngl_pmpi_global_init(). */
const struct ngl_topo *ngl_pmpi_topology(void);

/** Count one MPI_Allreduce call seen by the wrapper (thread-safe). */
void ngl_pmpi_note_call(void);

/** printf-style logging to stderr at @p level, filtered by NANGILA_LOG_LEVEL. */
void ngl_pmpi_log(ngl_log_level level, const char *fmt, ...) NGL_PMPI_PRINTF(2, 3);

/* Context status. */
enum {
    NGL_PMPI_ACTIVE = 0,   /* compress eligible calls */
    NGL_PMPI_OFF = 1,      /* NANGILA_MODE=off on every rank */
    NGL_PMPI_MISMATCH = 2, /* ranks disagree on the settings */
    NGL_PMPI_FAILED = 3    /* set-up failed on some rank */
};

/* Per-communicator context, cached as an attribute on the user's communicator. */
typedef struct ngl_pmpi_comm {
    MPI_Comm comm; /* the user's communicator (handle; not owned) */
    MPI_Comm ic;   /* private duplicate for our point-to-point traffic */
    int rank, size;
    int status;
    int tag_ub;
    ngl_engine *eng; /* the collective engine (NULL unless status is active) */
    /* scratch for one call, grown on demand, kept between calls */
    size_t frame_cap;      /* bytes per frame buffer */
    unsigned char *frames; /* window * 3P frame buffers */
    MPI_Request *reqs;     /* window * 4P */
    MPI_Status *statuses;
    int *indices;
    size_t *lens;  /* window * 4P received/sent frame lengths */
    float *bounce; /* aligned copy for misaligned user buffers */
    size_t bounce_cap;
    /* auto's plain arms: [0] is Open MPI's own choice (the caller's
     * communicator, or ic on the progress thread), [k] for 0 < k < nplain a
     * private duplicate of ic with a forced algorithm (pmpi_plain.c) */
    int nplain;
    MPI_Comm plain_comm[NGL_AUTO_PLAIN_MAX];
    struct ngl_pmpi_worker *worker; /* progress thread, from the first nonblocking call */
    struct ngl_pmpi_hier *hier;     /* node layout when eligible calls run hierarchically */
    struct ngl_pmpi_comm *reg_prev, *reg_next; /* registry of live contexts */
    /* set with worker (pmpi_async.c): finishes its queued calls and stops it */
    void (*worker_stop)(struct ngl_pmpi_comm *ctx);
} ngl_pmpi_comm;

/**
 * The context of @p comm, creating it (collectively: a settings check and
 * PMPI_Comm_dup) on the first MPI_FLOAT/MPI_SUM call. The caller has
 * checked that @p comm is a valid intracommunicator of size > 1.
 * @return the context, or NULL if none can be had (pass through).
 */
ngl_pmpi_comm *ngl_pmpi_comm_get(MPI_Comm comm, int create);

/** 1 if @p comm was already found unsuitable (intercommunicator, size 1). */
int ngl_pmpi_comm_is_skipped(MPI_Comm comm);
/** Remember that @p comm is unsuitable, so later calls skip the checks. */
void ngl_pmpi_comm_mark_skipped(MPI_Comm comm);

/**
 * The engine's state set for key (@p token, @p k) with @p count floats and
 * codec @p mode, created if needed (*created 1). Creation is collective over
 * ctx->ic (all ranks agree that it succeeded, or all drop it).
 * @return the set, or NULL (pass through this call) with *rc an MPI error
 *         code if communication failed (MPI_SUCCESS otherwise).
 */
ngl_engine_set *ngl_pmpi_set_get(ngl_pmpi_comm *ctx, uint64_t token, uint32_t k, uint64_t count,
                                 ngl_mode mode, int *created, int *rc);

/**
 * Auto mode's agreement for size class @p cls: the element-wise MIN of every
 * rank's measurements over ctx->ic, handed to the engine's decision. Called
 * at the same call on every rank (the plan says when).
 * @return MPI_SUCCESS or the error of the reduction.
 */
int ngl_pmpi_auto_agree(ngl_pmpi_comm *ctx, uint32_t cls);

/** Make sure the per-call scratch fits @p frame_cap bytes per frame. */
int ngl_pmpi_scratch_reserve(ngl_pmpi_comm *ctx, size_t frame_cap);

/**
 * A context for @p comm (one of ours) without a node hierarchy: the cross
 * communicator of a hierarchical context. Collective over @p comm; freeing
 * @p comm deletes it.
 * @return the context (possibly not active), or NULL on failure.
 */
ngl_pmpi_comm *ngl_pmpi_comm_create_flat(MPI_Comm comm);

/** Append a printf-style line to the finalize summary (NANGILA_STATS=1). */
void ngl_pmpi_summary_append(const char *fmt, ...) NGL_PMPI_PRINTF(1, 2);

/** Add @p s into the process-wide totals (under the registry lock). */
void ngl_pmpi_stats_merge(const ngl_engine_stats *s);

/* ---- one call on a context (pmpi_entry.c) -------------------------------- */

/* The arguments of one allreduce and what the entry point decided. */
typedef struct ngl_pmpi_call {
    const void *sendbuf;
    void *recvbuf;
    int count;
    MPI_Datatype dt;
    MPI_Op op;
    uint64_t token; /* for the call history */
    int eligible;   /* float sum of at least NANGILA_MIN_BYTES: the engine plans it */
    int small;      /* a smaller float sum the engine plans among plain arms
                       (auto with several; flat contexts, caller's thread) */
} ngl_pmpi_call;

/** The call-history token of an allreduce with these arguments: its byte
 *  size, its op and whether it is a float sum. */
uint64_t ngl_pmpi_call_token(int count, MPI_Datatype dt, MPI_Op op, int float_sum);

/** Record an ineligible call in the communicator's call history (the
 *  caller passes it through). */
void ngl_pmpi_call_note(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c);

/**
 * Run an eligible call: identify it, take the engine's plan (auto mode),
 * then run it compressed, or plain on @p plain (the user's communicator on
 * the caller's thread; ctx->ic on the progress thread, which must not touch
 * the user's communicator), time it and agree when the plan says so.
 * @return MPI_SUCCESS or an MPI error code.
 */
int ngl_pmpi_call_run(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c, MPI_Comm plain);

/* The three functions above, handed by pmpi_entry.c to the progress thread
 * and to the hierarchical run, which run calls of their own with them: so
 * neither calls back into the file of the entry points. */
typedef struct ngl_pmpi_call_ops {
    uint64_t (*token)(int count, MPI_Datatype dt, MPI_Op op, int float_sum);
    void (*note)(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c);
    int (*run)(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c, MPI_Comm plain);
} ngl_pmpi_call_ops;

/* ---- nonblocking calls: the progress thread (pmpi_async.c) --------------- */

/** 1 if MPI_THREAD_MULTIPLE is provided (logs once at WARN when not). */
int ngl_pmpi_async_available(void);

/** 1 once @p ctx has a progress thread: all its engine work goes there. */
int ngl_pmpi_async_active(const ngl_pmpi_comm *ctx);

/** Queue an eligible call for the progress thread (started on first use,
 *  running the calls it is given with @p ops, kept by pointer) and return a
 *  generalized request in *req that completes with it. The thread sets
 *  ctx->worker_stop, which the context's teardown calls. */
int ngl_pmpi_async_submit(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c, MPI_Request *req,
                          const ngl_pmpi_call_ops *ops);

/** Queue an eligible blocking call behind the nonblocking ones; wait for it. */
int ngl_pmpi_async_run(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c);

/** Queue the call-history record of an ineligible call. */
void ngl_pmpi_async_note(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c);

/** Finish the queued calls and stop the thread (context teardown). */
void ngl_pmpi_async_stop(ngl_pmpi_comm *ctx);

/* ---- auto's plain arms (pmpi_plain.c) -------------------------------------- */

/** Before PMPI_Init*: with NANGILA_MODE=auto, turn Open MPI's tuned dynamic
 *  rules on (in the environment) unless the user set any coll_tuned
 *  variable; the user's communicators keep Open MPI's fixed decision. */
void ngl_pmpi_plain_preinit(void);

/** At set-up (MPI initialized): find the MPI_T variables; logs at INFO
 *  whether contexts get the forced algorithms or one plain arm, and why. */
void ngl_pmpi_plain_probe(const ngl_settings *s);

/** The engine's names of the plain arms (NULLs for one arm). */
void ngl_pmpi_plain_names(const char *names[NGL_AUTO_PLAIN_MAX]);

/**
 * Set ctx->nplain and make the forced-algorithm duplicates of ctx->ic,
 * collectively over it (every rank ends with the same ctx->nplain).
 * @return MPI_SUCCESS, or the error of a PMPI call (then ctx->nplain is 1).
 */
int ngl_pmpi_plain_create(ngl_pmpi_comm *ctx);

/** Free ctx's duplicates (ctx->nplain becomes 1). */
void ngl_pmpi_plain_free(ngl_pmpi_comm *ctx);

/** Release the MPI_T handles (MPI_Finalize, after every context). */
void ngl_pmpi_plain_finalize(void);

/* ---- several ranks per node (pmpi_hier.c) -------------------------------- */

/* NANGILA_HIER values (off, slices, leaders, auto: slices when every node
 * has the same number of ranks, else leaders). */
enum { NGL_HIER_OFF = 0, NGL_HIER_SLICES = 1, NGL_HIER_LEADERS = 2, NGL_HIER_AUTO = 3 };

typedef struct ngl_pmpi_hier ngl_pmpi_hier;

/** Read and validate NANGILA_HIER and NANGILA_NODE_ID.
 *  @return 0, or -1 with the message for a bad value in @p err. */
int ngl_pmpi_hier_settings_read(char *err, size_t err_cap);

/** Append the settings that must match across ranks to a description
 *  (" hier=auto", plus " node_id=set" when the override is used). */
int ngl_pmpi_hier_describe(char *buf, size_t cap);

/**
 * Find the node layout of an active context, collectively over ctx->ic,
 * and set ctx->hier when eligible calls should run hierarchically (several
 * nodes, several ranks on some node, NANGILA_HIER not off). Every rank
 * takes the same decision.
 * @return MPI_SUCCESS, or an MPI error code when the agreement failed.
 */
int ngl_pmpi_hier_setup(ngl_pmpi_comm *ctx);

/** Run an eligible call hierarchically (ctx->hier set): bit-identical on
 *  every rank; the step across nodes is a call on the cross context, run
 *  with @p ops. @return MPI_SUCCESS or an MPI error code. */
int ngl_pmpi_hier_run(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c, const ngl_pmpi_call_ops *ops);

/** Release ctx->hier (its communicators and the cross context). */
void ngl_pmpi_hier_destroy(ngl_pmpi_comm *ctx);

/* ---- the compressed collective (pmpi_collective.c) ---------------------- */

/* Segments in flight at once. */
#define NGL_PMPI_WINDOW 4u

/**
 * Compressed sum of @p count floats across ctx->ic: @p src (may equal
 * @p dst for MPI_IN_PLACE) summed into @p dst on every rank, bit-identical
 * on all ranks. Both buffers are float-aligned. Blocking.
 * @return MPI_SUCCESS or the MPI error code of a failed PMPI call. A frame
 *         that fails validation aborts the job (it can only come from a bug
 *         or memory corruption, and a wrong sum must never be returned).
 */
int ngl_pmpi_allreduce_run(ngl_pmpi_comm *ctx, ngl_engine_set *set, const float *src, float *dst);

double ngl_pmpi_now(void);

#endif /* NGL_PMPI_INTERNAL_H */
