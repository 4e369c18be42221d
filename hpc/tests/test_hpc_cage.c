/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hpc_cage.c -- white box: the cage predictor (hpc_cage.c) against a
 * brute-force reference written from FORMAT.md §6.8 (every atom a candidate,
 * sums in another order), with the AVX2 energy and without, atoms inserted
 * in two orders (so the grid's slabs and overflow lists differ), periodic and
 * free axes and atoms slightly outside the box; a crowded cage gives no
 * prediction. Then the codec: a level-3 stream with cage frames is the same
 * bytes with and without AVX2, decodes bit-exactly either way, and a decoder
 * rejects a cage frame whose lambda or table is bad. NaN, Inf and a huge
 * value in cage frames come back bit for bit.
 */
#include "hpc_cage.h"
#include "hpc_lean.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

static uint64_t rs = 7;

static double urand(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) * 0x1p-53;
}

static double grand(void)
{
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* A table shaped like -ln g(r) of a liquid: a wall, a well, a bump, 0 at rc. */
static void liquid_table(hpc_cage_params *p, double rc2)
{
    p->rc2 = rc2;
    p->iters = 8;
    p->lambda = 1.1f;
    for (unsigned k = 0; k <= HPC_CAGE_KNOTS; k++) {
        double r = sqrt((double)k / HPC_CAGE_KNOTS); /* units of rc */
        double w = r < 0.5 ? 40.0 * (0.5 - r) + 2.0
                           : -1.5 * exp(-60 * (r - 0.62) * (r - 0.62)) +
                                 0.4 * exp(-40 * (r - 0.9) * (r - 0.9));
        p->w[k] = (float)(k == HPC_CAGE_KNOTS ? 0.0 : w);
        p->v[k] =
            (float)(k == HPC_CAGE_KNOTS ? 0.0 : 0.3 * w - 0.1); /* softer, for old positions */
    }
}

/* ------------------------------------------------ reference (FORMAT §6.8) */
typedef struct ref_world {
    const double *old_pos, *new_pos; /* 3 per atom */
    const uint8_t *old_valid, *new_known;
    const uint32_t *later; /* previous atom -> index in this frame */
    size_t nprev, n;
    double len[3];
    int per[3];
    double rc;
    hpc_cage_params p;
} ref_world;

static double ref_fixed(double v, double s)
{
    return (v * s + 0x1.8p52) - 0x1.8p52;
}

/* Over neighbours u[0..m): those before @p split are at new positions
 * (table w), the rest at old ones (table v). */
static double ref_energy(const ref_world *w, const double (*u)[3], size_t m, size_t split,
                         const double x[3], double g[3])
{
    double e = 0, gs[3] = {0, 0, 0};
    for (size_t jj = m; jj-- > 0;) { /* backwards: the sums are exact in any order */
        double d[3] = {x[0] - u[jj][0], x[1] - u[jj][1], x[2] - u[jj][2]};
        double r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        if (!(r2 < 1.0)) {
            continue;
        }
        double t = r2 * 64.0;
        int i = (int)t;
        if (i > 63) {
            i = 63;
        }
        const float *tab = jj < split ? w->p.w : w->p.v;
        double w0 = tab[i], dw = (double)tab[i + 1] - (double)tab[i];
        e += ref_fixed(w0 + (t - (double)i) * dw, 0x1p30);
        double sv = 128.0 * dw;
        for (int a = 0; a < 3; a++) {
            gs[a] += ref_fixed(sv * d[a], 0x1p20);
        }
    }
    for (int a = 0; a < 3; a++) {
        g[a] = gs[a] * 0x1p-20;
    }
    return e;
}

/* Displacement of atom k from origin o; -1 if crowded. */
static int ref_descend(const ref_world *w, size_t k, const double o[3], double disp[3])
{
    static double u[1 << 16][3];
    size_t m = 0, split = 0;
    const double inv = 1.0 / w->rc;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            split = m;
        }
        size_t cnt = pass ? w->nprev : k;
        for (size_t j = 0; j < cnt; j++) {
            const double *y;
            if (pass == 0) {
                if (!w->new_known[j]) {
                    continue;
                }
                y = w->new_pos + 3 * j;
            } else {
                if (!w->old_valid[j] || w->later[j] == UINT32_MAX || w->later[j] <= k) {
                    continue;
                }
                y = w->old_pos + 3 * j;
            }
            double v[3];
            for (int a = 0; a < 3; a++) {
                double d = y[a] - o[a];
                if (w->per[a]) {
                    d = d > 0.5 * w->len[a] ? d - w->len[a]
                                            : (d < -0.5 * w->len[a] ? d + w->len[a] : d);
                }
                v[a] = d * inv;
            }
            if (v[0] * v[0] + v[1] * v[1] + v[2] * v[2] < 1.3 * 1.3) {
                u[m][0] = v[0];
                u[m][1] = v[1];
                u[m][2] = v[2];
                m++;
            }
        }
    }
    if (m > HPC_CAGE_MAX_NB - 4) {
        return -1;
    }
    double x[3] = {0, 0, 0}, g[3];
    double E = ref_energy(w, (const double(*)[3])u, m, split, x, g), s = 0.0016;
    for (unsigned it = 0; it < w->p.iters; it++) {
        double d[3] = {-s * g[0], -s * g[1], -s * g[2]};
        double n2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        if (n2 > 0.05 * 0.05) {
            double f = 0.05 / sqrt(n2);
            for (int a = 0; a < 3; a++) {
                d[a] *= f;
            }
        }
        double xn[3] = {x[0] + d[0], x[1] + d[1], x[2] + d[2]}, gn[3];
        if (xn[0] * xn[0] + xn[1] * xn[1] + xn[2] * xn[2] <= 0.3 * 0.3) {
            double En = ref_energy(w, (const double(*)[3])u, m, split, xn, gn);
            if (En < E) {
                memcpy(x, xn, sizeof(x));
                memcpy(g, gn, sizeof(g));
                E = En;
                s *= 1.2;
                continue;
            }
        }
        s *= 0.5;
    }
    for (int a = 0; a < 3; a++) {
        disp[a] = x[a] * w->rc;
    }
    return 0;
}

