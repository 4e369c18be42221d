/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gpu_dev_cuda.cu -- the device of ngl_gpu_dev.h on CUDA: memory and copies
 * through the runtime, and the kernels. A kernel here only maps threads to
 * work (blocks, chunks, tiles) and combines lanes and threads (warp and
 * block scans); every element is computed by the functions of
 * ngl_gpu_ops.h, which the CPU emulator (gpu_dev_emu.c) runs too.
 *
 * Built with --fmad=false and IEEE division/sqrt, denormals kept: the
 * arithmetic is core's, one rounding per operation.
 */
#include "ngl_gpu_dev.h"

#include <cub/block/block_scan.cuh>
#include <cuda_runtime.h>

#define NGL_WARPS_PER_CTA 8u
#define NGL_CTA           (NGL_WARPS_PER_CTA * 32u)

namespace {

/* Warp w of the grid handles scale block w. No __syncthreads anywhere, so a
 * warp past the last block may simply return. */
__global__ void __launch_bounds__(NGL_CTA, 3) k_enc_dense(const ngl_gpu_args a)
{
    const uint32_t b = blockIdx.x * NGL_WARPS_PER_CTA + (threadIdx.x >> 5);
    if (b >= a.nblocks) {
        return;
    }
    ngl_gpu_encode_block(&a, b, threadIdx.x & 31u, 32u);
}

template <int TOPK> __global__ void __launch_bounds__(NGL_CTA, 3) k_dec(const ngl_gpu_args a)
{
    const uint32_t b = blockIdx.x * NGL_WARPS_PER_CTA + (threadIdx.x >> 5);
    if (b >= a.nblocks) {
        return;
    }
    ngl_gpu_decode_block(&a, b, threadIdx.x & 31u, 32u, TOPK);
}

/* One CTA: exclusive scan of the per-block exception counts, in rounds of
 * 1024 blocks; each thread copies its block's entries to their slots. */
__global__ void __launch_bounds__(1024) k_exc_gather(const ngl_gpu_args a)
{
    if (a.ctl->n_exc == 0) {
        return; /* the common case: the whole CTA leaves together */
    }
    typedef cub::BlockScan<uint32_t, 1024> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    uint64_t carry = 0;
    for (uint32_t base = 0; base < a.nblocks; base += 1024u) {
        const uint32_t b = base + threadIdx.x;
        const uint32_t v = b < a.nblocks ? a.blk_exc[b] : 0u;
        uint32_t off, total;
        scan_t(tmp).ExclusiveSum(v, off, total);
        if (v > 0) {
            ngl_gpu_exc_write_block(&a, b, carry + off);
        }
        carry += total;
        __syncthreads(); /* tmp is reused next round */
    }
}

/* Thread per chunk; digit-0 histogram privatised in shared memory. */
__global__ void __launch_bounds__(256) k_tk_keys(const ngl_gpu_args a)
{
    __shared__ uint32_t h[NGL_GPU_HIST_BINS];
    for (uint32_t d = threadIdx.x; d < NGL_GPU_HIST_BINS; d += blockDim.x) {
        h[d] = 0;
    }
    __syncthreads();
    const uint64_t i0 = ((uint64_t)blockIdx.x * blockDim.x + threadIdx.x) * NGL_GPU_CHUNK;
    const uint32_t n = ngl_gpu_chunk_len(i0, a.count);
    uint32_t key[8];
    const uint32_t elig = ngl_gpu_tk_keys8(&a, i0, n, key);
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        if (j >= n) {
            continue;
        }
        atomicAdd(&h[key[j] >> 21], 1u);
    }
    const uint32_t warp_elig = ngl_warp_sum(elig);
    if ((threadIdx.x & 31u) == 0 && warp_elig > 0) {
        atomicAdd((unsigned long long *)&a.ctl->eligible, (unsigned long long)warp_elig);
    }
    __syncthreads();
    for (uint32_t d = threadIdx.x; d < NGL_GPU_HIST_BINS; d += blockDim.x) {
        if (h[d] > 0) {
            atomicAdd(&a.tk_hist[d], h[d]);
        }
    }
}

