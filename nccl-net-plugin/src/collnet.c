/* SPDX-License-Identifier: Apache-2.0 */
/*
 * collnet.c -- compressed allreduce among node leaders: progress of the
 * collective engine's protocol (engine/include/ngl_engine.h: layout, stream
 * identity and state sets are the engine's) over the point-to-point
 * transport, driven by NCCL's proxy thread. See ngl_coll.h and
 * nccl-net-plugin/README.md.
 *
 * Ordering rules that keep every rank in step without extra messages:
 *   - calls are activated in posting order (seq), NGL_COLL_NSLOTS at a time;
 *   - on every transport comm, messages are posted in seq order (per-peer
 *     counters *_next below), and a call that has nothing for a peer still
 *     takes its turn, so both ends skip the same calls;
 *   - every stream (encoder or decoder) is used in seq order, so frame steps
 *     match on both ends.
 *
 * Device memory (README, "GPU path"): the same state machine, with coding
 * started on the collComm's CUDA stream and completed by polling events;
 * a step that waits for the GPU returns and is retried on the next test().
 * Per-peer "started" bits (F_*_ENC, F_*_DECSUB) sit beside the "done" bits.
 *
 * NANGILA_MODE=auto (README, "Auto mode in the collNet"): the engine plans
 * every compressible call at post time (off, int8 or int4 per size class),
 * the call is timed from activation to finish, and when a plan asks the
 * ranks to agree, the next post() first puts an exact allgather of the
 * ranks' estimates into the seq order (agree_post()) and back-pressures
 * until its MIN has been applied, so the next plan is the same everywhere.
 */
#include "ngl_coll.h"

#include "ngl_engine.h"

#include "ngl_plugin.h"
#include "ngl_plugin_dev.h"

#include "ngl_byteorder.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HELLO_MAGIC 0x434c474eu /* "NGLC" */
#define HELLO_SIZE  24
#define FRAME_ALIGN 64
/* Slices up to this size get their pinned frame buffers when NCCL
 * registers device memory: CollNetChain slices are at most 8 x 256 KiB.
 * Frame bounds assume every element is an exception (7-9 bytes per
 * element), so this costs 8 slots x (3N-2) frames of pinned memory; larger
 * slices (CollNetDirect, registered user buffers) grow it at warm-up. */
#define DEV_PRESIZE_BYTES ((uint64_t)2 << 20)
/* One rank's auto times as they travel (ngl_auto_local(): its latest timed
 * calls per mode): NGL_AUTO_VEC doubles, each as its 64 bits
 * little-endian. */
#define AGREE_BYTES (NGL_AUTO_VEC * 8)

enum { MESH_RS = 0, MESH_AG = 1, NMESH = 2 };
/* Transport comms per peer, in this order, for the memory handles. */
enum { K_RS_SEND = 0, K_RS_RECV = 1, K_AG_SEND = 2, K_AG_RECV = 3, NKIND = 4 };

/* Per-peer progress bits of an active call. */
enum {
    F_RS_SPOSTED = 1 << 0,
    F_RS_SDONE = 1 << 1,
    F_RS_RPOSTED = 1 << 2,
    F_RS_RDONE = 1 << 3,
    F_RS_DECODED = 1 << 4,
    F_AG_SPOSTED = 1 << 5,
    F_AG_SDONE = 1 << 6,
    F_AG_RPOSTED = 1 << 7,
    F_AG_RDONE = 1 << 8,
    F_AG_DECODED = 1 << 9,
    F_ALL = (1 << 10) - 1,
    /* started, not yet done (device memory; the host completes at once) */
    F_RS_ENC = 1 << 10,    /* my frame for this owner is encoded */
    F_RS_DECSUB = 1 << 11, /* this sender's frame is being added */
    F_AG_DECSUB = 1 << 12  /* this owner's sum is being decoded */
};

/* Where a call's buffers are. */
enum { MEM_SDEV = 1, MEM_RDEV = 2 };

/* Device memory that the GPU does not code (exact slices, or send and recv
 * in different memories) is staged through pinned host memory. */
enum { STAGE_NONE = 0, STAGE_IN, STAGE_RUN, STAGE_OUT };

/* What a call does. The three share the protocol and the per-peer turns:
 * an allreduce runs both stages, a reduce-scatter only the first (each
 * owner keeps its exact sum of the decoded parts), an allgather only the
 * second (each owner's part, exact). */
enum { CALL_ALLREDUCE = 0, CALL_REDUCESCATTER = 1, CALL_ALLGATHER = 2 };

/* A call's shape bits, kept as the engine set's layer tag. */
enum {
    TAG_MEM = 3,   /* MEM_* bits: where its calls' send and recv buffers are */
    TAG_GPU = 4,   /* coded on the GPU: both buffers in device memory, not exact */
    TAG_STAGED = 8 /* device memory otherwise: coded on the host from copies */
};

enum { R_FREE = 0, R_QUEUED, R_ACTIVE, R_DONE, R_FLUSH };

/* NANGILA_MODE=auto's agreement of one size class (agree_post()). */
enum {
    AGREE_NONE = 0, /* no plan asked for one */
    AGREE_WANTED,   /* a plan did: the next post() inserts the allgather */
    AGREE_POSTED    /* the allgather is in the seq order; posts wait for it */
};

struct ngl_coll_req {
    ngl_coll_comm *comm;
    int state;
    uint64_t seq; /* R_FLUSH: complete once no call up to this seq is left */
    const uint8_t *send;
    uint8_t *recv;
    const uint8_t *src; /* what the codec reads and writes: send and recv, */
    uint8_t *dst;       /* or their host copies for a staged call */
    uint64_t count;
    size_t esize;        /* 0 for a flush and an empty call */
    ngl_engine_set *set; /* the engine's streams of this call */
    int kind;            /* CALL_*: which stages run */
    uint64_t src_shift;  /* element of the chunk layout that src[0] holds */
    uint64_t dst_shift;  /* and dst[0] */
    int slot;
    ngl_coll_req *next; /* FIFO of queued/active requests, in seq order */
    /* NANGILA_MODE=auto */
    ngl_auto_plan plan; /* what the engine planned (mode, class, timed) */
    int created;        /* the call created its set: its time is not typical */
    int internal;       /* the comm's own allgather of auto estimates */
    uint64_t t_active;  /* ns when it went on the wire (timed calls) */
    uint64_t codec_ns;  /* ns inside host encode/decode (timed calls) */
};

typedef struct {
    ngl_coll_req *req; /* NULL when free */
    uint8_t *arena;
    size_t cap;
    void **mh;       /* [NKIND * N] transport memory handles of the arena */
    uint16_t *flags; /* [N] */
    uint8_t **rs_sbuf, **rs_rbuf, **ag_rbuf;
    uint8_t *ag_sbuf;
    size_t *rs_slen, *rs_rlen, *ag_rlen;
    size_t ag_slen;
    void **rs_sreq, **rs_rreq, **ag_sreq, **ag_rreq;
    int copied;               /* own chunk copied into recv */
    int ag_enc_sub;           /* own sum's encode started (its turn taken) */
    int ag_encoded;           /* own sum's frame complete */
    int pinned;               /* arena is page-locked (device calls need that) */
    int stage;                /* STAGE_*: staged exact call on device memory */
    uint8_t *h_send, *h_recv; /* host copies of a staged call's slice */
} slot_t;

/* Pinned arenas replaced at warm-up: freeing page-locked memory waits for
 * the whole device, which may be running NCCL kernels that wait for us,
 * so they are freed when the comm closes. */
typedef struct retired_arena {
    void *mem;
    struct retired_arena *next;
} retired_arena;

struct ngl_coll_listen {
    int dev;
    void *tl; /* transport listen comm */
};

struct ngl_coll_comm {
    pthread_mutex_t lock;
    const ngl_nccl_net_v8_t *net;
    ngl_settings set; /* core's settings, from ngl_plugin_settings() */
    uint32_t period;  /* NANGILA_COLLNET_PERIOD (0: automatic identity) */
    int nranks, rank, dev;
    uint64_t hash;   /* same on every rank: derived from all handles */
    ngl_engine *eng; /* identity, streams and statistics of this collComm */
    /* device memory: set up by the first regMr of CUDA memory */
    const ngl_plugin_dev_ops *gpu;
    void *queue;                  /* our CUDA stream */
    void *fence[NGL_COLL_NSLOTS]; /* per slot: staged copies' completion */
    int cuda_dev;                 /* device of the registered memory */
    int grew;                     /* pinned arenas grew after set-up (logged once) */
    retired_arena *retired;
    void **send[NMESH], **recv[NMESH];
    int err;
    uint64_t next_seq;
    /* per-peer turn counters (seq of the call whose turn it is) */
    uint64_t *rs_send_next, *rs_recv_next, *ag_send_next, *ag_recv_next;
    uint64_t *rs_dec_next, *ag_dec_next;
    uint64_t ag_enc_next;
    ngl_coll_req reqs[NGL_COLL_NREQ];
    ngl_coll_req *fifo_head, *fifo_tail;
    slot_t slots[NGL_COLL_NSLOTS];
    /* statistics */
    uint64_t calls, exact_calls, dev_calls, raw_bytes, wire_bytes;
    uint64_t *win_lo; /* [N + 1] chunk boundaries of a window call (call_identify) */
    size_t arena_max; /* frame buffers of all slots, where possible (arena_make_room) */
    int arena_waited; /* a call waited for that bound (logged once) */
    /* zero-block bitmap of one chunk (skip_zero_blocks), grown at warm-up */
    uint8_t *zmask;
    size_t zmask_cap;
    /* NANGILA_MODE=auto: the agreement a plan asked for (agree_post()) */
    int agree;          /* AGREE_* */
    uint32_t agree_cls; /* its size class */
    uint8_t *agree_buf; /* [(N + 1) * AGREE_BYTES]: mine, then every rank's */
    uint64_t agreements;
};

/* ---- small helpers ----------------------------------------------------- */

static int net_rc(ngl_nccl_result_t r)
{
    switch (r) {
    case NGL_NCCL_SUCCESS: return 0;
    case NGL_NCCL_REMOTE_ERROR: return -ECONNRESET;
    case NGL_NCCL_SYSTEM_ERROR: return -EIO;
    default: return -EPROTO;
    }
}

static int dtype_of(int nccl_dtype, ngl_dtype *dt)
{
    switch (nccl_dtype) {
    case NGL_NCCL_FLOAT32: *dt = NGL_DTYPE_F32; return 1;
    case NGL_NCCL_FLOAT16: *dt = NGL_DTYPE_F16; return 1;
    case NGL_NCCL_BFLOAT16: *dt = NGL_DTYPE_BF16; return 1;
    default: return 0;
    }
}

/* What the collNet compresses: Sum of fp32, fp16 and bf16 (NCCL maps Avg
 * to Sum for the network). Every other type and op it carries exactly. */
static int compressible(int nccl_dtype, int nccl_op, ngl_dtype *dt)
{
    return nccl_op == NGL_NCCL_SUM && dtype_of(nccl_dtype, dt);
}

int ngl_coll_reduce_supported(int nccl_dtype, int nccl_op)
{
    /* Every type NCCL has (2.24+ numbering, fp8 included) with Sum, Prod,
     * Max and Min: a job that forces NCCL_ALGO=...CollNet* must find an
     * algorithm for all its allreduces (src/enqueue.cc fails the call
     * otherwise). NCCL never asks about Avg or user ops (coll_net.cc asks
     * for op < 4); unknown future types are declined. */
    return nccl_dtype >= 0 && nccl_dtype < NGL_ELEM_COUNT && nccl_op >= 0 &&
           nccl_op < NGL_REDOP_COUNT;
}

