/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_decoder_values.c -- the decoder's value pass (FORMAT.md §5, §6): the
 * mirror of hpc_encoder_values.c' two passes, in one.
 *
 * The decoder cannot split the work the way the encoder does: a value's
 * prediction needs nothing serial, but its token can only be read once the
 * contexts of every value before it are known, and the prediction of a
 * value without history (the spatial chain) needs the values before it on
 * the same axis. So each value is predicted, its wrap symbol and token read
 * and its lattice value reconstructed in turn, in exactly the encoder's
 * order, and every predictor works on the same integers the encoder used.
 * This is the decoder's hot loop: the per-value steps are inline functions
 * over one vpass state.
 */
#include "hpc_decoder.h"

#include <string.h>

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

/* ------------------------------------------------------------- value pass */
/* The value pass' state: the frame's constants, the coders, and what the
 * contexts of the next value depend on (§6.3): the spatial chains per axis
 * for atoms without history, and the previous axis of the same atom. */
typedef struct vpass {
    hpc_core *c;
    const frame_in *fi;
    hpc_rdec *rdx;
    hpc_bitr *raw;
    hpc_ctx *ctx;
    hpc_ent *RW; /* the ring, in this frame's atom order */
    unsigned head, wslot;
    int lossless, spatial2, f32, use_force;
    double step;
    hpc_waxis wax[3];
    float *o32;
    double *o64;
    int64_t s1[3], s2[3]; /* spatial chain: last two lattice values per axis */
    unsigned schain[3], sbk[3];
    int have_prev_axis;
    unsigned prev_bucket;
    uint64_t exact_count, wraps;
} vpass;

/* The cage term of atom @p k in a cage frame's MODEL block, in Q12 lattice
 * units per axis (§6.8): its descent from its previous position in the
 * current grid. @return 0 if the atom has none (new, stored exactly last
 * frame, or too crowded): it is then predicted by ORDER1. */
static inline __attribute__((always_inline)) int cage_term(vpass *vp, uint64_t k, int64_t cf[3])
{
    hpc_core *c = vp->c;
    const uint32_t pk = c->pmap[k];
    if (pk == HPC_NONE || !c->valid[pk]) {
        return 0;
    }
    double d[3];
    if (hpc_cage_descend(&c->cage, k, c->pos + 3 * (size_t)pk, d) != 0) {
        return 0;
    }
    const double q12 = c->inv_step * (double)(1 << HPC_PRED_SHIFT);
    for (unsigned a = 0; a < 3; a++) {
        cf[a] = hpc_cage_fixed(&c->cage, d[a], q12);
    }
    return 1;
}

/* An EXACT value (§6.2): its bits, raw; it restarts without history. */
static inline __attribute__((always_inline)) ngl_status
decode_exact(ngl_hpc_decoder *dec, vpass *vp, uint64_t v, unsigned wrap, hpc_ent *ne)
{
    ne->q = 0;
    ne->img = 0;
    ne->mag = 0;
    ne->age = 0;
    if (vp->lossless || wrap) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_CODE, "unexpected exact value at %llu",
                            (unsigned long long)v);
    }
    if (vp->f32) {
        uint32_t u = (uint32_t)hpc_bitr_get(vp->raw, 32);
        memcpy(&vp->o32[v], &u, 4);
    } else {
        uint64_t u = hpc_bitr_get(vp->raw, 64);
        memcpy(&vp->o64[v], &u, 8);
    }
    vp->have_prev_axis = 0;
    vp->exact_count++;
    return NGL_OK;
}

/* The output value of lattice value @p qv (§6.5): the float's bits from
 * their ordinal when lossless, else q step - img L rounded to the dtype.
 * @p img_io gains the wrap's image step (§6.4). */
