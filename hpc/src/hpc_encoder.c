/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_encoder.c -- the hpc stream encoder (nangila_hpc.h; format in
 * hpc/FORMAT.md). Per frame: map ids to the previous frame, fit the model,
 * pick a predictor per block, then code every value (quantize, check the
 * bound on the decoder's exact reconstruction, predict, entropy-code).
 */
#include "hpc_core.h"
#include "hpc_fit.h"
#include "hpc_lean.h"

#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(NGL_HAVE_ZSTD)
#include <zstd.h>
#endif

#define FIT_SAMPLES         256u /* atoms sampled for the taps-only fit */
#define FIT_SAMPLES_FORCE   384u /* atoms sampled when the force term is tried */
#define FIT_EVERY           4u   /* after the first frames, refit every FIT_EVERY frames */
#define SEL_STRIDE          16u  /* atoms of a block sampled for the predictor choice */
#define SEL_STRIDE_LEAN     64u  /* the same at level 0, where sampling is a visible cost */
#define FORCE_RETRY         16u  /* frames between tries while the force term is off */
#define FORCE_MIN_GAIN      0.97 /* force term kept only if it cuts the cost by 3% */
#define TARGET_NEIGHBOURS   10.0 /* r_cut holds about this many neighbours */
#define CAGE_NEIGHBOURS     20.0 /* the cage table's range holds about this many */
#define CAGE_ITERS          8u   /* descent steps per atom */
#define CAGE_RETRY          8u   /* frames between tries while the cage is off */
#define CAGE_MIN_GAIN       0.98 /* cage used only if it cuts the estimated cost by 2% */
#define CAGE_MIN_GAIN_FORCE 0.90 /* ... by 10% against a model with the force term */
#define CAGE_REFIT          16u  /* frames a cage table is used before it is fitted again */
#define CAGE_MIN_MOVE       0.02 /* tried only if the typical residual exceeds this times rc */

/*
 * Level 0 keeps the closed-loop state of FORMAT.md §3.2 as it needs it: per
 * value the last three lattice values, the image, the last residual's
 * magnitude and the age, each in its own array, instead of the HPC_HIST-deep
 * ring of 16-byte entries the model needs. That is 36 bytes per value instead
 * of 128, read and written in order, which is most of what makes level 0 fast.
 * The stream it writes is the same format (a frame without a model and with
 * integer predictors only), read by the same decoder.
 */
#define LEAN_MAX_DEPTH (HPC_TAPS + 1) /* level 1: the model's history */

typedef struct lean_state {
    unsigned depth;              /* lattice values kept: 3 (level 0), 7 (level 1) */
    int64_t *q[LEAN_MAX_DEPTH];  /* q[k][v] = q_{k+1}: q[0] the last frame */
    int32_t *img;                /* image of q_1 */
    uint16_t *mag;               /* mag of q_1's entry */
    uint8_t *age;                /* age of q_1's entry (0: no history) */
    uint32_t *code;              /* per-frame scratch: HPC_CODE() of HPC_VI_CODED values */
    int64_t *gq[LEAN_MAX_DEPTH]; /* gathered copies when the ids change */
    int32_t *gimg;
    uint16_t *gmag;
    uint8_t *gage;
    uint64_t cap; /* values */
} lean_state;

struct ngl_hpc_encoder {
    ngl_hpc_params p;
    hpc_core c;
    hpc_symbuf sb;
    uint8_t *raw;
    size_t raw_cap;
    uint8_t *rans;
    size_t rans_cap;
    void *dec; /* decoded values of the frame, for the value CRC */
    uint8_t *idbuf;
    size_t idbuf_cap;
    uint32_t *samples;
    double *feat;
    double *fit_f; /* FIT_SAMPLES * 3 rows of HPC_LS_MAX features */
    double *fit_y;
    uint64_t scratch_cap; /* atoms the scratch above holds */
    int force_active;
    uint64_t last_force_try;
    int cage_active; /* level 3: the last frame used the cage */
    uint64_t last_cage_try;
    double cage_rc2;           /* the cage table's range, fixed once chosen (0 = not yet) */
    double *cage_disp;         /* trial: descent displacement of sampled atoms (3 per atom) */
    double *cage_cur;          /* trial: the frame's input positions as doubles (3 per atom) */
    int64_t *cage_fx;          /* cage term of sampled atoms, Q12 lattice units (3 per atom) */
    uint8_t *cage_sel;         /* trial: block selectors with the cage as MODEL */
    uint64_t cage_table_frame; /* frame that sent the current cage table */
    uint64_t prev_exact;       /* values stored exactly last frame: they restart without history */
    lean_state lean;           /* level 0 only: the state in arrays, not the history ring */
    hpc_lean_kernel kernel;    /* level 0: the first pass' vector kernel */
    uint64_t kernel_values;    /* values the kernel coded (test hook) */
    ngl_hpc_stats stats;
    char err[256];
#if defined(NGL_HAVE_ZSTD)
    ZSTD_CCtx *zc;
#endif
};

/* ------------------------------------------------------- level-0 state */
static void lean_free(lean_state *L)
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

static ngl_status lean_reserve(lean_state *L, uint64_t nvals)
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
static void lean_gather(lean_state *L, const uint32_t *pmap, uint64_t n)
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
    lean_free(&enc->lean);
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
    if (enc->c.no_ring && (st = lean_reserve(&enc->lean, 3 * cap)) != NGL_OK) {
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

static inline double in_value(const ngl_hpc_frame *f, ngl_hpc_dtype dt, uint64_t i)
{
    if (dt == NGL_HPC_F32) {
        return ((const float *)f->xyz)[i];
    }
    return ((const double *)f->xyz)[i];
}

static inline int64_t in_ord(const ngl_hpc_frame *f, ngl_hpc_dtype dt, uint64_t i)
{
    if (dt == NGL_HPC_F32) {
        uint32_t u;
        memcpy(&u, (const float *)f->xyz + i, 4);
        return hpc_ord_from_bits32(u);
    }
    uint64_t u;
    memcpy(&u, (const double *)f->xyz + i, 8);
    return hpc_ord_from_bits64(u);
}

/* Box of the frame being coded, per axis: periodic length or 0. */
typedef struct frame_geom {
    int has_box;
    int per[3];
    double lo[3], hi[3], len[3];
} frame_geom;

/* Provisional lattice value of an input value with history, choosing the
 * periodic image closest to @p ref, the linear extrapolation (used only for
 * fitting and predictor choice; the coding pass decides wraps by its own
 * rule). @p img is the image of the last entry.
 * @return 0, or -1 if the value cannot go on the lattice. */
static inline int qprov_at(const hpc_core *c, const frame_geom *g, const ngl_hpc_frame *f,
                           uint64_t v, unsigned a, double ref, int32_t img, int64_t *q)
{
    if (c->lossless) {
        *q = in_ord(f, c->dtype, v);
        return 0;
    }
    double x = in_value(f, c->dtype, v);
    if (!isfinite(x)) {
        return -1;
    }
    double u = x + (double)img * g->len[a];
    if (g->per[a]) {
        double best = fabs(u * c->inv_step - ref);
        for (int d = -1; d <= 1; d += 2) {
            double ud = x + (double)(img + d) * g->len[a];
            double dist = fabs(ud * c->inv_step - ref);
            if (dist < best) {
                best = dist;
                u = ud;
            }
        }
    }
    double qd = u * c->inv_step;
    if (!(fabs(qd) < (double)HPC_Q_LIMIT)) {
        return -1;
    }
    *q = hpc_floor_i64(qd + 0.5);
    return 0;
}

/*
 * Read access to the closed-loop state for fitting and predictor choice,
 * whichever layout holds it: the ring (levels 2-3) or the lean arrays (levels 0
 * and 1). Both hold the same values; only the coding passes are written per
 * layout.
 */
typedef struct hist_view {
    const hpc_ent *ring; /* NULL: lean */
    unsigned head;
    const lean_state *lean;
} hist_view;

static inline unsigned hv_age(const hist_view *h, uint64_t v)
{
    return h->ring ? h->ring[v * HPC_HIST + h->head].age : h->lean->age[v];
}

static inline int32_t hv_img(const hist_view *h, uint64_t v)
{
    return h->ring ? h->ring[v * HPC_HIST + h->head].img : h->lean->img[v];
}

/* q_k of value v, 1 <= k <= the layout's depth */
static inline int64_t hv_q(const hist_view *h, uint64_t v, unsigned k)
{
    return h->ring ? hpc_hist(h->ring + v * HPC_HIST, h->head, k)->q : h->lean->q[k - 1][v];
}

/* hpc_predict() on either layout. */
static inline int64_t hv_predict(const hist_view *h, uint64_t v, unsigned sel, unsigned age,
                                 const hpc_model *m, int64_t f_fx, unsigned *pc)
{
    if (h->ring) {
        return hpc_predict(h->ring + v * HPC_HIST, h->head, sel, age, m, f_fx, pc);
    }
    const lean_state *L = h->lean;
    if (sel == HPC_SEL_MODEL && m->valid && age >= HPC_TAPS + 1 && L->depth > HPC_TAPS) {
        int64_t q[HPC_TAPS + 1];
        for (unsigned k = 0; k <= HPC_TAPS; k++) {
            q[k] = L->q[k][v];
        }
        return hpc_predict_model(m, q, f_fx, pc);
    }
    *pc = HPC_PC_INT;
    return hpc_predict_int(sel, age, L->q[0][v], L->q[1][v], L->q[2][v]);
}

/* qprov_at() with the linear extrapolation of the state as reference. */
static inline int qprov(const hpc_core *c, const frame_geom *g, const ngl_hpc_frame *f,
                        const hist_view *h, uint64_t v, unsigned a, unsigned age, int64_t *q)
{
    const int64_t q1 = hv_q(h, v, 1);
    double ref = (double)q1;
    if (age >= 2) {
        ref = 2.0 * (double)q1 - (double)hv_q(h, v, 2);
    }
    return qprov_at(c, g, f, v, a, ref, hv_img(h, v), q);
}

/* Cost proxy of a residual in bits, about log2(1 + 2|r|) (encoder only:
 * exponent plus a linear mantissa, no libm call in the hot loops). */
static inline double cost_bits(int64_t r)
{
    float v = 1.0f + 2.0f * (r < 0 ? -(float)r : (float)r);
    uint32_t u;
    memcpy(&u, &v, 4);
    return (double)((int)(u >> 23) - 127) + (double)(u & 0x7FFFFFu) * 0x1p-23;
}

static void quantize_model(hpc_model *m, const double *x, int with_force, const hpc_core *c)
{
    memset(m, 0, sizeof(*m));
    m->valid = 1;
    for (unsigned k = 0; k < HPC_TAPS; k++) {
        double t = floor(x[k] * (1 << HPC_PRED_SHIFT) + 0.5);
        t = t > 32767 ? 32767 : (t < -32768 ? -32768 : t);
        m->taps[k] = (int16_t)t;
    }
    if (with_force) {
        m->fn.nknots = HPC_KNOTS;
        m->fn.r2lo = c->r2lo;
        m->fn.r2hi = c->r2hi;
        for (unsigned k = 0; k < HPC_KNOTS; k++) {
            /* features were in lattice units; psi multiplies physical
             * displacements, F is converted to lattice units afterwards */
            double v = x[HPC_TAPS + k];
            m->fn.psi[k] = isfinite(v) && fabs(v) < 1e30 ? (float)v : 0.0f;
        }
    }
}

/* Cost proxy of @p m on the fit samples. */
static double model_cost(const hpc_model *m, const double *fy, const double *ff, size_t nv)
{
    double cost = 0;
    for (size_t i = 0; i < nv; i++) {
        const double *f = ff + i * HPC_LS_MAX;
        int64_t acc = 0;
        for (unsigned k = 0; k < HPC_TAPS; k++) {
            acc += (int64_t)m->taps[k] * (int64_t)f[k];
        }
        if (m->fn.nknots) {
            double F = 0;
            for (unsigned k = 0; k < HPC_KNOTS; k++) {
                F += (double)m->fn.psi[k] * f[HPC_TAPS + k];
            }
            double t = F * (1 << HPC_PRED_SHIFT);
            t = t > 4e15 ? 4e15 : (t < -4e15 ? -4e15 : t);
            acc += (int64_t)floor(t + 0.5);
        }
        acc += 1 << (HPC_PRED_SHIFT - 1);
        int64_t pred = hpc_floor_shift(acc, HPC_PRED_SHIFT);
        cost += cost_bits((int64_t)fy[i] - pred);
    }
    return cost;
}

/*
 * Fit the per-frame model on a sample of atoms with full history and decide
 * whether to send it. Sets *send and *m_out (the model to code this frame with).
 * R is the state in frame order; pidx(k) the previous-frame index of atom k.
 */
static void fit_model(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                      const hist_view *hv, int gathered, int try_force, hpc_model *m_out, int *send)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    *send = 0;
    *m_out = c->model;
    unsigned want = try_force ? FIT_SAMPLES_FORCE : FIT_SAMPLES;
    uint64_t stride = n / want > 1 ? n / want : 1;
    size_t m = 0;
    for (uint64_t k = 0; k < n && m < want; k += stride) {
        int ok = gathered ? c->pmap[k] != HPC_NONE : 1;
        for (unsigned a = 0; a < 3 && ok; a++) {
            ok = hv_age(hv, k * 3 + a) >= HPC_TAPS + 1;
        }
        if (ok) {
            enc->samples[m++] = (uint32_t)k;
        }
    }
    if (m < 16) {
        return;
    }
    uint32_t *plist = enc->samples + FIT_SAMPLES_FORCE; /* previous-frame indices */
    for (size_t i = 0; i < m; i++) {
        plist[i] = gathered ? c->pmap[enc->samples[i]] : enc->samples[i];
    }
    if (try_force) {
        hpc_pairfn fn = {.r2lo = c->r2lo, .r2hi = c->r2hi, .nknots = HPC_KNOTS};
        hpc_force_knot_features(&c->cells, c->pos, &fn, plist, m, enc->feat);
    }
    /* samples: features (lattice units) and targets */
    const size_t stride_f = HPC_LS_MAX;
    double *ff = enc->fit_f;
    double *fy = enc->fit_y;
    size_t nv = 0;
    hpc_ls ls;
    hpc_ls_init(&ls, try_force ? HPC_TAPS + HPC_KNOTS : HPC_TAPS);
    for (size_t i = 0; i < m; i++) {
        uint64_t k = enc->samples[i];
        for (unsigned a = 0; a < 3; a++) {
            uint64_t v = 3 * k + a;
            int64_t q;
            if (qprov(c, g, f, hv, v, a, HPC_TAPS + 1, &q) != 0) {
                continue;
            }
            int64_t y = hpc_wsub(q, hv_q(hv, v, 1));
            if (y > ((int64_t)1 << 40) || y < -((int64_t)1 << 40)) {
                continue;
            }
            double *fr = ff + nv * stride_f;
            for (unsigned t = 0; t < HPC_TAPS; t++) {
                fr[t] = (double)hpc_clamp_d(hpc_wsub(hv_q(hv, v, t + 1), hv_q(hv, v, t + 2)));
            }
            for (unsigned t = 0; t < HPC_KNOTS; t++) {
                fr[HPC_TAPS + t] =
                    try_force ? enc->feat[(i * 3 + a) * HPC_KNOTS + t] * c->inv_step : 0.0;
            }
            fy[nv] = (double)y;
            hpc_ls_add(&ls, fr, (double)y);
            nv++;
        }
    }
    double x[HPC_LS_MAX];
    hpc_model cand_taps, cand_force;
    int have_taps = 0, have_force = 0;
    unsigned nfull = ls.n;
    ls.n = HPC_TAPS; /* leading block = taps-only normal equations */
    if (hpc_ls_solve(&ls, 1e-9, x) == 0) {
        quantize_model(&cand_taps, x, 0, c);
        have_taps = 1;
    }
    ls.n = nfull;
    if (try_force && hpc_ls_solve(&ls, 1e-9, x) == 0) {
        quantize_model(&cand_force, x, 1, c);
        have_force = 1;
    }
    const double scale = (double)(3 * n) / (double)(nv ? nv : 1);
    double best_cost = INFINITY;
    const hpc_model *best = NULL;
    int best_send = 0;
    int old_ok = c->model.valid && (c->model.fn.nknots == 0 || try_force);
    if (old_ok) {
        best_cost = model_cost(&c->model, fy, ff, nv) * scale;
        best = &c->model;
    }
    double cost_taps = INFINITY;
    if (have_taps) {
        cost_taps = model_cost(&cand_taps, fy, ff, nv) * scale;
        double with_side = cost_taps + 8.0 * (4 + 2 * HPC_TAPS);
        if (with_side < best_cost) {
            best_cost = with_side;
            best = &cand_taps;
            best_send = 1;
        }
    }
    if (have_force) {
        double cf = model_cost(&cand_force, fy, ff, nv) * scale;
        double with_side = cf + 8.0 * (4 + 2 * HPC_TAPS + 16 + 4 * HPC_KNOTS);
        if (cf < FORCE_MIN_GAIN * cost_taps && with_side < best_cost) {
            best_cost = with_side;
            best = &cand_force;
            best_send = 1;
        }
    }
    if (best != NULL) {
        *m_out = *best;
        *send = best_send;
    }
}

/* Pick the predictor of each block from a sample of its atoms: every
 * @p stride-th atom of a full block (SEL_STRIDE, or SEL_STRIDE_LEAN at level 0
 * where sampling is a visible cost), every SEL_STRIDE-th or every atom of a
 * short one. */
/* Atoms of block [k0, k1) sampled for the predictor choice: every step-th from k0. */
static inline uint64_t sel_step(uint64_t k0, uint64_t k1, uint64_t stride)
{
    uint64_t step = (k1 - k0) >= 4 * stride ? stride : SEL_STRIDE;
    return (k1 - k0) >= 4 * step ? step : 1;
}

/* A cage frame's candidate for the MODEL selector: the cage term of each
 * sampled atom that has one (eligible), ORDER1 for the others. */
#define CAGE_NONE INT64_MIN /* cage_fx of an atom the cage could not predict */

typedef struct cage_choice {
    const int64_t *fx;    /* cage term, 3 per atom */
    const uint8_t *valid; /* previous atoms with a position */
} cage_choice;

static inline int cage_eligible(const hpc_core *c, const uint8_t *valid, uint64_t k)
{
    const uint32_t p = c->pmap[k];
    return p != HPC_NONE && valid[p];
}

/*
 * Pick each block's predictor from the estimated cost of its sampled atoms
 * into @p sel_out. With @p cage, MODEL means the cage (§6.8); otherwise the
 * model @p m. @return the estimated cost of the frame in bits (sampled atoms).
 */
static double choose_selectors(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                               const hist_view *hv, const hpc_model *m, int use_force,
                               uint64_t stride, const cage_choice *cage, uint8_t *sel_out,
                               double *nvalues)
{
    double counted = 0;
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    const uint64_t nblocks = (n + HPC_BLOCK_ATOMS - 1) / HPC_BLOCK_ATOMS;
    const int have_model = cage != NULL || m->valid;
    double total = 0;
    for (uint64_t b = 0; b < nblocks; b++) {
        double cost[4] = {0, 0, 0, 0};
        uint64_t k0 = b * HPC_BLOCK_ATOMS;
        uint64_t k1 = k0 + HPC_BLOCK_ATOMS < n ? k0 + HPC_BLOCK_ATOMS : n;
        const uint64_t step = sel_step(k0, k1, stride);
        for (uint64_t k = k0; k < k1; k += step) {
            const int caged =
                cage != NULL && cage_eligible(c, cage->valid, k) && cage->fx[3 * k] != CAGE_NONE;
            for (unsigned a = 0; a < 3; a++) {
                uint64_t v = 3 * k + a;
                unsigned age = hv_age(hv, v);
                int64_t q;
                if (age == 0 || qprov(c, g, f, hv, v, a, age, &q) != 0) {
                    continue;
                }
                counted += 1;
                for (unsigned s = 0; s < 4; s++) {
                    if (s == HPC_SEL_MODEL && !have_model) {
                        continue;
                    }
                    unsigned pc;
                    int64_t p;
                    if (s == HPC_SEL_MODEL && cage != NULL) {
                        p = caged ? hpc_predict_cage(hv_q(hv, v, 1), cage->fx[v], &pc)
                                  : hv_predict(hv, v, HPC_SEL_ORDER1, age, m, 0, &pc);
                    } else {
                        p = hv_predict(hv, v, s, age, m, use_force ? c->Fcur[v] : 0, &pc);
                    }
                    cost[s] += cost_bits(hpc_wsub(q, p));
                }
            }
        }
        unsigned best = have_model ? HPC_SEL_MODEL : HPC_SEL_ORDER1;
        for (unsigned s = 0; s < 4; s++) {
            if ((s != HPC_SEL_MODEL || have_model) && cost[s] < cost[best]) {
                best = s;
            }
        }
        sel_out[b] = (uint8_t)best;
        total += cost[best];
    }
    if (nvalues != NULL) {
        *nvalues = counted;
    }
    return total;
}

static size_t finish_record(uint8_t *rec, uint8_t type, size_t payload_len)
{
    rec[0] = 'N';
    rec[1] = 'H';
    rec[2] = 'P';
    rec[3] = type;
    hpc_put_u32(rec + 4, (uint32_t)payload_len);
    uint32_t crc = ngl_crc32c(0, rec, HPC_REC_HEADER + payload_len);
    hpc_put_u32(rec + HPC_REC_HEADER + payload_len, crc);
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
    hpc_put_f64(p + 8, enc->c.eps);
    hpc_put_f64(p + 16, enc->c.step);
    hpc_put_f64(p + 24, enc->c.rel);
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
            pos += hpc_put_varint(b + pos, hpc_zigzag((int64_t)pp - (lastpp + 1)));
            lastpp = pp;
        } else {
            b[k / 8] |= (uint8_t)(1u << (k % 8));
            pos += hpc_put_varint(b + pos, hpc_zigzag(hpc_wsub(id, lastnew)));
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
            hpc_put_u32(dst, (uint32_t)(zn + 4));
            hpc_put_u32(dst + 4, (uint32_t)pos);
            *zstd = 1;
            return 8 + zn;
        }
    }
