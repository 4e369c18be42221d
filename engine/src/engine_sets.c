/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine_sets.c -- the engine of one communicator: call records, state sets
 * (every stream of one key), their memory bound and eviction, stream ids,
 * settings -> codec configuration, state digests.
 *
 * Every decision here is a function of the call sequence and of settings
 * that are equal on every rank (ngl_engine.h, "Determinism rule"): the
 * state memory charged for a set depends on its shape and the settings, not
 * on which streams this rank happens to hold; "last use" is a call number.
 */
#include "ngl_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SET_BUCKETS 256u
/* Sets unused for this many calls are dropped (at least; 4 periods when
 * the locked period is longer). Far more than the calls a layer keeps in
 * flight (NCCL: 64), so a queued call's set is never dropped. */
#define EVICT_MIN_CALLS 1024u
#define MAX_SETS        4096u

struct ngl_engine {
    ngl_engine_config cfg;
    ngl_ident ident;
    ngl_engine_set *buckets[SET_BUCKETS];
    ngl_engine_set *lru_head, *lru_tail;
    size_t nsets;
    uint64_t state_bytes; /* charged by stateful sets */
    uint64_t state_max;   /* NANGILA_STATE_MAX_MB in bytes */
    int bound_logged;
    uint64_t dead_sweep; /* lock count for which no dead-epoch set is left */
    ngl_engine_stats stats;
    ngl_auto *autom; /* NANGILA_MODE=auto decisions */
};

#define elog(e, ...) ngl_engine_logf(&(e)->cfg, __VA_ARGS__)

/* ---- tokens, stream ids, configuration ------------------------------------ */

static uint64_t token_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

uint64_t ngl_engine_token(uint64_t bytes, uint32_t op_class, uint64_t kind)
{
    uint64_t h = token_mix(0x4e474c, bytes);
    h = token_mix(h, op_class);
    return token_mix(h, kind);
}

enum { STAGE_RS = 1, STAGE_AG = 2 };

/* Stream id of (stage, sender, receiver, segment) of a set: the same on both
 * ends, different for every stream so that rounding noise is independent,
 * and different for every key, so a frame can never be decoded by another
 * key's decoder (the decoder checks the id). */
static uint64_t stream_id(const ngl_engine *e, const ngl_engine_set *set, int stage, int sender,
                          int receiver, uint32_t seg)
{
    uint64_t h = ngl_hash_mix64(e->cfg.uid ^ 0x6e616e67696c61ull);
    h = ngl_hash_mix64(h ^ set->token);
    h = ngl_hash_mix64(h ^ set->k);
    if (set->mode != e->cfg.codec.mode) {
        /* auto runs a key in a codec other than the configured one */
        h = ngl_hash_mix64(h ^ (uint64_t)set->mode << 48);
    }
    if (set->epoch > 1) {
        /* Keys of a later call pattern are new streams. (The first pattern
         * mixes nothing, which keeps the ids the MPI wrapper always had.) */
        h = ngl_hash_mix64(h ^ set->epoch << 8);
    }
    h = ngl_hash_mix64(
        h ^ ((uint64_t)stage << 56 | (uint64_t)(uint32_t)sender << 24 | (uint32_t)receiver));
    return ngl_hash_mix64(h ^ seg);
}

static void set_config(const ngl_engine *e, const ngl_engine_set *set, uint64_t count, uint64_t sid,
                       ngl_stream_config *cfg)
{
    const ngl_settings *s = &e->cfg.codec;
    ngl_stream_config_init(cfg);
    cfg->codec =
        set->exact ? NGL_CODEC_RAW : (set->mode == NGL_MODE_INT4 ? NGL_CODEC_INT4 : NGL_CODEC_INT8);
    cfg->dtype = set->dtype;
    cfg->predictor = set->stateful ? s->predictor : NGL_PRED_NONE;
    cfg->error_feedback = set->stateful ? s->error_feedback : 0;
    cfg->topk_fraction = set->exact ? 0.0 : s->topk;
    cfg->block_size = s->block_size;
    cfg->seed = s->seed;
    cfg->stream_id = sid;
    cfg->count = count;
}

