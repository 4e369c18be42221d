/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_dump.h -- private to the LAMMPS dump container (hpc/FORMAT.md §7);
 * never installed. The container is split into rooms, one idea each:
 *
 *   hpc_dump_text.c        reading text dumps (lines, snapshots, headers,
 *                          canonical atom lines), printing coordinates, and
 *                          ngl_hpc_dump_scan(), the reader's public face
 *   hpc_dump_records.c     the bytes of the container: record framing, the
 *                          snapshot record's sections (header deltas, column
 *                          kinds, verbatim lines, integer and text columns,
 *                          packed sections) both ways, and the text CRC
 *   hpc_dump_compress.c    ngl_hpc_dump_compress(): text -> records
 *   hpc_dump_decompress.c  ngl_hpc_dump_decompress(): records -> text
 *   hpc_dump_verify.c      ngl_hpc_dump_verify(): two texts, compared
 *
 * The drivers decide the order things happen in and the checks between
 * them; the encoder and decoder of every section sit next to each other in
 * hpc_dump_records.c so that they cannot drift apart. The small buffer and
 * line helpers are inline here because the decompressor's per-token loop
 * calls them for every byte it prints.
 */
#ifndef NGL_HPC_DUMP_H
#define NGL_HPC_DUMP_H

#include "hpc_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

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

/* The records of a container (§7.1) and the largest one a reader accepts. */
#define DUMP_MAX_RECORD ((size_t)1 << 31)

/* ------------------------------------------------------------- growable buffers */
typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static inline int buf_reserve(buf *b, size_t extra)
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

static inline int buf_put(buf *b, const void *d, size_t n)
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

static inline int buf_putc(buf *b, uint8_t c)
{
    return buf_put(b, &c, 1);
}

static inline int buf_varint(buf *b, uint64_t v)
{
    if (buf_reserve(b, 10) != 0) {
        return -1;
    }
    b->len += ngl_varint_put(b->p + b->len, v);
    return 0;
}

static inline int buf_u32(buf *b, uint32_t v)
{
    uint8_t t[4];
    ngl_wr_u32(t, v);
    return buf_put(b, t, 4);
}

static inline void buf_free(buf *b)
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

static inline void lines_clear(lines *l)
{
    l->text.len = 0;
    l->n = 0;
}

static inline int lines_add(lines *l, const char *s, size_t len)
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

static inline void lines_free(lines *l)
{
    buf_free(&l->text);
    free(l->off);
    memset(l, 0, sizeof(*l));
}

/* ------------------------------------------------------------------ text */
/* A text dump being read, line by line; bytes and lineno feed the messages. */
typedef struct reader {
    FILE *f;
    char *line;
    size_t cap;
    uint64_t lineno;
    uint64_t bytes;
    int eof;
} reader;

/* One snapshot (§7.3): its header lines, its atom lines, and what the
 * header says (atom count, box, columns, which coordinate triple). */
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

/* Canonical decimal int64 token: -?(0|[1-9][0-9]*), no "-0" (§7.3). Inline:
 * the classifier, the header deltas and the integer columns call it per token. */
static inline int parse_canon_int(const char *s, size_t len, int64_t *out)
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

/* The atom lines of a snapshot, classified (§7.3): the column kinds, which
 * lines are canonical, and per canonical line its id, coordinates and token
 * bounds. The decompressor reuses tb/te for the text columns' tokens. */
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

/* In hpc_dump_text.c: reading and printing text. Messages go to msg[msgcap]. */

/* Read one snapshot. @return 1, 0 at a clean end of input, -1 on error. */
int hpc_snap_read(reader *r, snap *s, uint64_t index, char *msg, size_t msgcap);
/* Interpret the header lines of @p s (box, atom count, columns). @return 0 or -1. */
int hpc_snap_parse_header(snap *s, char *msg, size_t msgcap);
void hpc_snap_free(snap *s);
/* Split an atom line into tokens at single spaces. @return the token count
 * (tokens past @p max are counted, not stored), or -1 if a token is empty
 * anywhere but as the trailing one. *trailing = 1 if the line ends in a space. */
int hpc_dump_tokenize(const char *l, size_t len, size_t *beg, size_t *end, unsigned max,
                      int *trailing);
/* A finite number filling the whole token. @return 0 or -1. */
int hpc_dump_parse_double(const char *s, size_t len, double *out);
/* Classify the atom lines of @p s (§7.3) into @p t. @return 0, -1 out of memory. */
int hpc_snap_classify(const snap *s, atomtab *t, char *msg, size_t msgcap);
int hpc_atomtab_reserve(atomtab *t, uint64_t n, unsigned ncols);
void hpc_atomtab_free(atomtab *t);
/* The library frame's box from the snapshot header (§7.5, coordinates). */
void hpc_snap_frame_box(const snap *s, ngl_hpc_frame *f);
/* Decimals that keep the printing error within eps_lib * 2^-8 (§7.5). */
unsigned hpc_dump_print_decimals(double eps_lib);
/* Print @p v: with @p dec decimals, or the shortest %g that parses back exactly. */
int hpc_dump_print_coord(char *out, size_t cap, double v, unsigned dec);