#endif
    hpc_put_u32(dst, (uint32_t)pos);
    memcpy(dst + 4, b, pos);
    return 4 + pos;
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
static void quantize_ring(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
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
                ne->mag = hpc_mag_of(hpc_zigzag(r));
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
        L->mag[v] = hpc_mag_of(hpc_zigzag(r));
        L->age[v] = (uint8_t)(age < 255 ? age + 1 : 255);
    }
    c->vinfo[v] = (uint16_t)info;
}

/* Pass 1 over the lean state: full blocks of lossy streams go to the vector
 * kernel (hpc_lean.h) where the CPU has one, and the vectors it leaves, the
 * last partial block and everything else to the scalar code. */
static void quantize_lean(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g)
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
static void code_values(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, int spatial2, hpc_bitw *raw,
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
                const uint64_t z = hpc_zigzag(c->vres[v]);
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
            const uint64_t z = hpc_zigzag(r);
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

/*
 * Levels 1-3: fit the frame's model (with the learned force term from level 2
 * on, when it pays), evaluate the force, and pick each block's predictor.
 * @return the estimated cost of the sampled values in bits, their count in
 * *nvalues (try_cage() compares against it).
 */
static double fit_and_choose(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                             const hist_view *hv, int gathered, hpc_model *model, int *send_model,
                             double *nvalues)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    int try_force = 0;
    if (c->level >= NGL_HPC_LEVEL_DEFAULT && !c->lossless && c->has_box && g->has_box &&
        c->frame > HPC_TAPS && c->n > 0) {
        if (!(c->r2hi > 0)) {
            double vol = 1;
            for (int a = 0; a < 3; a++) {
                vol *= c->hi[a] - c->lo[a];
            }
            double rho = (double)c->n / vol;
            double rc = cbrt(TARGET_NEIGHBOURS * 3.0 / (4.0 * M_PI * rho));
            if (isfinite(rc) && rc > 0) {
                c->r2hi = rc * rc;
                c->r2lo = 0.25 * rc * rc;
            }
        }
        if (c->r2hi > 0 && (enc->force_active || c->frame - enc->last_force_try >= FORCE_RETRY ||
                            c->frame <= HPC_TAPS + 3)) {
            try_force = hpc_core_build_cells(c) == NGL_OK;
            enc->last_force_try = c->frame;
        }
    }
    fit_model(enc, f, g, hv, gathered, try_force, model, send_model);
    if (model->fn.nknots && !c->cells_ok) {
        /* cannot evaluate the force term this frame: fall back to taps only */
        model->fn.nknots = 0;
        *send_model = 1;
    }
    const int use_force = model->valid && model->fn.nknots > 0;
    c->model = *model; /* hpc_core_force evaluates c->model */
    if (use_force) {
        hpc_core_force(c, n, gathered);
    }
    return choose_selectors(enc, f, g, hv, model, use_force, SEL_STRIDE, NULL, c->sel, nvalues);
}

