/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_plain.c -- NANGILA_MODE=auto's plain arms: besides Open MPI's own
 * choice of allreduce algorithm, the forced algorithms of its tuned
 * component, each on a private duplicate of a context's communicator. The
 * engine explores them like the codecs (engine_auto.c) and runs the
 * fastest, so a call auto leaves plain is never slower than the best plain
 * Open MPI algorithm it measured. Why: at 4-16 KiB on four ranks, Open MPI's
 * fixed decision ran at 0.59-0.85x the speed of its best forced algorithm
 * (often 1, basic linear) on every link of scripts/bench-mpi.sh.
 *
 * How Open MPI 4.1 forces an algorithm on one communicator (v4.1.4 sources):
 *   - coll_tuned_use_dynamic_rules is read-only at run time
 *     (coll_tuned_component.c:177-183), so it must be on from start-up:
 *     ngl_pmpi_plain_preinit() puts it in the environment before PMPI_Init;
 *   - when a communicator's tuned module is enabled, with dynamic rules on,
 *     it reads coll_tuned_allreduce_algorithm's current value
 *     (coll_tuned_module.c:211-223, the macro at :152-172 calling
 *     ompi_coll_tuned_forced_getvalues at :123-150) and, if nonzero, routes
 *     that communicator's allreduces to the dynamic decision, which runs the
 *     forced algorithm (coll_tuned_decision_dynamic.c:85-90);
 *   - the variable is settable at run time, scope ALL
 *     (coll_tuned_allreduce_decision.c:77-85),
 * so: write the variable through MPI_T, PMPI_Comm_dup, write it back.
 *
 * Algorithms (coll_tuned_allreduce_decision.c:37-46, 134-149): 1 basic
 * linear, 2 nonoverlapping (reduce + bcast), 3 recursive doubling, 4 ring,
 * 5 segmented ring, 6 Rabenseifner. Each is valid for every float sum: the
 * ring falls back to recursive doubling below one element per rank
 * (coll_base_allreduce.c:370-376), Rabenseifner to basic linear below the
 * largest power of two of ranks (:988-995). The segmented ring gets 1 MiB
 * segments through coll_tuned_allreduce_algorithm_segmentsize, read with
 * the algorithm (coll_tuned_module.c:140-141; the fastest plain algorithm
 * from 2 MiB up on unshaped links in verification/mpi): with the default 0
 * it would be the ring again, and below P segments it is the ring
 * (coll_base_allreduce.c:651-660).
 *
 * Everything here depends only on settings checked to match and on one
 * agreement per communicator, so every rank has the same arms.
 */
#include "pmpi_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;

/* The forced algorithms, in arm order after arm 0 (Open MPI's choice),
 * and their segment sizes (bytes; 0: none). */
static const int plain_algs[] = {1, 2, 3, 4, 5, 6};
static const int plain_segsize[] = {0, 0, 0, 0, 1 << 20, 0};
#define NALGS ((int)(sizeof plain_algs / sizeof plain_algs[0]))

/* Arm names for the engine's logs and summary. */
static const char *const plain_names[NGL_AUTO_PLAIN_MAX] = {
    "default (Open MPI's own choice)",
    "alg1 (basic linear)",
    "alg2 (nonoverlapping)",
    "alg3 (recursive doubling)",
    "alg4 (ring)",
    "alg5 (segmented ring, 1 MiB segments)",
    "alg6 (Rabenseifner)",
};

_Static_assert(NALGS + 1 <= NGL_AUTO_PLAIN_MAX, "more plain arms than the engine takes");

/* A control variable with no object binding, read as an int (Open MPI
 * exposes bool variables as MPI_C_BOOL, one byte). */
typedef struct cvar {
    MPI_T_cvar_handle h;
    int size; /* bytes of one value: sizeof(int) for MPI_INT, 1 for MPI_C_BOOL */
} cvar;

static struct {
    pthread_mutex_t lock; /* writes of the algorithm variable and the dups after them */
    int t_open;           /* PMPI_T_init_thread succeeded */
    int have_alg;
    cvar alg;  /* coll_tuned_allreduce_algorithm */
    cvar seg;  /* coll_tuned_allreduce_algorithm_segmentsize */
    int narms; /* plain arms every context gets: 1, or 1 + NALGS */
} PL = {.lock = PTHREAD_MUTEX_INITIALIZER, .narms = 1};

