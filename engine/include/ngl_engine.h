/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_engine.h -- the one compressed collective, without transport.
 *
 * Both interposition layers (mpi-pmpi/, nccl-net-plugin/) run the same
 * protocol for a compressed allreduce of `count` elements on P ranks:
 *
 *   layout    the buffer is cut into P chunks on codec-block boundaries,
 *             balanced by blocks (chunk j is owned by rank j), and every
 *             chunk into `nseg` segments of at most `seg_elems` elements;
 *   stage RS  reduce-scatter: every rank encodes its part of owner j's chunk
 *             (stream i->j, error feedback at the sender) and sends the frame
 *             to j; the owner adds the P-1 decoded frames, in rank order, to
 *             its own exact part;
 *   stage AG  allgather: the owner encodes the reduced chunk once (stream
 *             j->all) and sends the same frame to everyone; every rank, the
 *             owner included, decodes every owner's frame into the result.
 *
 * Every rank decodes the same bytes with decoders in the same state, so the
 * result is bit-identical everywhere; each rank sends about 2(P-1)/P times
 * the compressed size of the buffer, as a ring sends 2(P-1)/P times the raw
 * size. This header owns everything in that protocol that is not "how bytes
 * move": the layout, which calls share stream state (identity), the state
 * sets with their memory bound and deterministic eviction, settings -> codec
 * configuration, and the statistics. It never calls MPI, sockets or CUDA:
 * the layers bring their progress engines and transports, and a codec ops
 * table (host memory here, device memory in kernels/) creates the streams.
 *
 * Determinism rule: every engine decision is a function of the call
 * sequence a communicator sees (same on every rank by MPI's and NCCL's
 * ordering rules) and of settings checked to be equal on every rank. Nothing
 * depends on timing, addresses, or which rank got further.
 *
 * Thread safety: an ngl_engine is used by one thread at a time (the layer's
 * lock or the calling thread).
 */
#ifndef NGL_ENGINE_H
#define NGL_ENGINE_H

#include "nangila.h"
#include "ngl_hash.h" /* ngl_hash_mix64(): stream ids, set buckets */

#include <stddef.h>
#include <stdint.h>

/* ==========================================================================
 * Codec ops: how the engine's streams code (host memory, or a device).
 * ========================================================================== */

/*
 * "Data" pointers (src of encode, dst of decode) point into the buffers the
 * collective reduces: host memory for the host back end, device memory for
 * a device one. Frames are always host memory (pinned for a device): they
 * are what the transport moves.
 *
 * encode() and decode() start an operation; poll() reports, without ever
 * blocking, when it has completed. The host back end completes everything
 * inside encode()/decode() (poll() then says done at once); a device back
 * end enqueues work on the queue given at create() and completes it in
 * poll(). A stream takes the next operation only after poll() said done
 * (busy() tells). Between start and done, source, frame and destination
 * must stay untouched. encode/decode/poll never allocate.
 */
typedef struct ngl_cc_stream ngl_cc_stream;

