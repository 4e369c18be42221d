/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness_nccl_replay.c -- NCCL's collNet proxy as a model, and DDP-like
 * training traces replayed through it against the plugin.
 *
 * Part 1, the model. For one allreduce (bytes, dtype, channels, registered
 * or not) it gives the exact sequence of iallreduce calls NCCL's proxy
 * makes on the CollNetChain path with one GPU per node, and which bytes of
 * each call the GPU wrote. It was written from NVIDIA/nccl at tag
 * v2.28.9-1 (reading only; no NCCL code or text is copied here):
 *
 *   channels  src/enqueue.cc:1865-1891 (topoGetAlgoInfo): CollNetChain
 *             takes the ring/tree branch, nc = comm->nChannels, decremented
 *             while nBytes < nc * nt * threadThreshold (nt = NCCL_MAX_NTHREADS
 *             = 640, src/include/device.h:88, src/graph/tuning.cc:237-239;
 *             threshold 512, src/graph/tuning.cc:549). A tuner plugin may
 *             override nc (src/enqueue.cc:1973); we model no tuner.
 *   chunk     src/enqueue.cc:2035-2040 (calcCollChunking): chunkSize =
 *             min(256 KiB, buffSizes[SIMPLE] / NCCL_STEPS), halved while
 *             nBytes / (nc * chunk) < depth * 64 (down to 128 KiB), < depth
 *             * 8 (down to 64 KiB), < depth (down to 32 KiB);
 *             collnetChain.depth = nRanks / nNodes = 1 with one GPU per node
 *             (src/graph/connect.cc:464). Default buffSizes[SIMPLE] is 4 MiB
 *             (src/init.cc:699), NCCL_STEPS 8 (src/include/device.h:24).
 *   steps     src/enqueue.cc:2102-2103, 2128-2131: nsteps = DIVUP(nBytes,
 *             nc * chunk) for every channel (one proxy "sub" per channel,
 *             src/enqueue.cc:584-594).
 *   calls     src/transport/coll_net.cc:880-1017 (sendProxyProgress): only
 *             the last sub of each group of COLLNET_GROUP_NSUBS = 8
 *             channels (coll_net.cc:32, 713-714) posts, one call per step
 *             covering its group's chunks, count = (sendEnd - sendBeg) /
 *             eltSize (coll_net.cc:950-965, 755-764): the FULL span, also on
 *             the last step, where a chunk holds fewer valid elements (or
 *             none) and the rest is stale. Calls go out in (step, group)
 *             order: a sub transmits only after the sub before it
 *             (coll_net.cc:939-941), so groups take turns. A group has at
 *             most NCCL_STEPS calls in flight: the send proxy posts at most
 *             NCCL_STEPS ahead of its done counter (coll_net.cc:907), and
 *             the receive proxy lends a step's result slot only once the GPU
 *             consumed the one NCCL_STEPS earlier (coll_net.cc:1088-1095,
 *             1157-1169). Completion is tested oldest first per group
 *             (coll_net.cc:991-1014).
 *   addresses src/transport/coll_net.cc:692-710 (calcRegionOffset): in a
 *             region of 2 * comm->nChannels * buffSize bytes (coll_net.cc:
 *             400-403, 1574-1575), send half then receive half, step slot
 *             (step % NCCL_STEPS) of nChannels * (buffSize / NCCL_STEPS)
 *             bytes, channel s at s * chunkSize in it. The step passed there
 *             is the op's own counter (sub->posted / sub->transmitted, reset
 *             to 0 for every op at coll_net.cc:887), so addresses repeat
 *             every 8 steps and restart at slot 0 with every operation; only
 *             the FIFO index (sub->base, coll_net.cc:885-887) continues
 *             across operations, and it picks no memory.
 *   GPU       src/device/all_reduce.h:629-730 (CollNetChain): with one GPU
 *             per node, up = nRanks and down = -1 (src/graph/connect.cc:
 *             64-65), so the GPU directSend()s nelem = min(chunk, size -
 *             offset) elements of channel bid at offset = loop * nc * chunk
 *             + bid * chunk (all_reduce.h:674-677) and directRecv()s as many
 *             back (all_reduce.h:711-713); prims_simple.h:192 clamps a
 *             negative nelem to 0 and genericOp moves exactly nelem elements
 *             from or to connEltsFifo + connFifo[step].offset
 *             (prims_simple.h:141-142, 228-236, 272-281).
 *   registered src/register/coll_reg.cc:240-265: user buffers are
 *             registered for CollNet allreduce only with one rank per node,
 *             which also forces one channel (coll_reg.cc:263); registration
 *             needs GPU Direct (NCCL_DIRECT_NIC, coll_net.cc:1196). The
 *             proxy then makes DIVUP(nbytes, maxCollBytes) calls
 *             (coll_net.cc:890) of min(rest, maxCollBytes) bytes straight on
 *             the user's send and recv buffers (coll_net.cc:721-752,
 *             enqueue.cc:2156-2177); DDP's allreduce is in place, so send ==
 *             recv. maxCollBytes is 512 MiB for a v8 plugin
 *             (src/plugin/net/net_v8.cc:107, nccl_net.h:22).
 *
 * Stale result bytes are never read back. recvProxyProgress
 * (coll_net.cc:1063-1177) moves no data: it flushes the group's span for GPU
 * Direct (coll_net.cc:1103-1117, collNetRecvFlush) and publishes the
 * channel's slot offset to the GPU (coll_net.cc:1138-1150). The GPU then
 * reads exactly nelem elements of its chunk (all_reduce.h:711-713 with
 * prims_simple.h:192, 228-236): past the valid data of a last step it reads
 * nothing, and a channel with no data left reads nothing at all. The stale
 * bytes of a send slot reach only the plugin.
 *
 * Part 2, DDP-like traces on 3 ranks (3 nodes), two communicators (two
 * collComms, their operations in flight at the same time), fp32:
 *   - models: a small transformer (comm A, 16 channels) and an MLP (comm B,
 *     4 channels), per-layer gradient magnitudes from 1e-5 to 1; gradient
 *     = persistent per-parameter base + per-step noise, deterministic per
 *     (rank, micro-step, parameter);
 *   - DDP's bucketing (torch.nn.parallel.DistributedDataParallel and
 *     c10d::Reducer::rebuild_buckets / compute_bucket_assignment_by_size):
 *     a bucket closes once it reaches its limit, [first, cap] = [1 MiB,
 *     25 MiB] scaled by 1/8. The first iteration runs on initial buckets:
 *     one bucket of the whole model (torch's default, comm A), or buckets
 *     built over the forward order and reduced in reverse (older torch,
 *     comm B). After it the buckets are rebuilt once, over the order in
 *     which gradients became ready, and the call sizes change;
 *   - steps: one warm-up, then T = 40 steady steps; every 4th step
 *     accumulates two micro-batches (the first issues no allreduce at all);
 *     small allreduces (loss, metrics: 1-3 fp32 elements) before or after
 *     the buckets, some only every 5th step; after step 20 an evaluation
 *     phase (small calls only).
 *   Small allreduces go through the collNet as with NCCL_ALGO=CollNetChain;
 *   NCCL's tuner would otherwise send them to LL rings or trees.
 *
 * Part 3, checks per step: identical results on every rank; every valid
 * element within the per-call bound; and over the T steady steps the
 * closed loop by its effect (ratio below). At closeColl the plugin may log
 * its state digests, which must agree between ranks.
 *
 * collnet-auto[-skew|-int4] replay the same traces under NANGILA_MODE=auto:
 * the plugin picks off or int8 (or int4: -int4 runs with
 * NANGILA_MODE_MAX=int4) per slice size from calls it timed, agreed
 * across ranks by an allgather of its own. Every step's results must still
 * be identical and within bound, every rank must log the same choices
 * (while running and per comm at closeColl), and at least one agreement
 * must have run. -skew makes each rank sleep its own random time before
 * every call, so local times disagree; the choices may not. The closed-loop
 * ratio is not checked: switching modes interrupts the loop by design.
 */
#include "harness.h"

#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- part 1: NCCL's collNet proxy (CollNetChain, one GPU per node) --------- */

#define NR_STEPS            8  /* NCCL_STEPS */
#define NR_GROUP_NSUBS      8  /* COLLNET_GROUP_NSUBS */
#define NR_MAX_CHANNELS     64 /* MAXCHANNELS */
#define NR_MAX_GROUPS       (NR_MAX_CHANNELS / NR_GROUP_NSUBS)
#define NR_CHUNK_MAX        (256 * 1024)
#define NR_MAX_NTHREADS     640 /* NCCL_MAX_NTHREADS */
#define NR_THREAD_THRESHOLD 512 /* threadThresholds[COLLNET_CHAIN][SIMPLE] */
#define NR_BUFFSIZE         ((size_t)4 << 20)
#define NR_MAX_COLL_V8      ((size_t)512 << 20)

/* One communicator's collNet set-up, as NCCL sees it. */
typedef struct {
    int nchannels;         /* comm->nChannels: sizes the shared region */
    size_t buff_size;      /* comm->buffSizes[NCCL_PROTO_SIMPLE] */
    size_t max_coll_bytes; /* props.maxCollBytes */
    int depth;             /* channels[0].collnetChain.depth (GPUs per node) */
} nr_comm_cfg;

/* One iallreduce of the proxy. */
typedef struct {
    int step, group, nsubs;
    size_t send_off, recv_off;     /* bytes from the region's (user buffer's) start */
    size_t count;                  /* elements passed to iallreduce */
    size_t chunk_elems;            /* elements per channel chunk in the call */
    size_t op_off[NR_GROUP_NSUBS]; /* element of the operation each chunk starts at */
    size_t nvalid[NR_GROUP_NSUBS]; /* elements the GPU wrote into that chunk */
} nr_call;

/* One operation: its calls in the order the proxy issues them. */
typedef struct {
    size_t count, esize;
    int registered;
    int nchannels, ngroups, nsteps;
    size_t chunk_bytes;
    int window; /* call k waits for call k - window: NCCL_STEPS per group */
    int ncalls;
    nr_call *calls;
} nr_op;

static size_t nr_region_size(const nr_comm_cfg *cfg)
{
    return 2 * (size_t)cfg->nchannels * cfg->buff_size;
}

static int nr_op_channels(const nr_comm_cfg *cfg, size_t nbytes)
{
    int nc = cfg->nchannels;
    while (nbytes < (size_t)nc * NR_MAX_NTHREADS * NR_THREAD_THRESHOLD && nc >= 2) {
        nc--;
    }
    return nc;
}

static size_t nr_chunk_bytes(const nr_comm_cfg *cfg, size_t nbytes, int nc)
{
    const size_t step = cfg->buff_size / NR_STEPS, d = (size_t)cfg->depth;
    size_t chunk = step < NR_CHUNK_MAX ? step : NR_CHUNK_MAX;
    while (nbytes / ((size_t)nc * chunk) < d * 64 && chunk > 131072) {
        chunk /= 2;
    }
    while (nbytes / ((size_t)nc * chunk) < d * 8 && chunk > 65536) {
        chunk /= 2;
    }
    while (nbytes / ((size_t)nc * chunk) < d && chunk > 32768) {
        chunk /= 2;
    }
    return chunk;
}

/** Plan the calls of one allreduce of @p count elements of @p esize bytes;
 *  @p registered: user buffers (one rank per node). Free with nr_op_free. */
static void nr_op_plan(const nr_comm_cfg *cfg, size_t count, size_t esize, int registered,
                       nr_op *op)
{
    memset(op, 0, sizeof *op);
    op->count = count;
    op->esize = esize;
    op->registered = registered;
    const size_t nbytes = count * esize;
    CHECK(count > 0, "empty operation");
    if (registered) {
        const size_t win = cfg->max_coll_bytes / esize * esize;
        op->nchannels = 1;
        op->ngroups = 1;
        op->nsteps = (int)((nbytes + win - 1) / win);
        op->chunk_bytes = win;
        op->window = NR_STEPS;
        op->ncalls = op->nsteps;
        op->calls = calloc((size_t)op->ncalls, sizeof *op->calls);
        CHECK(op->calls != NULL, "out of memory");
        for (int t = 0; t < op->nsteps; t++) {
            nr_call *k = &op->calls[t];
            const size_t off = (size_t)t * win, len = nbytes - off < win ? nbytes - off : win;
            k->step = t;
            k->nsubs = 1;
            k->send_off = k->recv_off = off;
            k->count = len / esize;
            k->chunk_elems = k->count;
            k->op_off[0] = off / esize;
            k->nvalid[0] = k->count;
        }
        return;
    }
    const int nc = nr_op_channels(cfg, nbytes);
    const size_t chunk = nr_chunk_bytes(cfg, nbytes, nc), ce = chunk / esize;
    const size_t slot = cfg->buff_size / NR_STEPS;
    const size_t stride = (size_t)cfg->nchannels * slot; /* one step slot of one half */
    CHECK(chunk % esize == 0, "chunk of %zu bytes", chunk);
    op->nchannels = nc;
    op->ngroups = (nc + NR_GROUP_NSUBS - 1) / NR_GROUP_NSUBS;
    op->nsteps = (int)((nbytes + (size_t)nc * chunk - 1) / ((size_t)nc * chunk));
    op->chunk_bytes = chunk;
    op->window = NR_STEPS * op->ngroups;
    op->ncalls = op->nsteps * op->ngroups;
    op->calls = calloc((size_t)op->ncalls, sizeof *op->calls);
    CHECK(op->calls != NULL, "out of memory");
    for (int t = 0; t < op->nsteps; t++) {
        for (int g = 0; g < op->ngroups; g++) {
            nr_call *k = &op->calls[t * op->ngroups + g];
            const int s0 = g * NR_GROUP_NSUBS;
            const int s1 = s0 + NR_GROUP_NSUBS < nc ? s0 + NR_GROUP_NSUBS : nc;
            k->step = t;
            k->group = g;
            k->nsubs = s1 - s0;
            k->send_off = (size_t)(t % NR_STEPS) * stride + (size_t)s0 * chunk;
            k->recv_off = (size_t)(NR_STEPS + t % NR_STEPS) * stride + (size_t)s0 * chunk;
            k->count = (size_t)k->nsubs * ce;
            k->chunk_elems = ce;
            for (int s = s0; s < s1; s++) {
                const size_t o = ((size_t)t * (size_t)nc + (size_t)s) * ce;
                k->op_off[s - s0] = o;
                k->nvalid[s - s0] = o >= count ? 0 : (count - o < ce ? count - o : ce);
            }
        }
    }
}

static void nr_op_free(nr_op *op)
{
    free(op->calls);
    op->calls = NULL;
}

static int spans_overlap(size_t a, size_t alen, size_t b, size_t blen)
{
    return a < b + blen && b < a + alen;
}

/* The model's invariants for one operation; @p what names it in failures. */
static void nr_op_check(const nr_comm_cfg *cfg, const nr_op *op, const char *what)
{
    const size_t half = (size_t)cfg->nchannels * cfg->buff_size;
    size_t next = 0, valid = 0;
    CHECK(op->window <= NR_STEPS * NR_MAX_GROUPS, "%s: window %d", what, op->window);
    for (int i = 0; i < op->ncalls; i++) {
        const nr_call *k = &op->calls[i];
        const size_t bytes = k->count * op->esize;
        for (int s = 0; s < k->nsubs; s++) {
            /* chunks tile the operation in (step, channel) order */
            CHECK(k->op_off[s] == next, "%s: call %d chunk %d at %zu, expected %zu", what, i, s,
                  k->op_off[s], next);
            CHECK(k->nvalid[s] <= k->chunk_elems, "%s: chunk overflow", what);
            next += k->chunk_elems;
            valid += k->nvalid[s];
        }
        if (op->registered) {
            CHECK(k->send_off == k->recv_off && bytes <= cfg->max_coll_bytes,
                  "%s: registered call %d", what, i);
            continue;
        }
        CHECK(bytes == (size_t)k->nsubs * op->chunk_bytes, "%s: call %d is not its full span", what,
              i);
        CHECK(op->chunk_bytes >= 32768 && op->chunk_bytes <= NR_CHUNK_MAX &&
                  (op->chunk_bytes & (op->chunk_bytes - 1)) == 0,
              "%s: chunk of %zu bytes", what, op->chunk_bytes);
        CHECK(k->send_off + bytes <= half && k->recv_off >= half && k->recv_off + bytes <= 2 * half,
              "%s: call %d outside its half of the region", what, i);
        /* calls that may be in flight together never share bytes */
        for (int j = i + 1; j < op->ncalls && j < i + op->window; j++) {
            const nr_call *l = &op->calls[j];
            const size_t lb = l->count * op->esize;
            CHECK(!spans_overlap(k->send_off, bytes, l->send_off, lb) &&
                      !spans_overlap(k->recv_off, bytes, l->recv_off, lb),
                  "%s: calls %d and %d in flight on the same bytes", what, i, j);
        }
    }
    CHECK(valid == op->count, "%s: %zu valid elements of %zu", what, valid, op->count);
}

/* Sweep of sizes and set-ups; also pins a few values read off the source. */
static void nr_self_check(void)
{
    const nr_comm_cfg cfgs[] = {{16, NR_BUFFSIZE, NR_MAX_COLL_V8, 1},
                                {4, NR_BUFFSIZE, NR_MAX_COLL_V8, 1},
                                {1, NR_BUFFSIZE, NR_MAX_COLL_V8, 1},
                                {64, NR_BUFFSIZE, (size_t)3 << 20, 1},
                                {12, (size_t)1 << 20, NR_MAX_COLL_V8, 2}};
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        for (size_t bytes = 4; bytes <= ((size_t)96 << 20); bytes += bytes / 3 + 4) {
            for (int reg = 0; reg < 2; reg++) {
                char what[96];
                snprintf(what, sizeof what, "model: %zu B on %d channels%s", bytes,
                         cfgs[c].nchannels, reg ? " registered" : "");
                nr_op op;
                nr_op_plan(&cfgs[c], bytes / 4, 4, reg, &op);
                nr_op_check(&cfgs[c], &op, what);
                nr_op_free(&op);
            }
        }
    }
    nr_op op;
    /* 25 MiB on 16 channels: 128 KiB chunks, two groups of 1 MiB calls */
    nr_op_plan(&cfgs[0], (size_t)25 << 18, 4, 0, &op);
    CHECK(op.nchannels == 16 && op.chunk_bytes == 131072 && op.ngroups == 2 && op.nsteps == 13 &&
              op.calls[0].count == 262144,
          "model: 25 MiB gave %d channels, %zu B chunks", op.nchannels, op.chunk_bytes);
    nr_op_free(&op);
    /* 1 MiB: 3 channels of 64 KiB chunks */
    nr_op_plan(&cfgs[0], (size_t)1 << 18, 4, 0, &op);
    CHECK(op.nchannels == 3 && op.chunk_bytes == 65536 && op.nsteps == 6,
          "model: 1 MiB gave %d channels, %zu B chunks", op.nchannels, op.chunk_bytes);
    nr_op_free(&op);
    /* one fp32 element: a 32 KiB call, 8191 elements of it stale */
    nr_op_plan(&cfgs[0], 1, 4, 0, &op);
    CHECK(op.ncalls == 1 && op.calls[0].count == 8192 && op.calls[0].nvalid[0] == 1,
          "model: one element gave a call of %zu", op.calls[0].count);
    nr_op_free(&op);
    /* registered: one call per maxCollBytes window */
    nr_op_plan(&cfgs[3], ((size_t)7 << 20) / 4, 4, 1, &op);
    CHECK(op.ncalls == 3 && op.calls[2].count == ((size_t)1 << 20) / 4, "model: registered");
    nr_op_free(&op);
}

