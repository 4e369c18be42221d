/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_decoder.c -- the hpc stream decoder (nangila_hpc.h; format in
 * hpc/FORMAT.md): its API, the record frame (§1), the stream header (§2),
 * and a frame record's sections (§3), one parsing function per section in
 * wire order. Every record is checked (CRC32C, lengths, fields) before any
 * state changes; the value pass (hpc_decoder_values.c) then decodes the
 * values, which are checked against the CRC the encoder computed on its own
 * reconstruction, so a decoder that diverged from the encoder reports an
 * error instead of returning wrong values.
 */
#include "hpc_decoder.h"

#include <float.h>
#include <stdlib.h>

#if defined(NGL_HAVE_ZSTD)
#include <zstd.h>
#endif

ngl_status ngl_hpc_decoder_create(ngl_hpc_decoder **out)
{
    if (out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *out = NULL;
    ngl_hpc_decoder *dec = calloc(1, sizeof(*dec));
    if (dec == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    dec->max_atoms = NGL_HPC_MAX_ATOMS;
    ngl_status st = hpc_core_init(&dec->c);
    if (st != NGL_OK) {
        goto fail;
    }
    *out = dec; /* the zstd context is created on first use */
    return NGL_OK;
fail:
    ngl_hpc_decoder_destroy(dec);
    return st;
}

void ngl_hpc_decoder_destroy(ngl_hpc_decoder *dec)
{
    if (dec == NULL) {
        return;
    }
#if defined(NGL_HAVE_ZSTD)
    ZSTD_freeDCtx(dec->zd);
#endif
    for (int i = 0; i < 2; i++) {
        free(dec->ids_out[i]);
        free(dec->xyz_out[i]);
    }
    free(dec->idraw);
    hpc_core_free(&dec->c);
    free(dec);
}

ngl_status ngl_hpc_decoder_set_max_atoms(ngl_hpc_decoder *dec, uint64_t max_atoms)
{
    if (dec == NULL || max_atoms > NGL_HPC_MAX_ATOMS) {
        return NGL_ERR_INVALID_ARG;
    }
    dec->max_atoms = max_atoms;
    return NGL_OK;
}

const ngl_hpc_frame *ngl_hpc_decoder_frame(const ngl_hpc_decoder *dec)
{
    return dec != NULL && dec->have_frame ? &dec->frame : NULL;
}

ngl_status ngl_hpc_decoder_params(const ngl_hpc_decoder *dec, ngl_hpc_params *out)
{
    if (dec == NULL || out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    if (!dec->c.configured) {
        return NGL_ERR_INVALID_ARG;
    }
    out->dtype = dec->c.dtype;
    out->eps = dec->c.eps;
    out->rel = dec->c.rel;
    out->level = dec->c.level;
    return NGL_OK;
}

void ngl_hpc_decoder_get_stats(const ngl_hpc_decoder *dec, ngl_hpc_stats *out)
{
    if (dec != NULL && out != NULL) {
        *out = dec->stats;
    }
}

const char *ngl_hpc_decoder_error(const ngl_hpc_decoder *dec)
{
    return dec != NULL ? dec->err : "";
}

ngl_status ngl_hpc_record_size(const void *src, size_t src_len, size_t *rec_len)
{
    const uint8_t *p = src;
    if (src == NULL || rec_len == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    if (src_len < HPC_REC_HEADER) {
        return NGL_ERR_TRUNCATED;
    }
    if (p[0] != 'N' || p[1] != 'H' || p[2] != 'P' ||
        (p[3] != HPC_REC_STREAM && p[3] != HPC_REC_FRAME)) {
        return NGL_ERR_BAD_MAGIC;
    }
    uint32_t len = ngl_rd_u32(p + 4);
    if (len > HPC_REC_MAX_PAYLOAD) {
        return NGL_ERR_BAD_LENGTH;
    }
    *rec_len = HPC_REC_OVERHEAD + (size_t)len;
    return NGL_OK;
}

/* bounded reader over a record payload */
typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
} rd;

static inline int rd_need(const rd *r, size_t n)
{
    return r->pos <= r->len && n <= r->len - r->pos;
}

static ngl_status decode_stream_header(ngl_hpc_decoder *dec, const uint8_t *p, size_t len)
{
    hpc_core *c = &dec->c;
    if (len != HPC_STREAM_PAYLOAD) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_LENGTH, "stream header of %zu bytes", len);
    }
    if (p[0] != NGL_HPC_FORMAT_VERSION) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_VERSION, "format version %u, expected %u", p[0],
                            NGL_HPC_FORMAT_VERSION);
    }
    if (p[1] > NGL_HPC_F64) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_DTYPE, "unknown dtype %u", p[1]);
    }
    if (p[2] > NGL_HPC_LEVEL_BEST) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_FLAGS, "unknown level %u", p[2]);
    }
    if ((p[3] & ~3u) || ngl_rd_u32(p + 4) != 0) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_FLAGS, "reserved stream-header bits set");
    }
    double eps = ngl_rd_f64(p + 8), step = ngl_rd_f64(p + 16), rel = ngl_rd_f64(p + 24);
    int lossless = (p[3] & 2u) != 0;
    if (!(rel >= 0) || !isfinite(rel) || ((p[3] & 1u) != 0) != (rel > 0)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SCALE, "bad rel %g", rel);
    }
    if (lossless ? !(step == 0 && !signbit(step) && eps >= 0 && eps <= DBL_MAX)
                 : !(eps >= 1e-290 && eps <= DBL_MAX / 4 && step > 0 && step <= 2 * eps &&
                     step >= eps * 0x1p-7)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SCALE, "bad eps %g / step %g", eps, step);
    }
    if (c->configured) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "second stream header");
    }
    c->dtype = (ngl_hpc_dtype)p[1];
    c->level = p[2];
    c->rel = rel;
    hpc_core_set_eps(c, lossless ? 0 : eps, step);
    if (lossless) {
        c->eps = eps; /* the bound asked for, informational */
    }
    assert(c->lossless == lossless);
    c->configured = 1;
    return NGL_OK;
}

