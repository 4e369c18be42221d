/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_settings.c -- NANGILA_* parsing through ngl_settings_parse() with a
 * fake environment: defaults, every variable's valid values, invalid values
 * (the message names the variable, the value and the accepted values, and
 * the settings keep their defaults), unknown NANGILA_* names, and
 * ngl_settings_from_env() on the real environment.
 */
#include "ngl_testutil.h"

#include <stdlib.h>
#include <string.h>

/* ---- fake environment -------------------------------------------------- */
#define FE_MAX 8
typedef struct fake_env {
    char entries[FE_MAX][400]; /* "NAME=value" */
    char *list[FE_MAX + 1];
    int n;
} fake_env;

static fake_env g_env;

static void fe_clear(void)
{
    memset(&g_env, 0, sizeof g_env);
}

static void fe_put(const char *name, const char *value)
{
    assert_true(g_env.n < FE_MAX);
    snprintf(g_env.entries[g_env.n], sizeof g_env.entries[0], "%s=%s", name, value);
    g_env.list[g_env.n] = g_env.entries[g_env.n];
    g_env.n++;
    g_env.list[g_env.n] = NULL;
}

static const char *fe_getenv(const char *name)
{
    const size_t len = strlen(name);
    for (int i = 0; i < g_env.n; i++) {
        if (strncmp(g_env.entries[i], name, len) == 0 && g_env.entries[i][len] == '=') {
            return g_env.entries[i] + len + 1;
        }
    }
    return NULL;
}

static int fe_setup(void **state)
{
    (void)state;
    fe_clear();
    return 0;
}

static ngl_status fe_parse(ngl_settings *s, char *err, size_t cap)
{
    return ngl_settings_parse(s, fe_getenv, g_env.list, err, cap);
}

/* Parse one variable set to @p value; expect success. */
static ngl_settings fe_ok(const char *name, const char *value)
{
    fe_clear();
    fe_put(name, value);
    ngl_settings s;
    char err[512];
    const ngl_status st = fe_parse(&s, err, sizeof err);
    if (st != NGL_OK) {
        fail_msg("%s=%s rejected: %s", name, value, err);
    }
    assert_string_equal(err, "");
    return s;
}

/* Expect rejection with a message naming the variable, the value and the
 * accepted values; the output holds the defaults. */
static void fe_bad(const char *name, const char *value, const char *accepted_fragment)
{
    fe_clear();
    /* a valid setting next to the bad one */
    fe_put(strcmp(name, "NANGILA_STATS") ? "NANGILA_STATS" : "NANGILA_EF", "1");
    fe_put(name, value);
    ngl_settings s, def;
    char err[512];
    memset(&s, 0x5a, sizeof s);
    if (fe_parse(&s, err, sizeof err) != NGL_ERR_INVALID_ARG) {
        fail_msg("%s='%s' was accepted", name, value);
    }
    if (strstr(err, name) == NULL || strstr(err, value) == NULL ||
        strstr(err, accepted_fragment) == NULL) {
        fail_msg("message for %s='%s' lacks the name, the value or '%s': %s", name, value,
                 accepted_fragment, err);
    }
    ngl_settings_defaults(&def);
    assert_memory_equal(&s, &def, sizeof s);
}

static void test_settings_defaults(void **state)
{
    (void)state;
    ngl_settings s, d;
    char err[64] = "junk";
    fe_clear();
    assert_int_equal(fe_parse(&s, err, sizeof err), NGL_OK);
    assert_string_equal(err, "");
    ngl_settings_defaults(&d);
    assert_memory_equal(&s, &d, sizeof s);
    /* auto is the default, capped at int8, measuring from 16 KiB on */
    assert_int_equal(s.mode_auto, 1);
    assert_int_equal(s.mode_max, NGL_MODE_INT8);
    assert_int_equal(s.mode, NGL_MODE_INT8);
    assert_true(s.topk == 0.0);
    assert_int_equal(s.predictor, NGL_PRED_NONE);
    assert_int_equal(s.error_feedback, 1);
    assert_true(s.min_bytes == NGL_AUTO_MIN_BYTES);
    assert_true(s.seed == 0x4e616e67696c61ull);
    assert_int_equal(s.stats, 0);
    assert_int_equal(s.log_level, NGL_LOG_WARN);
    assert_int_equal(s.block_size, NGL_BLOCK_DEFAULT);
    /* err may be NULL; the environment list may be NULL */
    assert_int_equal(ngl_settings_parse(&s, fe_getenv, NULL, NULL, 0), NGL_OK);
    assert_int_equal(ngl_settings_parse(NULL, fe_getenv, NULL, err, sizeof err),
                     NGL_ERR_INVALID_ARG);
    assert_int_equal(ngl_settings_parse(&s, NULL, NULL, err, sizeof err), NGL_ERR_INVALID_ARG);
}

