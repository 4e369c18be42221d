/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_interface.c -- the only symbols libnccl-net-nangila.so exports:
 * the ncclNet and ncclCollNet tables NCCL looks up with dlsym().
 *
 * Version: v8, which NCCL 2.20 through 2.30 accept (newer NCCL adapts it
 * itself; see nccl-net-plugin/README.md).
 *
 * Blocking: nothing blocks except collNet connect, which NCCL calls once
 * and expects to block. Entries NCCL treats as optional and that a host
 * plugin has no use for are NULL: regMrDmaBuf is never called because
 * ptrSupport has no DMA-BUF bit (it forwards only when an inner plugin
 * provides it), getDeviceMr and irecvConsumed exist only for device
 * offload.
 */
#include "ngl_plugin.h"
#include "ngl_plugin_api.h"

#define NGL_EXPORT __attribute__((visibility("default")))

NGL_EXPORT extern const ngl_nccl_net_v8_t ncclNetPlugin_v8;
NGL_EXPORT extern const ngl_nccl_collnet_v8_t ncclCollNetPlugin_v8;

const ngl_nccl_net_v8_t ncclNetPlugin_v8 = {
    .name = NGL_PLUGIN_NAME,
    .init = ngl_api_net_init,
    .devices = ngl_api_net_devices,
    .getProperties = ngl_api_net_get_properties,
    .listen = ngl_api_net_listen,
    .connect = ngl_api_net_connect,
    .accept = ngl_api_net_accept,
    .regMr = ngl_api_net_reg_mr,
    .regMrDmaBuf = ngl_api_net_reg_mr_dmabuf,
    .deregMr = ngl_api_net_dereg_mr,
    .isend = ngl_api_net_isend,
    .irecv = ngl_api_net_irecv,
    .iflush = ngl_api_net_iflush,
    .test = ngl_api_net_test,
    .closeSend = ngl_api_net_close_send,
    .closeRecv = ngl_api_net_close_recv,
    .closeListen = ngl_api_net_close_listen,
    .getDeviceMr = NULL,
    .irecvConsumed = NULL,
};

const ngl_nccl_collnet_v8_t ncclCollNetPlugin_v8 = {
    .name = NGL_PLUGIN_NAME,
    .init = ngl_api_coll_init,
    .devices = ngl_api_coll_devices,
    .getProperties = ngl_api_coll_get_properties,
    .listen = ngl_api_coll_listen,
    .connect = ngl_api_coll_connect,
    .reduceSupport = ngl_api_coll_reduce_support,
    .regMr = ngl_api_coll_reg_mr,
    .regMrDmaBuf = NULL,
    .deregMr = ngl_api_coll_dereg_mr,
    .iallreduce = ngl_api_coll_iallreduce,
    .iallgather = ngl_api_coll_iallgather,
    .ireducescatter = ngl_api_coll_ireducescatter,
    .iflush = ngl_api_coll_iflush,
    .test = ngl_api_coll_test,
    .closeColl = ngl_api_coll_close_coll,
    .closeListen = ngl_api_coll_close_listen,
};
