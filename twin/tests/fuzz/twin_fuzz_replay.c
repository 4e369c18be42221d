/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_fuzz_replay.c -- runs LLVMFuzzerTestOneInput over every file of the
 * given corpus directories (and files), so the twin fuzz target's corpus
 * replays under `meson test` without libFuzzer. Each input is also replayed
 * with every mode byte, truncated, and with bit flips at fixed positions.
 *
 *   twin_fuzz_replay DIR|FILE...          replay
 *   twin_fuzz_replay --write-seeds DIR    (re)generate the seed corpus
 */
#include "nangila_twin.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void replay(const uint8_t *buf, size_t len, unsigned long *count)
{
    uint8_t *m = malloc(len ? len : 1);
    if (m == NULL) {
        return;
    }
    memcpy(m, buf, len);
    for (unsigned mode = 0; mode < 4 && len > 0; mode++) {
        m[0] = (uint8_t)mode;
        LLVMFuzzerTestOneInput(m, len);
        (*count)++;
    }
    memcpy(m, buf, len);
    LLVMFuzzerTestOneInput(m, len);
    (*count)++;
    for (size_t k = 1; k <= 24 && len > 1; k++) {
        size_t pos = 1 + (k * 7919u) % (len - 1);
        memcpy(m, buf, len);
        m[pos] ^= (uint8_t)(1u << (k % 8));
        LLVMFuzzerTestOneInput(m, len);
        m[0] |= 1u; /* and with the CRC made right again */
        LLVMFuzzerTestOneInput(m, len);
        LLVMFuzzerTestOneInput(buf, pos);
        *count += 3;
    }
    free(m);
}

static int run_file(const char *path, unsigned long *count)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    uint8_t buf[1 << 16];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    replay(buf, len, count);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path, unsigned long *count)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        return run_file(path, count);
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char **nn = realloc(names, (n + 1) * sizeof(*names));
        if (nn == NULL) {
            break;
        }
        names = nn;
        size_t l = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(l);
        snprintf(names[n], l, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        rc |= run_file(names[i], count);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ------------------------------------------------------------ seed corpus */
static int write_seed(const char *dir, const char *name, unsigned mode, const uint8_t *p,
                      size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    uint8_t m = (uint8_t)mode;
    if (f == NULL || fwrite(&m, 1, 1, f) != 1 || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        return -1;
    }
    return 0;
}

/* A short stream of @p kind; writes its keyframe, a delta and the end. */
static int seed_stream(const char *dir, const char *tag, ngl_dtype dt, ngl_twin_bound b,
                       int per_channel, uint32_t C, uint32_t batch, int decimal)
{
    ngl_twin_config cfg;
    ngl_twin_config_init(&cfg);
    cfg.channels = C;
    cfg.dtype = dt;
    cfg.bound = b;
    cfg.max_samples = batch;
    cfg.stream_id = 0x5EED;
    ngl_twin_bound *bs = calloc(C, sizeof(*bs));
    if (per_channel) {
        for (uint32_t j = 0; j < C; j++) {
            bs[j].mode = j % 2 ? NGL_TWIN_EPS_REL : NGL_TWIN_EPS_ABS;
            bs[j].eps = j % 3 ? 1e-3 * (j + 1) : 0.0;
        }
        cfg.bounds = bs;
    }
    ngl_twin_encoder *enc = NULL;
    if (ngl_twin_encoder_create(&cfg, &enc) != NGL_OK) {
        return -1;
    }
    size_t cap = ngl_twin_encoder_bound(enc, batch), len;
    uint8_t *msg = malloc(cap);
    double *v64 = malloc((size_t)batch * C * 8);
    float *v32 = malloc((size_t)batch * C * 4);
    char name[256];
    int rc = 0;
    for (unsigned m = 0; m < 3; m++) {
        for (size_t i = 0; i < (size_t)batch * C; i++) {
            double v = sin(0.1 * (double)(m * batch + i / C) + (double)(i % C));
            if (decimal) {
                /* two decimals, as parsed from text: keyframes carry a divisor */
                v = round(v * 100.0) / 100.0;
            }
            if (i == 4 && m == 1) {
                v = NAN;
            }
            if (i == 5) {
                v = 1e300 * (m + 1);
            }
            v64[i] = v;
            v32[i] = (float)v;
        }
        const void *src = dt == NGL_DTYPE_F64 ? (const void *)v64 : (const void *)v32;
        if (ngl_twin_encoder_encode(enc, src, batch, msg, cap, &len) != NGL_OK) {
            rc = -1;
            break;
        }
        snprintf(name, sizeof(name), "%s-%u-%s", tag, m, m == 0 ? "key" : "delta");
        /* keyframes as they are; deltas after the fuzz target's own keyframe
         * do not belong to its stream state, so they go in with the CRC mode */
        rc |= write_seed(dir, name, m == 0 ? 0u : 1u, msg, len);
    }
    if (ngl_twin_encoder_end_of_stream(enc, msg, cap, &len) == NGL_OK) {
        snprintf(name, sizeof(name), "%s-end", tag);
        rc |= write_seed(dir, name, 2u, msg, len);
    }
    free(v32);
    free(v64);
    free(msg);
    free(bs);
    ngl_twin_encoder_destroy(enc);
    return rc;
}

static int write_seeds(const char *dir)
{
    const ngl_twin_bound abs3 = {NGL_TWIN_EPS_ABS, 1e-3}, rel = {NGL_TWIN_EPS_REL, 1e-4},
                         exact = {NGL_TWIN_EPS_ABS, 0.0};
    int rc = 0;
    rc |= seed_stream(dir, "f32-abs", NGL_DTYPE_F32, abs3, 0, 3, 2, 0);
    rc |= seed_stream(dir, "f64-rel", NGL_DTYPE_F64, rel, 0, 4, 5, 0);
    rc |= seed_stream(dir, "f32-lossless", NGL_DTYPE_F32, exact, 0, 2, 8, 0);
    rc |= seed_stream(dir, "f64-mixed", NGL_DTYPE_F64, abs3, 1, 6, 3, 0);
    rc |= seed_stream(dir, "f64-decimal", NGL_DTYPE_F64, exact, 0, 2, 8, 1);
    /* foreign payloads */
    const char *json = "{\"rpm\": 3000.5, \"temp\": 61.2}";
    rc |= write_seed(dir, "foreign-json", 0, (const uint8_t *)json, strlen(json));
    const uint8_t empty = 0;
    rc |= write_seed(dir, "foreign-empty", 0, &empty, 0);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) {
        return write_seeds(argv[2]) == 0 ? 0 : 1;
    }
    unsigned long count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        rc |= run_path(argv[i], &count);
    }
    printf("twin_fuzz_replay: %lu inputs\n", count);
    return rc == 0 && count > 0 ? 0 : 1;
}
