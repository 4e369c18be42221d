/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_entry.c -- the symbols libnangila-mpi.so exports: MPI_Init,
 * MPI_Init_thread, MPI_Allreduce, MPI_Iallreduce (MPI_Allreduce_c on MPI-4
 * libraries) and the Fortran MPI_ALLREDUCE and MPI_IALLREDUCE bindings.
 *
 * Decision order for MPI_Allreduce (each "pass" is PMPI_Allreduce with the
 * caller's arguments, untouched):
 *   1. re-entry from inside the wrapper, MPI not initialized, count <= 0,
 *      null handles                                            -> pass
 *   2. not MPI_FLOAT/MPI_REAL + MPI_SUM on a communicator that has no
 *      context yet                                             -> pass
 *   3. intercommunicator or a single rank                      -> pass (remembered)
 *   4. first float sum on a communicator: create its context, which checks
 *      that all ranks have the same settings (collective)
 *   5. context off (NANGILA_MODE=off), mismatched or failed    -> pass
 *   6. the call is recorded in the communicator's call history; not a
 *      float sum, or below NANGILA_MIN_BYTES unless auto has several plain
 *      arms (Open MPI's forced algorithms, pmpi_plain.c) on a flat context
 *      and the call is made on the caller's thread         -> pass
 *   7. the engine's plan for the call (NANGILA_MODE=auto: the arm its size
 *      class runs, from times agreed across ranks)          -> plain: pass,
 *      on the user's communicator for Open MPI's own choice, or on our
 *      duplicate with the planned algorithm forced
 *   8. compressed reduce-scatter + allgather with the planned codec.
 * Every test in 1-6 depends only on arguments that MPI requires to match
 * across ranks, or on settings checked to match in 4, so all ranks decide
 * alike.
 *
 * MPI_Iallreduce takes the same decisions; its compressed calls run on the
 * communicator's progress thread (pmpi_async.c), which needs
 * MPI_THREAD_MULTIPLE, else they pass through (logged once). Once a
 * communicator has nonblocking calls, its blocking ones queue behind them
 * on that thread, so the ranks' call order stays the MPI order.
 * MPI_Allreduce_c (MPI-4 libraries) takes MPI_Allreduce's path for counts
 * that fit an int.
 */
#include "pmpi_internal.h"

#include <assert.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NGL_PMPI_EXPORT __attribute__((visibility("default")))

/* Set while this thread is inside the wrapper: nested MPI_Allreduce calls
 * (from MPI itself, a callback, or the Fortran binding) go straight to PMPI. */
static _Thread_local int ngl_pmpi_busy;

NGL_PMPI_EXPORT int MPI_Init(int *argc, char ***argv);
NGL_PMPI_EXPORT int MPI_Init_thread(int *argc, char ***argv, int required, int *provided);
NGL_PMPI_EXPORT int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count,
                                  MPI_Datatype datatype, MPI_Op op, MPI_Comm comm);
NGL_PMPI_EXPORT int MPI_Iallreduce(const void *sendbuf, void *recvbuf, int count,
                                   MPI_Datatype datatype, MPI_Op op, MPI_Comm comm,
                                   MPI_Request *request);
#if MPI_VERSION >= 4
NGL_PMPI_EXPORT int MPI_Allreduce_c(const void *sendbuf, void *recvbuf, MPI_Count count,
                                    MPI_Datatype datatype, MPI_Op op, MPI_Comm comm);
#endif

int MPI_Init(int *argc, char ***argv)
{
    ngl_pmpi_plain_preinit();
    const int rc = PMPI_Init(argc, argv);
    if (rc == MPI_SUCCESS) {
        ngl_pmpi_global_init();
    }
    return rc;
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    ngl_pmpi_plain_preinit();
    const int rc = PMPI_Init_thread(argc, argv, required, provided);
    if (rc == MPI_SUCCESS) {
        ngl_pmpi_global_init();
    }
    return rc;
}

