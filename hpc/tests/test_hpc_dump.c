/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hpc_dump.c -- the LAMMPS dump container: round trips of synthetic
 * dumps with every column style and irregularity we support (checked by an
 * independent token comparison, not only by the library's own verify),
 * lossless byte-exactness, rejection of bad dumps, and detection of every
 * truncation and bit flip of a container.
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

static uint64_t rng_state = 12345;

static uint64_t rnd(void)
{
    return ngl_hash_mix64(rng_state += 0x9E3779B97F4A7C15ull); /* splitmix64 */
}

static double urand(void)
{
    return (double)(rnd() >> 11) * 0x1p-53;
}

/* ---------------------------------------------------------- memory files */
typedef struct mem {
    char *p;
    size_t len;
} mem;

/* Input from memory (no file system: the corruption tests run thousands). */
static FILE *mem_file(const mem *m)
{
    FILE *f = m->len ? fmemopen(m->p, m->len, "rb") : fopen("/dev/null", "rb");
    assert_non_null(f);
    return f;
}

/* Output to memory: open_memstream, then mem_close() for the bytes. */
typedef struct memout {
    FILE *f;
    char *p;
    size_t len;
} memout;

static FILE *memout_open(memout *o)
{
    o->p = NULL;
    o->len = 0;
    o->f = open_memstream(&o->p, &o->len);
    assert_non_null(o->f);
    return o->f;
}

static mem memout_close(memout *o)
{
    assert_int_equal(fclose(o->f), 0);
    mem m = {o->p, o->len};
    return m;
}

static void mem_printf(mem *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(tmp));
    m->p = realloc(m->p, m->len + (size_t)n + 1);
    memcpy(m->p + m->len, tmp, (size_t)n + 1);
    m->len += (size_t)n;
}

static ngl_status compress_mem(const mem *in, double eps, int rel, int level, mem *out,
                               ngl_hpc_dump_report *rep)
{
    memout mo;
    FILE *fi = mem_file(in), *fo = memout_open(&mo);
    ngl_hpc_dump_opts o = {.eps = eps, .rel = rel, .level = level};
    ngl_status st = ngl_hpc_dump_compress(fi, fo, &o, rep);
    *out = memout_close(&mo);
    fclose(fi);
    return st;
}

static ngl_status decompress_mem(const mem *in, mem *out, ngl_hpc_dump_report *rep)
{
    memout mo;
    FILE *fi = mem_file(in), *fo = memout_open(&mo);
    ngl_status st = ngl_hpc_dump_decompress(fi, fo, rep);
    *out = memout_close(&mo);
    fclose(fi);
    return st;
}

static ngl_status verify_mem(const mem *a, const mem *b, double eps, int rel,
                             ngl_hpc_dump_report *rep)
{
    FILE *fa = mem_file(a), *fb = mem_file(b);
    ngl_hpc_dump_opts o = {.eps = eps, .rel = rel, .level = 2};
    ngl_status st = ngl_hpc_dump_verify(fa, fb, &o, rep);
    fclose(fa);
    fclose(fb);
    return st;
}

/* --------------------------------------------- an independent comparison */
static int is_coord_name(const char *s)
{
    static const char *names[] = {"x",  "y",  "z",   "xs",  "ys",  "zs", "xu",
                                  "yu", "zu", "xsu", "ysu", "zsu", NULL};
    for (int i = 0; names[i]; i++) {
        if (!strcmp(s, names[i])) {
            return 1;
        }
    }
    return 0;
}

/* Compare ORIGINAL and DECODED line by line without the library: outside
 * atom lines every byte must match; in atom lines every token of a column
 * named like a coordinate may differ by eps when both parse as numbers and
 * the original line is the decoded one with those tokens swapped; anything
 * else must match byte for byte. */