/* ------------------------------------------------------------ the tests */
#define NA 700

static void check_world(int per_z, int crowd)
{
    static double old_pos[3 * NA], new_pos[3 * NA];
    static uint8_t valid[NA], known[NA];
    static uint32_t pmap[NA], later[NA];
    const double len = 9.0, lo[3] = {0, 0, 0}, hi[3] = {len, len, len};
    const int per[3] = {1, 1, per_z};
    for (size_t i = 0; i < NA; i++) {
        for (int a = 0; a < 3; a++) {
            double x = crowd ? 4.0 + 0.3 * urand() : len * urand();
            old_pos[3 * i + a] = x;
            double y = x + 0.15 * grand();
            if (i % 50 == 7) {
                y = a == 0 ? -0.01 : y; /* slightly outside the box */
            }
            new_pos[3 * i + a] = per[a] && !crowd ? y - len * floor(y / len) : y;
        }
        valid[i] = i % 31 != 3; /* some previous atoms have no position */
        later[i] = UINT32_MAX;
    }
    /* this frame: the previous atoms in another order, a few gone, one new */
    size_t n = 0;
    for (size_t i = 0; i < NA; i++) {
        size_t src = (i * 263) % NA;
        if (src % 97 == 11) {
            continue;
        }
        pmap[n] = (uint32_t)src;
        later[src] = (uint32_t)n;
        n++;
    }
    pmap[n - 1] = HPC_CAGE_END; /* the last one is new */
    for (size_t i = 0; i < NA; i++) {
        if (later[i] == n - 1) {
            later[i] = UINT32_MAX;
        }
    }
    static double cur[3 * NA];
    for (size_t k = 0; k < n; k++) {
        size_t src = pmap[k] == HPC_CAGE_END ? 5 : pmap[k];
        memcpy(cur + 3 * k, new_pos + 3 * src, 3 * sizeof(double));
        known[k] = k % 23 != 4; /* some atoms had an EXACT value: not inserted */
    }
    hpc_cage_params p;
    liquid_table(&p, 1.7 * 1.7);
    ref_world w = {.old_pos = old_pos,
                   .new_pos = cur,
                   .old_valid = valid,
                   .new_known = known,
                   .later = later,
                   .nprev = NA,
                   .n = n,
                   .len = {len, len, len},
                   .per = {per[0], per[1], per[2]},
                   .rc = sqrt(p.rc2),
                   .p = p};
    int caged = 0, crowded = 0;
    for (int simd = 0; simd <= 1; simd++) {
        hpc_cage_use_simd(simd);
        for (int order = 0; order < 2; order++) {
            hpc_cage g;
            hpc_cage_init(&g);
            assert_int_equal(hpc_cage_begin(&g, p.rc2, lo, hi, per, old_pos, valid, NA, pmap, n),
                             NGL_OK);
            hpc_cage_set_params(&g, &p);
            /* order 1 inserts each atom late, just before it is needed, and
             * in pairs swapped: the slabs fill in another order */
            size_t next = 0;
            for (size_t k = 0; k < n; k++) {
                if (order == 1) {
                    while (next < k) {
                        size_t a = next, b = next + 1 < k ? next + 1 : next;
                        if (known[b]) {
                            hpc_cage_insert(&g, b, cur + 3 * b);
                        }
                        if (a != b && known[a]) {
                            hpc_cage_insert(&g, a, cur + 3 * a);
                        }
                        next = b + 1;
                    }
                }
                if (pmap[k] != HPC_CAGE_END && valid[pmap[k]] && k % 3 == 0) {
                    double d[3], r[3];
                    const double *o = old_pos + 3 * (size_t)pmap[k];
                    int got = hpc_cage_descend(&g, k, o, d);
                    int want = ref_descend(&w, k, o, r);
                    assert_int_equal(got, want);
                    if (got == 0) {
                        assert_memory_equal(d, r, sizeof(d));
                        caged += d[0] != 0 || d[1] != 0 || d[2] != 0;
                    } else {
                        crowded++;
                    }
                }
                if (order == 0 && known[k]) {
                    hpc_cage_insert(&g, k, cur + 3 * k);
                }
            }
            hpc_cage_free(&g);
        }
    }
    hpc_cage_use_simd(1);
    if (crowd) {
        assert_true(crowded > 0);
    } else {
        assert_true(caged > 200); /* the descent really moves the atoms */
        assert_int_equal(crowded, 0);
    }
}

