/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_comm.c -- global set-up, per-communicator contexts (each with its
 * collective engine), agreement on new stream sets, statistics and teardown.
 *
 * State lives in an attribute on the user's communicator (keyval with
 * MPI_COMM_NULL_COPY_FN, so duplicates start fresh, and a delete callback,
 * so MPI_Comm_free releases it). One attribute on MPI_COMM_SELF is the
 * finalize hook: MPI deletes MPI_COMM_SELF's attributes first inside
 * MPI_Finalize, while MPI is still fully usable, and its callback deletes
 * every remaining context and prints the statistics.
 */
#include "ngl_topo.h"
#include "pmpi_internal.h"

#include "ngl_env.h"
#include "ngl_hash.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { G_NEW = 0, G_READY = 1, G_FINALIZED = 2 };

static struct {
    atomic_int state;
    pthread_mutex_t init_lock;
    pthread_mutex_t lock; /* registry and totals */
    ngl_settings s;
    char ifname[64]; /* NANGILA_SOCKET_IFNAME: the interface, for the topology */
    ngl_topo topo;   /* where this process runs (hwloc), probed at start-up */
    int comm_keyval;
    int self_keyval;
    int world_rank;
    atomic_uint_fast64_t serial;
    atomic_uint_fast64_t calls_seen;
    ngl_pmpi_comm *reg_head;
    ngl_engine_stats totals;
    char summary[16384]; /* auto's choices and the hierarchy per communicator */
    char skip_marker;    /* its address marks communicators we never compress on */
} G = {
    .state = G_NEW,
    .init_lock = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .comm_keyval = MPI_KEYVAL_INVALID,
    .self_keyval = MPI_KEYVAL_INVALID,
};

double ngl_pmpi_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const ngl_settings *ngl_pmpi_settings(void)
{
    return &G.s;
}

const ngl_topo *ngl_pmpi_topology(void)
{
    return &G.topo;
}

static void settings_describe(char *desc, size_t cap);

/* ---- logging ------------------------------------------------------------ */

static const char *level_name(ngl_log_level level)
{
    static const char *names[] = {"none", "error", "warn", "info", "debug", "trace"};
    return (unsigned)level < 6u ? names[level] : "?";
}

static void log_sink(void *user, ngl_log_level level, const char *msg)
{
    (void)user;
    fprintf(stderr, "nangila[%d] %s: %s\n", G.world_rank, level_name(level), msg);
}

