/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_inner_fixture.c -- a second, independent ncclNet plugin for the
 * tests: our TCP transport exported under another name, with device names
 * prefixed "inner-". The harness points NANGILA_NET_INNER at it to check
 * that libnccl-net-nangila.so really forwards point-to-point traffic (and
 * builds its collNet) on top of another plugin. Test-only; never installed.
 */
#include "ngl_plugin.h"

#include <stdio.h>

static char fx_names[16][40];

static ngl_nccl_result_t fx_init(ngl_nccl_logger_t logger)
{
    /* Ignore NANGILA_NET_INNER: it names this very library. */
    return ngl_plugin_setup_ex(logger, 0, &ngl_tcp_table) == 0 ? NGL_NCCL_SUCCESS
                                                               : NGL_NCCL_INTERNAL_ERROR;
}

static ngl_nccl_result_t fx_get_properties(int dev, ngl_nccl_props_v8_t *props)
{
    ngl_nccl_result_t r = ngl_tcp_table.getProperties(dev, props);
    if (r == NGL_NCCL_SUCCESS && dev >= 0 && dev < 16) {
        snprintf(fx_names[dev], sizeof fx_names[dev], "inner-%s", props->name);
        props->name = fx_names[dev];
    }
    return r;
}

__attribute__((visibility("default"))) ngl_nccl_net_v8_t ncclNetPlugin_v8;

__attribute__((constructor)) static void fx_fill(void)
{
    ncclNetPlugin_v8 = ngl_tcp_table;
    ncclNetPlugin_v8.name = "ngl-inner-fixture";
    ncclNetPlugin_v8.init = fx_init;
    ncclNetPlugin_v8.getProperties = fx_get_properties;
}
