/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nangila_twin.h -- Nangila twin: error-bounded streaming of multi-channel
 * sensor samples (vibration, speed, temperature, current, ECG ...) from an
 * edge device to a digital twin, one small message at a time.
 *
 * Model
 * -----
 * A *stream* carries C channels of one dtype (fp32 or fp64). The producer
 * feeds an ngl_twin_encoder one *sample* (a vector of C values) or a small
 * batch of samples at a time; every call produces one self-contained
 * *message* (docs/wire-format.md, "Twin messages") that the transport (MQTT,
 * UDP, a file ...) carries. The consumer feeds each received message to an
 * ngl_twin_decoder, which writes the samples back.
 *
 * Error bound: for every value x given to the encoder, the decoded value x'
 * (both taken in the stream's dtype) satisfies
 *     NGL_TWIN_EPS_ABS:  |x' - x| <= eps
 *     NGL_TWIN_EPS_REL:  |x' - x| <= eps * |x|
 * with eps the bound of x's channel. The encoder checks this on exactly the
 * value the decoder will produce; a value it cannot place within the bound
 * (NaN, +-Inf, magnitudes beyond the quantizer's range, rounding corner
 * cases) is carried bit for bit and never enters predictor state.
 * eps = 0 means lossless: decoded values are bit-identical to the input,
 * including -0.0 and NaN payloads.
 *
 * Method: values are quantized to an integer lattice; per channel a
 * closed-loop predictor (previous value, linear, quadratic or a short
 * adaptive linear filter, chosen per value from the recent cost of each,
 * which the decoder computes identically) runs on the *reconstructed*
 * lattice, and the residuals go to hpc/'s context-modelled rANS coder.
 * Encoder and decoder state stay bit-identical; *_state_hash() proves it.
 *
 * Loss and resync: every message carries the stream id, a sequence number
 * and a CRC32C. A *keyframe* resets all predictor and coder state and
 * carries the stream parameters (C, dtype, bounds), so a decoder that joins
 * late, or lost messages, needs no side channel: it reports the gap, emits
 * nothing, and resumes at the next keyframe. The encoder writes a keyframe
 * every keyframe_interval messages and whenever
 * ngl_twin_encoder_request_keyframe() asks for one.
 *
 * Channel names are not carried: they are the application's business (the
 * MQTT tool publishes them with its stream metadata).
 *
 * Memory: an encoder allocates, at create(), state proportional to C and
 * scratch proportional to C * max_samples; a decoder allocates at create()
 * and again only when a keyframe announces more channels than it holds
 * (bounded by its max_channels). Nothing grows with the length of the
 * stream. encode() never allocates; decode() allocates only as just said.
 * Nothing here blocks or prints.
 *
 * Threading: objects are not thread-safe; distinct objects may be used from
 * distinct threads concurrently. Free functions are thread-safe.
 *
 * Errors: every fallible function returns an ngl_status (core's enum,
 * nangila.h; ngl_status_str() names it). Message errors are listed at
 * ngl_twin_decoder_decode().
 */
#ifndef NANGILA_TWIN_H
#define NANGILA_TWIN_H

#include "nangila.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Message format version written by this library (docs/wire-format.md). */
#define NGL_TWIN_FORMAT_VERSION 2u

/** Largest channel count of a stream. */
#define NGL_TWIN_MAX_CHANNELS 65535u
/** Largest number of samples in one message. */
#define NGL_TWIN_MAX_SAMPLES 65535u
/** Largest number of values (samples * channels) in one message. */
#define NGL_TWIN_MAX_VALUES ((uint32_t)1 << 24)

/** How a channel's eps is read. */
typedef enum ngl_twin_eps_mode {
    NGL_TWIN_EPS_ABS = 0, /* |x' - x| <= eps (units of the signal) */
    NGL_TWIN_EPS_REL = 1  /* |x' - x| <= eps * |x| (pointwise relative) */
} ngl_twin_eps_mode;

/** The error bound of one channel. eps must be finite and >= 0; 0 = lossless. */
typedef struct ngl_twin_bound {
    ngl_twin_eps_mode mode;
    double eps;
} ngl_twin_bound;

/** Message types (the wire's type field; also reported by peek and decode). */
typedef enum ngl_twin_msg_type {
    NGL_TWIN_MSG_KEY = 1,   /* keyframe: stream parameters + samples, fresh state */
    NGL_TWIN_MSG_DELTA = 2, /* samples coded against the state the previous message left */
    NGL_TWIN_MSG_END = 3    /* end of stream: no samples */
} ngl_twin_msg_type;

