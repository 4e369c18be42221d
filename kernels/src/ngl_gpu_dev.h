/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_gpu_dev.h -- what the host side (gpu_encoder.c, gpu_decoder.c) needs
 * from a device: memory, copies, stream order and the kernels of
 * ngl_gpu_ops.h. Two implementations link against the same host code:
 *
 *   gpu_dev_cuda.cu  the CUDA runtime and the real kernels;
 *   gpu_dev_emu.c    a CPU emulator (one lane per warp, one thread per
 *                    block, in order) used by the parity tests, so that the
 *                    host code and the shared device functions are checked
 *                    on every machine, with or without a GPU.
 *
 * Every function returns 0 on success or a nonzero backend error code
 * (a cudaError_t for CUDA); ngl_gpu_error_name() names it. Calls on one
 * stream execute in order; ngl_gpu_stream_sync() waits for all of them.
 * Work is asynchronous on both: the emulator queues it and runs it only
 * when a synchronisation or an event query reaches it, so host code that
 * reads a result before waiting for it fails in the tests as on a GPU.
 */
#ifndef NGL_GPU_DEV_H
#define NGL_GPU_DEV_H

#include "ngl_gpu_ops.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define NGL_GPU_HIDDEN __attribute__((visibility("hidden")))
#else
#define NGL_GPU_HIDDEN
#endif

/* cudaStream_t without the CUDA headers; NULL is the legacy default stream. */
typedef struct CUstream_st *ngl_gpu_stream;
/* cudaEvent_t without the CUDA headers. */
typedef struct CUevent_st *ngl_gpu_event;

typedef enum ngl_gpu_kernel {
    NGL_GK_ENC_DENSE = 0, /* warp per block: ngl_gpu_encode_block */
    NGL_GK_EXC_GATHER,    /* one CTA: ordered exception entries from blk_exc */
    NGL_GK_DEC_DENSE,     /* warp per block: ngl_gpu_decode_block(topk=0) */
    NGL_GK_DEC_TOPK,      /* warp per block: ngl_gpu_decode_block(topk=1) */
    NGL_GK_TK_KEYS,       /* thread per chunk: keys, digit-0 histogram */
    NGL_GK_TK_PICK0,      /* one thread: radix digit 0 (and k) */
    NGL_GK_TK_HIST1,      /* thread per chunk: digit-1 histogram */
    NGL_GK_TK_PICK1,
    NGL_GK_TK_HIST2,
    NGL_GK_TK_PICK2,
    NGL_GK_TK_COUNT, /* CTA per tile: gt / eq / exc counts */
    NGL_GK_TK_SCAN,  /* one CTA: tile offsets */
    NGL_GK_TK_RANK,  /* CTA per tile: selection, bitmap, exceptions */
    NGL_GK_TK_GROUP, /* warp per group: scales */
    NGL_GK_TK_QUANT, /* thread per 8 selected: codes, EF, state */
    NGL_GK_TK_GATE,  /* thread per block: gate bits */
    NGL_GK_COUNT_
} ngl_gpu_kernel;

/* @return 0 and the number of usable devices in *n (0 when there is no
 * driver or no device). */
NGL_GPU_HIDDEN int ngl_gpu_device_count(int *n);

NGL_GPU_HIDDEN int ngl_gpu_malloc(void **p, size_t bytes);
NGL_GPU_HIDDEN void ngl_gpu_free(void *p);
/* Page-locked host memory (staging for asynchronous copies). */
NGL_GPU_HIDDEN int ngl_gpu_host_malloc(void **p, size_t bytes);
NGL_GPU_HIDDEN void ngl_gpu_host_free(void *p);

/* Stream-ordered memset of device memory, and copy in any direction
 * (unified addressing: the pointers tell host from device). */
NGL_GPU_HIDDEN int ngl_gpu_memset_async(void *d, int v, size_t n, ngl_gpu_stream s);
NGL_GPU_HIDDEN int ngl_gpu_memcpy_async(void *dst, const void *src, size_t n, ngl_gpu_stream s);
NGL_GPU_HIDDEN int ngl_gpu_stream_sync(ngl_gpu_stream s);

/* A stream that does not synchronise with the legacy default stream
 * (cudaStreamNonBlocking), on the current device. */
NGL_GPU_HIDDEN int ngl_gpu_stream_create(ngl_gpu_stream *s);
NGL_GPU_HIDDEN void ngl_gpu_stream_destroy(ngl_gpu_stream s);

/* Completion markers (no timing). record() marks the work enqueued on @p s
 * so far; query() never blocks and sets *done to 1 once all of it has
 * completed (an event never recorded counts as complete); sync() waits. */
NGL_GPU_HIDDEN int ngl_gpu_event_create(ngl_gpu_event *e);
NGL_GPU_HIDDEN void ngl_gpu_event_destroy(ngl_gpu_event e);
NGL_GPU_HIDDEN int ngl_gpu_event_record(ngl_gpu_event e, ngl_gpu_stream s);
NGL_GPU_HIDDEN int ngl_gpu_event_query(ngl_gpu_event e, int *done);
NGL_GPU_HIDDEN int ngl_gpu_event_sync(ngl_gpu_event e);

/* The calling thread's current device, and a change of it. */
NGL_GPU_HIDDEN int ngl_gpu_get_device(int *dev);
NGL_GPU_HIDDEN int ngl_gpu_set_device(int dev);

/* The device that owns memory at @p p in *dev, or -1 for host memory
 * (pinned or not) and addresses CUDA does not know. */
NGL_GPU_HIDDEN int ngl_gpu_pointer_device(const void *p, int *dev);

/* Enqueue kernel @p k with arguments @p a (copied) on @p s. Grids are
 * sized from a: nblocks, count, ntiles, k_max; an empty grid is a no-op. */
NGL_GPU_HIDDEN int ngl_gpu_launch(ngl_gpu_kernel k, const ngl_gpu_args *a, ngl_gpu_stream s);

/* @return a static name for a backend error code. */
NGL_GPU_HIDDEN const char *ngl_gpu_error_name(int err);

#ifdef __cplusplus
}
#endif
#endif /* NGL_GPU_DEV_H */
