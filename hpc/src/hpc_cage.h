/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_cage.h -- the cage predictor of level 3 (FORMAT.md §6.8).
 *
 * On coarse dumps (frames further apart than the collision time) an atom's
 * own past says little about where it went, but its neighbours do: it sits
 * near a minimum of the energy of its cage. For atom k of a frame, the cage is
 * made of the atoms already decoded in this frame (at their new positions) and
 * the atoms still to come (at their previous positions), which is what a
 * decoder knows when it reaches atom k. The pair energy is not assumed: it is
 * a potential of mean force -ln g(r) measured by the encoder and sent as a
 * table on r^2: W from the previous frame's own pairs, for neighbours at
 * their new positions, and V from (new position, old position) pairs, a
 * softer one for neighbours still at their old positions. A fixed number of gradient steps from the
 * atom's previous position (the same IEEE double operations in the same order on both sides) gives
 * a displacement; lambda times it, in Q12 lattice units, is the prediction.
 *
 * The encoder and decoder run the same object: hpc_cage_begin() for the
 * frame, then per atom in frame order hpc_cage_predict() (when its block uses
 * the cage) and hpc_cage_insert() once its values are known.
 */
#ifndef NGL_HPC_CAGE_H
#define NGL_HPC_CAGE_H

#include "hpc_internal.h"

#define HPC_CAGE_KNOTS     64u  /* table intervals on [0, rc^2] */
#define HPC_CAGE_ITERS_MAX 64u  /* largest descent length a stream may ask for */
#define HPC_CAGE_MAX_NB    512u /* neighbour buffer; more than MAX_NB - 4: no prediction */
#define HPC_CAGE_W_MAX     1e3  /* bound on table values (keeps the fixed-point sums exact) */
/* bytes of a frame's cage tables (knots, iters, 0, rc2, w[], v[]) and of its lambda */
#define HPC_CAGE_TABLE_SECTION  (4u + 8u + 8u * (HPC_CAGE_KNOTS + 1u))
#define HPC_CAGE_LAMBDA_SECTION 4u

/* What a cage frame sends (FORMAT.md §6.8). */
typedef struct hpc_cage_params {
    double rc2;                  /* table range r^2 < rc2 */
    float lambda;                /* scale of the descent's displacement */
    unsigned iters;              /* gradient steps, 1..HPC_CAGE_ITERS_MAX */
    float w[HPC_CAGE_KNOTS + 1]; /* energy at r^2 = k rc2 / HPC_CAGE_KNOTS: new positions */
    float v[HPC_CAGE_KNOTS + 1]; /* the same against old positions (neighbours to come) */
} hpc_cage_params;

/* Neighbours of the atom being predicted, relative to its old position, in
 * units of rc (padded to a multiple of 4). */
typedef struct hpc_cage_nbs {
    double x[HPC_CAGE_MAX_NB], y[HPC_CAGE_MAX_NB], z[HPC_CAGE_MAX_NB];
    unsigned m;
} hpc_cage_nbs;

typedef struct hpc_cage {
    /* the frame's tables and descent constants (lengths in units of rc) */
    double W[HPC_CAGE_KNOTS + 1], V[HPC_CAGE_KNOTS + 1];
    double rc, inv_rc, lambda;
    unsigned iters;
    int avx2; /* energy() with AVX2 (same results) */
    /* cell grid over the frame's box, cells at least 1.3 rc wide */
    int nc[3], per[3];
    double lo[3], len[3], half[3], inv_w[3];
    uint64_t ncells;
    /* previous frame's atoms still present, sorted by cell (stable) */
    uint32_t *ostart;     /* ncells + 1 offsets */
    double *ox, *oy, *oz; /* positions */
    uint32_t *olater;     /* index in this frame */
    uint32_t *prev_later; /* scratch: previous atom -> its index in this frame */
    uint32_t *ocell;      /* scratch: cell of each previous atom */
    /* this frame's inserted atoms: a slab per cell sized from the previous
     * frame's count, then an overflow list */
    uint32_t *nstart, *ncount; /* slab offset and fill per cell */
    double *nx, *ny, *nz;      /* slab positions */
    uint32_t *nover;           /* overflow list head per cell */
    uint32_t *nnext;           /* overflow list link per atom */
    double *npos;              /* overflow positions, 3 per atom */
    const double *old_pos;     /* previous positions, 3 per atom (not owned) */
    size_t cap_ostart, cap_o, cap_ocell, cap_slab, cap_n;
    /* the cage of the atom being predicted: decoded and still-to-come atoms */
    hpc_cage_nbs nb_new, nb_old;
} hpc_cage;

#define HPC_CAGE_END UINT32_MAX

void hpc_cage_init(hpc_cage *g);
void hpc_cage_free(hpc_cage *g);

/*
 * Start a frame with table range @p rc2: grid over the box [lo, hi) (periodic
 * axes per[a]), the previous frame's @p nprev positions @p pos with
 * valid[i] != 0 (kept by pointer until the frame ends), and this frame's
 * @p n atoms with pmap[k] the previous index of atom k or HPC_CAGE_END.
 * @return NGL_OK; NGL_ERR_UNSUPPORTED when a periodic axis is shorter than
 *         three cells or rc2 is not a positive finite number; NGL_ERR_NO_MEMORY.
 */
ngl_status hpc_cage_begin(hpc_cage *g, double rc2, const double lo[3], const double hi[3],
                          const int per[3], const double *pos, const uint8_t *valid, uint64_t nprev,
                          const uint32_t *pmap, uint64_t n);

/* Use table and descent parameters @p p (rc2 must be the one of begin). */
void hpc_cage_set_params(hpc_cage *g, const hpc_cage_params *p);

/* Forget the atoms inserted so far in this frame (the encoder's trial pass
 * inserts approximate positions, then the coding pass starts again). */
void hpc_cage_reset_new(hpc_cage *g);

/* Descent displacement (physical units, lambda not applied) of atom @p k,
 * whose previous position is @p origin; only atoms inserted so far and the
 * previous atoms that come after @p k in this frame form its cage.
 * @return 0, or -1 (disp unset) when the atom has more than
 *         HPC_CAGE_MAX_NB - 4 neighbours: it gets no cage prediction. */
int hpc_cage_descend(hpc_cage *g, uint64_t k, const double origin[3], double disp[3]);

/* lambda * disp in Q12 lattice units (@p q12_per_unit = 4096 / step), rounded
 * half up and clamped to +-2^52. */
int64_t hpc_cage_fixed(const hpc_cage *g, double disp, double q12_per_unit);

/* Test hook: 0 makes later hpc_cage_begin() calls use the scalar energy
 * (process-wide; not thread-safe); 1 restores the default. */
void hpc_cage_use_simd(int on);

/* Atom @p k of this frame is known at @p x (finite): it joins later cages. */
void hpc_cage_insert(hpc_cage *g, uint64_t k, const double x[3]);

/*
 * Encoder: the tables of the potential of mean force, p->w from the previous
 * frame's pairs (every 4th atom in the grid of hpc_cage_begin() against the
 * others) and p->v from this frame's atoms at @p cur (3 per atom, non-finite
 * ones skipped; every 4th) against the previous frame's others -- what a
 * neighbour still to come looks like. p->rc2 is the caller's.
 * @return 0, or -1 when too few pairs fall inside rc to estimate them.
 */
int hpc_cage_fit_table(const hpc_cage *g, const double *cur, uint64_t n, hpc_cage_params *p);

#endif /* NGL_HPC_CAGE_H */