/* ---------------------------------------------------------------- records */
/* Header deltas: the previous snapshot's header lines and the last delta of
 * each line, identical on both sides (§7.3, section A). */
typedef struct hdrstate {
    lines prev;
    int have_delta[DUMP_MAX_HEADER_LINES];
    int64_t delta[DUMP_MAX_HEADER_LINES];
} hdrstate;

/* Memory of the last snapshot's integer columns, keyed by atom (§7.5). */
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

/* Everything one compression or decompression holds across snapshots: the
 * snapshot being worked on, the two per-snapshot memories both sides keep in
 * step (header lines, integer columns), and reusable buffers. */
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

/* The six length-prefixed sections of a snapshot record (§7.2), A to F. */
typedef struct secs {
    const uint8_t *p[6];
    size_t len[6];
} secs;

/* In hpc_dump_records.c. Functions returning int give 0 or -1 (out of memory,
 * or malformed input on the decoding side) unless said otherwise. */

void hpc_dumpctx_init(dumpctx *d);
void hpc_dumpctx_free(dumpctx *d);
int hpc_dump_ensure_i64(int64_t **p, size_t *cap, size_t n);

/* One record (§1, §7.1): header, payload, CRC32C; *bytes counts what was written. */
int hpc_dump_write_record(FILE *f, uint8_t type, const uint8_t *payload, size_t len,
                          uint64_t *bytes);
/* @return 1 (record in b, type in *type), 0 at a clean end of input, or a
 * negative ngl_status with msg set. */
int hpc_dump_read_record(FILE *f, buf *b, uint8_t *type, uint64_t *bytes, char *msg, size_t msgcap);
/* A section: u32 length, then the bytes. */
int hpc_dump_put_section(buf *rec, const uint8_t *d, size_t len);
/* The six sections of a snapshot record from byte @p pos on; they must fill it. */
int hpc_dump_split_sections(const uint8_t *p, size_t len, size_t pos, secs *s);

/* Section A, header lines as deltas against the previous snapshot's. */
int hpc_hdr_encode(hdrstate *h, const lines *cur, buf *out);
int hpc_hdr_decode(hdrstate *h, const uint8_t *b, size_t len, lines *cur);
/* Section B, column kinds. The decoder checks them against the header:
 * @return 0, -1 if the count disagrees, -2 for a kind the column cannot have. */
int hpc_dump_encode_kinds(const atomtab *t, buf *out);
int hpc_dump_decode_kinds(const snap *s, const uint8_t *b, size_t len, atomtab *t);
/* Section C, verbatim lines, written whole; the decompressor reads them back
 * while it prints. */
int hpc_dump_encode_verbatim(const snap *s, const atomtab *t, buf *out);
/* Section D, integer columns of the canonical lines, as deltas per atom
 * (keys d->keys[0..m)), packed. The encoder reads @p t's tokens; the decoder
 * leaves the values in d->ivals (m rows of *nint) and, on failure, the
 * report's message (snapshot @p index). */
int hpc_dump_encode_ints(dumpctx *d, const snap *s, const atomtab *t, buf *out);
ngl_status hpc_dump_decode_ints(dumpctx *d, const snap *s, const atomtab *t, uint64_t m,
                                const uint8_t *b, size_t len, uint64_t index,
                                ngl_hpc_dump_report *rep, unsigned *nint);
/* Section E, text columns, packed. The decoder keeps the tokens in d->se and
 * their bounds in t->tb/te (text column j of line k at k * t->tokcap + j). */
int hpc_dump_encode_text(dumpctx *d, const snap *s, const atomtab *t, buf *out);
ngl_status hpc_dump_decode_text(dumpctx *d, atomtab *t, uint64_t m, const uint8_t *b, size_t len,
                                uint64_t index, ngl_hpc_dump_report *rep);
/* tcrc (§7.4): CRC32C of the snapshot text without the canonical lines'
 * coordinate tokens. */
uint32_t hpc_dump_text_crc(const snap *s, const atomtab *t);

/* ---------------------------------------------------------------- drivers */
/* Reset a report; every public entry point starts with it. */
static inline void hpc_dump_report_init(ngl_hpc_dump_report *r)
{
    memset(r, 0, sizeof(*r));
}

/* Set the report's message and @return @p code: how the drivers fail. */
ngl_status hpc_dump_fail(ngl_hpc_dump_report *rep, ngl_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* NGL_HPC_DUMP_H */
