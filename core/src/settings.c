/* SPDX-License-Identifier: Apache-2.0 */
/*
 * settings.c -- NANGILA_* environment variables, parsed and validated in one
 * place for every host (MPI wrapper, NCCL plugin, CLI). A bad value is an
 * error naming the variable, the value and what is accepted; so is an
 * unknown NANGILA_* name, which is almost always a typo.
 */
#include "ngl_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

extern char **environ;

#define NGL_DEFAULT_SEED 0x4e616e67696c61ull /* "Nangila" */

typedef enum {
    V_MODE,
    V_MODE_MAX,
    V_TOPK,
    V_PRED,
    V_EF,
    V_MINB,
    V_SEED,
    V_STATS,
    V_LOG,
    V_BLOCK,
    V_NSOCKS,
    V_IFNAME,
    V_INNER,
    V_PERIOD,
    V_STATE_MAX,
    V_HIER,
    V_NODE_ID
} var_id;

static const struct {
    const char *name;
    var_id id;
    const char *accepted;
} known_vars[] = {
    {"NANGILA_MODE", V_MODE, "auto, off, int8, int4"},
    {"NANGILA_MODE_MAX", V_MODE_MAX, "int8, int4 (the lossiest codec NANGILA_MODE=auto may use)"},
    {"NANGILA_TOPK", V_TOPK, "0 or a fraction in (0, 1], e.g. 0.1"},
    {"NANGILA_PREDICTOR", V_PRED, "none, momentum"},
    {"NANGILA_EF", V_EF, "0, 1"},
    {"NANGILA_MIN_BYTES", V_MINB, "a byte count, optionally with k, M or G (powers of 1024)"},
    {"NANGILA_SEED", V_SEED, "an unsigned 64-bit integer (decimal or 0x hex)"},
    {"NANGILA_STATS", V_STATS, "0, 1"},
    {"NANGILA_LOG_LEVEL", V_LOG, "none, error, warn, info, debug, trace, or 0..5"},
    {"NANGILA_BLOCK", V_BLOCK, "a multiple of 8 in [8, 65536]"},
    {"NANGILA_NSOCKS", V_NSOCKS, "an integer in [1, 16]"},
    {"NANGILA_SOCKET_IFNAME", V_IFNAME, "an interface name (prefix), at most 63 characters"},
    {"NANGILA_NET_INNER", V_INNER,
     "an ncclNet plugin library name or path, at most 255 characters"},
    {"NANGILA_COLLNET_PERIOD", V_PERIOD,
     "0 (automatic), or the number of collNet calls per training step, at most 65536"},
    {"NANGILA_STATE_MAX_MB", V_STATE_MAX, "an integer number of MiB in [1, 1048576]"},
    /* The MPI wrapper's own (mpi-pmpi/src/pmpi_hier.c reads them); checked
     * here so that every NANGILA_* name is validated in one place. */
    {"NANGILA_HIER", V_HIER, "auto, off, slices, leaders"},
    {"NANGILA_NODE_ID", V_NODE_ID,
     "an integer in [0, 2147483647] (test-only: ranks with the "
     "same id form one node)"},
};
#define N_KNOWN (sizeof known_vars / sizeof known_vars[0])

void ngl_settings_defaults(ngl_settings *s)
{
    memset(s, 0, sizeof *s);
    s->mode = NGL_MODE_INT8;
    s->mode_auto = 1;
    s->mode_max = NGL_MODE_INT8;
    s->topk = 0.0;
    s->predictor = NGL_PRED_NONE;
    s->error_feedback = 1;
    s->min_bytes = NGL_AUTO_MIN_BYTES;
    s->seed = NGL_DEFAULT_SEED;
    s->stats = 0;
    s->log_level = NGL_LOG_WARN;
    s->block_size = NGL_BLOCK_DEFAULT;
    s->nsocks = 4;
    s->state_max_mb = NGL_DEFAULT_STATE_MAX_MB;
}

static int parse_u64(const char *v, uint64_t *out)
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

