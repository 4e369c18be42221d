/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_kernels.c -- every kernel variant against the reference.
 *
 * Each available ISA table (ngl_kernels_get(AVX2 / AVX512)) runs the same
 * dense INT8/INT4 jobs as ngl_kernels_ref, at awkward sizes and block sizes
 * (including blocks that are not a multiple of the vector width), with and
 * without predictor, error feedback, masks and exceptions, whole and split
 * into two block ranges; frame sections, outputs and state must be
 * identical. The conversion kernels are checked over all 65536 f16/bf16
 * patterns and a structured sweep of f32 patterns, the scalar f32->f16
 * conversion against the F16C instruction, and whole streams through the
 * public API must give identical frames on every variant.
 * On a mismatch the first differing element is printed.
 */
#include "ngl_testutil.h"

#include "ngl_kernels.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint64_t k_sizes[] = {0, 1, 7, 8, 15, 16, 17, 253, 256, 257, 4099};
static const uint32_t k_blocks[] = {8, 16, 24, 40, 64, 200, 256};

/* The variants to compare with the reference: those this build has and
 * this CPU runs. */
static size_t k_variants(const ngl_kernels **out)
{
    size_t n = 0;
    const ngl_isa isas[] = {NGL_ISA_AVX2, NGL_ISA_AVX512};
    for (size_t i = 0; i < 2; i++) {
        const ngl_kernels *k = ngl_kernels_get(isas[i]);
        if (k != NULL) {
            assert_int_equal(k->isa, isas[i]);
            assert_int_equal(ngl_isa_available(isas[i]), 1);
            out[n++] = k;
        } else {
            assert_int_equal(ngl_isa_available(isas[i]), 0);
        }
    }
    return n;
}

static void k_cmp_bytes(const char *what, const char *variant, const void *a, const void *b,
                        size_t len, size_t elem)
{
    if (len == 0 || memcmp(a, b, len) == 0) {
        return;
    }
    const uint8_t *x = a, *y = b;
    size_t i = 0;
    while (x[i] == y[i]) {
        i++;
    }
    fail_msg("%s: %s differs from ref at element %zu (byte %zu: %#x vs ref %#x)", variant, what,
             i / elem, i, y[i], x[i]);
}

/* ---- dense jobs ------------------------------------------------------ */

typedef struct k_state {
    float *st1, *st2, *ef, *out;
    uint8_t *gate;
} k_state;

typedef struct k_case {
    uint64_t n;
    uint32_t block, nblocks;
    int int4;
    ngl_predictor pred;
    uint32_t hist;
    int ef;
    ngl_dtype dtype; /* F32 or F16: the exception width */
    uint8_t *skip;   /* NULL or nblocks bits */
    void *src_raw;
    float *x;
    k_state init;
    ngl_rng_key key;
} k_case;

static void *k_alloc(size_t bytes)
{
    void *p = calloc(bytes ? bytes : 1, 1);
    assert_non_null(p);
    return p;
}

static void k_state_alloc(k_state *s, const k_case *c)
{
    const size_t n = (size_t)c->n;
    s->st1 = k_alloc(n * 4 + 64);
    s->st2 = k_alloc(n * 4 + 64);
    s->ef = k_alloc(n * 4 + 64);
    s->out = k_alloc(n * 4 + 64);
    s->gate = k_alloc(c->nblocks + 1);
}

static void k_state_copy(k_state *d, const k_state *s, const k_case *c)
{
    const size_t n = (size_t)c->n;
    memcpy(d->st1, s->st1, n * 4);
    memcpy(d->st2, s->st2, n * 4);
    memcpy(d->ef, s->ef, n * 4);
    memcpy(d->out, s->out, n * 4);
    memcpy(d->gate, s->gate, c->nblocks);
}

static void k_state_free(k_state *s)
{
    free(s->st1);
    free(s->st2);
    free(s->ef);
    free(s->out);
    free(s->gate);
}

