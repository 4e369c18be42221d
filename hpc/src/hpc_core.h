/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_core.h -- the closed-loop state shared by the hpc encoder and decoder,
 * and the per-value logic both must run identically: predictors, contexts,
 * the periodic-wrap test and the reconstruction formula. hpc/FORMAT.md §5-6
 * describes the same thing normatively.
 */
#ifndef NGL_HPC_CORE_H
#define NGL_HPC_CORE_H

#include "hpc_cage.h"
#include "hpc_force.h"
#include "hpc_internal.h"
#include "hpc_rans.h"

#include <math.h>

/* One history entry of one coordinate (16 bytes). */
typedef struct hpc_ent {
    int64_t q;    /* lattice value of the unwrapped coordinate (lossless: ordered bits) */
    int32_t img;  /* periodic image count: unwrapped = wrapped + img * (hi - lo) */
    uint16_t mag; /* min(|residual|, 65535) of this entry */
    uint8_t age;  /* consecutive valid entries ending here, capped at 255; 0 = none */
    uint8_t pad;
} hpc_ent;

typedef struct hpc_model {
    int valid;
    int16_t taps[HPC_TAPS]; /* Q12 weights of the last HPC_TAPS displacements */
    hpc_pairfn fn;          /* fn.nknots == 0: no force term */
} hpc_model;

/* contexts */
#define HPC_CTX_TEMPORAL 0u   /* 132 temporal token contexts */
#define HPC_CTX_SPATIAL  132u /* 12 spatial token contexts */
#define HPC_CTX_WRAP     144u /* 4 binary wrap contexts */
#define HPC_NCTX         148u
#define HPC_PC_INT       4u /* prediction class of the integer predictors */
#define HPC_OB_NONE      3u /* no other-axis information */

#define HPC_NONE UINT32_MAX

/* vinfo bits of the coding passes (not part of the format) */
#define HPC_VI_MB       0x000Fu /* magnitude bucket of the last residual */
#define HPC_VI_SPATIAL  0x000Fu /* ... all ones: no history, spatial predictor */
#define HPC_VI_PC_SHIFT 4       /* prediction class, 3 bits */
#define HPC_VI_W_SHIFT  7       /* wrap context + 1, 3 bits (0: no wrap symbol) */
#define HPC_VI_WRAP     0x0400u /* the image changed */
#define HPC_VI_EXACT    0x0800u /* value stored bit for bit */
#define HPC_VI_DOWN     0x1000u /* a wrap would lower the image (decoder) */
#define HPC_VI_CODED    0x2000u /* temporal, not exact, token context and token in the code array */

/* The code word of an HPC_VI_CODED value (encoder): token context, token,
 * raw-bit count, and the magnitude bucket of its residual (for the next
 * axis' context). */
#define HPC_CODE(ci, tok, nraw, bucket)                                                            \
    ((uint32_t)(ci) | ((uint32_t)(tok) << 8) | ((uint32_t)(nraw) << 16) |                          \
     ((uint32_t)(bucket) << 24))

typedef struct hpc_idmap {
    int64_t *key;
    uint32_t *val;
    uint32_t *stamp;
    uint32_t gen;
    size_t cap; /* power of two */
} hpc_idmap;

