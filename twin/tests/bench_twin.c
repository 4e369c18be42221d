/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_twin.c -- encode/decode throughput of the twin codec on a synthetic
 * 64-channel 1 kHz rotor-like stream, next to memcpy of the same bytes.
 * Registered with benchmark() (meson test --benchmark); prints, asserts
 * nothing about time.
 *
 *   bench_twin [seconds_of_signal]   (default 60)
 */
#include "twin_testutil.h"

#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct run_out {
    double enc_s, dec_s;
    size_t bytes_out;
    int ok;
} run_out;

/* One configuration: every message holds @p batch samples. */
static run_out run(const float *data, uint32_t C, size_t n, size_t batch, const double *eps)
{
    run_out r = {0, 0, 0, 0};
    ngl_twin_bound *b = calloc(C, sizeof(*b));
    for (uint32_t j = 0; j < C; j++) {
        b[j].mode = NGL_TWIN_EPS_ABS;
        b[j].eps = eps ? eps[j] : 0.0;
    }
    ngl_twin_config cfg;
    ngl_twin_config_init(&cfg);
    cfg.channels = C;
    cfg.bounds = b;
    cfg.max_samples = (uint32_t)batch;
    cfg.keyframe_interval = (uint32_t)(1000 / batch > 0 ? 1000 / batch : 1); /* ~1 s */
    ngl_twin_encoder *enc = NULL;
    ngl_twin_decoder *dec = NULL;
    if (ngl_twin_encoder_create(&cfg, &enc) != NGL_OK ||
        ngl_twin_decoder_create(NULL, &dec) != NGL_OK) {
        return r;
    }
    const size_t cap = ngl_twin_encoder_bound(enc, batch);
    const size_t nmsg = (n + batch - 1) / batch;
    /* messages back to back, with their lengths, as a broker would hold them */
    uint8_t *msgs = malloc(nmsg * cap);
    size_t *lens = malloc(nmsg * sizeof(*lens));
    float *out = malloc(n * C * sizeof(float));
    double t0 = now_s();
    size_t off = 0;
    for (size_t m = 0; m < nmsg; m++) {
        size_t k = n - m * batch < batch ? n - m * batch : batch;
        ngl_twin_encoder_encode(enc, data + m * batch * C, k, msgs + off, cap, &lens[m]);
        off += lens[m];
    }
    r.enc_s = now_s() - t0;
    r.bytes_out = off;
    t0 = now_s();
    off = 0;
    int ok = 1;
    for (size_t m = 0; m < nmsg; m++) {
        ngl_twin_info info;
        if (ngl_twin_decoder_decode(dec, msgs + off, lens[m], out + m * batch * C,
                                    batch * C * sizeof(float), &info) != NGL_OK) {
            ok = 0;
        }
        off += lens[m];
    }
    r.dec_s = now_s() - t0;
    for (size_t i = 0; ok && i < n * C; i++) {
        ok = tt_value_ok(NGL_DTYPE_F32, data, out, i, b[i % C]);
    }
    r.ok = ok;
    free(out);
    free(lens);
    free(msgs);
    free(b);
    ngl_twin_decoder_destroy(dec);
    ngl_twin_encoder_destroy(enc);
    return r;
}

int main(int argc, char **argv)
{
    const uint32_t C = 64;
    const double seconds = argc > 1 ? atof(argv[1]) : 60.0;
    const size_t n = (size_t)(seconds * 1000.0);
    const size_t bytes = n * C * sizeof(float);
    float *data = malloc(bytes);
    float *copy = malloc(bytes);
    double *eps = calloc(C, sizeof(double));
    if (data == NULL || copy == NULL || eps == NULL || n == 0) {
        return 1;
    }
    tt_fill(data, NGL_DTYPE_F32, TT_ROTOR, n, C, 42);
    /* eps = 1e-3 of each channel's range */
    for (uint32_t j = 0; j < C; j++) {
        float lo = data[j], hi = data[j];
        for (size_t t = 0; t < n; t++) {
            float v = data[t * C + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        eps[j] = 1e-3 * ((double)hi - (double)lo);
    }
    double t0 = now_s();
    for (int rep = 0; rep < 5; rep++) {
        memcpy(copy, data, bytes);
        data[rep] += copy[bytes / sizeof(float) - 1 - (size_t)rep] * 0.0f;
    }
    const double memcpy_mbs = 5.0 * (double)bytes / (now_s() - t0) / 1e6;
    printf("twin bench: %u channels x %zu samples (1 kHz rotor-like, f32), %.1f MB\n", C, n,
           (double)bytes / 1e6);
    printf("memcpy: %.0f MB/s\n", memcpy_mbs);
    static const size_t batches[] = {1, 10, 100};
    for (int lossless = 0; lossless <= 1; lossless++) {
        for (size_t k = 0; k < sizeof(batches) / sizeof(batches[0]); k++) {
            run_out r = run(data, C, n, batches[k], lossless ? NULL : eps);
            const double enc = (double)bytes / r.enc_s / 1e6, dec = (double)bytes / r.dec_s / 1e6;
            printf("%-18s %3zu samples/msg: ratio %6.2f  encode %7.1f MB/s (memcpy/%.0f)  "
                   "decode %7.1f MB/s (memcpy/%.0f)%s\n",
                   lossless ? "eps=0 (lossless)" : "eps=1e-3 of range", batches[k],
                   (double)bytes / (double)r.bytes_out, enc, memcpy_mbs / enc, dec,
                   memcpy_mbs / dec, r.ok ? "" : "  BOUND/DECODE FAILURE");
        }
    }
    free(eps);
    free(copy);
    free(data);
    return 0;
}
