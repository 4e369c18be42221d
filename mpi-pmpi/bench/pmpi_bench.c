/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_bench.c -- allreduce time per call, several ways in the same run:
 *   plain        PMPI_Allreduce of fp32 on MPI_COMM_WORLD (Open MPI's own
 *                algorithm choice, never intercepted)
 *   plain-algN   the same on a duplicate of MPI_COMM_WORLD whose tuned
 *                allreduce algorithm is forced to N (--algs; see below)
 *   bf16         what a user could write: round to a bf16 buffer, allreduce it
 *                with a user-defined sum op (PMPI), widen back; conversions timed
 *   nangila      MPI_Allreduce of fp32, i.e. through libnangila-mpi.so when it is
 *                preloaded (settings from NANGILA_*)
 * and two derived rows per size: plain-best (the fastest plain method, named
 * in the detail column) and nangila-warmup (the nangila calls made before
 * the timed ones: with NANGILA_MODE=auto these are where it explores, so
 * their cost is reported, not hidden).
 *
 * Methods alternate call by call, so drift on a shared machine hits all of
 * them alike. A call's time is the slowest rank's, after a barrier. Each
 * method stops on its own: after --max-iters calls, or --min-iters calls
 * and --min-time seconds, or --max-time seconds whatever the count (one
 * 256 MiB call on a 1 Gbit/s link takes seconds). With --iface, bytes on the
 * wire per rank are read from the interface counters around each call
 * (TCP/IP headers included).
 *
 * Forcing algorithms in one process: Open MPI's tuned component reads
 * coll_tuned_allreduce_algorithm (and its segment size) when a
 * communicator's coll module is enabled and keeps it for that communicator,
 * provided coll_tuned_use_dynamic_rules was set at start-up. So for each N
 * in --algs the variable is written through the MPI tool interface and
 * MPI_COMM_WORLD is duplicated; then it is set back to 0 (Open MPI's own
 * decision), before the wrapper creates its internal communicator. Run with
 * `mpirun --mca coll_tuned_use_dynamic_rules 1`; without it --algs stops the
 * job. Algorithms: 1 basic linear, 2 nonoverlapping (reduce + bcast),
 * 3 recursive doubling, 4 ring, 5 segmented ring (segment --segsize; with 0
 * it is the plain ring), 6 Rabenseifner (reduce-scatter + allgather).
 *
 * A forced algorithm whose first call at a size takes over --hopeless times
 * the fastest plain method's first call (and over 50 ms) gets that one call
 * only; after two such sizes in a row, both of at least 1 MiB, it is skipped
 * at all larger sizes (a row with 0 calls says so).
 *
 * CSV row (appended to --csv): LABEL,nranks,bytes,method,iters,median_s,
 * min_s,speedup_vs_plain,wire_bytes_per_rank,total_s,detail; LABEL is the
 * caller's (bench-mpi.sh: link,config,policy); speedup_vs_plain is plain's
 * median / the method's; skipped rows leave the times empty.
 *
 *   pmpi_bench [--sizes 1k,4k,...,256M] [--algs 1,2,3,4,5,6] [--segsize B]
 *              [--min-time S] [--max-time S] [--min-iters N] [--max-iters N]
 *              [--warmup N] [--warmup-time S] [--hopeless X]
 *              [--iface DEV] [--label TEXT] [--csv FILE]
 */
#include <assert.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_PLAIN, K_BF16, K_NANGILA };
enum { MAX_METHODS = 16, MAX_ALG = 6 };

typedef struct method {
    char name[16];
    int kind;
    int alg;       /* K_PLAIN: forced algorithm, 0 = Open MPI's decision */
    MPI_Comm comm; /* K_PLAIN: where it runs */
    /* this size */
    double *t;     /* call times, slowest rank's */
    int n;         /* calls timed */
    double total;  /* their sum */
    uint64_t wire; /* this rank's tx bytes over those calls */
    int active;    /* still timing at this size */
    char detail[128];
    /* across sizes */
    int hopeless_run;       /* consecutive sizes >= 1 MiB it was hopeless at */
    uint64_t hopeless_from; /* the first of them */
    uint64_t skip_after;    /* skipped at sizes above this (0: never) */
    double last_med;        /* median at the previous size, 0 if none */
    uint64_t last_bytes;
} method;