static void test_hpc_cage_matches_reference(void **state)
{
    (void)state;
    check_world(1, 0);
    check_world(0, 0); /* a free z axis */
}

static void test_hpc_cage_crowded(void **state)
{
    (void)state;
    check_world(1, 1); /* everyone in a 0.3-wide clump: more than 508 neighbours */
}

static void test_hpc_cage_unavailable(void **state)
{
    (void)state;
    hpc_cage g;
    hpc_cage_init(&g);
    double pos[3] = {1, 1, 1};
    uint8_t valid[1] = {1};
    uint32_t pmap[1] = {0};
    const double lo[3] = {0, 0, 0}, hi[3] = {5, 5, 5};
    const int per[3] = {1, 1, 1}, free3[3] = {0, 0, 0};
    /* 5 / (1.3 * 1.5) = 2.6 cells: too few on a periodic axis */
    assert_int_equal(hpc_cage_begin(&g, 1.5 * 1.5, lo, hi, per, pos, valid, 1, pmap, 1),
                     NGL_ERR_UNSUPPORTED);
    assert_int_equal(hpc_cage_begin(&g, 1.5 * 1.5, lo, hi, free3, pos, valid, 1, pmap, 1), NGL_OK);
    assert_int_equal(hpc_cage_begin(&g, -1, lo, hi, free3, pos, valid, 1, pmap, 1),
                     NGL_ERR_UNSUPPORTED);
    hpc_cage_free(&g);
}

/* ------------------------------------------------------------ the codec */
/* fcc crystal with independent thermal noise in every frame: the previous
 * frame is a poor predictor (noise twice), the cage of neighbours a good one */
