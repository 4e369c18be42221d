/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hpc_codec.c -- the hpc trajectory codec on synthetic and adversarial
 * streams: the bound on every value, lossless bit-exactness, periodic wraps,
 * atoms appearing and disappearing in any order, huge and non-finite values,
 * relative eps, and rejection of every truncation and bit flip.
 */
#include "nangila_hpc.h"
#include "ngl_hash.h"

#include <malloc.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ------------------------------------------------------------ utilities */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    return ngl_hash_mix64(rng_state += 0x9E3779B97F4A7C15ull); /* splitmix64 */
}

static double urand(void)
{
    return (double)(rnd() >> 11) * 0x1p-53;
}

static double grand(void)
{
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* A stream of frames held in memory. */
typedef struct frames {
    size_t n;
    ngl_hpc_frame f[256];
    int64_t *ids[256];
    void *xyz[256];
} frames;

static void frames_free(frames *fs)
{
    for (size_t i = 0; i < fs->n; i++) {
        free(fs->ids[i]);
        free(fs->xyz[i]);
    }
    fs->n = 0;
}

static ngl_hpc_frame *frames_add(frames *fs, uint64_t natoms, ngl_hpc_dtype dt, int with_ids)
{
    assert_true(fs->n < 256);
    size_t i = fs->n++;
    fs->ids[i] = with_ids ? calloc(natoms + 1, sizeof(int64_t)) : NULL;
    fs->xyz[i] = calloc(3 * natoms + 1, dt == NGL_HPC_F32 ? 4 : 8);
    memset(&fs->f[i], 0, sizeof(fs->f[i]));
    fs->f[i].natoms = natoms;
    fs->f[i].ids = fs->ids[i];
    fs->f[i].xyz = fs->xyz[i];
    return &fs->f[i];
}

static void set_val(void *xyz, ngl_hpc_dtype dt, size_t i, double v)
{
    if (dt == NGL_HPC_F32) {
        ((float *)xyz)[i] = (float)v;
    } else {
        ((double *)xyz)[i] = v;
    }
}

static double get_val(const void *xyz, ngl_hpc_dtype dt, size_t i)
{
    return dt == NGL_HPC_F32 ? (double)((const float *)xyz)[i] : ((const double *)xyz)[i];
}

/* Encoded stream. */
typedef struct stream {
    uint8_t *buf;
    size_t len, cap;
    size_t rec_off[600];
    size_t rec_len[600];
    size_t nrec;
} stream;

static void encode_all(const ngl_hpc_params *p, const frames *fs, stream *s)
{
    ngl_hpc_encoder *enc = NULL;
    assert_int_equal(ngl_hpc_encoder_create(p, &enc), NGL_OK);
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < fs->n; i++) {
        size_t bound = ngl_hpc_encode_bound(fs->f[i].natoms);
        assert_true(bound > 0);
        if (s->len + bound > s->cap) {
            s->cap = 2 * (s->len + bound);
            s->buf = realloc(s->buf, s->cap);
            assert_non_null(s->buf);
        }
        size_t out = 0;
        ngl_status st = ngl_hpc_encoder_encode(enc, &fs->f[i], s->buf + s->len, bound, &out);
        if (st != NGL_OK) {
            fail_msg("encode frame %zu: %s (%s)", i, ngl_status_str(st),
                     ngl_hpc_encoder_error(enc));
        }
        /* split into records */
        size_t off = 0;
        while (off < out) {
            size_t rl;
            assert_int_equal(ngl_hpc_record_size(s->buf + s->len + off, out - off, &rl), NGL_OK);
            assert_true(s->nrec < 600);
            s->rec_off[s->nrec] = s->len + off;
            s->rec_len[s->nrec] = rl;
            s->nrec++;
            off += rl;
        }
        assert_int_equal(off, out);
        s->len += out;
    }
    ngl_hpc_encoder_destroy(enc);
}

/* Decode every record and check each frame against the input within eps
 * (or bit for bit when lossless); also checks ids and their order.
 * @return the largest error seen. */
static double decode_check(const stream *s, const frames *fs, ngl_hpc_dtype dt, double eps)
{
    ngl_hpc_decoder *dec = NULL;
    assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
    size_t fi = 0;
    double maxerr = 0;
    for (size_t r = 0; r < s->nrec; r++) {
        int got = 0;
        ngl_status st = ngl_hpc_decoder_decode(dec, s->buf + s->rec_off[r], s->rec_len[r], &got);
        if (st != NGL_OK) {
            fail_msg("decode record %zu: %s (%s)", r, ngl_status_str(st),
                     ngl_hpc_decoder_error(dec));
        }
        if (!got) {
            continue;
        }
        const ngl_hpc_frame *o = ngl_hpc_decoder_frame(dec);
        const ngl_hpc_frame *in = &fs->f[fi];
        assert_non_null(o);
        assert_int_equal(o->natoms, in->natoms);
        for (uint64_t k = 0; k < in->natoms; k++) {
            int64_t want = in->ids ? in->ids[k] : (int64_t)k;
            assert_int_equal(o->ids[k], want);
        }
        for (uint64_t i = 0; i < 3 * in->natoms; i++) {
            double a = get_val(in->xyz, dt, i), b = get_val(o->xyz, dt, i);
            if (eps == 0 || !isfinite(a)) {
                /* bit for bit */
                size_t w = dt == NGL_HPC_F32 ? 4 : 8;
                if (memcmp((const char *)in->xyz + i * w, (const char *)o->xyz + i * w, w)) {
                    fail_msg("frame %zu value %llu: %.17g decoded as %.17g (must be exact)", fi,
                             (unsigned long long)i, a, b);
                }
            } else {
                double e = fabs(a - b);
                if (!(e <= eps)) {
                    fail_msg("frame %zu value %llu: |%.17g - %.17g| = %g > eps %g", fi,
                             (unsigned long long)i, a, b, e, eps);
                }
                maxerr = e > maxerr ? e : maxerr;
            }
        }
        fi++;
    }
    assert_int_equal(fi, fs->n);
    ngl_hpc_decoder_destroy(dec);
    return maxerr;
}