typedef struct ngl_cc_ops {
    const char *name;
    /** Create the encoder (@p is_encoder 1) or decoder side of @p cfg.
     *  @p queue: the device queue its work goes to (NULL for the host).
     *  @p variant: what the ops need beyond @p cfg (ngl_cc_exact_ops: the
     *  element type and reduction, ngl_exact_variant()); 0 for the others.
     *  @return NGL_OK and *out, or the status (nothing allocated). */
    ngl_status (*create)(const ngl_stream_config *cfg, int is_encoder, void *queue,
                         uint32_t variant, ngl_cc_stream **out);
    /** Free @p s (waits for its work); NULL is a no-op. */
    void (*destroy)(ngl_cc_stream *s);
    /** Start encoding cfg.count elements at @p src (data memory) into the
     *  host frame @p frame of @p cap bytes (>= ngl_encode_bound()). */
    ngl_status (*encode)(ngl_cc_stream *s, const void *src, void *frame, size_t cap);
    /** Start decoding the host frame into @p dst (data memory);
     *  @p accumulate adds to what @p dst holds. A rejected frame is
     *  reported here and changes nothing. */
    ngl_status (*decode)(ngl_cc_stream *s, const void *frame, size_t len, void *dst,
                         int accumulate);
    /** Never blocks: *done is 1 once the started operation has completed
     *  (for an encode, *len is then the frame length; @p len may be NULL
     *  for a decode). NGL_ERR_DEVICE if the device failed. */
    ngl_status (*poll)(ngl_cc_stream *s, int *done, size_t *len);
    /** 1 while an operation is started and poll() has not said done. */
    int (*busy)(const ngl_cc_stream *s);
    /** Encoders only, may be NULL (unsupported): skip the blocks whose bit
     *  is set in @p bits (bit b of byte b/8) in the next encode only; a
     *  skipped block costs no payload and decodes to the prediction
     *  (ngl_encoder_set_block_mask()). */
    ngl_status (*skip_blocks)(ngl_cc_stream *s, const uint8_t *bits);
    /** Hash of the closed-loop state (ngl_encoder_state_hash() /
     *  ngl_decoder_state_hash()); may be NULL when a back end cannot tell.
     *  Only valid while the stream is not busy. */
    uint64_t (*state_hash)(const ngl_cc_stream *s);
    /** Largest frame for @p count elements; NULL: ngl_encode_bound(). */
    size_t (*frame_bound)(uint64_t count, uint32_t variant);
} ngl_cc_ops;

/** Host memory: the core's encoder/decoder, complete as soon as they return. */
extern const ngl_cc_ops ngl_cc_host_ops;

/* ==========================================================================
 * Exact reductions of any element type (engine_exact.c).
 * ========================================================================== */

/* Element types, numbered as NCCL numbers its datatypes. */
typedef enum ngl_elem {
    NGL_ELEM_I8 = 0,
    NGL_ELEM_U8 = 1,
    NGL_ELEM_I32 = 2,
    NGL_ELEM_U32 = 3,
    NGL_ELEM_I64 = 4,
    NGL_ELEM_U64 = 5,
    NGL_ELEM_F16 = 6,
    NGL_ELEM_F32 = 7,
    NGL_ELEM_F64 = 8,
    NGL_ELEM_BF16 = 9,
    NGL_ELEM_F8E4M3 = 10, /* OCP E4M3 "fn": no infinities, max 448 */
    NGL_ELEM_F8E5M2 = 11,
    NGL_ELEM_COUNT = 12
} ngl_elem;

/* Reductions, numbered as NCCL's ncclSum, ncclProd, ncclMax, ncclMin. */
typedef enum ngl_redop {
    NGL_REDOP_SUM = 0,
    NGL_REDOP_PROD = 1,
    NGL_REDOP_MAX = 2,
    NGL_REDOP_MIN = 3,
    NGL_REDOP_COUNT = 4
} ngl_redop;

/** Bytes of one element of @p t; 0 for an unknown type. */
size_t ngl_elem_size(ngl_elem t);

/**
 * acc[i] = op(acc[i], src[i]) for @p n elements of @p t, in the type's own
 * arithmetic: integers wrap around (Sum, Prod), fp32 and fp64 in their
 * precision, 16- and 8-bit floats widened to float, combined in float and
 * rounded back to nearest even (overflow: inf, or NaN for E4M3). Max and
 * Min of floats give NaN when either operand is NaN. Buffers need no
 * alignment.
 */
void ngl_engine_reduce(void *acc, const void *src, uint64_t n, ngl_elem t, ngl_redop op);

/**
 * Codec ops that carry any element type exactly: a frame is the elements
 * verbatim behind a 32-byte header (magic, version, type, op, count, step,
 * stream id, CRC32C); decode checks all of it before it touches the
 * destination, then copies, or reduces with ngl_engine_reduce() when
 * accumulating. Create with variant ngl_exact_variant(type, op).
 */
extern const ngl_cc_ops ngl_cc_exact_ops;