static ngl_status reserve_out(ngl_hpc_decoder *dec, int set, uint64_t n)
{
    if (dec->out_cap[set] >= n && dec->ids_out[set] != NULL) {
        return NGL_OK;
    }
    uint64_t cap = n < 64 ? 64 : n;
    int64_t *ids = realloc(dec->ids_out[set], (size_t)cap * sizeof(int64_t));
    if (ids == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    dec->ids_out[set] = ids;
    void *xyz = realloc(dec->xyz_out[set], (size_t)(3 * cap * 8));
    if (xyz == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    dec->xyz_out[set] = xyz;
    dec->out_cap[set] = cap;
    return NGL_OK;
}

/* Parse the ids section into ids[] and c->pmap (FORMAT.md §3.3). */
static ngl_status decode_ids(ngl_hpc_decoder *dec, const uint8_t *b, size_t len, uint64_t n,
                             int64_t *ids)
{
    hpc_core *c = &dec->c;
    size_t bm = (size_t)((n + 7) / 8);
    if (len < bm) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_INDEX, "ids section shorter than its bitmap");
    }
    if (n % 8 && (b[bm - 1] >> (n % 8))) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_INDEX, "ids bitmap padding not zero");
    }
    ngl_status st;
    if (c->frame > 0 && (st = hpc_core_prev_map(c)) != NGL_OK) {
        return st;
    }
    if ((st = hpc_idmap_reset(&c->new_map, n)) != NGL_OK) {
        return st;
    }
    c->stamp_gen++;
    if (c->stamp_gen == 0) {
        memset(c->stamp, 0, (size_t)c->cap * sizeof(uint32_t));
        c->stamp_gen = 1;
    }
    size_t pos = bm;
    int64_t lastpp = -1, lastnew = 0;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t z;
        if (ngl_varint_get(b, len, &pos, &z) != 0) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_INDEX, "ids: bad varint at atom %llu",
                                (unsigned long long)k);
        }
        int64_t id;
        if (b[k / 8] & (1u << (k % 8))) {
            id = hpc_wadd(lastnew, ngl_unzigzag(z));
            lastnew = id;
            if (c->frame > 0 && hpc_idmap_find(&c->prev_map, id) != HPC_NONE) {
                return hpc_dec_fail(dec, NGL_ERR_BAD_INDEX,
                                    "ids: new atom %lld was in the last frame", (long long)id);
            }
            c->pmap[k] = HPC_NONE;
        } else {
            int64_t pp = hpc_wadd(lastpp + 1, ngl_unzigzag(z));
            if (pp < 0 || (uint64_t)pp >= c->n || c->stamp[pp] == c->stamp_gen) {
                return hpc_dec_fail(dec, NGL_ERR_BAD_INDEX, "ids: bad reference %lld at atom %llu",
                                    (long long)pp, (unsigned long long)k);
            }
            c->stamp[pp] = c->stamp_gen;
            lastpp = pp;
            id = c->ids_identity ? pp : c->ids[pp];
            c->pmap[k] = (uint32_t)pp;
        }
        if (hpc_idmap_insert(&c->new_map, id, (uint32_t)k) != 0) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_INDEX, "ids: duplicate id %lld", (long long)id);
        }
        ids[k] = id;
    }
    if (pos != len) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_INDEX, "ids section has %zu trailing bytes",
                            len - pos);
    }
    return NGL_OK;
}

