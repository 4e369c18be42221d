/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_dump_text.c -- reading and printing LAMMPS text dumps (`dump custom`,
 * `dump atom`; hpc/FORMAT.md §7.3, §7.5).
 *
 * A dump is read one snapshot at a time: its header lines, from `ITEM:` to
 * `ITEM: ATOMS ...`, then exactly as many atom lines as `NUMBER OF ATOMS`
 * says. Reading is strict about structure (a truncated or binary file stops
 * with a message naming the line) and lenient about content: whatever the
 * header holds besides the count, box and columns is kept as text, and an
 * atom line that does not fit the columns is not an error, only not
 * *canonical* — it travels verbatim. The classifier decides, per snapshot,
 * which lines are canonical and what kind each column is; both the
 * compressor and verify see the text through it, so they agree on what the
 * coordinates are. Printing is the other half: the decimals a coordinate is
 * printed with are what keeps the bound after the decoded dump is parsed
 * again (§7.5).
 */
#include "hpc_dump.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- lines */
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

/* A finite number filling the whole token (strtod, under 64 bytes). */
int hpc_dump_parse_double(const char *s, size_t len, double *out)
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

/* ----------------------------------------------------------- snapshot header */
/* The next token of @p l at or after *p, tokens being separated by runs of
 * spaces: *p moves to its start, and it ends before the returned offset
 * (empty at the end of the line). */
static size_t next_token(const char *l, size_t len, size_t *p)
{
    while (*p < len && l[*p] == ' ') {
        (*p)++;
    }
    size_t q = *p;
    while (q < len && l[q] != ' ') {
        q++;
    }
    return q;
}

/* `ITEM: BOX BOUNDS [xy xz yz] f f f` and the three bound lines after it
 * (header line @p i). Only an orthogonal box with finite lo < hi on every
 * axis is a box for the codec; anything else is kept as text and the frame
 * goes without a box. @return 0, or -1 if the bound lines are missing. */
static int parse_box(snap *s, size_t i, const char *l, size_t len, char *msg, size_t msgcap)
{
    int tri = 0;
    char flags[3][3] = {{0}};
    int nf = 0;
    size_t p = strlen("ITEM: BOX BOUNDS");
    while (p < len) {
        size_t q = next_token(l, len, &p);
        if (q > p) {
            if ((q - p == 2) &&
                (!memcmp(l + p, "xy", 2) || !memcmp(l + p, "xz", 2) || !memcmp(l + p, "yz", 2))) {
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
    return 0;
}

/* The column names of `ITEM: ATOMS ...`. @return 0, or -1 past DUMP_MAX_COLS. */
static int parse_columns(snap *s, const char *l, size_t len, char *msg, size_t msgcap)
{
    size_t p = strlen("ITEM: ATOMS");
    while (p < len) {
        size_t q = next_token(l, len, &p);
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
    return 0;
}

/* The id column and the coordinates: the first complete triple, by the
 * position of its first column, of x y z, xs ys zs, xu yu zu, xsu ysu zsu. */
static void choose_columns(snap *s)
{
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
}

/* The atom count after `ITEM: NUMBER OF ATOMS` (header line @p i). */
static int parse_natoms(snap *s, size_t i, char *msg, size_t msgcap)
{
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
        snprintf(msg, msgcap, "%" PRIu64 " atoms in one snapshot: more than %" PRIu64, s->natoms,
                 (uint64_t)NGL_HPC_DUMP_MAX_ATOMS);
        return -1;
    }
    return 0;
}

int hpc_snap_parse_header(snap *s, char *msg, size_t msgcap)
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
            if (parse_natoms(s, i, msg, msgcap) != 0) {
                return -1;
            }
            have_n = 1;
        } else if (starts(l, len, "ITEM: BOX BOUNDS")) {
            if (parse_box(s, i, l, len, msg, msgcap) != 0) {
                return -1;
            }
        } else if (starts(l, len, "ITEM: ATOMS")) {
            have_atoms = 1;
            if (parse_columns(s, l, len, msg, msgcap) != 0) {
                return -1;
            }
        }
    }
    if (!have_n || !have_atoms) {
        snprintf(msg, msgcap, "snapshot header lacks %s",
                 !have_n ? "ITEM: NUMBER OF ATOMS" : "ITEM: ATOMS");
        return -1;
    }
    choose_columns(s);
    return 0;
}

/* ------------------------------------------------------------- snapshot */
/* The header lines of snapshot @p index, the first (length @p n, newline
 * @p nl) already read: up to and including `ITEM: ATOMS`. @return 0 or -1. */
