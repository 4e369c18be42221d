/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_force.c -- cell lists and the learned pair-force term (hpc_force.h).
 */
#include "hpc_force.h"

#include <math.h>
#include <stdlib.h>

void hpc_cells_init(hpc_cells *c)
{
    memset(c, 0, sizeof(*c));
}

void hpc_cells_free(hpc_cells *c)
{
    free(c->start);
    free(c->atom);
    free(c->cell_of);
    free(c->sx);
    free(c->sy);
    free(c->sz);
    free(c->sf);
    memset(c, 0, sizeof(*c));
}

static inline int64_t cell_coord(const hpc_cells *c, int a, double x)
{
    return hpc_cell_index(x, c->lo[a], c->inv_w[a], c->nc[a], c->wrap[a]);
}

int hpc_grid_fit(int nc[3], const int per[3], const double len[3], double inv_w[3], uint64_t most,
                 uint64_t *ncells)
{
    for (;;) {
        uint64_t total = (uint64_t)nc[0] * (uint64_t)nc[1] * (uint64_t)nc[2];
        if (total <= most) {
            *ncells = total;
            return 0;
        }
        int big = 0;
        for (int a = 1; a < 3; a++) {
            if (nc[a] > nc[big]) {
                big = a;
            }
        }
        int nn = nc[big] / 2;
        if (per[big] && nn < 3) {
            return -1;
        }
        nc[big] = nn < 1 ? 1 : nn;
        inv_w[big] = len[big] > 0 ? nc[big] / len[big] : 0;
    }
}

