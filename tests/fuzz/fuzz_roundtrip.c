/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_roundtrip -- a fuzzer-chosen stream configuration and data, encoded
 * and decoded for up to four steps (the input's bytes are the elements' bit
 * patterns, so NaN payloads, Inf, subnormals and extremes all occur).
 * Properties, every step:
 *   - encode succeeds into exactly ngl_encode_bound() bytes, and the frame
 *     passes inspection with the stream's header fields;
 *   - decode succeeds and leaves the decoder state equal to the encoder's;
 *   - a fresh encoder on the portable reference kernels produces the same
 *     bytes (determinism, and every SIMD variant equal to the reference);
 *   - NaN and +-Inf come back bit for bit; RAW is exact; EPS is within eps
 *     for every finite element; INT8/INT4 never turn a finite input
 *     non-finite and, without predictor, error feedback, Top-K or mask,
 *     stay within one scale step of the input.
 */
#include "fuzz_helpers.h"
#include "nangila.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define COUNT_MAX_FUZZ 1024u
#define STEPS_MAX_FUZZ 4u

static int finite_bits(ngl_dtype d, const uint8_t *p)
{
    switch (d) {
    case NGL_DTYPE_F32: {
        uint32_t u;
        memcpy(&u, p, 4);
        return (u & 0x7f800000u) != 0x7f800000u;
    }
    case NGL_DTYPE_F64: {
        uint64_t u;
        memcpy(&u, p, 8);
        return (u & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
    }
    case NGL_DTYPE_F16: {
        uint16_t u;
        memcpy(&u, p, 2);
        return (u & 0x7c00u) != 0x7c00u;
    }
    default: {
        uint16_t u;
        memcpy(&u, p, 2);
        return (u & 0x7f80u) != 0x7f80u;
    }
    }
}

static double value_of(ngl_dtype d, const uint8_t *p)
{
    if (d == NGL_DTYPE_F64) {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    float f;
    memcpy(&f, p, 4);
    return (double)f;
}

/* The error bound for INT8/INT4 without predictor, error feedback, Top-K or
 * mask (f32 only): |x^ - x| <= maxabs / qmax per block, up to rounding. */
static void check_plain_quant(const ngl_stream_config *c, const uint8_t *x, const uint8_t *y)
{
    double qmax = c->codec == NGL_CODEC_INT8 ? 127.0 : 7.0;
    for (uint64_t lo = 0; lo < c->count; lo += c->block_size) {
        uint64_t hi = lo + c->block_size < c->count ? lo + c->block_size : c->count;
        double maxabs = 0.0;
        for (uint64_t i = lo; i < hi; i++) {
            if (finite_bits(c->dtype, x + 4 * i)) {
                maxabs = fmax(maxabs, fabs(value_of(c->dtype, x + 4 * i)));
            }
        }
        double bound = maxabs / qmax * (1.0 + 0x1p-20) + 0x1p-100;
        for (uint64_t i = lo; i < hi; i++) {
            if (!finite_bits(c->dtype, x + 4 * i)) {
                continue;
            }
            double err = fabs(value_of(c->dtype, y + 4 * i) - value_of(c->dtype, x + 4 * i));
            FUZZ_CHECK(err <= bound, "element %llu: error %g above %g", (unsigned long long)i, err,
                       bound);
        }
    }
}

static void check_output(const ngl_stream_config *c, const uint8_t *x, const uint8_t *y)
{
    size_t esz = ngl_dtype_size(c->dtype);
    for (uint64_t i = 0; i < c->count; i++) {
        const uint8_t *xi = x + esz * i, *yi = y + esz * i;
        if (c->codec == NGL_CODEC_RAW || !finite_bits(c->dtype, xi)) {
            FUZZ_CHECK(memcmp(xi, yi, esz) == 0, "element %llu not carried bit for bit",
                       (unsigned long long)i);
            continue;
        }
        FUZZ_CHECK(finite_bits(c->dtype, yi), "finite element %llu decoded non-finite",
                   (unsigned long long)i);
        if (c->codec == NGL_CODEC_EPS) {
            double err = fabs(value_of(c->dtype, yi) - value_of(c->dtype, xi));
            FUZZ_CHECK(err <= c->eps, "element %llu: |error| %.17g above eps %.17g",
                       (unsigned long long)i, err, c->eps);
        }
    }
    if ((c->codec == NGL_CODEC_INT8 || c->codec == NGL_CODEC_INT4) && c->dtype == NGL_DTYPE_F32 &&
        c->predictor == NGL_PRED_NONE && !c->error_feedback && c->topk_fraction == 0.0 &&
        c->mask_fraction == 0.0) {
        check_plain_quant(c, x, y);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size};
    ngl_stream_config cfg;
    fuzz_config(&r, &cfg, COUNT_MAX_FUZZ);
    unsigned steps = 1u + fuzz_u8(&r) % STEPS_MAX_FUZZ;
    if (ngl_stream_config_check(&cfg, NULL) != NGL_OK) {
        return 0; /* only a back end this build lacks */
    }
    ngl_stream_config ref_cfg = cfg;
    ref_cfg.isa = NGL_ISA_REF;

    ngl_encoder *enc = NULL, *ref = NULL;
    ngl_decoder *dec = NULL;
    FUZZ_CHECK(ngl_encoder_create(&cfg, &enc) == NGL_OK, "encoder_create");
    FUZZ_CHECK(ngl_encoder_create(&ref_cfg, &ref) == NGL_OK, "encoder_create (ref)");
    FUZZ_CHECK(ngl_decoder_create(&cfg, &dec) == NGL_OK, "decoder_create");
    size_t cap = ngl_encode_bound(&cfg);
    size_t bytes = (size_t)cfg.count * ngl_dtype_size(cfg.dtype);
    uint8_t *frame = malloc(cap), *frame_ref = malloc(cap);
    uint8_t *x = malloc(bytes + 1), *y = malloc(bytes + 1);
    FUZZ_CHECK(frame != NULL && frame_ref != NULL && x != NULL && y != NULL, "out of memory");

    for (unsigned s = 0; s < steps; s++) {
        fuzz_bytes(&r, x, bytes);
        size_t len = 0, len_ref = 0;
        FUZZ_CHECK(ngl_encoder_encode(enc, x, frame, cap, &len) == NGL_OK, "encode");
        FUZZ_CHECK(len >= NGL_FRAME_HEADER_SIZE && len <= cap, "frame length %zu, bound %zu", len,
                   cap);
        FUZZ_CHECK(ngl_encoder_encode(ref, x, frame_ref, cap, &len_ref) == NGL_OK, "encode ref");
        FUZZ_CHECK(len == len_ref && memcmp(frame, frame_ref, len) == 0,
                   "%s and ref encoders differ at step %u", ngl_isa_name(cfg.isa), s);

        ngl_frame_info fi;
        FUZZ_CHECK(ngl_frame_inspect(frame, len, 1, &fi) == NGL_OK, "inspect");
        FUZZ_CHECK(fi.codec == cfg.codec && fi.dtype == cfg.dtype &&
                       fi.predictor == cfg.predictor && fi.block_size == cfg.block_size &&
                       fi.count == cfg.count && fi.stream_id == cfg.stream_id && fi.step == s,
                   "header fields");

        ngl_status st = ngl_decoder_decode(dec, frame, len, y, 0);
        FUZZ_CHECK(st == NGL_OK, "decode: %s", ngl_status_str(st));
        FUZZ_CHECK(ngl_encoder_state_hash(enc) == ngl_decoder_state_hash(dec),
                   "encoder and decoder state differ after step %u", s);
        check_output(&cfg, x, y);
    }
    free(y);
    free(x);
    free(frame_ref);
    free(frame);
    ngl_decoder_destroy(dec);
    ngl_encoder_destroy(ref);
    ngl_encoder_destroy(enc);
    return 0;
}