/* ------------------------------------------------------------------ frame */
/*
 * A frame record (FORMAT.md §3.1) is decoded in two halves. First every
 * section is parsed and checked, one function per section, into a frame_in,
 * while the decoder's state stays as it was: a bad record fails cleanly and
 * the stream goes on. Then the value pass runs the adaptive coder over the
 * values; from its first symbol a failure loses the adaptive state, so the
 * decoder is poisoned until it is recreated. The frame is committed only
 * after the decoded values' CRC matches the encoder's.
 */

/* Fixed part: index, atom count, flags, and the box (§3.1). The count is
 * bounded by the decoder's limit, and, where the ids section is present,
 * by the record's size: each atom takes at least one byte there. */
static ngl_status parse_fixed(ngl_hpc_decoder *dec, rd *r, frame_in *fi)
{
    hpc_core *c = &dec->c;
    const uint8_t *pay = r->p;
    if (!c->configured) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "frame record before the stream header");
    }
    if (!rd_need(r, 16)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "frame record too short");
    }
    fi->index = ngl_rd_u64(pay);
    fi->n = ngl_rd_u32(pay + 8);
    const unsigned flags = fi->flags = pay[12];
    const uint64_t n = fi->n;
    if (fi->index != c->frame) {
        return hpc_dec_fail(dec, NGL_ERR_STEP_MISMATCH, "frame %llu where %llu was expected",
                            (unsigned long long)fi->index, (unsigned long long)c->frame);
    }
    if ((flags & ~HPC_FF_KNOWN) || pay[13] != 0 || ngl_rd_u16(pay + 14) != 0) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_FLAGS, "unknown frame flags 0x%02x", flags);
    }
    if (n > NGL_HPC_MAX_ATOMS) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_LENGTH, "frame of %llu atoms", (unsigned long long)n);
    }
    fi->same = (flags & HPC_FF_IDS_SAME) != 0;
    fi->identity = (flags & HPC_FF_IDS_IDENTITY) != 0;
    if (fi->same && (fi->identity || c->frame == 0 || c->n != n || (flags & HPC_FF_IDS_ZSTD))) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_FLAGS, "ids flags inconsistent with the last frame");
    }
    if (fi->identity && (flags & HPC_FF_IDS_ZSTD)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_FLAGS, "ids flags inconsistent");
    }
    r->pos = 16;
    /* A frame of constant values costs almost nothing, so the payload size
     * does not bound the atom count; the decoder's own limit does. */
    if (n > dec->max_atoms) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_LENGTH,
                            "frame of %llu atoms exceeds the decoder's limit",
                            (unsigned long long)n);
    }
    if (!fi->same && !fi->identity && n > (uint64_t)r->len) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_LENGTH, "atom count %llu too large for the record",
                            (unsigned long long)n); /* each atom needs >= 1 byte of ids section */
    }
    fi->has_box = (flags & HPC_FF_BOX) != 0;
    if (!fi->has_box) {
        return NGL_OK;
    }
    if (!rd_need(r, 49)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "box truncated");
    }
    for (int a = 0; a < 3; a++) {
        fi->lo[a] = ngl_rd_f64(pay + r->pos + 16 * a);
        fi->hi[a] = ngl_rd_f64(pay + r->pos + 16 * a + 8);
        if (!isfinite(fi->lo[a]) || !isfinite(fi->hi[a]) || !(fi->lo[a] < fi->hi[a]) ||
            !isfinite(fi->hi[a] - fi->lo[a])) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "bad box on axis %d", a);
        }
    }
    unsigned pb = pay[r->pos + 48];
    if (pb & ~7u) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_FLAGS, "bad periodic bits 0x%02x", pb);
    }
    for (int a = 0; a < 3; a++) {
        fi->per[a] = (pb >> a) & 1;
        fi->blen[a] = fi->per[a] ? fi->hi[a] - fi->lo[a] : 0.0;
    }
    r->pos += 49;
    return NGL_OK;
}

