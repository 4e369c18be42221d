/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_varint.h -- unsigned LEB128 varints and the zigzag map, as the wire
 * format (docs/wire-format.md) and the hpc container (hpc/FORMAT.md) define
 * them: seven bits a byte, low group first, the high bit set on every byte
 * but the last. Readers accept only the canonical (shortest) form, so each
 * value has exactly one encoding.
 */
#ifndef NGL_VARINT_H
#define NGL_VARINT_H

#include "ngl_common.h"

#include <stddef.h>
#include <stdint.h>

/* Writes @p v at @p p (room for ngl_varint_len(v), at most 10 bytes).
 * @return the bytes written. */
NGL_CFN size_t ngl_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80u) {
        p[n++] = (uint8_t)(v | 0x80u);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* @return the bytes ngl_varint_put() writes for @p v (1 to 10). */
NGL_CFN size_t ngl_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80u) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Reads a canonical varint of up to 64 bits from buf[*pos, end) and moves
 * *pos past it. @return 0, or -1 if it is truncated, overlong (a trailing
 * zero group) or above 2^64 - 1; *pos is then somewhere inside it. */
NGL_CFN int ngl_varint_get(const uint8_t *buf, size_t end, size_t *pos, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= end) {
            return -1;
        }
        const uint8_t b = buf[(*pos)++];
        if (shift == 63 && b > 1) {
            return -1;
        }
        v |= (uint64_t)(b & 0x7Fu) << shift;
        if (!(b & 0x80u)) {
            if (b == 0 && shift > 0) {
                return -1; /* overlong: a trailing zero group */
            }
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Reads a canonical varint below 2^32 (at most 5 bytes) from the @p avail
 * bytes at @p p. @return the bytes consumed, or 0 if it is truncated,
 * overlong or too large. */
NGL_CFN size_t ngl_varint_get32(const uint8_t *p, size_t avail, uint32_t *out)
{
    size_t pos = 0;
    uint64_t v;
    if (ngl_varint_get(p, avail < 5 ? avail : 5, &pos, &v) != 0 || v > 0xffffffffu) {
        return 0;
    }
    *out = (uint32_t)v;
    return pos;
}

/* Signed to unsigned with small magnitudes small: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ... */
NGL_CFN uint64_t ngl_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

NGL_CFN int64_t ngl_unzigzag(uint64_t z)
{
    return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

#endif /* NGL_VARINT_H */
