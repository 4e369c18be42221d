/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_dump_decompress.c -- ngl_hpc_dump_decompress(): the container
 * (hpc/FORMAT.md §7) in, the LAMMPS text dump out.
 *
 * Per snapshot record, in this order: the fixed fields and the six sections'
 * lengths; the header lines (A), which must parse and agree with the
 * record's atom count; the column kinds (B) against that header; the codec
 * frame (F), whose print precision must match its stream's eps; the integer
 * (D) and text (E) columns; then the snapshot is printed into memory, the
 * verbatim lines (C) merged in at their places, and its CRC compared with the
 * original's (§7.4). Only then is it written: a corrupted or truncated
 * container stops with an error and nothing of the bad snapshot reaches the
 * output. Everything is checked against the bytes actually present, never
 * trusted from a length field, so any input fails cleanly (the fuzz target
 * in tests/fuzz runs this path).
 */
#include "hpc_dump.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct decompressor {
    ngl_hpc_dump_report *rep;
    FILE *in, *out;
    dumpctx d;
    ngl_hpc_decoder *dec; /* created with the first snapshot that has coordinates */
    buf recb;             /* the record being decoded */
} decompressor;

/* One snapshot record's fixed fields (§7.2), its sections, and the reader
 * of its verbatim lines (section C), consumed while printing. */
typedef struct snaprec {
    uint64_t index;
    uint64_t natoms; /* atom lines */
    uint64_t m;      /* canonical lines: natoms minus the verbatim ones */
    unsigned flags, decimals;
    uint32_t want_crc;
    int coords;
    secs sec;
    uint64_t nverb; /* verbatim lines */
    size_t vpos;    /* read position in section C */
    uint64_t vleft; /* verbatim lines not printed yet */
    uint64_t vnext; /* line index of the next one, UINT64_MAX when none */
    int64_t vlast;  /* line index of the last one printed, -1 before */
} snaprec;

#define SNAP_FAIL(z, r, code, what)                                                                \
    hpc_dump_fail((z)->rep, (code), "snapshot %" PRIu64 ": " what, (r)->index)

/* The file header (§7.1): version 1, known flags and level, zero reserved. */
static ngl_status read_file_header(decompressor *z)
{
    ngl_hpc_dump_report *rep = z->rep;
    uint8_t type;
    int rr = hpc_dump_read_record(z->in, &z->recb, &type, &rep->bytes_in, rep->message,
                                  sizeof(rep->message));
    if (rr == 0) {
        return hpc_dump_fail(rep, NGL_ERR_TRUNCATED, "empty input: not an hpc container");
    }
    if (rr < 0) {
        if (-rr == (int)NGL_ERR_BAD_MAGIC) {
            snprintf(rep->message, sizeof(rep->message), "not an hpc container (bad magic)");
        }
        return (ngl_status)-rr;
    }
    const buf *b = &z->recb;
    if (type != DUMP_REC_FILE || b->len != 16) {
        return hpc_dump_fail(rep, NGL_ERR_BAD_SECTION,
                             "container does not start with a file header");
    }
    if (b->p[0] != DUMP_VERSION) {
        return hpc_dump_fail(rep, NGL_ERR_BAD_VERSION, "container version %u, this build reads %u",
                             b->p[0], DUMP_VERSION);
    }
    if ((b->p[1] & ~1u) || b->p[2] > NGL_HPC_LEVEL_BEST || b->p[3] || ngl_rd_u32(b->p + 4)) {
        return hpc_dump_fail(rep, NGL_ERR_BAD_FLAGS, "file header: reserved fields set");
    }
    return NGL_OK;
}

/* The record's fixed fields and sections, the header lines (section A) into
 * d.s, the verbatim count (C) and the column kinds (B). */