static void stream_free(stream *s)
{
    free(s->buf);
    memset(s, 0, sizeof(*s));
}

/* An LJ-like system: atoms on a jittered lattice in a periodic box, moving
 * ballistically with small random kicks, wrapped into the box. */
static void make_md(frames *fs, ngl_hpc_dtype dt, unsigned cells, unsigned nframes, double dt_step,
                    int wrap)
{
    const unsigned n = 4 * cells * cells * cells;
    const double a = 1.6796, len = a * cells;
    double *pos = malloc(3 * n * sizeof(double)), *vel = malloc(3 * n * sizeof(double));
    static const double basis[4][3] = {{0, 0, 0}, {0.5, 0.5, 0}, {0.5, 0, 0.5}, {0, 0.5, 0.5}};
    unsigned k = 0;
    for (unsigned x = 0; x < cells; x++) {
        for (unsigned y = 0; y < cells; y++) {
            for (unsigned z = 0; z < cells; z++) {
                for (unsigned b = 0; b < 4; b++, k++) {
                    pos[3 * k] = (x + basis[b][0]) * a + 0.05 * grand();
                    pos[3 * k + 1] = (y + basis[b][1]) * a + 0.05 * grand();
                    pos[3 * k + 2] = (z + basis[b][2]) * a + 0.05 * grand();
                    for (int c = 0; c < 3; c++) {
                        vel[3 * k + c] = 1.2 * grand();
                    }
                }
            }
        }
    }
    for (unsigned t = 0; t < nframes; t++) {
        ngl_hpc_frame *f = frames_add(fs, n, dt, 1);
        f->has_box = 1;
        for (int c = 0; c < 3; c++) {
            f->box_lo[c] = 0;
            f->box_hi[c] = len;
            f->periodic[c] = (uint8_t)wrap;
        }
        for (unsigned i = 0; i < n; i++) {
            fs->ids[fs->n - 1][i] = i + 1;
            for (int c = 0; c < 3; c++) {
                double x = pos[3 * i + c];
                if (wrap) {
                    x -= len * floor(x / len);
                }
                set_val(fs->xyz[fs->n - 1], dt, 3 * i + c, x);
            }
        }
        for (unsigned i = 0; i < 3 * n; i++) {
            vel[i] += 0.3 * grand() * sqrt(dt_step);
            pos[i] += vel[i] * dt_step;
        }
    }
    free(pos);
    free(vel);
}

/* A real Lennard-Jones liquid (eps = sigma = m = 1, r_cut 2.5, velocity
 * Verlet, dt 0.005), fcc start at density 0.8442, dumped every @p every steps
 * after @p equil steps: pair forces the level-2 model can learn. O(N^2). */
static void make_lj(frames *fs, ngl_hpc_dtype dt, unsigned cells, unsigned nframes, unsigned every,
                    unsigned equil)
{
    const unsigned n = 4 * cells * cells * cells;
    const double a = cbrt(4.0 / 0.8442), len = a * cells, h = 0.005, rc2 = 6.25;
    double *x = malloc(3 * n * sizeof(double)), *v = malloc(3 * n * sizeof(double));
    double *f = malloc(3 * n * sizeof(double));
    static const double basis[4][3] = {{0, 0, 0}, {0.5, 0.5, 0}, {0.5, 0, 0.5}, {0, 0.5, 0.5}};
    unsigned k = 0;
    for (unsigned i = 0; i < cells; i++) {
        for (unsigned j = 0; j < cells; j++) {
            for (unsigned l = 0; l < cells; l++) {
                for (unsigned b = 0; b < 4; b++, k++) {
                    x[3 * k] = (i + basis[b][0]) * a;
                    x[3 * k + 1] = (j + basis[b][1]) * a;
                    x[3 * k + 2] = (l + basis[b][2]) * a;
                    for (int c = 0; c < 3; c++) {
                        v[3 * k + c] = sqrt(1.5) * grand();
                    }
                }
            }
        }
    }
    for (unsigned step = 0; step < equil + every * nframes; step++) {
        memset(f, 0, 3 * n * sizeof(double));
        for (unsigned i = 0; i < n; i++) {
            for (unsigned j = i + 1; j < n; j++) {
                double d[3], r2 = 0;
                for (int c = 0; c < 3; c++) {
                    d[c] = x[3 * i + c] - x[3 * j + c];
                    d[c] -= len * floor(d[c] / len + 0.5);
                    r2 += d[c] * d[c];
                }
                if (r2 < rc2) {
                    double ir2 = 1.0 / r2, ir6 = ir2 * ir2 * ir2;
                    double ff = (48.0 * ir6 * ir6 - 24.0 * ir6) * ir2;
                    for (int c = 0; c < 3; c++) {
                        f[3 * i + c] += ff * d[c];
                        f[3 * j + c] -= ff * d[c];
                    }
                }
            }
        }
        if (step > 0) {
            for (unsigned i = 0; i < 3 * n; i++) {
                v[i] += 0.5 * h * f[i];
            }
        }
        if (step >= equil && (step - equil) % every == 0) {
            frames_add(fs, n, dt, 1);
            for (unsigned i = 0; i < n; i++) {
                fs->ids[fs->n - 1][i] = i + 1;
                for (int c = 0; c < 3; c++) {
                    set_val(fs->xyz[fs->n - 1], dt, 3 * i + c,
                            x[3 * i + c] - len * floor(x[3 * i + c] / len));
                }
            }
            ngl_hpc_frame *fr = &fs->f[fs->n - 1];
            fr->has_box = 1;
            for (int c = 0; c < 3; c++) {
                fr->box_lo[c] = 0;
                fr->box_hi[c] = len;
                fr->periodic[c] = 1;
            }
        }
        for (unsigned i = 0; i < 3 * n; i++) {
            v[i] += 0.5 * h * f[i];
            x[i] += h * v[i];
        }
    }
    free(x);
    free(v);
    free(f);
}

