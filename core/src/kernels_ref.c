/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernels_ref.c -- the portable reference kernels. These define the
 * semantics (docs/wire-format.md sections 4 and 5); SIMD and CUDA variants
 * must reproduce them bit for bit.
 */
#include "ngl_kernels.h"

#include <math.h>

static inline void ref_put_code(ngl_dense_job *j, uint64_t pos, int32_t q)
{
    if (j->int4) {
        uint8_t *p = j->codes + (pos >> 1);
        uint8_t nib = (uint8_t)(q & 0xf);
        if (pos & 1u) {
            *p = (uint8_t)((*p & 0x0fu) | (nib << 4));
        } else {
            *p = (uint8_t)((*p & 0xf0u) | nib);
        }
    } else {
        j->codes[pos] = (uint8_t)(int8_t)q;
    }
}

static inline int32_t ref_get_code(const ngl_dense_job *j, uint64_t pos)
{
    if (j->int4) {
        uint8_t byte = j->codes[pos >> 1];
        int32_t nib = (pos & 1u) ? (byte >> 4) : (byte & 0xf);
        return (nib ^ 8) - 8; /* sign-extend the nibble */
    }
    return (int8_t)j->codes[pos];
}

void ngl_ref_encode_block(ngl_dense_job *j, uint32_t b, uint64_t sent)
{
    const uint64_t lo = (uint64_t)b * j->block;
    const uint64_t hi = NGL_MIN(lo + j->block, j->count);
    const int skipped = j->skip != NULL && ngl_bit_get(j->skip, b);
    const int use_pred = j->pred != NGL_PRED_NONE && j->gate[b];
    float a = 0.0f, c = 0.0f;

    if (use_pred) {
        j->gated_blocks++;
    }

    /* Pass 1: residuals and the block's largest finite magnitude. */
    float maxabs = 0.0f;
    for (uint64_t i = lo; i < hi; i++) {
        float x = j->x[i];
        float t = j->ef ? x + j->ef[i] : x;
        if (!ngl_f32_finite(t)) {
            t = x;
        }
        float p = use_pred ? ngl_pred_raw(j, i) : 0.0f;
        float r = t - p;
        j->rbuf[i - lo] = r;
        if (ngl_f32_finite(r)) {
            float ar = ngl_absf(r);
            if (ar > maxabs) {
                maxabs = ar;
            }
        }
    }

    float scale = 0.0f, inv = 0.0f;
    if (!skipped) {
        ngl_block_scale(maxabs, j->qmax, &scale, &inv);
        ngl_wr_u32(j->scales + sent * 4, ngl_f32_bits(scale));
    }
    const uint64_t code0 = sent * j->block;

    /* Pass 2: quantize, reconstruct exactly as the decoder will, update. */
    for (uint64_t i = lo; i < hi; i++) {
        float r = j->rbuf[i - lo];
        float x = j->x[i];
        float praw = ngl_pred_raw(j, i);
        float p = use_pred ? praw : 0.0f;
        float xhat = p;
        int32_t q = 0;
        /* NaN/Inf input or residual overflow: carried exactly */
        int exc = !ngl_f32_finite(r);
        if (!exc && !skipped) {
            float u = ngl_rng_uniform(j->key, (uint32_t)i);
            q = ngl_sr_quantize(r, inv, u, j->qmax);
            xhat = p + ngl_dequantize(q, scale);
        }
        if (!exc && !ngl_f32_finite(xhat)) {
            /* a finite input whose reconstruction overflows (q * scale
             * near FLT_MAX, or a huge prediction) is carried exactly too:
             * a finite value never decodes to Inf */
            exc = 1;
            q = 0;
        }
        if (exc) {
            ngl_exc_append(j, i);
            xhat = x;
        }
        if (!skipped) {
            ref_put_code(j, code0 + (i - lo), q);
        }
        if (j->ef) {
            /* e <- t - xhat; nothing to carry for a non-finite input */
            float t = x + j->ef[i];
            if (!ngl_f32_finite(t)) {
                t = x;
            }
            j->ef[i] = ngl_f32_finite(x) ? t - xhat : 0.0f;
        }
        ngl_state_update(j, i, xhat, praw, &a, &c);
    }
    ngl_gate_store(j, b, a, c);
}

