/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_hier.c -- the hierarchical allreduce: exact inside a node, compressed
 * across nodes.
 *
 * Ranks on one node share memory, so compressing what they exchange spends
 * codec time where there is no bandwidth to save, and a flat compressed
 * allreduce sends every rank's frames to every other rank, most of them
 * across the network. Open MPI's HAN and NCCL reduce inside the node first
 * and cross the network once per node. Two ways to cross it:
 *
 *   slices   (NANGILA_HIER=slices; auto's choice when every node has the
 *            same number of ranks L): an exact reduce-scatter inside the node
 *            leaves local rank l with slice l of the node's sum; the ranks
 *            holding slice l on every node (the "cross" communicator of
 *            local rank l) run the compressed allreduce of that slice; an
 *            exact allgather inside the node puts the slices together. All
 *            L ranks of a node drive the network at once, each with 1/L of
 *            the data.
 *   leaders  (NANGILA_HIER=leaders; auto's choice when nodes differ in
 *            size): an exact reduce to local rank 0, the compressed
 *            allreduce of the whole buffer among the nodes' rank 0s, an
 *            exact broadcast inside the node.
 *
 * The compressed step is an ordinary context of this wrapper on the cross
 * communicator (pmpi_comm.c), with its own engine, streams, closed loop and
 * auto decision: auto measures the link between nodes, which is the one
 * that matters. Every rank of every node ends bit-identical: the cross
 * allreduce is bit-identical across its ranks (the engine's guarantee), and
 * inside a node the allgather or broadcast copies one rank's bits.
 *
 * Node layout: MPI_Comm_split_type(MPI_COMM_TYPE_SHARED), or, for tests
 * that fake nodes on one host, NANGILA_NODE_ID (ranks with the same id form
 * a node). One node, or one rank per node, keeps the flat algorithm.
 */
#include "ngl_env.h"
#include "pmpi_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct ngl_pmpi_hier {
    int kind;                 /* NGL_HIER_SLICES or NGL_HIER_LEADERS */
    MPI_Comm local;           /* the ranks of this node, ordered by rank in the communicator */
    MPI_Comm cross;           /* the ranks with our local rank, one per node */
    int L, lr, N;             /* ranks on this node, local rank, nodes */
    ngl_pmpi_comm *cross_ctx; /* the compressed step's context (NULL: plain) */
    int *counts, *displs;     /* per local rank: slice lengths and offsets */
    float *slice;             /* this rank's slice of the node's sum */
    size_t slice_cap;         /* floats */
    uint64_t calls;           /* calls run hierarchically, and their time */
    double t_calls;
};

static const char *const kind_names[] = {"off", "slices", "leaders", "auto"};

/* NANGILA_HIER and NANGILA_NODE_ID, read once at start-up. */
static struct {
    int want; /* NGL_HIER_* */
    int node_id_set;
    int node_id;
} S = {.want = NGL_HIER_AUTO};

int ngl_pmpi_hier_settings_read(char *err, size_t err_cap)
{
    const char *v = getenv("NANGILA_HIER");
    S.want = NGL_HIER_AUTO;
    if (v != NULL) {
        S.want = -1;
        for (int k = 0; k < 4; k++) {
            if (!strcasecmp(v, kind_names[k])) {
                S.want = k;
            }
        }
        if (S.want < 0) {
            ngl_env_invalid("NANGILA_HIER", v, err, err_cap);
            return -1;
        }
    }
    uint64_t id = UINT64_MAX;
    if (ngl_env_read_u64(ngl_env_getenv, "NANGILA_NODE_ID", 0, INT32_MAX, &id, err, err_cap) != 0) {
        return -1;
    }
    S.node_id_set = id != UINT64_MAX;
    S.node_id = S.node_id_set ? (int)id : 0;
    return 0;
}

int ngl_pmpi_hier_describe(char *buf, size_t cap)
{
    /* The node id's value differs between ranks by design; whether it is
     * set must not (a mix would split nodes inconsistently). */
    return snprintf(buf, cap, " hier=%s%s", kind_names[S.want],
                    S.node_id_set ? " node_id=set" : "");
}

static void hier_free(ngl_pmpi_hier *h)
{
    if (h == NULL) {
        return;
    }
    /* Freeing the cross communicator deletes its context (attribute delete
     * callback), which merges its statistics. */
    if (h->cross != MPI_COMM_NULL) {
        PMPI_Comm_free(&h->cross);
    }
    if (h->local != MPI_COMM_NULL) {
        PMPI_Comm_free(&h->local);
    }
    free(h->slice);
    free(h->counts);
    free(h->displs);
    free(h);
}

