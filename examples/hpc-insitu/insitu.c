/* SPDX-License-Identifier: Apache-2.0 */
/*
 * insitu.c -- compress a trajectory as it is produced, through the installed
 * libnangila-hpc (pkg-config nangila-hpc), then read it back and check the
 * bound. The "simulation" is a toy: atoms taking small correlated steps.
 *
 *   cc insitu.c $(pkg-config --cflags --libs nangila-hpc) -o insitu
 *   ./insitu traj.nhp [frames [atoms]]
 *
 * The file is the codec stream of hpc/FORMAT.md: records back to back.
 */
#include <nangila_hpc.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned long long rng = 88172645463325252ull;

static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1p-53;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT [frames [atoms]]\n", argv[0]);
        return 2;
    }
    const unsigned long frames = argc > 2 ? strtoul(argv[2], NULL, 10) : 50;
    const unsigned long atoms = argc > 3 ? strtoul(argv[3], NULL, 10) : 2000;
    const double L = 20.0, eps = 1e-3;
    int rc = 1;
    float *x = malloc(atoms * 3 * sizeof(float));
    float *orig = malloc(frames * atoms * 3 * sizeof(float));
    double *v = malloc(atoms * 3 * sizeof(double));
    size_t cap = ngl_hpc_encode_bound(atoms);
    unsigned char *buf = malloc(cap);
    ngl_hpc_encoder *enc = NULL;
    ngl_hpc_decoder *dec = NULL;
    FILE *out = NULL;
    if (x == NULL || orig == NULL || v == NULL || buf == NULL) {
        goto done;
    }

    ngl_hpc_params p;
    ngl_hpc_params_init(&p);
    p.dtype = NGL_HPC_F32;
    p.eps = eps;
    p.level = NGL_HPC_LEVEL_FASTEST; /* in situ: speed first */
    if (ngl_hpc_encoder_create(&p, &enc) != NGL_OK || (out = fopen(argv[1], "wb")) == NULL) {
        goto done;
    }
    for (unsigned long i = 0; i < atoms * 3; i++) {
        x[i] = (float)(L * urand());
        v[i] = 0.02 * (urand() - 0.5);
    }
    size_t total = 0;
    for (unsigned long f = 0; f < frames; f++) {
        for (unsigned long i = 0; i < atoms * 3; i++) { /* one "MD step" */
            v[i] += 0.002 * (urand() - 0.5);
            x[i] = (float)(x[i] + v[i]);
            orig[f * atoms * 3 + i] = x[i];
        }
        ngl_hpc_frame fr = {.natoms = atoms, .xyz = x};
        size_t len;
        ngl_status st = ngl_hpc_encoder_encode(enc, &fr, buf, cap, &len);
        if (st != NGL_OK) {
            fprintf(stderr, "encode: %s\n", ngl_hpc_encoder_error(enc));
            goto done;
        }
        if (fwrite(buf, 1, len, out) != len) {
            goto done;
        }
        total += len;
    }
    fclose(out);
    out = NULL;

    /* Read it back, one record at a time. */
    FILE *in = fopen(argv[1], "rb");
    if (in == NULL || ngl_hpc_decoder_create(&dec) != NGL_OK) {
        if (in != NULL) {
            fclose(in);
        }
        goto done;
    }
    unsigned long got_frames = 0;
    double max_err = 0;
    unsigned char head[8];
    while (fread(head, 1, 8, in) == 8) {
        size_t rec;
        if (ngl_hpc_record_size(head, 8, &rec) != NGL_OK || rec > cap) {
            break;
        }
        for (int i = 0; i < 8; i++) {
            buf[i] = head[i];
        }
        int got = 0;
        if (fread(buf + 8, 1, rec - 8, in) != rec - 8 ||
            ngl_hpc_decoder_decode(dec, buf, rec, &got) != NGL_OK) {
            break;
        }
        if (got) {
            const ngl_hpc_frame *fr = ngl_hpc_decoder_frame(dec);
            const float *y = fr->xyz;
            for (unsigned long i = 0; i < atoms * 3 && got_frames < frames; i++) {
                double e = fabs((double)y[i] - (double)orig[got_frames * atoms * 3 + i]);
                max_err = e > max_err ? e : max_err;
            }
            got_frames++;
        }
    }
    fclose(in);
    size_t raw = frames * atoms * 3 * sizeof(float);
    printf("insitu: %lu frames x %lu atoms, %zu bytes -> %zu (%.2fx vs float32), "
           "max error %.3g (eps %g)\n",
           frames, atoms, raw, total, (double)raw / (double)total, max_err, eps);
    rc = (got_frames == frames && max_err <= eps) ? 0 : 1;
done:
    if (out != NULL) {
        fclose(out);
    }
    ngl_hpc_decoder_destroy(dec);
    ngl_hpc_encoder_destroy(enc);
    free(buf);
    free(v);
    free(orig);
    free(x);
    return rc;
}