/*
 * State memory a stateful set of @p count elements is charged: error
 * feedback at the encoders (which together cover the buffer about once),
 * predictor state at encoders and decoders (about three times the buffer:
 * RS encoders and decoders, AG encoder and decoders), 16-bit staging and
 * top-k scratch. A function of shape and settings only, so every rank
 * charges the same amount whatever streams it holds.
 */
static uint64_t state_charge(const ngl_engine *e, uint64_t count, ngl_dtype dt)
{
    const ngl_settings *s = &e->cfg.codec;
    uint64_t per = 0;
    per += s->error_feedback ? 4u : 0u;
    per += s->predictor == NGL_PRED_LINEAR ? 24u : (s->predictor != NGL_PRED_NONE ? 12u : 0u);
    per += (dt == NGL_DTYPE_F16 || dt == NGL_DTYPE_BF16) ? 12u : 0u;
    per += s->topk > 0.0 ? 8u : 0u;
    return count * per + 4096u;
}

/* ---- layout -------------------------------------------------------------- */

/* Segment size bounds in elements (pipelined policy): small enough to
 * pipeline a few MiB, large enough that per-message costs stay small. */
#define SEG_MIN    (16u * 1024u)
#define SEG_MAX    (256u * 1024u)
#define SEG_TARGET 4u /* aim for this many segments per chunk */
/* Elements of one segment round over all owners: bounds the frame buffers
 * (a window of rounds of 3P frames) when there are many ranks. */
#define ROUND_ELEMS (4u * 1024u * 1024u)

void ngl_engine_layout(uint64_t count, int nranks, uint32_t block, int seg_policy,
                       uint64_t *chunk_lo, uint64_t *seg_elems, uint32_t *nseg)
{
    const uint64_t P = (uint64_t)nranks;
    const uint64_t nb = (count + block - 1) / block;
    const uint64_t base = nb / P, rem = nb % P;
    uint64_t blocks = 0;
    for (uint64_t j = 0; j < P; j++) {
        const uint64_t lo = blocks * block;
        chunk_lo[j] = lo < count ? lo : count;
        blocks += base + (j < rem ? 1u : 0u);
    }
    chunk_lo[P] = count;
    uint64_t maxchunk = 0;
    for (uint64_t j = 0; j < P; j++) {
        const uint64_t len = chunk_lo[j + 1] - chunk_lo[j];
        maxchunk = len > maxchunk ? len : maxchunk;
    }
    if (seg_policy == NGL_ENGINE_SEG_NONE) {
        *seg_elems = maxchunk > 0 ? maxchunk : 1;
        *nseg = 1;
        return;
    }
    uint64_t seg = (maxchunk + SEG_TARGET - 1) / SEG_TARGET;
    seg = seg < SEG_MIN ? SEG_MIN : seg;
    seg = seg > SEG_MAX ? SEG_MAX : seg;
    const uint64_t per_owner = ROUND_ELEMS / P;
    if (seg > per_owner) {
        seg = per_owner > SEG_MIN ? per_owner : SEG_MIN;
    }
    seg = (seg + block - 1) / block * block;
    *seg_elems = seg;
    *nseg = (uint32_t)((maxchunk + seg - 1) / seg);
    if (*nseg == 0) {
        *nseg = 1;
    }
}

/* ---- sets ---------------------------------------------------------------- */

static void set_destroy(const ngl_engine *e, ngl_engine_set *set)
{
    if (set == NULL) {
        return;
    }
    const size_t n = (size_t)set->nseg * (size_t)e->cfg.nranks;
    const ngl_cc_ops *ops = set->ops;
    for (size_t i = 0; i < n; i++) {
        if (set->rs_enc) {
            ops->destroy(set->rs_enc[i]);
        }
        if (set->rs_dec) {
            ops->destroy(set->rs_dec[i]);
        }
        if (set->ag_dec) {
            ops->destroy(set->ag_dec[i]);
        }
    }
    for (uint32_t s = 0; set->ag_enc && s < set->nseg; s++) {
        ops->destroy(set->ag_enc[s]);
    }
    free(set->rs_enc);
    free(set->rs_dec);
    free(set->ag_dec);
    free(set->ag_enc);
    free(set->bound);
    free(set->chunk_lo);
    free(set);
}

