/* SPDX-License-Identifier: Apache-2.0 */
/* plugin_dev_none.c -- no device back end (a build without nvcc): the
 * collNet and the transport serve host memory only. */
#include "ngl_plugin_dev.h"

const ngl_plugin_dev_ops *ngl_plugin_dev(void)
{
    return NULL;
}