int nccl_model_print(const double *mib, int n)
{
    nr_self_check();
    const nr_comm_cfg cfg = {16, NR_BUFFSIZE, NR_MAX_COLL_V8, 1};
    printf("NCCL v2.28.9 CollNetChain proxy, 1 GPU/node, comm->nChannels %d, buffSize %zu, "
           "fp32\n",
           cfg.nchannels, cfg.buff_size);
    for (int i = 0; i < n; i++) {
        const size_t count = (size_t)(mib[i] * 262144.0) > 0 ? (size_t)(mib[i] * 262144.0) : 1;
        for (int reg = 0; reg < 2; reg++) {
            nr_op op;
            nr_op_plan(&cfg, count, 4, reg, &op);
            printf("%zu elements%s: %d channels, %zu B chunks, %d steps x %d groups, window %d\n",
                   count, reg ? " (registered, in place)" : "", op.nchannels, op.chunk_bytes,
                   op.nsteps, op.ngroups, op.window);
            for (int k = 0; k < op.ncalls && k < 40; k++) {
                const nr_call *c = &op.calls[k];
                size_t v = 0;
                for (int s = 0; s < c->nsubs; s++) {
                    v += c->nvalid[s];
                }
                printf("  call %3d: step %2d group %d send +%-9zu recv +%-9zu count %-8zu valid "
                       "%zu\n",
                       k, c->step, c->group, c->send_off, c->recv_off, c->count, v);
            }
            if (op.ncalls > 40) {
                printf("  ... %d calls\n", op.ncalls);
            }
            nr_op_free(&op);
        }
    }
    printf("model invariants hold\n");
    return 0;
}

