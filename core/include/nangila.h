/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nangila.h -- the public API of libnangila, Nangila's compression core.
 *
 * Nangila compresses float streams (gradients, trajectories) inside the
 * communication stack. The core is transport-agnostic: it turns one step of
 * a stream into one self-describing frame (see docs/wire-format.md) and back.
 *
 * Model
 * -----
 * A *stream* is a sequence of equally sized vectors (one per *step*) that a
 * sender encodes and a receiver decodes in the same order. The sender owns an
 * ngl_encoder, the receiver an ngl_decoder, both created from the same
 * ngl_stream_config. They keep *closed-loop* state:
 *
 *   - predictor state (momentum/EMA or linear extrapolation) is updated only
 *     from the reconstructed values the decoder also computes, so encoder and
 *     decoder state stay bit-identical (ngl_*_state_hash() proves it);
 *   - error feedback (encoder only) carries what quantization, Top-K and the
 *     block mask dropped into the same stream's next step.
 *
 * Threading: objects are not thread-safe; different objects may be used from
 * different threads concurrently. Global functions (logger, status strings)
 * are thread-safe unless stated otherwise.
 *
 * Memory: create() allocates everything a stream needs. encode() and
 * decode() never allocate, never block and never print.
 *
 * Errors: every fallible function returns an ngl_status. Values are pinned
 * and never reused; ngl_status_str() names them.
 */
#ifndef NANGILA_H
#define NANGILA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NGL_BUILDING_LIBRARY) && defined(__GNUC__)
#define NGL_API __attribute__((visibility("default")))
#else
#define NGL_API
#endif

#define NGL_VERSION_MAJOR  0
#define NGL_VERSION_MINOR  2
#define NGL_VERSION_PATCH  0
#define NGL_VERSION_NUMBER (NGL_VERSION_MAJOR * 10000 + NGL_VERSION_MINOR * 100 + NGL_VERSION_PATCH)

/** @return NGL_VERSION_NUMBER of the library actually loaded. */
NGL_API unsigned ngl_version_number(void);
/** @return "MAJOR.MINOR.PATCH" of the library actually loaded. */
NGL_API const char *ngl_version_string(void);

/* ------------------------------------------------------------------------ */
/* Status codes. Numeric values are part of the ABI and never change.        */
/* ------------------------------------------------------------------------ */
typedef enum ngl_status {
    NGL_OK = 0,
    /* usage errors */
    NGL_ERR_INVALID_ARG = 1,   /* NULL pointer, bad config value, bad size */
    NGL_ERR_NO_MEMORY = 2,     /* allocation failed */
    NGL_ERR_DST_TOO_SMALL = 3, /* output capacity below ngl_encode_bound() */
    NGL_ERR_UNSUPPORTED = 4,   /* valid request this build/CPU cannot serve */
    NGL_ERR_DEVICE = 5,        /* an accelerator (CUDA) call failed at run time */
    /* frame errors: a received frame is rejected; no state was changed */
    NGL_ERR_TRUNCATED = 16,          /* shorter than its header or its payload */
    NGL_ERR_BAD_MAGIC = 17,          /* not a Nangila frame */
    NGL_ERR_BAD_VERSION = 18,        /* frame from an unknown format version */
    NGL_ERR_BAD_CODEC = 19,          /* unknown codec id */
    NGL_ERR_BAD_DTYPE = 20,          /* unknown dtype, or dtype/codec mismatch */
    NGL_ERR_BAD_PREDICTOR = 21,      /* unknown predictor id */
    NGL_ERR_BAD_FLAGS = 22,          /* reserved flag bits or fields set */
    NGL_ERR_BAD_BLOCK_SIZE = 23,     /* block size outside the allowed range */
    NGL_ERR_BAD_LENGTH = 24,         /* payload length disagrees with the buffer */
    NGL_ERR_CRC_MISMATCH = 25,       /* CRC32C over header+payload is wrong */
    NGL_ERR_BAD_BACKEND = 26,        /* lossless back end data does not decode */
    NGL_ERR_BAD_SECTION = 27,        /* payload sections do not add up */
    NGL_ERR_BAD_SCALE = 28,          /* negative, non-finite or non-canonical scale */
    NGL_ERR_BAD_CODE = 29,           /* quantized code outside its range */
    NGL_ERR_BAD_INDEX = 30,          /* Top-K index list malformed */
    NGL_ERR_BAD_EXCEPTION = 31,      /* exception list malformed */
    NGL_ERR_BAD_MASK = 32,           /* block mask malformed */
    NGL_ERR_COUNT_MISMATCH = 33,     /* element count differs from the stream's */
    NGL_ERR_CONFIG_MISMATCH = 34,    /* codec/dtype/predictor/block differ */
    NGL_ERR_STREAM_MISMATCH = 35,    /* frame belongs to another stream */
    NGL_ERR_STEP_MISMATCH = 36,      /* frame is not the step the decoder expects */
    NGL_ERR_BACKEND_UNAVAILABLE = 37 /* frame uses a back end not built in */
} ngl_status;

