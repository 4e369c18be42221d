/* SPDX-License-Identifier: Apache-2.0 */
/* common.c -- version, status names, logging, allocation, CPU dispatch. */
#include "ngl_internal.h"
#include "ngl_kernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define NGL_STR2(x) #x
#define NGL_STR(x)  NGL_STR2(x)

unsigned ngl_version_number(void)
{
    return NGL_VERSION_NUMBER;
}

const char *ngl_version_string(void)
{
    return NGL_STR(NGL_VERSION_MAJOR) "." NGL_STR(NGL_VERSION_MINOR) "." NGL_STR(NGL_VERSION_PATCH);
}

const char *ngl_status_str(ngl_status s)
{
    switch (s) {
    case NGL_OK: return "ok";
    case NGL_ERR_INVALID_ARG: return "invalid argument";
    case NGL_ERR_NO_MEMORY: return "out of memory";
    case NGL_ERR_DST_TOO_SMALL: return "destination buffer too small";
    case NGL_ERR_UNSUPPORTED: return "unsupported by this build or CPU";
    case NGL_ERR_DEVICE: return "device (CUDA) call failed";
    case NGL_ERR_TRUNCATED: return "frame truncated";
    case NGL_ERR_BAD_MAGIC: return "bad frame magic";
    case NGL_ERR_BAD_VERSION: return "unknown frame version";
    case NGL_ERR_BAD_CODEC: return "unknown codec";
    case NGL_ERR_BAD_DTYPE: return "bad dtype";
    case NGL_ERR_BAD_PREDICTOR: return "bad predictor";
    case NGL_ERR_BAD_FLAGS: return "reserved flags or fields set";
    case NGL_ERR_BAD_BLOCK_SIZE: return "bad block size";
    case NGL_ERR_BAD_LENGTH: return "payload length does not match the frame";
    case NGL_ERR_CRC_MISMATCH: return "CRC32C mismatch";
    case NGL_ERR_BAD_BACKEND: return "lossless back-end data corrupt";
    case NGL_ERR_BAD_SECTION: return "payload sections inconsistent";
    case NGL_ERR_BAD_SCALE: return "bad block scale";
    case NGL_ERR_BAD_CODE: return "quantized code out of range";
    case NGL_ERR_BAD_INDEX: return "bad Top-K index list";
    case NGL_ERR_BAD_EXCEPTION: return "bad exception list";
    case NGL_ERR_BAD_MASK: return "bad block mask";
    case NGL_ERR_COUNT_MISMATCH: return "element count mismatch";
    case NGL_ERR_CONFIG_MISMATCH: return "stream configuration mismatch";
    case NGL_ERR_STREAM_MISMATCH: return "frame belongs to another stream";
    case NGL_ERR_STEP_MISMATCH: return "frame step out of sequence";
    case NGL_ERR_BACKEND_UNAVAILABLE: return "lossless back end not built in";
    }
    return "unknown status";
}

size_t ngl_dtype_size(ngl_dtype d)
{
    switch (d) {
    case NGL_DTYPE_F32: return 4;
    case NGL_DTYPE_F16: return 2;
    case NGL_DTYPE_BF16: return 2;
    case NGL_DTYPE_F64: return 8;
    }
    return 0;
}

/* F32 either way is a copy; F16 and BF16 go element by element through the
 * codec's own conversions; F64 and unknown dtypes are refused. */
static ngl_status dtype_convert(ngl_dtype d, const void *src, void *dst, uint64_t n, int widen)
{
    if (n > 0 && (src == NULL || dst == NULL)) {
        return NGL_ERR_INVALID_ARG;
    }
    if (d == NGL_DTYPE_F32) {
        if (n > 0) {
            memmove(dst, src, (size_t)n * sizeof(float));
        }
        return NGL_OK;
    }
    if (d != NGL_DTYPE_F16 && d != NGL_DTYPE_BF16) {
        return NGL_ERR_INVALID_ARG;
    }
    const int bf = d == NGL_DTYPE_BF16;
    for (uint64_t i = 0; i < n; i++) {
        if (widen) {
            const uint16_t h = ((const uint16_t *)src)[i];
            ((float *)dst)[i] = bf ? ngl_bf16_to_f32(h) : ngl_f16_to_f32(h);
        } else {
            const float f = ((const float *)src)[i];
            ((uint16_t *)dst)[i] = bf ? ngl_f32_to_bf16(f) : ngl_f32_to_f16(f);
        }
    }
    return NGL_OK;
}