/* ------------------------------------------------------------------ tests */
static void test_hpc_codec_md_bound(void **state)
{
    (void)state;
    const double epss[] = {1e-2, 1e-3, 1e-4};
    for (int dti = 0; dti < 2; dti++) {
        ngl_hpc_dtype dt = dti ? NGL_HPC_F64 : NGL_HPC_F32;
        for (int level = 0; level <= 3; level++) {
            for (size_t e = 0; e < 3; e++) {
                frames fs = {0};
                make_md(&fs, dt, 4, 24, 0.05, 1);
                ngl_hpc_params p;
                ngl_hpc_params_init(&p);
                p.dtype = dt;
                p.level = level;
                p.eps = epss[e];
                stream s;
                encode_all(&p, &fs, &s);
                double me = decode_check(&s, &fs, dt, epss[e]);
                assert_true(me > 0.3 * epss[e]); /* the lattice is really used */
                /* a real compression: far below 12 bytes per atom */
                assert_true(s.len < fs.n * fs.f[0].natoms * (dt ? 24 : 12) / 2);
                stream_free(&s);
                frames_free(&fs);
            }
        }
    }
}

static void test_hpc_codec_periodic_wrap(void **state)
{
    (void)state;
    /* fast atoms in a small box: many crossings per frame */
    frames fs = {0};
    make_md(&fs, NGL_HPC_F32, 3, 40, 0.4, 1);
    for (int level = 0; level <= 3; level++) {
        ngl_hpc_params p;
        ngl_hpc_params_init(&p);
        p.eps = 1e-3;
        p.level = level;
        ngl_hpc_encoder *enc = NULL;
        stream s;
        encode_all(&p, &fs, &s);
        decode_check(&s, &fs, NGL_HPC_F32, 1e-3);
        /* wraps are coded as wraps, not as exact values */
        assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_OK);
        uint8_t *buf = malloc(ngl_hpc_encode_bound(fs.f[0].natoms));
        for (size_t i = 0; i < fs.n; i++) {
            size_t out;
            assert_int_equal(ngl_hpc_encoder_encode(enc, &fs.f[i], buf,
                                                    ngl_hpc_encode_bound(fs.f[i].natoms), &out),
                             NGL_OK);
        }
        ngl_hpc_stats st;
        ngl_hpc_encoder_get_stats(enc, &st);
        assert_true(st.wraps > 100);
        assert_int_equal(st.exact, 0);
        free(buf);
        ngl_hpc_encoder_destroy(enc);
        stream_free(&s);
    }
    frames_free(&fs);
}

static void test_hpc_codec_force_term(void **state)
{
    (void)state;
    /* a real LJ liquid dumped every 5 steps in a box >= 3 r_cut: the level-2
     * model with the learned pair term is chosen, decodes bit-exactly (the
     * value CRC checks every frame) and beats the fast level */
    frames fs = {0};
    make_lj(&fs, NGL_HPC_F64, 4, 30, 5, 200);
    size_t len[2];
    for (int level = 1; level <= 2; level++) {
        ngl_hpc_params p;
        ngl_hpc_params_init(&p);
        p.dtype = NGL_HPC_F64;
        p.eps = 1e-3;
        p.level = level;
        stream s;
        encode_all(&p, &fs, &s);
        ngl_hpc_decoder *dec = NULL;
        assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
        for (size_t r = 0; r < s.nrec; r++) {
            int got;
            assert_int_equal(ngl_hpc_decoder_decode(dec, s.buf + s.rec_off[r], s.rec_len[r], &got),
                             NGL_OK);
        }
        ngl_hpc_stats st;
        ngl_hpc_decoder_get_stats(dec, &st);
        assert_true(st.model_frames > 10);
        if (level == 2) {
            assert_true(st.force_frames > 10);
        } else {
            assert_int_equal(st.force_frames, 0);
        }
        ngl_hpc_decoder_destroy(dec);
        decode_check(&s, &fs, NGL_HPC_F64, 1e-3);
        len[level - 1] = s.len;
        stream_free(&s);
    }
    assert_true(len[1] < len[0]);
    frames_free(&fs);
}