typedef struct hpc_core {
    /* stream parameters */
    ngl_hpc_dtype dtype;
    int level;
    int lossless;
    double eps, rel, step, inv_step;
    int configured; /* stream parameters known */
    int no_ring;    /* the owner keeps the history elsewhere (level-0 encoder): no ring */

    /* state after the last frame */
    uint64_t frame; /* frames done */
    uint64_t n;     /* atoms in the last frame */
    int64_t *ids;   /* their ids */
    int ids_identity;
    hpc_ent *ring; /* n * 3 values * HPC_HIST entries */
    unsigned head; /* ring slot of the last frame */
    int has_box;
    double lo[3], hi[3];
    uint8_t per[3];
    hpc_model model;
    double r2lo, r2hi; /* force knot range, fixed once chosen (0 = not yet) */
    hpc_ctx *ctx;      /* HPC_NCTX */

    /* capacity and per-frame scratch (sizes follow cap) */
    uint64_t cap;
    hpc_ent *ring_alt; /* gathered state when ids change */
    uint32_t *pmap;    /* previous position of each atom of the frame, or HPC_NONE */
    double *pos;       /* previous frame positions (physical) */
    uint8_t *valid;    /* previous frame atoms usable for the force term */
    int64_t *F;        /* force term of the previous frame's atoms (Q12 lattice units) */
    int64_t *Fcur;     /* the same, in this frame's order */
    uint8_t *sel;      /* per block predictor */
    int64_t *vres;     /* per value scratch of the coding passes */
    uint16_t *vinfo;
    hpc_idmap prev_map, new_map;
    uint32_t *stamp; /* previous positions used (decoder validation) */
    uint32_t stamp_gen;
    hpc_cells cells;
    int cells_ok;          /* cells built for the previous frame this call */
    hpc_cage cage;         /* the cage predictor's grids (level 3 frames) */
    hpc_cage_params cagep; /* the last cage table sent (lambda is per frame) */
    int cage_have;         /* cagep holds a table */
} hpc_core;

ngl_status hpc_core_init(hpc_core *c);
void hpc_core_free(hpc_core *c);
/* Set the bound and the lattice step (0 < step <= 2 eps), or lossless when
 * eps == 0 or step == 0. */
void hpc_core_set_eps(hpc_core *c, double eps, double step);
/* The step the encoder uses for bound @p eps when the coordinates reach about
 * @p mag in magnitude: 2 eps, less a sliver for the reconstruction's own
 * rounding (1/4096 of eps, plus the dtype's half-ulp at twice @p mag), so that
 * the bound check rarely fails on the last bit. 0 when eps is too small for
 * the dtype to resolve (then the stream is lossless). */
double hpc_step_for(double eps, double mag, ngl_hpc_dtype dt);
/* Grow every per-atom array to hold @p n atoms; state is preserved. */
ngl_status hpc_core_reserve(hpc_core *c, uint64_t n);

ngl_status hpc_idmap_reset(hpc_idmap *m, uint64_t n);
void hpc_idmap_free(hpc_idmap *m);
/* @return 0, or -1 if @p key is already present. */
int hpc_idmap_insert(hpc_idmap *m, int64_t key, uint32_t val);
uint32_t hpc_idmap_find(const hpc_idmap *m, int64_t key);
/* Map of the previous frame's ids (built on demand). */
ngl_status hpc_core_prev_map(hpc_core *c);

/* Gather the previous state into frame order (pmap) in ring_alt; atoms with
 * pmap == HPC_NONE start without history. */
void hpc_core_gather(hpc_core *c, uint64_t n);

/* Positions and validity of the previous frame's atoms, for the force term. */
void hpc_core_prev_positions(hpc_core *c);
/* Build cells for the previous frame (sets cells_ok). @return NGL_OK or UNSUPPORTED. */
ngl_status hpc_core_build_cells(hpc_core *c);
/* Force of the current model for the previous frame, gathered to frame order (Fcur). */
void hpc_core_force(hpc_core *c, uint64_t n, int gathered);

/* Write the decoded values' CRC helper: CRC32C of @p n doubles or floats as LE bytes. */
uint32_t hpc_values_crc(const void *vals, uint64_t nvals, ngl_hpc_dtype dt);

/* ---------------------------------------------------------------- inline */
static inline const hpc_ent *hpc_hist(const hpc_ent *rv, unsigned head, unsigned k)
{
    /* k = 1: the last frame's entry */
    return &rv[(head + HPC_HIST + 1 - k) % HPC_HIST];
}

static inline int64_t hpc_clamp_d(int64_t d)
{
    return hpc_clamp_i64(d, (int64_t)1 << 31);
}

/* The integer predictors (every selector but a usable MODEL) of a value with
 * @p age >= 1 entries of history q1, q2, q3 (those beyond age are ignored). */