ngl_status hpc_cells_build(hpc_cells *c, const double *pos, const uint8_t *valid, uint64_t n,
                           int has_box, const double lo[3], const double hi[3],
                           const uint8_t per[3], double rc)
{
    if (!(rc > 0) || n > UINT32_MAX - 1) {
        return NGL_ERR_UNSUPPORTED;
    }
    for (int a = 0; a < 3; a++) {
        if (has_box && per[a]) {
            double len = hi[a] - lo[a];
            double ncd = floor(len / rc);
            if (!(ncd >= 3)) {
                return NGL_ERR_UNSUPPORTED;
            }
            c->nc[a] = ncd > 1024 ? 1024 : (int)ncd;
            c->wrap[a] = 1;
            c->lo[a] = lo[a];
            c->len[a] = len;
            c->inv_w[a] = c->nc[a] / len;
        } else {
            double mn = INFINITY, mx = -INFINITY;
            for (uint64_t i = 0; i < n; i++) {
                if (valid[i]) {
                    double x = pos[3 * i + a];
                    mn = x < mn ? x : mn;
                    mx = x > mx ? x : mx;
                }
            }
            if (!(mn <= mx)) {
                mn = mx = 0;
            }
            double ext = mx - mn;
            double ncd = isfinite(ext) ? floor(ext / rc) : 1;
            c->nc[a] = ncd < 1 ? 1 : (ncd > 1024 ? 1024 : (int)ncd);
            c->wrap[a] = 0;
            c->lo[a] = mn;
            c->len[a] = isfinite(ext) ? ext : 0; /* extent; min_image ignores it */
            c->inv_w[a] = ext > 0 && isfinite(ext) ? c->nc[a] / ext : 0;
        }
    }
    /* Keep the grid no larger than about two cells per atom: sparse systems
     * get coarser cells (still >= rc wide, so no pair is missed). */
    if (hpc_grid_fit(c->nc, c->wrap, c->len, c->inv_w, 2 * n + 27, &c->ncells) != 0) {
        return NGL_ERR_UNSUPPORTED;
    }
    if (c->cap_cells < c->ncells + 1) {
        uint32_t *s = realloc(c->start, (c->ncells + 1) * sizeof(*s));
        if (s == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        c->start = s;
        c->cap_cells = c->ncells + 1;
    }
    if (c->cap_atoms < n || c->atom == NULL) {
        size_t want = n ? n : 1;
        uint32_t *at = realloc(c->atom, want * sizeof(*at));
        if (at == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        c->atom = at;
        uint32_t *co = realloc(c->cell_of, want * sizeof(*co));
        if (co == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        c->cell_of = co;
        double **d[3] = {&c->sx, &c->sy, &c->sz};
        for (int ax = 0; ax < 3; ax++) {
            double *nd = realloc(*d[ax], want * sizeof(double));
            if (nd == NULL) {
                return NGL_ERR_NO_MEMORY;
            }
            *d[ax] = nd;
        }
        int64_t *sf = realloc(c->sf, 3 * want * sizeof(int64_t));
        if (sf == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        c->sf = sf;
        c->cap_atoms = want;
    }
    memset(c->start, 0, (c->ncells + 1) * sizeof(*c->start));
    for (uint64_t i = 0; i < n; i++) {
        if (!valid[i]) {
            c->cell_of[i] = UINT32_MAX;
            continue;
        }
        int64_t ix = cell_coord(c, 0, pos[3 * i]);
        int64_t iy = cell_coord(c, 1, pos[3 * i + 1]);
        int64_t iz = cell_coord(c, 2, pos[3 * i + 2]);
        uint32_t cell = (uint32_t)((iz * c->nc[1] + iy) * c->nc[0] + ix);
        c->cell_of[i] = cell;
        c->start[cell + 1]++;
    }
    for (uint64_t k = 0; k < c->ncells; k++) {
        c->start[k + 1] += c->start[k];
    }
    /* counting sort, stable in atom order (deterministic) */
    for (uint64_t i = 0; i < n; i++) {
        uint32_t cell = c->cell_of[i];
        if (cell != UINT32_MAX) {
            c->atom[c->start[cell]++] = (uint32_t)i;
        }
    }
    for (uint64_t k = c->ncells; k > 0; k--) {
        c->start[k] = c->start[k - 1];
    }
    c->start[0] = 0;
    uint32_t m = c->start[c->ncells];
    for (uint32_t s = 0; s < m; s++) {
        uint32_t i = c->atom[s];
        c->sx[s] = pos[3 * (size_t)i];
        c->sy[s] = pos[3 * (size_t)i + 1];
        c->sz[s] = pos[3 * (size_t)i + 2];
    }
    return NGL_OK;
}

/* Displacement x_i - x_j along axis a, minimum image on periodic axes. */
static inline double min_image(const hpc_cells *c, int a, double d)
{
    if (c->wrap[a]) {
        double len = c->len[a];
        if (d > 0.5 * len) {
            d -= len;
        } else if (d < -0.5 * len) {
            d += len;
        }
    }
    return d;
}

static inline double pair_weight(const hpc_pairfn *fn, double invh, double r2)
{
    double s = (r2 - fn->r2lo) * invh;
    if (!(s > 0)) {
        s = 0;
    }
    int k = (int)s;
    if (k > (int)fn->nknots - 2) {
        k = (int)fn->nknots - 2;
    }
    double t = s - k;
    if (t > 1) {
        t = 1;
    }
    double p0 = fn->psi[k], p1 = fn->psi[k + 1];
    return p0 + t * (p1 - p0);
}

/* R(v): round half away from zero, clamped (NaN gives 0). Odd: R(-v) = -R(v). */
static inline int64_t round_fx(double v)
{
    if (!(fabs(v) < 0x1p40)) {
        return v != v ? 0 : (v > 0 ? ((int64_t)1 << 40) : -((int64_t)1 << 40));
    }
    /* truncation of a non-negative value is its floor (no libm call) */
    int64_t a = (int64_t)(fabs(v) + 0.5);
    return v < 0 ? -a : a;
}

/* Minimum image as min_image(), with the axis' length and half length passed
 * in (free axes: half = +inf, so the tests never fire). The tests almost never
 * fire, so the branches predict well. */
static inline double min_image_bf(double d, double len, double half)
{
    return d > half ? d - len : (d < -half ? d + len : d);
}

/* Append [b, e) to the range list. */
static inline void add_range(uint32_t *rb, uint32_t *re, int *nr, uint32_t b, uint32_t e)
{
    if (e > b) {
        rb[*nr] = b;
        re[*nr] = e;
        (*nr)++;
    }
}

/* Atom ranges of the cells (ix-1 .. ix+1, iy, iz), merged when contiguous. */
static void row_ranges(const hpc_cells *c, int ix, int iy, int iz, uint32_t *rb, uint32_t *re,
                       int *nr)
{
    if (iy < 0 || iy >= c->nc[1]) {
        if (!c->wrap[1]) {
            return;
        }
        iy = (iy + c->nc[1]) % c->nc[1];
    }
    if (iz < 0 || iz >= c->nc[2]) {
        if (!c->wrap[2]) {
            return;
        }
        iz = (iz + c->nc[2]) % c->nc[2];
    }
    const int64_t row = ((int64_t)iz * c->nc[1] + iy) * c->nc[0];
    if (ix >= 1 && ix + 1 < c->nc[0]) {
        add_range(rb, re, nr, c->start[row + ix - 1], c->start[row + ix + 2]);
        return;
    }
    for (int dx = -1; dx <= 1; dx++) {
        int x = ix + dx;
        if (x < 0 || x >= c->nc[0]) {
            if (!c->wrap[0]) {
                continue;
            }
            x = (x + c->nc[0]) % c->nc[0];
        }
        add_range(rb, re, nr, c->start[row + x], c->start[row + x + 1]);
    }
}

void hpc_force_compute(const hpc_cells *c, const double *pos, uint64_t n, const hpc_pairfn *fn,
                       double k, int64_t *F)
{
    (void)pos;
    const double invh = (fn->nknots - 1) / (fn->r2hi - fn->r2lo);
    const double r2hi = fn->r2hi;
    const double *sx = c->sx, *sy = c->sy, *sz = c->sz;
    int64_t *sf = c->sf;
    double len[3], hl[3];
    for (int a = 0; a < 3; a++) {
        len[a] = c->wrap[a] ? c->len[a] : 0.0;
        hl[a] = c->wrap[a] ? 0.5 * c->len[a] : INFINITY;
    }
    const uint32_t m = c->start[c->ncells];
    memset(sf, 0, 3 * (size_t)m * sizeof(*sf));
    enum { MAXR = 16, MAXC = 512 };
    uint32_t cand[MAXC];
    for (int iz = 0; iz < c->nc[2]; iz++) {
        for (int iy = 0; iy < c->nc[1]; iy++) {
            for (int ix = 0; ix < c->nc[0]; ix++) {
                int64_t cell = ((int64_t)iz * c->nc[1] + iy) * c->nc[0] + ix;
                uint32_t b0 = c->start[cell], b1 = c->start[cell + 1];
                if (b0 == b1) {
                    continue;
                }
                /* the half stencil: (+1, 0, 0), the row (., +1, 0) and the
                 * rows (., -1..1, +1); the cell itself is handled per atom */
                uint32_t rb[MAXR], re[MAXR];
                int nr = 0;
                if (ix + 1 < c->nc[0]) {
                    add_range(rb, re, &nr, c->start[cell + 1], c->start[cell + 2]);
                } else if (c->wrap[0]) {
                    int64_t o = cell - ix;
                    add_range(rb, re, &nr, c->start[o], c->start[o + 1]);
                }
                row_ranges(c, ix, iy + 1, iz, rb, re, &nr);
                for (int dy = -1; dy <= 1; dy++) {
                    row_ranges(c, ix, iy + dy, iz + 1, rb, re, &nr);
                }
                for (uint32_t i = b0; i < b1; i++) {
                    const double xi = sx[i], yi = sy[i], zi = sz[i];
                    int64_t fx = 0, fy = 0, fz = 0;
                    for (int r = -1; r < nr; r++) {
                        uint32_t j0 = r < 0 ? i + 1 : rb[r];
                        uint32_t j1 = r < 0 ? b1 : re[r];
                        while (j0 < j1) {
                            /* distances without branches, then the pairs */
                            uint32_t je = j1 - j0 > MAXC ? j0 + MAXC : j1;
                            int nc = 0;
                            for (uint32_t j = j0; j < je; j++) {
                                double dx = min_image_bf(xi - sx[j], len[0], hl[0]);
                                double dy2 = min_image_bf(yi - sy[j], len[1], hl[1]);
                                double dz = min_image_bf(zi - sz[j], len[2], hl[2]);
                                double r2 = dx * dx + dy2 * dy2 + dz * dz;
                                cand[nc] = j;
                                nc += r2 < r2hi;
                            }
                            for (int q = 0; q < nc; q++) {
                                uint32_t j = cand[q];
                                double dx = min_image_bf(xi - sx[j], len[0], hl[0]);
                                double dy2 = min_image_bf(yi - sy[j], len[1], hl[1]);
                                double dz = min_image_bf(zi - sz[j], len[2], hl[2]);
                                double r2 = dx * dx + dy2 * dy2 + dz * dz;
                                double w = pair_weight(fn, invh, r2);
                                int64_t cx = round_fx(w * dx * k);
                                int64_t cy = round_fx(w * dy2 * k);
                                int64_t cz = round_fx(w * dz * k);
                                fx += cx;
                                fy += cy;
                                fz += cz;
                                sf[3 * j] -= cx;
                                sf[3 * j + 1] -= cy;
                                sf[3 * j + 2] -= cz;
                            }
                            j0 = je;
                        }
                    }
                    sf[3 * i] += fx;
                    sf[3 * i + 1] += fy;
                    sf[3 * i + 2] += fz;
                }
            }
        }
    }
    memset(F, 0, 3 * n * sizeof(*F));
    for (uint32_t s = 0; s < m; s++) {
        uint32_t i = c->atom[s];
        F[3 * (size_t)i] = sf[3 * s];
        F[3 * (size_t)i + 1] = sf[3 * s + 1];
        F[3 * (size_t)i + 2] = sf[3 * s + 2];
    }
}

void hpc_force_knot_features(const hpc_cells *c, const double *pos, const hpc_pairfn *fn,
                             const uint32_t *list, size_t m, double *feat)
{
    const unsigned nk = fn->nknots;
    const double invh = (nk - 1) / (fn->r2hi - fn->r2lo);
    memset(feat, 0, m * 3 * nk * sizeof(*feat));
    for (size_t li = 0; li < m; li++) {
        uint32_t i = list[li];
        uint32_t cell = c->cell_of[i];
        if (cell == UINT32_MAX) {
            continue;
        }
        const int64_t c0[3] = {cell % (uint32_t)c->nc[0],
                               (cell / (uint32_t)c->nc[0]) % (uint32_t)c->nc[1],
                               cell / ((uint32_t)c->nc[0] * (uint32_t)c->nc[1])};
        double *f = feat + li * 3 * nk;
        for (int dz = -1; dz <= 1; dz++) {
            for (int dy = -1; dy <= 1; dy++) {
                for (int dx = -1; dx <= 1; dx++) {
                    /* periodic axes have >= 3 cells, free axes stop at the
                     * edge: no offset aliases another */
                    int64_t o = hpc_cell_neighbour(c->nc, c->wrap, c0, dx, dy, dz);
                    if (o < 0) {
                        continue;
                    }
                    for (uint32_t jj = c->start[o]; jj < c->start[o + 1]; jj++) {
                        uint32_t j = c->atom[jj];
                        if (j == i) {
                            continue;
                        }
                        double ddx = min_image(c, 0, pos[3 * i] - pos[3 * j]);
                        double ddy = min_image(c, 1, pos[3 * i + 1] - pos[3 * j + 1]);
                        double ddz = min_image(c, 2, pos[3 * i + 2] - pos[3 * j + 2]);
                        double r2 = ddx * ddx + ddy * ddy + ddz * ddz;
                        if (r2 >= fn->r2hi) {
                            continue;
                        }
                        double s = (r2 - fn->r2lo) * invh;
                        if (!(s > 0)) {
                            s = 0;
                        }
                        int k = (int)s;
                        if (k > (int)nk - 2) {
                            k = (int)nk - 2;
                        }
                        double t = s - k;
                        if (t > 1) {
                            t = 1;
                        }
                        double dd[3] = {ddx, ddy, ddz};
                        for (int a = 0; a < 3; a++) {
                            f[a * nk + k] += (1 - t) * dd[a];
                            f[a * nk + k + 1] += t * dd[a];
                        }
                    }
                }
            }
        }
    }
}