/* A zstd-packed ids section (IDS_ZSTD, §3.3) into dec->idraw; its raw
 * length is bounded by what n atoms can need before anything is allocated. */
static ngl_status unpack_ids(ngl_hpc_decoder *dec, uint64_t n, const uint8_t **sb, size_t *sbl)
{
#if defined(NGL_HAVE_ZSTD)
    if (*sbl < 4) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "ids section truncated");
    }
    size_t rawlen = ngl_rd_u32(*sb);
    if (rawlen > (size_t)(n / 8 + 1 + 10 * n)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_BACKEND, "ids: implausible length %zu", rawlen);
    }
    if (dec->idraw_cap < rawlen + 1) {
        uint8_t *nb = realloc(dec->idraw, rawlen + 1);
        if (nb == NULL) {
            return hpc_dec_fail(dec, NGL_ERR_NO_MEMORY, "out of memory");
        }
        dec->idraw = nb;
        dec->idraw_cap = rawlen + 1;
    }
    if (dec->zd == NULL && (dec->zd = ZSTD_createDCtx()) == NULL) {
        return hpc_dec_fail(dec, NGL_ERR_NO_MEMORY, "out of memory");
    }
    size_t got = ZSTD_decompressDCtx(dec->zd, dec->idraw, rawlen, *sb + 4, *sbl - 4);
    if (ZSTD_isError(got) || got != rawlen) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_BACKEND, "ids: zstd data does not decode");
    }
    *sb = dec->idraw;
    *sbl = rawlen;
    return NGL_OK;
#else
    (void)n;
    (void)sb;
    (void)sbl;
    return hpc_dec_fail(dec, NGL_ERR_BACKEND_UNAVAILABLE, "ids section needs zstd");
#endif
}

/* The atoms' ids and where each was in the last frame (c->pmap): the same
 * order as the last frame, 0..n-1 matched by value, or the ids section. */
static ngl_status parse_ids(ngl_hpc_decoder *dec, rd *r, frame_in *fi)
{
    hpc_core *c = &dec->c;
    const uint64_t n = fi->n;
    int64_t *ids = fi->ids;
    ngl_status st;
    if (fi->same) {
        for (uint64_t k = 0; k < n; k++) {
            c->pmap[k] = (uint32_t)k;
            ids[k] = c->ids_identity ? (int64_t)k : c->ids[k];
        }
        return NGL_OK;
    }
    if (fi->identity) {
        if (c->frame > 0 && (st = hpc_core_prev_map(c)) != NGL_OK) {
            return hpc_dec_fail(dec, st, "out of memory");
        }
        for (uint64_t k = 0; k < n; k++) {
            ids[k] = (int64_t)k;
            c->pmap[k] = c->frame > 0 ? hpc_idmap_find(&c->prev_map, (int64_t)k) : HPC_NONE;
        }
        return NGL_OK;
    }
    if (!rd_need(r, 4)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "ids section truncated");
    }
    size_t slen = ngl_rd_u32(r->p + r->pos);
    r->pos += 4;
    if (!rd_need(r, slen)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "ids section truncated");
    }
    const uint8_t *sb = r->p + r->pos;
    size_t sbl = slen;
    r->pos += slen;
    if ((fi->flags & HPC_FF_IDS_ZSTD) && (st = unpack_ids(dec, n, &sb, &sbl)) != NGL_OK) {
        return st;
    }
    return decode_ids(dec, sb, sbl, n, ids);
}