/** @return a static, human-readable name for @p s; never NULL. */
NGL_API const char *ngl_status_str(ngl_status s);

/* ------------------------------------------------------------------------ */
/* Enumerations used in the configuration and on the wire.                  */
/* ------------------------------------------------------------------------ */
typedef enum ngl_dtype {
    NGL_DTYPE_F32 = 0,
    NGL_DTYPE_F16 = 1,  /* IEEE binary16 */
    NGL_DTYPE_BF16 = 2, /* bfloat16 */
    NGL_DTYPE_F64 = 3   /* only with NGL_CODEC_RAW and NGL_CODEC_EPS */
} ngl_dtype;

/** @return size in bytes of one element of @p d, or 0 if @p d is unknown. */
NGL_API size_t ngl_dtype_size(ngl_dtype d);

/**
 * Widens @p n elements of @p d (F32, F16 or BF16) at @p src to f32 at @p dst,
 * exactly, as the codec reads its input. @return NGL_OK, or
 * NGL_ERR_INVALID_ARG for another dtype or NULL buffers with @p n > 0.
 */
NGL_API ngl_status ngl_dtype_to_f32(ngl_dtype d, const void *src, float *dst, uint64_t n);

/**
 * Narrows @p n f32 values at @p src to @p d (F32, F16 or BF16) at @p dst:
 * IEEE round to nearest even (as F16C and CUDA's __float2half_rn; NaN stays
 * NaN, overflow becomes infinity). For making 16-bit input; the decoder's
 * own output saturates instead. @return as ngl_dtype_to_f32().
 */
NGL_API ngl_status ngl_dtype_from_f32(ngl_dtype d, const float *src, void *dst, uint64_t n);

typedef enum ngl_codec {
    NGL_CODEC_RAW = 0,  /* exact copy in the input dtype */
    NGL_CODEC_INT8 = 1, /* unbiased stochastic INT8, per-block scale */
    NGL_CODEC_INT4 = 2, /* unbiased stochastic INT4, per-block scale */
    NGL_CODEC_EPS = 3   /* |decoded - original| <= eps for every element */
} ngl_codec;

typedef enum ngl_predictor {
    NGL_PRED_NONE = 0,     /* prediction is zero */
    NGL_PRED_MOMENTUM = 1, /* EMA: m <- beta*m + (1-beta)*xhat, predicts m */
    NGL_PRED_LINEAR = 2    /* 2*xhat[t-1] - xhat[t-2] */
} ngl_predictor;

typedef enum ngl_lossless {
    NGL_LOSSLESS_NONE = 0,
    NGL_LOSSLESS_RLE = 1,  /* zero-run-length coding, always available */
    NGL_LOSSLESS_ZSTD = 2, /* zstd, if the build found libzstd */
    NGL_LOSSLESS_AUTO = 3  /* config only: zstd if built, else RLE; a frame is
                              sent without back end when that is not smaller */
} ngl_lossless;

/** Instruction-set variant of the hot kernels. */
typedef enum ngl_isa {
    NGL_ISA_AUTO = 0,  /* best the CPU supports */
    NGL_ISA_REF = 1,   /* portable C reference */
    NGL_ISA_AVX2 = 2,  /* x86-64 AVX2 (+F16C) */
    NGL_ISA_AVX512 = 3 /* x86-64 AVX-512 F/BW/VL/DQ */
} ngl_isa;

/** @return 1 if this build and CPU can run @p isa, else 0. AUTO and REF: 1. */
NGL_API int ngl_isa_available(ngl_isa isa);
/** @return the variant AUTO resolves to on this CPU. */
NGL_API ngl_isa ngl_isa_best(void);
/** @return "auto", "ref", "avx2", "avx512" or "unknown". */
NGL_API const char *ngl_isa_name(ngl_isa isa);

