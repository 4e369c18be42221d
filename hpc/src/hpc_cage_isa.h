/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_cage_isa.h -- the cage predictor's per-ISA kernels (hpc_cage_avx2.c)
 * and what they share with the portable code in hpc_cage.c: the per-candidate
 * and per-pair arithmetic both must run alike, operation for operation. The
 * kernel file is compiled alone with its ISA's flags, in the same static
 * library as the lean kernel of that ISA; call one only where hpc_cage.c's
 * CPU check says so. Results are the scalar code's bits (test_hpc_cage).
 */
#ifndef NGL_HPC_CAGE_ISA_H
#define NGL_HPC_CAGE_ISA_H

#include "hpc_cage.h"
#include "hpc_force.h" /* the cell grid helpers */

/* Neighbours kept: within rc + the farthest the descent may go (0.3, in
 * units of rc, CAGE_MAX_DISP of hpc_cage.c). */
#define CAGE_REACH 1.3

#define CAGE_E_SCALE 0x1p30 /* fixed-point grain of the per-pair energy */
#define CAGE_G_SCALE 0x1p20 /* ... and of the per-pair gradient */
#define CAGE_ROUNDER                                                                               \
    0x1.8p52 /* (x + CAGE_ROUNDER) - CAGE_ROUNDER rounds |x| < 2^51 to an integer */

static inline int64_t cage_cell_coord(const hpc_cage *g, int a, double x)
{
    return hpc_cell_index(x, g->lo[a], g->inv_w[a], g->nc[a], g->per[a]);
}

/* x_j - x_i along axis a, minimum image on periodic axes for positions within
 * half a box of it (wrapped coordinates: all of them but atoms far outside
 * the box, whose prediction is merely worse). No division: this runs for
 * every candidate neighbour. */
static inline double cage_rel_axis(const hpc_cage *g, int a, double d)
{
    if (g->per[a]) {
        if (d > g->half[a]) {
            d -= g->len[a];
        } else if (d < -g->half[a]) {
            d += g->len[a];
        }
    }
    return d;
}

/* The 27 cells around @p o (fewer on free axes at the edge), in @p cells. */
static inline unsigned cage_stencil(const hpc_cage *g, const double o[3], uint64_t cells[27])
{
    const int64_t c0[3] = {cage_cell_coord(g, 0, o[0]), cage_cell_coord(g, 1, o[1]),
                           cage_cell_coord(g, 2, o[2])};
    unsigned nc = 0;
    for (int dz = -1; dz <= 1; dz++) {
        for (int dy = -1; dy <= 1; dy++) {
            for (int dx = -1; dx <= 1; dx++) {
                const int64_t c = hpc_cell_neighbour(g->nc, g->per, c0, dx, dy, dz);
                if (c >= 0) {
                    cells[nc++] = (uint64_t)c;
                }
            }
        }
    }
    return nc;
}

/* Keep neighbour y of the atom at o in @p set if within reach; counts past
 * the buffer so that the caller can tell. */
static inline void cage_keep(const hpc_cage *g, hpc_cage_nbs *set, const double o[3], double yx,
                             double yy, double yz)
{
    double dx = cage_rel_axis(g, 0, yx - o[0]) * g->inv_rc;
    double dy = cage_rel_axis(g, 1, yy - o[1]) * g->inv_rc;
    double dz = cage_rel_axis(g, 2, yz - o[2]) * g->inv_rc;
    if (dx * dx + dy * dy + dz * dz < CAGE_REACH * CAGE_REACH) {
        const unsigned m = set->m;
        if (m < HPC_CAGE_MAX_NB - 4) {
            set->x[m] = dx;
            set->y[m] = dy;
            set->z[m] = dz;
        }
        set->m = m + 1;
    }
}

static inline double cage_fixed(double x, double scale)
{
    return (x * scale + CAGE_ROUNDER) - CAGE_ROUNDER;
}

/* A gather's start: both sets of @p g emptied, the cells around @p o in
 * @p cells. @return their count. */
static inline unsigned cage_gather_begin(hpc_cage *g, const double o[3], uint64_t cells[27])
{
    g->nb_new.m = 0;
    g->nb_old.m = 0;
    return cage_stencil(g, o, cells);
}

/* This frame's atoms of cell @p c beyond its slab (the overflow list), one
 * at a time: they are few. */
static inline void cage_keep_overflow(hpc_cage *g, const double o[3], uint64_t c)
{
    for (uint32_t j = g->nover[c]; j != HPC_CAGE_END; j = g->nnext[j]) {
        const double *p = g->npos + 3 * (size_t)j;
        cage_keep(g, &g->nb_new, o, p[0], p[1], p[2]);
    }
}

/* The cage of atom @p k around @p o, as gather() in hpc_cage.c: the same
 * neighbours with the same bits (their order in a set may differ). */
unsigned hpc_cage_gather_avx2(hpc_cage *g, uint64_t k, const double o[3]);

/* energy() of hpc_cage.c: identical result. */
double hpc_cage_energy_avx2(const double *W, const hpc_cage_nbs *set, const double x[3],
                            double grad[3]);

#endif /* NGL_HPC_CAGE_ISA_H */