void ngl_pmpi_hier_destroy(ngl_pmpi_comm *ctx)
{
    const ngl_pmpi_hier *h = ctx->hier;
    if (h != NULL && h->calls > 0) {
        ngl_pmpi_summary_append("nangila:   hierarchical allreduce on a communicator of %d ranks "
                                "(%d nodes x %d ranks, %s): %llu calls, %.3f s\n",
                                ctx->size, h->N, h->L, kind_names[h->kind],
                                (unsigned long long)h->calls, h->t_calls);
    }
    hier_free(ctx->hier);
    ctx->hier = NULL;
}

/* Split ctx->ic into nodes; fills h->local, L, lr. */
static int split_nodes(const ngl_pmpi_comm *ctx, ngl_pmpi_hier *h)
{
    int rc = S.node_id_set ? PMPI_Comm_split(ctx->ic, S.node_id, ctx->rank, &h->local)
                           : PMPI_Comm_split_type(ctx->ic, MPI_COMM_TYPE_SHARED, ctx->rank,
                                                  MPI_INFO_NULL, &h->local);
    if (rc == MPI_SUCCESS) {
        rc = PMPI_Comm_size(h->local, &h->L);
    }
    if (rc == MPI_SUCCESS) {
        rc = PMPI_Comm_rank(h->local, &h->lr);
    }
    return rc;
}

int ngl_pmpi_hier_setup(ngl_pmpi_comm *ctx)
{
    if (S.want == NGL_HIER_OFF) {
        return MPI_SUCCESS;
    }
    ngl_pmpi_hier *h = calloc(1, sizeof *h);
    int ok = h != NULL;
    int rc = MPI_SUCCESS;
    if (ok) {
        h->local = h->cross = MPI_COMM_NULL;
        rc = split_nodes(ctx, h);
        ok = rc == MPI_SUCCESS;
    }
    /* Layout, agreed: {max L, -min L, nodes, every rank ok}. */
    int v[4] = {ok ? h->L : 0, ok ? -h->L : 0, ok && h->lr == 0, ok};
    int mx[2];
    int sums[2];
    if (PMPI_Allreduce(v, mx, 2, MPI_INT, MPI_MAX, ctx->ic) != MPI_SUCCESS ||
        PMPI_Allreduce(v + 2, sums, 2, MPI_INT, MPI_SUM, ctx->ic) != MPI_SUCCESS) {
        hier_free(h);
        return MPI_ERR_INTERN;
    }
    const int lmax = mx[0], lmin = -mx[1], nodes = sums[0], all_ok = sums[1] == ctx->size;
    if (!all_ok || nodes < 2 || lmax < 2) {
        /* One node, or one rank per node: the flat algorithm is the right one. */
        if (all_ok) {
            ngl_pmpi_log(NGL_LOG_INFO,
                         "communicator of %d ranks: %d node(s), %d to %d ranks per "
                         "node: flat compressed allreduce",
                         ctx->size, nodes, lmin, lmax);
        }
        hier_free(h);
        return MPI_SUCCESS;
    }
    h->N = nodes;
    h->kind =
        S.want == NGL_HIER_AUTO ? (lmin == lmax ? NGL_HIER_SLICES : NGL_HIER_LEADERS) : S.want;
    if (h->kind == NGL_HIER_SLICES && lmin != lmax) {
        ngl_pmpi_log(NGL_LOG_WARN,
                     "NANGILA_HIER=slices needs the same number of ranks on every node (%d to "
                     "%d here); using leaders",
                     lmin, lmax);
        h->kind = NGL_HIER_LEADERS;
    }
    h->counts = calloc((size_t)h->L, sizeof *h->counts);
    h->displs = calloc((size_t)h->L, sizeof *h->displs);
    ok = h->counts != NULL && h->displs != NULL;
    rc = PMPI_Comm_split(ctx->ic, h->lr, ctx->rank, &h->cross);
    ok = ok && rc == MPI_SUCCESS;
    if (rc == MPI_SUCCESS) {
        /* Collective over the cross communicator: every rank of it is here. */
        h->cross_ctx = ngl_pmpi_comm_create_flat(h->cross);
    }
    ok = ok && h->cross_ctx != NULL;
    if (PMPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, ctx->ic) != MPI_SUCCESS || !ok) {
        ngl_pmpi_log(NGL_LOG_WARN, "hierarchical set-up failed on some rank; flat allreduce");
        hier_free(h);
        return MPI_SUCCESS;
    }
    ngl_pmpi_log(NGL_LOG_INFO,
                 "communicator of %d ranks: %d nodes, %d to %d ranks per node: hierarchical "
                 "allreduce (%s; exact inside the node, compressed across nodes)",
                 ctx->size, nodes, lmin, lmax, kind_names[h->kind]);
    ctx->hier = h;
    return MPI_SUCCESS;
}