static inline uint32_t ngl_exact_variant(ngl_elem t, ngl_redop op)
{
    return 1u + (uint32_t)t + 16u * (uint32_t)op;
}

static inline ngl_elem ngl_exact_elem(uint32_t variant)
{
    return (ngl_elem)((variant - 1u) % 16u);
}

static inline ngl_redop ngl_exact_op(uint32_t variant)
{
    return (ngl_redop)((variant - 1u) / 16u);
}

/* ==========================================================================
 * Layout across ranks.
 * ========================================================================== */

enum {
    /* Pipelined: a few segments per chunk, 16 Ki..256 Ki elements each, and
     * at most 4 Mi elements per segment round over all owners (the MPI
     * wrapper overlaps coding of segment s+1 with the transfer of s). */
    NGL_ENGINE_SEG_PIPELINE = 0,
    /* One segment per chunk (the collNet: NCCL already slices to <= 2 MiB). */
    NGL_ENGINE_SEG_NONE = 1
};

/**
 * Chunk boundaries and segment size for @p count elements on @p nranks ranks
 * with codec block @p block: chunk j is [chunk_lo[j], chunk_lo[j+1]), chunk
 * sizes differ by at most one block, every boundary but the last is a block
 * multiple. @p chunk_lo has nranks + 1 entries. The same on every rank.
 */
void ngl_engine_layout(uint64_t count, int nranks, uint32_t block, int seg_policy,
                       uint64_t *chunk_lo, uint64_t *seg_elems, uint32_t *nseg);

/* ==========================================================================
 * Stream identity: which calls share stream state.
 * ========================================================================== */

/*
 * A layer sees no tensor names, only the sequence of collective calls on a
 * communicator, which is the same on every rank. Every call contributes
 * one token (ngl_engine_token(): byte size, op and the layer's class bits).
 * Training issues the same token sequence every step; the tracker finds
 * the period of that sequence: the smallest p such that the last 2p tokens
 * are two equal copies (and at least NGL_IDENT_MIN_EVIDENCE calls, so a
 * call made twice in a row is no cycle). Once locked, call n of a cycle
 * maps to the persistent key (token, k), k being the number of earlier
 * positions of the cycle with the same token. Two tensors of one size in
 * one step (or two slices of one bucket) get different keys, and a fresh
 * buffer every step still maps to the same key.
 *
 * While no period is known (the first two cycles), and for calls that do
 * not fit the locked cycle (an extra evaluation call, say), the answer is
 * NGL_IDENT_TRANSIENT: the call uses streams without error feedback or
 * predictor, correct but carrying nothing across calls, so a wrong guess
 * never mixes two tensors' state. A locked cycle tolerates insertions
 * (answered transient) and short skips; a new exact period replaces it as
 * soon as one is visible (DDP's bucket rebuild, a new phase).
 *
 * Known limit: a step made only of calls of one token ([A A A] every step,
 * nothing else) is indistinguishable from one tensor called three times per
 * step, and locks with period 1 (one shared key). docs/stream-identity.md
 * says when that happens and what to set.
 */

/* Tokens remembered: periods up to NGL_IDENT_HIST / 2 calls are found. */
#define NGL_IDENT_HIST 4096u
/* Returned instead of an occurrence index: use a stateless stream. */
#define NGL_IDENT_TRANSIENT UINT32_MAX
/* Longest run of cycle positions a call may skip and still match. */
#define NGL_IDENT_MAX_SKIP 4u
/* A period is accepted only over at least this many calls. */
#define NGL_IDENT_MIN_EVIDENCE 8u
/* Token comparisons one period search may spend before giving up. */
#define NGL_IDENT_SEARCH_BUDGET (1u << 16)
/* Longest cycle ngl_ident_set_short_cycles() can ask more evidence for
 * (NCCL's collNet: at most 8 channel groups take turns inside a bucket). */
#define NGL_IDENT_SHORT_MAX 8u

