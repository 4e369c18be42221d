/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pmpi_collective.c -- progress of the compressed allreduce over PMPI
 * point-to-point: the engine's reduce-scatter and allgather of frames
 * (engine/include/ngl_engine.h describes the protocol), pipelined over the
 * engine's segments.
 *
 * Up to NGL_PMPI_WINDOW segments are in flight: while segment s's frames
 * travel, segment s+1 is being encoded. Open MPI's TCP transport moves data
 * only inside MPI calls, so the encode loop calls PMPI_Testsome between
 * frames.
 */
#include "pmpi_internal.h"

#include <stdio.h>
#include <string.h>

enum { K_RS_RECV = 0, K_RS_SEND = 1, K_AG_RECV = 2, K_AG_SEND = 3 };
enum { W_FREE = 0, W_RS = 1, W_AG = 2 };

typedef struct win {
    uint32_t seg;
    int stage;
    int rs_pending; /* reduce-scatter frames still to arrive */
    int ag_pending; /* allgather frames still to arrive */
    int sends;      /* sends not yet complete */
    int ag_done;    /* allgather frames decoded */
} win;

typedef struct run {
    ngl_pmpi_comm *ctx;
    ngl_engine_set *set;
    ngl_engine_stats *stats;
    const float *src;
    float *dst;
    int P, me;
    size_t cap;
    win w[NGL_PMPI_WINDOW];
} run;

static unsigned char *frame_buf(const run *r, unsigned w, int kind, int peer)
{
    /* per window: P send buffers (reduce-scatter), P receive buffers
     * (reduce-scatter), P receive buffers (allgather), 1 allgather frame */
    size_t idx = (size_t)w * (3u * (size_t)r->P + 1u);
    switch (kind) {
    case K_RS_SEND: idx += (size_t)peer; break;
    case K_RS_RECV: idx += (size_t)r->P + (size_t)peer; break;
    case K_AG_RECV: idx += 2u * (size_t)r->P + (size_t)peer; break;
    default: idx += 3u * (size_t)r->P; break;
    }
    return r->ctx->frames + idx * r->cap;
}

static size_t req_index(const run *r, unsigned w, int kind, int peer)
{
    return ((size_t)w * 4u + (size_t)kind) * (size_t)r->P + (size_t)peer;
}

static int seg_tag(const run *r, uint32_t seg, int stage)
{
    const uint64_t ub = (uint64_t)r->ctx->tag_ub + 1u;
    return (int)((2u * (uint64_t)seg + (uint64_t)stage) % ub);
}

/* Encode with a host stream of the engine (complete when it returns). */
static ngl_status encode(const ngl_engine_set *set, ngl_cc_stream *s, const float *src,
                         unsigned char *out, size_t cap, size_t *flen)
{
    int done = 0;
    ngl_status st = set->ops->encode(s, src, out, cap);
    if (st == NGL_OK) {
        st = set->ops->poll(s, &done, flen);
    }
    return st;
}

/* A frame we produced or received does not decode: a bug or memory
 * corruption. Returning a wrong sum is worse than stopping. */
static void fatal_codec(const run *r, const char *what, ngl_status st)
{
    ngl_pmpi_log(NGL_LOG_ERROR, "%s failed: %s; aborting the job rather than return a wrong sum",
                 what, ngl_status_str(st));
    fprintf(stderr, "nangila: %s failed: %s\n", what, ngl_status_str(st));
    fflush(stderr);
    PMPI_Abort(r->ctx->comm, MPI_ERR_INTERN);
}

/* Wait for (blocking) or test for (not blocking) completions and account them. */
static int progress(run *r, int blocking)
{
    ngl_pmpi_comm *ctx = r->ctx;
    const int n = (int)(NGL_PMPI_WINDOW * 4u * (unsigned)r->P);
    int outcount = 0;
    int rc = blocking ? PMPI_Waitsome(n, ctx->reqs, &outcount, ctx->indices, ctx->statuses)
                      : PMPI_Testsome(n, ctx->reqs, &outcount, ctx->indices, ctx->statuses);
    if (rc != MPI_SUCCESS) {
        return rc;
    }
    if (outcount == MPI_UNDEFINED) {
        if (blocking) {
            /* Nothing in flight yet nothing to do: cannot happen. */
            fatal_codec(r, "pipeline scheduling", NGL_ERR_INVALID_ARG);
        }
        return MPI_SUCCESS;
    }
    for (int i = 0; i < outcount; i++) {
        const size_t idx = (size_t)ctx->indices[i];
        const unsigned w = (unsigned)(idx / (4u * (size_t)r->P));
        const int kind = (int)(idx / (size_t)r->P % 4u);
        if (kind == K_RS_RECV || kind == K_AG_RECV) {
            int len = 0;
            PMPI_Get_count(&ctx->statuses[i], MPI_BYTE, &len);
            ctx->lens[idx] = (size_t)len;
            if (kind == K_RS_RECV) {
                r->w[w].rs_pending--;
            } else {
                r->w[w].ag_pending--;
            }
        } else {
            r->w[w].sends--;
        }
    }
    return MPI_SUCCESS;
}

