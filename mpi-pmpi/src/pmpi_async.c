/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_async.c -- MPI_Iallreduce: compressed allreduces that progress
 * without the application calling MPI_Test.
 *
 * Why a thread: the compressed allreduce is a pipeline of encodes, decodes
 * and point-to-point messages that must be driven; frameworks post an
 * MPI_Iallreduce per gradient bucket and only wait for it at the end of the
 * backward pass. A progress thread per communicator runs the queued calls
 * one after the other, in the order the application made them, which is
 * the same order on every rank (MPI's rule for collectives) -- so the
 * engine's call history, its plans and the private communicator's message
 * order are what they would be with blocking calls. The application gets
 * a generalized request (MPI_Grequest_start) that the thread completes.
 *
 * Rules that keep this correct:
 *   - the thread only ever talks on the private duplicate ctx->ic, never on
 *     the user's communicator (whose collectives the application may issue
 *     from its own thread meanwhile); uncompressed calls it runs go to
 *     ctx->ic too (same ranks, same algorithm, same result);
 *   - once a communicator has a thread, every call that touches its engine
 *     goes through the queue: blocking eligible calls wait for their turn,
 *     ineligible calls leave a record for the call history;
 *   - it needs MPI_THREAD_MULTIPLE (two threads in MPI at once); without
 *     it MPI_Iallreduce passes through to the MPI library, logged once.
 * The thread is bound to the cores of the process's NUMA node (hwloc).
 */
#include "ngl_topo.h"
#include "pmpi_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { JOB_RUN = 0, JOB_NOTE = 1 };

typedef struct job {
    ngl_pmpi_call call;
    int kind;
    int blocking; /* a waiter sleeps on done_cv until done */
    int done;
    int rc;
    MPI_Request greq; /* nonblocking: completed by the thread */
    struct job *next;
} job;

struct ngl_pmpi_worker {
    ngl_pmpi_comm *ctx;
    const ngl_pmpi_call_ops *ops; /* how calls are run: pmpi_entry.c's */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work_cv; /* the queue has a job, or stop */
    pthread_cond_t done_cv; /* a blocking job finished */
    job *head, *tail;
    int stop;
};

int ngl_pmpi_async_available(void)
{
    static atomic_int logged;
    int provided = MPI_THREAD_SINGLE;
    PMPI_Query_thread(&provided);
    if (provided == MPI_THREAD_MULTIPLE) {
        return 1;
    }
    if (!atomic_exchange(&logged, 1)) {
        ngl_pmpi_log(NGL_LOG_WARN,
                     "MPI_Iallreduce runs uncompressed: compressing it needs a progress "
                     "thread, and so MPI_Init_thread with MPI_THREAD_MULTIPLE");
    }
    return 0;
}

int ngl_pmpi_async_active(const ngl_pmpi_comm *ctx)
{
    return ctx->worker != NULL;
}

/* ---- generalized request callbacks ---------------------------------------- */

static int greq_query(void *extra, MPI_Status *status)
{
    const job *j = extra;
    PMPI_Status_set_elements(status, MPI_BYTE, 0);
    PMPI_Status_set_cancelled(status, 0);
    status->MPI_SOURCE = MPI_UNDEFINED;
    status->MPI_TAG = MPI_UNDEFINED;
    status->MPI_ERROR = j->rc;
    return j->rc;
}

static int greq_free(void *extra)
{
    free(extra);
    return MPI_SUCCESS;
}

static int greq_cancel(void *extra, int complete)
{
    /* A started collective cannot be taken back on one rank alone. */
    (void)extra;
    (void)complete;
    return MPI_SUCCESS;
}