/* The model (§3.4), if MODEL: six Q12 taps and, from level 2, the learned
 * force term's knots; else the last model sent stays in use. */
static ngl_status parse_model(ngl_hpc_decoder *dec, rd *r, frame_in *fi)
{
    const uint8_t *pay = r->p;
    hpc_model *model = &fi->model;
    *model = dec->c.model;
    if (!(fi->flags & HPC_FF_MODEL)) {
        return NGL_OK;
    }
    if (!rd_need(r, 4)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "model truncated");
    }
    unsigned ntaps = pay[r->pos], nknots = pay[r->pos + 1];
    if (ntaps != HPC_TAPS || (nknots != 0 && nknots != HPC_KNOTS) ||
        ngl_rd_u16(pay + r->pos + 2) != 0) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_PREDICTOR, "model with %u taps and %u knots", ntaps,
                            nknots);
    }
    r->pos += 4;
    size_t need = 2 * HPC_TAPS + (nknots ? 16 + 4 * HPC_KNOTS : 0);
    if (!rd_need(r, need)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "model truncated");
    }
    memset(model, 0, sizeof(*model));
    model->valid = 1;
    for (unsigned k = 0; k < HPC_TAPS; k++) {
        model->taps[k] = (int16_t)ngl_rd_u16(pay + r->pos + 2 * k);
    }
    r->pos += 2 * HPC_TAPS;
    if (!nknots) {
        return NGL_OK;
    }
    model->fn.nknots = HPC_KNOTS;
    model->fn.r2lo = ngl_rd_f64(pay + r->pos);
    model->fn.r2hi = ngl_rd_f64(pay + r->pos + 8);
    r->pos += 16;
    if (!(model->fn.r2lo >= 0) || !(model->fn.r2hi > model->fn.r2lo) || !isfinite(model->fn.r2hi) ||
        dec->c.lossless) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_PREDICTOR, "bad force-term range");
    }
    for (unsigned k = 0; k < HPC_KNOTS; k++) {
        model->fn.psi[k] = ngl_rd_f32(pay + r->pos + 4 * k);
        if (!isfinite(model->fn.psi[k])) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_PREDICTOR, "non-finite force knot");
        }
    }
    r->pos += 4 * HPC_KNOTS;
    return NGL_OK;
}

/* The cage (§6.8): a new table if CAGE_TABLE (the learned pair energies and
 * the descent's range and steps, bounded so the descent stays finite), and
 * lambda if CAGE. A cage frame needs the previous frame's positions in a
 * box, which is why it excludes MODEL and lossless streams. */
