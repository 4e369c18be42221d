/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_encoder_choose.c -- the encoder's decisions for a frame: the model
 * (FORMAT.md §3.4, §6.1, §6.7), each block's predictor (the selectors, §3.1),
 * the cage (§6.8, level 3) and the spatial order for atoms without history.
 *
 * None of this is in the decoder, which only reads the outcome; so here the
 * encoder may estimate freely. Everything is judged on a sample of atoms with
 * a cheap cost proxy (about log2 of the residual, cost_bits()), and a choice
 * that sends bytes (a model, a cage table) must pay for them in the
 * estimate. Sampling keeps the decisions a small part of the encoder's time
 * at every level; the estimates only have to rank the candidates, not
 * predict the coded size.
 */
#include "hpc_encoder.h"
#include "hpc_fit.h"

#include <stdlib.h>

/* --------------------------------------------------------------- model */
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

/* Atoms the fit samples: about @p want spread over the frame, each with a
 * full history on all three axes (the taps read HPC_TAPS + 1 entries). */
static size_t fit_samples(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const hist_view *hv,
                          int gathered, unsigned want)
{
    const hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
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
    return m;
}

/* The least-squares rows of the @p m sampled atoms into @p ls and
 * enc->fit_f / fit_y: features are the last HPC_TAPS displacements and, with
 * @p try_force, the force term's knot features, all in lattice units; the
 * target is the move to this frame. @return the number of rows. */
static size_t fit_rows(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                       const hist_view *hv, int gathered, size_t m, int try_force, hpc_ls *ls)
{
    hpc_core *c = &enc->c;
    uint32_t *plist = enc->samples + FIT_SAMPLES_FORCE; /* previous-frame indices */
    for (size_t i = 0; i < m; i++) {
        plist[i] = gathered ? c->pmap[enc->samples[i]] : enc->samples[i];
    }
    if (try_force) {
        hpc_pairfn fn = {.r2lo = c->r2lo, .r2hi = c->r2hi, .nknots = HPC_KNOTS};
        hpc_force_knot_features(&c->cells, c->pos, &fn, plist, m, enc->feat);
    }
    const size_t stride_f = HPC_LS_MAX;
    double *ff = enc->fit_f;
    double *fy = enc->fit_y;
    size_t nv = 0;
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
            hpc_ls_add(ls, fr, (double)y);
            nv++;
        }
    }
    return nv;
}

/* Solve for the taps-only and (with @p try_force) the taps + force model,
 * and keep the cheapest of them and the current model, counting what a new
 * model costs to send. The force term must also cut the taps-only cost by
 * FORCE_MIN_GAIN: it costs the encoder and decoder a pair search per frame. */
static void fit_pick(ngl_hpc_encoder *enc, uint64_t n, hpc_ls *ls, size_t nv, int try_force,
                     hpc_model *m_out, int *send)
{
    hpc_core *c = &enc->c;
    const double *ff = enc->fit_f;
    const double *fy = enc->fit_y;
    double x[HPC_LS_MAX];
    hpc_model cand_taps, cand_force;
    int have_taps = 0, have_force = 0;
    unsigned nfull = ls->n;
    ls->n = HPC_TAPS; /* leading block = taps-only normal equations */
    if (hpc_ls_solve(ls, 1e-9, x) == 0) {
        quantize_model(&cand_taps, x, 0, c);
        have_taps = 1;
    }
    ls->n = nfull;
    if (try_force && hpc_ls_solve(ls, 1e-9, x) == 0) {
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

/*
 * Fit the per-frame model on a sample of atoms with full history and decide
 * whether to send it. Sets *send and *m_out (the model to code this frame with).
 * The state is in frame order; c->pmap gives each atom's previous index.
 */
static void fit_model(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                      const hist_view *hv, int gathered, int try_force, hpc_model *m_out, int *send)
{
    hpc_core *c = &enc->c;
    *send = 0;
    *m_out = c->model;
    size_t m = fit_samples(enc, f, hv, gathered, try_force ? FIT_SAMPLES_FORCE : FIT_SAMPLES);
    if (m < 16) {
        return;
    }
    hpc_ls ls;
    hpc_ls_init(&ls, try_force ? HPC_TAPS + HPC_KNOTS : HPC_TAPS);
    size_t nv = fit_rows(enc, f, g, hv, gathered, m, try_force, &ls);
    fit_pick(enc, f->natoms, &ls, nv, try_force, m_out, send);
}

/* ----------------------------------------------------------- selectors */

/*
 * Pick each block's predictor from the estimated cost of its sampled atoms
 * into @p sel_out. With @p cage, MODEL means the cage (§6.8); otherwise the
 * model @p m. @return the estimated cost of the frame in bits (sampled atoms).
 */
double hpc_enc_choose_selectors(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
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

/*
 * Levels 1-3: fit the frame's model (with the learned force term from level 2
 * on, when it pays), evaluate the force, and pick each block's predictor.
 * @return the estimated cost of the sampled values in bits, their count in
 * *nvalues (try_cage() compares against it).
 */
double hpc_enc_fit_and_choose(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
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
    return hpc_enc_choose_selectors(enc, f, g, hv, model, use_force, SEL_STRIDE, NULL, c->sel,
                                    nvalues);
}

/* ---------------------------------------------------------------- cage */
/* Whether the cage is worth a try this frame: level 3, lossy, a box now and
 * before, not within CAGE_RETRY frames of a failed try, and the typical
 * residual (from the geometric mean of the cost proxy) a fair fraction of
 * the cage's range: a cage locates an atom to a fraction of rc, so it cannot
 * beat a temporal prediction that is already much closer (dumps close in
 * time). Fixes the table's range rc on the first try. */
static int cage_worth_trying(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                             double cost_plain, double nvalues)
{
    hpc_core *c = &enc->c;
    if (c->level < NGL_HPC_LEVEL_BEST || c->lossless || !c->has_box || !g->has_box ||
        c->frame == 0 || c->n == 0 || f->natoms == 0) {
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
    const double typical = nvalues > 0 ? 0.5 * (exp2(cost_plain / nvalues) - 1) * c->step : 0;
    return typical >= CAGE_MIN_MOVE * sqrt(enc->cage_rc2);
}

/* The cage's grids from the previous frame and, when *new_table, a table
 * fitted on this frame's input positions (kept in enc->cage_cur, NaN where
 * not usable). @return 0, or -1 if the cage cannot run this frame. */
static int cage_setup(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                      hpc_cage_params *cp, int *new_table)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    enc->last_cage_try = c->frame;
    if (!c->cells_ok) { /* else the force term's grid computed them this frame */
        hpc_core_prev_positions(c);
    }
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
    if (hpc_cage_begin(&c->cage, cp->rc2, g->lo, g->hi, g->per, c->pos, c->valid, c->n, c->pmap,
                       n) != NGL_OK ||
        (*new_table && hpc_cage_fit_table(&c->cage, cur, n, cp) != 0)) {
        return -1;
    }
    cp->lambda = 1.0f;
    hpc_cage_set_params(&c->cage, cp);
    return 0;
}

/* Descent for the sampled atoms, in coding order; every atom joins the grid
 * at its input position once passed, close to what the decoder will have.
 * *lambda: the least-squares scale of the true displacement on the
 * descent's (§6.8). @return 0, or -1 when there is nothing to fit. */
static int cage_descend_samples(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                                double *lambda)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    const double *cur = enc->cage_cur;
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
                const int got = hpc_cage_descend(&c->cage, k, o, d) == 0;
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
                hpc_cage_insert(&c->cage, k, x);
            }
        }
    }
    if (!(den > 0)) {
        return -1;
    }
    *lambda = num / den;
    return 0;
}

