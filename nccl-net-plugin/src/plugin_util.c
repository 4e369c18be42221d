/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_util.c -- what every file of the plugin may call and which calls
 * nothing else of the plugin: NCCL's logger (set by ngl_plugin_setup()),
 * monotonic time, random ids. A leaf, so the set-up (plugin_state.c) and
 * the transport it starts (tcp_dev.c) do not include each other.
 */
#include "ngl_plugin.h"

#include "ngl_hash.h"

#include <stdint.h>
#include <sys/random.h>
#include <time.h>

ngl_nccl_logger_t ngl_plugin_logger;

uint64_t ngl_plugin_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ngl_plugin_random64(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        r = ngl_plugin_now_ns() ^ (uint64_t)(uintptr_t)&r;
    }
    return ngl_hash_splitmix64(r);
}
