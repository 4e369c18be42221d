/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_byteorder.h -- little-endian loads and stores. Everything that crosses
 * a machine or a file (frames, containers, handles, headers) is read and
 * written through these, never by casting a struct. @p p needs no alignment.
 * The shift forms are endian-neutral; compilers turn them into single loads
 * and stores on little-endian machines.
 */
#ifndef NGL_BYTEORDER_H
#define NGL_BYTEORDER_H

#include "ngl_common.h"

#include <stdint.h>
#include <string.h>

NGL_CFN void ngl_wr_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

NGL_CFN void ngl_wr_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

NGL_CFN void ngl_wr_u64(uint8_t *p, uint64_t v)
{
    ngl_wr_u32(p, (uint32_t)v);
    ngl_wr_u32(p + 4, (uint32_t)(v >> 32));
}

NGL_CFN uint16_t ngl_rd_u16(const uint8_t *p)
{
    return (uint16_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8));
}

NGL_CFN uint32_t ngl_rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

NGL_CFN uint64_t ngl_rd_u64(const uint8_t *p)
{
    return (uint64_t)ngl_rd_u32(p) | ((uint64_t)ngl_rd_u32(p + 4) << 32);
}

/* IEEE-754 values by their bit patterns (NaN payloads and signed zeros kept). */
NGL_CFN void ngl_wr_f32(uint8_t *p, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    ngl_wr_u32(p, u);
}

NGL_CFN void ngl_wr_f64(uint8_t *p, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    ngl_wr_u64(p, u);
}

NGL_CFN float ngl_rd_f32(const uint8_t *p)
{
    const uint32_t u = ngl_rd_u32(p);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

NGL_CFN double ngl_rd_f64(const uint8_t *p)
{
    const uint64_t u = ngl_rd_u64(p);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

#endif /* NGL_BYTEORDER_H */
