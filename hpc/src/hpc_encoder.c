/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_encoder.c -- the hpc stream encoder (nangila_hpc.h; format in
 * hpc/FORMAT.md): its API, its scratch, and the frame driver.
 *
 * Per frame, ngl_hpc_encoder_encode() checks the input, maps the atoms to
 * the previous frame by id, lets hpc_encoder_choose.c decide the model and
 * the predictors, writes the frame record's sections in their wire order
 * (§3.1: fixed part and box, ids, model, cage, value CRC and selectors), runs
 * the two coding passes of hpc_encoder_values.c into the rANS and raw
 * sections, and commits the new state. Everything that can fail (bad input,
 * memory) fails before the first byte of state changes, so a failed call
 * leaves the encoder usable.
 */
#include "hpc_encoder.h"
#include "hpc_fit.h"

#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static void set_err(ngl_hpc_encoder *enc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(enc->err, sizeof(enc->err), fmt, ap);
    va_end(ap);
}

void ngl_hpc_params_init(ngl_hpc_params *p)
{
    if (p == NULL) {
        return;
    }
    memset(p, 0, sizeof(*p));
    p->dtype = NGL_HPC_F32;
    p->eps = 1e-3;
    p->rel = 0;
    p->level = NGL_HPC_LEVEL_DEFAULT;
}

static size_t ids_bound(uint64_t n)
{
    return (size_t)(n / 8 + 1 + 10 * n + 64);
}

size_t ngl_hpc_encode_bound(uint64_t natoms)
{
    if (natoms > NGL_HPC_MAX_ATOMS) {
        return 0;
    }
    size_t n = (size_t)natoms;
    size_t b = HPC_REC_OVERHEAD + HPC_STREAM_PAYLOAD;      /* stream header */
    b += HPC_REC_OVERHEAD + 16 + 49;                       /* frame record, fixed part, box */
    b += 8 + ids_bound(n);                                 /* ids */
    b += 4 + 2 * HPC_TAPS + 16 + 4 * HPC_KNOTS;            /* model */
    b += HPC_CAGE_TABLE_SECTION + HPC_CAGE_LAMBDA_SECTION; /* cage */
    b += 4 + (n / HPC_BLOCK_ATOMS + 1) / 4 + 1;            /* value CRC, selectors */
    b += 4 + hpc_rans_bound(9 * n);                        /* <= 3 symbols per value */
    b += 4 + 27 * n + 16;                                  /* <= 72 raw bits per value */
    return b;
}