/* ------------------------------------------------------------------------ */
/* Stream configuration.                                                    */
/* ------------------------------------------------------------------------ */
#define NGL_BLOCK_MIN     8u
#define NGL_BLOCK_MAX     65536u
#define NGL_BLOCK_DEFAULT 256u
/* Element count limit per step; larger vectors are split by the caller. */
#define NGL_COUNT_MAX ((uint64_t)1 << 28)

typedef struct ngl_stream_config {
    ngl_codec codec;         /* default NGL_CODEC_INT8 */
    ngl_dtype dtype;         /* default NGL_DTYPE_F32 */
    ngl_predictor predictor; /* default NGL_PRED_NONE */
    ngl_lossless lossless;   /* default NGL_LOSSLESS_NONE */
    ngl_isa isa;             /* default NGL_ISA_AUTO */
    uint32_t block_size;     /* elements per scale block; multiple of 8 in
                                [NGL_BLOCK_MIN, NGL_BLOCK_MAX]; default 256 */
    float momentum_beta;     /* EMA factor in [0, 1); default 0.9 */
    int error_feedback;      /* 1 on, 0 off; default 1 for INT8/INT4, 0 otherwise */
    double topk_fraction;    /* 0 = dense; else (0, 1]: k = ceil(f * count) */
    double mask_fraction;    /* 0 = off; else [0, 1): share of blocks skipped per
                                step by rotation (every block is sent within
                                NGL_MASK_PERIOD steps) */
    double eps;              /* NGL_CODEC_EPS: absolute bound, finite and > 0 */
    uint64_t seed;           /* stochastic rounding key, with stream_id */
    uint64_t stream_id;      /* identifies the stream on the wire */
    uint64_t count;          /* elements per step, 0 .. NGL_COUNT_MAX */
} ngl_stream_config;

#define NGL_MASK_PERIOD 16u

/** Fill @p cfg with the defaults documented above (count 0). */
NGL_API void ngl_stream_config_init(ngl_stream_config *cfg);

/**
 * Check @p cfg without creating anything.
 * @return NGL_OK, NGL_ERR_INVALID_ARG (with a reason in @p why if non-NULL),
 *         or NGL_ERR_UNSUPPORTED (back end or ISA not available).
 */
NGL_API ngl_status ngl_stream_config_check(const ngl_stream_config *cfg, const char **why);

/**
 * Worst-case frame size in bytes (header included) for one step of @p cfg.
 * @return 0 if @p cfg is invalid.
 */
NGL_API size_t ngl_encode_bound(const ngl_stream_config *cfg);

/* ------------------------------------------------------------------------ */
/* Encoder                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct ngl_encoder ngl_encoder;

/**
 * Create an encoder for @p cfg (copied). Allocates state proportional to
 * cfg->count.
 * @return NGL_OK and *out, or NGL_ERR_INVALID_ARG / NGL_ERR_UNSUPPORTED /
 *         NGL_ERR_NO_MEMORY with *out = NULL.
 */
NGL_API ngl_status ngl_encoder_create(const ngl_stream_config *cfg, ngl_encoder **out);
/** Free @p enc. NULL is a no-op. */
NGL_API void ngl_encoder_destroy(ngl_encoder *enc);

/**
 * Encode one step.
 * @param src      cfg.count elements of cfg.dtype, aligned to the element size.
 * @param dst      output frame buffer; @p dst_cap >= ngl_encode_bound() always
 *                 suffices.
 * @param out_len  receives the frame length in bytes.
 * @return NGL_OK (state advanced by one step), or NGL_ERR_INVALID_ARG /
 *         NGL_ERR_DST_TOO_SMALL (state unchanged).
 * NaN and +-Inf in @p src are carried exactly, bit for bit; they never enter
 * scales, predictor state or error feedback.
 */
NGL_API ngl_status ngl_encoder_encode(ngl_encoder *enc, const void *src, void *dst, size_t dst_cap,
                                      size_t *out_len);

/**
 * Skip (1) or send (0) each block in the next encode() only, overriding the
 * rotation policy. @p skip_bits is a bitmap, bit b of byte b/8 = block b,
 * ceil(nblocks/8) bytes; NULL clears the override. Skipped blocks decode to
 * the prediction; error feedback (if on) keeps what was skipped.
 * @return NGL_OK; NGL_ERR_INVALID_ARG if @p enc is NULL; NGL_ERR_UNSUPPORTED
 *         for codecs without block masks (RAW, EPS) when @p skip_bits is set.
 */