void ngl_pmpi_log(ngl_log_level level, const char *fmt, ...)
{
    if (level == NGL_LOG_NONE || level > G.s.log_level) {
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_sink(NULL, level, msg);
}

/* ---- statistics --------------------------------------------------------- */

void ngl_pmpi_note_call(void)
{
    atomic_fetch_add_explicit(&G.calls_seen, 1, memory_order_relaxed);
}

void ngl_pmpi_stats_merge(const ngl_engine_stats *s)
{
    pthread_mutex_lock(&G.lock);
    ngl_engine_stats_add(&G.totals, s);
    pthread_mutex_unlock(&G.lock);
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0.0;
}

static void stats_print(void)
{
    const ngl_engine_stats *t = &G.totals;
    const uint64_t calls = atomic_load(&G.calls_seen);
    const double mib = 1.0 / (1024.0 * 1024.0);
    char desc[320];
    settings_describe(desc, sizeof desc);
    fprintf(stderr,
            "nangila: MPI_Allreduce summary (rank 0): %llu calls seen, %llu compressed "
            "(%llu without carried state), %llu passed through; %s\n"
            "nangila:   compressed data: %.1f MiB fp32 -> frames %.1f MiB, wire ratio %.2fx "
            "(headers included)\n"
            "nangila:   sent by rank 0: %.1f MiB; a ring allreduce sends 2(P-1)/P x input = "
            "%.1f MiB, %.2fx more\n"
            "nangila:   time in compressed calls %.3f s: codec %.3f s (encode %.3f, decode %.3f), "
            "communication and waiting %.3f s\n",
            (unsigned long long)calls, (unsigned long long)t->calls_compressed,
            (unsigned long long)t->calls_transient,
            (unsigned long long)(calls - t->calls_compressed), desc, (double)t->bytes_in * mib,
            (double)t->frame_out * mib, ratio(t->frame_in, t->frame_out),
            (double)t->bytes_sent * mib, (double)t->bytes_ring * mib,
            ratio(t->bytes_ring, t->bytes_sent), t->t_total, t->t_encode + t->t_decode, t->t_encode,
            t->t_decode, t->t_total - t->t_encode - t->t_decode);
    if (G.summary[0] != '\0') {
        fprintf(stderr, "%s", G.summary);
    }
    fflush(stderr);
}

/* ---- stream sets ------------------------------------------------------------ */

ngl_engine_set *ngl_pmpi_set_get(ngl_pmpi_comm *ctx, uint64_t token, uint32_t k, uint64_t count,
                                 ngl_mode mode, int *created, int *rc)
{
    *rc = MPI_SUCCESS;
    *created = 0;
    ngl_engine_set *set = NULL;
    const ngl_engine_shape shape = {
        .count = count, .dtype = NGL_DTYPE_F32, .mode = mode, .ops = &ngl_cc_host_ops};
    const ngl_status st = ngl_engine_set_get(ctx->eng, token, k, &shape, &set, created);
    if (st == NGL_OK && !*created) {
        return set; /* every rank created it at the same call, so it exists everywhere */
    }
    int ok = st == NGL_OK && ngl_pmpi_scratch_reserve(ctx, set->frame_cap);
    /* Every rank must take the same path, so agree on success. */
    int all_ok = ok;
    *rc = PMPI_Allreduce(MPI_IN_PLACE, &all_ok, 1, MPI_INT, MPI_MIN, ctx->ic);
    if (*rc != MPI_SUCCESS || !all_ok) {
        if (*rc == MPI_SUCCESS) {
            ngl_pmpi_log(NGL_LOG_WARN,
                         "cannot allocate the streams of a %llu-float allreduce on %s; "
                         "this call runs uncompressed",
                         (unsigned long long)count, ok ? "another rank" : "this rank");
        }
        if (set != NULL) {
            ngl_engine_set_drop(ctx->eng, set);
        }
        return NULL;
    }
    return set;
}

int ngl_pmpi_auto_agree(ngl_pmpi_comm *ctx, uint32_t cls)
{
    ngl_auto *am = ngl_engine_auto(ctx->eng);
    double v[NGL_AUTO_VEC];
    ngl_auto_local(am, cls, v);
    /* MIN: the rank that arrived last timed the collective without the
     * application's imbalance (engine_auto.c). */
    const int rc = PMPI_Allreduce(MPI_IN_PLACE, v, NGL_AUTO_VEC, MPI_DOUBLE, MPI_MIN, ctx->ic);
    if (rc == MPI_SUCCESS) {
        ngl_auto_agree(am, cls, v);
    }
    return rc;
}

int ngl_pmpi_scratch_reserve(ngl_pmpi_comm *ctx, size_t frame_cap)
{
    if (frame_cap <= ctx->frame_cap) {
        return 1;
    }
    const size_t P = (size_t)ctx->size;
    const size_t nframes = NGL_PMPI_WINDOW * (3u * P + 1u);
    const size_t nreq = NGL_PMPI_WINDOW * 4u * P;
    if (frame_cap > SIZE_MAX / nframes) {
        return 0;
    }
    /* malloc, not calloc: only the pages frames actually use get touched. */
    unsigned char *frames = malloc(nframes * frame_cap);
    if (frames == NULL) {
        return 0;
    }
    free(ctx->frames);
    ctx->frames = frames;
    ctx->frame_cap = frame_cap;
    if (ctx->reqs == NULL) {
        ctx->reqs = malloc(nreq * sizeof *ctx->reqs);
        ctx->statuses = malloc(nreq * sizeof *ctx->statuses);
        ctx->indices = malloc(nreq * sizeof *ctx->indices);
        ctx->lens = calloc(nreq, sizeof *ctx->lens);
        if (!ctx->reqs || !ctx->statuses || !ctx->indices || !ctx->lens) {
            return 0;
        }
        for (size_t i = 0; i < nreq; i++) {
            ctx->reqs[i] = MPI_REQUEST_NULL;
        }
    }
    return 1;
}

/* ---- per-communicator contexts ------------------------------------------ */

static void registry_add(ngl_pmpi_comm *ctx)
{
    pthread_mutex_lock(&G.lock);
    ctx->reg_prev = NULL;
    ctx->reg_next = G.reg_head;
    if (G.reg_head) {
        G.reg_head->reg_prev = ctx;
    }
    G.reg_head = ctx;
    pthread_mutex_unlock(&G.lock);
}

static void registry_remove(ngl_pmpi_comm *ctx)
{
    pthread_mutex_lock(&G.lock);
    if (ctx->reg_prev) {
        ctx->reg_prev->reg_next = ctx->reg_next;
    } else if (G.reg_head == ctx) {
        G.reg_head = ctx->reg_next;
    }
    if (ctx->reg_next) {
        ctx->reg_next->reg_prev = ctx->reg_prev;
    }
    ctx->reg_prev = ctx->reg_next = NULL;
    pthread_mutex_unlock(&G.lock);
}

void ngl_pmpi_summary_append(const char *fmt, ...)
{
    pthread_mutex_lock(&G.lock);
    const size_t used = strlen(G.summary);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(G.summary + used, sizeof G.summary - used, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&G.lock);
}

static void ctx_destroy(ngl_pmpi_comm *ctx)
{
    if (ctx->worker_stop != NULL) {
        ctx->worker_stop(ctx); /* finishes the queued calls first */
    }
    ngl_pmpi_hier_destroy(ctx);
    if (ctx->eng != NULL) {
        char line[256];
        ngl_engine_describe(ctx->eng, line, sizeof line);
        ngl_pmpi_log(NGL_LOG_INFO, "communicator of %d ranks closed: %s", ctx->size, line);
    }
    ngl_engine_destroy(ctx->eng);
    ngl_pmpi_plain_free(ctx);
    if (ctx->ic != MPI_COMM_NULL) {
        PMPI_Comm_free(&ctx->ic);
    }
    free(ctx->bounce);
    free(ctx->lens);
    free(ctx->indices);
    free(ctx->statuses);
    free(ctx->reqs);
    free(ctx->frames);
    free(ctx);
}

/* Keep auto's choices of a closing communicator for the summary (rank 0
 * of the job prints it at MPI_Finalize with NANGILA_STATS=1). */
static void auto_summary_add(ngl_pmpi_comm *ctx)
{
    const ngl_auto *am = ngl_engine_auto(ctx->eng);
    if (!ngl_auto_enabled(am)) {
        return;
    }
    char lines[8192];
    if (ngl_auto_describe(am, "nangila:     ", lines, sizeof lines) == 0) {
        return;
    }
    ngl_pmpi_summary_append("nangila:   NANGILA_MODE=auto on a communicator of %d ranks, per "
                            "message size (times: median over calls of the slowest rank):\n%s",
                            ctx->size, lines);
}

/* Delete callback of the communicator keyval: MPI_Comm_free, or our own
 * teardown at MPI_Finalize. */
static int ctx_delete_fn(MPI_Comm comm, int keyval, void *attr, void *extra)
{
    (void)comm;
    (void)keyval;
    (void)extra;
    if (attr == NULL || attr == &G.skip_marker) {
        return MPI_SUCCESS;
    }
    ngl_pmpi_comm *ctx = attr;
    registry_remove(ctx);
    if (ctx->worker_stop != NULL) {
        ctx->worker_stop(ctx); /* its queued calls finish first */
    }
    if (ctx->eng != NULL) {
        ngl_pmpi_stats_merge(ngl_engine_stats_of(ctx->eng));
        auto_summary_add(ctx);
    }
    ctx_destroy(ctx);
    return MPI_SUCCESS;
}

/* Delete callback of the MPI_COMM_SELF attribute: the first thing
 * MPI_Finalize does. */
static int self_delete_fn(MPI_Comm comm, int keyval, void *attr, void *extra)
{
    (void)comm;
    (void)keyval;
    (void)attr;
    (void)extra;
    for (;;) {
        pthread_mutex_lock(&G.lock);
        ngl_pmpi_comm *ctx = G.reg_head;
        pthread_mutex_unlock(&G.lock);
        if (ctx == NULL) {
            break;
        }
        /* Runs ctx_delete_fn, which unregisters ctx. If MPI refuses (the
         * handle is gone), clean up by hand so the loop ends. */
        if (PMPI_Comm_delete_attr(ctx->comm, G.comm_keyval) != MPI_SUCCESS) {
            ctx_delete_fn(ctx->comm, G.comm_keyval, ctx, NULL);
        }
    }
    ngl_pmpi_plain_finalize();
    if (G.s.stats && G.world_rank == 0) {
        stats_print();
    }
    if (G.comm_keyval != MPI_KEYVAL_INVALID) {
        PMPI_Comm_free_keyval(&G.comm_keyval);
    }
    atomic_store(&G.state, G_FINALIZED);
    return MPI_SUCCESS;
}

int ngl_pmpi_comm_is_skipped(MPI_Comm comm)
{
    void *val = NULL;
    int flag = 0;
    if (PMPI_Comm_get_attr(comm, G.comm_keyval, &val, &flag) != MPI_SUCCESS) {
        return 1;
    }
    return flag && val == &G.skip_marker;
}

void ngl_pmpi_comm_mark_skipped(MPI_Comm comm)
{
    PMPI_Comm_set_attr(comm, G.comm_keyval, &G.skip_marker);
}

static uint64_t fnv1a(const char *str)
{
    return ngl_fnv1a(NGL_FNV_INIT, str, strlen(str));
}

static const char *status_name(int st)
{
    switch (st) {
    case NGL_PMPI_ACTIVE: return "active";
    case NGL_PMPI_OFF: return "off";
    case NGL_PMPI_MISMATCH: return "settings mismatch";
    default: return "set-up failed";
    }
}

/* The settings every rank of a communicator must share: core's and the
 * wrapper's own. */
static void settings_describe(char *desc, size_t cap)
{
    const size_t n = ngl_settings_describe(&G.s, desc, cap);
    if (n < cap) {
        ngl_pmpi_hier_describe(desc + n, cap - n);
    }
}

/* Create the context of @p comm (collective over it) and attach it. */
static ngl_pmpi_comm *comm_create(MPI_Comm comm, int allow_hier)
{
    ngl_pmpi_comm *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        /* Cannot even take part in the check; the others would wait for
         * us, so this is fatal rather than a silent fallback. */
        fprintf(stderr, "nangila: out of memory creating a communicator context\n");
        PMPI_Abort(comm, 1);
        return NULL;
    }
    ctx->comm = comm;
    ctx->ic = MPI_COMM_NULL;
    PMPI_Comm_rank(comm, &ctx->rank);
    PMPI_Comm_size(comm, &ctx->size);

    /*
     * Settings check: every rank contributes the hash of its canonical
     * settings and its hash's complement to one MPI_MAX reduction, which
     * yields max and (the complement of) min at once. They are equal only
     * if every rank has the same settings; all ranks see the same answer,
     * so all take the same path. The third value salts stream ids.
     */
    char desc[320];
    settings_describe(desc, sizeof desc);
    const uint64_t h = fnv1a(desc);
    uint64_t v[3] = {h, ~h, atomic_fetch_add(&G.serial, 1)};
    int rc = PMPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_UINT64_T, MPI_MAX, comm);
    if (rc != MPI_SUCCESS) {
        ctx->status = NGL_PMPI_FAILED;
    } else if (v[0] != ~v[1]) {
        ctx->status = NGL_PMPI_MISMATCH;
        ngl_pmpi_log(NGL_LOG_ERROR,
                     "NANGILA_* settings differ between the %d ranks of a communicator; this "
                     "rank has: %s. MPI_Allreduce stays uncompressed on this communicator.",
                     ctx->size, desc);
    } else if (G.s.mode == NGL_MODE_OFF) {
        ctx->status = NGL_PMPI_OFF;
    } else {
        ngl_engine_config ecfg = {
            .nranks = ctx->size,
            .rank = ctx->rank,
            .uid = ngl_hash_mix64(v[2] ^ ((uint64_t)ctx->size << 40)),
            .codec = G.s,
            .seg_policy = NGL_ENGINE_SEG_PIPELINE,
            .log = log_sink,
        };
        rc = PMPI_Comm_dup(comm, &ctx->ic);
        if (rc != MPI_SUCCESS) {
            ctx->ic = MPI_COMM_NULL;
        } else {
            rc = ngl_pmpi_plain_create(ctx); /* auto's plain arms, collective */
        }
        ecfg.auto_plain = (uint32_t)ctx->nplain;
        ngl_pmpi_plain_names(ecfg.auto_plain_names);
        if (rc == MPI_SUCCESS && ngl_engine_create(&ecfg, &ctx->eng) != NGL_OK) {
            /* Every rank creates the same engine; only memory can fail. */
            ngl_pmpi_log(NGL_LOG_ERROR, "out of memory for a communicator's engine; aborting");
            PMPI_Abort(comm, MPI_ERR_NO_MEM);
        }
        if (rc != MPI_SUCCESS) {
            ctx->status = NGL_PMPI_FAILED;
        } else {
            void *ub = NULL;
            int has_ub = 0;
            PMPI_Comm_get_attr(ctx->ic, MPI_TAG_UB, &ub, &has_ub);
            ctx->tag_ub = has_ub && ub ? *(int *)ub : 32767;
        }
    }
    /* Every rank reaches this with the same status (agreed above). */
    if (allow_hier && ctx->status == NGL_PMPI_ACTIVE && ngl_pmpi_hier_setup(ctx) != MPI_SUCCESS) {
        ctx->status = NGL_PMPI_FAILED;
    }
    if (ctx->hier != NULL) {
        ngl_pmpi_plain_free(ctx); /* its plain calls run on the cross communicator's context */
    }
    ngl_pmpi_log(NGL_LOG_INFO, "communicator of %d ranks: %s (%s)", ctx->size,
                 status_name(ctx->status), desc);
    if (PMPI_Comm_set_attr(comm, G.comm_keyval, ctx) != MPI_SUCCESS) {
        ctx_destroy(ctx);
        return NULL;
    }
    registry_add(ctx);
    return ctx;
}