static void independent_check(const mem *a, const mem *b, double eps)
{
    size_t pa = 0, pb = 0;
    char cols[64][32];
    int ncols = 0, in_atoms = 0;
    uint64_t lineno = 0;
    while (pa < a->len || pb < b->len) {
        lineno++;
        assert_true(pa < a->len && pb < b->len);
        const char *la = a->p + pa, *lb = b->p + pb;
        const char *ea = memchr(la, '\n', a->len - pa), *eb = memchr(lb, '\n', b->len - pb);
        size_t na = ea ? (size_t)(ea - la) : a->len - pa, nb = eb ? (size_t)(eb - lb) : b->len - pb;
        assert_int_equal(ea == NULL, eb == NULL);
        pa += na + (ea != NULL);
        pb += nb + (eb != NULL);
        if (na >= 5 && !memcmp(la, "ITEM:", 5)) {
            in_atoms = na >= 11 && !memcmp(la, "ITEM: ATOMS", 11);
            if (in_atoms) {
                ncols = 0;
                char tmp[1024];
                memcpy(tmp, la + 11, na - 11);
                tmp[na - 11] = '\0';
                for (char *t = strtok(tmp, " "); t && ncols < 64; t = strtok(NULL, " ")) {
                    snprintf(cols[ncols++], 32, "%s", t);
                }
            }
            assert_int_equal(na, nb);
            assert_memory_equal(la, lb, na);
            continue;
        }
        if (!in_atoms || (na == nb && !memcmp(la, lb, na))) {
            if (na != nb || memcmp(la, lb, na)) {
                fail_msg("line %llu differs outside atom lines", (unsigned long long)lineno);
            }
            continue;
        }
        /* tokens at single spaces */
        int c = 0;
        size_t ia = 0, ib = 0;
        for (;;) {
            size_t ja = ia, jb = ib;
            while (ja < na && la[ja] != ' ') {
                ja++;
            }
            while (jb < nb && lb[jb] != ' ') {
                jb++;
            }
            int same = ja - ia == jb - ib && !memcmp(la + ia, lb + ib, ja - ia);
            if (!same) {
                if (c >= ncols || !is_coord_name(cols[c])) {
                    fail_msg("line %llu: column %d differs", (unsigned long long)lineno, c);
                }
                char ta[64], tb[64];
                assert_true(ja - ia < 64 && jb - ib < 64);
                memcpy(ta, la + ia, ja - ia);
                ta[ja - ia] = '\0';
                memcpy(tb, lb + ib, jb - ib);
                tb[jb - ib] = '\0';
                char *e1, *e2;
                double va = strtod(ta, &e1), vb = strtod(tb, &e2);
                if (*e1 || *e2 || !(fabs(va - vb) <= eps)) {
                    fail_msg("line %llu column %s: '%s' vs '%s' (eps %g)",
                             (unsigned long long)lineno, cols[c], ta, tb, eps);
                }
            }
            c++;
            if (ja >= na || jb >= nb) {
                assert_int_equal(ja >= na, jb >= nb);
                break;
            }
            ia = ja + 1;
            ib = jb + 1;
        }
    }
}

/* --------------------------------------------------------------- dumps */
typedef struct gen {
    int trailing;    /* canonical lines end with a space */
    int shuffle;     /* atoms in a new order every snapshot */
    int vary;        /* atoms appear and disappear */
    int oddities;    /* non-canonical lines, duplicate ids, extra header items */
    int style;       /* 0 custom x y z + extras, 1 atom (xs), 2 no id / xu / triclinic */
    int no_final_nl; /* the file does not end with a newline */
    unsigned natoms, nsnap;
} gen;