static void test_hpc_codec_cage(void **state)
{
    (void)state;
    /* a real LJ liquid dumped every 150 steps (0.75 tau apart: diffusive) in
     * a box of 3+ cells: level 3 codes most frames with the cage, decodes
     * bit-exactly (the value CRC checks every frame) and beats level 2. The
     * atoms come in a new order every frame, and a few skip one frame. The
     * same trajectory as float and as double. */
    frames lj = {0};
    make_lj(&lj, NGL_HPC_F64, 5, 12, 150, 300);
    for (int dti = 0; dti < 2; dti++) {
        const ngl_hpc_dtype dt = dti ? NGL_HPC_F64 : NGL_HPC_F32;
        frames fs = {0};
        for (size_t t = 0; t < lj.n; t++) {
            const uint64_t n = lj.f[t].natoms;
            uint64_t m = 0;
            ngl_hpc_frame *f = frames_add(&fs, n, dt, 1);
            for (uint64_t k = 0; k < n; k++) {
                const uint64_t src = (k * 173 + 29 * t) % n; /* 173 is prime to 500 */
                if (t == 5 && src % 37 == 0) {
                    continue;
                }
                fs.ids[t][m] = lj.ids[t][src];
                for (int c = 0; c < 3; c++) {
                    set_val(fs.xyz[t], dt, 3 * m + (uint64_t)c,
                            get_val(lj.xyz[t], NGL_HPC_F64, 3 * src + (uint64_t)c));
                }
                m++;
            }
            f->natoms = m;
            f->has_box = 1;
            for (int c = 0; c < 3; c++) {
                f->box_lo[c] = lj.f[t].box_lo[c];
                f->box_hi[c] = lj.f[t].box_hi[c];
                f->periodic[c] = 1;
            }
        }
        size_t len[2];
        for (int level = 2; level <= 3; level++) {
            ngl_hpc_params p;
            ngl_hpc_params_init(&p);
            p.dtype = dt;
            p.eps = 1e-3;
            p.level = level;
            stream s;
            encode_all(&p, &fs, &s);
            ngl_hpc_decoder *dec = NULL;
            assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
            for (size_t r = 0; r < s.nrec; r++) {
                int got;
                assert_int_equal(
                    ngl_hpc_decoder_decode(dec, s.buf + s.rec_off[r], s.rec_len[r], &got), NGL_OK);
            }
            ngl_hpc_stats st;
            ngl_hpc_decoder_get_stats(dec, &st);
            if (level == 3) {
                assert_true(st.cage_frames >= 6);
            } else {
                assert_int_equal(st.cage_frames, 0);
            }
            ngl_hpc_decoder_destroy(dec);
            decode_check(&s, &fs, dt, 1e-3);
            len[level - 2] = s.len;
            stream_free(&s);
        }
        assert_true(len[1] < len[0]);
        frames_free(&fs);
    }
    frames_free(&lj);
}

static void test_hpc_codec_varying_atoms(void **state)
{
    (void)state;
    /* atoms appear and disappear; each frame lists them in a new random order;
     * ids are arbitrary int64 (negative, huge) */
    const unsigned pool = 300, nframes = 30;
    int64_t idv[300];
    double pos[300][3];
    for (unsigned i = 0; i < pool; i++) {
        idv[i] = (int64_t)(rnd() >> 1) * ((i % 3) ? 1 : -1);
        for (int c = 0; c < 3; c++) {
            pos[i][c] = 20 * urand();
        }
    }
    idv[0] = INT64_MIN;
    idv[1] = INT64_MAX;
    idv[2] = 0;
    for (int dti = 0; dti < 2; dti++) {
        ngl_hpc_dtype dt = dti ? NGL_HPC_F64 : NGL_HPC_F32;
        frames fs = {0};
        uint8_t present[300];
        for (unsigned i = 0; i < pool; i++) {
            present[i] = i < 200;
        }
        for (unsigned t = 0; t < nframes; t++) {
            for (unsigned i = 0; i < pool; i++) {
                if (urand() < 0.05) {
                    present[i] ^= 1;
                }
                for (int c = 0; c < 3; c++) {
                    pos[i][c] += 0.01 * grand();
                }
            }
            unsigned list[300], n = 0;
            for (unsigned i = 0; i < pool; i++) {
                if (present[i]) {
                    list[n++] = i;
                }
            }
            if (t % 3 != 1) { /* keep the order some frames, shuffle others */
                for (unsigned i = n; i > 1; i--) {
                    unsigned j = (unsigned)(rnd() % i);
                    unsigned tmp = list[i - 1];
                    list[i - 1] = list[j];
                    list[j] = tmp;
                }
            }
            if (t == 7) {
                n = 0; /* an empty frame */
            }
            ngl_hpc_frame *f = frames_add(&fs, n, dt, 1);
            for (unsigned k = 0; k < n; k++) {
                fs.ids[fs.n - 1][k] = idv[list[k]];
                for (int c = 0; c < 3; c++) {
                    set_val(fs.xyz[fs.n - 1], dt, 3 * k + c, pos[list[k]][c]);
                }
            }
            (void)f;
        }
        for (int level = 0; level <= 3; level++) {
            ngl_hpc_params p;
            ngl_hpc_params_init(&p);
            p.dtype = dt;
            p.level = level;
            p.eps = 5e-4;
            stream s;
            encode_all(&p, &fs, &s);
            decode_check(&s, &fs, dt, 5e-4);
            stream_free(&s);
        }
        frames_free(&fs);
    }
}

