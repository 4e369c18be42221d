/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_api.c -- the boundary between NCCL and the plugin: every entry
 * point of the exported tables lands here, checks its arguments and turns
 * internal 0 / -errno results into NCCL result codes. Nothing else in the
 * plugin speaks ngl_nccl_result_t (except where it calls the transport
 * table, which is itself an NCCL-shaped interface).
 */
#include "ngl_plugin_api.h"

#include "ngl_coll.h"
#include "ngl_plugin.h"
#include "ngl_plugin_dev.h"
#include "ngl_tcp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* An internal 0 / -errno result as an NCCL result code: the only such
 * translation in the plugin. */
static ngl_nccl_result_t ngl_plugin_result(int rc)
{
    switch (rc) {
    case 0: return NGL_NCCL_SUCCESS;
    case -ECONNRESET:
    case -ECONNREFUSED:
    case -ECONNABORTED:
    case -EPIPE:
    case -ENOTCONN:
    case -EPROTO:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ENETUNREACH: return NGL_NCCL_REMOTE_ERROR;
    case -EINVAL:
    case -EMSGSIZE: return NGL_NCCL_INTERNAL_ERROR;
    case NGL_PLUGIN_EDEVICE: return NGL_NCCL_UNHANDLED_CUDA_ERROR;
    default: return NGL_NCCL_SYSTEM_ERROR;
    }
}

/* ---- our TCP transport as an ncclNet v8 table ---------------------------- */

static ngl_nccl_result_t tcp_init(ngl_nccl_logger_t logger)
{
    (void)logger; /* devices were found by ngl_plugin_setup() */
    return NGL_NCCL_SUCCESS;
}

