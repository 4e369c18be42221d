/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench.c -- `nangila bench`: single-core encode/decode throughput of every
 * codec, printed next to memcpy bandwidth (and zstd, a lossless baseline)
 * measured in the same run on buffers of the same size, so every figure is
 * also a ratio. Throughput is GB/s of fp32-equivalent input (count * 4
 * bytes); the wire ratio is input bytes / frame bytes, headers included.
 */
#include "nangila.h"
#include "nangila_cli.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(NGL_HAVE_ZSTD)
#include <zstd.h>
#endif

typedef struct bench_opts {
    uint64_t count;
    int iters;
    ngl_isa isa;
    const char *csv;
    const char *only;
} bench_opts;

typedef struct codec_case {
    const char *name;
    ngl_codec codec;
    ngl_dtype dtype;
    ngl_predictor pred;
    int ef;
    double topk;
    double eps;
    ngl_lossless lossless;
} codec_case;

static const codec_case cases[] = {
    {"int8", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, 1, 0, 0, NGL_LOSSLESS_NONE},
    {"int4", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_NONE, 1, 0, 0, NGL_LOSSLESS_NONE},
    {"int8-noef", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, 0, 0, 0, NGL_LOSSLESS_NONE},
    {"int8-momentum", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_MOMENTUM, 1, 0, 0, NGL_LOSSLESS_NONE},
    {"int4-linear", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_LINEAR, 1, 0, 0, NGL_LOSSLESS_NONE},
    {"int8-bf16", NGL_CODEC_INT8, NGL_DTYPE_BF16, NGL_PRED_NONE, 1, 0, 0, NGL_LOSSLESS_NONE},
    {"int8-f16", NGL_CODEC_INT8, NGL_DTYPE_F16, NGL_PRED_NONE, 1, 0, 0, NGL_LOSSLESS_NONE},
    {"int4-topk0.1", NGL_CODEC_INT4, NGL_DTYPE_F32, NGL_PRED_NONE, 1, 0.1, 0, NGL_LOSSLESS_NONE},
    {"int8-topk0.01", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, 1, 0.01, 0, NGL_LOSSLESS_NONE},
    {"int8-rle", NGL_CODEC_INT8, NGL_DTYPE_F32, NGL_PRED_NONE, 1, 0, 0, NGL_LOSSLESS_RLE},
    {"eps1e-3-linear", NGL_CODEC_EPS, NGL_DTYPE_F32, NGL_PRED_LINEAR, 0, 0, 1e-3,
     NGL_LOSSLESS_NONE},
    {"raw", NGL_CODEC_RAW, NGL_DTYPE_F32, NGL_PRED_NONE, 0, 0, 0, NGL_LOSSLESS_NONE},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Gradient-like data: Gaussian noise with a slowly varying per-region
 * scale and a smooth component that persists across steps, so predictors
 * have something to find and blocks have realistic dynamic range. */
static void make_data(float *x, uint64_t n, int step, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uint64_t)step * 0xbf58476d1ce4e5b9ull + 1;
    for (uint64_t i = 0; i < n; i += 2) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        double u1 = ((double)(s >> 11) + 0.5) * 0x1p-53;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        double u2 = (double)(s >> 11) * 0x1p-53;
        double r = sqrt(-2.0 * log(u1));
        double scale = 1e-3 * (1.0 + 0.9 * sin((double)i * 1e-5));
        double smooth = 2e-3 * sin((double)i * 3e-4 + 0.05 * step);
        x[i] = (float)(smooth + scale * r * cos(2 * M_PI * u2));
        if (i + 1 < n) {
            x[i + 1] = (float)(smooth + scale * r * sin(2 * M_PI * u2));
        }
    }
}

static double bench_memcpy(void *dst, const void *src, size_t bytes, int iters)
{
    double *t = calloc((size_t)iters, sizeof *t);
    memcpy(dst, src, bytes); /* fault pages in */
    for (int it = 0; it < iters; it++) {
        double t0 = now_s();
        memcpy(dst, src, bytes);
        t[it] = now_s() - t0;
    }
    double m = median(t, iters);
    free(t);
    return (double)bytes / m / 1e9;
}

static void usage(void)
{
    printf("usage: nangila bench [--count N] [--iters N] [--isa auto|ref|avx2|avx512]\n"
           "                     [--codec NAME] [--csv FILE]\n"
           "Encodes and decodes N fp32-equivalent elements (default 16777216) per step\n"
           "on one core and reports GB/s of input next to memcpy of the same bytes.\n"
           "codecs:");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        printf(" %s", cases[c].name);
    }
    printf("\n");
}

