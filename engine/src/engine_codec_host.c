/* SPDX-License-Identifier: Apache-2.0 */
/* engine_codec_host.c -- the engine's codec ops for host memory: the core's
 * encoder and decoder, complete as soon as they return. */
#include "ngl_engine.h"

#include <stdlib.h>
#include <string.h>

struct ngl_cc_stream {
    ngl_encoder *enc; /* exactly one of enc/dec is set */
    ngl_decoder *dec;
    size_t len; /* length of the last frame encoded */
};

static ngl_status host_create(const ngl_stream_config *cfg, int is_encoder, void *queue,
                              uint32_t variant, ngl_cc_stream **out)
{
    (void)queue;
    (void)variant;
    *out = NULL;
    ngl_cc_stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    ngl_status st =
        is_encoder ? ngl_encoder_create(cfg, &s->enc) : ngl_decoder_create(cfg, &s->dec);
    if (st != NGL_OK) {
        free(s);
        return st;
    }
    *out = s;
    return NGL_OK;
}

static void host_destroy(ngl_cc_stream *s)
{
    if (s == NULL) {
        return;
    }
    ngl_encoder_destroy(s->enc);
    ngl_decoder_destroy(s->dec);
    free(s);
}

static ngl_status host_encode(ngl_cc_stream *s, const void *src, void *frame, size_t cap)
{
    return ngl_encoder_encode(s->enc, src, frame, cap, &s->len);
}

static ngl_status host_decode(ngl_cc_stream *s, const void *frame, size_t len, void *dst,
                              int accumulate)
{
    return ngl_decoder_decode(s->dec, frame, len, dst, accumulate ? NGL_DECODE_ACCUMULATE : 0u);
}

static ngl_status host_poll(ngl_cc_stream *s, int *done, size_t *len)
{
    *done = 1;
    if (len != NULL) {
        *len = s->len;
    }
    return NGL_OK;
}

static int host_busy(const ngl_cc_stream *s)
{
    (void)s;
    return 0;
}

static ngl_status host_skip_blocks(ngl_cc_stream *s, const uint8_t *bits)
{
    return ngl_encoder_set_block_mask(s->enc, bits);
}

static uint64_t host_state_hash(const ngl_cc_stream *s)
{
    return s->enc != NULL ? ngl_encoder_state_hash(s->enc) : ngl_decoder_state_hash(s->dec);
}

const ngl_cc_ops ngl_cc_host_ops = {
    .name = "host",
    .create = host_create,
    .destroy = host_destroy,
    .encode = host_encode,
    .decode = host_decode,
    .poll = host_poll,
    .busy = host_busy,
    .skip_blocks = host_skip_blocks,
    .state_hash = host_state_hash,
};