static int read_header_lines(reader *r, snap *s, uint64_t index, uint64_t first_line, ssize_t n,
                             int nl, char *msg, size_t msgcap)
{
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
            return 0;
        }
        if (!nl) {
            break;
        }
        n = rd_line(r, &nl, msg, msgcap);
        if (n == -2) {
            return -1;
        }
        if (n == -1) {
            break;
        }
    }
    snprintf(msg, msgcap,
             "truncated dump: input ends inside the header of snapshot %" PRIu64 " (line %" PRIu64
             ")",
             index, r->lineno);
    return -1;
}

/* The s->natoms atom lines of snapshot @p index. @return 0 or -1. */
static int read_atom_lines(reader *r, snap *s, uint64_t index, uint64_t first_line, char *msg,
                           size_t msgcap)
{
    int nl;
    for (uint64_t k = 0; k < s->natoms; k++) {
        ssize_t n = rd_line(r, &nl, msg, msgcap);
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
    return 0;
}

int hpc_snap_read(reader *r, snap *s, uint64_t index, char *msg, size_t msgcap)
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
    if (read_header_lines(r, s, index, first_line, n, nl, msg, msgcap) != 0) {
        return -1;
    }
    if (hpc_snap_parse_header(s, msg + 0, msgcap) != 0) {
        char tmp[200];
        snprintf(tmp, sizeof(tmp), "%s", msg);
        snprintf(msg, msgcap, "snapshot at line %" PRIu64 ": %s", first_line, tmp);
        return -1;
    }
    if (s->no_newline && s->natoms > 0) {
        snprintf(msg, msgcap, "truncated dump: snapshot %" PRIu64 " ends after its header", index);
        return -1;
    }
    return read_atom_lines(r, s, index, first_line, msg, msgcap) == 0 ? 1 : -1;
}

void hpc_snap_free(snap *s)
{
    lines_free(&s->hdr);
    lines_free(&s->atoms);
}

/* ------------------------------------------------------- canonical lines */
int hpc_dump_tokenize(const char *l, size_t len, size_t *beg, size_t *end, unsigned max,
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

void hpc_atomtab_free(atomtab *t)
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

int hpc_atomtab_reserve(atomtab *t, uint64_t n, unsigned ncols)
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
int hpc_snap_classify(const snap *s, atomtab *t, char *msg, size_t msgcap)
{
    const unsigned nc = s->ncols;
    t->n = s->atoms.n;
    t->m = 0;
    t->ncols = nc;
    t->trailing = 0;
    if (hpc_atomtab_reserve(t, t->n, nc + 1) != 0 || hpc_idmap_reset(&t->dup, t->n) != 0) {
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
        int nt = hpc_dump_tokenize(l, len, beg, end, nc + 1, &tr);
        t->canon[i] = 0;
        if (nt != (int)nc || tr != t->trailing || nc == 0) {
            continue;
        }
        double v[3] = {0, 0, 0};
        int ok = 1;
        for (unsigned c = 0; c < nc && ok; c++) {
            unsigned k = t->kind[c];
            if (k >= CK_X && k < CK_X + 3) {
                ok = hpc_dump_parse_double(l + beg[c], end[c] - beg[c], &v[k - CK_X]) == 0;
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

/* Fill the library frame's box from the snapshot header. */
void hpc_snap_frame_box(const snap *s, ngl_hpc_frame *f)
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

/* -------------------------------------------------------------- printing */
/* Decimals that keep the printing error within eps_lib * 2^-8 (§7.5). */
unsigned hpc_dump_print_decimals(double eps_lib)
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
int hpc_dump_print_coord(char *out, size_t cap, double v, unsigned dec)
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

/* ------------------------------------------------------------------ scan */
/* The reader's public face: snapshots as library frames, for tools and
 * benchmarks that want the coordinates without the container. */
ngl_status ngl_hpc_dump_scan(FILE *in, ngl_hpc_dump_frame_fn fn, void *user,
                             ngl_hpc_dump_report *report)
{
    ngl_hpc_dump_report dummy;
    ngl_hpc_dump_report *rep = report ? report : &dummy;
    hpc_dump_report_init(rep);
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
        int rr = hpc_snap_read(&r, &s, index, rep->message, sizeof(rep->message));
        if (rr < 0) {
            st = NGL_ERR_INVALID_ARG;
            goto out;
        }
        if (rr == 0) {
            break;
        }
        if (hpc_snap_classify(&s, &t, rep->message, sizeof(rep->message)) != 0) {
            st = NGL_ERR_NO_MEMORY;
            goto out;
        }
        ngl_hpc_frame f;
        memset(&f, 0, sizeof(f));
        f.natoms = s.family > 0 ? t.m : 0;
        f.ids = t.ids;
        f.xyz = t.xyz;
        hpc_snap_frame_box(&s, &f);
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
    hpc_snap_free(&s);
    hpc_atomtab_free(&t);
    return st;
}
