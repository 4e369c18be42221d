/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_lean_simd.c -- which first-pass kernel this CPU runs, and the call
 * into it. The kernels (hpc_lean_avx512.c, hpc_lean_avx2.c) are built one
 * static library per ISA, as core's are; the CPU check is the common
 * layer's (ngl_cpu.h). See hpc_lean.h for the contract.
 */
#include "hpc_lean.h"

#include "ngl_cpu.h"

#if defined(HPC_HAVE_AVX512) || defined(HPC_HAVE_AVX2)
#include "hpc_lean_isa.h"
#endif

int hpc_lean_kernel_available(hpc_lean_kernel k)
{
    switch (k) {
    case HPC_LEAN_SCALAR: return 1;
    case HPC_LEAN_AVX2:
#if defined(HPC_HAVE_AVX2)
        return ngl_cpu_has(NGL_CPU_AVX2);
#else
        return 0;
#endif
    case HPC_LEAN_AVX512:
#if defined(HPC_HAVE_AVX512)
        return ngl_cpu_has(NGL_CPU_AVX512F | NGL_CPU_AVX512DQ | NGL_CPU_AVX512CD |
                           NGL_CPU_AVX512VL);
#else
        return 0;
#endif
    }
    return 0;
}

unsigned hpc_lean_block_simd(hpc_lean_kernel k, const hpc_lean_args *a, uint64_t v0, unsigned sel,
                             uint64_t *redo)
{
    switch (k) {
#if defined(HPC_HAVE_AVX512)
    case HPC_LEAN_AVX512: return hpc_lean_block_avx512(a, v0, sel, redo);
#endif
#if defined(HPC_HAVE_AVX2)
    case HPC_LEAN_AVX2: return hpc_lean_block_avx2(a, v0, sel, redo);
#endif
    default:
        (void)a;
        (void)v0;
        (void)sel;
        (void)redo;
        return 0; /* never called: the kernel is not available */
    }
}

hpc_lean_kernel hpc_lean_best_kernel(void)
{
    return hpc_lean_kernel_available(HPC_LEAN_AVX512) ? HPC_LEAN_AVX512
           : hpc_lean_kernel_available(HPC_LEAN_AVX2) ? HPC_LEAN_AVX2
                                                      : HPC_LEAN_SCALAR;
}

const char *hpc_lean_kernel_name(hpc_lean_kernel k)
{
    return k == HPC_LEAN_AVX512 ? "avx512" : k == HPC_LEAN_AVX2 ? "avx2" : "scalar";
}