static ngl_status parse_cage(ngl_hpc_decoder *dec, rd *r, frame_in *fi)
{
    const hpc_core *c = &dec->c;
    hpc_cage_params *cagep = &fi->cagep;
    fi->cage = (fi->flags & HPC_FF_CAGE) != 0;
    fi->cage_table = (fi->flags & HPC_FF_CAGE_TABLE) != 0;
    *cagep = c->cagep;
    if (fi->cage_table && !fi->cage) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_FLAGS, "cage table without the cage");
    }
    if (fi->cage) {
        if ((fi->flags & HPC_FF_MODEL) || !fi->has_box || c->lossless || c->frame == 0 ||
            !c->has_box) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_FLAGS,
                                "cage frame without a box or a previous frame");
        }
        if (!fi->cage_table && !c->cage_have) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_PREDICTOR, "cage frame before any cage table");
        }
    }
    if (fi->cage_table) {
        if (!rd_need(r, HPC_CAGE_TABLE_SECTION)) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "cage table truncated");
        }
        const uint8_t *q = r->p + r->pos;
        cagep->iters = q[1];
        cagep->rc2 = ngl_rd_f64(q + 4);
        int bad = q[0] != HPC_CAGE_KNOTS || cagep->iters < 1 || cagep->iters > HPC_CAGE_ITERS_MAX ||
                  ngl_rd_u16(q + 2) != 0 || !(cagep->rc2 > 0) || !isfinite(cagep->rc2);
        for (unsigned k = 0; k <= HPC_CAGE_KNOTS; k++) {
            cagep->w[k] = ngl_rd_f32(q + 12 + 4 * k);
            cagep->v[k] = ngl_rd_f32(q + 12 + 4 * (HPC_CAGE_KNOTS + 1) + 4 * k);
            bad |= !(fabsf(cagep->w[k]) <= (float)HPC_CAGE_W_MAX) ||
                   !(fabsf(cagep->v[k]) <= (float)HPC_CAGE_W_MAX);
        }
        if (bad) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_PREDICTOR, "bad cage table");
        }
        r->pos += HPC_CAGE_TABLE_SECTION;
    }
    if (fi->cage) {
        if (!rd_need(r, HPC_CAGE_LAMBDA_SECTION)) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "cage lambda truncated");
        }
        cagep->lambda = ngl_rd_f32(r->p + r->pos);
        if (!(cagep->lambda > 0) || !(cagep->lambda <= 4)) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_PREDICTOR, "bad cage lambda");
        }
        r->pos += HPC_CAGE_LAMBDA_SECTION;
    }
    return NGL_OK;
}

/* A u32 length and that many bytes; @p what names it in the messages. */
static ngl_status parse_len_section(ngl_hpc_decoder *dec, rd *r, const char *what,
                                    const uint8_t **p, size_t *len)
{
    if (!rd_need(r, 4)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "%s section missing", what);
    }
    *len = ngl_rd_u32(r->p + r->pos);
    r->pos += 4;
    if (!rd_need(r, *len)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "%s section truncated", what);
    }
    *p = r->p + r->pos;
    r->pos += *len;
    return NGL_OK;
}

/* The value CRC, the block selectors (2 bits per 256 atoms, into c->sel),
 * the rANS and raw sections, which must end the record exactly. */
static ngl_status parse_values_head(ngl_hpc_decoder *dec, rd *r, frame_in *fi)
{
    hpc_core *c = &dec->c;
    const uint8_t *pay = r->p;
    if (!rd_need(r, 4)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "value CRC missing");
    }
    fi->want_crc = ngl_rd_u32(pay + r->pos);
    r->pos += 4;
    const uint64_t nblocks = (fi->n + HPC_BLOCK_ATOMS - 1) / HPC_BLOCK_ATOMS;
    const size_t selbytes = (size_t)((nblocks + 3) / 4);
    if (!rd_need(r, selbytes)) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_SECTION, "selectors truncated");
    }
    fi->any_model = 0;
    for (uint64_t b = 0; b < nblocks; b++) {
        c->sel[b] = (uint8_t)((pay[r->pos + b / 4] >> (2 * (b % 4))) & 3u);
        fi->any_model |= c->sel[b] == HPC_SEL_MODEL;
    }
    if (nblocks % 4 && (pay[r->pos + selbytes - 1] >> (2 * (nblocks % 4)))) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_FLAGS, "selector padding not zero");
    }
    r->pos += selbytes;
    ngl_status st = parse_len_section(dec, r, "rANS", &fi->rans, &fi->rans_len);
    if (st == NGL_OK) {
        st = parse_len_section(dec, r, "raw", &fi->raw, &fi->raw_len);
    }
    if (st == NGL_OK && r->pos != r->len) {
        st = hpc_dec_fail(dec, NGL_ERR_BAD_LENGTH, "%zu bytes after the last section",
                          r->len - r->pos);
    }
    return st;
}

