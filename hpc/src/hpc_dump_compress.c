/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_dump_compress.c -- ngl_hpc_dump_compress(): a LAMMPS text dump in, the
 * container (hpc/FORMAT.md §7) out.
 *
 * The driver streams: one snapshot is read, classified, coded and written
 * before the next is read, so memory follows the largest snapshot, not the
 * file. Per snapshot it builds sections A-E (hpc_dump_records.c), hands the
 * canonical lines' coordinates to the codec as one frame of doubles
 * (section F), and writes the record with the CRC of the text the decoder
 * must rebuild. The codec gets 1 - 2^-7 of the user's bound; the rest is
 * for printing the coordinates back as text (§7.5), so the bound holds on
 * the parsed decoded dump, not only on the codec's doubles.
 */
#include "hpc_dump.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* What lives across snapshots besides the sections' memories: the codec,
 * its output buffer, and the decimals coordinates are printed with (set by
 * the first snapshot with coordinates: eps is fixed from then on). */
typedef struct compressor {
    const ngl_hpc_dump_opts *opts;
    ngl_hpc_dump_report *rep;
    FILE *out;
    ngl_hpc_encoder *enc;
    uint8_t *cbuf;
    size_t ccap;
    unsigned decimals;
} compressor;

/* File header (§7.1): version, rel flag, level and the bound as given. */
static ngl_status write_file_header(compressor *z)
{
    uint8_t fh[16];
    memset(fh, 0, sizeof(fh));
    fh[0] = DUMP_VERSION;
    fh[1] = z->opts->rel ? 1 : 0;
    fh[2] = (uint8_t)z->opts->level;
    ngl_wr_f64(fh + 8, z->opts->eps);
    if (hpc_dump_write_record(z->out, DUMP_REC_FILE, fh, sizeof(fh), &z->rep->bytes_out) != 0) {
        return hpc_dump_fail(z->rep, NGL_ERR_UNSUPPORTED, "write error: %s", strerror(errno));
    }
    return NGL_OK;
}

/* The codec for this dump, created with the first snapshot that has
 * coordinates: f64 frames (text parses to doubles), the library's share of
 * the bound, and a relative bound resolved by the codec on that frame. */
static ngl_status create_encoder(compressor *z)
{
    const ngl_hpc_dump_opts *opts = z->opts;
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
    ngl_status st = ngl_hpc_encoder_create(&p, &z->enc);
    if (st != NGL_OK) {
        return hpc_dump_fail(z->rep, st, "cannot create the encoder: %s", ngl_status_str(st));
    }
    return NGL_OK;
}

/* Section F: the canonical lines' coordinates as one codec frame, into @p out.
 * Ids are the id column's, or the line index without one (none at all when
 * every line is canonical: the codec's identity ids cost nothing). */
static ngl_status encode_coords(compressor *z, const snap *s, const atomtab *t, uint64_t index,
                                buf *out)
{
    ngl_hpc_dump_report *rep = z->rep;
    const uint64_t m = t->m;
    ngl_status st;
    if (z->enc == NULL && (st = create_encoder(z)) != NGL_OK) {
        return st;
    }
    ngl_hpc_frame f;
    memset(&f, 0, sizeof(f));
    f.natoms = m;
    f.ids = (s->col_id < 0 && m == t->n) ? NULL : t->ids;
    f.xyz = t->xyz;
    hpc_snap_frame_box(s, &f);
    size_t need = ngl_hpc_encode_bound(m);
    if (need > z->ccap) {
        uint8_t *nb = realloc(z->cbuf, need);
        if (nb == NULL) {
            return hpc_dump_fail(rep, NGL_ERR_NO_MEMORY, "out of memory");
        }
        z->cbuf = nb;
        z->ccap = need;
    }
    size_t clen;
    st = ngl_hpc_encoder_encode(z->enc, &f, z->cbuf, z->ccap, &clen);
    if (st != NGL_OK) {
        return hpc_dump_fail(rep, st, "snapshot %" PRIu64 ": %s (%s)", index, ngl_status_str(st),
                             ngl_hpc_encoder_error(z->enc));
    }
    if (buf_put(out, z->cbuf, clen) != 0) {
        return hpc_dump_fail(rep, NGL_ERR_NO_MEMORY, "out of memory");
    }
    double e = ngl_hpc_encoder_eps(z->enc);
    z->decimals = e > 0 ? hpc_dump_print_decimals(e) : DUMP_PRINT_SHORTEST;
    rep->eps = z->opts->rel ? e / DUMP_EPS_LIB : z->opts->eps;
    rep->coords += 3 * m;
    return NGL_OK;
}

/* The snapshot record (§7.2): fixed fields, then sections A-F as built in
 * d's buffers (D and E are already packed with their lengths). */
