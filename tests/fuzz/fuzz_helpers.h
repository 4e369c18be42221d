/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_helpers.h -- shared by the fuzz targets in tests/fuzz/: a check that
 * aborts (libFuzzer and the replay driver both report an abort as a
 * failure), and a reader that turns fuzzer bytes into parameters.
 */
#ifndef NGL_FUZZ_HELPERS_H
#define NGL_FUZZ_HELPERS_H

#include "nangila.h"
#include "ngl_hash.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Consumes parameters from the front of the input; past the end it yields
 * zeros, so every input is usable. */
typedef struct fuzz_reader {
    const uint8_t *p;
    size_t n;
} fuzz_reader;

static inline uint32_t fuzz_u8(fuzz_reader *r)
{
    if (r->n == 0) {
        return 0;
    }
    r->n--;
    return *r->p++;
}

static inline uint32_t fuzz_u16(fuzz_reader *r)
{
    uint32_t lo = fuzz_u8(r);
    return lo | (fuzz_u8(r) << 8);
}

static inline uint64_t fuzz_u64(fuzz_reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)fuzz_u8(r) << (8 * i);
    }
    return v;
}

/* Copies @p n bytes (zero-filled past the end of the input). */
static inline void fuzz_bytes(fuzz_reader *r, void *dst, size_t n)
{
    size_t k = n < r->n ? n : r->n;
    memcpy(dst, r->p, k);
    memset((uint8_t *)dst + k, 0, n - k);
    r->p += k;
    r->n -= k;
}

/* FNV-1a, for deterministic data derived from the input. */
static inline uint64_t fuzz_hash(const void *p, size_t n)
{
    return ngl_fnv1a(NGL_FNV_INIT, p, n);
}

static inline uint64_t fuzz_mix(uint64_t x)
{
    return ngl_hash_splitmix64(x);
}

/*
 * A stream configuration from 16 input bytes. Every field is forced into its
 * valid range, so the result passes ngl_stream_config_check() except when
 * the build lacks zstd (the caller skips those).
 */
static inline void fuzz_config(fuzz_reader *r, ngl_stream_config *c, uint64_t count_max)
{
    static const double eps_table[] = {1e-12, 1e-6, 1e-3, 0.25, 1.0, 1e6};
    static const double frac_table[] = {0.0, 0.01, 0.1, 0.3, 0.5, 1.0};
    ngl_stream_config_init(c);
    uint32_t a = fuzz_u8(r), b = fuzz_u8(r), d = fuzz_u8(r);
    c->codec = (ngl_codec)(a & 3u);
    c->predictor = (ngl_predictor)((a >> 2) % 3u);
    c->lossless = (ngl_lossless)((a >> 4) & 3u);
    c->dtype = (ngl_dtype)((a >> 6) & 3u);
    if (c->codec == NGL_CODEC_RAW) {
        c->predictor = NGL_PRED_NONE;
    }
    if (c->codec == NGL_CODEC_EPS && (c->dtype == NGL_DTYPE_F16 || c->dtype == NGL_DTYPE_BF16)) {
        c->dtype = NGL_DTYPE_F32;
    }
    if ((c->codec == NGL_CODEC_INT8 || c->codec == NGL_CODEC_INT4) && c->dtype == NGL_DTYPE_F64) {
        c->dtype = NGL_DTYPE_F32;
    }
    int quant = c->codec == NGL_CODEC_INT8 || c->codec == NGL_CODEC_INT4;
    c->block_size = 8u * (1u + (b & 15u));
    c->error_feedback = quant ? (int)((b >> 4) & 1u) : 0;
    c->isa = (ngl_isa)((b >> 5) & 3u);
    if (!ngl_isa_available(c->isa)) {
        c->isa = NGL_ISA_REF;
    }
    c->topk_fraction = quant ? frac_table[d % 6u] : 0.0;
    c->mask_fraction = quant ? frac_table[(d / 6u) % 5u] : 0.0; /* < 1 */
    c->eps = eps_table[(d / 30u) % 6u];
    c->momentum_beta = (float)fuzz_u8(r) / 256.0f;
    c->seed = fuzz_u64(r);
    c->stream_id = fuzz_u16(r);
    c->count = fuzz_u16(r) % (count_max + 1);
}

#endif /* NGL_FUZZ_HELPERS_H */