ngl_status ngl_hpc_encoder_create(const ngl_hpc_params *p, ngl_hpc_encoder **out)
{
    if (out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *out = NULL;
    if (p == NULL || (p->dtype != NGL_HPC_F32 && p->dtype != NGL_HPC_F64) || !(p->eps >= 0) ||
        !isfinite(p->eps) || !(p->rel >= 0) || !isfinite(p->rel) ||
        (p->level != NGL_HPC_LEVEL_FASTEST && p->level != NGL_HPC_LEVEL_FAST &&
         p->level != NGL_HPC_LEVEL_DEFAULT && p->level != NGL_HPC_LEVEL_BEST)) {
        return NGL_ERR_INVALID_ARG;
    }
    ngl_hpc_encoder *enc = calloc(1, sizeof(*enc));
    if (enc == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    enc->p = *p;
    ngl_status st = hpc_core_init(&enc->c);
    if (st != NGL_OK) {
        goto fail;
    }
    enc->c.dtype = p->dtype;
    enc->c.level = p->level;
    enc->c.no_ring = p->level <= NGL_HPC_LEVEL_FAST;
    enc->lean.depth = p->level == NGL_HPC_LEVEL_FASTEST ? 3u : LEAN_MAX_DEPTH;
    enc->kernel = hpc_lean_best_kernel();
    enc->c.rel = p->rel;
    *out = enc; /* the zstd context is created on first use */
    return NGL_OK;
fail:
    ngl_hpc_encoder_destroy(enc);
    return st;
}

void ngl_hpc_encoder_destroy(ngl_hpc_encoder *enc)
{
    if (enc == NULL) {
        return;
    }
#if defined(NGL_HAVE_ZSTD)
    ZSTD_freeCCtx(enc->zc);
#endif
    free(enc->sb.sym);
    free(enc->raw);
    free(enc->rans);
    free(enc->dec);
    free(enc->idbuf);
    free(enc->samples);
    free(enc->feat);
    free(enc->fit_f);
    free(enc->fit_y);
    free(enc->cage_disp);
    free(enc->cage_cur);
    free(enc->cage_fx);
    free(enc->cage_sel);
    hpc_lean_state_free(&enc->lean);
    hpc_core_free(&enc->c);
    free(enc);
}

hpc_lean_kernel hpc_encoder_set_kernel(ngl_hpc_encoder *enc, hpc_lean_kernel k)
{
    enc->kernel = hpc_lean_kernel_available(k) ? k : HPC_LEAN_SCALAR;
    return enc->kernel;
}

uint64_t hpc_encoder_kernel_values(const ngl_hpc_encoder *enc)
{
    return enc->kernel_values;
}

int hpc_encoder_use_ring(ngl_hpc_encoder *enc)
{
    if (enc->c.configured || enc->c.cap > 0) {
        return -1; /* only before the first frame */
    }
    enc->c.no_ring = 0;
    return 0;
}

double ngl_hpc_encoder_eps(const ngl_hpc_encoder *enc)
{
    if (enc == NULL) {
        return -1;
    }
    if (!enc->c.configured) {
        return enc->p.rel > 0 ? -1 : enc->p.eps;
    }
    return enc->c.eps;
}

void ngl_hpc_encoder_get_stats(const ngl_hpc_encoder *enc, ngl_hpc_stats *out)
{
    if (enc != NULL && out != NULL) {
        *out = enc->stats;
    }
}

const char *ngl_hpc_encoder_error(const ngl_hpc_encoder *enc)
{
    return enc != NULL ? enc->err : "";
}

static ngl_status reserve_scratch(ngl_hpc_encoder *enc, uint64_t n)
{
    ngl_status st = hpc_core_reserve(&enc->c, n);
    if (st != NGL_OK) {
        return st;
    }
    uint64_t cap = enc->c.cap;
    if (enc->c.no_ring && (st = hpc_lean_state_reserve(&enc->lean, 3 * cap)) != NGL_OK) {
        return st;
    }
    if (enc->scratch_cap >= cap && enc->sb.sym != NULL) {
        return NGL_OK;
    }
    size_t nsym = (size_t)(9 * cap);
    uint32_t *sym = realloc(enc->sb.sym, nsym * sizeof(*sym));
    if (sym == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    enc->sb.sym = sym;
    enc->sb.cap = nsym;
    size_t raw_cap = (size_t)(27 * cap + 16);
    uint8_t *raw = realloc(enc->raw, raw_cap);
    if (raw == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    enc->raw = raw;
    enc->raw_cap = raw_cap;
    size_t rans_cap = hpc_rans_bound(nsym);
    uint8_t *rans = realloc(enc->rans, rans_cap);
    if (rans == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    enc->rans = rans;
    enc->rans_cap = rans_cap;
    void *dec = realloc(enc->dec, (size_t)(3 * cap * 8));
    if (dec == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    enc->dec = dec;
    size_t idcap = ids_bound(cap);
    uint8_t *idb = realloc(enc->idbuf, idcap);
    if (idb == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    enc->idbuf = idb;
    enc->idbuf_cap = idcap;
    uint32_t *smp = realloc(enc->samples, FIT_SAMPLES_FORCE * 2 * sizeof(*smp));
    if (smp == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    enc->samples = smp;
    double *feat = realloc(enc->feat, (size_t)FIT_SAMPLES_FORCE * 3 * HPC_KNOTS * sizeof(*feat));
    if (feat == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    enc->feat = feat;
    double *ff = realloc(enc->fit_f, (size_t)FIT_SAMPLES_FORCE * 3 * HPC_LS_MAX * sizeof(*ff));
    if (ff == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    enc->fit_f = ff;
    double *fy = realloc(enc->fit_y, (size_t)FIT_SAMPLES_FORCE * 3 * sizeof(*fy));
    if (fy == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    enc->fit_y = fy;
    if (enc->c.level >= NGL_HPC_LEVEL_BEST) {
        double *cd = realloc(enc->cage_disp, (size_t)(3 * cap) * sizeof(*cd));
        if (cd == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        enc->cage_disp = cd;
        double *cu = realloc(enc->cage_cur, (size_t)(3 * cap) * sizeof(*cu));
        if (cu == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        enc->cage_cur = cu;
        int64_t *cf = realloc(enc->cage_fx, (size_t)(3 * cap) * sizeof(*cf));
        if (cf == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        enc->cage_fx = cf;
        uint8_t *cs = realloc(enc->cage_sel, (size_t)(cap / HPC_BLOCK_ATOMS + 1));
        if (cs == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        enc->cage_sel = cs;
    }
    enc->scratch_cap = cap;
    return NGL_OK;
}

/* ---------------------------------------------------- records and ids */
static size_t finish_record(uint8_t *rec, uint8_t type, size_t payload_len)
{
    rec[0] = 'N';
    rec[1] = 'H';
    rec[2] = 'P';
    rec[3] = type;
    ngl_wr_u32(rec + 4, (uint32_t)payload_len);
    uint32_t crc = ngl_crc32c(0, rec, HPC_REC_HEADER + payload_len);
    ngl_wr_u32(rec + HPC_REC_HEADER + payload_len, crc);
    return HPC_REC_OVERHEAD + payload_len;
}

static size_t write_stream_header(const ngl_hpc_encoder *enc, uint8_t *dst)
{
    uint8_t *p = dst + HPC_REC_HEADER;
    memset(p, 0, HPC_STREAM_PAYLOAD);
    p[0] = NGL_HPC_FORMAT_VERSION;
    p[1] = (uint8_t)enc->c.dtype;
    p[2] = (uint8_t)enc->c.level;
    p[3] = (uint8_t)((enc->c.rel > 0 ? 1u : 0u) | (enc->c.lossless ? 2u : 0u));
    ngl_wr_f64(p + 8, enc->c.eps);
    ngl_wr_f64(p + 16, enc->c.step);
    ngl_wr_f64(p + 24, enc->c.rel);
    return finish_record(dst, HPC_REC_STREAM, HPC_STREAM_PAYLOAD);
}

/* Resolve eps on the first frame (range-relative mode). */
static void resolve_eps(ngl_hpc_encoder *enc, const ngl_hpc_frame *f)
{
    double eps = enc->p.eps;
    if (enc->p.rel > 0) {
        double mn = INFINITY, mx = -INFINITY;
        for (uint64_t i = 0; i < 3 * f->natoms; i++) {
            double x = in_value(f, enc->p.dtype, i);
            if (isfinite(x)) {
                mn = x < mn ? x : mn;
                mx = x > mx ? x : mx;
            }
        }
        double range = mx >= mn ? mx - mn : 0.0;
        eps = isfinite(range) ? enc->p.rel * range : 0.0;
        if (!isfinite(eps)) {
            eps = 0;
        }
    }
    double mag = 0;
    for (uint64_t i = 0; i < 3 * f->natoms; i++) {
        double x = fabs(in_value(f, enc->p.dtype, i));
        if (isfinite(x) && x > mag) {
            mag = x;
        }
    }
    if (f->has_box) {
        for (int a = 0; a < 3; a++) {
            double b =
                fabs(f->box_lo[a]) > fabs(f->box_hi[a]) ? fabs(f->box_lo[a]) : fabs(f->box_hi[a]);
            mag = b > mag ? b : mag;
        }
    }
    hpc_core_set_eps(&enc->c, eps, hpc_step_for(eps, mag, enc->p.dtype));
    enc->c.configured = 1;
}

/* Ids section: bitmap of new atoms, then varints (see FORMAT.md §3.3). */
static size_t write_ids(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, uint8_t *dst, int *zstd)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    uint8_t *b = enc->idbuf;
    size_t bm = (size_t)((n + 7) / 8);
    memset(b, 0, bm);
    size_t pos = bm;
    int64_t lastpp = -1, lastnew = 0;
    for (uint64_t k = 0; k < n; k++) {
        int64_t id = f->ids ? f->ids[k] : (int64_t)k;
        uint32_t pp = c->pmap[k];
        if (pp != HPC_NONE) {
            pos += ngl_varint_put(b + pos, ngl_zigzag((int64_t)pp - (lastpp + 1)));
            lastpp = pp;
        } else {
            b[k / 8] |= (uint8_t)(1u << (k % 8));
            pos += ngl_varint_put(b + pos, ngl_zigzag(hpc_wsub(id, lastnew)));
            lastnew = id;
        }
    }
    *zstd = 0;
#if defined(NGL_HAVE_ZSTD)
    if (pos >= 64 && enc->zc == NULL) {
        enc->zc = ZSTD_createCCtx();
    }
    if (pos >= 64 && enc->zc != NULL) {
        size_t zb = ZSTD_compressBound(pos);
        /* compress straight into dst after the two length words when it fits */
        uint8_t *zdst = dst + 8;
        size_t zn = ZSTD_compressCCtx(enc->zc, zdst, zb < pos ? zb : pos, b, pos, 3);
        if (!ZSTD_isError(zn) && zn + 4 < pos) {
            ngl_wr_u32(dst, (uint32_t)(zn + 4));
            ngl_wr_u32(dst + 4, (uint32_t)pos);
            *zstd = 1;
            return 8 + zn;
        }
    }
#endif
    ngl_wr_u32(dst, (uint32_t)pos);
    memcpy(dst + 4, b, pos);
    return 4 + pos;
}

/* ------------------------------------------------------------------ frame */
/* What the driver decides for a frame before writing it. */
typedef struct frame_plan {
    int same;       /* IDS_SAME: the previous frame's ids in the same order */
    int identity;   /* IDS_IDENTITY: ids 0..n-1 */
    uint64_t fresh; /* atoms without history in this frame */
    hist_view hv;   /* the state in this frame's atom order */
    hpc_ent *RW;    /* levels 2-3: that state's ring, written in the next slot */
    hpc_model model;
    int send_model, use_force, cage, cage_table, spatial2;
    hpc_cage_params cagep;
} frame_plan;

/* The input frame: atom count, values, and a box with finite lo < hi and
 * 0/1 periodic flags; its geometry into @p g (periodic lengths, 0 if free). */
static ngl_status check_frame(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, frame_geom *g)
{
    const uint64_t n = f->natoms;
    if (n > NGL_HPC_MAX_ATOMS) {
        set_err(enc, "frame has %llu atoms, more than %llu", (unsigned long long)n,
                (unsigned long long)NGL_HPC_MAX_ATOMS);
        return NGL_ERR_INVALID_ARG;
    }
    if (n > 0 && f->xyz == NULL) {
        set_err(enc, "xyz is NULL");
        return NGL_ERR_INVALID_ARG;
    }
    memset(g, 0, sizeof(*g));
    if (!f->has_box) {
        return NGL_OK;
    }
    g->has_box = 1;
    for (int a = 0; a < 3; a++) {
        if (!isfinite(f->box_lo[a]) || !isfinite(f->box_hi[a]) || !(f->box_lo[a] < f->box_hi[a]) ||
            !isfinite(f->box_hi[a] - f->box_lo[a]) || f->periodic[a] > 1) {
            set_err(enc, "bad box on axis %d", a);
            return NGL_ERR_INVALID_ARG;
        }
        g->lo[a] = f->box_lo[a];
        g->hi[a] = f->box_hi[a];
        g->per[a] = f->periodic[a];
        g->len[a] = g->per[a] ? g->hi[a] - g->lo[a] : 0.0;
    }
    return NGL_OK;
}

/* Each atom's index in the previous frame (c->pmap), by id (§3.2): the same
 * order as last frame costs nothing (IDS_SAME), else through the id maps.
 * Fails on a duplicate id, before any state has changed. */
static ngl_status map_ids(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, frame_plan *fp)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    ngl_status st;
    fp->identity = f->ids == NULL;
    if (c->frame > 0 && c->n == n) {
        fp->same = fp->identity ? c->ids_identity
                                : (!c->ids_identity && (n == 0 || !memcmp(f->ids, c->ids, n * 8)));
    }
    if (fp->same) {
        for (uint64_t k = 0; k < n; k++) {
            c->pmap[k] = (uint32_t)k;
        }
        return NGL_OK;
    }
    if (c->frame > 0 && (st = hpc_core_prev_map(c)) != NGL_OK) {
        return st;
    }
    if ((st = hpc_idmap_reset(&c->new_map, n)) != NGL_OK) {
        return st;
    }
    for (uint64_t k = 0; k < n; k++) {
        int64_t id = fp->identity ? (int64_t)k : f->ids[k];
        if (hpc_idmap_insert(&c->new_map, id, (uint32_t)k) != 0) {
            set_err(enc, "duplicate atom id %lld", (long long)id);
            return NGL_ERR_INVALID_ARG;
        }
        c->pmap[k] = c->frame > 0 ? hpc_idmap_find(&c->prev_map, id) : HPC_NONE;
        fp->fresh += c->pmap[k] == HPC_NONE;
    }
    return NGL_OK;
}

/* The state in this frame's atom order: gathered by pmap when the ids
 * changed, into the lean arrays or the ring's second copy. */
static void gather_state(ngl_hpc_encoder *enc, uint64_t n, frame_plan *fp)
{
    hpc_core *c = &enc->c;
    const int gathered = !fp->same;
    fp->hv = (hist_view){.ring = NULL, .head = c->head, .lean = &enc->lean};
    if (c->no_ring) {
        if (gathered) {
            hpc_lean_state_gather(&enc->lean, c->pmap, n);
        }
        return;
    }
    if (gathered) {
        hpc_core_gather(c, n);
    }
    fp->RW = gathered ? c->ring_alt : c->ring;
    fp->hv.ring = fp->RW;
}

/* The predictors (hpc_encoder_choose.c): level 0 picks each block's integer
 * predictor; levels 1-3 fit the model first and, at level 3, may hand the
 * MODEL selector to the cage, which then codes with the previous model. */
static void choose_predictors(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                              frame_plan *fp)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    c->cells_ok = 0;
    memset(&fp->model, 0, sizeof(fp->model));
    if (c->level == NGL_HPC_LEVEL_FASTEST) {
        (void)hpc_enc_choose_selectors(enc, f, g, &fp->hv, &fp->model, 0, SEL_STRIDE_LEAN, NULL,
                                       c->sel, NULL);
    } else {
        const hpc_model prev_model = c->model;
        double nvalues = 0;
        const double cost = hpc_enc_fit_and_choose(enc, f, g, &fp->hv, !fp->same, &fp->model,
                                                   &fp->send_model, &nvalues);
        fp->use_force = fp->model.valid && fp->model.fn.nknots > 0;
        /* Where the force at t-1 predicts part of the move, the model's
         * fractional predictions code better than the cost proxy tells: the
         * cage must then promise more. */
        fp->cage = hpc_enc_try_cage(enc, f, g, &fp->hv, &fp->model, cost, nvalues,
                                    fp->use_force ? CAGE_MIN_GAIN_FORCE : CAGE_MIN_GAIN, &fp->cagep,
                                    &fp->cage_table);
        if (fp->cage) { /* the cage takes the MODEL selector; the model stays as it was */
            fp->model = prev_model;
            fp->send_model = 0;
            fp->use_force = 0;
        }
    }
    c->model = fp->model;
    /* spatial predictor order for atoms without history */
    if (fp->fresh > 0 || enc->prev_exact > 0) {
        fp->spatial2 = c->no_ring ? hpc_enc_choose_spatial2(c, f, n, enc->lean.age, 1)
                                  : hpc_enc_choose_spatial2(c, f, n, &fp->RW[c->head].age,
                                                            HPC_HIST * sizeof(hpc_ent));
    }
}

/* Fixed part, box and ids (§3.1, §3.3) at @p p. The ids section is only
 * needed when the ids are neither last frame's nor 0..n-1; its zstd flag is
 * known once it is written, so the flags byte comes last. @return bytes. */
static size_t write_fixed_and_ids(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                                  const frame_plan *fp, uint8_t *p)
{
    unsigned flags = 0;
    flags |= fp->same ? HPC_FF_IDS_SAME : (fp->identity ? HPC_FF_IDS_IDENTITY : 0u);
    flags |= g->has_box ? HPC_FF_BOX : 0u;
    flags |= fp->send_model ? HPC_FF_MODEL : 0u;
    flags |= fp->spatial2 ? HPC_FF_SPATIAL2 : 0u;
    flags |= fp->cage ? HPC_FF_CAGE | (fp->cage_table ? HPC_FF_CAGE_TABLE : 0u) : 0u;
    ngl_wr_u64(p, enc->c.frame);
    ngl_wr_u32(p + 8, (uint32_t)f->natoms);
    p[12] = 0; /* flags, patched below */
    p[13] = 0;
    ngl_wr_u16(p + 14, 0);
    size_t pl = 16;
    if (g->has_box) {
        for (int a = 0; a < 3; a++) {
            ngl_wr_f64(p + pl, g->lo[a]);
            ngl_wr_f64(p + pl + 8, g->hi[a]);
            pl += 16;
        }
        p[pl++] = (uint8_t)(g->per[0] | (g->per[1] << 1) | (g->per[2] << 2));
    }
    if (!fp->same && !fp->identity) {
        int z = 0;
        pl += write_ids(enc, f, p + pl, &z);
        flags |= z ? HPC_FF_IDS_ZSTD : 0u;
    }
    p[12] = (uint8_t)flags;
    return pl;
}

/* The model (§3.4), when it is new: Q12 taps and, with the force term, its
 * r² range and knots. @return bytes. */
static size_t write_model(const hpc_model *model, uint8_t *p)
{
    size_t pl = 0;
    p[pl++] = HPC_TAPS;
    p[pl++] = (uint8_t)model->fn.nknots;
    ngl_wr_u16(p + pl, 0);
    pl += 2;
    for (unsigned k = 0; k < HPC_TAPS; k++) {
        ngl_wr_u16(p + pl, (uint16_t)model->taps[k]);
        pl += 2;
    }
    if (model->fn.nknots) {
        ngl_wr_f64(p + pl, model->fn.r2lo);
        ngl_wr_f64(p + pl + 8, model->fn.r2hi);
        pl += 16;
        for (unsigned k = 0; k < HPC_KNOTS; k++) {
            ngl_wr_f32(p + pl, model->fn.psi[k]);
            pl += 4;
        }
    }
    return pl;
}

/* The cage's sections (§6.8): a new table (every CAGE_REFIT frames at most:
 * it is 532 bytes) and this frame's lambda. @return bytes. */
static size_t write_cage(const frame_plan *fp, uint8_t *p)
{
    const hpc_cage_params *cp = &fp->cagep;
    size_t pl = 0;
    if (fp->cage_table) {
        p[0] = (uint8_t)HPC_CAGE_KNOTS;
        p[1] = (uint8_t)cp->iters;
        ngl_wr_u16(p + 2, 0);
        ngl_wr_f64(p + 4, cp->rc2);
        for (unsigned k = 0; k <= HPC_CAGE_KNOTS; k++) {
            ngl_wr_f32(p + 12 + 4 * k, cp->w[k]);
            ngl_wr_f32(p + 12 + 4 * (HPC_CAGE_KNOTS + 1) + 4 * k, cp->v[k]);
        }
        pl += HPC_CAGE_TABLE_SECTION;
    }
    ngl_wr_f32(p + pl, cp->lambda);
    return pl + HPC_CAGE_LAMBDA_SECTION;
}

/* Block selectors, 2 bits per block of HPC_BLOCK_ATOMS atoms. @return bytes. */
static size_t write_selectors(const hpc_core *c, uint64_t n, uint8_t *p)
{
    const uint64_t nblocks = (n + HPC_BLOCK_ATOMS - 1) / HPC_BLOCK_ATOMS;
    const size_t selbytes = (size_t)((nblocks + 3) / 4);
    memset(p, 0, selbytes);
    for (uint64_t b = 0; b < nblocks; b++) {
        p[b / 4] |= (uint8_t)(c->sel[b] << (2 * (b % 4)));
    }
    return selbytes;
}

/* The values (§4-6): both passes over the state layout in use, then the
 * value CRC at @p crc_at and the rANS and raw sections at @p p.
 * @return bytes written at @p p. */
static size_t write_values(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                           const frame_plan *fp, uint8_t *crc_at, uint8_t *p, uint64_t *exact_count,
                           uint64_t *wraps)
{
    hpc_core *c = &enc->c;
    hpc_bitw raw;
    hpc_bitw_init(&raw, enc->raw, enc->raw_cap);
    if (c->no_ring) {
        hpc_enc_quantize_lean(enc, f, g);
        hpc_enc_code_values(enc, f, fp->spatial2, &raw, (uint8_t *)enc->lean.mag, sizeof(uint16_t),
                            exact_count, wraps);
    } else {
        const unsigned wslot = (c->head + 1) % HPC_HIST;
        hpc_enc_quantize_ring(enc, f, g, fp->RW, &fp->model, fp->use_force, fp->cage);
        hpc_enc_code_values(enc, f, fp->spatial2, &raw, (uint8_t *)&fp->RW[wslot].mag,
                            HPC_HIST * sizeof(hpc_ent), exact_count, wraps);
    }
    ngl_wr_u32(crc_at, hpc_values_crc(enc->dec, 3 * f->natoms, c->dtype));
    size_t pl = 0;
    size_t rans_len = hpc_rans_encode(&enc->sb, enc->rans, enc->rans_cap);
    ngl_wr_u32(p + pl, (uint32_t)rans_len);
    memcpy(p + pl + 4, enc->rans + enc->rans_cap - rans_len, rans_len);
    pl += 4 + rans_len;
    size_t raw_len = hpc_bitw_finish(&raw);
    ngl_wr_u32(p + pl, (uint32_t)raw_len);
    memcpy(p + pl + 4, enc->raw, raw_len);
    pl += 4 + raw_len;
    return pl;
}

/* The frame becomes the state the next one is predicted from. */
static void commit_frame(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                         const frame_plan *fp, uint64_t exact_count, uint64_t wraps, size_t bytes)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    if (c->no_ring) {
        hpc_lean_state_rotate(&enc->lean);
    } else if (!fp->same) {
        hpc_ent *t = c->ring;
        c->ring = c->ring_alt;
        c->ring_alt = t;
    }
    c->head = (c->head + 1) % HPC_HIST;
    if (!fp->same) {
        if (!fp->identity && n) {
            memcpy(c->ids, f->ids, n * sizeof(int64_t));
        }
        c->ids_identity = fp->identity;
    }
    c->n = n;
    c->has_box = g->has_box;
    for (int a = 0; a < 3; a++) {
        c->lo[a] = g->lo[a];
        c->hi[a] = g->hi[a];
        c->per[a] = (uint8_t)g->per[a];
    }
    c->frame++;
    enc->force_active = fp->use_force;
    enc->cage_active = fp->cage;
    if (fp->cage && fp->cage_table) {
        c->cagep = fp->cagep;
        c->cage_have = 1;
        enc->cage_table_frame = c->frame - 1; /* c->frame has moved on above */
    }
    enc->prev_exact = exact_count;
    int used_model = 0;
    const uint64_t nblocks = (n + HPC_BLOCK_ATOMS - 1) / HPC_BLOCK_ATOMS;
    for (uint64_t b = 0; b < nblocks && fp->model.valid && !fp->cage; b++) {
        used_model |= c->sel[b] == HPC_SEL_MODEL;
    }
    enc->stats.frames++;
    enc->stats.values += 3 * n;
    enc->stats.bytes_out += bytes;
    enc->stats.exact += exact_count;
    enc->stats.wraps += wraps;
    enc->stats.model_frames += (uint64_t)used_model;
    enc->stats.force_frames += (uint64_t)(used_model && fp->use_force);
    enc->stats.cage_frames += (uint64_t)fp->cage;
}

ngl_status ngl_hpc_encoder_encode(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, void *dst,
                                  size_t dst_cap, size_t *out_len)
{
    if (enc == NULL || f == NULL || dst == NULL || out_len == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    enc->err[0] = '\0';
    const uint64_t n = f->natoms;
    frame_geom g;
    ngl_status st = check_frame(enc, f, &g);
    if (st != NGL_OK) {
        return st;
    }
    if (dst_cap < ngl_hpc_encode_bound(n)) {
        set_err(enc, "output buffer below ngl_hpc_encode_bound()");
        return NGL_ERR_DST_TOO_SMALL;
    }
    if ((st = reserve_scratch(enc, n)) != NGL_OK) {
        set_err(enc, "out of memory for %llu atoms", (unsigned long long)n);
        return st;
    }
    frame_plan fp;
    memset(&fp, 0, sizeof(fp));
    if ((st = map_ids(enc, f, &fp)) != NGL_OK) {
        return st;
    }

    /* from here on nothing fails */
    hpc_core *c = &enc->c;
    uint8_t *out = dst;
    size_t off = 0;
    if (!c->configured) {
        resolve_eps(enc, f);
        off += write_stream_header(enc, out);
    }
    gather_state(enc, n, &fp);
    choose_predictors(enc, f, &g, &fp);

    /* the frame record's sections in wire order (§3.1) */
    uint8_t *rec = out + off;
    uint8_t *p = rec + HPC_REC_HEADER;
    size_t pl = write_fixed_and_ids(enc, f, &g, &fp, p);
    if (fp.send_model) {
        pl += write_model(&fp.model, p + pl);
    }
    if (fp.cage) {
        pl += write_cage(&fp, p + pl);
    }
    uint8_t *crc_at = p + pl; /* known after the passes */
    pl += 4;
    pl += write_selectors(c, n, p + pl);
    uint64_t exact_count = 0, wraps = 0;
    pl += write_values(enc, f, &g, &fp, crc_at, p + pl, &exact_count, &wraps);
    off += finish_record(rec, HPC_REC_FRAME, pl);
    assert(off <= dst_cap);

    commit_frame(enc, f, &g, &fp, exact_count, wraps, off);
    *out_len = off;
    return NGL_OK;
}
