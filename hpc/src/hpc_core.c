/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_core.c -- state shared by the hpc encoder and decoder (hpc_core.h).
 */
#include "hpc_core.h"

#include "ngl_hash.h" /* ngl_hash_mix64(): the id map's slots */

#include <float.h>
#include <stdlib.h>

/* Below this eps the lattice step is not representable usefully: lossless. */
#define HPC_EPS_MIN 1e-290

ngl_status hpc_core_init(hpc_core *c)
{
    memset(c, 0, sizeof(*c));
    hpc_cells_init(&c->cells);
    c->ctx = malloc(HPC_NCTX * sizeof(*c->ctx));
    if (c->ctx == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    for (unsigned i = 0; i < HPC_NCTX; i++) {
        hpc_ctx_init(&c->ctx[i], i >= HPC_CTX_WRAP ? HPC_CTX_BINARY : HPC_CTX_TOKEN);
    }
    return NGL_OK;
}

void hpc_idmap_free(hpc_idmap *m)
{
    free(m->key);
    free(m->val);
    free(m->stamp);
    memset(m, 0, sizeof(*m));
}

void hpc_core_free(hpc_core *c)
{
    free(c->ctx);
    free(c->ids);
    free(c->ring);
    free(c->ring_alt);
    free(c->pmap);
    free(c->pos);
    free(c->valid);
    free(c->F);
    free(c->Fcur);
    free(c->sel);
    free(c->vres);
    free(c->vinfo);
    free(c->stamp);
    hpc_idmap_free(&c->prev_map);
    hpc_idmap_free(&c->new_map);
    hpc_cells_free(&c->cells);
    hpc_cage_free(&c->cage);
    memset(c, 0, sizeof(*c));
}

double hpc_step_for(double eps, double mag, ngl_hpc_dtype dt)
{
    if (!(eps >= HPC_EPS_MIN) || !(eps <= DBL_MAX / 4)) {
        return 0;
    }
    if (!isfinite(mag)) {
        mag = 0;
    }
    double guard = 2.0 * mag * (dt == NGL_HPC_F32 ? 0x1p-24 : 0x1p-53);
    double e = eps * (1.0 - 0x1p-12) - guard;
    if (!(e >= eps * 0x1p-8)) {
        return 0; /* the dtype cannot resolve eps at this magnitude */
    }
    return 2.0 * e;
}

void hpc_core_set_eps(hpc_core *c, double eps, double step)
{
    if (!(eps >= HPC_EPS_MIN) || !(eps <= DBL_MAX / 4) || !(step > 0) || !(step <= 2 * eps)) {
        c->lossless = 1;
        c->eps = 0;
        c->step = 0;
        c->inv_step = 0;
        return;
    }
    c->lossless = 0;
    c->eps = eps;
    c->step = step;
    c->inv_step = 1.0 / step;
}

static int grow(void **p, size_t elem, uint64_t n)
{
    if (n == 0) {
        n = 1;
    }
    if (n > SIZE_MAX / elem) {
        return -1;
    }
    void *q = realloc(*p, (size_t)n * elem);
    if (q == NULL) {
        return -1;
    }
    *p = q;
    return 0;
}

ngl_status hpc_core_reserve(hpc_core *c, uint64_t n)
{
    if (n <= c->cap && c->cap > 0) {
        return NGL_OK;
    }
    uint64_t cap = n > c->cap + c->cap / 2 ? n : c->cap + c->cap / 2;
    if (cap < 64) {
        cap = 64;
    }
    uint64_t nblocks = cap / HPC_BLOCK_ATOMS + 1;
    /* Each realloc keeps the contents; cap moves only when all succeeded. */
    if ((!c->no_ring && (grow((void **)&c->ring, sizeof(hpc_ent), cap * 3 * HPC_HIST) ||
                         grow((void **)&c->ring_alt, sizeof(hpc_ent), cap * 3 * HPC_HIST))) ||
        grow((void **)&c->ids, sizeof(int64_t), cap) ||
        grow((void **)&c->pmap, sizeof(uint32_t), cap) ||
        grow((void **)&c->pos, sizeof(double), cap * 3) || grow((void **)&c->valid, 1, cap) ||
        grow((void **)&c->F, sizeof(int64_t), cap * 3) ||
        grow((void **)&c->Fcur, sizeof(int64_t), cap * 3) || grow((void **)&c->sel, 1, nblocks) ||
        grow((void **)&c->stamp, sizeof(uint32_t), cap) ||
        grow((void **)&c->vres, sizeof(int64_t), cap * 3) ||
        grow((void **)&c->vinfo, sizeof(uint16_t), cap * 3)) {
        return NGL_ERR_NO_MEMORY;
    }
    /* new stamps must not look used */
    memset(c->stamp + c->cap, 0, (size_t)(cap - c->cap) * sizeof(uint32_t));
    c->cap = cap;
    return NGL_OK;
}

ngl_status hpc_idmap_reset(hpc_idmap *m, uint64_t n)
{
    size_t want = 64;
    while (want < 2 * n) {
        want *= 2;
    }
    if (m->cap < want) {
        int64_t *k = realloc(m->key, want * sizeof(*k));
        if (k == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        m->key = k;
        uint32_t *v = realloc(m->val, want * sizeof(*v));
        if (v == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        m->val = v;
        uint32_t *s = realloc(m->stamp, want * sizeof(*s));
        if (s == NULL) {
            return NGL_ERR_NO_MEMORY;
        }
        m->stamp = s;
        memset(m->stamp, 0, want * sizeof(*s));
        m->cap = want;
        m->gen = 0;
    }
    m->gen++;
    if (m->gen == 0) {
        memset(m->stamp, 0, m->cap * sizeof(*m->stamp));
        m->gen = 1;
    }
    return NGL_OK;
}

int hpc_idmap_insert(hpc_idmap *m, int64_t key, uint32_t val)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)ngl_hash_mix64((uint64_t)key) & mask;
    while (m->stamp[i] == m->gen) {
        if (m->key[i] == key) {
            return -1;
        }
        i = (i + 1) & mask;
    }
    m->stamp[i] = m->gen;
    m->key[i] = key;
    m->val[i] = val;
    return 0;
}

uint32_t hpc_idmap_find(const hpc_idmap *m, int64_t key)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)ngl_hash_mix64((uint64_t)key) & mask;
    while (m->stamp[i] == m->gen) {
        if (m->key[i] == key) {
            return m->val[i];
        }
        i = (i + 1) & mask;
    }
    return HPC_NONE;
}

