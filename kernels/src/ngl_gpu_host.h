/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_gpu_host.h -- host-side helpers shared by gpu_encoder.c and
 * gpu_decoder.c: stream geometry, device allocation, CUDA error reporting.
 * Plain C on top of ngl_gpu_dev.h; no CUDA header is needed here.
 */
#ifndef NGL_GPU_HOST_H
#define NGL_GPU_HOST_H

#include "ngl_cuda.h"
#include "ngl_gpu_dev.h"
#include "ngl_stream.h"

/* Geometry of a stream on the GPU path (what ngl_stream_init derives). */
typedef struct ngl_gpu_geom {
    ngl_stream_config cfg;
    uint64_t count;
    uint32_t block, nblocks;
    uint32_t dsize, esz; /* element bytes; exception entry bytes */
    int int4, topk, ef;
    uint64_t k_max;       /* Top-K: ceil(f * count), at most count */
    uint64_t ngroups_max; /* Top-K: ceil(k_max / block) */
    uint32_t ntiles;      /* Top-K: ceil(count / NGL_GPU_TILE) */
    size_t mask_bytes;    /* ceil(nblocks / 8) */
} ngl_gpu_geom;

/* Check @p cfg like core does, then that the GPU path serves it.
 * @return NGL_OK, NGL_ERR_INVALID_ARG or NGL_ERR_UNSUPPORTED. */
NGL_HIDDEN ngl_status ngl_gpu_geom_init(ngl_gpu_geom *g, const ngl_stream_config *cfg);

/* Elements in block b. */
static inline uint32_t ngl_gpu_geom_block_len(const ngl_gpu_geom *g, uint32_t b)
{
    uint64_t lo = (uint64_t)b * g->block;
    return (uint32_t)NGL_MIN((uint64_t)g->block, g->count - lo);
}

/* Base kernel arguments for the geometry and the closed-loop state. */
NGL_HIDDEN void ngl_gpu_args_init(ngl_gpu_args *a, const ngl_gpu_geom *g, uint32_t hist, float *st1,
                                  float *st2, uint8_t *gate);

/* Device allocation of at least 64 bytes (so size 0 still yields a
 * pointer). Records a failure in *err. @return NGL_OK or NGL_ERR_NO_MEMORY. */
NGL_HIDDEN ngl_status ngl_gpu_alloc(void **p, size_t bytes, int *err);
NGL_HIDDEN ngl_status ngl_gpu_alloc_host(void **p, size_t bytes, int *err);

/* Record backend error @p err for @p what, log it, and map it to a status:
 * 0 -> NGL_OK, anything else -> NGL_ERR_DEVICE. */
NGL_HIDDEN ngl_status ngl_gpu_check(int err, int *last, const char *what);

/* ngl_state_hash() of (step, hist, st1, st2, gate), as ngl_stream_hash();
 * the state arrays are copied from the device first. *st gets the status. */
NGL_HIDDEN uint64_t ngl_gpu_state_hash(const ngl_gpu_geom *g, uint64_t step, uint32_t hist,
                                       const float *d_st1, const float *d_st2,
                                       const uint8_t *d_gate, int *last, ngl_status *st);

/* Zero the closed-loop state arrays that exist, on stream @p s; waits for
 * @p s when @p sync is 1. */
NGL_HIDDEN ngl_status ngl_gpu_state_zero(const ngl_gpu_geom *g, float *d_st1, float *d_st2,
                                         uint8_t *d_gate, float *d_ef, ngl_gpu_stream s, int sync,
                                         int *last);

/* Copy the state arrays that exist to the non-NULL host arrays. */
NGL_HIDDEN ngl_status ngl_gpu_state_get(const ngl_gpu_geom *g, const float *d_ef,
                                        const float *d_st1, const float *d_st2,
                                        const uint8_t *d_gate, float *ef, float *st1, float *st2,
                                        uint8_t *gate, int *last);

/* For a mask with at least one skipped block: each block's index among the
 * sent blocks (skipped blocks get the next sent block's index), the number
 * of sent blocks and of coded elements. */
NGL_HIDDEN void ngl_gpu_sent_index(const ngl_gpu_geom *g, const uint8_t *mask, uint32_t *sent,
                                   uint64_t *n_sent, uint64_t *coded);

#endif /* NGL_GPU_HOST_H */