/* ---- part 2: DDP-like models and traces ------------------------------------- */

#define DDP_T          40 /* steady steps in the closed-loop measurement */
#define DDP_EVAL_AFTER 20 /* the evaluation phase follows this steady step */
#define DDP_SCALE      8  /* DDP's bucket limits divided by this */
#define DDP_NOISE      0.25
#define MAX_BUCKETS    16
#define MAX_OPS        (MAX_BUCKETS + 8)
#define MAX_CLASSES    16
#define SMALL_MAX      8 /* elements of a small allreduce */

typedef struct {
    const char *name;
    uint32_t n;
    int e10; /* gradient magnitude 10^e10 */
} ddp_layer;

/* A small transformer: tied embedding, two blocks, final norm. */
static const ddp_layer MODEL_A[] = {
    {"wte", 131072, -5},      {"h0.ln1.w", 256, -2},  {"h0.ln1.b", 256, -2},
    {"h0.qkv.w", 196608, -3}, {"h0.qkv.b", 768, -2},  {"h0.proj.w", 65536, -3},
    {"h0.proj.b", 256, -1},   {"h0.ln2.w", 256, -2},  {"h0.ln2.b", 256, -3},
    {"h0.fc1.w", 262144, -3}, {"h0.fc1.b", 1024, -1}, {"h0.fc2.w", 262144, -4},
    {"h0.fc2.b", 256, 0},     {"h1.ln1.w", 256, -3},  {"h1.ln1.b", 256, -2},
    {"h1.qkv.w", 196608, -4}, {"h1.qkv.b", 768, -1},  {"h1.proj.w", 65536, -2},
    {"h1.proj.b", 256, -1},   {"h1.ln2.w", 256, -3},  {"h1.ln2.b", 256, -2},
    {"h1.fc1.w", 262144, -2}, {"h1.fc1.b", 1024, 0},  {"h1.fc2.w", 262144, -3},
    {"h1.fc2.b", 256, -1},    {"ln_f.w", 256, -2},    {"ln_f.b", 256, -1},
};

/* An MLP (a second model, e.g. a discriminator, on its own communicator). */
static const ddp_layer MODEL_B[] = {
    {"in.w", 32768, -2},  {"in.b", 256, -1}, {"h1.w", 262144, -3}, {"h1.b", 1024, -2},
    {"h2.w", 262144, -4}, {"h2.b", 256, -2}, {"out.w", 65536, -3}, {"out.b", 16, 0},
};

typedef struct {
    int nbuckets;
    size_t count[MAX_BUCKETS];
    uint32_t *pid[MAX_BUCKETS]; /* bucket element -> parameter */
} ddp_layout;

typedef struct {
    const ddp_layer *layers;
    int nlayers;
    uint32_t nparams;
    uint64_t seed;
    float *mag;  /* [nparams] */
    float *base; /* [nranks * nparams] persistent part of each rank's gradient */
} ddp_model;

/* Uniform in [-1, 1) from 64 random bits. */
static inline double u11(uint64_t h)
{
    return (double)(int64_t)h * 0x1p-63;
}

static void model_init(ddp_model *m, const ddp_layer *layers, int nlayers, uint64_t seed)
{
    m->layers = layers;
    m->nlayers = nlayers;
    m->seed = seed;
    m->nparams = 0;
    for (int l = 0; l < nlayers; l++) {
        m->nparams += layers[l].n;
    }
    m->mag = malloc((size_t)m->nparams * sizeof(float));
    m->base = malloc((size_t)g_nranks * m->nparams * sizeof(float));
    CHECK(m->mag != NULL && m->base != NULL, "out of memory");
    uint32_t p = 0;
    for (int l = 0; l < nlayers; l++) {
        for (uint32_t i = 0; i < layers[l].n; i++, p++) {
            m->mag[p] = (float)pow(10.0, layers[l].e10);
        }
    }
    for (int r = 0; r < g_nranks; r++) {
        for (p = 0; p < m->nparams; p++) {
            uint64_t h = ngl_hash_splitmix64(seed ^ ((uint64_t)(r + 1) << 40) ^ p);
            m->base[(size_t)r * m->nparams + p] = (float)(u11(h) * m->mag[p]);
        }
    }
}

static void model_free(ddp_model *m)
{
    free(m->mag);
    free(m->base);
}

/* Rank @p r's gradient of parameter @p p at step @p step, accumulated over
 * @p nmicro micro-batches: the base each time plus fresh noise. */
static inline float grad_value(const ddp_model *m, int r, int step, int nmicro, uint32_t p)
{
    double v = (double)m->base[(size_t)r * m->nparams + p] * nmicro;
    for (int k = 0; k < nmicro; k++) {
        uint64_t h = ngl_hash_splitmix64(m->seed ^ ((uint64_t)(r + 1) << 56) ^
                                         ((uint64_t)(2 * step + k + 1) << 32) ^ (uint64_t)p);
        v += DDP_NOISE * (double)m->mag[p] * u11(h);
    }
    return (float)v;
}

/* Loss and metrics: values of order 1, per rank and step. */
static float small_value(int r, int step, uint64_t key, size_t i)
{
    uint64_t h =
        ngl_hash_splitmix64(key ^ ((uint64_t)(r + 1) << 48) ^ ((uint64_t)(step + 1) << 24) ^ i);
    return (float)(1.0 + i + 0.25 * u11(h));
}

/* torch's _compute_bucket_assignment_by_size: a bucket closes once its size
 * reaches its limit (limits[0] for the first, limits[1] after). */