static ngl_status read_snapshot_head(decompressor *z, snaprec *r)
{
    const uint8_t *p = z->recb.p;
    const size_t plen = z->recb.len;
    if (plen < 24 || ngl_rd_u64(p) != r->index) {
        return hpc_dump_fail(z->rep, NGL_ERR_STEP_MISMATCH,
                             "snapshot record %" PRIu64 " out of sequence", r->index);
    }
    r->natoms = ngl_rd_u64(p + 8);
    r->flags = p[16];
    r->decimals = p[17];
    r->want_crc = ngl_rd_u32(p + 20);
    if ((r->flags & ~SF_KNOWN) || ngl_rd_u16(p + 18)) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_FLAGS, "unknown flags");
    }
    if (hpc_dump_split_sections(p, plen, 24, &r->sec) != 0) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "sections do not add up");
    }
    snap *s = &z->d.s;
    if (hpc_hdr_decode(&z->d.hs, r->sec.p[0], r->sec.len[0], &s->hdr) != 0) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "bad header section");
    }
    char m2[200];
    if (hpc_snap_parse_header(s, m2, sizeof(m2)) != 0 || s->natoms != r->natoms) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "header does not parse");
    }
    /* verbatim lines are also what bounds natoms by the record size */
    r->vpos = 0;
    if (ngl_varint_get(r->sec.p[2], r->sec.len[2], &r->vpos, &r->nverb) != 0 ||
        r->nverb > r->natoms) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "bad verbatim section");
    }
    r->m = r->natoms - r->nverb;
    r->coords = (r->flags & SF_COORDS) != 0;
    if (r->coords != (s->family > 0 && r->m > 0) ||
        ((r->flags & SF_NO_ID) != 0) != (s->col_id < 0)) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "columns disagree with the header");
    }
    int k = hpc_dump_decode_kinds(s, r->sec.p[1], r->sec.len[1], &z->d.t);
    if (k == -1) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "columns disagree with the header");
    }
    if (k != 0) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "bad column kind");
    }
    return NGL_OK;
}

/* Section F: exactly one codec frame of r->m atoms (a stream header may
 * precede it), dtype f64, printed with the decimals its eps implies. */
static ngl_status decode_coords(decompressor *z, const snaprec *r, const ngl_hpc_frame **out)
{
    ngl_status st;
    if (z->dec == NULL && (st = ngl_hpc_decoder_create(&z->dec)) != NGL_OK) {
        return hpc_dump_fail(z->rep, st, "cannot create the decoder");
    }
    (void)ngl_hpc_decoder_set_max_atoms(z->dec, r->m);
    const uint8_t *f = r->sec.p[5];
    const size_t flen = r->sec.len[5];
    size_t pos = 0;
    int got = 0;
    while (pos < flen) {
        size_t rl;
        st = ngl_hpc_record_size(f + pos, flen - pos, &rl);
        if (st == NGL_OK && rl > flen - pos) {
            st = NGL_ERR_TRUNCATED;
        }
        if (st == NGL_OK) {
            int g = 0;
            st = ngl_hpc_decoder_decode(z->dec, f + pos, rl, &g);
            if (st == NGL_OK && g && got) {
                st = NGL_ERR_BAD_SECTION; /* a second frame */
            }
            got |= g;
        }
        if (st != NGL_OK) {
            return hpc_dump_fail(z->rep, st, "snapshot %" PRIu64 ": coordinates: %s (%s)", r->index,
                                 ngl_status_str(st), ngl_hpc_decoder_error(z->dec));
        }
        pos += rl;
    }
    const ngl_hpc_frame *fr = ngl_hpc_decoder_frame(z->dec);
    ngl_hpc_params pr;
    if (!got || fr == NULL || fr->natoms != r->m || ngl_hpc_decoder_params(z->dec, &pr) != NGL_OK ||
        pr.dtype != NGL_HPC_F64) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "no coordinate frame");
    }
    unsigned want_dec = pr.eps > 0 && pr.eps <= DBL_MAX / 4 && !(pr.eps < 1e-290)
                            ? hpc_dump_print_decimals(pr.eps)
                            : DUMP_PRINT_SHORTEST;
    /* lossless streams report the bound asked for; their step is 0 */
    if (r->decimals != want_dec && r->decimals != DUMP_PRINT_SHORTEST) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SCALE, "print precision disagrees");
    }
    z->rep->eps = pr.eps;
    *out = fr;
    return NGL_OK;
}

/* ------------------------------------------------------------- printing */
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

/* Where the next verbatim line goes: its gap after the last one. */
static ngl_status next_verbatim(decompressor *z, snaprec *r)
{
    r->vnext = UINT64_MAX;
    if (r->vleft) {
        uint64_t dd;
        if (ngl_varint_get(r->sec.p[2], r->sec.len[2], &r->vpos, &dd) != 0 || dd > r->natoms) {
            return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "bad verbatim section");
        }
        r->vnext = (uint64_t)(r->vlast + 1) + dd;
    }
    return NGL_OK;
}

/* Verbatim line @p i, as it was. */
static ngl_status print_verbatim(decompressor *z, snaprec *r, uint64_t i, int last, uint32_t *crc)
{
    const uint8_t *vb = r->sec.p[2];
    const size_t vlen = r->sec.len[2];
    uint64_t len;
    if (ngl_varint_get(vb, vlen, &r->vpos, &len) != 0 || len > vlen - r->vpos ||
        memchr(vb + r->vpos, '\n', (size_t)len)) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "bad verbatim section");
    }
    if (out_line(&z->d.out, crc, (const char *)vb + r->vpos, (size_t)len, !last) != 0) {
        return hpc_dump_fail(z->rep, NGL_ERR_NO_MEMORY, "out of memory");
    }
    r->vpos += (size_t)len;
    r->vlast = (int64_t)i;
    r->vleft--;
    return next_verbatim(z, r);
}

