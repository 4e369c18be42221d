/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_encoder_values.c -- the encoder's closed-loop state per value and the
 * two coding passes over a frame's values (FORMAT.md §3.2, §5, §6).
 *
 * The state is what the decoder will also have: per value the history of
 * lattice values, the periodic image, the last residual's magnitude and the
 * age. Levels 2-3 keep it in hpc_core's ring (the force term and the model
 * read deep history); levels 0-1 keep only what their predictors read, in
 * separate arrays (lean_state), which is most of their speed.
 *
 * Pass 1 decides everything about a value that does not depend on the
 * values coded before it: prediction, image, lattice value, the bound check
 * on the decoder's exact reconstruction, residual. That part vectorises
 * (hpc_lean_simd.c does it 4 or 8 values at a time at levels 0-1). Pass 2 is
 * serial: the adaptive contexts of a value depend on the previous ones, so
 * symbols and raw bits are produced in the decoder's order. Both layouts
 * share quantize_value() and hpc_enc_code_values(), so they write the same
 * stream.
 */
#include "hpc_encoder.h"

#include <stdlib.h>

/* ---------------------------------------------------- levels 0-1: state */
void hpc_lean_state_free(lean_state *L)
{
    for (unsigned i = 0; i < LEAN_MAX_DEPTH; i++) {
        free(L->q[i]);
        free(L->gq[i]);
    }
    free(L->img);
    free(L->mag);
    free(L->age);
    free(L->code);
    free(L->gimg);
    free(L->gmag);
    free(L->gage);
    memset(L, 0, sizeof(*L));
}

/* Grow one array of @p elem-byte entries from @p old to @p cap entries,
 * zeroing the new tail (history beyond an entry's age is read, not used). */
static int lean_grow(void **p, size_t elem, uint64_t old, uint64_t cap)
{
    void *q = realloc(*p, (size_t)cap * elem);
    if (q == NULL) {
        return -1;
    }
    memset((uint8_t *)q + old * elem, 0, (size_t)(cap - old) * elem);
    *p = q;
    return 0;
}

ngl_status hpc_lean_state_reserve(lean_state *L, uint64_t nvals)
{
    if (nvals <= L->cap && L->age != NULL) {
        return NGL_OK;
    }
    uint64_t cap = nvals > 0 ? nvals : 1, old = L->cap;
    for (unsigned i = 0; i < L->depth; i++) {
        if (lean_grow((void **)&L->q[i], 8, old, cap) ||
            lean_grow((void **)&L->gq[i], 8, old, cap)) {
            return NGL_ERR_NO_MEMORY;
        }
    }
    if (lean_grow((void **)&L->img, 4, old, cap) || lean_grow((void **)&L->gimg, 4, old, cap) ||
        lean_grow((void **)&L->mag, 2, old, cap) || lean_grow((void **)&L->gmag, 2, old, cap) ||
        lean_grow((void **)&L->age, 1, old, cap) || lean_grow((void **)&L->gage, 1, old, cap) ||
        lean_grow((void **)&L->code, 4, old, cap)) {
        return NGL_ERR_NO_MEMORY;
    }
    L->cap = cap;
    return NGL_OK;
}

/* The previous frame's state in this frame's atom order (pmap), in the g*
 * arrays, which then become the state. New atoms start without history. */
void hpc_lean_state_gather(lean_state *L, const uint32_t *pmap, uint64_t n)
{
    for (uint64_t k = 0; k < n; k++) {
        const uint32_t p = pmap[k];
        for (unsigned a = 0; a < 3; a++) {
            const uint64_t v = 3 * k + a;
            if (p != HPC_NONE) {
                const uint64_t w = 3 * (uint64_t)p + a;
                for (unsigned i = 0; i < L->depth; i++) {
                    L->gq[i][v] = L->q[i][w];
                }
                L->gimg[v] = L->img[w];
                L->gmag[v] = L->mag[w];
                L->gage[v] = L->age[w];
            } else {
                L->gage[v] = 0;
            }
        }
    }
    for (unsigned i = 0; i < L->depth; i++) {
        int64_t *t = L->q[i];
        L->q[i] = L->gq[i];
        L->gq[i] = t;
    }
    int32_t *ti = L->img;
    L->img = L->gimg;
    L->gimg = ti;
    uint16_t *tm = L->mag;
    L->mag = L->gmag;
    L->gmag = tm;
    uint8_t *ta = L->age;
    L->age = L->gage;
    L->gage = ta;
}

