/* SPDX-License-Identifier: Apache-2.0 */
/* cli_hpc_kernel.c -- cli_hpc_kernel.h on hpc's private hpc_lean.h. */
#include "cli_hpc_kernel.h"

#include "hpc_lean.h"

#include <string.h>

int ngl_cli_hpc_kernel_parse(const char *name)
{
    return !strcmp(name, "scalar")   ? HPC_LEAN_SCALAR
           : !strcmp(name, "avx2")   ? HPC_LEAN_AVX2
           : !strcmp(name, "avx512") ? HPC_LEAN_AVX512
                                     : -1;
}

int ngl_cli_hpc_kernel_available(int k)
{
    return k >= 0 && hpc_lean_kernel_available((hpc_lean_kernel)k);
}

int ngl_cli_hpc_kernel_best(void)
{
    return hpc_lean_best_kernel();
}

const char *ngl_cli_hpc_kernel_name(int k)
{
    return hpc_lean_kernel_name((hpc_lean_kernel)k);
}

int ngl_cli_hpc_kernel_set(ngl_hpc_encoder *enc, int k)
{
    return hpc_encoder_set_kernel(enc, (hpc_lean_kernel)k);
}
