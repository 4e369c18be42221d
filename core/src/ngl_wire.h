/* SPDX-License-Identifier: Apache-2.0 */
/* ngl_wire.h -- frame header constants and codec (docs/wire-format.md). */
#ifndef NGL_WIRE_H
#define NGL_WIRE_H

#include "ngl_internal.h"

#define NGL_MAGIC          0x1A4C474Eu /* bytes 4E 47 4C 1A */
#define NGL_FORMAT_VERSION 1u

#define NGL_FLAG_EF            0x0001u
#define NGL_FLAG_TOPK          0x0002u
#define NGL_FLAG_MASK          0x0004u
#define NGL_FLAG_BACKEND_SHIFT 3
#define NGL_FLAG_BACKEND_MASK  0x0018u
#define NGL_FLAGS_KNOWN        0x001fu

#define NGL_PREAMBLE_COMMON 8u
#define NGL_PREAMBLE_TOPK   12u
#define NGL_PREAMBLE_EPS    16u

#define NGL_TOPK_FMT_BITMAP 0u
#define NGL_TOPK_FMT_VARINT 1u

/* Offsets inside the 48-byte header. */
#define NGL_HDR_PAYLOAD_LEN 40u
#define NGL_HDR_CRC         44u

static inline unsigned ngl_flags_backend(uint16_t flags)
{
    return (flags & NGL_FLAG_BACKEND_MASK) >> NGL_FLAG_BACKEND_SHIFT;
}

/* Write every header field except the CRC. */
NGL_HIDDEN void ngl_wire_write_header(uint8_t *dst, const ngl_frame_info *fi);

/* Compute and store the CRC of a complete frame. */
NGL_HIDDEN void ngl_wire_seal(uint8_t *frame, size_t frame_len);

/* Validate a frame header (and the CRC if asked); see the spec's order. */
NGL_HIDDEN ngl_status ngl_wire_parse(const uint8_t *src, size_t len, int check_crc,
                                     ngl_frame_info *fi);

/* Lossless back ends (lossless.c). A context holds reusable zstd state so
 * that encode/decode never allocate; create it with the stream. */
typedef struct ngl_backend_ctx {
    void *zstd_c; /* ZSTD_CCtx* */
    void *zstd_d; /* ZSTD_DCtx* */
} ngl_backend_ctx;

NGL_HIDDEN int ngl_backend_available(unsigned backend);
NGL_HIDDEN ngl_status ngl_backend_ctx_init(ngl_backend_ctx *ctx, int want_zstd);
NGL_HIDDEN void ngl_backend_ctx_fini(ngl_backend_ctx *ctx);
/* @return compressed size, or 0 if it does not fit in dst_cap or fails. */
NGL_HIDDEN size_t ngl_backend_compress(ngl_backend_ctx *ctx, unsigned backend, const uint8_t *src,
                                       size_t len, uint8_t *dst, size_t dst_cap);
/* @return NGL_OK iff src decodes to exactly out_len bytes, else
 *         NGL_ERR_BAD_BACKEND (or NGL_ERR_BACKEND_UNAVAILABLE). */
NGL_HIDDEN ngl_status ngl_backend_decompress(ngl_backend_ctx *ctx, unsigned backend,
                                             const uint8_t *src, size_t len, uint8_t *dst,
                                             size_t out_len);

#endif /* NGL_WIRE_H */
