/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_decoder.c -- the hpc stream decoder (nangila_hpc.h; format in
 * hpc/FORMAT.md). Every record is checked (CRC32C, lengths, fields) before
 * any state changes; the decoded values are then checked against the CRC the
 * encoder computed on its own reconstruction, so a decoder that diverged from
 * the encoder reports an error instead of returning wrong values.
 */
#include "hpc_core.h"

#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(NGL_HAVE_ZSTD)
#include <zstd.h>
#endif

struct ngl_hpc_decoder {
    hpc_core c;
    int poisoned;
    int64_t *ids_out[2];
    void *xyz_out[2];
    uint64_t out_cap[2];
    int cur; /* output set holding the last frame */
    uint64_t max_atoms;
    int have_frame;
    ngl_hpc_frame frame;
    uint8_t *idraw;
    size_t idraw_cap;
    ngl_hpc_stats stats;
    char err[256];
#if defined(NGL_HAVE_ZSTD)
    ZSTD_DCtx *zd;
#endif
};

static ngl_status fail(ngl_hpc_decoder *dec, ngl_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dec->err, sizeof(dec->err), fmt, ap);
    va_end(ap);
    return st;
}

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
    uint32_t len = hpc_get_u32(p + 4);
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
        return fail(dec, NGL_ERR_BAD_LENGTH, "stream header of %zu bytes", len);
    }
    if (p[0] != NGL_HPC_FORMAT_VERSION) {
        return fail(dec, NGL_ERR_BAD_VERSION, "format version %u, expected %u", p[0],
                    NGL_HPC_FORMAT_VERSION);
    }
    if (p[1] > NGL_HPC_F64) {
        return fail(dec, NGL_ERR_BAD_DTYPE, "unknown dtype %u", p[1]);
    }
    if (p[2] > NGL_HPC_LEVEL_BEST) {
        return fail(dec, NGL_ERR_BAD_FLAGS, "unknown level %u", p[2]);
    }
    if ((p[3] & ~3u) || hpc_get_u32(p + 4) != 0) {
        return fail(dec, NGL_ERR_BAD_FLAGS, "reserved stream-header bits set");
    }
    double eps = hpc_get_f64(p + 8), step = hpc_get_f64(p + 16), rel = hpc_get_f64(p + 24);
    int lossless = (p[3] & 2u) != 0;
    if (!(rel >= 0) || !isfinite(rel) || ((p[3] & 1u) != 0) != (rel > 0)) {
        return fail(dec, NGL_ERR_BAD_SCALE, "bad rel %g", rel);
    }
    if (lossless ? !(step == 0 && !signbit(step) && eps >= 0 && eps <= DBL_MAX)
                 : !(eps >= 1e-290 && eps <= DBL_MAX / 4 && step > 0 && step <= 2 * eps &&
                     step >= eps * 0x1p-7)) {
        return fail(dec, NGL_ERR_BAD_SCALE, "bad eps %g / step %g", eps, step);
    }
    if (c->configured) {
        return fail(dec, NGL_ERR_BAD_SECTION, "second stream header");
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
        return fail(dec, NGL_ERR_BAD_INDEX, "ids section shorter than its bitmap");
    }
    if (n % 8 && (b[bm - 1] >> (n % 8))) {
        return fail(dec, NGL_ERR_BAD_INDEX, "ids bitmap padding not zero");
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
        if (hpc_get_varint(b, len, &pos, &z) != 0) {
            return fail(dec, NGL_ERR_BAD_INDEX, "ids: bad varint at atom %llu",
                        (unsigned long long)k);
        }
        int64_t id;
        if (b[k / 8] & (1u << (k % 8))) {
            id = hpc_wadd(lastnew, hpc_unzigzag(z));
            lastnew = id;
            if (c->frame > 0 && hpc_idmap_find(&c->prev_map, id) != HPC_NONE) {
                return fail(dec, NGL_ERR_BAD_INDEX, "ids: new atom %lld was in the last frame",
                            (long long)id);
            }
            c->pmap[k] = HPC_NONE;
        } else {
            int64_t pp = hpc_wadd(lastpp + 1, hpc_unzigzag(z));
            if (pp < 0 || (uint64_t)pp >= c->n || c->stamp[pp] == c->stamp_gen) {
                return fail(dec, NGL_ERR_BAD_INDEX, "ids: bad reference %lld at atom %llu",
                            (long long)pp, (unsigned long long)k);
            }
            c->stamp[pp] = c->stamp_gen;
            lastpp = pp;
            id = c->ids_identity ? pp : c->ids[pp];
            c->pmap[k] = (uint32_t)pp;
        }
        if (hpc_idmap_insert(&c->new_map, id, (uint32_t)k) != 0) {
            return fail(dec, NGL_ERR_BAD_INDEX, "ids: duplicate id %lld", (long long)id);
        }
        ids[k] = id;
    }
    if (pos != len) {
        return fail(dec, NGL_ERR_BAD_INDEX, "ids section has %zu trailing bytes", len - pos);
    }
    return NGL_OK;
}