static void layout_build(const ddp_model *m, const int *order, size_t first, size_t cap,
                         int reverse_buckets, ddp_layout *lay)
{
    int bl[MAX_BUCKETS][64], bn[MAX_BUCKETS];
    size_t bytes = 0;
    int nb = 0;
    memset(bn, 0, sizeof bn);
    uint32_t *lstart = malloc((size_t)m->nlayers * sizeof(uint32_t));
    CHECK(lstart != NULL, "out of memory");
    for (int l = 0, p = 0; l < m->nlayers; p += (int)m->layers[l].n, l++) {
        lstart[l] = (uint32_t)p;
    }
    for (int i = 0; i < m->nlayers; i++) {
        const int l = order[i];
        CHECK(nb < MAX_BUCKETS && bn[nb] < 64, "too many buckets");
        bl[nb][bn[nb]++] = l;
        bytes += (size_t)m->layers[l].n * 4;
        if (bytes >= (nb == 0 ? first : cap)) {
            nb++;
            bytes = 0;
        }
    }
    if (nb < MAX_BUCKETS && bn[nb] > 0) {
        nb++;
    }
    lay->nbuckets = nb;
    for (int b = 0; b < nb; b++) {
        const int src = reverse_buckets ? nb - 1 - b : b;
        size_t n = 0;
        for (int j = 0; j < bn[src]; j++) {
            n += m->layers[bl[src][j]].n;
        }
        lay->count[b] = n;
        lay->pid[b] = malloc(n * sizeof(uint32_t));
        CHECK(lay->pid[b] != NULL, "out of memory");
        size_t e = 0;
        for (int j = 0; j < bn[src]; j++) {
            const int l = bl[src][j];
            for (uint32_t i = 0; i < m->layers[l].n; i++) {
                lay->pid[b][e++] = lstart[l] + i;
            }
        }
    }
    free(lstart);
}

static void layout_free(ddp_layout *lay)
{
    for (int b = 0; b < lay->nbuckets; b++) {
        free(lay->pid[b]);
    }
}

/* ---- the replay ------------------------------------------------------------- */

typedef struct {
    int bucket;      /* -1: a small allreduce */
    size_t count;    /* elements */
    uint64_t key;    /* small allreduce: its identity */
    float *in, *out; /* host: this rank's input, the result the GPU got */
    nr_op plan;
    size_t bbase; /* its first block in the step's array of block maxima */
} tr_op;

typedef struct {
    const char *name, *what;
    ddp_model model;
    ddp_layout lay[2]; /* 0: first iteration, 1: rebuilt */
    nr_comm_cfg cfg;
    coll_ctx cx;
    int reg;
    /* registered: the buckets' device buffers (in place), two handles each */
    int dlay; /* layout they belong to, -1 none */
    uint8_t *dbuf[MAX_BUCKETS + 1];
    void *dsmh[MAX_BUCKETS + 1], *drmh[MAX_BUCKETS + 1];
    /* this step */
    int step, nmicro, layout, prev_layout, steady;
    tr_op ops[MAX_OPS];
    int nops;
    float *in_all, *out_all;
    size_t nall;
    /* the operation in flight */
    int run, posted, completed, written;
    void **req;
    uint8_t *done;
    int oldest[NR_MAX_GROUPS];
    /* block maxima of every call of the step, in call order */
    float *bmax;
    size_t nb, bcap;
    /* checks */
    float *qhist;        /* per parameter: its largest quantization term so far */
    double qmax_prev;    /* largest quantization term of the previous step */
    double *esum, *eabs; /* per parameter: sum of errors, sum of |errors| */
    uint8_t *cls;        /* per parameter: its class in the steady layout */
    uint8_t *mine;       /* per parameter: checked here (a block in n) */
    size_t cls_count[MAX_CLASSES];
    int cls_calls[MAX_CLASSES], ncls;
    double worst;
    double *tq, *tu; /* per block of the call being checked: bound terms */
    size_t tcap;
    int vfirst, vlast; /* steps of the first and last element beyond its bound */
    char vmsg[192];    /* the first one */
    long long violations, stale_nonzero, stale_total, calls;
} ddp_comm;

typedef struct {
    int reg;
    int autom;   /* NANGILA_MODE=auto: per-size choices checked, no closed-loop ratio */
    int skew_us; /* rank r sleeps a random 0..skew_us * (r + 1) us before each call */
} ddp_opts;

static const ddp_opts OPTS_HOST = {0, 0, 0}, OPTS_REG = {1, 0, 0}, OPTS_AUTO = {0, 1, 0},
                      OPTS_AUTO_SKEW = {0, 1, 400};

void *ddp_opts_for(const char *scenario)
{
    if (!strcmp(scenario, "collnet-ddp") || !strcmp(scenario, "collnet-ddp-int4") ||
        !strcmp(scenario, "collnet-ddp-momentum")) {
        return (void *)&OPTS_HOST;
    }
    if (!strcmp(scenario, "collnet-ddp-reg")) {
        return (void *)&OPTS_REG;
    }
    if (!strcmp(scenario, "collnet-auto") || !strcmp(scenario, "collnet-auto-int4")) {
        return (void *)&OPTS_AUTO;
    }
    if (!strcmp(scenario, "collnet-auto-skew")) {
        return (void *)&OPTS_AUTO_SKEW;
    }
    return NULL;
}

static int g_block;
static int g_skew_us;

/* The skewed scenario's delay before rank g_rank posts call @p n of a comm:
 * its own random stream, up to skew_us * (rank + 1), so every rank's clock
 * tells a different story about the same calls. */
static void skew_sleep(uint64_t n)
{
    if (g_skew_us <= 0) {
        return;
    }
    const uint64_t us = ngl_hash_splitmix64(0x5e3eull ^ ((uint64_t)g_rank << 40) ^ n) %
                        ((uint64_t)g_skew_us * (uint64_t)(g_rank + 1) + 1);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)us * 1000};
    nanosleep(&ts, NULL);
}

static void comm_init(ddp_comm *dc, const char *name, const char *what, const ddp_layer *layers,
                      int nlayers, int nchannels, int one_first_bucket, int reg, uint64_t seed)
{
    memset(dc, 0, sizeof *dc);
    dc->name = name;
    dc->what = what;
    dc->reg = reg;
    dc->dlay = -1;
    dc->cfg = (nr_comm_cfg){nchannels, NR_BUFFSIZE, NR_MAX_COLL_V8, 1};
    model_init(&dc->model, layers, nlayers, seed);
    /* First iteration: with @p one_first_bucket (torch's default since
     * find_unused_parameters=False uses limits [sys.maxsize]) one bucket of
     * the whole model; otherwise (older torch, or find_unused_parameters)
     * buckets over the forward order, reduced in reverse. Rebuilt after it:
     * over the order gradients became ready, the backward order with a few
     * neighbours swapped (autograd does not follow module order exactly). */
    int fwd[64], ready[64];
    CHECK(nlayers <= 64, "too many layers");
    for (int l = 0; l < nlayers; l++) {
        fwd[l] = l;
        ready[l] = nlayers - 1 - l;
    }
    for (int l = 3; l + 1 < nlayers; l += 7) {
        int t = ready[l];
        ready[l] = ready[l + 1];
        ready[l + 1] = t;
    }
    const size_t first = ((size_t)1 << 20) / DDP_SCALE, cap = ((size_t)25 << 20) / DDP_SCALE;
    if (one_first_bucket) {
        layout_build(&dc->model, fwd, SIZE_MAX, SIZE_MAX, 1, &dc->lay[0]);
    } else {
        layout_build(&dc->model, fwd, first, cap, 1, &dc->lay[0]);
    }
    layout_build(&dc->model, ready, first, cap, 0, &dc->lay[1]);
    dc->nall = dc->model.nparams + (size_t)SMALL_MAX * MAX_OPS;
    dc->in_all = malloc(dc->nall * sizeof(float));
    dc->out_all = malloc(dc->nall * sizeof(float));
    const size_t np = dc->model.nparams;
    dc->qhist = calloc(np, sizeof(float));
    dc->esum = calloc(np, sizeof(double));
    dc->eabs = calloc(np, sizeof(double));
    dc->cls = calloc(np, 1);
    dc->mine = calloc(np, 1);
    CHECK(dc->in_all && dc->out_all && dc->qhist && dc->esum && dc->eabs && dc->cls && dc->mine,
          "out of memory");
    for (size_t p = 0; p < np; p++) {
        dc->mine[p] = (p / (size_t)g_block) % (size_t)g_nranks == (size_t)g_rank;
    }
    /* NCCL's staging region: host memory calloc'ed (ncclCudaHostCalloc),
     * registered once. Registered runs use their own buffers instead. */
    coll_setup_mem(&dc->cx, reg ? 4096 : nr_region_size(&dc->cfg), reg ? MEM_DEVICE : MEM_HOST);
    dc->prev_layout = -1;
}

static void comm_free_dbufs(ddp_comm *dc)
{
    for (int b = 0; b <= MAX_BUCKETS; b++) {
        if (dc->dbuf[b] != NULL) {
            NCCL_OK(coll->deregMr(dc->cx.cc, dc->dsmh[b]));
            NCCL_OK(coll->deregMr(dc->cx.cc, dc->drmh[b]));
            dmem_free(dc->dbuf[b]);
            dc->dbuf[b] = NULL;
        }
    }
    dc->dlay = -1;
}

/* Registered buffers: DDP's bucket tensors (and a small one for losses),
 * registered once per tensor, for the send and the receive side as NCCL's
 * collnetRegisterBuffer does; new tensors after the rebuild. */