static void k_case_make(k_case *c, tu_rng *rng, uint64_t n, uint32_t block, int int4,
                        ngl_predictor pred, uint32_t hist, int ef, ngl_dtype dt, int with_skip,
                        int with_exc)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    c->block = block;
    c->nblocks = (uint32_t)((n + block - 1) / block);
    c->int4 = int4;
    c->pred = pred;
    c->hist = hist;
    c->ef = ef;
    c->dtype = dt;
    c->key = ngl_rng_key_make(tu_rng_u64(rng), tu_rng_u64(rng), tu_rng_u64(rng));
    const size_t ds = ngl_dtype_size(dt);
    c->src_raw = k_alloc((size_t)n * ds + 64);
    c->x = k_alloc((size_t)n * 4 + 64);
    for (uint64_t i = 0; i < n; i++) {
        /* mostly ordinary values; some blocks zero or tiny */
        const uint32_t blk = (uint32_t)(i / block);
        double v = tu_rng_float(rng, -3.0f, 3.0f);
        if (blk % 7 == 3) {
            v = 0.0;
        } else if (blk % 7 == 5) {
            v = ldexp(v, dt == NGL_DTYPE_F16 ? -20 : -110);
        }
        tu_elem_set(c->src_raw, dt, (size_t)i, v);
        if (with_exc) {
            const uint32_t roll = tu_rng_below(rng, 400);
            static const uint64_t f32_specials[] = {0x7fc00000u, 0xffc12345u, 0x7f800001u,
                                                    0x7f800000u, 0xff800000u, 0x7f7fffffu};
            static const uint64_t f16_specials[] = {0x7e00u, 0xfe01u, 0x7c01u,
                                                    0x7c00u, 0xfc00u, 0x7bffu};
            if (roll < 6) {
                tu_elem_set_bits(c->src_raw, dt, (size_t)i,
                                 dt == NGL_DTYPE_F32 ? f32_specials[roll] : f16_specials[roll]);
            }
        }
        c->x[i] = (float)tu_elem_get(c->src_raw, dt, (size_t)i);
    }
    if (dt == NGL_DTYPE_F32) {
        memcpy(c->x, c->src_raw, (size_t)n * 4); /* NaN payloads as they are */
    }
    if (with_skip && c->nblocks > 0) {
        c->skip = k_alloc(c->nblocks / 8 + 1);
        for (uint32_t b = 0; b < c->nblocks; b++) {
            if (tu_rng_below(rng, 3) == 0) {
                c->skip[b >> 3] = (uint8_t)(c->skip[b >> 3] | (1u << (b & 7u)));
            }
        }
    }
    k_state_alloc(&c->init, c);
    for (uint64_t i = 0; i < n; i++) {
        c->init.st1[i] = tu_rng_float(rng, -3.0f, 3.0f);
        c->init.st2[i] = tu_rng_float(rng, -3.0f, 3.0f);
        c->init.ef[i] = ef ? tu_rng_float(rng, -0.05f, 0.05f) : 0.0f;
        c->init.out[i] = tu_rng_float(rng, -1.0f, 1.0f);
    }
    for (uint32_t b = 0; b < c->nblocks; b++) {
        c->init.gate[b] = (uint8_t)tu_rng_below(rng, 2);
    }
}

static void k_case_free(k_case *c)
{
    free(c->src_raw);
    free(c->x);
    free(c->skip);
    k_state_free(&c->init);
}

typedef struct k_wire {
    uint8_t *scales, *codes, *exc;
    size_t scales_len, codes_len, exc_cap;
    uint32_t n_exc;
    uint64_t gated;
} k_wire;

static void k_wire_alloc(k_wire *w, const k_case *c)
{
    w->scales_len = 4u * c->nblocks;
    w->codes_len = c->int4 ? (size_t)(c->n + 1) / 2 : (size_t)c->n;
    w->exc_cap = (size_t)c->n * (4 + ngl_dtype_size(c->dtype));
    w->scales = k_alloc(w->scales_len + 64);
    w->codes = k_alloc(w->codes_len + 64);
    w->exc = k_alloc(w->exc_cap + 64);
    /* Garbage where every code will be written, so that a variant that
     * leaves a code out is caught; the last byte is zeroed as the encoder
     * does (the unused high nibble of an odd INT4 count). */
    memset(w->codes, 0xA5, w->codes_len);
    if (c->int4 && w->codes_len) {
        w->codes[w->codes_len - 1] = 0;
    }
    memset(w->scales, 0x5A, w->scales_len);
}

static void k_wire_free(k_wire *w)
{
    free(w->scales);
    free(w->codes);
    free(w->exc);
}

