/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness.h -- what the mock NCCL's files share: the rank processes and
 * their hub (plugin_harness.c), the collNet set-up, and the scenarios that
 * live in other files (harness_nccl_replay.c, harness_types.c,
 * harness_window.c). Test code only.
 *
 * Every wait is bounded: helpers die() (exit 1) past their deadline, so a
 * hang is a failure, never a stuck test.
 */
#ifndef NGL_HARNESS_H
#define NGL_HARNESS_H

#include "ngl_hash.h" /* ngl_hash_splitmix64(): the value generators */
#include "ngl_nccl_abi.h"

#include <stddef.h>
#include <stdint.h>

#define MAX_RANKS  8
#define DEADLINE_S 60.0
#define HUB_MAX    (64 * 1024)

/* This process's rank in the running scenario (-1 in the parent), and the
 * plugin's tables once loaded. */
extern int g_rank, g_nranks;
extern const ngl_nccl_net_v8_t *net;
extern const ngl_nccl_collnet_v8_t *coll;

/* Every message the plugin logs, at any level, formatted; NULL: none. Set
 * it in a rank process to capture lines NCCL would log at INFO. */
extern void (*g_log_hook)(ngl_nccl_log_level_t level, const char *msg);

/** Monotonic seconds. */
double now_s(void);
/** Print "FAIL: ..." for this rank and exit(1). */
__attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...);
/** FNV-1a of @p n bytes. */
uint64_t digest(const uint8_t *p, size_t n);
/** getenv as an int, @p dflt when unset. */
int env_int(const char *name, int dflt);
/** NANGILA_COLLNET_PERIOD, 0 when unset. */
int collnet_period(void);
/** Largest quantized magnitude of the NANGILA_MODE in effect (0: exact);
 *  under auto, of its cap (NANGILA_MODE_MAX). */
int qmax_of_mode(void);

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            die(__VA_ARGS__);                                                                      \
        }                                                                                          \
    } while (0)

