/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_check.c -- an ordinary MPI program, run under mpirun with
 * LD_PRELOAD=libnangila-mpi.so by mpi-pmpi/tests/pmpi_run.sh. It knows
 * nothing of Nangila: it calls MPI_Allreduce and checks the answers against
 * the exact sum (every rank regenerates every rank's input from a counter-
 * based hash, so the reference needs no communication) and against plain
 * Open MPI (PMPI_Allreduce, which the wrapper does not intercept).
 *
 *   pmpi_check sum [--steps N] [--sizes a,b,...] [--inplace]
 *   pmpi_check ef [--steps N]          error feedback is unbiased in time
 *   pmpi_check auto [--steps N] [--sizes a,..] [--expect-plain a,..]
 *                   [--expect-compressed b,..] [--expect-exact c,..] [--skew]
 *                                      NANGILA_MODE=auto's choices
 *   pmpi_check iallreduce [--blocking] [--record F | --compare F] [--single]
 *                                      MPI_Iallreduce equals MPI_Allreduce
 *   pmpi_check passthrough [--off]     identical to plain Open MPI
 *   pmpi_check nan                     NaN and Inf propagate
 *   pmpi_check plain                   result equals PMPI (mismatch fallback)
 *   pmpi_check threads                 MPI_THREAD_MULTIPLE, one comm per thread
 *   pmpi_check die                     the last rank kills itself mid-collective
 *
 * The error bound uses NANGILA_MODE and NANGILA_EF from the environment (the
 * codec's stated bound: one INT8/INT4 step of the block scale per
 * quantization, twice that with error feedback). Exit 0 = pass, 1 = fail,
 * 77 = skip.
 */
#include "ngl_hash.h" /* ngl_hash_mix64(): inputs; ngl_fnv1a(): digests */

#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_rank, g_size;
static int g_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "pmpi_check[%d] FAIL %s:%d: ", g_rank, __FILE__, __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            g_fail = 1;                                                                            \
        }                                                                                          \
    } while (0)

/* ---- inputs ------------------------------------------------------------- */

/* Element i of rank r's input at step t of tensor id: uniform in
 * [-amp, amp) plus a per-element mean, so sums have structure over time. */
static float input(uint64_t id, int r, uint64_t t, uint64_t i, float amp)
{
    const uint64_t h =
        ngl_hash_mix64(ngl_hash_mix64(ngl_hash_mix64(id * 1000003u + (uint64_t)r) ^ t) ^ i);
    const float u = (float)(h >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
    const float mean = 0.025f * (float)((int)(i % 7u) - 3);
    return amp * ((2.0f * u - 1.0f) + mean);
}

static float rank_amp(int r)
{
    return 1.0f + 0.5f * (float)r;
}

/* ---- codec bound --------------------------------------------------------- */

static double qmax(void)
{
    const char *m = getenv("NANGILA_MODE");
    const char *cap = getenv("NANGILA_MODE_MAX");
    if (m && strcmp(m, "int4") == 0) {
        return 7.0;
    }
    /* auto (the default) may go as far as its cap */
    const int is_auto = m == NULL || strcmp(m, "auto") == 0;
    return is_auto && cap && strcmp(cap, "int4") == 0 ? 7.0 : 127.0;
}

/* Set by modes in which some calls legitimately pass through (auto). */
static int g_plain_ok;

/* Set while a call's result must be a plain allreduce's (any algorithm):
 * within fp32 summation error of the exact sum, not the codec's bound. */
static int g_exact;

static int ef_on(void)
{
    const char *e = getenv("NANGILA_EF");
    return !(e && strcmp(e, "0") == 0);
}

/* Largest |error| allowed for one call whose inputs have max magnitudes
 * m[r] and whose sum has max magnitude msum: each of the P-1 reduce-scatter
 * frames and the allgather frame may be off by one quantization step of its
 * block (scale = block max / qmax), twice that with error feedback (the
 * carried error of the previous step plus this one's). Block maxima are
 * bounded by the tensor maxima. A small slack covers fp32 summation. */
static double call_bound(const double *m, double msum, int nranks)
{
    const double f = ef_on() ? 2.05 : 1.02;
    double s = msum;
    double total = 0;
    for (int r = 0; r < nranks; r++) {
        s += m[r];
        total += m[r];
    }
    return f * s / qmax() + 1e-6 * total;
}

/* ---- cross-rank checks --------------------------------------------------- */

static uint64_t hash_bytes(const void *p, size_t n)
{
    return ngl_fnv1a(NGL_FNV_INIT, p, n);
}

/* 1 if @p buf is bitwise the same on every rank of @p comm. */
static int same_everywhere(const void *buf, size_t n, MPI_Comm comm)
{
    const uint64_t h = hash_bytes(buf, n);
    uint64_t v[2] = {h, ~h};
    PMPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MAX, comm);
    return v[0] == ~v[1];
}