static void k_job_init(ngl_dense_job *j, const k_case *c, k_state *s, k_wire *w, float *rbuf)
{
    memset(j, 0, sizeof *j);
    j->count = c->n;
    j->block = c->block;
    j->nblocks = c->nblocks;
    j->qmax = c->int4 ? NGL_QMAX_INT4 : NGL_QMAX_INT8;
    j->int4 = c->int4;
    j->pred = c->pred;
    j->hist = c->hist;
    j->beta = 0.875f;
    j->one_minus_beta = 1.0f - 0.875f;
    j->st1 = s->st1;
    j->st2 = s->st2;
    j->gate = s->gate;
    j->skip = c->skip;
    j->scales = w->scales;
    j->codes = w->codes;
    j->exc = w->exc;
    j->exc_dsize = (uint32_t)ngl_dtype_size(c->dtype);
    j->dtype = c->dtype;
    j->x = c->x;
    j->src_raw = c->src_raw;
    j->ef = c->ef ? s->ef : NULL;
    j->key = c->key;
    j->rbuf = rbuf;
    j->out = s->out;
}

static uint64_t k_sent_before(const k_case *c, uint32_t b)
{
    uint64_t sent = 0;
    for (uint32_t i = 0; i < b; i++) {
        sent += !(c->skip && ((c->skip[i >> 3] >> (i & 7u)) & 1u));
    }
    return sent;
}

/* Run @p fn over all blocks, or over [0, mid) and [mid, nblocks). */
static void k_run(ngl_dense_fn fn, ngl_dense_job *j, const k_case *c, uint32_t mid)
{
    if (mid == 0 || mid >= c->nblocks) {
        fn(j, 0, c->nblocks, 0);
        return;
    }
    fn(j, 0, mid, 0);
    fn(j, mid, c->nblocks, k_sent_before(c, mid));
}

static void k_cmp_state(const char *variant, const k_case *c, const k_state *ref,
                        const k_state *got, int cmp_out)
{
    const size_t n = (size_t)c->n;
    k_cmp_bytes("predictor state st1", variant, ref->st1, got->st1, n * 4, 4);
    k_cmp_bytes("predictor state st2", variant, ref->st2, got->st2, n * 4, 4);
    k_cmp_bytes("gate bits", variant, ref->gate, got->gate, c->nblocks, 1);
    k_cmp_bytes("error feedback", variant, ref->ef, got->ef, n * 4, 4);
    if (cmp_out) {
        k_cmp_bytes("decoded output", variant, ref->out, got->out, n * 4, 4);
    }
}