void ngl_ref_decode_block(ngl_dense_job *j, uint32_t b, uint64_t sent)
{
    const uint64_t lo = (uint64_t)b * j->block;
    const uint64_t hi = NGL_MIN(lo + j->block, j->count);
    const int skipped = j->skip != NULL && ngl_bit_get(j->skip, b);
    const int use_pred = j->pred != NGL_PRED_NONE && j->gate[b];
    const size_t esz = 4u + j->exc_dsize;
    float a = 0.0f, c = 0.0f;
    float scale = 0.0f;

    if (use_pred) {
        j->gated_blocks++;
    }
    if (!skipped) {
        scale = ngl_bits_f32(ngl_rd_u32(j->scales + sent * 4));
    }
    const uint64_t code0 = sent * j->block;

    for (uint64_t i = lo; i < hi; i++) {
        float praw = ngl_pred_raw(j, i);
        float p = use_pred ? praw : 0.0f;
        float xhat;
        if (j->exc_cursor < j->n_exc && ngl_rd_u32(j->exc + (size_t)j->exc_cursor * esz) == i) {
            const uint8_t *e = j->exc + (size_t)j->exc_cursor * esz + 4;
            xhat = ngl_exc_value(j, e);
            j->exc_cursor++;
        } else if (skipped) {
            xhat = p;
        } else {
            xhat = p + ngl_dequantize(ref_get_code(j, code0 + (i - lo)), scale);
        }
        if (j->accumulate) {
            j->out[i] += xhat;
        } else {
            j->out[i] = xhat;
        }
        ngl_state_update(j, i, xhat, praw, &a, &c);
    }
    ngl_gate_store(j, b, a, c);
}

static void ref_encode_dense(ngl_dense_job *j, uint32_t b0, uint32_t b1, uint64_t sent)
{
    for (uint32_t b = b0; b < b1; b++) {
        ngl_ref_encode_block(j, b, sent);
        if (j->skip == NULL || !ngl_bit_get(j->skip, b)) {
            sent++;
        }
    }
}

static void ref_decode_dense(ngl_dense_job *j, uint32_t b0, uint32_t b1, uint64_t sent)
{
    for (uint32_t b = b0; b < b1; b++) {
        ngl_ref_decode_block(j, b, sent);
        if (j->skip == NULL || !ngl_bit_get(j->skip, b)) {
            sent++;
        }
    }
}

static void ref_f16_to_f32(const void *src, float *dst, size_t n)
{
    const uint16_t *s = (const uint16_t *)src;
    for (size_t i = 0; i < n; i++) {
        dst[i] = ngl_f16_to_f32(s[i]);
    }
}

static void ref_bf16_to_f32(const void *src, float *dst, size_t n)
{
    const uint16_t *s = (const uint16_t *)src;
    for (size_t i = 0; i < n; i++) {
        dst[i] = ngl_bf16_to_f32(s[i]);
    }
}

static void ref_f32_to_f16_sat(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    for (size_t i = 0; i < n; i++) {
        d[i] = ngl_f32_to_f16_sat(src[i]);
    }
}

static void ref_f32_to_bf16_sat(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    for (size_t i = 0; i < n; i++) {
        d[i] = ngl_f32_to_bf16_sat(src[i]);
    }
}

static void ref_f16_accumulate(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    for (size_t i = 0; i < n; i++) {
        d[i] = ngl_f32_to_f16(ngl_f16_to_f32(d[i]) + src[i]);
    }
}

static void ref_bf16_accumulate(const float *src, void *dst, size_t n)
{
    uint16_t *d = (uint16_t *)dst;
    for (size_t i = 0; i < n; i++) {
        d[i] = ngl_f32_to_bf16(ngl_bf16_to_f32(d[i]) + src[i]);
    }
}

static uint64_t ref_topk_scan(const float *x, float *ef, uint32_t *key, const uint8_t *skip,
                              uint32_t block, uint64_t n, uint64_t *n_nonfinite)
{
    uint64_t eligible = 0, bad = 0;
    for (uint64_t lo = 0, b = 0; lo < n; lo += block, b++) {
        const uint64_t hi = NGL_MIN(lo + block, n);
        const uint32_t live = (skip && ngl_bit_get(skip, b)) ? 0u : 0xffffffffu;
        for (uint64_t i = lo; i < hi; i++) {
            float t = x[i];
            if (ef) {
                float te = x[i] + ef[i];
                t = ngl_f32_finite(te) ? te : x[i];
            }
            uint32_t mag = ngl_f32_bits(t) & 0x7fffffffu;
            int fin = mag < 0x7f800000u;
            uint32_t k = (fin ? mag + 1u : 0u) & live;
            key[i] = k;
            eligible += k != 0;
            bad += !fin;
            if (ef) {
                ef[i] = fin ? t : 0.0f;
            }
        }
    }
    *n_nonfinite = bad;
    return eligible;
}

static uint64_t ref_topk_collect(const uint32_t *key, uint64_t n, uint32_t min_key, uint32_t *out,
                                 uint64_t cap)
{
    uint64_t found = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (key[i] >= min_key) {
            if (found == cap) {
                return cap + 1;
            }
            out[found++] = (uint32_t)i;
        }
    }
    return found;
}

const ngl_kernels ngl_kernels_ref = {
    .isa = NGL_ISA_REF,
    .name = "ref",
    .encode_dense = ref_encode_dense,
    .decode_dense = ref_decode_dense,
    .f16_to_f32 = ref_f16_to_f32,
    .bf16_to_f32 = ref_bf16_to_f32,
    .f32_to_f16_sat = ref_f32_to_f16_sat,
    .f32_to_bf16_sat = ref_f32_to_bf16_sat,
    .f16_accumulate = ref_f16_accumulate,
    .bf16_accumulate = ref_bf16_accumulate,
    .topk_scan = ref_topk_scan,
    .topk_collect = ref_topk_collect,
};
