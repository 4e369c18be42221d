/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_nccl_abi.h -- our own declaration of the binary interface NCCL uses to
 * load a network plugin: the "v8" ncclNet and ncclCollNet function tables
 * (searched by NCCL 2.20 through 2.30), their property struct and the enum
 * values NCCL passes in. Names are ours (ngl_nccl_*); only the layout, the
 * enum values and the exported symbol names must match what NCCL expects.
 *
 * Blocking rules the tables must follow (NCCL's proxy thread calls them):
 *   - net listen/connect/accept never block: connect/accept return success
 *     with a NULL comm until the connection is ready, and NCCL calls again;
 *   - isend/irecv/iallreduce never block: a NULL request means "no resources
 *     now, call again later";
 *   - test never blocks; it may do bounded work (progress, coding);
 *   - collNet connect may block (NCCL calls it once, from the proxy thread).
 */
#ifndef NGL_NCCL_ABI_H
#define NGL_NCCL_ABI_H

#include <stddef.h>
#include <stdint.h>

/* Return codes, values fixed by NCCL. */
typedef enum {
    NGL_NCCL_SUCCESS = 0,
    NGL_NCCL_UNHANDLED_CUDA_ERROR = 1,
    NGL_NCCL_SYSTEM_ERROR = 2,   /* a system call or library failed */
    NGL_NCCL_INTERNAL_ERROR = 3, /* the plugin was used in a way it does not allow */
    NGL_NCCL_INVALID_ARGUMENT = 4,
    NGL_NCCL_INVALID_USAGE = 5, /* user/configuration error */
    NGL_NCCL_REMOTE_ERROR = 6,  /* a peer failed or went away */
    NGL_NCCL_IN_PROGRESS = 7
} ngl_nccl_result_t;

/* Element types as NCCL numbers them (ncclDataType_t). Only the float
 * types are ever reduced by us; the others are listed so that values NCCL
 * passes in can be named in logs. The count of types grew over releases,
 * so no "number of types" constant is declared. */
typedef enum {
    NGL_NCCL_INT8 = 0,
    NGL_NCCL_UINT8 = 1,
    NGL_NCCL_INT32 = 2,
    NGL_NCCL_UINT32 = 3,
    NGL_NCCL_INT64 = 4,
    NGL_NCCL_UINT64 = 5,
    NGL_NCCL_FLOAT16 = 6,
    NGL_NCCL_FLOAT32 = 7,
    NGL_NCCL_FLOAT64 = 8,
    NGL_NCCL_BFLOAT16 = 9,
    NGL_NCCL_FLOAT8E4M3 = 10,
    NGL_NCCL_FLOAT8E5M2 = 11
} ngl_nccl_dtype_t;

/* Reduction operators (ncclRedOp_t). The network only ever sees 0..3: NCCL
 * turns averages into sums before the network. */
typedef enum {
    NGL_NCCL_SUM = 0,
    NGL_NCCL_PROD = 1,
    NGL_NCCL_MAX = 2,
    NGL_NCCL_MIN = 3,
    NGL_NCCL_AVG = 4
} ngl_nccl_redop_t;

/* Logger NCCL hands to init(). level: 0 none, 1 version, 2 warn, 3 info,
 * 4 abort, 5 trace. flags: subsystem bits. */
typedef enum {
    NGL_NCCL_LOG_NONE = 0,
    NGL_NCCL_LOG_VERSION = 1,
    NGL_NCCL_LOG_WARN = 2,
    NGL_NCCL_LOG_INFO = 3,
    NGL_NCCL_LOG_ABORT = 4,
    NGL_NCCL_LOG_TRACE = 5
} ngl_nccl_log_level_t;

#define NGL_NCCL_SUBSYS_INIT 0x1ul
#define NGL_NCCL_SUBSYS_COLL 0x2ul
#define NGL_NCCL_SUBSYS_NET  0x10ul

typedef void (*ngl_nccl_logger_t)(ngl_nccl_log_level_t level, unsigned long flags, const char *file,
                                  int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Size of the opaque connection handle NCCL exchanges between ranks. */
#define NGL_NCCL_HANDLE_MAXSIZE 128

/* Memory kinds in ptrSupport and in regMr's type argument. */
#define NGL_NCCL_PTR_HOST   0x1
#define NGL_NCCL_PTR_CUDA   0x2
#define NGL_NCCL_PTR_DMABUF 0x4

/* Most requests NCCL keeps in flight on one send or recv comm. */
#define NGL_NCCL_MAX_REQUESTS 32

/* Device offload kinds; a host plugin reports HOST with version 0. */
typedef enum {
    NGL_NCCL_NET_DEVICE_HOST = 0,
    NGL_NCCL_NET_DEVICE_UNPACK = 1
} ngl_nccl_net_device_type_t;

/* Device-offload handle. Host plugins never create one. */
typedef struct {
    ngl_nccl_net_device_type_t netDeviceType;
    int netDeviceVersion;
    void *handle;
    size_t size;
    int needsProxyProgress;
} ngl_nccl_net_device_handle_v8_t;

/* Per-device properties, v8 layout. */
typedef struct {
    char *name;      /* shown in logs; also the key that merges net and collNet devices */
    char *pciPath;   /* /sys path of the PCI device, or NULL for a virtual NIC */
    uint64_t guid;   /* unique per NIC */
    int ptrSupport;  /* NGL_NCCL_PTR_* bits regMr accepts */
    int regIsGlobal; /* 1 if a registration is usable on every comm */
    int speed;       /* Mbit/s */
    int port;        /* port number, informational */
    float latency;   /* microseconds, 0 = NCCL's default */
    int maxComms;    /* comms one device can hold */
    int maxRecvs;    /* receives one irecv may group */
    ngl_nccl_net_device_type_t netDeviceType;
    int netDeviceVersion;
} ngl_nccl_props_v8_t;

/* Point-to-point network, v8 layout. Every entry is called from NCCL's
 * init thread (init, devices, getProperties) or a proxy thread (the rest). */
typedef struct {
    const char *name;
    ngl_nccl_result_t (*init)(ngl_nccl_logger_t logger);
    ngl_nccl_result_t (*devices)(int *ndev);
    ngl_nccl_result_t (*getProperties)(int dev, ngl_nccl_props_v8_t *props);
    ngl_nccl_result_t (*listen)(int dev, void *handle, void **listenComm);
    ngl_nccl_result_t (*connect)(int dev, void *handle, void **sendComm,
                                 ngl_nccl_net_device_handle_v8_t **sendDevComm);
    ngl_nccl_result_t (*accept)(void *listenComm, void **recvComm,
                                ngl_nccl_net_device_handle_v8_t **recvDevComm);
    ngl_nccl_result_t (*regMr)(void *comm, void *data, size_t size, int type, void **mhandle);
    ngl_nccl_result_t (*regMrDmaBuf)(void *comm, void *data, size_t size, int type, uint64_t offset,
                                     int fd, void **mhandle);
    ngl_nccl_result_t (*deregMr)(void *comm, void *mhandle);
    ngl_nccl_result_t (*isend)(void *sendComm, void *data, int size, int tag, void *mhandle,
                               void **request);
    ngl_nccl_result_t (*irecv)(void *recvComm, int n, void **data, int *sizes, int *tags,
                               void **mhandles, void **request);
    ngl_nccl_result_t (*iflush)(void *recvComm, int n, void **data, int *sizes, void **mhandles,
                                void **request);
    ngl_nccl_result_t (*test)(void *request, int *done, int *sizes);
    ngl_nccl_result_t (*closeSend)(void *sendComm);
    ngl_nccl_result_t (*closeRecv)(void *recvComm);
    ngl_nccl_result_t (*closeListen)(void *listenComm);
    ngl_nccl_result_t (*getDeviceMr)(void *comm, void *mhandle, void **dptr_mhandle);
    ngl_nccl_result_t (*irecvConsumed)(void *recvComm, int n, void *request);
} ngl_nccl_net_v8_t;

/* Scatter-gather element of the collNet allgather/reducescatter calls. */
typedef struct {
    void *mhandle;
    void *address;
    uint32_t size;
} ngl_nccl_sge_v8_t;

/* Collective network, v8 layout. */
typedef struct {
    const char *name;
    ngl_nccl_result_t (*init)(ngl_nccl_logger_t logger);
    ngl_nccl_result_t (*devices)(int *ndev);
    ngl_nccl_result_t (*getProperties)(int dev, ngl_nccl_props_v8_t *props);
    ngl_nccl_result_t (*listen)(int dev, void *handle, void **listenComm);
    /* handles[i] is the listen() handle of collNet rank i (one per node). */
    ngl_nccl_result_t (*connect)(void *handles[], int nranks, int rank, void *listenComm,
                                 void **collComm);
    ngl_nccl_result_t (*reduceSupport)(ngl_nccl_dtype_t dtype, ngl_nccl_redop_t op, int *supported);
    ngl_nccl_result_t (*regMr)(void *collComm, void *data, size_t size, int type, void **mhandle);
    ngl_nccl_result_t (*regMrDmaBuf)(void *collComm, void *data, size_t size, int type,
                                     uint64_t offset, int fd, void **mhandle);
    ngl_nccl_result_t (*deregMr)(void *collComm, void *mhandle);
    /* count is in elements; send and recv buffers do not overlap. */
    ngl_nccl_result_t (*iallreduce)(void *collComm, void *sendData, void *recvData, int count,
                                    ngl_nccl_dtype_t dtype, ngl_nccl_redop_t op, void *sendMhandle,
                                    void *recvMhandle, void **request);
    ngl_nccl_result_t (*iallgather)(void *collComm, void *sendData, int nRecvParts,
                                    ngl_nccl_sge_v8_t *recvParts, size_t bytesPerRank,
                                    size_t windowOffset, size_t windowBytes, void *sendMhandle,
                                    void **request);
    ngl_nccl_result_t (*ireducescatter)(void *collComm, int nSendParts,
                                        ngl_nccl_sge_v8_t *sendParts, void *recvData,
                                        size_t bytesPerRank, size_t windowOffset,
                                        size_t windowBytes, ngl_nccl_dtype_t dtype,
                                        ngl_nccl_redop_t op, void *recvMhandle, void **request);
    ngl_nccl_result_t (*iflush)(void *collComm, void *data, int size, void *mhandle,
                                void **request);
    /* size may be NULL. */
    ngl_nccl_result_t (*test)(void *request, int *done, int *size);
    ngl_nccl_result_t (*closeColl)(void *collComm);
    ngl_nccl_result_t (*closeListen)(void *listenComm);
} ngl_nccl_collnet_v8_t;

/* Layout checks against the x86-64/aarch64 LP64 ABI NCCL is built for. */
_Static_assert(sizeof(ngl_nccl_props_v8_t) == 64, "ncclNetProperties_v8_t layout");
_Static_assert(offsetof(ngl_nccl_props_v8_t, latency) == 40, "ncclNetProperties_v8_t layout");
_Static_assert(offsetof(ngl_nccl_props_v8_t, netDeviceVersion) == 56,
               "ncclNetProperties_v8_t layout");
_Static_assert(sizeof(ngl_nccl_net_v8_t) == 19 * sizeof(void *), "ncclNet_v8_t layout");
_Static_assert(sizeof(ngl_nccl_collnet_v8_t) == 17 * sizeof(void *), "ncclCollNet_v8_t layout");
_Static_assert(sizeof(ngl_nccl_sge_v8_t) == 24, "ncclNetSGE_v8_t layout");

#endif /* NGL_NCCL_ABI_H */