/* Encode and decode one case on the reference and on @p v; compare. */
static void k_case_check(const k_case *c, const ngl_kernels *v, uint32_t mid, int accumulate)
{
    const ngl_kernels *ref = &ngl_kernels_ref;
    float *rbuf = k_alloc((size_t)c->block * 4);
    k_state s_ref, s_v;
    k_wire w_ref, w_v;
    ngl_dense_job j_ref, j_v;
    k_state_alloc(&s_ref, c);
    k_state_alloc(&s_v, c);
    k_wire_alloc(&w_ref, c);
    k_wire_alloc(&w_v, c);

    /* encode */
    k_state_copy(&s_ref, &c->init, c);
    k_state_copy(&s_v, &c->init, c);
    k_job_init(&j_ref, c, &s_ref, &w_ref, rbuf);
    k_job_init(&j_v, c, &s_v, &w_v, rbuf);
    ref->encode_dense(&j_ref, 0, c->nblocks, 0);
    k_run(v->encode_dense, &j_v, c, mid);
    const uint64_t nsent = k_sent_before(c, c->nblocks);
    uint64_t coded = 0;
    for (uint32_t b = 0; b < c->nblocks; b++) {
        if (!(c->skip && ((c->skip[b >> 3] >> (b & 7u)) & 1u))) {
            coded +=
                (uint64_t)(b + 1) * c->block <= c->n ? c->block : c->n - (uint64_t)b * c->block;
        }
    }
    const size_t codes_len = c->int4 ? (size_t)(coded + 1) / 2 : (size_t)coded;
    const size_t esz = 4 + ngl_dtype_size(c->dtype);
    char name[64];
    snprintf(name, sizeof name, "%s encode", v->name);
    k_cmp_bytes("scales", name, w_ref.scales, w_v.scales, (size_t)nsent * 4, 4);
    k_cmp_bytes("codes", name, w_ref.codes, w_v.codes, codes_len, 1);
    if (j_ref.n_exc != j_v.n_exc) {
        fail_msg("%s: %u exceptions, ref %u", name, j_v.n_exc, j_ref.n_exc);
    }
    k_cmp_bytes("exceptions", name, w_ref.exc, w_v.exc, (size_t)j_ref.n_exc * esz, esz);
    if (j_ref.gated_blocks != j_v.gated_blocks) {
        fail_msg("%s: gated_blocks %llu, ref %llu", name, (unsigned long long)j_v.gated_blocks,
                 (unsigned long long)j_ref.gated_blocks);
    }
    k_cmp_state(name, c, &s_ref, &s_v, 0);

    /* decode the reference's sections from the initial state */
    k_state_copy(&s_ref, &c->init, c);
    k_state_copy(&s_v, &c->init, c);
    const uint32_t n_exc = j_ref.n_exc;
    k_job_init(&j_ref, c, &s_ref, &w_ref, rbuf);
    k_job_init(&j_v, c, &s_v, &w_ref, rbuf);
    j_ref.n_exc = j_v.n_exc = n_exc;
    j_ref.accumulate = j_v.accumulate = accumulate;
    j_ref.x = j_v.x = NULL;
    j_ref.ef = j_v.ef = NULL;
    ref->decode_dense(&j_ref, 0, c->nblocks, 0);
    k_run(v->decode_dense, &j_v, c, mid);
    snprintf(name, sizeof name, "%s decode%s", v->name, accumulate ? " (accumulate)" : "");
    k_cmp_state(name, c, &s_ref, &s_v, 1);
    if (j_ref.exc_cursor != n_exc || j_v.exc_cursor != n_exc) {
        fail_msg("%s: applied %u / ref %u of %u exceptions", name, j_v.exc_cursor, j_ref.exc_cursor,
                 n_exc);
    }
    if (j_ref.gated_blocks != j_v.gated_blocks) {
        fail_msg("%s: gated_blocks differ", name);
    }

    k_wire_free(&w_ref);
    k_wire_free(&w_v);
    k_state_free(&s_ref);
    k_state_free(&s_v);
    free(rbuf);
}

static void test_kernels_dense_variants_match_ref(void **state)
{
    (void)state;
    const ngl_kernels *vs[2];
    const size_t nv = k_variants(vs);
    if (nv == 0) {
        skip(); /* nothing to compare on this CPU/build */
    }
    tu_rng rng;
    tu_rng_seed(&rng, 42);
    uint64_t cases = 0;
    for (size_t si = 0; si < sizeof k_sizes / sizeof k_sizes[0]; si++) {
        for (size_t bi = 0; bi < sizeof k_blocks / sizeof k_blocks[0]; bi++) {
            for (int pred = NGL_PRED_NONE; pred <= NGL_PRED_LINEAR; pred++) {
                for (int combo = 0; combo < 8; combo++) {
                    const int int4 = combo & 1, ef = (combo >> 1) & 1;
                    const int variant_bits = combo >> 2;
                    const uint32_t hist = pred == NGL_PRED_LINEAR ? (uint32_t)(combo % 3) : 2u;
                    k_case c;
                    k_case_make(&c, &rng, k_sizes[si], k_blocks[bi], int4, (ngl_predictor)pred,
                                hist, ef,
                                (si + bi + (size_t)pred) % 2 ? NGL_DTYPE_F16 : NGL_DTYPE_F32,
                                variant_bits, (si + bi + (size_t)combo) % 3 == 0);
                    for (size_t v = 0; v < nv; v++) {
                        const uint32_t mid =
                            c.nblocks > 1 ? 1 + tu_rng_below(&rng, c.nblocks - 1) : 0;
                        k_case_check(&c, vs[v], 0, combo & 1);
                        k_case_check(&c, vs[v], mid, !(combo & 1));
                        cases++;
                    }
                    k_case_free(&c);
                }
            }
        }
    }
    assert_true(cases > 0);
}

/* ---- conversions ----------------------------------------------------- */

#if defined(__x86_64__)
__attribute__((target("f16c"))) static uint16_t k_hw_f32_to_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, 0); /* imm 0: round to nearest even */
}

__attribute__((target("f16c"))) static float k_hw_f16_to_f32(uint16_t h)
{
    return _cvtsh_ss(h);
}

/* cpuid leaf 1, ECX bit 29 (clang 14's __builtin_cpu_supports lacks "f16c") */
static int k_have_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
}
#else
static int k_have_f16c(void)
{
    return 0;
}
#endif