static mem make_dump(const gen *g)
{
    mem m = {0};
    double pos[400][3], vel[400][3];
    const double len = 9.0;
    int present[400];
    assert_true(g->natoms <= 400);
    for (unsigned i = 0; i < g->natoms; i++) {
        present[i] = !g->vary || i % 5 != 0;
        for (int c = 0; c < 3; c++) {
            pos[i][c] = len * urand();
            vel[i][c] = 0.2 * (urand() - 0.5);
        }
    }
    for (unsigned s = 0; s < g->nsnap; s++) {
        unsigned list[400], n = 0;
        for (unsigned i = 0; i < g->natoms; i++) {
            if (g->vary && urand() < 0.1) {
                present[i] = !present[i];
            }
            if (present[i]) {
                list[n++] = i;
            }
        }
        if (g->shuffle) {
            for (unsigned i = n; i > 1; i--) {
                unsigned j = (unsigned)(rnd() % i), t = list[i - 1];
                list[i - 1] = list[j];
                list[j] = t;
            }
        }
        unsigned extra = g->oddities ? 4 : 0;
        if (g->oddities && s == 1) {
            mem_printf(&m, "ITEM: UNITS\nlj\nITEM: TIME\n%.6f\n", 0.005 * s);
        }
        mem_printf(&m, "ITEM: TIMESTEP\n%u\nITEM: NUMBER OF ATOMS\n%u\n", 1000 + 10 * s, n + extra);
        if (g->style == 2) {
            mem_printf(&m, "ITEM: BOX BOUNDS xy xz yz pp pp pp\n");
            for (int c = 0; c < 3; c++) {
                mem_printf(&m, "%.16e %.16e %.16e\n", 0.0, len, 0.1);
            }
            mem_printf(&m, "ITEM: ATOMS type xu yu zu mol\n");
        } else {
            mem_printf(&m, "ITEM: BOX BOUNDS pp pp %s\n", g->oddities ? "ff" : "pp");
            for (int c = 0; c < 3; c++) {
                mem_printf(&m, "%.16e %.16e\n", 0.0, len);
            }
            if (g->style == 1) {
                mem_printf(&m, "ITEM: ATOMS id type xs ys zs\n");
            } else {
                mem_printf(&m, "ITEM: ATOMS id type x y z vx vy vz ix iy iz q c_pe\n");
            }
        }
        const char *tr = g->trailing ? " " : "";
        for (unsigned k = 0; k < n + extra; k++) {
            int last = s + 1 == g->nsnap && k + 1 == n + extra;
            const char *nl = last && g->no_final_nl ? "" : "\n";
            if (k >= n) {
                /* oddities: a double space, a nan, a non-canonical id, a duplicate id */
                switch (k - n) {
                case 0: mem_printf(&m, "%u 1  1.0 2.0 3.0%s%s", 900 + k, tr, nl); break;
                case 1:
                    mem_printf(&m, "%u 1 nan 2.0 3.0 0 0 0 0 0 0 0 0%s%s", 950 + k, tr, nl);
                    break;
                case 2:
                    mem_printf(&m, "0%u 2 1.5 2.5 3.5 0 0 0 0 0 0 0 0%s%s", 970 + k, tr, nl);
                    break;
                default:
                    mem_printf(&m, "%u 2 4.5 4.5 4.5 0.1 0.2 0.3 1 2 3 -0.5 -7.25%s%s",
                               n ? list[0] + 1 : 1, tr, nl);
                    break;
                }
                continue;
            }
            unsigned i = list[k];
            double x[3];
            for (int c = 0; c < 3; c++) {
                x[c] = pos[i][c] - len * floor(pos[i][c] / len);
            }
            if (g->style == 1) {
                mem_printf(&m, "%u %u %g %g %g%s%s", i + 1, 1 + i % 3, x[0] / len, x[1] / len,
                           x[2] / len, tr, nl);
            } else if (g->style == 2) {
                mem_printf(&m, "%u %g %g %g %u%s%s", 1 + i % 2, pos[i][0], pos[i][1], pos[i][2],
                           i / 7, tr, nl);
            } else {
                mem_printf(&m, "%u %u %g %g %g %g %g %g %d %d %d %g %g%s%s", i + 1, 1 + i % 3, x[0],
                           x[1], x[2], vel[i][0], vel[i][1], vel[i][2], (int)floor(pos[i][0] / len),
                           (int)floor(pos[i][1] / len), (int)floor(pos[i][2] / len),
                           (i % 2) ? 0.5 : -0.5, -5.0 + 0.01 * (double)(rnd() % 100), tr, nl);
            }
        }
        for (unsigned i = 0; i < g->natoms; i++) {
            for (int c = 0; c < 3; c++) {
                pos[i][c] += vel[i][c] + 0.01 * (urand() - 0.5);
            }
        }
    }
    return m;
}

