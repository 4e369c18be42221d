/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_cage.c -- the cage predictor (hpc_cage.h, FORMAT.md §6.8).
 *
 * Bit-exactness: everything is plain IEEE double arithmetic (+ - * / sqrt,
 * correctly rounded; compiled without FMA contraction), and each per-pair
 * term is rounded to a multiple of 2^-30 (energy) or 2^-20 (gradient) before
 * it is summed. The rounded terms are integers times a power of two and their
 * sums stay below 2^53 of them, so every sum is exact: the result does not
 * depend on the order the neighbours are found in, and encoder and decoder
 * need only agree on the neighbour set. That leaves the grids free to be laid
 * out for speed.
 */
#include "hpc_cage_isa.h" /* hpc_cage.h, the helpers the AVX2 kernels share */

#include "ngl_cpu.h"

#include <math.h>
#include <stdlib.h>

/* Descent constants, in units of the table range rc (FORMAT.md §6.8). */
#define CAGE_STEP_CAP 0.05   /* largest move per step */
#define CAGE_MAX_DISP 0.3    /* farthest the descent may go */
#define CAGE_STEP0    0.0016 /* first gradient step */
#define CAGE_GROW     1.2    /* step after an accepted move */
#define CAGE_SHRINK   0.5    /* step after a rejected one */
#define CAGE_SLACK    4u     /* slab room per cell beyond the previous frame's count */
/* Table fit (encoder only) */
#define CAGE_MIN_PAIRS  8u  /* pairs a table bin needs to be estimated */
#define CAGE_CORE_SLOPE 2.0 /* energy rise per bin inside the unvisited core */

static inline uint64_t cage_cell_of(const hpc_cage *g, const double x[3])
{
    int64_t ix = cage_cell_coord(g, 0, x[0]), iy = cage_cell_coord(g, 1, x[1]),
            iz = cage_cell_coord(g, 2, x[2]);
    return (uint64_t)((iz * g->nc[1] + iy) * g->nc[0] + ix);
}

static int cage_simd_off; /* test hook: hpc_cage_use_simd(0) */

void hpc_cage_init(hpc_cage *g)
{
    memset(g, 0, sizeof(*g));
}

void hpc_cage_free(hpc_cage *g)
{
    free(g->ostart);
    free(g->ox);
    free(g->oy);
    free(g->oz);
    free(g->olater);
    free(g->prev_later);
    free(g->ocell);
    free(g->nstart);
    free(g->ncount);
    free(g->nx);
    free(g->ny);
    free(g->nz);
    free(g->nover);
    free(g->nnext);
    free(g->npos);
    memset(g, 0, sizeof(*g));
}

static int grow(void **p, size_t want, size_t elem)
{
    if (want == 0) {
        want = 1;
    }
    if (want > SIZE_MAX / elem) {
        return -1;
    }
    void *q = realloc(*p, want * elem);
    if (q == NULL) {
        return -1;
    }
    *p = q;
    return 0;
}

/* Grow the arrays of one capacity class to @p want elements. */
static int grow_all(size_t *cap, size_t want, void **a, size_t ea, void **b, size_t eb, void **c,
                    size_t ec, void **d, size_t ed)
{
    if (want <= *cap && *a != NULL) {
        return 0;
    }
    if (grow(a, want, ea) || (b && grow(b, want, eb)) || (c && grow(c, want, ec)) ||
        (d && grow(d, want, ed))) {
        return -1;
    }
    *cap = want;
    return 0;
}

