/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_stream.h -- state shared by the encoder and the decoder of a stream.
 *
 * Both sides embed one ngl_stream. Everything that must stay bit-identical
 * between them (step, history, predictor arrays, gate bits) lives here and
 * is changed only by code that both sides run on the same reconstructed
 * values. The rest are scratch buffers sized at create time, so the data
 * path never allocates.
 */
#ifndef NGL_STREAM_H
#define NGL_STREAM_H

#include "ngl_kernels.h"
#include "ngl_wire.h"

typedef struct ngl_stream {
    ngl_stream_config cfg;
    const ngl_kernels *k;
    uint64_t count;
    uint32_t block;
    uint32_t nblocks;
    size_t dsize;        /* bytes per element of cfg.dtype */
    int topk;            /* cfg.topk_fraction > 0 */
    uint64_t k_max;      /* Top-K: ceil(f * count) */

    /* closed-loop state */
    uint64_t step;
    uint32_t hist;       /* saturates at 2 */
    void *st1, *st2;     /* float arrays (INT8/INT4) or double arrays (EPS) */
    uint8_t *gate;       /* per block, when a predictor is configured */

    /* scratch */
    float *x32;          /* f16/bf16 <-> f32 conversion, count floats */
    float *rbuf;         /* one block of residuals */
    uint8_t *body;       /* body before/after the lossless back end */
    size_t body_cap;
    uint8_t *mask;       /* this step's skip bitmap, ceil(nblocks/8) bytes */
    float *tk_r;         /* Top-K encoder: residual per element */
    uint32_t *tk_key;    /* Top-K encoder: selection key per element */
    uint32_t *tk_sel;    /* Top-K: selected indices, k_max entries */
    uint32_t *tk_late;   /* Top-K encoder: selected elements sent as exceptions */
    uint8_t *tk_varint;  /* Top-K encoder: varint index bytes, 5 * k_max */
    float *tk_gate;      /* Top-K encoder: per-block gate evidence (a, c) */
    uint32_t *tk_hist;   /* Top-K encoder: 4 x 2048 radix histograms */
    uint8_t *flags;      /* EPS: one bit per element (exception / zero code) */
    ngl_backend_ctx backend;
} ngl_stream;

NGL_HIDDEN ngl_status ngl_stream_init(ngl_stream *s, const ngl_stream_config *cfg, int encoder);
NGL_HIDDEN void ngl_stream_fini(ngl_stream *s);
NGL_HIDDEN void ngl_stream_reset(ngl_stream *s);
NGL_HIDDEN uint64_t ngl_stream_hash(const ngl_stream *s);
NGL_HIDDEN void ngl_stream_advance(ngl_stream *s);

/* Worst-case body size for cfg (no header, no back-end prefix). */
NGL_HIDDEN uint64_t ngl_body_bound(const ngl_stream_config *cfg);

/* Bytes the mask section takes for nblocks blocks. */
static inline size_t ngl_mask_bytes(uint32_t nblocks)
{
    return NGL_DIV_CEIL((size_t)nblocks, 8u);
}

/* Elements in block b. */
static inline uint32_t ngl_block_len(const ngl_stream *s, uint32_t b)
{
    uint64_t lo = (uint64_t)b * s->block;
    return (uint32_t)NGL_MIN((uint64_t)s->block, s->count - lo);
}

/* Per-codec entry points (encoder.c, decoder.c, topk.c, eps.c). Each
 * writes a complete body at @p body and returns its length in *body_len,
 * and reports the header flags it needs. */
typedef struct ngl_encoder ngl_encoder;
NGL_HIDDEN ngl_status ngl_topk_encode_body(ngl_stream *s, float *ef, const float *x,
                                           const void *src_raw, const uint8_t *skip,
                                           uint8_t *body, size_t *body_len, uint64_t *n_exc,
                                           uint64_t *gated);
NGL_HIDDEN ngl_status ngl_topk_decode_body(ngl_stream *s, const uint8_t *body, size_t body_len,
                                           int has_mask, float *out, int accumulate,
                                           uint64_t *n_exc);
NGL_HIDDEN ngl_status ngl_eps_encode_body(ngl_stream *s, const void *src, uint8_t *body,
                                          size_t *body_len, uint64_t *n_exc, uint64_t *gated);
NGL_HIDDEN ngl_status ngl_eps_decode_body(ngl_stream *s, const uint8_t *body, size_t body_len,
                                          void *dst, int accumulate);

/* White-box access to an encoder's closed-loop state and error feedback
 * (NULL when EF is off), for the CUDA parity tests in kernels/ that compare
 * GPU state arrays with the CPU encoder's element by element. Read only. */
NGL_HIDDEN const ngl_stream *ngl_encoder_stream(const ngl_encoder *enc);
NGL_HIDDEN const float *ngl_encoder_ef(const ngl_encoder *enc);

/* Writes the common preamble. */
static inline void ngl_write_preamble(const ngl_stream *s, uint8_t *body, uint32_t n_exc)
{
    ngl_wr_u32(body, n_exc);
    uint32_t param = 0;
    if (s->cfg.predictor == NGL_PRED_MOMENTUM) {
        param = ngl_f32_bits(s->cfg.momentum_beta);
    }
    ngl_wr_u32(body + 4, param);
}

/* Checks the common preamble's predictor parameter against the stream. */
static inline ngl_status ngl_check_preamble(const ngl_stream *s, const uint8_t *body)
{
    uint32_t param = ngl_rd_u32(body + 4);
    uint32_t want = s->cfg.predictor == NGL_PRED_MOMENTUM ? ngl_f32_bits(s->cfg.momentum_beta) : 0u;
    if (s->cfg.predictor == NGL_PRED_MOMENTUM) {
        float beta = ngl_bits_f32(param);
        if (!(beta >= 0.0f && beta < 1.0f)) {
            return NGL_ERR_BAD_FLAGS;
        }
    }
    return param == want ? NGL_OK : (s->cfg.predictor == NGL_PRED_MOMENTUM
                                         ? NGL_ERR_CONFIG_MISMATCH
                                         : NGL_ERR_BAD_FLAGS);
}

#endif /* NGL_STREAM_H */