static void comm_reg_buffers(ddp_comm *dc)
{
    if (!dc->reg || dc->dlay == dc->layout) {
        return;
    }
    comm_free_dbufs(dc);
    const ddp_layout *lay = &dc->lay[dc->layout];
    for (int b = 0; b <= lay->nbuckets; b++) {
        const int slot = b < lay->nbuckets ? b : MAX_BUCKETS;
        const size_t bytes = (b < lay->nbuckets ? lay->count[b] : SMALL_MAX) * 4;
        dc->dbuf[slot] = dmem_alloc(bytes);
        NCCL_OK(coll->regMr(dc->cx.cc, dc->dbuf[slot], bytes, NGL_NCCL_PTR_CUDA, &dc->dsmh[slot]));
        NCCL_OK(coll->regMr(dc->cx.cc, dc->dbuf[slot], bytes, NGL_NCCL_PTR_CUDA, &dc->drmh[slot]));
    }
    dc->dlay = dc->layout;
}

static void add_small(ddp_comm *dc, size_t *used, size_t n, uint64_t key)
{
    CHECK(dc->nops < MAX_OPS && n <= SMALL_MAX, "trace too long");
    tr_op *o = &dc->ops[dc->nops++];
    memset(o, 0, sizeof *o);
    o->bucket = -1;
    o->count = n;
    o->key = key;
    o->in = dc->in_all + *used;
    o->out = dc->out_all + *used;
    *used += n;
    for (size_t i = 0; i < n; i++) {
        o->in[i] = small_value(g_rank, dc->step, key, i);
    }
}

static void add_buckets(ddp_comm *dc, size_t *used)
{
    const ddp_layout *lay = &dc->lay[dc->layout];
    for (int b = 0; b < lay->nbuckets; b++) {
        CHECK(dc->nops < MAX_OPS, "trace too long");
        tr_op *o = &dc->ops[dc->nops++];
        memset(o, 0, sizeof *o);
        o->bucket = b;
        o->count = lay->count[b];
        o->in = dc->in_all + *used;
        o->out = dc->out_all + *used;
        *used += o->count;
        for (size_t e = 0; e < o->count; e++) {
            o->in[e] = grad_value(&dc->model, g_rank, dc->step, dc->nmicro, lay->pid[b][e]);
        }
    }
}

enum { PH_WARMUP, PH_STEADY, PH_EVAL };

/* The operations of one step of @p dc, in the order its rank issues them. */
static void step_build(ddp_comm *dc, int is_a, int phase, int step)
{
    size_t used = 0;
    dc->nops = 0;
    dc->step = step;
    dc->steady = phase == PH_STEADY;
    dc->nmicro = phase == PH_STEADY && step % 4 == 2 ? 2 : 1;
    if (phase == PH_EVAL) {
        /* evaluation: per-batch [correct, total], then the mean loss */
        for (int k = 0; k < (is_a ? 3 : 1); k++) {
            add_small(dc, &used, 2, 0xe0a1u + (uint64_t)k);
        }
        add_small(dc, &used, 1, 0xe1u);
        return;
    }
    dc->prev_layout = dc->layout;
    dc->layout = phase == PH_WARMUP ? 0 : 1;
    if (phase == PH_WARMUP) {
        dc->prev_layout = -1;
    }
    if (is_a) {
        if (step % 5 == 0 && phase == PH_STEADY) {
            add_small(dc, &used, 3, 0x3e7u); /* metrics, every 5th step */
        }
        add_buckets(dc, &used);
        add_small(dc, &used, 1, 0x10u); /* the loss, for logging */
    } else {
        add_small(dc, &used, 2, 0x20u); /* two losses, before backward */
        add_buckets(dc, &used);
    }
}

static tr_op *cur_op(ddp_comm *dc)
{
    return dc->run < dc->nops ? &dc->ops[dc->run] : NULL;
}

static uint8_t *op_dbuf(ddp_comm *dc, const tr_op *o)
{
    return dc->dbuf[o->bucket >= 0 ? o->bucket : MAX_BUCKETS];
}

static void bmax_reserve(ddp_comm *dc, size_t n)
{
    if (dc->nb + n > dc->bcap) {
        dc->bcap = (dc->nb + n) * 2;
        dc->bmax = realloc(dc->bmax, dc->bcap * sizeof(float));
        CHECK(dc->bmax != NULL, "out of memory");
    }
}

/* Largest |x| of each codec block of a call, over everything the plugin
 * reads: valid data and stale bytes alike. */
static void call_maxima(ddp_comm *dc, const float *x, size_t count)
{
    const size_t nb = (count + (size_t)g_block - 1) / (size_t)g_block;
    bmax_reserve(dc, nb);
    for (size_t b = 0; b < nb; b++) {
        const size_t e = (b + 1) * (size_t)g_block < count ? (b + 1) * (size_t)g_block : count;
        float m = 0.0f;
        for (size_t i = b * (size_t)g_block; i < e; i++) {
            float a = fabsf(x[i]);
            m = isfinite(a) && a > m ? a : m;
        }
        dc->bmax[dc->nb++] = m;
    }
}

/* The GPU's part of call @p k before the proxy posts it. */
static void gpu_write(ddp_comm *dc, tr_op *o, const nr_call *k)
{
    if (dc->reg) {
        call_maxima(dc, o->in + k->op_off[0], k->count);
        return;
    }
    float *span = (float *)(void *)(dc->cx.region + k->send_off);
    for (int s = 0; s < k->nsubs; s++) {
        float *chunk = span + (size_t)s * k->chunk_elems;
        memcpy(chunk, o->in + k->op_off[s], k->nvalid[s] * sizeof(float));
        /* The rest keeps what the slot held (the plugin zeroes host send
         * slots after a call today; nothing here relies on it). */
        for (size_t i = k->nvalid[s]; i < k->chunk_elems; i++) {
            dc->stale_nonzero += chunk[i] != 0.0f;
        }
        dc->stale_total += (long long)(k->chunk_elems - k->nvalid[s]);
    }
    call_maxima(dc, span, k->count);
}

/* The GPU's part once call @p k completed: it reads the valid elements.
 * On registered (device) buffers NCCL's receive proxy first flushes the
 * range (collNetRecvFlush, coll_net.cc:1018-1061, 1105-1134). */
static void gpu_read(ddp_comm *dc, tr_op *o, const nr_call *k)
{
    if (dc->reg) {
        uint8_t *data = op_dbuf(dc, o) + k->recv_off;
        void *freq = NULL;
        NCCL_OK(coll->iflush(dc->cx.cc, data, (int)(k->count * sizeof(float)),
                             dc->drmh[o->bucket >= 0 ? o->bucket : MAX_BUCKETS], &freq));
        const double dl = now_s() + DEADLINE_S;
        for (int done = freq == NULL; !done;) {
            CHECK(now_s() < dl, "comm %s: iflush did not complete", dc->name);
            NCCL_OK(coll->test(freq, &done, NULL));
        }
        dmem_get(o->out + k->op_off[0], data, k->count * sizeof(float));
        return;
    }
    const float *span = (const float *)(const void *)(dc->cx.region + k->recv_off);
    for (int s = 0; s < k->nsubs; s++) {
        memcpy(o->out + k->op_off[s], span + (size_t)s * k->chunk_elems,
               k->nvalid[s] * sizeof(float));
    }
}

static void op_start(ddp_comm *dc, tr_op *o)
{
    nr_op_plan(&dc->cfg, o->count, sizeof(float), dc->reg, &o->plan);
    o->bbase = dc->nb;
    dc->posted = dc->completed = dc->written = 0;
    free(dc->req);
    free(dc->done);
    dc->req = calloc((size_t)o->plan.ncalls, sizeof(void *));
    dc->done = calloc((size_t)o->plan.ncalls, 1);
    CHECK(dc->req != NULL && dc->done != NULL, "out of memory");
    for (int g = 0; g < o->plan.ngroups; g++) {
        dc->oldest[g] = g;
    }
    if (dc->reg) {
        /* the GPU produced the whole bucket before the collective starts */
        dmem_put(op_dbuf(dc, o), o->in, o->count * sizeof(float));
    }
}

/* One round of the proxy for @p dc: post what the flow control allows,
 * test the oldest call of each group; *moved is set when a call was
 * posted or completed. @return 1 while work is left.
 * Operations of one collComm run one after the other: the kernel runs them
 * in order on every channel and writes the next operation's data only after
 * it consumed the last results of this one (a channel that finished early
 * could start sooner; not modelled). The two collComms progress together,
 * as two communicators' proxies do. */