static int slice_reserve(ngl_pmpi_hier *h, size_t n)
{
    if (n <= h->slice_cap) {
        return 1;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(float)) != 0) {
        return 0;
    }
    free(h->slice);
    h->slice = p;
    h->slice_cap = n;
    return 1;
}

/* The compressed step on the cross communicator: @p n floats of @p buf,
 * in place. Below the size floor it is plain, and recorded as such. */
static int cross_allreduce(ngl_pmpi_hier *h, float *buf, int n, const ngl_pmpi_call_ops *ops)
{
    ngl_pmpi_comm *cx = h->cross_ctx;
    if (n == 0) {
        return MPI_SUCCESS; /* fewer floats than ranks on the node: the same on every node */
    }
    ngl_pmpi_call c = {
        .sendbuf = MPI_IN_PLACE,
        .recvbuf = buf,
        .count = n,
        .dt = MPI_FLOAT,
        .op = MPI_SUM,
        .token = ops->token(n, MPI_FLOAT, MPI_SUM, 1),
        .eligible = (uint64_t)n * sizeof(float) >= ngl_pmpi_settings()->min_bytes,
    };
    if (cx->status != NGL_PMPI_ACTIVE || !c.eligible) {
        if (cx->status == NGL_PMPI_ACTIVE) {
            ops->note(cx, &c);
        }
        return PMPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, h->cross);
    }
    return ops->run(cx, &c, h->cross);
}

static int run_slices(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c, const ngl_pmpi_call_ops *ops)
{
    ngl_pmpi_hier *h = ctx->hier;
    const void *src = c->sendbuf == MPI_IN_PLACE ? c->recvbuf : c->sendbuf;
    const int base = c->count / h->L, extra = c->count % h->L;
    for (int i = 0, off = 0; i < h->L; i++) {
        h->counts[i] = base + (i < extra);
        h->displs[i] = off;
        off += h->counts[i];
    }
    const int mine = h->counts[h->lr];
    if (!slice_reserve(h, (size_t)mine + 1u)) {
        ngl_pmpi_log(NGL_LOG_ERROR, "out of memory for a %d-float slice", mine);
        PMPI_Abort(ctx->comm, MPI_ERR_NO_MEM);
        return MPI_ERR_NO_MEM;
    }
    int rc = PMPI_Reduce_scatter(src, h->slice, h->counts, MPI_FLOAT, MPI_SUM, h->local);
    if (rc == MPI_SUCCESS) {
        rc = cross_allreduce(h, h->slice, mine, ops);
    }
    if (rc == MPI_SUCCESS) {
        rc = PMPI_Allgatherv(h->slice, mine, MPI_FLOAT, c->recvbuf, h->counts, h->displs, MPI_FLOAT,
                             h->local);
    }
    return rc;
}

static int run_leaders(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c, const ngl_pmpi_call_ops *ops)
{
    ngl_pmpi_hier *h = ctx->hier;
    const void *src = c->sendbuf == MPI_IN_PLACE ? c->recvbuf : c->sendbuf;
    int rc = PMPI_Reduce(h->lr == 0 && c->sendbuf == MPI_IN_PLACE ? MPI_IN_PLACE : src, c->recvbuf,
                         c->count, MPI_FLOAT, MPI_SUM, 0, h->local);
    if (rc == MPI_SUCCESS && h->lr == 0) {
        rc = cross_allreduce(h, c->recvbuf, c->count, ops);
    }
    if (rc == MPI_SUCCESS) {
        rc = PMPI_Bcast(c->recvbuf, c->count, MPI_FLOAT, 0, h->local);
    }
    return rc;
}

int ngl_pmpi_hier_run(ngl_pmpi_comm *ctx, const ngl_pmpi_call *c, const ngl_pmpi_call_ops *ops)
{
    ngl_pmpi_hier *h = ctx->hier;
    const double t0 = ngl_pmpi_now();
    const int rc = h->kind == NGL_HIER_SLICES ? run_slices(ctx, c, ops) : run_leaders(ctx, c, ops);
    if (rc != MPI_SUCCESS) {
        ctx->status = NGL_PMPI_FAILED;
        return rc;
    }
    h->calls++;
    h->t_calls += ngl_pmpi_now() - t0;
    return MPI_SUCCESS;
}
