/* SPDX-License-Identifier: Apache-2.0 */
/*
 * collnet.c -- compressed allreduce among node leaders. Protocol and stream
 * identity are described in ngl_coll.h and nccl-net-plugin/README.md.
 *
 * Ordering rules that keep every rank in step without extra messages:
 *   - calls are activated in posting order (seq), NGL_COLL_NSLOTS at a time;
 *   - on every transport comm, messages are posted in seq order (per-peer
 *     counters *_next below), and a call that has nothing for a peer still
 *     takes its turn, so both ends skip the same calls;
 *   - every stream (encoder or decoder) is used in seq order, so frame steps
 *     match on both ends.
 */
#include "ngl_coll.h"

#include "ngl_coll_codec.h"
#include "ngl_plugin.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HELLO_MAGIC 0x434c474eu /* "NGLC" */
#define HELLO_SIZE  24
#define MAX_CLASSES 256
#define FRAME_ALIGN 64

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
    F_ALL = (1 << 10) - 1
};

typedef struct {
    ngl_cc_stream **rs_enc; /* [N] my chunk-j input -> owner j */
    ngl_cc_stream **rs_dec; /* [N] sender i -> my chunk */
    ngl_cc_stream *ag_enc;  /* my chunk's sum -> everyone */
    ngl_cc_stream **ag_dec; /* [N] owner j's sum, mine included */
} lane_t;

typedef struct {
    ngl_dtype dtype;
    size_t esize;
    uint64_t count;
    int exact;        /* RAW frames: small slice or NANGILA_MODE=off */
    uint64_t ordinal; /* calls of this class posted so far */
    uint32_t nlanes;
    lane_t **lanes;    /* [nlanes], created on first use */
    uint64_t chunk;    /* elements per chunk */
    size_t *bound;     /* [N] frame bound for chunk j */
    size_t arena_need; /* bytes of frame buffers one call needs */
} class_t;

enum { R_FREE = 0, R_QUEUED, R_ACTIVE, R_DONE };

struct ngl_coll_req {
    ngl_coll_comm *comm;
    int state;
    uint64_t seq;
    const uint8_t *send;
    uint8_t *recv;
    uint64_t count;
    class_t *cls;
    uint32_t lane;
    int slot;
    ngl_coll_req *next; /* FIFO of queued/active requests, in seq order */
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
    int copied;     /* own chunk copied into recv */
    int ag_encoded; /* own sum encoded (and decoded into recv) */
} slot_t;

struct ngl_coll_listen {
    int dev;
    void *tl; /* transport listen comm */
};