static ngl_status write_snapshot(compressor *z, dumpctx *d, uint64_t index, int coords)
{
    const snap *s = &d->s;
    const atomtab *t = &d->t;
    unsigned flags = 0;
    flags |= t->trailing ? SF_TRAILING : 0u;
    flags |= coords ? SF_COORDS : 0u;
    flags |= s->col_id < 0 ? SF_NO_ID : 0u;
    flags |= s->no_newline ? SF_NO_NEWLINE : 0u;
    buf *rec = &d->rec;
    rec->len = 0;
    uint8_t fixed[24];
    ngl_wr_u64(fixed, index);
    ngl_wr_u64(fixed + 8, s->natoms);
    fixed[16] = (uint8_t)flags;
    fixed[17] = (uint8_t)(coords ? z->decimals : 0);
    ngl_wr_u16(fixed + 18, 0);
    ngl_wr_u32(fixed + 20, hpc_dump_text_crc(s, t));
    if (buf_put(rec, fixed, sizeof(fixed)) != 0 || hpc_dump_put_section(rec, d->sa.p, d->sa.len) ||
        hpc_dump_put_section(rec, d->sb.p, d->sb.len) ||
        hpc_dump_put_section(rec, d->sc.p, d->sc.len) || buf_put(rec, d->sd.p, d->sd.len) ||
        buf_put(rec, d->se.p, d->se.len) || hpc_dump_put_section(rec, d->sf.p, d->sf.len)) {
        return hpc_dump_fail(z->rep, NGL_ERR_NO_MEMORY, "out of memory");
    }
    if (hpc_dump_write_record(z->out, DUMP_REC_SNAP, rec->p, rec->len, &z->rep->bytes_out) != 0) {
        return hpc_dump_fail(z->rep, NGL_ERR_UNSUPPORTED, "write error: %s", strerror(errno));
    }
    return NGL_OK;
}

/* Code the snapshot in d->s (read, not yet classified) into one record. */
static ngl_status compress_snapshot(compressor *z, dumpctx *d, uint64_t index)
{
    ngl_hpc_dump_report *rep = z->rep;
    snap *s = &d->s;
    atomtab *t = &d->t;
    if (hpc_snap_classify(s, t, rep->message, sizeof(rep->message)) != 0) {
        return NGL_ERR_NO_MEMORY;
    }
    const int coords = s->family > 0 && t->m > 0;
    const uint64_t m = t->m;
    /* the atoms' keys for the integer columns' memory (§7.5) */
    if (hpc_dump_ensure_i64(&d->keys, &d->keycap, m) != 0) {
        return hpc_dump_fail(rep, NGL_ERR_NO_MEMORY, "out of memory");
    }
    for (uint64_t k = 0; k < m; k++) {
        d->keys[k] = coords ? t->ids[k] : (int64_t)k;
    }
    d->sa.len = 0;
    if (hpc_hdr_encode(&d->hs, &s->hdr, &d->sa) != 0 || hpc_dump_encode_kinds(t, &d->sb) != 0 ||
        hpc_dump_encode_verbatim(s, t, &d->sc) != 0) {
        return hpc_dump_fail(rep, NGL_ERR_NO_MEMORY, "out of memory");
    }
    rep->verbatim_lines += t->n - m;
    if (hpc_dump_encode_ints(d, s, t, &d->sd) != 0 || hpc_dump_encode_text(d, s, t, &d->se) != 0) {
        return hpc_dump_fail(rep, NGL_ERR_NO_MEMORY, "out of memory");
    }
    d->sf.len = 0;
    ngl_status st;
    if (coords && (st = encode_coords(z, s, t, index, &d->sf)) != NGL_OK) {
        return st;
    }
    if ((st = write_snapshot(z, d, index, coords)) != NGL_OK) {
        return st;
    }
    rep->snapshots++;
    rep->atoms += t->n;
    return NGL_OK;
}

ngl_status ngl_hpc_dump_compress(FILE *in, FILE *out, const ngl_hpc_dump_opts *opts,
                                 ngl_hpc_dump_report *report)
{
    ngl_hpc_dump_report dummy;
    ngl_hpc_dump_report *rep = report ? report : &dummy;
    hpc_dump_report_init(rep);
    if (in == NULL || out == NULL || opts == NULL || !(opts->eps >= 0) || !isfinite(opts->eps) ||
        (opts->level != NGL_HPC_LEVEL_FASTEST && opts->level != NGL_HPC_LEVEL_FAST &&
         opts->level != NGL_HPC_LEVEL_DEFAULT && opts->level != NGL_HPC_LEVEL_BEST)) {
        snprintf(rep->message, sizeof(rep->message), "invalid arguments");
        return NGL_ERR_INVALID_ARG;
    }
    compressor z = {.opts = opts, .rep = rep, .out = out, .decimals = DUMP_PRINT_SHORTEST};
    dumpctx d;
    hpc_dumpctx_init(&d);
    reader r;
    memset(&r, 0, sizeof(r));
    r.f = in;
    ngl_status st = write_file_header(&z);
    for (uint64_t index = 0; st == NGL_OK; index++) {
        int rr = hpc_snap_read(&r, &d.s, index, rep->message, sizeof(rep->message));
        if (rr < 0) {
            st = NGL_ERR_INVALID_ARG;
        } else if (rr == 0) {
            break;
        } else {
            st = compress_snapshot(&z, &d, index);
        }
    }
    if (st == NGL_OK) {
        /* end record (§7.1): snapshots and input size, so truncation shows */
        uint8_t e[16];
        ngl_wr_u64(e, rep->snapshots);
        ngl_wr_u64(e + 8, r.bytes);
        if (hpc_dump_write_record(out, DUMP_REC_END, e, sizeof(e), &rep->bytes_out) != 0 ||
            fflush(out) != 0) {
            st = hpc_dump_fail(rep, NGL_ERR_UNSUPPORTED, "write error: %s", strerror(errno));
        } else if (rep->eps == 0 && !opts->rel) {
            rep->eps = opts->eps;
        }
    }
    rep->bytes_in = r.bytes;
    free(r.line);
    free(z.cbuf);
    ngl_hpc_encoder_destroy(z.enc);
    hpc_dumpctx_free(&d);
    return st;
}