#define NCCL_OK(call)                                                                              \
    do {                                                                                           \
        ngl_nccl_result_t r_ = (call);                                                             \
        CHECK(r_ == NGL_NCCL_SUCCESS, "%s returned %d (line %d)", #call, (int)r_, __LINE__);       \
    } while (0)

/* ---- hub: allgather through the parent ---------------------------------- */

/** Every rank contributes @p len (<= HUB_MAX) bytes; @p all receives
 *  nranks * len. Blocks up to DEADLINE_S. */
void hub_allgather(const void *mine, size_t len, void *all);
void hub_barrier(void);

typedef void (*rank_fn)(const char *plugin, void *arg);
/** Fork @p n ranks running @p fn; -1 or the rank expected to die by SIGKILL.
 *  @return 0 when every rank ended as expected within @p limit seconds. */
int run_ranks(int n, const char *plugin, rank_fn fn, void *arg, int victim, double limit);

/* ---- "device" memory: cudaMalloc'ed, or host memory for the emulator ---- */

int dmem_devices(void);
void *dmem_alloc(size_t n);
void dmem_free(void *p);
void dmem_put(void *d, const void *h, size_t n);
void dmem_get(void *h, const void *d, size_t n);

/* ---- collNet ------------------------------------------------------------- */

typedef struct {
    void *cc;
    void *mh;
    uint8_t *region;
    size_t region_size;
    uint8_t *dregion; /* device memory registered as NCCL_PTR_CUDA, or NULL */
    void *dmh;
    int mem;
} coll_ctx;

enum {
    MEM_HOST = 0,
    MEM_DEVICE,
    MEM_MIXED, /* rank 0 device, the others host */
    MEM_SPLIT  /* one buffer of each call on each side (GPU Direct one way) */
};

/** init, listen, connect (all ranks take part), then a calloc'ed host
 *  region of @p region_size registered on the collComm (and device memory
 *  of the same size for @p mem != MEM_HOST). */
void coll_setup_mem(coll_ctx *cx, size_t region_size, int mem);
void coll_setup(coll_ctx *cx, size_t region_size);
/** Deregister, closeColl, free. */
void coll_teardown(coll_ctx *cx);

/* ---- scenarios in harness_nccl_replay.c ----------------------------------- */

/** collnet-ddp[-int4|-reg], collnet-auto[-skew|-int4]: DDP-like traces replayed
 *  through the model of NCCL's collNet proxy. @p arg is a ddp_opts
 *  (harness_nccl_replay.c). */
void scenario_collnet_ddp(const char *plugin, void *arg);
/** Options of the DDP scenarios, from a scenario name; NULL: not one. */
void *ddp_opts_for(const char *scenario);
/** nccl-model: check the model's invariants, then print the proxy's calls
 *  for allreduces of @p mib[i] MiB of fp32 (16 channels), plain and
 *  registered; @return the exit code. */
int nccl_model_print(const double *mib, int n);

/* ---- scenario in harness_types.c ------------------------------------------ */

/** collnet-types: every NCCL datatype with Sum, Prod, Max and Min but the
 *  compressed pairs, bit-exact against a reference and identical on all
 *  ranks (3 ranks). @p arg is unused. */
void scenario_collnet_types(const char *plugin, void *arg);

/* Element arithmetic of the reference (harness_types.c), shared with
 * harness_window.c. Elements travel as bit patterns in a uint64_t. */
enum { K_SINT, K_UINT, K_F32, K_F64, K_MINI };

typedef struct {
    int nccl;
    const char *name;
    size_t esize;
    int kind;
    int mbits, ebits, bias; /* K_MINI: mantissa and exponent widths, exponent bias */
    int fn;                 /* K_MINI: no infinities, NaN has every bit set (OCP E4M3) */
    int span;               /* floats: Sum inputs span 2^-span .. 2^(span+1) */
} ttype;

/** The NCCL datatype @p nccl (0..11), NULL for any other value. */
const ttype *ttype_of(int nccl);
/** "sum", "prod", "max", "min"; "?" for any other op. */
const char *ttype_op_name(int op);
int ttype_is_int(const ttype *t);
/** A float type's element as a double (exact). */
double ttype_value(const ttype *t, uint64_t bits);
int ttype_isnan(const ttype *t, uint64_t bits);
/** @p d rounded to a float type. */
uint64_t ttype_bits(const ttype *t, double d);
/** Element @p i of @p buf, elements of @p esize bytes (1, 2, 4 or 8). */
uint64_t ttype_load(const uint8_t *buf, size_t esize, size_t i);
void ttype_store(uint8_t *buf, size_t esize, size_t i, uint64_t v);
/** One step of the reduction, rounded to the type: op(@p a, @p b). */
uint64_t ttype_ref_op(const ttype *t, int op, uint64_t a, uint64_t b);
/** @p got matches @p want: bit for bit, any NaN for NaN, either zero for a
 *  zero result of Max or Min. */
int ttype_result_ok(const ttype *t, int op, uint64_t want, uint64_t got);
/** The reference's input: element @p i of rank @p r in call @p call
 *  (@p call < 2^24, @p i < 2^32), with the spreads every op needs. */
uint64_t ttype_input(const ttype *t, int op, int r, uint64_t call, size_t i);
/** The rank that reduces element @p i of an iallreduce of @p count
 *  elements (the engine's layout in blocks of @p block elements). */
int chunk_owner(size_t i, size_t count, size_t block);

/* ---- scenario in harness_window.c ------------------------------------------ */

/** collnet-window[-exact]: collNet iallgather and ireducescatter over
 *  windows of a virtual buffer, interleaved with iallreduce on the same
 *  collComm (3 ranks). @p arg is unused. */
void scenario_collnet_window(const char *plugin, void *arg);

#endif /* NGL_HARNESS_H */