void ngl_pmpi_plain_preinit(void)
{
    /* Only for auto (NANGILA_MODE unset is auto): a fixed mode or off never
     * plans plain calls, and must leave Open MPI exactly as it was. */
    const char *mode = getenv("NANGILA_MODE");
    if (mode != NULL && strcasecmp(mode, "auto") != 0) {
        return;
    }
    /* The user's own tuned settings stand. Any OMPI_MCA_coll_tuned_*
     * variable keeps us out: forced algorithms (coll_tuned_*_algorithm) are
     * inert without dynamic rules, and turning the rules on would activate
     * them on every communicator. (Settings in mca-params.conf files are not
     * seen here; the environment overrides them.) */
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, "OMPI_MCA_coll_tuned_", 20) == 0) {
            return;
        }
    }
    /* With dynamic rules on and neither a forced algorithm nor a rules
     * file, tuned keeps its fixed decision for every communicator: the
     * module's enable step selects the dynamic decision only for a
     * collective with a forced algorithm or a rule
     * (coll_tuned_module.c:152-172; the fixed decision functions stay from
     * :98-113), and the dynamic allreduce decision itself falls back to the
     * fixed one (coll_tuned_decision_dynamic.c:91-92). So the user's
     * communicators run exactly what they ran before; only our private
     * duplicates, made while the variable is written, run forced
     * algorithms. */
    setenv("OMPI_MCA_coll_tuned_use_dynamic_rules", "1", 0);
}

/* 0 if this MPI has no such variable (or not of an int-like type). */
static int cvar_open(const char *name, cvar *cv, int *count)
{
    int idx, verb, bind, scope, nl = 0, dl = 0;
    MPI_Datatype dt;
    MPI_T_enum en;
    if (PMPI_T_cvar_get_index(name, &idx) != MPI_SUCCESS ||
        PMPI_T_cvar_get_info(idx, NULL, &nl, &verb, &dt, &en, NULL, &dl, &bind, &scope) !=
            MPI_SUCCESS ||
        bind != MPI_T_BIND_NO_OBJECT ||
        PMPI_T_cvar_handle_alloc(idx, NULL, &cv->h, count) != MPI_SUCCESS) {
        return 0;
    }
    cv->size = dt == MPI_INT ? (int)sizeof(int) : dt == MPI_C_BOOL ? 1 : 0;
    return 1;
}

static int cvar_read(const cvar *cv, int *v)
{
    unsigned char buf[sizeof(int)] = {0};
    if (cv->size == 0 || PMPI_T_cvar_read(cv->h, buf) != MPI_SUCCESS) {
        return 0;
    }
    if (cv->size == 1) {
        *v = buf[0];
    } else {
        memcpy(v, buf, sizeof *v);
    }
    return 1;
}

static int cvar_write(const cvar *cv, int v)
{
    int back = -1;
    return cv->size == (int)sizeof(int) && PMPI_T_cvar_write(cv->h, &v) == MPI_SUCCESS &&
           cvar_read(cv, &back) && back == v;
}

/* Why there is one plain arm, or NULL when the forced algorithms are
 * usable (PL.alg open). */