/* f32 patterns: specials, NaN payloads, subnormals, ties and overflow
 * boundaries of f16 and bf16, and a sweep over every exponent with the
 * bits that decide rounding. */
static size_t k_f32_patterns(uint32_t **out)
{
    static const uint32_t specials[] = {
        0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
        0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fbfffffu, 0x7fffffffu,
        0xffffffffu, 0x7fc12345u, 0x7f802000u, 0x7f801fffu, /* NaN payloads below f16's 10 kept bits
                                                             */
        0x7f7fffffu, 0xff7fffffu, 0x00800000u, 0x00000001u, 0x807fffffu,
        0x00400000u, 0x477fe000u,                           /* 65504, largest f16 */
        0x477fefffu,                                        /* just below the f16 overflow tie */
        0x477ff000u,                                        /* 65520: ties to Inf */
        0x477ff001u, 0x47800000u, 0x7f7f8000u, 0x7f7f7fffu, /* bf16 overflow tie region */
        0x33000000u, 0x33000001u, 0x32ffffffu,              /* half the smallest f16 subnormal */
        0x33800000u, 0x387fc000u, 0x387fe000u, 0x38800000u, 0x387fffffu,
        0x3f801000u, 0x3f803000u, 0x3f800fffu, 0x3f801001u, /* f16 ties even/odd */
        0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u, /* bf16 ties even/odd */
    };
    const size_t nspec = sizeof specials / sizeof specials[0];
    static const uint32_t lows[] = {0x0000u, 0x0001u, 0x0fffu, 0x1000u, 0x1001u, 0x1fffu};
    const size_t nsweep = 2u * 256u * 1024u * 6u;
    const size_t nrand = 1u << 16;
    uint32_t *p = malloc((nspec + nsweep + nrand) * sizeof *p);
    assert_non_null(p);
    size_t n = 0;
    for (size_t i = 0; i < nspec; i++) {
        p[n++] = specials[i];
    }
    for (uint32_t sign = 0; sign < 2; sign++) {
        for (uint32_t e = 0; e < 256; e++) {
            for (uint32_t top = 0; top < 1024; top++) {
                for (size_t l = 0; l < 6; l++) {
                    p[n++] = (sign << 31) | (e << 23) | (top << 13) | lows[l];
                }
            }
        }
    }
    tu_rng rng;
    tu_rng_seed(&rng, 7);
    for (size_t i = 0; i < nrand; i++) {
        p[n++] = (uint32_t)tu_rng_u64(&rng);
    }
    *out = p;
    return n;
}

/* Independent bf16 rounding: the nearer of the two neighbours, ties to
 * even, finite overflow to Inf; NaN keeps sign and top payload, quiet. */
static uint16_t k_bf16_expected(uint32_t u)
{
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((u >> 16) | 0x0040u);
    }
    const uint32_t lo = u & 0xffff0000u;
    const uint32_t rem = u & 0xffffu;
    uint32_t r = lo;
    if (rem > 0x8000u || (rem == 0x8000u && (lo & 0x10000u))) {
        r = lo + 0x10000u; /* carries into the exponent: the next binade or Inf */
    }
    return (uint16_t)(r >> 16);
}

static void test_kernels_f16_scalar_matches_f16c(void **state)
{
    (void)state;
    if (!k_have_f16c()) {
        skip();
    }
#if defined(__x86_64__)
    /* widening: every half pattern, signalling NaNs included */
    for (uint32_t h = 0; h < 65536; h++) {
        const uint32_t sw = ngl_f32_bits(ngl_f16_to_f32((uint16_t)h));
        const uint32_t hw = ngl_f32_bits(k_hw_f16_to_f32((uint16_t)h));
        if (sw != hw) {
            fail_msg("f16 %#06x: ngl_f16_to_f32 %#010x, F16C %#010x", h, sw, hw);
        }
    }
    uint32_t *pat;
    const size_t n = k_f32_patterns(&pat);
    for (size_t i = 0; i < n; i++) {
        const float f = ngl_bits_f32(pat[i]);
        const uint16_t sw = ngl_f32_to_f16(f);
        const uint16_t hw = k_hw_f32_to_f16(f);
        if (sw != hw) {
            fail_msg("f32 %#010x: ngl_f32_to_f16 %#06x, F16C %#06x", pat[i], sw, hw);
        }
        /* saturating variant: the same, except finite -> Inf */
        const uint16_t sat = ngl_f32_to_f16_sat(f);
        const int fin = (pat[i] & 0x7f800000u) != 0x7f800000u;
        const uint16_t want =
            fin && (hw & 0x7fffu) == 0x7c00u ? (uint16_t)((hw & 0x8000u) | 0x7bffu) : hw;
        if (sat != want) {
            fail_msg("f32 %#010x: ngl_f32_to_f16_sat %#06x, expected %#06x", pat[i], sat, want);
        }
    }
    free(pat);
#endif
}

