/* SPDX-License-Identifier: Apache-2.0 */
/* test_plugin_units.c -- white-box checks of the plugin's pure functions:
 * its settings, how messages are striped over sockets, how slices are cut
 * into chunks, which reductions are offered, and a loopback round trip of the TCP
 * transport inside one process (no fork, easy to read under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "ngl_coll.h"
#include "ngl_plugin.h"
#include "ngl_tcp.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_tcp_part_covers_message_once(void **state)
{
    (void)state;
    const size_t sizes[] = {0,
                            1,
                            4095,
                            NGL_TCP_MIN_STRIPE,
                            NGL_TCP_MIN_STRIPE + 1,
                            1000003,
                            (size_t)64 << 20,
                            ((size_t)64 << 20) + 7};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (int n = 1; n <= NGL_TCP_MAX_SOCKS; n++) {
            size_t expect_off = 0;
            for (int k = 0; k < n; k++) {
                size_t off, len;
                ngl_tcp_part(sizes[s], n, k, &off, &len);
                if (len > 0) {
                    /* parts are contiguous, in socket order */
                    assert_int_equal(off, expect_off);
                    expect_off = off + len;
                }
                if (sizes[s] <= NGL_TCP_MIN_STRIPE && k > 0) {
                    assert_int_equal(len, 0); /* small messages are not striped */
                }
                if (k + 1 < n && len > 0 && off + len < sizes[s]) {
                    assert_int_equal(len % 4096, 0); /* only the last part is ragged */
                }
            }
            assert_int_equal(expect_off, sizes[s]);
        }
    }
}

static void test_coll_reduce_support_matrix(void **state)
{
    (void)state;
    for (int op = 0; op < 5; op++) {
        for (int dt = 0; dt < 12; dt++) {
            int want = op < 4 && dt < 12; /* every type, Sum/Prod/Max/Min */
            assert_int_equal(ngl_coll_reduce_supported(dt, op), want);
        }
    }
}

/* Listen, connect and accept inside one process, then move a striped
 * message and a zero-byte message in posting order. */
static void test_tcp_loopback_round_trip(void **state)
{
    (void)state;
    assert_int_equal(ngl_tcp_devices_init("lo"), 0);
    assert_true(ngl_tcp_device_count() >= 1);
    ngl_nccl_props_v8_t props;
    assert_int_equal(ngl_tcp_device_props(0, &props), 0);
    assert_int_equal(props.ptrSupport, NGL_NCCL_PTR_HOST);
    assert_true(props.speed > 0);

    uint8_t handle[NGL_NCCL_HANDLE_MAXSIZE];
    ngl_tcp_listen *l = NULL;
    assert_int_equal(ngl_tcp_listen_open(0, handle, &l), 0);
    ngl_tcp_comm *s = NULL, *r = NULL;
    for (int i = 0; i < 100000 && (s == NULL || r == NULL); i++) {
        if (s == NULL) {
            assert_int_equal(ngl_tcp_connect_step(0, handle, 3, &s), 0);
        }
        if (r == NULL) {
            assert_int_equal(ngl_tcp_accept_step(l, &r), 0);
        }
    }
    assert_non_null(s);
    assert_non_null(r);

    const size_t n = 3u << 20;
    uint8_t *src = malloc(n), *dst = malloc(n + 100);
    for (size_t i = 0; i < n; i++) {
        src[i] = (uint8_t)(i * 131u + 7u);
    }
    ngl_tcp_req *sr[2], *rr[2];
    assert_int_equal(ngl_tcp_irecv(r, dst, n + 100, NULL, &rr[0]), 0);
    assert_int_equal(ngl_tcp_irecv(r, dst, 10, NULL, &rr[1]), 0);
    assert_int_equal(ngl_tcp_isend(s, src, n, NULL, &sr[0]), 0);
    assert_int_equal(ngl_tcp_isend(s, src, 0, NULL, &sr[1]), 0);
    int left = 4, guard = 0;
    int done_s[2] = {0, 0}, done_r[2] = {0, 0};
    size_t size_r[2] = {0, 0};
    while (left > 0 && guard++ < 10000000) {
        for (int k = 1; k >= 0; k--) { /* test the later requests first */
            size_t sz;
            if (!done_s[k]) {
                assert_int_equal(ngl_tcp_test(sr[k], &done_s[k], &sz), 0);
                left -= done_s[k];
            }
            if (!done_r[k]) {
                assert_int_equal(ngl_tcp_test(rr[k], &done_r[k], &size_r[k]), 0);
                left -= done_r[k];
            }
        }
    }
    assert_int_equal(left, 0);
    assert_int_equal(size_r[0], n);
    assert_int_equal(size_r[1], 0);
    assert_memory_equal(src, dst, n);

    /* A message larger than the posted buffer fails the comm, cleanly. */
    ngl_tcp_req *big_s, *small_r;
    assert_int_equal(ngl_tcp_irecv(r, dst, 16, NULL, &small_r), 0);
    assert_int_equal(ngl_tcp_isend(s, src, 1000, NULL, &big_s), 0);
    int d = 0, rc = 0;
    for (int i = 0; i < 1000000 && rc == 0 && !d; i++) {
        size_t sz;
        int ds;
        (void)ngl_tcp_test(big_s, &ds, &sz);
        rc = ngl_tcp_test(small_r, &d, &sz);
    }
    assert_int_equal(rc, -EMSGSIZE);

    ngl_tcp_comm_close(s);
    ngl_tcp_comm_close(r);
    ngl_tcp_listen_close(l);
    free(src);
    free(dst);
}

/* ---- settings (plugin_settings.c) -------------------------------------- */

/* A one-variable environment: @p name=@p value, or nothing for NULL. */
static const char *g_env_name, *g_env_value;