/* Predefined op index, or 0 for user-defined ones. */
static unsigned op_class(MPI_Op op)
{
    const MPI_Op ops[] = {MPI_SUM, MPI_MAX,  MPI_MIN,  MPI_PROD,   MPI_LAND,   MPI_BAND,   MPI_LOR,
                          MPI_BOR, MPI_LXOR, MPI_BXOR, MPI_MAXLOC, MPI_MINLOC, MPI_REPLACE};
    for (unsigned i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (op == ops[i]) {
            return i + 1;
        }
    }
    return 0;
}

/* One token per call for the call history: byte size, op and whether it is
 * a float sum. Datatype handles are process-local addresses in Open MPI,
 * so only their size enters. */
uint64_t ngl_pmpi_call_token(int count, MPI_Datatype dt, MPI_Op op, int float_sum)
{
    int tsize = 0;
    PMPI_Type_size(dt, &tsize);
    return ngl_engine_token((uint64_t)(uint32_t)count * (uint64_t)(uint32_t)tsize, op_class(op),
                            (uint64_t)float_sum);
}

static int is_float(MPI_Datatype dt)
{
    if (dt == MPI_FLOAT || dt == MPI_REAL) {
        return 1;
    }
#if defined(OMPI_HAVE_FORTRAN_REAL4) && OMPI_HAVE_FORTRAN_REAL4
    if (dt == MPI_REAL4) {
        return 1;
    }
#endif
    return 0;
}

static int bounce_reserve(ngl_pmpi_comm *ctx, size_t count)
{
    if (count <= ctx->bounce_cap) {
        return 1;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, count * sizeof(float)) != 0) {
        return 0;
    }
    free(ctx->bounce);
    ctx->bounce = p;
    ctx->bounce_cap = count;
    return 1;
}

static int run_compressed(ngl_pmpi_comm *ctx, ngl_engine_set *set, const void *sendbuf,
                          void *recvbuf, size_t count)
{
    const float *src = sendbuf == MPI_IN_PLACE ? recvbuf : sendbuf;
    float *dst = recvbuf;
    if ((uintptr_t)src % sizeof(float) == 0 && (uintptr_t)dst % sizeof(float) == 0) {
        return ngl_pmpi_allreduce_run(ctx, set, src, dst);
    }
    /* MPI allows any address; the codec wants aligned floats. Rare enough
     * for a copy, and the decision stays local (no rank can pass through
     * alone, which would deadlock the others). */
    if (!bounce_reserve(ctx, count)) {
        ngl_pmpi_log(NGL_LOG_ERROR, "out of memory for an aligned copy of %zu floats", count);
        PMPI_Abort(ctx->comm, MPI_ERR_NO_MEM);
        return MPI_ERR_NO_MEM;
    }
    memcpy(ctx->bounce, src, count * sizeof(float));
    const int rc = ngl_pmpi_allreduce_run(ctx, set, ctx->bounce, ctx->bounce);
    if (rc == MPI_SUCCESS) {
        memcpy(dst, ctx->bounce, count * sizeof(float));
    }
    return rc;
}

void ngl_pmpi_call_note(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c)
{
    ngl_engine_identify(ctx->eng, c->token, 0);
}

/* How the progress thread and the hierarchical run run their calls. */
static const ngl_pmpi_call_ops call_ops = {ngl_pmpi_call_token, ngl_pmpi_call_note,
                                           ngl_pmpi_call_run};

