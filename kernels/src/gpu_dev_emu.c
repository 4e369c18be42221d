/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gpu_dev_emu.c -- the device of ngl_gpu_dev.h emulated on the CPU, for
 * tests only (never linked into anything shipped). Each kernel of
 * gpu_dev_cuda.cu is replayed with the same functions of ngl_gpu_ops.h:
 * blocks, tiles and chunks in index order, one lane per warp, the block
 * scans done serially. "Device" memory is host memory filled with a poison
 * pattern, so a kernel that reads something nobody wrote shows up as a
 * mismatch against core instead of passing by luck.
 *
 * Asynchrony is emulated too: memsets, copies and launches go into one
 * process-wide queue (every stream shares it, which is one of the orders a
 * GPU may pick) and run only when a stream or event synchronisation, or an
 * event query, reaches them. An event query answers "not ready" the first
 * time it finds its work still queued and runs the work on the next query,
 * so callers that poll see both answers, and callers that read results
 * without waiting read stale or poisoned bytes, as they would on a GPU.
 */
#include "ngl_gpu_dev.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { EMU_OOM = 2, EMU_BAD = 3 };

typedef enum { OP_MEMSET, OP_MEMCPY, OP_LAUNCH } emu_op_kind;

typedef struct emu_op {
    emu_op_kind kind;
    ngl_gpu_kernel kernel;
    void *dst;
    const void *src;
    size_t n;
    int v;
    ngl_gpu_args args;
} emu_op;

struct CUevent_st {
    uint64_t pos; /* ops before this position must have run; 0: never recorded */
    unsigned polls;
};

struct CUstream_st {
    int unused;
};

static pthread_mutex_t emu_lock = PTHREAD_MUTEX_INITIALIZER;
static emu_op *emu_ring;     /* queued ops, [emu_head, emu_tail) by position */
static size_t emu_cap;       /* ring capacity, a power of two */
static uint64_t emu_head;    /* position of the next op to run */
static uint64_t emu_tail;    /* position of the next op to queue */
static __thread int emu_dev; /* the calling thread's "current device" */

static void emu_run_kernel(ngl_gpu_kernel k, const ngl_gpu_args *a);

/* Run queued ops up to position @p pos. Lock held. */
static void emu_drain(uint64_t pos)
{
    while (emu_head < pos && emu_head < emu_tail) {
        emu_op *op = &emu_ring[emu_head & (emu_cap - 1u)];
        switch (op->kind) {
        case OP_MEMSET: memset(op->dst, op->v, op->n); break;
        case OP_MEMCPY: memmove(op->dst, op->src, op->n); break;
        case OP_LAUNCH: emu_run_kernel(op->kernel, &op->args); break;
        }
        emu_head++;
    }
}

/* Append @p op. @return 0 or EMU_OOM. */
static int emu_push(const emu_op *op)
{
    pthread_mutex_lock(&emu_lock);
    if (emu_tail - emu_head == emu_cap) {
        size_t cap = emu_cap ? 2u * emu_cap : 64u;
        emu_op *ring = malloc(cap * sizeof *ring);
        if (ring == NULL) {
            pthread_mutex_unlock(&emu_lock);
            return EMU_OOM;
        }
        for (uint64_t p = emu_head; p < emu_tail; p++) {
            ring[p & (cap - 1u)] = emu_ring[p & (emu_cap - 1u)];
        }
        free(emu_ring);
        emu_ring = ring;
        emu_cap = cap;
    }
    emu_ring[emu_tail & (emu_cap - 1u)] = *op;
    emu_tail++;
    pthread_mutex_unlock(&emu_lock);
    return 0;
}

int ngl_gpu_device_count(int *n)
{
    *n = 1;
    return 0;
}

int ngl_gpu_malloc(void **p, size_t bytes)
{
    *p = malloc(bytes);
    if (*p == NULL) {
        return EMU_OOM;
    }
    memset(*p, 0xa5, bytes);
    return 0;
}

void ngl_gpu_free(void *p)
{
    /* Like cudaFree: work still queued may use the memory. */
    (void)ngl_gpu_stream_sync(NULL);
    free(p);
}

int ngl_gpu_host_malloc(void **p, size_t bytes)
{
    return ngl_gpu_malloc(p, bytes);
}

void ngl_gpu_host_free(void *p)
{
    ngl_gpu_free(p);
}

int ngl_gpu_memset_async(void *d, int v, size_t n, ngl_gpu_stream s)
{
    (void)s;
    if (n == 0) {
        return 0;
    }
    emu_op op = {.kind = OP_MEMSET, .dst = d, .v = v, .n = n};
    return emu_push(&op);
}

int ngl_gpu_memcpy_async(void *dst, const void *src, size_t n, ngl_gpu_stream s)
{
    (void)s;
    if (n == 0) {
        return 0;
    }
    emu_op op = {.kind = OP_MEMCPY, .dst = dst, .src = src, .n = n};
    return emu_push(&op);
}

int ngl_gpu_stream_sync(ngl_gpu_stream s)
{
    (void)s;
    pthread_mutex_lock(&emu_lock);
    emu_drain(emu_tail);
    pthread_mutex_unlock(&emu_lock);
    return 0;
}