NGL_API ngl_status ngl_encoder_set_block_mask(ngl_encoder *enc, const uint8_t *skip_bits);

/** Return the encoder to step 0 with zero state. */
NGL_API void ngl_encoder_reset(ngl_encoder *enc);

/** Hash of the closed-loop state shared with the decoder (step, predictor,
 *  gate). Equal on both sides after the same frames. */
NGL_API uint64_t ngl_encoder_state_hash(const ngl_encoder *enc);

/** @return the number of steps encoded so far (the next frame's step). */
NGL_API uint64_t ngl_encoder_step(const ngl_encoder *enc);

typedef struct ngl_encoder_stats {
    uint64_t steps;        /* frames produced */
    uint64_t bytes_in;     /* input bytes (count * dtype size per step) */
    uint64_t bytes_out;    /* frame bytes, headers included */
    uint64_t exceptions;   /* elements sent exactly (NaN, Inf, overflow) */
    uint64_t gated_blocks; /* blocks that used the prediction */
} ngl_encoder_stats;

NGL_API void ngl_encoder_get_stats(const ngl_encoder *enc, ngl_encoder_stats *out);

/* ------------------------------------------------------------------------ */
/* Decoder                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct ngl_decoder ngl_decoder;

NGL_API ngl_status ngl_decoder_create(const ngl_stream_config *cfg, ngl_decoder **out);
/** Free @p dec. NULL is a no-op. */
NGL_API void ngl_decoder_destroy(ngl_decoder *dec);

/** Decode flags. */
/* dst += decoded, element by element, in fp32 then rounded to the dtype.
 * As with any IEEE sum, when both operands are NaN which payload survives
 * is unspecified. */
#define NGL_DECODE_ACCUMULATE 1u

/**
 * Decode one frame into cfg.count elements of cfg.dtype at @p dst.
 * Validates the whole frame (header, CRC, every section) before it writes
 * @p dst or changes state.
 * @return NGL_OK (state advanced by one step), or one of the frame errors
 *         (NGL_ERR_TRUNCATED ... NGL_ERR_BACKEND_UNAVAILABLE), with @p dst and
 *         the decoder state untouched.
 */
NGL_API ngl_status ngl_decoder_decode(ngl_decoder *dec, const void *src, size_t src_len, void *dst,
                                      unsigned flags);

NGL_API void ngl_decoder_reset(ngl_decoder *dec);
NGL_API uint64_t ngl_decoder_state_hash(const ngl_decoder *dec);
NGL_API uint64_t ngl_decoder_step(const ngl_decoder *dec);

/* ------------------------------------------------------------------------ */
/* Frame inspection (no state, no allocation).                              */
/* ------------------------------------------------------------------------ */
#define NGL_FRAME_HEADER_SIZE 48u

typedef struct ngl_frame_info {
    uint8_t version;
    ngl_codec codec;
    ngl_dtype dtype;
    ngl_predictor predictor;
    uint16_t flags;
    uint32_t block_size;
    uint64_t stream_id;
    uint64_t step;
    uint64_t count;
    uint32_t payload_len;
    uint32_t crc32c;
} ngl_frame_info;

/**
 * Parse and validate a frame header, and (if @p check_crc) the CRC over the
 * whole frame. Does not look at the payload sections.
 * @return NGL_OK and *info, or the first frame error found.
 */
NGL_API ngl_status ngl_frame_inspect(const void *src, size_t src_len, int check_crc,
                                     ngl_frame_info *info);