typedef struct ngl_ident {
    uint64_t hist[NGL_IDENT_HIST];        /* ring buffer of the last tokens */
    uint64_t ncalls;                      /* tokens seen so far */
    uint32_t period;                      /* locked cycle length, 0 = none */
    uint32_t phase;                       /* next expected position in ref */
    uint32_t forced;                      /* fixed period set by the user, 0 = automatic */
    uint64_t n_keyed;                     /* keyed calls so far (forced period) */
    uint32_t short_max;                   /* cycles up to this long need short_evidence */
    uint32_t short_evidence;              /* calls of evidence for such a cycle */
    uint64_t qmatch[NGL_IDENT_SHORT_MAX]; /* [q-1]: calls equal to the one q before, in a row */
    uint64_t last_miss;                   /* ncalls after the last call off the cycle */
    uint64_t ref[NGL_IDENT_HIST / 2];     /* the locked cycle */
    uint32_t occ[NGL_IDENT_HIST / 2];     /* occ[i]: ref[i]'s earlier occurrences in ref */
    /* counters, for statistics and tests */
    uint64_t n_matched;   /* calls that matched the locked cycle */
    uint64_t n_transient; /* keyed calls answered NGL_IDENT_TRANSIENT */
    uint64_t n_skipped;   /* cycle positions skipped */
    uint64_t n_locks;     /* periods locked (first lock and every change) */
} ngl_ident;

/** Start with an empty history. */
void ngl_ident_init(ngl_ident *kt);

/**
 * Replace automatic detection with a fixed cycle of @p period calls (all
 * tokens together), counted from the first call: call n gets key
 * n mod period. 0 returns to automatic detection. Call before the first
 * ngl_ident_next().
 */
void ngl_ident_force_period(ngl_ident *kt, uint32_t period);

/**
 * Cycles of at most @p max_len calls (<= NGL_IDENT_SHORT_MAX), and any
 * window that lies inside a run with such a cycle, lock only with
 * @p evidence calls of that run behind them (<= NGL_IDENT_HIST). One NCCL
 * bucket looks like that: its slices all have one count, or two or three
 * counts taking turns (channel groups). The collNet asks for the whole
 * history, so a bucket never passes for a step and slices never share
 * state; a true step that short locks after NGL_IDENT_HIST calls. Default:
 * off (0, 0), the MPI wrapper's rule. Call before the first
 * ngl_ident_next().
 */
void ngl_ident_set_short_cycles(ngl_ident *kt, uint32_t max_len, uint32_t evidence);

/* Flags of one call (ngl_ident_next()). */
enum {
    /* The caller needs a key for this call (a compressed call); without
     * it the call is only recorded (it passes through or travels exact).
     * Period searches run only on keyed calls, which bounds the cost of
     * the others to O(1). */
    NGL_IDENT_KEYED = 1,
    /* The call carries a whole tensor, not one slice of a larger
     * operation (NCCL's registered path: one call per bucket), so runs of
     * it are no bucket's slices: it ends any short-cycle run. */
    NGL_IDENT_WHOLE = 2
};

/**
 * Record one call with @p token and @p flags (NGL_IDENT_*).
 * @return for keyed calls, the key k of the persistent stream (token, k),
 *         or NGL_IDENT_TRANSIENT; for other calls, 0.
 * Deterministic: equal token sequences give equal answers on every rank.
 */
uint32_t ngl_ident_next(ngl_ident *kt, uint64_t token, int flags);

/**
 * The token of one call: its size in bytes, the layer's op class and any
 * further class bits the layer needs (datatype, memory kind, exactness).
 * Every argument must be the same on every rank for the same call.
 */
uint64_t ngl_engine_token(uint64_t bytes, uint32_t op_class, uint64_t kind);

/* ==========================================================================
 * The engine of one communicator: identity, state sets, statistics.
 * ========================================================================== */

