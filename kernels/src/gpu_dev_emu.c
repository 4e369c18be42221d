/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gpu_dev_emu.c -- the device of ngl_gpu_dev.h emulated on the CPU, for
 * tests only (never linked into anything shipped). Each kernel of
 * gpu_dev_cuda.cu is replayed with the same functions of ngl_gpu_ops.h:
 * blocks, tiles and chunks in index order, one lane per warp, the block
 * scans done serially. "Device" memory is host memory filled with a poison
 * pattern, so a kernel that reads something nobody wrote shows up as a
 * mismatch against core instead of passing by luck.
 */
#include "ngl_gpu_dev.h"

#include <stdlib.h>
#include <string.h>

int ngl_gpu_device_count(int *n)
{
    *n = 1;
    return 0;
}

int ngl_gpu_malloc(void **p, size_t bytes)
{
    *p = malloc(bytes);
    if (*p == NULL) {
        return 2;
    }
    memset(*p, 0xa5, bytes);
    return 0;
}

void ngl_gpu_free(void *p)
{
    free(p);
}

int ngl_gpu_host_malloc(void **p, size_t bytes)
{
    return ngl_gpu_malloc(p, bytes);
}

void ngl_gpu_host_free(void *p)
{
    free(p);
}

int ngl_gpu_memset_async(void *d, int v, size_t n, ngl_gpu_stream s)
{
    (void)s;
    memset(d, v, n);
    return 0;
}

int ngl_gpu_memcpy_async(void *dst, const void *src, size_t n, ngl_gpu_stream s)
{
    (void)s;
    memmove(dst, src, n);
    return 0;
}

int ngl_gpu_stream_sync(ngl_gpu_stream s)
{
    (void)s;
    return 0;
}

const char *ngl_gpu_error_name(int err)
{
    return err == 0 ? "no error" : (err == 2 ? "out of memory (emulator)" : "emulator error");
}

static uint64_t emu_nchunks(const ngl_gpu_args *a)
{
    return (a->count + NGL_GPU_CHUNK - 1u) / NGL_GPU_CHUNK;
}

static void emu_exc_gather(const ngl_gpu_args *a)
{
    if (a->ctl->n_exc == 0) {
        return;
    }
    uint64_t base = 0;
    for (uint32_t b = 0; b < a->nblocks; b++) {
        ngl_gpu_exc_write_block(a, b, base);
        base += a->blk_exc[b];
    }
}

static void emu_tk_keys(const ngl_gpu_args *a)
{
    uint32_t *h = a->tk_hist;
    uint64_t elig = 0;
    for (uint64_t c = 0; c < emu_nchunks(a); c++) {
        const uint64_t i0 = c * NGL_GPU_CHUNK;
        const uint32_t n = ngl_gpu_chunk_len(i0, a->count);
        uint32_t key[8];
        elig += ngl_gpu_tk_keys8(a, i0, n, key);
        for (uint32_t j = 0; j < n; j++) {
            h[key[j] >> 21]++;
        }
    }
    a->ctl->eligible += elig;
}

static void emu_tk_hist(const ngl_gpu_args *a, uint32_t pass)
{
    if (!a->ctl->active) {
        return;
    }
    uint32_t *h = a->tk_hist + pass * NGL_GPU_HIST_BINS;
    for (uint64_t i = 0; i < a->count; i++) {
        int32_t bin = ngl_gpu_tk_bin(a->ctl, pass, a->tk_key[i]);
        if (bin >= 0) {
            h[bin]++;
        }
    }
}

/* Chunk c of tile t, as thread c of the tile's CTA. */
static uint64_t emu_tile_i0(uint32_t t, uint32_t c)
{
    return ((uint64_t)t * NGL_GPU_TILE_THREADS + c) * NGL_GPU_CHUNK;
}

static void emu_tk_count(const ngl_gpu_args *a)
{
    const uint32_t T = a->ctl->thresh;
    for (uint32_t t = 0; t < a->ntiles; t++) {
        uint32_t gt = 0, eq = 0, ex = 0;
        for (uint32_t c = 0; c < NGL_GPU_TILE_THREADS; c++) {
            const uint64_t i0 = emu_tile_i0(t, c);
            ngl_gpu_tk_count8(a, i0, ngl_gpu_chunk_len(i0, a->count), T, &gt, &eq, &ex);
        }
        a->tk_tiles[6u * t + 0] = gt;
        a->tk_tiles[6u * t + 1] = eq;
        a->tk_tiles[6u * t + 2] = ex;
    }
}