static int rank_, size_;

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    }
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static float bf16_to_f32(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void bf16_sum(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    (void)dt;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++) {
        b[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
    }
}

static uint64_t parse_bytes(const char *s, const char **end)
{
    char *e;
    uint64_t v = strtoull(s, &e, 10);
    if (*e == 'k' || *e == 'K') {
        v <<= 10;
        e++;
    } else if (*e == 'm' || *e == 'M') {
        v <<= 20;
        e++;
    } else if (*e == 'g' || *e == 'G') {
        v <<= 30;
        e++;
    }
    *end = e;
    return v;
}

static void human(uint64_t b, char *out, size_t cap)
{
    if (b >= (1u << 20) && b % (1u << 20) == 0) {
        snprintf(out, cap, "%llu MiB", (unsigned long long)(b >> 20));
    } else if (b >= 1024 && b % 1024 == 0) {
        snprintf(out, cap, "%llu KiB", (unsigned long long)(b >> 10));
    } else {
        snprintf(out, cap, "%llu B", (unsigned long long)b);
    }
}

static uint64_t tx_bytes(const char *iface)
{
    if (iface == NULL) {
        return 0;
    }
    char path[256];
    snprintf(path, sizeof path, "/sys/class/net/%s/statistics/tx_bytes", iface);
    FILE *f = fopen(path, "r");
    unsigned long long v = 0;
    if (f) {
        if (fscanf(f, "%llu", &v) != 1) {
            v = 0;
        }
        fclose(f);
    }
    return v;
}

static void die(const char *msg)
{
    if (rank_ == 0) {
        fprintf(stderr, "pmpi_bench: %s\n", msg);
    }
    MPI_Abort(MPI_COMM_WORLD, 2);
}

/* A control variable with no object binding, as an int (Open MPI exposes
 * its bool variables, e.g. coll_tuned_use_dynamic_rules, as MPI_C_BOOL). */
typedef struct cvar {
    MPI_T_cvar_handle h;
    int dt_size; /* bytes of one value: 4 for MPI_INT, 1 for MPI_C_BOOL */
} cvar;

/* 0 if Open MPI does not have it. */
static int cvar_open(const char *name, cvar *cv)
{
    int idx, count, verb, bind, scope, nl = 0, dl = 0;
    MPI_Datatype dt;
    MPI_T_enum en;
    if (MPI_T_cvar_get_index(name, &idx) != MPI_SUCCESS ||
        MPI_T_cvar_get_info(idx, NULL, &nl, &verb, &dt, &en, NULL, &dl, &bind, &scope) !=
            MPI_SUCCESS ||
        (dt != MPI_INT && dt != MPI_C_BOOL) ||
        MPI_T_cvar_handle_alloc(idx, NULL, &cv->h, &count) != MPI_SUCCESS || count != 1) {
        return 0;
    }
    cv->dt_size = dt == MPI_INT ? (int)sizeof(int) : 1;
    return 1;
}

static int cvar_read(const cvar *cv)
{
    unsigned char buf[sizeof(int)] = {0};
    if (MPI_T_cvar_read(cv->h, buf) != MPI_SUCCESS) {
        die("MPI_T_cvar_read failed");
    }
    if (cv->dt_size == 1) {
        return buf[0];
    }
    int v;
    memcpy(&v, buf, sizeof v);
    return v;
}

static void cvar_write(const cvar *cv, int v)
{
    assert(cv->dt_size == (int)sizeof(int));
    if (MPI_T_cvar_write(cv->h, &v) != MPI_SUCCESS || cvar_read(cv) != v) {
        die("MPI_T_cvar_write of a coll_tuned variable failed");
    }
}

/* One communicator per forced algorithm (see the top of the file). */
static void make_alg_comms(const int *algs, int nalg, int segsize, MPI_Comm *comms)
{
    int provided;
    if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) {
        die("MPI_T_init_thread failed");
    }
    cvar dyn, alg, seg;
    if (!cvar_open("coll_tuned_use_dynamic_rules", &dyn) ||
        !cvar_open("coll_tuned_allreduce_algorithm", &alg) ||
        !cvar_open("coll_tuned_allreduce_algorithm_segmentsize", &seg) ||
        alg.dt_size != (int)sizeof(int) || seg.dt_size != (int)sizeof(int)) {
        die("--algs: this MPI has no coll_tuned allreduce control variables");
    }
    if (cvar_read(&dyn) != 1) {
        die("--algs needs `mpirun --mca coll_tuned_use_dynamic_rules 1`");
    }
    for (int i = 0; i < nalg; i++) {
        cvar_write(&alg, algs[i]);
        cvar_write(&seg, algs[i] == 5 ? segsize : 0);
        /* PMPI: the wrapper need not see communicators it never reduces on */
        if (PMPI_Comm_dup(MPI_COMM_WORLD, &comms[i]) != MPI_SUCCESS) {
            die("MPI_Comm_dup failed");
        }
    }
    cvar_write(&alg, 0);
    cvar_write(&seg, 0);
    MPI_T_cvar_handle_free(&seg.h);
    MPI_T_cvar_handle_free(&alg.h);
    MPI_T_cvar_handle_free(&dyn.h);
    MPI_T_finalize();
}

