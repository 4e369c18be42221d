/* SPDX-License-Identifier: Apache-2.0 */
/* coll_codec_host.c -- the collNet's compression calls for host memory. */
#include "ngl_coll_codec.h"

#include <stdlib.h>
#include <string.h>

struct ngl_cc_stream {
    ngl_encoder *enc; /* exactly one of enc/dec is set */
    ngl_decoder *dec;
};

static ngl_status host_create(const ngl_stream_config *cfg, int is_encoder, ngl_cc_stream **out)
{
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

static ngl_status host_encode(ngl_cc_stream *s, const void *src, void *frame, size_t cap,
                              size_t *len)
{
    return ngl_encoder_encode(s->enc, src, frame, cap, len);
}

static ngl_status host_decode(ngl_cc_stream *s, const void *frame, size_t len, void *dst,
                              int accumulate)
{
    return ngl_decoder_decode(s->dec, frame, len, dst, accumulate ? NGL_DECODE_ACCUMULATE : 0u);
}

static void host_copy(void *dst, const void *src, size_t bytes)
{
    if (bytes > 0) {
        memcpy(dst, src, bytes);
    }
}

static void host_zero(void *dst, size_t bytes)
{
    if (bytes > 0) {
        memset(dst, 0, bytes);
    }
}

static void host_stats(const ngl_cc_stream *s, uint64_t *bytes_in, uint64_t *bytes_out)
{
    ngl_encoder_stats st;
    memset(&st, 0, sizeof st);
    if (s != NULL && s->enc != NULL) {
        ngl_encoder_get_stats(s->enc, &st);
    }
    *bytes_in = st.bytes_in;
    *bytes_out = st.bytes_out;
}

const ngl_cc_ops ngl_cc_host_ops = {
    .name = "host",
    .create = host_create,
    .destroy = host_destroy,
    .encode = host_encode,
    .decode = host_decode,
    .copy = host_copy,
    .zero = host_zero,
    .stats = host_stats,
};