static int parse_bytes(const char *v, uint64_t *out)
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
    if (!parse_u64(buf, &x) || (shift && x > (UINT64_MAX >> shift))) {
        return 0;
    }
    *out = x << shift;
    return 1;
}

static int parse_fraction(const char *v, double *out)
{
    if (*v == '\0' || isspace((unsigned char)*v)) {
        return 0;
    }
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !isfinite(d) || d < 0.0 || d > 1.0) {
        return 0;
    }
    *out = d;
    return 1;
}

static int parse_var(ngl_settings *s, var_id id, const char *v)
{
    uint64_t u;
    switch (id) {
    case V_MODE:
        s->mode_auto = 0;
        if (!strcasecmp(v, "auto")) {
            s->mode_auto = 1;
        } else if (!strcasecmp(v, "off")) {
            s->mode = NGL_MODE_OFF;
        } else if (!strcasecmp(v, "int8")) {
            s->mode = NGL_MODE_INT8;
        } else if (!strcasecmp(v, "int4")) {
            s->mode = NGL_MODE_INT4;
        } else {
            return 0;
        }
        return 1;
    case V_MODE_MAX:
        if (!strcasecmp(v, "int8")) {
            s->mode_max = NGL_MODE_INT8;
        } else if (!strcasecmp(v, "int4")) {
            s->mode_max = NGL_MODE_INT4;
        } else {
            return 0;
        }
        return 1;
    case V_TOPK: return parse_fraction(v, &s->topk);
    case V_PRED:
        if (!strcasecmp(v, "none")) {
            s->predictor = NGL_PRED_NONE;
        } else if (!strcasecmp(v, "momentum")) {
            s->predictor = NGL_PRED_MOMENTUM;
        } else {
            return 0;
        }
        return 1;
    case V_EF:
    case V_STATS:
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
            return 0;
        }
        if (id == V_EF) {
            s->error_feedback = v[0] == '1';
        } else {
            s->stats = v[0] == '1';
        }
        return 1;
    case V_MINB: return parse_bytes(v, &s->min_bytes);
    case V_SEED: return parse_u64(v, &s->seed);
    case V_LOG: {
        static const char *names[] = {"none", "error", "warn", "info", "debug", "trace"};
        for (int i = 0; i < 6; i++) {
            if (!strcasecmp(v, names[i]) || (v[0] == (char)('0' + i) && v[1] == '\0')) {
                s->log_level = (ngl_log_level)i;
                return 1;
            }
        }
        return 0;
    }
    case V_BLOCK:
        if (!parse_u64(v, &u) || u < NGL_BLOCK_MIN || u > NGL_BLOCK_MAX || u % 8u) {
            return 0;
        }
        s->block_size = (uint32_t)u;
        return 1;
    case V_NSOCKS:
        if (!parse_u64(v, &u) || u < 1 || u > 16) {
            return 0;
        }
        s->nsocks = (int)u;
        return 1;
    case V_IFNAME:
        if (strlen(v) >= sizeof s->socket_ifname) {
            return 0;
        }
        strcpy(s->socket_ifname, v);
        return 1;
    case V_INNER:
        if (strlen(v) >= sizeof s->net_inner) {
            return 0;
        }
        strcpy(s->net_inner, v);
        return 1;
    case V_PERIOD:
        if (!parse_u64(v, &u) || u > NGL_COLLNET_PERIOD_MAX) {
            return 0;
        }
        s->collnet_period = (uint32_t)u;
        return 1;
    case V_STATE_MAX:
        if (!parse_u64(v, &u) || u < 1 || u > NGL_STATE_MAX_MB_MAX) {
            return 0;
        }
        s->state_max_mb = (uint32_t)u;
        return 1;
    case V_HIER:
        return !strcasecmp(v, "auto") || !strcasecmp(v, "off") || !strcasecmp(v, "slices") ||
               !strcasecmp(v, "leaders");
    case V_NODE_ID: return parse_u64(v, &u) && u <= 2147483647u;
    }
    return 0;
}

