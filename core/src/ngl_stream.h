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

#include "ngl_frame.h"

typedef struct ngl_stream {
    ngl_stream_config cfg;
    const ngl_kernels *k;
    uint64_t count;
    uint32_t block;
    uint32_t nblocks;
    size_t dsize;   /* bytes per element of cfg.dtype */
    int topk;       /* cfg.topk_fraction > 0 */
    uint64_t k_max; /* Top-K: ceil(f * count) */

    /* closed-loop state */
    uint64_t step;
    uint32_t hist;   /* saturates at 2 */
    void *st1, *st2; /* float arrays (INT8/INT4) or double arrays (EPS) */
    uint8_t *gate;   /* per block, when a predictor is configured */

    /* scratch */
    float *x32;    /* f16/bf16 <-> f32 conversion, count floats */
    float *rbuf;   /* one block of residuals */
    uint8_t *body; /* body before/after the lossless back end */
    size_t body_cap;
    uint8_t *mask;      /* this step's skip bitmap, ceil(nblocks/8) bytes */
    float *tk_r;        /* Top-K encoder: residual per element */
    uint32_t *tk_key;   /* Top-K encoder: selection key per element */
    uint32_t *tk_sel;   /* Top-K: selected indices, k_max entries */
    uint32_t *tk_late;  /* Top-K encoder: selected elements sent as exceptions */
    uint8_t *tk_varint; /* Top-K encoder: varint index bytes, 5 * k_max */
    float *tk_gate;     /* Top-K encoder: per-block gate evidence (a, c) */
    uint32_t *tk_hist;  /* Top-K encoder: 4 x 2048 radix histograms */
    uint8_t *flags;     /* EPS: one bit per element (exception / zero code) */
    ngl_backend_ctx backend;
} ngl_stream;

NGL_HIDDEN ngl_status ngl_stream_init(ngl_stream *s, const ngl_stream_config *cfg, int encoder);
NGL_HIDDEN void ngl_stream_fini(ngl_stream *s);
NGL_HIDDEN void ngl_stream_reset(ngl_stream *s);
NGL_HIDDEN uint64_t ngl_stream_hash(const ngl_stream *s);
/* The state fingerprint of ngl_stream_hash(): FNV-1a over step and hist
 * (little-endian u64, u32), then st1, st2 (st_bytes each) and the nblocks
 * gate bytes, each only if not NULL. Also used by the CUDA path after it
 * copied its state to the host. */
NGL_HIDDEN uint64_t ngl_state_hash(uint64_t step, uint32_t hist, const void *st1, const void *st2,
                                   size_t st_bytes, const uint8_t *gate, uint32_t nblocks);
NGL_HIDDEN void ngl_stream_advance(ngl_stream *s);

/* Worst-case body size for cfg (no header, no back-end prefix). */
NGL_HIDDEN uint64_t ngl_body_bound(const ngl_stream_config *cfg);

/* Elements in block b. */
static inline uint32_t ngl_block_len(const ngl_stream *s, uint32_t b)
{
    uint64_t lo = (uint64_t)b * s->block;
    return (uint32_t)NGL_MIN((uint64_t)s->block, s->count - lo);
}

/* Per-codec entry points (encoder.c, decoder.c, topk.c, eps.c). An encoder
 * writes a complete body at @p body and returns its length in *body_len;
 * a decoder reconstructs a frame that ngl_frame_validate() accepted. */
typedef struct ngl_encoder ngl_encoder;
NGL_HIDDEN ngl_status ngl_topk_encode_body(ngl_stream *s, float *ef, const float *x,
                                           const void *src_raw, const uint8_t *skip, uint8_t *body,
                                           size_t *body_len, uint64_t *n_exc, uint64_t *gated);
NGL_HIDDEN void ngl_topk_decode_body(ngl_stream *s, const ngl_frame_view *v, float *out,
                                     int accumulate);
NGL_HIDDEN ngl_status ngl_eps_encode_body(ngl_stream *s, const void *src, uint8_t *body,
                                          size_t *body_len, uint64_t *n_exc, uint64_t *gated);
NGL_HIDDEN void ngl_eps_decode_body(ngl_stream *s, const ngl_frame_view *v, void *dst,
                                    int accumulate);

/* White-box access to an encoder's closed-loop state and error feedback
 * (NULL when EF is off), for the CUDA parity tests in kernels/ that compare
 * GPU state arrays with the CPU encoder's element by element. Read only. */
NGL_HIDDEN const ngl_stream *ngl_encoder_stream(const ngl_encoder *enc);
NGL_HIDDEN const float *ngl_encoder_ef(const ngl_encoder *enc);

#endif /* NGL_STREAM_H */
