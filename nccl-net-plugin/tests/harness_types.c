/* SPDX-License-Identifier: Apache-2.0 */
/*
 * harness_types.c -- collnet-types: the collNet carries every NCCL datatype
 * with Sum, Prod, Max and Min exactly. fp32, fp16 and bf16 with Sum take the
 * compressed path, which the other collnet scenarios check; every other pair
 * is checked here, bit for bit, against a reference written from the
 * plugin's contract (not from its code):
 *
 *   element i of a call is reduced by the rank o whose chunk holds i (the
 *   engine's layout: blocks of NANGILA_BLOCK elements, balanced by blocks,
 *   the first nb % P ranks one block more): acc = value of rank o, then
 *   acc = op(acc, value of rank r) for r = 0..P-1, r != o, in increasing r,
 *   rounding to the datatype after every step.
 *
 *   - integers: Sum and Prod wrap (two's complement); Max and Min in the
 *     natural order, signed for int*, unsigned for uint*;
 *   - fp64 in double, fp32 in float;
 *   - fp16, bf16, fp8 e4m3 (OCP "fn": no infinities, NaN 0x7f/0xff, max 448)
 *     and fp8 e5m2: both operands widened to float exactly, the op in float,
 *     rounded back to nearest even; overflow gives +-inf, or NaN for e4m3;
 *   - any NaN operand gives NaN; NaNs compare by "is NaN" only, and a zero
 *     result of Max/Min by value (either sign of zero is right).
 *
 * 3 ranks; for each pair one batch of calls in flight at awkward counts
 * (1, 255, 256, 257, 1000, 4099, 70001), tested in a shuffled order. The
 * inputs are deterministic per (rank, call, element) and chosen so that
 * every op means something: integer sums and products that wrap and that do
 * not, float products near 1, sums over a few decades (so that the order of
 * additions shows), NaN, +-Inf, -0 and values whose sum overflows the type.
 */
#include "harness.h"
#include "ngl_nccl_abi.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const ttype TYPES[] = {
    {NGL_NCCL_INT8, "int8", 1, K_SINT, 0, 0, 0, 0, 0},
    {NGL_NCCL_UINT8, "uint8", 1, K_UINT, 0, 0, 0, 0, 0},
    {NGL_NCCL_INT32, "int32", 4, K_SINT, 0, 0, 0, 0, 0},
    {NGL_NCCL_UINT32, "uint32", 4, K_UINT, 0, 0, 0, 0, 0},
    {NGL_NCCL_INT64, "int64", 8, K_SINT, 0, 0, 0, 0, 0},
    {NGL_NCCL_UINT64, "uint64", 8, K_UINT, 0, 0, 0, 0, 0},
    {NGL_NCCL_FLOAT16, "fp16", 2, K_MINI, 10, 5, 15, 0, 8},
    {NGL_NCCL_FLOAT32, "fp32", 4, K_F32, 0, 0, 0, 0, 20},
    {NGL_NCCL_FLOAT64, "fp64", 8, K_F64, 0, 0, 0, 0, 30},
    {NGL_NCCL_BFLOAT16, "bf16", 2, K_MINI, 7, 8, 127, 0, 20},
    {NGL_NCCL_FLOAT8E4M3, "fp8e4m3", 1, K_MINI, 3, 4, 7, 1, 4},
    {NGL_NCCL_FLOAT8E5M2, "fp8e5m2", 1, K_MINI, 2, 5, 15, 0, 8},
};

static const char *const OP_NAMES[] = {"sum", "prod", "max", "min"};

const ttype *ttype_of(int nccl)
{
    for (size_t d = 0; d < sizeof TYPES / sizeof TYPES[0]; d++) {
        if (TYPES[d].nccl == nccl) {
            return &TYPES[d];
        }
    }
    return NULL;
}

const char *ttype_op_name(int op)
{
    return op >= NGL_NCCL_SUM && op <= NGL_NCCL_MIN ? OP_NAMES[op] : "?";
}

int ttype_is_int(const ttype *t)
{
    return t->kind == K_SINT || t->kind == K_UINT;
}

/* Every bit of one element. */
static uint64_t width_mask(const ttype *t)
{
    return t->esize == 8 ? ~0ull : (1ull << (8 * t->esize)) - 1;
}

/* ---- fp16, bf16 and fp8: our own conversions, round to nearest even ------- */

static uint32_t mini_mmask(const ttype *t)
{
    return (1u << t->mbits) - 1;
}

static uint32_t mini_emask(const ttype *t)
{
    return (1u << t->ebits) - 1;
}