void hpc_lean_state_rotate(lean_state *L)
{
    /* the new entries went to the oldest array: it becomes q_1 */
    int64_t *newest = L->q[L->depth - 1];
    for (unsigned i = L->depth - 1; i > 0; i--) {
        L->q[i] = L->q[i - 1];
    }
    L->q[0] = newest;
}

/* ------------------------------------------------------------ coding pass */
/*
 * Pass 1 puts each value on the lattice and decides everything about it that
 * does not depend on the values before it: prediction, image (wrap), EXACT,
 * residual. It leaves per value vinfo (HPC_VI_*) and vres (the residual, or
 * for a spatial value its lattice value). Pass 2 (code_values) then runs the
 * serial part: contexts, symbols, raw bits. Both encoder states (ring, lean)
 * share quantize_value() and code_values(), so they write the same stream.
 */

/* Lattice value of value @p v (FORMAT.md §6.2-6.5): choose the image when the
 * prediction @p pred is near a periodic face (wrap context and flag into
 * *info), quantize, and check the bound on the decoder's exact
 * reconstruction, which goes to the frame's decoded values. A value that
 * fails gets HPC_VI_EXACT (and its input bits as decoded value). @p mag1 is
 * the magnitude of the last entry, *img its image, updated on a wrap. */
static inline __attribute__((always_inline)) int64_t
quantize_value(const hpc_core *c, const frame_geom *g, const hpc_waxis *wax, const ngl_hpc_frame *f,
               uint64_t v, unsigned a, unsigned age, int64_t pred, unsigned mag1, int32_t *img_io,
               unsigned *info_io, void *dec)
{
    const int f32 = c->dtype == NGL_HPC_F32;
    float *dec32 = dec;
    double *dec64 = dec;
    unsigned info = *info_io;
    int32_t img = *img_io;
    int exact = 0;
    int64_t qv = 0;
    if (c->lossless) {
        qv = in_ord(f, c->dtype, v);
        if (f32) {
            dec32[v] = ((const float *)f->xyz)[v];
        } else {
            dec64[v] = ((const double *)f->xyz)[v];
        }
    } else {
        const double x = in_value(f, c->dtype, v);
        if (!isfinite(x)) {
            exact = 1;
        } else {
            const double len = g->len[a], inv = c->inv_step;
            if (age && g->per[a]) {
                /* Evaluated in full and selected without branches: near a
                 * face or not is unpredictable on coarse dumps. */
                int dimg = 0;
                const int wctx = hpc_wrap_ctx(pred, img, &wax[a], mag1, &dimg);
                const int32_t img1 = img + dimg;
                const double u0 = x + (double)img * len;
                const double u1 = x + (double)img1 * len;
                const int wrap = (wctx >= 0) & (img1 <= (1 << 30)) & (img1 >= -(1 << 30)) &
                                 (fabs(u1 * inv - (double)pred) < fabs(u0 * inv - (double)pred));
                info |= wctx >= 0 ? (unsigned)(wctx + 1) << HPC_VI_W_SHIFT : 0u;
                info |= wrap ? HPC_VI_WRAP : 0u;
                img = wrap ? img1 : img;
            }
            double qd = (x + (double)img * len) * inv;
            if (!(fabs(qd) < (double)HPC_Q_LIMIT)) {
                exact = 1;
            } else {
                qv = hpc_floor_i64(qd + 0.5);
                double d = hpc_recon(qv, img, c->step, len);
                if (f32) {
                    float fd = (float)d;
                    exact = !(fabs((double)fd - x) <= c->eps);
                    dec32[v] = fd;
                } else {
                    exact = !(fabs(d - x) <= c->eps);
                    dec64[v] = d;
                }
            }
        }
    }
    if (exact) {
        info = (info & ~HPC_VI_WRAP) | HPC_VI_EXACT;
        if (f32) {
            dec32[v] = ((const float *)f->xyz)[v];
        } else {
            dec64[v] = ((const double *)f->xyz)[v];
        }
    }
    *info_io = info;
    *img_io = img;
    return qv;
}