static void test_settings_valid_values(void **state)
{
    (void)state;
    assert_int_equal(fe_ok("NANGILA_MODE", "off").mode, NGL_MODE_OFF);
    assert_int_equal(fe_ok("NANGILA_MODE", "int8").mode, NGL_MODE_INT8);
    assert_int_equal(fe_ok("NANGILA_MODE", "int4").mode, NGL_MODE_INT4);
    assert_int_equal(fe_ok("NANGILA_MODE", "int4").mode_auto, 0);
    assert_int_equal(fe_ok("NANGILA_MODE", "AUTO").mode_auto, 1);
    /* a fixed mode has the benchmark's size floor, auto its own */
    assert_true(fe_ok("NANGILA_MODE", "int8").min_bytes == NGL_DEFAULT_MIN_BYTES);
    assert_true(fe_ok("NANGILA_MODE", "auto").min_bytes == NGL_AUTO_MIN_BYTES);
    /* the cap: auto's codec becomes the cap; fixed modes within it are fine */
    ngl_settings capped = fe_ok("NANGILA_MODE_MAX", "int4");
    assert_int_equal(capped.mode_auto, 1);
    assert_int_equal(capped.mode_max, NGL_MODE_INT4);
    assert_int_equal(capped.mode, NGL_MODE_INT4);
    fe_clear();
    fe_put("NANGILA_MODE", "int8");
    fe_put("NANGILA_MODE_MAX", "int4");
    assert_int_equal(fe_parse(&capped, NULL, 0), NGL_OK);
    assert_int_equal(capped.mode, NGL_MODE_INT8);
    fe_clear();
    fe_put("NANGILA_MODE", "int4");
    fe_put("NANGILA_MODE_MAX", "int8");
    char err[512];
    assert_int_equal(fe_parse(&capped, err, sizeof err), NGL_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "lossier than NANGILA_MODE_MAX"));
    fe_clear();
    fe_put("NANGILA_MIN_BYTES", "1k");
    fe_put("NANGILA_MODE", "auto");
    assert_int_equal(fe_parse(&capped, NULL, 0), NGL_OK);
    assert_true(capped.min_bytes == 1024u); /* an explicit floor stays */

    assert_true(fe_ok("NANGILA_TOPK", "0").topk == 0.0);
    assert_true(fe_ok("NANGILA_TOPK", "0.1").topk == 0.1);
    assert_true(fe_ok("NANGILA_TOPK", "1").topk == 1.0);
    assert_true(fe_ok("NANGILA_TOPK", "1e-3").topk == 1e-3);

    assert_int_equal(fe_ok("NANGILA_PREDICTOR", "none").predictor, NGL_PRED_NONE);
    assert_int_equal(fe_ok("NANGILA_PREDICTOR", "momentum").predictor, NGL_PRED_MOMENTUM);

    assert_int_equal(fe_ok("NANGILA_EF", "0").error_feedback, 0);
    assert_int_equal(fe_ok("NANGILA_EF", "1").error_feedback, 1);

    assert_true(fe_ok("NANGILA_MIN_BYTES", "0").min_bytes == 0);
    assert_true(fe_ok("NANGILA_MIN_BYTES", "1000").min_bytes == 1000);
    assert_true(fe_ok("NANGILA_MIN_BYTES", "64k").min_bytes == 65536);
    assert_true(fe_ok("NANGILA_MIN_BYTES", "3K").min_bytes == 3072);
    assert_true(fe_ok("NANGILA_MIN_BYTES", "2M").min_bytes == 2u << 20);
    assert_true(fe_ok("NANGILA_MIN_BYTES", "1G").min_bytes == 1u << 30);

    assert_true(fe_ok("NANGILA_SEED", "0").seed == 0);
    assert_true(fe_ok("NANGILA_SEED", "12345").seed == 12345);
    assert_true(fe_ok("NANGILA_SEED", "0xdeadbeef").seed == 0xdeadbeefull);
    assert_true(fe_ok("NANGILA_SEED", "18446744073709551615").seed == UINT64_MAX);

    assert_int_equal(fe_ok("NANGILA_STATS", "0").stats, 0);
    assert_int_equal(fe_ok("NANGILA_STATS", "1").stats, 1);

    static const char *levels[] = {"none", "error", "warn", "info", "debug", "trace"};
    for (int l = 0; l < 6; l++) {
        char num[2] = {(char)('0' + l), '\0'};
        assert_int_equal(fe_ok("NANGILA_LOG_LEVEL", levels[l]).log_level, l);
        assert_int_equal(fe_ok("NANGILA_LOG_LEVEL", num).log_level, l);
    }

    assert_int_equal(fe_ok("NANGILA_BLOCK", "8").block_size, 8);
    assert_int_equal(fe_ok("NANGILA_BLOCK", "200").block_size, 200);
    assert_int_equal(fe_ok("NANGILA_BLOCK", "65536").block_size, 65536);

    /* the layers' own variables are known names that core leaves alone
     * (the plugin and the MPI wrapper parse them: plugin_settings.c) */
    static const char *theirs[] = {"NANGILA_NSOCKS", "NANGILA_SOCKET_IFNAME", "NANGILA_NET_INNER",
                                   "NANGILA_COLLNET_PERIOD"};
    for (size_t k = 0; k < sizeof theirs / sizeof theirs[0]; k++) {
        ngl_settings d, t = fe_ok(theirs[k], "not-core's-to-judge");
        ngl_settings_defaults(&d);
        assert_memory_equal(&t, &d, sizeof t);
    }

    /* several at once */
    fe_clear();
    fe_put("NANGILA_MODE", "int4");
    fe_put("NANGILA_TOPK", "0.25");
    fe_put("NANGILA_BLOCK", "64");
    fe_put("OTHER_VAR", "ignored");
    ngl_settings s;
    assert_int_equal(fe_parse(&s, NULL, 0), NGL_OK);
    assert_int_equal(s.mode, NGL_MODE_INT4);
    assert_true(s.topk == 0.25);
    assert_int_equal(s.block_size, 64);
}