static int comm_progress(ddp_comm *dc, int *moved)
{
    tr_op *o = cur_op(dc);
    if (o == NULL) {
        return 0;
    }
    if (o->plan.calls == NULL) {
        op_start(dc, o);
    }
    const nr_op *p = &o->plan;
    while (dc->posted < p->ncalls) {
        const int k = dc->posted;
        if (k >= p->window && !dc->done[k - p->window]) {
            break; /* its slot (or the GPU's credit) is not back yet */
        }
        const nr_call *c = &p->calls[k];
        if (dc->written <= k) {
            /* once, even if the post below meets back-pressure */
            gpu_write(dc, o, c);
            dc->written = k + 1;
            skew_sleep((uint64_t)dc->calls);
        }
        void *req = NULL;
        void *sbuf, *rbuf, *smh, *rmh;
        if (dc->reg) {
            sbuf = op_dbuf(dc, o) + c->send_off;
            rbuf = op_dbuf(dc, o) + c->recv_off;
            smh = dc->dsmh[o->bucket >= 0 ? o->bucket : MAX_BUCKETS];
            rmh = dc->drmh[o->bucket >= 0 ? o->bucket : MAX_BUCKETS];
        } else {
            sbuf = dc->cx.region + c->send_off;
            rbuf = dc->cx.region + c->recv_off;
            smh = rmh = dc->cx.mh;
        }
        NCCL_OK(coll->iallreduce(dc->cx.cc, sbuf, rbuf, (int)c->count, NGL_NCCL_FLOAT32,
                                 NGL_NCCL_SUM, smh, rmh, &req));
        if (req == NULL) {
            break; /* back-pressure: NCCL retries on its next round */
        }
        dc->req[k] = req;
        dc->posted++;
        dc->calls++;
        *moved = 1;
    }
    for (int g = 0; g < p->ngroups; g++) {
        const int k = dc->oldest[g];
        if (k >= dc->posted) {
            continue;
        }
        int done = 0, size = -1;
        NCCL_OK(coll->test(dc->req[k], &done, &size));
        if (done) {
            CHECK(size == (int)(p->calls[k].count * sizeof(float)),
                  "comm %s: test() reported %d bytes for a call of %zu elements", dc->name, size,
                  p->calls[k].count);
            gpu_read(dc, o, &p->calls[k]);
            dc->done[k] = 1;
            dc->oldest[g] += p->ngroups;
            dc->completed++;
            *moved = 1;
        }
    }
    if (dc->completed == p->ncalls) {
        dc->run++;
    }
    return 1;
}

/* ---- part 3: checks ------------------------------------------------------------ */

/* hub_allgather for messages of any size, in pieces. */
static void hub_allgather_large(const void *mine, size_t len, void *all)
{
    const size_t piece = 16384;
    uint8_t *tmp = malloc(piece * (size_t)g_nranks);
    CHECK(tmp != NULL, "out of memory");
    for (size_t off = 0; off < len; off += piece) {
        const size_t l = len - off < piece ? len - off : piece;
        hub_allgather((const uint8_t *)mine + off, l, tmp);
        for (int r = 0; r < g_nranks; r++) {
            memcpy((uint8_t *)all + (size_t)r * len + off, tmp + (size_t)r * l, l);
        }
    }
    free(tmp);
}

