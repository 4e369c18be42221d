/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness_window.c -- collnet-window[-exact]: the collNet's iallgather and
 * ireducescatter over windows of a virtual buffer, interleaved with
 * iallreduce on the same collComm. The contract, NCCL's (CollNetDirect,
 * src/transport/coll_net.cc), is written down here and checked without
 * looking at the plugin's code:
 *
 *   A virtual buffer of P x bpr bytes; rank r's slice is [r*bpr, (r+1)*bpr).
 *   One call covers the window [wo, wo+wb) of it, through one part of wb
 *   bytes. A rank's part of the window is window ∩ its slice (may be empty).
 *
 *   - iallgather: sendData holds this rank's part (a valid pointer that is
 *     not read when the part is empty); afterwards the receive part holds
 *     the window of the gathered buffer, byte for byte, whatever the bytes
 *     (NaN patterns included).
 *   - ireducescatter: the send part holds this rank's input for the whole
 *     window; afterwards recvData holds the reduction over all ranks of this
 *     rank's part, and nothing else is written. Element arithmetic and order
 *     are harness_types.c's: the slice owner's value first, then the other
 *     ranks in increasing order, rounding to the type after each step.
 *     Bit-exact for every pair but Sum of fp32, fp16 and bf16 when the
 *     window is at least NANGILA_MIN_BYTES and NANGILA_MODE is not off;
 *     those are compressed and must stay within
 *         |got - exact| <= 3 * 1.02 * (2 / qmax) * sum_{r != owner} M_r
 *                          + (P + 2) * ulp * sum_r |x_r|
 *     where M_r is rank r's largest finite magnitude over the element's
 *     codec block (NANGILA_BLOCK elements counted from the start of the
 *     owner's part, not of the window), 3 allows error feedback one step
 *     more, and ulp is 2^-23 (fp32), 2^-10 (fp16), 2^-7 (bf16) relative.
 *     Where an input is NaN or infinite the result must be the exact one
 *     (NaN for NaN, the same infinity).
 *   - iallreduce interleaved with them: bit-exact in harness_types.c's
 *     layout, or within the bound above over every rank for the compressed
 *     pairs.
 *   - Calls are posted in the same order on every rank (they share the
 *     collComm's per-peer ordering), retried on back-pressure, and tested
 *     in a shuffled order, all in flight at once; results are identical on
 *     all ranks where they must be (allgather, allreduce); nothing outside a
 *     receive buffer is written (guard bytes around each).
 *
 * Batches: allgather over three sizes of slice (70001 fp32 words, 13 bytes,
 * 3 words) and six windows each; then reduce-scatter for fp32 Sum (three
 * rounds of the same calls with new data, so that error feedback, where the
 * plugin carries it, has a stream to carry), bf16 Sum, int32 Sum, int64
 * Max, fp64 Sum, fp8 e4m3 Min and uint8 Prod, each over slices of 70001 and
 * of 5 elements and six windows; iallreduce and allgather calls between
 * them in every batch.
 */
#include "harness.h"
#include "ngl_nccl_abi.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W_AG, W_RS, W_AR };

#define GUARD      64 /* bytes of 0x5A before and after every buffer */
#define GUARD_BYTE 0x5A
#define POISON     0xA5 /* receive buffers before a call */
#define MAXCALLS   48

enum { NWIN = 6 };
static const char *const WIN_NAMES[NWIN] = {"whole",   "span",     "inside",
                                            "end-mid", "from-mid", "edges"};

typedef struct {
    int kind;
    const ttype *t; /* W_RS, W_AR; NULL for W_AG */
    int op;
    size_t esize;  /* bytes of one element (W_AG: the unit the window is cut in) */
    size_t n;      /* elements per rank's slice; W_AR: the count */
    size_t wo, wb; /* the window, in elements; W_AR: 0, count */
    int win;       /* index in WIN_NAMES; -1 for W_AR */
    int cmp;       /* compressed: checked against the bound, not bit for bit */
    uint64_t call;
    size_t pb, pe; /* this rank's part of the window, virtual elements */
    uint8_t *send, *recv;
    size_t recv_len; /* bytes */
    void *req;
    int done;
    double worst; /* compressed: largest error relative to its bound; else -1 */
} wcall;

typedef struct {
    coll_ctx *cx;
    wcall c[MAXCALLS];
    int ncalls;
    int nar; /* iallreduce calls added to this batch */
    size_t soff, roff;
    ngl_nccl_sge_v8_t part; /* the one part of every call, reused as NCCL's stack copy */
    uint64_t next_call;
    size_t block, min_bytes;
    int qmax;
    int nbatches, counts[3];
} wbatch;

/* NANGILA_MIN_BYTES as the plugin reads it: a count, optionally k, M or G. */
static size_t env_bytes(const char *name, size_t dflt)
{
    const char *v = getenv(name);
    if (v == NULL) {
        return dflt;
    }
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    const int s = end ? toupper((unsigned char)*end) : 0;
    x <<= s == 'K' ? 10 : (s == 'M' ? 20 : (s == 'G' ? 30 : 0));
    return (size_t)x;
}

static int is_compressible(const ttype *t, int op)
{
    return op == NGL_NCCL_SUM && (t->nccl == NGL_NCCL_FLOAT32 || t->nccl == NGL_NCCL_FLOAT16 ||
                                  t->nccl == NGL_NCCL_BFLOAT16);
}

static double ulp_of(const ttype *t)
{
    return t->nccl == NGL_NCCL_FLOAT32 ? 0x1p-23 : (t->nccl == NGL_NCCL_FLOAT16 ? 0x1p-10 : 0x1p-7);
}

/* Window @p w of a buffer of P slices of @p n elements (n >= 2), in elements. */
static void window_of(int w, size_t n, size_t *wo, size_t *wb)
{
    const size_t P = (size_t)g_nranks;
    const size_t third = n / 3 > 0 ? n / 3 : 1, half = n / 2 > 0 ? n / 2 : 1;
    switch (w) {
    case 0: /* the whole buffer */
        *wo = 0;
        *wb = P * n;
        break;
    case 1: /* mid slice 0 to mid slice 1: the last rank's part is empty */
        *wo = n / 2;
        *wb = n;
        break;
    case 2: /* inside slice 1: every other part is empty */
        *wo = n + n / 4;
        *wb = half;
        break;
    case 3: /* from the start, ending mid-slice in the last slice */
        *wo = 0;
        *wb = (P - 1) * n + third;
        break;
    case 4: /* mid slice 1 to the end: rank 0's part is empty */
        *wo = n + third;
        *wb = P * n - *wo;
        break;
    default: { /* a few elements of slice 0, all of slice 1, a few of slice 2 */
        const size_t a = n / 2 < 5 ? n / 2 : 5, z = n / 2 < 7 ? n / 2 : 7;
        *wo = n - a;
        *wb = a + n + z;
        break;
    }
    }
    CHECK(*wb > 0 && *wo + *wb <= P * n, "window %d of slices of %zu", w, n);
}

/* ---- inputs ------------------------------------------------------------------ */

/* Byte @p v of the gathered buffer of call @p call: any byte, with one
 * 4-byte word in four a float NaN (signalling or quiet) or infinity, which a
 * copy through float arithmetic would change. */
static uint8_t ag_byte(uint64_t call, size_t v)
{
    const uint64_t h = ngl_hash_splitmix64((call << 40) ^ (uint64_t)(v / 4) ^ 0xa6a6a6a6ull);
    static const uint32_t special[4] = {0x7f800001u, 0xffc00123u, 0x7f800000u, 0xff800000u};
    const uint32_t word = (h >> 62) == 0 ? special[(h >> 8) & 3] : (uint32_t)h;
    return (uint8_t)(word >> (8 * (v % 4)));
}

/* Inputs of compressed calls: finite, a magnitude that depends on the
 * position only (regions of 97 elements over 2^-6 .. 2^6, not aligned to
 * any block), so that repeating a call with new data keeps each block's
 * scale within a factor 2; and a few NaN and infinities that must come
 * back exactly. */
static uint64_t smooth_input(const ttype *t, int r, uint64_t call, size_t v)
{
    const int last = g_nranks - 1;
    switch (v % 3001) {
    case 1000: return ttype_bits(t, r == 1 ? NAN : 1.0);       /* NaN */
    case 2000: return ttype_bits(t, r == 0 ? INFINITY : -2.0); /* +Inf */
    case 2500:                                                 /* Inf - Inf: NaN */
        return ttype_bits(t, r == 0 ? INFINITY : (r == last ? -INFINITY : 0.5));
    case 3000: return ttype_bits(t, r == 0 ? 0.25 : -INFINITY); /* -Inf */
    default: break;
    }
    const uint64_t h =
        ngl_hash_splitmix64(((uint64_t)r << 56) ^ (call << 32) ^ (uint64_t)v ^ 0x9e3779b9ull);
    const double mag = 0.5 + 0.5 * (double)(h >> 11) * 0x1p-53; /* [0.5, 1) */
    const int e = (int)(ngl_hash_splitmix64((uint64_t)(v / 97) + 0x51edull) % 13) - 6;
    return ttype_bits(t, ldexp((h & 1) ? -mag : mag, e));
}

/* Element @p v (virtual index; W_AR: index in the call) of rank @p r. */
static uint64_t call_input(const wcall *k, int r, size_t v)
{
    return k->cmp ? smooth_input(k->t, r, k->call, v) : ttype_input(k->t, k->op, r, k->call, v);
}

/* ---- batches ------------------------------------------------------------------ */

/* collnet-window-device: every buffer in "device memory" registered as
 * NCCL_PTR_CUDA. Only with the CPU emulator plugin, whose device memory is
 * host memory the checks can read directly. */
static int g_win_device;

/* A buffer of @p len bytes (0 allowed: still a valid pointer) with guard
 * bytes on both sides, from one half of the region. */
static uint8_t *carve(wbatch *b, int recv_half, size_t len)
{
    const size_t half = b->cx->region_size / 2;
    size_t *off = recv_half ? &b->roff : &b->soff;
    const size_t need = GUARD + (len + 63) / 64 * 64 + GUARD;
    CHECK(*off + need <= half, "staging region too small for one batch");
    uint8_t *region = g_win_device ? b->cx->dregion : b->cx->region;
    uint8_t *base = region + (recv_half ? half : 0) + *off;
    memset(base, GUARD_BYTE, need);
    *off += need;
    return base + GUARD;
}

static void batch_begin(wbatch *b)
{
    b->ncalls = 0;
    b->nar = 0;
    b->soff = 0;
    b->roff = 0;
}

static wcall *batch_add(wbatch *b, int kind, const ttype *t, int op, size_t esize, size_t n,
                        int win)
{
    CHECK(b->ncalls < MAXCALLS, "too many calls in one batch");
    wcall *k = &b->c[b->ncalls++];
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->t = t;
    k->op = op;
    k->esize = esize;
    k->n = n;
    k->win = win;
    k->call = b->next_call++;
    k->worst = -1.0;
    if (kind == W_AR) {
        k->wo = 0;
        k->wb = n;
        k->pb = 0;
        k->pe = n;
        k->cmp = b->qmax > 0 && is_compressible(t, op) && n * esize >= b->min_bytes;
    } else {
        window_of(win, n, &k->wo, &k->wb);
        const size_t lo = (size_t)g_rank * n, hi = lo + n;
        k->pb = k->wo > lo ? k->wo : lo;
        k->pe = k->wo + k->wb < hi ? k->wo + k->wb : hi;
        if (k->pb >= k->pe) {
            k->pb = k->pe = 0; /* empty part */
        }
        k->cmp =
            kind == W_RS && b->qmax > 0 && is_compressible(t, op) && k->wb * esize >= b->min_bytes;
    }
    b->counts[kind]++;
    return k;
}

static void add_ag(wbatch *b, size_t esize, size_t n, int win)
{
    wcall *k = batch_add(b, W_AG, NULL, 0, esize, n, win);
    const size_t pbytes = (k->pe - k->pb) * esize, first = k->pb * esize;
    k->send = carve(b, 0, pbytes);
    for (size_t j = 0; j < pbytes; j++) {
        k->send[j] = ag_byte(k->call, first + j);
    }
    k->recv_len = k->wb * esize;
    k->recv = carve(b, 1, k->recv_len);
    memset(k->recv, POISON, k->recv_len);
}

static void add_rs(wbatch *b, const ttype *t, int op, size_t n, int win)
{
    wcall *k = batch_add(b, W_RS, t, op, t->esize, n, win);
    k->send = carve(b, 0, k->wb * t->esize);
    for (size_t j = 0; j < k->wb; j++) {
        ttype_store(k->send, t->esize, j, call_input(k, g_rank, k->wo + j));
    }
    k->recv_len = (k->pe - k->pb) * t->esize;
    k->recv = carve(b, 1, k->recv_len);
    memset(k->recv, POISON, k->recv_len);
}

/* The iallreduce calls interleaved in every batch, in rotation: exact and
 * compressed (fp32 70001, above NANGILA_MIN_BYTES by default). */
static void add_ar(wbatch *b)
{
    static const struct {
        int nccl, op;
        size_t count;
    } AR[] = {
        {NGL_NCCL_INT32, NGL_NCCL_SUM, 4099},
        {NGL_NCCL_FLOAT32, NGL_NCCL_SUM, 70001},
        {NGL_NCCL_FLOAT32, NGL_NCCL_SUM, 1000},
        {NGL_NCCL_FLOAT64, NGL_NCCL_MAX, 257},
    };
    const int i = b->nar++ % (int)(sizeof AR / sizeof AR[0]);
    const ttype *t = ttype_of(AR[i].nccl);
    wcall *k = batch_add(b, W_AR, t, AR[i].op, t->esize, AR[i].count, -1);
    k->send = carve(b, 0, k->n * t->esize);
    for (size_t j = 0; j < k->n; j++) {
        ttype_store(k->send, t->esize, j, call_input(k, g_rank, j));
    }
    k->recv_len = k->n * t->esize;
    k->recv = carve(b, 1, k->recv_len);
    memset(k->recv, POISON, k->recv_len);
}

/* @return 1 when posted, 0 on back-pressure. */
static int post_call(wbatch *b, wcall *k)
{
    coll_ctx *cx = b->cx;
    void *mh = g_win_device ? cx->dmh : cx->mh;
    k->req = NULL;
    if (k->kind == W_AR) {
        NCCL_OK(coll->iallreduce(cx->cc, k->send, k->recv, (int)k->n, (ngl_nccl_dtype_t)k->t->nccl,
                                 (ngl_nccl_redop_t)k->op, mh, mh, &k->req));
        return k->req != NULL;
    }
    const size_t bpr = k->n * k->esize, wo = k->wo * k->esize, wb = k->wb * k->esize;
    CHECK(wb <= UINT32_MAX, "window of %zu bytes", wb);
    b->part.mhandle = mh;
    b->part.size = (uint32_t)wb;
    if (k->kind == W_AG) {
        b->part.address = k->recv;
        NCCL_OK(coll->iallgather(cx->cc, k->send, 1, &b->part, bpr, wo, wb, mh, &k->req));
    } else {
        b->part.address = k->send;
        NCCL_OK(coll->ireducescatter(cx->cc, 1, &b->part, k->recv, bpr, wo, wb,
                                     (ngl_nccl_dtype_t)k->t->nccl, (ngl_nccl_redop_t)k->op, mh,
                                     &k->req));
    }
    return k->req != NULL;
}

static const char *kind_name(int kind)
{
    return kind == W_AG ? "allgather" : (kind == W_RS ? "reduce-scatter" : "allreduce");
}

/* Post every call in order (retrying on back-pressure) and test them in a
 * shuffled order until all complete, within DEADLINE_S. */
static void batch_run(wbatch *b, unsigned seed)
{
    const double dl = now_s() + DEADLINE_S;
    int posted = 0, left = b->ncalls;
    while (left > 0) {
        CHECK(now_s() < dl, "batch %d: %d of %d calls did not complete (%d posted)", b->nbatches,
              left, b->ncalls, posted);
        while (posted < b->ncalls && post_call(b, &b->c[posted])) {
            posted++;
        }
        /* NCCL's part lives on its stack: the plugin must not keep it. */
        memset(&b->part, 0xEE, sizeof b->part);
        for (int n = 0; n < posted; n++) {
            seed = seed * 1103515245u + 12345u;
            wcall *k = &b->c[seed % (unsigned)posted];
            if (k->done) {
                continue;
            }
            int size = -1;
            NCCL_OK(coll->test(k->req, &k->done, (n & 1) ? &size : NULL));
            left -= k->done != 0;
        }
    }
}

/* ---- checks -------------------------------------------------------------------- */

static void describe(const wcall *k, char *s, size_t cap)
{
    if (k->kind == W_AR) {
        snprintf(s, cap, "allreduce %s %s call %llu (count %zu)", k->t->name, ttype_op_name(k->op),
                 (unsigned long long)k->call, k->n);
        return;
    }
    snprintf(s, cap, "%s %s %s call %llu: bpr %zu, window %s [%zu, +%zu) bytes, part [%zu, %zu)",
             kind_name(k->kind), k->t ? k->t->name : "bytes", k->t ? ttype_op_name(k->op) : "",
             (unsigned long long)k->call, k->n * k->esize, WIN_NAMES[k->win], k->wo * k->esize,
             k->wb * k->esize, k->pb * k->esize, k->pe * k->esize);
}

static void check_guards(const wcall *k)
{
    char what[256];
    for (size_t i = 0; i < GUARD; i++) {
        if (k->recv[-(ptrdiff_t)GUARD + (ptrdiff_t)i] != GUARD_BYTE ||
            k->recv[k->recv_len + i] != GUARD_BYTE) {
            describe(k, what, sizeof what);
            die("%s: wrote outside its %zu-byte receive buffer", what, k->recv_len);
        }
    }
}

static void check_ag(const wcall *k)
{
    const size_t first = k->wo * k->esize;
    for (size_t j = 0; j < k->recv_len; j++) {
        const uint8_t want = ag_byte(k->call, first + j);
        if (k->recv[j] != want) {
            char what[256];
            describe(k, what, sizeof what);
            die("%s: byte %zu of the window (virtual %zu, slice of rank %zu) is %#x, expected %#x",
                what, j, first + j, (first + j) / (k->n * k->esize), k->recv[j], want);
        }
    }
}

/* Element @p j of the result: inputs of every rank for virtual element
 * @p v, reduced in the reference's order from @p owner. */
static uint64_t reference(const wcall *k, size_t v, int owner, uint64_t *in)
{
    for (int r = 0; r < g_nranks; r++) {
        in[r] = call_input(k, r, v);
    }
    uint64_t acc = in[owner];
    for (int r = 0; r < g_nranks; r++) {
        if (r != owner) {
            acc = ttype_ref_op(k->t, k->op, acc, in[r]);
        }
    }
    return acc;
}

static int owner_at(const wcall *k, const wbatch *b, size_t j)
{
    return k->kind == W_RS ? g_rank : chunk_owner(j, k->n, b->block);
}

__attribute__((noreturn)) static void element_fail(const wcall *k, size_t j, size_t v, int owner,
                                                   const uint64_t *in, uint64_t got, uint64_t want,
                                                   const char *why)
{
    char what[256], ins[MAX_RANKS * 24] = "";
    size_t len = 0;
    describe(k, what, sizeof what);
    for (int r = 0; r < g_nranks && len < sizeof ins; r++) {
        len += (size_t)snprintf(ins + len, sizeof ins - len, " %#llx", (unsigned long long)in[r]);
    }
    die("%s: element %zu (virtual %zu) is %#llx, expected %#llx%s (owner %d, inputs by rank:%s)",
        what, j, v, (unsigned long long)got, (unsigned long long)want, why, owner, ins);
}

/* Result element j (of @p count) is virtual element first + j. */
static void check_exact(const wcall *k, const wbatch *b, size_t first, size_t count)
{
    uint64_t in[MAX_RANKS];
    for (size_t j = 0; j < count; j++) {
        const int o = owner_at(k, b, j);
        const uint64_t want = reference(k, first + j, o, in);
        const uint64_t got = ttype_load(k->recv, k->esize, j);
        if (!ttype_result_ok(k->t, k->op, want, got)) {
            element_fail(k, j, first + j, o, in, got, want, "");
        }
    }
}

/* Compressed: blocks of NANGILA_BLOCK from the start of the result (the
 * owner's part for reduce-scatter, the call for allreduce). Reduce-scatter
 * quantizes every rank's contribution but the owner's; allreduce every
 * one. @return the largest error relative to its bound. */
static double check_bound(const wcall *k, const wbatch *b, size_t first, size_t count)
{
    const int P = g_nranks;
    const double ulp = ulp_of(k->t);
    double worst = 0.0;
    uint64_t in[MAX_RANKS];
    for (size_t b0 = 0; b0 < count; b0 += b->block) {
        const size_t b1 = b0 + b->block < count ? b0 + b->block : count;
        double msum = 0.0;
        for (int r = 0; r < P; r++) {
            if (k->kind == W_RS && r == g_rank) {
                continue; /* the owner's own value is not quantized */
            }
            double m = 0.0;
            for (size_t j = b0; j < b1; j++) {
                const double a = fabs(ttype_value(k->t, call_input(k, r, first + j)));
                m = isfinite(a) && a > m ? a : m;
            }
            msum += m;
        }
        const double q = 3.0 * 1.02 * (2.0 / b->qmax) * msum;
        for (size_t j = b0; j < b1; j++) {
            const int o = owner_at(k, b, j);
            const uint64_t want = reference(k, first + j, o, in);
            const uint64_t got = ttype_load(k->recv, k->esize, j);
            double exact = 0.0, mags = 0.0;
            int finite = 1;
            for (int r = 0; r < P; r++) {
                const double x = ttype_value(k->t, in[r]);
                finite &= isfinite(x) != 0;
                exact += x;
                mags += fabs(x);
            }
            if (!finite) {
                if (!ttype_result_ok(k->t, k->op, want, got)) {
                    element_fail(k, j, first + j, o, in, got, want, " (non-finite input)");
                }
                continue;
            }
            const double bound = q + (P + 2) * ulp * mags + 1e-30;
            const double err = fabs(ttype_value(k->t, got) - exact);
            if (!(err <= bound)) {
                char why[96];
                snprintf(why, sizeof why, " within %.3g (error %.3g, exact %.9g)", bound, err,
                         exact);
                element_fail(k, j, first + j, o, in, got, want, why);
            }
            worst = err / bound > worst ? err / bound : worst;
        }
    }
    return worst;
}

static void check_call(wcall *k, const wbatch *b)
{
    check_guards(k);
    if (k->kind == W_AG) {
        check_ag(k);
        return;
    }
    const size_t count = k->pe - k->pb;
    if (k->cmp) {
        k->worst = check_bound(k, b, k->pb, count);
    } else {
        check_exact(k, b, k->pb, count);
    }
}

static int same_group(const wcall *a, const wcall *c)
{
    return a->kind == c->kind && a->t == c->t && a->op == c->op && a->esize == c->esize &&
           a->n == c->n;
}

/* Check every call, compare what must be identical through the hub, and
 * print one line per group (kind, datatype and op, bytes per rank). */
static void batch_check(wbatch *b, const char *label)
{
    double mine[MAXCALLS], all[MAX_RANKS][MAXCALLS];
    uint64_t dig = 0, digs[MAX_RANKS];
    for (int i = 0; i < MAXCALLS; i++) {
        mine[i] = -1.0;
    }
    for (int i = 0; i < b->ncalls; i++) {
        wcall *k = &b->c[i];
        check_call(k, b);
        mine[i] = k->worst;
        if (k->kind != W_RS) {
            dig = ngl_hash_splitmix64(dig ^ digest(k->recv, k->recv_len));
        }
    }
    hub_allgather(&dig, sizeof dig, digs);
    for (int r = 1; r < g_nranks; r++) {
        CHECK(digs[r] == digs[0], "%s: allgather/allreduce results differ between rank 0 and %d",
              label, r);
    }
    hub_allgather(mine, sizeof mine, all);
    b->nbatches++;
    if (g_rank != 0) {
        return;
    }
    int shown[MAXCALLS] = {0};
    for (int i = 0; i < b->ncalls; i++) {
        if (shown[i]) {
            continue;
        }
        const wcall *g = &b->c[i];
        char line[512];
        size_t len = 0;
        if (g->kind == W_AR) {
            len += (size_t)snprintf(line, sizeof line,
                                    "collnet-window %-9s %-14s %-7s %-4s count %zu:", label,
                                    kind_name(g->kind), g->t->name, ttype_op_name(g->op), g->n);
        } else {
            len += (size_t)snprintf(line, sizeof line,
                                    "collnet-window %-9s %-14s %-7s %-4s bpr %zu:", label,
                                    kind_name(g->kind), g->t ? g->t->name : "bytes",
                                    g->t ? ttype_op_name(g->op) : "", g->n * g->esize);
        }
        for (int j = i; j < b->ncalls && len < sizeof line; j++) {
            const wcall *k = &b->c[j];
            if (!same_group(g, k)) {
                continue;
            }
            shown[j] = 1;
            double w = -1.0;
            for (int r = 0; r < g_nranks; r++) {
                w = all[r][j] > w ? all[r][j] : w;
            }
            const char *name = k->kind == W_AR ? "call" : WIN_NAMES[k->win];
            if (k->cmp) {
                len += (size_t)snprintf(line + len, sizeof line - len, " %s~%.2f", name, w);
            } else {
                len += (size_t)snprintf(line + len, sizeof line - len, " %s", name);
            }
        }
        printf("%s\n", line);
    }
}

/* ---- the scenario ------------------------------------------------------------ */

void scenario_collnet_window(const char *plugin, void *arg)
{
    (void)plugin;
    g_win_device = arg != NULL && *(const int *)arg;
    CHECK(g_nranks >= 3 && g_nranks <= MAX_RANKS, "collnet-window needs 3 ranks or more");
    wbatch batch;
    wbatch *b = &batch;
    memset(b, 0, sizeof *b);
    b->block = (size_t)env_int("NANGILA_BLOCK", 256);
    b->min_bytes = env_bytes("NANGILA_MIN_BYTES", 262144);
    b->qmax = qmax_of_mode();
    b->next_call = 1;
    CHECK(b->block > 0, "NANGILA_BLOCK %zu", b->block);
    coll_ctx cx;
    coll_setup_mem(&cx, (size_t)32 << 20, g_win_device ? MEM_DEVICE : MEM_HOST);
    b->cx = &cx;
    if (g_rank == 0) {
        printf("collnet-window: window names (elements, slices of n): whole [0, 3n), span "
               "[n/2, 3n/2), inside [5n/4, +n/2), end-mid [0, 2n+n/3), from-mid [n+n/3, 3n), "
               "edges [n-5, 2n+7); 'name~x': compressed, worst error x of its bound; "
               "plain name: bit-exact\n");
    }

    /* Allgather: a slice of 70001 fp32 words (windows cut in words), of 13
     * bytes (windows at odd byte offsets) and of 3 words. */
    static const size_t AG[][2] = {{4, 70001}, {1, 13}, {4, 3}};
    batch_begin(b);
    for (size_t s = 0; s < sizeof AG / sizeof AG[0]; s++) {
        for (int w = 0; w < NWIN; w++) {
            add_ag(b, AG[s][0], AG[s][1], w);
            if (w % 2 == 1) {
                add_ar(b);
            }
        }
    }
    batch_run(b, (unsigned)g_rank * 977u + 1u);
    batch_check(b, "bytes");

    /* Reduce-scatter, each pair over slices of 70001 and 5 elements, with
     * iallreduce and allgather calls between them. */
    static const struct {
        int nccl, op, rounds;
    } RS[] = {
        {NGL_NCCL_FLOAT32, NGL_NCCL_SUM, 3}, {NGL_NCCL_BFLOAT16, NGL_NCCL_SUM, 1},
        {NGL_NCCL_INT32, NGL_NCCL_SUM, 1},   {NGL_NCCL_INT64, NGL_NCCL_MAX, 1},
        {NGL_NCCL_FLOAT64, NGL_NCCL_SUM, 1}, {NGL_NCCL_FLOAT8E4M3, NGL_NCCL_MIN, 1},
        {NGL_NCCL_UINT8, NGL_NCCL_PROD, 1},
    };
    static const size_t RS_N[] = {70001, 5};
    for (size_t p = 0; p < sizeof RS / sizeof RS[0]; p++) {
        const ttype *t = ttype_of(RS[p].nccl);
        CHECK(t != NULL, "dtype %d", RS[p].nccl);
        for (int round = 0; round < RS[p].rounds; round++) {
            char label[32];
            if (RS[p].rounds > 1) {
                snprintf(label, sizeof label, "%s r%d", t->name, round + 1);
            } else {
                snprintf(label, sizeof label, "%s", t->name);
            }
            batch_begin(b);
            for (size_t s = 0; s < sizeof RS_N / sizeof RS_N[0]; s++) {
                for (int w = 0; w < NWIN; w++) {
                    add_rs(b, t, RS[p].op, RS_N[s], w);
                    if (w % 3 == 2) {
                        add_ar(b);
                    }
                }
                add_ag(b, t->esize, RS_N[s], (int)(p + s) % NWIN);
            }
            batch_run(b, (unsigned)g_rank * 131u + (unsigned)(p * 7 + (size_t)round));
            batch_check(b, label);
        }
    }
    coll_teardown(&cx);
    if (g_rank == 0) {
        printf("collnet-window: %d batches, %d allgather, %d reduce-scatter and %d interleaved "
               "allreduce calls on %d ranks (%s)\n",
               b->nbatches, b->counts[W_AG], b->counts[W_RS], b->counts[W_AR], g_nranks,
               b->qmax ? "compressed where allowed" : "NANGILA_MODE=off: all exact");
    }
}