/* Pass 1 over the ring state RW (levels 2-3); new entries go to the next slot.
 * In a cage frame (@p cage) the atoms go through the cage one by one, in
 * the order the decoder will see them (§6.8). */
void hpc_enc_quantize_ring(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                           hpc_ent *RW, const hpc_model *model, int use_force, int cage)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    const unsigned head = c->head;
    const unsigned wslot = (head + 1) % HPC_HIST;
    const int f32 = c->dtype == NGL_HPC_F32;
    const double q12 = c->inv_step * (double)(1 << HPC_PRED_SHIFT);
    hpc_waxis wax[3];
    for (int a = 0; a < 3; a++) {
        wax[a] = hpc_waxis_make(g->lo[a], g->hi[a], c->inv_step);
    }
    for (uint64_t k = 0; k < n; k++) {
        const unsigned sel = c->sel[k / HPC_BLOCK_ATOMS];
        const int cage_sel = cage && sel == HPC_SEL_MODEL;
        int caged = cage_sel && cage_eligible(c, c->valid, k);
        int64_t cf[3] = {0, 0, 0};
        if (caged) {
            double d[3];
            caged = hpc_cage_descend(&c->cage, k, c->pos + 3 * (size_t)c->pmap[k], d) == 0;
            for (unsigned a = 0; a < 3 && caged; a++) {
                cf[a] = hpc_cage_fixed(&c->cage, d[a], q12);
            }
        }
        int any_exact = 0;
        for (unsigned a = 0; a < 3; a++) {
            const uint64_t v = 3 * k + a;
            hpc_ent *rv = RW + v * HPC_HIST;
            const hpc_ent *e1 = &rv[head];
            const unsigned age = e1->age;
            int64_t pred = 0;
            unsigned info = HPC_VI_SPATIAL;
            int32_t img = 0;
            if (age) {
                unsigned pc;
                if (caged) {
                    pred = hpc_predict_cage(e1->q, cf[a], &pc);
                } else {
                    pred = hpc_predict(rv, head, cage_sel ? HPC_SEL_ORDER1 : sel, age, model,
                                       use_force ? c->Fcur[v] : 0, &pc);
                }
                info = hpc_mag_bucket(e1->mag) | (pc << HPC_VI_PC_SHIFT);
                img = e1->img;
            }
            const int64_t qv =
                quantize_value(c, g, wax, f, v, a, age, pred, e1->mag, &img, &info, enc->dec);
            hpc_ent *ne = &rv[wslot];
            if (info & HPC_VI_EXACT) {
                memset(ne, 0, sizeof(*ne));
                any_exact = 1;
            } else {
                const int64_t r = age ? hpc_wsub(qv, pred) : qv; /* spatial: pass 2 */
                c->vres[v] = r;
                ne->q = qv;
                ne->img = img;
                ne->mag = hpc_mag_of(ngl_zigzag(r));
                ne->age = (uint8_t)(age < 255 ? age + 1 : 255);
            }
            c->vinfo[v] = (uint16_t)info;
        }
        if (cage && !any_exact) {
            double x[3];
            for (unsigned a = 0; a < 3; a++) {
                x[a] = f32 ? (double)((const float *)enc->dec)[3 * k + a]
                           : ((const double *)enc->dec)[3 * k + a];
            }
            hpc_cage_insert(&c->cage, k, x);
        }
    }
}

/* Pass 1 of one value over the lean state (level 0): integer predictors; the
 * new lattice value replaces q_3, the other arrays are updated in place. */
static inline __attribute__((always_inline)) void
quantize_lean_value(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                    const hpc_waxis *wax, unsigned sel, uint64_t v)
{
    hpc_core *c = &enc->c;
    lean_state *L = &enc->lean;
    const unsigned a = (unsigned)(v % 3);
    const unsigned age = L->age[v];
    int64_t pred = 0;
    unsigned info = HPC_VI_SPATIAL;
    int32_t img = 0;
    if (age) {
        const hist_view hv = {.ring = NULL, .head = 0, .lean = L};
        unsigned pc;
        pred = hv_predict(&hv, v, sel, age, &c->model, 0, &pc); /* levels 0-1: no force */
        info = hpc_mag_bucket(L->mag[v]) | (pc << HPC_VI_PC_SHIFT);
        img = L->img[v];
    }
    const int64_t qv =
        quantize_value(c, g, wax, f, v, a, age, pred, L->mag[v], &img, &info, enc->dec);
    int64_t *qnew = L->q[L->depth - 1]; /* the oldest entry's array: read above */
    if (info & HPC_VI_EXACT) {
        qnew[v] = 0;
        L->img[v] = 0;
        L->mag[v] = 0;
        L->age[v] = 0;
    } else {
        const int64_t r = age ? hpc_wsub(qv, pred) : qv; /* spatial: pass 2 */
        c->vres[v] = r;
        qnew[v] = qv;
        L->img[v] = img;
        L->mag[v] = hpc_mag_of(ngl_zigzag(r));
        L->age[v] = (uint8_t)(age < 255 ? age + 1 : 255);
    }
    c->vinfo[v] = (uint16_t)info;
}

