/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine_log.c -- the engine's one log function (ngl_engine.h): a message
 * to the host's logger, at or below the configured level. A leaf: every
 * engine file may call it, and it calls none of them.
 */
#include "ngl_engine.h"

#include <stdarg.h>
#include <stdio.h>

void ngl_engine_logf(const ngl_engine_config *cfg, ngl_log_level level, const char *fmt, ...)
{
    if (cfg->log == NULL || level > cfg->codec.log_level) {
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cfg->log(cfg->log_user, level, msg);
}
