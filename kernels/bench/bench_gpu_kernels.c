/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_gpu_kernels -- GPU kernel throughput next to the device-to-device
 * copy bandwidth measured in the same run.
 *
 *   bench_gpu_kernels [count] [reps] [csv]
 *
 * For each kernel: time per call (CUDA events, median of reps), the logical
 * throughput in GB/s of fp32 input (4 bytes per element, whatever the
 * dtype), the bytes the kernel must move (inputs read, state read and
 * written, sections written), the effective bandwidth those bytes give, and
 * its ratio to the copy bandwidth (a copy of B bytes moves 2B). The target
 * of issue 5: quantize + EF + pack (enc_dense int8 ef) >= 0.70 of copy.
 * Exits 77 when there is no GPU.
 */
#include "ngl_gpu_host.h"

#include <cuda_runtime_api.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef void (*bench_fn)(void *ctx);

/* Median time of one call in ms, after two warm-up calls. */
static double time_ms(bench_fn fn, void *ctx, int reps)
{
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    fn(ctx);
    fn(ctx);
    CK(cudaDeviceSynchronize());
    float *t = calloc((size_t)reps, sizeof(float));
    if (t == NULL) {
        exit(1);
    }
    for (int r = 0; r < reps; r++) {
        CK(cudaEventRecord(a, NULL));
        fn(ctx);
        CK(cudaEventRecord(b, NULL));
        CK(cudaEventSynchronize(b));
        CK(cudaEventElapsedTime(&t[r], a, b));
    }
    qsort(t, (size_t)reps, sizeof(float), cmp_float);
    double med = t[reps / 2];
    free(t);
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return med;
}

typedef struct copy_ctx {
    void *dst;
    const void *src;
    size_t bytes;
} copy_ctx;

static void run_copy(void *p)
{
    copy_ctx *c = p;
    CK(cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, NULL));
}

typedef struct kern_ctx {
    ngl_gpu_args a;
    const ngl_gpu_kernel *seq;
    int nseq;
    ngl_gpu_ctl *ctl;
    uint32_t *hist;
    uint32_t *ga;
} kern_ctx;

static void run_kernels(void *p)
{
    kern_ctx *k = p;
    if (k->ctl) {
        CK(cudaMemsetAsync(k->ctl, 0, sizeof(ngl_gpu_ctl), NULL));
    }
    if (k->hist) {
        CK(cudaMemsetAsync(k->hist, 0, 3u * NGL_GPU_HIST_BINS * 4u, NULL));
    }
    if (k->ga) {
        CK(cudaMemsetAsync(k->ga, 0, 2u * (size_t)k->a.nblocks * 4u, NULL));
    }
    for (int i = 0; i < k->nseq; i++) {
        int e = ngl_gpu_launch(k->seq[i], &k->a, NULL);
        if (e != 0) {
            fprintf(stderr, "launch %d: %s\n", (int)k->seq[i], ngl_gpu_error_name(e));
            exit(1);
        }
    }
}

typedef struct api_ctx {
    ngl_cuda_encoder *enc;
    const void *src;
    void *frame;
    size_t cap;
} api_ctx;

static void run_api(void *p)
{
    api_ctx *c = p;
    size_t len;
    if (ngl_cuda_encode(c->enc, c->src, c->frame, c->cap, &len, NULL) != NGL_OK) {
        fprintf(stderr, "ngl_cuda_encode failed\n");
        exit(1);
    }
}

static void *dalloc(size_t n)
{
    void *p = NULL;
    CK(cudaMalloc(&p, n < 64 ? 64 : n));
    CK(cudaMemset(p, 0, n < 64 ? 64 : n));
    return p;
}

typedef struct row_out {
    FILE *csv;
    const char *device;
    double copy_gbps;
    uint64_t count;
} row_out;