/* Post the receives of segment @p seg and send our reduce-scatter frames. */
static int seg_start(run *r, unsigned w, uint32_t seg)
{
    ngl_pmpi_comm *ctx = r->ctx;
    ngl_engine_set *set = r->set;
    win *wi = &r->w[w];
    memset(wi, 0, sizeof *wi);
    wi->seg = seg;
    wi->stage = W_RS;

    uint64_t off;
    const uint64_t mine = ngl_engine_seg_len(set, r->me, seg, &off);
    for (int p = 0; p < r->P; p++) {
        if (p == r->me) {
            continue;
        }
        int rc;
        if (mine > 0) {
            rc = PMPI_Irecv(frame_buf(r, w, K_RS_RECV, p), (int)r->cap, MPI_BYTE, p,
                            seg_tag(r, seg, 0), ctx->ic, &ctx->reqs[req_index(r, w, K_RS_RECV, p)]);
            if (rc != MPI_SUCCESS) {
                return rc;
            }
            wi->rs_pending++;
        }
        if (ngl_engine_seg_len(set, p, seg, &off) > 0) {
            rc = PMPI_Irecv(frame_buf(r, w, K_AG_RECV, p), (int)r->cap, MPI_BYTE, p,
                            seg_tag(r, seg, 1), ctx->ic, &ctx->reqs[req_index(r, w, K_AG_RECV, p)]);
            if (rc != MPI_SUCCESS) {
                return rc;
            }
            wi->ag_pending++;
        }
    }
    /* Start with the next rank up, so the ranks do not all send to the
     * same owner first. */
    for (int d = 1; d < r->P; d++) {
        const int j = (r->me + d) % r->P;
        const uint64_t len = ngl_engine_seg_len(set, j, seg, &off);
        if (len == 0) {
            continue;
        }
        unsigned char *out = frame_buf(r, w, K_RS_SEND, j);
        size_t flen = 0;
        const double t0 = ngl_pmpi_now();
        const ngl_status st = encode(set, set->rs_enc[(size_t)seg * (size_t)r->P + (size_t)j],
                                     r->src + off, out, r->cap, &flen);
        r->stats->t_encode += ngl_pmpi_now() - t0;
        if (st != NGL_OK) {
            fatal_codec(r, "reduce-scatter encode", st);
            return MPI_ERR_INTERN;
        }
        r->stats->frame_in += len * sizeof(float);
        r->stats->frame_out += flen;
        r->stats->bytes_sent += flen;
        int rc = PMPI_Isend(out, (int)flen, MPI_BYTE, j, seg_tag(r, seg, 0), ctx->ic,
                            &ctx->reqs[req_index(r, w, K_RS_SEND, j)]);
        if (rc != MPI_SUCCESS) {
            return rc;
        }
        wi->sends++;
        rc = progress(r, 0);
        if (rc != MPI_SUCCESS) {
            return rc;
        }
    }
    return MPI_SUCCESS;
}

/* All reduce-scatter frames of the segment are in: reduce, then send the
 * reduced chunk to everyone and decode it locally. */
