/* SPDX-License-Identifier: Apache-2.0 */
/* ngl_internal.h -- helpers shared by core's translation units. Private. */
#ifndef NGL_INTERNAL_H
#define NGL_INTERNAL_H

#include "nangila.h"
/* The common layer: little-endian access (the wire is read and written only
 * through it), LEB128 varints (Top-K indices, ε codes, the RLE back end),
 * FNV-1a state fingerprints, CPU features. */
#include "ngl_byteorder.h"
#include "ngl_cpu.h"
#include "ngl_hash.h"
#include "ngl_varint.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NGL_HIDDEN         __attribute__((visibility("hidden")))
#define NGL_UNUSED         __attribute__((unused))
#define NGL_LIKELY(x)      __builtin_expect(!!(x), 1)
#define NGL_UNLIKELY(x)    __builtin_expect(!!(x), 0)
#define NGL_MIN(a, b)      ((a) < (b) ? (a) : (b))
#define NGL_MAX(a, b)      ((a) > (b) ? (a) : (b))
#define NGL_DIV_CEIL(a, b) (((a) + (b)-1) / (b))
#define NGL_ALIGN          64u

/* ---- memory: every core allocation goes through here ------------------- */
NGL_HIDDEN void *ngl_malloc(size_t size); /* NGL_ALIGN-aligned, zeroed */
NGL_HIDDEN void ngl_free(void *p);

/* ---- logging ----------------------------------------------------------- */
NGL_HIDDEN void ngl_log(ngl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define NGL_LOG_WARN_(...)  ngl_log(NGL_LOG_WARN, __VA_ARGS__)
#define NGL_LOG_DEBUG_(...) ngl_log(NGL_LOG_DEBUG, __VA_ARGS__)

/* ---- CRC32C ------------------------------------------------------------ */
/* With SSE4.2's crc32 instruction (crc32c_sse42.c, its own static library
 * built with -msse4.2; NGL_HAVE_SSE42 where it is): the table version's
 * function, on the inverted running value. Call only where
 * ngl_cpu_has(NGL_CPU_SSE42). */
NGL_HIDDEN uint32_t ngl_crc32c_sse42(uint32_t c, const uint8_t *p, size_t len);

/* ---- CPU features: what each kernel variant needs (common's ngl_cpu.h) */
#define NGL_CPU_NEEDS_AVX2 (NGL_CPU_AVX2 | NGL_CPU_F16C)
#define NGL_CPU_NEEDS_AVX512                                                                       \
    (NGL_CPU_NEEDS_AVX2 | NGL_CPU_AVX512F | NGL_CPU_AVX512BW | NGL_CPU_AVX512VL | NGL_CPU_AVX512DQ)

#endif /* NGL_INTERNAL_H */
