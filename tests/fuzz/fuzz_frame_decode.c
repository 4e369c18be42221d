/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_frame_decode -- arbitrary bytes as a frame.
 *
 * The input goes to ngl_frame_inspect() and to decoders of several
 * configurations: three fixed ones, and one configured from the frame's own
 * header and brought mid-way through its stream (up to three real frames
 * decoded first, so predictor and gate state are live). The frame is tried
 * as it is and, if rejected, again with its step and CRC patched so that
 * mutations reach the payload checks. Properties:
 *   - nothing crashes or reads outside the input (ASan);
 *   - a header-level error is the same from inspect and from every decoder;
 *   - a rejected frame leaves the output buffer and the decoder state (hash
 *     and step) untouched; an accepted one advances the step by one.
 * Seeds: the golden frames of tests/golden (valid and invalid).
 */
#include "fuzz_helpers.h"
#include "nangila.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define COUNT_LIMIT 4096u
#define WARM_MAX    3u

static int is_header_status(ngl_status s)
{
    return s >= NGL_ERR_TRUNCATED && s <= NGL_ERR_CRC_MISMATCH;
}

/* Decodes @p frame once and checks the untouched-on-error contract. */
static ngl_status decode_checked(ngl_decoder *dec, const uint8_t *frame, size_t len,
                                 size_t out_bytes, unsigned flags, ngl_status header_st)
{
    uint8_t *out = malloc(out_bytes + 1);
    uint8_t *before = malloc(out_bytes + 1);
    FUZZ_CHECK(out != NULL && before != NULL, "out of memory");
    uint64_t seed = fuzz_hash(frame, len < 64 ? len : 64);
    for (size_t i = 0; i < out_bytes + 1; i++) {
        out[i] = (uint8_t)fuzz_mix(seed + i / 8);
    }
    memcpy(before, out, out_bytes + 1);
    uint64_t hash = ngl_decoder_state_hash(dec), step = ngl_decoder_step(dec);

    ngl_status st = ngl_decoder_decode(dec, frame, len, out, flags);

    if (header_st != NGL_OK) {
        FUZZ_CHECK(st == header_st, "decode says %s, inspect says %s", ngl_status_str(st),
                   ngl_status_str(header_st));
    }
    if (st == NGL_OK) {
        FUZZ_CHECK(ngl_decoder_step(dec) == step + 1, "accepted frame did not advance the step");
        FUZZ_CHECK(out[out_bytes] == before[out_bytes], "wrote past the output");
    } else {
        FUZZ_CHECK(st >= NGL_ERR_TRUNCATED && st <= NGL_ERR_BACKEND_UNAVAILABLE,
                   "not a frame error: %s", ngl_status_str(st));
        FUZZ_CHECK(memcmp(out, before, out_bytes + 1) == 0, "rejected (%s) but output written",
                   ngl_status_str(st));
        FUZZ_CHECK(ngl_decoder_state_hash(dec) == hash, "rejected (%s) but state changed",
                   ngl_status_str(st));
        FUZZ_CHECK(ngl_decoder_step(dec) == step, "rejected but step changed");
    }
    free(before);
    free(out);
    return st;
}

static void fixed_decoders(const uint8_t *frame, size_t len, ngl_status header_st)
{
    ngl_stream_config c[3];
    for (int i = 0; i < 3; i++) {
        ngl_stream_config_init(&c[i]);
        c[i].block_size = 8;
    }
    c[0].count = 64;
    c[0].lossless = NGL_LOSSLESS_RLE;
    c[1].codec = NGL_CODEC_EPS;
    c[1].dtype = NGL_DTYPE_F64;
    c[1].predictor = NGL_PRED_LINEAR;
    c[1].eps = 1e-3;
    c[1].count = 16;
    c[2].codec = NGL_CODEC_INT4;
    c[2].dtype = NGL_DTYPE_BF16;
    c[2].predictor = NGL_PRED_MOMENTUM;
    c[2].topk_fraction = 0.5;
    c[2].count = 100;
    for (int i = 0; i < 3; i++) {
        ngl_decoder *dec = NULL;
        FUZZ_CHECK(ngl_decoder_create(&c[i], &dec) == NGL_OK, "decoder_create");
        decode_checked(dec, frame, len, (size_t)c[i].count * ngl_dtype_size(c[i].dtype), 0,
                       header_st);
        ngl_decoder_destroy(dec);
    }
}

static void fill_step(const ngl_stream_config *c, uint64_t seed, unsigned step, uint8_t *dst)
{
    for (uint64_t i = 0; i < c->count; i++) {
        uint64_t h = fuzz_mix(seed ^ fuzz_mix(step * 0x10001ull + i));
        double v = ((double)(h >> 11) * 0x1p-53 - 0.5) * 4.0 + 0.1 * step;
        if ((h & 63u) == 0) {
            v = NAN;
        }
        float f = (float)v;
        switch (c->dtype) {
        case NGL_DTYPE_F32: memcpy(dst + 4 * i, &f, 4); break;
        case NGL_DTYPE_F64: memcpy(dst + 8 * i, &v, 8); break;
        default: {
            uint32_t u;
            memcpy(&u, &f, 4);
            /* bf16 by truncation; as f16 the same bits are just some value */
            uint16_t hbits = (uint16_t)(u >> 16);
            memcpy(dst + 2 * i, &hbits, 2);
            break;
        }
        }
    }
}

/* A decoder configured from the frame's header, @p warm steps into a real
 * stream of that configuration. Returns NULL if no such configuration. */