/* Pass 1 over the lean state: full blocks of lossy streams go to the vector
 * kernel (hpc_lean.h) where the CPU has one, and the vectors it leaves, the
 * last partial block and everything else to the scalar code. */
void hpc_enc_quantize_lean(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g)
{
    hpc_core *c = &enc->c;
    lean_state *L = &enc->lean;
    const uint64_t n = f->natoms;
    hpc_waxis wax[3];
    hpc_lean_args la = {.xyz = f->xyz,
                        .f32 = c->dtype == NGL_HPC_F32,
                        .q1 = L->q[0],
                        .q2 = L->q[1],
                        .q3 = L->q[2],
                        .qnew = L->q[L->depth - 1],
                        .model_valid = c->model.valid && L->depth > HPC_TAPS,
                        .img = L->img,
                        .mag = L->mag,
                        .age = L->age,
                        .vres = c->vres,
                        .vinfo = c->vinfo,
                        .vcode = L->code,
                        .dec = enc->dec,
                        .step = c->step,
                        .inv_step = c->inv_step,
                        .eps = c->eps};
    for (unsigned k = 0; k <= HPC_TAPS; k++) {
        la.qh[k] = k < L->depth ? L->q[k] : NULL;
    }
    for (unsigned k = 0; k < HPC_TAPS; k++) {
        la.taps[k] = c->model.taps[k];
    }
    for (int a = 0; a < 3; a++) {
        wax[a] = hpc_waxis_make(g->lo[a], g->hi[a], c->inv_step);
        la.len[a] = g->len[a];
        la.loq[a] = wax[a].loq;
        la.hiq[a] = wax[a].hiq;
        la.lenq[a] = wax[a].lenq;
        la.per[a] = g->per[a];
    }
    const hpc_lean_kernel kernel = c->lossless ? HPC_LEAN_SCALAR : enc->kernel;
    const unsigned width = hpc_lean_width(kernel);
    uint64_t redo[3 * HPC_BLOCK_ATOMS / 4];
    for (uint64_t k0 = 0; k0 < n; k0 += HPC_BLOCK_ATOMS) {
        const unsigned sel = c->sel[k0 / HPC_BLOCK_ATOMS];
        if (kernel != HPC_LEAN_SCALAR && n - k0 >= HPC_BLOCK_ATOMS) {
            unsigned nredo = hpc_lean_block_simd(kernel, &la, 3 * k0, sel, redo);
            enc->kernel_values += 3 * HPC_BLOCK_ATOMS - (uint64_t)nredo * width;
            for (unsigned i = 0; i < nredo; i++) {
                for (uint64_t v = redo[i]; v < redo[i] + width; v++) {
                    quantize_lean_value(enc, f, g, wax, sel, v);
                }
            }
            continue;
        }
        const uint64_t k1 = n - k0 >= HPC_BLOCK_ATOMS ? k0 + HPC_BLOCK_ATOMS : n;
        for (uint64_t v = 3 * k0; v < 3 * k1; v++) {
            quantize_lean_value(enc, f, g, wax, sel, v);
        }
    }
}

/*
 * Pass 2, serial: wrap symbols, tokens in their contexts, raw bits (FORMAT.md
 * §5, §6.3). Spatial values get their residual here, and their new entry's
 * mag is stored at mag_at + v * mag_stride (bytes): the state's layout is
 * the caller's.
 */