static ngl_nccl_result_t tcp_devices(int *ndev)
{
    if (ndev == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    *ndev = ngl_tcp_device_count();
    return NGL_NCCL_SUCCESS;
}

static ngl_nccl_result_t tcp_get_properties(int dev, ngl_nccl_props_v8_t *props)
{
    return ngl_plugin_result(ngl_tcp_device_props(dev, props));
}

static ngl_nccl_result_t tcp_listen(int dev, void *handle, void **listen_comm)
{
    if (listen_comm == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    return ngl_plugin_result(ngl_tcp_listen_open(dev, handle, (ngl_tcp_listen **)listen_comm));
}

static ngl_nccl_result_t tcp_connect(int dev, void *handle, void **send_comm,
                                     ngl_nccl_net_device_handle_v8_t **dev_comm)
{
    if (send_comm == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    (void)dev_comm; /* host plugin: no device offload, the pointer is left alone */
    int rc = ngl_tcp_connect_step(dev, handle, ngl_plugin_settings()->nsocks,
                                  (ngl_tcp_comm **)send_comm);
    if (rc != 0) {
        NGL_PWARN("connect on device %d failed: %s", dev, strerror(-rc));
    }
    return ngl_plugin_result(rc);
}

static ngl_nccl_result_t tcp_accept(void *listen_comm, void **recv_comm,
                                    ngl_nccl_net_device_handle_v8_t **dev_comm)
{
    if (listen_comm == NULL || recv_comm == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    (void)dev_comm;
    return ngl_plugin_result(ngl_tcp_accept_step(listen_comm, (ngl_tcp_comm **)recv_comm));
}

static ngl_nccl_result_t tcp_reg_mr(void *comm, void *data, size_t size, int type, void **mhandle)
{
    if (comm == NULL || mhandle == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    *mhandle = NULL;
    if (type != NGL_NCCL_PTR_HOST && !(type == NGL_NCCL_PTR_CUDA && ngl_plugin_dev_usable())) {
        NGL_PWARN("regMr: memory type %d is not supported by this build", type);
        return NGL_NCCL_INTERNAL_ERROR;
    }
    return ngl_plugin_result(ngl_tcp_regmr(comm, data, size, type, (ngl_tcp_mr **)mhandle));
}

static ngl_nccl_result_t tcp_dereg_mr(void *comm, void *mhandle)
{
    (void)comm;
    ngl_tcp_deregmr(mhandle);
    return NGL_NCCL_SUCCESS;
}

static ngl_nccl_result_t tcp_isend(void *send_comm, void *data, int size, int tag, void *mhandle,
                                   void **request)
{
    (void)tag; /* messages match in posting order */
    if (send_comm == NULL || request == NULL || size < 0) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    return ngl_plugin_result(
        ngl_tcp_isend(send_comm, data, (size_t)size, mhandle, (ngl_tcp_req **)request));
}

static ngl_nccl_result_t tcp_irecv(void *recv_comm, int n, void **data, int *sizes, int *tags,
                                   void **mhandles, void **request)
{
    (void)tags;
    if (recv_comm == NULL || request == NULL || data == NULL || sizes == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    if (n != 1 || sizes[0] < 0) {
        NGL_PWARN("irecv: %d grouped receives, but maxRecvs is 1", n);
        return NGL_NCCL_INTERNAL_ERROR;
    }
    return ngl_plugin_result(ngl_tcp_irecv(recv_comm, data[0], (size_t)sizes[0],
                                           mhandles != NULL ? mhandles[0] : NULL,
                                           (ngl_tcp_req **)request));
}

static ngl_nccl_result_t tcp_iflush(void *recv_comm, int n, void **data, int *sizes,
                                    void **mhandles, void **request)
{
    (void)recv_comm;
    (void)n;
    (void)data;
    (void)sizes;
    (void)mhandles;
    /* Host memory is coherent once recv() returned; device memory was
     * written by our own copy, and the receive completed only once that
     * copy had landed (ngl_tcp.h). Nothing to flush, which NCCL reads from a
     * NULL request. */
    if (request != NULL) {
        *request = NULL;
    }
    return NGL_NCCL_SUCCESS;
}

static ngl_nccl_result_t tcp_test(void *request, int *done, int *sizes)
{
    if (request == NULL || done == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    size_t size = 0;
    int rc = ngl_tcp_test(request, done, &size);
    if (rc == 0 && *done && sizes != NULL) {
        *sizes = (int)size;
    }
    return ngl_plugin_result(rc); /* the comm logged the failure */
}

static ngl_nccl_result_t tcp_close_comm(void *comm)
{
    ngl_tcp_comm_close(comm);
    return NGL_NCCL_SUCCESS;
}

static ngl_nccl_result_t tcp_close_listen(void *listen_comm)
{
    ngl_tcp_listen_close(listen_comm);
    return NGL_NCCL_SUCCESS;
}

const ngl_nccl_net_v8_t ngl_tcp_table = {
    .name = NGL_PLUGIN_NAME,
    .init = tcp_init,
    .devices = tcp_devices,
    .getProperties = tcp_get_properties,
    .listen = tcp_listen,
    .connect = tcp_connect,
    .accept = tcp_accept,
    .regMr = tcp_reg_mr,
    .regMrDmaBuf = NULL,
    .deregMr = tcp_dereg_mr,
    .isend = tcp_isend,
    .irecv = tcp_irecv,
    .iflush = tcp_iflush,
    .test = tcp_test,
    .closeSend = tcp_close_comm,
    .closeRecv = tcp_close_comm,
    .closeListen = tcp_close_listen,
    .getDeviceMr = NULL,
    .irecvConsumed = NULL,
};

/* ---- exported ncclNet: the transport in use (ours, or the inner plugin) --- */

ngl_nccl_result_t ngl_api_net_init(ngl_nccl_logger_t logger)
{
    int rc = ngl_plugin_setup(logger, &ngl_tcp_table);
    if (rc == -EINVAL) {
        return NGL_NCCL_INVALID_USAGE; /* a bad NANGILA_* value, already logged */
    }
    return ngl_plugin_result(rc);
}

/* Forward to the transport in use; before a successful init there is none
 * (NCCL does not call these then, but a NULL table must not crash). */
#define FORWARD(call)                                                                              \
    do {                                                                                           \
        const ngl_nccl_net_v8_t *t_ = ngl_plugin_transport();                                      \
        if (t_ == NULL) {                                                                          \
            return NGL_NCCL_INTERNAL_ERROR;                                                        \
        }                                                                                          \
        return t_->call;                                                                           \
    } while (0)

ngl_nccl_result_t ngl_api_net_devices(int *ndev)
{
    FORWARD(devices(ndev));
}

ngl_nccl_result_t ngl_api_net_get_properties(int dev, ngl_nccl_props_v8_t *props)
{
    FORWARD(getProperties(dev, props));
}

ngl_nccl_result_t ngl_api_net_listen(int dev, void *handle, void **listen_comm)
{
    FORWARD(listen(dev, handle, listen_comm));
}

ngl_nccl_result_t ngl_api_net_connect(int dev, void *handle, void **send_comm,
                                      ngl_nccl_net_device_handle_v8_t **dev_comm)
{
    FORWARD(connect(dev, handle, send_comm, dev_comm));
}

ngl_nccl_result_t ngl_api_net_accept(void *listen_comm, void **recv_comm,
                                     ngl_nccl_net_device_handle_v8_t **dev_comm)
{
    FORWARD(accept(listen_comm, recv_comm, dev_comm));
}

ngl_nccl_result_t ngl_api_net_reg_mr(void *comm, void *data, size_t size, int type, void **mhandle)
{
    FORWARD(regMr(comm, data, size, type, mhandle));
}

ngl_nccl_result_t ngl_api_net_reg_mr_dmabuf(void *comm, void *data, size_t size, int type,
                                            uint64_t offset, int fd, void **mhandle)
{
    const ngl_nccl_net_v8_t *t = ngl_plugin_transport();
    if (t == NULL || t->regMrDmaBuf == NULL) {
        /* Only reachable if the inner plugin advertised DMA-BUF and then
         * did not provide the call. */
        return NGL_NCCL_INTERNAL_ERROR;
    }
    return t->regMrDmaBuf(comm, data, size, type, offset, fd, mhandle);
}

ngl_nccl_result_t ngl_api_net_dereg_mr(void *comm, void *mhandle)
{
    FORWARD(deregMr(comm, mhandle));
}

ngl_nccl_result_t ngl_api_net_isend(void *send_comm, void *data, int size, int tag, void *mhandle,
                                    void **request)
{
    FORWARD(isend(send_comm, data, size, tag, mhandle, request));
}

ngl_nccl_result_t ngl_api_net_irecv(void *recv_comm, int n, void **data, int *sizes, int *tags,
                                    void **mhandles, void **request)
{
    FORWARD(irecv(recv_comm, n, data, sizes, tags, mhandles, request));
}

ngl_nccl_result_t ngl_api_net_iflush(void *recv_comm, int n, void **data, int *sizes,
                                     void **mhandles, void **request)
{
    const ngl_nccl_net_v8_t *t = ngl_plugin_transport();
    if (t != NULL && t->iflush == NULL) {
        /* An inner plugin without iflush needs no flush. */
        if (request != NULL) {
            *request = NULL;
        }
        return NGL_NCCL_SUCCESS;
    }
    FORWARD(iflush(recv_comm, n, data, sizes, mhandles, request));
}

ngl_nccl_result_t ngl_api_net_test(void *request, int *done, int *sizes)
{
    FORWARD(test(request, done, sizes));
}

ngl_nccl_result_t ngl_api_net_close_send(void *send_comm)
{
    FORWARD(closeSend(send_comm));
}

ngl_nccl_result_t ngl_api_net_close_recv(void *recv_comm)
{
    FORWARD(closeRecv(recv_comm));
}

ngl_nccl_result_t ngl_api_net_close_listen(void *listen_comm)
{
    FORWARD(closeListen(listen_comm));
}

/* ---- exported ncclCollNet ------------------------------------------------- */

ngl_nccl_result_t ngl_api_coll_init(ngl_nccl_logger_t logger)
{
    return ngl_api_net_init(logger);
}

ngl_nccl_result_t ngl_api_coll_devices(int *ndev)
{
    FORWARD(devices(ndev));
}

ngl_nccl_result_t ngl_api_coll_get_properties(int dev, ngl_nccl_props_v8_t *props)
{
    /* Same name, PCI path and speed as the net device, so NCCL's topology
     * merges them into one NIC. Device memory when a GPU back end serves it
     * (and the transport under us takes it too: NCCL then enables GPU
     * Direct for the merged NIC's point-to-point traffic as well). */
    const ngl_nccl_net_v8_t *t = ngl_plugin_transport();
    if (t == NULL || props == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    ngl_nccl_result_t r = t->getProperties(dev, props);
    if (r == NGL_NCCL_SUCCESS) {
        const int cuda = (props->ptrSupport & NGL_NCCL_PTR_CUDA) && ngl_plugin_dev_usable();
        props->ptrSupport = NGL_NCCL_PTR_HOST | (cuda ? NGL_NCCL_PTR_CUDA : 0);
        props->regIsGlobal = 0;
        props->maxRecvs = 1;
        props->netDeviceType = NGL_NCCL_NET_DEVICE_HOST;
        props->netDeviceVersion = 0;
    }
    return r;
}

ngl_nccl_result_t ngl_api_coll_listen(int dev, void *handle, void **listen_comm)
{
    if (handle == NULL || listen_comm == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    return ngl_plugin_result(ngl_coll_listen_open(dev, handle, (ngl_coll_listen **)listen_comm));
}

ngl_nccl_result_t ngl_api_coll_connect(void *handles[], int nranks, int rank, void *listen_comm,
                                       void **coll_comm)
{
    if (coll_comm == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    *coll_comm = NULL;
    int rc = ngl_coll_connect((void *const *)handles, nranks, rank, listen_comm,
                              (ngl_coll_comm **)coll_comm);
    if (rc != 0) {
        NGL_PWARN("collNet connect (rank %d of %d) failed: %s; NCCL will use point-to-point "
                  "algorithms",
                  rank, nranks, strerror(-rc));
    }
    return ngl_plugin_result(rc);
}

ngl_nccl_result_t ngl_api_coll_reduce_support(ngl_nccl_dtype_t dtype, ngl_nccl_redop_t op,
                                              int *supported)
{
    if (supported == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    *supported = ngl_coll_reduce_supported((int)dtype, (int)op);
    return NGL_NCCL_SUCCESS;
}

ngl_nccl_result_t ngl_api_coll_reg_mr(void *coll_comm, void *data, size_t size, int type,
                                      void **mhandle)
{
    if (coll_comm == NULL || mhandle == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    return ngl_plugin_result(ngl_coll_regmr(coll_comm, data, size, type, mhandle));
}

ngl_nccl_result_t ngl_api_coll_dereg_mr(void *coll_comm, void *mhandle)
{
    return ngl_plugin_result(ngl_coll_deregmr(coll_comm, mhandle));
}

ngl_nccl_result_t ngl_api_coll_iallreduce(void *coll_comm, void *send_data, void *recv_data,
                                          int count, ngl_nccl_dtype_t dtype, ngl_nccl_redop_t op,
                                          void *send_mhandle, void *recv_mhandle, void **request)
{
    if (coll_comm == NULL || request == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    return ngl_plugin_result(ngl_coll_iallreduce(coll_comm, send_data, recv_data, count, (int)dtype,
                                                 (int)op, send_mhandle, recv_mhandle,
                                                 (ngl_coll_req **)request));
}

/* NCCL routes allgather and reduce-scatter through a collNet with
 * CollNetDirect or NVLS (NVSwitch systems), and its v8 adapter calls these
 * slots without checking them. It always passes one part
 * (src/transport/coll_net.cc, collNetIallgather / collNetIreducescatter). */
ngl_nccl_result_t ngl_api_coll_iallgather(void *coll_comm, void *send_data, int n_recv_parts,
                                          ngl_nccl_sge_v8_t *recv_parts, size_t bytes_per_rank,
                                          size_t window_offset, size_t window_bytes,
                                          void *send_mhandle, void **request)
{
    if (coll_comm == NULL || request == NULL || n_recv_parts != 1 || recv_parts == NULL ||
        recv_parts[0].size != window_bytes) {
        NGL_PWARN("collNet allgather: %d receive parts; NCCL passes exactly one", n_recv_parts);
        return NGL_NCCL_INTERNAL_ERROR;
    }
    return ngl_plugin_result(ngl_coll_iallgather(
        coll_comm, send_data, recv_parts[0].address, bytes_per_rank, window_offset, window_bytes,
        send_mhandle, recv_parts[0].mhandle, (ngl_coll_req **)request));
}

ngl_nccl_result_t ngl_api_coll_ireducescatter(void *coll_comm, int n_send_parts,
                                              ngl_nccl_sge_v8_t *send_parts, void *recv_data,
                                              size_t bytes_per_rank, size_t window_offset,
                                              size_t window_bytes, ngl_nccl_dtype_t dtype,
                                              ngl_nccl_redop_t op, void *recv_mhandle,
                                              void **request)
{
    if (coll_comm == NULL || request == NULL || n_send_parts != 1 || send_parts == NULL ||
        send_parts[0].size != window_bytes) {
        NGL_PWARN("collNet reduce-scatter: %d send parts; NCCL passes exactly one", n_send_parts);
        return NGL_NCCL_INTERNAL_ERROR;
    }
    return ngl_plugin_result(ngl_coll_ireducescatter(
        coll_comm, send_parts[0].address, recv_data, bytes_per_rank, window_offset, window_bytes,
        (int)dtype, (int)op, send_parts[0].mhandle, recv_mhandle, (ngl_coll_req **)request));
}

ngl_nccl_result_t ngl_api_coll_iflush(void *coll_comm, void *data, int size, void *mhandle,
                                      void **request)
{
    if (coll_comm == NULL || request == NULL || size < 0) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    /* Host memory: written by the CPU, nothing to flush. Device memory:
     * written by our own stream, flushed once those writes completed
     * (collnet.c, ngl_coll_iflush()). A NULL request means done. */
    return ngl_plugin_result(
        ngl_coll_iflush(coll_comm, data, (size_t)size, mhandle, (ngl_coll_req **)request));
}

ngl_nccl_result_t ngl_api_coll_test(void *request, int *done, int *size)
{
    if (request == NULL || done == NULL) {
        return NGL_NCCL_INTERNAL_ERROR;
    }
    size_t bytes = 0;
    int rc = ngl_coll_test(request, done, &bytes);
    if (rc == 0 && *done && size != NULL) {
        *size = (int)bytes;
    }
    return ngl_plugin_result(rc);
}

ngl_nccl_result_t ngl_api_coll_close_coll(void *coll_comm)
{
    ngl_coll_close(coll_comm);
    return NGL_NCCL_SUCCESS;
}

ngl_nccl_result_t ngl_api_coll_close_listen(void *listen_comm)
{
    ngl_coll_listen_close(listen_comm);
    return NGL_NCCL_SUCCESS;
}