typedef struct bufs {
    float *x, *y;
    uint16_t *h;
    int n;
} bufs;

static void run_once(const method *m, bufs *b, MPI_Op bf16_op)
{
    switch (m->kind) {
    case K_PLAIN: PMPI_Allreduce(b->x, b->y, b->n, MPI_FLOAT, MPI_SUM, m->comm); break;
    case K_BF16:
        for (int i = 0; i < b->n; i++) {
            b->h[i] = f32_to_bf16(b->x[i]);
        }
        PMPI_Allreduce(MPI_IN_PLACE, b->h, b->n, MPI_UINT16_T, bf16_op, MPI_COMM_WORLD);
        for (int i = 0; i < b->n; i++) {
            b->y[i] = bf16_to_f32(b->h[i]);
        }
        break;
    default: MPI_Allreduce(b->x, b->y, b->n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); break;
    }
}

/* One timed call: the slowest rank's time; adds this rank's tx bytes. */
static double timed(const method *m, bufs *b, MPI_Op op, const char *iface, uint64_t *wire)
{
    PMPI_Barrier(MPI_COMM_WORLD);
    const uint64_t w0 = tx_bytes(iface);
    const double t0 = MPI_Wtime();
    run_once(m, b, op);
    double dt = MPI_Wtime() - t0;
    *wire += tx_bytes(iface) - w0;
    PMPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return dt;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t. */
static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* The busiest rank's bytes per call (collective). */
static double wire_per_call(uint64_t wire, int n)
{
    double v = n > 0 ? (double)wire / n : 0;
    PMPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return v;
}

static void csv_row(FILE *out, const char *label, uint64_t bytes, const char *name, int iters,
                    double med, double min, double plain_med, double wire, double total,
                    const char *detail)
{
    if (out == NULL) {
        return;
    }
    if (iters == 0) {
        fprintf(out, "%s,%d,%llu,%s,0,,,,,,%s\n", label, size_, (unsigned long long)bytes, name,
                detail);
        return;
    }
    fprintf(out, "%s,%d,%llu,%s,%d,%.6e,%.6e,%.4f,%.0f,%.6e,%s\n", label, size_,
            (unsigned long long)bytes, name, iters, med, min, plain_med / med, wire, total, detail);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);

    const char *sizes = "1k,4k,16k,64k,256k,512k,1M,2M,4M,8M,16M,32M,64M,128M,256M";
    const char *iface = NULL, *label = "", *csv = NULL, *alg_list = "";
    double min_time = 1.0, max_time = 4.0, warmup_time = 60.0, hopeless = 3.0;
    int min_iters = 3, max_iters = 30, warmup = 16, segsize = 1 << 20;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            die("every option takes a value");
        } else if (!strcmp(a, "--sizes")) {
            sizes = v;
        } else if (!strcmp(a, "--algs")) {
            alg_list = v;
        } else if (!strcmp(a, "--segsize")) {
            segsize = atoi(v);
        } else if (!strcmp(a, "--min-time")) {
            min_time = atof(v);
        } else if (!strcmp(a, "--max-time")) {
            max_time = atof(v);
        } else if (!strcmp(a, "--min-iters")) {
            min_iters = atoi(v);
        } else if (!strcmp(a, "--max-iters")) {
            max_iters = atoi(v);
        } else if (!strcmp(a, "--warmup")) {
            warmup = atoi(v);
        } else if (!strcmp(a, "--warmup-time")) {
            warmup_time = atof(v);
        } else if (!strcmp(a, "--hopeless")) {
            hopeless = atof(v);
        } else if (!strcmp(a, "--iface")) {
            iface = v;
        } else if (!strcmp(a, "--label")) {
            label = v;
        } else if (!strcmp(a, "--csv")) {
            csv = v;
        } else {
            if (rank_ == 0) {
                fprintf(stderr, "pmpi_bench: unknown argument %s\n", a);
            }
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
        i++;
    }
    if (min_iters < 1 || max_iters < min_iters || warmup < 0) {
        die("need 1 <= --min-iters <= --max-iters and --warmup >= 0");
    }

    /* methods, in the order of every round */
    method ms[MAX_METHODS];
    int nm = 0, algs[MAX_ALG], nalg = 0;
    memset(ms, 0, sizeof ms);
    for (const char *s = alg_list; *s;) {
        char *e;
        const long a = strtol(s, &e, 10);
        if (e == s || a < 1 || a > MAX_ALG || nalg == MAX_ALG) {
            die("--algs: a comma-separated list of 1..6");
        }
        algs[nalg++] = (int)a;
        s = *e == ',' ? e + 1 : e;
    }
    MPI_Comm alg_comm[MAX_ALG];
    if (nalg > 0) {
        make_alg_comms(algs, nalg, segsize, alg_comm);
    }
    ms[nm++] = (method){.name = "plain", .kind = K_PLAIN, .comm = MPI_COMM_WORLD};
    for (int i = 0; i < nalg; i++) {
        ms[nm] = (method){.kind = K_PLAIN, .alg = algs[i], .comm = alg_comm[i]};
        snprintf(ms[nm].name, sizeof ms[nm].name, "plain-alg%d", algs[i]);
        nm++;
    }
    const int i_bf16 = nm;
    ms[nm++] = (method){.name = "bf16", .kind = K_BF16};
    const int i_ngl = nm;
    ms[nm++] = (method){.name = "nangila", .kind = K_NANGILA};
    for (int m = 0; m < nm; m++) {
        ms[m].t = calloc((size_t)max_iters, sizeof(double));
        if (ms[m].t == NULL) {
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
    }
    double *wt = calloc((size_t)(warmup > 0 ? warmup : 1), sizeof(double));
    if (wt == NULL) {
        MPI_Abort(MPI_COMM_WORLD, 3);
    }

    FILE *out = NULL;
    if (rank_ == 0 && csv) {
        out = fopen(csv, "a");
        if (out == NULL) {
            perror(csv);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    MPI_Op bf16_op;
    MPI_Op_create(bf16_sum, 1, &bf16_op);
    if (rank_ == 0) {
        if (nalg > 0) {
            printf("forced tuned allreduce algorithms, one communicator each:");
            for (int i = 0; i < nalg; i++) {
                printf(" %d", algs[i]);
            }
            printf(" (segmented ring: %d-byte segments)\n", segsize);
        }
        printf("%-10s %10s %16s %10s %10s %10s %8s %8s %12s %12s %6s\n", "bytes", "plain ms",
               "best plain ms", "bf16 ms", "nangila ms", "warm-up ms", "ngl x", "x best",
               "wire/rank", "ngl wire/rk", "s");
        fflush(stdout);
    }

    for (const char *s = sizes; *s;) {
        const char *e;
        const uint64_t bytes = parse_bytes(s, &e);
        s = *e == ',' ? e + 1 : e;
        if (bytes < 4) {
            continue;
        }
        char hb[32];
        human(bytes, hb, sizeof hb);
        const double t_size = MPI_Wtime();
        bufs b;
        b.n = (int)(bytes / 4);
        b.x = malloc((size_t)b.n * sizeof(float));
        b.y = malloc((size_t)b.n * sizeof(float));
        b.h = malloc((size_t)b.n * sizeof(uint16_t));
        if (!b.x || !b.y || !b.h) {
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        /* gradient-like: zero-mean, heavy-ish tails, different per rank */
        uint64_t st = 0x9e3779b97f4a7c15ull * (uint64_t)(rank_ + 1);
        for (int i = 0; i < b.n; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            const double u = ((double)(st >> 11) + 0.5) / 9007199254740992.0;
            b.x[i] = (float)(0.01 * tan(3.14159 * (u - 0.5) * 0.9));
        }

        for (int m = 0; m < nm; m++) {
            method *me = &ms[m];
            me->n = 0;
            me->total = 0;
            me->wire = 0;
            me->detail[0] = 0;
            me->active = !(me->skip_after && bytes > me->skip_after);
            if (!me->active) {
                char h0[24], h1[24];
                human(me->hopeless_from, h0, sizeof h0);
                human(me->skip_after, h1, sizeof h1);
                snprintf(me->detail, sizeof me->detail,
                         "skipped: first call over %gx the best plain at %s and %s", hopeless, h0,
                         h1);
            }
        }
        /* Untimed warm-up of the plain and bf16 methods (first use of a buffer
         * size, connections): one call, unless the previous size suggests it
         * would take more than a quarter second -- its first timed call then
         * serves, and the median absorbs it. */
        for (int m = 0; m < nm; m++) {
            method *me = &ms[m];
            if (m == i_ngl || !me->active) {
                continue;
            }
            const double guess =
                me->last_med > 0 ? me->last_med * (double)bytes / (double)me->last_bytes : 0;
            if (guess < 0.25) {
                run_once(me, &b, bf16_op);
            }
        }
        /* Nangila warm-up: --warmup calls (or until --warmup-time), timed. */
        int nw = 0;
        double wtotal = 0;
        uint64_t wwire = 0;
        while (nw < warmup && (nw == 0 || wtotal < warmup_time)) {
            wt[nw] = timed(&ms[i_ngl], &b, bf16_op, iface, &wwire);
            wtotal += wt[nw++];
        }

        /* Timed rounds: every still-active method once per round. */
        for (int round = 0;; round++) {
            int any = 0;
            for (int m = 0; m < nm; m++) {
                method *me = &ms[m];
                if (me->active) {
                    me->t[me->n] = timed(me, &b, bf16_op, iface, &me->wire);
                    me->total += me->t[me->n++];
                    any = 1;
                }
            }
            if (!any) {
                break;
            }
            double best_first = INFINITY;
            for (int m = 0; round == 0 && m < nm; m++) {
                if (ms[m].kind == K_PLAIN && ms[m].n > 0 && ms[m].t[0] < best_first) {
                    best_first = ms[m].t[0];
                }
            }
            /* same decisions on every rank: the times are already maxima */
            for (int m = 0; m < nm; m++) {
                method *me = &ms[m];
                if (!me->active) {
                    continue;
                }
                if (round == 0 && me->alg > 0 && me->t[0] > 0.05 &&
                    me->t[0] > hopeless * best_first) {
                    me->active = 0;
                    snprintf(me->detail, sizeof me->detail,
                             "one call: over %gx the best plain first call", hopeless);
                    me->hopeless_run = bytes >= (1u << 20) ? me->hopeless_run + 1 : 0;
                    if (me->hopeless_run == 1) {
                        me->hopeless_from = bytes;
                    }
                    if (me->hopeless_run >= 2) {
                        me->skip_after = bytes;
                    }
                    continue;
                }
                if (me->n >= max_iters || me->total >= max_time ||
                    (me->n >= min_iters && me->total >= min_time)) {
                    me->active = 0;
                }
            }
        }

        double med[MAX_METHODS], wpr[MAX_METHODS];
        int best = 0;
        for (int m = 0; m < nm; m++) {
            method *me = &ms[m];
            wpr[m] = wire_per_call(me->wire, me->n);
            if (me->n == 0) {
                med[m] = INFINITY;
                me->last_med = 0;
                continue;
            }
            med[m] = median(me->t, me->n);
            me->last_med = med[m];
            me->last_bytes = bytes;
            if (me->alg > 0 && me->detail[0] == 0) {
                me->hopeless_run = 0;
            }
            if (me->kind == K_PLAIN && med[m] < med[best]) {
                best = m;
            }
        }
        const double wire_w = wire_per_call(wwire, nw);
        const double wmed = nw > 0 ? median(wt, nw) : 0;
        if (rank_ == 0) {
            char bs[40];
            snprintf(bs, sizeof bs, "%.3f (%s)", med[best] * 1e3,
                     best == 0 ? "default" : ms[best].name + 6);
            printf("%-10llu %10.3f %16s %10.3f %10.3f %10.3f %8.2f %8.2f %12.0f %12.0f %6.1f\n",
                   (unsigned long long)bytes, med[0] * 1e3, bs, med[i_bf16] * 1e3, med[i_ngl] * 1e3,
                   nw > 0 ? wtotal / nw * 1e3 : 0.0, med[0] / med[i_ngl], med[best] / med[i_ngl],
                   wpr[0], wpr[i_ngl], MPI_Wtime() - t_size);
            for (int m = 0; m < nm; m++) {
                if (ms[m].detail[0]) {
                    printf("    %s at %s: %s\n", ms[m].name, hb, ms[m].detail);
                }
            }
            fflush(stdout);
            for (int m = 0; m < nm; m++) {
                const method *me = &ms[m];
                csv_row(out, label, bytes, me->name, me->n, med[m], me->n ? me->t[0] : 0, med[0],
                        wpr[m], me->total, me->detail);
            }
            char d[96];
            snprintf(d, sizeof d, "%s", best == 0 ? "default" : ms[best].name + 6);
            csv_row(out, label, bytes, "plain-best", ms[best].n, med[best], ms[best].t[0], med[0],
                    wpr[best], ms[best].total, d);
            if (nw > 0) {
                /* speedup_vs_plain here: nw plain calls / the whole warm-up */
                snprintf(d, sizeof d, "%d calls%s", nw,
                         nw < warmup ? " (stopped by --warmup-time)" : "");
                if (out) {
                    fprintf(out, "%s,%d,%llu,nangila-warmup,%d,%.6e,%.6e,%.4f,%.0f,%.6e,%s\n",
                            label, size_, (unsigned long long)bytes, nw, wmed, wt[0],
                            med[0] * nw / wtotal, wire_w, wtotal, d);
                }
            }
            if (out) {
                fflush(out);
            }
        }
        free(b.h);
        free(b.y);
        free(b.x);
    }
    if (out) {
        fclose(out);
    }
    for (int m = 0; m < nm; m++) {
        free(ms[m].t);
    }
    free(wt);
    for (int i = 0; i < nalg; i++) {
        PMPI_Comm_free(&alg_comm[i]);
    }
    MPI_Op_free(&bf16_op);
    MPI_Finalize();
    return 0;
}