static int mini_isnan(const ttype *t, uint32_t bits)
{
    const uint32_t e = (bits >> t->mbits) & mini_emask(t), m = bits & mini_mmask(t);
    return e == mini_emask(t) && (t->fn ? m == mini_mmask(t) : m != 0);
}

/* Largest finite value: all-ones exponent and mantissa less one code (fn),
 * or the largest exponent below the all-ones one (IEEE). */
static double mini_max(const ttype *t)
{
    const int emax = (int)mini_emask(t) - t->bias - (t->fn ? 0 : 1);
    const double top = ldexp(1.0, t->mbits + 1) - (t->fn ? 2.0 : 1.0);
    return ldexp(top, emax - t->mbits);
}

/* Exact: every value of these types is a float. */
static float mini_to_float(const ttype *t, uint32_t bits)
{
    const uint32_t e = (bits >> t->mbits) & mini_emask(t), m = bits & mini_mmask(t);
    const int neg = (bits >> (t->mbits + t->ebits)) & 1u;
    double v;
    if (mini_isnan(t, bits)) {
        return NAN;
    }
    if (!t->fn && e == mini_emask(t)) {
        v = INFINITY;
    } else if (e == 0) {
        v = ldexp((double)m, 1 - t->bias - t->mbits);
    } else {
        v = ldexp((double)(m | (mini_mmask(t) + 1)), (int)e - t->bias - t->mbits);
    }
    return (float)(neg ? -v : v);
}

static uint32_t mini_from_float(const ttype *t, float f)
{
    const uint32_t mm = mini_mmask(t), em = mini_emask(t);
    const uint32_t sign = signbit(f) ? 1u << (t->mbits + t->ebits) : 0;
    const uint32_t nan = t->fn ? (em << t->mbits) | mm : (em << t->mbits) | (1u << (t->mbits - 1));
    const uint32_t inf = t->fn ? nan : em << t->mbits; /* e4m3 overflows to NaN */
    if (isnan(f)) {
        return sign | nan;
    }
    const double a = fabs((double)f);
    if (isinf(a)) {
        return sign | inf;
    }
    if (a == 0.0) {
        return sign;
    }
    int e;
    (void)frexp(a, &e); /* a = m * 2^e, m in [0.5, 1): its exponent is e - 1 */
    const int emin = 1 - t->bias;
    const int ulp_exp = (e - 1 > emin ? e - 1 : emin) - t->mbits;
    const double q = ldexp(a, -ulp_exp); /* exact, below 2^(mbits + 1) */
    double r = floor(q);
    const double frac = q - r;
    if (frac > 0.5 || (frac == 0.5 && fmod(r, 2.0) != 0.0)) {
        r += 1.0;
    }
    if (ldexp(r, ulp_exp) > mini_max(t)) {
        return sign | inf;
    }
    uint32_t n = (uint32_t)r; /* at most 2^(mbits + 1) */
    if (e - 1 < emin) {
        /* subnormal; n == 2^mbits is the smallest normal, encoded the same */
        return sign | n;
    }
    uint32_t be = (uint32_t)(e - 1 + t->bias);
    if (n == 2u << t->mbits) { /* rounded up to the next power of two */
        n >>= 1;
        be++;
    }
    return sign | (be << t->mbits) | (n & mm);
}

/* ---- elements as bit patterns ------------------------------------------------ */