/*
 * Level 3: try the cage predictor on this frame (FORMAT.md §6.8). Builds the
 * grids and the table from the previous frame, runs the descent for the atoms
 * the predictor choice samples (with the input positions of the atoms before
 * them, close to what the decoder will have), fits lambda, and picks the
 * blocks' selectors with the cage as MODEL. @p cost_plain is the estimated
 * cost of the frame without it, over @p nvalues sampled values; the cage's
 * estimate, with what it sends, must be below @p need times that.
 * The table is the stream's current one while it is younger than CAGE_REFIT
 * frames, else a new fit (*new_table).
 * @return 1 with c->sel and *cp set when the cage should code this frame.
 */
static int try_cage(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                    const hist_view *hv, const hpc_model *m, double cost_plain, double nvalues,
                    double need, hpc_cage_params *cp, int *new_table)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    if (c->level < NGL_HPC_LEVEL_BEST || c->lossless || !c->has_box || !g->has_box ||
        c->frame == 0 || c->n == 0 || n == 0) {
        return 0;
    }
    if (!enc->cage_active && c->frame - enc->last_cage_try < CAGE_RETRY && c->frame > 3) {
        return 0;
    }
    if (!(enc->cage_rc2 > 0)) {
        double vol = 1;
        for (int a = 0; a < 3; a++) {
            vol *= c->hi[a] - c->lo[a];
        }
        double rc = cbrt(CAGE_NEIGHBOURS * 3.0 / (4.0 * M_PI * ((double)c->n / vol)));
        if (!(rc > 0) || !isfinite(rc)) {
            return 0;
        }
        enc->cage_rc2 = rc * rc;
    }
    /* The typical residual (from the geometric mean of the cost proxy): a
     * cage locates an atom to a fair fraction of rc, so it cannot beat a
     * temporal prediction that is already much closer (dumps close in time). */
    const double typical = nvalues > 0 ? 0.5 * (exp2(cost_plain / nvalues) - 1) * c->step : 0;
    if (!(typical >= CAGE_MIN_MOVE * sqrt(enc->cage_rc2))) {
        return 0;
    }
    enc->last_cage_try = c->frame;
    if (!c->cells_ok) { /* else the force term's grid computed them this frame */
        hpc_core_prev_positions(c);
    }
    hpc_cage *cg = &c->cage;
    *new_table = !c->cage_have || c->frame - enc->cage_table_frame >= CAGE_REFIT;
    if (*new_table) {
        cp->rc2 = enc->cage_rc2;
        cp->iters = CAGE_ITERS;
    } else {
        *cp = c->cagep;
    }
    double *cur = enc->cage_cur;
    for (uint64_t v = 0; v < 3 * n; v++) {
        const double x = in_value(f, c->dtype, v);
        cur[v] = isfinite(x) && fabs(x) < 1e300 ? x : NAN;
    }
    if (hpc_cage_begin(cg, cp->rc2, g->lo, g->hi, g->per, c->pos, c->valid, c->n, c->pmap, n) !=
            NGL_OK ||
        (*new_table && hpc_cage_fit_table(cg, cur, n, cp) != 0)) {
        return 0;
    }
    cp->lambda = 1.0f;
    hpc_cage_set_params(cg, cp);

    /* Descent for the sampled atoms; every atom joins the grid at its input
     * position once passed. lambda: least squares of the true displacement
     * on the descent's. */
    double num = 0, den = 0;
    const uint64_t nblocks = (n + HPC_BLOCK_ATOMS - 1) / HPC_BLOCK_ATOMS;
    for (uint64_t b = 0; b < nblocks; b++) {
        const uint64_t k0 = b * HPC_BLOCK_ATOMS;
        const uint64_t k1 = k0 + HPC_BLOCK_ATOMS < n ? k0 + HPC_BLOCK_ATOMS : n;
        const uint64_t step = sel_step(k0, k1, SEL_STRIDE);
        for (uint64_t k = k0; k < k1; k++) {
            const double *x = cur + 3 * k;
            const int finite = !isnan(x[0]) && !isnan(x[1]) && !isnan(x[2]);
            if ((k - k0) % step == 0 && cage_eligible(c, c->valid, k)) {
                const double *o = c->pos + 3 * (size_t)c->pmap[k];
                double *d = enc->cage_disp + 3 * k;
                const int got = hpc_cage_descend(cg, k, o, d) == 0;
                for (unsigned a = 0; a < 3; a++) {
                    double t = x[a] - o[a];
                    if (g->per[a]) {
                        t -= g->len[a] * floor(t / g->len[a] + 0.5);
                    }
                    if (got && finite && fabs(t) < 1e300) {
                        num += d[a] * t;
                        den += d[a] * d[a];
                    }
                }
                if (!got) {
                    d[0] = NAN; /* crowded: no cage prediction */
                }
            }
            if (finite) {
                hpc_cage_insert(cg, k, x);
            }
        }
    }
    if (!(den > 0)) {
        return 0;
    }
    double lambda = num / den;
    lambda = lambda < 0.25 ? 0.25 : (lambda > 2.0 ? 2.0 : lambda);
    cp->lambda = (float)lambda;
    hpc_cage_set_params(cg, cp);
    const double q12 = c->inv_step * (double)(1 << HPC_PRED_SHIFT);
    for (uint64_t b = 0; b < nblocks; b++) {
        const uint64_t k0 = b * HPC_BLOCK_ATOMS;
        const uint64_t k1 = k0 + HPC_BLOCK_ATOMS < n ? k0 + HPC_BLOCK_ATOMS : n;
        const uint64_t step = sel_step(k0, k1, SEL_STRIDE);
        for (uint64_t k = k0; k < k1; k += step) {
            if (cage_eligible(c, c->valid, k)) {
                const double *d = enc->cage_disp + 3 * k;
                for (unsigned a = 0; a < 3; a++) {
                    enc->cage_fx[3 * k + a] =
                        isnan(d[0]) ? CAGE_NONE : hpc_cage_fixed(cg, d[a], q12);
                }
            }
        }
    }
    const cage_choice cc = {.fx = enc->cage_fx, .valid = c->valid};
    double cost = choose_selectors(enc, f, g, hv, m, 0, SEL_STRIDE, &cc, enc->cage_sel, NULL);
    /* The sampled costs scaled to the frame, with what the cage sends: lambda,
     * and a new table spread over the frames it will serve. */
    const double scale = (double)(3 * n) / nvalues;
    const double extra = 8.0 * (HPC_CAGE_LAMBDA_SECTION +
                                (*new_table ? (double)HPC_CAGE_TABLE_SECTION / CAGE_REFIT : 0));
    if (!(cost * scale + extra < need * cost_plain * scale)) {
        return 0;
    }
    memcpy(c->sel, enc->cage_sel, (size_t)nblocks);
    hpc_cage_reset_new(cg);
    return 1;
}