#define CELLS   6
#define NATOMS  (4 * CELLS * CELLS * CELLS)
#define NFRAMES 8

typedef struct stream {
    uint8_t *buf;
    size_t len, nrec, rec_off[NFRAMES + 1], rec_len[NFRAMES + 1];
} stream;

static void make_frames(float (*xyz)[3 * NATOMS], double *len)
{
    static const double basis[4][3] = {{0, 0, 0}, {0.5, 0.5, 0}, {0.5, 0, 0.5}, {0, 0.5, 0.5}};
    const double a = cbrt(4.0 / 0.8442);
    *len = a * CELLS;
    for (int f = 0; f < NFRAMES; f++) {
        size_t k = 0;
        for (int i = 0; i < CELLS; i++) {
            for (int j = 0; j < CELLS; j++) {
                for (int l = 0; l < CELLS; l++) {
                    for (int b = 0; b < 4; b++, k++) {
                        const int c[3] = {i, j, l};
                        for (int ax = 0; ax < 3; ax++) {
                            double x = (c[ax] + basis[b][ax]) * a + 0.08 * grand();
                            xyz[f][3 * k + ax] = (float)(x - *len * floor(x / *len));
                        }
                    }
                }
            }
        }
        /* values the lattice cannot hold, in cage frames: stored bit for bit,
         * and their atoms kept out of the cages on both sides */
        if (f == 3) {
            xyz[f][3 * 17] = NAN;
        } else if (f == 4) {
            xyz[f][3 * 40 + 1] = INFINITY;
            xyz[f][3 * 41 + 2] = -INFINITY;
        } else if (f == 5) {
            xyz[f][3 * 42] = 1e30f;
        }
    }
}

static void encode(const float (*xyz)[3 * NATOMS], double len, stream *s)
{
    ngl_hpc_params p;
    ngl_hpc_params_init(&p);
    p.level = NGL_HPC_LEVEL_BEST;
    p.eps = 1e-3;
    ngl_hpc_encoder *enc = NULL;
    assert_int_equal(ngl_hpc_encoder_create(&p, &enc), NGL_OK);
    size_t cap = ngl_hpc_encode_bound(NATOMS);
    s->buf = malloc(cap * NFRAMES);
    s->len = 0;
    s->nrec = 0;
    for (int f = 0; f < NFRAMES; f++) {
        ngl_hpc_frame fr = {.natoms = NATOMS,
                            .xyz = xyz[f],
                            .has_box = 1,
                            .box_lo = {0, 0, 0},
                            .box_hi = {len, len, len},
                            .periodic = {1, 1, 1}};
        size_t out;
        assert_int_equal(ngl_hpc_encoder_encode(enc, &fr, s->buf + s->len, cap, &out), NGL_OK);
        /* records: the stream header comes with the first frame */
        size_t off = s->len;
        while (off < s->len + out) {
            size_t rl;
            assert_int_equal(ngl_hpc_record_size(s->buf + off, s->len + out - off, &rl), NGL_OK);
            s->rec_off[s->nrec] = off;
            s->rec_len[s->nrec++] = rl;
            off += rl;
        }
        s->len += out;
    }
    ngl_hpc_stats st;
    ngl_hpc_encoder_get_stats(enc, &st);
    assert_true(st.cage_frames >= NFRAMES / 2);
    assert_true(st.exact >= 4); /* the NaN, the infinities, the huge value */
    ngl_hpc_encoder_destroy(enc);
}

/* Decode every record; @return the status of the first failure (NGL_OK if
 * none), checking the frames against @p xyz while they succeed. */