static void test_kernels_bf16_scalar_rounding(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        assert_int_equal(ngl_f32_bits(ngl_bf16_to_f32((uint16_t)h)), h << 16);
    }
    uint32_t *pat;
    const size_t n = k_f32_patterns(&pat);
    for (size_t i = 0; i < n; i++) {
        const uint16_t want = k_bf16_expected(pat[i]);
        const uint16_t got = ngl_f32_to_bf16(ngl_bits_f32(pat[i]));
        if (got != want) {
            fail_msg("f32 %#010x: ngl_f32_to_bf16 %#06x, expected %#06x", pat[i], got, want);
        }
        const int fin = (pat[i] & 0x7f800000u) != 0x7f800000u;
        const uint16_t want_sat =
            fin && (want & 0x7fffu) == 0x7f80u ? (uint16_t)((want & 0x8000u) | 0x7f7fu) : want;
        if (ngl_f32_to_bf16_sat(ngl_bits_f32(pat[i])) != want_sat) {
            fail_msg("f32 %#010x: ngl_f32_to_bf16_sat wrong", pat[i]);
        }
    }
    free(pat);
}

static void k_cmp_u16(const char *what, const char *variant, const uint16_t *ref,
                      const uint16_t *got, size_t n, const uint32_t *inputs)
{
    for (size_t i = 0; i < n; i++) {
        if (ref[i] != got[i]) {
            fail_msg("%s %s: element %zu (input %#010x) gives %#06x, ref %#06x", variant, what, i,
                     inputs ? inputs[i] : 0u, got[i], ref[i]);
        }
    }
}

static int k_half_nan(uint16_t h, int bf)
{
    return bf ? (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) : (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
}

/* Like k_cmp_u16, except where both addends are NaN: IEEE 754 leaves open
 * which payload NaN + NaN keeps, and compilers may swap the operands of a
 * commutative add, so there only a NaN result is required. */
static void k_cmp_acc(const char *what, const char *variant, const uint16_t *ref,
                      const uint16_t *got, size_t n, const uint32_t *addends,
                      const uint16_t *dst_in, int bf)
{
    for (size_t i = 0; i < n; i++) {
        if (ref[i] == got[i]) {
            continue;
        }
        const int both_nan = (addends[i] & 0x7fffffffu) > 0x7f800000u && k_half_nan(dst_in[i], bf);
        if (both_nan && k_half_nan(ref[i], bf) && k_half_nan(got[i], bf)) {
            continue;
        }
        fail_msg("%s %s: element %zu (%#06x + %#010x) gives %#06x, ref %#06x", variant, what, i,
                 dst_in[i], addends[i], got[i], ref[i]);
    }
}

static void k_cmp_f32(const char *what, const char *variant, const float *ref, const float *got,
                      size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ngl_f32_bits(ref[i]) != ngl_f32_bits(got[i])) {
            fail_msg("%s %s: element %zu gives %#010x, ref %#010x", variant, what, i,
                     ngl_f32_bits(got[i]), ngl_f32_bits(ref[i]));
        }
    }
}

