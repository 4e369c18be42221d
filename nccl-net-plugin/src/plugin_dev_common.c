/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_dev_common.c -- what the transport and the collNet ask of the
 * device back end, whichever back end is linked (plugin_dev_cuda.c or
 * plugin_dev_none.c): is there a usable device, which device owns a
 * pointer, and entering/leaving a device on the calling thread. Kept out
 * of plugin_state.c so that the set-up and the transport do not include
 * each other.
 */
#include "ngl_plugin.h"
#include "ngl_plugin_dev.h"

#include <errno.h>
#include <pthread.h>

static pthread_once_t dev_once = PTHREAD_ONCE_INIT;
static int dev_usable;

static void dev_probe(void)
{
    const ngl_plugin_dev_ops *d = ngl_plugin_dev();
    int n = d != NULL ? d->device_count() : 0;
    dev_usable = n > 0;
    if (d != NULL) {
        NGL_PINFO(NGL_NCCL_SUBSYS_INIT | NGL_NCCL_SUBSYS_NET,
                  "device back end %s: %d device(s); device memory %s", d->name, n,
                  n > 0 ? "accepted (NCCL_PTR_CUDA)" : "not accepted (no usable device)");
    }
}

int ngl_plugin_dev_usable(void)
{
    pthread_once(&dev_once, dev_probe);
    return dev_usable;
}

int ngl_plugin_dev_of(const void *p, int *dev)
{
    const ngl_plugin_dev_ops *d = ngl_plugin_dev();
    *dev = -1;
    if (d == NULL || !ngl_plugin_dev_usable()) {
        return -EINVAL;
    }
    *dev = d->pointer_device(p);
    if (*dev >= 0) {
        return 0;
    }
    /* NCCL said device memory; CUDA's pointer query may not know every
     * allocation NCCL makes (virtual memory management). Trust NCCL and
     * use the thread's device: NCCL's proxy threads run on the comm's GPU.
     * Were it host memory after all, the first kernel fails cleanly. */
    if (d->get_device(dev) != 0) {
        return NGL_PLUGIN_EDEVICE;
    }
    NGL_PINFO(NGL_NCCL_SUBSYS_NET, "regMr: CUDA does not place %p; using the current GPU %d", p,
              *dev);
    return 0;
}

int ngl_plugin_dev_enter(int dev, int *saved)
{
    const ngl_plugin_dev_ops *d = ngl_plugin_dev();
    int cur = -1;
    *saved = -1;
    if (d == NULL || d->get_device(&cur) != 0) {
        return NGL_PLUGIN_EDEVICE;
    }
    if (cur == dev) {
        return 0;
    }
    if (d->set_device(dev) != 0) {
        return NGL_PLUGIN_EDEVICE;
    }
    *saved = cur;
    return 0;
}

void ngl_plugin_dev_leave(int saved)
{
    const ngl_plugin_dev_ops *d = ngl_plugin_dev();
    if (saved >= 0 && d != NULL) {
        (void)d->set_device(saved);
    }
}