static void report(row_out *o, const char *name, uint32_t block, double ms, double bytes)
{
    const double s = ms * 1e-3;
    const double logical = 4.0 * (double)o->count / s / 1e9;
    const double eff = bytes / s / 1e9;
    printf("%-34s %9.3f ms  %8.1f GB/s fp32  %8.1f GB/s moved  %5.2f x copy\n", name, ms, logical,
           eff, eff / o->copy_gbps);
    if (o->csv) {
        fprintf(o->csv, "\"%s\",%s,%llu,%u,%.4f,%.2f,%.0f,%.2f,%.2f,%.4f\n", o->device, name,
                (unsigned long long)o->count, block, ms, logical, bytes, eff, o->copy_gbps,
                eff / o->copy_gbps);
    }
}

int main(int argc, char **argv)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    const uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : (64ull << 20);
    const int reps = argc > 2 ? atoi(argv[2]) : 20;
    const char *csv_path = argc > 3 ? argv[3] : NULL;
    const uint32_t B = NGL_BLOCK_DEFAULT;
    const uint32_t nb = (uint32_t)((n + B - 1) / B);
    if (n == 0 || n > NGL_COUNT_MAX || reps < 1) {
        fprintf(stderr, "usage: %s [count 1..2^28] [reps] [csv]\n", argv[0]);
        return 2;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    row_out o;
    memset(&o, 0, sizeof o);
    o.device = prop.name;
    o.count = n;
    if (csv_path) {
        o.csv = fopen(csv_path, "w");
        if (o.csv == NULL) {
            perror(csv_path);
            return 1;
        }
        fprintf(o.csv, "device,kernel,count,block,ms,logical_GBps_fp32,bytes_moved,"
                       "effective_GBps,copy_GBps,ratio_vs_copy\n");
    }
    printf("device: %s, %d SMs; %llu elements, block %u, median of %d\n", prop.name,
           prop.multiProcessorCount, (unsigned long long)n, B, reps);

    /* inputs: a smooth signal with noise, no exceptions */
    float *hx = malloc(n * 4);
    if (hx == NULL) {
        return 1;
    }
    for (uint64_t i = 0; i < n; i++) {
        hx[i] = (float)((double)((i * 2654435761u) % 1000003u) / 1000003.0 - 0.5) *
                (1.0f + (float)(i % 977u) * 0.01f);
    }
    float *x = dalloc(n * 4), *copy = dalloc(n * 4), *ef = dalloc(n * 4), *st1 = dalloc(n * 4);
    float *st2 = dalloc(n * 4), *out = dalloc(n * 4);
    CK(cudaMemcpy(x, hx, n * 4, cudaMemcpyHostToDevice));
    uint16_t *hh = malloc(n * 2);
    if (hh == NULL) {
        return 1;
    }
    for (uint64_t i = 0; i < n; i++) {
        hh[i] = ngl_f32_to_bf16(hx[i]);
    }
    uint16_t *x16 = dalloc(n * 2);
    CK(cudaMemcpy(x16, hh, n * 2, cudaMemcpyHostToDevice));
    uint8_t *gate = dalloc(nb), *codes = dalloc(n), *scales = dalloc((size_t)nb * 4);
    uint8_t *exc = dalloc(n * 8);
    uint32_t *exc_idx = dalloc(n * 4), *blk_exc = dalloc((size_t)nb * 4);
    ngl_gpu_ctl *ctl = dalloc(sizeof(ngl_gpu_ctl));

    copy_ctx cc = {copy, x, n * 4};
    double ms = time_ms(run_copy, &cc, reps);
    o.copy_gbps = 2.0 * (double)(n * 4) / (ms * 1e-3) / 1e9;
    printf("%-34s %9.3f ms  %8.1f GB/s moved (read + write)\n", "cudaMemcpy D2D (fp32 input)", ms,
           o.copy_gbps);
    report(&o, "copy_d2d", B, ms, 2.0 * (double)(n * 4));

    static const ngl_gpu_kernel enc_only[] = {NGL_GK_ENC_DENSE};
    static const ngl_gpu_kernel enc_full[] = {NGL_GK_ENC_DENSE, NGL_GK_EXC_GATHER};
    static const ngl_gpu_kernel dec_only[] = {NGL_GK_DEC_DENSE};
    static const struct {
        const char *name;
        ngl_codec codec;
        ngl_predictor pred;
        ngl_dtype dtype;
        int ef, full, decode, accumulate;
    } cases[] = {
        {"enc_dense int8 ef", NGL_CODEC_INT8, NGL_PRED_NONE, NGL_DTYPE_F32, 1, 0, 0, 0},
        {"enc_dense+gather int8 ef", NGL_CODEC_INT8, NGL_PRED_NONE, NGL_DTYPE_F32, 1, 1, 0, 0},
        {"enc_dense int4 ef", NGL_CODEC_INT4, NGL_PRED_NONE, NGL_DTYPE_F32, 1, 0, 0, 0},
        {"enc_dense int8 no-ef", NGL_CODEC_INT8, NGL_PRED_NONE, NGL_DTYPE_F32, 0, 0, 0, 0},
        {"enc_dense int8 ef momentum", NGL_CODEC_INT8, NGL_PRED_MOMENTUM, NGL_DTYPE_F32, 1, 0, 0,
         0},
        {"enc_dense int8 ef linear", NGL_CODEC_INT8, NGL_PRED_LINEAR, NGL_DTYPE_F32, 1, 0, 0, 0},
        {"enc_dense int8 ef bf16", NGL_CODEC_INT8, NGL_PRED_NONE, NGL_DTYPE_BF16, 1, 0, 0, 0},
        {"dec_dense int8", NGL_CODEC_INT8, NGL_PRED_NONE, NGL_DTYPE_F32, 0, 0, 1, 0},
        {"dec_dense int8 accumulate", NGL_CODEC_INT8, NGL_PRED_NONE, NGL_DTYPE_F32, 0, 0, 1, 1},
        {"dec_dense int8 momentum", NGL_CODEC_INT8, NGL_PRED_MOMENTUM, NGL_DTYPE_F32, 0, 0, 1, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ngl_stream_config cfg;
        ngl_stream_config_init(&cfg);
        cfg.codec = cases[c].codec;
        cfg.predictor = cases[c].pred;
        cfg.dtype = cases[c].dtype;
        cfg.error_feedback = cases[c].ef;
        cfg.count = n;
        ngl_gpu_geom g;
        if (ngl_gpu_geom_init(&g, &cfg) != NGL_OK) {
            fprintf(stderr, "bad config\n");
            return 1;
        }
        kern_ctx k;
        memset(&k, 0, sizeof k);
        ngl_gpu_args_init(&k.a, &g, 2, st1, st2, gate);
        k.a.key = ngl_rng_key_make(1, 2, 3);
        k.a.ef = cases[c].ef ? ef : NULL;
        k.a.ctl = ctl;
        k.a.src = cases[c].dtype == NGL_DTYPE_F32 ? (const void *)x : (const void *)x16;
        k.a.src_vec = 1;
        k.a.scales = scales;
        k.a.codes = codes;
        k.a.exc = exc;
        k.a.exc_idx = exc_idx;
        k.a.blk_exc = blk_exc;
        k.a.dst = out;
        k.a.dst_vec = 1;
        k.a.accumulate = cases[c].accumulate;
        k.a.in_scales = scales;
        k.a.in_codes = codes;
        k.a.in_exc = exc;
        k.ctl = ctl;
        k.seq = cases[c].decode ? dec_only : (cases[c].full ? enc_full : enc_only);
        k.nseq = cases[c].full ? 2 : 1;
        /* bytes the kernel must move */
        const double N = (double)n;
        const double in_bytes = (double)ngl_dtype_size(cases[c].dtype) * N;
        const double code_bytes = cases[c].codec == NGL_CODEC_INT4 ? N / 2.0 : N;
        double bytes = 4.0 * nb + code_bytes; /* scales + codes: written or read */
        if (cases[c].decode) {
            bytes += (cases[c].accumulate ? 8.0 : 4.0) * N;
        } else {
            bytes += in_bytes + (cases[c].ef ? 8.0 * N : 0.0);
        }
        if (cases[c].pred == NGL_PRED_MOMENTUM) {
            bytes += 8.0 * N + 2.0 * nb;
        } else if (cases[c].pred == NGL_PRED_LINEAR) {
            bytes += 16.0 * N + 2.0 * nb;
        }
        ms = time_ms(run_kernels, &k, reps);
        report(&o, cases[c].name, B, ms, bytes);
    }

    /* Top-K, the whole device pipeline (informational: no target) */
    {
        ngl_stream_config cfg;
        ngl_stream_config_init(&cfg);
        cfg.count = n;
        cfg.topk_fraction = 0.01;
        ngl_gpu_geom g;
        if (ngl_gpu_geom_init(&g, &cfg) != NGL_OK) {
            return 1;
        }
        kern_ctx k;
        memset(&k, 0, sizeof k);
        ngl_gpu_args_init(&k.a, &g, 0, NULL, NULL, NULL);
        k.a.key = ngl_rng_key_make(1, 2, 3);
        k.a.ef = ef;
        k.a.ctl = ctl;
        k.a.src = x;
        k.a.src_vec = 1;
        k.a.scales = scales;
        k.a.codes = codes;
        k.a.exc = exc;
        k.a.tk_r = st1;
        k.a.tk_key = (uint32_t *)st2;
        k.a.tk_hist = dalloc(3u * NGL_GPU_HIST_BINS * 4u);
        k.a.tk_tiles = dalloc(6u * (size_t)g.ntiles * 4u);
        k.a.tk_sel = exc_idx;
        k.a.tk_inv = dalloc((size_t)g.ngroups_max * 4u);
        k.a.tk_bitmap = (uint8_t *)out;
        k.a.tk_late = dalloc((size_t)g.k_max * 8u);
        k.ctl = ctl;
        k.hist = k.a.tk_hist;
        static const ngl_gpu_kernel tk[] = {
            NGL_GK_TK_KEYS,  NGL_GK_TK_PICK0, NGL_GK_TK_HIST1, NGL_GK_TK_PICK1,
            NGL_GK_TK_HIST2, NGL_GK_TK_PICK2, NGL_GK_TK_COUNT, NGL_GK_TK_SCAN,
            NGL_GK_TK_RANK,  NGL_GK_TK_GROUP, NGL_GK_TK_QUANT, NGL_GK_TK_GATE,
        };
        k.seq = tk;
        k.nseq = (int)(sizeof tk / sizeof tk[0]);
        ms = time_ms(run_kernels, &k, reps);
        /* x, ef r/w, r and key written then read 4 times, bitmap, codes */
        report(&o, "topk 1% int8 ef (all kernels)", B, ms, (4.0 + 8.0 + 8.0 + 24.0) * (double)n);
        cudaFree(k.a.tk_hist);
        cudaFree(k.a.tk_tiles);
        cudaFree(k.a.tk_inv);
        cudaFree(k.a.tk_late);
    }

    /* End to end through the API: kernels, copy to pinned host, CRC. */
    {
        ngl_stream_config cfg;
        ngl_stream_config_init(&cfg);
        cfg.count = n;
        api_ctx a;
        memset(&a, 0, sizeof a);
        if (ngl_cuda_encoder_create(&cfg, &a.enc) != NGL_OK) {
            return 1;
        }
        a.cap = ngl_encode_bound(&cfg);
        CK(cudaHostAlloc(&a.frame, a.cap, cudaHostAllocDefault));
        a.src = x;
        ms = time_ms(run_api, &a, reps < 5 ? reps : 5);
        report(&o, "ngl_cuda_encode int8 ef (end to end)", B, ms, 4.0 * (double)n);
        cudaFreeHost(a.frame);
        ngl_cuda_encoder_destroy(a.enc);
    }
    if (o.csv) {
        fclose(o.csv);
    }
    return 0;
}