static int seg_reduce(run *r, unsigned w)
{
    ngl_pmpi_comm *ctx = r->ctx;
    ngl_engine_set *set = r->set;
    win *wi = &r->w[w];
    const uint32_t seg = wi->seg;
    wi->stage = W_AG;
    uint64_t off;
    const uint64_t len = ngl_engine_seg_len(set, r->me, seg, &off);
    if (len == 0) {
        return MPI_SUCCESS;
    }
    float *acc = r->dst + off;
    if (r->src != r->dst) {
        memcpy(acc, r->src + off, len * sizeof(float));
    }
    const size_t base = (size_t)seg * (size_t)r->P;
    double t0 = ngl_pmpi_now();
    for (int i = 0; i < r->P; i++) {
        if (i == r->me) {
            continue;
        }
        const ngl_status st =
            set->ops->decode(set->rs_dec[base + (size_t)i], frame_buf(r, w, K_RS_RECV, i),
                             ctx->lens[req_index(r, w, K_RS_RECV, i)], acc, 1);
        if (st != NGL_OK) {
            fatal_codec(r, "reduce-scatter decode", st);
            return MPI_ERR_INTERN;
        }
    }
    const double t1 = ngl_pmpi_now();
    r->stats->t_decode += t1 - t0;

    unsigned char *out = frame_buf(r, w, K_AG_SEND, 0);
    size_t flen = 0;
    ngl_status st = encode(set, set->ag_enc[seg], acc, out, r->cap, &flen);
    const double t2 = ngl_pmpi_now();
    r->stats->t_encode += t2 - t1;
    if (st != NGL_OK) {
        fatal_codec(r, "allgather encode", st);
        return MPI_ERR_INTERN;
    }
    r->stats->frame_in += len * sizeof(float);
    r->stats->frame_out += flen;
    for (int d = 1; d < r->P; d++) {
        const int p = (r->me + d) % r->P;
        const int rc = PMPI_Isend(out, (int)flen, MPI_BYTE, p, seg_tag(r, seg, 1), ctx->ic,
                                  &ctx->reqs[req_index(r, w, K_AG_SEND, p)]);
        if (rc != MPI_SUCCESS) {
            return rc;
        }
        wi->sends++;
        r->stats->bytes_sent += flen;
    }
    /* The owner keeps what everyone else will decode, not its exact sum. */
    t0 = ngl_pmpi_now();
    st = set->ops->decode(set->ag_dec[base + (size_t)r->me], out, flen, acc, 0);
    r->stats->t_decode += ngl_pmpi_now() - t0;
    if (st != NGL_OK) {
        fatal_codec(r, "allgather decode (own chunk)", st);
        return MPI_ERR_INTERN;
    }
    return MPI_SUCCESS;
}

/* All allgather frames of the segment are in: decode them into place. */
static int seg_gather(run *r, unsigned w)
{
    ngl_pmpi_comm *ctx = r->ctx;
    ngl_engine_set *set = r->set;
    win *wi = &r->w[w];
    const size_t base = (size_t)wi->seg * (size_t)r->P;
    const double t0 = ngl_pmpi_now();
    for (int o = 0; o < r->P; o++) {
        uint64_t off;
        if (o == r->me || ngl_engine_seg_len(set, o, wi->seg, &off) == 0) {
            continue;
        }
        const ngl_status st =
            set->ops->decode(set->ag_dec[base + (size_t)o], frame_buf(r, w, K_AG_RECV, o),
                             ctx->lens[req_index(r, w, K_AG_RECV, o)], r->dst + off, 0);
        if (st != NGL_OK) {
            fatal_codec(r, "allgather decode", st);
            return MPI_ERR_INTERN;
        }
    }
    r->stats->t_decode += ngl_pmpi_now() - t0;
    wi->ag_done = 1;
    return MPI_SUCCESS;
}

int ngl_pmpi_allreduce_run(ngl_pmpi_comm *ctx, ngl_engine_set *set, const float *src, float *dst)
{
    run r;
    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    r.set = set;
    r.stats = ngl_engine_stats_of(ctx->eng);
    r.src = src;
    r.dst = dst;
    r.P = ctx->size;
    r.me = ctx->rank;
    r.cap = ctx->frame_cap;

    const uint32_t nseg = set->nseg;
    uint32_t next = 0, done = 0;
    int rc = MPI_SUCCESS;
    while (done < nseg) {
        int worked = 0;
        /* Finish what others wait for first: reduced chunks, then decodes. */
        for (unsigned w = 0; w < NGL_PMPI_WINDOW && rc == MPI_SUCCESS; w++) {
            win *wi = &r.w[w];
            if (wi->stage == W_RS && wi->rs_pending == 0) {
                rc = seg_reduce(&r, w);
                worked = 1;
            }
            if (rc == MPI_SUCCESS && wi->stage == W_AG && !wi->ag_done && wi->ag_pending == 0) {
                rc = seg_gather(&r, w);
                worked = 1;
            }
            if (wi->stage == W_AG && wi->ag_done && wi->sends == 0) {
                wi->stage = W_FREE;
                done++;
                worked = 1;
            }
        }
        for (unsigned w = 0; w < NGL_PMPI_WINDOW && next < nseg && rc == MPI_SUCCESS; w++) {
            if (r.w[w].stage == W_FREE) {
                rc = seg_start(&r, w, next++);
                worked = 1;
                break;
            }
        }
        if (rc == MPI_SUCCESS && done < nseg) {
            rc = progress(&r, !worked);
        }
        if (rc != MPI_SUCCESS) {
            return rc;
        }
    }
    return MPI_SUCCESS;
}
