/* SPDX-License-Identifier: Apache-2.0 */
/*
 * crc32c.c -- CRC32C (Castagnoli, polynomial 0x82F63B78 reflected), the
 * frame checksum. A slicing-by-8 table version is the portable reference;
 * on x86 with SSE4.2 the crc32 instruction computes the same function
 * (crc32c_sse42.c, its own static library built with -msse4.2).
 * "123456789" -> 0xE3069283 (the standard check value).
 */
#include "ngl_internal.h"

#include <pthread.h>

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_table_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = (c & 1u) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        }
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc_table[0][n];
        for (int t = 1; t < 8; t++) {
            c = crc_table[0][c & 0xffu] ^ (c >> 8);
            crc_table[t][n] = c;
        }
    }
}

/* Reference: operates on the inverted running value. */
static uint32_t crc32c_sw(uint32_t c, const uint8_t *p, size_t len)
{
    while (len && ((uintptr_t)p & 7u)) {
        c = crc_table[0][(c ^ *p++) & 0xffu] ^ (c >> 8);
        len--;
    }
    while (len >= 8) {
        uint32_t lo = ngl_rd_u32(p) ^ c;
        uint32_t hi = ngl_rd_u32(p + 4);
        c = crc_table[7][lo & 0xffu] ^ crc_table[6][(lo >> 8) & 0xffu] ^
            crc_table[5][(lo >> 16) & 0xffu] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xffu] ^
            crc_table[2][(hi >> 8) & 0xffu] ^ crc_table[1][(hi >> 16) & 0xffu] ^
            crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) {
        c = crc_table[0][(c ^ *p++) & 0xffu] ^ (c >> 8);
    }
    return c;
}

uint32_t ngl_crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = ~crc;
#if defined(NGL_HAVE_SSE42)
    static int have_hw = -1;
    if (have_hw < 0) {
        have_hw = ngl_cpu_has(NGL_CPU_SSE42);
    }
    if (have_hw) {
        return ~ngl_crc32c_sse42(c, p, len);
    }
#endif
    pthread_once(&crc_once, crc_table_init);
    return ~crc32c_sw(c, p, len);
}

/* For tests: the table version regardless of the CPU. */
NGL_HIDDEN uint32_t ngl_crc32c_ref(uint32_t crc, const void *data, size_t len);
uint32_t ngl_crc32c_ref(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_table_init);
    return ~crc32c_sw(~crc, (const uint8_t *)data, len);
}