/* Histogram of digit @p pass over the keys that carry the digits found. */
__global__ void __launch_bounds__(256) k_tk_hist(const ngl_gpu_args a, uint32_t pass)
{
    if (!a.ctl->active) {
        return; /* uniform: k = 0, nothing to select */
    }
    __shared__ uint32_t h[NGL_GPU_HIST_BINS];
    for (uint32_t d = threadIdx.x; d < NGL_GPU_HIST_BINS; d += blockDim.x) {
        h[d] = 0;
    }
    __syncthreads();
    const uint64_t i0 = ((uint64_t)blockIdx.x * blockDim.x + threadIdx.x) * NGL_GPU_CHUNK;
    const uint32_t n = ngl_gpu_chunk_len(i0, a.count);
    NGL_GPU_UNROLL
    for (uint32_t j = 0; j < NGL_GPU_CHUNK; j++) {
        if (j >= n) {
            continue;
        }
        const int32_t bin = ngl_gpu_tk_bin(a.ctl, pass, a.tk_key[i0 + j]);
        if (bin >= 0) {
            atomicAdd(&h[bin], 1u);
        }
    }
    __syncthreads();
    uint32_t *out = a.tk_hist + pass * NGL_GPU_HIST_BINS;
    for (uint32_t d = threadIdx.x; d < NGL_GPU_HIST_BINS; d += blockDim.x) {
        if (h[d] > 0) {
            atomicAdd(&out[d], h[d]);
        }
    }
}

__global__ void k_tk_pick(const ngl_gpu_args a, uint32_t pass)
{
    ngl_gpu_tk_pick(a.ctl, a.k_max, a.tk_hist + pass * NGL_GPU_HIST_BINS, pass);
}

/* CTA per tile: how many keys above / at the threshold, how many
 * exceptions. */
__global__ void __launch_bounds__(NGL_GPU_TILE_THREADS) k_tk_count(const ngl_gpu_args a)
{
    __shared__ uint32_t cnt[3];
    if (threadIdx.x < 3u) {
        cnt[threadIdx.x] = 0;
    }
    __syncthreads();
    const uint64_t i0 = ((uint64_t)blockIdx.x * NGL_GPU_TILE_THREADS + threadIdx.x) * NGL_GPU_CHUNK;
    uint32_t gt = 0, eq = 0, ex = 0;
    ngl_gpu_tk_count8(&a, i0, ngl_gpu_chunk_len(i0, a.count), a.ctl->thresh, &gt, &eq, &ex);
    if (gt) {
        atomicAdd(&cnt[0], gt);
    }
    if (eq) {
        atomicAdd(&cnt[1], eq);
    }
    if (ex) {
        atomicAdd(&cnt[2], ex);
    }
    __syncthreads();
    if (threadIdx.x < 3u) {
        a.tk_tiles[6u * blockIdx.x + threadIdx.x] = cnt[threadIdx.x];
    }
}

/* One CTA: per tile, the ties, selected elements and exceptions of all
 * earlier tiles (exclusive scans in rounds of 1024 tiles). */