/* Whether the atoms without history code better with the second-order
 * spatial delta (SPATIAL2), judged on up to 4096 of them. age[v * stride]
 * (bytes) is the age of value v's last entry. */
static int choose_spatial2(const hpc_core *c, const ngl_hpc_frame *f, uint64_t n,
                           const uint8_t *age, size_t stride)
{
    double c1 = 0, c2 = 0;
    int64_t s1[3] = {0, 0, 0}, s2[3] = {0, 0, 0};
    unsigned ch[3] = {0, 0, 0};
    uint64_t seen = 0;
    for (uint64_t k = 0; k < n && seen < 3 * 4096; k++) {
        for (unsigned a = 0; a < 3; a++) {
            uint64_t v = 3 * k + a;
            if (age[v * stride] != 0) {
                continue;
            }
            int64_t q;
            if (c->lossless) {
                q = in_ord(f, c->dtype, v);
            } else {
                double x = in_value(f, c->dtype, v);
                double qd = x * c->inv_step;
                if (!(fabs(qd) < (double)HPC_Q_LIMIT)) {
                    continue;
                }
                q = hpc_floor_i64(qd + 0.5);
            }
            c1 += cost_bits(hpc_wsub(q, ch[a] ? s1[a] : 0));
            c2 += cost_bits(hpc_wsub(q, ch[a] >= 2 ? hpc_wsub(hpc_wadd(s1[a], s1[a]), s2[a])
                                                   : (ch[a] ? s1[a] : 0)));
            s2[a] = s1[a];
            s1[a] = q;
            ch[a]++;
            seen++;
        }
    }
    return c2 < c1;
}

