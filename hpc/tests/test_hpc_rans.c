/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hpc_rans.c -- white-box tests of the hpc entropy coder: the initial
 * context tables equal what the table builder makes, tables always sum to the
 * probability scale, and adaptive rANS round-trips skewed, uniform and
 * escape-heavy symbol streams (including the raw bits interleaved with them).
 */
#include "hpc_rans.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

static uint64_t rs = 7;

static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static void check_table(const hpc_ctx *c)
{
    uint32_t sum = 0;
    for (unsigned s = 0; s < c->nsym; s++) {
        assert_int_equal(c->cum[s], sum);
        sum += c->freq[s];
        assert_true((c->freq[s] != 0) == (c->acc[s] != 0));
    }
    assert_int_equal(sum, HPC_PROB_SCALE);
    for (unsigned i = 0; i < (HPC_PROB_SCALE >> 7); i++) {
        unsigned s = c->lut[i];
        assert_true(c->cum[s] <= (i << 7));
    }
}

static void test_hpc_rans_initial_tables(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        hpc_ctx a, b;
        hpc_ctx_init(&a, (hpc_ctx_kind)kind);
        b = a;
        hpc_ctx_build(&b, 1);
        assert_memory_equal(&a, &b, sizeof(a));
        check_table(&a);
    }
}

static void test_hpc_rans_tables_sum(void **state)
{
    (void)state;
    hpc_ctx c;
    hpc_ctx_init(&c, HPC_CTX_TOKEN);
    /* many rare symbols and one dominant: the bumps to 1 must be paid back */
    for (unsigned s = 0; s < 252; s++) {
        hpc_ctx_count(&c, s);
    }
    for (unsigned i = 0; i < 60000; i++) {
        hpc_ctx_count(&c, 3);
    }
    hpc_ctx_build(&c, 1);
    check_table(&c);
    for (unsigned i = 0; i < 200000; i++) {
        hpc_ctx_count(&c, (unsigned)(rnd() % 252));
        if (i % 9999 == 0) {
            hpc_ctx_build(&c, 1);
            check_table(&c);
        }
    }
}

/* The table build's division done as a multiplication (hpc_scaled_count)
 * against the integer quotient, on every count pair it can meet. */
static void test_hpc_rans_exact_arithmetic(void **state)
{
    (void)state;
    for (uint32_t t = 1; t < HPC_COUNT_LIMIT; t++) {
        const double inv = 1.0 / (double)t;
        for (uint32_t a = 1; a <= t; a++) {
            if (hpc_scaled_count(a, inv) != (uint32_t)(((uint64_t)a << HPC_PROB_BITS) / t)) {
                fail_msg("scaled count %u / %u", a, t);
            }
        }
    }
}

/* Encode n symbols drawn by @p draw with the adaptive contexts, decode, compare. */
static void roundtrip(unsigned (*draw)(unsigned), size_t n, unsigned nctx)
{
    hpc_ctx *ectx = malloc(nctx * sizeof(hpc_ctx)), *dctx = malloc(nctx * sizeof(hpc_ctx));
    for (unsigned i = 0; i < nctx; i++) {
        hpc_ctx_init(&ectx[i], HPC_CTX_TOKEN);
        hpc_ctx_init(&dctx[i], HPC_CTX_TOKEN);
    }
    unsigned *sym = malloc(n * sizeof(unsigned));
    uint64_t *rawv = malloc(n * sizeof(uint64_t));
    hpc_symbuf sb = {malloc(n * sizeof(uint32_t)), 0, n};
    size_t rawcap = 16 * n + 16;
    uint8_t *raw = malloc(rawcap);
    hpc_bitw w;
    hpc_bitw_init(&w, raw, rawcap);
    for (size_t i = 0; i < n; i++) {
        if (i % HPC_CHUNK == 0) {
            hpc_ctxset_refresh(ectx, nctx, 0);
        }
        sym[i] = draw((unsigned)i);
        rawv[i] = rnd() & 0x1FFFF;
        hpc_enc_sym(&sb, &w, &ectx[i % nctx], sym[i]);
        hpc_bitw_put(&w, rawv[i], 17);
    }
    size_t rawlen = hpc_bitw_finish(&w);
    size_t cap = hpc_rans_bound(n);
    uint8_t *buf = malloc(cap);
    size_t len = hpc_rans_encode(&sb, buf, cap);
    hpc_rdec d;
    assert_int_equal(hpc_rdec_init(&d, buf + cap - len, len), 0);
    hpc_bitr r;
    hpc_bitr_init(&r, raw, rawlen);
    for (size_t i = 0; i < n; i++) {
        if (i % HPC_CHUNK == 0) {
            hpc_ctxset_refresh(dctx, nctx, 1);
        }
        hpc_ctx *c = &dctx[i % nctx];
        unsigned s = hpc_rdec_sym(&d, c);
        if (s == HPC_TOK_RARE) {
            s = (unsigned)hpc_bitr_get(&r, 8);
        }
        hpc_ctx_count(c, s);
        assert_int_equal(s, sym[i]);
        assert_int_equal(hpc_bitr_get(&r, 17), rawv[i]);
    }
    assert_int_equal(hpc_rdec_finish(&d), 0);
    assert_false(r.overrun);
    free(buf);
    free(raw);
    free(sb.sym);
    free(rawv);
    free(sym);
    free(ectx);
    free(dctx);
}

static unsigned draw_skewed(unsigned i)
{
    (void)i;
    uint64_t r = rnd() % 1000;
    return r < 900 ? 0 : (r < 990 ? 1 + (unsigned)(r % 5) : (unsigned)(rnd() % 252));
}

static unsigned draw_uniform(unsigned i)
{
    (void)i;
    return (unsigned)(rnd() % 252);
}

static unsigned draw_shifting(unsigned i)
{
    /* the distribution moves over time: escapes of never-seen symbols */
    return (i / 3000 + (unsigned)(rnd() % 3)) % 252;
}

static unsigned draw_constant(unsigned i)
{
    (void)i;
    return 17;
}

static void test_hpc_rans_roundtrip(void **state)
{
    (void)state;
    roundtrip(draw_skewed, 50000, 1);
    roundtrip(draw_skewed, 50000, 7);
    roundtrip(draw_uniform, 30000, 3);
    roundtrip(draw_shifting, 100000, 2);
    roundtrip(draw_constant, 20000, 1);
    roundtrip(draw_constant, 1, 1);
}

static void test_hpc_rans_rejects_garbage(void **state)
{
    (void)state;
    hpc_rdec d;
    uint8_t zeros[8] = {0};
    assert_int_equal(hpc_rdec_init(&d, zeros, 8), -1); /* states below L */
    assert_int_equal(hpc_rdec_init(&d, zeros, 3), -1); /* too short */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hpc_rans_initial_tables),
        cmocka_unit_test(test_hpc_rans_tables_sum),
        cmocka_unit_test(test_hpc_rans_exact_arithmetic),
        cmocka_unit_test(test_hpc_rans_roundtrip),
        cmocka_unit_test(test_hpc_rans_rejects_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