/** CRC32C (Castagnoli) of @p len bytes, continuing from @p crc (start with 0). */
NGL_API uint32_t ngl_crc32c(uint32_t crc, const void *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Logging. The core never prints; hosts install a sink.                    */
/* ------------------------------------------------------------------------ */
typedef enum ngl_log_level {
    NGL_LOG_NONE = 0,
    NGL_LOG_ERROR = 1,
    NGL_LOG_WARN = 2,
    NGL_LOG_INFO = 3,
    NGL_LOG_DEBUG = 4,
    NGL_LOG_TRACE = 5
} ngl_log_level;

typedef void (*ngl_log_fn)(void *user, ngl_log_level level, const char *msg);

/** Install @p fn (NULL = discard) for messages at or below @p max_level. */
NGL_API void ngl_set_logger(ngl_log_fn fn, void *user, ngl_log_level max_level);

/* ------------------------------------------------------------------------ */
/* User settings of the codec and the compressed collective, shared by the  */
/* MPI wrapper and the NCCL plugin. Each layer parses its own transport     */
/* settings (NANGILA_NSOCKS, NANGILA_SOCKET_IFNAME, NANGILA_NET_INNER,       */
/* NANGILA_COLLNET_PERIOD: see the plugin's README); every layer's names    */
/* are known to the unknown-variable check below.                           */
/* ------------------------------------------------------------------------ */
typedef enum ngl_mode { NGL_MODE_OFF = 0, NGL_MODE_INT8 = 1, NGL_MODE_INT4 = 2 } ngl_mode;

typedef struct ngl_settings {
    ngl_mode mode;           /* NANGILA_MODE off | int8 | int4: the codec; with auto, the
                                lossiest codec auto may pick (= mode_max) */
    int mode_auto;           /* NANGILA_MODE=auto (default): the collective engine picks
                                off, int8 or int4 per message size from measured times */
    ngl_mode mode_max;       /* NANGILA_MODE_MAX: int8 (default) | int4, the cap of auto */
    double topk;             /* NANGILA_TOPK: 0 (default) or fraction in (0, 1] */
    ngl_predictor predictor; /* NANGILA_PREDICTOR: none (default) | momentum */
    int error_feedback;      /* NANGILA_EF: 0 | 1 (default) */
    uint64_t min_bytes;      /* NANGILA_MIN_BYTES: bytes, suffixes k/M/G allowed; default
                                NGL_AUTO_MIN_BYTES with auto, else NGL_DEFAULT_MIN_BYTES */
    int min_bytes_set;       /* 1 when NANGILA_MIN_BYTES was given */
    uint64_t seed;           /* NANGILA_SEED: default 0x4e616e67696c61 */
    int stats;               /* NANGILA_STATS: 0 (default) | 1 */
    ngl_log_level
        log_level;       /* NANGILA_LOG_LEVEL: none|error|warn (default)|info|debug|trace or 0..5 */
    uint32_t block_size; /* NANGILA_BLOCK: multiple of 8 in [8, 65536], default 256 */
    uint32_t state_max_mb; /* NANGILA_STATE_MAX_MB: stream state memory per communicator,
                              MiB, 1 .. NGL_STATE_MAX_MB_MAX, default NGL_DEFAULT_STATE_MAX_MB */
} ngl_settings;

/** Default and upper limit of NANGILA_STATE_MAX_MB. */
#define NGL_DEFAULT_STATE_MAX_MB 2048u
#define NGL_STATE_MAX_MB_MAX     (1u << 20)

/** Default for NANGILA_MIN_BYTES with a fixed NANGILA_MODE (from the
 *  allreduce crossover benchmark). */
#define NGL_DEFAULT_MIN_BYTES (256u * 1024u)
/** Default for NANGILA_MIN_BYTES with NANGILA_MODE=auto: below 64 KiB no
 *  compressed mode beat the best plain Open MPI algorithm on any link of
 *  the recorded sweep (verification/mpi/bench-mpi.md), and auto's choices
 *  there were within noise, so auto does not spend calls on them. */
#define NGL_AUTO_MIN_BYTES (64u * 1024u)

/** Fill @p s with the documented defaults. */
NGL_API void ngl_settings_defaults(ngl_settings *s);

/**
 * Read and validate core's NANGILA_* variables (the fields above) from the
 * environment.
 * On a bad value returns NGL_ERR_INVALID_ARG and writes a message naming the
 * variable, the value and the accepted values into @p err (if non-NULL);
 * @p s then holds the defaults. Unknown NANGILA_* variables (names no layer
 * reads) are reported the same way, so typos do not pass silently.
 */
NGL_API ngl_status ngl_settings_from_env(ngl_settings *s, char *err, size_t err_cap);

/**
 * Same as ngl_settings_from_env(), reading through @p getenv_fn and listing
 * names with @p environ_list (NULL-terminated "NAME=value" strings, may be
 * NULL to skip the unknown-variable check). For tests and embedding.
 */
NGL_API ngl_status ngl_settings_parse(ngl_settings *s, const char *(*getenv_fn)(const char *),
                                      char *const *environ_list, char *err, size_t err_cap);

/** Canonical one-line description of @p s, e.g. for mismatch checks. */
NGL_API size_t ngl_settings_describe(const ngl_settings *s, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* NANGILA_H */