static void test_hpc_codec_identity_ids(void **state)
{
    (void)state;
    /* ids == NULL: atoms are identified by position; counts change */
    frames fs = {0};
    for (unsigned t = 0; t < 12; t++) {
        unsigned n = 50 + 10 * (t % 4);
        ngl_hpc_frame *f = frames_add(&fs, n, NGL_HPC_F32, 0);
        for (unsigned i = 0; i < 3 * n; i++) {
            set_val(fs.xyz[fs.n - 1], NGL_HPC_F32, i, 3.0 * sin(0.1 * t + i));
        }
        (void)f;
    }
    for (int level = 0; level <= 3; level++) {
        ngl_hpc_params p;
        ngl_hpc_params_init(&p);
        p.eps = 1e-3;
        p.level = level;
        stream s;
        encode_all(&p, &fs, &s);
        decode_check(&s, &fs, NGL_HPC_F32, 1e-3);
        stream_free(&s);
    }
    frames_free(&fs);
}

static void test_hpc_codec_constant(void **state)
{
    (void)state;
    for (int dti = 0; dti < 2; dti++) {
        ngl_hpc_dtype dt = dti ? NGL_HPC_F64 : NGL_HPC_F32;
        const double consts[] = {0.0, -0.0, 7.25, -1234.5};
        for (size_t c = 0; c < 4; c++) {
            frames fs = {0};
            for (unsigned t = 0; t < 20; t++) {
                frames_add(&fs, 500, dt, 1);
                for (unsigned i = 0; i < 500; i++) {
                    fs.ids[fs.n - 1][i] = i;
                }
                for (unsigned i = 0; i < 1500; i++) {
                    set_val(fs.xyz[fs.n - 1], dt, i, consts[c]);
                }
            }
            for (int run = 0; run < 4; run++) {
                const int lossless = run % 2;
                ngl_hpc_params p;
                ngl_hpc_params_init(&p);
                p.level = run >= 2 ? NGL_HPC_LEVEL_FASTEST : NGL_HPC_LEVEL_DEFAULT;
                p.dtype = dt;
                p.eps = lossless ? 0 : 1e-3;
                stream s;
                encode_all(&p, &fs, &s);
                decode_check(&s, &fs, dt, p.eps);
                /* constant data costs next to nothing after the first frame */
                assert_true(s.len < 2000 + 20 * 200);
                stream_free(&s);
            }
            frames_free(&fs);
        }
    }
}

static void test_hpc_codec_huge_and_nonfinite(void **state)
{
    (void)state;
    for (int dti = 0; dti < 2; dti++) {
        ngl_hpc_dtype dt = dti ? NGL_HPC_F64 : NGL_HPC_F32;
        const double big = dti ? 1e300 : 1e30;
        frames fs = {0};
        for (unsigned t = 0; t < 10; t++) {
            frames_add(&fs, 64, dt, 1);
            for (unsigned i = 0; i < 64; i++) {
                fs.ids[fs.n - 1][i] = i;
            }
            for (unsigned i = 0; i < 192; i++) {
                double v = 10.0 * sin(0.01 * t + i);
                switch (i % 8) {
                case 0: v = big * (1 + 0.1 * t); break;
                case 1: v = -big; break;
                case 2: v = NAN; break;
                case 3: v = (t % 2) ? INFINITY : -INFINITY; break;
                case 4: v = 1e-3 * v; break;
                case 5: v = (t == 5) ? 1e20 : v; break; /* a single jump */
                default: break;
                }
                set_val(fs.xyz[fs.n - 1], dt, i, v);
            }
        }
        for (int level = 0; level <= 3; level++) {
            ngl_hpc_params p;
            ngl_hpc_params_init(&p);
            p.dtype = dt;
            p.level = level;
            p.eps = 1e-2;
            stream s;
            encode_all(&p, &fs, &s);
            decode_check(&s, &fs, dt, 1e-2);
            stream_free(&s);
            p.eps = 0;
            encode_all(&p, &fs, &s);
            decode_check(&s, &fs, dt, 0);
            stream_free(&s);
        }
        frames_free(&fs);
    }
}

static void test_hpc_codec_lossless_bits(void **state)
{
    (void)state;
    /* eps = 0: every bit pattern comes back, NaN payloads and -0.0 included */
    for (int dti = 0; dti < 2; dti++) {
        ngl_hpc_dtype dt = dti ? NGL_HPC_F64 : NGL_HPC_F32;
        frames fs = {0};
        for (unsigned t = 0; t < 8; t++) {
            frames_add(&fs, 100, dt, 1);
            for (unsigned i = 0; i < 100; i++) {
                fs.ids[fs.n - 1][i] = 1000 - i;
            }
            for (unsigned i = 0; i < 300; i++) {
                uint64_t r = rnd();
                if (i < 150) {
                    /* random bit patterns: NaNs, denormals, everything */
                    if (dt == NGL_HPC_F32) {
                        uint32_t u = (uint32_t)r;
                        memcpy((float *)fs.xyz[fs.n - 1] + i, &u, 4);
                    } else {
                        memcpy((double *)fs.xyz[fs.n - 1] + i, &r, 8);
                    }
                } else {
                    set_val(fs.xyz[fs.n - 1], dt, i, 5.0 + 0.001 * t + 0.1 * i);
                }
            }
        }
        ngl_hpc_params p;
        ngl_hpc_params_init(&p);
        p.dtype = dt;
        p.eps = 0;
        for (int level = 0; level <= 3; level++) {
            p.level = level;
            stream s;
            encode_all(&p, &fs, &s);
            decode_check(&s, &fs, dt, 0);
            stream_free(&s);
        }
        frames_free(&fs);
    }
}

