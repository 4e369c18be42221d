/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_dump.c -- LAMMPS text dumps (`dump custom`, `dump atom`) in and out of
 * the hpc container (hpc/FORMAT.md §7).
 *
 * A snapshot is its header lines ("ITEM: TIMESTEP" ... "ITEM: ATOMS ...")
 * and its atom lines. The coordinate triple (x y z, xs ys zs, xu yu zu or
 * xsu ysu zsu) goes to the hpc codec; everything else comes back byte for
 * byte: header lines (delta-coded against the previous snapshot), integer
 * columns (per-atom deltas against the previous snapshot), other columns as
 * text, and any atom line that is not in canonical form kept verbatim.
 * One snapshot is read, coded and written at a time.
 */
#include "hpc_core.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(NGL_HAVE_ZSTD)
#include <zstd.h>
#endif

#define DUMP_MAGIC0           'N'
#define DUMP_MAGIC1           'H'
#define DUMP_MAGIC2           'D'
#define DUMP_REC_FILE         'F'
#define DUMP_REC_SNAP         'S'
#define DUMP_REC_END          'E'
#define DUMP_VERSION          1u
#define DUMP_MAX_LINE         ((size_t)1 << 20)
#define DUMP_MAX_HEADER_LINES 64u
#define DUMP_MAX_COLS         64u
#define DUMP_PRINT_SHORTEST   0xFFu

/* snapshot flags */
#define SF_TRAILING   0x01u /* canonical atom lines end with one space */
#define SF_COORDS     0x02u /* a codec frame follows */
#define SF_NO_ID      0x04u /* no id column: atoms are tracked by line index */
#define SF_NO_NEWLINE 0x08u /* the snapshot's last line has no newline (end of file) */
#define SF_KNOWN      0x0Fu

/* column kinds */
#define CK_ID   0u
#define CK_X    1u /* 1, 2, 3: coordinate axes */
#define CK_INT  4u
#define CK_TEXT 5u

/* Largest snapshot (atom lines) read or written; a fuzzing build lowers it so
 * that a crafted count cannot exhaust memory before anything is checked. */
#ifndef NGL_HPC_DUMP_MAX_ATOMS
#define NGL_HPC_DUMP_MAX_ATOMS NGL_HPC_MAX_ATOMS
#endif

/* the library's share of the bound: the rest is for printing (§7.5) */
#define DUMP_EPS_LIB (1.0 - 0x1p-7)

