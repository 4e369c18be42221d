/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_cuda.h -- GPU encoder and decoder for Nangila streams (C API).
 *
 * The same streams and frames as core's ngl_encoder / ngl_decoder
 * (nangila.h, docs/wire-format.md), with the input, output and all
 * per-element state in GPU memory:
 *
 *   - a frame from ngl_cuda_encoder is byte-identical to the frame
 *     ngl_encoder produces for the same config, inputs and step, and the
 *     closed-loop state (predictor, gate, error feedback) is bit-identical;
 *   - ngl_cuda_decoder accepts exactly the frames ngl_decoder accepts, with
 *     the same status for every rejected one, and writes the same output
 *     bits and state.
 *
 * The GPU runs predict, quantize, error feedback, pack (and the reverse);
 * the host assembles the header and CRC with core's own code and validates
 * received frames before anything is written. Frames travel through host
 * memory: the encoder writes its frame into a host buffer (page-locked for
 * speed, e.g. cudaHostAlloc or a registered NCCL buffer), the decoder
 * reads one from a host buffer.
 *
 * Supported: codecs INT8 and INT4, dense or Top-K, block masks, predictors
 * none / momentum / linear, error feedback on or off, dtypes f32, f16 and
 * bf16, lossless back end NGL_LOSSLESS_NONE. Anything else returns
 * NGL_ERR_UNSUPPORTED from create(); callers fall back to core's CPU path.
 *
 * Streams and devices: an object lives on the device that was current at
 * create() and must be used with that device current. Its calls may use any
 * CUDA stream; a submit() must be followed by its finish() before the next
 * submit() on the same object. Objects are not thread-safe.
 *
 * Errors: NGL_ERR_INVALID_ARG / NGL_ERR_DST_TOO_SMALL / frame errors as in
 * nangila.h (nothing enqueued, nothing changed); NGL_ERR_NO_MEMORY when a
 * device or pinned allocation fails; NGL_ERR_UNSUPPORTED when there is no
 * usable device or the config is not served on the GPU; NGL_ERR_DEVICE when
 * a CUDA call fails (the CUDA error code is kept, see
 * ngl_cuda_encoder_cuda_error(), and logged through ngl_set_logger()'s
 * sink). After a CUDA failure in submit()/poll()/finish() the object's
 * state is undefined: reset() or destroy() it.
 *
 * Waiting: finish() blocks until the GPU is done. A caller that must not
 * block (the NCCL plugin's proxy thread) uses poll() instead, which never
 * waits: it checks a CUDA event with cudaEventQuery() and, when the work
 * is done, enqueues what depends on it or completes the frame.
 *
 * Status: none of this has run on a GPU yet (see kernels/README.md).
 */
#ifndef NGL_CUDA_H
#define NGL_CUDA_H

#include "nangila.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cudaStream_t, without including the CUDA headers (same type). */
typedef struct CUstream_st *ngl_cuda_stream;
/* cudaEvent_t, without including the CUDA headers (same type). */
typedef struct CUevent_st *ngl_cuda_event;

/** @return the number of CUDA devices this process can use; 0 when there
 *  is no driver or no device (never an error). */
int ngl_cuda_device_count(void);

/* ------------------------------------------------------------------------ */
/* Streams, events and memory for callers that poll (the NCCL plugin). Thin */
/* wrappers of the CUDA runtime, so that a caller needs no CUDA header and  */
/* runs on the tests' CPU emulator too. Errors: NGL_ERR_INVALID_ARG for a   */
/* NULL argument, NGL_ERR_DEVICE when the CUDA call fails (logged).         */
/* ------------------------------------------------------------------------ */

/** A stream on the current device that does not synchronise with the
 *  legacy default stream (cudaStreamNonBlocking). */
ngl_status ngl_cuda_stream_create(ngl_cuda_stream *out);
/** Destroy @p s (its pending work still completes). NULL is a no-op. */
void ngl_cuda_stream_destroy(ngl_cuda_stream s);

/** An event without timing (cudaEventDisableTiming). */
ngl_status ngl_cuda_event_create(ngl_cuda_event *out);
/** NULL is a no-op. */
void ngl_cuda_event_destroy(ngl_cuda_event ev);
/** Mark the work enqueued on @p s so far. */
ngl_status ngl_cuda_event_record(ngl_cuda_event ev, ngl_cuda_stream s);
/** Never blocks: *done is 1 once the work marked by the last record() has
 *  completed (an event never recorded counts as complete), else 0. */
ngl_status ngl_cuda_event_query(ngl_cuda_event ev, int *done);

/** Enqueue a copy of @p bytes on @p s, in any direction (unified
 *  addressing tells host from device). Host memory should be page-locked:
 *  a copy to or from pageable memory makes the CUDA runtime wait.
 *  @p dst == @p src is a no-op (an in-place operation). */
ngl_status ngl_cuda_memcpy_async(void *dst, const void *src, size_t bytes, ngl_cuda_stream s);

/** Page-locked host memory (cudaHostAlloc); NGL_ERR_NO_MEMORY on failure. */
ngl_status ngl_cuda_host_alloc(void **p, size_t bytes);
/** NULL is a no-op. cudaFreeHost waits for the whole device. */
void ngl_cuda_host_free(void *p);

/** The calling thread's current device; and a change of it. */
ngl_status ngl_cuda_get_device(int *dev);
ngl_status ngl_cuda_set_device(int dev);

/** @return the device that owns the memory at @p p, or -1 for host memory
 *  (pinned or not), NULL, and addresses CUDA does not know. */
int ngl_cuda_pointer_device(const void *p);

/** @return a static name for a CUDA error code (cudaGetErrorString). */
const char *ngl_cuda_error_name(int err);

/* ------------------------------------------------------------------------ */
/* Encoder                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct ngl_cuda_encoder ngl_cuda_encoder;

/**
 * Create an encoder for @p cfg (copied) on the current device. Allocates
 * device state (4 bytes per element per state array: EF, m or x1, x2) and
 * scratch (up to 13 bytes per element dense, 17 with Top-K, most of it for
 * the worst case of every element being an exception) and a little pinned
 * host memory. Synchronous.
 * @return NGL_OK and *out; NGL_ERR_INVALID_ARG for a bad config;
 *         NGL_ERR_UNSUPPORTED (codec, dtype or back end not on the GPU path,
 *         or no device); NGL_ERR_NO_MEMORY.
 */
ngl_status ngl_cuda_encoder_create(const ngl_stream_config *cfg, ngl_cuda_encoder **out);
/**
 * As ngl_cuda_encoder_create(), but the state is zeroed by work enqueued on
 * @p stream and nothing waits, so that creating an encoder never waits for
 * other work on the device (create() waits on the legacy default stream,
 * which also waits for every blocking stream). The first submit() must use
 * @p stream, or a stream ordered after it.
 */
ngl_status ngl_cuda_encoder_create_on(const ngl_stream_config *cfg, ngl_cuda_stream stream,
                                      ngl_cuda_encoder **out);
/** Free @p enc (waits for its work). NULL is a no-op. */
void ngl_cuda_encoder_destroy(ngl_cuda_encoder *enc);

/**
 * Enqueue the encode of one step on @p stream; returns without waiting.
 * @param d_src   cfg.count elements of cfg.dtype in device memory, aligned to
 *                the element size (16-byte alignment enables vector loads).
 *                Must stay unchanged until finish() returns.
 * @param dst     host buffer for the frame, @p dst_cap >= ngl_encode_bound()
 *                (of core). Written by the GPU copies and by finish(); do not
 *                read it before finish() returns.
 * @return NGL_OK (the step is consumed: state advances on the device);
 *         NGL_ERR_INVALID_ARG (NULL pointer, or a submit() pending) /
 *         NGL_ERR_DST_TOO_SMALL with nothing enqueued; NGL_ERR_DEVICE
 *         if a CUDA call fails.
 */
ngl_status ngl_cuda_encoder_submit(ngl_cuda_encoder *enc, const void *d_src, void *dst,
                                   size_t dst_cap, ngl_cuda_stream stream);

/**
 * Wait for the submitted step and complete its frame (header, CRC).
 * Blocks the calling thread until the stream has reached the step's work.
 * @return NGL_OK and the frame length in *out_len; NGL_ERR_INVALID_ARG if
 *         nothing is pending; NGL_ERR_DEVICE if a CUDA call failed.
 */
ngl_status ngl_cuda_encoder_finish(ngl_cuda_encoder *enc, size_t *out_len);

/**
 * finish() without waiting: checks whether the GPU reached the end of the
 * submitted step's work (cudaEventQuery). When it has, enqueues the copies
 * that depend on the step's results (the exception list, Top-K sections)
 * on the submit() stream and returns; a later call completes the frame.
 * Call it until *done is 1; then the frame is in dst and *out_len is its
 * length, exactly as finish() gives them. The frame's bytes are not
 * meaningful before that.
 * @return NGL_OK (with *done 0 or 1); NGL_ERR_INVALID_ARG if nothing is
 *         pending; NGL_ERR_DEVICE if a CUDA call failed (nothing pending
 *         any more; reset() the encoder).
 */
ngl_status ngl_cuda_encoder_poll(ngl_cuda_encoder *enc, int *done, size_t *out_len);

/** submit() then finish(). */
ngl_status ngl_cuda_encode(ngl_cuda_encoder *enc, const void *d_src, void *dst, size_t dst_cap,
                           size_t *out_len, ngl_cuda_stream stream);

/** As ngl_encoder_set_block_mask(): skip (1) or send (0) each block in the
 *  next submit() only; NULL clears. NGL_ERR_INVALID_ARG if enc is NULL. */
ngl_status ngl_cuda_encoder_set_block_mask(ngl_cuda_encoder *enc, const uint8_t *skip_bits);

/** Return to step 0 with zero state. Synchronous. */
ngl_status ngl_cuda_encoder_reset(ngl_cuda_encoder *enc);

/** @return the next frame's step. */
uint64_t ngl_cuda_encoder_step(const ngl_cuda_encoder *enc);

/** Same value as ngl_encoder_state_hash() after the same steps (copies the
 *  state to the host; synchronous). 0 on a CUDA failure or NULL. */
uint64_t ngl_cuda_encoder_state_hash(ngl_cuda_encoder *enc);

/**
 * Copy the state to host arrays (synchronous); any pointer may be NULL to
 * skip it. @p ef: count floats (left alone when EF is off); @p st1, @p st2:
 * count floats (momentum m or linear x1, x2; left alone when unused);
 * @p gate: one byte per block (left alone without a predictor).
 */
ngl_status ngl_cuda_encoder_get_state(ngl_cuda_encoder *enc, float *ef, float *st1, float *st2,
                                      uint8_t *gate);

/** @return the last CUDA error code seen by @p enc (a cudaError_t), 0 if none. */
int ngl_cuda_encoder_cuda_error(const ngl_cuda_encoder *enc);

/* ------------------------------------------------------------------------ */
/* Decoder                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct ngl_cuda_decoder ngl_cuda_decoder;

/** As ngl_cuda_encoder_create(), for the receiving side (no error feedback;
 *  4 bytes per element per state array plus up to 9 of scratch). */
ngl_status ngl_cuda_decoder_create(const ngl_stream_config *cfg, ngl_cuda_decoder **out);
/** As ngl_cuda_encoder_create_on(), for a decoder. */
ngl_status ngl_cuda_decoder_create_on(const ngl_stream_config *cfg, ngl_cuda_stream stream,
                                      ngl_cuda_decoder **out);
void ngl_cuda_decoder_destroy(ngl_cuda_decoder *dec);

/**
 * Validate one frame on the host (header, CRC, every section, exactly as
 * ngl_decoder_decode()), then enqueue its decode on @p stream into
 * cfg.count elements of cfg.dtype at @p d_dst (device memory, aligned to the
 * element size). With NGL_DECODE_ACCUMULATE, d_dst += decoded.
 * @p src must stay valid and unchanged until finish() returns.
 * @return NGL_OK (enqueued; state advances); a frame error or
 *         NGL_ERR_INVALID_ARG with nothing enqueued and nothing changed;
 *         NGL_ERR_DEVICE if a CUDA call fails.
 */
ngl_status ngl_cuda_decoder_submit(ngl_cuda_decoder *dec, const void *src, size_t src_len,
                                   void *d_dst, unsigned flags, ngl_cuda_stream stream);

/** Wait until the submitted decode has written d_dst. Blocks. */
ngl_status ngl_cuda_decoder_finish(ngl_cuda_decoder *dec);

/** finish() without waiting (cudaEventQuery): *done is 1 once the decode
 *  has written d_dst and the decoder takes the next submit(). Same errors
 *  as finish(). */
ngl_status ngl_cuda_decoder_poll(ngl_cuda_decoder *dec, int *done);

/** submit() then finish(). */
ngl_status ngl_cuda_decode(ngl_cuda_decoder *dec, const void *src, size_t src_len, void *d_dst,
                           unsigned flags, ngl_cuda_stream stream);

ngl_status ngl_cuda_decoder_reset(ngl_cuda_decoder *dec);
uint64_t ngl_cuda_decoder_step(const ngl_cuda_decoder *dec);
/** Same value as ngl_decoder_state_hash() after the same frames. */
uint64_t ngl_cuda_decoder_state_hash(ngl_cuda_decoder *dec);
ngl_status ngl_cuda_decoder_get_state(ngl_cuda_decoder *dec, float *st1, float *st2, uint8_t *gate);
int ngl_cuda_decoder_cuda_error(const ngl_cuda_decoder *dec);

#ifdef __cplusplus
}
#endif
#endif /* NGL_CUDA_H */
