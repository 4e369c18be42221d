/* SPDX-License-Identifier: Apache-2.0 */
/* ngl_internal.h -- helpers shared by core's translation units. Private. */
#ifndef NGL_INTERNAL_H
#define NGL_INTERNAL_H

#include "nangila.h"

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

/* ---- little-endian access: the wire is read and written only through these */
static inline void ngl_wr_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void ngl_wr_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void ngl_wr_u64(uint8_t *p, uint64_t v)
{
    ngl_wr_u32(p, (uint32_t)v);
    ngl_wr_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t ngl_rd_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t ngl_rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t ngl_rd_u64(const uint8_t *p)
{
    return (uint64_t)ngl_rd_u32(p) | ((uint64_t)ngl_rd_u32(p + 4) << 32);
}

/* ---- LEB128 varints (unsigned), used by Top-K indices and the RLE back end */
static inline size_t ngl_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80u) {
        p[n++] = (uint8_t)(v | 0x80u);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static inline size_t ngl_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80u) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Reads a canonical (shortest-form) varint of at most 5 bytes (< 2^32).
 * @return bytes consumed, or 0 if truncated, overlong or too large. */
static inline size_t ngl_varint_get32(const uint8_t *p, size_t avail, uint32_t *out)
{
    uint64_t v = 0;
    size_t i;
    for (i = 0; i < 5 && i < avail; i++) {
        v |= (uint64_t)(p[i] & 0x7fu) << (7 * i);
        if ((p[i] & 0x80u) == 0) {
            if (i > 0 && p[i] == 0) {
                return 0; /* overlong: a trailing zero group */
            }
            if (v > 0xffffffffull) {
                return 0;
            }
            *out = (uint32_t)v;
            return i + 1;
        }
    }
    return 0;
}

/* ---- hashing for state fingerprints (FNV-1a 64) ------------------------- */
static inline uint64_t ngl_fnv1a(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define NGL_FNV_INIT 0xcbf29ce484222325ull

/* ---- CPU feature detection --------------------------------------------- */
NGL_HIDDEN int ngl_cpu_has_avx2(void);
NGL_HIDDEN int ngl_cpu_has_avx512(void);
NGL_HIDDEN int ngl_cpu_has_sse42(void);

#endif /* NGL_INTERNAL_H */