/* What the predictors need before the first value: the state in this
 * frame's atom order, the force term (§6.7) if a MODEL block uses it, the
 * cage's grids (§6.8) in a cage frame. @return the force term's use in
 * *use_force. Failures leave the state as it was, but for the gather, which
 * the next frame redoes. */
static ngl_status prepare_predictors(ngl_hpc_decoder *dec, const frame_in *fi, int *use_force)
{
    hpc_core *c = &dec->c;
    if (!fi->same) {
        hpc_core_gather(c, fi->n);
    }
    *use_force = fi->model.valid && fi->model.fn.nknots > 0 && fi->any_model && !fi->cage;
    if (*use_force) {
        const hpc_model saved_model = c->model;
        const double saved_r2lo = c->r2lo, saved_r2hi = c->r2hi;
        c->r2lo = fi->model.fn.r2lo;
        c->r2hi = fi->model.fn.r2hi;
        ngl_status st = hpc_core_build_cells(c);
        if (st != NGL_OK) {
            c->r2lo = saved_r2lo;
            c->r2hi = saved_r2hi;
            return hpc_dec_fail(dec, st == NGL_ERR_NO_MEMORY ? st : NGL_ERR_BAD_PREDICTOR,
                                "force term not computable for this frame");
        }
        c->model = fi->model;
        hpc_core_force(c, fi->n, !fi->same);
        c->model = saved_model;
    }
    if (fi->cage) {
        hpc_core_prev_positions(c);
        ngl_status st = hpc_cage_begin(&c->cage, fi->cagep.rc2, fi->lo, fi->hi, fi->per, c->pos,
                                       c->valid, c->n, c->pmap, fi->n);
        if (st != NGL_OK) {
            return hpc_dec_fail(dec, st == NGL_ERR_NO_MEMORY ? st : NGL_ERR_BAD_PREDICTOR,
                                "cage not computable for this frame");
        }
        hpc_cage_set_params(&c->cage, &fi->cagep);
    }
    return NGL_OK;
}

/* ----------------------------------------------------------------- commit */
/* The frame becomes the decoder's state and its output. */
static void commit_frame(ngl_hpc_decoder *dec, const frame_in *fi, int use_force,
                         uint64_t exact_count, uint64_t wraps)
{
    hpc_core *c = &dec->c;
    const uint64_t n = fi->n;
    if (!fi->same) {
        hpc_ent *t = c->ring;
        c->ring = c->ring_alt;
        c->ring_alt = t;
    }
    c->head = (c->head + 1) % HPC_HIST;
    if (!fi->same) {
        c->ids_identity = fi->identity;
        if (!fi->identity && n) {
            memcpy(c->ids, fi->ids, (size_t)n * sizeof(int64_t));
        }
    }
    c->n = n;
    c->has_box = fi->has_box;
    for (int a = 0; a < 3; a++) {
        c->lo[a] = fi->lo[a];
        c->hi[a] = fi->hi[a];
        c->per[a] = (uint8_t)fi->per[a];
    }
    c->model = fi->model;
    if (fi->cage_table) {
        c->cagep = fi->cagep;
        c->cage_have = 1;
    }
    if (fi->model.fn.nknots) {
        c->r2lo = fi->model.fn.r2lo;
        c->r2hi = fi->model.fn.r2hi;
    }
    c->frame++;
    dec->cur = fi->out_set;
    dec->have_frame = 1;
    ngl_hpc_frame *fr = &dec->frame;
    memset(fr, 0, sizeof(*fr));
    fr->natoms = n;
    fr->ids = fi->ids;
    fr->xyz = fi->xyz;
    fr->has_box = fi->has_box;
    for (int a = 0; a < 3; a++) {
        fr->box_lo[a] = fi->lo[a];
        fr->box_hi[a] = fi->hi[a];
        fr->periodic[a] = (uint8_t)fi->per[a];
    }
    dec->stats.frames++;
    dec->stats.values += 3 * n;
    dec->stats.exact += exact_count;
    dec->stats.wraps += wraps;
    dec->stats.model_frames += (uint64_t)(fi->any_model && fi->model.valid && !fi->cage);
    dec->stats.force_frames += (uint64_t)use_force;
    dec->stats.cage_frames += (uint64_t)fi->cage;
}

