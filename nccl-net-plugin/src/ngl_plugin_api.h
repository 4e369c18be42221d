/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_plugin_api.h -- the functions the exported tables point at
 * (plugin_api.c). Hidden: only the tables in plugin_interface.c are visible.
 * Contracts are those of the ncclNet / ncclCollNet v8 entries of the same
 * name (see ngl_nccl_abi.h and nccl-net-plugin/README.md).
 */
#ifndef NGL_PLUGIN_API_H
#define NGL_PLUGIN_API_H

#include "ngl_nccl_abi.h"

ngl_nccl_result_t ngl_api_net_init(ngl_nccl_logger_t logger);
ngl_nccl_result_t ngl_api_net_devices(int *ndev);
ngl_nccl_result_t ngl_api_net_get_properties(int dev, ngl_nccl_props_v8_t *props);
ngl_nccl_result_t ngl_api_net_listen(int dev, void *handle, void **listen_comm);
ngl_nccl_result_t ngl_api_net_connect(int dev, void *handle, void **send_comm,
                                      ngl_nccl_net_device_handle_v8_t **dev_comm);
ngl_nccl_result_t ngl_api_net_accept(void *listen_comm, void **recv_comm,
                                     ngl_nccl_net_device_handle_v8_t **dev_comm);
ngl_nccl_result_t ngl_api_net_reg_mr(void *comm, void *data, size_t size, int type, void **mhandle);
ngl_nccl_result_t ngl_api_net_reg_mr_dmabuf(void *comm, void *data, size_t size, int type,
                                            uint64_t offset, int fd, void **mhandle);
ngl_nccl_result_t ngl_api_net_dereg_mr(void *comm, void *mhandle);
ngl_nccl_result_t ngl_api_net_isend(void *send_comm, void *data, int size, int tag, void *mhandle,
                                    void **request);
ngl_nccl_result_t ngl_api_net_irecv(void *recv_comm, int n, void **data, int *sizes, int *tags,
                                    void **mhandles, void **request);
ngl_nccl_result_t ngl_api_net_iflush(void *recv_comm, int n, void **data, int *sizes,
                                     void **mhandles, void **request);
ngl_nccl_result_t ngl_api_net_test(void *request, int *done, int *sizes);
ngl_nccl_result_t ngl_api_net_close_send(void *send_comm);
ngl_nccl_result_t ngl_api_net_close_recv(void *recv_comm);
ngl_nccl_result_t ngl_api_net_close_listen(void *listen_comm);
ngl_nccl_result_t ngl_api_coll_init(ngl_nccl_logger_t logger);
ngl_nccl_result_t ngl_api_coll_devices(int *ndev);
ngl_nccl_result_t ngl_api_coll_get_properties(int dev, ngl_nccl_props_v8_t *props);
ngl_nccl_result_t ngl_api_coll_listen(int dev, void *handle, void **listen_comm);
ngl_nccl_result_t ngl_api_coll_connect(void *handles[], int nranks, int rank, void *listen_comm,
                                       void **coll_comm);
ngl_nccl_result_t ngl_api_coll_reduce_support(ngl_nccl_dtype_t dtype, ngl_nccl_redop_t op,
                                              int *supported);
ngl_nccl_result_t ngl_api_coll_reg_mr(void *coll_comm, void *data, size_t size, int type,
                                      void **mhandle);
ngl_nccl_result_t ngl_api_coll_dereg_mr(void *coll_comm, void *mhandle);
ngl_nccl_result_t ngl_api_coll_iallreduce(void *coll_comm, void *send_data, void *recv_data,
                                          int count, ngl_nccl_dtype_t dtype, ngl_nccl_redop_t op,
                                          void *send_mhandle, void *recv_mhandle, void **request);
ngl_nccl_result_t ngl_api_coll_iallgather(void *coll_comm, void *send_data, int n_recv_parts,
                                          ngl_nccl_sge_v8_t *recv_parts, size_t bytes_per_rank,
                                          size_t window_offset, size_t window_bytes,
                                          void *send_mhandle, void **request);
ngl_nccl_result_t ngl_api_coll_ireducescatter(void *coll_comm, int n_send_parts,
                                              ngl_nccl_sge_v8_t *send_parts, void *recv_data,
                                              size_t bytes_per_rank, size_t window_offset,
                                              size_t window_bytes, ngl_nccl_dtype_t dtype,
                                              ngl_nccl_redop_t op, void *recv_mhandle,
                                              void **request);
ngl_nccl_result_t ngl_api_coll_iflush(void *coll_comm, void *data, int size, void *mhandle,
                                      void **request);
ngl_nccl_result_t ngl_api_coll_test(void *request, int *done, int *size);
ngl_nccl_result_t ngl_api_coll_close_coll(void *coll_comm);
ngl_nccl_result_t ngl_api_coll_close_listen(void *listen_comm);

#endif /* NGL_PLUGIN_API_H */