static inline int64_t hpc_predict_int(unsigned sel, unsigned age, int64_t q1, int64_t q2,
                                      int64_t q3)
{
    if (age >= 2 && sel != HPC_SEL_ORDER0) {
        if (sel == HPC_SEL_ORDER2 && age >= 3) {
            /* 3 q1 - 3 q2 + q3, wrapping */
            uint64_t v = 3u * (uint64_t)q1 - 3u * (uint64_t)q2 + (uint64_t)q3;
            return (int64_t)v;
        }
        return hpc_wsub(hpc_wadd(q1, q1), q2);
    }
    return q1;
}

/* The MODEL prediction (FORMAT.md §6.1) from the last HPC_TAPS + 1 lattice
 * values q[0] = q_1 ... q[HPC_TAPS] = q_7 and the force term @p f_fx; *pc
 * gets the prediction class (the quarter of the fractional part). */
static inline int64_t hpc_predict_model(const hpc_model *m, const int64_t *q, int64_t f_fx,
                                        unsigned *pc)
{
    int64_t acc = 0;
    for (unsigned k = 1; k <= HPC_TAPS; k++) {
        acc += (int64_t)m->taps[k - 1] * hpc_clamp_d(hpc_wsub(q[k - 1], q[k]));
    }
    if (m->fn.nknots) {
        acc += hpc_clamp_i64(f_fx, (int64_t)1 << 52);
    }
    acc += (int64_t)1 << (HPC_PRED_SHIFT - 1);
    *pc = (unsigned)(((uint64_t)acc & ((1u << HPC_PRED_SHIFT) - 1)) >> (HPC_PRED_SHIFT - 2));
    return hpc_wadd(q[0], hpc_floor_shift(acc, HPC_PRED_SHIFT));
}

/* The cage prediction (FORMAT.md §6.8) from q_1 and the cage term @p f_fx
 * (Q12 lattice units); *pc as for the model. */
static inline int64_t hpc_predict_cage(int64_t q1, int64_t f_fx, unsigned *pc)
{
    const int64_t acc = f_fx + ((int64_t)1 << (HPC_PRED_SHIFT - 1));
    *pc = HPC_PC_INT; /* its residuals are as wide as ORDER0's: share their contexts */
    return hpc_wadd(q1, hpc_floor_shift(acc, HPC_PRED_SHIFT));
}

/* Temporal prediction of one value with @p age >= 1 entries of history.
 * @p f_fx is the force term (Q12 lattice units; used by a model with knots).
 * *pc receives the prediction class: 0-3 the quarter of the fractional part
 * for the model, HPC_PC_INT for the integer predictors. */
static inline int64_t hpc_predict(const hpc_ent *rv, unsigned head, unsigned sel, unsigned age,
                                  const hpc_model *m, int64_t f_fx, unsigned *pc)
{
    const int64_t q1 = hpc_hist(rv, head, 1)->q;
    if (sel == HPC_SEL_MODEL && m->valid && age >= HPC_TAPS + 1) {
        int64_t q[HPC_TAPS + 1];
        for (unsigned k = 0; k <= HPC_TAPS; k++) {
            q[k] = hpc_hist(rv, head, k + 1)->q;
        }
        return hpc_predict_model(m, q, f_fx, pc);
    }
    *pc = HPC_PC_INT;
    const int64_t q2 = age >= 2 ? hpc_hist(rv, head, 2)->q : 0;
    const int64_t q3 = age >= 3 ? hpc_hist(rv, head, 3)->q : 0;
    return hpc_predict_int(sel, age, q1, q2, q3);
}

static inline unsigned hpc_ctx_temporal(unsigned mb, unsigned ob, unsigned pc)
{
    /* both forms computed, one selected: mb is unpredictable on smooth data */
    const unsigned lo = (mb * 4 + ob) * 5 + pc;
    const unsigned hi = 60 + ((mb - 3) * 4 + ob) * 2 + (pc == HPC_PC_INT);
    return HPC_CTX_TEMPORAL + (mb <= 2 ? lo : hi);
}