/* The sampled atoms' cage terms with the final lambda, in Q12 lattice units
 * (CAGE_NONE where the descent gave none), for the selector choice. */
static void cage_sample_terms(ngl_hpc_encoder *enc, uint64_t n)
{
    hpc_core *c = &enc->c;
    const double q12 = c->inv_step * (double)(1 << HPC_PRED_SHIFT);
    const uint64_t nblocks = (n + HPC_BLOCK_ATOMS - 1) / HPC_BLOCK_ATOMS;
    for (uint64_t b = 0; b < nblocks; b++) {
        const uint64_t k0 = b * HPC_BLOCK_ATOMS;
        const uint64_t k1 = k0 + HPC_BLOCK_ATOMS < n ? k0 + HPC_BLOCK_ATOMS : n;
        const uint64_t step = sel_step(k0, k1, SEL_STRIDE);
        for (uint64_t k = k0; k < k1; k += step) {
            if (cage_eligible(c, c->valid, k)) {
                const double *d = enc->cage_disp + 3 * k;
                for (unsigned a = 0; a < 3; a++) {
                    enc->cage_fx[3 * k + a] =
                        isnan(d[0]) ? CAGE_NONE : hpc_cage_fixed(&c->cage, d[a], q12);
                }
            }
        }
    }
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
int hpc_enc_try_cage(ngl_hpc_encoder *enc, const ngl_hpc_frame *f, const frame_geom *g,
                     const hist_view *hv, const hpc_model *m, double cost_plain, double nvalues,
                     double need, hpc_cage_params *cp, int *new_table)
{
    hpc_core *c = &enc->c;
    const uint64_t n = f->natoms;
    if (!cage_worth_trying(enc, f, g, cost_plain, nvalues) ||
        cage_setup(enc, f, g, cp, new_table) != 0) {
        return 0;
    }
    double lambda;
    if (cage_descend_samples(enc, f, g, &lambda) != 0) {
        return 0;
    }
    lambda = lambda < 0.25 ? 0.25 : (lambda > 2.0 ? 2.0 : lambda);
    cp->lambda = (float)lambda;
    hpc_cage_set_params(&c->cage, cp);
    cage_sample_terms(enc, n);
    const cage_choice cc = {.fx = enc->cage_fx, .valid = c->valid};
    double cost =
        hpc_enc_choose_selectors(enc, f, g, hv, m, 0, SEL_STRIDE, &cc, enc->cage_sel, NULL);
    /* The sampled costs scaled to the frame, with what the cage sends: lambda,
     * and a new table spread over the frames it will serve. */
    const double scale = (double)(3 * n) / nvalues;
    const double extra = 8.0 * (HPC_CAGE_LAMBDA_SECTION +
                                (*new_table ? (double)HPC_CAGE_TABLE_SECTION / CAGE_REFIT : 0));
    if (!(cost * scale + extra < need * cost_plain * scale)) {
        return 0;
    }
    const uint64_t nblocks = (n + HPC_BLOCK_ATOMS - 1) / HPC_BLOCK_ATOMS;
    memcpy(c->sel, enc->cage_sel, (size_t)nblocks);
    hpc_cage_reset_new(&c->cage);
    return 1;
}

/* ------------------------------------------------------- spatial order */
/* Whether the atoms without history code better with the second-order
 * spatial delta (SPATIAL2), judged on up to 4096 of them. age[v * stride]
 * (bytes) is the age of value v's last entry. */
int hpc_enc_choose_spatial2(const hpc_core *c, const ngl_hpc_frame *f, uint64_t n,
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