int ngl_pmpi_call_run(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c, MPI_Comm plain)
{
#define PASS() PMPI_Allreduce(c->sendbuf, c->recvbuf, c->count, c->dt, c->op, plain)
    if (ctx->hier != NULL && ctx->status == NGL_PMPI_ACTIVE) {
        /* several ranks per node: exact inside, compressed across nodes */
        return ngl_pmpi_hier_run(ctx, c, &call_ops);
    }
    const uint64_t bytes = (uint64_t)c->count * sizeof(float);
    const uint32_t k = ngl_engine_identify(ctx->eng, c->token, c->small ? 0 : NGL_IDENT_KEYED);
    if (ctx->status != NGL_PMPI_ACTIVE) {
        return PASS(); /* failed earlier on this communicator */
    }
    /* Which arm this call runs (NANGILA_MODE=auto: per size class, from
     * measured times; the same on every rank): a plain variant or a codec. */
    ngl_auto *am = ngl_engine_auto(ctx->eng);
    ngl_auto_plan plan = ngl_auto_plan_call(am, bytes);
    assert(plan.mode == NGL_MODE_OFF || !c->small); /* no codec below the floor */
    if (plan.mode == NGL_MODE_OFF && plan.plain > 0 && (int)plan.plain < ctx->nplain) {
        /* a forced algorithm, on its private duplicate (which the progress
         * thread may use too: it is ours) */
        plain = ctx->plain_comm[plan.plain];
    }
    ngl_engine_stats *st = ngl_engine_stats_of(ctx->eng);
    const double t0 = ngl_pmpi_now();
    const double codec0 = st->t_encode + st->t_decode;
    int rc = MPI_SUCCESS;
    int created = 0;
    ngl_engine_set *set = NULL;
    if (plan.mode == NGL_MODE_OFF) {
        rc = PASS();
    } else {
        set = ngl_pmpi_set_get(ctx, c->token, k, (uint64_t)c->count, plan.mode, &created, &rc);
        if (created) {
            /* first use of these streams: time the same step again later */
            plan = ngl_auto_replan(am, plan);
        }
        if (set == NULL) {
            if (rc != MPI_SUCCESS) {
                return rc;
            }
            rc = PASS();
            created = 1; /* not a sample of the planned mode (on every rank) */
        } else {
            rc = run_compressed(ctx, set, c->sendbuf, c->recvbuf, (size_t)c->count);
            if (rc != MPI_SUCCESS) {
                /* The pipeline stopped half way on some rank; never try again here. */
                ctx->status = NGL_PMPI_FAILED;
                return rc;
            }
        }
    }
    if (rc != MPI_SUCCESS) {
        return rc;
    }
    const double t1 = ngl_pmpi_now();
    ngl_auto_record(am, &plan, t1 - t0, st->t_encode + st->t_decode - codec0, created);
    if (set != NULL) {
        st->calls_compressed++;
        st->calls_transient += set->k == NGL_IDENT_TRANSIENT;
        st->bytes_in += bytes;
        st->bytes_ring += 2u * (uint64_t)(ctx->size - 1) * bytes / (uint64_t)ctx->size;
        st->t_total += t1 - t0;
    }
    if (plan.agree) {
        rc = ngl_pmpi_auto_agree(ctx, plan.cls);
        if (rc != MPI_SUCCESS) {
            ctx->status = NGL_PMPI_FAILED;
            return rc;
        }
    }
    ngl_engine_evict(ctx->eng);
    return MPI_SUCCESS;
#undef PASS
}

/*
 * Steps 1-6 of the decision order for a call with these arguments: the
 * active context of @p comm (created on the first float sum), and *c
 * filled in; NULL when the call passes through untouched.
 */