/* The engine's layout: owner j's chunk (one segment per chunk). */
static uint64_t chunk_off(const ngl_engine_set *set, int j)
{
    return set->chunk_lo[j];
}

static uint64_t chunk_len(const ngl_engine_set *set, int j)
{
    return set->chunk_lo[j + 1] - set->chunk_lo[j];
}

static size_t align_up(size_t x)
{
    return (x + FRAME_ALIGN - 1) / FRAME_ALIGN * FRAME_ALIGN;
}

/* Where owner j's chunk is in the call's source and destination: an
 * allreduce has the whole slice on both sides; a reduce-scatter's
 * destination and an allgather's source hold only this rank's chunk. */
static const uint8_t *src_at(const ngl_coll_req *r, int j)
{
    return r->src + (chunk_off(r->set, j) - r->src_shift) * r->esize;
}

static uint8_t *dst_at(const ngl_coll_req *r, int j)
{
    return r->dst + (chunk_off(r->set, j) - r->dst_shift) * r->esize;
}

/* Bytes of the call's send (@p recv 0) or receive buffer: the whole slice
 * for an allreduce; only this rank's chunk for a reduce-scatter's receive
 * and an allgather's send. */
static size_t io_bytes(const ngl_coll_req *r, int recv)
{
    const int mine_only = recv ? r->kind == CALL_REDUCESCATTER : r->kind == CALL_ALLGATHER;
    const uint64_t n = mine_only ? chunk_len(r->set, r->comm->rank) : r->count;
    return (size_t)n * r->esize;
}

/* Room for owner j's frame in the slot arena. */
static size_t fbound(const ngl_engine_set *set, int j)
{
    return align_up(set->bound[j]);
}

static void fail(ngl_coll_comm *c, int rc, const char *what)
{
    if (c->err == 0) {
        c->err = rc;
        NGL_PWARN("collNet rank %d/%d: %s failed (%s); the communicator cannot continue", c->rank,
                  c->nranks, what, rc == NGL_PLUGIN_EDEVICE ? "a CUDA call failed" : strerror(-rc));
    }
}

/* A codec status as -errno: device failures stay recognisable. */
static int cc_rc(ngl_status st)
{
    switch (st) {
    case NGL_OK: return 0;
    case NGL_ERR_DEVICE: return NGL_PLUGIN_EDEVICE;
    case NGL_ERR_NO_MEMORY: return -ENOMEM;
    default: return -EINVAL;
    }
}

/* The engine's messages go to NCCL's log, filtered by NCCL. */
static void engine_log(void *user, ngl_log_level level, const char *msg)
{
    (void)user;
    if (level <= NGL_LOG_WARN) {
        NGL_PWARN("collNet: %s", msg);
    } else {
        NGL_PINFO(NGL_NCCL_SUBSYS_NET | NGL_NCCL_SUBSYS_COLL, "collNet: %s", msg);
    }
}

/* ---- listen / connect ---------------------------------------------------- */

int ngl_coll_listen_open(int dev, void *handle, ngl_coll_listen **out)
{
    *out = NULL;
    ngl_coll_listen *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return -ENOMEM;
    }
    l->dev = dev;
    int rc = net_rc(ngl_plugin_transport()->listen(dev, handle, &l->tl));
    if (rc != 0) {
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void ngl_coll_listen_close(ngl_coll_listen *l)
{
    if (l == NULL) {
        return;
    }
    if (l->tl != NULL) {
        (void)ngl_plugin_transport()->closeListen(l->tl);
    }
    free(l);
}

/* State of the blocking connect: two meshes, hellos to identify accepted
 * comms (accept returns them in any order). */
typedef struct {
    uint8_t (*hcopy)[NGL_NCCL_HANDLE_MAXSIZE]; /* [NMESH * N] transport keeps state in them */
    uint8_t (*hello_out)[HELLO_SIZE];          /* [NMESH * N] */
    uint8_t (*hello_in)[HELLO_SIZE];           /* [NMESH * N] by accept order */
    void **hs_mh, **hs_req;                    /* [NMESH * N] */
    int *hs_state;                             /* 0 not posted, 1 posted, 2 done */
    void **acc, **hr_mh, **hr_req;             /* [NMESH * N] accepted comms */
    int *hr_state;
    int naccepted;
} connect_state;

static int comm_alloc_arrays(ngl_coll_comm *c)
{
    const size_t n = (size_t)c->nranks;
    c->win_lo = calloc(n + 1, sizeof *c->win_lo);
    c->agree_buf = calloc(n + 1, AGREE_BYTES);
    if (c->win_lo == NULL || c->agree_buf == NULL) {
        return -ENOMEM;
    }
    for (int m = 0; m < NMESH; m++) {
        c->send[m] = calloc(n, sizeof(void *));
        c->recv[m] = calloc(n, sizeof(void *));
        if (c->send[m] == NULL || c->recv[m] == NULL) {
            return -ENOMEM;
        }
    }
    uint64_t **ctr[] = {&c->rs_send_next, &c->rs_recv_next, &c->ag_send_next,
                        &c->ag_recv_next, &c->rs_dec_next,  &c->ag_dec_next};
    for (size_t i = 0; i < sizeof ctr / sizeof ctr[0]; i++) {
        *ctr[i] = calloc(n, sizeof(uint64_t));
        if (*ctr[i] == NULL) {
            return -ENOMEM;
        }
    }
    for (int s = 0; s < NGL_COLL_NSLOTS; s++) {
        slot_t *sl = &c->slots[s];
        sl->mh = calloc(n * NKIND, sizeof(void *));
        sl->flags = calloc(n, sizeof(uint16_t));
        sl->rs_sbuf = calloc(n, sizeof(uint8_t *));
        sl->rs_rbuf = calloc(n, sizeof(uint8_t *));
        sl->ag_rbuf = calloc(n, sizeof(uint8_t *));
        sl->rs_slen = calloc(n, sizeof(size_t));
        sl->rs_rlen = calloc(n, sizeof(size_t));
        sl->ag_rlen = calloc(n, sizeof(size_t));
        sl->rs_sreq = calloc(n, sizeof(void *));
        sl->rs_rreq = calloc(n, sizeof(void *));
        sl->ag_sreq = calloc(n, sizeof(void *));
        sl->ag_rreq = calloc(n, sizeof(void *));
        if (!sl->mh || !sl->flags || !sl->rs_sbuf || !sl->rs_rbuf || !sl->ag_rbuf || !sl->rs_slen ||
            !sl->rs_rlen || !sl->ag_rlen || !sl->rs_sreq || !sl->rs_rreq || !sl->ag_sreq ||
            !sl->ag_rreq) {
            return -ENOMEM;
        }
    }
    return 0;
}

static void connect_state_free(connect_state *cs)
{
    free(cs->hcopy);
    free(cs->hello_out);
    free(cs->hello_in);
    free(cs->hs_mh);
    free(cs->hs_req);
    free(cs->hs_state);
    free(cs->acc);
    free(cs->hr_mh);
    free(cs->hr_req);
    free(cs->hr_state);
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
    nanosleep(&ts, NULL);
}

/* One pass of the connect loop. @return 1 when complete, 0 not yet, -errno. */
static int connect_pass(ngl_coll_comm *c, connect_state *cs, void *tl)
{
    const ngl_nccl_net_v8_t *net = c->net;
    const int n = c->nranks;
    const int want = NMESH * (n - 1);
    int complete = 1;
    for (int m = 0; m < NMESH; m++) {
        for (int p = 0; p < n; p++) {
            if (p == c->rank) {
                continue;
            }
            const int i = m * n + p;
            if (c->send[m][p] == NULL) {
                ngl_nccl_net_device_handle_v8_t *dh = NULL;
                int rc = net_rc(net->connect(c->dev, cs->hcopy[i], &c->send[m][p], &dh));
                if (rc != 0) {
                    return rc;
                }
                if (c->send[m][p] == NULL) {
                    complete = 0;
                    continue;
                }
            }
            if (cs->hs_state[i] == 0) {
                if (cs->hs_mh[i] == NULL &&
                    net_rc(net->regMr(c->send[m][p], cs->hello_out[i], HELLO_SIZE,
                                      NGL_NCCL_PTR_HOST, &cs->hs_mh[i])) != 0) {
                    return -EIO;
                }
                int rc = net_rc(net->isend(c->send[m][p], cs->hello_out[i], HELLO_SIZE, 0,
                                           cs->hs_mh[i], &cs->hs_req[i]));
                if (rc != 0) {
                    return rc;
                }
                if (cs->hs_req[i] != NULL) {
                    cs->hs_state[i] = 1;
                }
            }
            if (cs->hs_state[i] == 1) {
                int done = 0, size = 0;
                int rc = net_rc(net->test(cs->hs_req[i], &done, &size));
                if (rc != 0) {
                    return rc;
                }
                if (done) {
                    cs->hs_state[i] = 2;
                }
            }
            complete &= cs->hs_state[i] == 2;
        }
    }
    if (cs->naccepted < want) {
        void *rc_comm = NULL;
        ngl_nccl_net_device_handle_v8_t *dh = NULL;
        int rc = net_rc(net->accept(tl, &rc_comm, &dh));
        if (rc != 0) {
            return rc;
        }
        if (rc_comm != NULL) {
            cs->acc[cs->naccepted++] = rc_comm;
        }
        complete = 0;
    }
    for (int a = 0; a < cs->naccepted; a++) {
        if (cs->hr_state[a] == 0) {
            if (cs->hr_mh[a] == NULL && net_rc(net->regMr(cs->acc[a], cs->hello_in[a], HELLO_SIZE,
                                                          NGL_NCCL_PTR_HOST, &cs->hr_mh[a])) != 0) {
                return -EIO;
            }
            void *data = cs->hello_in[a];
            int size = HELLO_SIZE, tag = 0;
            int rc = net_rc(
                net->irecv(cs->acc[a], 1, &data, &size, &tag, &cs->hr_mh[a], &cs->hr_req[a]));
            if (rc != 0) {
                return rc;
            }
            if (cs->hr_req[a] != NULL) {
                cs->hr_state[a] = 1;
            }
        }
        if (cs->hr_state[a] == 1) {
            int done = 0, size = 0;
            int rc = net_rc(net->test(cs->hr_req[a], &done, &size));
            if (rc != 0) {
                return rc;
            }
            if (done) {
                const uint8_t *h = cs->hello_in[a];
                uint32_t mesh = ngl_rd_u32(h + 4), from = ngl_rd_u32(h + 8);
                uint64_t hash = (uint64_t)ngl_rd_u32(h + 16) | ((uint64_t)ngl_rd_u32(h + 20) << 32);
                if (size != HELLO_SIZE || ngl_rd_u32(h) != HELLO_MAGIC || mesh >= NMESH ||
                    from >= (uint32_t)n || (int)from == c->rank ||
                    ngl_rd_u32(h + 12) != (uint32_t)n || hash != c->hash ||
                    c->recv[mesh][from] != NULL) {
                    NGL_PWARN("collNet connect: unexpected hello (mesh %u from %u)", mesh, from);
                    return -EPROTO;
                }
                c->recv[mesh][from] = cs->acc[a];
                cs->hr_state[a] = 2;
            }
        }
        complete &= cs->hr_state[a] == 2;
    }
    return complete && cs->naccepted == want;
}

static void comm_free(ngl_coll_comm *c);

int ngl_coll_connect(void *const handles[], int nranks, int rank, ngl_coll_listen *l,
                     ngl_coll_comm **out)
{
    *out = NULL;
    if (handles == NULL || l == NULL || nranks < 1 || rank < 0 || rank >= nranks) {
        return -EINVAL;
    }
    ngl_coll_comm *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return -ENOMEM;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return -ENOMEM;
    }
    c->net = ngl_plugin_transport();
    c->gpu = ngl_plugin_dev();
    c->cuda_dev = -1;
    /* Under NANGILA_MODE=auto the floor defaults to NGL_AUTO_MIN_BYTES
     * (64 KiB), which suits the collNet too: a call is a whole chunk span,
     * 32 KiB at least even for one element, and 32 KiB calls only carry
     * operations below 64 KiB (losses, metrics, norms); they stay exact and
     * auto spends no calls on them. */
    c->set = ngl_plugin_settings()->codec;
    c->period = ngl_plugin_settings()->collnet_period;
    c->nranks = nranks;
    c->rank = rank;
    c->dev = l->dev;
    c->arena_max = (size_t)c->set.state_max_mb << 20;
    for (int i = 0; i < NGL_COLL_NREQ; i++) {
        c->reqs[i].comm = c;
    }
    /* The handles are identical on every rank, so their hash is a name for
     * this collComm that all ranks agree on without talking. */
    uint64_t h = 0x6e616e67696c61ull;
    for (int i = 0; i < nranks; i++) {
        const uint8_t *b = handles[i];
        for (int j = 0; j < NGL_NCCL_HANDLE_MAXSIZE; j += 8) {
            uint64_t w = 0;
            memcpy(&w, b + j, 8);
            h = ngl_hash_splitmix64(h ^ w);
        }
    }
    c->hash = h;
    /* Stream ids derive from the hash. Test builds may ask for ids that do
     * not depend on the random nonces in the handles, so that two
     * collComms of one process code alike. */
    const ngl_engine_config ecfg = {
        .nranks = nranks,
        .rank = rank,
        .uid = (c->gpu != NULL && c->gpu->fixed_stream_ids)
                   ? ngl_hash_splitmix64(0x6669786564ull ^ (uint64_t)nranks)
                   : h,
        .codec = c->set,
        .seg_policy = NGL_ENGINE_SEG_NONE, /* NCCL's slices are <= 2 MiB already */
        .fixed_period = c->period,
        /* A bucket's slices have one count, or a few taking turns: a run of
         * them is no step (docs/stream-identity.md). */
        .short_cycle_max = NGL_IDENT_SHORT_MAX,
        .short_cycle_evidence = NGL_IDENT_HIST,
        .log = engine_log,
    };
    int rc = ngl_engine_create(&ecfg, &c->eng) == NGL_OK ? comm_alloc_arrays(c) : -ENOMEM;
    if (rc != 0) {
        goto fail_comm;
    }

    const size_t nn = (size_t)NMESH * (size_t)nranks;
    connect_state cs;
    memset(&cs, 0, sizeof cs);
    cs.hcopy = calloc(nn, NGL_NCCL_HANDLE_MAXSIZE);
    cs.hello_out = calloc(nn, HELLO_SIZE);
    cs.hello_in = calloc(nn, HELLO_SIZE);
    cs.hs_mh = calloc(nn, sizeof(void *));
    cs.hs_req = calloc(nn, sizeof(void *));
    cs.hs_state = calloc(nn, sizeof(int));
    cs.acc = calloc(nn, sizeof(void *));
    cs.hr_mh = calloc(nn, sizeof(void *));
    cs.hr_req = calloc(nn, sizeof(void *));
    cs.hr_state = calloc(nn, sizeof(int));
    if (!cs.hcopy || !cs.hello_out || !cs.hello_in || !cs.hs_mh || !cs.hs_req || !cs.hs_state ||
        !cs.acc || !cs.hr_mh || !cs.hr_req || !cs.hr_state) {
        rc = -ENOMEM;
        goto fail_cs;
    }
    for (int m = 0; m < NMESH; m++) {
        for (int p = 0; p < nranks; p++) {
            const int i = m * nranks + p;
            memcpy(cs.hcopy[i], handles[p], NGL_NCCL_HANDLE_MAXSIZE);
            ngl_wr_u32(cs.hello_out[i], HELLO_MAGIC);
            ngl_wr_u32(cs.hello_out[i] + 4, (uint32_t)m);
            ngl_wr_u32(cs.hello_out[i] + 8, (uint32_t)rank);
            ngl_wr_u32(cs.hello_out[i] + 12, (uint32_t)nranks);
            ngl_wr_u32(cs.hello_out[i] + 16, (uint32_t)c->hash);
            ngl_wr_u32(cs.hello_out[i] + 20, (uint32_t)(c->hash >> 32));
        }
    }
    const uint64_t deadline =
        ngl_plugin_now_ns() + (uint64_t)NGL_COLL_CONNECT_TIMEOUT_S * 1000000000ull;
    for (;;) {
        rc = connect_pass(c, &cs, l->tl);
        if (rc != 0) {
            break;
        }
        if (ngl_plugin_now_ns() > deadline) {
            NGL_PWARN("collNet connect: rank %d/%d timed out after %d s", rank, nranks,
                      NGL_COLL_CONNECT_TIMEOUT_S);
            rc = -ETIMEDOUT;
            break;
        }
        sleep_us(100);
    }
    /* The hello buffers are done with either way. */
    for (size_t i = 0; i < nn; i++) {
        const int m = (int)(i / (size_t)nranks), p = (int)(i % (size_t)nranks);
        if (cs.hs_mh[i] != NULL) {
            (void)c->net->deregMr(c->send[m][p], cs.hs_mh[i]);
        }
        if (cs.hr_mh[i] != NULL) {
            (void)c->net->deregMr(cs.acc[i], cs.hr_mh[i]);
        }
    }
    if (rc < 0) {
        /* Comms accepted but never identified are closed here; identified
         * ones are in c->recv and closed by comm_free(). */
        for (int a = 0; a < cs.naccepted; a++) {
            if (cs.hr_state[a] != 2) {
                (void)c->net->closeRecv(cs.acc[a]);
            }
        }
        goto fail_cs;
    }
    connect_state_free(&cs);
    const char *mode = c->set.mode == NGL_MODE_OFF    ? "off"
                       : c->set.mode == NGL_MODE_INT4 ? "int4"
                                                      : "int8";
    if (c->set.mode_auto) {
        mode = c->set.mode_max == NGL_MODE_INT4 ? "auto (off, int8 or int4 per slice size)"
                                                : "auto (off or int8 per slice size)";
    }
    NGL_PINFO(NGL_NCCL_SUBSYS_INIT | NGL_NCCL_SUBSYS_COLL,
              "collNet rank %d/%d connected over %s: mode %s, block %u, min %llu B, stream "
              "identity %s",
              rank, nranks, c->net->name, mode, c->set.block_size,
              (unsigned long long)c->set.min_bytes,
              c->period ? "fixed by NANGILA_COLLNET_PERIOD" : "automatic");
    *out = c;
    return 0;

fail_cs:
    connect_state_free(&cs);
fail_comm:
    comm_free(c);
    return rc;
}

