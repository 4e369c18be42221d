/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_dump_records.c -- the bytes of the LAMMPS dump container
 * (hpc/FORMAT.md §7.1-7.5): record framing, and the sections of a snapshot
 * record, each with its encoder next to its decoder.
 *
 * Why the sections look the way they do: a dump is mostly coordinates, which
 * the codec takes (section F); what is left must come back byte for byte and
 * should cost next to nothing. Header lines repeat from snapshot to snapshot
 * but for the timestep, which moves by a constant (section A codes "same",
 * "the same delta again" or a new delta). Integer columns (type, image flags)
 * rarely change for an atom, so each value is coded against the same atom's
 * value in the previous snapshot (section D), found by its codec id; other
 * columns go as text (E), and lines that do not fit the columns verbatim (C).
 * D and E are then packed with zstd where that helps. Both sides keep the
 * same memories (header lines and deltas, integer columns by atom), updated
 * by the same code paths, and the text CRC (§7.4) catches any disagreement
 * before a snapshot is written.
 *
 * The decoders trust nothing: every length is checked against what is left
 * of its section, and a corrupted length never makes them allocate more than
 * the bytes actually present justify.
 */
#include "hpc_dump.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void intmem_free(intmem *im);

/* ------------------------------------------------------------- context */
void hpc_dumpctx_init(dumpctx *d)
{
    memset(d, 0, sizeof(*d)); /* zstd contexts are created on first use */
}

void hpc_dumpctx_free(dumpctx *d)
{
    hpc_snap_free(&d->s);
    hpc_atomtab_free(&d->t);
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

int hpc_dump_ensure_i64(int64_t **p, size_t *cap, size_t n)
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

/* ------------------------------------------------------------- records */
int hpc_dump_write_record(FILE *f, uint8_t type, const uint8_t *payload, size_t len,
                          uint64_t *bytes)
{
    uint8_t h[8];
    h[0] = DUMP_MAGIC0;
    h[1] = DUMP_MAGIC1;
    h[2] = DUMP_MAGIC2;
    h[3] = type;
    ngl_wr_u32(h + 4, (uint32_t)len);
    uint32_t crc = ngl_crc32c(ngl_crc32c(0, h, 8), payload, len);
    uint8_t t[4];
    ngl_wr_u32(t, crc);
    if (fwrite(h, 1, 8, f) != 8 || (len && fwrite(payload, 1, len, f) != len) ||
        fwrite(t, 1, 4, f) != 4) {
        return -1;
    }
    *bytes += 12 + len;
    return 0;
}

int hpc_dump_read_record(FILE *f, buf *b, uint8_t *type, uint64_t *bytes, char *msg, size_t msgcap)
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
    size_t len = ngl_rd_u32(h + 4);
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
    if (crc != ngl_rd_u32(b->p + len)) {
        snprintf(msg, msgcap, "corrupted container: CRC32C mismatch in the record at byte %" PRIu64,
                 *bytes);
        return -(int)NGL_ERR_CRC_MISMATCH;
    }
    b->len = len;
    *type = h[3];
    *bytes += 12 + len;
    return 1;
}

int hpc_dump_put_section(buf *rec, const uint8_t *d, size_t len)
{
    return buf_u32(rec, (uint32_t)len) != 0 || buf_put(rec, d, len) != 0 ? -1 : 0;
}