static ngl_status decode_frame(ngl_hpc_decoder *dec, const uint8_t *pay, size_t len)
{
    hpc_core *c = &dec->c;
    rd r = {pay, len, 0};
    frame_in fi;
    memset(&fi, 0, sizeof(fi));
    ngl_status st = parse_fixed(dec, &r, &fi);
    if (st != NGL_OK) {
        return st;
    }
    st = hpc_core_reserve(c, fi.n);
    if (st == NGL_OK) {
        st = reserve_out(dec, dec->cur ^ 1, fi.n);
    }
    if (st != NGL_OK) {
        return hpc_dec_fail(dec, st, "out of memory for %llu atoms", (unsigned long long)fi.n);
    }
    fi.out_set = dec->cur ^ 1;
    fi.ids = dec->ids_out[fi.out_set];
    fi.xyz = dec->xyz_out[fi.out_set];
    if ((st = parse_ids(dec, &r, &fi)) != NGL_OK || (st = parse_model(dec, &r, &fi)) != NGL_OK ||
        (st = parse_cage(dec, &r, &fi)) != NGL_OK ||
        (st = parse_values_head(dec, &r, &fi)) != NGL_OK) {
        return st;
    }
    hpc_rdec rdx;
    if (hpc_rdec_init(&rdx, fi.rans, fi.rans_len) != 0) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_CODE, "rANS section malformed");
    }
    int use_force;
    if ((st = prepare_predictors(dec, &fi, &use_force)) != NGL_OK) {
        return st;
    }
    /* from here a failure loses the adaptive state */
    dec->poisoned = 1;
    hpc_bitr raw;
    hpc_bitr_init(&raw, fi.raw, fi.raw_len);
    uint64_t exact_count, wraps;
    if ((st = hpc_dec_values(dec, &fi, &rdx, &raw, use_force, &exact_count, &wraps)) != NGL_OK) {
        return st;
    }
    dec->poisoned = 0;
    commit_frame(dec, &fi, use_force, exact_count, wraps);
    return NGL_OK;
}
ngl_status ngl_hpc_decoder_decode(ngl_hpc_decoder *dec, const void *src, size_t src_len,
                                  int *got_frame)
{
    if (dec == NULL || src == NULL || got_frame == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *got_frame = 0;
    dec->err[0] = '\0';
    if (dec->poisoned) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_CODE,
                            "decoder state lost after a malformed frame; create a new decoder");
    }
    size_t rec_len;
    ngl_status st = ngl_hpc_record_size(src, src_len, &rec_len);
    if (st != NGL_OK) {
        return hpc_dec_fail(dec, st, "%s",
                            st == NGL_ERR_TRUNCATED ? "record header truncated"
                                                    : "not an hpc record");
    }
    if (src_len < rec_len) {
        return hpc_dec_fail(dec, NGL_ERR_TRUNCATED, "record of %zu bytes, %zu available", rec_len,
                            src_len);
    }
    if (src_len > rec_len) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_LENGTH, "%zu bytes after the record",
                            src_len - rec_len);
    }
    const uint8_t *p = src;
    size_t len = rec_len - HPC_REC_OVERHEAD;
    if (ngl_crc32c(0, p, HPC_REC_HEADER + len) != ngl_rd_u32(p + HPC_REC_HEADER + len)) {
        return hpc_dec_fail(dec, NGL_ERR_CRC_MISMATCH, "record CRC32C mismatch");
    }
    if (p[3] == HPC_REC_STREAM) {
        st = decode_stream_header(dec, p + HPC_REC_HEADER, len);
    } else {
        st = decode_frame(dec, p + HPC_REC_HEADER, len);
        *got_frame = st == NGL_OK;
    }
    if (st == NGL_OK) {
        dec->stats.bytes_out += rec_len;
    }
    return st;
}