static void test_hpc_codec_tiny_and_huge_eps(void **state)
{
    (void)state;
    frames fs = {0};
    make_md(&fs, NGL_HPC_F32, 3, 8, 0.05, 1);
    const double epss[] = {1e-300, 1e-12, 1e-7, 1e6, 1e300};
    for (size_t e = 0; e < 5; e++) {
        ngl_hpc_params p;
        ngl_hpc_params_init(&p);
        p.eps = epss[e];
        p.level = (int)(e % 4); /* every level sees some of them */
        stream s;
        encode_all(&p, &fs, &s);
        decode_check(&s, &fs, NGL_HPC_F32, epss[e]);
        stream_free(&s);
    }
    frames_free(&fs);
}

static void test_hpc_codec_relative_eps(void **state)
{
    (void)state;
    frames fs = {0};
    make_md(&fs, NGL_HPC_F64, 3, 10, 0.05, 1);
    double mn = INFINITY, mx = -INFINITY;
    for (unsigned i = 0; i < 3 * fs.f[0].natoms; i++) {
        double v = get_val(fs.xyz[0], NGL_HPC_F64, i);
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
    }
    ngl_hpc_params p;
    ngl_hpc_params_init(&p);
    p.dtype = NGL_HPC_F64;
    p.rel = 1e-3;
    p.eps = 0;
    ngl_hpc_encoder *enc = NULL;
    assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_OK);
    assert_true(ngl_hpc_encoder_eps(enc) < 0); /* unknown before the first frame */
    uint8_t *buf = malloc(ngl_hpc_encode_bound(fs.f[0].natoms));
    size_t out;
    assert_int_equal(
        ngl_hpc_encoder_encode(enc, &fs.f[0], buf, ngl_hpc_encode_bound(fs.f[0].natoms), &out),
        NGL_OK);
    double want = 1e-3 * (mx - mn);
    assert_true(fabs(ngl_hpc_encoder_eps(enc) - want) <= 1e-12 * want);
    /* the decoder learns the same eps from the stream */
    ngl_hpc_decoder *dec = NULL;
    assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
    size_t rl;
    int got;
    assert_int_equal(ngl_hpc_record_size(buf, out, &rl), NGL_OK);
    assert_int_equal(ngl_hpc_decoder_decode(dec, buf, rl, &got), NGL_OK);
    ngl_hpc_params dp;
    assert_int_equal(ngl_hpc_decoder_params(dec, &dp), NGL_OK);
    assert_true(dp.eps == ngl_hpc_encoder_eps(enc));
    assert_true(dp.rel == 1e-3);
    ngl_hpc_decoder_destroy(dec);
    ngl_hpc_encoder_destroy(enc);
    free(buf);
    for (int level = 0; level <= 3; level++) {
        p.level = level;
        stream s;
        encode_all(&p, &fs, &s);
        decode_check(&s, &fs, NGL_HPC_F64, want);
        stream_free(&s);
    }
    frames_free(&fs);
}

static void test_hpc_codec_jumps(void **state)
{
    (void)state;
    /* atoms teleport at random frames by random distances (up to 1e6) */
    frames fs = {0};
    double pos[200][3];
    for (unsigned i = 0; i < 200; i++) {
        for (int c = 0; c < 3; c++) {
            pos[i][c] = 10 * urand();
        }
    }
    for (unsigned t = 0; t < 30; t++) {
        frames_add(&fs, 200, NGL_HPC_F64, 1);
        for (unsigned i = 0; i < 200; i++) {
            fs.ids[fs.n - 1][i] = i;
            for (int c = 0; c < 3; c++) {
                if (urand() < 0.02) {
                    pos[i][c] += pow(10.0, 6 * urand()) * (urand() < 0.5 ? -1 : 1);
                } else {
                    pos[i][c] += 0.003;
                }
                set_val(fs.xyz[fs.n - 1], NGL_HPC_F64, 3 * i + c, pos[i][c]);
            }
        }
    }
    for (int level = 0; level <= 3; level++) {
        ngl_hpc_params p;
        ngl_hpc_params_init(&p);
        p.dtype = NGL_HPC_F64;
        p.eps = 1e-3;
        p.level = level;
        stream s;
        encode_all(&p, &fs, &s);
        decode_check(&s, &fs, NGL_HPC_F64, 1e-3);
        stream_free(&s);
    }
    frames_free(&fs);
}

/* A small stream for the corruption tests. */
static void small_stream(frames *fs, stream *s, int level)
{
    make_md(fs, NGL_HPC_F32, 2, 10, 0.05, 1);
    ngl_hpc_params p;
    ngl_hpc_params_init(&p);
    p.eps = 1e-3;
    p.level = level;
    encode_all(&p, fs, s);
}