static ngl_pmpi_comm *context_for(const void *sendbuf, void *recvbuf, int count, MPI_Datatype dt,
                                  MPI_Op op, MPI_Comm comm, ngl_pmpi_call *c)
{
    if (!ngl_pmpi_global_init()) {
        return NULL;
    }
    ngl_pmpi_note_call();
    if (count <= 0 || comm == MPI_COMM_NULL || dt == MPI_DATATYPE_NULL || op == MPI_OP_NULL ||
        recvbuf == NULL || sendbuf == recvbuf) {
        return NULL;
    }
    const int float_sum = is_float(dt) && op == MPI_SUM;
    ngl_pmpi_comm *ctx = ngl_pmpi_comm_get(comm, 0);
    if (ctx == NULL) {
        if (!float_sum || ngl_pmpi_comm_is_skipped(comm)) {
            return NULL;
        }
        int inter = 0, size = 0;
        if (PMPI_Comm_test_inter(comm, &inter) != MPI_SUCCESS ||
            PMPI_Comm_size(comm, &size) != MPI_SUCCESS) {
            return NULL;
        }
        if (inter || size < 2) {
            ngl_pmpi_comm_mark_skipped(comm);
            return NULL;
        }
        ctx = ngl_pmpi_comm_get(comm, 1);
        if (ctx == NULL) {
            return NULL;
        }
    }
    if (ctx->status != NGL_PMPI_ACTIVE) {
        return NULL;
    }
    const uint64_t bytes = (uint64_t)count * sizeof(float);
    c->sendbuf = sendbuf;
    c->recvbuf = recvbuf;
    c->count = count;
    c->dt = dt;
    c->op = op;
    c->token = ngl_pmpi_call_token(count, dt, op, float_sum);
    c->eligible = float_sum && bytes >= ngl_pmpi_settings()->min_bytes;
    c->small = float_sum && !c->eligible && ctx->nplain > 1 && ctx->hier == NULL;
    return ctx;
}

static int allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype dt, MPI_Op op,
                     MPI_Comm comm)
{
    ngl_pmpi_call c;
    ngl_pmpi_comm *ctx = context_for(sendbuf, recvbuf, count, dt, op, comm, &c);
    if (ctx == NULL) {
        return PMPI_Allreduce(sendbuf, recvbuf, count, dt, op, comm);
    }
    if (ngl_pmpi_async_active(ctx)) {
        /* Nonblocking calls are in flight or were: the communicator's
         * engine and private traffic belong to its progress thread, which
         * takes the calls in the order they were made. */
        if (!c.eligible) {
            ngl_pmpi_async_note(ctx, &c);
            return PMPI_Allreduce(sendbuf, recvbuf, count, dt, op, comm);
        }
        return ngl_pmpi_async_run(ctx, &c);
    }
    if (!c.eligible && !c.small) {
        ngl_pmpi_call_note(ctx, &c);
        return PMPI_Allreduce(sendbuf, recvbuf, count, dt, op, comm);
    }
    /* small: the best plain algorithm, planned right here (a hop to a
     * progress thread would cost more than it can gain) */
    return ngl_pmpi_call_run(ctx, &c, comm);
}

static int iallreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype dt, MPI_Op op,
                      MPI_Comm comm, MPI_Request *req)
{
#define IPASS() PMPI_Iallreduce(sendbuf, recvbuf, count, dt, op, comm, req)
    ngl_pmpi_call c;
    ngl_pmpi_comm *ctx = context_for(sendbuf, recvbuf, count, dt, op, comm, &c);
    if (ctx == NULL || req == NULL) {
        return IPASS();
    }
    if (!c.eligible) {
        if (ngl_pmpi_async_active(ctx)) {
            ngl_pmpi_async_note(ctx, &c);
        } else {
            ngl_pmpi_call_note(ctx, &c);
        }
        return IPASS();
    }
    if (!ngl_pmpi_async_available()) {
        return IPASS(); /* no progress thread without MPI_THREAD_MULTIPLE (logged once) */
    }
    return ngl_pmpi_async_submit(ctx, &c, req, &call_ops);
#undef IPASS
}

int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                  MPI_Comm comm)
{
    if (ngl_pmpi_busy) {
        return PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm);
    }
    ngl_pmpi_busy = 1;
    const int rc = allreduce(sendbuf, recvbuf, count, datatype, op, comm);
    ngl_pmpi_busy = 0;
    return rc;
}

int MPI_Iallreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                   MPI_Comm comm, MPI_Request *request)
{
    if (ngl_pmpi_busy) {
        return PMPI_Iallreduce(sendbuf, recvbuf, count, datatype, op, comm, request);
    }
    ngl_pmpi_busy = 1;
    const int rc = iallreduce(sendbuf, recvbuf, count, datatype, op, comm, request);
    ngl_pmpi_busy = 0;
    return rc;
}