/* ------------------------------------------------------------------------ */
/* Encoder                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct ngl_twin_config {
    uint32_t channels;            /* C, 1 .. NGL_TWIN_MAX_CHANNELS; no default (0) */
    ngl_dtype dtype;              /* NGL_DTYPE_F32 (default) or NGL_DTYPE_F64 */
    ngl_twin_bound bound;         /* every channel's bound when bounds == NULL;
                                     default ABS, eps 0 (lossless) */
    const ngl_twin_bound *bounds; /* NULL, or @c channels entries (channel order);
                                     copied by create(), not kept */
    uint32_t keyframe_interval;   /* a keyframe at least every this many messages
                                     (1 = every message); default 100 */
    uint32_t max_samples;         /* most samples one encode() call may pass,
                                     1 .. NGL_TWIN_MAX_SAMPLES, and
                                     max_samples * channels <= NGL_TWIN_MAX_VALUES;
                                     sizes the scratch; default 64 */
    uint32_t stream_id;           /* written into every message; default 0 */
    uint64_t first_seq;           /* sequence number of the first message; default 0 */
} ngl_twin_config;

/** Fill @p cfg with the defaults documented above (channels = 0). */
NGL_API void ngl_twin_config_init(ngl_twin_config *cfg);

/**
 * Check @p cfg without creating anything.
 * @return NGL_OK, or NGL_ERR_INVALID_ARG with a static reason in *why (if
 *         @p why is non-NULL).
 */
NGL_API ngl_status ngl_twin_config_check(const ngl_twin_config *cfg, const char **why);

typedef struct ngl_twin_encoder ngl_twin_encoder;

/**
 * Create an encoder for @p cfg (copied, bounds included).
 * @return NGL_OK and *out, or NGL_ERR_INVALID_ARG / NGL_ERR_NO_MEMORY with
 *         *out = NULL.
 */
NGL_API ngl_status ngl_twin_encoder_create(const ngl_twin_config *cfg, ngl_twin_encoder **out);
/** Free @p enc. NULL is a no-op. */
NGL_API void ngl_twin_encoder_destroy(ngl_twin_encoder *enc);

/**
 * Worst-case size in bytes of the message encode() writes for @p nsamples
 * samples (keyframe parameters included); with nsamples = 0, of the
 * end-of-stream message. @return 0 if @p enc is NULL or @p nsamples exceeds
 * cfg.max_samples.
 */
NGL_API size_t ngl_twin_encoder_bound(const ngl_twin_encoder *enc, size_t nsamples);

/**
 * Encode @p nsamples samples into one message.
 * @param samples  nsamples * C values of cfg.dtype, row-major (sample 0's C
 *                 channels, then sample 1's ...), aligned to the value size.
 * @param nsamples 1 .. cfg.max_samples.
 * @param dst      output buffer of @p dst_cap bytes; dst_cap must be at least
 *                 ngl_twin_encoder_bound(enc, nsamples) (checked before the
 *                 state moves, so a message never fails half-written).
 * @param out_len  receives the message length in bytes.
 * @return NGL_OK: one message written, sequence number advanced by one,
 *         state advanced by the samples. NGL_ERR_INVALID_ARG (NULL pointer,
 *         nsamples out of range) or NGL_ERR_DST_TOO_SMALL (dst_cap below
 *         the bound): nothing written that counts, state unchanged (a
 *         pending keyframe stays pending).
 * The message is a keyframe if it is the first one, if keyframe_interval
 * messages passed since the last keyframe, after end_of_stream(), or if one
 * was requested.
 */
NGL_API ngl_status ngl_twin_encoder_encode(ngl_twin_encoder *enc, const void *samples,
                                           size_t nsamples, void *dst, size_t dst_cap,
                                           size_t *out_len);

/**
 * Make the next encode() write a keyframe (idempotent until then). Safe to
 * call at any time from the thread that owns @p enc.
 * @return NGL_OK, or NGL_ERR_INVALID_ARG if @p enc is NULL.
 */
NGL_API ngl_status ngl_twin_encoder_request_keyframe(ngl_twin_encoder *enc);

/**
 * Write an end-of-stream message (no samples; it takes a sequence number).
 * The stream may continue afterwards: the next encode() writes a keyframe.
 * @return NGL_OK, NGL_ERR_INVALID_ARG or NGL_ERR_DST_TOO_SMALL (as encode()).
 */
NGL_API ngl_status ngl_twin_encoder_end_of_stream(ngl_twin_encoder *enc, void *dst, size_t dst_cap,
                                                  size_t *out_len);

/** Sequence number the next message will carry. */
NGL_API uint64_t ngl_twin_encoder_seq(const ngl_twin_encoder *enc);

/**
 * Hash of the closed-loop state shared with the decoder (next sequence
 * number, stream parameters, per-channel predictor state, coder contexts).
 * After a decoder accepted the same messages (no gap since its last
 * keyframe), ngl_twin_decoder_state_hash() returns the same value.
 */
