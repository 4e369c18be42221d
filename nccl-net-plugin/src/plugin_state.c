/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_state.c -- one-time set-up of the plugin: logger, settings,
 * topology, devices, and the optional inner ncclNet plugin
 * (NANGILA_NET_INNER).
 */
#include "ngl_plugin.h"
#include "ngl_tcp.h"
#include "ngl_topo.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;
static int setup_done;
static int setup_rc;
static ngl_plugin_config settings;
static const ngl_nccl_net_v8_t *transport;
static void *inner_lib;

/* Core messages go to NCCL's logger, under our prefix. */
static void core_log(void *user, ngl_log_level level, const char *msg)
{
    (void)user;
    ngl_nccl_logger_t lg = __atomic_load_n(&ngl_plugin_logger, __ATOMIC_ACQUIRE);
    if (lg == NULL) {
        return;
    }
    ngl_nccl_log_level_t l = level <= NGL_LOG_WARN    ? NGL_NCCL_LOG_WARN
                             : level == NGL_LOG_TRACE ? NGL_NCCL_LOG_TRACE
                                                      : NGL_NCCL_LOG_INFO;
    lg(l, NGL_NCCL_SUBSYS_NET, "nangila-core", 0, "NET/Nangila core: %s", msg);
}

/* NCCL's own rule for plugin names: verbatim, then libnccl-net-<name>.so
 * for a bare name. */
static void *open_inner(const char *name, char *err, size_t err_cap)
{
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib != NULL) {
        return lib;
    }
    snprintf(err, err_cap, "%s", dlerror());
    size_t len = strlen(name);
    int is_libso = strncmp(name, "lib", 3) == 0 && len > 3 && !strcmp(name + len - 3, ".so");
    if (strchr(name, '/') == NULL && !is_libso) {
        char alt[300];
        snprintf(alt, sizeof alt, "libnccl-net-%s.so", name);
        lib = dlopen(alt, RTLD_NOW | RTLD_LOCAL);
        if (lib == NULL) {
            snprintf(err, err_cap, "%s", dlerror());
        }
    }
    return lib;
}

static int load_inner(const char *name, ngl_nccl_logger_t logger)
{
    char err[256] = "";
    void *lib = open_inner(name, err, sizeof err);
    if (lib == NULL) {
        NGL_PWARN("NANGILA_NET_INNER=%s cannot be loaded: %s", name, err);
        return -ENOENT;
    }
    const ngl_nccl_net_v8_t *t = dlsym(lib, "ncclNetPlugin_v8");
    int rc = 0;
    if (t == NULL) {
        NGL_PWARN("NANGILA_NET_INNER=%s exports no ncclNetPlugin_v8 table", name);
        rc = -ENOENT;
        goto fail;
    }
    /* Another copy of this plugin would read the same NANGILA_NET_INNER and
     * forward to itself again. */
    if (t->name != NULL && strcmp(t->name, NGL_PLUGIN_NAME) == 0) {
        NGL_PWARN("NANGILA_NET_INNER=%s is this plugin; it must name another ncclNet plugin", name);
        rc = -EINVAL;
        goto fail;
    }
    if (t->init == NULL || t->init(logger) != NGL_NCCL_SUCCESS) {
        NGL_PWARN("NANGILA_NET_INNER=%s: init failed", name);
        rc = -EIO;
        goto fail;
    }
    int ndev = 0;
    if (t->devices(&ndev) != NGL_NCCL_SUCCESS || ndev <= 0) {
        NGL_PWARN("NANGILA_NET_INNER=%s has no devices", name);
        rc = -ENODEV;
        goto fail;
    }
    NGL_PINFO(NGL_NCCL_SUBSYS_INIT | NGL_NCCL_SUBSYS_NET,
              "point-to-point traffic forwarded to inner plugin %s (%s), %d device(s)",
              t->name ? t->name : "?", name, ndev);
    inner_lib = lib;
    transport = t;
    return 0;

fail:
    dlclose(lib);
    return rc;
}

/* Where this process sits (NUMA node, nearest NIC and GPU), once, for the
 * INFO log: the first thing to check when a job's traffic takes a NIC on
 * the wrong socket. The plugin has no threads of its own to place; NCCL
 * binds its proxy threads itself. */
static void log_topology(const char *ifname_prefix)
{
    ngl_topo topo;
    char line[512];
    if (__atomic_load_n(&ngl_plugin_logger, __ATOMIC_ACQUIRE) == NULL) {
        return; /* nobody to tell; spare the probe */
    }
    ngl_topo_probe(&topo, ifname_prefix);
    ngl_topo_describe(&topo, line, sizeof line);
    NGL_PINFO(NGL_NCCL_SUBSYS_INIT | NGL_NCCL_SUBSYS_NET, "%s", line);
}

int ngl_plugin_setup(ngl_nccl_logger_t logger, const ngl_nccl_net_v8_t *own)
{
    return ngl_plugin_setup_ex(logger, 1, own);
}

int ngl_plugin_setup_ex(ngl_nccl_logger_t logger, int allow_inner, const ngl_nccl_net_v8_t *own)
{
    pthread_mutex_lock(&setup_lock);
    if (logger != NULL) {
        __atomic_store_n(&ngl_plugin_logger, logger, __ATOMIC_RELEASE);
    }
    if (setup_done) {
        int rc = setup_rc;
        pthread_mutex_unlock(&setup_lock);
        return rc;
    }
    setup_done = 1;
    int rc = 0;
    char err[512];
    rc = ngl_plugin_config_from_env(&settings, err, sizeof err);
    if (rc != 0) {
        NGL_PWARN("%s", err);
        goto out;
    }
    ngl_set_logger(core_log, NULL, settings.codec.log_level);
    log_topology(settings.socket_ifname);
    if (allow_inner && settings.net_inner[0] != '\0') {
        rc = load_inner(settings.net_inner, ngl_plugin_logger);
    } else {
        rc = ngl_tcp_devices_init(settings.socket_ifname);
        if (rc != 0) {
            NGL_PWARN("no usable network interface%s%s",
                      settings.socket_ifname[0] ? " matches "
                                                  "NANGILA_SOCKET_IFNAME="
                                                : "",
                      settings.socket_ifname);
        } else {
            transport = own;
        }
    }
    if (rc == 0) {
        char desc[256];
        ngl_settings_describe(&settings.codec, desc, sizeof desc);
        NGL_PINFO(NGL_NCCL_SUBSYS_INIT | NGL_NCCL_SUBSYS_NET,
                  "libnangila %s ready: %s nsocks=%d collnet_period=%u", ngl_version_string(), desc,
                  settings.nsocks, settings.collnet_period);
    }
out:
    setup_rc = rc;
    pthread_mutex_unlock(&setup_lock);
    return rc;
}

const ngl_plugin_config *ngl_plugin_settings(void)
{
    return &settings;
}

const ngl_nccl_net_v8_t *ngl_plugin_transport(void)
{
    return transport;
}

int ngl_plugin_has_inner(void)
{
    return inner_lib != NULL;
}