/* Counters of one communicator; the layers add their transfers and times. */
typedef struct ngl_engine_stats {
    uint64_t calls_compressed;
    uint64_t calls_transient; /* compressed without carried state */
    uint64_t calls_exact;     /* carried exact by the engine's layer */
    uint64_t bytes_in;        /* input bytes of the compressed calls */
    uint64_t bytes_ring;      /* what a ring allreduce sends: 2(P-1)/P x bytes_in */
    uint64_t frame_in;        /* input bytes encoded into frames */
    uint64_t frame_out;       /* frame bytes produced, headers included */
    uint64_t bytes_sent;      /* frame bytes this rank put on the wire */
    double t_total;           /* seconds inside compressed calls */
    double t_encode;
    double t_decode;
} ngl_engine_stats;

/** Add @p s into @p total. */
void ngl_engine_stats_add(ngl_engine_stats *total, const ngl_engine_stats *s);

typedef void (*ngl_engine_log_fn)(void *user, ngl_log_level level, const char *msg);

/* Most plain (exact) variants a layer can offer auto mode (below). */
#define NGL_AUTO_PLAIN_MAX 8

typedef struct ngl_engine_config {
    int nranks, rank;
    uint64_t uid;             /* the same on every rank: salts every stream id */
    ngl_settings codec;       /* mode, predictor, EF, top-k, block, seed, state bound */
    int seg_policy;           /* NGL_ENGINE_SEG_* */
    uint32_t fixed_period;    /* user override of identity (ngl_ident_force_period), 0 = auto */
    uint32_t short_cycle_max; /* ngl_ident_set_short_cycles(): cycle length, 0 = off */
    uint32_t short_cycle_evidence; /* and the evidence it needs */
    ngl_engine_log_fn log;         /* may be NULL */
    void *log_user;
    /* Auto mode's plain arms: how many exact variants the layer can run a
     * call with (e.g. MPI library algorithms), 0 or 1 meaning one, its
     * default; at most NGL_AUTO_PLAIN_MAX. Variant 0 is the default. */
    uint32_t auto_plain;
    /* Their names for logs, "name" or "name (description)" (static
     * strings, kept by pointer); NULL: "off" when there is one variant. */
    const char *auto_plain_names[NGL_AUTO_PLAIN_MAX];
} ngl_engine_config;

/*
 * A state set: every stream one call shape needs on this rank, for one key.
 * Arrays are indexed [seg * P + rank]; an entry is NULL where the rank owns
 * no elements of that segment or where no stream exists (a rank never
 * sends to itself in the reduce-scatter). Layers read the fields; only the
 * engine writes them.
 */
typedef struct ngl_engine_set {
    uint64_t token;
    uint32_t k;     /* key within the token, or NGL_IDENT_TRANSIENT */
    uint64_t epoch; /* the call pattern (lock) its key belongs to; 0 if stateless */
    uint64_t count; /* elements per call */
    ngl_dtype dtype;
    int exact;          /* RAW frames: the layer carries this shape exactly */
    int stateful;       /* error feedback / predictor state carried across calls */
    uint32_t layer_tag; /* the layer's own bits, given at creation (not part of the key) */
    uint32_t variant;   /* the ops' variant (ngl_cc_ops.create()), part of the key */
    ngl_mode mode;      /* codec of the core's frames (int8 or int4), part of the key */
    uint64_t *chunk_lo; /* P + 1 chunk boundaries */
    uint64_t seg_elems;
    uint32_t nseg;
    size_t *bound;          /* [seg * P + owner]: frame bound of that piece, 0 if empty */
    size_t frame_cap;       /* largest bound of the set */
    ngl_cc_stream **rs_enc; /* [s*P + j]: my part of owner j's chunk */
    ngl_cc_stream **rs_dec; /* [s*P + i]: rank i's part of my chunk */
    ngl_cc_stream **ag_enc; /* [s]: my reduced chunk */
    ngl_cc_stream **ag_dec; /* [s*P + o]: owner o's reduced chunk, mine included */
    const ngl_cc_ops *ops;
    uint64_t state_bytes; /* charged against NANGILA_STATE_MAX_MB */
    uint64_t last_use;    /* call number of its last use */
    /* engine bookkeeping */
    struct ngl_engine_set *hnext;
    struct ngl_engine_set *lru_prev, *lru_next; /* most recent first */
} ngl_engine_set;