__global__ void __launch_bounds__(1024) k_tk_scan(const ngl_gpu_args a)
{
    typedef cub::BlockScan<uint32_t, 1024> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    const uint64_t take_eq = a.ctl->take_eq;
    uint64_t eq_c = 0, sel_c = 0, exc_c = 0;
    for (uint32_t base = 0; base < a.ntiles; base += 1024u) {
        const uint32_t t = base + threadIdx.x;
        uint32_t *w = a.tk_tiles + 6u * t;
        const int live = t < a.ntiles;
        const uint32_t gt = live ? w[0] : 0u, eq = live ? w[1] : 0u, ex = live ? w[2] : 0u;
        uint32_t eq_off, sel_off, exc_off, total;
        scan_t(tmp).ExclusiveSum(eq, eq_off, total);
        __syncthreads();
        const uint64_t eq_before = eq_c + eq_off;
        const uint32_t sel = live ? ngl_gpu_tk_tile_sel(gt, eq, eq_before, take_eq) : 0u;
        eq_c += total;
        scan_t(tmp).ExclusiveSum(sel, sel_off, total);
        __syncthreads();
        const uint64_t sel_before = sel_c + sel_off;
        sel_c += total;
        scan_t(tmp).ExclusiveSum(ex, exc_off, total);
        __syncthreads();
        const uint64_t exc_before = exc_c + exc_off;
        exc_c += total;
        if (live) {
            w[3] = (uint32_t)eq_before;
            w[4] = (uint32_t)sel_before;
            w[5] = (uint32_t)exc_before;
        }
    }
    if (threadIdx.x == 0) {
        a.ctl->nsel = sel_c;
        a.ctl->n_exc = (uint32_t)exc_c;
    }
}

/* CTA per tile: selection in index order (ties by rank), then ranks of the
 * selected elements and slots of the exceptions, then the unselected
 * elements' reconstruction, EF and state. */
__global__ void __launch_bounds__(NGL_GPU_TILE_THREADS) k_tk_rank(const ngl_gpu_args a)
{
    typedef cub::BlockScan<uint32_t, NGL_GPU_TILE_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    const uint32_t *w = a.tk_tiles + 6u * blockIdx.x;
    const uint32_t T = a.ctl->thresh;
    const uint64_t take_eq = a.ctl->take_eq;
    const uint64_t i0 = ((uint64_t)blockIdx.x * NGL_GPU_TILE_THREADS + threadIdx.x) * NGL_GPU_CHUNK;
    const uint32_t n = ngl_gpu_chunk_len(i0, a.count);
    uint32_t gt = 0, eq = 0, ex = 0, off;
    ngl_gpu_tk_count8(&a, i0, n, T, &gt, &eq, &ex);
    scan_t(tmp).ExclusiveSum(eq, off);
    __syncthreads();
    uint32_t excmask;
    const uint32_t selmask =
        ngl_gpu_tk_select8(&a, i0, n, T, take_eq, (uint64_t)w[3] + off, &excmask);
    uint32_t sel_off, exc_off;
    scan_t(tmp).ExclusiveSum(ngl_gpu_popc8(selmask), sel_off);
    __syncthreads();
    scan_t(tmp).ExclusiveSum(ngl_gpu_popc8(excmask), exc_off);
    ngl_gpu_tk_rank8(&a, i0, n, selmask, excmask, (uint64_t)w[4] + sel_off,
                     (uint64_t)w[5] + exc_off);
}

/* Warp per selection group. */
__global__ void __launch_bounds__(NGL_CTA) k_tk_group(const ngl_gpu_args a)
{
    const uint64_t g = (uint64_t)blockIdx.x * NGL_WARPS_PER_CTA + (threadIdx.x >> 5);
    const uint64_t k = a.ctl->nsel;
    if (g * a.block >= k) {
        return; /* warp-uniform */
    }
    ngl_gpu_tk_group(&a, g, k, threadIdx.x & 31u, 32u);
}

/* Thread per 8 selected elements; every lane reaches the warp sum. */
__global__ void __launch_bounds__(256) k_tk_quant(const ngl_gpu_args a)
{
    const uint64_t k = a.ctl->nsel;
    const uint64_t e0 = ((uint64_t)blockIdx.x * blockDim.x + threadIdx.x) * NGL_GPU_CHUNK;
    const uint32_t vb = ngl_gpu_tk_quant8(&a, e0, ngl_gpu_chunk_len(e0, k));
    const uint32_t warp_vb = ngl_warp_sum(vb);
    if ((threadIdx.x & 31u) == 0 && warp_vb > 0) {
        atomicAdd((unsigned long long *)&a.ctl->vbytes, (unsigned long long)warp_vb);
    }
}