static void roundtrip(const gen *g, double eps, int level)
{
    mem in = make_dump(g), c = {0}, d = {0};
    ngl_hpc_dump_report rep;
    ngl_status st = compress_mem(&in, eps, 0, level, &c, &rep);
    if (st != NGL_OK) {
        fail_msg("compress: %s", rep.message);
    }
    assert_int_equal(rep.snapshots, g->nsnap);
    assert_true(c.len < in.len);
    st = decompress_mem(&c, &d, &rep);
    if (st != NGL_OK) {
        fail_msg("decompress: %s", rep.message);
    }
    st = verify_mem(&in, &d, eps, 0, &rep);
    if (st != NGL_OK) {
        fail_msg("verify: %s", rep.message);
    }
    assert_true(rep.max_err <= eps);
    independent_check(&in, &d, eps);
    if (eps == 0) {
        assert_int_equal(in.len, d.len);
        assert_memory_equal(in.p, d.p, in.len);
    }
    free(in.p);
    free(c.p);
    free(d.p);
}

/* ---------------------------------------------------------------- tests */
static void test_hpc_dump_custom_roundtrip(void **state)
{
    (void)state;
    gen g = {.natoms = 120, .nsnap = 12};
    const double epss[] = {1e-2, 1e-3, 1e-5};
    for (int variant = 0; variant < 8; variant++) {
        g.trailing = variant & 1;
        g.shuffle = (variant >> 1) & 1;
        g.vary = (variant >> 2) & 1;
        for (int e = 0; e < 3; e++) {
            roundtrip(&g, epss[e], 1 + (variant + e) % 2);
        }
    }
}

static void test_hpc_dump_oddities(void **state)
{
    (void)state;
    gen g = {.natoms = 60, .nsnap = 6, .oddities = 1, .shuffle = 1, .vary = 1, .no_final_nl = 1};
    roundtrip(&g, 1e-3, 2);
    g.trailing = 1;
    roundtrip(&g, 1e-4, 1);
}

static void test_hpc_dump_atom_style(void **state)
{
    (void)state;
    gen g = {.natoms = 200, .nsnap = 10, .style = 1};
    roundtrip(&g, 1e-4, 2);
    g.shuffle = 1;
    roundtrip(&g, 1e-3, 1);
}

static void test_hpc_dump_no_id_triclinic(void **state)
{
    (void)state;
    gen g = {.natoms = 100, .nsnap = 8, .style = 2};
    roundtrip(&g, 1e-3, 2);
    g.vary = 1; /* atom count changes, atoms tracked by line */
    roundtrip(&g, 1e-3, 2);
}

static void test_hpc_dump_lossless(void **state)
{
    (void)state;
    /* %g-printed coordinates come back byte for byte at eps = 0 */
    for (int style = 0; style < 3; style++) {
        gen g = {.natoms = 80, .nsnap = 5, .style = style, .shuffle = style == 0};
        roundtrip(&g, 0, 2);
    }
}