/* ---- the thread ------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    struct ngl_pmpi_worker *w = arg;
    ngl_pmpi_comm *ctx = w->ctx;
    ngl_topo_bind_thread(ngl_pmpi_topology());
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (w->head == NULL && !w->stop) {
            pthread_cond_wait(&w->work_cv, &w->lock);
        }
        job *j = w->head;
        if (j == NULL) {
            pthread_mutex_unlock(&w->lock);
            break; /* stop, and nothing left */
        }
        w->head = j->next;
        if (w->head == NULL) {
            w->tail = NULL;
        }
        pthread_mutex_unlock(&w->lock);

        if (j->kind == JOB_NOTE) {
            w->ops->note(ctx, &j->call);
            free(j);
            continue;
        }
        const int rc = w->ops->run(ctx, &j->call, ctx->ic);
        if (j->blocking) {
            pthread_mutex_lock(&w->lock);
            j->rc = rc;
            j->done = 1;
            pthread_cond_broadcast(&w->done_cv);
            pthread_mutex_unlock(&w->lock);
        } else {
            j->rc = rc;
            /* Last touch of j: MPI_Wait may free it (greq_free) right after. */
            PMPI_Grequest_complete(j->greq);
        }
    }
    return NULL;
}

static struct ngl_pmpi_worker *worker_get(ngl_pmpi_comm *ctx, const ngl_pmpi_call_ops *ops)
{
    if (ctx->worker != NULL) {
        return ctx->worker;
    }
    struct ngl_pmpi_worker *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return NULL;
    }
    w->ctx = ctx;
    w->ops = ops;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->work_cv, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        pthread_cond_destroy(&w->done_cv);
        pthread_cond_destroy(&w->work_cv);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    ngl_pmpi_log(NGL_LOG_INFO, "progress thread started for a communicator of %d ranks", ctx->size);
    ctx->worker = w;
    ctx->worker_stop = ngl_pmpi_async_stop;
    return w;
}

static void enqueue(struct ngl_pmpi_worker *w, job *j)
{
    pthread_mutex_lock(&w->lock);
    if (w->tail) {
        w->tail->next = j;
    } else {
        w->head = j;
    }
    w->tail = j;
    pthread_cond_signal(&w->work_cv);
    pthread_mutex_unlock(&w->lock);
}

/* A failure to start the thread or queue the call is local to one rank, and
 * the others may already be waiting in the collective: nothing but stopping
 * the job is safe. */
static int fatal(ngl_pmpi_comm *ctx, const char *what)
{
    ngl_pmpi_log(NGL_LOG_ERROR, "%s; aborting the job (the other ranks are already in the call)",
                 what);
    PMPI_Abort(ctx->comm, MPI_ERR_NO_MEM);
    return MPI_ERR_NO_MEM;
}

int ngl_pmpi_async_submit(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c, MPI_Request *req,
                          const ngl_pmpi_call_ops *ops)
{
    struct ngl_pmpi_worker *w = worker_get(ctx, ops);
    job *j = calloc(1, sizeof *j);
    if (w == NULL || j == NULL) {
        free(j);
        return fatal(ctx, "cannot start the progress thread for MPI_Iallreduce");
    }
    j->call = *c;
    j->kind = JOB_RUN;
    const int rc = PMPI_Grequest_start(greq_query, greq_free, greq_cancel, j, &j->greq);
    if (rc != MPI_SUCCESS) {
        free(j);
        return fatal(ctx, "MPI_Grequest_start failed");
    }
    *req = j->greq;
    enqueue(w, j);
    return MPI_SUCCESS;
}

int ngl_pmpi_async_run(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c)
{
    struct ngl_pmpi_worker *w = ctx->worker;
    job j;
    memset(&j, 0, sizeof j);
    j.call = *c;
    j.kind = JOB_RUN;
    j.blocking = 1;
    enqueue(w, &j);
    pthread_mutex_lock(&w->lock);
    while (!j.done) {
        pthread_cond_wait(&w->done_cv, &w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return j.rc;
}

void ngl_pmpi_async_note(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c)
{
    job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        fatal(ctx, "out of memory recording a call");
        return;
    }
    j->call = *c;
    j->kind = JOB_NOTE;
    enqueue(ctx->worker, j);
}

/* ctx->worker_stop: the context's teardown (pmpi_comm.c) calls it there. */
void ngl_pmpi_async_stop(ngl_pmpi_comm *ctx)
{
    struct ngl_pmpi_worker *w = ctx->worker;
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->work_cv);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->done_cv);
    pthread_cond_destroy(&w->work_cv);
    pthread_mutex_destroy(&w->lock);
    free(w);
    ctx->worker = NULL;
    ctx->worker_stop = NULL;
}
