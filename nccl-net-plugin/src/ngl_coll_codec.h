/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_coll_codec.h -- the only compression calls the collNet makes, behind
 * one small table, so that a device-memory back end (CUDA) can replace the
 * host one without touching the protocol code in collnet.c.
 *
 * "Data" pointers (src/dst of encode/decode, copy, zero) point into the
 * buffers NCCL hands to iallreduce: host memory for the host back end,
 * device memory for a device back end. Frames are always in host memory:
 * they are what the transport moves.
 *
 * Streams are created during set-up or on the first call of a slice class
 * (warm-up); encode/decode/copy/zero never allocate.
 */
#ifndef NGL_COLL_CODEC_H
#define NGL_COLL_CODEC_H

#include "nangila.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ngl_cc_stream ngl_cc_stream;

typedef struct ngl_cc_ops {
    const char *name;
    /** Create the encoder (@p is_encoder 1) or decoder side of @p cfg.
     *  @return NGL_OK and *out, or the core's error (nothing allocated). */
    ngl_status (*create)(const ngl_stream_config *cfg, int is_encoder, ngl_cc_stream **out);
    /** Free @p s; NULL is a no-op. */
    void (*destroy)(ngl_cc_stream *s);
    /** Encode cfg.count elements at @p src (data memory) into the host
     *  frame @p frame of @p cap bytes (>= ngl_encode_bound()). */
    ngl_status (*encode)(ngl_cc_stream *s, const void *src, void *frame, size_t cap, size_t *len);
    /** Decode the host frame into @p dst (data memory); @p accumulate adds
     *  to what @p dst holds. A rejected frame changes nothing. */
    ngl_status (*decode)(ngl_cc_stream *s, const void *frame, size_t len, void *dst,
                         int accumulate);
    /** Copy @p bytes between two data buffers (they do not overlap). */
    void (*copy)(void *dst, const void *src, size_t bytes);
    /** Set @p bytes of a data buffer to zero. */
    void (*zero)(void *dst, size_t bytes);
    /** Encoder statistics: input bytes and frame bytes so far. */
    void (*stats)(const ngl_cc_stream *s, uint64_t *bytes_in, uint64_t *bytes_out);
} ngl_cc_ops;

/** Host memory: the core's encoder/decoder, memcpy and memset. */
extern const ngl_cc_ops ngl_cc_host_ops;

#endif /* NGL_COLL_CODEC_H */