ngl_status hpc_cage_begin(hpc_cage *g, double rc2, const double lo[3], const double hi[3],
                          const int per[3], const double *pos, const uint8_t *valid, uint64_t nprev,
                          const uint32_t *pmap, uint64_t n)
{
    if (!(rc2 > 0) || !isfinite(rc2) || nprev >= HPC_CAGE_END || n >= HPC_CAGE_END) {
        return NGL_ERR_UNSUPPORTED;
    }
    g->rc = sqrt(rc2);
    g->inv_rc = 1.0 / g->rc;
#if defined(HPC_HAVE_AVX2)
    g->avx2 = !cage_simd_off && ngl_cpu_has(NGL_CPU_AVX2);
#else
    g->avx2 = 0;
#endif
    const double rg = g->rc * CAGE_REACH;
    for (int a = 0; a < 3; a++) {
        double len = hi[a] - lo[a];
        if (!(len > 0) || !isfinite(len)) {
            return NGL_ERR_UNSUPPORTED;
        }
        double ncd = floor(len / rg);
        g->per[a] = per[a] != 0;
        if (g->per[a] && !(ncd >= 3)) {
            return NGL_ERR_UNSUPPORTED; /* the 27-cell stencil would see a cell twice */
        }
        g->nc[a] = ncd < 1 ? 1 : (ncd > 1024 ? 1024 : (int)ncd);
        g->lo[a] = lo[a];
        g->len[a] = len;
        g->half[a] = 0.5 * len;
        g->inv_w[a] = g->nc[a] / len;
    }
    /* At most about two cells per atom: sparse systems get coarser cells. */
    if (hpc_grid_fit(g->nc, g->per, g->len, g->inv_w, (nprev > n ? nprev : n) * 2 + 27,
                     &g->ncells) != 0) {
        return NGL_ERR_UNSUPPORTED;
    }
    const size_t ncell = (size_t)g->ncells;
    const size_t slab = (size_t)nprev + (size_t)CAGE_SLACK * ncell;
    if (grow_all(&g->cap_ostart, ncell + 1, (void **)&g->ostart, 4, (void **)&g->nstart, 4,
                 (void **)&g->ncount, 4, (void **)&g->nover, 4) ||
        grow_all(&g->cap_o, (size_t)nprev + 4, (void **)&g->ox, 8, (void **)&g->oy, 8,
                 (void **)&g->oz, 8, (void **)&g->olater, 4) ||
        grow_all(&g->cap_ocell, (size_t)nprev, (void **)&g->prev_later, 4, (void **)&g->ocell, 4,
                 NULL, 0, NULL, 0) ||
        grow_all(&g->cap_slab, slab + 4, (void **)&g->nx, 8, (void **)&g->ny, 8, (void **)&g->nz, 8,
                 NULL, 0) ||
        grow_all(&g->cap_n, (size_t)n, (void **)&g->nnext, 4, (void **)&g->npos, 24, NULL, 0, NULL,
                 0)) {
        return NGL_ERR_NO_MEMORY;
    }
    g->old_pos = pos;
    /* Previous atoms still present, counting-sorted by cell (stable). */
    uint32_t *later = g->prev_later;
    for (uint64_t i = 0; i < nprev; i++) {
        later[i] = HPC_CAGE_END;
    }
    for (uint64_t k = 0; k < n; k++) {
        if (pmap[k] != HPC_CAGE_END && pmap[k] < nprev) {
            later[pmap[k]] = (uint32_t)k;
        }
    }
    memset(g->ostart, 0, (ncell + 1) * sizeof(uint32_t));
    for (uint64_t i = 0; i < nprev; i++) {
        uint32_t c = HPC_CAGE_END;
        if (valid[i] && later[i] != HPC_CAGE_END) {
            c = (uint32_t)cage_cell_of(g, pos + 3 * i);
            g->ostart[c + 1]++;
        }
        g->ocell[i] = c;
    }
    for (size_t c = 0; c < ncell; c++) {
        g->ostart[c + 1] += g->ostart[c];
        g->nstart[c] = g->ostart[c] + (uint32_t)(CAGE_SLACK * c); /* before the fill moves it */
    }
    for (uint64_t i = 0; i < nprev; i++) {
        uint32_t c = g->ocell[i];
        if (c != HPC_CAGE_END) {
            uint32_t s = g->ostart[c]++;
            g->ox[s] = pos[3 * i];
            g->oy[s] = pos[3 * i + 1];
            g->oz[s] = pos[3 * i + 2];
            g->olater[s] = later[i];
        }
    }
    for (size_t c = ncell; c > 0; c--) {
        g->ostart[c] = g->ostart[c - 1];
    }
    g->ostart[0] = 0;
    hpc_cage_reset_new(g);
    return NGL_OK;
}

void hpc_cage_set_params(hpc_cage *g, const hpc_cage_params *p)
{
    for (unsigned k = 0; k <= HPC_CAGE_KNOTS; k++) {
        g->W[k] = (double)p->w[k];
        g->V[k] = (double)p->v[k];
    }
    g->lambda = (double)p->lambda;
    g->iters = p->iters;
}