static void emu_tk_scan(const ngl_gpu_args *a)
{
    ngl_gpu_ctl *C = a->ctl;
    uint64_t eq_before = 0, sel_before = 0, exc_before = 0;
    for (uint32_t t = 0; t < a->ntiles; t++) {
        uint32_t *w = a->tk_tiles + 6u * t;
        w[3] = (uint32_t)eq_before;
        w[4] = (uint32_t)sel_before;
        w[5] = (uint32_t)exc_before;
        sel_before += ngl_gpu_tk_tile_sel(w[0], w[1], eq_before, C->take_eq);
        eq_before += w[1];
        exc_before += w[2];
    }
    C->nsel = sel_before;
    C->n_exc = (uint32_t)exc_before;
}

static void emu_tk_rank(const ngl_gpu_args *a)
{
    const uint32_t T = a->ctl->thresh;
    const uint64_t take_eq = a->ctl->take_eq;
    for (uint32_t t = 0; t < a->ntiles; t++) {
        const uint32_t *w = a->tk_tiles + 6u * t;
        uint64_t eq_base = w[3], sel_base = w[4], exc_base = w[5];
        for (uint32_t c = 0; c < NGL_GPU_TILE_THREADS; c++) {
            const uint64_t i0 = emu_tile_i0(t, c);
            const uint32_t n = ngl_gpu_chunk_len(i0, a->count);
            uint32_t gt = 0, eq = 0, ex = 0, excmask = 0;
            ngl_gpu_tk_count8(a, i0, n, T, &gt, &eq, &ex);
            uint32_t selmask = ngl_gpu_tk_select8(a, i0, n, T, take_eq, eq_base, &excmask);
            ngl_gpu_tk_rank8(a, i0, n, selmask, excmask, sel_base, exc_base);
            eq_base += eq;
            sel_base += ngl_gpu_popc8(selmask);
            exc_base += ngl_gpu_popc8(excmask);
        }
    }
}

static void emu_tk_quant(const ngl_gpu_args *a)
{
    const uint64_t k = a->ctl->nsel;
    uint64_t vb = 0;
    for (uint64_t e0 = 0; e0 < k; e0 += NGL_GPU_CHUNK) {
        vb += ngl_gpu_tk_quant8(a, e0, ngl_gpu_chunk_len(e0, k));
    }
    a->ctl->vbytes += vb;
}

int ngl_gpu_launch(ngl_gpu_kernel k, const ngl_gpu_args *a, ngl_gpu_stream s)
{
    (void)s;
    switch (k) {
    case NGL_GK_ENC_DENSE:
        for (uint32_t b = 0; b < a->nblocks; b++) {
            ngl_gpu_encode_block(a, b, 0, 1);
        }
        return 0;
    case NGL_GK_EXC_GATHER: emu_exc_gather(a); return 0;
    case NGL_GK_DEC_DENSE:
    case NGL_GK_DEC_TOPK:
        for (uint32_t b = 0; b < a->nblocks; b++) {
            ngl_gpu_decode_block(a, b, 0, 1, k == NGL_GK_DEC_TOPK);
        }
        return 0;
    case NGL_GK_TK_KEYS: emu_tk_keys(a); return 0;
    case NGL_GK_TK_PICK0: ngl_gpu_tk_pick(a->ctl, a->k_max, a->tk_hist, 0); return 0;
    case NGL_GK_TK_HIST1: emu_tk_hist(a, 1); return 0;
    case NGL_GK_TK_PICK1:
        ngl_gpu_tk_pick(a->ctl, a->k_max, a->tk_hist + NGL_GPU_HIST_BINS, 1);
        return 0;
    case NGL_GK_TK_HIST2: emu_tk_hist(a, 2); return 0;
    case NGL_GK_TK_PICK2:
        ngl_gpu_tk_pick(a->ctl, a->k_max, a->tk_hist + 2u * NGL_GPU_HIST_BINS, 2);
        return 0;
    case NGL_GK_TK_COUNT: emu_tk_count(a); return 0;
    case NGL_GK_TK_SCAN: emu_tk_scan(a); return 0;
    case NGL_GK_TK_RANK: emu_tk_rank(a); return 0;
    case NGL_GK_TK_GROUP: {
        const uint64_t ng = (a->ctl->nsel + a->block - 1u) / a->block;
        for (uint64_t g = 0; g < ng; g++) {
            ngl_gpu_tk_group(a, g, a->ctl->nsel, 0, 1);
        }
        return 0;
    }
    case NGL_GK_TK_QUANT: emu_tk_quant(a); return 0;
    case NGL_GK_TK_GATE:
        if (a->pred != NGL_PRED_NONE) {
            for (uint32_t b = 0; b < a->nblocks; b++) {
                ngl_gpu_gate_store(a, b, a->tk_ga[b], a->tk_gc[b]);
            }
        }
        return 0;
    case NGL_GK_COUNT_: break;
    }
    return 1;
}