ngl_status ngl_settings_parse(ngl_settings *s, const char *(*getenv_fn)(const char *),
                              char *const *environ_list, char *err, size_t err_cap)
{
    if (s == NULL || getenv_fn == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    ngl_settings tmp;
    ngl_settings_defaults(&tmp);
    ngl_settings_defaults(s);
    if (err && err_cap) {
        err[0] = '\0';
    }
    for (size_t k = 0; k < N_KNOWN; k++) {
        const char *v = getenv_fn(known_vars[k].name);
        if (v == NULL) {
            continue;
        }
        if (!parse_var(&tmp, known_vars[k].id, v)) {
            if (err && err_cap) {
                snprintf(err, err_cap, "%s='%s' is not valid; accepted values: %s",
                         known_vars[k].name, v, known_vars[k].accepted);
            }
            return NGL_ERR_INVALID_ARG;
        }
    }
    if (environ_list) {
        for (char *const *e = environ_list; *e; e++) {
            if (strncmp(*e, "NANGILA_", 8) != 0) {
                continue;
            }
            size_t nlen = strcspn(*e, "=");
            int known = 0;
            for (size_t k = 0; k < N_KNOWN && !known; k++) {
                known =
                    strlen(known_vars[k].name) == nlen && !strncmp(*e, known_vars[k].name, nlen);
            }
            if (!known) {
                if (err && err_cap) {
                    int n = snprintf(err, err_cap,
                                     "unknown variable %.*s; known variables:", (int)nlen, *e);
                    for (size_t k = 0; k < N_KNOWN && n > 0 && (size_t)n < err_cap; k++) {
                        n += snprintf(err + n, err_cap - (size_t)n, " %s", known_vars[k].name);
                    }
                }
                return NGL_ERR_INVALID_ARG;
            }
        }
    }
    /* A fixed mode lossier than an explicit cap is a contradiction, not
     * something to resolve silently. (int4 is lossier than int8.) */
    if (!tmp.mode_auto && getenv_fn("NANGILA_MODE_MAX") != NULL && tmp.mode > tmp.mode_max) {
        if (err && err_cap) {
            snprintf(err, err_cap,
                     "NANGILA_MODE='%s' is lossier than NANGILA_MODE_MAX='%s'; accepted: a mode "
                     "no lossier than the cap, or NANGILA_MODE=auto",
                     getenv_fn("NANGILA_MODE"), getenv_fn("NANGILA_MODE_MAX"));
        }
        ngl_settings_defaults(s);
        return NGL_ERR_INVALID_ARG;
    }
    if (tmp.mode_auto) {
        tmp.mode = tmp.mode_max;
    }
    /* The size floor's default depends on the mode: a fixed codec starts
     * where it paid on the benchmark links, auto measures from smaller
     * sizes on. */
    tmp.min_bytes_set = getenv_fn("NANGILA_MIN_BYTES") != NULL;
    if (!tmp.min_bytes_set) {
        tmp.min_bytes = tmp.mode_auto ? NGL_AUTO_MIN_BYTES : NGL_DEFAULT_MIN_BYTES;
    }
    *s = tmp;
    return NGL_OK;
}

static const char *real_getenv(const char *name)
{
    return getenv(name);
}

ngl_status ngl_settings_from_env(ngl_settings *s, char *err, size_t err_cap)
{
    return ngl_settings_parse(s, real_getenv, environ, err, err_cap);
}

size_t ngl_settings_describe(const ngl_settings *s, char *buf, size_t cap)
{
    static const char *modes[] = {"off", "int8", "int4"};
    static const char *preds[] = {"none", "momentum", "linear"};
    char mode[32];
    if (s->mode_auto) {
        snprintf(mode, sizeof mode, "auto(max %s)", modes[s->mode_max]);
    } else {
        snprintf(mode, sizeof mode, "%s", modes[s->mode]);
    }
    int n =
        snprintf(buf, cap,
                 "mode=%s topk=%.17g predictor=%s ef=%d block=%u seed=%llu min_bytes=%llu "
                 "state_max_mb=%u",
                 mode, s->topk, preds[s->predictor], s->error_feedback, s->block_size,
                 (unsigned long long)s->seed, (unsigned long long)s->min_bytes, s->state_max_mb);
    return n < 0 ? 0 : (size_t)n;
}