__global__ void __launch_bounds__(256) k_tk_gate(const ngl_gpu_args a)
{
    const uint32_t b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < a.nblocks) {
        ngl_gpu_gate_store(&a, b, a.tk_ga[b], a.tk_gc[b]);
    }
}

unsigned grid_for(uint64_t items, unsigned per_cta)
{
    return (unsigned)((items + per_cta - 1u) / per_cta);
}

} // namespace

extern "C" {

int ngl_gpu_device_count(int *n)
{
    int c = 0;
    cudaError_t e = cudaGetDeviceCount(&c);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* no driver / no device: not sticky */
        c = 0;
    }
    *n = c;
    return 0;
}

int ngl_gpu_malloc(void **p, size_t bytes)
{
    return (int)cudaMalloc(p, bytes);
}

void ngl_gpu_free(void *p)
{
    (void)cudaFree(p);
}

int ngl_gpu_host_malloc(void **p, size_t bytes)
{
    return (int)cudaHostAlloc(p, bytes, cudaHostAllocDefault);
}

void ngl_gpu_host_free(void *p)
{
    (void)cudaFreeHost(p);
}

int ngl_gpu_memset_async(void *d, int v, size_t n, ngl_gpu_stream s)
{
    if (n == 0) {
        return 0;
    }
    return (int)cudaMemsetAsync(d, v, n, (cudaStream_t)s);
}

int ngl_gpu_memcpy_async(void *dst, const void *src, size_t n, ngl_gpu_stream s)
{
    if (n == 0) {
        return 0;
    }
    return (int)cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, (cudaStream_t)s);
}

int ngl_gpu_stream_sync(ngl_gpu_stream s)
{
    return (int)cudaStreamSynchronize((cudaStream_t)s);
}

int ngl_gpu_stream_create(ngl_gpu_stream *s)
{
    cudaStream_t st = NULL;
    cudaError_t e = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    *s = e == cudaSuccess ? (ngl_gpu_stream)st : NULL;
    return (int)e;
}

void ngl_gpu_stream_destroy(ngl_gpu_stream s)
{
    if (s != NULL) {
        (void)cudaStreamDestroy((cudaStream_t)s);
    }
}

int ngl_gpu_event_create(ngl_gpu_event *ev)
{
    cudaEvent_t e = NULL;
    cudaError_t r = cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
    *ev = r == cudaSuccess ? (ngl_gpu_event)e : NULL;
    return (int)r;
}

void ngl_gpu_event_destroy(ngl_gpu_event ev)
{
    if (ev != NULL) {
        (void)cudaEventDestroy((cudaEvent_t)ev);
    }
}

int ngl_gpu_event_record(ngl_gpu_event ev, ngl_gpu_stream s)
{
    return (int)cudaEventRecord((cudaEvent_t)ev, (cudaStream_t)s);
}

int ngl_gpu_event_query(ngl_gpu_event ev, int *done)
{
    cudaError_t r = cudaEventQuery((cudaEvent_t)ev);
    *done = r == cudaSuccess;
    if (r == cudaErrorNotReady) {
        return 0; /* not an error, and not sticky */
    }
    return (int)r;
}

int ngl_gpu_event_sync(ngl_gpu_event ev)
{
    return (int)cudaEventSynchronize((cudaEvent_t)ev);
}

int ngl_gpu_get_device(int *dev)
{
    return (int)cudaGetDevice(dev);
}

int ngl_gpu_set_device(int dev)
{
    return (int)cudaSetDevice(dev);
}

int ngl_gpu_pointer_device(const void *p, int *dev)
{
    cudaPointerAttributes at;
    *dev = -1;
    cudaError_t r = cudaPointerGetAttributes(&at, p);
    if (r != cudaSuccess) {
        (void)cudaGetLastError(); /* an unknown host pointer is not a failure */
        return r == cudaErrorInvalidValue ? 0 : (int)r;
    }
    if (at.type == cudaMemoryTypeDevice || at.type == cudaMemoryTypeManaged) {
        *dev = at.device;
    }
    return 0;
}