ngl_status ngl_dtype_to_f32(ngl_dtype d, const void *src, float *dst, uint64_t n)
{
    return dtype_convert(d, src, dst, n, 1);
}

ngl_status ngl_dtype_from_f32(ngl_dtype d, const float *src, void *dst, uint64_t n)
{
    return dtype_convert(d, src, dst, n, 0);
}

/* ---- logging ----------------------------------------------------------- */
/* The sink is copied under a mutex and called outside it, so a sink may
 * itself log or replace the logger. The atomic level lets disabled levels
 * return without taking the lock. */
static pthread_mutex_t ngl_log_lock = PTHREAD_MUTEX_INITIALIZER;
static ngl_log_fn ngl_log_sink;
static void *ngl_log_user;
static atomic_int ngl_log_max = NGL_LOG_NONE;

void ngl_set_logger(ngl_log_fn fn, void *user, ngl_log_level max_level)
{
    pthread_mutex_lock(&ngl_log_lock);
    ngl_log_sink = fn;
    ngl_log_user = user;
    atomic_store(&ngl_log_max, fn ? (int)max_level : (int)NGL_LOG_NONE);
    pthread_mutex_unlock(&ngl_log_lock);
}

void ngl_log(ngl_log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load_explicit(&ngl_log_max, memory_order_relaxed)) {
        return;
    }
    pthread_mutex_lock(&ngl_log_lock);
    ngl_log_fn fn = ngl_log_sink;
    void *user = ngl_log_user;
    pthread_mutex_unlock(&ngl_log_lock);
    if (fn == NULL) {
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(user, level, msg);
}

/* ---- memory ------------------------------------------------------------ */
void *ngl_malloc(size_t size)
{
    void *p = NULL;
    size_t rounded = (size + NGL_ALIGN - 1) & ~(size_t)(NGL_ALIGN - 1);
    if (rounded < size) {
        return NULL;
    }
    if (rounded == 0) {
        rounded = NGL_ALIGN;
    }
    if (posix_memalign(&p, NGL_ALIGN, rounded) != 0) {
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

void ngl_free(void *p)
{
    free(p);
}

/* ---- kernel dispatch (the CPU check is common's ngl_cpu_features()) -- */
int ngl_isa_available(ngl_isa isa)
{
    switch (isa) {
    case NGL_ISA_AUTO:
    case NGL_ISA_REF: return 1;
    case NGL_ISA_AVX2:
#if defined(NGL_HAVE_AVX2)
        return ngl_cpu_has(NGL_CPU_NEEDS_AVX2);
#else
        return 0;
#endif
    case NGL_ISA_AVX512:
#if defined(NGL_HAVE_AVX512)
        return ngl_cpu_has(NGL_CPU_NEEDS_AVX512);
#else
        return 0;
#endif
    }
    return 0;
}

ngl_isa ngl_isa_best(void)
{
    if (ngl_isa_available(NGL_ISA_AVX512)) {
        return NGL_ISA_AVX512;
    }
    if (ngl_isa_available(NGL_ISA_AVX2)) {
        return NGL_ISA_AVX2;
    }
    return NGL_ISA_REF;
}

const char *ngl_isa_name(ngl_isa isa)
{
    switch (isa) {
    case NGL_ISA_AUTO: return "auto";
    case NGL_ISA_REF: return "ref";
    case NGL_ISA_AVX2: return "avx2";
    case NGL_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

const ngl_kernels *ngl_kernels_get(ngl_isa isa)
{
    if (isa == NGL_ISA_AUTO) {
        isa = ngl_isa_best();
    }
    if (!ngl_isa_available(isa)) {
        return NULL;
    }
    switch (isa) {
#if defined(NGL_HAVE_AVX512)
    case NGL_ISA_AVX512: return &ngl_kernels_avx512;
#endif
#if defined(NGL_HAVE_AVX2)
    case NGL_ISA_AVX2: return &ngl_kernels_avx2;
#endif
    default: return &ngl_kernels_ref;
    }
}