static const char *one_getenv(const char *name)
{
    return g_env_name != NULL && strcmp(name, g_env_name) == 0 ? g_env_value : NULL;
}

static int parse_one(const char *name, const char *value, ngl_plugin_config *c, char *err,
                     size_t cap)
{
    char entry[400];
    char *list[2] = {entry, NULL};
    g_env_name = name;
    g_env_value = value;
    snprintf(entry, sizeof entry, "%s=%s", name ? name : "OTHER", value ? value : "");
    return ngl_plugin_config_parse(c, one_getenv, list, err, cap);
}

static void assert_defaults(const ngl_plugin_config *c)
{
    ngl_settings d;
    ngl_settings_defaults(&d);
    assert_memory_equal(&c->codec, &d, sizeof d);
    assert_int_equal(c->nsocks, NGL_PLUGIN_NSOCKS_DEFAULT);
    assert_string_equal(c->socket_ifname, "");
    assert_string_equal(c->net_inner, "");
    assert_int_equal(c->collnet_period, 0);
}

static void test_plugin_settings_transport(void **state)
{
    (void)state;
    ngl_plugin_config c;
    char err[512];
    assert_int_equal(parse_one(NULL, NULL, &c, err, sizeof err), 0);
    assert_defaults(&c);

    assert_int_equal(parse_one("NANGILA_NSOCKS", "1", &c, err, sizeof err), 0);
    assert_int_equal(c.nsocks, 1);
    assert_int_equal(parse_one("NANGILA_NSOCKS", "16", &c, err, sizeof err), 0);
    assert_int_equal(c.nsocks, 16);
    assert_int_equal(parse_one("NANGILA_SOCKET_IFNAME", "eth", &c, err, sizeof err), 0);
    assert_string_equal(c.socket_ifname, "eth");
    char name63[64], name64[65], path255[256], path256[257];
    memset(name63, 'a', sizeof name63 - 1);
    name63[63] = '\0';
    memset(name64, 'e', sizeof name64 - 1);
    name64[64] = '\0';
    memset(path255, 'p', sizeof path255 - 1);
    path255[255] = '\0';
    memset(path256, 'p', sizeof path256 - 1);
    path256[256] = '\0';
    assert_int_equal(parse_one("NANGILA_SOCKET_IFNAME", name63, &c, err, sizeof err), 0);
    assert_string_equal(c.socket_ifname, name63);
    assert_int_equal(parse_one("NANGILA_NET_INNER", "libnccl-net-ib.so", &c, err, sizeof err), 0);
    assert_string_equal(c.net_inner, "libnccl-net-ib.so");
    assert_int_equal(parse_one("NANGILA_NET_INNER", path255, &c, err, sizeof err), 0);
    assert_string_equal(c.net_inner, path255);
    assert_int_equal(parse_one("NANGILA_COLLNET_PERIOD", "65536", &c, err, sizeof err), 0);
    assert_int_equal(c.collnet_period, 65536);
    assert_int_equal(parse_one("NANGILA_MODE", "int4", &c, err, sizeof err), 0);
    assert_int_equal(c.codec.mode, NGL_MODE_INT4);

    /* bad values: the message names the variable, the value and what is
     * accepted; the output holds the defaults */
    const struct {
        const char *name, *value, *accepted;
    } bad[] = {
        {"NANGILA_NSOCKS", "0", "[1, 16]"},
        {"NANGILA_NSOCKS", "17", "[1, 16]"},
        {"NANGILA_NSOCKS", "-3", "[1, 16]"},
        {"NANGILA_COLLNET_PERIOD", "65537", "at most 65536"},
        {"NANGILA_COLLNET_PERIOD", "x", "at most 65536"},
        {"NANGILA_SOCKET_IFNAME", name64, "63 characters"},
        {"NANGILA_NET_INNER", path256, "255 characters"},
        {"NANGILA_MODE", "int2", "auto, off, int8, int4"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memset(&c, 0x5a, sizeof c);
        assert_int_equal(parse_one(bad[k].name, bad[k].value, &c, err, sizeof err), -EINVAL);
        if (strstr(err, bad[k].name) == NULL || strstr(err, bad[k].value) == NULL ||
            strstr(err, bad[k].accepted) == NULL) {
            fail_msg("message for %s='%s' lacks the name, the value or '%s': %s", bad[k].name,
                     bad[k].value, bad[k].accepted, err);
        }
        assert_defaults(&c);
    }
}

/* An unknown NANGILA_* name reads the same from the plugin as from core. */
static void test_plugin_settings_unknown_name_as_core(void **state)
{
    (void)state;
    ngl_plugin_config c;
    ngl_settings s;
    char err[512], core_err[512];
    assert_int_equal(parse_one("NANGILA_NSOCK", "4", &c, err, sizeof err), -EINVAL);
    char entry[] = "NANGILA_NSOCK=4";
    char *list[2] = {entry, NULL};
    assert_int_equal(ngl_settings_parse(&s, one_getenv, list, core_err, sizeof core_err),
                     NGL_ERR_INVALID_ARG);
    assert_string_equal(err, core_err);
    assert_non_null(strstr(err, "unknown variable NANGILA_NSOCK;"));
    assert_non_null(strstr(err, "NANGILA_COLLNET_PERIOD"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugin_settings_transport),
        cmocka_unit_test(test_plugin_settings_unknown_name_as_core),
        cmocka_unit_test(test_tcp_part_covers_message_once),
        cmocka_unit_test(test_coll_reduce_support_matrix),
        cmocka_unit_test(test_tcp_loopback_round_trip),
    };
    return cmocka_run_group_tests_name("plugin units", tests, NULL, NULL);
}
