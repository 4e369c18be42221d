/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_plugin.h -- state and helpers shared by every part of the NCCL plugin:
 * the process-wide set-up (settings, logger, devices, transport choice) and
 * the logging macros. Nothing here is exported from the .so.
 *
 * Error convention inside the plugin: functions return 0 or a negative errno
 * value; plugin_api.c alone translates them into NCCL result codes.
 * NGL_PLUGIN_EDEVICE stands for "a CUDA call failed" and becomes
 * ncclUnhandledCudaError.
 */
#ifndef NGL_PLUGIN_H
#define NGL_PLUGIN_H

#include "nangila.h"
#include "ngl_nccl_abi.h"

#include <errno.h>
#include <stdint.h>

#define NGL_PLUGIN_NAME "nangila"

/* A device (CUDA) call failed; kernels/ logged which one and why. */
#define NGL_PLUGIN_EDEVICE (-ENXIO)

/* ---- logging ---------------------------------------------------------- */

/* NCCL's logger once init() ran, NULL before (messages are then dropped:
 * the plugin never prints on its own). Set once, read by every thread. */
extern ngl_nccl_logger_t ngl_plugin_logger;

#define NGL_PLOG(level, flags, ...)                                                                \
    do {                                                                                           \
        ngl_nccl_logger_t ngl_lg_ = __atomic_load_n(&ngl_plugin_logger, __ATOMIC_ACQUIRE);         \
        if (ngl_lg_ != NULL) {                                                                     \
            ngl_lg_((level), (flags), __func__, __LINE__, "NET/Nangila " __VA_ARGS__);             \
        }                                                                                          \
    } while (0)
#define NGL_PWARN(...)        NGL_PLOG(NGL_NCCL_LOG_WARN, NGL_NCCL_SUBSYS_NET, __VA_ARGS__)
#define NGL_PINFO(flags, ...) NGL_PLOG(NGL_NCCL_LOG_INFO, (flags), __VA_ARGS__)
#define NGL_PTRACE(...)       NGL_PLOG(NGL_NCCL_LOG_TRACE, NGL_NCCL_SUBSYS_NET, __VA_ARGS__)

/* ---- settings (plugin_settings.c) ------------------------------------- */

/** Upper limit of NANGILA_COLLNET_PERIOD (collNet calls per training step). */
#define NGL_COLLNET_PERIOD_MAX 65536u
/** Default of NANGILA_NSOCKS. */
#define NGL_PLUGIN_NSOCKS_DEFAULT 4

/** Everything the plugin reads from NANGILA_* variables: core's settings,
 *  and the transport's own, which only the plugin knows. */
typedef struct ngl_plugin_config {
    ngl_settings codec;      /* core's: mode, codec, size floor, state bound, log level */
    int nsocks;              /* NANGILA_NSOCKS: sockets per connection, 1..16, default 4 */
    char socket_ifname[64];  /* NANGILA_SOCKET_IFNAME: interface name prefix, default "" (auto) */
    char net_inner[256];     /* NANGILA_NET_INNER: inner ncclNet plugin to forward to, default "" */
    uint32_t collnet_period; /* NANGILA_COLLNET_PERIOD: override of automatic stream
                                identity: collNet calls per training step, 0 (default:
                                automatic, docs/stream-identity.md) .. NGL_COLLNET_PERIOD_MAX */
} ngl_plugin_config;

/**
 * Read and validate the plugin's settings through @p getenv_fn: core's
 * (ngl_settings_parse(), which also rejects unknown NANGILA_* names listed
 * in @p environ_list, may be NULL), then the transport's. @return 0, or
 * -EINVAL with a message naming the variable, the value and what is
 * accepted in @p err; @p c then holds the defaults.
 */
int ngl_plugin_config_parse(ngl_plugin_config *c, const char *(*getenv_fn)(const char *),
                            char *const *environ_list, char *err, size_t err_cap);

/** ngl_plugin_config_parse() of the process environment. */
int ngl_plugin_config_from_env(ngl_plugin_config *c, char *err, size_t err_cap);

/* ---- process-wide state ------------------------------------------------ */

/**
 * One-time set-up shared by the net and collNet tables: install @p logger,
 * read NANGILA_* settings, find the network devices, load the inner plugin
 * if NANGILA_NET_INNER names one, else use @p own (our TCP table, which the
 * boundary file plugin_api.c defines and passes in). Thread-safe and idempotent: later calls
 * return the first call's result (a new logger replaces the old one).
 * @return 0, -EINVAL (bad setting, message logged), -ENODEV (no device),
 *         -ENOENT (inner plugin not loadable) or another -errno.
 */
int ngl_plugin_setup(ngl_nccl_logger_t logger, const ngl_nccl_net_v8_t *own);

/** ngl_plugin_setup() that ignores NANGILA_NET_INNER when @p allow_inner is
 *  0 (for a plugin that is itself loaded as someone's inner transport). */
int ngl_plugin_setup_ex(ngl_nccl_logger_t logger, int allow_inner, const ngl_nccl_net_v8_t *own);

/** Settings read by ngl_plugin_setup(); valid only after it returned 0. */
const ngl_plugin_config *ngl_plugin_settings(void);

/**
 * The point-to-point transport in use: our TCP table, or the inner plugin's
 * table when NANGILA_NET_INNER is set. Valid after ngl_plugin_setup() == 0.
 */
const ngl_nccl_net_v8_t *ngl_plugin_transport(void);

/** 1 when the transport is an inner plugin, else 0. */
int ngl_plugin_has_inner(void);

/** Our TCP transport as a v8 table (hidden; plugin_api.c defines it). */
extern const ngl_nccl_net_v8_t ngl_tcp_table;

/* ---- small helpers ----------------------------------------------------- */

/* plugin_util.c: */
/** Monotonic time in nanoseconds. */
uint64_t ngl_plugin_now_ns(void);

/** 64 random bits from the kernel (falls back to time and address mixing). */
uint64_t ngl_plugin_random64(void);

#endif /* NGL_PLUGIN_H */
