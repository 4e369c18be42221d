/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_common.h -- what every header of the common layer needs. Private:
 * never installed, never part of a public API. The common layer depends on
 * nothing of ours; core, engine, kernels, hpc and both interposition layers
 * sit on it (core/README.md, "Layering").
 */
#ifndef NGL_COMMON_H
#define NGL_COMMON_H

/* A small function every caller inlines: host code, and under nvcc device
 * code too (kernels/ reads the wire through the same helpers). */
#if defined(__CUDACC__)
#define NGL_CFN __host__ __device__ __forceinline__
#else
#define NGL_CFN static inline
#endif

#endif /* NGL_COMMON_H */
