/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_dev_cuda.c -- the device back end of ngl_plugin_dev.h on kernels/'
 * C API (ngl_cuda.h): GPU encoder/decoder, streams, events, pinned memory.
 * The same source links with the CUDA kernels (the shipped plugin) and with
 * the CPU emulator (test builds; NGL_PLUGIN_DEV_EMULATOR is then defined),
 * so the plugin's GPU path runs in the tests on machines without a GPU.
 *
 * Nothing here waits for the device: work is enqueued on the collComm's
 * stream and completion is observed with cudaEventQuery (poll()).
 */
#include "ngl_cuda.h"
#include "ngl_plugin.h"
#include "ngl_plugin_dev.h"

#include <errno.h>
#include <stdlib.h>

/* ---- encoder / decoder on device memory --------------------------------- */

struct ngl_cc_stream {
    ngl_cuda_encoder *enc; /* exactly one of enc/dec is set */
    ngl_cuda_decoder *dec;
    ngl_cuda_stream queue;
    int pending; /* an operation started and not yet polled done */
};

static ngl_status dev_create(const ngl_stream_config *cfg, int is_encoder, void *queue,
                             uint32_t variant, ngl_cc_stream **out)
{
    (void)variant;
    *out = NULL;
    ngl_cc_stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    s->queue = (ngl_cuda_stream)queue;
    /* create_on: the state is zeroed on our stream; nothing waits, so a
     * warm-up never waits behind NCCL's kernels. */
    ngl_status st = is_encoder ? ngl_cuda_encoder_create_on(cfg, s->queue, &s->enc)
                               : ngl_cuda_decoder_create_on(cfg, s->queue, &s->dec);
    if (st != NGL_OK) {
        free(s);
        return st;
    }
    *out = s;
    return NGL_OK;
}

static void dev_destroy(ngl_cc_stream *s)
{
    if (s == NULL) {
        return;
    }
    ngl_cuda_encoder_destroy(s->enc);
    ngl_cuda_decoder_destroy(s->dec);
    free(s);
}

static ngl_status dev_encode(ngl_cc_stream *s, const void *src, void *frame, size_t cap)
{
    ngl_status st = ngl_cuda_encoder_submit(s->enc, src, frame, cap, s->queue);
    s->pending = st == NGL_OK;
    return st;
}

static ngl_status dev_decode(ngl_cc_stream *s, const void *frame, size_t len, void *dst,
                             int accumulate)
{
    ngl_status st = ngl_cuda_decoder_submit(s->dec, frame, len, dst,
                                            accumulate ? NGL_DECODE_ACCUMULATE : 0u, s->queue);
    s->pending = st == NGL_OK;
    return st;
}

static ngl_status dev_poll(ngl_cc_stream *s, int *done, size_t *len)
{
    *done = 0;
    if (!s->pending) {
        return NGL_ERR_INVALID_ARG;
    }
    size_t n = 0;
    ngl_status st = s->enc != NULL ? ngl_cuda_encoder_poll(s->enc, done, &n)
                                   : ngl_cuda_decoder_poll(s->dec, done);
    if (st != NGL_OK || *done) {
        s->pending = 0;
    }
    if (*done && len != NULL) {
        *len = n;
    }
    return st;
}

static int dev_busy(const ngl_cc_stream *s)
{
    return s->pending;
}

static const ngl_cc_ops dev_codec = {
    .name = "cuda",
    .create = dev_create,
    .destroy = dev_destroy,
    .encode = dev_encode,
    .decode = dev_decode,
    .poll = dev_poll,
    .busy = dev_busy,
};

/* ---- streams, events, memory ---------------------------------------------- */

static int dev_rc(ngl_status st)
{
    return st == NGL_OK ? 0 : (st == NGL_ERR_NO_MEMORY ? -ENOMEM : NGL_PLUGIN_EDEVICE);
}

static int dev_count(void)
{
    return ngl_cuda_device_count();
}

static int dev_get(int *dev)
{
    return dev_rc(ngl_cuda_get_device(dev));
}

static int dev_set(int dev)
{
    return dev_rc(ngl_cuda_set_device(dev));
}

static int dev_ptr(const void *p)
{
    return ngl_cuda_pointer_device(p);
}

static int dev_queue_create(void **q)
{
    return dev_rc(ngl_cuda_stream_create((ngl_cuda_stream *)q));
}

static void dev_queue_destroy(void *q)
{
    ngl_cuda_stream_destroy((ngl_cuda_stream)q);
}

static int dev_event_create(void **ev)
{
    return dev_rc(ngl_cuda_event_create((ngl_cuda_event *)ev));
}

static void dev_event_destroy(void *ev)
{
    ngl_cuda_event_destroy((ngl_cuda_event)ev);
}

static int dev_event_record(void *ev, void *q)
{
    return dev_rc(ngl_cuda_event_record((ngl_cuda_event)ev, (ngl_cuda_stream)q));
}

static int dev_event_query(void *ev, int *done)
{
    return dev_rc(ngl_cuda_event_query((ngl_cuda_event)ev, done));
}

static int dev_copy(void *dst, const void *src, size_t n, void *q)
{
    return dev_rc(ngl_cuda_memcpy_async(dst, src, n, (ngl_cuda_stream)q));
}

static int dev_host_alloc(void **p, size_t n)
{
    return ngl_cuda_host_alloc(p, n) == NGL_OK ? 0 : -ENOMEM;
}

static void dev_host_free(void *p)
{
    ngl_cuda_host_free(p);
}

static const ngl_plugin_dev_ops dev_ops = {
#if defined(NGL_PLUGIN_DEV_EMULATOR)
    .name = "emulator",
#else
    .name = "cuda",
#endif
#if defined(NGL_PLUGIN_DEV_FIXED_IDS)
    .fixed_stream_ids = 1,
#else
    .fixed_stream_ids = 0,
#endif
    .codec = &dev_codec,
    .device_count = dev_count,
    .get_device = dev_get,
    .set_device = dev_set,
    .pointer_device = dev_ptr,
    .queue_create = dev_queue_create,
    .queue_destroy = dev_queue_destroy,
    .event_create = dev_event_create,
    .event_destroy = dev_event_destroy,
    .event_record = dev_event_record,
    .event_query = dev_event_query,
    .copy = dev_copy,
    .host_alloc = dev_host_alloc,
    .host_free = dev_host_free,
};

const ngl_plugin_dev_ops *ngl_plugin_dev(void)
{
    return &dev_ops;
}
