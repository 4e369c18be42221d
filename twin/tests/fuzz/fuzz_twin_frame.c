/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_twin_frame.c -- libFuzzer target for the twin message parser and
 * decoder. Input: one mode byte, then a message.
 *   mode bit 0: rewrite the message's CRC first (reach past the CRC check)
 *   mode bit 1: prime the decoder with a valid keyframe of a fixed stream
 *               first, so the input is decoded as that stream's next message
 * Every input must give NGL_OK or one of the documented message errors,
 * never write past the output buffer, and leave a decoder that still decodes
 * the fixed stream's messages exactly.
 */
#include "nangila_twin.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { FZ_C = 3, FZ_N = 2, FZ_MAX_CH = 64, FZ_MAX_SAMPLES = 256 };

/* The fixed stream: a keyframe (seq 0) and a delta (seq 1), built once. */
static uint8_t fz_key[512], fz_delta[512];
static size_t fz_key_len, fz_delta_len;
static float fz_values[2][FZ_N * FZ_C];

static void fz_init(void)
{
    if (fz_key_len != 0) {
        return;
    }
    ngl_twin_config cfg;
    ngl_twin_config_init(&cfg);
    cfg.channels = FZ_C;
    cfg.max_samples = FZ_N;
    cfg.bound.eps = 1e-3;
    cfg.stream_id = 0x5EED;
    ngl_twin_encoder *enc = NULL;
    if (ngl_twin_encoder_create(&cfg, &enc) != NGL_OK) {
        abort();
    }
    for (int i = 0; i < FZ_N * FZ_C; i++) {
        fz_values[0][i] = (float)i * 0.5f;
        fz_values[1][i] = (float)i * 0.5f + 0.25f;
    }
    if (ngl_twin_encoder_encode(enc, fz_values[0], FZ_N, fz_key, sizeof(fz_key), &fz_key_len) !=
            NGL_OK ||
        ngl_twin_encoder_encode(enc, fz_values[1], FZ_N, fz_delta, sizeof(fz_delta),
                                &fz_delta_len) != NGL_OK) {
        abort();
    }
    ngl_twin_encoder_destroy(enc);
}

static int known_status(ngl_status st)
{
    switch (st) {
    case NGL_OK:
    case NGL_ERR_DST_TOO_SMALL:
    case NGL_ERR_TRUNCATED:
    case NGL_ERR_BAD_MAGIC:
    case NGL_ERR_BAD_VERSION:
    case NGL_ERR_BAD_CODEC:
    case NGL_ERR_BAD_FLAGS:
    case NGL_ERR_BAD_LENGTH:
    case NGL_ERR_CRC_MISMATCH:
    case NGL_ERR_BAD_DTYPE:
    case NGL_ERR_BAD_SCALE:
    case NGL_ERR_COUNT_MISMATCH:
    case NGL_ERR_UNSUPPORTED:
    case NGL_ERR_STREAM_MISMATCH:
    case NGL_ERR_BAD_SECTION:
    case NGL_ERR_BAD_CODE: return 1;
    default: return 0;
    }
}

static void put_crc(uint8_t *p, size_t n)
{
    if (n < 4) {
        return;
    }
    uint32_t c = ngl_crc32c(0, p, n - 4);
    for (int i = 0; i < 4; i++) {
        p[n - 4 + i] = (uint8_t)(c >> (8 * i));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static double out[FZ_MAX_CH * FZ_MAX_SAMPLES + 1];
    fz_init();
    if (size < 1) {
        return 0;
    }
    const unsigned mode = data[0];
    const size_t n = size - 1;
    uint8_t *msg = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
    if (msg == NULL) {
        return 0;
    }
    memcpy(msg, data + 1, n);
    if (mode & 1u) {
        put_crc(msg, n);
    }
    ngl_twin_header h;
    if (!known_status(ngl_twin_frame_peek(msg, n, 0, &h)) ||
        !known_status(ngl_twin_frame_peek(msg, n, 1, &h))) {
        abort();
    }
    ngl_twin_decoder_opts o;
    ngl_twin_decoder_opts_init(&o);
    o.max_channels = FZ_MAX_CH;
    o.max_samples = FZ_MAX_SAMPLES;
    ngl_twin_decoder *dec = NULL;
    if (ngl_twin_decoder_create(&o, &dec) != NGL_OK) {
        abort();
    }
    ngl_twin_info info;
    if ((mode & 2u) &&
        ngl_twin_decoder_decode(dec, fz_key, fz_key_len, out, sizeof(out) - 8, &info) != NGL_OK) {
        abort();
    }
    /* the last slot is a canary: nothing may be written past the capacity */
    out[FZ_MAX_CH * FZ_MAX_SAMPLES] = 42.0;
    ngl_status st = ngl_twin_decoder_decode(dec, msg, n, out, sizeof(out) - 8, &info);
    if (!known_status(st) || out[FZ_MAX_CH * FZ_MAX_SAMPLES] != 42.0) {
        abort();
    }
    if (st == NGL_OK && (size_t)info.nsamples * info.channels * 8u > sizeof(out) - 8) {
        abort();
    }
    /* whatever happened, the fixed stream still decodes exactly from its keyframe */
    ngl_twin_decoder_reset(dec);
    float vals[FZ_N * FZ_C];
    if (ngl_twin_decoder_decode(dec, fz_key, fz_key_len, vals, sizeof(vals), &info) != NGL_OK ||
        info.nsamples != FZ_N) {
        abort();
    }
    if (ngl_twin_decoder_decode(dec, fz_delta, fz_delta_len, vals, sizeof(vals), &info) != NGL_OK ||
        info.nsamples != FZ_N) {
        abort();
    }
    for (int i = 0; i < FZ_N * FZ_C; i++) {
        float d = vals[i] - fz_values[1][i];
        if (d > 1e-3f || d < -1e-3f) {
            abort();
        }
    }
    ngl_twin_decoder_destroy(dec);
    free(msg);
    return 0;
}
