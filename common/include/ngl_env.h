/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_env.h -- the NANGILA_* environment variables of every layer, in one
 * list, and the helpers each layer parses its own with. Core reads the codec
 * settings (ngl_settings_parse()), the NCCL plugin its transport's
 * (plugin_settings.c), the MPI wrapper its own; all of them reject unknown
 * NANGILA_* names through ngl_env_check_unknown(), against this one list,
 * with the same words, and word bad values with ngl_env_invalid().
 *
 * A new variable: add it to ngl_env_vars (common_env.c) and parse it in the
 * layer that owns it. Private: never installed.
 */
#ifndef NGL_ENV_H
#define NGL_ENV_H

#include <stddef.h>
#include <stdint.h>

#define NGL_ENV_HIDDEN __attribute__((visibility("hidden")))

/** A variable: its name, and what it accepts, in words, for messages. */
typedef struct ngl_env_var {
    const char *name;
    const char *accepted;
} ngl_env_var;

/** Reads one variable: NULL when unset. getenv() or a test's stand-in. */
typedef const char *(*ngl_env_getter)(const char *name);

/** getenv() as an ngl_env_getter: the process environment. */
NGL_ENV_HIDDEN const char *ngl_env_getenv(const char *name);

/** @return the entry of @p name, or NULL if it is not a NANGILA_* variable we know. */
NGL_ENV_HIDDEN const ngl_env_var *ngl_env_find(const char *name);

/**
 * Checks @p environ_list (NULL-terminated "NAME=value" strings; NULL skips
 * the check) for NANGILA_* names not in the list; they are almost always
 * typos. @return 0, or -1 with "unknown variable NAME; known variables: ..."
 * in @p err (if non-NULL).
 */
NGL_ENV_HIDDEN int ngl_env_check_unknown(char *const *environ_list, char *err, size_t err_cap);

/** Writes "NAME='value' is not valid; accepted values: ..." into @p err (if
 *  non-NULL), the accepted values from the list. */
NGL_ENV_HIDDEN void ngl_env_invalid(const char *name, const char *value, char *err, size_t err_cap);

/** An unsigned 64-bit integer, decimal or 0x hex, nothing else around it.
 *  @return 1, or 0 if @p v is not one. */
NGL_ENV_HIDDEN int ngl_env_parse_u64(const char *v, uint64_t *out);

/** A byte count, optionally with k, M or G (powers of 1024). @return 1 or 0. */
NGL_ENV_HIDDEN int ngl_env_parse_bytes(const char *v, uint64_t *out);

/**
 * Reads @p name through @p get: unset leaves *out alone; an integer in
 * [lo, hi] is stored. @return 0, or -1 with the ngl_env_invalid() message.
 */
NGL_ENV_HIDDEN int ngl_env_read_u64(ngl_env_getter get, const char *name, uint64_t lo, uint64_t hi,
                                    uint64_t *out, char *err, size_t err_cap);

/**
 * Reads @p name through @p get into @p dst (@p cap bytes, NUL included):
 * unset leaves @p dst alone. @return 0, or -1 with the ngl_env_invalid()
 * message if the value does not fit.
 */
NGL_ENV_HIDDEN int ngl_env_read_str(ngl_env_getter get, const char *name, char *dst, size_t cap,
                                    char *err, size_t err_cap);

#endif /* NGL_ENV_H */
