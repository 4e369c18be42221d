/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_dst_too_small -- encoding into a buffer below ngl_encode_bound(), and
 * decoding cut-short frames.
 * Properties:
 *   - encode with dst_cap < bound returns NGL_ERR_DST_TOO_SMALL, writes
 *     nothing (the buffer is exactly dst_cap bytes, so ASan sees any write
 *     past it) and changes no state: the next encode with a large enough
 *     buffer, a block-mask override set before the failed call included,
 *     gives the same frame as an encoder that never failed;
 *   - every prefix of a valid frame tried here is rejected with TRUNCATED,
 *     and leaves the decoder able to decode the whole frame next.
 */
#include "fuzz_helpers.h"
#include "nangila.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define COUNT_MAX_FUZZ 512u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = {data, size};
    ngl_stream_config cfg;
    fuzz_config(&r, &cfg, COUNT_MAX_FUZZ);
    uint32_t shortfall = fuzz_u16(&r);
    uint32_t use_mask = fuzz_u8(&r) & 1u;
    if (ngl_stream_config_check(&cfg, NULL) != NGL_OK) {
        return 0;
    }
    size_t bound = ngl_encode_bound(&cfg);
    size_t small_cap = bound - 1 - (size_t)shortfall % bound; /* 0 .. bound - 1 */
    size_t bytes = (size_t)cfg.count * ngl_dtype_size(cfg.dtype);
    uint64_t nblocks = (cfg.count + cfg.block_size - 1) / cfg.block_size;
    size_t mask_bytes = (size_t)((nblocks + 7) / 8);

    ngl_encoder *enc = NULL, *clean = NULL;
    ngl_decoder *dec = NULL;
    FUZZ_CHECK(ngl_encoder_create(&cfg, &enc) == NGL_OK, "encoder_create");
    FUZZ_CHECK(ngl_encoder_create(&cfg, &clean) == NGL_OK, "encoder_create");
    FUZZ_CHECK(ngl_decoder_create(&cfg, &dec) == NGL_OK, "decoder_create");
    uint8_t *x = malloc(bytes + 1), *y = malloc(bytes + 1), *mask = malloc(mask_bytes + 1);
    uint8_t *small = malloc(small_cap ? small_cap : 1), *small_copy = malloc(small_cap + 1);
    uint8_t *frame = malloc(bound), *frame_clean = malloc(bound);
    FUZZ_CHECK(x && y && mask && small && small_copy && frame && frame_clean, "out of memory");
    fuzz_bytes(&r, x, bytes);
    fuzz_bytes(&r, mask, mask_bytes);
    memset(small, 0x5a, small_cap ? small_cap : 1);
    memcpy(small_copy, small, small_cap);

    /* a first step, so that the failed call has state to disturb */
    size_t len = 0, len_clean = 0;
    FUZZ_CHECK(ngl_encoder_encode(enc, x, frame, bound, &len) == NGL_OK, "encode");
    FUZZ_CHECK(ngl_encoder_encode(clean, x, frame_clean, bound, &len_clean) == NGL_OK, "encode");
    FUZZ_CHECK(ngl_decoder_decode(dec, frame, len, y, 0) == NGL_OK, "decode");

    int quant = cfg.codec == NGL_CODEC_INT8 || cfg.codec == NGL_CODEC_INT4;
    if (use_mask && mask_bytes > 0 && quant) { /* other codecs have no mask */
        FUZZ_CHECK(ngl_encoder_set_block_mask(enc, mask) == NGL_OK, "set_block_mask");
        FUZZ_CHECK(ngl_encoder_set_block_mask(clean, mask) == NGL_OK, "set_block_mask");
    }
    uint64_t hash = ngl_encoder_state_hash(enc), step = ngl_encoder_step(enc);
    size_t out_len = 12345;
    ngl_status st = ngl_encoder_encode(enc, x, small, small_cap, &out_len);
    FUZZ_CHECK(st == NGL_ERR_DST_TOO_SMALL, "cap %zu of bound %zu: %s", small_cap, bound,
               ngl_status_str(st));
    FUZZ_CHECK(memcmp(small, small_copy, small_cap) == 0, "DST_TOO_SMALL but dst written");
    FUZZ_CHECK(ngl_encoder_state_hash(enc) == hash && ngl_encoder_step(enc) == step,
               "DST_TOO_SMALL changed the state");

    FUZZ_CHECK(ngl_encoder_encode(enc, x, frame, bound, &len) == NGL_OK, "encode after failure");
    FUZZ_CHECK(ngl_encoder_encode(clean, x, frame_clean, bound, &len_clean) == NGL_OK, "encode");
    FUZZ_CHECK(len == len_clean && memcmp(frame, frame_clean, len) == 0,
               "the failed call changed the next frame");

    /* Prefixes of the frame: the whole header but not the payload, part of
     * the header, one byte short. */
    const size_t cuts[3] = {len - 1, len / 2, NGL_FRAME_HEADER_SIZE - 1};
    for (int i = 0; i < 3; i++) {
        if (cuts[i] >= len) {
            continue;
        }
        uint8_t *cut = malloc(cuts[i] ? cuts[i] : 1);
        FUZZ_CHECK(cut != NULL, "out of memory");
        memcpy(cut, frame, cuts[i]);
        st = ngl_decoder_decode(dec, cut, cuts[i], y, 0);
        FUZZ_CHECK(st == NGL_ERR_TRUNCATED, "prefix of %zu of %zu bytes: %s", cuts[i], len,
                   ngl_status_str(st));
        free(cut);
    }
    st = ngl_decoder_decode(dec, frame, len, y, 0);
    FUZZ_CHECK(st == NGL_OK, "whole frame after its prefixes: %s", ngl_status_str(st));

    free(frame_clean);
    free(frame);
    free(small_copy);
    free(small);
    free(mask);
    free(y);
    free(x);
    ngl_decoder_destroy(dec);
    ngl_encoder_destroy(clean);
    ngl_encoder_destroy(enc);
    return 0;
}