/* Canonical line @p k: its columns from the frame (id, coordinates), the
 * integer columns (@p nint per line) and the text columns, single spaces
 * between. The CRC leaves the coordinate tokens out (§7.4): they are only
 * within eps of the original's. Called for every atom: kept inline. */
static inline int print_canonical(decompressor *z, const snaprec *r, const ngl_hpc_frame *fr,
                                  uint64_t k, unsigned nint, int last, uint32_t *crc)
{
    const atomtab *t = &z->d.t;
    buf *o = &z->d.out;
    unsigned ci = 0, tj = 0;
    char num[64];
    for (unsigned c = 0; c < t->ncols; c++) {
        const unsigned kind = t->kind[c];
        const char *tok = num;
        size_t tl = 0;
        int is_coord = 0;
        if (kind == CK_ID) {
            tl = (size_t)snprintf(num, sizeof(num), "%" PRId64, fr->ids[k]);
        } else if (kind >= CK_X && kind < CK_X + 3) {
            const double *xyz = fr->xyz;
            tl = (size_t)hpc_dump_print_coord(num, sizeof(num), xyz[3 * k + (kind - CK_X)],
                                              r->decimals);
            is_coord = 1;
        } else if (kind == CK_INT) {
            tl = (size_t)snprintf(num, sizeof(num), "%" PRId64, z->d.ivals[k * nint + ci]);
            ci++;
        } else {
            size_t b = t->tb[k * t->tokcap + tj], e = t->te[k * t->tokcap + tj];
            tok = (const char *)z->d.se.p + b;
            tl = e - b;
            tj++;
        }
        if (c > 0) {
            *crc = ngl_crc32c(*crc, " ", 1);
            if (buf_putc(o, ' ') != 0) {
                return -1;
            }
        }
        if (!is_coord) {
            *crc = ngl_crc32c(*crc, tok, tl);
        }
        if (buf_put(o, tok, tl) != 0) {
            return -1;
        }
    }
    if (r->flags & SF_TRAILING) {
        *crc = ngl_crc32c(*crc, " ", 1);
        if (buf_putc(o, ' ') != 0) {
            return -1;
        }
    }
    if (!last) {
        *crc = ngl_crc32c(*crc, "\n", 1);
        if (buf_putc(o, '\n') != 0) {
            return -1;
        }
    }
    return 0;
}

/* The snapshot's text into d.out: header lines, then the atom lines with the
 * verbatim ones at their places; its CRC must be the original's. */
static ngl_status print_snapshot(decompressor *z, snaprec *r, const ngl_hpc_frame *fr,
                                 unsigned nint)
{
    const snap *s = &z->d.s;
    buf *o = &z->d.out;
    o->len = 0;
    uint32_t crc = 0;
    const size_t nlines = s->hdr.n + r->natoms;
    const int no_nl = (r->flags & SF_NO_NEWLINE) != 0;
    for (size_t i = 0; i < s->hdr.n; i++) {
        size_t len;
        const char *l = line_at(&s->hdr, i, &len);
        if (out_line(o, &crc, l, len, !(no_nl && i + 1 == nlines)) != 0) {
            return hpc_dump_fail(z->rep, NGL_ERR_NO_MEMORY, "out of memory");
        }
    }
    r->vleft = r->nverb;
    r->vlast = -1;
    ngl_status st = next_verbatim(z, r);
    uint64_t k = 0;
    for (uint64_t i = 0; i < r->natoms && st == NGL_OK; i++) {
        const int last = no_nl && s->hdr.n + i + 1 == nlines;
        if (i == r->vnext) {
            st = print_verbatim(z, r, i, last, &crc);
        } else if (k >= r->m) {
            st = SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "line count disagrees");
        } else if (print_canonical(z, r, fr, k++, nint, last, &crc) != 0) {
            st = hpc_dump_fail(z->rep, NGL_ERR_NO_MEMORY, "out of memory");
        }
    }
    if (st != NGL_OK) {
        return st;
    }
    if (k != r->m || r->vleft != 0 || r->vpos != r->sec.len[2]) {
        return SNAP_FAIL(z, r, NGL_ERR_BAD_SECTION, "line count disagrees");
    }
    if (crc != r->want_crc) {
        return SNAP_FAIL(z, r, NGL_ERR_CRC_MISMATCH,
                         "reconstructed text does not match the original's checksum");
    }
    return NGL_OK;
}