static const char *probe(void)
{
    int provided = 0, count = 0, v = 0;
    if (PMPI_T_init_thread(MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
        return "the MPI tool interface did not start";
    }
    PL.t_open = 1;
    cvar dyn;
    if (!cvar_open("coll_tuned_use_dynamic_rules", &dyn, &count)) {
        return "Open MPI's tuned collectives have no control variables here (not loaded?)";
    }
    const int dyn_ok = cvar_read(&dyn, &v) && v == 1;
    PMPI_T_cvar_handle_free(&dyn.h);
    if (!dyn_ok) {
        return "coll_tuned_use_dynamic_rules is off (it was set to 0 before MPI_Init)";
    }
    cvar file;
    if (cvar_open("coll_tuned_dynamic_rules_filename", &file, &count)) {
        /* a rules file decides before any forced algorithm
         * (coll_tuned_decision_dynamic.c:66-83) */
        char *name = count > 0 ? calloc((size_t)count + 1u, 1) : NULL;
        const int has_file =
            name != NULL && PMPI_T_cvar_read(file.h, name) == MPI_SUCCESS && name[0] != '\0';
        free(name);
        PMPI_T_cvar_handle_free(&file.h);
        if (has_file) {
            return "a coll_tuned_dynamic_rules_filename decides Open MPI's algorithms";
        }
    }
    if (!cvar_open("coll_tuned_allreduce_algorithm", &PL.alg, &count) || count != 1 ||
        PL.alg.size != (int)sizeof(int) || !cvar_read(&PL.alg, &v)) {
        return "coll_tuned_allreduce_algorithm cannot be read or written through MPI_T";
    }
    if (!cvar_open("coll_tuned_allreduce_algorithm_segmentsize", &PL.seg, &count) || count != 1 ||
        PL.seg.size != (int)sizeof(int) || !cvar_read(&PL.seg, &v)) {
        PMPI_T_cvar_handle_free(&PL.alg.h);
        return "coll_tuned_allreduce_algorithm_segmentsize cannot be read or written through "
               "MPI_T";
    }
    PL.have_alg = 1;
    return NULL;
}

void ngl_pmpi_plain_probe(const ngl_settings *s)
{
    if (!s->mode_auto) {
        return;
    }
    const char *why = probe();
    if (why != NULL) {
        ngl_pmpi_log(NGL_LOG_INFO, "auto: one plain arm, Open MPI's own allreduce algorithm (%s)",
                     why);
        return;
    }
    PL.narms = 1 + NALGS;
    ngl_pmpi_log(NGL_LOG_INFO,
                 "auto: plain arms are Open MPI's own allreduce algorithm and its tuned "
                 "algorithms 1 (basic linear), 2 (nonoverlapping), 3 (recursive doubling), "
                 "4 (ring), 5 (segmented ring, 1 MiB segments), 6 (Rabenseifner), each on a "
                 "private duplicate");
}

void ngl_pmpi_plain_names(const char *names[NGL_AUTO_PLAIN_MAX])
{
    for (int k = 0; k < NGL_AUTO_PLAIN_MAX; k++) {
        names[k] = k < PL.narms && PL.narms > 1 ? plain_names[k] : NULL;
    }
}

void ngl_pmpi_plain_free(ngl_pmpi_comm *ctx)
{
    for (int k = 1; k < ctx->nplain; k++) {
        if (ctx->plain_comm[k] != MPI_COMM_NULL) {
            PMPI_Comm_free(&ctx->plain_comm[k]);
        }
    }
    ctx->nplain = 1;
}

int ngl_pmpi_plain_create(ngl_pmpi_comm *ctx)
{
    ctx->nplain = 1;
    if (PL.narms <= 1) {
        return MPI_SUCCESS;
    }
    /*
     * The variable is process-wide and read when a communicator is created,
     * so a write must not meet another thread's communicator creation. A
     * lock held across PMPI_Comm_dup could deadlock, though: two threads
     * creating contexts of two communicators may take it in opposite orders
     * on two ranks while each dup waits for the other rank. So the lock is
     * only tried; a rank that does not get it (or cannot write the
     * variable) still makes the duplicates, as every rank must, but says so
     * in the agreement below, and then no rank uses them.
     */
    const int locked = pthread_mutex_trylock(&PL.lock) == 0;
    int clean = locked;
    int prev = 0, prev_seg = 0;
    if (locked) {
        clean = cvar_read(&PL.alg, &prev) && cvar_read(&PL.seg, &prev_seg);
    }
    int made = 0, rc = MPI_SUCCESS;
    for (int k = 1; k < PL.narms && rc == MPI_SUCCESS; k++) {
        if (clean) {
            clean =
                cvar_write(&PL.alg, plain_algs[k - 1]) && cvar_write(&PL.seg, plain_segsize[k - 1]);
        }
        rc = PMPI_Comm_dup(ctx->ic, &ctx->plain_comm[k]);
        made += rc == MPI_SUCCESS;
    }
    if (locked) {
        if (!cvar_write(&PL.alg, prev) || !cvar_write(&PL.seg, prev_seg)) {
            /* later communicators would get a forced algorithm */
            ngl_pmpi_log(NGL_LOG_WARN, "cannot reset coll_tuned_allreduce_algorithm to %d", prev);
        }
        pthread_mutex_unlock(&PL.lock);
    }
    ctx->nplain = 1 + made; /* what ngl_pmpi_plain_free() frees */
    int all = clean && rc == MPI_SUCCESS;
    if (rc == MPI_SUCCESS) {
        rc = PMPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, ctx->ic);
    }
    if (rc != MPI_SUCCESS || !all) {
        ngl_pmpi_plain_free(ctx);
        if (rc == MPI_SUCCESS) {
            ngl_pmpi_log(NGL_LOG_INFO,
                         "auto: one plain arm on a communicator of %d ranks (its forced-algorithm "
                         "duplicates were made while another thread created a communicator)",
                         ctx->size);
        }
        return rc;
    }
    return MPI_SUCCESS;
}

void ngl_pmpi_plain_finalize(void)
{
    if (PL.have_alg) {
        PMPI_T_cvar_handle_free(&PL.seg.h);
        PMPI_T_cvar_handle_free(&PL.alg.h);
        PL.have_alg = 0;
    }
    if (PL.t_open) {
        PMPI_T_finalize();
        PL.t_open = 0;
    }
    PL.narms = 1;
}
