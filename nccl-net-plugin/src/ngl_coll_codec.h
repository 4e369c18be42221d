/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_coll_codec.h -- the only compression calls the collNet makes, behind
 * one small table, so that the device-memory back end (CUDA, ngl_cuda.h)
 * and the host one share the protocol code in collnet.c.
 *
 * "Data" pointers (src of encode, dst of decode) point into the buffers
 * NCCL hands to iallreduce: host memory for the host back end, device
 * memory for the device one. Frames are always in host memory (pinned for
 * the device back end): they are what the transport moves.
 *
 * encode() and decode() start an operation; poll() reports, without ever
 * blocking, when it has completed. The host back end completes everything
 * inside encode()/decode() (poll() then says done at once); the device back
 * end enqueues GPU work on the stream given at create() and completes it
 * in poll() (cudaEventQuery). A stream takes the next operation only after
 * poll() said done (busy() tells). Between the start and done, the source
 * data, the frame and the destination must stay untouched.
 *
 * Streams are created during warm-up (the first call of a slice class);
 * encode/decode/poll never allocate.
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
     *  @p queue: the device stream its work goes to (NULL for the host).
     *  @return NGL_OK and *out, or the status (nothing allocated). */
    ngl_status (*create)(const ngl_stream_config *cfg, int is_encoder, void *queue,
                         ngl_cc_stream **out);
    /** Free @p s (waits for its work); NULL is a no-op. */
    void (*destroy)(ngl_cc_stream *s);
    /** Start encoding cfg.count elements at @p src (data memory) into the
     *  host frame @p frame of @p cap bytes (>= ngl_encode_bound()). */
    ngl_status (*encode)(ngl_cc_stream *s, const void *src, void *frame, size_t cap);
    /** Start decoding the host frame into @p dst (data memory);
     *  @p accumulate adds to what @p dst holds. A rejected frame is
     *  reported here and changes nothing. */
    ngl_status (*decode)(ngl_cc_stream *s, const void *frame, size_t len, void *dst,
                         int accumulate);
    /** Never blocks: *done is 1 once the started operation has completed
     *  (for an encode, *len is then the frame length; @p len may be NULL
     *  for a decode). NGL_ERR_DEVICE if the device failed. */
    ngl_status (*poll)(ngl_cc_stream *s, int *done, size_t *len);
    /** 1 while an operation is started and poll() has not said done. */
    int (*busy)(const ngl_cc_stream *s);
} ngl_cc_ops;

/** Host memory: the core's encoder/decoder. */
extern const ngl_cc_ops ngl_cc_host_ops;

#endif /* NGL_COLL_CODEC_H */
