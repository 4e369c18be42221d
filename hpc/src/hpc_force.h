/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_force.h -- the learned pair-force term of the level-2 model.
 *
 * For atom i of the previous frame, F_i = sum over neighbours j (r_ij^2 <
 * r2hi, minimum image on periodic axes) of c(i, j), with
 *
 *   c(i, j) = R(w(r_ij^2) * (x_i - x_j) * k),   k = 4096 / step,
 *
 * in lattice units with 12 fraction bits, R rounding half away from zero. w
 * is piecewise linear in r^2 with HPC_KNOTS knots spaced evenly on
 * [r2lo, r2hi] (constant below r2lo). The knot values are fitted by least
 * squares in the encoder and sent with the model; they absorb mass, time step
 * and dump interval, so nothing about the physics is assumed beyond
 * "pairwise and radial".
 *
 * Every c(i, j) is computed from the pair alone with IEEE double operations
 * in a fixed order, c(j, i) = -c(i, j) exactly, and the sums are integers:
 * F does not depend on the order pairs are found in, and encoder and decoder
 * agree bit for bit (FORMAT.md §6.3 defines it; the value CRC checks it).
 */
#ifndef NGL_HPC_FORCE_H
#define NGL_HPC_FORCE_H

#include "hpc_internal.h"

#include <math.h>

/* Cell index along one axis of a grid of @p nc cells, 1 / @p inv_w wide
 * from @p lo: wrapped on a periodic axis, clamped on a free one (a clamped
 * position still finds its true neighbours in the adjacent cells). Clamps
 * before converting: no UB on wild values (FORMAT.md §6.7, §6.8). */
static inline int64_t hpc_cell_index(double x, double lo, double inv_w, int nc, int periodic)
{
    double s = (x - lo) * inv_w;
    if (!(s > -1e15)) {
        s = -1e15; /* also catches NaN (excluded atoms never get here) */
    } else if (s > 1e15) {
        s = 1e15;
    }
    int64_t i = (int64_t)floor(s);
    if (periodic) {
        i %= nc;
        if (i < 0) {
            i += nc;
        }
    } else if (i < 0) {
        i = 0;
    } else if (i >= nc) {
        i = nc - 1;
    }
    return i;
}

/* Cell (c0 + d) of a grid of nc[0] x nc[1] x nc[2] cells, as a flat index
 * (x fastest): wrapped on periodic axes (per[a]; they have at least 3 cells),
 * -1 outside a free one. */
static inline int64_t hpc_cell_neighbour(const int nc[3], const int per[3], const int64_t c0[3],
                                         int dx, int dy, int dz)
{
    int64_t v[3] = {c0[0] + dx, c0[1] + dy, c0[2] + dz};
    for (int a = 0; a < 3; a++) {
        if (v[a] < 0 || v[a] >= nc[a]) {
            if (!per[a]) {
                return -1;
            }
            v[a] = (v[a] + nc[a]) % nc[a];
        }
    }
    return (v[2] * nc[1] + v[1]) * nc[0] + v[0];
}

/* Keep a grid at most @p most cells: halve the largest count (lowest axis on
 * ties) until it fits, updating inv_w = nc / len (0 where len is 0); a
 * periodic axis (per[a]) must keep at least 3 cells (FORMAT.md §6.7, §6.8).
 * @return 0 and *ncells, or -1 when that fails. */
int hpc_grid_fit(int nc[3], const int per[3], const double len[3], double inv_w[3], uint64_t most,
                 uint64_t *ncells);

typedef struct hpc_cells {
    int nc[3];            /* cells per axis */
    int wrap[3];          /* periodic with at least 3 cells */
    double lo[3];         /* grid origin */
    double len[3];        /* periodic box length (wrap axes) */
    double inv_w[3];      /* 1 / cell width */
    uint32_t *start;      /* ncell + 1 offsets into atom */
    uint32_t *atom;       /* atoms sorted by cell */
    uint32_t *cell_of;    /* cell of each atom, or UINT32_MAX if excluded */
    double *sx, *sy, *sz; /* positions in cell order */
    int64_t *sf;          /* per-atom sums in cell order (3 per atom) */
    size_t cap_cells, cap_atoms;
    uint64_t ncells;
} hpc_cells;

void hpc_cells_init(hpc_cells *c);
void hpc_cells_free(hpc_cells *c);

/*
 * Bin the @p n atoms of @p pos (3 per atom) with valid[i] != 0 into cells of
 * width >= rc. Periodic axes (has_box && per[a]) use the minimum image and
 * need a box of at least 3 rc; other axes span the atoms' extent.
 * @return NGL_OK, NGL_ERR_UNSUPPORTED (periodic box shorter than 3 rc: no force
 *         term this frame), NGL_ERR_NO_MEMORY.
 */
ngl_status hpc_cells_build(hpc_cells *c, const double *pos, const uint8_t *valid, uint64_t n,
                           int has_box, const double lo[3], const double hi[3],
                           const uint8_t per[3], double rc);

typedef struct hpc_pairfn {
    double r2lo, r2hi; /* knot range; r2hi = r_cut^2 */
    unsigned nknots;
    float psi[HPC_KNOTS];
} hpc_pairfn;

/* F (3 per atom, lattice units, Q12) for all atoms; excluded atoms get 0.
 * @p k = 4096 / step. */
void hpc_force_compute(const hpc_cells *c, const double *pos, uint64_t n, const hpc_pairfn *fn,
                       double k, int64_t *F);

/* Per-knot features of the atoms in @p list: feat[(m*3 + a)*nknots + k] =
 * sum_j hat_k(r_ij^2) (x_i - x_j)_a, the derivative of F_i with respect to psi_k. */
void hpc_force_knot_features(const hpc_cells *c, const double *pos, const hpc_pairfn *fn,
                             const uint32_t *list, size_t m, double *feat);

#endif /* NGL_HPC_FORCE_H */
