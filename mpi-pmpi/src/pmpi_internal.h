/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_internal.h -- shared declarations of libnangila-mpi.so.
 *
 * Files:
 *   pmpi_entry.c       the exported MPI_* / mpi_*_ symbols: guard, pass-through
 *                      decisions, Fortran handle conversion
 *   pmpi_comm.c        global set-up, per-communicator context (keyval,
 *                      settings check, private duplicate), stream slots,
 *                      statistics, teardown at MPI_Finalize
 *   pmpi_collective.c  the compressed reduce-scatter + allgather pipeline
 *   pmpi_keytrack.c    which stream state a call uses (pure C)
 *
 * Every MPI call made here is a PMPI_* call; nothing here calls MPI_*.
 * Nothing is exported except the entry points (see libnangila_mpi.map).
 */
#ifndef NGL_PMPI_INTERNAL_H
#define NGL_PMPI_INTERNAL_H

#include "nangila.h"
#include "pmpi_keytrack.h"

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

/** Count one MPI_Allreduce call seen by the wrapper (thread-safe). */
void ngl_pmpi_note_call(void);

/** printf-style logging to stderr at @p level, filtered by NANGILA_LOG_LEVEL. */
void ngl_pmpi_log(ngl_log_level level, const char *fmt, ...) NGL_PMPI_PRINTF(2, 3);

/* ---- streams of one compressed allreduce shape --------------------------- */

/*
 * A slot holds every encoder and decoder one allreduce "tensor" needs on
 * this rank: the buffer of `count` floats is cut into P contiguous chunks
 * (chunk j is owned by rank j, boundaries on block multiples), each chunk
 * into `nseg` segments of at most `seg_elems` elements that are pipelined.
 * Arrays indexed [seg * P + rank]. NULL where a rank owns no elements of
 * that segment or where no stream exists (a rank never sends to itself in
 * the reduce-scatter).
 */
typedef struct ngl_pmpi_slot {
    uint64_t token; /* call token (see pmpi_keytrack.h) */
    uint32_t k;     /* occurrence index or NGL_KT_TRANSIENT */
    uint64_t count; /* floats per call */
    uint64_t last_use;
    uint32_t nseg;
    uint64_t seg_elems;
    uint64_t *chunk_lo;                        /* P + 1 chunk boundaries */
    ngl_encoder **rs_enc;                      /* [s*P + j]: my part of owner j's chunk */
    ngl_decoder **rs_dec;                      /* [s*P + i]: rank i's part of my chunk */
    ngl_encoder **ag_enc;                      /* [s]: my reduced chunk */
    ngl_decoder **ag_dec;                      /* [s*P + o]: owner o's reduced chunk */
    struct ngl_pmpi_slot *hnext;               /* hash chain */
    struct ngl_pmpi_slot *lru_prev, *lru_next; /* most recent first */
} ngl_pmpi_slot;

/* Per-rank counters, summed over communicators for the NANGILA_STATS report. */
typedef struct ngl_pmpi_stats {
    uint64_t calls_compressed;
    uint64_t bytes_in;        /* fp32 bytes of the compressed calls */
    uint64_t bytes_ring;      /* what a ring allreduce sends: 2(P-1)/P x bytes_in */
    uint64_t frame_in;        /* fp32 bytes encoded into frames */
    uint64_t frame_out;       /* frame bytes produced, headers included */
    uint64_t bytes_sent;      /* frame bytes this rank put on the wire */
    uint64_t transient_calls; /* compressed calls without carried state */
    double t_total;           /* seconds inside compressed calls */
    double t_encode;
    double t_decode;
} ngl_pmpi_stats;

/* Context status. */
enum {
    NGL_PMPI_ACTIVE = 0,   /* compress eligible calls */
    NGL_PMPI_OFF = 1,      /* NANGILA_MODE=off on every rank */
    NGL_PMPI_MISMATCH = 2, /* ranks disagree on the settings */
    NGL_PMPI_FAILED = 3    /* set-up failed on some rank */
};

#define NGL_PMPI_SLOT_BUCKETS 256u

/* Per-communicator context, cached as an attribute on the user's communicator. */
typedef struct ngl_pmpi_comm {
    MPI_Comm comm; /* the user's communicator (handle; not owned) */
    MPI_Comm ic;   /* private duplicate for our point-to-point traffic */
    int rank, size;
    int status;
    uint64_t uid; /* agreed by all ranks at set-up; salts stream ids */
    int tag_ub;
    ngl_pmpi_keytrack kt;
    /* slots */
    ngl_pmpi_slot *buckets[NGL_PMPI_SLOT_BUCKETS];
    ngl_pmpi_slot *lru_head, *lru_tail;
    size_t nslots;
    /* scratch for one call, grown on demand, kept between calls */
    size_t frame_cap;      /* bytes per frame buffer */
    unsigned char *frames; /* window * 3P frame buffers */
    MPI_Request *reqs;     /* window * 4P */
    MPI_Status *statuses;
    int *indices;
    size_t *lens;  /* window * 4P received/sent frame lengths */
    float *bounce; /* aligned copy for misaligned user buffers */
    size_t bounce_cap;
    ngl_pmpi_stats stats;
    struct ngl_pmpi_comm *reg_prev, *reg_next; /* registry of live contexts */
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
 * The slot for key (@p token, @p k) with @p count floats, created if needed.
 * Creation is collective over ctx->ic (all ranks agree that it succeeded).
 * @return the slot, or NULL (pass through this call) with *rc an MPI error
 *         code if communication failed (MPI_SUCCESS otherwise).
 */
ngl_pmpi_slot *ngl_pmpi_slot_get(ngl_pmpi_comm *ctx, uint64_t token, uint32_t k, uint64_t count,
                                 int *rc);

/** Drop slots that the recent call history no longer uses. */
void ngl_pmpi_slots_evict(ngl_pmpi_comm *ctx);

/** Make sure the per-call scratch fits @p frame_cap bytes per frame. */
int ngl_pmpi_scratch_reserve(ngl_pmpi_comm *ctx, size_t frame_cap);

/** Add @p s into the process-wide totals (under the registry lock). */
void ngl_pmpi_stats_merge(const ngl_pmpi_stats *s);

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
int ngl_pmpi_allreduce_run(ngl_pmpi_comm *ctx, ngl_pmpi_slot *slot, const float *src, float *dst);

/* Chunk boundaries and segment size of a slot; same on every rank. */
void ngl_pmpi_layout(uint64_t count, int nranks, uint32_t block, uint64_t *chunk_lo,
                     uint64_t *seg_elems, uint32_t *nseg);

/* Elements of owner @p o's chunk inside segment @p s. */
static inline uint64_t ngl_pmpi_seg_len(const ngl_pmpi_slot *slot, int o, uint32_t s, uint64_t *off)
{
    const uint64_t lo = slot->chunk_lo[o] + (uint64_t)s * slot->seg_elems;
    const uint64_t hi = slot->chunk_lo[o + 1];
    *off = lo;
    if (lo >= hi) {
        return 0;
    }
    return hi - lo < slot->seg_elems ? hi - lo : slot->seg_elems;
}

double ngl_pmpi_now(void);

#endif /* NGL_PMPI_INTERNAL_H */