/* Create every stream of @p set (its shape fields are set). */
static ngl_status set_build(const ngl_engine *e, ngl_engine_set *set, void *queue,
                            const uint64_t *chunk_lo)
{
    const int P = e->cfg.nranks, me = e->cfg.rank;
    set->chunk_lo = calloc((size_t)P + 1, sizeof *set->chunk_lo);
    if (set->chunk_lo == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    if (chunk_lo != NULL) {
        /* The caller's boundaries, one segment per chunk. */
        memcpy(set->chunk_lo, chunk_lo, ((size_t)P + 1) * sizeof *chunk_lo);
        set->seg_elems = 1;
        for (int j = 0; j < P; j++) {
            const uint64_t len = chunk_lo[j + 1] - chunk_lo[j];
            set->seg_elems = len > set->seg_elems ? len : set->seg_elems;
        }
        set->nseg = 1;
    } else {
        ngl_engine_layout(set->count, P, e->cfg.codec.block_size, e->cfg.seg_policy, set->chunk_lo,
                          &set->seg_elems, &set->nseg);
    }
    const size_t n = (size_t)set->nseg * (size_t)P;
    set->rs_enc = calloc(n, sizeof *set->rs_enc);
    set->rs_dec = calloc(n, sizeof *set->rs_dec);
    set->ag_dec = calloc(n, sizeof *set->ag_dec);
    set->ag_enc = calloc(set->nseg, sizeof *set->ag_enc);
    set->bound = calloc(n, sizeof *set->bound);
    if (!set->rs_enc || !set->rs_dec || !set->ag_dec || !set->ag_enc || !set->bound) {
        return NGL_ERR_NO_MEMORY;
    }
    const ngl_cc_ops *ops = set->ops;
    ngl_stream_config cfg;
    ngl_status st = NGL_OK;
    for (uint32_t s = 0; s < set->nseg && st == NGL_OK; s++) {
        uint64_t off;
        const uint64_t mine = ngl_engine_seg_len(set, me, s, &off);
        for (int r = 0; r < P && st == NGL_OK; r++) {
            const uint64_t theirs = ngl_engine_seg_len(set, r, s, &off);
            const size_t at = (size_t)s * (size_t)P + (size_t)r;
            if (theirs > 0) {
                set_config(e, set, theirs, 0, &cfg);
                set->bound[at] = ops->frame_bound != NULL ? ops->frame_bound(theirs, set->variant)
                                                          : ngl_encode_bound(&cfg);
                if (set->bound[at] == 0) {
                    return NGL_ERR_INVALID_ARG;
                }
                set->frame_cap = set->bound[at] > set->frame_cap ? set->bound[at] : set->frame_cap;
            }
            if (r != me && theirs > 0) {
                set_config(e, set, theirs, stream_id(e, set, STAGE_RS, me, r, s), &cfg);
                st = ops->create(&cfg, 1, queue, set->variant, &set->rs_enc[at]);
            }
            if (st == NGL_OK && r != me && mine > 0) {
                set_config(e, set, mine, stream_id(e, set, STAGE_RS, r, me, s), &cfg);
                st = ops->create(&cfg, 0, queue, set->variant, &set->rs_dec[at]);
            }
            if (st == NGL_OK && theirs > 0) {
                set_config(e, set, theirs, stream_id(e, set, STAGE_AG, r, -1, s), &cfg);
                st = ops->create(&cfg, 0, queue, set->variant, &set->ag_dec[at]);
            }
        }
        if (st == NGL_OK && mine > 0) {
            set_config(e, set, mine, stream_id(e, set, STAGE_AG, me, -1, s), &cfg);
            st = ops->create(&cfg, 1, queue, set->variant, &set->ag_enc[s]);
        }
    }
    return st;
}

static size_t set_bucket(uint64_t token, uint32_t k)
{
    return (size_t)(ngl_hash_mix64(token ^ ((uint64_t)k << 32 | k)) % SET_BUCKETS);
}

static void lru_unlink(ngl_engine *e, ngl_engine_set *set)
{
    if (set->lru_prev) {
        set->lru_prev->lru_next = set->lru_next;
    } else {
        e->lru_head = set->lru_next;
    }
    if (set->lru_next) {
        set->lru_next->lru_prev = set->lru_prev;
    } else {
        e->lru_tail = set->lru_prev;
    }
    set->lru_prev = set->lru_next = NULL;
}

static void lru_push_front(ngl_engine *e, ngl_engine_set *set)
{
    set->lru_prev = NULL;
    set->lru_next = e->lru_head;
    if (e->lru_head) {
        e->lru_head->lru_prev = set;
    }
    e->lru_head = set;
    if (e->lru_tail == NULL) {
        e->lru_tail = set;
    }
}

static void set_remove(ngl_engine *e, ngl_engine_set *set)
{
    ngl_engine_set **pp = &e->buckets[set_bucket(set->token, set->k)];
    while (*pp && *pp != set) {
        pp = &(*pp)->hnext;
    }
    if (*pp) {
        *pp = set->hnext;
    }
    lru_unlink(e, set);
    e->nsets--;
    e->state_bytes -= set->state_bytes;
    set_destroy(e, set);
}

/* The layer tag is not part of a set's identity: the layer checks it. */
static ngl_engine_set *set_find(ngl_engine *e, uint64_t token, uint32_t k, uint64_t epoch,
                                uint64_t count, ngl_dtype dtype, int exact, uint32_t variant,
                                ngl_mode mode)
{
    for (ngl_engine_set *it = e->buckets[set_bucket(token, k)]; it; it = it->hnext) {
        if (it->token == token && it->k == k && it->epoch == epoch && it->count == count &&
            it->dtype == dtype && it->exact == exact && it->variant == variant &&
            it->mode == mode) {
            return it;
        }
    }
    return NULL;
}

ngl_status ngl_engine_set_get(ngl_engine *e, uint64_t token, uint32_t k,
                              const ngl_engine_shape *shape, ngl_engine_set **out, int *created)
{
    const uint64_t count = shape->count;
    const ngl_dtype dtype = shape->dtype;
    const int exact = shape->exact;
    const uint32_t variant = shape->variant;
    const ngl_mode mode = shape->mode != NGL_MODE_OFF ? shape->mode : e->cfg.codec.mode;
    *out = NULL;
    *created = 0;
    if (exact) {
        k = NGL_IDENT_TRANSIENT; /* RAW frames carry no state: one set per shape */
    }
    int stateful = !exact && k != NGL_IDENT_TRANSIENT &&
                   (e->cfg.codec.error_feedback || e->cfg.codec.predictor != NGL_PRED_NONE);
    uint64_t charge = stateful ? state_charge(e, count, dtype) : 0;
    /* A new call pattern (a new lock) starts every key from zero state: the
     * old pattern's streams may have mixed tensors (a spurious short cycle
     * during warm-up) or belong to other tensors (new bucket sizes). */
    uint64_t epoch = stateful ? e->ident.n_locks : 0;
    ngl_engine_set *set = set_find(e, token, k, epoch, count, dtype, exact, variant, mode);
    if (set == NULL && stateful && e->state_bytes + charge > e->state_max) {
        /* Over the bound: this key gets stateless streams, on every rank
         * alike (the charge depends on the call sequence only). */
        if (!e->bound_logged) {
            e->bound_logged = 1;
            elog(e, NGL_LOG_WARN,
                 "stream state would exceed NANGILA_STATE_MAX_MB=%llu; further tensors are "
                 "coded without error feedback or prediction (raise the bound to keep them)",
                 (unsigned long long)(e->state_max >> 20));
        }
        k = NGL_IDENT_TRANSIENT;
        stateful = 0;
        charge = 0;
        epoch = 0;
        set = set_find(e, token, k, epoch, count, dtype, exact, variant, mode);
    }
    const uint64_t now = e->ident.ncalls;
    if (set != NULL) {
        set->last_use = now;
        lru_unlink(e, set);
        lru_push_front(e, set);
        *out = set;
        return NGL_OK;
    }
    set = calloc(1, sizeof *set);
    if (set == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    set->token = token;
    set->k = k;
    set->epoch = epoch;
    set->count = count;
    set->dtype = dtype;
    set->exact = exact;
    set->variant = variant;
    set->mode = mode;
    set->stateful = stateful;
    set->layer_tag = shape->layer_tag;
    set->ops = shape->ops;
    set->last_use = now;
    ngl_status st = set_build(e, set, shape->queue, shape->chunk_lo);
    if (st != NGL_OK) {
        set_destroy(e, set);
        return st;
    }
    set->state_bytes = charge;
    set->hnext = e->buckets[set_bucket(token, k)];
    e->buckets[set_bucket(token, k)] = set;
    lru_push_front(e, set);
    e->nsets++;
    e->state_bytes += charge;
    elog(e, NGL_LOG_DEBUG, "new streams for %llu elements: key %u%s, %u segment(s)",
         (unsigned long long)count, k, stateful ? "" : " (stateless)", set->nseg);
    *created = 1;
    *out = set;
    return NGL_OK;
}

size_t ngl_engine_piece_bound(const ngl_engine *e, uint64_t len, ngl_dtype dtype, int exact)
{
    const ngl_engine_set shape = {
        .dtype = dtype, .exact = exact, .stateful = !exact, .mode = e->cfg.codec.mode};
    ngl_stream_config cfg;
    set_config(e, &shape, len, 0, &cfg);
    return ngl_encode_bound(&cfg);
}

void ngl_engine_set_drop(ngl_engine *e, ngl_engine_set *set)
{
    if (set != NULL) {
        set_remove(e, set);
    }
}

/* A set of an earlier call pattern is never used again once the calls
 * still in flight with it are done (a layer keeps at most a few hundred). */
#define EVICT_DEAD_CALLS 256u

void ngl_engine_evict(ngl_engine *e)
{
    uint64_t limit = 4u * (uint64_t)e->ident.period;
    if (limit < EVICT_MIN_CALLS) {
        limit = EVICT_MIN_CALLS;
    }
    const uint64_t now = e->ident.ncalls;
    while (e->lru_tail && (now - e->lru_tail->last_use > limit || e->nsets > MAX_SETS)) {
        elog(e, NGL_LOG_DEBUG, "dropping the streams of a %llu-element call (key %u)",
             (unsigned long long)e->lru_tail->count, e->lru_tail->k);
        set_remove(e, e->lru_tail);
    }
    if (e->dead_sweep == e->ident.n_locks) {
        return;
    }
    /* After a new lock: free the old pattern's sets once they are idle, so
     * their state memory does not push the new pattern's keys past the
     * bound. Walks the sets only until all dead ones are gone. */
    int left = 0;
    for (ngl_engine_set *it = e->lru_tail; it != NULL;) {
        ngl_engine_set *prev = it->lru_prev;
        if (it->epoch != 0 && it->epoch < e->ident.n_locks) {
            if (now - it->last_use > EVICT_DEAD_CALLS) {
                set_remove(e, it);
            } else {
                left = 1;
            }
        }
        it = prev;
    }
    if (!left) {
        e->dead_sweep = e->ident.n_locks;
    }
}

/* ---- the engine object ----------------------------------------------------- */

ngl_status ngl_engine_create(const ngl_engine_config *cfg, ngl_engine **out)
{
    *out = NULL;
    if (cfg == NULL || cfg->nranks < 1 || cfg->rank < 0 || cfg->rank >= cfg->nranks ||
        cfg->codec.block_size == 0) {
        return NGL_ERR_INVALID_ARG;
    }
    ngl_engine *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    e->cfg = *cfg;
    ngl_ident_init(&e->ident);
    ngl_ident_force_period(&e->ident, cfg->fixed_period);
    ngl_ident_set_short_cycles(&e->ident, cfg->short_cycle_max, cfg->short_cycle_evidence);
    e->state_max = (uint64_t)cfg->codec.state_max_mb << 20;
    if (ngl_auto_create(cfg, &e->autom) != NGL_OK) {
        free(e);
        return NGL_ERR_NO_MEMORY;
    }
    *out = e;
    return NGL_OK;
}

void ngl_engine_destroy(ngl_engine *e)
{
    if (e == NULL) {
        return;
    }
    while (e->lru_head) {
        set_remove(e, e->lru_head);
    }
    ngl_auto_destroy(e->autom);
    free(e);
}

const ngl_ident *ngl_engine_ident(const ngl_engine *e)
{
    return &e->ident;
}

ngl_engine_stats *ngl_engine_stats_of(ngl_engine *e)
{
    return &e->stats;
}

const ngl_engine_config *ngl_engine_config_of(const ngl_engine *e)
{
    return &e->cfg;
}

ngl_auto *ngl_engine_auto(ngl_engine *e)
{
    return e->autom;
}

uint32_t ngl_engine_identify(ngl_engine *e, uint64_t token, int flags)
{
    const uint64_t locks = e->ident.n_locks;
    const uint32_t k = ngl_ident_next(&e->ident, token, flags);
    if (e->ident.n_locks != locks) {
        /* A new step pattern: from here keys follow the new cycle. Sets of
         * the old one stay until evicted, so a pattern that comes back (end
         * of an evaluation phase) finds its state again. */
        elog(e, NGL_LOG_INFO,
             "stream identity: call pattern of %u calls per cycle locked at call %llu",
             e->ident.period, (unsigned long long)e->ident.ncalls);
    }
    return k;
}

void ngl_engine_stats_add(ngl_engine_stats *t, const ngl_engine_stats *s)
{
    t->calls_compressed += s->calls_compressed;
    t->calls_transient += s->calls_transient;
    t->calls_exact += s->calls_exact;
    t->bytes_in += s->bytes_in;
    t->bytes_ring += s->bytes_ring;
    t->frame_in += s->frame_in;
    t->frame_out += s->frame_out;
    t->bytes_sent += s->bytes_sent;
    t->t_total += s->t_total;
    t->t_encode += s->t_encode;
    t->t_decode += s->t_decode;
}

/* One stream's contribution: its id and its closed-loop state hash (the
 * core's hash covers step, predictor state and gate, not the id). */
static uint64_t digest_term(const ngl_cc_ops *ops, const ngl_cc_stream *s, uint64_t sid)
{
    return ngl_hash_mix64(sid ^ ngl_hash_mix64(ops->state_hash(s)));
}

int ngl_engine_state_digest(const ngl_engine *e, uint64_t *pairs, uint64_t *shared)
{
    *pairs = 0;
    *shared = 0;
    const int P = e->cfg.nranks, me = e->cfg.rank;
    for (const ngl_engine_set *set = e->lru_head; set; set = set->lru_next) {
        const ngl_cc_ops *ops = set->ops;
        if (ops->state_hash == NULL) {
            return 0;
        }
        for (uint32_t s = 0; s < set->nseg; s++) {
            for (int r = 0; r < P; r++) {
                const size_t at = (size_t)s * (size_t)P + (size_t)r;
                if (set->rs_enc[at]) {
                    *pairs ^=
                        digest_term(ops, set->rs_enc[at], stream_id(e, set, STAGE_RS, me, r, s));
                }
                if (set->rs_dec[at]) {
                    *pairs ^=
                        digest_term(ops, set->rs_dec[at], stream_id(e, set, STAGE_RS, r, me, s));
                }
                if (set->ag_dec[at]) {
                    const uint64_t t =
                        digest_term(ops, set->ag_dec[at], stream_id(e, set, STAGE_AG, r, -1, s));
                    *shared ^= t;
                    if (r == me) {
                        *pairs ^= t; /* mirrors my own AG encoder */
                    }
                }
            }
            if (set->ag_enc[s]) {
                *pairs ^= digest_term(ops, set->ag_enc[s], stream_id(e, set, STAGE_AG, me, -1, s));
            }
        }
    }
    return 1;
}

size_t ngl_engine_describe(const ngl_engine *e, char *buf, size_t cap)
{
    const ngl_ident *kt = &e->ident;
    int n =
        snprintf(buf, cap,
                 "identity %s period %u (%llu locks), calls %llu: %llu matched, %llu "
                 "transient; %zu stream sets, state %.1f of %llu MiB",
                 kt->forced ? "fixed" : "auto", kt->forced ? kt->forced : kt->period,
                 (unsigned long long)kt->n_locks, (unsigned long long)kt->ncalls,
                 (unsigned long long)kt->n_matched, (unsigned long long)kt->n_transient, e->nsets,
                 (double)e->state_bytes / 1048576.0, (unsigned long long)(e->state_max >> 20));
    return n < 0 ? 0 : (size_t)n;
}