/* Other-axis context: how the previous axis' residual of this atom compares
 * (below 0, equal 1, above 2; HPC_OB_NONE without one). */
static inline unsigned hpc_ob(int have_prev_axis, unsigned prev_axis_bucket, unsigned mb)
{
    const unsigned cmp = (prev_axis_bucket >= mb) + (prev_axis_bucket > mb);
    return have_prev_axis ? cmp : HPC_OB_NONE;
}

/* One periodic axis of the current frame in lattice units: the box bounds
 * and length divided by the lattice step (FORMAT.md §6.4). */
typedef struct hpc_waxis {
    double loq, hiq, lenq;
} hpc_waxis;

static inline hpc_waxis hpc_waxis_make(double lo, double hi, double inv_step)
{
    hpc_waxis w = {lo * inv_step, hi * inv_step, (hi - lo) * inv_step};
    return w;
}

/* Periodic wrap test on the prediction @p p (lattice units, unwrapped with
 * image @p img). @return the wrap context (0-3) when the predicted position is
 * close enough to a face for the atom to cross it, with *dimg the image
 * change a crossing implies (+1 at the upper face); -1 otherwise. */
static inline int hpc_wrap_ctx(int64_t p, int32_t img, const hpc_waxis *w, unsigned mag, int *dimg)
{
    const double u = (double)p - (double)img * w->lenq;
    const double dhi = w->hiq - u;
    const double dlo = u - w->loq;
    const int up = dhi < dlo;
    const double d = up ? dhi : dlo;
    *dimg = up ? 1 : -1;
    const double typ = mag < 2 ? 2.0 : (double)mag;
    /* Without branches (the test is unpredictable on coarse dumps):
     * d < 0 -> 0, d < typ -> 1, d < 3 typ -> 2, else 3; typ > 0. */
    const int ctx = (d >= 0) + (d >= typ) + (d >= 3 * typ);
    return d < 16.0 + 8.0 * typ ? ctx : -1;
}

/* The reconstruction formula (lossy mode), in double. */
static inline double hpc_recon(int64_t q, int32_t img, double step, double len)
{
    return (double)q * step - (double)img * len;
}

/* Token of a zigzagged residual: 0-7 direct, then 4 tokens per power of two.
 * *nraw / *raw: the bits sent raw. */
static inline unsigned hpc_token(uint64_t z, unsigned *nraw, uint64_t *raw)
{
    /* without branches: whether z < 8 is unpredictable on smooth data */
    const unsigned e = hpc_bitlen(z | 1) - 1; /* floor(log2 z); >= 3 when big */
    const int big = z >= HPC_TOK_DIRECT;
    const unsigned sh = big ? e - 2 : 0;
    *nraw = sh;
    *raw = z & (((uint64_t)1 << sh) - 1);
    const unsigned tok = HPC_TOK_DIRECT + (e - 3) * 4 + ((unsigned)(z >> sh) & 3u);
    return big ? tok : (unsigned)z;
}

/* Inverse of hpc_token: @return the number of raw bits that follow, and the
 * high part of z in *zhi (z = *zhi | raw). Token must be < HPC_TOK_EXACT. */
static inline unsigned hpc_token_base(unsigned tok, uint64_t *zhi)
{
    if (tok < HPC_TOK_DIRECT) {
        *zhi = tok;
        return 0;
    }
    unsigned e = 3 + (tok - HPC_TOK_DIRECT) / 4;
    unsigned m = (tok - HPC_TOK_DIRECT) % 4;
    *zhi = (uint64_t)(4u | m) << (e - 2);
    return e - 2;
}

static inline uint16_t hpc_mag_of(uint64_t z)
{
    uint64_t a = (z >> 1) + (z & 1); /* |r| */
    return a > 65535 ? 65535 : (uint16_t)a;
}

#endif /* NGL_HPC_CORE_H */