static int parse_opts(int argc, char **argv, bench_opts *o)
{
    o->count = 16u << 20;
    o->iters = 9;
    o->isa = NGL_ISA_AUTO;
    o->csv = NULL;
    o->only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            exit(0);
        } else if (!strcmp(a, "--count") && v) {
            o->count = strtoull(v, NULL, 0);
            i++;
        } else if (!strcmp(a, "--iters") && v) {
            o->iters = atoi(v);
            i++;
        } else if (!strcmp(a, "--csv") && v) {
            o->csv = v;
            i++;
        } else if (!strcmp(a, "--codec") && v) {
            o->only = v;
            i++;
        } else if (!strcmp(a, "--isa") && v) {
            int found = 0;
            for (int k = NGL_ISA_AUTO; k <= NGL_ISA_AVX512; k++) {
                if (!strcmp(v, ngl_isa_name((ngl_isa)k))) {
                    o->isa = (ngl_isa)k;
                    found = 1;
                }
            }
            if (!found || !ngl_isa_available(o->isa)) {
                fprintf(stderr, "nangila bench: isa '%s' not available here\n", v);
                return -1;
            }
            i++;
        } else {
            fprintf(stderr, "nangila bench: bad argument '%s'\n", a);
            usage();
            return -1;
        }
    }
    if (o->count == 0 || o->count > NGL_COUNT_MAX || o->iters < 1) {
        fprintf(stderr, "nangila bench: --count must be in [1, 2^28], --iters >= 1\n");
        return -1;
    }
    return 0;
}

int ngl_cli_bench(int argc, char **argv)
{
    bench_opts o;
    if (parse_opts(argc, argv, &o) != 0) {
        return 2;
    }
    const uint64_t n = o.count;
    const int nsteps = 4; /* distinct inputs cycled through, so EF/predictors move */
    float *x32[4];
    void *xin[4];
    for (int s = 0; s < nsteps; s++) {
        x32[s] = malloc(n * 4);
        xin[s] = malloc(n * 8);
        make_data(x32[s], n, s, 42);
    }
    float *out = malloc(n * 8);
    const double in_bytes = (double)n * 4.0;

    double memcpy_gbs = bench_memcpy(out, x32[0], (size_t)n * 4, o.iters);
    FILE *csv = NULL;
    if (o.csv) {
        csv = fopen(o.csv, "w");
        if (!csv) {
            perror(o.csv);
            return 1;
        }
        fprintf(csv, "codec,isa,count,encode_gbs,decode_gbs,memcpy_gbs,encode_vs_memcpy,"
                     "decode_vs_memcpy,wire_ratio,rel_rmse\n");
    }
    printf("nangila bench: %llu elements (%.1f MiB fp32) per step, one core, isa %s, "
           "median of %d\n",
           (unsigned long long)n, in_bytes / (1 << 20),
           ngl_isa_name(o.isa == NGL_ISA_AUTO ? ngl_isa_best() : o.isa), o.iters);
    printf("memcpy baseline: %.2f GB/s\n\n", memcpy_gbs);
    printf("%-16s %9s %9s %9s %9s %9s %10s\n", "codec", "enc GB/s", "enc/cpy", "dec GB/s",
           "dec/cpy", "ratio", "rel.rmse");
    if (csv) {
        fprintf(csv, "memcpy,-,%llu,%.4f,%.4f,%.4f,1,1,1,0\n", (unsigned long long)n, memcpy_gbs,
                memcpy_gbs, memcpy_gbs);
    }

    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const codec_case *cc = &cases[ci];
        if (o.only && strcmp(o.only, cc->name) != 0) {
            continue;
        }
        ngl_stream_config cfg;
        ngl_stream_config_init(&cfg);
        cfg.codec = cc->codec;
        cfg.dtype = cc->dtype;
        cfg.predictor = cc->pred;
        cfg.error_feedback = cc->ef;
        cfg.topk_fraction = cc->topk;
        cfg.eps = cc->eps;
        cfg.lossless = cc->lossless;
        cfg.isa = o.isa;
        cfg.count = n;
        cfg.seed = 1;
        ngl_encoder *enc = NULL;
        ngl_decoder *dec = NULL;
        if (ngl_encoder_create(&cfg, &enc) != NGL_OK || ngl_decoder_create(&cfg, &dec) != NGL_OK) {
            printf("%-16s (unavailable in this build)\n", cc->name);
            ngl_encoder_destroy(enc);
            ngl_decoder_destroy(dec);
            continue;
        }
        for (int s = 0; s < nsteps; s++) {
            (void)ngl_dtype_from_f32(cc->dtype, x32[s], xin[s], n);
        }
        size_t cap = ngl_encode_bound(&cfg);
        uint8_t *frame = malloc(cap);
        double *te = calloc((size_t)o.iters, sizeof(double));
        double *td = calloc((size_t)o.iters, sizeof(double));
        double wire = 0, err2 = 0, sig2 = 0;
        int ok = 1;
        for (int it = -1; it < o.iters && ok; it++) { /* it = -1: warm-up */
            const int s = (it + 1) % nsteps;
            size_t len = 0;
            double t0 = now_s();
            ngl_status st = ngl_encoder_encode(enc, xin[s], frame, cap, &len);
            double t1 = now_s();
            if (st == NGL_OK) {
                st = ngl_decoder_decode(dec, frame, len, out, 0);
            }
            double t2 = now_s();
            if (st != NGL_OK) {
                printf("%-16s failed: %s\n", cc->name, ngl_status_str(st));
                ok = 0;
                break;
            }
            if (it >= 0) {
                te[it] = t1 - t0;
                td[it] = t2 - t1;
                wire += (double)len;
            }
            if (it == o.iters - 1) {
                const uint16_t *h = (const uint16_t *)out;
                for (uint64_t i = 0; i < n; i++) {
                    float yf = out[i];
                    if (cc->dtype != NGL_DTYPE_F32) {
                        (void)ngl_dtype_to_f32(cc->dtype, &h[i], &yf, 1);
                    }
                    double d = (double)yf - (double)x32[s][i];
                    err2 += d * d;
                    sig2 += (double)x32[s][i] * x32[s][i];
                }
            }
        }
        if (ok) {
            double enc_gbs = in_bytes / median(te, o.iters) / 1e9;
            double dec_gbs = in_bytes / median(td, o.iters) / 1e9;
            double ratio = (double)n * ngl_dtype_size(cc->dtype) * o.iters / wire;
            double rel = sig2 > 0 ? sqrt(err2 / sig2) : NAN;
            printf("%-16s %9.2f %8.0f%% %9.2f %8.0f%% %8.2fx %10.2e\n", cc->name, enc_gbs,
                   100.0 * enc_gbs / memcpy_gbs, dec_gbs, 100.0 * dec_gbs / memcpy_gbs, ratio, rel);
            if (csv) {
                fprintf(csv, "%s,%s,%llu,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4e\n", cc->name,
                        ngl_isa_name(o.isa == NGL_ISA_AUTO ? ngl_isa_best() : o.isa),
                        (unsigned long long)n, enc_gbs, dec_gbs, memcpy_gbs, enc_gbs / memcpy_gbs,
                        dec_gbs / memcpy_gbs, ratio, rel);
            }
        }
        free(te);
        free(td);
        free(frame);
        ngl_encoder_destroy(enc);
        ngl_decoder_destroy(dec);
    }

