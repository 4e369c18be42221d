/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_bits.h -- the raw-bit section of hpc records (FORMAT.md §4.4): the
 * bits the rANS tokens leave out (low bits of large residuals, values
 * stored exactly), appended LSB first, bytes in order.
 */
#ifndef NGL_HPC_BITS_H
#define NGL_HPC_BITS_H

#include "ngl_byteorder.h"

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/* Bits are appended LSB first, bytes in order. The writer keeps fewer than 32
 * bits pending and stores 32 at a time: the work per value is a shift, an OR
 * and an add, and the one branch is rarely taken. */
typedef struct hpc_bitw {
    uint8_t *buf;
    size_t cap, pos; /* bytes */
    uint64_t acc;    /* pending bits, fewer than 32 */
    unsigned nacc;
} hpc_bitw;

static inline void hpc_bitw_init(hpc_bitw *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->pos = 0;
    w->acc = 0;
    w->nacc = 0;
}

/* Append the low @p n bits of @p v, n <= 64. The caller sized buf for the worst case. */
static inline __attribute__((always_inline)) void hpc_bitw_put(hpc_bitw *w, uint64_t v, unsigned n)
{
    if (n > 32) { /* rare: exact values, huge residuals */
        hpc_bitw_put(w, v, 32);
        v >>= 32;
        n -= 32;
    }
    v &= ((uint64_t)1 << n) - 1; /* n <= 32 */
    w->acc |= v << w->nacc;      /* nacc < 32: fits */
    w->nacc += n;
    if (w->nacc >= 32) { /* taken about once per 32 bits: predictable */
        assert(w->pos + 4 <= w->cap);
        ngl_wr_u32(w->buf + w->pos, (uint32_t)w->acc);
        w->pos += 4;
        w->acc >>= 32;
        w->nacc -= 32;
    }
}

/* Flush; @return total bytes. */
static inline size_t hpc_bitw_finish(hpc_bitw *w)
{
    while (w->nacc > 0) {
        assert(w->pos < w->cap);
        w->buf[w->pos++] = (uint8_t)w->acc;
        w->acc >>= 8;
        w->nacc = w->nacc > 8 ? w->nacc - 8 : 0;
    }
    return w->pos;
}

typedef struct hpc_bitr {
    const uint8_t *buf;
    size_t len, pos; /* bytes */
    uint64_t acc;
    unsigned nacc;
    int overrun; /* set when more bits were read than the buffer holds */
} hpc_bitr;

static inline void hpc_bitr_init(hpc_bitr *r, const uint8_t *buf, size_t len)
{
    r->buf = buf;
    r->len = len;
    r->pos = 0;
    r->acc = 0;
    r->nacc = 0;
    r->overrun = 0;
}

static inline uint64_t hpc_bitr_get(hpc_bitr *r, unsigned n)
{
    if (n == 0) {
        return 0;
    }
    if (n > 56) {
        uint64_t lo = hpc_bitr_get(r, 32);
        return lo | (hpc_bitr_get(r, n - 32) << 32);
    }
    while (r->nacc < n) {
        uint64_t b = 0;
        if (r->pos < r->len) {
            b = r->buf[r->pos++];
        } else {
            r->overrun = 1;
        }
        r->acc |= b << r->nacc;
        r->nacc += 8;
    }
    uint64_t v = r->acc & (((uint64_t)1 << n) - 1);
    r->acc >>= n;
    r->nacc -= n;
    return v;
}

#endif /* NGL_HPC_BITS_H */