static void test_hpc_dump_rel(void **state)
{
    (void)state;
    gen g = {.natoms = 150, .nsnap = 8};
    mem in = make_dump(&g), c = {0}, d = {0};
    ngl_hpc_dump_report rep;
    assert_int_equal(compress_mem(&in, 1e-3, 1, 2, &c, &rep), NGL_OK);
    double eps_abs = rep.eps;
    assert_true(eps_abs > 1e-3 && eps_abs < 1e-3 * 9.0 + 1e-12);
    assert_int_equal(decompress_mem(&c, &d, &rep), NGL_OK);
    assert_int_equal(verify_mem(&in, &d, 1e-3, 1, &rep), NGL_OK);
    assert_true(fabs(rep.eps - eps_abs) <= 1e-9 * eps_abs);
    independent_check(&in, &d, eps_abs);
    free(in.p);
    free(c.p);
    free(d.p);
}

static void expect_bad_input(const char *text, const char *needle)
{
    mem in = {(char *)text, strlen(text)}, c = {0};
    ngl_hpc_dump_report rep;
    ngl_status st = compress_mem(&in, 1e-3, 0, 2, &c, &rep);
    if (st == NGL_OK) {
        fail_msg("accepted bad input: %.40s", text);
    }
    assert_int_equal(st, NGL_ERR_INVALID_ARG);
    if (strstr(rep.message, needle) == NULL) {
        fail_msg("message '%s' does not mention '%s'", rep.message, needle);
    }
    free(c.p);
}

static void test_hpc_dump_bad_input(void **state)
{
    (void)state;
    expect_bad_input("", "empty");
    expect_bad_input("hello world\nthis is not a dump\n", "not a LAMMPS");
    expect_bad_input("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n", "truncated");
    expect_bad_input("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n3\nITEM: BOX BOUNDS pp pp pp\n"
                     "0 1\n0 1\n0 1\nITEM: ATOMS id type x y z\n1 1 0.1 0.2 0.3\n",
                     "truncated");
    expect_bad_input("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n1\nITEM: BOX BOUNDS pp pp pp\n"
                     "0 1\n0 1\n0 1\nITEM: ATOMS id type x y z\n1 1 0.1 0.2 0.3\n"
                     "2 1 0.1 0.2 0.3\n",
                     "expected 'ITEM:'");
    expect_bad_input("ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\nmany\nITEM: ATOMS id\n",
                     "bad atom count");
    expect_bad_input("ITEM: TIMESTEP\n0\nITEM: ATOMS id x y z\n", "NUMBER OF ATOMS");
    static const char bin[] = "ITEM: TIMESTEP\n0\0\1\2\n";
    mem in = {(char *)bin, sizeof(bin) - 1}, c = {0};
    ngl_hpc_dump_report rep;
    assert_int_equal(compress_mem(&in, 1e-3, 0, 2, &c, &rep), NGL_ERR_INVALID_ARG);
    assert_non_null(strstr(rep.message, "NUL"));
    free(c.p);
    /* a LAMMPS binary dump is not text */
    unsigned char lbin[64];
    for (size_t i = 0; i < sizeof(lbin); i++) {
        lbin[i] = (unsigned char)(rnd() & 0xFF);
    }
    lbin[0] = 0xF0;
    mem bi = {(char *)lbin, sizeof(lbin)};
    assert_int_equal(compress_mem(&bi, 1e-3, 0, 2, &c, &rep), NGL_ERR_INVALID_ARG);
    free(c.p);
}