ngl_pmpi_comm *ngl_pmpi_comm_get(MPI_Comm comm, int create)
{
    void *val = NULL;
    int flag = 0;
    if (PMPI_Comm_get_attr(comm, G.comm_keyval, &val, &flag) != MPI_SUCCESS) {
        return NULL;
    }
    if (flag) {
        return val == &G.skip_marker ? NULL : val;
    }
    return create ? comm_create(comm, 1) : NULL;
}

ngl_pmpi_comm *ngl_pmpi_comm_create_flat(MPI_Comm comm)
{
    return comm_create(comm, 0);
}

/* ---- global set-up ------------------------------------------------------ */

int ngl_pmpi_global_init(void)
{
    const int st = atomic_load(&G.state);
    if (st != G_NEW) {
        return st == G_READY;
    }
    int ready = 0;
    pthread_mutex_lock(&G.init_lock);
    if (atomic_load(&G.state) != G_NEW) {
        ready = atomic_load(&G.state) == G_READY;
        goto out;
    }
    int inited = 0, finalized = 0;
    PMPI_Initialized(&inited);
    PMPI_Finalized(&finalized);
    if (!inited || finalized) {
        goto out;
    }
    PMPI_Comm_rank(MPI_COMM_WORLD, &G.world_rank);

    char err[512];
    if (ngl_settings_from_env(&G.s, err, sizeof err) != NGL_OK ||
        ngl_env_read_str(ngl_env_getenv, "NANGILA_SOCKET_IFNAME", G.ifname, sizeof G.ifname, err,
                         sizeof err) != 0 ||
        ngl_pmpi_hier_settings_read(err, sizeof err) != 0) {
        fprintf(stderr, "nangila[%d]: %s\n", G.world_rank, err);
        fflush(stderr);
        PMPI_Abort(MPI_COMM_WORLD, 1);
        goto out;
    }
    ngl_set_logger(log_sink, NULL, G.s.log_level);
    ngl_pmpi_plain_probe(&G.s);

    if (PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, ctx_delete_fn, &G.comm_keyval, NULL) !=
            MPI_SUCCESS ||
        PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, self_delete_fn, &G.self_keyval, NULL) !=
            MPI_SUCCESS ||
        PMPI_Comm_set_attr(MPI_COMM_SELF, G.self_keyval, NULL) != MPI_SUCCESS) {
        ngl_pmpi_log(NGL_LOG_ERROR, "cannot create MPI keyvals; compression disabled");
        atomic_store(&G.state, G_FINALIZED);
        goto out;
    }
    char desc[320];
    settings_describe(desc, sizeof desc);
    ngl_pmpi_log(NGL_LOG_INFO, "libnangila-mpi %s ready: %s", ngl_version_string(), desc);
    ngl_topo_probe(&G.topo, G.ifname);
    char topo[512];
    ngl_topo_describe(&G.topo, topo, sizeof topo);
    ngl_pmpi_log(NGL_LOG_INFO, "%s", topo);
    atomic_store(&G.state, G_READY);
    ready = 1;
out:
    pthread_mutex_unlock(&G.init_lock);
    return ready;
}