/* ---- sum: correctness against the exact sum ------------------------------ */

/* Exact sum of element @p i of tensor @p id at step @p t over @p nranks
 * ranks' inputs; raises m[r] to rank r's largest |input| seen. */
static double exact_sum(uint64_t id, int nranks, uint64_t t, uint64_t i, double *m)
{
    double exact = 0;
    for (int r = 0; r < nranks; r++) {
        const float x = input(id, r, t, i, rank_amp(r));
        exact += x;
        m[r] = fmax(m[r], fabs(x));
    }
    return exact;
}

/* Largest error of a plain fp32 allreduce of element @p i: P - 1
 * additions in some order, each off by at most half an ulp of a partial
 * sum, whose magnitude is at most the sum of the magnitudes. */
static double plain_bound(uint64_t id, int nranks, uint64_t t, uint64_t i)
{
    double mag = 0;
    for (int r = 0; r < nranks; r++) {
        mag += fabs((double)input(id, r, t, i, rank_amp(r)));
    }
    return (nranks - 1) * 0x1.0p-24 * mag * 1.01 + 1e-30;
}

/* Checks one call; @return 1 if its result equals plain Open MPI bit for bit. */
static int check_sum(MPI_Comm comm, uint64_t id, uint64_t n, uint64_t step, int inplace)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    float *send = malloc(n * sizeof(float));
    float *recv = malloc(n * sizeof(float));
    float *plain = malloc(n * sizeof(float));
    int same = 0;
    if (!send || !recv || !plain) {
        CHECK(0, "out of memory for %llu floats", (unsigned long long)n);
        goto out;
    }
    for (uint64_t i = 0; i < n; i++) {
        send[i] = input(id, rank, step, i, rank_amp(rank));
    }
    int rc;
    if (inplace) {
        memcpy(recv, send, n * sizeof(float));
        rc = MPI_Allreduce(MPI_IN_PLACE, recv, (int)n, MPI_FLOAT, MPI_SUM, comm);
    } else {
        rc = MPI_Allreduce(send, recv, (int)n, MPI_FLOAT, MPI_SUM, comm);
    }
    CHECK(rc == MPI_SUCCESS, "MPI_Allreduce returned %d", rc);
    PMPI_Allreduce(send, plain, (int)n, MPI_FLOAT, MPI_SUM, comm);

    double m[64] = {0};
    double msum = 0, maxerr = 0, sumsq = 0, exactsq = 0;
    uint64_t worst = 0, differ = 0;
    for (uint64_t i = 0; i < n; i++) {
        const double exact = exact_sum(id, size, step, i, m);
        msum = fmax(msum, fabs(exact));
        const double err = fabs((double)recv[i] - exact);
        sumsq += err * err;
        exactsq += exact * exact;
        if (!(err <= maxerr)) {
            maxerr = err;
            worst = i;
        }
        differ += memcmp(&recv[i], &plain[i], sizeof(float)) != 0;
        if (g_exact && err > plain_bound(id, size, step, i)) {
            CHECK(0, "n=%llu step=%llu: element %llu off by %.3g, more than any plain allreduce",
                  (unsigned long long)n, (unsigned long long)step, (unsigned long long)i, err);
            g_exact = 0; /* one report per call */
        }
    }
    const double bound = call_bound(m, msum, size);
    CHECK(maxerr <= bound, "n=%llu step=%llu inplace=%d: max |error| %.6g at %llu exceeds %.6g",
          (unsigned long long)n, (unsigned long long)step, inplace, maxerr,
          (unsigned long long)worst, bound);
    CHECK(same_everywhere(recv, n * sizeof(float), comm),
          "n=%llu step=%llu: results differ between ranks", (unsigned long long)n,
          (unsigned long long)step);
    /* A run that silently passed everything through would match plain MPI
     * bit for bit; a compressed one cannot on a random buffer this long. */
    if (n >= 64 && !g_plain_ok && getenv("PMPI_CHECK_EXPECT_PLAIN") == NULL) {
        CHECK(differ > 0, "n=%llu: result equals plain MPI bit for bit: not compressed?",
              (unsigned long long)n);
    }
    if (rank == 0 && getenv("PMPI_CHECK_VERBOSE")) {
        printf("n=%-9llu step=%llu inplace=%d max|err|=%.4g bound=%.4g rms=%.4g rel_rms=%.4g\n",
               (unsigned long long)n, (unsigned long long)step, inplace, maxerr, bound,
               sqrt(sumsq / (double)n), exactsq > 0 ? sqrt(sumsq / exactsq) : 0.0);
    }
    same = differ == 0;
out:
    free(plain);
    free(recv);
    free(send);
    return same;
}

static int parse_sizes(const char *s, uint64_t *out, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        char *end;
        out[n++] = strtoull(s, &end, 0);
        s = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0') {
            return -1;
        }
    }
    return n;
}