static void test_hpc_dump_container_corruption(void **state)
{
    (void)state;
    gen g = {.natoms = 6, .nsnap = 3, .oddities = 1};
    mem in = make_dump(&g), c = {0}, d = {0};
    ngl_hpc_dump_report rep;
    assert_int_equal(compress_mem(&in, 1e-3, 0, 1, &c, &rep), NGL_OK);
    print_message("container of %zu bytes: %zu truncations, %zu bit flips\n", c.len, c.len,
                  8 * c.len);
    /* every truncation */
    for (size_t cut = 0; cut < c.len; cut++) {
        mem t = {c.p, cut};
        ngl_status st = decompress_mem(&t, &d, &rep);
        if (st == NGL_OK) {
            fail_msg("truncation at %zu of %zu bytes accepted", cut, c.len);
        }
        assert_true(strlen(rep.message) > 0);
        free(d.p);
    }
    /* every single-bit flip */
    char *cp = malloc(c.len);
    for (size_t bit = 0; bit < 8 * c.len; bit++) {
        memcpy(cp, c.p, c.len);
        cp[bit / 8] ^= (char)(1u << (bit % 8));
        mem t = {cp, c.len};
        ngl_status st = decompress_mem(&t, &d, &rep);
        if (st == NGL_OK) {
            fail_msg("bit flip %zu accepted", bit);
        }
        free(d.p);
    }
    /* trailing garbage */
    memcpy(cp, c.p, c.len);
    char *cx = malloc(c.len + 1);
    memcpy(cx, c.p, c.len);
    cx[c.len] = 'x';
    mem tx = {cx, c.len + 1};
    assert_int_not_equal(decompress_mem(&tx, &d, &rep), NGL_OK);
    free(d.p);
    /* a text dump is not a container */
    assert_int_equal(decompress_mem(&in, &d, &rep), NGL_ERR_BAD_MAGIC);
    free(d.p);
    /* the intact container still decodes */
    assert_int_equal(decompress_mem(&c, &d, &rep), NGL_OK);
    independent_check(&in, &d, 1e-3);
    free(d.p);
    free(cx);
    free(cp);
    free(in.p);
    free(c.p);
}

static void test_hpc_dump_verify_detects(void **state)
{
    (void)state;
    gen g = {.natoms = 30, .nsnap = 3};
    mem in = make_dump(&g), c = {0}, d = {0};
    ngl_hpc_dump_report rep;
    assert_int_equal(compress_mem(&in, 1e-3, 0, 2, &c, &rep), NGL_OK);
    assert_int_equal(decompress_mem(&c, &d, &rep), NGL_OK);
    assert_int_equal(verify_mem(&in, &d, 1e-3, 0, &rep), NGL_OK);
    /* a tighter bound than the data was compressed with fails */
    assert_int_equal(verify_mem(&in, &d, 1e-6, 0, &rep), NGL_ERR_BAD_CODE);
    /* a changed header line */
    char *p = strstr(d.p, "ITEM: TIMESTEP\n1010");
    assert_non_null(p);
    p[15] = '2';
    assert_int_equal(verify_mem(&in, &d, 1e-3, 0, &rep), NGL_ERR_BAD_SECTION);
    p[15] = '1';
    /* a changed type (second token of the first atom line) */
    p = strstr(d.p, "c_pe\n");
    assert_non_null(p);
    p += 5;
    char *sp = strchr(p, ' ');
    sp[1] = sp[1] == '1' ? '2' : '1';
    assert_int_equal(verify_mem(&in, &d, 1e-3, 0, &rep), NGL_ERR_BAD_SECTION);
    /* a missing snapshot */
    mem shorter = {in.p, (size_t)(strstr(in.p + 1, "ITEM: TIMESTEP") - in.p)};
    assert_int_equal(verify_mem(&shorter, &in, 1e-3, 0, &rep), NGL_ERR_BAD_SECTION);
    free(in.p);
    free(c.p);
    free(d.p);
}

int main(void)
{
    /* The corruption test decodes ~20000 damaged containers, each with a
     * fresh decoder; keep freed memory in the process so that meson's
     * MALLOC_PERTURB_ does not turn every call into page faults. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hpc_dump_custom_roundtrip),
        cmocka_unit_test(test_hpc_dump_oddities),
        cmocka_unit_test(test_hpc_dump_atom_style),
        cmocka_unit_test(test_hpc_dump_no_id_triclinic),
        cmocka_unit_test(test_hpc_dump_lossless),
        cmocka_unit_test(test_hpc_dump_rel),
        cmocka_unit_test(test_hpc_dump_bad_input),
        cmocka_unit_test(test_hpc_dump_container_corruption),
        cmocka_unit_test(test_hpc_dump_verify_detects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