#if MPI_VERSION >= 4
/* MPI-4 large-count variant: counts that fit an int take the same path;
 * larger ones (over 8 GiB of floats) pass through. */
int MPI_Allreduce_c(const void *sendbuf, void *recvbuf, MPI_Count count, MPI_Datatype datatype,
                    MPI_Op op, MPI_Comm comm)
{
    if (ngl_pmpi_busy || count < 0 || count > INT_MAX) {
        return PMPI_Allreduce_c(sendbuf, recvbuf, count, datatype, op, comm);
    }
    return MPI_Allreduce(sendbuf, recvbuf, (int)count, datatype, op, comm);
}
#endif

/* ---- Fortran (mpif.h and `use mpi`) ------------------------------------- */
#ifdef NGL_PMPI_FORTRAN
/*
 * Open MPI's Fortran MPI_ALLREDUCE calls PMPI_Allreduce directly, so the C
 * wrapper never sees it; these definitions interpose on the Fortran symbol
 * itself. Fortran passes handles as MPI_Fint and MPI_IN_PLACE / MPI_BOTTOM
 * as the addresses of Open MPI's common-block sentinels, which the build
 * found in libmpi (weak, in case a later library version lacks them).
 */
extern int mpi_fortran_in_place_ __attribute__((weak));
extern int mpi_fortran_bottom_ __attribute__((weak));

NGL_PMPI_EXPORT void mpi_allreduce_(void *sendbuf, void *recvbuf, MPI_Fint *count,
                                    MPI_Fint *datatype, MPI_Fint *op, MPI_Fint *comm,
                                    MPI_Fint *ierr);
NGL_PMPI_EXPORT void mpi_allreduce__(void *sendbuf, void *recvbuf, MPI_Fint *count,
                                     MPI_Fint *datatype, MPI_Fint *op, MPI_Fint *comm,
                                     MPI_Fint *ierr);
NGL_PMPI_EXPORT void mpi_allreduce(void *sendbuf, void *recvbuf, MPI_Fint *count,
                                   MPI_Fint *datatype, MPI_Fint *op, MPI_Fint *comm,
                                   MPI_Fint *ierr);
NGL_PMPI_EXPORT void MPI_ALLREDUCE(void *sendbuf, void *recvbuf, MPI_Fint *count,
                                   MPI_Fint *datatype, MPI_Fint *op, MPI_Fint *comm,
                                   MPI_Fint *ierr);

/* Fortran's MPI_IN_PLACE and MPI_BOTTOM sentinels to C's. */
static void fortran_buffers(void **sendbuf, void **recvbuf)
{
    if (&mpi_fortran_in_place_ != NULL && *sendbuf == (void *)&mpi_fortran_in_place_) {
        *sendbuf = MPI_IN_PLACE;
    }
    if (&mpi_fortran_bottom_ != NULL) {
        if (*sendbuf == (void *)&mpi_fortran_bottom_) {
            *sendbuf = MPI_BOTTOM;
        }
        if (*recvbuf == (void *)&mpi_fortran_bottom_) {
            *recvbuf = MPI_BOTTOM;
        }
    }
}

void mpi_allreduce_(void *sendbuf, void *recvbuf, MPI_Fint *count, MPI_Fint *datatype, MPI_Fint *op,
                    MPI_Fint *comm, MPI_Fint *ierr)
{
    fortran_buffers(&sendbuf, &recvbuf);
    const int rc = MPI_Allreduce(sendbuf, recvbuf, (int)*count, PMPI_Type_f2c(*datatype),
                                 PMPI_Op_f2c(*op), PMPI_Comm_f2c(*comm));
    if (ierr != NULL) {
        *ierr = (MPI_Fint)rc;
    }
}

void mpi_allreduce__(void *sendbuf, void *recvbuf, MPI_Fint *count, MPI_Fint *datatype,
                     MPI_Fint *op, MPI_Fint *comm, MPI_Fint *ierr)
{
    mpi_allreduce_(sendbuf, recvbuf, count, datatype, op, comm, ierr);
}