struct ngl_coll_comm {
    pthread_mutex_t lock;
    const ngl_nccl_net_v8_t *net;
    const ngl_cc_ops *cc;
    ngl_settings set;
    int nranks, rank, dev;
    uint64_t hash; /* same on every rank: derived from all handles */
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
    class_t *classes[MAX_CLASSES];
    int nclasses;
    /* statistics */
    uint64_t calls, exact_calls, raw_bytes, wire_bytes;
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

int ngl_coll_reduce_supported(int nccl_dtype, int nccl_op)
{
    ngl_dtype dt;
    return nccl_op == NGL_NCCL_SUM && dtype_of(nccl_dtype, &dt);
}

uint64_t ngl_coll_chunk_len(uint64_t count, int nranks, uint32_t block)
{
    uint64_t per = (count + (uint64_t)nranks - 1) / (uint64_t)nranks;
    return (per + block - 1) / block * block;
}

static uint64_t chunk_off(const class_t *k, int j)
{
    uint64_t o = k->chunk * (uint64_t)j;
    return o < k->count ? o : k->count;
}

static uint64_t chunk_len(const class_t *k, int j)
{
    uint64_t o = chunk_off(k, j), e = o + k->chunk;
    return (e < k->count ? e : k->count) - o;
}

static size_t align_up(size_t x)
{
    return (x + FRAME_ALIGN - 1) / FRAME_ALIGN * FRAME_ALIGN;
}

static void fail(ngl_coll_comm *c, int rc, const char *what)
{
    if (c->err == 0) {
        c->err = rc;
        NGL_PWARN("collNet rank %d/%d: %s failed (%s); the communicator cannot continue", c->rank,
                  c->nranks, what, strerror(-rc));
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

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
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
                uint32_t mesh = rd32(h + 4), from = rd32(h + 8);
                uint64_t hash = (uint64_t)rd32(h + 16) | ((uint64_t)rd32(h + 20) << 32);
                if (size != HELLO_SIZE || rd32(h) != HELLO_MAGIC || mesh >= NMESH ||
                    from >= (uint32_t)n || (int)from == c->rank || rd32(h + 12) != (uint32_t)n ||
                    hash != c->hash || c->recv[mesh][from] != NULL) {
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
    c->cc = &ngl_cc_host_ops;
    c->set = *ngl_plugin_settings();
    c->nranks = nranks;
    c->rank = rank;
    c->dev = l->dev;
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
            h = ngl_plugin_mix64(h ^ w);
        }
    }
    c->hash = h;
    int rc = comm_alloc_arrays(c);
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
            wr32(cs.hello_out[i], HELLO_MAGIC);
            wr32(cs.hello_out[i] + 4, (uint32_t)m);
            wr32(cs.hello_out[i] + 8, (uint32_t)rank);
            wr32(cs.hello_out[i] + 12, (uint32_t)nranks);
            wr32(cs.hello_out[i] + 16, (uint32_t)c->hash);
            wr32(cs.hello_out[i] + 20, (uint32_t)(c->hash >> 32));
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
    NGL_PINFO(NGL_NCCL_SUBSYS_INIT | NGL_NCCL_SUBSYS_COLL,
              "collNet rank %d/%d connected over %s: mode %s, block %u, period %u, min %llu B",
              rank, nranks, c->net->name,
              c->set.mode == NGL_MODE_OFF    ? "off"
              : c->set.mode == NGL_MODE_INT4 ? "int4"
                                             : "int8",
              c->set.block_size, c->set.collnet_period, (unsigned long long)c->set.min_bytes);
    *out = c;
    return 0;

fail_cs:
    connect_state_free(&cs);
fail_comm:
    comm_free(c);
    return rc;
}

/* ---- memory registration (NCCL's staging region) ------------------------ */

typedef struct {
    void *base;
    size_t size;
} coll_mr;

int ngl_coll_regmr(ngl_coll_comm *c, void *data, size_t size, int type, void **mhandle)
{
    (void)c;
    *mhandle = NULL;
    if (type != NGL_NCCL_PTR_HOST) {
        NGL_PWARN("collNet regMr: memory type %d; this build reads host memory only", type);
        return -EINVAL;
    }
    coll_mr *mr = malloc(sizeof *mr);
    if (mr == NULL) {
        return -ENOMEM;
    }
    mr->base = data;
    mr->size = size;
    *mhandle = mr;
    return 0;
}

int ngl_coll_deregmr(ngl_coll_comm *c, void *mhandle)
{
    (void)c;
    free(mhandle);
    return 0;
}

/* ---- classes and lanes --------------------------------------------------- */

static void lane_free(const ngl_coll_comm *c, lane_t *ln)
{
    if (ln == NULL) {
        return;
    }
    for (int j = 0; j < c->nranks; j++) {
        if (ln->rs_enc) {
            c->cc->destroy(ln->rs_enc[j]);
        }
        if (ln->rs_dec) {
            c->cc->destroy(ln->rs_dec[j]);
        }
        if (ln->ag_dec) {
            c->cc->destroy(ln->ag_dec[j]);
        }
    }
    c->cc->destroy(ln->ag_enc);
    free(ln->rs_enc);
    free(ln->rs_dec);
    free(ln->ag_dec);
    free(ln);
}

static void class_free(const ngl_coll_comm *c, class_t *k)
{
    if (k == NULL) {
        return;
    }
    if (k->lanes != NULL) {
        for (uint32_t i = 0; i < k->nlanes; i++) {
            lane_free(c, k->lanes[i]);
        }
    }
    free(k->lanes);
    free(k->bound);
    free(k);
}

enum { SID_RS = 1, SID_AG = 2 };

/* Stream id: a function of values every rank shares (collComm hash, class,
 * lane, direction), so sender and receiver configure the same stream. */
static uint64_t stream_id(const ngl_coll_comm *c, const class_t *k, uint32_t lane, int kind,
                          int from, int to)
{
    uint64_t h = c->hash;
    h = ngl_plugin_mix64(
        h ^ ((uint64_t)kind << 56 | (uint64_t)k->dtype << 48 | (uint64_t)k->exact << 40));
    h = ngl_plugin_mix64(h ^ k->count);
    h = ngl_plugin_mix64(h ^ lane);
    h = ngl_plugin_mix64(h ^ ((uint64_t)(uint32_t)from << 32 | (uint32_t)to));
    return h;
}

static void stream_config(const ngl_coll_comm *c, const class_t *k, uint64_t count,
                          ngl_stream_config *cfg)
{
    ngl_stream_config_init(cfg);
    const int stateful = !k->exact && c->set.collnet_period > 0;
    cfg->codec =
        k->exact ? NGL_CODEC_RAW : (c->set.mode == NGL_MODE_INT4 ? NGL_CODEC_INT4 : NGL_CODEC_INT8);
    cfg->dtype = k->dtype;
    /* Without a period there is no slice identity to carry state across
     * steps: error feedback and prediction would mix unrelated slices. */
    cfg->predictor = stateful ? c->set.predictor : NGL_PRED_NONE;
    cfg->error_feedback = stateful ? c->set.error_feedback : 0;
    cfg->topk_fraction = k->exact ? 0.0 : c->set.topk;
    cfg->block_size = c->set.block_size;
    cfg->seed = c->set.seed;
    cfg->count = count;
}

static class_t *class_get(ngl_coll_comm *c, ngl_dtype dt, uint64_t count, int *rc)
{
    for (int i = 0; i < c->nclasses; i++) {
        if (c->classes[i]->dtype == dt && c->classes[i]->count == count) {
            return c->classes[i];
        }
    }
    if (c->nclasses == MAX_CLASSES) {
        NGL_PWARN("collNet: more than %d distinct slice sizes", MAX_CLASSES);
        *rc = -ENOSPC;
        return NULL;
    }
    class_t *k = calloc(1, sizeof *k);
    if (k == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    k->dtype = dt;
    k->esize = ngl_dtype_size(dt);
    k->count = count;
    k->exact = c->set.mode == NGL_MODE_OFF || count * k->esize < c->set.min_bytes;
    k->nlanes = (!k->exact && c->set.collnet_period > 0) ? c->set.collnet_period : 1;
    k->chunk = ngl_coll_chunk_len(count, c->nranks, c->set.block_size);
    k->lanes = calloc(k->nlanes, sizeof(lane_t *));
    k->bound = calloc((size_t)c->nranks, sizeof(size_t));
    if (k->lanes == NULL || k->bound == NULL) {
        class_free(c, k);
        *rc = -ENOMEM;
        return NULL;
    }
    size_t need = 0;
    for (int j = 0; j < c->nranks; j++) {
        ngl_stream_config cfg;
        stream_config(c, k, chunk_len(k, j), &cfg);
        k->bound[j] = align_up(ngl_encode_bound(&cfg));
        if (k->bound[j] == 0) {
            class_free(c, k);
            *rc = -EINVAL;
            return NULL;
        }
    }
    /* rs send to each peer, rs recv from each peer (my chunk), ag send (my
     * chunk), ag recv from each peer (their chunk). */
    for (int j = 0; j < c->nranks; j++) {
        if (j != c->rank) {
            need += k->bound[j] + k->bound[c->rank] + k->bound[j];
        }
    }
    need += k->bound[c->rank];
    k->arena_need = need;
    c->classes[c->nclasses++] = k;
    return k;
}

static int lane_make(ngl_coll_comm *c, class_t *k, uint32_t li, lane_t **out)
{
    const int n = c->nranks, me = c->rank;
    lane_t *ln = calloc(1, sizeof *ln);
    if (ln == NULL) {
        return -ENOMEM;
    }
    ln->rs_enc = calloc((size_t)n, sizeof(ngl_cc_stream *));
    ln->rs_dec = calloc((size_t)n, sizeof(ngl_cc_stream *));
    ln->ag_dec = calloc((size_t)n, sizeof(ngl_cc_stream *));
    if (ln->rs_enc == NULL || ln->rs_dec == NULL || ln->ag_dec == NULL) {
        lane_free(c, ln);
        return -ENOMEM;
    }
    ngl_status st = NGL_OK;
    ngl_stream_config cfg;
    const uint64_t mine = chunk_len(k, me);
    for (int j = 0; j < n && st == NGL_OK; j++) {
        const uint64_t len = chunk_len(k, j);
        if (j != me && len > 0) {
            stream_config(c, k, len, &cfg);
            cfg.stream_id = stream_id(c, k, li, SID_RS, me, j);
            st = c->cc->create(&cfg, 1, &ln->rs_enc[j]);
        }
        if (st == NGL_OK && j != me && mine > 0) {
            stream_config(c, k, mine, &cfg);
            cfg.stream_id = stream_id(c, k, li, SID_RS, j, me);
            st = c->cc->create(&cfg, 0, &ln->rs_dec[j]);
        }
        if (st == NGL_OK && len > 0) {
            stream_config(c, k, len, &cfg);
            cfg.stream_id = stream_id(c, k, li, SID_AG, j, -1);
            st = c->cc->create(&cfg, 0, &ln->ag_dec[j]);
        }
    }
    if (st == NGL_OK && mine > 0) {
        stream_config(c, k, mine, &cfg);
        cfg.stream_id = stream_id(c, k, li, SID_AG, me, -1);
        st = c->cc->create(&cfg, 1, &ln->ag_enc);
    }
    if (st != NGL_OK) {
        NGL_PWARN("collNet: cannot create streams for %llu elements: %s",
                  (unsigned long long)k->count, ngl_status_str(st));
        lane_free(c, ln);
        return st == NGL_ERR_NO_MEMORY ? -ENOMEM : -EINVAL;
    }
    *out = ln;
    return 0;
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

static void slot_release_arena(ngl_coll_comm *c, slot_t *sl)
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
    free(sl->arena);
    sl->arena = NULL;
    sl->cap = 0;
}

/* Grow the slot's arena to @p need bytes and register it with every
 * transport comm (an inner RDMA plugin needs that). Warm-up only: a class
 * needs the same size every time. */
static int slot_reserve(ngl_coll_comm *c, slot_t *sl, size_t need)
{
    if (sl->cap >= need) {
        return 0;
    }
    slot_release_arena(c, sl);
    void *mem = NULL;
    if (posix_memalign(&mem, 4096, need) != 0) {
        return -ENOMEM;
    }
    sl->arena = mem;
    sl->cap = need;
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

/* ---- the call state machine -------------------------------------------- */

static int activate(ngl_coll_comm *c, ngl_coll_req *r, slot_t *sl)
{
    class_t *k = r->cls;
    const int n = c->nranks, me = c->rank;
    int rc = 0;
    if (k->lanes[r->lane] == NULL) {
        rc = lane_make(c, k, r->lane, &k->lanes[r->lane]);
        if (rc != 0) {
            return rc;
        }
    }
    rc = slot_reserve(c, sl, k->arena_need);
    if (rc != 0) {
        return rc;
    }
    lane_t *ln = k->lanes[r->lane];
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
        p += k->bound[j];
        sl->rs_rbuf[j] = p;
        p += k->bound[me];
        sl->ag_rbuf[j] = p;
        p += k->bound[j];
        /* Transfers that do not happen are marked done here; the turns
         * they stand for are still taken in order (post_turn, step). */
        if (chunk_len(k, j) == 0) {
            sl->flags[j] |= F_RS_SDONE | F_AG_RDONE; /* owner j has nothing */
        }
        if (mine == 0) {
            sl->flags[j] |= F_RS_RDONE | F_AG_SDONE; /* I own nothing */
        }
    }
    sl->ag_sbuf = p;
    sl->copied = mine == 0;
    sl->ag_encoded = 0;
    /* Reduce-scatter frames, coded now: the input is complete at post time. */
    for (int j = 0; j < n; j++) {
        if (j == me || chunk_len(k, j) == 0) {
            continue;
        }
        ngl_status st = c->cc->encode(ln->rs_enc[j], r->send + chunk_off(k, j) * k->esize,
                                      sl->rs_sbuf[j], k->bound[j], &sl->rs_slen[j]);
        if (st != NGL_OK) {
            NGL_PWARN("collNet: encode failed: %s", ngl_status_str(st));
            return -EINVAL;
        }
        c->raw_bytes += chunk_len(k, j) * k->esize;
        c->wire_bytes += sl->rs_slen[j];
    }
    sl->req = r;
    r->state = R_ACTIVE;
    return 0;
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
    const class_t *k = r->cls;
    const int n = c->nranks;
    void *req = NULL;
    ngl_nccl_result_t res;
    if (is_send) {
        if (mesh == MESH_AG && !sl->ag_encoded) {
            return 0;
        }
        void *buf = mesh == MESH_RS ? sl->rs_sbuf[peer] : sl->ag_sbuf;
        size_t len = mesh == MESH_RS ? sl->rs_slen[peer] : sl->ag_slen;
        int kind = mesh == MESH_RS ? K_RS_SEND : K_AG_SEND;
        res = c->net->isend(c->send[mesh][peer], buf, (int)len, 0, sl->mh[kind * n + peer], &req);
    } else {
        void *buf = mesh == MESH_RS ? sl->rs_rbuf[peer] : sl->ag_rbuf[peer];
        int cap = (int)(mesh == MESH_RS ? k->bound[c->rank] : k->bound[peer]);
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

static int decode_frame(ngl_coll_comm *c, ngl_cc_stream *s, const uint8_t *frame, size_t len,
                        void *dst, int accumulate, int from)
{
    ngl_status st = c->cc->decode(s, frame, len, dst, accumulate);
    if (st != NGL_OK) {
        NGL_PWARN("collNet rank %d: frame from rank %d rejected: %s", c->rank, from,
                  ngl_status_str(st));
        return -EPROTO;
    }
    return 0;
}

/* Advance one active call as far as it goes. @return 1 when finished. */
static int step(ngl_coll_comm *c, ngl_coll_req *r, slot_t *sl)
{
    const int n = c->nranks, me = c->rank;
    class_t *k = r->cls;
    lane_t *ln = k->lanes[r->lane];
    const uint64_t mine = chunk_len(k, me);
    uint8_t *my_out = r->recv + chunk_off(k, me) * k->esize;
    int rc = 0;

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
    if (rc != 0) {
        return rc;
    }
    /* Reduce: own exact chunk first, then peers in rank order, so the sum
     * is the same from run to run. */
    if (!sl->copied) {
        c->cc->copy(my_out, r->send + chunk_off(k, me) * k->esize, mine * k->esize);
        sl->copied = 1;
    }
    int reduced = 1;
    for (int i = 0; i < n; i++) {
        if (i == me || (sl->flags[i] & F_RS_DECODED)) {
            continue;
        }
        if (c->rs_dec_next[i] != r->seq || (mine > 0 && !(sl->flags[i] & F_RS_RDONE))) {
            reduced = 0;
            break;
        }
        if (mine > 0) {
            rc = decode_frame(c, ln->rs_dec[i], sl->rs_rbuf[i], sl->rs_rlen[i], my_out, 1, i);
            if (rc != 0) {
                return rc;
            }
        }
        sl->flags[i] |= F_RS_DECODED;
        c->rs_dec_next[i]++;
    }
    /* Allgather: code the sum once; the owner decodes its own frame like
     * everyone else, so all ranks hold the same bits. Every stream takes its
     * turn in seq order even when this call has nothing for it. */
    if (reduced && !sl->ag_encoded && c->ag_enc_next == r->seq) {
        if (mine > 0) {
            ngl_status st =
                c->cc->encode(ln->ag_enc, my_out, sl->ag_sbuf, k->bound[me], &sl->ag_slen);
            if (st != NGL_OK) {
                NGL_PWARN("collNet: encode failed: %s", ngl_status_str(st));
                return -EINVAL;
            }
            c->raw_bytes += mine * k->esize * (uint64_t)(n - 1);
            c->wire_bytes += sl->ag_slen * (uint64_t)(n - 1);
        }
        sl->ag_encoded = 1;
        c->ag_enc_next++;
    }
    if (sl->ag_encoded && !(sl->flags[me] & F_AG_DECODED) && c->ag_dec_next[me] == r->seq) {
        if (mine > 0) {
            rc = decode_frame(c, ln->ag_dec[me], sl->ag_sbuf, sl->ag_slen, my_out, 0, me);
            if (rc != 0) {
                return rc;
            }
        }
        sl->flags[me] |= F_AG_DECODED;
        c->ag_dec_next[me]++;
    }
    for (int p = 0; p < n && rc == 0; p++) {
        if (p == me) {
            continue;
        }
        rc = post_turn(c, r, sl, p, 1, MESH_AG);
        if (rc == 0) {
            rc = test_one(c, &sl->ag_sreq[p], &sl->flags[p], F_AG_SDONE, NULL);
        }
        if (rc == 0 && (sl->flags[p] & F_AG_RDONE) && !(sl->flags[p] & F_AG_DECODED) &&
            c->ag_dec_next[p] == r->seq) {
            if (chunk_len(k, p) > 0) {
                rc = decode_frame(c, ln->ag_dec[p], sl->ag_rbuf[p], sl->ag_rlen[p],
                                  r->recv + chunk_off(k, p) * k->esize, 0, p);
            }
            if (rc == 0) {
                sl->flags[p] |= F_AG_DECODED;
                c->ag_dec_next[p]++;
            }
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
    return 1;
}

static void finish(ngl_coll_comm *c, ngl_coll_req *r, slot_t *sl)
{
    const class_t *k = r->cls;
    /* NCCL's last slice of an operation carries stale bytes past the data
     * the GPU wrote. Zeroing the slot after use means the stale part of
     * the next slice in this slot is zeros, not old values that could blow
     * up a block scale next to valid data. NCCL never reads a send slot
     * after the call completes. */
    c->cc->zero((void *)(uintptr_t)r->send, r->count * k->esize);
    sl->req = NULL;
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
    /* Calls finish in seq order: a call can only finish after the ones
     * before it have taken every per-peer turn, so activation in order and
     * completion in order go together. */
    for (ngl_coll_req *r = c->fifo_head; r != NULL;) {
        ngl_coll_req *next = r->next;
        if (r->state == R_QUEUED) {
            slot_t *sl = NULL;
            for (int s = 0; s < NGL_COLL_NSLOTS && sl == NULL; s++) {
                if (c->slots[s].req == NULL) {
                    sl = &c->slots[s];
                    r->slot = s;
                }
            }
            if (sl == NULL) {
                break;
            }
            int rc = activate(c, r, sl);
            if (rc != 0) {
                fail(c, rc, "activating an allreduce");
                return;
            }
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

int ngl_coll_iallreduce(ngl_coll_comm *c, void *send, void *recv, int64_t count, int nccl_dtype,
                        int nccl_op, ngl_coll_req **req)
{
    *req = NULL;
    ngl_dtype dt;
    if (nccl_op != NGL_NCCL_SUM || !dtype_of(nccl_dtype, &dt) || count < 0 ||
        (uint64_t)count > NGL_COUNT_MAX || (count > 0 && (send == NULL || recv == NULL))) {
        NGL_PWARN("collNet iallreduce: unsupported call (dtype %d, op %d, count %lld)", nccl_dtype,
                  nccl_op, (long long)count);
        return -EINVAL;
    }
    pthread_mutex_lock(&c->lock);
    int rc = c->err;
    if (rc != 0) {
        goto out;
    }
    ngl_coll_req *r = NULL;
    for (int i = 0; i < NGL_COLL_NREQ && r == NULL; i++) {
        if (c->reqs[i].state == R_FREE) {
            r = &c->reqs[i];
        }
    }
    if (r == NULL) {
        goto out; /* back-pressure: NCCL calls again */
    }
    r->send = send;
    r->recv = recv;
    r->count = (uint64_t)count;
    r->next = NULL;
    c->calls++;
    if (count == 0) {
        r->state = R_DONE; /* nothing to reduce; no rank sends anything */
        r->cls = NULL;
        *req = r;
        goto out;
    }
    r->cls = class_get(c, dt, (uint64_t)count, &rc);
    if (r->cls == NULL) {
        fail(c, rc, "slice class");
        goto out;
    }
    r->lane = (uint32_t)(r->cls->ordinal % r->cls->nlanes);
    r->cls->ordinal++;
    c->exact_calls += (uint64_t)r->cls->exact;
    r->seq = c->next_seq++;
    r->state = R_QUEUED;
    if (c->fifo_tail != NULL) {
        c->fifo_tail->next = r;
    } else {
        c->fifo_head = r;
    }
    c->fifo_tail = r;
    *req = r;
    progress(c);
out:
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int ngl_coll_test(ngl_coll_req *r, int *done, size_t *bytes)
{
    ngl_coll_comm *c = r->comm;
    *done = 0;
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    if (r->state == R_FREE) {
        rc = -EINVAL;
    } else {
        progress(c);
        if (r->state == R_DONE) {
            *done = 1;
            if (bytes != NULL) {
                *bytes = r->cls ? r->count * r->cls->esize : 0;
            }
            r->state = R_FREE;
        } else {
            rc = c->err;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* ---- teardown -------------------------------------------------------------- */

static void comm_free(ngl_coll_comm *c)
{
    for (int s = 0; s < NGL_COLL_NSLOTS; s++) {
        slot_t *sl = &c->slots[s];
        if (sl->mh != NULL) {
            slot_release_arena(c, sl);
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
    for (int i = 0; i < c->nclasses; i++) {
        class_free(c, c->classes[i]);
    }
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
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void ngl_coll_close(ngl_coll_comm *c)
{
    if (c == NULL) {
        return;
    }
    NGL_PINFO(NGL_NCCL_SUBSYS_COLL,
              "collNet rank %d/%d closed: %llu calls (%llu exact), %llu B in, %llu B of frames "
              "sent (ratio %.2f)",
              c->rank, c->nranks, (unsigned long long)c->calls, (unsigned long long)c->exact_calls,
              (unsigned long long)c->raw_bytes, (unsigned long long)c->wire_bytes,
              c->wire_bytes ? (double)c->raw_bytes / (double)c->wire_bytes : 0.0);
    comm_free(c);
}
