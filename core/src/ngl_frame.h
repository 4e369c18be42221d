/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_frame.h -- a frame against its stream configuration: the one
 * validating parser, and the layout helpers the encoders write with.
 *
 * Core's decoder and the CUDA host decoder (kernels/src/gpu_decoder.c) both
 * validate through ngl_frame_validate(), so they accept exactly the same
 * frames and reject the others with the same status. Core's encoder and the
 * CUDA host encoder (kernels/src/gpu_encoder.c) lay out masks, preambles,
 * index lists and headers with the helpers below, so their frames agree
 * byte for byte. Private to core and kernels/; docs/wire-format.md is the
 * definition of every check and field.
 */
#ifndef NGL_FRAME_H
#define NGL_FRAME_H

#include "ngl_kernels.h"
#include "ngl_wire.h"

/* Bytes the mask section takes for nblocks blocks. */
static inline size_t ngl_mask_bytes(uint32_t nblocks)
{
    return NGL_DIV_CEIL((size_t)nblocks, 8u);
}

/* Bytes of a code section of @p n INT8 or INT4 codes. */
static inline uint64_t ngl_codes_bytes(uint64_t n, int int4)
{
    return int4 ? NGL_DIV_CEIL(n, 2u) : n;
}

/* Top-K: k_max = ceil(topk_fraction * count), at most count; 0 when Top-K
 * is off or count is 0. Receivers reject a frame with a larger k. */
NGL_HIDDEN uint64_t ngl_topk_k_max(const ngl_stream_config *cfg);

/* ---- validation -------------------------------------------------------- */

/* What ngl_frame_validate() may write, sized for the configuration when the
 * stream is created, so that validation never allocates. */
typedef struct ngl_frame_scratch {
    ngl_backend_ctx *backend; /* lossless back-end state (used with body) */
    uint8_t *body;            /* body_cap bytes for a back end's output; NULL
                                 when the stream has no back end, which makes a
                                 compressed frame a configuration mismatch */
    size_t body_cap;          /* ngl_body_bound(cfg) */
    uint32_t *sel;            /* Top-K: k_max entries, the selected indices */
    uint8_t *flags;           /* EPS: ceil(count / 8) bytes */
} ngl_frame_scratch;

/* Where the sections of a validated frame are. The pointers point into the
 * frame, or into the scratch body (after a back end) and sel; they are
 * valid while those are. Fields a codec does not have are 0 / NULL. */
typedef struct ngl_frame_view {
    ngl_frame_info fi;   /* the header */
    const uint8_t *body; /* the body, after the back end */
    size_t body_len;
    uint32_t n_exc;        /* exception entries (common preamble) */
    const uint8_t *exc;    /* n_exc entries of 4 + dtype size bytes, indices
                              strictly increasing and below count */
    const uint8_t *mask;   /* INT8/INT4: the skip bitmap; NULL: no MASK flag */
    const uint8_t *scales; /* INT8/INT4: n_scales f32, finite, sign clear */
    uint64_t n_scales;
    const uint8_t *codes; /* INT8/INT4: n_codes codes; EPS: the varints;
                             RAW: the count values */
    uint64_t n_codes;     /* INT8/INT4: coded elements (Top-K: k) */
    uint64_t codes_len;   /* bytes of the code section */
    uint64_t k;           /* Top-K: selected elements; 0 otherwise */
    const uint32_t *sel;  /* Top-K: their k indices, increasing, none in a
                             skipped block (scratch sel); NULL otherwise */
    double eps;           /* EPS: the frame's bound (the stream's, bit for bit) */
} ngl_frame_view;

/*
 * Validates a whole frame for a stream created with @p cfg (a configuration
 * ngl_stream_config_check() accepts) whose next step is @p step: header and
 * CRC, count, configuration, stream id, step, back end, preambles and every
 * section of the body, in the order docs/wire-format.md gives, stopping at
 * the first failure. Writes only the scratch and *v; never allocates.
 *
 * @return NGL_OK with *v describing the frame, or the status of the first
 *         check that failed (*v is then unspecified).
 */
NGL_HIDDEN ngl_status ngl_frame_validate(const ngl_stream_config *cfg, uint64_t step,
                                         const uint8_t *src, size_t len,
                                         const ngl_frame_scratch *scratch, ngl_frame_view *v);

/* ---- layout, for the encoders ------------------------------------------ */

/* Writes the common preamble: n_exc and the predictor parameter. */
static inline void ngl_write_preamble(const ngl_stream_config *cfg, uint8_t *body, uint32_t n_exc)
{
    ngl_wr_u32(body, n_exc);
    uint32_t param = 0;
    if (cfg->predictor == NGL_PRED_MOMENTUM) {
        param = ngl_f32_bits(cfg->momentum_beta);
    }
    ngl_wr_u32(body + 4, param);
}

/* Writes the Top-K preamble after the common one. */
static inline void ngl_topk_write_preamble(uint8_t *body, uint64_t k, size_t idx_bytes,
                                           unsigned fmt)
{
    ngl_wr_u32(body + 8, (uint32_t)k);
    ngl_wr_u32(body + 12, (uint32_t)idx_bytes);
    body[16] = (uint8_t)fmt;
    body[17] = body[18] = body[19] = 0;
}

/* Varint-gap index list of the @p k increasing indices @p sel: its length,
 * and the list written at @p dst (returns the bytes written). */
NGL_HIDDEN size_t ngl_topk_gaps_len(const uint32_t *sel, uint64_t k);
NGL_HIDDEN size_t ngl_topk_gaps_put(uint8_t *dst, const uint32_t *sel, uint64_t k);

/* Sorts @p n exception entries of @p esz bytes by index. */
NGL_HIDDEN void ngl_exc_sort(uint8_t *exc, size_t n, size_t esz);

/* Copies a caller's skip bitmap for @p nblocks blocks, bits at or above
 * nblocks cleared. */
NGL_HIDDEN void ngl_mask_copy(uint8_t *dst, const uint8_t *src, uint32_t nblocks);

/* This step's skip bitmap for @p nblocks blocks: @p user if not NULL, else
 * the rotation of @p mask_fraction at @p step (nangila.h). @return 1 if
 * any block is skipped. */
NGL_HIDDEN int ngl_mask_build(uint8_t *mask, uint32_t nblocks, const uint8_t *user,
                              double mask_fraction, uint64_t step);

/* Sent blocks and coded elements of a dense body under @p mask. */
NGL_HIDDEN void ngl_mask_count(const uint8_t *mask, uint32_t nblocks, uint32_t block,
                               uint64_t count, uint64_t *n_sent, uint64_t *coded);

/* Writes the header of a frame of @p cfg's stream at @p step with @p flags
 * and a payload of @p payload_len bytes (already in place after it), and
 * the CRC. @return the frame length. */
NGL_HIDDEN size_t ngl_frame_seal(uint8_t *frame, const ngl_stream_config *cfg, uint16_t flags,
                                 uint64_t step, size_t payload_len);

#endif /* NGL_FRAME_H */
