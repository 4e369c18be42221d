/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hpc_lean.c -- white box: the level-0 vector kernels (hpc_lean_simd.c,
 * AVX2 and AVX-512) against the scalar first pass they reproduce. The same frames are encoded
 * with the kernel and without it; the streams must be byte-identical. The
 * frames exercise every path of the kernel: the three integer selectors
 * (blocks of still, drifting and accelerating atoms), periodic crossings,
 * a free axis, values the kernel must leave to the scalar code (NaN, huge,
 * new atoms), residuals too large for its token arithmetic, atoms reordered and dropped between
 * frames, a partial last block, float and double. Skipped (77) on a CPU without AVX-512.
 */
#include "hpc_lean.h"
#include "nangila_hpc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x243F6A8885A308D3ull;

static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1p-53;
}

#define ATOMS  1100 /* four full blocks and a partial one */
#define FRAMES 24
#define BOX    12.0

typedef struct traj {
    int64_t ids[FRAMES][ATOMS];
    uint64_t n[FRAMES];
    double x[FRAMES][ATOMS * 3];
} traj;

static void make_traj(traj *t)
{
    static double pos[ATOMS][3], vel[ATOMS][3];
    for (unsigned i = 0; i < ATOMS; i++) {
        for (int a = 0; a < 3; a++) {
            pos[i][a] = BOX * urand();
            vel[i][a] = 0.05 * (urand() - 0.5);
        }
    }
    for (unsigned f = 0; f < FRAMES; f++) {
        uint64_t n = 0;
        for (unsigned i = 0; i < ATOMS; i++) {
            const unsigned block = i / 256;
            for (int a = 0; a < 3; a++) {
                if (block == 1) { /* drift: ORDER1 */
                    pos[i][a] += vel[i][a];
                } else if (block == 2) { /* accelerate: ORDER2 */
                    vel[i][a] += 0.002;
                    pos[i][a] += vel[i][a];
                } else if (block >= 3) { /* fast and noisy: many crossings */
                    pos[i][a] += 0.4 * (urand() - 0.5);
                } /* block 0 stays still: ORDER0 */
            }
            if (f % 5 == 3 && i % 97 == 5) {
                continue; /* dropped this frame: back without history later */
            }
            t->ids[f][n] = 1000 + i;
            for (int a = 0; a < 3; a++) {
                double v = pos[i][a];
                v = a == 2 ? v : v - BOX * floor(v / BOX); /* z is a free axis */
                if (i == 300 && f == 7) {
                    v = NAN;
                } else if (i == 301 && a == 1 && f >= 9) {
                    v = 1e30; /* off the lattice for good */
                } else if (i == 302 && a == 2 && f >= 13 && f < 17) {
                    v += 3e5; /* a jump and back: residuals beyond 2^31 steps (f64) */
                }
                t->x[f][3 * n + (uint64_t)a] = v;
            }
            n++;
        }
        if (f == 11) { /* reverse the order once: a gather */
            for (uint64_t k = 0; k < n / 2; k++) {
                int64_t ti = t->ids[f][k];
                t->ids[f][k] = t->ids[f][n - 1 - k];
                t->ids[f][n - 1 - k] = ti;
                for (int a = 0; a < 3; a++) {
                    double tx = t->x[f][3 * k + (uint64_t)a];
                    t->x[f][3 * k + (uint64_t)a] = t->x[f][3 * (n - 1 - k) + (uint64_t)a];
                    t->x[f][3 * (n - 1 - k) + (uint64_t)a] = tx;
                }
            }
        }
        t->n[f] = n;
    }
}

/* Encode every frame; @return the stream (malloc), its length in *len. */
/* How one run encodes: the level, and for levels 0-1 the kernel or (level
 * 1) the ring layout of level 2 instead of the lean arrays. */
typedef struct how {
    int level;
    hpc_lean_kernel kernel;
    int ring;
} how;