/* ---- call shapes ------------------------------------------------------------ */

/* 1 when a compressible call of @p count elements never compresses
 * (NANGILA_MODE=off, or below the floor); above it NANGILA_MODE=auto's
 * plan may still run it exact. */
static int call_exact(const ngl_coll_comm *c, uint64_t count, size_t esize)
{
    return c->set.mode == NGL_MODE_OFF || count * esize < c->set.min_bytes;
}

/* Bytes of frame buffers one call of @p count elements needs, @p exact or
 * compressed (plus room for the host copies of a staged call): my frames to
 * each peer, each peer's frame of my chunk, each peer's sum, my sum. Uses
 * the engine's layout, so it also sizes buffers before the first call of a
 * shape (dev_setup). */
static size_t call_need(const ngl_coll_comm *c, ngl_dtype dt, uint64_t count, int exact, int staged)
{
    const int n = c->nranks;
    const size_t esize = ngl_dtype_size(dt);
    uint64_t lo[65]; /* chunk boundaries on the stack for up to 64 ranks */
    uint64_t *chunk_lo = n < 65 ? lo : calloc((size_t)n + 1, sizeof *chunk_lo);
    if (chunk_lo == NULL) {
        return 0;
    }
    uint64_t seg;
    uint32_t nseg;
    ngl_engine_layout(count, n, c->set.block_size, NGL_ENGINE_SEG_NONE, chunk_lo, &seg, &nseg);
    size_t mine = 0, sum = 0;
    for (int j = 0; j < n; j++) {
        const uint64_t len = chunk_lo[j + 1] - chunk_lo[j];
        const size_t b = len > 0 ? align_up(ngl_engine_piece_bound(c->eng, len, dt, exact)) : 0;
        if (j == c->rank) {
            mine = b;
        } else {
            sum += 2 * b;
        }
    }
    if (chunk_lo != lo) {
        free(chunk_lo);
    }
    sum += mine * (size_t)n; /* N-1 rs receives of my chunk + my ag frame */
    if (staged) {
        sum += 2 * align_up(count * esize);
    }
    return sum;
}

/* ---- slots: frame buffers of calls in flight ------------------------------ */

static void *transport_comm(const ngl_coll_comm *c, int kind, int peer)
{
    switch (kind) {
    case K_RS_SEND: return c->send[MESH_RS][peer];
    case K_RS_RECV: return c->recv[MESH_RS][peer];
    case K_AG_SEND: return c->send[MESH_AG][peer];
    default: return c->recv[MESH_AG][peer];
    }
}

/* Deregister and drop the slot's arena. A pinned one is retired (freed at
 * close) unless @p closing. */
static void slot_release_arena(ngl_coll_comm *c, slot_t *sl, int closing)
{
    const int n = c->nranks;
    for (int kind = 0; kind < NKIND; kind++) {
        for (int p = 0; p < n; p++) {
            void **mh = &sl->mh[kind * n + p];
            if (*mh != NULL) {
                (void)c->net->deregMr(transport_comm(c, kind, p), *mh);
                *mh = NULL;
            }
        }
    }
    if (sl->arena != NULL && sl->pinned) {
        retired_arena *ra = closing ? NULL : malloc(sizeof *ra);
        if (ra != NULL) {
            ra->mem = sl->arena;
            ra->next = c->retired;
            c->retired = ra;
        } else {
            c->gpu->host_free(sl->arena);
        }
    } else {
        free(sl->arena);
    }
    sl->arena = NULL;
    sl->cap = 0;
    sl->pinned = 0;
}

/* Grow the slot's arena to @p need bytes (page-locked when @p pinned, or
 * when it was already) and register it with every transport comm (an inner
 * RDMA plugin needs that). Set-up or warm-up only: a class needs the same
 * size every time. */