static void test_hpc_codec_truncation(void **state)
{
    (void)state;
    frames fs = {0};
    stream s;
    small_stream(&fs, &s, 1);
    /* every record cut at every length is rejected and changes nothing: the
     * full record decodes afterwards and the stream ends right */
    ngl_hpc_decoder *dec = NULL;
    assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
    for (size_t r = 0; r < s.nrec; r++) {
        for (size_t cut = 0; cut < s.rec_len[r]; cut++) {
            int got = 0;
            ngl_status st = ngl_hpc_decoder_decode(dec, s.buf + s.rec_off[r], cut, &got);
            assert_int_not_equal(st, NGL_OK);
            assert_int_equal(got, 0);
        }
        int got;
        assert_int_equal(ngl_hpc_decoder_decode(dec, s.buf + s.rec_off[r], s.rec_len[r], &got),
                         NGL_OK);
    }
    ngl_hpc_decoder_destroy(dec);
    decode_check(&s, &fs, NGL_HPC_F32, 1e-3);
    /* a record followed by extra bytes is rejected too */
    assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
    int got;
    assert_int_equal(ngl_hpc_decoder_decode(dec, s.buf, s.rec_len[0] + 1, &got),
                     NGL_ERR_BAD_LENGTH);
    ngl_hpc_decoder_destroy(dec);
    stream_free(&s);
    frames_free(&fs);
}

static void test_hpc_codec_bitflips(void **state)
{
    (void)state;
    for (int level = 0; level <= 3; level++) {
        frames fs = {0};
        stream s;
        small_stream(&fs, &s, level);
        /* flip every bit of the first three records (stream header, the
         * spatial frame, a temporal frame) and of the last one */
        size_t recs[4] = {0, 1, 2, s.nrec - 1};
        for (size_t ri = 0; ri < 4; ri++) {
            size_t r = recs[ri];
            for (size_t bit = 0; bit < 8 * s.rec_len[r]; bit++) {
                ngl_hpc_decoder *dec = NULL;
                assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
                int got;
                for (size_t q = 0; q < r; q++) {
                    assert_int_equal(
                        ngl_hpc_decoder_decode(dec, s.buf + s.rec_off[q], s.rec_len[q], &got),
                        NGL_OK);
                }
                uint8_t *rec = malloc(s.rec_len[r]);
                memcpy(rec, s.buf + s.rec_off[r], s.rec_len[r]);
                rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                size_t rl;
                ngl_status st = ngl_hpc_record_size(rec, s.rec_len[r], &rl);
                if (st == NGL_OK) {
                    st = ngl_hpc_decoder_decode(dec, rec, s.rec_len[r], &got);
                }
                if (st == NGL_OK) {
                    fail_msg("record %zu: flipped bit %zu was accepted", r, bit);
                }
                free(rec);
                ngl_hpc_decoder_destroy(dec);
            }
        }
        stream_free(&s);
        frames_free(&fs);
    }
}

static void test_hpc_codec_sequence_errors(void **state)
{
    (void)state;
    frames fs = {0};
    stream s;
    small_stream(&fs, &s, 1);
    ngl_hpc_decoder *dec = NULL;
    int got;
    /* a frame before the stream header */
    assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
    assert_int_equal(ngl_hpc_decoder_decode(dec, s.buf + s.rec_off[1], s.rec_len[1], &got),
                     NGL_ERR_BAD_SECTION);
    /* a skipped frame */
    assert_int_equal(ngl_hpc_decoder_decode(dec, s.buf, s.rec_len[0], &got), NGL_OK);
    assert_int_equal(ngl_hpc_decoder_decode(dec, s.buf + s.rec_off[2], s.rec_len[2], &got),
                     NGL_ERR_STEP_MISMATCH);
    /* a repeated stream header */
    assert_int_equal(ngl_hpc_decoder_decode(dec, s.buf, s.rec_len[0], &got), NGL_ERR_BAD_SECTION);
    /* in order it works */
    assert_int_equal(ngl_hpc_decoder_decode(dec, s.buf + s.rec_off[1], s.rec_len[1], &got), NGL_OK);
    assert_int_equal(got, 1);
    /* not a record */
    uint8_t junk[32] = "this is not an hpc record at all";
    assert_int_equal(ngl_hpc_decoder_decode(dec, junk, sizeof(junk), &got), NGL_ERR_BAD_MAGIC);
    ngl_hpc_decoder_destroy(dec);
    /* a crafted huge atom count is refused by the decoder's limit */
    assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
    assert_int_equal(ngl_hpc_decoder_set_max_atoms(dec, 10), NGL_OK);
    assert_int_equal(ngl_hpc_decoder_decode(dec, s.buf, s.rec_len[0], &got), NGL_OK);
    assert_int_equal(ngl_hpc_decoder_decode(dec, s.buf + s.rec_off[1], s.rec_len[1], &got),
                     NGL_ERR_BAD_LENGTH);
    ngl_hpc_decoder_destroy(dec);
    stream_free(&s);
    frames_free(&fs);
}