/* A digest of @p n floats' bits (check_identical's, a word at a time). */
static uint64_t words_digest(const float *x, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint64_t w;
        memcpy(&w, x + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    if (i < n) {
        uint32_t w;
        memcpy(&w, x + i, 4);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
    }
    return ngl_hash_splitmix64(h);
}

static int class_of(ddp_comm *dc, size_t count)
{
    for (int i = 0; i < dc->ncls; i++) {
        if (dc->cls_count[i] == count) {
            return i;
        }
    }
    CHECK(dc->ncls < MAX_CLASSES, "too many call sizes");
    dc->cls_count[dc->ncls] = count;
    dc->cls_calls[dc->ncls] = 0;
    return dc->ncls++;
}

/* Quantization term of the bound for a block whose ranks' largest
 * magnitudes sum to @p msum: two quantizations (each contribution, then
 * the sum), each within one step of its block scale (verify_call's rule). */
static double qterm(double msum, int qmax)
{
    return qmax ? (2.0 * msum / qmax) * (1.0 + 2.0 / qmax) : 0.0;
}

/* Every rank's results of the step must be the same bits; every valid
 * element (of this rank's share: results are identical, so each element is
 * checked once) within its bound. The bound of an element is
 *   q(block) + 2 q' + fp32 rounding,
 * q from the largest magnitudes every rank fed into the codec blocks around
 * it (stale bytes included: the plugin sees them; a block and its two
 * neighbours, so that any 256-element grid inside a call is covered), q'
 * what error feedback may carry: the residual of the same parameter from
 * any earlier step, so the largest q it has had; on the step after the
 * buckets were rebuilt (new calls, new streams) the largest q of the
 * previous step. State carried from another parameter is what breaks it.
 * Over the steady steps, each parameter's errors are summed (esum) and
 * their magnitudes too (eabs). */
static void step_check(ddp_comm *dc)
{
    const int n = g_nranks, qmax = qmax_of_mode();
    const size_t block = (size_t)g_block;
    uint64_t mine = 0, dig[MAX_RANKS];
    for (int i = 0; i < dc->nops; i++) {
        mine = ngl_hash_splitmix64(mine ^ words_digest(dc->ops[i].out, dc->ops[i].count));
    }
    hub_allgather(&mine, sizeof mine, dig);
    for (int r = 0; r < n; r++) {
        CHECK(dig[r] == dig[0], "comm %s step %d: results differ between rank 0 and rank %d",
              dc->name, dc->step, r);
    }
    const size_t nb = dc->nb;
    float *all = malloc((size_t)n * (nb ? nb : 1) * sizeof(float));
    CHECK(all != NULL, "out of memory");
    hub_allgather_large(dc->bmax, nb * sizeof(float), all);
    int grads = 0;
    for (int i = 0; i < dc->nops; i++) {
        grads |= dc->ops[i].bucket >= 0;
    }
    const int changed = dc->prev_layout >= 0 && dc->prev_layout != dc->layout;
    const int record_classes = dc->steady && dc->ncls == 0;
    const ddp_layout *lay = &dc->lay[dc->layout];
    double qmax_step = 0.0;
    for (int i = 0; i < dc->nops; i++) {
        const tr_op *o = &dc->ops[i];
        size_t bb = o->bbase;
        for (int kk = 0; kk < o->plan.ncalls; kk++) {
            const nr_call *k = &o->plan.calls[kk];
            const size_t cb = (k->count + block - 1) / block;
            const int ci = o->bucket >= 0 && dc->steady ? class_of(dc, k->count) : -1;
            if (ci >= 0 && record_classes) {
                dc->cls_calls[ci]++;
            }
            if (cb > dc->tcap) {
                dc->tcap = cb * 2;
                dc->tq = realloc(dc->tq, dc->tcap * sizeof(double));
                dc->tu = realloc(dc->tu, dc->tcap * sizeof(double));
                CHECK(dc->tq != NULL && dc->tu != NULL, "out of memory");
            }
            for (size_t b = 0; b < cb; b++) {
                const size_t b0 = b > 0 ? b - 1 : 0, b1 = b + 1 < cb ? b + 1 : b;
                double msum = 0.0, msum1 = 0.0;
                for (int r = 0; r < n; r++) {
                    const float *m = all + (size_t)r * nb + bb;
                    msum1 += m[b];
                    msum += fmax(fmax(m[b0], m[b]), m[b1]);
                }
                if (o->bucket >= 0) {
                    qmax_step = fmax(qmax_step, qterm(msum1, qmax));
                }
                dc->tq[b] = qterm(msum, qmax);
                dc->tu[b] = ldexp(1.0, -22) * (n + 2) * msum + 1e-30;
            }
            for (int s = 0; s < k->nsubs; s++) {
                for (size_t j = 0; j < k->nvalid[s]; j++) {
                    const size_t e = k->op_off[s] + j;
                    const uint32_t pid = o->bucket >= 0 ? lay->pid[o->bucket][e] : 0;
                    if (o->bucket >= 0 ? !dc->mine[pid] : e % (size_t)n != (size_t)g_rank) {
                        continue;
                    }
                    const size_t b = ((size_t)s * k->chunk_elems + j) / block;
                    const double q = dc->tq[b];
                    const double carry =
                        o->bucket < 0 ? q : (changed ? dc->qmax_prev : (double)dc->qhist[pid]);
                    const double bound = q + 2.0 * carry + dc->tu[b];
                    double exact = 0.0;
                    for (int r = 0; r < n; r++) {
                        exact += o->bucket >= 0
                                     ? (double)grad_value(&dc->model, r, dc->step, dc->nmicro, pid)
                                     : (double)small_value(r, dc->step, o->key, e);
                    }
                    const double err = (double)o->out[e] - exact;
                    if (!(fabs(err) <= bound)) {
                        if (dc->violations++ == 0) {
                            dc->vfirst = dc->step;
                            snprintf(dc->vmsg, sizeof dc->vmsg,
                                     "step %d op %d call %d element %zu: %.9g, exact %.9g, error "
                                     "%.3g > bound %.3g",
                                     dc->step, i, kk, e, (double)o->out[e], exact, err, bound);
                        }
                        dc->vlast = dc->step;
                    }
                    dc->worst = fmax(dc->worst, fabs(err) / bound);
                    if (o->bucket >= 0) {
                        dc->qhist[pid] = fmaxf(dc->qhist[pid], (float)q);
                        if (dc->steady) {
                            dc->esum[pid] += err;
                            dc->eabs[pid] += fabs(err);
                            dc->cls[pid] = (uint8_t)ci;
                        }
                    }
                }
            }
            bb += cb;
        }
    }
    if (grads) {
        dc->qmax_prev = qmax_step;
    }
    free(all);
}

static const char *mode_name(void)
{
    const char *m = getenv("NANGILA_MODE");
    return m != NULL && *m != '\0' ? m : "int8";
}

/* The closed loop by its effect: ratio = mean |E_T| / (T mean |e_t|) =
 * sum_p |sum_t e_pt| / sum_p sum_t |e_pt| over the T steady steps. With
 * independent errors (stateless rounding) that is about 1/sqrt(T); when
 * every error is corrected later (a closed loop), about 1/T. */
static void comm_report(ddp_comm *dc, int period, double *ratio_out, double *beyond)
{
    enum { NV = 6 + 2 * MAX_CLASSES };
    double mine[NV], all[MAX_RANKS * NV], tot[NV];
    memset(mine, 0, sizeof mine);
    for (uint32_t p = 0; p < dc->model.nparams; p++) {
        if (!dc->mine[p]) {
            continue;
        }
        mine[0] += fabs(dc->esum[p]);
        mine[1] += dc->eabs[p];
        mine[6 + 2 * dc->cls[p]] += fabs(dc->esum[p]);
        mine[7 + 2 * dc->cls[p]] += dc->eabs[p];
    }
    mine[2] = (double)dc->violations;
    mine[3] = dc->worst;
    mine[4] = dc->violations ? -(double)dc->vfirst : -1e9; /* min over ranks via max */
    mine[5] = dc->violations ? (double)dc->vlast : -1e9;
    hub_allgather(mine, sizeof mine, all);
    memset(tot, 0, sizeof tot);
    tot[4] = tot[5] = -1e9;
    for (int r = 0; r < g_nranks; r++) {
        for (int v = 0; v < NV; v++) {
            tot[v] = v >= 3 && v <= 5 ? fmax(tot[v], all[r * NV + v]) : tot[v] + all[r * NV + v];
        }
    }
    const double ratio = tot[1] > 0.0 ? tot[0] / tot[1] : 0.0;
    *ratio_out = tot[1] > 0.0 ? ratio : -1.0;
    *beyond = tot[2];
    if (g_rank != 0) {
        return;
    }
    char per[64] = "";
    if (period > 0) {
        snprintf(per, sizeof per, " [NANGILA_COLLNET_PERIOD=%d]", period);
    }
    if (tot[1] > 0.0) {
        printf("ddp-trace %s comm %s: time-averaged error 1/%.1f of one call (stateless would be "
               "~1/%.1f)%s\n",
               mode_name(), dc->name, ratio > 0.0 ? 1.0 / ratio : INFINITY, sqrt((double)DDP_T),
               per);
    } else {
        printf("ddp-trace %s comm %s: every result exact, nothing to measure%s\n", mode_name(),
               dc->name, per);
    }
    for (int c = 0; c < dc->ncls; c++) {
        const double e = tot[6 + 2 * c], a = tot[7 + 2 * c];
        printf("  comm %s calls of %7zu elements (%4zu KiB), %2d per step: %s", dc->name,
               dc->cls_count[c], dc->cls_count[c] * 4 / 1024, dc->cls_calls[c],
               a > 0.0 ? "" : "exact\n");
        if (a > 0.0) {
            printf("time-averaged error 1/%.1f\n", e > 0.0 ? a / e : INFINITY);
        }
    }
    printf("  comm %s: worst error %.2f of its bound%s; %lld of %lld stale send elements were "
           "non-zero when the GPU wrote the slot\n",
           dc->name, tot[3], tot[2] > 0 ? " (with violations)" : "", dc->stale_nonzero,
           dc->stale_total);
    if (tot[2] > 0) {
        printf("  comm %s: %.0f elements beyond their bound, steps %.0f to %.0f (0: warm-up, "
               "1000+: evaluation; a failure unless NANGILA_COLLNET_PERIOD is set)\n",
               dc->name, tot[2], -tot[4], tot[5]);
    }
}

/* ---- state digests logged at closeColl -------------------------------------- */

static struct {
    int found, rank, nranks;
    unsigned long long pairs, shared;
} g_dig;

/* NANGILA_MODE=auto's lines. While the collComms run, the engine logs a
 * choice when it is made or changes ("collNet: auto 1..2 MiB: int8 (...)",
 * INFO, needs NANGILA_LOG_LEVEL=info); the two comms interleave them in an
 * order that differs between ranks, so they are compared as a multiset (a
 * sum of line digests). At closeColl the plugin lists every class (choice,
 * calls, agreements, changes, agreed times) under a header with the
 * comm's agreement count; those lines are compared per comm, in order. */
static struct {
    uint64_t run_sum, run_n; /* choice lines while running */
    uint64_t close_digest;   /* the class lines of the comm being closed */
    int close_n;
    long long close_agreements, close_rounds; /* header's count; sum over classes */
    char close_text[2048];                    /* rank 0 prints them */
} g_auto;

static void capture_auto(const char *msg)
{
    const char *p = strstr(msg, "collNet: auto ");
    if (p != NULL) {
        g_auto.run_sum += ngl_hash_splitmix64(digest((const uint8_t *)p, strlen(p)));
        g_auto.run_n++;
        return;
    }
    p = strstr(msg, "of the slowest rank), ");
    if (p != NULL && strstr(msg, "NANGILA_MODE=auto, per slice size") != NULL) {
        g_auto.close_agreements = atoll(p + strlen("of the slowest rank), "));
        return;
    }
    p = strstr(msg, "collNet rank ");
    const char *a = p != NULL ? strstr(p, " auto ") : NULL;
    if (a == NULL || strstr(a, " agreements, ") == NULL) {
        return;
    }
    a++; /* "auto <range>: <choice>, N calls, N agreements, N changes (...)" */
    const char *calls = strstr(a, " calls, ");
    g_auto.close_digest =
        ngl_hash_splitmix64(g_auto.close_digest ^ digest((const uint8_t *)a, strlen(a)));
    g_auto.close_n++;
    g_auto.close_rounds += calls != NULL ? atoll(calls + strlen(" calls, ")) : -1000000;
    const size_t used = strlen(g_auto.close_text);
    snprintf(g_auto.close_text + used, sizeof g_auto.close_text - used, "    %s\n", a);
}

static void capture_digest(ngl_nccl_log_level_t level, const char *msg)
{
    (void)level;
    capture_auto(msg);
    const char *p = strstr(msg, "collNet rank ");
    if (p == NULL || strstr(p, " state digests: ") == NULL) {
        return;
    }
    int r = -1, n = -1;
    unsigned long long a = 0, b = 0;
    if (sscanf(p, "collNet rank %d/%d state digests: pairs %llx shared %llx", &r, &n, &a, &b) ==
        4) {
        g_dig.found++;
        g_dig.rank = r;
        g_dig.nranks = n;
        g_dig.pairs = a;
        g_dig.shared = b;
    }
}

/* NANGILA_MODE=auto: the class lines @p dc logged at closeColl are the
 * same on every rank, list at least one class, and account for every
 * agreement the comm ran (one internal allgather each). @return its
 * agreements. */
static long long auto_close_check(const ddp_comm *dc)
{
    struct {
        uint64_t digest;
        int64_t n, agreements, rounds;
    } mine = {g_auto.close_digest, g_auto.close_n, g_auto.close_agreements, g_auto.close_rounds},
      all[MAX_RANKS];
    hub_allgather(&mine, sizeof mine, all);
    for (int r = 0; r < g_nranks; r++) {
        CHECK(all[r].n == all[0].n && all[r].digest == all[0].digest &&
                  all[r].agreements == all[0].agreements,
              "comm %s: rank %d logged other auto choices at closeColl than rank 0 (%lld vs %lld "
              "classes, %lld vs %lld agreements)",
              dc->name, r, (long long)all[r].n, (long long)all[0].n, (long long)all[r].agreements,
              (long long)all[0].agreements);
    }
    CHECK(mine.n > 0, "comm %s: no auto class lines at closeColl", dc->name);
    CHECK(mine.rounds == mine.agreements,
          "comm %s: classes report %lld agreements, the comm ran %lld allgathers", dc->name,
          (long long)mine.rounds, (long long)mine.agreements);
    if (g_rank == 0) {
        printf("  comm %s NANGILA_MODE=auto, identical on %d ranks, %lld agreements:\n%s", dc->name,
               g_nranks, (long long)mine.agreements, g_auto.close_text);
    }
    return mine.agreements;
}

/* Close @p dc's collComm and check the digests it logged, if any: pairs
 * XOR to 0 over all ranks, shared equal on all ranks; under auto, its
 * choices (auto_close_check). @return its auto agreements (0 otherwise). */
static long long comm_close(ddp_comm *dc, int autom)
{
    comm_free_dbufs(dc);
    memset(&g_dig, 0, sizeof g_dig);
    g_auto.close_digest = 0;
    g_auto.close_n = 0;
    g_auto.close_agreements = -1;
    g_auto.close_rounds = 0;
    g_auto.close_text[0] = '\0';
    coll_teardown(&dc->cx);
    const long long agreements = autom ? auto_close_check(dc) : 0;
    struct {
        int32_t found, rank, nranks, pad;
        uint64_t pairs, shared;
    } mine = {g_dig.found, g_dig.rank, g_dig.nranks, 0, g_dig.pairs, g_dig.shared}, all[MAX_RANKS];
    hub_allgather(&mine, sizeof mine, all);
    int reported = 0;
    uint64_t x = 0;
    for (int r = 0; r < g_nranks; r++) {
        reported += all[r].found != 0;
    }
    if (reported == 0) {
        if (g_rank == 0) {
            printf("  comm %s state digests: not reported by this plugin\n", dc->name);
        }
        return agreements;
    }
    for (int r = 0; r < g_nranks; r++) {
        CHECK(all[r].found == 1, "comm %s: rank %d logged %d state digest lines at closeColl",
              dc->name, r, all[r].found);
        CHECK(all[r].rank == r && all[r].nranks == g_nranks,
              "comm %s: rank %d logged digests as rank %d/%d", dc->name, r, all[r].rank,
              all[r].nranks);
        CHECK(all[r].shared == all[0].shared,
              "comm %s: shared state digest %016llx on rank %d, %016llx on rank 0", dc->name,
              (unsigned long long)all[r].shared, r, (unsigned long long)all[0].shared);
        x ^= all[r].pairs;
    }
    CHECK(x == 0, "comm %s: pair state digests XOR to %016llx, not 0", dc->name,
          (unsigned long long)x);
    if (g_rank == 0) {
        printf("  comm %s state digests agree: pairs XOR to 0, shared %016llx on %d ranks\n",
               dc->name, (unsigned long long)all[0].shared, g_nranks);
    }
    return agreements;
}

/* ---- the scenario ----------------------------------------------------------------- */

static void comm_describe(ddp_comm *dc)
{
    double mib = (double)dc->model.nparams * 4.0 / 1048576.0;
    printf("comm %s (%s%s): %u fp32 parameters (%.2f MiB)\n", dc->name, dc->what,
           dc->reg ? ", registered buffers in place" : "", dc->model.nparams, mib);
    for (int l = 0; l < 2; l++) {
        const ddp_layout *lay = &dc->lay[l];
        printf("  %s:", l == 0 ? "first-iteration buckets" : "rebuilt buckets");
        for (int b = 0; b < lay->nbuckets; b++) {
            nr_op op;
            nr_op_plan(&dc->cfg, lay->count[b], 4, dc->reg, &op);
            size_t stale = 0;
            for (int k = 0; k < op.ncalls; k++) {
                for (int s = 0; s < op.calls[k].nsubs; s++) {
                    stale += op.calls[k].chunk_elems - op.calls[k].nvalid[s];
                }
            }
            printf(" [%.2f MiB: %d calls, %d ch x %zu KiB, %zu stale]",
                   (double)lay->count[b] * 4.0 / 1048576.0, op.ncalls, op.nchannels,
                   dc->reg ? op.calls[0].count * 4 / 1024 : op.chunk_bytes / 1024, stale);
            nr_op_free(&op);
        }
        printf("\n");
    }
}

static void run_step(ddp_comm **cs, int phase, int step)
{
    for (int c = 0; c < 2; c++) {
        step_build(cs[c], c == 0, phase, step);
        cs[c]->run = 0;
        cs[c]->nb = 0;
        comm_reg_buffers(cs[c]);
    }
    const double dl = now_s() + 2 * DEADLINE_S;
    int busy = 1;
    while (busy) {
        CHECK(now_s() < dl, "step %d: collNet calls did not complete (comm A op %d, comm B op %d)",
              step, cs[0]->run, cs[1]->run);
        int moved = 0;
        busy = comm_progress(cs[0], &moved);
        busy |= comm_progress(cs[1], &moved);
        if (!moved) {
            sched_yield(); /* three ranks may share two cores (CI) */
        }
    }
    for (int c = 0; c < 2; c++) {
        step_check(cs[c]);
        for (int i = 0; i < cs[c]->nops; i++) {
            nr_op_free(&cs[c]->ops[i].plan);
        }
    }
}

void scenario_collnet_ddp(const char *plugin, void *arg)
{
    (void)plugin;
    const ddp_opts *opt = arg;
    const double t0 = now_s();
    const int period = collnet_period();
    nr_self_check();
    g_block = env_int("NANGILA_BLOCK", 256);
    CHECK(g_block > 0 && 8192 % g_block == 0, "NANGILA_BLOCK=%d does not divide a chunk", g_block);
    g_skew_us = opt->skew_us;
    memset(&g_auto, 0, sizeof g_auto);
    if (opt->autom) {
        const char *m = getenv("NANGILA_MODE");
        CHECK(m == NULL || !strcmp(m, "auto"), "run with NANGILA_MODE=auto, not %s", m);
        /* the engine's choice lines are INFO, filtered before NCCL's logger */
        setenv("NANGILA_LOG_LEVEL", "info", 1);
    }
    g_log_hook = capture_digest;
    ddp_comm *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    CHECK(a != NULL && b != NULL, "out of memory");
    comm_init(a, "A", "a transformer, 16 channels, torch's default buckets", MODEL_A,
              (int)(sizeof MODEL_A / sizeof *MODEL_A), 16, 1, opt->reg, 0xa11ce5eedull);
    comm_init(b, "B", "an MLP, 4 channels, older torch's buckets", MODEL_B,
              (int)(sizeof MODEL_B / sizeof *MODEL_B), 4, 0, opt->reg, 0xb0b5eedull);
    ddp_comm *cs[2] = {a, b};
    if (g_rank == 0) {
        comm_describe(a);
        comm_describe(b);
    }
    int quiet_micro = 0;
    for (int s = 0; s <= DDP_T; s++) {
        if (s > 0 && s % 4 == 2) {
            quiet_micro++; /* the first micro-batch runs under no_sync(): no allreduce */
        }
        run_step(cs, s == 0 ? PH_WARMUP : PH_STEADY, s);
        if (s == DDP_EVAL_AFTER) {
            for (int e = 0; e < 2; e++) {
                run_step(cs, PH_EVAL, 1000 + 10 * s + e);
            }
        }
    }
    const double secs = now_s() - t0;
    double ratio[2], beyond[2];
    for (int c = 0; c < 2; c++) {
        comm_report(cs[c], period, &ratio[c], &beyond[c]);
    }
    long long agreements = 0;
    for (int c = 0; c < 2; c++) {
        agreements += comm_close(cs[c], opt->autom);
    }
    if (opt->autom) {
        /* Every choice a rank made while running, made by every rank. */
        uint64_t mine[2] = {g_auto.run_sum, g_auto.run_n}, all[2 * MAX_RANKS];
        hub_allgather(mine, sizeof mine, all);
        for (int r = 0; r < g_nranks; r++) {
            CHECK(all[2 * r] == all[0] && all[2 * r + 1] == all[1],
                  "rank %d made other auto choices while running than rank 0 (%llu vs %llu "
                  "lines)",
                  r, (unsigned long long)all[2 * r + 1], (unsigned long long)all[1]);
        }
        CHECK(g_auto.run_n > 0, "no auto choice was logged while running");
        CHECK(agreements > 0, "no auto agreement ran");
        if (g_rank == 0) {
            printf("ddp-trace auto: %llu choices logged while running and %lld agreements, the "
                   "same on %d ranks%s\n",
                   (unsigned long long)g_auto.run_n, agreements, g_nranks,
                   g_skew_us ? " (posts skewed per rank)" : "");
        }
    }
    if (g_rank == 0) {
        printf("ddp-trace %s: %d steps (%d micro-batches without allreduce, 2 evaluation "
               "passes), %lld + %lld calls on comms A + B, %.1f s\n",
               mode_name(), DDP_T + 1, quiet_micro, a->calls, b->calls, secs);
    }
    /* Without NANGILA_COLLNET_PERIOD every bound holds. With it, state
     * lanes may carry one call's error into another call of the same size
     * (that is what its measurement shows), so bounds are only counted. The
     * report above comes first either way. */
    for (int c = 0; c < 2 && period == 0; c++) {
        CHECK(beyond[c] == 0.0, "comm %s: %.0f results beyond their bound; the first here: %s",
              cs[c]->name, beyond[c], cs[c]->violations ? cs[c]->vmsg : "(on other ranks)");
    }
    /* Auto switches a class between modes (exploration, re-probes), which
     * interrupts the closed loop by design: bounds and identity only. */
    if (period == 0 && qmax_of_mode() > 0 && !opt->autom) {
        for (int c = 0; c < 2; c++) {
            CHECK(ratio[c] >= 0.0 && ratio[c] <= 1.0 / 12.0,
                  "comm %s: time-averaged error 1/%.1f of one call; a closed loop gives 1/12 or "
                  "less (stateless rounding gives ~1/%.1f)",
                  cs[c]->name, ratio[c] > 0.0 ? 1.0 / ratio[c] : 0.0, sqrt((double)DDP_T));
        }
    }
    for (int c = 0; c < 2; c++) {
        ddp_comm *dc = cs[c];
        layout_free(&dc->lay[0]);
        layout_free(&dc->lay[1]);
        model_free(&dc->model);
        free(dc->in_all);
        free(dc->out_all);
        free(dc->qhist);
        free(dc->esum);
        free(dc->eabs);
        free(dc->cls);
        free(dc->mine);
        free(dc->bmax);
        free(dc->tq);
        free(dc->tu);
        free(dc->req);
        free(dc->done);
        free(dc);
    }
    g_log_hook = NULL;
}