/* ------------------------------------------------------------- growable buffers */
typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static int buf_reserve(buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len) {
        return -1;
    }
    if (b->len + extra <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) {
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(buf *b, const void *d, size_t n)
{
    if (buf_reserve(b, n) != 0) {
        return -1;
    }
    if (n) {
        memcpy(b->p + b->len, d, n);
    }
    b->len += n;
    return 0;
}

static int buf_putc(buf *b, uint8_t c)
{
    return buf_put(b, &c, 1);
}

static int buf_varint(buf *b, uint64_t v)
{
    if (buf_reserve(b, 10) != 0) {
        return -1;
    }
    b->len += hpc_put_varint(b->p + b->len, v);
    return 0;
}

static int buf_u32(buf *b, uint32_t v)
{
    uint8_t t[4];
    hpc_put_u32(t, v);
    return buf_put(b, t, 4);
}

static void buf_free(buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* A list of lines stored back to back (without their newlines). */
typedef struct lines {
    buf text;
    size_t *off; /* n + 1 offsets */
    size_t n, cap;
} lines;

static void lines_clear(lines *l)
{
    l->text.len = 0;
    l->n = 0;
}

static int lines_add(lines *l, const char *s, size_t len)
{
    if (l->n + 2 > l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        size_t *o = realloc(l->off, cap * sizeof(*o));
        if (o == NULL) {
            return -1;
        }
        l->off = o;
        l->cap = cap;
    }
    if (l->n == 0) {
        l->off[0] = 0;
    }
    if (buf_put(&l->text, s, len) != 0) {
        return -1;
    }
    l->n++;
    l->off[l->n] = l->text.len;
    return 0;
}

static inline const char *line_at(const lines *l, size_t i, size_t *len)
{
    *len = l->off[i + 1] - l->off[i];
    return (const char *)l->text.p + l->off[i];
}

static void lines_free(lines *l)
{
    buf_free(&l->text);
    free(l->off);
    memset(l, 0, sizeof(*l));
}

/* ------------------------------------------------------------------ reader */
typedef struct reader {
    FILE *f;
    char *line;
    size_t cap;
    uint64_t lineno;
    uint64_t bytes;
    int eof;
} reader;

/* Next line without its newline. @return length, -1 at EOF, -2 on error (msg set).
 * *nl is 1 if the line ended with a newline. */
static ssize_t rd_line(reader *r, int *nl, char *msg, size_t msgcap)
{
    errno = 0;
    ssize_t n = getline(&r->line, &r->cap, r->f);
    if (n < 0) {
        if (ferror(r->f)) {
            snprintf(msg, msgcap, "read error: %s", strerror(errno ? errno : EIO));
            return -2;
        }
        r->eof = 1;
        return -1;
    }
    r->bytes += (uint64_t)n;
    r->lineno++;
    if ((size_t)n > DUMP_MAX_LINE) {
        snprintf(msg, msgcap, "line %" PRIu64 " is longer than %zu bytes", r->lineno,
                 DUMP_MAX_LINE);
        return -2;
    }
    if (memchr(r->line, '\0', (size_t)n) != NULL) {
        snprintf(msg, msgcap, "not a LAMMPS text dump: line %" PRIu64 " contains a NUL byte",
                 r->lineno);
        return -2;
    }
    *nl = n > 0 && r->line[n - 1] == '\n';
    if (*nl) {
        n--;
    }
    return n;
}

/* ---------------------------------------------------------------- snapshot */
typedef struct snap {
    lines hdr;
    lines atoms;
    uint64_t natoms;
    uint64_t timestep;
    int have_timestep;
    int no_newline; /* last line of the snapshot has no newline */
    int box_ok;     /* orthogonal box parsed */
    double lo[3], hi[3];
    int pp[3];
    unsigned ncols;
    char colname[DUMP_MAX_COLS][32];
    int col_id;
    int col_x[3];
    int family; /* 0 none, 1 x, 2 xs, 3 xu, 4 xsu */
} snap;

static int starts(const char *s, size_t len, const char *pfx)
{
    size_t n = strlen(pfx);
    return len >= n && memcmp(s, pfx, n) == 0;
}

/* Strict non-negative decimal integer of a whole line (LAMMPS "%ld"). */
static int parse_count(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 19) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Canonical decimal int64 token: -?(0|[1-9][0-9]*), no "-0". */
static int parse_canon_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (len == 0) {
        return -1;
    }
    if (s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i >= len || len - i > 19) {
        return -1;
    }
    if (s[i] == '0' && (len - i > 1 || neg)) {
        return -1;
    }
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX) {
        return -1;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* A finite number filling the whole token. */
static int parse_double(const char *s, size_t len, double *out)
{
    char tmp[64];
    if (len == 0 || len >= sizeof(tmp)) {
        return -1;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    if (tmp[0] == ' ' || tmp[0] == '\t' || tmp[0] == '\n') {
        return -1;
    }
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + len || !isfinite(v)) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Interpret the header lines of @p s (box, atom count, columns). */
static int snap_parse_header(snap *s, char *msg, size_t msgcap)
{
    int have_n = 0, have_atoms = 0;
    s->box_ok = 0;
    s->have_timestep = 0;
    s->ncols = 0;
    s->col_id = -1;
    s->family = 0;
    for (size_t i = 0; i < s->hdr.n; i++) {
        size_t len;
        const char *l = line_at(&s->hdr, i, &len);
        if (starts(l, len, "ITEM: TIMESTEP") && i + 1 < s->hdr.n) {
            size_t l2;
            const char *t = line_at(&s->hdr, i + 1, &l2);
            s->have_timestep = parse_count(t, l2, &s->timestep) == 0;
        } else if (starts(l, len, "ITEM: NUMBER OF ATOMS")) {
            size_t l2;
            if (i + 1 >= s->hdr.n) {
                snprintf(msg, msgcap, "NUMBER OF ATOMS without a count");
                return -1;
            }
            const char *t = line_at(&s->hdr, i + 1, &l2);
            if (parse_count(t, l2, &s->natoms) != 0) {
                snprintf(msg, msgcap, "bad atom count '%.*s'", (int)(l2 > 40 ? 40 : l2), t);
                return -1;
            }
            if (s->natoms > NGL_HPC_DUMP_MAX_ATOMS) {
                snprintf(msg, msgcap, "%" PRIu64 " atoms in one snapshot: more than %" PRIu64,
                         s->natoms, (uint64_t)NGL_HPC_DUMP_MAX_ATOMS);
                return -1;
            }
            have_n = 1;
        } else if (starts(l, len, "ITEM: BOX BOUNDS")) {
            int tri = 0;
            char flags[3][3] = {{0}};
            int nf = 0;
            /* tokens after "ITEM: BOX BOUNDS" */
            size_t p = strlen("ITEM: BOX BOUNDS");
            while (p < len) {
                while (p < len && l[p] == ' ') {
                    p++;
                }
                size_t q = p;
                while (q < len && l[q] != ' ') {
                    q++;
                }
                if (q > p) {
                    if ((q - p == 2) && (!memcmp(l + p, "xy", 2) || !memcmp(l + p, "xz", 2) ||
                                         !memcmp(l + p, "yz", 2))) {
                        tri = 1;
                    } else if (nf < 3 && q - p == 2) {
                        memcpy(flags[nf], l + p, 2);
                        nf++;
                    }
                }
                p = q;
            }
            if (i + 3 >= s->hdr.n) {
                snprintf(msg, msgcap, "BOX BOUNDS without three bound lines");
                return -1;
            }
            int ok = !tri;
            for (int a = 0; a < 3; a++) {
                size_t l2;
                const char *t = line_at(&s->hdr, i + 1 + (size_t)a, &l2);
                char tmp[256];
                size_t m = l2 < sizeof(tmp) - 1 ? l2 : sizeof(tmp) - 1;
                memcpy(tmp, t, m);
                tmp[m] = '\0';
                char *e1, *e2;
                double lo = strtod(tmp, &e1);
                double hi = strtod(e1, &e2);
                if (e1 == tmp || e2 == e1 || !isfinite(lo) || !isfinite(hi) || !(lo < hi)) {
                    ok = 0;
                }
                s->lo[a] = lo;
                s->hi[a] = hi;
                s->pp[a] = nf == 3 && flags[a][0] == 'p' && flags[a][1] == 'p';
            }
            s->box_ok = ok;
        } else if (starts(l, len, "ITEM: ATOMS")) {
            have_atoms = 1;
            size_t p = strlen("ITEM: ATOMS");
            while (p < len) {
                while (p < len && l[p] == ' ') {
                    p++;
                }
                size_t q = p;
                while (q < len && l[q] != ' ') {
                    q++;
                }
                if (q > p) {
                    if (s->ncols >= DUMP_MAX_COLS) {
                        snprintf(msg, msgcap, "more than %u atom columns", DUMP_MAX_COLS);
                        return -1;
                    }
                    size_t m = q - p < 31 ? q - p : 31;
                    memcpy(s->colname[s->ncols], l + p, m);
                    s->colname[s->ncols][m] = '\0';
                    s->ncols++;
                }
                p = q;
            }
        }
    }
    if (!have_n || !have_atoms) {
        snprintf(msg, msgcap, "snapshot header lacks %s",
                 !have_n ? "ITEM: NUMBER OF ATOMS" : "ITEM: ATOMS");
        return -1;
    }
    /* columns: id and the first complete coordinate triple */
    static const char *fam[4][3] = {
        {"x", "y", "z"}, {"xs", "ys", "zs"}, {"xu", "yu", "zu"}, {"xsu", "ysu", "zsu"}};
    s->col_x[0] = s->col_x[1] = s->col_x[2] = -1;
    for (unsigned c = 0; c < s->ncols; c++) {
        if (!strcmp(s->colname[c], "id") && s->col_id < 0) {
            s->col_id = (int)c;
        }
    }
    int best = -1, best_pos = INT32_MAX;
    for (int f = 0; f < 4; f++) {
        int pos[3] = {-1, -1, -1};
        for (unsigned c = 0; c < s->ncols; c++) {
            for (int a = 0; a < 3; a++) {
                if (pos[a] < 0 && !strcmp(s->colname[c], fam[f][a])) {
                    pos[a] = (int)c;
                }
            }
        }
        if (pos[0] >= 0 && pos[1] >= 0 && pos[2] >= 0) {
            int first = pos[0] < pos[1] ? (pos[0] < pos[2] ? pos[0] : pos[2])
                                        : (pos[1] < pos[2] ? pos[1] : pos[2]);
            if (first < best_pos) {
                best_pos = first;
                best = f;
                for (int a = 0; a < 3; a++) {
                    s->col_x[a] = pos[a];
                }
            }
        }
    }
    s->family = best + 1;
    return 0;
}

/* Read one snapshot. @return 1, 0 at a clean end of input, -1 on error. */
static int snap_read(reader *r, snap *s, uint64_t index, char *msg, size_t msgcap)
{
    lines_clear(&s->hdr);
    lines_clear(&s->atoms);
    s->no_newline = 0;
    int nl;
    ssize_t n = rd_line(r, &nl, msg, msgcap);
    if (n == -2) {
        return -1;
    }
    if (n == -1) {
        if (index == 0) {
            snprintf(msg, msgcap, "empty input: not a LAMMPS text dump");
            return -1;
        }
        return 0;
    }
    uint64_t first_line = r->lineno;
    if (!starts(r->line, (size_t)n, "ITEM:")) {
        if (index == 0) {
            snprintf(msg, msgcap, "not a LAMMPS text dump: line 1 does not start with 'ITEM:'");
        } else {
            snprintf(msg, msgcap,
                     "line %" PRIu64 ": expected 'ITEM:' to start snapshot %" PRIu64
                     " (more atom lines than NUMBER OF ATOMS?)",
                     r->lineno, index);
        }
        return -1;
    }
    for (;;) {
        if (s->hdr.n >= DUMP_MAX_HEADER_LINES) {
            snprintf(msg, msgcap, "snapshot at line %" PRIu64 ": more than %u header lines",
                     first_line, DUMP_MAX_HEADER_LINES);
            return -1;
        }
        if (lines_add(&s->hdr, r->line, (size_t)n) != 0) {
            snprintf(msg, msgcap, "out of memory");
            return -1;
        }
        if (!nl) {
            s->no_newline = 1;
        }
        if (starts(r->line, (size_t)n, "ITEM: ATOMS")) {
            break;
        }
        if (!nl) {
            snprintf(msg, msgcap,
                     "truncated dump: input ends inside the header of snapshot %" PRIu64
                     " (line %" PRIu64 ")",
                     index, r->lineno);
            return -1;
        }
        n = rd_line(r, &nl, msg, msgcap);
        if (n == -2) {
            return -1;
        }
        if (n == -1) {
            snprintf(msg, msgcap,
                     "truncated dump: input ends inside the header of snapshot %" PRIu64
                     " (line %" PRIu64 ")",
                     index, r->lineno);
            return -1;
        }
    }
    if (snap_parse_header(s, msg + 0, msgcap) != 0) {
        char tmp[200];
        snprintf(tmp, sizeof(tmp), "%s", msg);
        snprintf(msg, msgcap, "snapshot at line %" PRIu64 ": %s", first_line, tmp);
        return -1;
    }
    if (s->no_newline && s->natoms > 0) {
        snprintf(msg, msgcap, "truncated dump: snapshot %" PRIu64 " ends after its header", index);
        return -1;
    }
    for (uint64_t k = 0; k < s->natoms; k++) {
        n = rd_line(r, &nl, msg, msgcap);
        if (n == -2) {
            return -1;
        }
        if (n == -1) {
            snprintf(msg, msgcap,
                     "truncated dump: snapshot %" PRIu64 "%s%" PRIu64 ") has %" PRIu64
                     " of %" PRIu64 " atom lines",
                     index, s->have_timestep ? " (timestep " : " (line ",
                     s->have_timestep ? s->timestep : first_line, k, s->natoms);
            return -1;
        }
        if (k + 1 < s->natoms && !nl) {
            snprintf(msg, msgcap,
                     "truncated dump: snapshot %" PRIu64 " ends at atom line %" PRIu64
                     " of %" PRIu64,
                     index, k + 1, s->natoms);
            return -1;
        }
        if (starts(r->line, (size_t)n, "ITEM:")) {
            snprintf(msg, msgcap,
                     "line %" PRIu64 ": snapshot %" PRIu64 " has %" PRIu64
                     " atom lines, NUMBER OF ATOMS says %" PRIu64,
                     r->lineno, index, k, s->natoms);
            return -1;
        }
        if (lines_add(&s->atoms, r->line, (size_t)n) != 0) {
            snprintf(msg, msgcap, "out of memory");
            return -1;
        }
        if (!nl) {
            s->no_newline = 1;
        }
    }
    return 1;
}

static void snap_free(snap *s)
{
    lines_free(&s->hdr);
    lines_free(&s->atoms);
}

/* Split an atom line into tokens at single spaces. @return the token count
 * (tokens past @p max are counted, not stored), or -1 if a token is empty
 * anywhere but as the trailing one. *trailing = 1 if the line ends in a space. */
static int tokenize(const char *l, size_t len, size_t *beg, size_t *end, unsigned max,
                    int *trailing)
{
    unsigned nt = 0;
    size_t p = 0;
    *trailing = 0;
    if (len == 0) {
        return -1;
    }
    for (;;) {
        size_t q = p;
        while (q < len && l[q] != ' ') {
            q++;
        }
        if (q == p) {
            return -1; /* empty token: leading or double space */
        }
        if (nt < max) {
            beg[nt] = p;
            end[nt] = q;
        }
        nt++;
        if (q == len) {
            break;
        }
        if (q + 1 == len) {
            *trailing = 1;
            break;
        }
        p = q + 1;
    }
    return (int)nt;
}

/* -------------------------------------------------------------- printing */
/* Decimals that keep the printing error within eps_lib * 2^-8 (§7.5). */
static unsigned print_decimals(double eps_lib)
{
    double lim = eps_lib * 0x1p-8;
    unsigned d = 0;
    double unit = 1.0; /* 10^-d */
    while (d < 30 && !(0.5 * unit <= lim)) {
        d++;
        unit /= 10.0;
    }
    return d < 30 ? d : DUMP_PRINT_SHORTEST;
}

/* Print @p v: with @p dec decimals, or the shortest %g that parses back exactly. */
static int print_coord(char *out, size_t cap, double v, unsigned dec)
{
    if (dec != DUMP_PRINT_SHORTEST) {
        return snprintf(out, cap, "%.*f", (int)dec, v);
    }
    for (int p = 6; p <= 17; p++) {
        int n = snprintf(out, cap, "%.*g", p, v);
        if (strtod(out, NULL) == v) {
            return n;
        }
    }
    return snprintf(out, cap, "%.17g", v);
}

/* ------------------------------------------------------- canonical lines */
typedef struct atomtab {
    uint64_t n; /* atom lines */
    uint64_t m; /* canonical lines */
    int trailing;
    unsigned ncols;
    unsigned kind[DUMP_MAX_COLS];
    uint8_t *canon;    /* per line */
    uint32_t *line_of; /* per canonical line: its line index */
    int64_t *ids;      /* per canonical line: id (or line index without an id column) */
    double *xyz;       /* per canonical line: 3 coordinates */
    uint32_t *tb, *te; /* per canonical line and column: token bounds */
    size_t cap;        /* lines the arrays hold */
    unsigned tokcap;   /* columns the token arrays hold per line */
    hpc_idmap dup;
} atomtab;

static void atomtab_free(atomtab *t)
{
    free(t->canon);
    free(t->line_of);
    free(t->ids);
    free(t->xyz);
    free(t->tb);
    free(t->te);
    hpc_idmap_free(&t->dup);
    memset(t, 0, sizeof(*t));
}

static int atomtab_reserve(atomtab *t, uint64_t n, unsigned ncols)
{
    if (n <= t->cap && ncols <= t->tokcap && t->canon != NULL) {
        return 0;
    }
    size_t cap = n > t->cap ? (size_t)n : t->cap;
    unsigned tc = ncols > t->tokcap ? ncols : t->tokcap;
    if (cap == 0) {
        cap = 1;
    }
    if (tc == 0) {
        tc = 1;
    }
    uint8_t *c = realloc(t->canon, cap);
    uint32_t *lo = c ? realloc(t->line_of, cap * sizeof(*lo)) : NULL;
    if (c) {
        t->canon = c;
    }
    if (lo) {
        t->line_of = lo;
    }
    int64_t *ids = lo ? realloc(t->ids, cap * sizeof(*ids)) : NULL;
    if (ids) {
        t->ids = ids;
    }
    double *xyz = ids ? realloc(t->xyz, 3 * cap * sizeof(*xyz)) : NULL;
    if (xyz) {
        t->xyz = xyz;
    }
    uint32_t *tb = xyz ? realloc(t->tb, cap * tc * sizeof(*tb)) : NULL;
    if (tb) {
        t->tb = tb;
    }
    uint32_t *te = tb ? realloc(t->te, cap * tc * sizeof(*te)) : NULL;
    if (te == NULL) {
        return -1;
    }
    t->te = te;
    t->cap = cap;
    t->tokcap = tc;
    return 0;
}

/*
 * Classify the atom lines of @p s (FORMAT.md §7.3): column kinds, the
 * canonical lines and their ids, coordinates and token bounds.
 */
static int classify(const snap *s, atomtab *t, char *msg, size_t msgcap)
{
    const unsigned nc = s->ncols;
    t->n = s->atoms.n;
    t->m = 0;
    t->ncols = nc;
    t->trailing = 0;
    if (atomtab_reserve(t, t->n, nc + 1) != 0 || hpc_idmap_reset(&t->dup, t->n) != 0) {
        snprintf(msg, msgcap, "out of memory for %" PRIu64 " atom lines", t->n);
        return -1;
    }
    const int coords = s->family > 0;
    for (unsigned c = 0; c < nc; c++) {
        t->kind[c] = CK_INT;
    }
    if (coords) {
        for (int a = 0; a < 3; a++) {
            t->kind[s->col_x[a]] = CK_X + (unsigned)a;
        }
        if (s->col_id >= 0) {
            t->kind[s->col_id] = CK_ID;
        }
    }
    if (t->n > 0) {
        size_t len;
        const char *l = line_at(&s->atoms, 0, &len);
        t->trailing = len > 0 && l[len - 1] == ' ';
    }
    size_t beg[DUMP_MAX_COLS + 1], end[DUMP_MAX_COLS + 1];
    for (uint64_t i = 0; i < t->n; i++) {
        size_t len;
        const char *l = line_at(&s->atoms, i, &len);
        int tr;
        int nt = tokenize(l, len, beg, end, nc + 1, &tr);
        t->canon[i] = 0;
        if (nt != (int)nc || tr != t->trailing || nc == 0) {
            continue;
        }
        double v[3] = {0, 0, 0};
        int ok = 1;
        for (unsigned c = 0; c < nc && ok; c++) {
            unsigned k = t->kind[c];
            if (k >= CK_X && k < CK_X + 3) {
                ok = parse_double(l + beg[c], end[c] - beg[c], &v[k - CK_X]) == 0;
            }
        }
        if (!ok) {
            continue;
        }
        int64_t id = (int64_t)i;
        if (coords && s->col_id >= 0) {
            unsigned c = (unsigned)s->col_id;
            if (parse_canon_int(l + beg[c], end[c] - beg[c], &id) != 0) {
                continue;
            }
        }
        if (coords && hpc_idmap_insert(&t->dup, id, (uint32_t)i) != 0) {
            continue; /* second line with this id stays verbatim */
        }
        uint64_t m = t->m++;
        t->canon[i] = 1;
        t->line_of[m] = (uint32_t)i;
        t->ids[m] = id;
        t->xyz[3 * m] = v[0];
        t->xyz[3 * m + 1] = v[1];
        t->xyz[3 * m + 2] = v[2];
        for (unsigned c = 0; c < nc; c++) {
            t->tb[m * nc + c] = (uint32_t)beg[c];
            t->te[m * nc + c] = (uint32_t)end[c];
            if (t->kind[c] == CK_INT) {
                int64_t dummy;
                if (parse_canon_int(l + beg[c], end[c] - beg[c], &dummy) != 0) {
                    t->kind[c] = CK_TEXT;
                }
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------- header deltas */
typedef struct hdrstate {
    lines prev;
    int have_delta[DUMP_MAX_HEADER_LINES];
    int64_t delta[DUMP_MAX_HEADER_LINES];
} hdrstate;

/* Both sides end a header the same way: @p cur becomes the reference for the
 * next snapshot, and lines past its end forget their deltas. Shared so the
 * encoder's and decoder's states cannot drift apart. @return 0 or -1. */
static int hdr_commit(hdrstate *h, const lines *cur)
{
    lines_clear(&h->prev);
    for (size_t i = 0; i < cur->n; i++) {
        size_t len;
        const char *l = line_at(cur, i, &len);
        if (lines_add(&h->prev, l, len) != 0) {
            return -1;
        }
    }
    for (size_t i = cur->n; i < DUMP_MAX_HEADER_LINES; i++) {
        h->have_delta[i] = 0;
    }
    return 0;
}

static int hdr_encode(hdrstate *h, const lines *cur, buf *out)
{
    if (buf_varint(out, cur->n) != 0) {
        return -1;
    }
    for (size_t i = 0; i < cur->n; i++) {
        size_t len, plen = 0;
        const char *l = line_at(cur, i, &len);
        const char *p = i < h->prev.n ? line_at(&h->prev, i, &plen) : NULL;
        int64_t v, pv;
        if (p != NULL && plen == len && !memcmp(p, l, len)) {
            if (buf_putc(out, 0) != 0) {
                return -1;
            }
        } else if (p != NULL && parse_canon_int(l, len, &v) == 0 &&
                   parse_canon_int(p, plen, &pv) == 0) {
            int64_t d = hpc_wsub(v, pv);
            if (h->have_delta[i] && h->delta[i] == d) {
                if (buf_putc(out, 2) != 0) {
                    return -1;
                }
            } else {
                if (buf_putc(out, 1) != 0 || buf_varint(out, hpc_zigzag(d)) != 0) {
                    return -1;
                }
                h->have_delta[i] = 1;
                h->delta[i] = d;
            }
        } else {
            if (buf_putc(out, 3) != 0 || buf_varint(out, len) != 0 || buf_put(out, l, len) != 0) {
                return -1;
            }
            h->have_delta[i] = 0;
        }
    }
    return hdr_commit(h, cur);
}

/* Rebuild the header into @p cur. @return 0 or -1 (malformed). */
static int hdr_decode(hdrstate *h, const uint8_t *b, size_t len, lines *cur)
{
    size_t pos = 0;
    uint64_t n;
    lines_clear(cur);
    if (hpc_get_varint(b, len, &pos, &n) != 0 || n == 0 || n > DUMP_MAX_HEADER_LINES) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (pos >= len) {
            return -1;
        }
        unsigned op = b[pos++];
        size_t plen = 0;
        const char *p = i < h->prev.n ? line_at(&h->prev, i, &plen) : NULL;
        char tmp[32];
        if (op == 0) {
            if (p == NULL || lines_add(cur, p, plen) != 0) {
                return -1;
            }
        } else if (op == 1 || op == 2) {
            int64_t pv, d;
            if (p == NULL || parse_canon_int(p, plen, &pv) != 0) {
                return -1;
            }
            if (op == 1) {
                uint64_t z;
                if (hpc_get_varint(b, len, &pos, &z) != 0) {
                    return -1;
                }
                d = hpc_unzigzag(z);
                h->have_delta[i] = 1;
                h->delta[i] = d;
            } else {
                if (!h->have_delta[i]) {
                    return -1;
                }
                d = h->delta[i];
            }
            int k = snprintf(tmp, sizeof(tmp), "%" PRId64, hpc_wadd(pv, d));
            if (lines_add(cur, tmp, (size_t)k) != 0) {
                return -1;
            }
            /* the encoder only uses ops 1/2 when both lines are canonical */
            if (p != NULL && (size_t)k == plen && !memcmp(tmp, p, plen)) {
                return -1; /* would have been op 0 */
            }
        } else if (op == 3) {
            uint64_t l;
            if (hpc_get_varint(b, len, &pos, &l) != 0 || l > len - pos || l > DUMP_MAX_LINE ||
                memchr(b + pos, '\n', (size_t)l) || memchr(b + pos, '\0', (size_t)l)) {
                return -1;
            }
            if (lines_add(cur, (const char *)b + pos, (size_t)l) != 0) {
                return -1;
            }
            pos += (size_t)l;
            h->have_delta[i] = 0;
        } else {
            return -1;
        }
    }
    if (pos != len) {
        return -1;
    }
    return hdr_commit(h, cur);
}

/* ------------------------------------------- integer columns per atom */
/* Memory of the last snapshot's integer columns, keyed by atom. */
typedef struct intmem {
    char layout[DUMP_MAX_COLS * 33]; /* column names and kinds they belonged to */
    uint64_t n;
    unsigned nint;
    int64_t *keys;
    int64_t *vals; /* n * nint */
    size_t cap, keycap;
    hpc_idmap map;
    int mapped; /* map holds keys */
} intmem;

static void intmem_free(intmem *im)
{
    free(im->keys);
    free(im->vals);
    hpc_idmap_free(&im->map);
    memset(im, 0, sizeof(*im));
}

static void layout_string(const snap *s, const atomtab *t, char *out, size_t cap)
{
    size_t p = 0;
    out[0] = '\0';
    for (unsigned c = 0; c < t->ncols && p + 40 < cap; c++) {
        p += (size_t)snprintf(out + p, cap - p, "%s:%u ", s->colname[c], t->kind[c]);
    }
}

/* Map this snapshot's keys to last snapshot's positions: positional when the
 * keys are the same in the same order, else through a hash map.
 * @return 0, or -1 out of memory. */
static int intmem_prepare(intmem *im, const int64_t *keys, uint64_t m)
{
    im->mapped = 0;
    if (im->n == 0 || (im->n == m && (m == 0 || !memcmp(im->keys, keys, m * sizeof(int64_t))))) {
        return 0;
    }
    if (hpc_idmap_reset(&im->map, im->n) != 0) {
        return -1;
    }
    for (uint64_t i = 0; i < im->n; i++) {
        (void)hpc_idmap_insert(&im->map, im->keys[i], (uint32_t)i);
    }
    im->mapped = 1;
    return 0;
}

/* Last snapshot's position of this snapshot's atom @p k, or HPC_NONE. */
static inline uint32_t intmem_find(const intmem *im, const int64_t *keys, uint64_t k)
{
    if (im->n == 0) {
        return HPC_NONE;
    }
    if (!im->mapped) {
        return (uint32_t)k;
    }
    return hpc_idmap_find(&im->map, keys[k]);
}

static int intmem_store(intmem *im, const char *layout, const int64_t *keys, uint64_t m,
                        unsigned nint, const int64_t *vals)
{
    size_t nk = (size_t)(m ? m : 1), nv = (size_t)m * (nint ? nint : 1);
    if (nk > im->keycap || im->keys == NULL) {
        int64_t *k = realloc(im->keys, nk * sizeof(int64_t));
        if (k == NULL) {
            return -1;
        }
        im->keys = k;
        im->keycap = nk;
    }
    if (nv > im->cap || im->vals == NULL) {
        size_t cap = nv < 64 ? 64 : nv;
        int64_t *v = realloc(im->vals, cap * sizeof(int64_t));
        if (v == NULL) {
            return -1;
        }
        im->vals = v;
        im->cap = cap;
    }
    snprintf(im->layout, sizeof(im->layout), "%s", layout);
    im->n = m;
    im->nint = nint;
    if (m) {
        memcpy(im->keys, keys, m * sizeof(int64_t));
        if (nint) {
            memcpy(im->vals, vals, m * nint * sizeof(int64_t));
        }
    }
    im->mapped = 0;
    return 0;
}

/* ------------------------------------------------------------- records */
static int write_record(FILE *f, uint8_t type, const uint8_t *payload, size_t len, uint64_t *bytes)
{
    uint8_t h[8];
    h[0] = DUMP_MAGIC0;
    h[1] = DUMP_MAGIC1;
    h[2] = DUMP_MAGIC2;
    h[3] = type;
    hpc_put_u32(h + 4, (uint32_t)len);
    uint32_t crc = ngl_crc32c(ngl_crc32c(0, h, 8), payload, len);
    uint8_t t[4];
    hpc_put_u32(t, crc);
    if (fwrite(h, 1, 8, f) != 8 || (len && fwrite(payload, 1, len, f) != len) ||
        fwrite(t, 1, 4, f) != 4) {
        return -1;
    }
    *bytes += 12 + len;
    return 0;
}

#define DUMP_MAX_RECORD ((size_t)1 << 31)

/* @return 1 (record in b, type in *type), 0 at a clean end of input, or a
 * negative ngl_status with msg set. */
static int read_record(FILE *f, buf *b, uint8_t *type, uint64_t *bytes, char *msg, size_t msgcap)
{
    uint8_t h[8];
    size_t got = fread(h, 1, 8, f);
    if (got == 0 && feof(f)) {
        return 0;
    }
    if (got != 8) {
        snprintf(msg, msgcap, "truncated container: %zu-byte record header at byte %" PRIu64, got,
                 *bytes);
        return -(int)NGL_ERR_TRUNCATED;
    }
    if (h[0] != DUMP_MAGIC0 || h[1] != DUMP_MAGIC1 || h[2] != DUMP_MAGIC2 ||
        (h[3] != DUMP_REC_FILE && h[3] != DUMP_REC_SNAP && h[3] != DUMP_REC_END)) {
        snprintf(msg, msgcap, "not an hpc container record at byte %" PRIu64, *bytes);
        return -(int)NGL_ERR_BAD_MAGIC;
    }
    size_t len = hpc_get_u32(h + 4);
    if (len > DUMP_MAX_RECORD) {
        snprintf(msg, msgcap, "record length %zu at byte %" PRIu64 " too large", len, *bytes);
        return -(int)NGL_ERR_BAD_LENGTH;
    }
    /* Grow the buffer only as bytes arrive: a corrupted length field must not
     * make us allocate gigabytes for a short file. */
    b->len = 0;
    size_t want = len + 4;
    while (b->len < want) {
        size_t chunk = want - b->len < ((size_t)1 << 20) ? want - b->len : ((size_t)1 << 20);
        if (buf_reserve(b, chunk) != 0) {
            snprintf(msg, msgcap, "out of memory");
            return -(int)NGL_ERR_NO_MEMORY;
        }
        got = fread(b->p + b->len, 1, chunk, f);
        b->len += got;
        if (got != chunk) {
            snprintf(msg, msgcap,
                     "truncated container: record at byte %" PRIu64 " has %zu of %zu bytes", *bytes,
                     b->len + 8, len + 12);
            return -(int)NGL_ERR_TRUNCATED;
        }
    }
    uint32_t crc = ngl_crc32c(ngl_crc32c(0, h, 8), b->p, len);
    if (crc != hpc_get_u32(b->p + len)) {
        snprintf(msg, msgcap, "corrupted container: CRC32C mismatch in the record at byte %" PRIu64,
                 *bytes);
        return -(int)NGL_ERR_CRC_MISMATCH;
    }
    b->len = len;
    *type = h[3];
    *bytes += 12 + len;
    return 1;
}

/* Section: u32 length, then bytes; optionally zstd with a u8 method byte. */
static int put_section(buf *rec, const uint8_t *d, size_t len)
{
    return buf_u32(rec, (uint32_t)len) != 0 || buf_put(rec, d, len) != 0 ? -1 : 0;
}

typedef struct dumpctx {
    snap s;
    atomtab t;
    hdrstate hs;
    intmem im;
    buf rec, sa, sb, sc, sd, se, sf, tmp, out;
    int64_t *ivals;
    int64_t *keys;
    size_t ivcap, keycap;
#if defined(NGL_HAVE_ZSTD)
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
#endif
} dumpctx;

static int ctx_init(dumpctx *d)
{
    memset(d, 0, sizeof(*d)); /* zstd contexts are created on first use */
    return 0;
}

static void ctx_free(dumpctx *d)
{
    snap_free(&d->s);
    atomtab_free(&d->t);
    lines_free(&d->hs.prev);
    intmem_free(&d->im);
    buf *bs[] = {&d->rec, &d->sa, &d->sb, &d->sc, &d->sd, &d->se, &d->sf, &d->tmp, &d->out};
    for (size_t i = 0; i < sizeof(bs) / sizeof(bs[0]); i++) {
        buf_free(bs[i]);
    }
    free(d->ivals);
    free(d->keys);
#if defined(NGL_HAVE_ZSTD)
    ZSTD_freeCCtx(d->zc);
    ZSTD_freeDCtx(d->zd);
#endif
}

static int ensure_i64(int64_t **p, size_t *cap, size_t n)
{
    if (n <= *cap && *p != NULL) {
        return 0;
    }
    size_t c = n < 64 ? 64 : n;
    int64_t *q = realloc(*p, c * sizeof(int64_t));
    if (q == NULL) {
        return -1;
    }
    *p = q;
    *cap = c;
    return 0;
}

/* Append a packed section: u8 method (0 raw, 1 zstd), [u32 raw length], data. */
static int put_packed(dumpctx *d, buf *rec, const buf *raw)
{
#if defined(NGL_HAVE_ZSTD)
    if (d->zc == NULL && raw->len >= 32) {
        d->zc = ZSTD_createCCtx();
    }
    if (raw->len >= 32 && d->zc != NULL) {
        size_t zb = ZSTD_compressBound(raw->len);
        d->tmp.len = 0;
        if (buf_reserve(&d->tmp, zb) != 0) {
            return -1;
        }
        size_t zn = ZSTD_compressCCtx(d->zc, d->tmp.p, zb, raw->p, raw->len, 9);
        if (!ZSTD_isError(zn) && zn + 4 < raw->len) {
            if (buf_u32(rec, (uint32_t)(zn + 5)) != 0 || buf_putc(rec, 1) != 0 ||
                buf_u32(rec, (uint32_t)raw->len) != 0 || buf_put(rec, d->tmp.p, zn) != 0) {
                return -1;
            }
            return 0;
        }
    }
#else
    (void)d;
#endif
    if (buf_u32(rec, (uint32_t)(raw->len + 1)) != 0 || buf_putc(rec, 0) != 0 ||
        buf_put(rec, raw->p, raw->len) != 0) {
        return -1;
    }
    return 0;
}

/* Inverse of put_packed into d->tmp. @return 0, or a negative ngl_status. */
static int get_packed(dumpctx *d, const uint8_t *p, size_t len, size_t limit, const uint8_t **out,
                      size_t *outlen)
{
    if (len < 1) {
        return -(int)NGL_ERR_BAD_SECTION;
    }
    if (p[0] == 0) {
        *out = p + 1;
        *outlen = len - 1;
        return 0;
    }
    if (p[0] != 1 || len < 5) {
        return -(int)NGL_ERR_BAD_BACKEND;
    }
#if defined(NGL_HAVE_ZSTD)
    size_t raw = hpc_get_u32(p + 1);
    if (raw > limit) {
        return -(int)NGL_ERR_BAD_BACKEND;
    }
    if (d->zd == NULL && (d->zd = ZSTD_createDCtx()) == NULL) {
        return -(int)NGL_ERR_NO_MEMORY;
    }
    /* Stream it, growing the buffer with the output actually produced: a
     * corrupted length must not make us allocate it up front. */
    ZSTD_DCtx_reset(d->zd, ZSTD_reset_session_only);
    d->tmp.len = 0;
    ZSTD_inBuffer zin = {p + 5, len - 5, 0};
    for (;;) {
        size_t room = raw - d->tmp.len + 1; /* one spare byte detects overlong data */
        if (room > ((size_t)1 << 20)) {
            room = (size_t)1 << 20;
        }
        if (buf_reserve(&d->tmp, room) != 0) {
            return -(int)NGL_ERR_NO_MEMORY;
        }
        ZSTD_outBuffer zout = {d->tmp.p + d->tmp.len, room, 0};
        size_t rc = ZSTD_decompressStream(d->zd, &zout, &zin);
        if (ZSTD_isError(rc)) {
            return -(int)NGL_ERR_BAD_BACKEND;
        }
        d->tmp.len += zout.pos;
        if (d->tmp.len > raw) {
            return -(int)NGL_ERR_BAD_BACKEND;
        }
        if (rc == 0) {
            break; /* frame complete */
        }
        if (zin.pos == zin.size && zout.pos == 0) {
            return -(int)NGL_ERR_BAD_BACKEND; /* truncated frame */
        }
    }
    if (d->tmp.len != raw || zin.pos != zin.size) {
        return -(int)NGL_ERR_BAD_BACKEND;
    }
    *out = d->tmp.p;
    *outlen = raw;
    return 0;
#else
    (void)d;
    (void)limit;
    (void)out;
    (void)outlen;
    return -(int)NGL_ERR_BACKEND_UNAVAILABLE;
#endif
}

/* CRC32C of the snapshot text with the coordinate tokens of canonical lines
 * left out (FORMAT.md §7.4): what must come back byte for byte. */
static uint32_t text_crc(const snap *s, const atomtab *t)
{
    uint32_t crc = 0;
    static const uint8_t nl = '\n';
    const size_t nlines = s->hdr.n + s->atoms.n;
    size_t li = 0;
    for (size_t i = 0; i < s->hdr.n; i++, li++) {
        size_t len;
        const char *l = line_at(&s->hdr, i, &len);
        crc = ngl_crc32c(crc, l, len);
        if (!(s->no_newline && li + 1 == nlines)) {
            crc = ngl_crc32c(crc, &nl, 1);
        }
    }
    uint64_t m = 0;
    for (size_t i = 0; i < s->atoms.n; i++, li++) {
        size_t len;
        const char *l = line_at(&s->atoms, i, &len);
        if (t->canon[i]) {
            size_t p = 0;
            for (unsigned c = 0; c < t->ncols; c++) {
                unsigned k = t->kind[c];
                if (k >= CK_X && k < CK_X + 3) {
                    size_t b = t->tb[m * t->ncols + c], e = t->te[m * t->ncols + c];
                    crc = ngl_crc32c(crc, l + p, b - p);
                    p = e;
                }
            }
            crc = ngl_crc32c(crc, l + p, len - p);
            m++;
        } else {
            crc = ngl_crc32c(crc, l, len);
        }
        if (!(s->no_newline && li + 1 == nlines)) {
            crc = ngl_crc32c(crc, &nl, 1);
        }
    }
    return crc;
}

/* Fill the library frame's box from the snapshot header. */
static void frame_box(const snap *s, ngl_hpc_frame *f)
{
    f->has_box = s->box_ok;
    for (int a = 0; a < 3; a++) {
        int scaled = s->family == 2 || s->family == 4;
        f->box_lo[a] = scaled ? 0.0 : s->lo[a];
        f->box_hi[a] = scaled ? 1.0 : s->hi[a];
        /* wrapped families only: unwrapped coordinates never jump */
        f->periodic[a] = (uint8_t)((s->family == 1 || s->family == 2) && s->pp[a]);
    }
}

/* ----------------------------------------------------------- compress */
static void report_init(ngl_hpc_dump_report *r)
{
    memset(r, 0, sizeof(*r));
}

#define FAILF(code, ...)                                                                           \
    do {                                                                                           \
        snprintf(rep->message, sizeof(rep->message), __VA_ARGS__);                                 \
        st = (code);                                                                               \
        goto out;                                                                                  \
    } while (0)

ngl_status ngl_hpc_dump_compress(FILE *in, FILE *out, const ngl_hpc_dump_opts *opts,
                                 ngl_hpc_dump_report *report)
{
    ngl_hpc_dump_report dummy;
    ngl_hpc_dump_report *rep = report ? report : &dummy;
    report_init(rep);
    if (in == NULL || out == NULL || opts == NULL || !(opts->eps >= 0) || !isfinite(opts->eps) ||
        (opts->level != NGL_HPC_LEVEL_FASTEST && opts->level != NGL_HPC_LEVEL_FAST &&
         opts->level != NGL_HPC_LEVEL_DEFAULT && opts->level != NGL_HPC_LEVEL_BEST)) {
        snprintf(rep->message, sizeof(rep->message), "invalid arguments");
        return NGL_ERR_INVALID_ARG;
    }
    ngl_status st = NGL_OK;
    dumpctx d;
    reader r;
    memset(&r, 0, sizeof(r));
    r.f = in;
    ngl_hpc_encoder *enc = NULL;
    uint8_t *cbuf = NULL;
    size_t ccap = 0;
    unsigned decimals = DUMP_PRINT_SHORTEST;
    if (ctx_init(&d) != 0) {
        ctx_free(&d);
        snprintf(rep->message, sizeof(rep->message), "out of memory");
        return NGL_ERR_NO_MEMORY;
    }
    {
        uint8_t fh[16];
        memset(fh, 0, sizeof(fh));
        fh[0] = DUMP_VERSION;
        fh[1] = opts->rel ? 1 : 0;
        fh[2] = (uint8_t)opts->level;
        hpc_put_f64(fh + 8, opts->eps);
        if (write_record(out, DUMP_REC_FILE, fh, sizeof(fh), &rep->bytes_out) != 0) {
            FAILF(NGL_ERR_UNSUPPORTED, "write error: %s", strerror(errno));
        }
    }
    for (uint64_t index = 0;; index++) {
        int rr = snap_read(&r, &d.s, index, rep->message, sizeof(rep->message));
        if (rr < 0) {
            st = NGL_ERR_INVALID_ARG;
            goto out;
        }
        if (rr == 0) {
            break;
        }
        snap *s = &d.s;
        atomtab *t = &d.t;
        if (classify(s, t, rep->message, sizeof(rep->message)) != 0) {
            st = NGL_ERR_NO_MEMORY;
            goto out;
        }
        const int coords = s->family > 0 && t->m > 0;
        const uint64_t m = t->m;
        unsigned flags = 0;
        if (t->trailing) {
            flags |= SF_TRAILING;
        }
        if (coords) {
            flags |= SF_COORDS;
        }
        if (s->col_id < 0) {
            flags |= SF_NO_ID;
        }
        if (s->no_newline) {
            flags |= SF_NO_NEWLINE;
        }
        /* keys of the per-atom integer memory */
        if (ensure_i64(&d.keys, &d.keycap, m) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        for (uint64_t k = 0; k < m; k++) {
            d.keys[k] = coords ? t->ids[k] : (int64_t)k;
        }
        /* section A: header */
        d.sa.len = 0;
        if (hdr_encode(&d.hs, &s->hdr, &d.sa) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        /* section B: column kinds */
        d.sb.len = 0;
        buf_putc(&d.sb, (uint8_t)t->ncols);
        for (unsigned c = 0; c < t->ncols; c++) {
            buf_putc(&d.sb, (uint8_t)t->kind[c]);
        }
        /* section C: verbatim lines */
        d.sc.len = 0;
        buf_varint(&d.sc, t->n - m);
        {
            int64_t last = -1;
            for (uint64_t i = 0; i < t->n; i++) {
                if (t->canon[i]) {
                    continue;
                }
                size_t len;
                const char *l = line_at(&s->atoms, i, &len);
                buf_varint(&d.sc, (uint64_t)((int64_t)i - last - 1));
                buf_varint(&d.sc, len);
                buf_put(&d.sc, l, len);
                last = (int64_t)i;
            }
        }
        rep->verbatim_lines += t->n - m;
        /* section D: integer columns, per-atom deltas */
        char layout[sizeof(d.im.layout)];
        layout_string(s, t, layout, sizeof(layout));
        unsigned nint = 0;
        for (unsigned c = 0; c < t->ncols; c++) {
            nint += t->kind[c] == CK_INT;
        }
        if (strcmp(layout, d.im.layout) != 0 || d.im.nint != nint) {
            d.im.n = 0; /* columns changed: no memory */
        }
        if (intmem_prepare(&d.im, d.keys, m) != 0 ||
            ensure_i64(&d.ivals, &d.ivcap, (size_t)m * (nint ? nint : 1)) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        d.tmp.len = 0;
        buf *ib = &d.sf; /* scratch for the raw integer stream */
        ib->len = 0;
        {
            unsigned ci = 0;
            for (unsigned c = 0; c < t->ncols; c++) {
                if (t->kind[c] != CK_INT) {
                    continue;
                }
                int64_t prev = 0;
                for (uint64_t k = 0; k < m; k++) {
                    size_t len;
                    const char *l = line_at(&s->atoms, t->line_of[k], &len);
                    int64_t v;
                    (void)parse_canon_int(l + t->tb[k * t->ncols + c],
                                          t->te[k * t->ncols + c] - t->tb[k * t->ncols + c], &v);
                    uint32_t pp = intmem_find(&d.im, d.keys, k);
                    int64_t pred = pp != HPC_NONE ? d.im.vals[(size_t)pp * d.im.nint + ci] : prev;
                    if (buf_varint(ib, hpc_zigzag(hpc_wsub(v, pred))) != 0) {
                        FAILF(NGL_ERR_NO_MEMORY, "out of memory");
                    }
                    d.ivals[k * nint + ci] = v;
                    prev = v;
                }
                ci++;
            }
        }
        if (intmem_store(&d.im, layout, d.keys, m, nint, d.ivals) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        d.sd.len = 0;
        if (put_packed(&d, &d.sd, ib) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        /* section E: text columns */
        ib->len = 0;
        for (unsigned c = 0; c < t->ncols; c++) {
            if (t->kind[c] != CK_TEXT) {
                continue;
            }
            for (uint64_t k = 0; k < m; k++) {
                size_t len;
                const char *l = line_at(&s->atoms, t->line_of[k], &len);
                size_t b = t->tb[k * t->ncols + c], e = t->te[k * t->ncols + c];
                if (buf_put(ib, l + b, e - b) != 0 || buf_putc(ib, '\n') != 0) {
                    FAILF(NGL_ERR_NO_MEMORY, "out of memory");
                }
            }
        }
        d.se.len = 0;
        if (put_packed(&d, &d.se, ib) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        /* section F: the codec's records */
        d.sf.len = 0;
        if (coords) {
            if (enc == NULL) {
                ngl_hpc_params p;
                ngl_hpc_params_init(&p);
                p.dtype = NGL_HPC_F64;
                p.level = opts->level;
                if (opts->rel) {
                    p.rel = opts->eps * DUMP_EPS_LIB;
                    p.eps = 0;
                } else {
                    p.eps = opts->eps * DUMP_EPS_LIB;
                }
                if (opts->rel && !(p.rel > 0)) {
                    p.rel = 0; /* rel 0 means lossless */
                }
                if ((st = ngl_hpc_encoder_create(&p, &enc)) != NGL_OK) {
                    FAILF(st, "cannot create the encoder: %s", ngl_status_str(st));
                }
            }
            ngl_hpc_frame f;
            memset(&f, 0, sizeof(f));
            f.natoms = m;
            f.ids = (s->col_id < 0 && m == t->n) ? NULL : t->ids;
            f.xyz = t->xyz;
            frame_box(s, &f);
            size_t need = ngl_hpc_encode_bound(m);
            if (need > ccap) {
                uint8_t *nb = realloc(cbuf, need);
                if (nb == NULL) {
                    FAILF(NGL_ERR_NO_MEMORY, "out of memory");
                }
                cbuf = nb;
                ccap = need;
            }
            size_t clen;
            st = ngl_hpc_encoder_encode(enc, &f, cbuf, ccap, &clen);
            if (st != NGL_OK) {
                FAILF(st, "snapshot %" PRIu64 ": %s (%s)", index, ngl_status_str(st),
                      ngl_hpc_encoder_error(enc));
            }
            if (buf_put(&d.sf, cbuf, clen) != 0) {
                FAILF(NGL_ERR_NO_MEMORY, "out of memory");
            }
            double e = ngl_hpc_encoder_eps(enc);
            decimals = e > 0 ? print_decimals(e) : DUMP_PRINT_SHORTEST;
            rep->eps = opts->rel ? e / DUMP_EPS_LIB : opts->eps;
            rep->coords += 3 * m;
        }
        /* record */
        buf *rec = &d.rec;
        rec->len = 0;
        uint8_t fixed[24];
        hpc_put_u64(fixed, index);
        hpc_put_u64(fixed + 8, s->natoms);
        fixed[16] = (uint8_t)flags;
        fixed[17] = (uint8_t)(coords ? decimals : 0);
        hpc_put_u16(fixed + 18, 0);
        hpc_put_u32(fixed + 20, text_crc(s, t));
        if (buf_put(rec, fixed, sizeof(fixed)) != 0 || put_section(rec, d.sa.p, d.sa.len) ||
            put_section(rec, d.sb.p, d.sb.len) || put_section(rec, d.sc.p, d.sc.len) ||
            buf_put(rec, d.sd.p, d.sd.len) || buf_put(rec, d.se.p, d.se.len) ||
            put_section(rec, d.sf.p, d.sf.len)) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        if (write_record(out, DUMP_REC_SNAP, rec->p, rec->len, &rep->bytes_out) != 0) {
            FAILF(NGL_ERR_UNSUPPORTED, "write error: %s", strerror(errno));
        }
        rep->snapshots++;
        rep->atoms += t->n;
    }
    {
        uint8_t e[16];
        hpc_put_u64(e, rep->snapshots);
        hpc_put_u64(e + 8, r.bytes);
        if (write_record(out, DUMP_REC_END, e, sizeof(e), &rep->bytes_out) != 0 ||
            fflush(out) != 0) {
            FAILF(NGL_ERR_UNSUPPORTED, "write error: %s", strerror(errno));
        }
    }
    if (rep->eps == 0 && !opts->rel) {
        rep->eps = opts->eps;
    }
out:
    rep->bytes_in = r.bytes;
    free(r.line);
    free(cbuf);
    ngl_hpc_encoder_destroy(enc);
    ctx_free(&d);
    return st;
}

/* --------------------------------------------------------- decompress */
typedef struct secs {
    const uint8_t *p[6];
    size_t len[6];
} secs;

static int split_sections(const uint8_t *p, size_t len, size_t pos, secs *s)
{
    for (int i = 0; i < 6; i++) {
        if (len - pos < 4) {
            return -1;
        }
        size_t l = hpc_get_u32(p + pos);
        pos += 4;
        if (l > len - pos) {
            return -1;
        }
        s->p[i] = p + pos;
        s->len[i] = l;
        pos += l;
    }
    return pos == len ? 0 : -1;
}

static int out_line(buf *o, uint32_t *crc, const char *l, size_t len, int newline)
{
    *crc = ngl_crc32c(*crc, l, len);
    if (buf_put(o, l, len) != 0) {
        return -1;
    }
    if (newline) {
        *crc = ngl_crc32c(*crc, "\n", 1);
        return buf_putc(o, '\n');
    }
    return 0;
}

#undef FAILF
#define FAILF(code, ...)                                                                           \
    do {                                                                                           \
        snprintf(rep->message, sizeof(rep->message), __VA_ARGS__);                                 \
        st = (code);                                                                               \
        goto out;                                                                                  \
    } while (0)

ngl_status ngl_hpc_dump_decompress(FILE *in, FILE *out, ngl_hpc_dump_report *report)
{
    ngl_hpc_dump_report dummy;
    ngl_hpc_dump_report *rep = report ? report : &dummy;
    report_init(rep);
    if (in == NULL || out == NULL) {
        snprintf(rep->message, sizeof(rep->message), "invalid arguments");
        return NGL_ERR_INVALID_ARG;
    }
    ngl_status st = NGL_OK;
    dumpctx d;
    ngl_hpc_decoder *dec = NULL;
    buf recb;
    memset(&recb, 0, sizeof(recb));
    if (ctx_init(&d) != 0) {
        ctx_free(&d);
        snprintf(rep->message, sizeof(rep->message), "out of memory");
        return NGL_ERR_NO_MEMORY;
    }
    uint8_t type;
    int rr = read_record(in, &recb, &type, &rep->bytes_in, rep->message, sizeof(rep->message));
    if (rr == 0) {
        FAILF(NGL_ERR_TRUNCATED, "empty input: not an hpc container");
    }
    if (rr < 0) {
        st = (ngl_status)-rr;
        if (st == NGL_ERR_BAD_MAGIC) {
            snprintf(rep->message, sizeof(rep->message), "not an hpc container (bad magic)");
        }
        goto out;
    }
    if (type != DUMP_REC_FILE || recb.len != 16) {
        FAILF(NGL_ERR_BAD_SECTION, "container does not start with a file header");
    }
    if (recb.p[0] != DUMP_VERSION) {
        FAILF(NGL_ERR_BAD_VERSION, "container version %u, this build reads %u", recb.p[0],
              DUMP_VERSION);
    }
    if ((recb.p[1] & ~1u) || recb.p[2] > NGL_HPC_LEVEL_BEST || recb.p[3] ||
        hpc_get_u32(recb.p + 4)) {
        FAILF(NGL_ERR_BAD_FLAGS, "file header: reserved fields set");
    }
    for (uint64_t index = 0;; index++) {
        rr = read_record(in, &recb, &type, &rep->bytes_in, rep->message, sizeof(rep->message));
        if (rr == 0) {
            FAILF(NGL_ERR_TRUNCATED,
                  "truncated container: no end record after %" PRIu64 " snapshots", index);
        }
        if (rr < 0) {
            st = (ngl_status)-rr;
            goto out;
        }
        if (type == DUMP_REC_END) {
            if (recb.len != 16 || hpc_get_u64(recb.p) != index) {
                FAILF(NGL_ERR_BAD_SECTION, "end record disagrees: %" PRIu64 " snapshots read",
                      index);
            }
            uint8_t extra;
            if (fread(&extra, 1, 1, in) != 0) {
                FAILF(NGL_ERR_BAD_LENGTH, "data after the end record");
            }
            break;
        }
        if (type != DUMP_REC_SNAP) {
            FAILF(NGL_ERR_BAD_SECTION, "unexpected record type '%c'", type);
        }
        const uint8_t *p = recb.p;
        size_t plen = recb.len;
        if (plen < 24 || hpc_get_u64(p) != index) {
            FAILF(NGL_ERR_STEP_MISMATCH, "snapshot record %" PRIu64 " out of sequence", index);
        }
        uint64_t natoms = hpc_get_u64(p + 8);
        unsigned flags = p[16], decimals = p[17];
        uint32_t want_crc = hpc_get_u32(p + 20);
        if ((flags & ~SF_KNOWN) || hpc_get_u16(p + 18)) {
            FAILF(NGL_ERR_BAD_FLAGS, "snapshot %" PRIu64 ": unknown flags", index);
        }
        secs sec;
        if (split_sections(p, plen, 24, &sec) != 0) {
            FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": sections do not add up", index);
        }
        snap *s = &d.s;
        if (hdr_decode(&d.hs, sec.p[0], sec.len[0], &s->hdr) != 0) {
            FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad header section", index);
        }
        char m2[200];
        if (snap_parse_header(s, m2, sizeof(m2)) != 0 || s->natoms != natoms) {
            FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": header does not parse", index);
        }
        /* verbatim lines are also what bounds natoms by the record size */
        const uint8_t *vb = sec.p[2];
        size_t vlen = sec.len[2], vpos = 0;
        uint64_t nverb;
        if (hpc_get_varint(vb, vlen, &vpos, &nverb) != 0 || nverb > natoms) {
            FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad verbatim section", index);
        }
        const uint64_t m = natoms - nverb;
        /* column kinds */
        const int coords = (flags & SF_COORDS) != 0;
        atomtab *t = &d.t;
        if (sec.len[1] != 1u + s->ncols || sec.p[1][0] != s->ncols ||
            coords != (s->family > 0 && m > 0) || ((flags & SF_NO_ID) != 0) != (s->col_id < 0)) {
            FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": columns disagree with the header",
                  index);
        }
        t->ncols = s->ncols;
        for (unsigned c = 0; c < s->ncols; c++) {
            unsigned k = sec.p[1][1 + c];
            unsigned want = CK_INT;
            if (s->family > 0) {
                for (int a = 0; a < 3; a++) {
                    if ((int)c == s->col_x[a]) {
                        want = CK_X + (unsigned)a;
                    }
                }
                if ((int)c == s->col_id) {
                    want = CK_ID;
                }
            }
            if (want == CK_INT ? (k != CK_INT && k != CK_TEXT) : k != want) {
                FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad column kind", index);
            }
            t->kind[c] = k;
        }
        /* codec frame */
        const ngl_hpc_frame *fr = NULL;
        if (coords) {
            if (dec == NULL && (st = ngl_hpc_decoder_create(&dec)) != NGL_OK) {
                FAILF(st, "cannot create the decoder");
            }
            (void)ngl_hpc_decoder_set_max_atoms(dec, m);
            size_t pos = 0;
            int got = 0;
            while (pos < sec.len[5]) {
                size_t rl;
                st = ngl_hpc_record_size(sec.p[5] + pos, sec.len[5] - pos, &rl);
                if (st == NGL_OK && rl > sec.len[5] - pos) {
                    st = NGL_ERR_TRUNCATED;
                }
                if (st == NGL_OK) {
                    int g = 0;
                    st = ngl_hpc_decoder_decode(dec, sec.p[5] + pos, rl, &g);
                    if (st == NGL_OK && g && got) {
                        st = NGL_ERR_BAD_SECTION;
                    }
                    got |= g;
                }
                if (st != NGL_OK) {
                    FAILF(st, "snapshot %" PRIu64 ": coordinates: %s (%s)", index,
                          ngl_status_str(st), ngl_hpc_decoder_error(dec));
                }
                pos += rl;
            }
            fr = ngl_hpc_decoder_frame(dec);
            ngl_hpc_params pr;
            if (!got || fr == NULL || fr->natoms != m ||
                ngl_hpc_decoder_params(dec, &pr) != NGL_OK || pr.dtype != NGL_HPC_F64) {
                FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": no coordinate frame", index);
            }
            unsigned want_dec = pr.eps > 0 && pr.eps <= DBL_MAX / 4 && !(pr.eps < 1e-290)
                                    ? print_decimals(pr.eps)
                                    : DUMP_PRINT_SHORTEST;
            /* lossless streams report the bound asked for; their step is 0 */
            if (decimals != want_dec && decimals != DUMP_PRINT_SHORTEST) {
                FAILF(NGL_ERR_BAD_SCALE, "snapshot %" PRIu64 ": print precision disagrees", index);
            }
            rep->eps = pr.eps;
        } else if (sec.len[5] != 0 || decimals != 0) {
            FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": unexpected coordinate data", index);
        }
        /* keys */
        if (ensure_i64(&d.keys, &d.keycap, m) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        for (uint64_t k = 0; k < m; k++) {
            d.keys[k] = coords ? fr->ids[k] : (int64_t)k;
        }
        /* integer columns */
        char layout[sizeof(d.im.layout)];
        layout_string(s, t, layout, sizeof(layout));
        unsigned nint = 0, ntext = 0;
        for (unsigned c = 0; c < t->ncols; c++) {
            nint += t->kind[c] == CK_INT;
            ntext += t->kind[c] == CK_TEXT;
        }
        if (strcmp(layout, d.im.layout) != 0 || d.im.nint != nint) {
            d.im.n = 0;
        }
        if (intmem_prepare(&d.im, d.keys, m) != 0 ||
            ensure_i64(&d.ivals, &d.ivcap, (size_t)m * (nint ? nint : 1)) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        const uint8_t *ib;
        size_t iblen;
        int g = get_packed(&d, sec.p[3], sec.len[3], (size_t)(10 * m * nint + 16), &ib, &iblen);
        if (g < 0) {
            FAILF((ngl_status)-g, "snapshot %" PRIu64 ": bad integer section", index);
        }
        {
            size_t pos = 0;
            unsigned ci = 0;
            for (unsigned c = 0; c < t->ncols; c++) {
                if (t->kind[c] != CK_INT) {
                    continue;
                }
                int64_t prev = 0;
                for (uint64_t k = 0; k < m; k++) {
                    uint64_t z;
                    if (hpc_get_varint(ib, iblen, &pos, &z) != 0) {
                        FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad integer section",
                              index);
                    }
                    uint32_t pp = intmem_find(&d.im, d.keys, k);
                    int64_t pred = pp != HPC_NONE ? d.im.vals[(size_t)pp * d.im.nint + ci] : prev;
                    int64_t v = hpc_wadd(pred, hpc_unzigzag(z));
                    d.ivals[k * nint + ci] = v;
                    prev = v;
                }
                ci++;
            }
            if (pos != iblen) {
                FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad integer section", index);
            }
        }
        if (intmem_store(&d.im, layout, d.keys, m, nint, d.ivals) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        /* text columns: split into tokens, kept as offsets in d.sf */
        const uint8_t *tb;
        size_t tblen;
        g = get_packed(&d, sec.p[4], sec.len[4], (size_t)m * DUMP_MAX_LINE, &tb, &tblen);
        if (g < 0) {
            FAILF((ngl_status)-g, "snapshot %" PRIu64 ": bad text section", index);
        }
        /* token k of text column j starts at toff[j*m + k] (copied: tmp is reused) */
        d.se.len = 0;
        if (buf_put(&d.se, tb, tblen) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        if (atomtab_reserve(t, m ? m : 1, (ntext ? ntext : 1) + 1) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "out of memory");
        }
        {
            size_t pos = 0;
            for (unsigned j = 0; j < ntext; j++) {
                for (uint64_t k = 0; k < m; k++) {
                    const uint8_t *nlp =
                        pos < tblen ? memchr(d.se.p + pos, '\n', tblen - pos) : NULL;
                    size_t e = nlp ? (size_t)(nlp - d.se.p) : 0;
                    if (nlp == NULL || e == pos || memchr(d.se.p + pos, ' ', e - pos)) {
                        FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad text section", index);
                    }
                    t->tb[k * t->tokcap + j] = (uint32_t)pos;
                    t->te[k * t->tokcap + j] = (uint32_t)e;
                    pos = e + 1;
                }
            }
            if (pos != tblen) {
                FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad text section", index);
            }
        }
        /* compose the snapshot */
        buf *o = &d.out;
        o->len = 0;
        uint32_t crc = 0;
        const size_t nlines = s->hdr.n + natoms;
        const int no_nl = (flags & SF_NO_NEWLINE) != 0;
        for (size_t i = 0; i < s->hdr.n; i++) {
            size_t len;
            const char *l = line_at(&s->hdr, i, &len);
            if (out_line(o, &crc, l, len, !(no_nl && i + 1 == nlines)) != 0) {
                FAILF(NGL_ERR_NO_MEMORY, "out of memory");
            }
        }
        uint64_t next_verb = UINT64_MAX, verb_left = nverb;
        int64_t lastv = -1;
        if (verb_left) {
            uint64_t dd;
            if (hpc_get_varint(vb, vlen, &vpos, &dd) != 0 || dd > natoms) {
                FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad verbatim section", index);
            }
            next_verb = (uint64_t)(lastv + 1) + dd;
        }
        uint64_t k = 0;
        char num[64];
        for (uint64_t i = 0; i < natoms; i++) {
            const int last = no_nl && s->hdr.n + i + 1 == nlines;
            if (i == next_verb) {
                uint64_t len;
                if (hpc_get_varint(vb, vlen, &vpos, &len) != 0 || len > vlen - vpos ||
                    memchr(vb + vpos, '\n', (size_t)len)) {
                    FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad verbatim section", index);
                }
                if (out_line(o, &crc, (const char *)vb + vpos, (size_t)len, !last) != 0) {
                    FAILF(NGL_ERR_NO_MEMORY, "out of memory");
                }
                vpos += (size_t)len;
                lastv = (int64_t)i;
                verb_left--;
                next_verb = UINT64_MAX;
                if (verb_left) {
                    uint64_t dd;
                    if (hpc_get_varint(vb, vlen, &vpos, &dd) != 0 || dd > natoms) {
                        FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad verbatim section",
                              index);
                    }
                    next_verb = (uint64_t)(lastv + 1) + dd;
                }
                continue;
            }
            if (k >= m) {
                FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": line count disagrees", index);
            }
            unsigned ci = 0, tj = 0;
            for (unsigned c = 0; c < t->ncols; c++) {
                unsigned kind = t->kind[c];
                const char *tok = num;
                size_t tl = 0;
                int is_coord = 0;
                if (kind == CK_ID) {
                    tl = (size_t)snprintf(num, sizeof(num), "%" PRId64, fr->ids[k]);
                } else if (kind >= CK_X && kind < CK_X + 3) {
                    const double *xyz = fr->xyz;
                    tl =
                        (size_t)print_coord(num, sizeof(num), xyz[3 * k + (kind - CK_X)], decimals);
                    is_coord = 1;
                } else if (kind == CK_INT) {
                    tl = (size_t)snprintf(num, sizeof(num), "%" PRId64, d.ivals[k * nint + ci]);
                    ci++;
                } else {
                    size_t b = t->tb[k * t->tokcap + tj], e = t->te[k * t->tokcap + tj];
                    tok = (const char *)d.se.p + b;
                    tl = e - b;
                    tj++;
                }
                if (c > 0) {
                    crc = ngl_crc32c(crc, " ", 1);
                    if (buf_putc(o, ' ') != 0) {
                        FAILF(NGL_ERR_NO_MEMORY, "out of memory");
                    }
                }
                if (!is_coord) {
                    crc = ngl_crc32c(crc, tok, tl);
                }
                if (buf_put(o, tok, tl) != 0) {
                    FAILF(NGL_ERR_NO_MEMORY, "out of memory");
                }
            }
            if (flags & SF_TRAILING) {
                crc = ngl_crc32c(crc, " ", 1);
                buf_putc(o, ' ');
            }
            if (!last) {
                crc = ngl_crc32c(crc, "\n", 1);
                if (buf_putc(o, '\n') != 0) {
                    FAILF(NGL_ERR_NO_MEMORY, "out of memory");
                }
            }
            k++;
        }
        if (k != m || verb_left != 0 || vpos != vlen) {
            FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": line count disagrees", index);
        }
        if (crc != want_crc) {
            FAILF(NGL_ERR_CRC_MISMATCH,
                  "snapshot %" PRIu64 ": reconstructed text does not match the original's checksum",
                  index);
        }
        if (fwrite(o->p, 1, o->len, out) != o->len) {
            FAILF(NGL_ERR_UNSUPPORTED, "write error: %s", strerror(errno));
        }
        rep->bytes_out += o->len;
        rep->snapshots++;
        rep->atoms += natoms;
        rep->coords += coords ? 3 * m : 0;
        rep->verbatim_lines += nverb;
    }
    if (fflush(out) != 0) {
        FAILF(NGL_ERR_UNSUPPORTED, "write error: %s", strerror(errno));
    }
out:
    ngl_hpc_decoder_destroy(dec);
    buf_free(&recb);
    ctx_free(&d);
    return st;
}

/* --------------------------------------------------------------- verify */
ngl_status ngl_hpc_dump_verify(FILE *original, FILE *decoded, const ngl_hpc_dump_opts *opts,
                               ngl_hpc_dump_report *report)
{
    ngl_hpc_dump_report dummy;
    ngl_hpc_dump_report *rep = report ? report : &dummy;
    report_init(rep);
    if (original == NULL || decoded == NULL || opts == NULL || !(opts->eps >= 0) ||
        !isfinite(opts->eps)) {
        snprintf(rep->message, sizeof(rep->message), "invalid arguments");
        return NGL_ERR_INVALID_ARG;
    }
    ngl_status st = NGL_OK;
    reader ra, rb;
    memset(&ra, 0, sizeof(ra));
    memset(&rb, 0, sizeof(rb));
    ra.f = original;
    rb.f = decoded;
    snap sa, sb;
    memset(&sa, 0, sizeof(sa));
    memset(&sb, 0, sizeof(sb));
    atomtab t;
    memset(&t, 0, sizeof(t));
    double eps = opts->rel ? -1.0 : opts->eps; /* rel: resolved on the first coordinates */
    char m1[200], m2[200];
    for (uint64_t index = 0;; index++) {
        int r1 = snap_read(&ra, &sa, index, m1, sizeof(m1));
        int r2 = snap_read(&rb, &sb, index, m2, sizeof(m2));
        if (r1 < 0) {
            FAILF(NGL_ERR_INVALID_ARG, "ORIGINAL: %s", m1);
        }
        if (r2 < 0) {
            FAILF(NGL_ERR_INVALID_ARG, "DECODED: %s", m2);
        }
        if (r1 == 0 || r2 == 0) {
            if (r1 != r2) {
                FAILF(NGL_ERR_BAD_SECTION, "%s has more snapshots (from snapshot %" PRIu64 ")",
                      r1 ? "ORIGINAL" : "DECODED", index);
            }
            break;
        }
        if (sa.hdr.n != sb.hdr.n) {
            FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": header line count differs", index);
        }
        for (size_t i = 0; i < sa.hdr.n; i++) {
            size_t l1, l2;
            const char *a = line_at(&sa.hdr, i, &l1);
            const char *b = line_at(&sb.hdr, i, &l2);
            if (l1 != l2 || memcmp(a, b, l1)) {
                FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": header line %zu differs", index,
                      i + 1);
            }
        }
        if (sa.no_newline != sb.no_newline) {
            FAILF(NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": final newline differs", index);
        }
        if (classify(&sa, &t, m1, sizeof(m1)) != 0) {
            FAILF(NGL_ERR_NO_MEMORY, "%s", m1);
        }
        if (eps < 0 && sa.family > 0 && t.m > 0) {
            double mn = INFINITY, mx = -INFINITY;
            for (uint64_t k = 0; k < 3 * t.m; k++) {
                mn = t.xyz[k] < mn ? t.xyz[k] : mn;
                mx = t.xyz[k] > mx ? t.xyz[k] : mx;
            }
            eps = opts->eps * (mx - mn);
        }
        const double e = eps < 0 ? 0 : eps;
        size_t beg[DUMP_MAX_COLS + 1], end[DUMP_MAX_COLS + 1];
        uint64_t k = 0;
        for (uint64_t i = 0; i < sa.atoms.n; i++) {
            size_t l1, l2;
            const char *a = line_at(&sa.atoms, i, &l1);
            const char *b = line_at(&sb.atoms, i, &l2);
            if (!t.canon[i] || sa.family == 0) {
                if (l1 != l2 || memcmp(a, b, l1)) {
                    FAILF(NGL_ERR_BAD_SECTION,
                          "snapshot %" PRIu64 ": atom line %" PRIu64 " differs", index, i + 1);
                }
                k += t.canon[i];
                continue;
            }
            int tr;
            int nt = tokenize(b, l2, beg, end, t.ncols + 1, &tr);
            if (nt != (int)t.ncols || tr != t.trailing) {
                FAILF(NGL_ERR_BAD_SECTION,
                      "snapshot %" PRIu64 ": atom line %" PRIu64 " has a different layout", index,
                      i + 1);
            }
            for (unsigned c = 0; c < t.ncols; c++) {
                size_t ab = t.tb[k * t.ncols + c], ae = t.te[k * t.ncols + c];
                unsigned kind = t.kind[c];
                if (kind >= CK_X && kind < CK_X + 3) {
                    double vb;
                    if (parse_double(b + beg[c], end[c] - beg[c], &vb) != 0) {
                        FAILF(NGL_ERR_BAD_CODE,
                              "snapshot %" PRIu64 ": atom line %" PRIu64
                              ": coordinate '%.*s' does not parse",
                              index, i + 1, (int)(end[c] - beg[c] > 40 ? 40 : end[c] - beg[c]),
                              b + beg[c]);
                    }
                    double va = t.xyz[3 * k + (kind - CK_X)];
                    double err = fabs(va - vb);
                    if (!(err <= e)) {
                        FAILF(NGL_ERR_BAD_CODE,
                              "snapshot %" PRIu64 ": atom line %" PRIu64
                              ", column %s: |%.17g - %.17g| = %.3g > eps %.3g",
                              index, i + 1, sa.colname[c], vb, va, err, e);
                    }
                    rep->max_err = err > rep->max_err ? err : rep->max_err;
                    rep->coords++;
                } else if (end[c] - beg[c] != ae - ab || memcmp(a + ab, b + beg[c], ae - ab)) {
                    FAILF(NGL_ERR_BAD_SECTION,
                          "snapshot %" PRIu64 ": atom line %" PRIu64 ", column %s differs", index,
                          i + 1, sa.colname[c]);
                }
            }
            k++;
        }
        rep->snapshots++;
        rep->atoms += sa.atoms.n;
    }
    rep->eps = eps < 0 ? 0 : eps;
out:
    rep->bytes_in = ra.bytes + rb.bytes;
    free(ra.line);
    free(rb.line);
    snap_free(&sa);
    snap_free(&sb);
    atomtab_free(&t);
    return st;
}

/* ----------------------------------------------------------------- scan */
ngl_status ngl_hpc_dump_scan(FILE *in, ngl_hpc_dump_frame_fn fn, void *user,
                             ngl_hpc_dump_report *report)
{
    ngl_hpc_dump_report dummy;
    ngl_hpc_dump_report *rep = report ? report : &dummy;
    report_init(rep);
    if (in == NULL || fn == NULL) {
        snprintf(rep->message, sizeof(rep->message), "invalid arguments");
        return NGL_ERR_INVALID_ARG;
    }
    ngl_status st = NGL_OK;
    reader r;
    memset(&r, 0, sizeof(r));
    r.f = in;
    snap s;
    memset(&s, 0, sizeof(s));
    atomtab t;
    memset(&t, 0, sizeof(t));
    for (uint64_t index = 0;; index++) {
        int rr = snap_read(&r, &s, index, rep->message, sizeof(rep->message));
        if (rr < 0) {
            st = NGL_ERR_INVALID_ARG;
            goto out;
        }
        if (rr == 0) {
            break;
        }
        if (classify(&s, &t, rep->message, sizeof(rep->message)) != 0) {
            st = NGL_ERR_NO_MEMORY;
            goto out;
        }
        ngl_hpc_frame f;
        memset(&f, 0, sizeof(f));
        f.natoms = s.family > 0 ? t.m : 0;
        f.ids = t.ids;
        f.xyz = t.xyz;
        frame_box(&s, &f);
        rep->snapshots++;
        rep->atoms += t.n;
        rep->coords += 3 * f.natoms;
        rep->verbatim_lines += t.n - t.m;
        if (fn(user, index, &f) != 0) {
            snprintf(rep->message, sizeof(rep->message),
                     "stopped by the callback at snapshot %" PRIu64, index);
            st = NGL_ERR_INVALID_ARG;
            goto out;
        }
    }
out:
    rep->bytes_in = r.bytes;
    free(r.line);
    snap_free(&s);
    atomtab_free(&t);
    return st;
}
