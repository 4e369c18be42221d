/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_coll.h -- the compressing collNet: allreduce among node leaders as a
 * compressed reduce-scatter followed by a compressed allgather, built on
 * the point-to-point transport in use (ngl_plugin_transport()).
 *
 * Protocol, layout and stream identity are the collective engine's
 * (engine/include/ngl_engine.h): a compressed reduce-scatter, then a
 * compressed allgather, one segment per chunk (NCCL's slices are <= 2 MiB);
 * slices below NANGILA_MIN_BYTES, every slice when NANGILA_MODE=off, and
 * those NANGILA_MODE=auto runs off (the engine's choice per size class,
 * collnet.c) take the same path with exact (RAW) frames. Which slices share
 * error-feedback and predictor state is decided by the engine from the
 * sequence of calls every rank sees (docs/stream-identity.md);
 * NANGILA_COLLNET_PERIOD overrides it.
 *
 * Progress is driven by iallreduce() and test() on NCCL's proxy thread;
 * coding happens there too (host memory), or is started there on the GPU
 * and completed by polling CUDA events (device memory). Neither call ever
 * waits. Every function takes the collComm's lock.
 * Errors: 0 or -errno (NGL_PLUGIN_EDEVICE: a CUDA call failed); a collComm
 * that failed keeps failing.
 */
#ifndef NGL_COLL_H
#define NGL_COLL_H

#include "ngl_nccl_abi.h"

#include <stddef.h>
#include <stdint.h>

/* Requests one collComm holds at once (NCCL keeps up to 64 in flight). */
#define NGL_COLL_NREQ 64
/* Calls coded and on the wire at once; the others wait in order. */
#define NGL_COLL_NSLOTS 8
/* Bound on the blocking connect. */
#define NGL_COLL_CONNECT_TIMEOUT_S 120

typedef struct ngl_coll_listen ngl_coll_listen;
typedef struct ngl_coll_comm ngl_coll_comm;
typedef struct ngl_coll_req ngl_coll_req;

/** Listen on transport device @p dev; the handle is the transport's. */
int ngl_coll_listen_open(int dev, void *handle, ngl_coll_listen **out);
/** NULL is a no-op. */
void ngl_coll_listen_close(ngl_coll_listen *l);

/**
 * Connect the @p nranks leaders into two full meshes (reduce-scatter and
 * allgather traffic). Blocks until done, or NGL_COLL_CONNECT_TIMEOUT_S.
 * @return 0 and *out, or -errno with *out NULL (NCCL then disables collNet
 *         for the communicator and uses its point-to-point algorithms).
 */
int ngl_coll_connect(void *const handles[], int nranks, int rank, ngl_coll_listen *l,
                     ngl_coll_comm **out);

/** @return 1 for every NCCL datatype (0..11) with Sum, Prod, Max or Min:
 *  Sum of fp32, fp16 and bf16 is compressed, the rest carried exactly;
 *  else 0. */
int ngl_coll_reduce_supported(int nccl_dtype, int nccl_op);

/**
 * Register host memory (NGL_NCCL_PTR_HOST), or device memory
 * (NGL_NCCL_PTR_CUDA) when the plugin has a device back end and a GPU. The
 * first device registration creates the comm's CUDA stream and events and
 * its pinned frame buffers (set-up time, not the data path).
 * @return 0 and *mhandle (it records the memory type), -EINVAL for memory
 *         this build cannot serve, -ENOMEM, or NGL_PLUGIN_EDEVICE.
 */
int ngl_coll_regmr(ngl_coll_comm *c, void *data, size_t size, int type, void **mhandle);
int ngl_coll_deregmr(ngl_coll_comm *c, void *mhandle);

/**
 * Post an allreduce of @p count elements from @p send into @p recv, any
 * (dtype, op) ngl_coll_reduce_supported() accepts.
 * The memory type comes from the handles (NULL means host memory); send
 * and recv may differ. @p send must not change until the request
 * completes; for host memory the plugin has then set it to zero (README,
 * "stale tails"); device memory (which may be the user's) is never written
 * except @p recv. @p send == @p recv (in place) is allowed.
 * @return 0 with *req set, 0 with *req NULL (pool full, or NANGILA_MODE=auto
 *         agreeing across ranks: call again later), -EINVAL (unsupported
 *         dtype/op/count/memory) or the comm's error.
 */
int ngl_coll_iallreduce(ngl_coll_comm *c, void *send, void *recv, int64_t count, int nccl_dtype,
                        int nccl_op, void *send_mh, void *recv_mh, ngl_coll_req **req);

/**
 * NCCL's collNet reduce-scatter and allgather (CollNetDirect) over one
 * window [@p win_offset, + @p win_bytes) of a virtual buffer of nranks x
 * @p per_rank_bytes, rank j owning [j x per_rank_bytes, (j+1) x ...):
 *   - ireducescatter: @p send holds this rank's input for the whole window;
 *     @p recv receives the reduction (any supported dtype/op; fp32, fp16,
 *     bf16 sums compressed above NANGILA_MIN_BYTES) of the window's part
 *     in this rank's slice;
 *   - iallgather: @p send holds this rank's part of the window (its slice
 *     inside it), @p recv receives the whole window, exactly.
 * Same protocol, ordering, completion and memory (host, or device memory
 * coded on the GPU or staged) as ngl_coll_iallreduce().
 * @return 0 with *req set (or NULL: call again), -EINVAL for a window,
 *         type or memory this call cannot serve, or the comm's error.
 */
int ngl_coll_ireducescatter(ngl_coll_comm *c, void *send, void *recv, size_t per_rank_bytes,
                            size_t win_offset, size_t win_bytes, int nccl_dtype, int nccl_op,
                            void *send_mh, void *recv_mh, ngl_coll_req **req);
int ngl_coll_iallgather(ngl_coll_comm *c, void *send, void *recv, size_t per_rank_bytes,
                        size_t win_offset, size_t win_bytes, void *send_mh, void *recv_mh,
                        ngl_coll_req **req);

/**
 * Make results in [data, data + size) visible to the GPU. Host memory, and
 * device memory that no unfinished call writes: nothing to do (*req NULL).
 * Otherwise *req completes in test() once those calls have finished.
 * @return 0, or the comm's error.
 */
int ngl_coll_iflush(ngl_coll_comm *c, void *data, size_t size, void *mhandle, ngl_coll_req **req);

/**
 * Progress and test @p r (an allreduce or a flush). Never blocks. When
 * *done is 1 the request is released.
 * @return 0 or the comm's error.
 */
int ngl_coll_test(ngl_coll_req *r, int *done, size_t *bytes);

/** Close @p c (statistics are logged at INFO). NULL is a no-op. */
void ngl_coll_close(ngl_coll_comm *c);

#endif /* NGL_COLL_H */
