/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_crc32c.c -- CRC32C (Castagnoli): the check value and the RFC 3720
 * (iSCSI) vectors on both paths, and the hardware path (ngl_crc32c, SSE4.2
 * where present) against the table path (ngl_crc32c_ref) and a bitwise
 * implementation written here, on random lengths, alignments and chained
 * updates.
 */
#include "ngl_testutil.h"

#include <stdlib.h>
#include <string.h>

/* The table version, whatever the CPU (core/src/crc32c.c). */
uint32_t ngl_crc32c_ref(uint32_t crc, const void *data, size_t len);

/* One bit at a time, reflected polynomial 0x82F63B78. */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
    uint32_t c = ~crc;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) {
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
        }
    }
    return ~c;
}

static void test_crc32c_known_vectors(void **state)
{
    (void)state;
    const char *check = "123456789";
    assert_int_equal(ngl_crc32c(0, check, 9), 0xE3069283u);
    assert_int_equal(ngl_crc32c_ref(0, check, 9), 0xE3069283u);
    assert_int_equal(crc_bitwise(0, (const uint8_t *)check, 9), 0xE3069283u);
    assert_int_equal(ngl_crc32c(0, check, 0), 0u);
    assert_int_equal(ngl_crc32c_ref(0, NULL, 0), 0u);

    /* RFC 3720, appendix B.4 */
    uint8_t buf[32];
    memset(buf, 0x00, sizeof buf);
    assert_int_equal(ngl_crc32c(0, buf, 32), 0x8A9136AAu);
    assert_int_equal(ngl_crc32c_ref(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, sizeof buf);
    assert_int_equal(ngl_crc32c(0, buf, 32), 0x62A8AB43u);
    assert_int_equal(ngl_crc32c_ref(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)i;
    }
    assert_int_equal(ngl_crc32c(0, buf, 32), 0x46DD794Eu);
    assert_int_equal(ngl_crc32c_ref(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++) {
        buf[i] = (uint8_t)(31 - i);
    }
    assert_int_equal(ngl_crc32c(0, buf, 32), 0x113FDB5Cu);
    assert_int_equal(ngl_crc32c_ref(0, buf, 32), 0x113FDB5Cu);
}

static void test_crc32c_hardware_matches_table(void **state)
{
    (void)state;
    enum { MAXLEN = 5000 };
    uint8_t *buf = malloc(MAXLEN + 64);
    assert_non_null(buf);
    tu_rng rng;
    tu_rng_seed(&rng, 32);
    for (size_t i = 0; i < MAXLEN + 64; i++) {
        buf[i] = (uint8_t)tu_rng_u64(&rng);
    }
    /* every length up to 300 at every alignment mod 16, then random ones */
    for (size_t off = 0; off < 16; off++) {
        for (size_t len = 0; len <= 300; len++) {
            const uint32_t seed = len & 1 ? (uint32_t)tu_rng_u64(&rng) : 0u;
            const uint32_t hw = ngl_crc32c(seed, buf + off, len);
            const uint32_t tb = ngl_crc32c_ref(seed, buf + off, len);
            if (hw != tb) {
                fail_msg("offset %zu length %zu: ngl_crc32c %#010x, table %#010x", off, len, hw,
                         tb);
            }
            if (len < 64) {
                assert_int_equal(tb, crc_bitwise(seed, buf + off, len));
            }
        }
    }
    for (int k = 0; k < 2000; k++) {
        const size_t off = tu_rng_below(&rng, 64);
        const size_t len = tu_rng_below(&rng, MAXLEN);
        const size_t cut = len ? tu_rng_below(&rng, (uint32_t)len) : 0;
        const uint32_t whole = ngl_crc32c(0, buf + off, len);
        assert_int_equal(whole, ngl_crc32c_ref(0, buf + off, len));
        /* continuing from a prefix's CRC gives the CRC of the whole */
        const uint32_t part = ngl_crc32c(ngl_crc32c(0, buf + off, cut), buf + off + cut, len - cut);
        assert_int_equal(part, whole);
        const uint32_t part_ref =
            ngl_crc32c_ref(ngl_crc32c_ref(0, buf + off, cut), buf + off + cut, len - cut);
        assert_int_equal(part_ref, whole);
        if (k < 50) {
            assert_int_equal(crc_bitwise(0, buf + off, len), whole);
        }
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_known_vectors),
        cmocka_unit_test(test_crc32c_hardware_matches_table),
    };
    return cmocka_run_group_tests_name("crc32c", tests, NULL, NULL);
}