static void test_kernels_conversions_match_ref(void **state)
{
    (void)state;
    const ngl_kernels *vs[2];
    const size_t nv = k_variants(vs);
    if (nv == 0) {
        skip();
    }
    const ngl_kernels *ref = &ngl_kernels_ref;
    uint16_t *h_all = malloc(65536 * 2 + 64);
    float *f_ref = malloc(65536 * 4 + 64), *f_v = malloc(65536 * 4 + 64);
    assert_true(h_all && f_ref && f_v);
    for (uint32_t h = 0; h < 65536; h++) {
        h_all[h] = (uint16_t)h;
    }
    uint32_t *pat;
    const size_t np = k_f32_patterns(&pat);
    uint16_t *o_ref = malloc(np * 2 + 64), *o_v = malloc(np * 2 + 64);
    uint16_t *acc_ref = malloc(np * 2 + 64), *acc_v = malloc(np * 2 + 64);
    uint16_t *acc_in = malloc(np * 2 + 64);
    assert_true(o_ref && o_v && acc_ref && acc_v && acc_in);
    tu_rng rng;
    tu_rng_seed(&rng, 99);

    for (size_t v = 0; v < nv; v++) {
        const ngl_kernels *k = vs[v];
        /* all 65536 patterns, then awkward lengths at odd offsets */
        ref->f16_to_f32(h_all, f_ref, 65536);
        k->f16_to_f32(h_all, f_v, 65536);
        k_cmp_f32("f16_to_f32", k->name, f_ref, f_v, 65536);
        ref->bf16_to_f32(h_all, f_ref, 65536);
        k->bf16_to_f32(h_all, f_v, 65536);
        k_cmp_f32("bf16_to_f32", k->name, f_ref, f_v, 65536);
        for (size_t si = 0; si < sizeof k_sizes / sizeof k_sizes[0]; si++) {
            const size_t n = (size_t)k_sizes[si], off = 1 + tu_rng_below(&rng, 1000);
            memset(f_v, 0x77, (n + 1) * 4);
            ref->f16_to_f32(h_all + off, f_ref, n);
            k->f16_to_f32(h_all + off, f_v, n);
            k_cmp_f32("f16_to_f32 (short)", k->name, f_ref, f_v, n);
            ref->bf16_to_f32(h_all + off, f_ref, n);
            k->bf16_to_f32(h_all + off, f_v, n);
            k_cmp_f32("bf16_to_f32 (short)", k->name, f_ref, f_v, n);
        }

        /* narrowing, saturating, over the f32 pattern set */
        const float *src = (const float *)(const void *)pat;
        ref->f32_to_f16_sat(src, o_ref, np);
        k->f32_to_f16_sat(src, o_v, np);
        k_cmp_u16("f32_to_f16_sat", k->name, o_ref, o_v, np, pat);
        ref->f32_to_bf16_sat(src, o_ref, np);
        k->f32_to_bf16_sat(src, o_v, np);
        k_cmp_u16("f32_to_bf16_sat", k->name, o_ref, o_v, np, pat);
        for (size_t si = 0; si < sizeof k_sizes / sizeof k_sizes[0]; si++) {
            const size_t n = (size_t)k_sizes[si], off = 1 + tu_rng_below(&rng, 1000);
            o_v[n] = 0x1234;
            ref->f32_to_f16_sat(src + off, o_ref, n);
            k->f32_to_f16_sat(src + off, o_v, n);
            k_cmp_u16("f32_to_f16_sat (short)", k->name, o_ref, o_v, n, pat + off);
            assert_int_equal(o_v[n], 0x1234); /* nothing written past n */
            ref->f32_to_bf16_sat(src + off, o_ref, n);
            k->f32_to_bf16_sat(src + off, o_v, n);
            k_cmp_u16("f32_to_bf16_sat (short)", k->name, o_ref, o_v, n, pat + off);
        }

        /* accumulate: dst16 = rn(dst16 + src) over random halves and the
         * pattern set as addends (Inf, NaN and overflow included) */
        for (int bf = 0; bf <= 1; bf++) {
            for (size_t i = 0; i < np; i++) {
                acc_in[i] = acc_ref[i] = acc_v[i] = (uint16_t)tu_rng_u64(&rng);
            }
            if (bf) {
                ref->bf16_accumulate(src, acc_ref, np);
                k->bf16_accumulate(src, acc_v, np);
            } else {
                ref->f16_accumulate(src, acc_ref, np);
                k->f16_accumulate(src, acc_v, np);
            }
            k_cmp_acc(bf ? "bf16_accumulate" : "f16_accumulate", k->name, acc_ref, acc_v, np, pat,
                      acc_in, bf);
            for (size_t si = 0; si < sizeof k_sizes / sizeof k_sizes[0]; si++) {
                const size_t n = (size_t)k_sizes[si], off = 3 + tu_rng_below(&rng, 1000);
                memcpy(acc_v + off, acc_ref + off, n * 2);
                memcpy(acc_in + off, acc_ref + off, n * 2);
                if (bf) {
                    ref->bf16_accumulate(src + off, acc_ref + off, n);
                    k->bf16_accumulate(src + off, acc_v + off, n);
                } else {
                    ref->f16_accumulate(src + off, acc_ref + off, n);
                    k->f16_accumulate(src + off, acc_v + off, n);
                }
                k_cmp_acc("accumulate (short)", k->name, acc_ref + off, acc_v + off, n, pat + off,
                          acc_in + off, bf);
            }
        }
    }
    free(pat);
    free(acc_in);
    free(o_ref);
    free(o_v);
    free(acc_ref);
    free(acc_v);
    free(h_all);
    free(f_ref);
    free(f_v);
}

