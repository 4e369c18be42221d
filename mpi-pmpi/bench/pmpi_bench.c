/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_bench.c -- allreduce time per call, three ways in the same run:
 *   plain    PMPI_Allreduce of fp32 (Open MPI, never intercepted)
 *   bf16     what a user could write: round to a bf16 buffer, allreduce it
 *            with a user-defined sum op (PMPI), widen back; conversions timed
 *   nangila  MPI_Allreduce of fp32, i.e. through libnangila-mpi.so when it is
 *            preloaded (settings from NANGILA_*)
 * Methods alternate call by call, so drift on a shared machine hits all of
 * them alike. A call's time is the slowest rank's, after a barrier. With
 * --iface, bytes on the wire per rank are read from the interface counters
 * around each method's calls (TCP/IP headers included).
 *
 *   pmpi_bench [--sizes 1k,4k,...,256M] [--min-time S] [--max-iters N]
 *              [--warmup N] [--iface DEV] [--label TEXT] [--csv FILE]
 */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { M_PLAIN, M_BF16, M_NANGILA, M_COUNT };
static const char *method_name[M_COUNT] = {"plain", "bf16", "nangila"};

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

typedef struct bufs {
    float *x, *y;
    uint16_t *h;
    int n;
} bufs;

static void run_once(int m, bufs *b, MPI_Op bf16_op)
{
    switch (m) {
    case M_PLAIN: PMPI_Allreduce(b->x, b->y, b->n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); break;
    case M_BF16:
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

/* One timed call: the slowest rank's time. */
static double timed(int m, bufs *b, MPI_Op op)
{
    PMPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    run_once(m, b, op);
    double dt = MPI_Wtime() - t0;
    PMPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return dt;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);

    const char *sizes = "1k,4k,16k,64k,256k,512k,1M,2M,4M,8M,16M,32M,64M,128M,256M";
    const char *iface = NULL, *label = "", *csv = NULL;
    double min_time = 1.0;
    int max_iters = 30, warmup = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            sizes = argv[++i];
        } else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            min_time = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--max-iters") && i + 1 < argc) {
            max_iters = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) {
            warmup = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--iface") && i + 1 < argc) {
            iface = argv[++i];
        } else if (!strcmp(argv[i], "--label") && i + 1 < argc) {
            label = argv[++i];
        } else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            csv = argv[++i];
        } else {
            if (rank_ == 0) {
                fprintf(stderr, "pmpi_bench: unknown argument %s\n", argv[i]);
            }
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
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
        printf("%-10s %10s %10s %10s %8s %8s %12s %12s\n", "bytes", "plain ms", "bf16 ms",
               "nangila ms", "bf16 x", "ngl x", "wire/rank", "ngl wire/rk");
        fflush(stdout);
    }

    for (const char *s = sizes; *s;) {
        const char *e;
        const uint64_t bytes = parse_bytes(s, &e);
        s = *e == ',' ? e + 1 : e;
        if (bytes < 4) {
            continue;
        }
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
        for (int m = 0; m < M_COUNT; m++) {
            const int w = m == M_NANGILA ? warmup : 1;
            for (int k = 0; k < w; k++) {
                run_once(m, &b, bf16_op);
            }
        }
        double *t[M_COUNT];
        double total[M_COUNT] = {0};
        uint64_t wire[M_COUNT] = {0};
        for (int m = 0; m < M_COUNT; m++) {
            t[m] = calloc((size_t)max_iters, sizeof(double));
        }
        int it = 0;
        while (it < max_iters) {
            for (int m = 0; m < M_COUNT; m++) {
                const uint64_t w0 = tx_bytes(iface);
                t[m][it] = timed(m, &b, bf16_op);
                wire[m] += tx_bytes(iface) - w0;
                total[m] += t[m][it];
            }
            it++;
            /* same decision on every rank: the times are already maxima */
            if (it >= 3 && total[M_PLAIN] >= min_time && total[M_NANGILA] >= min_time) {
                break;
            }
        }
        double med[M_COUNT];
        for (int m = 0; m < M_COUNT; m++) {
            qsort(t[m], (size_t)it, sizeof(double), cmp_double);
            med[m] = it % 2 ? t[m][it / 2] : 0.5 * (t[m][it / 2 - 1] + t[m][it / 2]);
        }
        /* wire bytes: the busiest rank's average per call */
        double wpr[M_COUNT];
        for (int m = 0; m < M_COUNT; m++) {
            double v = (double)wire[m] / it;
            PMPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            wpr[m] = v;
        }
        if (rank_ == 0) {
            printf("%-10llu %10.3f %10.3f %10.3f %8.2f %8.2f %12.0f %12.0f\n",
                   (unsigned long long)bytes, med[0] * 1e3, med[1] * 1e3, med[2] * 1e3,
                   med[0] / med[1], med[0] / med[2], wpr[0], wpr[2]);
            fflush(stdout);
            for (int m = 0; m < M_COUNT && out; m++) {
                fprintf(out, "%s,%d,%llu,%s,%d,%.6e,%.6e,%.4f,%.0f\n", label, size_,
                        (unsigned long long)bytes, method_name[m], it, med[m], t[m][0],
                        med[0] / med[m], wpr[m]);
            }
            if (out) {
                fflush(out);
            }
        }
        for (int m = 0; m < M_COUNT; m++) {
            free(t[m]);
        }
        free(b.h);
        free(b.y);
        free(b.x);
    }
    if (out) {
        fclose(out);
    }
    MPI_Op_free(&bf16_op);
    MPI_Finalize();
    return 0;
}
