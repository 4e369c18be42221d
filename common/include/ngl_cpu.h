/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_cpu.h -- which instruction-set extensions this CPU (and the OS, for
 * the wider registers) supports. The one CPU check of the tree: core's and
 * hpc's kernel dispatchers ask it which of their per-ISA static libraries
 * they may call.
 */
#ifndef NGL_CPU_H
#define NGL_CPU_H

#include <stdint.h>

/* Feature bits; a kernel names the set it was compiled for. */
#define NGL_CPU_SSE42    (1u << 0)
#define NGL_CPU_AVX2     (1u << 1)
#define NGL_CPU_F16C     (1u << 2)
#define NGL_CPU_AVX512F  (1u << 3)
#define NGL_CPU_AVX512BW (1u << 4)
#define NGL_CPU_AVX512VL (1u << 5)
#define NGL_CPU_AVX512DQ (1u << 6)
#define NGL_CPU_AVX512CD (1u << 7)

/** The NGL_CPU_* bits this CPU supports (0 on anything but x86). Cheap
 *  enough for set-up paths; the hot paths keep the answer. Thread-safe. */
__attribute__((visibility("hidden"))) uint32_t ngl_cpu_features(void);

/** 1 when this CPU supports every feature in @p mask. */
static inline int ngl_cpu_has(uint32_t mask)
{
    return (ngl_cpu_features() & mask) == mask;
}

#endif /* NGL_CPU_H */