NGL_API uint64_t ngl_twin_encoder_state_hash(const ngl_twin_encoder *enc);

typedef struct ngl_twin_encoder_stats {
    uint64_t messages;   /* messages written, end-of-stream included */
    uint64_t keyframes;  /* of which keyframes */
    uint64_t samples;    /* samples encoded */
    uint64_t bytes_in;   /* samples * C * value size */
    uint64_t bytes_out;  /* message bytes, headers included */
    uint64_t exceptions; /* values carried bit for bit (NaN, Inf, out of range) */
} ngl_twin_encoder_stats;

/** Copy the counters into *out (zeros if @p enc is NULL). */
NGL_API void ngl_twin_encoder_get_stats(const ngl_twin_encoder *enc, ngl_twin_encoder_stats *out);

/* ------------------------------------------------------------------------ */
/* Decoder                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct ngl_twin_decoder_opts {
    int match_stream_id;   /* 1: accept only messages of @c stream_id;
                              0 (default): lock onto the stream id of the
                              first keyframe accepted (until reset) */
    uint32_t stream_id;    /* used when match_stream_id = 1 */
    uint32_t max_channels; /* keyframes with more channels are refused with
                              NGL_ERR_UNSUPPORTED; default 4096 */
    uint32_t max_samples;  /* messages with more samples are refused with
                              NGL_ERR_UNSUPPORTED; default NGL_TWIN_MAX_SAMPLES */
} ngl_twin_decoder_opts;

/** Fill @p opts with the defaults documented above. */
NGL_API void ngl_twin_decoder_opts_init(ngl_twin_decoder_opts *opts);

typedef struct ngl_twin_decoder ngl_twin_decoder;

/**
 * Create a decoder. @p opts may be NULL (defaults). The decoder learns C,
 * dtype and bounds from the first keyframe; until then it is waiting.
 * @return NGL_OK and *out, or NGL_ERR_INVALID_ARG / NGL_ERR_NO_MEMORY with
 *         *out = NULL.
 */
NGL_API ngl_status ngl_twin_decoder_create(const ngl_twin_decoder_opts *opts,
                                           ngl_twin_decoder **out);
/** Free @p dec. NULL is a no-op. */
NGL_API void ngl_twin_decoder_destroy(ngl_twin_decoder *dec);

/** Forget the stream (and the locked stream id): wait for a keyframe. */
NGL_API void ngl_twin_decoder_reset(ngl_twin_decoder *dec);

/* ngl_twin_info.flags */
#define NGL_TWIN_INFO_KEYFRAME 0x01u /* the message was a keyframe */
#define NGL_TWIN_INFO_GAP      0x02u /* messages before this one are missing (see missing) */
#define NGL_TWIN_INFO_RESYNC                                                                       \
    0x04u                           /* this keyframe re-established the stream after a             \
                                       gap, a late join, a restart or an error */
#define NGL_TWIN_INFO_WAITING 0x08u /* no samples: waiting for a keyframe */
#define NGL_TWIN_INFO_STALE   0x10u /* duplicate or late (reordered) message: ignored */
#define NGL_TWIN_INFO_END     0x20u /* end-of-stream message */
#define NGL_TWIN_INFO_RESTART                                                                      \
    0x40u /* keyframe with sequence number 0 before the                                            \
             expected one: the encoder restarted */

/** What one decode() call did. Filled whenever decode() returns NGL_OK or
 *  NGL_ERR_DST_TOO_SMALL; zeroed on other errors. */
typedef struct ngl_twin_info {
    ngl_twin_msg_type type;
    uint32_t stream_id;
    uint64_t seq;      /* the message's sequence number */
    uint32_t channels; /* C of the stream (0 while nothing is known) */
    ngl_dtype dtype;   /* dtype of the values written */
    uint32_t nsamples; /* samples written to dst (0 if none); with
                          NGL_ERR_DST_TOO_SMALL: samples the message holds */
    uint64_t missing;  /* with NGL_TWIN_INFO_GAP: messages missing between the
                          last one accepted and this one; 0 if unknown (late
                          join) */
    uint32_t flags;    /* NGL_TWIN_INFO_* */
} ngl_twin_info;

/**
 * Worst-case output size in bytes of one decode() under the decoder's
 * options (max_samples * max_channels * 8). A caller that knows its streams
 * may pass less; decode() says when it is not enough.
 */
NGL_API size_t ngl_twin_decoder_bound(const ngl_twin_decoder *dec);