void mpi_allreduce(void *sendbuf, void *recvbuf, MPI_Fint *count, MPI_Fint *datatype, MPI_Fint *op,
                   MPI_Fint *comm, MPI_Fint *ierr)
{
    mpi_allreduce_(sendbuf, recvbuf, count, datatype, op, comm, ierr);
}

void MPI_ALLREDUCE(void *sendbuf, void *recvbuf, MPI_Fint *count, MPI_Fint *datatype, MPI_Fint *op,
                   MPI_Fint *comm, MPI_Fint *ierr)
{
    mpi_allreduce_(sendbuf, recvbuf, count, datatype, op, comm, ierr);
}

/* MPI_IALLREDUCE: the same, nonblocking; the request (compressed calls: a
 * generalized request of the progress thread) goes back as a Fortran handle,
 * so MPI_WAIT and MPI_TEST in Fortran complete it as usual. */
NGL_PMPI_EXPORT void mpi_iallreduce_(void *sendbuf, void *recvbuf, MPI_Fint *count,
                                     MPI_Fint *datatype, MPI_Fint *op, MPI_Fint *comm,
                                     MPI_Fint *request, MPI_Fint *ierr);
NGL_PMPI_EXPORT void mpi_iallreduce__(void *sendbuf, void *recvbuf, MPI_Fint *count,
                                      MPI_Fint *datatype, MPI_Fint *op, MPI_Fint *comm,
                                      MPI_Fint *request, MPI_Fint *ierr);
NGL_PMPI_EXPORT void mpi_iallreduce(void *sendbuf, void *recvbuf, MPI_Fint *count,
                                    MPI_Fint *datatype, MPI_Fint *op, MPI_Fint *comm,
                                    MPI_Fint *request, MPI_Fint *ierr);
NGL_PMPI_EXPORT void MPI_IALLREDUCE(void *sendbuf, void *recvbuf, MPI_Fint *count,
                                    MPI_Fint *datatype, MPI_Fint *op, MPI_Fint *comm,
                                    MPI_Fint *request, MPI_Fint *ierr);

void mpi_iallreduce_(void *sendbuf, void *recvbuf, MPI_Fint *count, MPI_Fint *datatype,
                     MPI_Fint *op, MPI_Fint *comm, MPI_Fint *request, MPI_Fint *ierr)
{
    fortran_buffers(&sendbuf, &recvbuf);
    MPI_Request req = MPI_REQUEST_NULL;
    const int rc = MPI_Iallreduce(sendbuf, recvbuf, (int)*count, PMPI_Type_f2c(*datatype),
                                  PMPI_Op_f2c(*op), PMPI_Comm_f2c(*comm), &req);
    if (rc == MPI_SUCCESS) {
        *request = PMPI_Request_c2f(req);
    }
    if (ierr != NULL) {
        *ierr = (MPI_Fint)rc;
    }
}

void mpi_iallreduce__(void *sendbuf, void *recvbuf, MPI_Fint *count, MPI_Fint *datatype,
                      MPI_Fint *op, MPI_Fint *comm, MPI_Fint *request, MPI_Fint *ierr)
{
    mpi_iallreduce_(sendbuf, recvbuf, count, datatype, op, comm, request, ierr);
}

void mpi_iallreduce(void *sendbuf, void *recvbuf, MPI_Fint *count, MPI_Fint *datatype, MPI_Fint *op,
                    MPI_Fint *comm, MPI_Fint *request, MPI_Fint *ierr)
{
    mpi_iallreduce_(sendbuf, recvbuf, count, datatype, op, comm, request, ierr);
}

void MPI_IALLREDUCE(void *sendbuf, void *recvbuf, MPI_Fint *count, MPI_Fint *datatype, MPI_Fint *op,
                    MPI_Fint *comm, MPI_Fint *request, MPI_Fint *ierr)
{
    mpi_iallreduce_(sendbuf, recvbuf, count, datatype, op, comm, request, ierr);
}
#endif /* NGL_PMPI_FORTRAN */
