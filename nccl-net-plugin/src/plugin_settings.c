/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_settings.c -- the plugin's NANGILA_* variables: core's codec
 * settings, then the transport's own (sockets, interface, inner plugin,
 * collNet period), which core's public ABI no longer carries. Names and
 * accepted values come from common's one list (ngl_env.h), so a bad value
 * or an unknown name reads the same here as in the MPI wrapper.
 */
#include "ngl_plugin.h"

#include "ngl_env.h"

#include <errno.h>
#include <string.h>

extern char **environ;

static void config_defaults(ngl_plugin_config *c)
{
    memset(c, 0, sizeof *c);
    ngl_settings_defaults(&c->codec);
    c->nsocks = NGL_PLUGIN_NSOCKS_DEFAULT;
}

int ngl_plugin_config_parse(ngl_plugin_config *c, const char *(*getenv_fn)(const char *),
                            char *const *environ_list, char *err, size_t err_cap)
{
    ngl_plugin_config tmp;
    config_defaults(&tmp);
    config_defaults(c);
    if (ngl_settings_parse(&tmp.codec, getenv_fn, environ_list, err, err_cap) != NGL_OK) {
        return -EINVAL;
    }
    uint64_t nsocks = (uint64_t)tmp.nsocks, period = tmp.collnet_period;
    if (ngl_env_read_u64(getenv_fn, "NANGILA_NSOCKS", 1, 16, &nsocks, err, err_cap) != 0 ||
        ngl_env_read_str(getenv_fn, "NANGILA_SOCKET_IFNAME", tmp.socket_ifname,
                         sizeof tmp.socket_ifname, err, err_cap) != 0 ||
        ngl_env_read_str(getenv_fn, "NANGILA_NET_INNER", tmp.net_inner, sizeof tmp.net_inner, err,
                         err_cap) != 0 ||
        ngl_env_read_u64(getenv_fn, "NANGILA_COLLNET_PERIOD", 0, NGL_COLLNET_PERIOD_MAX, &period,
                         err, err_cap) != 0) {
        return -EINVAL;
    }
    tmp.nsocks = (int)nsocks;
    tmp.collnet_period = (uint32_t)period;
    *c = tmp;
    return 0;
}

int ngl_plugin_config_from_env(ngl_plugin_config *c, char *err, size_t err_cap)
{
    return ngl_plugin_config_parse(c, ngl_env_getenv, environ, err, err_cap);
}