static void test_hpc_codec_api_errors(void **state)
{
    (void)state;
    ngl_hpc_params p;
    ngl_hpc_encoder *enc = NULL;
    ngl_hpc_params_init(&p);
    p.eps = -1;
    assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_ERR_INVALID_ARG);
    assert_null(enc);
    p.eps = NAN;
    assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_ERR_INVALID_ARG);
    p.eps = INFINITY;
    assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_ERR_INVALID_ARG);
    ngl_hpc_params_init(&p);
    p.level = 7;
    assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_ERR_INVALID_ARG);
    p.level = -1;
    assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_ERR_INVALID_ARG);
    ngl_hpc_params_init(&p);
    p.dtype = (ngl_hpc_dtype)9;
    assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_hpc_encoder_create(NULL, &enc), NGL_ERR_INVALID_ARG);
    ngl_hpc_encoder_destroy(NULL);
    ngl_hpc_decoder_destroy(NULL);

    ngl_hpc_params_init(&p);
    assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_OK);
    int64_t ids[3] = {5, 6, 5};
    float xyz[9] = {0};
    ngl_hpc_frame f = {.natoms = 3, .ids = ids, .xyz = xyz};
    uint8_t buf[4096];
    size_t out;
    assert_int_equal(ngl_hpc_encoder_encode(enc, &f, buf, sizeof(buf), &out), NGL_ERR_INVALID_ARG);
    assert_non_null(strstr(ngl_hpc_encoder_error(enc), "duplicate"));
    ids[2] = 7;
    f.has_box = 1;
    f.box_lo[0] = 1;
    f.box_hi[0] = 0; /* lo > hi */
    assert_int_equal(ngl_hpc_encoder_encode(enc, &f, buf, sizeof(buf), &out), NGL_ERR_INVALID_ARG);
    f.has_box = 0;
    assert_int_equal(ngl_hpc_encoder_encode(enc, &f, buf, 10, &out), NGL_ERR_DST_TOO_SMALL);
    f.xyz = NULL;
    assert_int_equal(ngl_hpc_encoder_encode(enc, &f, buf, sizeof(buf), &out), NGL_ERR_INVALID_ARG);
    f.xyz = xyz;
    f.natoms = NGL_HPC_MAX_ATOMS + 1;
    assert_int_equal(ngl_hpc_encoder_encode(enc, &f, buf, sizeof(buf), &out), NGL_ERR_INVALID_ARG);
    /* after rejected calls the encoder still works and nothing was emitted */
    f.natoms = 3;
    assert_int_equal(ngl_hpc_encoder_encode(enc, &f, buf, sizeof(buf), &out), NGL_OK);
    ngl_hpc_stats st;
    ngl_hpc_encoder_get_stats(enc, &st);
    assert_int_equal(st.frames, 1);
    ngl_hpc_encoder_destroy(enc);
    assert_int_equal(ngl_hpc_encode_bound(NGL_HPC_MAX_ATOMS + 1), 0);
}

static void test_hpc_codec_memory_flat(void **state)
{
    (void)state;
    /* State is per atom, not per frame: after the first frames, encoding and
     * decoding more frames does not grow the heap. */
    const unsigned n = 500;
    double pos[500][3];
    int64_t ids[500];
    float xyz[1500];
    for (unsigned i = 0; i < n; i++) {
        ids[i] = 7 * i + 3;
        for (int c = 0; c < 3; c++) {
            pos[i][c] = 8 * urand();
        }
    }
    for (int level = 0; level <= 3; level++) {
        ngl_hpc_params p;
        ngl_hpc_params_init(&p);
        p.eps = 1e-3;
        p.level = level;
        ngl_hpc_encoder *enc = NULL;
        ngl_hpc_decoder *dec = NULL;
        assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_OK);
        assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
        size_t cap = ngl_hpc_encode_bound(n);
        uint8_t *buf = malloc(cap);
        size_t heap_after_warmup = 0;
        for (unsigned t = 0; t < 600; t++) {
            for (unsigned i = 0; i < n; i++) {
                for (int c = 0; c < 3; c++) {
                    pos[i][c] += 0.002 * grand();
                    xyz[3 * i + c] = (float)(pos[i][c] - 8 * floor(pos[i][c] / 8));
                }
            }
            ngl_hpc_frame f = {.natoms = n,
                               .ids = ids,
                               .xyz = xyz,
                               .has_box = 1,
                               .box_hi = {8, 8, 8},
                               .periodic = {1, 1, 1}};
            size_t len;
            assert_int_equal(ngl_hpc_encoder_encode(enc, &f, buf, cap, &len), NGL_OK);
            size_t off = 0;
            while (off < len) {
                size_t rl;
                int got;
                assert_int_equal(ngl_hpc_record_size(buf + off, len - off, &rl), NGL_OK);
                assert_int_equal(ngl_hpc_decoder_decode(dec, buf + off, rl, &got), NGL_OK);
                off += rl;
            }
            if (t == 50) {
                heap_after_warmup = mallinfo2().uordblks;
            }
        }
        size_t heap_end = mallinfo2().uordblks;
        assert_true(heap_end <= heap_after_warmup);
        free(buf);
        ngl_hpc_encoder_destroy(enc);
        ngl_hpc_decoder_destroy(dec);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hpc_codec_md_bound),
        cmocka_unit_test(test_hpc_codec_periodic_wrap),
        cmocka_unit_test(test_hpc_codec_force_term),
        cmocka_unit_test(test_hpc_codec_cage),
        cmocka_unit_test(test_hpc_codec_varying_atoms),
        cmocka_unit_test(test_hpc_codec_identity_ids),
        cmocka_unit_test(test_hpc_codec_constant),
        cmocka_unit_test(test_hpc_codec_huge_and_nonfinite),
        cmocka_unit_test(test_hpc_codec_lossless_bits),
        cmocka_unit_test(test_hpc_codec_tiny_and_huge_eps),
        cmocka_unit_test(test_hpc_codec_relative_eps),
        cmocka_unit_test(test_hpc_codec_jumps),
        cmocka_unit_test(test_hpc_codec_truncation),
        cmocka_unit_test(test_hpc_codec_bitflips),
        cmocka_unit_test(test_hpc_codec_sequence_errors),
        cmocka_unit_test(test_hpc_codec_api_errors),
        cmocka_unit_test(test_hpc_codec_memory_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