ngl_status hpc_core_prev_map(hpc_core *c)
{
    ngl_status st = hpc_idmap_reset(&c->prev_map, c->n);
    if (st != NGL_OK) {
        return st;
    }
    for (uint64_t i = 0; i < c->n; i++) {
        /* previous ids are unique: checked when that frame was coded */
        int64_t id = c->ids_identity ? (int64_t)i : c->ids[i];
        (void)hpc_idmap_insert(&c->prev_map, id, (uint32_t)i);
    }
    return NGL_OK;
}

void hpc_core_gather(hpc_core *c, uint64_t n)
{
    const size_t per = 3 * HPC_HIST;
    for (uint64_t k = 0; k < n; k++) {
        hpc_ent *dst = c->ring_alt + k * per;
        uint32_t p = c->pmap[k];
        if (p != HPC_NONE) {
            memcpy(dst, c->ring + (size_t)p * per, per * sizeof(hpc_ent));
        } else {
            for (unsigned a = 0; a < 3; a++) {
                hpc_ent *e = &dst[a * HPC_HIST + c->head];
                memset(e, 0, sizeof(*e));
            }
        }
    }
}

void hpc_core_prev_positions(hpc_core *c)
{
    for (uint64_t i = 0; i < c->n; i++) {
        int ok = 1;
        for (unsigned a = 0; a < 3; a++) {
            const hpc_ent *e = &c->ring[(i * 3 + a) * HPC_HIST + c->head];
            double len = (c->has_box && c->per[a]) ? c->hi[a] - c->lo[a] : 0.0;
            double x = hpc_recon(e->q, e->img, c->step, len);
            c->pos[3 * i + a] = x;
            if (e->age == 0 || !isfinite(x)) {
                ok = 0;
            }
        }
        c->valid[i] = (uint8_t)ok;
    }
}

ngl_status hpc_core_build_cells(hpc_core *c)
{
    c->cells_ok = 0;
    if (c->lossless || !c->has_box || !(c->r2hi > 0)) {
        return NGL_ERR_UNSUPPORTED;
    }
    hpc_core_prev_positions(c);
    ngl_status st = hpc_cells_build(&c->cells, c->pos, c->valid, c->n, c->has_box, c->lo, c->hi,
                                    c->per, sqrt(c->r2hi));
    if (st == NGL_OK) {
        c->cells_ok = 1;
    }
    return st;
}

void hpc_core_force(hpc_core *c, uint64_t n, int gathered)
{
    hpc_force_compute(&c->cells, c->pos, c->n, &c->model.fn,
                      c->inv_step * (double)(1 << HPC_PRED_SHIFT), c->F);
    for (uint64_t k = 0; k < n; k++) {
        uint32_t p = gathered ? c->pmap[k] : (uint32_t)k;
        for (unsigned a = 0; a < 3; a++) {
            c->Fcur[3 * k + a] = p != HPC_NONE ? c->F[3 * (size_t)p + a] : 0;
        }
    }
}

uint32_t hpc_values_crc(const void *vals, uint64_t nvals, ngl_hpc_dtype dt)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return ngl_crc32c(0, vals, (size_t)nvals * (dt == NGL_HPC_F32 ? 4u : 8u));
#else
    uint32_t crc = 0;
    uint8_t b[8];
    for (uint64_t i = 0; i < nvals; i++) {
        if (dt == NGL_HPC_F32) {
            ngl_wr_f32(b, ((const float *)vals)[i]);
            crc = ngl_crc32c(crc, b, 4);
        } else {
            ngl_wr_f64(b, ((const double *)vals)[i]);
            crc = ngl_crc32c(crc, b, 8);
        }
    }
    return crc;
#endif
}