static int mode_sum(int argc, char **argv)
{
    uint64_t sizes[64] = {1, 2, 7, 255, 256, 257, 1000, 4099, 65537, 300001};
    int nsizes = 10;
    int steps = 3, inplace_only = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = parse_sizes(argv[++i], sizes, 64);
        } else if (!strcmp(argv[i], "--inplace")) {
            inplace_only = 1;
        }
    }
    if (nsizes <= 0) {
        CHECK(0, "bad --sizes");
        return 1;
    }
    for (int k = 0; k < nsizes; k++) {
        for (int t = 0; t < steps; t++) {
            check_sum(MPI_COMM_WORLD, 1 + (uint64_t)k, sizes[k], (uint64_t)t, 1);
            if (!inplace_only) {
                check_sum(MPI_COMM_WORLD, 1 + (uint64_t)k, sizes[k], (uint64_t)t, 0);
            }
        }
    }
    return g_fail;
}

/* ---- auto: NANGILA_MODE=auto's choices, every call checked ------------- */

/*
 * Every call is checked as in `sum` (within the codec's bound, bit-identical
 * on all ranks); whether it ran compressed shows as a result that differs
 * from plain Open MPI. After --steps rounds over --sizes, the last
 * NGL_TAIL rounds of each size listed in --expect-plain must all equal
 * plain MPI, and of each size in --expect-compressed must all differ.
 * Every call of a size in --expect-exact must be a plain allreduce, by
 * whichever algorithm (those round differently, so not necessarily the
 * bits of PMPI_Allreduce on the same communicator): within fp32 summation
 * error of the exact sum, and bit-identical on every rank.
 * --skew: every rank but 0 sleeps a random 0..400 us x rank before each
 * call, so each rank's clock measures the calls differently (the wrapper
 * must still make one decision for all).
 */
#define NGL_TAIL 5

static int listed(uint64_t n, const uint64_t *list, int len)
{
    for (int i = 0; i < len; i++) {
        if (list[i] == n) {
            return 1;
        }
    }
    return 0;
}