void hpc_cage_reset_new(hpc_cage *g)
{
    for (uint64_t c = 0; c < g->ncells; c++) {
        g->ncount[c] = 0;
        g->nover[c] = HPC_CAGE_END;
    }
}

void hpc_cage_insert(hpc_cage *g, uint64_t k, const double x[3])
{
    const uint64_t c = cage_cell_of(g, x);
    const uint32_t room = g->ostart[c + 1] - g->ostart[c] + CAGE_SLACK;
    if (g->ncount[c] < room) {
        const uint32_t s = g->nstart[c] + g->ncount[c]++;
        g->nx[s] = x[0];
        g->ny[s] = x[1];
        g->nz[s] = x[2];
    } else {
        double *p = g->npos + 3 * k;
        p[0] = x[0];
        p[1] = x[1];
        p[2] = x[2];
        g->nnext[k] = g->nover[c];
        g->nover[c] = (uint32_t)k;
    }
}

/* The cage of atom k around o, relative to o in units of rc: this frame's
 * inserted atoms (g->nb_new) and the previous atoms that come after k
 * (g->nb_old). @return the total count (possibly beyond the buffers). */
static unsigned gather(hpc_cage *g, uint64_t k, const double o[3])
{
#if defined(HPC_HAVE_AVX2)
    if (g->avx2) {
        return hpc_cage_gather_avx2(g, k, o);
    }
#endif
    uint64_t cells[27];
    const unsigned ncl = cage_gather_begin(g, o, cells);
    hpc_cage_nbs *nn = &g->nb_new, *no = &g->nb_old;
    for (unsigned i = 0; i < ncl; i++) {
        const uint64_t c = cells[i];
        for (uint32_t s = g->nstart[c], e = s + g->ncount[c]; s < e; s++) {
            cage_keep(g, nn, o, g->nx[s], g->ny[s], g->nz[s]);
        }
        cage_keep_overflow(g, o, c);
        for (uint32_t s = g->ostart[c], e = g->ostart[c + 1]; s < e; s++) {
            if (g->olater[s] > k) {
                cage_keep(g, no, o, g->ox[s], g->oy[s], g->oz[s]);
            }
        }
    }
    return nn->m + no->m;
}

/*
 * Energy of the atom at displacement x (units of rc) from its old position,
 * and its gradient, over the m neighbours (m a multiple of 4; the padding
 * sits far away), in fixed point (CAGE_E_SCALE, CAGE_G_SCALE units). Pairs beyond rc
 * count zero (a select, not a branch: about half of the neighbours are).
 */
static inline double energy(const double *W, const hpc_cage_nbs *set, const double x[3],
                            double grad[3])
{
    const unsigned m = set->m;
    double e[4] = {0, 0, 0, 0}, gx[4] = {0, 0, 0, 0}, gy[4] = {0, 0, 0, 0}, gz[4] = {0, 0, 0, 0};
    for (unsigned j = 0; j < m; j += 4) {
        for (unsigned l = 0; l < 4; l++) {
            double dx = x[0] - set->x[j + l], dy = x[1] - set->y[j + l], dz = x[2] - set->z[j + l];
            double r2 = dx * dx + dy * dy + dz * dz;
            /* 1 inside rc, else 0; r2 is finite, so 0 * anything here is 0 */
            const double in = (double)(r2 < 1.0);
            double t = (r2 * in) * (double)HPC_CAGE_KNOTS;
            int i = (int)t;
            i -= i >> 6; /* t < 64 except for rounding at the edge: 64 -> 63 */
            double w0 = W[i], dw = W[i + 1] - W[i];
            double ev = (w0 + (t - (double)i) * dw) * in;
            double sv = (2.0 * (double)HPC_CAGE_KNOTS * dw) * in;
            e[l] += cage_fixed(ev, CAGE_E_SCALE);
            gx[l] += cage_fixed(sv * dx, CAGE_G_SCALE);
            gy[l] += cage_fixed(sv * dy, CAGE_G_SCALE);
            gz[l] += cage_fixed(sv * dz, CAGE_G_SCALE);
        }
    }
    grad[0] = ((gx[0] + gx[1]) + (gx[2] + gx[3])) * (1.0 / CAGE_G_SCALE);
    grad[1] = ((gy[0] + gy[1]) + (gy[2] + gy[3])) * (1.0 / CAGE_G_SCALE);
    grad[2] = ((gz[0] + gz[1]) + (gz[2] + gz[3])) * (1.0 / CAGE_G_SCALE);
    return (e[0] + e[1]) + (e[2] + e[3]);
}

