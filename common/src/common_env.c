/* SPDX-License-Identifier: Apache-2.0 */
/*
 * common_env.c -- the one list of NANGILA_* variables (ngl_env.h) and the
 * parsing every layer shares. The order of the list is the order of the
 * "known variables" message.
 */
#include "ngl_env.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Who parses each: core (ngl_settings_parse()) all but NSOCKS, NET_INNER,
 * COLLNET_PERIOD (the NCCL plugin, plugin_settings.c) and SOCKET_IFNAME (the
 * plugin and the MPI wrapper: the interface for devices and topology). */
static const ngl_env_var env_vars[] = {
    {"NANGILA_MODE", "auto, off, int8, int4"},
    {"NANGILA_MODE_MAX", "int8, int4 (the lossiest codec NANGILA_MODE=auto may use)"},
    {"NANGILA_TOPK", "0 or a fraction in (0, 1], e.g. 0.1"},
    {"NANGILA_PREDICTOR", "none, momentum"},
    {"NANGILA_EF", "0, 1"},
    {"NANGILA_MIN_BYTES", "a byte count, optionally with k, M or G (powers of 1024)"},
    {"NANGILA_SEED", "an unsigned 64-bit integer (decimal or 0x hex)"},
    {"NANGILA_STATS", "0, 1"},
    {"NANGILA_LOG_LEVEL", "none, error, warn, info, debug, trace, or 0..5"},
    {"NANGILA_BLOCK", "a multiple of 8 in [8, 65536]"},
    {"NANGILA_NSOCKS", "an integer in [1, 16]"},
    {"NANGILA_SOCKET_IFNAME", "an interface name (prefix), at most 63 characters"},
    {"NANGILA_NET_INNER", "an ncclNet plugin library name or path, at most 255 characters"},
    {"NANGILA_COLLNET_PERIOD",
     "0 (automatic), or the number of collNet calls per training step, at most 65536"},
    {"NANGILA_STATE_MAX_MB", "an integer number of MiB in [1, 1048576]"},
    /* the MPI wrapper's (mpi-pmpi/src/pmpi_hier.c) */
    {"NANGILA_HIER", "auto, off, slices, leaders"},
    {"NANGILA_NODE_ID", "an integer in [0, 2147483647] (test-only: ranks with the same id form one "
                        "node)"},
};
#define N_VARS (sizeof env_vars / sizeof env_vars[0])

const char *ngl_env_getenv(const char *name)
{
    return getenv(name);
}

const ngl_env_var *ngl_env_find(const char *name)
{
    for (size_t k = 0; k < N_VARS; k++) {
        if (strcmp(env_vars[k].name, name) == 0) {
            return &env_vars[k];
        }
    }
    return NULL;
}

int ngl_env_check_unknown(char *const *environ_list, char *err, size_t err_cap)
{
    if (environ_list == NULL) {
        return 0;
    }
    for (char *const *e = environ_list; *e; e++) {
        if (strncmp(*e, "NANGILA_", 8) != 0) {
            continue;
        }
        const size_t nlen = strcspn(*e, "=");
        int known = 0;
        for (size_t k = 0; k < N_VARS && !known; k++) {
            known = strlen(env_vars[k].name) == nlen && !strncmp(*e, env_vars[k].name, nlen);
        }
        if (!known) {
            if (err && err_cap) {
                int n = snprintf(err, err_cap, "unknown variable %.*s; known variables:", (int)nlen,
                                 *e);
                for (size_t k = 0; k < N_VARS && n > 0 && (size_t)n < err_cap; k++) {
                    n += snprintf(err + n, err_cap - (size_t)n, " %s", env_vars[k].name);
                }
            }
            return -1;
        }
    }
    return 0;
}

void ngl_env_invalid(const char *name, const char *value, char *err, size_t err_cap)
{
    if (err && err_cap) {
        const ngl_env_var *v = ngl_env_find(name);
        snprintf(err, err_cap, "%s='%s' is not valid; accepted values: %s", name, value,
                 v ? v->accepted : "(not a known variable)");
    }
}

int ngl_env_parse_u64(const char *v, uint64_t *out)
{
    if (*v == '\0' || *v == '-' || *v == '+' || isspace((unsigned char)*v)) {
        return 0;
    }
    errno = 0;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 0);
    if (errno != 0 || end == v || *end != '\0') {
        return 0;
    }
    *out = (uint64_t)x;
    return 1;
}

int ngl_env_parse_bytes(const char *v, uint64_t *out)
{
    char buf[64];
    size_t len = strlen(v);
    if (len == 0 || len >= sizeof buf) {
        return 0;
    }
    memcpy(buf, v, len + 1);
    unsigned shift = 0;
    char last = buf[len - 1];
    if (last == 'k' || last == 'K') {
        shift = 10;
    } else if (last == 'm' || last == 'M') {
        shift = 20;
    } else if (last == 'g' || last == 'G') {
        shift = 30;
    }
    if (shift) {
        buf[len - 1] = '\0';
    }
    uint64_t x;
    if (!ngl_env_parse_u64(buf, &x) || (shift && x > (UINT64_MAX >> shift))) {
        return 0;
    }
    *out = x << shift;
    return 1;
}

int ngl_env_read_u64(ngl_env_getter get, const char *name, uint64_t lo, uint64_t hi, uint64_t *out,
                     char *err, size_t err_cap)
{
    const char *v = get(name);
    if (v == NULL) {
        return 0;
    }
    uint64_t u;
    if (!ngl_env_parse_u64(v, &u) || u < lo || u > hi) {
        ngl_env_invalid(name, v, err, err_cap);
        return -1;
    }
    *out = u;
    return 0;
}

int ngl_env_read_str(ngl_env_getter get, const char *name, char *dst, size_t cap, char *err,
                     size_t err_cap)
{
    const char *v = get(name);
    if (v == NULL) {
        return 0;
    }
    const size_t len = strlen(v);
    if (len >= cap) {
        ngl_env_invalid(name, v, err, err_cap);
        return -1;
    }
    memcpy(dst, v, len + 1);
    return 0;
}