static uint8_t *encode(const traj *t, ngl_hpc_dtype dt, double eps, how h, size_t *len,
                       uint64_t *kernel_values, uint64_t *model_frames)
{
    ngl_hpc_params p;
    ngl_hpc_params_init(&p);
    p.dtype = dt;
    p.eps = eps;
    p.level = h.level;
    ngl_hpc_encoder *enc = NULL;
    if (ngl_hpc_encoder_create(&p, &enc) != NGL_OK) {
        return NULL;
    }
    if (hpc_encoder_set_kernel(enc, h.kernel) != h.kernel ||
        (h.ring && hpc_encoder_use_ring(enc) != 0)) {
        ngl_hpc_encoder_destroy(enc);
        return NULL;
    }
    size_t cap = FRAMES * ngl_hpc_encode_bound(ATOMS), off = 0;
    uint8_t *buf = malloc(cap);
    static float xf[ATOMS * 3];
    for (unsigned f = 0; f < FRAMES && buf; f++) {
        for (uint64_t i = 0; i < 3 * t->n[f]; i++) {
            xf[i] = (float)t->x[f][i];
        }
        ngl_hpc_frame fr = {.natoms = t->n[f],
                            .ids = t->ids[f],
                            .xyz = dt == NGL_HPC_F32 ? (const void *)xf : (const void *)t->x[f],
                            .has_box = 1,
                            .box_lo = {0, 0, -100},
                            .box_hi = {BOX, BOX, 100},
                            .periodic = {1, 1, 0}};
        size_t out = 0;
        if (ngl_hpc_encoder_encode(enc, &fr, buf + off, cap - off, &out) != NGL_OK) {
            fprintf(stderr, "encode: %s\n", ngl_hpc_encoder_error(enc));
            free(buf);
            buf = NULL;
            break;
        }
        off += out;
    }
    ngl_hpc_stats st;
    ngl_hpc_encoder_get_stats(enc, &st);
    if (buf && (st.wraps == 0 || st.exact == 0)) {
        fprintf(stderr, "the frames miss a path: %llu wraps, %llu exact\n",
                (unsigned long long)st.wraps, (unsigned long long)st.exact);
        free(buf);
        buf = NULL;
    }
    *kernel_values = hpc_encoder_kernel_values(enc);
    *model_frames = st.model_frames;
    ngl_hpc_encoder_destroy(enc);
    *len = off;
    return buf;
}

int main(void)
{
    static traj t;
    make_traj(&t);
    const double epss[] = {1e-2, 1e-3, 1e-4};
    const hpc_lean_kernel kernels[] = {HPC_LEAN_AVX2, HPC_LEAN_AVX512};
    int failed = 0, ran = 0;
    for (int level = NGL_HPC_LEVEL_FASTEST; level <= NGL_HPC_LEVEL_FAST; level++) {
        for (unsigned ki = 0; ki < 2; ki++) {
            const hpc_lean_kernel k = kernels[ki];
            if (!hpc_lean_kernel_available(k)) {
                printf("%s: not on this CPU\n", hpc_lean_kernel_name(k));
                continue;
            }
            ran++;
            for (int dti = 0; dti < 2; dti++) {
                const ngl_hpc_dtype dt = dti ? NGL_HPC_F64 : NGL_HPC_F32;
                for (unsigned e = 0; e < 3; e++) {
                    size_t la = 0, lb = 0, lr = 0;
                    uint64_t va = 0, vb = 0, vr = 0, ma = 0, mb = 0, mr = 0;
                    uint8_t *a = encode(&t, dt, epss[e], (how){level, k, 0}, &la, &va, &ma);
                    uint8_t *b =
                        encode(&t, dt, epss[e], (how){level, HPC_LEAN_SCALAR, 0}, &lb, &vb, &mb);
                    /* level 1: also the ring layout, as level 2 keeps it */
                    uint8_t *r = level == NGL_HPC_LEVEL_FAST
                                     ? encode(&t, dt, epss[e], (how){level, HPC_LEAN_SCALAR, 1},
                                              &lr, &vr, &mr)
                                     : NULL;
                    int same = a && b && la == lb && !memcmp(a, b, la);
                    if (level == NGL_HPC_LEVEL_FAST) {
                        same = same && r && lr == la && !memcmp(r, a, la);
                    }
                    /* the kernel must really have coded most values of the
                     * full blocks after the first frame, and the scalar run
                     * none; level 1 must have used its model */
                    const uint64_t full = (FRAMES - 1) * 4 * 3 * 256;
                    int used = va > full / 2 && vb == 0 &&
                               (level == NGL_HPC_LEVEL_FASTEST ? ma == 0 : ma > FRAMES / 2);
                    printf("level %d %s %s eps %g: kernel %zu bytes (%llu of %llu values in the "
                           "kernel, model in %llu frames), scalar %zu bytes%s: %s\n",
                           level, hpc_lean_kernel_name(k), dti ? "f64" : "f32", epss[e], la,
                           (unsigned long long)va, (unsigned long long)full, (unsigned long long)ma,
                           lb, level == NGL_HPC_LEVEL_FAST ? ", ring layout too" : "",
                           same && used ? "identical" : "FAILED");
                    failed |= !same || !used;
                    free(a);
                    free(b);
                    free(r);
                }
            }
        }
    }
    if (!ran) {
        printf("SKIP: no vector kernel on this CPU\n");
        return 77;
    }
    return failed;
}