/* ------------------------------------------------------------- snapshot */
/* Decode the snapshot record in z->recb and write its text. */
static ngl_status decompress_snapshot(decompressor *z, uint64_t index)
{
    dumpctx *d = &z->d;
    ngl_hpc_dump_report *rep = z->rep;
    snaprec r;
    memset(&r, 0, sizeof(r));
    r.index = index;
    ngl_status st = read_snapshot_head(z, &r);
    if (st != NGL_OK) {
        return st;
    }
    const uint64_t m = r.m;
    const ngl_hpc_frame *fr = NULL;
    if (r.coords) {
        if ((st = decode_coords(z, &r, &fr)) != NGL_OK) {
            return st;
        }
    } else if (r.sec.len[5] != 0 || r.decimals != 0) {
        return SNAP_FAIL(z, &r, NGL_ERR_BAD_SECTION, "unexpected coordinate data");
    }
    /* the atoms' keys for the integer columns' memory (§7.5) */
    if (hpc_dump_ensure_i64(&d->keys, &d->keycap, m) != 0) {
        return hpc_dump_fail(rep, NGL_ERR_NO_MEMORY, "out of memory");
    }
    for (uint64_t k = 0; k < m; k++) {
        d->keys[k] = r.coords ? fr->ids[k] : (int64_t)k;
    }
    unsigned nint;
    if ((st = hpc_dump_decode_ints(d, &d->s, &d->t, m, r.sec.p[3], r.sec.len[3], index, rep,
                                   &nint)) != NGL_OK ||
        (st = hpc_dump_decode_text(d, &d->t, m, r.sec.p[4], r.sec.len[4], index, rep)) != NGL_OK ||
        (st = print_snapshot(z, &r, fr, nint)) != NGL_OK) {
        return st;
    }
    if (fwrite(d->out.p, 1, d->out.len, z->out) != d->out.len) {
        return hpc_dump_fail(rep, NGL_ERR_UNSUPPORTED, "write error: %s", strerror(errno));
    }
    rep->bytes_out += d->out.len;
    rep->snapshots++;
    rep->atoms += r.natoms;
    rep->coords += r.coords ? 3 * m : 0;
    rep->verbatim_lines += r.nverb;
    return NGL_OK;
}

/* The records after the file header: snapshots in sequence, then the end
 * record, which must count them and be the last byte of the input. */
static ngl_status decompress_records(decompressor *z)
{
    ngl_hpc_dump_report *rep = z->rep;
    for (uint64_t index = 0;; index++) {
        uint8_t type;
        int rr = hpc_dump_read_record(z->in, &z->recb, &type, &rep->bytes_in, rep->message,
                                      sizeof(rep->message));
        if (rr == 0) {
            return hpc_dump_fail(rep, NGL_ERR_TRUNCATED,
                                 "truncated container: no end record after %" PRIu64 " snapshots",
                                 index);
        }
        if (rr < 0) {
            return (ngl_status)-rr;
        }
        if (type == DUMP_REC_END) {
            if (z->recb.len != 16 || ngl_rd_u64(z->recb.p) != index) {
                return hpc_dump_fail(rep, NGL_ERR_BAD_SECTION,
                                     "end record disagrees: %" PRIu64 " snapshots read", index);
            }
            uint8_t extra;
            if (fread(&extra, 1, 1, z->in) != 0) {
                return hpc_dump_fail(rep, NGL_ERR_BAD_LENGTH, "data after the end record");
            }
            return NGL_OK;
        }
        if (type != DUMP_REC_SNAP) {
            return hpc_dump_fail(rep, NGL_ERR_BAD_SECTION, "unexpected record type '%c'", type);
        }
        ngl_status st = decompress_snapshot(z, index);
        if (st != NGL_OK) {
            return st;
        }
    }
}

ngl_status ngl_hpc_dump_decompress(FILE *in, FILE *out, ngl_hpc_dump_report *report)
{
    ngl_hpc_dump_report dummy;
    ngl_hpc_dump_report *rep = report ? report : &dummy;
    hpc_dump_report_init(rep);
    if (in == NULL || out == NULL) {
        snprintf(rep->message, sizeof(rep->message), "invalid arguments");
        return NGL_ERR_INVALID_ARG;
    }
    decompressor z;
    memset(&z, 0, sizeof(z));
    z.rep = rep;
    z.in = in;
    z.out = out;
    hpc_dumpctx_init(&z.d);
    ngl_status st = read_file_header(&z);
    if (st == NGL_OK) {
        st = decompress_records(&z);
    }
    if (st == NGL_OK && fflush(out) != 0) {
        st = hpc_dump_fail(rep, NGL_ERR_UNSUPPORTED, "write error: %s", strerror(errno));
    }
    ngl_hpc_decoder_destroy(z.dec);
    buf_free(&z.recb);
    hpc_dumpctx_free(&z.d);
    return st;
}