/**
 * Decode one message.
 * @param msg, msg_len the message as received.
 * @param dst          receives info->nsamples * info->channels values of
 *                     info->dtype, row-major; @p dst_cap bytes.
 * @param info         receives what happened; may not be NULL.
 *
 * Sequencing (for messages of the decoder's stream; see docs/wire-format.md):
 *  - the expected sequence number: samples written, state advanced;
 *  - a keyframe after a gap, while waiting, or with seq 0 (restart): state
 *    reset from the keyframe, samples written, RESYNC (+ GAP / RESTART);
 *  - a delta or end message after a gap: GAP | WAITING, nothing written,
 *    state dropped until the next keyframe;
 *  - an older sequence number (duplicate, reordered): STALE, ignored;
 *  - while waiting: WAITING, nothing written.
 * Values are written only from messages the decoder can decode exactly as
 * the encoder did, so every value written is within its bound.
 *
 * @return NGL_OK (see info), or
 *   NGL_ERR_INVALID_ARG       NULL dec, msg or info;
 *   NGL_ERR_DST_TOO_SMALL     dst_cap below nsamples * C * value size: state
 *                             unchanged, info says what is needed; retry;
 *   NGL_ERR_TRUNCATED         shorter than its header or its declared contents;
 *   NGL_ERR_BAD_MAGIC         not a twin message (foreign payload);
 *   NGL_ERR_BAD_VERSION       twin message of an unknown format version;
 *   NGL_ERR_BAD_CODEC         unknown message type;
 *   NGL_ERR_BAD_FLAGS         reserved bits set;
 *   NGL_ERR_BAD_LENGTH        malformed varint, or bytes left over;
 *   NGL_ERR_CRC_MISMATCH      CRC32C wrong (corrupted in transit);
 *   NGL_ERR_BAD_DTYPE         keyframe with a dtype other than f32/f64;
 *   NGL_ERR_BAD_SCALE         keyframe with a negative, non-finite or
 *                             unknown-mode bound;
 *   NGL_ERR_COUNT_MISMATCH    channel or sample count zero or out of range;
 *   NGL_ERR_UNSUPPORTED       keyframe or message beyond max_channels /
 *                             max_samples;
 *   NGL_ERR_STREAM_MISMATCH   message of another stream id;
 *   NGL_ERR_BAD_SECTION       coded sections do not add up;
 *   NGL_ERR_BAD_CODE          coded residuals do not decode (the decoder then
 *                             waits for a keyframe);
 *   NGL_ERR_NO_MEMORY         a larger keyframe could not be allocated.
 * Every error but BAD_SECTION, BAD_CODE and NO_MEMORY leaves the state as it
 * was; none of them writes a sample that counts (dst may be scribbled on).
 */
NGL_API ngl_status ngl_twin_decoder_decode(ngl_twin_decoder *dec, const void *msg, size_t msg_len,
                                           void *dst, size_t dst_cap, ngl_twin_info *info);

/** Hash of the closed-loop state (see ngl_twin_encoder_state_hash()); a
 *  waiting decoder returns a hash no encoder produces. */
NGL_API uint64_t ngl_twin_decoder_state_hash(const ngl_twin_decoder *dec);

/** 1 if the decoder is in sync with a stream (not waiting for a keyframe). */
NGL_API int ngl_twin_decoder_synced(const ngl_twin_decoder *dec);

typedef struct ngl_twin_decoder_stats {
    uint64_t messages; /* decode() calls that returned NGL_OK */
    uint64_t samples;  /* samples written */
    uint64_t gaps;     /* gap events (NGL_TWIN_INFO_GAP) */
    uint64_t missing;  /* messages reported missing, summed */
    uint64_t resyncs;  /* NGL_TWIN_INFO_RESYNC events */
    uint64_t stale;    /* duplicate / late messages ignored */
    uint64_t waiting;  /* messages dropped while waiting for a keyframe */
    uint64_t rejected; /* decode() calls that returned an error */
} ngl_twin_decoder_stats;

NGL_API void ngl_twin_decoder_get_stats(const ngl_twin_decoder *dec, ngl_twin_decoder_stats *out);

/* ------------------------------------------------------------------------ */
/* Message inspection (no state, no allocation).                            */
/* ------------------------------------------------------------------------ */
typedef struct ngl_twin_header {
    uint8_t version;
    ngl_twin_msg_type type;
    uint32_t stream_id;
    uint64_t seq;
    uint32_t nsamples; /* 0 for end-of-stream messages */
    uint32_t channels; /* keyframes only; 0 otherwise */
    ngl_dtype dtype;   /* keyframes only; NGL_DTYPE_F32 otherwise */
} ngl_twin_header;

/**
 * Parse a message's header (and, if @p check_crc, its CRC). For keyframes
 * also the channel count and dtype. Does not decode the samples.
 * @return NGL_OK and *out, or the first message error found (as decode()).
 */
NGL_API ngl_status ngl_twin_frame_peek(const void *msg, size_t msg_len, int check_crc,
                                       ngl_twin_header *out);

#ifdef __cplusplus
}
#endif

#endif /* NANGILA_TWIN_H */