static int mode_auto(int argc, char **argv)
{
    uint64_t sizes[16] = {8192, 262144}, plain_sizes[16], comp_sizes[16], exact_sizes[16];
    int nsizes = 2, nplain = 0, ncomp = 0, nexact = 0, steps = 30, skew = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            nsizes = parse_sizes(argv[++i], sizes, 16);
        } else if (!strcmp(argv[i], "--expect-plain") && i + 1 < argc) {
            nplain = parse_sizes(argv[++i], plain_sizes, 16);
        } else if (!strcmp(argv[i], "--expect-compressed") && i + 1 < argc) {
            ncomp = parse_sizes(argv[++i], comp_sizes, 16);
        } else if (!strcmp(argv[i], "--expect-exact") && i + 1 < argc) {
            nexact = parse_sizes(argv[++i], exact_sizes, 16);
        } else if (!strcmp(argv[i], "--skew")) {
            skew = 1;
        }
    }
    if (nsizes <= 0 || nplain < 0 || ncomp < 0 || nexact < 0 || steps < NGL_TAIL) {
        CHECK(0, "bad arguments");
        return 1;
    }
    g_plain_ok = 1;
    uint64_t rng = 0x5eed + (uint64_t)g_rank;
    int ran_plain[16] = {0}; /* per size: how many tail rounds equalled plain MPI */
    for (int t = 0; t < steps; t++) {
        for (int k = 0; k < nsizes; k++) {
            if (skew && g_rank > 0) {
                rng = ngl_hash_mix64(rng);
                usleep((useconds_t)(rng % 400u) * (useconds_t)g_rank);
            }
            g_exact = listed(sizes[k], exact_sizes, nexact);
            const int same =
                check_sum(MPI_COMM_WORLD, 101 + (uint64_t)k, sizes[k], (uint64_t)t, t % 2);
            g_exact = 0;
            if (t >= steps - NGL_TAIL) {
                ran_plain[k] += same;
                if (listed(sizes[k], plain_sizes, nplain)) {
                    CHECK(same, "%llu floats, round %d: compressed, expected plain",
                          (unsigned long long)sizes[k], t);
                }
                if (listed(sizes[k], comp_sizes, ncomp)) {
                    CHECK(!same, "%llu floats, round %d: plain, expected compressed",
                          (unsigned long long)sizes[k], t);
                }
            }
        }
    }
    /* One decision for all: the same calls ran plain on every rank. */
    int lo[16], hi[16];
    PMPI_Allreduce(ran_plain, lo, nsizes, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    PMPI_Allreduce(ran_plain, hi, nsizes, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    for (int k = 0; k < nsizes; k++) {
        CHECK(lo[k] == hi[k], "%llu floats: ranks ran different modes (%d..%d plain calls)",
              (unsigned long long)sizes[k], lo[k], hi[k]);
    }
    return g_fail;
}

/* ---- iallreduce: nonblocking calls, the same results as blocking ones ---- */

/*
 * A training step's pattern: two gradient buckets posted with MPI_Iallreduce,
 * an int sum (passes through) and a small float sum (queued behind the
 * nonblocking ones) made blocking in between, then MPI_Waitall. With
 * --blocking the same calls are all MPI_Allreduce. Every result is checked
 * against the exact sum and across ranks; rank 0 writes a hash per call to
 * --record FILE, or compares with a file written by the other variant
 * (--compare FILE): nonblocking must equal blocking bit for bit (a fixed
 * NANGILA_MODE, as auto's timing-driven choices differ between runs).
 * Once, the step posts a call and computes for a second without any MPI
 * call: the progress thread must have finished it by then.
 */
static uint64_t fill(float *x, uint64_t n, uint64_t id, uint64_t t)
{
    for (uint64_t i = 0; i < n; i++) {
        x[i] = input(id, g_rank, t, i, rank_amp(g_rank));
    }
    return n;
}

static void check_exact_bound(const float *got, uint64_t n, uint64_t id, uint64_t t,
                              const char *what)
{
    double m[64] = {0}, msum = 0, maxerr = 0;
    for (uint64_t i = 0; i < n; i++) {
        const double exact = exact_sum(id, g_size, t, i, m);
        msum = fmax(msum, fabs(exact));
        maxerr = fmax(maxerr, fabs((double)got[i] - exact));
    }
    CHECK(maxerr <= call_bound(m, msum, g_size), "%s step %llu: max |error| %.6g too large", what,
          (unsigned long long)t, maxerr);
    CHECK(same_everywhere(got, n * sizeof(float), MPI_COMM_WORLD),
          "%s step %llu: results differ between ranks", what, (unsigned long long)t);
}

static int mode_iallreduce(int argc, char **argv, int provided)
{
    const char *record = NULL, *compare = NULL;
    int blocking = 0, steps = 6;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--record") && i + 1 < argc) {
            record = argv[++i];
        } else if (!strcmp(argv[i], "--compare") && i + 1 < argc) {
            compare = argv[++i];
        } else if (!strcmp(argv[i], "--blocking")) {
            blocking = 1;
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--single")) {
            /* MPI_Init without threads: the wrapper must pass through */
            enum { N = 300001 };
            float *x = malloc(N * sizeof(float)), *got = malloc(N * sizeof(float));
            float *want = malloc(N * sizeof(float));
            fill(x, N, 305, 0);
            MPI_Request rq;
            CHECK(MPI_Iallreduce(x, got, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &rq) == MPI_SUCCESS,
                  "MPI_Iallreduce failed");
            MPI_Wait(&rq, MPI_STATUS_IGNORE);
            PMPI_Allreduce(x, want, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            CHECK(memcmp(got, want, N * sizeof(float)) == 0,
                  "without MPI_THREAD_MULTIPLE the result differs from plain MPI");
            free(want);
            free(got);
            free(x);
            return g_fail;
        }
    }
    if (provided < MPI_THREAD_MULTIPLE) {
        if (g_rank == 0) {
            fprintf(stderr, "pmpi_check: MPI_THREAD_MULTIPLE not provided; skipping\n");
        }
        return 77;
    }
    enum { NA = 300001, NB = 65536, NC = 1000, ND = 20000 };
    float *a = malloc(NA * sizeof(float)), *b = malloc(NB * sizeof(float));
    float *d = malloc(ND * sizeof(float));
    int *c = malloc(NC * sizeof(int)), *c_sum = malloc(NC * sizeof(int));
    uint64_t hashes[64 * 3];
    int nh = 0;
    for (int t = 0; t < steps && t < 64; t++) {
        fill(a, NA, 301, (uint64_t)t);
        fill(b, NB, 302, (uint64_t)t);
        fill(d, ND, 304, (uint64_t)t);
        for (int i = 0; i < NC; i++) {
            c[i] =
                (int)(ngl_hash_mix64((uint64_t)i * 31u + (uint64_t)g_rank + (uint64_t)t) % 1000u);
        }
        if (blocking) {
            MPI_Allreduce(MPI_IN_PLACE, a, NA, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            MPI_Allreduce(MPI_IN_PLACE, b, NB, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            MPI_Allreduce(c, c_sum, NC, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
            MPI_Allreduce(MPI_IN_PLACE, d, ND, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        } else {
            MPI_Request req[2];
            CHECK(MPI_Iallreduce(MPI_IN_PLACE, a, NA, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                 &req[0]) == MPI_SUCCESS,
                  "MPI_Iallreduce failed");
            if (t == 1) {
                /* "backward pass": no MPI call for a second */
                sleep(1);
                int flag = 0;
                MPI_Test(&req[0], &flag, MPI_STATUS_IGNORE);
                CHECK(flag, "a posted MPI_Iallreduce made no progress without MPI calls");
                if (flag) {
                    req[0] = MPI_REQUEST_NULL;
                }
            }
            CHECK(MPI_Iallreduce(MPI_IN_PLACE, b, NB, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                 &req[1]) == MPI_SUCCESS,
                  "MPI_Iallreduce failed");
            MPI_Allreduce(c, c_sum, NC, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
            MPI_Allreduce(MPI_IN_PLACE, d, ND, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            MPI_Status st[2];
            CHECK(MPI_Waitall(2, req, st) == MPI_SUCCESS, "MPI_Waitall failed");
        }
        check_exact_bound(a, NA, 301, (uint64_t)t, "bucket a");
        check_exact_bound(b, NB, 302, (uint64_t)t, "bucket b");
        check_exact_bound(d, ND, 304, (uint64_t)t, "small d");
        for (int i = 0; i < NC; i++) {
            int want = 0;
            for (int r = 0; r < g_size; r++) {
                want +=
                    (int)(ngl_hash_mix64((uint64_t)i * 31u + (uint64_t)r + (uint64_t)t) % 1000u);
            }
            CHECK(c_sum[i] == want, "int sum wrong at %d", i);
        }
        hashes[nh++] = hash_bytes(a, NA * sizeof(float));
        hashes[nh++] = hash_bytes(b, NB * sizeof(float));
        hashes[nh++] = hash_bytes(d, ND * sizeof(float));
    }
    if (g_rank == 0 && record) {
        FILE *f = fopen(record, "w");
        CHECK(f != NULL, "cannot write %s", record);
        for (int i = 0; f && i < nh; i++) {
            fprintf(f, "%016llx\n", (unsigned long long)hashes[i]);
        }
        if (f) {
            fclose(f);
        }
    }
    if (g_rank == 0 && compare) {
        FILE *f = fopen(compare, "r");
        CHECK(f != NULL, "cannot read %s", compare);
        for (int i = 0; f && i < nh; i++) {
            unsigned long long h = 0;
            CHECK(fscanf(f, "%llx", &h) == 1, "%s: short", compare);
            CHECK(h == hashes[i], "call %d (step %d): nonblocking result differs from blocking", i,
                  i / 3);
        }
        if (f) {
            fclose(f);
        }
    }
    free(c_sum);
    free(c);
    free(d);
    free(b);
    free(a);
    return g_fail;
}

/* ---- ef: accumulated results converge to the accumulated exact sums ------ */

typedef struct tensor {
    uint64_t id, n;
    float amp;
    double *cum_err; /* sum over steps of (result - exact) */
    double m[64];    /* max |input| per rank over the steps */
    double msum;
} tensor;

static void ef_step(tensor *tz, uint64_t t, int count_it)
{
    /* A fresh buffer every step, as an app allocating its gradients anew. */
    float *buf = malloc(tz->n * sizeof(float));
    if (buf == NULL) {
        CHECK(0, "out of memory");
        return;
    }
    for (uint64_t i = 0; i < tz->n; i++) {
        buf[i] = input(tz->id, g_rank, t, i, tz->amp * rank_amp(g_rank));
    }
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)tz->n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (uint64_t i = 0; i < tz->n && count_it; i++) {
        double exact = 0;
        for (int r = 0; r < g_size; r++) {
            const float x = input(tz->id, r, t, i, tz->amp * rank_amp(r));
            exact += x;
            tz->m[r] = fmax(tz->m[r], fabs(x));
        }
        tz->msum = fmax(tz->msum, fabs(exact));
        tz->cum_err[i] += (double)buf[i] - exact;
    }
    free(buf);
}

static int mode_ef(int argc, char **argv)
{
    int steps = 200;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = atoi(argv[++i]);
        }
    }
    /* Two tensors of the same size but 10x different magnitude, separated
     * by an uncompressed call, and a third size: if state were mixed
     * between the two, the small one's accumulated error would grow with
     * the big one's residuals. */
    tensor tz[3] = {{.id = 11, .n = 5000, .amp = 1.0f},
                    {.id = 12, .n = 5000, .amp = 10.0f},
                    {.id = 13, .n = 3001, .amp = 3.0f}};
    for (int k = 0; k < 3; k++) {
        tz[k].cum_err = calloc(tz[k].n, sizeof(double));
    }
    /* The first steps are the call-history lead-in (no state carried yet);
     * error feedback telescopes from any step on, so start counting later. */
    const int from = 10;
    for (int t = 0; t < steps; t++) {
        ef_step(&tz[0], (uint64_t)t, t >= from);
        int one = 1;
        MPI_Allreduce(MPI_IN_PLACE, &one, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
        ef_step(&tz[1], (uint64_t)t, t >= from);
        ef_step(&tz[2], (uint64_t)t, t >= from);
    }
    for (int k = 0; k < 3; k++) {
        /* Accumulated error = carried residuals at the start minus those at
         * the end: two per stage at most, independent of the step count. */
        const double bound = 2.0 * call_bound(tz[k].m, tz[k].msum, g_size);
        double worst = 0, rms = 0;
        for (uint64_t i = 0; i < tz[k].n; i++) {
            worst = fmax(worst, fabs(tz[k].cum_err[i]));
            rms += tz[k].cum_err[i] * tz[k].cum_err[i];
        }
        rms = sqrt(rms / (double)tz[k].n);
        CHECK(worst <= bound,
              "tensor %d: accumulated error %.5g after %d steps exceeds %.5g (not unbiased in "
              "time, or state mixed)",
              k, worst, steps - from, bound);
        if (g_rank == 0 && getenv("PMPI_CHECK_VERBOSE")) {
            printf("tensor %d: %d steps, accumulated max|err| %.4g rms %.4g, bound %.4g\n", k,
                   steps - from, worst, rms, bound);
        }
        free(tz[k].cum_err);
    }
    return g_fail;
}

/* ---- passthrough: identical to plain Open MPI ---------------------------- */

static int user_sum_called;
/* A float sum for MPI_FLOAT and for derived types made of floats. */
static void user_sum(void *in, void *inout, int *len, MPI_Datatype *dt)
{
    int bytes = 0;
    MPI_Aint lb, extent;
    MPI_Type_size(*dt, &bytes);
    MPI_Type_get_extent(*dt, &lb, &extent);
    user_sum_called = 1;
    const int per = bytes / (int)sizeof(float);
    const int stride = (int)(extent / (MPI_Aint)sizeof(float));
    for (int i = 0; i < *len; i++) {
        for (int j = 0; j < per; j++) {
            /* contiguous floats, or a vector of stride 2 */
            const int at = i * stride + (per == 1 ? 0 : (stride == per ? j : 2 * j));
            ((float *)inout)[at] += ((float *)in)[at];
        }
    }
}

/* MPI_Allreduce (wrapped) and PMPI_Allreduce (plain) on the same input. */
static void compare_plain(const char *what, const void *send, size_t bytes, int count,
                          MPI_Datatype dt, MPI_Op op, MPI_Comm comm, int inplace, int expect_same)
{
    unsigned char *a = malloc(bytes + 1), *b = malloc(bytes + 1);
    memset(a, 0x5a, bytes + 1);
    memset(b, 0x5a, bytes + 1);
    int rc1, rc2;
    if (inplace) {
        memcpy(a, send, bytes);
        memcpy(b, send, bytes);
        rc1 = MPI_Allreduce(MPI_IN_PLACE, a, count, dt, op, comm);
        rc2 = PMPI_Allreduce(MPI_IN_PLACE, b, count, dt, op, comm);
    } else {
        rc1 = MPI_Allreduce(send, a, count, dt, op, comm);
        rc2 = PMPI_Allreduce(send, b, count, dt, op, comm);
    }
    CHECK(rc1 == rc2, "%s: return codes %d vs %d", what, rc1, rc2);
    const int same = memcmp(a, b, bytes + 1) == 0;
    if (expect_same) {
        CHECK(same, "%s: differs from plain Open MPI", what);
    } else {
        CHECK(!same, "%s: equals plain Open MPI bit for bit: compression not active", what);
    }
    free(a);
    free(b);
}

static int mode_passthrough(int argc, char **argv)
{
    int off = 0;
    for (int i = 0; i < argc; i++) {
        off |= !strcmp(argv[i], "--off");
    }
    enum { N = 70000 };
    float *f = malloc(N * 4 * sizeof(float));
    double *d = malloc(N * sizeof(double));
    int *iv = malloc(N * sizeof(int));
    for (uint64_t i = 0; i < (uint64_t)N * 4; i++) {
        f[i] = input(21, g_rank, 0, i, rank_amp(g_rank));
    }
    for (uint64_t i = 0; i < N; i++) {
        d[i] = (double)input(22, g_rank, 0, i, 1.0f) * 1e-3;
        iv[i] = (int)(ngl_hash_mix64(i + (uint64_t)g_rank) % 1000u);
    }
    MPI_Comm w = MPI_COMM_WORLD;
    compare_plain("double sum", d, N * sizeof(double), N, MPI_DOUBLE, MPI_SUM, w, 0, 1);
    compare_plain("int sum", iv, N * sizeof(int), N, MPI_INT, MPI_SUM, w, 0, 1);
    compare_plain("float max", f, N * sizeof(float), N, MPI_FLOAT, MPI_MAX, w, 0, 1);
    compare_plain("float max in place", f, N * sizeof(float), N, MPI_FLOAT, MPI_MAX, w, 1, 1);
    compare_plain("count 0", f, 0, 0, MPI_FLOAT, MPI_SUM, w, 0, 1);
    compare_plain("below NANGILA_MIN_BYTES", f, 1000 * sizeof(float), 1000, MPI_FLOAT, MPI_SUM, w,
                  0, 1);

    /* Derived and non-contiguous float types (Open MPI allows only user
     * ops on them): the codec must never see the gaps. */
    MPI_Datatype contig, vec;
    MPI_Op op4;
    MPI_Op_create(user_sum, 1, &op4);
    MPI_Type_contiguous(4, MPI_FLOAT, &contig);
    MPI_Type_commit(&contig);
    compare_plain("derived contiguous type", f, N * 4 * sizeof(float), N, contig, op4, w, 0, 1);
    MPI_Type_vector(N, 1, 2, MPI_FLOAT, &vec);
    MPI_Type_commit(&vec);
    compare_plain("non-contiguous vector type", f, (2 * N - 1) * sizeof(float), 1, vec, op4, w, 0,
                  1);
    MPI_Type_free(&vec);
    MPI_Type_free(&contig);
    MPI_Op_free(&op4);

    MPI_Op op;
    MPI_Op_create(user_sum, 1, &op);
    compare_plain("user-defined float sum op", f, N * sizeof(float), N, MPI_FLOAT, op, w, 0, 1);
    CHECK(user_sum_called, "user op never called");
    MPI_Op_free(&op);

    compare_plain("MPI_COMM_SELF (one rank)", f, N * sizeof(float), N, MPI_FLOAT, MPI_SUM,
                  MPI_COMM_SELF, 0, 1);

    /* Intercommunicator between even and odd ranks. */
    MPI_Comm half, inter;
    MPI_Comm_split(w, g_rank % 2, g_rank, &half);
    MPI_Intercomm_create(half, 0, w, g_rank % 2 ? 0 : 1, 7, &inter);
    compare_plain("intercommunicator", f, N * sizeof(float), N, MPI_FLOAT, MPI_SUM, inter, 0, 1);
    MPI_Comm_free(&inter);
    MPI_Comm_free(&half);

    /* The positive control: a large float sum is compressed, unless off. */
    compare_plain("float sum (compressed unless off)", f, N * sizeof(float), N, MPI_FLOAT, MPI_SUM,
                  w, 0, off);
    compare_plain("float sum in place (compressed unless off)", f, N * sizeof(float), N, MPI_FLOAT,
                  MPI_SUM, w, 1, off);
    free(iv);
    free(d);
    free(f);
    return g_fail;
}

/* ---- plain: a float sum must equal plain Open MPI (settings mismatch) ---- */

static int mode_plain(void)
{
    enum { N = 70000 };
    float *f = malloc(N * sizeof(float));
    for (uint64_t i = 0; i < N; i++) {
        f[i] = input(31, g_rank, 0, i, rank_amp(g_rank));
    }
    for (int t = 0; t < 3; t++) {
        compare_plain("float sum on a mismatched communicator", f, N * sizeof(float), N, MPI_FLOAT,
                      MPI_SUM, MPI_COMM_WORLD, t % 2, 1);
    }
    free(f);
    return g_fail;
}

/* ---- nan: NaN and Inf propagate as in the uncompressed sum --------------- */

static int fclass(float x)
{
    if (isnan(x)) {
        return 3;
    }
    if (isinf(x)) {
        return x > 0 ? 1 : 2;
    }
    return 0;
}

static int mode_nan(void)
{
    enum { N = 20000 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    float *z = malloc(N * sizeof(float));
    for (uint64_t i = 0; i < N; i++) {
        x[i] = input(41, g_rank, 0, i, rank_amp(g_rank));
    }
    const float inf = INFINITY;
    /* rank 0: NaN at 10, +Inf at 20 and 5000; rank 1: -Inf at 20 (+Inf-Inf
     * = NaN), +Inf at 30; rank 2: -Inf at 40 and 5000 (NaN), -0.0 at 50 */
    if (g_rank == 0) {
        x[10] = NAN;
        x[20] = inf;
        x[5000] = inf;
        x[N - 1] = NAN;
    } else if (g_rank == 1) {
        x[20] = -inf;
        x[30] = inf;
    } else if (g_rank == 2) {
        x[40] = -inf;
        x[5000] = -inf;
        x[50] = -0.0f;
    }
    for (int inplace = 0; inplace < 2; inplace++) {
        if (inplace) {
            memcpy(y, x, N * sizeof(float));
            MPI_Allreduce(MPI_IN_PLACE, y, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        } else {
            MPI_Allreduce(x, y, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        }
        PMPI_Allreduce(x, z, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        int nonfinite = 0;
        for (int i = 0; i < N; i++) {
            CHECK(fclass(y[i]) == fclass(z[i]), "element %d: got %g, plain MPI gives %g", i,
                  (double)y[i], (double)z[i]);
            nonfinite += fclass(z[i]) != 0;
        }
        CHECK(nonfinite >= 3, "test did not inject enough non-finite values (%d)", nonfinite);
        CHECK(same_everywhere(y, N * sizeof(float), MPI_COMM_WORLD),
              "results differ between ranks");
        /* finite neighbours of the specials are still accurate */
        for (int i = 0; i < 64; i++) {
            if (fclass(z[i]) == 0) {
                CHECK(fabsf(y[i] - z[i]) <= 0.5f, "element %d next to a special: %g vs %g", i,
                      (double)y[i], (double)z[i]);
            }
        }
    }
    free(z);
    free(y);
    free(x);
    return g_fail;
}

/* ---- threads: MPI_THREAD_MULTIPLE, a communicator per thread -------------- */

typedef struct targ {
    MPI_Comm comm;
    uint64_t id, n;
} targ;

static void *thread_main(void *p)
{
    targ *a = p;
    for (uint64_t t = 0; t < 12; t++) {
        check_sum(a->comm, a->id, a->n, t, (int)(t % 2));
    }
    return NULL;
}

static int mode_threads(int provided)
{
    if (provided < MPI_THREAD_MULTIPLE) {
        if (g_rank == 0) {
            fprintf(stderr, "pmpi_check: MPI_THREAD_MULTIPLE not provided; skipping\n");
        }
        return 77;
    }
    targ a[3];
    pthread_t th[3];
    for (int k = 0; k < 3; k++) {
        MPI_Comm_dup(MPI_COMM_WORLD, &a[k].comm);
        a[k].id = 51 + (uint64_t)k;
        a[k].n = 20000 + 7919u * (uint64_t)k;
    }
    for (int k = 0; k < 3; k++) {
        pthread_create(&th[k], NULL, thread_main, &a[k]);
    }
    for (int k = 0; k < 3; k++) {
        pthread_join(th[k], NULL);
    }
    for (int k = 0; k < 3; k++) {
        MPI_Comm_free(&a[k].comm);
    }
    return g_fail;
}

/* ---- die: a rank dies mid-collective; the job must end, not hang ---------- */

static void *killer(void *p)
{
    (void)p;
    const struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    raise(SIGKILL);
    return NULL;
}

static int mode_die(void)
{
    enum { N = 1 << 22 };
    float *x = malloc(N * sizeof(float));
    for (uint64_t i = 0; i < N; i++) {
        x[i] = input(61, g_rank, 0, i, 1.0f);
    }
    if (g_rank == g_size - 1) {
        pthread_t th;
        pthread_create(&th, NULL, killer, NULL);
    }
    /* Bounded: if the job is not torn down, this ends and the exit code 3
     * tells the runner the death went unnoticed. */
    for (int t = 0; t < 2000; t++) {
        MPI_Allreduce(MPI_IN_PLACE, x, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        for (int i = 0; i < 16; i++) {
            x[i] = 1.0f;
        }
    }
    free(x);
    return 3;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pmpi_check "
                        "sum|ef|auto|iallreduce|passthrough|nan|plain|threads|die [options]\n");
        return 2;
    }
    const char *mode = argv[1];
    int provided = 0;
    int single = 0;
    for (int i = 2; i < argc; i++) {
        single |= !strcmp(argv[i], "--single");
    }
    if (!strcmp(mode, "threads") || (!strcmp(mode, "iallreduce") && !single)) {
        MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    } else {
        MPI_Init(&argc, &argv);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (g_size > 64) {
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int rc;
    if (!strcmp(mode, "sum")) {
        rc = mode_sum(argc - 2, argv + 2);
    } else if (!strcmp(mode, "ef")) {
        rc = mode_ef(argc - 2, argv + 2);
    } else if (!strcmp(mode, "auto")) {
        rc = mode_auto(argc - 2, argv + 2);
    } else if (!strcmp(mode, "iallreduce")) {
        rc = mode_iallreduce(argc - 2, argv + 2, provided);
    } else if (!strcmp(mode, "passthrough")) {
        rc = mode_passthrough(argc - 2, argv + 2);
    } else if (!strcmp(mode, "nan")) {
        rc = mode_nan();
    } else if (!strcmp(mode, "plain")) {
        rc = mode_plain();
    } else if (!strcmp(mode, "threads")) {
        rc = mode_threads(provided);
    } else if (!strcmp(mode, "die")) {
        rc = mode_die();
    } else {
        fprintf(stderr, "pmpi_check: unknown mode %s\n", mode);
        rc = 2;
    }
    /* One verdict for the job: any rank's failure fails every rank. */
    int worst = rc;
    PMPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return worst;
}
