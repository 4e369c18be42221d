/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crc32c_sse42.c -- CRC32C with SSE4.2's crc32 instruction, the same
 * function as crc32c.c's table version. Compiled alone with -msse4.2, in its
 * own static library (core/meson.build); crc32c.c calls it only where
 * ngl_cpu_has(NGL_CPU_SSE42).
 */
#include "ngl_internal.h"

#include <nmmintrin.h>

/* Operates on the inverted running value, as crc32c_sw(). */
uint32_t ngl_crc32c_sse42(uint32_t c, const uint8_t *p, size_t len)
{
    uint64_t c64 = c;
    while (len && ((uintptr_t)p & 7u)) {
        c64 = _mm_crc32_u8((uint32_t)c64, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        len -= 8;
    }
    while (len--) {
        c64 = _mm_crc32_u8((uint32_t)c64, *p++);
    }
    return (uint32_t)c64;
}
