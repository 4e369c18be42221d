/* SPDX-License-Identifier: Apache-2.0 */
/*
 * settings.c -- core's NANGILA_* environment variables (the codec and the
 * collective's decisions), parsed and validated here for every host (MPI
 * wrapper, NCCL plugin, CLI). A bad value is an error naming the variable,
 * the value and what is accepted; so is an unknown NANGILA_* name, which is
 * almost always a typo. The names and accepted values of every layer's
 * variables are one list in common/ (ngl_env.h); the layers parse their
 * own (the plugin's transport, the interface name) the same way.
 */
#include "ngl_env.h"
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
    V_STATE_MAX
} var_id;

/* Core's variables, in the order they are checked. */
static const struct {
    const char *name;
    var_id id;
} known_vars[] = {
    {"NANGILA_MODE", V_MODE},
    {"NANGILA_MODE_MAX", V_MODE_MAX},
    {"NANGILA_TOPK", V_TOPK},
    {"NANGILA_PREDICTOR", V_PRED},
    {"NANGILA_EF", V_EF},
    {"NANGILA_MIN_BYTES", V_MINB},
    {"NANGILA_SEED", V_SEED},
    {"NANGILA_STATS", V_STATS},
    {"NANGILA_LOG_LEVEL", V_LOG},
    {"NANGILA_BLOCK", V_BLOCK},
    {"NANGILA_STATE_MAX_MB", V_STATE_MAX},
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
    s->state_max_mb = NGL_DEFAULT_STATE_MAX_MB;
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
    case V_MINB: return ngl_env_parse_bytes(v, &s->min_bytes);
    case V_SEED: return ngl_env_parse_u64(v, &s->seed);
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
        if (!ngl_env_parse_u64(v, &u) || u < NGL_BLOCK_MIN || u > NGL_BLOCK_MAX || u % 8u) {
            return 0;
        }
        s->block_size = (uint32_t)u;
        return 1;
    case V_STATE_MAX:
        if (!ngl_env_parse_u64(v, &u) || u < 1 || u > NGL_STATE_MAX_MB_MAX) {
            return 0;
        }
        s->state_max_mb = (uint32_t)u;
        return 1;
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
            ngl_env_invalid(known_vars[k].name, v, err, err_cap);
            return NGL_ERR_INVALID_ARG;
        }
    }
    /* Every layer's names are known here, so the plugin's or the wrapper's
     * variables pass, and a typo fails the same way in every host. */
    if (ngl_env_check_unknown(environ_list, err, err_cap) != 0) {
        return NGL_ERR_INVALID_ARG;
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

ngl_status ngl_settings_from_env(ngl_settings *s, char *err, size_t err_cap)
{
    return ngl_settings_parse(s, ngl_env_getenv, environ, err, err_cap);
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
