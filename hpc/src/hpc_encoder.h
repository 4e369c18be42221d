/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_encoder.h -- private to the hpc stream encoder; never installed.
 *
 * The encoder is three rooms around one state, struct ngl_hpc_encoder:
 *
 *   hpc_encoder.c         the API, the scratch, and the frame driver:
 *                         ngl_hpc_encoder_encode() writes a frame record
 *                         (FORMAT.md §3.1) as one function per section
 *   hpc_encoder_choose.c  the per-frame decisions: fit the model (with the
 *                         learned force term), pick each block's predictor,
 *                         try the cage (level 3), pick the spatial order
 *   hpc_encoder_values.c  the closed-loop state per value (the ring of
 *                         hpc_core, or the lean arrays of levels 0-1) and the
 *                         two coding passes over the values
 *
 * The decisions only estimate (on samples, with a cost proxy); the passes
 * are what the decoder mirrors bit for bit. The inline helpers below are
 * shared by both and sit on their hot paths.
 */
#ifndef NGL_HPC_ENCODER_H
#define NGL_HPC_ENCODER_H

#include "hpc_core.h"
#include "hpc_lean.h"

#if defined(NGL_HAVE_ZSTD)
#include <zstd.h>
#endif

#define FIT_SAMPLES         256u /* atoms sampled for the taps-only fit */
#define FIT_SAMPLES_FORCE   384u /* atoms sampled when the force term is tried */
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

/* Atoms of block [k0, k1) sampled for the predictor choice: every step-th
 * from k0, where step is @p stride for a full block (SEL_STRIDE, or
 * SEL_STRIDE_LEAN at level 0 where sampling is a visible cost), SEL_STRIDE or
 * 1 for a short one. */
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

/* Atom k has a previous position for the cage's descent to start from. */
static inline int cage_eligible(const hpc_core *c, const uint8_t *valid, uint64_t k)
{
    const uint32_t p = c->pmap[k];
    return p != HPC_NONE && valid[p];
}

/* ------------------------------------------------ hpc_encoder_values.c */
void hpc_lean_state_free(lean_state *L);
ngl_status hpc_lean_state_reserve(lean_state *L, uint64_t nvals);
/* The previous frame's state in this frame's atom order (pmap). */
void hpc_lean_state_gather(lean_state *L, const uint32_t *pmap, uint64_t n);
/* After a frame: the array its new entries went to becomes q_1. */
void hpc_lean_state_rotate(lean_state *L);
/* Pass 1 (quantize, bound check, prediction, residual; FORMAT.md §6) over
 * the ring state RW (levels 2-3) or the lean state (levels 0-1). */
void hpc_enc_quantize_ring(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                           hpc_ent *RW, const hpc_model *model, int use_force, int cage);
void hpc_enc_quantize_lean(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g);
/* Pass 2, serial: wrap symbols, tokens, raw bits (§5, §6.3). */
void hpc_enc_code_values(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, int spatial2, hpc_bitw *raw,
                         uint8_t *mag_at, size_t mag_stride, uint64_t *exact_count,
                         uint64_t *wraps);

/* ------------------------------------------------ hpc_encoder_choose.c */
/* Pick each block's predictor from the estimated cost of its sampled atoms
 * into @p sel_out. With @p cage, MODEL means the cage (§6.8); otherwise the
 * model @p m. @return the estimated cost of the frame in bits (sampled
 * atoms), their count in *nvalues. */
double hpc_enc_choose_selectors(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                                const hist_view *hv, const hpc_model *m, int use_force,
                                uint64_t stride, const cage_choice *cage, uint8_t *sel_out,
                                double *nvalues);
/* Levels 1-3: fit the model (with the force term from level 2 on, when it
 * pays), evaluate the force, pick the selectors. @return as above. */
double hpc_enc_fit_and_choose(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                              const hist_view *hv, int gathered, hpc_model *model, int *send_model,
                              double *nvalues);
/* Level 3: whether the cage codes this frame (c->sel and *cp then set). */
int hpc_enc_try_cage(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                     const hist_view *hv, const hpc_model *m, double cost_plain, double nvalues,
                     double need, hpc_cage_params *cp, int *new_table);
/* Whether atoms without history code better with the 2nd-order spatial delta. */
int hpc_enc_choose_spatial2(const hpc_core *c, const ngl_hpc_frame *f, uint64_t n,
                            const uint8_t *age, size_t stride);

#endif /* NGL_HPC_ENCODER_H */