static int slot_reserve(ngl_coll_comm *c, slot_t *sl, size_t need, int pinned)
{
    if (sl->cap >= need && (sl->pinned || !pinned)) {
        return 0;
    }
    pinned |= sl->pinned;
    if (pinned && sl->arena != NULL && !c->grew) {
        c->grew = 1;
        NGL_PINFO(NGL_NCCL_SUBSYS_NET | NGL_NCCL_SUBSYS_COLL,
                  "collNet rank %d: pinned frame buffers grow to %zu B per call for a larger "
                  "slice (warm-up, once per size)",
                  c->rank, need);
    }
    slot_release_arena(c, sl, 0);
    void *mem = NULL;
    if (pinned) {
        if (c->gpu->host_alloc(&mem, need) != 0) {
            NGL_PWARN("collNet: cannot allocate %zu bytes of pinned host memory", need);
            return -ENOMEM;
        }
    } else if (posix_memalign(&mem, 4096, need) != 0) {
        return -ENOMEM;
    }
    sl->arena = mem;
    sl->cap = need;
    sl->pinned = pinned;
    const int n = c->nranks;
    for (int kind = 0; kind < NKIND; kind++) {
        for (int p = 0; p < n; p++) {
            if (p == c->rank) {
                continue;
            }
            int rc = net_rc(c->net->regMr(transport_comm(c, kind, p), sl->arena, sl->cap,
                                          NGL_NCCL_PTR_HOST, &sl->mh[kind * n + p]));
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* ---- memory registration (NCCL's staging region, or user buffers) ------- */

typedef struct {
    void *base;
    size_t size;
    int type; /* NGL_NCCL_PTR_HOST or NGL_NCCL_PTR_CUDA */
} coll_mr;

/* First device registration: our stream, the slots' events, and pinned
 * frame buffers for the slices such a region carries, so that the data
 * path allocates nothing (README, "GPU path"). Lock held. */
static int dev_setup(ngl_coll_comm *c, const void *data, size_t size)
{
    const ngl_plugin_dev_ops *g = c->gpu;
    int pd = -1;
    int rc = ngl_plugin_dev_of(data, &pd);
    if (rc != 0) {
        return rc;
    }
    if (c->queue != NULL && pd != c->cuda_dev) {
        NGL_PWARN("collNet regMr: memory of GPU %d on a collComm of GPU %d", pd, c->cuda_dev);
        return -EINVAL;
    }
    int saved = -1;
    rc = ngl_plugin_dev_enter(pd, &saved);
    if (rc == 0 && c->queue == NULL) {
        rc = g->queue_create(&c->queue);
        for (int s = 0; s < NGL_COLL_NSLOTS && rc == 0; s++) {
            rc = g->event_create(&c->fence[s]);
        }
        c->cuda_dev = pd;
        if (rc == 0) {
            NGL_PINFO(NGL_NCCL_SUBSYS_INIT | NGL_NCCL_SUBSYS_NET | NGL_NCCL_SUBSYS_COLL,
                      "collNet rank %d/%d: device memory on GPU %d; compressing on the GPU (%s)",
                      c->rank, c->nranks, pd, g->name);
        }
    }
    /* Worst case over the dtypes: f16/bf16 slices hold the most elements. */
    const uint64_t bytes = size < DEV_PRESIZE_BYTES ? size : DEV_PRESIZE_BYTES;
    size_t need = 0;
    static const ngl_dtype dts[] = {NGL_DTYPE_F32, NGL_DTYPE_F16, NGL_DTYPE_BF16};
    for (size_t i = 0; i < sizeof dts / sizeof dts[0] && rc == 0; i++) {
        const uint64_t count = bytes / ngl_dtype_size(dts[i]);
        const int exact = call_exact(c, count, ngl_dtype_size(dts[i]));
        size_t nd = count > 0 ? call_need(c, dts[i], count, exact, exact) : 0;
        if (count > 0 && !exact && c->set.mode_auto) {
            /* auto may run the slice exact, staged through host memory */
            const size_t ns = call_need(c, dts[i], count, 1, 1);
            nd = ns > nd ? ns : nd;
        }
        need = nd > need ? nd : need;
    }
    for (int s = 0; s < NGL_COLL_NSLOTS && rc == 0 && need > 0; s++) {
        rc = slot_reserve(c, &c->slots[s], need, 1);
    }
    ngl_plugin_dev_leave(saved);
    return rc;
}

int ngl_coll_regmr(ngl_coll_comm *c, void *data, size_t size, int type, void **mhandle)
{
    *mhandle = NULL;
    if (type != NGL_NCCL_PTR_HOST && type != NGL_NCCL_PTR_CUDA) {
        NGL_PWARN("collNet regMr: memory type %d is not supported", type);
        return -EINVAL;
    }
    if (type == NGL_NCCL_PTR_CUDA) {
        if (!ngl_plugin_dev_usable()) {
            NGL_PWARN("collNet regMr: device memory, but this plugin %s",
                      ngl_plugin_dev() == NULL ? "was built without CUDA" : "found no usable GPU");
            return -EINVAL;
        }
        pthread_mutex_lock(&c->lock);
        int rc = dev_setup(c, data, size);
        pthread_mutex_unlock(&c->lock);
        if (rc != 0) {
            return rc;
        }
    }
    coll_mr *mr = malloc(sizeof *mr);
    if (mr == NULL) {
        return -ENOMEM;
    }
    mr->base = data;
    mr->size = size;
    mr->type = type;
    *mhandle = mr;
    return 0;
}

int ngl_coll_deregmr(ngl_coll_comm *c, void *mhandle)
{
    (void)c;
    free(mhandle);
    return 0;
}

/* ---- the call state machine -------------------------------------------- */

static int poll_op(ngl_coll_comm *c, const ngl_engine_set *k, ngl_cc_stream *s, uint16_t *flags,
                   uint16_t done_bit, size_t *len, const char *what)
{
    int done = 0;
    ngl_status st = k->ops->poll(s, &done, len);
    if (st != NGL_OK) {
        NGL_PWARN("collNet rank %d: %s failed: %s", c->rank, what, ngl_status_str(st));
        return cc_rc(st);
    }
    if (done) {
        *flags |= done_bit;
    }
    return 0;
}

/* NANGILA_MODE=auto's codec time of a timed call: host coding is complete
 * when encode() or decode() returns, so it is the time spent inside them
 * (zero-block scans included). A device codes asynchronously: GPU calls
 * report none. */
static uint64_t codec_clock(const ngl_coll_req *r)
{
    return r->plan.timed && !(r->set->layer_tag & TAG_GPU) ? ngl_plugin_now_ns() : 0;
}

static void codec_clock_add(ngl_coll_req *r, uint64_t t0)
{
    if (t0 != 0) {
        r->codec_ns += ngl_plugin_now_ns() - t0;
    }
}

/* Completion of my reduce-scatter frame for owner @p j. */
static int rs_encode_poll(ngl_coll_comm *c, ngl_coll_req *r, slot_t *sl, int j)
{
    const ngl_engine_set *k = r->set;
    if (sl->flags[j] & F_RS_ENC) {
        return 0;
    }
    int rc = poll_op(c, k, k->rs_enc[j], &sl->flags[j], F_RS_ENC, &sl->rs_slen[j], "encode");
    if (rc == 0 && (sl->flags[j] & F_RS_ENC)) {
        c->raw_bytes += chunk_len(k, j) * r->esize;
        c->wire_bytes += sl->rs_slen[j];
    }
    return rc;
}

/* Start the reduce-scatter frames: the input is complete at post time. */
/*
 * Mark the codec blocks of @p len elements at @p data (host memory) whose
 * bytes are all zero, and make the next encode on @p s skip them: a skipped
 * block costs no payload and decodes to the prediction (zero without a
 * predictor). On host memory the stale tail of an operation's last slice
 * is always zero (finish() clears send slots, NCCL's staging region starts
 * calloc'ed), so stale bytes cost only their mask bits. Blocks of zeros in
 * the data are skipped just the same. Lock held; no allocation.
 */
/* 1 if @p n bytes are all zero. Data blocks almost always have a non-zero
 * first word, so the scan costs one load where it finds data. */
static int all_zero(const uint8_t *p, uint64_t n)
{
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != 0) {
            return 0;
        }
    }
    for (; i < n; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static ngl_status skip_zero_blocks(ngl_coll_comm *c, const ngl_engine_set *k, ngl_cc_stream *s,
                                   const uint8_t *data, uint64_t len, size_t esize)
{
    if (k->exact || k->ops->skip_blocks == NULL) {
        return NGL_OK;
    }
    const uint64_t block = c->set.block_size;
    const uint64_t nblocks = (len + block - 1) / block;
    const size_t nbytes = (size_t)((nblocks + 7) / 8);
    if (nbytes > c->zmask_cap) {
        return NGL_OK; /* cannot happen: sized when the set was created */
    }
    memset(c->zmask, 0, nbytes);
    int any = 0;
    for (uint64_t b = 0; b < nblocks; b++) {
        const uint64_t lo = b * block, n = (lo + block < len ? block : len - lo) * esize;
        if (all_zero(data + lo * esize, n)) {
            c->zmask[b / 8] |= (uint8_t)(1u << (b % 8));
            any = 1;
        }
    }
    return any ? k->ops->skip_blocks(s, c->zmask) : NGL_OK;
}

static int rs_encode_start(ngl_coll_comm *c, ngl_coll_req *r, slot_t *sl)
{
    const ngl_engine_set *k = r->set;
    for (int j = 0; j < c->nranks; j++) {
        if (j == c->rank || chunk_len(k, j) == 0) {
            continue;
        }
        const uint8_t *src = src_at(r, j);
        const uint64_t t0 = codec_clock(r);
        ngl_status st = skip_zero_blocks(c, k, k->rs_enc[j], src, chunk_len(k, j), r->esize);
        if (st == NGL_OK) {
            st = k->ops->encode(k->rs_enc[j], src, sl->rs_sbuf[j], fbound(k, j));
        }
        codec_clock_add(r, t0);
        if (st != NGL_OK) {
            NGL_PWARN("collNet: encode failed: %s", ngl_status_str(st));
            return cc_rc(st);
        }
        int rc = rs_encode_poll(c, r, sl, j);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Query the slot's fence. @return 0 or -errno, *done. */
static int fence_query(ngl_coll_comm *c, const ngl_coll_req *r, int *done)
{
    *done = 0;
    return c->gpu->event_query(c->fence[r->slot], done);
}

/* 1 when a slot other than @p except holds a call. */
static int calls_active(const ngl_coll_comm *c, const slot_t *except)
{
    for (int s = 0; s < NGL_COLL_NSLOTS; s++) {
        if (&c->slots[s] != except && c->slots[s].req != NULL) {
            return 1;
        }
    }
    return 0;
}

/*
 * Frame buffers grow lazily, per slot, to the largest call it carried, and
 * all slots together stay within NANGILA_STATE_MAX_MB where they can: a
 * slot that must grow past the bound waits (1 is returned only when it may
 * go on, 0 means "retry later") while other calls are in flight, and idle
 * slots give back their host arenas first. A call larger than the bound
 * still runs, alone. Pinned arenas are only retired (freeing page-locked
 * memory waits for the device), so they do not make room. Lock held.
 */
static int arena_make_room(ngl_coll_comm *c, slot_t *sl, size_t need)
{
    size_t total = 0;
    for (int s = 0; s < NGL_COLL_NSLOTS; s++) {
        total += c->slots[s].cap;
    }
    if (total - sl->cap + need <= c->arena_max) {
        return 1;
    }
    for (int s = 0; s < NGL_COLL_NSLOTS; s++) {
        slot_t *o = &c->slots[s];
        if (o != sl && o->req == NULL && o->arena != NULL && !o->pinned) {
            total -= o->cap;
            slot_release_arena(c, o, 0);
        }
    }
    if (total - sl->cap + need <= c->arena_max || !calls_active(c, sl)) {
        return 1;
    }
    if (!c->arena_waited) {
        c->arena_waited = 1;
        NGL_PINFO(NGL_NCCL_SUBSYS_NET | NGL_NCCL_SUBSYS_COLL,
                  "collNet rank %d: frame buffers at the NANGILA_STATE_MAX_MB bound; a call "
                  "needing %zu B waits for the calls in flight",
                  c->rank, need);
    }
    return 0;
}

/* Bytes of the slot arena call @p r carves (activate()). */
static size_t set_need(const ngl_coll_comm *c, const ngl_coll_req *r)
{
    const ngl_engine_set *k = r->set;
    size_t need = fbound(k, c->rank) * (size_t)c->nranks;
    for (int j = 0; j < c->nranks; j++) {
        need += j == c->rank ? 0 : 2 * fbound(k, j);
    }
    if (k->layer_tag & TAG_STAGED) {
        need += 2 * align_up(r->count * r->esize);
    }
    return need;
}

/* @return 1 when the call is on the wire, 0 when a stream of its set is
 * still busy with an earlier call (try again later), or -errno. */
static int activate(ngl_coll_comm *c, ngl_coll_req *r, slot_t *sl)
{
    const ngl_engine_set *k = r->set;
    const int n = c->nranks, me = c->rank;
    int rc = 0;
    for (int j = 0; j < n; j++) {
        if (k->rs_enc[j] != NULL && k->ops->busy(k->rs_enc[j])) {
            return 0;
        }
    }
    const size_t need = set_need(c, r);
    const int pinned = (k->layer_tag & TAG_MEM) != 0;
    if (sl->cap < need || (pinned && !sl->pinned)) {
        rc = arena_make_room(c, sl, need);
        if (rc <= 0) {
            return rc;
        }
    }
    rc = slot_reserve(c, sl, need, pinned);
    if (rc == -ENOMEM && calls_active(c, sl)) {
        return 0; /* the memory of calls in flight comes back when they end */
    }
    if (rc != 0) {
        return rc;
    }
    uint8_t *p = sl->arena;
    const uint64_t mine = chunk_len(k, me);
    for (int j = 0; j < n; j++) {
        sl->flags[j] = 0;
        sl->rs_sreq[j] = sl->rs_rreq[j] = sl->ag_sreq[j] = sl->ag_rreq[j] = NULL;
        if (j == me) {
            sl->flags[j] = F_ALL & ~F_AG_DECODED;
            continue;
        }
        sl->rs_sbuf[j] = p;
        p += fbound(k, j);
        sl->rs_rbuf[j] = p;
        p += fbound(k, me);
        sl->ag_rbuf[j] = p;
        p += fbound(k, j);
        /* Transfers that do not happen are marked done here; the turns
         * they stand for are still taken in order (post_turn, step). */
        if (chunk_len(k, j) == 0) {
            sl->flags[j] |= F_RS_SDONE | F_AG_RDONE | F_RS_ENC; /* owner j has nothing */
        }
        if (mine == 0) {
            sl->flags[j] |= F_RS_RDONE | F_AG_SDONE; /* I own nothing */
        }
        if (r->kind == CALL_REDUCESCATTER) {
            sl->flags[j] |= F_AG_SDONE | F_AG_RDONE; /* no second stage */
        } else if (r->kind == CALL_ALLGATHER) {
            sl->flags[j] |= F_RS_SDONE | F_RS_RDONE | F_RS_ENC; /* no first stage */
        }
    }
    sl->ag_sbuf = p;
    p += fbound(k, me);
    sl->copied = mine == 0;
    sl->ag_enc_sub = 0;
    sl->ag_encoded = 0;
    sl->stage = STAGE_NONE;
    r->src = r->send;
    r->dst = r->recv;
    sl->req = r;
    r->state = R_ACTIVE;
    if ((k->layer_tag & TAG_STAGED)) {
        /* Code host copies of the device buffers: step() goes on once the
         * input has landed, and copies the result back. */
        sl->h_send = p;
        sl->h_recv = p + align_up(r->count * r->esize);
        sl->stage = STAGE_RUN;
        if ((int)(k->layer_tag & TAG_MEM) & MEM_RDEV) {
            r->dst = sl->h_recv;
        }
        if ((int)(k->layer_tag & TAG_MEM) & MEM_SDEV) {
            r->src = sl->h_send;
            sl->stage = STAGE_IN;
            rc = c->gpu->copy(sl->h_send, r->send, io_bytes(r, 0), c->queue);
            if (rc == 0) {
                rc = c->gpu->event_record(c->fence[r->slot], c->queue);
            }
            return rc < 0 ? rc : 1;
        }
    }
    if ((k->layer_tag & TAG_GPU) && !sl->copied) {
        /* Own exact chunk first: the decodes that add to it follow it on
         * the same stream. In place (send == recv) there is nothing to do. */
        rc = c->gpu->copy(dst_at(r, me), src_at(r, me), mine * r->esize, c->queue);
        if (rc != 0) {
            return rc;
        }
        sl->copied = 1;
    }
    rc = r->kind == CALL_ALLGATHER ? 0 : rs_encode_start(c, r, sl);
    return rc < 0 ? rc : 1;
}

/* Post or skip the message of call @p r to/from @p peer on one mesh, in turn.
 * @return 0 or -errno. */
static int post_turn(ngl_coll_comm *c, ngl_coll_req *r, slot_t *sl, int peer, int is_send, int mesh)
{
    const uint16_t posted = mesh == MESH_RS ? (is_send ? F_RS_SPOSTED : F_RS_RPOSTED)
                                            : (is_send ? F_AG_SPOSTED : F_AG_RPOSTED);
    const uint16_t done =
        mesh == MESH_RS ? (is_send ? F_RS_SDONE : F_RS_RDONE) : (is_send ? F_AG_SDONE : F_AG_RDONE);
    uint64_t *turn = mesh == MESH_RS ? (is_send ? c->rs_send_next : c->rs_recv_next)
                                     : (is_send ? c->ag_send_next : c->ag_recv_next);
    if ((sl->flags[peer] & posted) || turn[peer] != r->seq) {
        return 0;
    }
    if (sl->flags[peer] & done) {
        /* Nothing travels for this call: take the turn and move on. */
        sl->flags[peer] |= posted;
        turn[peer]++;
        return 0;
    }
    const ngl_engine_set *k = r->set;
    const int n = c->nranks;
    void *req = NULL;
    ngl_nccl_result_t res;
    if (is_send) {
        if ((mesh == MESH_AG && !sl->ag_encoded) ||
            (mesh == MESH_RS && !(sl->flags[peer] & F_RS_ENC))) {
            return 0; /* the frame is not complete yet */
        }
        void *buf = mesh == MESH_RS ? sl->rs_sbuf[peer] : sl->ag_sbuf;
        size_t len = mesh == MESH_RS ? sl->rs_slen[peer] : sl->ag_slen;
        int kind = mesh == MESH_RS ? K_RS_SEND : K_AG_SEND;
        res = c->net->isend(c->send[mesh][peer], buf, (int)len, 0, sl->mh[kind * n + peer], &req);
    } else {
        void *buf = mesh == MESH_RS ? sl->rs_rbuf[peer] : sl->ag_rbuf[peer];
        int cap = (int)(mesh == MESH_RS ? fbound(k, c->rank) : fbound(k, peer));
        int tag = 0;
        int kind = mesh == MESH_RS ? K_RS_RECV : K_AG_RECV;
        res =
            c->net->irecv(c->recv[mesh][peer], 1, &buf, &cap, &tag, &sl->mh[kind * n + peer], &req);
    }
    int rc = net_rc(res);
    if (rc != 0) {
        return rc;
    }
    if (req == NULL) {
        return 0; /* transport busy: same turn next time */
    }
    void **slotreq = mesh == MESH_RS ? (is_send ? sl->rs_sreq : sl->rs_rreq)
                                     : (is_send ? sl->ag_sreq : sl->ag_rreq);
    slotreq[peer] = req;
    sl->flags[peer] |= posted;
    turn[peer]++;
    return 0;
}

static int test_one(ngl_coll_comm *c, void **req, uint16_t *flags, uint16_t done_bit, size_t *len)
{
    if (*req == NULL || (*flags & done_bit)) {
        return 0;
    }
    int done = 0, size = 0;
    int rc = net_rc(c->net->test(*req, &done, &size));
    if (rc != 0) {
        return rc;
    }
    if (done) {
        *req = NULL;
        *flags |= done_bit;
        if (len != NULL) {
            *len = (size_t)size;
        }
    }
    return 0;
}

/* Start decoding a received frame, and poll it once (the host is done
 * then). @return 0 or -errno. */
static int decode_start(ngl_coll_comm *c, ngl_coll_req *r, ngl_cc_stream *s, const uint8_t *frame,
                        size_t len, void *dst, int accumulate, int from, uint16_t *flags,
                        uint16_t started_bit, uint16_t done_bit)
{
    const ngl_engine_set *k = r->set;
    const uint64_t t0 = codec_clock(r);
    ngl_status st = k->ops->decode(s, frame, len, dst, accumulate);
    codec_clock_add(r, t0);
    if (st != NGL_OK) {
        if (st == NGL_ERR_DEVICE) {
            NGL_PWARN("collNet rank %d: decode of rank %d's frame failed on the GPU", c->rank,
                      from);
            return NGL_PLUGIN_EDEVICE;
        }
        NGL_PWARN("collNet rank %d: frame from rank %d rejected: %s", c->rank, from,
                  ngl_status_str(st));
        return -EPROTO;
    }
    *flags |= started_bit;
    return poll_op(c, k, s, flags, done_bit, NULL, "decode");
}

/* Advance one active call as far as it goes. @return 1 when finished. */
static int step(ngl_coll_comm *c, ngl_coll_req *r, slot_t *sl)
{
    const int n = c->nranks, me = c->rank;
    const ngl_engine_set *k = r->set;
    const uint64_t mine = chunk_len(k, me);
    uint8_t *my_out = dst_at(r, me);
    int rc = 0;

    if (sl->stage == STAGE_IN) {
        int landed = 0;
        rc = fence_query(c, r, &landed);
        if (rc == 0 && landed) {
            sl->stage = STAGE_RUN;
            rc = rs_encode_start(c, r, sl);
        }
        if (rc != 0) {
            return rc;
        }
    }
    for (int j = 0; j < n && rc == 0 && sl->stage != STAGE_IN; j++) {
        if (j != me) {
            rc = rs_encode_poll(c, r, sl, j);
        }
    }
    for (int p = 0; p < n && rc == 0; p++) {
        if (p == me) {
            continue;
        }
        rc = post_turn(c, r, sl, p, 0, MESH_RS);
        if (rc == 0) {
            rc = post_turn(c, r, sl, p, 0, MESH_AG);
        }
        if (rc == 0) {
            rc = post_turn(c, r, sl, p, 1, MESH_RS);
        }
        if (rc == 0) {
            rc = test_one(c, &sl->rs_sreq[p], &sl->flags[p], F_RS_SDONE, NULL);
        }
        if (rc == 0) {
            rc = test_one(c, &sl->rs_rreq[p], &sl->flags[p], F_RS_RDONE, &sl->rs_rlen[p]);
        }
        if (rc == 0) {
            rc = test_one(c, &sl->ag_rreq[p], &sl->flags[p], F_AG_RDONE, &sl->ag_rlen[p]);
        }
    }
    if (rc != 0 || sl->stage == STAGE_IN) {
        return rc;
    }
    /* Reduce: own exact chunk first (device memory: enqueued at
     * activation), then peers in rank order, so the sum is the same from
     * run to run; on a GPU the adds run in the order they were started. */
    if (!sl->copied) {
        memcpy(my_out, src_at(r, me), mine * r->esize);
        sl->copied = 1;
    }
    int started = 1;
    for (int i = 0; i < n && rc == 0; i++) {
        if (i == me) {
            continue;
        }
        if (sl->flags[i] & F_RS_DECSUB) {
            if (!(sl->flags[i] & F_RS_DECODED)) {
                rc = poll_op(c, k, k->rs_dec[i], &sl->flags[i], F_RS_DECODED, NULL, "decode");
            }
            continue;
        }
        if (!started || c->rs_dec_next[i] != r->seq ||
            (mine > 0 && (!(sl->flags[i] & F_RS_RDONE) || k->ops->busy(k->rs_dec[i])))) {
            started = 0;
            continue;
        }
        if (mine > 0 && r->kind != CALL_ALLGATHER) {
            rc = decode_start(c, r, k->rs_dec[i], sl->rs_rbuf[i], sl->rs_rlen[i], my_out, 1, i,
                              &sl->flags[i], F_RS_DECSUB, F_RS_DECODED);
        } else {
            sl->flags[i] |= F_RS_DECSUB | F_RS_DECODED;
        }
        c->rs_dec_next[i]++;
    }
    if (rc != 0) {
        return rc;
    }
    /* Allgather: code the sum once; the owner decodes its own frame like
     * everyone else, so all ranks hold the same bits. Every stream takes its
     * turn in seq order even when this call has nothing for it. On a GPU
     * the encode follows the adds on the stream, so it may start before
     * they are done. */
    if (started && !sl->ag_enc_sub && c->ag_enc_next == r->seq &&
        (mine == 0 || !k->ops->busy(k->ag_enc[0]))) {
        if (mine > 0 && r->kind != CALL_REDUCESCATTER) {
            const uint64_t t0 = codec_clock(r);
            ngl_status st = skip_zero_blocks(c, k, k->ag_enc[0], my_out, mine, r->esize);
            if (st == NGL_OK) {
                st = k->ops->encode(k->ag_enc[0], my_out, sl->ag_sbuf, fbound(k, me));
            }
            codec_clock_add(r, t0);
            if (st != NGL_OK) {
                NGL_PWARN("collNet: encode failed: %s", ngl_status_str(st));
                return cc_rc(st);
            }
        } else {
            sl->ag_encoded = 1;
        }
        sl->ag_enc_sub = 1;
        c->ag_enc_next++;
    }
    if (sl->ag_enc_sub && !sl->ag_encoded) {
        uint16_t f = 0;
        rc = poll_op(c, k, k->ag_enc[0], &f, 1, &sl->ag_slen, "encode");
        if (rc != 0) {
            return rc;
        }
        if (f) {
            sl->ag_encoded = 1;
            c->raw_bytes += mine * r->esize * (uint64_t)(n - 1);
            c->wire_bytes += sl->ag_slen * (uint64_t)(n - 1);
        }
    }
    uint16_t *mf = &sl->flags[me];
    if (sl->ag_encoded && !(*mf & F_AG_DECSUB) && c->ag_dec_next[me] == r->seq &&
        (mine == 0 || !k->ops->busy(k->ag_dec[me]))) {
        if (mine > 0 && r->kind != CALL_REDUCESCATTER) {
            rc = decode_start(c, r, k->ag_dec[me], sl->ag_sbuf, sl->ag_slen, my_out, 0, me, mf,
                              F_AG_DECSUB, F_AG_DECODED);
            if (rc != 0) {
                return rc;
            }
        } else {
            *mf |= F_AG_DECSUB | F_AG_DECODED;
        }
        c->ag_dec_next[me]++;
    } else if ((*mf & F_AG_DECSUB) && !(*mf & F_AG_DECODED)) {
        rc = poll_op(c, k, k->ag_dec[me], mf, F_AG_DECODED, NULL, "decode");
    }
    for (int p = 0; p < n && rc == 0; p++) {
        if (p == me) {
            continue;
        }
        rc = post_turn(c, r, sl, p, 1, MESH_AG);
        if (rc == 0) {
            rc = test_one(c, &sl->ag_sreq[p], &sl->flags[p], F_AG_SDONE, NULL);
        }
        uint16_t *pf = &sl->flags[p];
        const uint64_t theirs = chunk_len(k, p);
        if (rc == 0 && (*pf & F_AG_RDONE) && !(*pf & F_AG_DECSUB) && c->ag_dec_next[p] == r->seq &&
            (theirs == 0 || !k->ops->busy(k->ag_dec[p]))) {
            if (theirs > 0 && r->kind != CALL_REDUCESCATTER) {
                rc = decode_start(c, r, k->ag_dec[p], sl->ag_rbuf[p], sl->ag_rlen[p], dst_at(r, p),
                                  0, p, pf, F_AG_DECSUB, F_AG_DECODED);
            } else {
                *pf |= F_AG_DECSUB | F_AG_DECODED;
            }
            if (rc == 0) {
                c->ag_dec_next[p]++;
            }
        } else if (rc == 0 && (*pf & F_AG_DECSUB) && !(*pf & F_AG_DECODED)) {
            rc = poll_op(c, k, k->ag_dec[p], pf, F_AG_DECODED, NULL, "decode");
        }
    }
    if (rc != 0) {
        return rc;
    }
    for (int p = 0; p < n; p++) {
        if ((sl->flags[p] & F_ALL) != F_ALL) {
            return 0;
        }
    }
    if (sl->stage == STAGE_RUN) {
        if (!((int)(k->layer_tag & TAG_MEM) & MEM_RDEV)) {
            return 1; /* the result is in host memory already */
        }
        /* Staged: the result goes back to device memory. */
        sl->stage = STAGE_OUT;
        rc = c->gpu->copy(r->recv, sl->h_recv, io_bytes(r, 1), c->queue);
        if (rc == 0) {
            rc = c->gpu->event_record(c->fence[r->slot], c->queue);
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (sl->stage == STAGE_OUT) {
        int landed = 0;
        rc = fence_query(c, r, &landed);
        return rc != 0 ? rc : landed;
    }
    return 1;
}

/* ---- NANGILA_MODE=auto: agreement inside the seq order ------------------- */

/* This rank's times of the class, taken when the allgather activates:
 * every earlier call has finished by then (progress()), so the call whose
 * plan asked for the agreement is in them, on every rank alike (slot i is
 * the same call on every rank). */
static void agree_snapshot(ngl_coll_comm *c)
{
    double v[NGL_AUTO_VEC];
    ngl_auto_local(ngl_engine_auto(c->eng), c->agree_cls, v);
    for (int i = 0; i < NGL_AUTO_VEC; i++) {
        uint64_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        ngl_wr_u64(c->agree_buf + 8 * i, bits);
    }
}

/* The allgather finished: decide from the element-wise MIN over the ranks
 * (of negated times: per call, its slowest rank's time, engine_auto.c),
 * the same numbers on every rank, before any later call is planned. */
static void agree_apply(ngl_coll_comm *c)
{
    const uint8_t *all = c->agree_buf + AGREE_BYTES;
    double vmin[NGL_AUTO_VEC];
    for (int i = 0; i < NGL_AUTO_VEC; i++) {
        for (int p = 0; p < c->nranks; p++) {
            const uint64_t bits = ngl_rd_u64(all + (size_t)p * AGREE_BYTES + 8 * (size_t)i);
            double v;
            memcpy(&v, &bits, sizeof v);
            vmin[i] = p == 0 || v < vmin[i] ? v : vmin[i];
        }
    }
    ngl_auto_agree(ngl_engine_auto(c->eng), c->agree_cls, vmin);
    c->agree = AGREE_NONE;
    c->agreements++;
}

static void finish(ngl_coll_comm *c, ngl_coll_req *r, slot_t *sl)
{
    const ngl_engine_set *k = r->set;
    sl->req = NULL;
    if (r->internal) {
        agree_apply(c);
        r->state = R_FREE; /* nobody tests it */
        return;
    }
    if (r->plan.timed) {
        /* From activation: queueing behind earlier calls is NCCL's pipeline
         * depth, not what this call costs in its mode. */
        const double secs = 1e-9 * (double)(ngl_plugin_now_ns() - r->t_active);
        ngl_auto_record(ngl_engine_auto(c->eng), &r->plan, secs, 1e-9 * (double)r->codec_ns,
                        r->created);
    }
    /* NCCL's last slice of an operation carries stale bytes past the data
     * the GPU wrote. Zeroing the slot after use means the stale part of
     * the next slice in this slot is zeros, not old values that could blow
     * up a block scale next to valid data. NCCL never reads a send slot
     * after the call completes. Device memory is never written: it may be
     * the user's own buffer (README, "GPU path", stale tails). */
    if (r->kind == CALL_ALLREDUCE && !((int)(k->layer_tag & TAG_MEM) & MEM_SDEV)) {
        memset((void *)(uintptr_t)r->send, 0, r->count * r->esize);
    }
    r->state = R_DONE;
}

static void fifo_remove(ngl_coll_comm *c, ngl_coll_req *r)
{
    ngl_coll_req **pp = &c->fifo_head;
    ngl_coll_req *prev = NULL;
    while (*pp != NULL && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == r) {
        *pp = r->next;
        if (c->fifo_tail == r) {
            c->fifo_tail = prev;
        }
        r->next = NULL;
    }
}

static void progress(ngl_coll_comm *c)
{
    if (c->err != 0) {
        return;
    }
    /* Calls are activated in seq order. They usually finish in that order
     * too, but on a GPU a call may finish while an earlier one still waits
     * for its device work; nothing depends on the finishing order. */
    for (ngl_coll_req *r = c->fifo_head; r != NULL;) {
        ngl_coll_req *next = r->next;
        if (r->state == R_QUEUED) {
            if (r->internal) {
                if (r != c->fifo_head) {
                    break; /* its vector must include every earlier call */
                }
                agree_snapshot(c);
            }
            /* A free slot whose buffers already fit, else any free one. */
            slot_t *sl = NULL;
            const size_t need = set_need(c, r);
            for (int pass = 0; pass < 2 && sl == NULL; pass++) {
                for (int s = 0; s < NGL_COLL_NSLOTS && sl == NULL; s++) {
                    if (c->slots[s].req == NULL && (pass == 1 || c->slots[s].cap >= need)) {
                        sl = &c->slots[s];
                        r->slot = s;
                    }
                }
            }
            if (sl == NULL) {
                break;
            }
            const uint64_t t0 = r->plan.timed ? ngl_plugin_now_ns() : 0;
            int rc = activate(c, r, sl);
            if (rc < 0) {
                fail(c, rc, "activating an allreduce");
                return;
            }
            if (rc == 0) {
                break; /* later calls wait for this one */
            }
            r->t_active = t0;
        }
        slot_t *sl = &c->slots[r->slot];
        int rc = step(c, r, sl);
        if (rc < 0) {
            fail(c, rc, "allreduce progress");
            return;
        }
        if (rc == 1) {
            finish(c, r, sl);
            fifo_remove(c, r);
        }
        r = next;
    }
}

/* Device calls need the comm's GPU current on this thread. */
static int comm_enter(ngl_coll_comm *c, int *saved)
{
    *saved = -1;
    if (c->queue == NULL) {
        return 0;
    }
    int rc = ngl_plugin_dev_enter(c->cuda_dev, saved);
    if (rc != 0) {
        fail(c, rc, "selecting the GPU");
    }
    return rc;
}

static int mr_type(const void *mhandle)
{
    return mhandle != NULL ? ((const coll_mr *)mhandle)->type : NGL_NCCL_PTR_HOST;
}

/* One call as posted: what it does, its buffers and its layout. */
typedef struct call_desc {
    int kind; /* CALL_* */
    void *send, *recv;
    uint64_t count;          /* elements of the slice (allreduce) or window */
    int nccl_dtype, nccl_op; /* allgather: bytes (uint8), op ignored */
    uint64_t per_rank, win;  /* windows: elements per rank's slice, window start */
    int mem;                 /* MEM_* of send and recv */
} call_desc;

/*
 * Stream identity of a new call, at post time and in posting order (the
 * same order on every rank): its token goes into the engine's call
 * history, which answers the key whose streams it uses; the set is created
 * on first use and unused sets are evicted, all at this same point of the
 * call sequence on every rank. The memory kind is not part of the token: a
 * rank on device memory and a rank on host memory code the same frames.
 * Lock held. @return 0 or -errno.
 */
static int call_identify(ngl_coll_comm *c, ngl_coll_req *r, const call_desc *d)
{
    ngl_dtype dt = NGL_DTYPE_F32; /* the core's type, for compressible calls */
    /* Allgathers are exact (FSDP gathers parameters); reduce-scatters and
     * allreduces compress fp32/fp16/bf16 sums above the threshold. */
    const int typed = d->kind == CALL_ALLGATHER || !compressible(d->nccl_dtype, d->nccl_op, &dt);
    const size_t esize = typed ? ngl_elem_size((ngl_elem)d->nccl_dtype) : ngl_dtype_size(dt);
    const int never = typed || call_exact(c, d->count, esize);
    /* Which codec the call runs: the configured one, or NANGILA_MODE=auto's
     * plan for its size class, made here in posting order so that every
     * rank plans the same call alike. A plan for off travels exact. */
    r->plan = (ngl_auto_plan){.mode = NGL_MODE_OFF};
    if (!never) {
        r->plan = ngl_auto_plan_call(ngl_engine_auto(c->eng), d->count * esize);
    }
    const int exact = never || r->plan.mode == NGL_MODE_OFF;
    /* Other types and ops travel in the engine's exact frames, reduced in
     * the type's own arithmetic; compressible ones below the threshold (or
     * planned off) in the core's RAW frames. */
    const uint32_t variant =
        typed ? ngl_exact_variant((ngl_elem)d->nccl_dtype, (ngl_redop)d->nccl_op) : 0u;
    /* The GPU codes INT8/INT4 from device memory into device memory.
     * Exact (RAW) slices are copied to host memory and coded there (they
     * are small, or the user asked for no compression), and so are calls
     * with one buffer on each side (NCCL does that when GPU Direct is on
     * for receives only, e.g. NCCL_NET_GDR_READ=0). */
    const int gpu = d->mem == (MEM_SDEV | MEM_RDEV) && !exact;
    const uint32_t tag =
        (uint32_t)d->mem | (gpu ? TAG_GPU : 0u) | ((d->mem != 0 && !gpu) ? TAG_STAGED : 0u);
    /* Identity is a property of the call sequence, not of auto's plan: the
     * token and the key request use the configured exactness, so a slice
     * keeps its key (and its int8 state) while its class runs off. */
    uint64_t kind = 1u | (uint64_t)(uint32_t)d->nccl_dtype << 8 | (uint64_t)never << 16 |
                    (uint64_t)d->kind << 20;
    if (d->kind != CALL_ALLREDUCE) {
        kind ^= ngl_hash_mix64(d->per_rank * 0x9e3779b97f4a7c15ull ^ d->win);
    }
    const uint64_t token = ngl_engine_token(d->count * esize, (uint32_t)d->nccl_op, kind);
    /* In place: NCCL's registered path, one call per bucket (the staging
     * path never passes one address twice); see ngl_ident_next(). */
    const int whole = d->send == d->recv;
    const uint32_t k = ngl_engine_identify(
        c->eng, token, (never ? 0 : NGL_IDENT_KEYED) | (whole ? NGL_IDENT_WHOLE : 0));
    /* A window's chunks are NCCL's: rank j's slice inside the window. */
    const uint64_t *chunk_lo = NULL;
    if (d->kind != CALL_ALLREDUCE) {
        for (int j = 0; j <= c->nranks; j++) {
            const uint64_t at = (uint64_t)j * d->per_rank;
            c->win_lo[j] = at <= d->win ? 0 : (at - d->win < d->count ? at - d->win : d->count);
        }
        chunk_lo = c->win_lo;
    }
    ngl_engine_set *set = NULL;
    int created = 0;
    const ngl_cc_ops *ops = typed ? &ngl_cc_exact_ops : gpu ? c->gpu->codec : &ngl_cc_host_ops;
    const ngl_engine_shape shape = {.count = d->count,
                                    .dtype = dt,
                                    .exact = exact,
                                    .variant = variant,
                                    .layer_tag = tag,
                                    .mode = exact ? NGL_MODE_OFF : r->plan.mode,
                                    .ops = ops,
                                    .queue = gpu ? c->queue : NULL,
                                    .chunk_lo = chunk_lo};
    ngl_status st = ngl_engine_set_get(c->eng, token, k, &shape, &set, &created);
    if (st != NGL_OK) {
        NGL_PWARN("collNet: cannot create %s streams for %llu elements: %s", ops->name,
                  (unsigned long long)d->count, ngl_status_str(st));
        return cc_rc(st);
    }
    if ((set->layer_tag & TAG_MEM) != (uint32_t)d->mem) {
        /* Its streams live where its first call put them. NCCL keeps a
         * collComm's staging buffers where they are, so this is a caller
         * error, not a case to serve. */
        NGL_PWARN("collNet: slices of %llu elements moved between host and device memory; not "
                  "supported",
                  (unsigned long long)d->count);
        return -EINVAL;
    }
    if (created && set->ops->skip_blocks != NULL) {
        /* Warm-up: the bitmap of the largest chunk any set has. */
        const size_t need =
            (size_t)((set->seg_elems + c->set.block_size - 1) / c->set.block_size + 7) / 8;
        if (need > c->zmask_cap) {
            uint8_t *z = realloc(c->zmask, need);
            if (z == NULL) {
                return -ENOMEM;
            }
            c->zmask = z;
            c->zmask_cap = need;
        }
    }
    if (created) {
        /* first use of these streams (allocation, first touch): auto times
         * the same step again on the class's next call */
        r->plan = ngl_auto_replan(ngl_engine_auto(c->eng), r->plan);
    }
    ngl_engine_evict(c->eng);
    r->set = set;
    r->created = created;
    r->esize = esize;
    r->src_shift = d->kind == CALL_ALLGATHER ? chunk_off(set, c->rank) : 0;
    r->dst_shift = d->kind == CALL_REDUCESCATTER ? chunk_off(set, c->rank) : 0;
    c->exact_calls += (uint64_t)exact;
    ngl_engine_stats *es = ngl_engine_stats_of(c->eng);
    es->calls_exact += (uint64_t)exact;
    es->calls_compressed += (uint64_t)!exact;
    es->calls_transient += (uint64_t)(!exact && set->k == NGL_IDENT_TRANSIENT);
    return 0;
}

static ngl_coll_req *req_free(ngl_coll_comm *c)
{
    for (int i = 0; i < NGL_COLL_NREQ; i++) {
        if (c->reqs[i].state == R_FREE) {
            return &c->reqs[i];
        }
    }
    return NULL;
}

/* Give @p r the next seq and queue it. Lock held. */
static void fifo_append(ngl_coll_comm *c, ngl_coll_req *r)
{
    r->seq = c->next_seq++;
    r->state = R_QUEUED;
    r->next = NULL;
    if (c->fifo_tail != NULL) {
        c->fifo_tail->next = r;
    } else {
        c->fifo_head = r;
    }
    c->fifo_tail = r;
}

/* An internal call's token: op class NGL_REDOP_COUNT is no NCCL op, so no
 * call NCCL makes has it. */
#define AGREE_KIND 0x6175746f61677265ull /* "autoagre" */

/*
 * NANGILA_MODE=auto asked the ranks to agree on a size class: queue an
 * exact allgather of every rank's estimates (AGREE_BYTES each, from the
 * comm's own buffer) as the next call in seq order, at the same call on
 * every rank (the post that follows the planning one). It takes its set
 * straight from the engine with a fixed token, outside stream identity:
 * the call history, and so every key, stays what NCCL's calls make it.
 * Lock held. @return 0 (queued, or no free request yet) or -errno.
 */
static int agree_post(ngl_coll_comm *c)
{
    ngl_coll_req *r = req_free(c);
    if (r == NULL) {
        return 0; /* NCCL holds every request: it calls again */
    }
    const int n = c->nranks;
    const uint64_t count = (uint64_t)n * AGREE_BYTES;
    for (int j = 0; j <= n; j++) {
        c->win_lo[j] = (uint64_t)j * AGREE_BYTES;
    }
    const ngl_engine_shape shape = {
        .count = count,
        .dtype = NGL_DTYPE_F32, /* ignored: the variant says bytes */
        .exact = 1,
        .variant = ngl_exact_variant(NGL_ELEM_U8, NGL_REDOP_SUM),
        .ops = &ngl_cc_exact_ops,
        .chunk_lo = c->win_lo,
    };
    const uint64_t token = ngl_engine_token(count, NGL_REDOP_COUNT, AGREE_KIND);
    ngl_engine_set *set = NULL;
    int created = 0;
    ngl_status st = ngl_engine_set_get(c->eng, token, 0, &shape, &set, &created);
    if (st != NGL_OK) {
        return cc_rc(st);
    }
    memset(r, 0, sizeof *r);
    r->comm = c;
    r->internal = 1;
    r->kind = CALL_ALLGATHER;
    r->send = c->agree_buf;
    r->recv = c->agree_buf + AGREE_BYTES;
    r->count = count;
    r->esize = 1;
    r->set = set;
    r->src_shift = chunk_off(set, c->rank);
    fifo_append(c, r);
    c->agree = AGREE_POSTED;
    return 0;
}

/* Queue one call (any kind). Lock taken here. */
static int post(ngl_coll_comm *c, const call_desc *d, ngl_coll_req **req)
{
    *req = NULL;
    pthread_mutex_lock(&c->lock);
    int saved = -1;
    int rc = c->err;
    if (rc != 0 || (rc = comm_enter(c, &saved)) != 0) {
        goto out;
    }
    if (c->agree != AGREE_NONE) {
        /* No plan before the agreement is applied (on every rank at this
         * point of the sequence): back-pressure, and keep the calls in
         * flight moving, the allgather among them. */
        if (c->agree == AGREE_WANTED && (rc = agree_post(c)) != 0) {
            fail(c, rc, "auto agreement");
            goto out;
        }
        progress(c);
        rc = c->err;
        if (rc != 0 || c->agree != AGREE_NONE) {
            goto out;
        }
    }
    ngl_coll_req *r = req_free(c);
    if (r == NULL) {
        goto out; /* back-pressure: NCCL calls again */
    }
    r->send = d->send;
    r->recv = d->recv;
    r->count = d->count;
    r->kind = d->kind;
    r->src_shift = r->dst_shift = 0;
    r->next = NULL;
    r->plan = (ngl_auto_plan){.mode = NGL_MODE_OFF};
    r->created = 0;
    r->internal = 0;
    r->codec_ns = 0;
    c->calls++;
    c->dev_calls += (uint64_t)(d->mem != 0);
    if (d->count == 0) {
        r->state = R_DONE; /* nothing to reduce; no rank sends anything */
        r->set = NULL;
        r->esize = 0;
        *req = r;
        goto out;
    }
    rc = call_identify(c, r, d);
    if (rc != 0) {
        fail(c, rc, "stream set");
        goto out;
    }
    if (r->plan.agree) {
        c->agree = AGREE_WANTED;
        c->agree_cls = r->plan.cls;
    }
    fifo_append(c, r);
    *req = r;
    progress(c);
out:
    ngl_plugin_dev_leave(saved);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static int mem_of(const void *send_mh, const void *recv_mh)
{
    return (mr_type(send_mh) == NGL_NCCL_PTR_CUDA ? MEM_SDEV : 0) |
           (mr_type(recv_mh) == NGL_NCCL_PTR_CUDA ? MEM_RDEV : 0);
}

int ngl_coll_iallreduce(ngl_coll_comm *c, void *send, void *recv, int64_t count, int nccl_dtype,
                        int nccl_op, void *send_mh, void *recv_mh, ngl_coll_req **req)
{
    *req = NULL;
    if (!ngl_coll_reduce_supported(nccl_dtype, nccl_op) || count < 0 ||
        (uint64_t)count > NGL_COUNT_MAX || (count > 0 && (send == NULL || recv == NULL))) {
        NGL_PWARN("collNet iallreduce: unsupported call (dtype %d, op %d, count %lld)", nccl_dtype,
                  nccl_op, (long long)count);
        return -EINVAL;
    }
    const call_desc d = {.kind = CALL_ALLREDUCE,
                         .send = send,
                         .recv = recv,
                         .count = (uint64_t)count,
                         .nccl_dtype = nccl_dtype,
                         .nccl_op = nccl_op,
                         .mem = mem_of(send_mh, recv_mh)};
    return post(c, &d, req);
}

/* Checks shared by the window calls; @return 0 or -EINVAL (logged). */
static int window_check(const char *what, int nranks, size_t esize, size_t per_rank, size_t win,
                        size_t bytes, const void *send, const void *recv)
{
    if (esize == 0 || per_rank % esize != 0 || win % esize != 0 || bytes % esize != 0 ||
        per_rank > SIZE_MAX / (size_t)nranks || win > per_rank * (size_t)nranks ||
        bytes > per_rank * (size_t)nranks - win || bytes / esize > NGL_COUNT_MAX ||
        (bytes > 0 && (send == NULL || recv == NULL))) {
        NGL_PWARN("collNet %s: unsupported window (%zu bytes per rank, offset %zu, %zu bytes)",
                  what, per_rank, win, bytes);
        return -EINVAL;
    }
    return 0;
}

int ngl_coll_ireducescatter(ngl_coll_comm *c, void *send, void *recv, size_t per_rank_bytes,
                            size_t win_offset, size_t win_bytes, int nccl_dtype, int nccl_op,
                            void *send_mh, void *recv_mh, ngl_coll_req **req)
{
    *req = NULL;
    const size_t esize =
        ngl_coll_reduce_supported(nccl_dtype, nccl_op) ? ngl_elem_size((ngl_elem)nccl_dtype) : 0;
    const int mem = mem_of(send_mh, recv_mh);
    int rc = window_check("reduce-scatter", c->nranks, esize, per_rank_bytes, win_offset, win_bytes,
                          send, recv);
    if (rc != 0) {
        return rc;
    }
    const call_desc d = {.kind = CALL_REDUCESCATTER,
                         .send = send,
                         .recv = recv,
                         .count = win_bytes / esize,
                         .nccl_dtype = nccl_dtype,
                         .nccl_op = nccl_op,
                         .per_rank = per_rank_bytes / esize,
                         .win = win_offset / esize,
                         .mem = mem};
    return post(c, &d, req);
}

int ngl_coll_iallgather(ngl_coll_comm *c, void *send, void *recv, size_t per_rank_bytes,
                        size_t win_offset, size_t win_bytes, void *send_mh, void *recv_mh,
                        ngl_coll_req **req)
{
    *req = NULL;
    const int mem = mem_of(send_mh, recv_mh);
    int rc =
        window_check("allgather", c->nranks, 1, per_rank_bytes, win_offset, win_bytes, send, recv);
    if (rc != 0) {
        return rc;
    }
    const call_desc d = {.kind = CALL_ALLGATHER,
                         .send = send,
                         .recv = recv,
                         .count = win_bytes,
                         .nccl_dtype = NGL_ELEM_U8,
                         .nccl_op = NGL_REDOP_SUM,
                         .per_rank = per_rank_bytes,
                         .win = win_offset,
                         .mem = mem};
    return post(c, &d, req);
}

int ngl_coll_iflush(ngl_coll_comm *c, void *data, size_t size, void *mhandle, ngl_coll_req **req)
{
    *req = NULL;
    if (mr_type(mhandle) != NGL_NCCL_PTR_CUDA) {
        return 0; /* the CPU wrote host memory: nothing to flush */
    }
    /* Our GPU writes to device memory are ordered on our stream, and a call
     * completes only after cudaEventQuery saw its last write done, which
     * makes the writes visible to any later work on the device. So the
     * range is flushed once no call that writes into it is left; NCCL
     * flushes after test() said done, when none is. */
    const uint8_t *lo = data, *hi = (const uint8_t *)data + size;
    pthread_mutex_lock(&c->lock);
    int rc = c->err;
    uint64_t last = 0;
    int found = 0;
    for (const ngl_coll_req *r = c->fifo_head; r != NULL && rc == 0; r = r->next) {
        const size_t bytes = io_bytes(r, 1);
        if (r->recv < hi && r->recv + bytes > lo) {
            last = r->seq;
            found = 1;
        }
    }
    if (rc == 0 && found) {
        ngl_coll_req *f = req_free(c);
        if (f != NULL) {
            f->state = R_FLUSH;
            f->seq = last;
            f->set = NULL;
            f->esize = 0;
            f->next = NULL;
            *req = f;
        } else {
            rc = -EBUSY; /* 64 requests in flight already: NCCL never does this */
        }
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* 1 when no call up to @p seq is queued or active. Lock held. */
static int flushed(const ngl_coll_comm *c, uint64_t seq)
{
    for (const ngl_coll_req *r = c->fifo_head; r != NULL; r = r->next) {
        if (r->seq <= seq) {
            return 0;
        }
    }
    return 1;
}

int ngl_coll_test(ngl_coll_req *r, int *done, size_t *bytes)
{
    ngl_coll_comm *c = r->comm;
    *done = 0;
    pthread_mutex_lock(&c->lock);
    int saved = -1;
    int rc = 0;
    if (r->state == R_FREE) {
        rc = -EINVAL;
    } else if (comm_enter(c, &saved) == 0) {
        progress(c);
        if (r->state == R_DONE || (r->state == R_FLUSH && c->err == 0 && flushed(c, r->seq))) {
            *done = 1;
            if (bytes != NULL) {
                *bytes = r->count * r->esize;
            }
            r->state = R_FREE;
        } else {
            rc = c->err;
        }
    } else {
        rc = c->err;
    }
    ngl_plugin_dev_leave(saved);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* ---- teardown -------------------------------------------------------------- */

static void comm_free(ngl_coll_comm *c)
{
    int saved = -1;
    if (c->queue != NULL) {
        (void)ngl_plugin_dev_enter(c->cuda_dev, &saved);
    }
    /* Streams first: destroying one waits for its device work. */
    ngl_engine_destroy(c->eng);
    for (int s = 0; s < NGL_COLL_NSLOTS; s++) {
        slot_t *sl = &c->slots[s];
        if (sl->mh != NULL) {
            slot_release_arena(c, sl, 1);
        }
        free(sl->mh);
        free(sl->flags);
        free(sl->rs_sbuf);
        free(sl->rs_rbuf);
        free(sl->ag_rbuf);
        free(sl->rs_slen);
        free(sl->rs_rlen);
        free(sl->ag_rlen);
        free(sl->rs_sreq);
        free(sl->rs_rreq);
        free(sl->ag_sreq);
        free(sl->ag_rreq);
    }
    while (c->retired != NULL) {
        retired_arena *ra = c->retired;
        c->retired = ra->next;
        c->gpu->host_free(ra->mem);
        free(ra);
    }
    if (c->gpu != NULL) {
        for (int s = 0; s < NGL_COLL_NSLOTS; s++) {
            if (c->fence[s] != NULL) {
                c->gpu->event_destroy(c->fence[s]);
            }
        }
        if (c->queue != NULL) {
            c->gpu->queue_destroy(c->queue);
        }
    }
    ngl_plugin_dev_leave(saved);
    for (int m = 0; m < NMESH; m++) {
        for (int p = 0; p < c->nranks; p++) {
            if (c->send[m] != NULL && c->send[m][p] != NULL) {
                (void)c->net->closeSend(c->send[m][p]);
            }
            if (c->recv[m] != NULL && c->recv[m][p] != NULL) {
                (void)c->net->closeRecv(c->recv[m][p]);
            }
        }
        free(c->send[m]);
        free(c->recv[m]);
    }
    free(c->rs_send_next);
    free(c->rs_recv_next);
    free(c->ag_send_next);
    free(c->ag_recv_next);
    free(c->rs_dec_next);
    free(c->ag_dec_next);
    free(c->zmask);
    free(c->win_lo);
    free(c->agree_buf);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void ngl_coll_close(ngl_coll_comm *c)
{
    if (c == NULL) {
        return;
    }
    NGL_PINFO(NGL_NCCL_SUBSYS_NET | NGL_NCCL_SUBSYS_COLL,
              "collNet rank %d/%d closed: %llu calls (%llu exact, %llu on GPU memory), %llu B in, "
              "%llu B of frames sent (ratio %.2f)",
              c->rank, c->nranks, (unsigned long long)c->calls, (unsigned long long)c->exact_calls,
              (unsigned long long)c->dev_calls, (unsigned long long)c->raw_bytes,
              (unsigned long long)c->wire_bytes,
              c->wire_bytes ? (double)c->raw_bytes / (double)c->wire_bytes : 0.0);
    char line[256];
    ngl_engine_describe(c->eng, line, sizeof line);
    NGL_PINFO(NGL_NCCL_SUBSYS_NET | NGL_NCCL_SUBSYS_COLL, "collNet rank %d/%d %s", c->rank,
              c->nranks, line);
    /* NANGILA_MODE=auto: what each slice size ran and why; the numbers were
     * agreed, so every rank logs the same lines. */
    const ngl_auto *am = ngl_engine_auto(c->eng);
    char lines[4096];
    if (ngl_auto_enabled(am) && ngl_auto_describe(am, "", lines, sizeof lines) > 0) {
        NGL_PINFO(NGL_NCCL_SUBSYS_NET | NGL_NCCL_SUBSYS_COLL,
                  "collNet rank %d/%d NANGILA_MODE=auto, per slice size (times: median over "
                  "calls of the slowest rank), %llu agreements:",
                  c->rank, c->nranks, (unsigned long long)c->agreements);
        for (char *save = NULL, *l = strtok_r(lines, "\n", &save); l != NULL;
             l = strtok_r(NULL, "\n", &save)) {
            NGL_PINFO(NGL_NCCL_SUBSYS_NET | NGL_NCCL_SUBSYS_COLL, "collNet rank %d/%d %s", c->rank,
                      c->nranks, l);
        }
    }
    /* Every call has completed (NCCL closes an idle collComm), so the
     * streams are idle: their state digests let a test check that every
     * decoder mirrors its encoder and that all ranks hold the same state. */
    uint64_t pairs = 0, shared = 0;
    if (c->err == 0 && ngl_engine_state_digest(c->eng, &pairs, &shared)) {
        NGL_PINFO(NGL_NCCL_SUBSYS_NET | NGL_NCCL_SUBSYS_COLL,
                  "collNet rank %d/%d state digests: pairs %016llx shared %016llx", c->rank,
                  c->nranks, (unsigned long long)pairs, (unsigned long long)shared);
    }
    comm_free(c);
}