int ngl_gpu_stream_create(ngl_gpu_stream *s)
{
    *s = calloc(1, sizeof **s);
    return *s == NULL ? EMU_OOM : 0;
}

void ngl_gpu_stream_destroy(ngl_gpu_stream s)
{
    (void)ngl_gpu_stream_sync(s);
    free(s);
}

int ngl_gpu_event_create(ngl_gpu_event *e)
{
    *e = calloc(1, sizeof **e);
    return *e == NULL ? EMU_OOM : 0;
}

void ngl_gpu_event_destroy(ngl_gpu_event e)
{
    free(e);
}

int ngl_gpu_event_record(ngl_gpu_event e, ngl_gpu_stream s)
{
    (void)s;
    if (e == NULL) {
        return EMU_BAD;
    }
    pthread_mutex_lock(&emu_lock);
    e->pos = emu_tail;
    e->polls = 0;
    pthread_mutex_unlock(&emu_lock);
    return 0;
}

int ngl_gpu_event_query(ngl_gpu_event e, int *done)
{
    if (e == NULL) {
        return EMU_BAD;
    }
    pthread_mutex_lock(&emu_lock);
    if (emu_head < e->pos && e->polls++ > 0) {
        emu_drain(e->pos);
    }
    *done = emu_head >= e->pos;
    pthread_mutex_unlock(&emu_lock);
    return 0;
}

int ngl_gpu_event_sync(ngl_gpu_event e)
{
    if (e == NULL) {
        return EMU_BAD;
    }
    pthread_mutex_lock(&emu_lock);
    emu_drain(e->pos);
    pthread_mutex_unlock(&emu_lock);
    return 0;
}

int ngl_gpu_get_device(int *dev)
{
    *dev = emu_dev;
    return 0;
}

int ngl_gpu_set_device(int dev)
{
    if (dev != 0) {
        return EMU_BAD;
    }
    emu_dev = dev;
    return 0;
}

int ngl_gpu_pointer_device(const void *p, int *dev)
{
    /* The emulator's device memory is host memory: every pointer is
     * "device 0", which is what its callers registered it as. */
    *dev = p != NULL ? 0 : -1;
    return 0;
}

const char *ngl_gpu_error_name(int err)
{
    return err == 0 ? "no error"
                    : (err == EMU_OOM ? "out of memory (emulator)" : "invalid value (emulator)");
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
    if ((unsigned)k >= (unsigned)NGL_GK_COUNT_) {
        return EMU_BAD;
    }
    emu_op op = {.kind = OP_LAUNCH, .kernel = k, .args = *a};
    return emu_push(&op);
}

static void emu_run_kernel(ngl_gpu_kernel k, const ngl_gpu_args *a)
{
    switch (k) {
    case NGL_GK_ENC_DENSE:
        for (uint32_t b = 0; b < a->nblocks; b++) {
            ngl_gpu_encode_block(a, b, 0, 1);
        }
        return;
    case NGL_GK_EXC_GATHER: emu_exc_gather(a); return;
    case NGL_GK_DEC_DENSE:
    case NGL_GK_DEC_TOPK:
        for (uint32_t b = 0; b < a->nblocks; b++) {
            ngl_gpu_decode_block(a, b, 0, 1, k == NGL_GK_DEC_TOPK);
        }
        return;
    case NGL_GK_TK_KEYS: emu_tk_keys(a); return;
    case NGL_GK_TK_PICK0: ngl_gpu_tk_pick(a->ctl, a->k_max, a->tk_hist, 0); return;
    case NGL_GK_TK_HIST1: emu_tk_hist(a, 1); return;
    case NGL_GK_TK_PICK1:
        ngl_gpu_tk_pick(a->ctl, a->k_max, a->tk_hist + NGL_GPU_HIST_BINS, 1);
        return;
    case NGL_GK_TK_HIST2: emu_tk_hist(a, 2); return;
    case NGL_GK_TK_PICK2:
        ngl_gpu_tk_pick(a->ctl, a->k_max, a->tk_hist + 2u * NGL_GPU_HIST_BINS, 2);
        return;
    case NGL_GK_TK_COUNT: emu_tk_count(a); return;
    case NGL_GK_TK_SCAN: emu_tk_scan(a); return;
    case NGL_GK_TK_RANK: emu_tk_rank(a); return;
    case NGL_GK_TK_GROUP: {
        const uint64_t ng = (a->ctl->nsel + a->block - 1u) / a->block;
        for (uint64_t g = 0; g < ng; g++) {
            ngl_gpu_tk_group(a, g, a->ctl->nsel, 0, 1);
        }
        return;
    }
    case NGL_GK_TK_QUANT: emu_tk_quant(a); return;
    case NGL_GK_TK_GATE:
        if (a->pred != NGL_PRED_NONE) {
            for (uint32_t b = 0; b < a->nblocks; b++) {
                ngl_gpu_gate_store(a, b, a->tk_ga[b], a->tk_gc[b]);
            }
        }
        return;
    case NGL_GK_COUNT_: break;
    }
}
