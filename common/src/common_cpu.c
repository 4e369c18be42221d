/* SPDX-License-Identifier: Apache-2.0 */
/* common_cpu.c -- ngl_cpu_features(): the CPU check behind every dispatcher. */
#include "ngl_cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

uint32_t ngl_cpu_features(void)
{
    __builtin_cpu_init();
    uint32_t f = 0;
    f |= __builtin_cpu_supports("sse4.2") ? NGL_CPU_SSE42 : 0u;
    /* The builtin's "avx2" and "avx512*" also check that the OS saves the
     * wider register state. */
    f |= __builtin_cpu_supports("avx2") ? NGL_CPU_AVX2 : 0u;
    f |= __builtin_cpu_supports("avx512f") ? NGL_CPU_AVX512F : 0u;
    f |= __builtin_cpu_supports("avx512bw") ? NGL_CPU_AVX512BW : 0u;
    f |= __builtin_cpu_supports("avx512vl") ? NGL_CPU_AVX512VL : 0u;
    f |= __builtin_cpu_supports("avx512dq") ? NGL_CPU_AVX512DQ : 0u;
    f |= __builtin_cpu_supports("avx512cd") ? NGL_CPU_AVX512CD : 0u;
    /* F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports
     * does not know "f16c". */
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0) {
        f |= NGL_CPU_F16C;
    }
    return f;
}
#else
uint32_t ngl_cpu_features(void)
{
    return 0;
}
#endif