void hpc_cage_use_simd(int on)
{
    cage_simd_off = !on;
}

static inline double energy_set(const hpc_cage *g, const double *W, const hpc_cage_nbs *set,
                                const double x[3], double grad[3])
{
#if defined(HPC_HAVE_AVX2)
    if (g->avx2) {
        return hpc_cage_energy_avx2(W, set, x, grad);
    }
#else
    (void)g;
#endif
    return energy(W, set, x, grad);
}

/* The whole cage: new neighbours on table W, old ones on table V. Both parts
 * are exact fixed-point sums, so their sum is too. */
static inline double energy_any(const hpc_cage *g, const double x[3], double grad[3])
{
    double gn[3], go[3];
    double e = energy_set(g, g->W, &g->nb_new, x, gn) + energy_set(g, g->V, &g->nb_old, x, go);
    for (int a = 0; a < 3; a++) {
        grad[a] = gn[a] + go[a];
    }
    return e;
}

/* Pad a set to a multiple of 4 with neighbours beyond rc from anywhere the
 * descent goes. */
static inline void pad(hpc_cage_nbs *set)
{
    for (; set->m % 4 != 0; set->m++) {
        set->x[set->m] = set->y[set->m] = set->z[set->m] = 1e6;
    }
}

int hpc_cage_descend(hpc_cage *g, uint64_t k, const double origin[3], double disp[3])
{
    if (gather(g, k, origin) > HPC_CAGE_MAX_NB - 4) {
        return -1;
    }
    pad(&g->nb_new);
    pad(&g->nb_old);
    double x[3] = {0, 0, 0}, G[3];
    double E = energy_any(g, x, G);
    double s = CAGE_STEP0;
    for (unsigned it = 0; it < g->iters; it++) {
        double d[3] = {-s * G[0], -s * G[1], -s * G[2]};
        double n2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        if (n2 > CAGE_STEP_CAP * CAGE_STEP_CAP) {
            double f = CAGE_STEP_CAP / sqrt(n2);
            d[0] *= f;
            d[1] *= f;
            d[2] *= f;
        }
        double xn[3] = {x[0] + d[0], x[1] + d[1], x[2] + d[2]};
        double Gn[3];
        double En = 0;
        int ok = xn[0] * xn[0] + xn[1] * xn[1] + xn[2] * xn[2] <= CAGE_MAX_DISP * CAGE_MAX_DISP;
        if (ok) {
            En = energy_any(g, xn, Gn);
            ok = En < E;
        }
        if (ok) {
            memcpy(x, xn, sizeof(x));
            memcpy(G, Gn, sizeof(G));
            E = En;
            s *= CAGE_GROW;
        } else {
            s *= CAGE_SHRINK;
        }
    }
    for (int a = 0; a < 3; a++) {
        disp[a] = x[a] * g->rc;
    }
    return 0;
}

int64_t hpc_cage_fixed(const hpc_cage *g, double disp, double q12_per_unit)
{
    double v = g->lambda * disp * q12_per_unit;
    const double lim = 0x1p52;
    if (!(v > -lim)) {
        return -((int64_t)1 << 52);
    }
    if (v > lim) {
        return (int64_t)1 << 52;
    }
    return hpc_floor_i64(v + 0.5);
}

/* Pairs of (a, each grid atom other than skip(a)) closer than rc, by bin of
 * r^2 / rc^2, into h. */