static double f64_of(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static uint64_t f64_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

static float f32_of(uint64_t bits)
{
    const uint32_t b = (uint32_t)bits;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static uint64_t f32_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* A float type's element as a double (exact). */
double ttype_value(const ttype *t, uint64_t bits)
{
    if (t->kind == K_F64) {
        return f64_of(bits);
    }
    if (t->kind == K_F32) {
        return (double)f32_of(bits);
    }
    return (double)mini_to_float(t, (uint32_t)bits);
}

int ttype_isnan(const ttype *t, uint64_t bits)
{
    return t->kind == K_MINI ? mini_isnan(t, (uint32_t)bits) : isnan(ttype_value(t, bits));
}

/* @p d rounded to a float type (inputs only: fp32 and the small types
 * may round twice, which is fine for making up values). */
uint64_t ttype_bits(const ttype *t, double d)
{
    if (t->kind == K_F64) {
        return f64_bits(d);
    }
    if (t->kind == K_F32) {
        return f32_bits((float)d);
    }
    return mini_from_float(t, (float)d);
}

static double max_finite(const ttype *t)
{
    return t->kind == K_F64 ? DBL_MAX : (t->kind == K_F32 ? (double)FLT_MAX : mini_max(t));
}

uint64_t ttype_load(const uint8_t *buf, size_t esize, size_t i)
{
    uint64_t v = 0;
    if (esize == 1) {
        v = buf[i];
    } else if (esize == 2) {
        uint16_t x;
        memcpy(&x, buf + 2 * i, 2);
        v = x;
    } else if (esize == 4) {
        uint32_t x;
        memcpy(&x, buf + 4 * i, 4);
        v = x;
    } else {
        memcpy(&v, buf + 8 * i, 8);
    }
    return v;
}

void ttype_store(uint8_t *buf, size_t esize, size_t i, uint64_t v)
{
    if (esize == 1) {
        buf[i] = (uint8_t)v;
    } else if (esize == 2) {
        const uint16_t x = (uint16_t)v;
        memcpy(buf + 2 * i, &x, 2);
    } else if (esize == 4) {
        const uint32_t x = (uint32_t)v;
        memcpy(buf + 4 * i, &x, 4);
    } else {
        memcpy(buf + 8 * i, &v, 8);
    }
}

/* ---- the reference ------------------------------------------------------------- */

static double fop_d(int op, double x, double y)
{
    if (op == NGL_NCCL_SUM) {
        return x + y;
    }
    if (op == NGL_NCCL_PROD) {
        return x * y;
    }
    if (isnan(x) || isnan(y)) {
        return NAN;
    }
    if (op == NGL_NCCL_MAX) {
        return x > y ? x : y;
    }
    return x < y ? x : y;
}

/* fp32 and the narrow formats: sums and products rounded to float; max and
 * min pick an operand (or NaN), so double gives the same answer exactly. */
static float fop_f(int op, float x, float y)
{
    if (op == NGL_NCCL_SUM) {
        return x + y;
    }
    if (op == NGL_NCCL_PROD) {
        return x * y;
    }
    return (float)fop_d(op, x, y);
}

/* One step of the reduction, rounded to the type: op(@p a, @p b). */
uint64_t ttype_ref_op(const ttype *t, int op, uint64_t a, uint64_t b)
{
    if (ttype_is_int(t)) {
        /* Unsigned arithmetic wraps without UB; flipping the sign bit turns
         * the signed order into the unsigned one. */
        const uint64_t mask = width_mask(t);
        const uint64_t flip = t->kind == K_SINT ? (mask >> 1) + 1 : 0;
        if (op == NGL_NCCL_SUM) {
            return (a + b) & mask;
        }
        if (op == NGL_NCCL_PROD) {
            return (a * b) & mask;
        }
        const int a_larger = (a ^ flip) > (b ^ flip);
        return (op == NGL_NCCL_MAX) == a_larger ? a : b;
    }
    if (t->kind == K_F64) {
        return f64_bits(fop_d(op, f64_of(a), f64_of(b)));
    }
    if (t->kind == K_F32) {
        return f32_bits(fop_f(op, f32_of(a), f32_of(b)));
    }
    return mini_from_float(t,
                           fop_f(op, mini_to_float(t, (uint32_t)a), mini_to_float(t, (uint32_t)b)));
}

int ttype_result_ok(const ttype *t, int op, uint64_t want, uint64_t got)
{
    if (ttype_is_int(t)) {
        return want == got;
    }
    if (ttype_isnan(t, want)) {
        return ttype_isnan(t, got);
    }
    if ((op == NGL_NCCL_MAX || op == NGL_NCCL_MIN) && ttype_value(t, want) == 0.0) {
        return !ttype_isnan(t, got) && ttype_value(t, got) == 0.0; /* +0 or -0 */
    }
    return want == got;
}

/* ---- inputs -------------------------------------------------------------------- */

static uint64_t int_input(const ttype *t, int op, uint64_t h)
{
    const uint64_t mask = width_mask(t), top = (mask >> 1) + 1;
    const int sgn = t->kind == K_SINT;
    const unsigned sel = (unsigned)(h & 15);
    const uint64_t v = ngl_hash_splitmix64(h);
    if (sel == 0) {
        const uint64_t ext[4] = {sgn ? top : 0, sgn ? top - 1 : mask, 0, mask};
        return ext[(h >> 4) & 3]; /* min, max, 0, -1 (all ones) */
    }
    if (op == NGL_NCCL_MAX || op == NGL_NCCL_MIN || (op == NGL_NCCL_SUM && sel < 8) ||
        (op == NGL_NCCL_PROD && sel == 1)) {
        return v & mask; /* the whole range: sums and some products wrap */
    }
    /* Small magnitudes, nonzero for Prod: a product of three of them stays
     * in range (int8 4^3, uint8 6^3, int32 1000^3, uint32 1600^3, ...). */
    uint64_t lim;
    if (op == NGL_NCCL_PROD) {
        lim = t->esize == 1 ? (sgn ? 4 : 6) : (t->esize == 4 ? (sgn ? 1000 : 1600) : 2000000);
    } else {
        lim = t->esize == 1 ? 40 : 1000000;
    }
    const uint64_t mag = (op == NGL_NCCL_PROD ? 1 : 0) + (v >> 8) % lim;
    return sgn && (v & 1) ? (0 - mag) & mask : mag;
}

static uint64_t float_input(const ttype *t, int op, int r, size_t i, uint64_t h)
{
    const uint64_t v = ngl_hash_splitmix64(h ^ 0x5bd1e995u);
    const double u = (double)(v >> 11) * 0x1p-53; /* [0, 1) */
    const double sign = (v & 1) ? -1.0 : 1.0;
    /* Signed zeros: -0 on every rank (Sum and Prod give -0 bit for bit), or
     * -0 on rank 0 only (Sum gives +0). */
    if (i % 251 == 7) {
        return ttype_bits(t, -0.0);
    }
    if (i % 251 == 11) {
        return ttype_bits(t, r == 0 ? -0.0 : 0.0);
    }
    const unsigned sel = (unsigned)(h & 63);
    if (sel == 0) {
        return ttype_bits(t, NAN);
    }
    if (sel == 1) {
        /* e4m3 has no infinity: its largest value instead */
        return ttype_bits(t, sign * (t->fn ? max_finite(t) : INFINITY));
    }
    if (sel == 2) {
        return ttype_bits(t, -0.0);
    }
    if (sel < 6) {
        /* large: two of them overflow the type (Sum), or a product may */
        return ttype_bits(t, sign * max_finite(t) * (0.5 + 0.5 * u));
    }
    if ((op == NGL_NCCL_MAX || op == NGL_NCCL_MIN) && sel < 36) {
        return v & width_mask(t); /* any bit pattern: NaN payloads, subnormals */
    }
    if (op == NGL_NCCL_PROD) {
        /* near 1, in [0.5, 2), one in four negative */
        return ttype_bits(t, ((v & 6) == 0 ? -1.0 : 1.0) * exp2(2.0 * u - 1.0));
    }
    const int k = t->span;
    return ttype_bits(t, sign * ldexp(1.0 + u, (int)((v >> 1) % (uint64_t)(2 * k + 1)) - k));
}

/* Element @p i of rank @p r in call @p call (unique over the scenario). */
uint64_t ttype_input(const ttype *t, int op, int r, uint64_t call, size_t i)
{
    const uint64_t h = ngl_hash_splitmix64(((uint64_t)r << 56) ^ (call << 32) ^ (uint64_t)i);
    return ttype_is_int(t) ? int_input(t, op, h) : float_input(t, op, r, i, h);
}

/* The rank whose chunk holds element @p i of @p count. */
int chunk_owner(size_t i, size_t count, size_t block)
{
    const size_t nb = (count + block - 1) / block, P = (size_t)g_nranks;
    const size_t base = nb / P, rem = nb % P, b = i / block;
    if (b < rem * (base + 1)) {
        return (int)(b / (base + 1));
    }
    return (int)(rem + (b - rem * (base + 1)) / base);
}

/* ---- one batch per (type, op) ---------------------------------------------------- */

enum { NCALLS = 10 };
static const size_t COUNTS[NCALLS] = {4099, 1, 70001, 255, 1000, 256, 257, 4099, 1, 1000};

typedef struct {
    size_t count;
    uint8_t *send, *recv;
    void *req;
    int done;
    uint64_t call;
} tcall;

/* Post every call (retrying on back-pressure) and test them in a shuffled
 * order until all complete, within DEADLINE_S. */
static void types_run(coll_ctx *cx, tcall *c, const ttype *t, int op, unsigned seed)
{
    const double dl = now_s() + DEADLINE_S;
    int posted = 0, left = NCALLS;
    while (left > 0) {
        CHECK(now_s() < dl, "%s %s: iallreduce did not complete (%d of %d left)", t->name,
              OP_NAMES[op], left, NCALLS);
        while (posted < NCALLS) {
            tcall *k = &c[posted];
            k->req = NULL;
            NCCL_OK(coll->iallreduce(cx->cc, k->send, k->recv, (int)k->count,
                                     (ngl_nccl_dtype_t)t->nccl, (ngl_nccl_redop_t)op, cx->mh,
                                     cx->mh, &k->req));
            if (k->req == NULL) {
                break; /* back-pressure: test, then retry */
            }
            posted++;
        }
        for (int n = 0; n < posted; n++) {
            seed = seed * 1103515245u + 12345u;
            const int j = (int)(seed % (unsigned)posted);
            if (c[j].done) {
                continue;
            }
            int size = -1;
            NCCL_OK(coll->test(c[j].req, &c[j].done, &size));
            if (c[j].done) {
                left--;
                CHECK(size == (int)(c[j].count * t->esize), "%s %s: test size %d, expected %zu",
                      t->name, OP_NAMES[op], size, c[j].count * t->esize);
            }
        }
    }
}

static void types_verify(const tcall *k, const ttype *t, int op, size_t block)
{
    for (size_t i = 0; i < k->count; i++) {
        const int o = chunk_owner(i, k->count, block);
        uint64_t in[MAX_RANKS] = {0};
        for (int r = 0; r < g_nranks; r++) {
            in[r] = ttype_input(t, op, r, k->call, i);
        }
        uint64_t acc = in[o];
        for (int r = 0; r < g_nranks; r++) {
            if (r != o) {
                acc = ttype_ref_op(t, op, acc, in[r]);
            }
        }
        const uint64_t got = ttype_load(k->recv, t->esize, i);
        if (!ttype_result_ok(t, op, acc, got)) {
            char ins[MAX_RANKS * 24] = "";
            size_t len = 0;
            for (int r = 0; r < g_nranks && len < sizeof ins; r++) {
                len += (size_t)snprintf(ins + len, sizeof ins - len, " %#llx",
                                        (unsigned long long)in[r]);
            }
            die("%s %s: call %llu (count %zu) element %zu: got %#llx, expected %#llx "
                "(owner %d, inputs by rank:%s)",
                t->name, OP_NAMES[op], (unsigned long long)k->call, k->count, i,
                (unsigned long long)got, (unsigned long long)acc, o, ins);
        }
    }
}

static void types_pair(coll_ctx *cx, const ttype *t, int op, uint64_t call_base, size_t block)
{
    tcall c[NCALLS];
    memset(c, 0, sizeof c);
    const size_t half = cx->region_size / 2;
    size_t off = 0;
    for (int k = 0; k < NCALLS; k++) {
        const size_t bytes = COUNTS[k] * t->esize;
        CHECK(off + bytes <= half, "staging region too small for one batch");
        c[k].count = COUNTS[k];
        c[k].call = call_base + (uint64_t)k;
        c[k].send = cx->region + off;
        c[k].recv = cx->region + half + off;
        off += (bytes + 255) / 256 * 256;
        for (size_t i = 0; i < c[k].count; i++) {
            ttype_store(c[k].send, t->esize, i, ttype_input(t, op, g_rank, c[k].call, i));
        }
        memset(c[k].recv, 0xA5, bytes); /* results must overwrite this */
    }
    types_run(cx, c, t, op, (unsigned)g_rank * 131u + (unsigned)call_base);
    uint64_t mine = 0, all[MAX_RANKS];
    for (int k = 0; k < NCALLS; k++) {
        types_verify(&c[k], t, op, block);
        mine = ngl_hash_splitmix64(mine ^ digest(c[k].recv, c[k].count * t->esize));
    }
    hub_allgather(&mine, sizeof mine, all);
    for (int r = 1; r < g_nranks; r++) {
        CHECK(all[r] == all[0], "%s %s: results differ between rank 0 and rank %d", t->name,
              OP_NAMES[op], r);
    }
}

void scenario_collnet_types(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    const size_t block = (size_t)env_int("NANGILA_BLOCK", 256);
    CHECK(block > 0, "NANGILA_BLOCK %zu", block);
    coll_ctx cx;
    coll_setup(&cx, (size_t)2 << 20); /* one batch of 8-byte elements fits twice */
    for (size_t d = 0; d < sizeof TYPES / sizeof TYPES[0]; d++) {
        const ttype *t = &TYPES[d];
        char done[32] = "";
        for (int op = NGL_NCCL_SUM; op <= NGL_NCCL_MIN; op++) {
            if (op == NGL_NCCL_SUM && (t->nccl == NGL_NCCL_FLOAT32 || t->nccl == NGL_NCCL_FLOAT16 ||
                                       t->nccl == NGL_NCCL_BFLOAT16)) {
                continue; /* the compressed path: the other collnet scenarios */
            }
            types_pair(&cx, t, op, ((uint64_t)d * 4 + (uint64_t)op) << 8, block);
            strcat(done, done[0] ? " " : "");
            strcat(done, OP_NAMES[op]);
        }
        if (g_rank == 0) {
            printf("collnet-types %-7s: %-16s exact, identical on %d ranks (%d calls each)\n",
                   t->name, done, g_nranks, NCALLS);
        }
    }
    coll_teardown(&cx);
}