/* ---- whole streams through the public API ---------------------------- */

/* Hash of every frame and every decoded output of a short stream. */
static uint64_t k_stream_hash(const ngl_stream_config *base, ngl_isa isa, uint64_t *enc_state)
{
    ngl_stream_config c = *base;
    c.isa = isa;
    tu_pair p;
    tu_pair_open(&p, &c);
    const size_t ds = ngl_dtype_size(c.dtype);
    uint8_t *x = malloc((size_t)c.count * ds + 8), *y = malloc((size_t)c.count * ds + 8);
    assert_true(x && y);
    uint64_t h = TU_FNV_INIT;
    for (uint64_t step = 0; step < 6; step++) {
        tu_fill_signal(x, c.dtype, (size_t)c.count, 5, step, 2.0f);
        if (step == 2 && c.count > 10) {
            tu_elem_set(x, c.dtype, 3, NAN);
            tu_elem_set(x, c.dtype, (size_t)c.count - 2, INFINITY);
        }
        tu_pair_step(&p, x, y);
        h = tu_fnv(h, p.frame, p.len);
        h = tu_fnv(h, y, (size_t)c.count * ds);
    }
    *enc_state = ngl_encoder_state_hash(p.enc);
    tu_pair_close(&p);
    free(x);
    free(y);
    return h;
}

static void test_kernels_streams_identical_frames(void **state)
{
    (void)state;
    static const ngl_dtype dts[] = {NGL_DTYPE_F32, NGL_DTYPE_F16, NGL_DTYPE_BF16};
    uint64_t compared = 0;
    for (size_t si = 0; si < sizeof k_sizes / sizeof k_sizes[0]; si++) {
        for (int codec = NGL_CODEC_INT8; codec <= NGL_CODEC_INT4; codec++) {
            for (int pred = NGL_PRED_NONE; pred <= NGL_PRED_LINEAR; pred++) {
                for (int mode = 0; mode < 3; mode++) {
                    ngl_stream_config c;
                    ngl_stream_config_init(&c);
                    c.codec = (ngl_codec)codec;
                    c.dtype = dts[(si + (size_t)mode) % 3];
                    c.predictor = (ngl_predictor)pred;
                    c.count = k_sizes[si];
                    c.block_size = k_blocks[(si + (size_t)pred + (size_t)mode) % 7];
                    c.error_feedback = mode != 1;
                    c.topk_fraction = mode == 1 ? 0.2 : 0.0;
                    c.mask_fraction = mode == 2 ? 0.3 : 0.0;
                    c.seed = 11;
                    uint64_t s_ref, s_v;
                    const uint64_t h_ref = k_stream_hash(&c, NGL_ISA_REF, &s_ref);
                    for (int isa = NGL_ISA_AVX2; isa <= NGL_ISA_AVX512; isa++) {
                        if (!ngl_isa_available((ngl_isa)isa)) {
                            continue;
                        }
                        const uint64_t h = k_stream_hash(&c, (ngl_isa)isa, &s_v);
                        if (h != h_ref || s_v != s_ref) {
                            fail_msg("%s stream (codec %d pred %d mode %d count %llu block %u) "
                                     "differs from ref",
                                     ngl_isa_name((ngl_isa)isa), codec, pred, mode,
                                     (unsigned long long)c.count, c.block_size);
                        }
                        compared++;
                    }
                }
            }
        }
    }
    if (compared == 0) {
        skip();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernels_dense_variants_match_ref),
        cmocka_unit_test(test_kernels_f16_scalar_matches_f16c),
        cmocka_unit_test(test_kernels_bf16_scalar_rounding),
        cmocka_unit_test(test_kernels_conversions_match_ref),
        cmocka_unit_test(test_kernels_streams_identical_frames),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