static void count_pairs(const hpc_cage *g, const double o[3], uint32_t skip_later,
                        uint32_t skip_slot, uint64_t h[HPC_CAGE_KNOTS])
{
    uint64_t cells[27];
    const unsigned ncl = cage_stencil(g, o, cells);
    for (unsigned ci = 0; ci < ncl; ci++) {
        const uint64_t c = cells[ci];
        for (uint32_t s = g->ostart[c], e = g->ostart[c + 1]; s < e; s++) {
            if (s == skip_slot || g->olater[s] == skip_later) {
                continue;
            }
            double dx = cage_rel_axis(g, 0, g->ox[s] - o[0]) * g->inv_rc;
            double dy = cage_rel_axis(g, 1, g->oy[s] - o[1]) * g->inv_rc;
            double dz = cage_rel_axis(g, 2, g->oz[s] - o[2]) * g->inv_rc;
            double r2 = dx * dx + dy * dy + dz * dz;
            if (r2 < 1.0) {
                unsigned b = (unsigned)(r2 * HPC_CAGE_KNOTS);
                h[b < HPC_CAGE_KNOTS ? b : HPC_CAGE_KNOTS - 1]++;
            }
        }
    }
}

/* Knots of -ln g from pair counts h of nsample centres at density rho (per
 * rc^3): between bins, a steep wall inside the first populated bin, 0 at rc.
 * @return 0, or -1 when too few pairs. */
static int pmf_knots(const uint64_t h[HPC_CAGE_KNOTS], uint64_t nsample, double rho, float *w)
{
    const double dr2 = 1.0 / HPC_CAGE_KNOTS;
    double wb[HPC_CAGE_KNOTS];
    int first = -1;
    for (unsigned b = 0; b < HPC_CAGE_KNOTS; b++) {
        double r0 = sqrt(b * dr2), r1 = sqrt((b + 1) * dr2);
        double ideal = (double)nsample * rho * (4.0 / 3.0) * M_PI * (r1 * r1 * r1 - r0 * r0 * r0);
        if (h[b] >= CAGE_MIN_PAIRS && ideal > 0) {
            wb[b] = -log((double)h[b] / ideal);
            if (first < 0) {
                first = (int)b;
            }
        } else {
            wb[b] = NAN;
        }
    }
    if (first < 0 || first >= (int)HPC_CAGE_KNOTS / 2) {
        return -1;
    }
    for (int b = first - 1; b >= 0; b--) {
        wb[b] = wb[b + 1] + CAGE_CORE_SLOPE; /* nobody goes there: a steep wall */
    }
    for (unsigned b = (unsigned)first + 1; b < HPC_CAGE_KNOTS; b++) {
        if (isnan(wb[b])) {
            wb[b] = wb[b - 1]; /* a thin bin beyond the first shell */
        }
    }
    for (unsigned k = 0; k <= HPC_CAGE_KNOTS; k++) {
        double v;
        if (k == 0) {
            v = wb[0] + 0.5 * (wb[0] - wb[1]);
        } else if (k == HPC_CAGE_KNOTS) {
            v = 0;
        } else {
            v = 0.5 * (wb[k - 1] + wb[k]);
        }
        v = v > HPC_CAGE_W_MAX ? HPC_CAGE_W_MAX : (v < -HPC_CAGE_W_MAX ? -HPC_CAGE_W_MAX : v);
        w[k] = (float)v;
    }
    return 0;
}

int hpc_cage_fit_table(const hpc_cage *g, const double *cur, uint64_t n, hpc_cage_params *p)
{
    const uint64_t npresent = g->ostart[g->ncells];
    const double vol = g->len[0] * g->len[1] * g->len[2] * g->inv_rc * g->inv_rc * g->inv_rc;
    const double rho = (double)npresent / vol;
    /* w: every 4th previous atom against the others, in the previous frame */
    uint64_t h[HPC_CAGE_KNOTS], nsample = 0;
    memset(h, 0, sizeof(h));
    for (uint32_t si = 0; si < npresent; si += 4, nsample++) {
        const double o[3] = {g->ox[si], g->oy[si], g->oz[si]};
        count_pairs(g, o, HPC_CAGE_END - 1, si, h);
    }
    if (pmf_knots(h, nsample, rho, p->w) != 0) {
        return -1;
    }
    /* v: every 4th atom of this frame (at its new position) against the
     * others at their old positions -- what a neighbour still to come is */
    memset(h, 0, sizeof(h));
    nsample = 0;
    for (uint64_t k = 0; k < n; k += 4) {
        const double *o = cur + 3 * k;
        if (isfinite(o[0]) && isfinite(o[1]) && isfinite(o[2])) {
            count_pairs(g, o, (uint32_t)k, HPC_CAGE_END, h);
            nsample++;
        }
    }
    return pmf_knots(h, nsample, rho, p->v);
}