/** printf-style message through @p cfg's log callback, filtered by its
 *  NANGILA_LOG_LEVEL: the engine's files log through this one function. */
void ngl_engine_logf(const ngl_engine_config *cfg, ngl_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ==========================================================================
 * Auto mode (engine_auto.c): NANGILA_MODE=auto picks, per message-size
 * class of a communicator, one *arm* from the times of calls that ran in
 * each arm on that communicator. An arm is a way to run the call: one of
 * the layer's plain (exact) variants (cfg.auto_plain of them: the MPI
 * wrapper offers Open MPI's own choice and its forced tuned algorithms,
 * the NCCL collNet one exact path), or a codec, int8 or int4 (up to
 * NANGILA_MODE_MAX). Classes wholly below NANGILA_MIN_BYTES (cfg.codec.
 * min_bytes) have plain arms only, and are planned only when there are
 * several. The layer:
 *   1. asks ngl_auto_plan_call() what the call does (same answer on every
 *      rank: it depends only on the class's call count and agreed numbers);
 *   2. times the call and hands the time to ngl_auto_record();
 *   3. when the plan says agree: fills ngl_auto_local(), takes the
 *      element-wise MIN over all ranks (its own collective, at this same
 *      call on every rank) and hands the result to ngl_auto_agree(), which
 *      decides from the agreed numbers only.
 * With a fixed NANGILA_MODE the plan is always that mode, never timed.
 * ========================================================================== */

#define NGL_AUTO_CLASSES 48 /* class c: messages of [2^c, 2^(c+1)) bytes */
#define NGL_AUTO_NMODES  3  /* ngl_mode values: off, int8, int4 */
#define NGL_AUTO_KEEP    8  /* latest timed calls per arm and class exchanged */
/* Arms: plain variant p is arm p; the codecs follow. */
#define NGL_AUTO_ARM_INT8 NGL_AUTO_PLAIN_MAX
#define NGL_AUTO_ARM_INT4 (NGL_AUTO_PLAIN_MAX + 1)
#define NGL_AUTO_NARMS    (NGL_AUTO_PLAIN_MAX + 2)
/* Plan classes: the NGL_AUTO_CLASSES size classes, plus one for the calls
 * below NANGILA_MIN_BYTES of the class that holds a floor which is not a
 * power of two (those calls run plain arms only, the class's others may
 * compress). */
#define NGL_AUTO_SLOTS (NGL_AUTO_CLASSES + 1)
/* ngl_auto_local() vector: NGL_AUTO_T(a, i) minus the seconds of the i-th
 * recent timed call in arm a (so that the MIN over ranks is minus the
 * slowest rank's time), NGL_AUTO_C(m, i) the codec (encode + decode)
 * seconds of the i-th recent call with codec m (NGL_MODE_INT8 or INT4); 0
 * where there is no such call. Slot i is the same call on every rank. */
#define NGL_AUTO_T(a, i) ((a)*NGL_AUTO_KEEP + (i))
#define NGL_AUTO_C(m, i) ((NGL_AUTO_NARMS + (m)-1) * NGL_AUTO_KEEP + (i))
#define NGL_AUTO_VEC     ((NGL_AUTO_NARMS + 2) * NGL_AUTO_KEEP)

typedef struct ngl_auto ngl_auto;

typedef struct ngl_auto_plan {
    ngl_mode mode;  /* what this call does: off (exact) or the codec */
    uint32_t plain; /* with mode off: the plain variant (0: the default) */
    uint32_t cls;   /* its plan class (< NGL_AUTO_SLOTS) */
    int timed;      /* report its time with ngl_auto_record() */
    int agree;      /* after it, agree (step 3 above) */
} ngl_auto_plan;

/** Size class of a call of @p bytes (floor of log2). */
uint32_t ngl_auto_class_of(uint64_t bytes);

/** The plan for the next call of @p bytes (counts the call). A call below
 *  NANGILA_MIN_BYTES gets a plain arm; with one plain variant it is not
 *  planned at all (variant 0, untimed, never an agreement). */
ngl_auto_plan ngl_auto_plan_call(ngl_auto *a, uint64_t bytes);

/**
 * The call planned as @p p created its streams (allocation and first touch:
 * not a typical sample): queue the same step again as the class's next one
 * (bounded per round) and return the plan to use for this call, untimed
 * and without an agreement (which moves to the re-queued step). Call it
 * right after the plan, at the same point on every rank (set creation is
 * the same everywhere). A no-op for untimed plans.
 */
ngl_auto_plan ngl_auto_replan(ngl_auto *a, ngl_auto_plan p);

/** Time of a planned call: @p seconds in total, @p codec_seconds of it
 *  encoding and decoding; @p created: the call created its streams (its
 *  time is not typical and is dropped). */
void ngl_auto_record(ngl_auto *a, const ngl_auto_plan *p, double seconds, double codec_seconds,
                     int created);

/** This rank's times of its latest timed calls per arm since the last
 *  agreement of plan class @p cls (layout: NGL_AUTO_T / NGL_AUTO_C). */
void ngl_auto_local(const ngl_auto *a, uint32_t cls, double v[NGL_AUTO_VEC]);

/** Decide plan class @p cls from @p vmin, the element-wise MIN over all
 *  ranks of ngl_auto_local() (per call, its slowest rank's time; an arm's
 *  estimate is the median over its calls; 0 counts as missing, alike on
 *  every rank as sample counts are the same everywhere); logs the choice
 *  (INFO) when made or changed. */
void ngl_auto_agree(ngl_auto *a, uint32_t cls, const double vmin[NGL_AUTO_VEC]);

/** 1 for NANGILA_MODE=auto. */
int ngl_auto_enabled(const ngl_auto *a);

/** Current choice of plan class @p cls as a codec (NGL_MODE_OFF for every
 *  plain arm); *settled 0 while still exploring. */
ngl_mode ngl_auto_choice(const ngl_auto *a, uint32_t cls, int *settled);

/** Current choice of plan class @p cls as an arm (< NGL_AUTO_NARMS: plain
 *  variant p is arm p, then NGL_AUTO_ARM_INT8, NGL_AUTO_ARM_INT4). */
uint32_t ngl_auto_choice_arm(const ngl_auto *a, uint32_t cls);

/** One line per class seen, each starting with @p prefix: the choice, why
 *  (agreed times, link and codec GB/s) and how often it changed. */
size_t ngl_auto_describe(const ngl_auto *a, const char *prefix, char *buf, size_t cap);

/** Standalone decision state (the engine makes its own; tests make several
 *  to play ranks). */
ngl_status ngl_auto_create(const ngl_engine_config *cfg, ngl_auto **out);
void ngl_auto_destroy(ngl_auto *a);

typedef struct ngl_engine ngl_engine;

/**
 * Create the engine of one communicator (set-up time).
 * @return NGL_OK and *out, NGL_ERR_INVALID_ARG or NGL_ERR_NO_MEMORY.
 */
ngl_status ngl_engine_create(const ngl_engine_config *cfg, ngl_engine **out);

/** Free @p e and every set; NULL is a no-op. Streams must not be busy. */
void ngl_engine_destroy(ngl_engine *e);

/** The identity tracker (for statistics and tests). */
const ngl_ident *ngl_engine_ident(const ngl_engine *e);

/** The engine's statistics; the layer adds its transfers and times. */
ngl_engine_stats *ngl_engine_stats_of(ngl_engine *e);

/** The configuration the engine was created with. */
const ngl_engine_config *ngl_engine_config_of(const ngl_engine *e);

/** The engine's auto-mode decisions (also there with a fixed mode). */
ngl_auto *ngl_engine_auto(ngl_engine *e);

/**
 * Record one call on the communicator and find its key (ngl_ident_next()).
 * Call it for every call the layer sees, in call order, compressed or not.
 * @p flags: NGL_IDENT_*.
 * @return the key for keyed calls (possibly NGL_IDENT_TRANSIENT), else 0.
 */
uint32_t ngl_engine_identify(ngl_engine *e, uint64_t token, int flags);

/* What a call looks like, for ngl_engine_set_get(). Calls that share a
 * token must share all of it. */
typedef struct ngl_engine_shape {
    uint64_t count;     /* elements */
    ngl_dtype dtype;    /* the core's type (ignored by ops with a variant) */
    int exact;          /* exact frames (no quantization, no state): RAW frames
                           of the core, or the ops' own frames for variant != 0 */
    uint32_t variant;   /* passed to ops->create() (ngl_cc_exact_ops: element
                           type and reduction); 0 for the core's codecs */
    uint32_t layer_tag; /* the layer's own bits, kept in the set */
    ngl_mode mode;      /* the codec, part of the key (auto switches between
                           codecs per call); NGL_MODE_OFF: the configured one */
    const ngl_cc_ops *ops;
    void *queue;              /* device queue for ops->create(), or NULL */
    const uint64_t *chunk_lo; /* P + 1 chunk boundaries imposed by the caller
                                 (NCCL's reduce-scatter windows; one segment
                                 each), or NULL for the engine's layout */
} ngl_engine_shape;

/**
 * The state set of key (@p token, @p k) for calls of shape @p shape,
 * created (streams included, through shape->ops on shape->queue) on first
 * use. Stateful keys that would take the state memory past
 * NANGILA_STATE_MAX_MB get stateless streams instead (logged once); the
 * decision depends only on the call sequence, so it is the same on every
 * rank. Marks the set used by the current call.
 * @param *created  1 if the set was created by this call.
 * @return NGL_OK and *out, NGL_ERR_NO_MEMORY or the codec's status (nothing
 *         kept, the engine is unchanged apart from the call record).
 */
ngl_status ngl_engine_set_get(ngl_engine *e, uint64_t token, uint32_t k,
                              const ngl_engine_shape *shape, ngl_engine_set **out, int *created);

/** Frame bound of one piece of @p len elements (the largest frame a set's
 *  stream of that length can produce); 0 for an invalid configuration. */
size_t ngl_engine_piece_bound(const ngl_engine *e, uint64_t len, ngl_dtype dtype, int exact);

/** Destroy a set that ngl_engine_set_get() just created, when the layer's
 *  ranks did not all manage to create theirs (the MPI wrapper agrees). */
void ngl_engine_set_drop(ngl_engine *e, ngl_engine_set *set);

/**
 * Drop sets the recent call history no longer uses: unused for 4 periods
 * (at least 1024 calls), or beyond 4096 sets. Call after every call (at the
 * same point of the call sequence on every rank); sets of calls still in
 * flight (at most a few hundred calls back) are never dropped.
 */
void ngl_engine_evict(ngl_engine *e);

/** Elements of owner @p o's chunk inside segment @p s; *off its first index. */
static inline uint64_t ngl_engine_seg_len(const ngl_engine_set *set, int o, uint32_t s,
                                          uint64_t *off)
{
    const uint64_t lo = set->chunk_lo[o] + (uint64_t)s * set->seg_elems;
    const uint64_t hi = set->chunk_lo[o + 1];
    *off = lo;
    if (lo >= hi) {
        return 0;
    }
    return hi - lo < set->seg_elems ? hi - lo : set->seg_elems;
}

/**
 * Digests of every stream's closed-loop state (streams must be idle):
 *   *pairs   XOR over this rank's encoders and its decoders that mirror
 *            one encoder each (RS decoders, its own AG decoder) of
 *            mix(stream id, state hash): XORed over all ranks it is 0
 *            exactly when every decoder matches its encoder;
 *   *shared  the same over every AG decoder: equal on every rank.
 * @return 1, or 0 when the codec ops cannot hash state.
 */
int ngl_engine_state_digest(const ngl_engine *e, uint64_t *pairs, uint64_t *shared);

/** One-line summary of identity and state (sets, bytes, locks) for logs. */
size_t ngl_engine_describe(const ngl_engine *e, char *buf, size_t cap);

#endif /* NGL_ENGINE_H */