static inline __attribute__((always_inline)) ngl_status reconstruct(ngl_hpc_decoder *dec, vpass *vp,
                                                                    uint64_t v, unsigned a,
                                                                    int64_t qv, unsigned wrap,
                                                                    int dimg, int32_t *img_io)
{
    if (vp->lossless) {
        if (vp->f32) {
            if (qv < INT32_MIN || qv > INT32_MAX) {
                return hpc_dec_fail(dec, NGL_ERR_BAD_CODE, "value %llu out of range",
                                    (unsigned long long)v);
            }
            uint32_t u = hpc_bits32_from_ord(qv);
            memcpy(&vp->o32[v], &u, 4);
        } else {
            uint64_t u = hpc_bits64_from_ord(qv);
            memcpy(&vp->o64[v], &u, 8);
        }
        return NGL_OK;
    }
    if (qv >= HPC_Q_LIMIT || qv <= -HPC_Q_LIMIT) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_CODE, "value %llu off the lattice",
                            (unsigned long long)v);
    }
    int32_t img = *img_io;
    if (wrap) {
        img += dimg;
        if (img > (1 << 30) || img < -(1 << 30)) {
            return hpc_dec_fail(dec, NGL_ERR_BAD_CODE, "image count overflow");
        }
    }
    double d = hpc_recon(qv, img, vp->step, vp->fi->blen[a]);
    if (vp->f32) {
        vp->o32[v] = (float)d;
    } else {
        vp->o64[v] = d;
    }
    *img_io = img;
    return NGL_OK;
}

/* Value @p v = 3k + a (§5): its prediction and context, the wrap symbol
 * where the prediction is near a periodic face, the token and raw bits, the
 * output value, and its new state entry. @p caged: the atom's cage term is
 * in @p cf; @p cage_sel: its block selects the cage. */
static inline __attribute__((always_inline)) ngl_status
decode_value(ngl_hpc_decoder *dec, vpass *vp, uint64_t v, unsigned a, unsigned sel, int cage_sel,
             int caged, const int64_t *cf, int *any_exact)
{
    hpc_core *c = vp->c;
    hpc_ctx *ctx = vp->ctx;
    if (v != 0 && v % HPC_CHUNK == 0) {
        hpc_ctxset_refresh(ctx, HPC_NCTX, 1);
    }
    hpc_ent *rv = vp->RW + v * HPC_HIST;
    const hpc_ent *e1 = &rv[vp->head];
    const unsigned age = e1->age;
    int64_t pred;
    unsigned ci;
    int32_t img = 0;
    if (age) {
        unsigned pc;
        if (caged) {
            pred = hpc_predict_cage(e1->q, cf[a], &pc);
        } else {
            pred = hpc_predict(rv, vp->head, cage_sel ? HPC_SEL_ORDER1 : sel, age, &vp->fi->model,
                               vp->use_force ? c->Fcur[v] : 0, &pc);
        }
        unsigned mb = hpc_mag_bucket(e1->mag);
        ci = hpc_ctx_temporal(mb, hpc_ob(vp->have_prev_axis, vp->prev_bucket, mb), pc);
        img = e1->img;
    } else {
        pred = vp->schain[a] == 0 ? 0
               : (vp->spatial2 && vp->schain[a] >= 2)
                   ? hpc_wsub(hpc_wadd(vp->s1[a], vp->s1[a]), vp->s2[a])
                   : vp->s1[a];
        ci = HPC_CTX_SPATIAL + vp->sbk[a];
    }
    int dimg = 0;
    unsigned wrap = 0;
    if (!vp->lossless && age && vp->fi->per[a]) {
        const int wctx = hpc_wrap_ctx(pred, img, &vp->wax[a], e1->mag, &dimg);
        if (wctx >= 0) {
            wrap = hpc_rdec_sym(vp->rdx, &ctx[HPC_CTX_WRAP + (unsigned)wctx]);
            hpc_ctx_count(&ctx[HPC_CTX_WRAP + (unsigned)wctx], wrap);
        }
    }
    int tok = read_token(vp->rdx, vp->raw, &ctx[ci]);
    if (tok < 0) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_CODE, "invalid token at value %llu",
                            (unsigned long long)v);
    }
    hpc_ent *ne = &rv[vp->wslot];
    if (tok == HPC_TOK_EXACT) {
        *any_exact = 1;
        return decode_exact(dec, vp, v, wrap, ne);
    }
    uint64_t z;
    unsigned nraw = hpc_token_base((unsigned)tok, &z);
    z |= hpc_bitr_get(vp->raw, nraw);
    const int64_t qv = hpc_wadd(pred, ngl_unzigzag(z));
    ngl_status st = reconstruct(dec, vp, v, a, qv, wrap, dimg, &img);
    if (st != NGL_OK) {
        return st;
    }
    const uint16_t mag = hpc_mag_of(z);
    ne->q = qv;
    ne->img = img;
    ne->mag = mag;
    ne->age = (uint8_t)(age < 255 ? age + 1 : 255);
    if (age) {
        vp->have_prev_axis = 1;
        vp->prev_bucket = hpc_mag_bucket(mag);
    } else {
        vp->have_prev_axis = 0;
        vp->s2[a] = vp->s1[a];
        vp->s1[a] = qv;
        vp->schain[a]++;
        vp->sbk[a] = hpc_mag_bucket(mag);
    }
    vp->wraps += wrap;
    return NGL_OK;
}