static ngl_status decode(const stream *s, const float (*xyz)[3 * NATOMS], uint64_t *cage_frames)
{
    ngl_hpc_decoder *dec = NULL;
    assert_int_equal(ngl_hpc_decoder_create(&dec), NGL_OK);
    ngl_status st = NGL_OK;
    int f = 0;
    for (size_t r = 0; r < s->nrec && st == NGL_OK; r++) {
        int got = 0;
        st = ngl_hpc_decoder_decode(dec, s->buf + s->rec_off[r], s->rec_len[r], &got);
        if (st == NGL_OK && got) {
            const float *d = ngl_hpc_decoder_frame(dec)->xyz;
            for (size_t v = 0; v < 3 * NATOMS; v++) {
                if (isfinite(xyz[f][v]) && fabsf(xyz[f][v]) < 1e20f) {
                    assert_true(fabs((double)d[v] - (double)xyz[f][v]) <= 1e-3);
                } else { /* NaN, Inf and huge values come back bit for bit */
                    assert_memory_equal(&d[v], &xyz[f][v], sizeof(float));
                }
            }
            f++;
        }
    }
    ngl_hpc_stats stats;
    ngl_hpc_decoder_get_stats(dec, &stats);
    *cage_frames = stats.cage_frames;
    ngl_hpc_decoder_destroy(dec);
    return st;
}

/* Rewrite record r's CRC after a deliberate edit (the test is of the
 * decoder's checks behind the CRC). */
static void recrc(stream *s, size_t r)
{
    uint8_t *rec = s->buf + s->rec_off[r];
    size_t pl = s->rec_len[r] - 12;
    uint32_t c = ngl_crc32c(0, rec, 8 + pl);
    for (int b = 0; b < 4; b++) {
        rec[8 + pl + (size_t)b] = (uint8_t)(c >> (8 * b));
    }
}

static void test_hpc_cage_codec(void **state)
{
    (void)state;
    static float xyz[NFRAMES][3 * NATOMS];
    double len;
    make_frames(xyz, &len);
    stream a, b;
    hpc_cage_use_simd(1);
    encode((const float(*)[3 * NATOMS]) xyz, len, &a);
    hpc_cage_use_simd(0);
    encode((const float(*)[3 * NATOMS]) xyz, len, &b);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.buf, b.buf, a.len);
    uint64_t cf;
    assert_int_equal(decode(&a, (const float(*)[3 * NATOMS]) xyz, &cf), NGL_OK); /* scalar */
    assert_true(cf >= NFRAMES / 2);
    hpc_cage_use_simd(1);
    assert_int_equal(decode(&a, (const float(*)[3 * NATOMS]) xyz, &cf), NGL_OK);

    /* The first cage frame carries the table: with the table flag cleared the
     * frame refers to a table never sent; a bad lambda; a bad knot. */
    size_t r = 0;
    for (size_t i = 1; i < a.nrec; i++) {
        if (r == 0 && (a.buf[a.rec_off[i] + 8 + 12] & 0x80u)) {
            r = i;
        }
    }
    assert_true(r > 0);
    const size_t flags = a.rec_off[r] + 8 + 12, table = a.rec_off[r] + 8 + 16 + 49;
    const size_t knot = table + 12 + 4 * 10, lambda = table + HPC_CAGE_TABLE_SECTION;
    struct {
        size_t at;
        uint8_t val;
        ngl_status want;
    } edits[] = {
        {flags, (uint8_t)(a.buf[flags] & ~0x80u), NGL_ERR_BAD_PREDICTOR},
        {lambda + 3, 0xBF, NGL_ERR_BAD_PREDICTOR}, /* lambda negative */
        {knot + 3, 0x7F, NGL_ERR_BAD_PREDICTOR},   /* a knot of NaN or huge */
        {table + 1, 0, NGL_ERR_BAD_PREDICTOR},     /* zero iterations */
    };
    for (size_t e = 0; e < sizeof(edits) / sizeof(edits[0]); e++) {
        uint8_t keep = a.buf[edits[e].at];
        a.buf[edits[e].at] = edits[e].val;
        recrc(&a, r);
        assert_int_equal(decode(&a, (const float(*)[3 * NATOMS]) xyz, &cf), edits[e].want);
        a.buf[edits[e].at] = keep;
        recrc(&a, r);
    }
    assert_int_equal(decode(&a, (const float(*)[3 * NATOMS]) xyz, &cf), NGL_OK);
    free(a.buf);
    free(b.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hpc_cage_matches_reference),
        cmocka_unit_test(test_hpc_cage_crowded),
        cmocka_unit_test(test_hpc_cage_unavailable),
        cmocka_unit_test(test_hpc_cage_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
