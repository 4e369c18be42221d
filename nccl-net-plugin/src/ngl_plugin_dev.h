/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_plugin_dev.h -- the plugin's device (CUDA) back end behind one table,
 * so that the protocol code (collnet.c, tcp_net.c) builds and is tested
 * without CUDA. Each .so links exactly one provider:
 *
 *   plugin_dev_none.c  no back end: ngl_plugin_dev() is NULL, host memory
 *                      only (builds without nvcc);
 *   plugin_dev_cuda.c  on kernels/ (ngl_cuda.h) with the CUDA kernels: the
 *                      GPU path that ships;
 *   plugin_dev_cuda.c  on kernels/' CPU emulator: test builds only, never
 *                      installed, so that the GPU path runs in CI.
 *
 * Every int function returns 0 or NGL_PLUGIN_EDEVICE (kernels/ logged the
 * CUDA error through the core's logger). Nothing here blocks except
 * host_free(), which is used only when a comm closes.
 */
#ifndef NGL_PLUGIN_DEV_H
#define NGL_PLUGIN_DEV_H

#include "ngl_engine.h"

#include <stddef.h>

typedef struct ngl_plugin_dev_ops {
    const char *name; /* "cuda" or "emulator" */
    /* Test builds only: collNet stream ids ignore the comm's random hash,
     * so that two collComms of one test code the same inputs identically
     * (collnet.c, stream_id_base()). 0 in the shipped library. */
    int fixed_stream_ids;
    /* The encoder and decoder on device memory. */
    const ngl_cc_ops *codec;
    /* Devices this process can use; 0 when there is no driver or GPU. */
    int (*device_count)(void);
    int (*get_device)(int *dev);
    int (*set_device)(int dev);
    /* The device owning @p p, or -1 for host memory. */
    int (*pointer_device)(const void *p);
    /* A stream that does not wait for the legacy default stream. */
    int (*queue_create)(void **q);
    void (*queue_destroy)(void *q);
    int (*event_create)(void **ev);
    void (*event_destroy)(void *ev);
    int (*event_record)(void *ev, void *q);
    /* Never blocks; *done 1 once the recorded work completed. */
    int (*event_query)(void *ev, int *done);
    /* Enqueue a copy in any direction on @p q (dst == src: nothing). */
    int (*copy)(void *dst, const void *src, size_t n, void *q);
    /* Page-locked host memory: 0, or -ENOMEM. */
    int (*host_alloc)(void **p, size_t n);
    void (*host_free)(void *p);
} ngl_plugin_dev_ops;

/** The back end linked into this .so, or NULL when there is none. */
const ngl_plugin_dev_ops *ngl_plugin_dev(void);

/** 1 when device memory can be served: a back end with a usable device.
 *  Decided once per process. */
int ngl_plugin_dev_usable(void);

/** The GPU of device memory at @p p, registered by NCCL as such: CUDA's
 *  answer, else (memory CUDA's pointer query does not place) the calling
 *  thread's device. @return 0, -EINVAL (no usable back end), or
 *  NGL_PLUGIN_EDEVICE. */
int ngl_plugin_dev_of(const void *p, int *dev);

/** Make @p dev the calling thread's device for the duration of some device
 *  calls: *saved gets the previous one (-1 when nothing changed).
 *  @return 0 or NGL_PLUGIN_EDEVICE. */
int ngl_plugin_dev_enter(int dev, int *saved);
/** Undo ngl_plugin_dev_enter(). */
void ngl_plugin_dev_leave(int saved);

#endif /* NGL_PLUGIN_DEV_H */
