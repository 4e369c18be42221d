/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_tcp.h -- the plugin's own point-to-point transport: TCP over host
 * memory, non-blocking from end to end.
 *
 * A connection is NANGILA_NSOCKS TCP sockets. Messages are matched in
 * posting order (the ncclNet contract; tags are ignored). Each message is
 * a 16-byte header on socket 0 (magic, sequence number, size) followed by
 * its bytes: messages up to NGL_TCP_MIN_STRIPE bytes travel whole on socket
 * 0, larger ones are cut into one contiguous part per socket, each part a
 * multiple of 4 KiB except the last. Receiver and sender compute the same
 * cut from the size alone, so every socket is an ordered stream of parts
 * and no reassembly buffer is needed: bytes go straight into the posted
 * buffer.
 *
 * Progress happens inside the calls (isend, irecv, test, accept, connect);
 * there are no helper threads. Nothing here blocks. A comm and its requests
 * may be used from any thread; each comm has its own lock.
 *
 * Device memory (a device back end, ngl_plugin_dev.h): a registered device
 * range gets a pinned host mirror of the same size at regMr. A send is
 * first copied into the mirror on the comm's CUDA stream (the sockets start
 * once cudaEventQuery says the copy landed, and messages behind it wait);
 * a receive lands in the mirror and is copied back, and its request
 * completes once that copy landed. So a completed receive is in device
 * memory and visible to later GPU work: iflush has nothing left to do.
 *
 * Errors: 0 or a negative errno. -ECONNRESET / -EPIPE / -EPROTO mean the
 * peer went away or spoke nonsense; a comm that saw an error keeps failing.
 */
#ifndef NGL_TCP_H
#define NGL_TCP_H

#include "ngl_nccl_abi.h"

#include <stddef.h>
#include <stdint.h>

#define NGL_TCP_MAX_SOCKS 16
#define NGL_TCP_MAX_DEVS  16
/* Requests one comm holds in flight (NCCL keeps at most 32). */
#define NGL_TCP_NREQ 32
/* Messages up to this size are not striped. */
#define NGL_TCP_MIN_STRIPE ((size_t)128 * 1024)

typedef struct ngl_tcp_listen ngl_tcp_listen;
typedef struct ngl_tcp_comm ngl_tcp_comm;
typedef struct ngl_tcp_req ngl_tcp_req;
typedef struct ngl_tcp_mr ngl_tcp_mr;

/* ---- devices (tcp_dev.c) ---------------------------------------------- */

/**
 * Find the interfaces to use: those whose name starts with @p ifname_prefix
 * when it is non-empty, else every interface that is up, not loopback and
 * not a container bridge (docker*, virbr*), else loopback. Thread-unsafe:
 * called once from ngl_plugin_setup().
 * @return 0, or -ENODEV when nothing matches.
 */
int ngl_tcp_devices_init(const char *ifname_prefix);

/** Number of devices found by ngl_tcp_devices_init(). */
int ngl_tcp_device_count(void);

/**
 * Honest properties of @p dev: interface name, PCI path (NULL for virtual
 * interfaces), link speed from sysfs (10000 Mbit/s when the kernel does not
 * know it, e.g. loopback and veth), host pointers, and device pointers when
 * a device back end has a usable GPU.
 * @return 0 or -EINVAL for a bad index.
 */
int ngl_tcp_device_props(int dev, ngl_nccl_props_v8_t *props);

/** Address (struct sockaddr_in or _in6) and its length for @p dev. */
const void *ngl_tcp_device_addr(int dev, unsigned *len);

/* ---- connections (tcp_net.c) ------------------------------------------ */

/**
 * Open a listening socket on @p dev and write the connection handle
 * (at most NGL_NCCL_HANDLE_MAXSIZE bytes) into @p handle.
 * @return 0 and *out, or -errno.
 */
int ngl_tcp_listen_open(int dev, void *handle, ngl_tcp_listen **out);

/** Close @p l; connections it accepted stay open. NULL is a no-op. */
void ngl_tcp_listen_close(ngl_tcp_listen *l);

/**
 * One non-blocking step of connecting to @p handle with @p nsocks sockets.
 * The in-progress state lives in the caller's copy of the handle, so the
 * caller passes the same handle memory until *out is non-NULL.
 * @return 0 with *out NULL (call again), 0 with *out set (connected), or
 *         -errno (the attempt is abandoned and its sockets closed).
 */
int ngl_tcp_connect_step(int dev, void *handle, int nsocks, ngl_tcp_comm **out);

/**
 * One non-blocking step of accepting on @p l.
 * @return 0 with *out NULL (nothing complete yet), 0 with *out set, or
 *         -errno for a failure of the listening socket itself (stray or
 *         broken incoming connections are dropped and logged, not errors).
 */
int ngl_tcp_accept_step(ngl_tcp_listen *l, ngl_tcp_comm **out);

/** Close @p c and free it; its requests die with it. NULL is a no-op. */
void ngl_tcp_comm_close(ngl_tcp_comm *c);

/**
 * Register [data, data + size) for comm @p c. Host memory: a record of the
 * range. Device memory (type NGL_NCCL_PTR_CUDA): a pinned mirror of the
 * range, and on the comm's first one its CUDA stream and events.
 * @return 0 and *out; -EINVAL (no device back end, not device memory,
 *         another GPU), -ENOMEM, or NGL_PLUGIN_EDEVICE.
 */
int ngl_tcp_regmr(ngl_tcp_comm *c, void *data, size_t size, int type, ngl_tcp_mr **out);

/** Free @p mr (its mirror: cudaFreeHost waits for the device). NULL is a
 *  no-op. */
void ngl_tcp_deregmr(ngl_tcp_mr *mr);

/**
 * Post a send of @p size bytes (any size, 0 included) on send comm @p c.
 * @p data must stay valid until the request completes. @p mr (NULL means
 * host memory) tells where @p data lives.
 * @return 0 with *req set, 0 with *req NULL (NGL_TCP_NREQ requests busy,
 *         retry later), -EINVAL (device range outside @p mr), or -errno
 *         (comm failed).
 */
int ngl_tcp_isend(ngl_tcp_comm *c, const void *data, size_t size, const ngl_tcp_mr *mr,
                  ngl_tcp_req **req);

/**
 * Post a receive of at most @p cap bytes into @p data on recv comm @p c.
 * A message longer than @p cap fails the comm with -EMSGSIZE.
 * @return as ngl_tcp_isend().
 */
int ngl_tcp_irecv(ngl_tcp_comm *c, void *data, size_t cap, const ngl_tcp_mr *mr, ngl_tcp_req **req);

/**
 * Progress @p r's comm and report whether @p r finished. Once *done is 1
 * the request is released and must not be used again. @p size (may be
 * NULL) receives the message size.
 * @return 0, or the comm's -errno if it failed before @p r finished.
 */
int ngl_tcp_test(ngl_tcp_req *r, int *done, size_t *size);

/** The comm a request belongs to. */
ngl_tcp_comm *ngl_tcp_req_comm(ngl_tcp_req *r);

/** Byte range [*off, *off + *len) of a @p size-byte message that socket
 *  @p k of @p nsocks carries. Exposed for the unit test. */
void ngl_tcp_part(size_t size, int nsocks, int k, size_t *off, size_t *len);

#endif /* NGL_TCP_H */