ngl_status ngl_hpc_encoder_encode(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, void *dst,
                                  size_t dst_cap, size_t *out_len)
{
    if (enc == NULL || f == NULL || dst == NULL || out_len == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    enc->err[0] = '\0';
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
    frame_geom g;
    memset(&g, 0, sizeof(g));
    if (f->has_box) {
        g.has_box = 1;
        for (int a = 0; a < 3; a++) {
            if (!isfinite(f->box_lo[a]) || !isfinite(f->box_hi[a]) ||
                !(f->box_lo[a] < f->box_hi[a]) || !isfinite(f->box_hi[a] - f->box_lo[a]) ||
                f->periodic[a] > 1) {
                set_err(enc, "bad box on axis %d", a);
                return NGL_ERR_INVALID_ARG;
            }
            g.lo[a] = f->box_lo[a];
            g.hi[a] = f->box_hi[a];
            g.per[a] = f->periodic[a];
            g.len[a] = g.per[a] ? g.hi[a] - g.lo[a] : 0.0;
        }
    }
    if (dst_cap < ngl_hpc_encode_bound(n)) {
        set_err(enc, "output buffer below ngl_hpc_encode_bound()");
        return NGL_ERR_DST_TOO_SMALL;
    }
    ngl_status st = reserve_scratch(enc, n);
    if (st != NGL_OK) {
        set_err(enc, "out of memory for %llu atoms", (unsigned long long)n);
        return st;
    }
    hpc_core *c = &enc->c;

    /* ---- ids: same order, identity, or a general mapping */
    int same = 0;
    uint64_t fresh = 0; /* atoms without history in this frame */
    const int identity = f->ids == NULL;
    if (c->frame > 0 && c->n == n) {
        same = identity ? c->ids_identity
                        : (!c->ids_identity && (n == 0 || !memcmp(f->ids, c->ids, n * 8)));
    }
    if (!same) {
        if (c->frame > 0 && (st = hpc_core_prev_map(c)) != NGL_OK) {
            return st;
        }
        if ((st = hpc_idmap_reset(&c->new_map, n)) != NGL_OK) {
            return st;
        }
        for (uint64_t k = 0; k < n; k++) {
            int64_t id = identity ? (int64_t)k : f->ids[k];
            if (hpc_idmap_insert(&c->new_map, id, (uint32_t)k) != 0) {
                set_err(enc, "duplicate atom id %lld", (long long)id);
                return NGL_ERR_INVALID_ARG;
            }
            c->pmap[k] = c->frame > 0 ? hpc_idmap_find(&c->prev_map, id) : HPC_NONE;
            fresh += c->pmap[k] == HPC_NONE;
        }
    } else {
        for (uint64_t k = 0; k < n; k++) {
            c->pmap[k] = (uint32_t)k;
        }
    }

    /* ---- from here on nothing fails */
    uint8_t *out = dst;
    size_t off = 0;
    if (!c->configured) {
        resolve_eps(enc, f);
        off += write_stream_header(enc, out);
    }
    const int gathered = !same;
    const int lean = c->no_ring;
    const hpc_ent *R = NULL;
    c->cells_ok = 0;
    hpc_model model;
    memset(&model, 0, sizeof(model));
    int send_model = 0, use_force = 0, cage = 0, cage_table = 0;
    hpc_cage_params cagep;
    hist_view hv = {.ring = NULL, .head = c->head, .lean = &enc->lean};
    if (lean) {
        if (gathered) {
            lean_gather(&enc->lean, c->pmap, n);
        }
    } else {
        if (gathered) {
            hpc_core_gather(c, n);
        }
        R = gathered ? c->ring_alt : c->ring;
        hv.ring = R;
    }
    if (c->level == NGL_HPC_LEVEL_FASTEST) {
        (void)choose_selectors(enc, f, &g, &hv, &model, 0, SEL_STRIDE_LEAN, NULL, c->sel, NULL);
    } else {
        const hpc_model prev_model = c->model;
        double nvalues = 0;
        const double cost =
            fit_and_choose(enc, f, &g, &hv, gathered, &model, &send_model, &nvalues);
        use_force = model.valid && model.fn.nknots > 0;
        /* Where the force at t-1 predicts part of the move, the model's
         * fractional predictions code better than the cost proxy tells: the
         * cage must then promise more. */
        cage = try_cage(enc, f, &g, &hv, &model, cost, nvalues,
                        use_force ? CAGE_MIN_GAIN_FORCE : CAGE_MIN_GAIN, &cagep, &cage_table);
        if (cage) { /* the cage takes the MODEL selector; the model stays as it was */
            model = prev_model;
            send_model = 0;
            use_force = 0;
        }
    }
    c->model = model;

    /* spatial predictor order for atoms without history */
    int spatial2 = 0;
    if (fresh > 0 || enc->prev_exact > 0) {
        spatial2 = lean ? choose_spatial2(c, f, n, enc->lean.age, 1)
                        : choose_spatial2(c, f, n, &R[c->head].age, HPC_HIST * sizeof(hpc_ent));
    }

    /* ---- frame record: fixed part */
    uint8_t *rec = out + off;
    uint8_t *p = rec + HPC_REC_HEADER;
    size_t pl = 0;
    unsigned flags = 0;
    if (same) {
        flags |= HPC_FF_IDS_SAME;
    } else if (identity) {
        flags |= HPC_FF_IDS_IDENTITY;
    }
    if (g.has_box) {
        flags |= HPC_FF_BOX;
    }
    if (send_model) {
        flags |= HPC_FF_MODEL;
    }
    if (spatial2) {
        flags |= HPC_FF_SPATIAL2;
    }
    if (cage) {
        flags |= HPC_FF_CAGE | (cage_table ? HPC_FF_CAGE_TABLE : 0u);
    }
    hpc_put_u64(p, c->frame);
    hpc_put_u32(p + 8, (uint32_t)n);
    p[12] = 0; /* flags, patched below */
    p[13] = 0;
    hpc_put_u16(p + 14, 0);
    pl = 16;
    if (g.has_box) {
        for (int a = 0; a < 3; a++) {
            hpc_put_f64(p + pl, g.lo[a]);
            hpc_put_f64(p + pl + 8, g.hi[a]);
            pl += 16;
        }
        p[pl++] = (uint8_t)(g.per[0] | (g.per[1] << 1) | (g.per[2] << 2));
    }
    if (!same && !identity) {
        int z = 0;
        pl += write_ids(enc, f, p + pl, &z);
        if (z) {
            flags |= HPC_FF_IDS_ZSTD;
        }
    } else if (!same && identity) {
        /* identity ids need no section, but the mapping to the previous frame
         * is implied by the ids themselves: nothing to write */
    }
    p[12] = (uint8_t)flags;
    if (send_model) {
        p[pl++] = HPC_TAPS;
        p[pl++] = (uint8_t)model.fn.nknots;
        hpc_put_u16(p + pl, 0);
        pl += 2;
        for (unsigned k = 0; k < HPC_TAPS; k++) {
            hpc_put_u16(p + pl, (uint16_t)model.taps[k]);
            pl += 2;
        }
        if (model.fn.nknots) {
            hpc_put_f64(p + pl, model.fn.r2lo);
            hpc_put_f64(p + pl + 8, model.fn.r2hi);
            pl += 16;
            for (unsigned k = 0; k < HPC_KNOTS; k++) {
                hpc_put_f32(p + pl, model.fn.psi[k]);
                pl += 4;
            }
        }
    }
    if (cage && cage_table) {
        p[pl] = (uint8_t)HPC_CAGE_KNOTS;
        p[pl + 1] = (uint8_t)cagep.iters;
        hpc_put_u16(p + pl + 2, 0);
        hpc_put_f64(p + pl + 4, cagep.rc2);
        for (unsigned k = 0; k <= HPC_CAGE_KNOTS; k++) {
            hpc_put_f32(p + pl + 12 + 4 * k, cagep.w[k]);
            hpc_put_f32(p + pl + 12 + 4 * (HPC_CAGE_KNOTS + 1) + 4 * k, cagep.v[k]);
        }
        pl += HPC_CAGE_TABLE_SECTION;
    }
    if (cage) {
        hpc_put_f32(p + pl, cagep.lambda);
        pl += HPC_CAGE_LAMBDA_SECTION;
    }
    uint8_t *crc_at = p + pl;
    pl += 4;
    const uint64_t nblocks = (n + HPC_BLOCK_ATOMS - 1) / HPC_BLOCK_ATOMS;
    const size_t selbytes = (size_t)((nblocks + 3) / 4);
    memset(p + pl, 0, selbytes);
    for (uint64_t b = 0; b < nblocks; b++) {
        p[pl + b / 4] |= (uint8_t)(c->sel[b] << (2 * (b % 4)));
    }
    pl += selbytes;

    /* ---- coding pass */
    hpc_bitw raw;
    hpc_bitw_init(&raw, enc->raw, enc->raw_cap);
    const unsigned wslot = (c->head + 1) % HPC_HIST;
    uint64_t exact_count = 0, wraps = 0;
    if (lean) {
        quantize_lean(enc, f, &g);
        code_values(enc, f, spatial2, &raw, (uint8_t *)enc->lean.mag, sizeof(uint16_t),
                    &exact_count, &wraps);
    } else {
        hpc_ent *RW = gathered ? c->ring_alt : c->ring;
        quantize_ring(enc, f, &g, RW, &model, use_force, cage);
        code_values(enc, f, spatial2, &raw, (uint8_t *)&RW[wslot].mag, HPC_HIST * sizeof(hpc_ent),
                    &exact_count, &wraps);
    }
    hpc_put_u32(crc_at, hpc_values_crc(enc->dec, 3 * n, c->dtype));
    size_t rans_len = hpc_rans_encode(&enc->sb, enc->rans, enc->rans_cap);
    hpc_put_u32(p + pl, (uint32_t)rans_len);
    memcpy(p + pl + 4, enc->rans + enc->rans_cap - rans_len, rans_len);
    pl += 4 + rans_len;
    size_t raw_len = hpc_bitw_finish(&raw);
    hpc_put_u32(p + pl, (uint32_t)raw_len);
    memcpy(p + pl + 4, enc->raw, raw_len);
    pl += 4 + raw_len;
    off += finish_record(rec, HPC_REC_FRAME, pl);
    assert(off <= dst_cap);

    /* ---- commit */
    if (lean) {
        /* the new entries went to the oldest array: it becomes q_1 */
        lean_state *L = &enc->lean;
        int64_t *newest = L->q[L->depth - 1];
        for (unsigned i = L->depth - 1; i > 0; i--) {
            L->q[i] = L->q[i - 1];
        }
        L->q[0] = newest;
    } else if (gathered) {
        hpc_ent *t = c->ring;
        c->ring = c->ring_alt;
        c->ring_alt = t;
    }
    c->head = wslot;
    if (!same) {
        if (!identity && n) {
            memcpy(c->ids, f->ids, n * sizeof(int64_t));
        }
        c->ids_identity = identity;
    }
    c->n = n;
    c->has_box = g.has_box;
    for (int a = 0; a < 3; a++) {
        c->lo[a] = g.lo[a];
        c->hi[a] = g.hi[a];
        c->per[a] = (uint8_t)g.per[a];
    }
    c->frame++;
    enc->force_active = use_force;
    enc->cage_active = cage;
    if (cage && cage_table) {
        c->cagep = cagep;
        c->cage_have = 1;
        enc->cage_table_frame = c->frame - 1; /* c->frame has moved on above */
    }
    enc->prev_exact = exact_count;
    int used_model = 0;
    for (uint64_t b = 0; b < nblocks && model.valid && !cage; b++) {
        used_model |= c->sel[b] == HPC_SEL_MODEL;
    }
    enc->stats.frames++;
    enc->stats.values += 3 * n;
    enc->stats.bytes_out += off;
    enc->stats.exact += exact_count;
    enc->stats.wraps += wraps;
    enc->stats.model_frames += (uint64_t)used_model;
    enc->stats.force_frames += (uint64_t)(used_model && use_force);
    enc->stats.cage_frames += (uint64_t)cage;
    *out_len = off;
    return NGL_OK;
}