void hpc_enc_code_values(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, int spatial2, hpc_bitw *raw,
                         uint8_t *mag_at, size_t mag_stride, uint64_t *exact_count, uint64_t *wraps)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    const int f32 = c->dtype == NGL_HPC_F32;
    hpc_ctx *ctx = c->ctx;
    enc->sb.n = 0;
    hpc_ctxset_refresh(ctx, HPC_NCTX, 0);
    int64_t s1[3] = {0, 0, 0}, s2[3] = {0, 0, 0};
    unsigned schain[3] = {0, 0, 0}, sbk[3] = {0, 0, 0};
    uint64_t nexact = 0, nwraps = 0;
    const uint32_t *vcode = enc->lean.code; /* only read for HPC_VI_CODED values */
    for (uint64_t k = 0; k < n; k++) {
        int have_prev_axis = 0;
        unsigned prev_bucket = 0;
        for (unsigned a = 0; a < 3; a++) {
            const uint64_t v = 3 * k + a;
            if (v != 0 && v % HPC_CHUNK == 0) {
                hpc_ctxset_refresh(ctx, HPC_NCTX, 0);
            }
            const unsigned info = c->vinfo[v];
            const unsigned wctx = (info >> HPC_VI_W_SHIFT) & 7u;
            if (wctx) {
                hpc_enc_sym(&enc->sb, raw, &ctx[HPC_CTX_WRAP + wctx - 1],
                            (info & HPC_VI_WRAP) ? 1u : 0u);
            }
            if (info & HPC_VI_CODED) { /* the first pass did the arithmetic */
                const uint32_t code = vcode[v];
                const unsigned nraw = (code >> 16) & 0xFFu;
                const uint64_t z = ngl_zigzag(c->vres[v]);
                hpc_enc_sym(&enc->sb, raw, &ctx[code & 0xFFu], (code >> 8) & 0xFFu);
                hpc_bitw_put(raw, z & (((uint64_t)1 << nraw) - 1), nraw);
                have_prev_axis = 1;
                prev_bucket = code >> 24;
                nwraps += (info & HPC_VI_WRAP) ? 1u : 0u;
                continue;
            }
            unsigned ci;
            const int spatial = (info & HPC_VI_MB) == HPC_VI_SPATIAL;
            if (!spatial) {
                unsigned mb = info & HPC_VI_MB;
                ci = hpc_ctx_temporal(mb, hpc_ob(have_prev_axis, prev_bucket, mb),
                                      (info >> HPC_VI_PC_SHIFT) & 7u);
            } else {
                ci = HPC_CTX_SPATIAL + sbk[a];
            }
            if (info & HPC_VI_EXACT) {
                hpc_enc_sym(&enc->sb, raw, &ctx[ci], HPC_TOK_EXACT);
                if (f32) {
                    uint32_t u;
                    memcpy(&u, (const float *)f->xyz + v, 4);
                    hpc_bitw_put(raw, u, 32);
                } else {
                    uint64_t u;
                    memcpy(&u, (const double *)f->xyz + v, 8);
                    hpc_bitw_put(raw, u, 64);
                }
                have_prev_axis = 0;
                nexact++;
                continue;
            }
            int64_t r = c->vres[v];
            if (spatial) {
                const int64_t qv = r;
                const int64_t sp = schain[a] == 0 ? 0
                                   : (spatial2 && schain[a] >= 2)
                                       ? hpc_wsub(hpc_wadd(s1[a], s1[a]), s2[a])
                                       : s1[a];
                r = hpc_wsub(qv, sp);
                s2[a] = s1[a];
                s1[a] = qv;
                schain[a]++;
            }
            const uint64_t z = ngl_zigzag(r);
            unsigned nraw;
            uint64_t rbits;
            unsigned tok = hpc_token(z, &nraw, &rbits);
            hpc_enc_sym(&enc->sb, raw, &ctx[ci], tok);
            hpc_bitw_put(raw, rbits, nraw);
            const uint16_t mag = hpc_mag_of(z);
            if (spatial) {
                memcpy(mag_at + v * mag_stride, &mag, sizeof(mag));
                sbk[a] = hpc_mag_bucket(mag);
                have_prev_axis = 0;
            } else {
                have_prev_axis = 1;
                prev_bucket = hpc_mag_bucket(mag);
            }
            nwraps += (info & HPC_VI_WRAP) ? 1u : 0u;
        }
    }
    *exact_count = nexact;
    *wraps = nwraps;
}