static void test_settings_invalid_values(void **state)
{
    (void)state;
    static const struct {
        const char *name, *value, *accepted;
    } bad[] = {
        {"NANGILA_MODE", "int2", "auto, off, int8, int4"},
        {"NANGILA_MODE", "", "auto, off, int8, int4"},
        {"NANGILA_MODE_MAX", "off", "int8, int4"},
        {"NANGILA_MODE_MAX", "fp16", "int8, int4"},
        {"NANGILA_TOPK", "-0.1", "(0, 1]"},
        {"NANGILA_TOPK", "1.5", "(0, 1]"},
        {"NANGILA_TOPK", "abc", "(0, 1]"},
        {"NANGILA_TOPK", "0.1x", "(0, 1]"},
        {"NANGILA_TOPK", "nan", "(0, 1]"},
        {"NANGILA_TOPK", "inf", "(0, 1]"},
        {"NANGILA_TOPK", "", "(0, 1]"},
        {"NANGILA_PREDICTOR", "linear", "none, momentum"},
        {"NANGILA_PREDICTOR", "ema", "none, momentum"},
        {"NANGILA_EF", "2", "0, 1"},
        {"NANGILA_EF", "yes", "0, 1"},
        {"NANGILA_EF", " 1", "0, 1"},
        {"NANGILA_MIN_BYTES", "-1", "byte count"},
        {"NANGILA_MIN_BYTES", "1T", "byte count"},
        {"NANGILA_MIN_BYTES", "k", "byte count"},
        {"NANGILA_MIN_BYTES", "1.5k", "byte count"},
        {"NANGILA_MIN_BYTES", "18446744073709551615G", "byte count"},
        {"NANGILA_SEED", "-1", "unsigned 64-bit"},
        {"NANGILA_SEED", "18446744073709551616", "unsigned 64-bit"},
        {"NANGILA_SEED", "12ab", "unsigned 64-bit"},
        {"NANGILA_SEED", "0x", "unsigned 64-bit"},
        {"NANGILA_STATS", "true", "0, 1"},
        {"NANGILA_LOG_LEVEL", "6", "none, error, warn, info, debug, trace"},
        {"NANGILA_LOG_LEVEL", "verbose", "none, error, warn, info, debug, trace"},
        {"NANGILA_LOG_LEVEL", "", "none, error, warn, info, debug, trace"},
        {"NANGILA_BLOCK", "0", "multiple of 8"},
        {"NANGILA_BLOCK", "12", "multiple of 8"},
        {"NANGILA_BLOCK", "65544", "multiple of 8"},
        {"NANGILA_BLOCK", "4294967304", "multiple of 8"}, /* 2^32 + 8 */
        {"NANGILA_BLOCK", "abc", "multiple of 8"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        fe_bad(bad[k].name, bad[k].value, bad[k].accepted);
    }
}

static void test_settings_unknown_names_rejected(void **state)
{
    (void)state;
    static const char *typos[] = {"NANGILA_MODEE", "NANGILA_TOP_K", "NANGILA_", "NANGILA_mode"};
    for (size_t k = 0; k < sizeof typos / sizeof typos[0]; k++) {
        fe_clear();
        fe_put("NANGILA_MODE", "int4");
        fe_put(typos[k], "1");
        ngl_settings s;
        char err[512];
        if (fe_parse(&s, err, sizeof err) != NGL_ERR_INVALID_ARG) {
            fail_msg("unknown %s accepted", typos[k]);
        }
        char want[64];
        snprintf(want, sizeof want, "unknown variable %s;", typos[k]);
        if (strstr(err, want) == NULL || strstr(err, "NANGILA_MODE") == NULL ||
            strstr(err, "NANGILA_NET_INNER") == NULL) {
            fail_msg("message for %s does not name it and the known variables: %s", typos[k], err);
        }
        assert_int_equal(s.mode, NGL_MODE_INT8); /* defaults, not half-applied */
        /* without the environment list only known names are read */
        assert_int_equal(ngl_settings_parse(&s, fe_getenv, NULL, err, sizeof err), NGL_OK);
        assert_int_equal(s.mode, NGL_MODE_INT4);
    }
    /* names that merely start alike are not ours */
    fe_clear();
    fe_put("NANGILAX", "1");
    fe_put("XNANGILA_MODE", "1");
    ngl_settings s;
    assert_int_equal(fe_parse(&s, NULL, 0), NGL_OK);

    /* a short buffer is truncated, not overrun, and stays terminated */
    fe_clear();
    fe_put("NANGILA_BOGUS", "1");
    char small[9];
    memset(small, 'Z', sizeof small);
    assert_int_equal(fe_parse(&s, small, 8), NGL_ERR_INVALID_ARG);
    assert_int_equal(small[8], 'Z');
    assert_true(strlen(small) <= 7);
    fe_clear();
    fe_put("NANGILA_MODE", "bad");
    memset(small, 'Z', sizeof small);
    assert_int_equal(fe_parse(&s, small, 8), NGL_ERR_INVALID_ARG);
    assert_int_equal(small[8], 'Z');
    assert_true(strlen(small) <= 7);
}

static void test_settings_from_real_environment(void **state)
{
    (void)state;
    /* Start from an environment without NANGILA_* variables (the test
     * runner may export its own, whatever a developer has set). */
    extern char **environ;
    for (int pass = 0; pass < 64; pass++) {
        char name[128] = "";
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "NANGILA_", 8) == 0) {
                const size_t len = strcspn(*e, "=");
                if (len < sizeof name) {
                    memcpy(name, *e, len);
                    name[len] = '\0';
                }
                break;
            }
        }
        if (name[0] == '\0') {
            break;
        }
        assert_int_equal(unsetenv(name), 0);
    }
    ngl_settings s;
    char err[512];
    assert_int_equal(ngl_settings_from_env(&s, err, sizeof err), NGL_OK);
    assert_int_equal(s.mode, NGL_MODE_INT8);
    assert_int_equal(setenv("NANGILA_MODE", "int4", 1), 0);
    assert_int_equal(setenv("NANGILA_BLOCK", "512", 1), 0);
    assert_int_equal(ngl_settings_from_env(&s, err, sizeof err), NGL_OK);
    assert_int_equal(s.mode, NGL_MODE_INT4);
    assert_int_equal(s.block_size, 512);
    assert_int_equal(setenv("NANGILA_TYPO", "1", 1), 0);
    assert_int_equal(ngl_settings_from_env(&s, err, sizeof err), NGL_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "NANGILA_TYPO"));
    unsetenv("NANGILA_TYPO");
    unsetenv("NANGILA_MODE");
    unsetenv("NANGILA_BLOCK");

    /* describe: one canonical line with every field that must match */
    ngl_settings_defaults(&s);
    char auto_line[256];
    ngl_settings_describe(&s, auto_line, sizeof auto_line);
    assert_non_null(strstr(auto_line, "mode=auto(max int8)"));
    s.mode_auto = 0;
    s.mode = NGL_MODE_INT4;
    s.seed = 7;
    char line[256];
    const size_t n = ngl_settings_describe(&s, line, sizeof line);
    assert_int_equal(n, strlen(line));
    assert_non_null(strstr(line, "mode=int4"));
    assert_non_null(strstr(line, "seed=7"));
    assert_non_null(strstr(line, "block=256"));
    char tiny[7];
    tiny[6] = 'Z';
    (void)ngl_settings_describe(&s, tiny, 6); /* truncated, terminated, not overrun */
    assert_int_equal(strlen(tiny), 5);
    assert_int_equal(strncmp(tiny, line, 5), 0);
    assert_int_equal(tiny[6], 'Z');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_settings_defaults, fe_setup),
        cmocka_unit_test_setup(test_settings_valid_values, fe_setup),
        cmocka_unit_test_setup(test_settings_invalid_values, fe_setup),
        cmocka_unit_test_setup(test_settings_unknown_names_rejected, fe_setup),
        cmocka_unit_test_setup(test_settings_from_real_environment, fe_setup),
    };
    return cmocka_run_group_tests_name("settings", tests, NULL, NULL);
}