#if defined(NGL_HAVE_ZSTD)
    if (!o.only || !strcmp(o.only, "zstd-1")) {
        /* Lossless baseline on the same fp32 data. */
        size_t cap = ZSTD_compressBound((size_t)n * 4);
        void *z = malloc(cap);
        double *te = calloc((size_t)o.iters, sizeof(double));
        double *td = calloc((size_t)o.iters, sizeof(double));
        double wire = 0;
        for (int it = 0; it < o.iters; it++) {
            double t0 = now_s();
            size_t zl = ZSTD_compress(z, cap, x32[it % nsteps], (size_t)n * 4, 1);
            double t1 = now_s();
            ZSTD_decompress(out, (size_t)n * 4, z, zl);
            double t2 = now_s();
            te[it] = t1 - t0;
            td[it] = t2 - t1;
            wire += (double)zl;
        }
        double enc_gbs = in_bytes / median(te, o.iters) / 1e9;
        double dec_gbs = in_bytes / median(td, o.iters) / 1e9;
        double ratio = in_bytes * o.iters / wire;
        printf("%-16s %9.2f %8.0f%% %9.2f %8.0f%% %8.2fx %10.2e\n", "zstd-1 (lossless)", enc_gbs,
               100.0 * enc_gbs / memcpy_gbs, dec_gbs, 100.0 * dec_gbs / memcpy_gbs, ratio, 0.0);
        if (csv) {
            fprintf(csv, "zstd-1,-,%llu,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,0\n", (unsigned long long)n,
                    enc_gbs, dec_gbs, memcpy_gbs, enc_gbs / memcpy_gbs, dec_gbs / memcpy_gbs,
                    ratio);
        }
        free(te);
        free(td);
        free(z);
    }
#endif
    if (csv) {
        fclose(csv);
    }
    for (int s = 0; s < nsteps; s++) {
        free(x32[s]);
        free(xin[s]);
    }
    free(out);
    return 0;
}
