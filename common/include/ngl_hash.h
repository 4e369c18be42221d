/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_hash.h -- the 64-bit mixers and the byte hash. Their values are
 * persisted (rounding noise in every lossy frame, stream ids, state
 * fingerprints, hpc's id map order): changing one changes output bytes.
 */
#ifndef NGL_HASH_H
#define NGL_HASH_H

#include "ngl_common.h"

#include <stddef.h>
#include <stdint.h>

/** splitmix64's finaliser (Stafford's "mix13"): a bijection of 64-bit
 *  words that spreads every input bit over the whole output. 0 maps to 0.
 *  Stream ids, set buckets and the hpc id map use it. */
NGL_CFN uint64_t ngl_hash_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/** One splitmix64 step: the golden-ratio increment, then ngl_hash_mix64().
 *  The codec's random stream (ngl_rng_key_make()) and the plugin's ids use
 *  it; 0 does not map to 0. */
NGL_CFN uint64_t ngl_hash_splitmix64(uint64_t x)
{
    return ngl_hash_mix64(x + 0x9e3779b97f4a7c15ull);
}

/** FNV-1a (64-bit) of @p len bytes at @p data, continuing from @p h
 *  (start with NGL_FNV_INIT): state fingerprints. */
#define NGL_FNV_INIT 0xcbf29ce484222325ull
NGL_CFN uint64_t ngl_fnv1a(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#endif /* NGL_HASH_H */