static ngl_decoder *stream_decoder(const uint8_t *frame, size_t len, const ngl_frame_info *fi,
                                   unsigned warm, ngl_stream_config *cfg)
{
    ngl_stream_config_init(cfg);
    cfg->codec = fi->codec;
    cfg->dtype = fi->dtype;
    cfg->predictor = fi->predictor;
    cfg->block_size = fi->block_size;
    cfg->count = fi->count;
    cfg->stream_id = fi->stream_id;
    cfg->seed = 0x5eed;
    cfg->topk_fraction = (fi->flags & 2u) ? 1.0 : 0.0;
    cfg->lossless = (fuzz_hash(frame, len) & 1u) ? NGL_LOSSLESS_RLE : NGL_LOSSLESS_NONE;
    cfg->error_feedback = cfg->codec == NGL_CODEC_INT8 || cfg->codec == NGL_CODEC_INT4;
    cfg->eps = 1.0;
    const uint8_t *body = frame + NGL_FRAME_HEADER_SIZE;
    size_t body_len = len - NGL_FRAME_HEADER_SIZE;
    if (((fi->flags >> 3) & 3u) == 0) {
        /* take beta and eps from the body, so that a valid one matches */
        if (fi->predictor == NGL_PRED_MOMENTUM && body_len >= 8) {
            float beta;
            memcpy(&beta, body + 4, 4);
            if (beta >= 0.0f && beta < 1.0f) {
                cfg->momentum_beta = beta;
            }
        }
        if (fi->codec == NGL_CODEC_EPS && body_len >= 16) {
            double eps;
            memcpy(&eps, body + 8, 8);
            if (eps > 0.0 && eps <= 1e300) {
                cfg->eps = eps;
            }
        }
    }
    if (ngl_stream_config_check(cfg, NULL) != NGL_OK) {
        return NULL;
    }
    ngl_encoder *enc = NULL;
    ngl_decoder *dec = NULL;
    FUZZ_CHECK(ngl_encoder_create(cfg, &enc) == NGL_OK, "encoder_create");
    FUZZ_CHECK(ngl_decoder_create(cfg, &dec) == NGL_OK, "decoder_create");
    size_t cap = ngl_encode_bound(cfg);
    size_t bytes = (size_t)cfg->count * ngl_dtype_size(cfg->dtype);
    uint8_t *buf = malloc(cap), *x = malloc(bytes + 1), *y = malloc(bytes + 1);
    FUZZ_CHECK(buf != NULL && x != NULL && y != NULL, "out of memory");
    uint64_t seed = fuzz_hash(frame, len);
    for (unsigned s = 0; s < warm; s++) {
        size_t n = 0;
        fill_step(cfg, seed, s, x);
        FUZZ_CHECK(ngl_encoder_encode(enc, x, buf, cap, &n) == NGL_OK, "warm-up encode");
        FUZZ_CHECK(ngl_decoder_decode(dec, buf, n, y, 0) == NGL_OK, "warm-up decode");
    }
    FUZZ_CHECK(ngl_encoder_state_hash(enc) == ngl_decoder_state_hash(dec), "lockstep");
    free(y);
    free(x);
    free(buf);
    ngl_encoder_destroy(enc);
    return dec;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: ASan flags any read past the frame. */
    uint8_t *frame = malloc(size ? size : 1);
    FUZZ_CHECK(frame != NULL, "out of memory");
    if (size) {
        memcpy(frame, data, size);
    }

    ngl_frame_info fi, fi_nocrc;
    ngl_status st_crc = ngl_frame_inspect(frame, size, 1, &fi);
    ngl_status st_hdr = ngl_frame_inspect(frame, size, 0, &fi_nocrc);
    if (st_hdr != NGL_OK) {
        FUZZ_CHECK(st_crc == st_hdr, "inspect with and without CRC disagree");
        FUZZ_CHECK(is_header_status(st_hdr), "inspect: %s", ngl_status_str(st_hdr));
    } else {
        FUZZ_CHECK(st_crc == NGL_OK || st_crc == NGL_ERR_CRC_MISMATCH, "inspect: %s",
                   ngl_status_str(st_crc));
    }

    fixed_decoders(frame, size, st_crc);

    if (st_hdr == NGL_OK && fi_nocrc.count <= COUNT_LIMIT) {
        unsigned warm = fi_nocrc.step < WARM_MAX ? (unsigned)fi_nocrc.step : WARM_MAX;
        ngl_stream_config cfg;
        ngl_decoder *dec = stream_decoder(frame, size, &fi_nocrc, warm, &cfg);
        if (dec != NULL) {
            size_t out_bytes = (size_t)cfg.count * ngl_dtype_size(cfg.dtype);
            unsigned flags = (fuzz_hash(frame, size) & 2u) ? NGL_DECODE_ACCUMULATE : 0u;
            ngl_status st = decode_checked(dec, frame, size, out_bytes, flags, st_crc);
            if (st != NGL_OK) {
                /* the same frame at the decoder's step, CRC recomputed */
                uint64_t step = warm;
                for (int i = 0; i < 8; i++) {
                    frame[24 + i] = (uint8_t)(step >> (8 * i));
                }
                uint32_t crc = ngl_crc32c(0, frame, 44);
                crc = ngl_crc32c(crc, frame + NGL_FRAME_HEADER_SIZE, size - NGL_FRAME_HEADER_SIZE);
                for (int i = 0; i < 4; i++) {
                    frame[44 + i] = (uint8_t)(crc >> (8 * i));
                }
                ngl_frame_info patched;
                FUZZ_CHECK(ngl_frame_inspect(frame, size, 1, &patched) == NGL_OK, "patched");
                decode_checked(dec, frame, size, out_bytes, flags, NGL_OK);
            }
            ngl_decoder_destroy(dec);
        }
    }
    free(frame);
    return 0;
}