/* Token of context @p ci, escapes resolved. @return the token, or -1 if invalid. */
static inline int read_token(hpc_rdec *rdx, hpc_bitr *raw, hpc_ctx *cx)
{
    unsigned s = hpc_rdec_sym(rdx, cx);
    if (s == HPC_TOK_RARE) {
        s = (unsigned)hpc_bitr_get(raw, 8);
        if (s == HPC_TOK_RARE || s == 253u || s == 255u || cx->freq[s] != 0) {
            return -1;
        }
    } else if (s == 253u || s == 255u) {
        return -1;
    }
    hpc_ctx_count(cx, s);
    return (int)s;
}

static ngl_status decode_frame(ngl_hpc_decoder *dec, const uint8_t *pay, size_t len)
{
    hpc_core *c = &dec->c;
    rd r = {pay, len, 0};
    if (!c->configured) {
        return fail(dec, NGL_ERR_BAD_SECTION, "frame record before the stream header");
    }
    if (!rd_need(&r, 16)) {
        return fail(dec, NGL_ERR_BAD_SECTION, "frame record too short");
    }
    uint64_t index = hpc_get_u64(pay);
    uint64_t n = hpc_get_u32(pay + 8);
    unsigned flags = pay[12];
    if (index != c->frame) {
        return fail(dec, NGL_ERR_STEP_MISMATCH, "frame %llu where %llu was expected",
                    (unsigned long long)index, (unsigned long long)c->frame);
    }
    if ((flags & ~HPC_FF_KNOWN) || pay[13] != 0 || hpc_get_u16(pay + 14) != 0) {
        return fail(dec, NGL_ERR_BAD_FLAGS, "unknown frame flags 0x%02x", flags);
    }
    if (n > NGL_HPC_MAX_ATOMS) {
        return fail(dec, NGL_ERR_BAD_LENGTH, "frame of %llu atoms", (unsigned long long)n);
    }
    const int same = (flags & HPC_FF_IDS_SAME) != 0;
    const int identity = (flags & HPC_FF_IDS_IDENTITY) != 0;
    if (same && (identity || c->frame == 0 || c->n != n || (flags & HPC_FF_IDS_ZSTD))) {
        return fail(dec, NGL_ERR_BAD_FLAGS, "ids flags inconsistent with the last frame");
    }
    if (identity && (flags & HPC_FF_IDS_ZSTD)) {
        return fail(dec, NGL_ERR_BAD_FLAGS, "ids flags inconsistent");
    }
    r.pos = 16;
    /* A frame of constant values costs almost nothing, so the payload size
     * does not bound the atom count; the decoder's own limit does. */
    if (n > dec->max_atoms) {
        return fail(dec, NGL_ERR_BAD_LENGTH, "frame of %llu atoms exceeds the decoder's limit",
                    (unsigned long long)n);
    }
    if (!same && !identity && n > (uint64_t)len) {
        return fail(dec, NGL_ERR_BAD_LENGTH, "atom count %llu too large for the record",
                    (unsigned long long)n); /* each atom needs >= 1 byte of ids section */
    }
    int has_box = (flags & HPC_FF_BOX) != 0;
    double lo[3] = {0, 0, 0}, hi[3] = {0, 0, 0};
    int per[3] = {0, 0, 0};
    double blen[3] = {0, 0, 0};
    if (has_box) {
        if (!rd_need(&r, 49)) {
            return fail(dec, NGL_ERR_BAD_SECTION, "box truncated");
        }
        for (int a = 0; a < 3; a++) {
            lo[a] = hpc_get_f64(pay + r.pos + 16 * a);
            hi[a] = hpc_get_f64(pay + r.pos + 16 * a + 8);
            if (!isfinite(lo[a]) || !isfinite(hi[a]) || !(lo[a] < hi[a]) ||
                !isfinite(hi[a] - lo[a])) {
                return fail(dec, NGL_ERR_BAD_SECTION, "bad box on axis %d", a);
            }
        }
        unsigned pb = pay[r.pos + 48];
        if (pb & ~7u) {
            return fail(dec, NGL_ERR_BAD_FLAGS, "bad periodic bits 0x%02x", pb);
        }
        for (int a = 0; a < 3; a++) {
            per[a] = (pb >> a) & 1;
            blen[a] = per[a] ? hi[a] - lo[a] : 0.0;
        }
        r.pos += 49;
    }
    ngl_status st = hpc_core_reserve(c, n);
    if (st == NGL_OK) {
        st = reserve_out(dec, dec->cur ^ 1, n);
    }
    if (st != NGL_OK) {
        return fail(dec, st, "out of memory for %llu atoms", (unsigned long long)n);
    }
    const int out_set = dec->cur ^ 1;
    int64_t *ids = dec->ids_out[out_set];
    void *xyz = dec->xyz_out[out_set];

    /* ---- ids */
    if (same) {
        for (uint64_t k = 0; k < n; k++) {
            c->pmap[k] = (uint32_t)k;
            ids[k] = c->ids_identity ? (int64_t)k : c->ids[k];
        }
    } else if (identity) {
        if (c->frame > 0 && (st = hpc_core_prev_map(c)) != NGL_OK) {
            return fail(dec, st, "out of memory");
        }
        for (uint64_t k = 0; k < n; k++) {
            ids[k] = (int64_t)k;
            c->pmap[k] = c->frame > 0 ? hpc_idmap_find(&c->prev_map, (int64_t)k) : HPC_NONE;
        }
    } else {
        if (!rd_need(&r, 4)) {
            return fail(dec, NGL_ERR_BAD_SECTION, "ids section truncated");
        }
        size_t slen = hpc_get_u32(pay + r.pos);
        r.pos += 4;
        if (!rd_need(&r, slen)) {
            return fail(dec, NGL_ERR_BAD_SECTION, "ids section truncated");
        }
        const uint8_t *sb = pay + r.pos;
        size_t sbl = slen;
        r.pos += slen;
        if (flags & HPC_FF_IDS_ZSTD) {
#if defined(NGL_HAVE_ZSTD)
            if (sbl < 4) {
                return fail(dec, NGL_ERR_BAD_SECTION, "ids section truncated");
            }
            size_t rawlen = hpc_get_u32(sb);
            if (rawlen > (size_t)(n / 8 + 1 + 10 * n)) {
                return fail(dec, NGL_ERR_BAD_BACKEND, "ids: implausible length %zu", rawlen);
            }
            if (dec->idraw_cap < rawlen + 1) {
                uint8_t *nb = realloc(dec->idraw, rawlen + 1);
                if (nb == NULL) {
                    return fail(dec, NGL_ERR_NO_MEMORY, "out of memory");
                }
                dec->idraw = nb;
                dec->idraw_cap = rawlen + 1;
            }
            if (dec->zd == NULL && (dec->zd = ZSTD_createDCtx()) == NULL) {
                return fail(dec, NGL_ERR_NO_MEMORY, "out of memory");
            }
            size_t got = ZSTD_decompressDCtx(dec->zd, dec->idraw, rawlen, sb + 4, sbl - 4);
            if (ZSTD_isError(got) || got != rawlen) {
                return fail(dec, NGL_ERR_BAD_BACKEND, "ids: zstd data does not decode");
            }
            sb = dec->idraw;
            sbl = rawlen;
#else
            return fail(dec, NGL_ERR_BACKEND_UNAVAILABLE, "ids section needs zstd");
#endif
        }
        if ((st = decode_ids(dec, sb, sbl, n, ids)) != NGL_OK) {
            return st;
        }
    }

    /* ---- model */
    hpc_model model = c->model;
    if (flags & HPC_FF_MODEL) {
        if (!rd_need(&r, 4)) {
            return fail(dec, NGL_ERR_BAD_SECTION, "model truncated");
        }
        unsigned ntaps = pay[r.pos], nknots = pay[r.pos + 1];
        if (ntaps != HPC_TAPS || (nknots != 0 && nknots != HPC_KNOTS) ||
            hpc_get_u16(pay + r.pos + 2) != 0) {
            return fail(dec, NGL_ERR_BAD_PREDICTOR, "model with %u taps and %u knots", ntaps,
                        nknots);
        }
        r.pos += 4;
        size_t need = 2 * HPC_TAPS + (nknots ? 16 + 4 * HPC_KNOTS : 0);
        if (!rd_need(&r, need)) {
            return fail(dec, NGL_ERR_BAD_SECTION, "model truncated");
        }
        memset(&model, 0, sizeof(model));
        model.valid = 1;
        for (unsigned k = 0; k < HPC_TAPS; k++) {
            model.taps[k] = (int16_t)hpc_get_u16(pay + r.pos + 2 * k);
        }
        r.pos += 2 * HPC_TAPS;
        if (nknots) {
            model.fn.nknots = HPC_KNOTS;
            model.fn.r2lo = hpc_get_f64(pay + r.pos);
            model.fn.r2hi = hpc_get_f64(pay + r.pos + 8);
            r.pos += 16;
            if (!(model.fn.r2lo >= 0) || !(model.fn.r2hi > model.fn.r2lo) ||
                !isfinite(model.fn.r2hi) || c->lossless) {
                return fail(dec, NGL_ERR_BAD_PREDICTOR, "bad force-term range");
            }
            for (unsigned k = 0; k < HPC_KNOTS; k++) {
                model.fn.psi[k] = hpc_get_f32(pay + r.pos + 4 * k);
                if (!isfinite(model.fn.psi[k])) {
                    return fail(dec, NGL_ERR_BAD_PREDICTOR, "non-finite force knot");
                }
            }
            r.pos += 4 * HPC_KNOTS;
        }
    }

    /* ---- cage parameters (§6.8) */
    const int cage = (flags & HPC_FF_CAGE) != 0;
    const int cage_table = (flags & HPC_FF_CAGE_TABLE) != 0;
    hpc_cage_params cagep = c->cagep;
    if (cage_table && !cage) {
        return fail(dec, NGL_ERR_BAD_FLAGS, "cage table without the cage");
    }
    if (cage) {
        if ((flags & HPC_FF_MODEL) || !has_box || c->lossless || c->frame == 0 || !c->has_box) {
            return fail(dec, NGL_ERR_BAD_FLAGS, "cage frame without a box or a previous frame");
        }
        if (!cage_table && !c->cage_have) {
            return fail(dec, NGL_ERR_BAD_PREDICTOR, "cage frame before any cage table");
        }
    }
    if (cage_table) {
        if (!rd_need(&r, HPC_CAGE_TABLE_SECTION)) {
            return fail(dec, NGL_ERR_BAD_SECTION, "cage table truncated");
        }
        const uint8_t *q = pay + r.pos;
        cagep.iters = q[1];
        cagep.rc2 = hpc_get_f64(q + 4);
        int bad = q[0] != HPC_CAGE_KNOTS || cagep.iters < 1 || cagep.iters > HPC_CAGE_ITERS_MAX ||
                  hpc_get_u16(q + 2) != 0 || !(cagep.rc2 > 0) || !isfinite(cagep.rc2);
        for (unsigned k = 0; k <= HPC_CAGE_KNOTS; k++) {
            cagep.w[k] = hpc_get_f32(q + 12 + 4 * k);
            cagep.v[k] = hpc_get_f32(q + 12 + 4 * (HPC_CAGE_KNOTS + 1) + 4 * k);
            bad |= !(fabsf(cagep.w[k]) <= (float)HPC_CAGE_W_MAX) ||
                   !(fabsf(cagep.v[k]) <= (float)HPC_CAGE_W_MAX);
        }
        if (bad) {
            return fail(dec, NGL_ERR_BAD_PREDICTOR, "bad cage table");
        }
        r.pos += HPC_CAGE_TABLE_SECTION;
    }
    if (cage) {
        if (!rd_need(&r, HPC_CAGE_LAMBDA_SECTION)) {
            return fail(dec, NGL_ERR_BAD_SECTION, "cage lambda truncated");
        }
        cagep.lambda = hpc_get_f32(pay + r.pos);
        if (!(cagep.lambda > 0) || !(cagep.lambda <= 4)) {
            return fail(dec, NGL_ERR_BAD_PREDICTOR, "bad cage lambda");
        }
        r.pos += HPC_CAGE_LAMBDA_SECTION;
    }

    /* ---- value CRC, selectors, rANS, raw */
    if (!rd_need(&r, 4)) {
        return fail(dec, NGL_ERR_BAD_SECTION, "value CRC missing");
    }
    uint32_t want_crc = hpc_get_u32(pay + r.pos);
    r.pos += 4;
    const uint64_t nblocks = (n + HPC_BLOCK_ATOMS - 1) / HPC_BLOCK_ATOMS;
    const size_t selbytes = (size_t)((nblocks + 3) / 4);
    if (!rd_need(&r, selbytes)) {
        return fail(dec, NGL_ERR_BAD_SECTION, "selectors truncated");
    }
    int any_model = 0;
    for (uint64_t b = 0; b < nblocks; b++) {
        c->sel[b] = (uint8_t)((pay[r.pos + b / 4] >> (2 * (b % 4))) & 3u);
        any_model |= c->sel[b] == HPC_SEL_MODEL;
    }
    if (nblocks % 4 && (pay[r.pos + selbytes - 1] >> (2 * (nblocks % 4)))) {
        return fail(dec, NGL_ERR_BAD_FLAGS, "selector padding not zero");
    }
    r.pos += selbytes;
    if (!rd_need(&r, 4)) {
        return fail(dec, NGL_ERR_BAD_SECTION, "rANS section missing");
    }
    size_t rans_len = hpc_get_u32(pay + r.pos);
    r.pos += 4;
    if (!rd_need(&r, rans_len)) {
        return fail(dec, NGL_ERR_BAD_SECTION, "rANS section truncated");
    }
    const uint8_t *rans = pay + r.pos;
    r.pos += rans_len;
    if (!rd_need(&r, 4)) {
        return fail(dec, NGL_ERR_BAD_SECTION, "raw section missing");
    }
    size_t raw_len = hpc_get_u32(pay + r.pos);
    r.pos += 4;
    if (!rd_need(&r, raw_len)) {
        return fail(dec, NGL_ERR_BAD_SECTION, "raw section truncated");
    }
    const uint8_t *rawp = pay + r.pos;
    r.pos += raw_len;
    if (r.pos != len) {
        return fail(dec, NGL_ERR_BAD_LENGTH, "%zu bytes after the last section", len - r.pos);
    }
    hpc_rdec rdx;
    if (hpc_rdec_init(&rdx, rans, rans_len) != 0) {
        return fail(dec, NGL_ERR_BAD_CODE, "rANS section malformed");
    }

    /* ---- state for this frame */
    const int gathered = !same;
    if (gathered) {
        hpc_core_gather(c, n);
    }
    const int use_force = model.valid && model.fn.nknots > 0 && any_model && !cage;
    hpc_model saved_model = c->model;
    double saved_r2lo = c->r2lo, saved_r2hi = c->r2hi;
    if (use_force) {
        c->r2lo = model.fn.r2lo;
        c->r2hi = model.fn.r2hi;
        st = hpc_core_build_cells(c);
        if (st != NGL_OK) {
            c->r2lo = saved_r2lo;
            c->r2hi = saved_r2hi;
            return fail(dec, st == NGL_ERR_NO_MEMORY ? st : NGL_ERR_BAD_PREDICTOR,
                        "force term not computable for this frame");
        }
        c->model = model;
        hpc_core_force(c, n, gathered);
        c->model = saved_model;
    }

    if (cage) {
        hpc_core_prev_positions(c);
        st = hpc_cage_begin(&c->cage, cagep.rc2, lo, hi, per, c->pos, c->valid, c->n, c->pmap, n);
        if (st != NGL_OK) {
            return fail(dec, st == NGL_ERR_NO_MEMORY ? st : NGL_ERR_BAD_PREDICTOR,
                        "cage not computable for this frame");
        }
        hpc_cage_set_params(&c->cage, &cagep);
    }
    const double q12 = c->inv_step * (double)(1 << HPC_PRED_SHIFT);

    /* ---- decoding pass: from here a failure loses the adaptive state */
    dec->poisoned = 1;
    hpc_bitr raw;
    hpc_bitr_init(&raw, rawp, raw_len);
    hpc_ctx *ctx = c->ctx;
    hpc_ctxset_refresh(ctx, HPC_NCTX, 1);
    hpc_ent *RW = gathered ? c->ring_alt : c->ring;
    const unsigned head = c->head;
    const unsigned wslot = (head + 1) % HPC_HIST;
    int64_t s1[3] = {0, 0, 0}, s2[3] = {0, 0, 0};
    unsigned schain[3] = {0, 0, 0}, sbk[3] = {0, 0, 0};
    const int lossless = c->lossless;
    const int spatial2 = (flags & HPC_FF_SPATIAL2) != 0;
    const double step = c->step, inv = c->inv_step;
    const int f32 = c->dtype == NGL_HPC_F32;
    hpc_waxis wax[3];
    for (int a = 0; a < 3; a++) {
        wax[a] = hpc_waxis_make(lo[a], hi[a], inv);
    }
    float *o32 = xyz;
    double *o64 = xyz;
    uint64_t exact_count = 0, wraps = 0;
    for (uint64_t k = 0; k < n; k++) {
        const unsigned sel = c->sel[k / HPC_BLOCK_ATOMS];
        const int cage_sel = cage && sel == HPC_SEL_MODEL;
        const uint32_t pk = c->pmap[k];
        int caged = cage_sel && pk != HPC_NONE && c->valid[pk];
        int64_t cf[3] = {0, 0, 0};
        if (caged) {
            double d[3];
            caged = hpc_cage_descend(&c->cage, k, c->pos + 3 * (size_t)pk, d) == 0;
            for (unsigned a = 0; a < 3 && caged; a++) {
                cf[a] = hpc_cage_fixed(&c->cage, d[a], q12);
            }
        }
        int any_exact = 0;
        int have_prev_axis = 0;
        unsigned prev_bucket = 0;
        for (unsigned a = 0; a < 3; a++) {
            const uint64_t v = 3 * k + a;
            if (v != 0 && v % HPC_CHUNK == 0) {
                hpc_ctxset_refresh(ctx, HPC_NCTX, 1);
            }
            hpc_ent *rv = RW + v * HPC_HIST;
            const hpc_ent *e1 = &rv[head];
            const unsigned age = e1->age;
            int64_t pred;
            unsigned ci;
            int32_t img = 0;
            if (age) {
                unsigned pc;
                if (caged) {
                    pred = hpc_predict_cage(e1->q, cf[a], &pc);
                } else {
                    pred = hpc_predict(rv, head, cage_sel ? HPC_SEL_ORDER1 : sel, age, &model,
                                       use_force ? c->Fcur[v] : 0, &pc);
                }
                unsigned mb = hpc_mag_bucket(e1->mag);
                ci = hpc_ctx_temporal(mb, hpc_ob(have_prev_axis, prev_bucket, mb), pc);
                img = e1->img;
            } else {
                pred = schain[a] == 0                 ? 0
                       : (spatial2 && schain[a] >= 2) ? hpc_wsub(hpc_wadd(s1[a], s1[a]), s2[a])
                                                      : s1[a];
                ci = HPC_CTX_SPATIAL + sbk[a];
            }
            int wctx = -1, dimg = 0;
            unsigned wrap = 0;
            if (!lossless && age && per[a]) {
                wctx = hpc_wrap_ctx(pred, img, &wax[a], e1->mag, &dimg);
                if (wctx >= 0) {
                    wrap = hpc_rdec_sym(&rdx, &ctx[HPC_CTX_WRAP + (unsigned)wctx]);
                    hpc_ctx_count(&ctx[HPC_CTX_WRAP + (unsigned)wctx], wrap);
                }
            }
            int tok = read_token(&rdx, &raw, &ctx[ci]);
            if (tok < 0) {
                return fail(dec, NGL_ERR_BAD_CODE, "invalid token at value %llu",
                            (unsigned long long)v);
            }
            hpc_ent *ne = &rv[wslot];
            if (tok == HPC_TOK_EXACT) {
                ne->q = 0;
                ne->img = 0;
                ne->mag = 0;
                ne->age = 0;
                if (lossless || wrap) {
                    return fail(dec, NGL_ERR_BAD_CODE, "unexpected exact value at %llu",
                                (unsigned long long)v);
                }
                if (f32) {
                    uint32_t u = (uint32_t)hpc_bitr_get(&raw, 32);
                    memcpy(&o32[v], &u, 4);
                } else {
                    uint64_t u = hpc_bitr_get(&raw, 64);
                    memcpy(&o64[v], &u, 8);
                }
                have_prev_axis = 0;
                exact_count++;
                any_exact = 1;
            } else {
                uint64_t z;
                unsigned nraw = hpc_token_base((unsigned)tok, &z);
                z |= hpc_bitr_get(&raw, nraw);
                const int64_t qv = hpc_wadd(pred, hpc_unzigzag(z));
                if (lossless) {
                    if (f32) {
                        if (qv < INT32_MIN || qv > INT32_MAX) {
                            return fail(dec, NGL_ERR_BAD_CODE, "value %llu out of range",
                                        (unsigned long long)v);
                        }
                        uint32_t u = hpc_bits32_from_ord(qv);
                        memcpy(&o32[v], &u, 4);
                    } else {
                        uint64_t u = hpc_bits64_from_ord(qv);
                        memcpy(&o64[v], &u, 8);
                    }
                } else {
                    if (qv >= HPC_Q_LIMIT || qv <= -HPC_Q_LIMIT) {
                        return fail(dec, NGL_ERR_BAD_CODE, "value %llu off the lattice",
                                    (unsigned long long)v);
                    }
                    if (wrap) {
                        img += dimg;
                        if (img > (1 << 30) || img < -(1 << 30)) {
                            return fail(dec, NGL_ERR_BAD_CODE, "image count overflow");
                        }
                    }
                    double d = hpc_recon(qv, img, step, blen[a]);
                    if (f32) {
                        o32[v] = (float)d;
                    } else {
                        o64[v] = d;
                    }
                }
                const uint16_t mag = hpc_mag_of(z);
                ne->q = qv;
                ne->img = img;
                ne->mag = mag;
                ne->age = (uint8_t)(age < 255 ? age + 1 : 255);
                if (age) {
                    have_prev_axis = 1;
                    prev_bucket = hpc_mag_bucket(mag);
                } else {
                    have_prev_axis = 0;
                    s2[a] = s1[a];
                    s1[a] = qv;
                    schain[a]++;
                    sbk[a] = hpc_mag_bucket(mag);
                }
                wraps += wrap;
            }
        }
        if (cage && !any_exact) {
            const double x[3] = {f32 ? (double)o32[3 * k] : o64[3 * k],
                                 f32 ? (double)o32[3 * k + 1] : o64[3 * k + 1],
                                 f32 ? (double)o32[3 * k + 2] : o64[3 * k + 2]};
            hpc_cage_insert(&c->cage, k, x);
        }
    }
    if (hpc_rdec_finish(&rdx) != 0) {
        return fail(dec, NGL_ERR_BAD_CODE, "rANS section does not end where it should");
    }
    if (raw.overrun || raw.pos != raw.len || raw.nacc >= 8 || raw.acc != 0) {
        return fail(dec, NGL_ERR_BAD_CODE, "raw section does not end where it should");
    }
    if (hpc_values_crc(xyz, 3 * n, c->dtype) != want_crc) {
        return fail(dec, NGL_ERR_CRC_MISMATCH,
                    "decoded values do not match the encoder's (CRC of frame %llu)",
                    (unsigned long long)index);
    }

    /* ---- commit */
    dec->poisoned = 0;
    if (gathered) {
        hpc_ent *t = c->ring;
        c->ring = c->ring_alt;
        c->ring_alt = t;
    }
    c->head = wslot;
    if (!same) {
        c->ids_identity = identity;
        if (!identity && n) {
            memcpy(c->ids, ids, (size_t)n * sizeof(int64_t));
        }
    }
    c->n = n;
    c->has_box = has_box;
    for (int a = 0; a < 3; a++) {
        c->lo[a] = lo[a];
        c->hi[a] = hi[a];
        c->per[a] = (uint8_t)per[a];
    }
    c->model = model;
    if (cage_table) {
        c->cagep = cagep;
        c->cage_have = 1;
    }
    if (model.fn.nknots) {
        c->r2lo = model.fn.r2lo;
        c->r2hi = model.fn.r2hi;
    }
    c->frame++;
    dec->cur = out_set;
    dec->have_frame = 1;
    ngl_hpc_frame *fr = &dec->frame;
    memset(fr, 0, sizeof(*fr));
    fr->natoms = n;
    fr->ids = ids;
    fr->xyz = xyz;
    fr->has_box = has_box;
    for (int a = 0; a < 3; a++) {
        fr->box_lo[a] = lo[a];
        fr->box_hi[a] = hi[a];
        fr->periodic[a] = (uint8_t)per[a];
    }
    dec->stats.frames++;
    dec->stats.values += 3 * n;
    dec->stats.exact += exact_count;
    dec->stats.wraps += wraps;
    dec->stats.model_frames += (uint64_t)(any_model && model.valid && !cage);
    dec->stats.force_frames += (uint64_t)use_force;
    dec->stats.cage_frames += (uint64_t)cage;
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
        return fail(dec, NGL_ERR_BAD_CODE,
                    "decoder state lost after a malformed frame; create a new decoder");
    }
    size_t rec_len;
    ngl_status st = ngl_hpc_record_size(src, src_len, &rec_len);
    if (st != NGL_OK) {
        return fail(dec, st, "%s",
                    st == NGL_ERR_TRUNCATED ? "record header truncated" : "not an hpc record");
    }
    if (src_len < rec_len) {
        return fail(dec, NGL_ERR_TRUNCATED, "record of %zu bytes, %zu available", rec_len, src_len);
    }
    if (src_len > rec_len) {
        return fail(dec, NGL_ERR_BAD_LENGTH, "%zu bytes after the record", src_len - rec_len);
    }
    const uint8_t *p = src;
    size_t len = rec_len - HPC_REC_OVERHEAD;
    if (ngl_crc32c(0, p, HPC_REC_HEADER + len) != hpc_get_u32(p + HPC_REC_HEADER + len)) {
        return fail(dec, NGL_ERR_CRC_MISMATCH, "record CRC32C mismatch");
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