/* Every value of the frame, atom by atom, axis by axis (§5): the serial
 * part, where each value's contexts depend on the values before it. In a
 * cage frame each decoded atom joins the grid, as in the encoder. */
ngl_status hpc_dec_values(ngl_hpc_decoder *dec, const frame_in *fi, hpc_rdec *rdx, hpc_bitr *raw,
                          int use_force, uint64_t *exact_count, uint64_t *wraps)
{
    hpc_core *c = &dec->c;
    vpass vps; /* local, so that the compiler may keep its fields in registers */
    vpass *vp = &vps;
    memset(vp, 0, sizeof(*vp));
    vp->c = c;
    vp->fi = fi;
    vp->rdx = rdx;
    vp->raw = raw;
    vp->ctx = c->ctx;
    vp->RW = fi->same ? c->ring : c->ring_alt;
    vp->head = c->head;
    vp->wslot = (c->head + 1) % HPC_HIST;
    vp->lossless = c->lossless;
    vp->spatial2 = (fi->flags & HPC_FF_SPATIAL2) != 0;
    vp->f32 = c->dtype == NGL_HPC_F32;
    vp->use_force = use_force;
    vp->step = c->step;
    for (int a = 0; a < 3; a++) {
        vp->wax[a] = hpc_waxis_make(fi->lo[a], fi->hi[a], c->inv_step);
    }
    vp->o32 = fi->xyz;
    vp->o64 = fi->xyz;
    hpc_ctxset_refresh(vp->ctx, HPC_NCTX, 1);
    for (uint64_t k = 0; k < fi->n; k++) {
        const unsigned sel = c->sel[k / HPC_BLOCK_ATOMS];
        const int cage_sel = fi->cage && sel == HPC_SEL_MODEL;
        int64_t cf[3] = {0, 0, 0};
        const int caged = cage_sel && cage_term(vp, k, cf);
        int any_exact = 0;
        vp->have_prev_axis = 0;
        vp->prev_bucket = 0;
        for (unsigned a = 0; a < 3; a++) {
            ngl_status st =
                decode_value(dec, vp, 3 * k + a, a, sel, cage_sel, caged, cf, &any_exact);
            if (st != NGL_OK) {
                return st;
            }
        }
        if (fi->cage && !any_exact) {
            const double x[3] = {vp->f32 ? (double)vp->o32[3 * k] : vp->o64[3 * k],
                                 vp->f32 ? (double)vp->o32[3 * k + 1] : vp->o64[3 * k + 1],
                                 vp->f32 ? (double)vp->o32[3 * k + 2] : vp->o64[3 * k + 2]};
            hpc_cage_insert(&c->cage, k, x);
        }
    }
    *exact_count = vp->exact_count;
    *wraps = vp->wraps;
    if (hpc_rdec_finish(rdx) != 0) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_CODE, "rANS section does not end where it should");
    }
    if (raw->overrun || raw->pos != raw->len || raw->nacc >= 8 || raw->acc != 0) {
        return hpc_dec_fail(dec, NGL_ERR_BAD_CODE, "raw section does not end where it should");
    }
    if (hpc_values_crc(fi->xyz, 3 * fi->n, c->dtype) != fi->want_crc) {
        return hpc_dec_fail(dec, NGL_ERR_CRC_MISMATCH,
                            "decoded values do not match the encoder's (CRC of frame %llu)",
                            (unsigned long long)fi->index);
    }
    return NGL_OK;
}