int hpc_dump_split_sections(const uint8_t *p, size_t len, size_t pos, secs *s)
{
    for (int i = 0; i < 6; i++) {
        if (len - pos < 4) {
            return -1;
        }
        size_t l = ngl_rd_u32(p + pos);
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

/* ------------------------------------------------------ packed sections */
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
    size_t raw = ngl_rd_u32(p + 1);
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

/* ----------------------------------------------- A: header line deltas */
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

int hpc_hdr_encode(hdrstate *h, const lines *cur, buf *out)
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
                if (buf_putc(out, 1) != 0 || buf_varint(out, ngl_zigzag(d)) != 0) {
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
int hpc_hdr_decode(hdrstate *h, const uint8_t *b, size_t len, lines *cur)
{
    size_t pos = 0;
    uint64_t n;
    lines_clear(cur);
    if (ngl_varint_get(b, len, &pos, &n) != 0 || n == 0 || n > DUMP_MAX_HEADER_LINES) {
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
                if (ngl_varint_get(b, len, &pos, &z) != 0) {
                    return -1;
                }
                d = ngl_unzigzag(z);
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
            if (ngl_varint_get(b, len, &pos, &l) != 0 || l > len - pos || l > DUMP_MAX_LINE ||
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

/* ------------------------------------------------------ B: column kinds */
int hpc_dump_encode_kinds(const atomtab *t, buf *out)
{
    out->len = 0;
    if (buf_putc(out, (uint8_t)t->ncols) != 0) {
        return -1;
    }
    for (unsigned c = 0; c < t->ncols; c++) {
        if (buf_putc(out, (uint8_t)t->kind[c]) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The kinds are redundant but for integer vs text: the header names the id
 * and coordinate columns, so anything else there is corruption.
 * @return 0, -1 if the count disagrees with the header, -2 for a bad kind. */
int hpc_dump_decode_kinds(const snap *s, const uint8_t *b, size_t len, atomtab *t)
{
    if (len != 1u + s->ncols || b[0] != s->ncols) {
        return -1;
    }
    t->ncols = s->ncols;
    for (unsigned c = 0; c < s->ncols; c++) {
        unsigned k = b[1 + c];
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
            return -2;
        }
        t->kind[c] = k;
    }
    return 0;
}

/* ---------------------------------------------------- C: verbatim lines */
/* Verbatim lines are rare (odd lines, duplicate ids), so each is coded by
 * its gap from the last one; the decoder reads them while printing. */
int hpc_dump_encode_verbatim(const snap *s, const atomtab *t, buf *out)
{
    out->len = 0;
    if (buf_varint(out, t->n - t->m) != 0) {
        return -1;
    }
    int64_t last = -1;
    for (uint64_t i = 0; i < t->n; i++) {
        if (t->canon[i]) {
            continue;
        }
        size_t len;
        const char *l = line_at(&s->atoms, i, &len);
        if (buf_varint(out, (uint64_t)((int64_t)i - last - 1)) != 0 || buf_varint(out, len) != 0 ||
            buf_put(out, l, len) != 0) {
            return -1;
        }
        last = (int64_t)i;
    }
    return 0;
}

/* ------------------------------------- D: integer columns, per atom */
static void intmem_free(intmem *im)
{
    free(im->keys);
    free(im->vals);
    hpc_idmap_free(&im->map);
    memset(im, 0, sizeof(*im));
}

/* The columns' names and kinds as one string: last snapshot's integer values
 * predict this one's only while it is the same. */
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

/* This snapshot's keys and integer values become the memory for the next. */
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

/* What both sides do before the integer columns: the layout (column names
 * and kinds) decides whether last snapshot's values are a valid reference
 * (a column that changed meaning must not predict), then the key map and
 * room for this snapshot's values. @return 0 or -1 (out of memory). */
static int ints_begin(dumpctx *d, const snap *s, const atomtab *t, uint64_t m,
                      char layout[DUMP_MAX_COLS * 33], unsigned *nint_out)
{
    layout_string(s, t, layout, DUMP_MAX_COLS * 33);
    unsigned nint = 0;
    for (unsigned c = 0; c < t->ncols; c++) {
        nint += t->kind[c] == CK_INT;
    }
    if (strcmp(layout, d->im.layout) != 0 || d->im.nint != nint) {
        d->im.n = 0; /* columns changed: no memory */
    }
    *nint_out = nint;
    if (intmem_prepare(&d->im, d->keys, m) != 0 ||
        hpc_dump_ensure_i64(&d->ivals, &d->ivcap, (size_t)m * (nint ? nint : 1)) != 0) {
        return -1;
    }
    return 0;
}

/* Prediction of atom @p k's value in integer column @p ci: the same atom's
 * last value if it had one, else the line before's (@p prev). */
static inline int64_t ints_pred(const dumpctx *d, uint64_t k, unsigned ci, int64_t prev)
{
    uint32_t pp = intmem_find(&d->im, d->keys, k);
    return pp != HPC_NONE ? d->im.vals[(size_t)pp * d->im.nint + ci] : prev;
}

int hpc_dump_encode_ints(dumpctx *d, const snap *s, const atomtab *t, buf *out)
{
    const uint64_t m = t->m;
    char layout[DUMP_MAX_COLS * 33];
    unsigned nint;
    if (ints_begin(d, s, t, m, layout, &nint) != 0) {
        return -1;
    }
    buf *ib = &d->sf; /* scratch for the raw integer stream */
    ib->len = 0;
    unsigned ci = 0;
    for (unsigned c = 0; c < t->ncols; c++) {
        if (t->kind[c] != CK_INT) {
            continue;
        }
        int64_t prev = 0;
        for (uint64_t k = 0; k < m; k++) {
            size_t len;
            const char *l = line_at(&s->atoms, t->line_of[k], &len);
            const size_t b = t->tb[k * t->ncols + c], e = t->te[k * t->ncols + c];
            int64_t v = 0;
            (void)parse_canon_int(l + b, e - b, &v); /* canonical: the classifier said so */
            if (buf_varint(ib, ngl_zigzag(hpc_wsub(v, ints_pred(d, k, ci, prev)))) != 0) {
                return -1;
            }
            d->ivals[k * nint + ci] = v;
            prev = v;
        }
        ci++;
    }
    if (intmem_store(&d->im, layout, d->keys, m, nint, d->ivals) != 0) {
        return -1;
    }
    out->len = 0;
    return put_packed(d, out, ib);
}

ngl_status hpc_dump_decode_ints(dumpctx *d, const snap *s, const atomtab *t, uint64_t m,
                                const uint8_t *b, size_t len, uint64_t index,
                                ngl_hpc_dump_report *rep, unsigned *nint_out)
{
    char layout[DUMP_MAX_COLS * 33];
    unsigned nint;
    if (ints_begin(d, s, t, m, layout, &nint) != 0) {
        return hpc_dump_fail(rep, NGL_ERR_NO_MEMORY, "out of memory");
    }
    *nint_out = nint;
    const uint8_t *ib;
    size_t iblen;
    int g = get_packed(d, b, len, (size_t)(10 * m * nint + 16), &ib, &iblen);
    if (g < 0) {
        return hpc_dump_fail(rep, (ngl_status)-g, "snapshot %" PRIu64 ": bad integer section",
                             index);
    }
    size_t pos = 0;
    unsigned ci = 0;
    for (unsigned c = 0; c < t->ncols; c++) {
        if (t->kind[c] != CK_INT) {
            continue;
        }
        int64_t prev = 0;
        for (uint64_t k = 0; k < m; k++) {
            uint64_t z;
            if (ngl_varint_get(ib, iblen, &pos, &z) != 0) {
                return hpc_dump_fail(rep, NGL_ERR_BAD_SECTION,
                                     "snapshot %" PRIu64 ": bad integer section", index);
            }
            const int64_t v = hpc_wadd(ints_pred(d, k, ci, prev), ngl_unzigzag(z));
            d->ivals[k * nint + ci] = v;
            prev = v;
        }
        ci++;
    }
    if (pos != iblen) {
        return hpc_dump_fail(rep, NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad integer section",
                             index);
    }
    if (intmem_store(&d->im, layout, d->keys, m, nint, d->ivals) != 0) {
        return hpc_dump_fail(rep, NGL_ERR_NO_MEMORY, "out of memory");
    }
    return NGL_OK;
}

/* ---------------------------------------------------- E: text columns */
/* Per text column, per canonical line, the token and a newline: a column's
 * tokens side by side is what zstd packs best. */
int hpc_dump_encode_text(dumpctx *d, const snap *s, const atomtab *t, buf *out)
{
    buf *ib = &d->sf; /* scratch */
    ib->len = 0;
    for (unsigned c = 0; c < t->ncols; c++) {
        if (t->kind[c] != CK_TEXT) {
            continue;
        }
        for (uint64_t k = 0; k < t->m; k++) {
            size_t len;
            const char *l = line_at(&s->atoms, t->line_of[k], &len);
            size_t b = t->tb[k * t->ncols + c], e = t->te[k * t->ncols + c];
            if (buf_put(ib, l + b, e - b) != 0 || buf_putc(ib, '\n') != 0) {
                return -1;
            }
        }
    }
    out->len = 0;
    return put_packed(d, out, ib);
}

ngl_status hpc_dump_decode_text(dumpctx *d, atomtab *t, uint64_t m, const uint8_t *b, size_t len,
                                uint64_t index, ngl_hpc_dump_report *rep)
{
    unsigned ntext = 0;
    for (unsigned c = 0; c < t->ncols; c++) {
        ntext += t->kind[c] == CK_TEXT;
    }
    const uint8_t *tb;
    size_t tblen;
    int g = get_packed(d, b, len, (size_t)m * DUMP_MAX_LINE, &tb, &tblen);
    if (g < 0) {
        return hpc_dump_fail(rep, (ngl_status)-g, "snapshot %" PRIu64 ": bad text section", index);
    }
    /* token k of text column j: [tb, te) at k * tokcap + j, in d->se (a
     * copy: d->tmp, where get_packed() left it, is reused) */
    d->se.len = 0;
    if (buf_put(&d->se, tb, tblen) != 0 ||
        hpc_atomtab_reserve(t, m ? m : 1, (ntext ? ntext : 1) + 1) != 0) {
        return hpc_dump_fail(rep, NGL_ERR_NO_MEMORY, "out of memory");
    }
    size_t pos = 0;
    for (unsigned j = 0; j < ntext; j++) {
        for (uint64_t k = 0; k < m; k++) {
            const uint8_t *nlp = pos < tblen ? memchr(d->se.p + pos, '\n', tblen - pos) : NULL;
            size_t e = nlp ? (size_t)(nlp - d->se.p) : 0;
            if (nlp == NULL || e == pos || memchr(d->se.p + pos, ' ', e - pos)) {
                return hpc_dump_fail(rep, NGL_ERR_BAD_SECTION,
                                     "snapshot %" PRIu64 ": bad text section", index);
            }
            t->tb[k * t->tokcap + j] = (uint32_t)pos;
            t->te[k * t->tokcap + j] = (uint32_t)e;
            pos = e + 1;
        }
    }
    if (pos != tblen) {
        return hpc_dump_fail(rep, NGL_ERR_BAD_SECTION, "snapshot %" PRIu64 ": bad text section",
                             index);
    }
    return NGL_OK;
}

/* ------------------------------------------------------ §7.4: text CRC */
/* CRC32C of the snapshot text with the coordinate tokens of canonical lines
 * left out (FORMAT.md §7.4): what must come back byte for byte. */
uint32_t hpc_dump_text_crc(const snap *s, const atomtab *t)
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

/* ------------------------------------------------------------ messages */
ngl_status hpc_dump_fail(ngl_hpc_dump_report *rep, ngl_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->message, sizeof(rep->message), fmt, ap);
    va_end(ap);
    return code;
}
