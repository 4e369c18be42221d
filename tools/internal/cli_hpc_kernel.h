/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_hpc_kernel.h -- the one internal hook the CLI uses: `nangila hpc bench
 * --kernel` pins levels 0-1's vector kernel, which nangila_hpc.h does not
 * offer (a benchmark's knob, not a user's). Implemented on hpc's private
 * hpc_lean.h in tools/internal/ (target nangila_cli_internal, see
 * tools/meson.build); the rest of tools/ sees only this header and the
 * public nangila.h and nangila_hpc.h.
 */
#ifndef NGL_CLI_HPC_KERNEL_H
#define NGL_CLI_HPC_KERNEL_H

#include "nangila_hpc.h"

/** A kernel by name: "scalar", "avx2" or "avx512"; -1 for another name. */
int ngl_cli_hpc_kernel_parse(const char *name);

/** 1 if this build and CPU run kernel @p k. */
int ngl_cli_hpc_kernel_available(int k);

/** The kernel an encoder uses unless told otherwise. */
int ngl_cli_hpc_kernel_best(void);

/** "scalar", "avx2", "avx512". */
const char *ngl_cli_hpc_kernel_name(int k);

/** Level-0/1 encoder @p enc uses kernel @p k from now on (the scalar code
 *  if this CPU lacks it). @return the kernel in use. */
int ngl_cli_hpc_kernel_set(ngl_hpc_encoder *enc, int k);

#endif /* NGL_CLI_HPC_KERNEL_H */
