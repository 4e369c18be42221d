/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_lean_isa.h -- the per-ISA first-pass kernels behind
 * hpc_lean_block_simd(). Each is compiled alone with its ISA's flags, in its
 * own static library, like core's kernels_avx2.c and kernels_avx512.c; call
 * one only where hpc_lean_kernel_available() says so. Arguments and result
 * as hpc_lean_block_simd() (hpc_lean.h).
 */
#ifndef NGL_HPC_LEAN_ISA_H
#define NGL_HPC_LEAN_ISA_H

#include "hpc_lean.h"

unsigned hpc_lean_block_avx512(const hpc_lean_args *a, uint64_t v0, unsigned sel, uint64_t *redo);
unsigned hpc_lean_block_avx2(const hpc_lean_args *a, uint64_t v0, unsigned sel, uint64_t *redo);

#endif /* NGL_HPC_LEAN_ISA_H */
