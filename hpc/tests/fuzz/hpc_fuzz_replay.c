/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_fuzz_replay.c -- runs LLVMFuzzerTestOneInput over every file of the
 * given corpus directories (and files), so the fuzz target's corpus replays
 * under `meson test` without libFuzzer. Also mutates each input a little
 * (truncations and bit flips at fixed positions) to widen the replay.
 *
 *   hpc_fuzz_replay DIR|FILE...          replay
 *   hpc_fuzz_replay --write-seeds DIR    (re)generate the seed corpus
 */
#include "nangila_hpc.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path, unsigned long *count)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    (*count)++;
    /* a few deterministic mutations of every corpus file */
    uint8_t *m = malloc(len ? len : 1);
    for (size_t k = 1; k <= 16 && len > 0; k++) {
        size_t pos = (k * 7919u) % len;
        memcpy(m, buf, len);
        m[pos] ^= (uint8_t)(1u << (k % 8));
        LLVMFuzzerTestOneInput(m, len);
        LLVMFuzzerTestOneInput(buf, pos);
        *count += 2;
    }
    free(m);
    free(buf);
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
        names = realloc(names, (n + 1) * sizeof(*names));
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
static int write_file(const char *dir, const char *name, const void *p, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static int seed_codec(const char *dir, const char *name, ngl_hpc_dtype dt, double eps, int level,
                      int shuffle)
{
    ngl_hpc_params p;
    ngl_hpc_params_init(&p);
    p.dtype = dt;
    p.eps = eps;
    p.level = level;
    ngl_hpc_encoder *enc = NULL;
    if (ngl_hpc_encoder_create(&p, &enc) != NGL_OK) {
        return -1;
    }
    enum { N = 40, T = 12 };
    size_t cap = ngl_hpc_encode_bound(N) * T, len = 0;
    uint8_t *out = malloc(cap);
    double xyz64[3 * N];
    float xyz32[3 * N];
    int64_t ids[N];
    for (unsigned t = 0; t < T; t++) {
        unsigned n = N - (t % 3);
        for (unsigned i = 0; i < n; i++) {
            unsigned a = shuffle ? (i * 7 + t) % n : i;
            ids[i] = 100 + a;
            for (unsigned c = 0; c < 3; c++) {
                double v = fmod(1.3 * a + 0.7 * c + 0.05 * t * (1 + (a % 5)), 6.5);
                if (a == 3 && c == 1) {
                    v = t == 4 ? NAN : 1e30; /* exact values */
                }
                xyz64[3 * i + c] = v;
                xyz32[3 * i + c] = (float)v;
            }
        }
        ngl_hpc_frame f = {
            .natoms = n, .ids = ids, .xyz = dt == NGL_HPC_F32 ? (void *)xyz32 : (void *)xyz64};
        f.has_box = 1;
        for (int c = 0; c < 3; c++) {
            f.box_lo[c] = 0;
            f.box_hi[c] = 6.5;
            f.periodic[c] = 1;
        }
        size_t o;
        if (ngl_hpc_encoder_encode(enc, &f, out + len, cap - len, &o) != NGL_OK) {
            ngl_hpc_encoder_destroy(enc);
            free(out);
            return -1;
        }
        len += o;
    }
    ngl_hpc_encoder_destroy(enc);
    int rc = write_file(dir, name, out, len);
    free(out);
    return rc;
}

/* Level 3 with cage frames (and their table): an fcc crystal of 500 atoms
 * with fresh thermal noise in every frame, whose cage predicts it well. */
static int seed_cage(const char *dir, const char *name)
{
    ngl_hpc_params p;
    ngl_hpc_params_init(&p);
    p.level = NGL_HPC_LEVEL_BEST;
    ngl_hpc_encoder *enc = NULL;
    if (ngl_hpc_encoder_create(&p, &enc) != NGL_OK) {
        return -1;
    }
    enum { C = 5, N = 4 * C * C * C, T = 5 };
    static const double basis[4][3] = {{0, 0, 0}, {0.5, 0.5, 0}, {0.5, 0, 0.5}, {0, 0.5, 0.5}};
    const double a = cbrt(4.0 / 0.8442), len = a * C;
    size_t cap = ngl_hpc_encode_bound(N) * T, out_len = 0;
    uint8_t *out = malloc(cap);
    static float xyz[3 * N];
    uint64_t r = 12345;
    for (unsigned t = 0; t < T; t++) {
        for (unsigned k = 0; k < N; k++) {
            const unsigned cell[3] = {k / (4 * C * C), (k / (4 * C)) % C, (k / 4) % C};
            for (unsigned c = 0; c < 3; c++) {
                double noise = 0;
                for (int s = 0; s < 4; s++) { /* a bell from four uniforms */
                    r = r * 6364136223846793005ull + 1442695040888963407ull;
                    noise += (double)(r >> 11) * 0x1p-53 - 0.5;
                }
                double x = (cell[c] + basis[k % 4][c]) * a + 0.14 * noise;
                xyz[3 * k + c] = (float)(x - len * floor(x / len));
            }
        }
        ngl_hpc_frame f = {.natoms = N, .xyz = xyz, .has_box = 1};
        for (int c = 0; c < 3; c++) {
            f.box_hi[c] = len;
            f.periodic[c] = 1;
        }
        size_t o;
        if (ngl_hpc_encoder_encode(enc, &f, out + out_len, cap - out_len, &o) != NGL_OK) {
            ngl_hpc_encoder_destroy(enc);
            free(out);
            return -1;
        }
        out_len += o;
    }
    ngl_hpc_stats st;
    ngl_hpc_encoder_get_stats(enc, &st);
    ngl_hpc_encoder_destroy(enc);
    int rc = st.cage_frames > 0 ? write_file(dir, name, out, out_len) : -1;
    if (st.cage_frames == 0) {
        fprintf(stderr, "seed %s: no cage frame\n", name);
    }
    free(out);
    return rc;
}

static int seed_dump(const char *dir, const char *name, const char *text, double eps, int level)
{
    FILE *in = fmemopen((void *)text, strlen(text), "rb");
    char *obuf = NULL;
    size_t olen = 0;
    FILE *out = open_memstream(&obuf, &olen);
    ngl_hpc_dump_opts o = {.eps = eps, .rel = 0, .level = level};
    ngl_hpc_dump_report rep;
    ngl_status st = ngl_hpc_dump_compress(in, out, &o, &rep);
    fclose(in);
    fclose(out);
    int rc = st == NGL_OK ? write_file(dir, name, obuf, olen) : -1;
    if (st != NGL_OK) {
        fprintf(stderr, "seed %s: %s\n", name, rep.message);
    }
    free(obuf);
    return rc;
}

static const char dump_custom[] =
    "ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n4\nITEM: BOX BOUNDS pp pp pp\n"
    "0.0000000000000000e+00 3.0000000000000000e+00\n0.0000000000000000e+00 3.0000000000000000e+00\n"
    "0.0000000000000000e+00 3.0000000000000000e+00\nITEM: ATOMS id type x y z vx ix\n"
    "1 1 0.5 0.5 0.5 0.1 0\n2 1 1.5 0.5 2.9 -0.2 1\n3 2 2.5  1.5 0.5 0.3 0\n4 2 nan 1 1 0 0\n"
    "ITEM: TIMESTEP\n10\nITEM: NUMBER OF ATOMS\n3\nITEM: BOX BOUNDS pp pp pp\n"
    "0.0000000000000000e+00 3.0000000000000000e+00\n0.0000000000000000e+00 3.0000000000000000e+00\n"
    "0.0000000000000000e+00 3.0000000000000000e+00\nITEM: ATOMS id type x y z vx ix\n"
    "2 1 1.52 0.51 0.02 -0.2 2\n1 1 0.51 0.49 0.52 0.1 0\n5 1 1.0 1.0 1.0 0.0 0\n"
    "ITEM: TIMESTEP\n20\nITEM: NUMBER OF ATOMS\n3\nITEM: BOX BOUNDS pp pp pp\n"
    "0.0000000000000000e+00 3.0000000000000000e+00\n0.0000000000000000e+00 3.0000000000000000e+00\n"
    "0.0000000000000000e+00 3.0000000000000000e+00\nITEM: ATOMS id type x y z vx ix\n"
    "2 1 1.54 0.52 0.06 -0.2 2\n1 1 0.52 0.48 0.54 0.1 0\n5 1 1.01 1.02 0.99 0.0 0";

static const char dump_atom[] =
    "ITEM: TIMESTEP\n100\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n0 1\n0 1\n0 1\n"
    "ITEM: ATOMS id type xs ys zs \n1 1 0.1 0.2 0.3 \n2 1 0.9 0.8 0.7 \n"
    "ITEM: TIMESTEP\n200\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n0 1\n0 1\n0 1\n"
    "ITEM: ATOMS id type xs ys zs \n2 1 0.91 0.81 0.71 \n1 1 0.11 0.21 0.31 \n";

static const char dump_noid[] =
    "ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS xy xz yz pp pp pp\n"
    "0 5 0.1\n0 5 0\n0 5 0\nITEM: ATOMS type xu yu zu\n1 -0.5 1.5 7.25\n2 3 4 5\n"
    "ITEM: TIMESTEP\n1\nITEM: NUMBER OF ATOMS\n0\nITEM: BOX BOUNDS xy xz yz pp pp pp\n"
    "0 5 0.1\n0 5 0\n0 5 0\nITEM: ATOMS type xu yu zu\n";

static int write_seeds(const char *dir)
{
    int rc = 0;
    rc |= seed_codec(dir, "codec-f32-l1.bin", NGL_HPC_F32, 1e-3, 1, 0);
    rc |= seed_codec(dir, "codec-f64-l2-shuffled.bin", NGL_HPC_F64, 1e-4, 2, 1);
    rc |= seed_codec(dir, "codec-f32-lossless.bin", NGL_HPC_F32, 0, 1, 1);
    rc |= seed_codec(dir, "codec-f32-l0-shuffled.bin", NGL_HPC_F32, 1e-3, 0, 1);
    rc |= seed_cage(dir, "codec-f32-l3-cage.bin");
    rc |= seed_dump(dir, "dump-custom.nhd", dump_custom, 1e-3, 2);
    rc |= seed_dump(dir, "dump-atom.nhd", dump_atom, 1e-2, 1);
    rc |= seed_dump(dir, "dump-noid-lossless.nhd", dump_noid, 0, 2);
    rc |= seed_dump(dir, "dump-custom-l0.nhd", dump_custom, 1e-3, 0);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-seeds")) {
        return write_seeds(argv[2]);
    }
    if (argc < 2) {
        fprintf(stderr, "usage: hpc_fuzz_replay DIR|FILE... | --write-seeds DIR\n");
        return 2;
    }
    unsigned long count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        rc |= run_path(argv[i], &count);
    }
    printf("replayed %lu inputs\n", count);
    return rc ? 1 : 0;
}