const char *ngl_gpu_error_name(int err)
{
    return cudaGetErrorString((cudaError_t)err);
}

int ngl_gpu_launch(ngl_gpu_kernel k, const ngl_gpu_args *ap, ngl_gpu_stream s)
{
    const ngl_gpu_args a = *ap;
    cudaStream_t st = (cudaStream_t)s;
    const uint64_t nchunks = (a.count + NGL_GPU_CHUNK - 1u) / NGL_GPU_CHUNK;
    const unsigned chunk_grid = grid_for(nchunks, 256u);
    const unsigned warp_grid = grid_for(a.nblocks, NGL_WARPS_PER_CTA);
    switch (k) {
    case NGL_GK_ENC_DENSE:
        if (warp_grid) {
            k_enc_dense<<<warp_grid, NGL_CTA, 0, st>>>(a);
        }
        break;
    case NGL_GK_EXC_GATHER:
        if (a.nblocks) {
            k_exc_gather<<<1, 1024, 0, st>>>(a);
        }
        break;
    case NGL_GK_DEC_DENSE:
        if (warp_grid) {
            k_dec<0><<<warp_grid, NGL_CTA, 0, st>>>(a);
        }
        break;
    case NGL_GK_DEC_TOPK:
        if (warp_grid) {
            k_dec<1><<<warp_grid, NGL_CTA, 0, st>>>(a);
        }
        break;
    case NGL_GK_TK_KEYS:
        if (chunk_grid) {
            k_tk_keys<<<chunk_grid, 256, 0, st>>>(a);
        }
        break;
    case NGL_GK_TK_PICK0:
    case NGL_GK_TK_PICK1:
    case NGL_GK_TK_PICK2:
        /* always: pass 0 also sets k (0 for an empty vector) */
        k_tk_pick<<<1, 1, 0, st>>>(a, k == NGL_GK_TK_PICK0 ? 0u : (k == NGL_GK_TK_PICK1 ? 1u : 2u));
        break;
    case NGL_GK_TK_HIST1:
    case NGL_GK_TK_HIST2:
        if (chunk_grid) {
            k_tk_hist<<<chunk_grid, 256, 0, st>>>(a, k == NGL_GK_TK_HIST1 ? 1u : 2u);
        }
        break;
    case NGL_GK_TK_COUNT:
        if (a.ntiles) {
            k_tk_count<<<a.ntiles, NGL_GPU_TILE_THREADS, 0, st>>>(a);
        }
        break;
    case NGL_GK_TK_SCAN:
        if (a.ntiles) {
            k_tk_scan<<<1, 1024, 0, st>>>(a);
        }
        break;
    case NGL_GK_TK_RANK:
        if (a.ntiles) {
            k_tk_rank<<<a.ntiles, NGL_GPU_TILE_THREADS, 0, st>>>(a);
        }
        break;
    case NGL_GK_TK_GROUP: {
        const unsigned g = grid_for((a.k_max + a.block - 1u) / a.block, NGL_WARPS_PER_CTA);
        if (g) {
            k_tk_group<<<g, NGL_CTA, 0, st>>>(a);
        }
        break;
    }
    case NGL_GK_TK_QUANT: {
        const unsigned g = grid_for((a.k_max + NGL_GPU_CHUNK - 1u) / NGL_GPU_CHUNK, 256u);
        if (g) {
            k_tk_quant<<<g, 256, 0, st>>>(a);
        }
        break;
    }
    case NGL_GK_TK_GATE:
        if (a.pred != NGL_PRED_NONE && a.nblocks) {
            k_tk_gate<<<grid_for(a.nblocks, 256u), 256, 0, st>>>(a);
        }
        break;
    default: return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}

} // extern "C"
