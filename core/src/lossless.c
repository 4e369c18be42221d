/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lossless.c -- lossless back ends for frame bodies: zero-run RLE (always
 * built) and zstd (when meson finds libzstd). Format: docs/wire-format.md §2.
 */
#include "ngl_wire.h"

#if defined(NGL_HAVE_ZSTD)
#include <zstd.h>
#endif

/* Zero runs shorter than this stay inside literal runs: a run token costs
 * at least two bytes (the run varint and the next literal length). */
#define RLE_MIN_ZERO_RUN 4u

int ngl_backend_available(unsigned backend)
{
    switch (backend) {
    case NGL_LOSSLESS_NONE:
    case NGL_LOSSLESS_RLE: return 1;
    case NGL_LOSSLESS_ZSTD:
#if defined(NGL_HAVE_ZSTD)
        return 1;
#else
        return 0;
#endif
    default: return 0;
    }
}

ngl_status ngl_backend_ctx_init(ngl_backend_ctx *ctx, int want_zstd)
{
    ctx->zstd_c = NULL;
    ctx->zstd_d = NULL;
    if (!want_zstd) {
        return NGL_OK;
    }
#if defined(NGL_HAVE_ZSTD)
    ctx->zstd_c = ZSTD_createCCtx();
    ctx->zstd_d = ZSTD_createDCtx();
    if (ctx->zstd_c == NULL || ctx->zstd_d == NULL) {
        ngl_backend_ctx_fini(ctx);
        return NGL_ERR_NO_MEMORY;
    }
    return NGL_OK;
#else
    return NGL_ERR_UNSUPPORTED;
#endif
}

void ngl_backend_ctx_fini(ngl_backend_ctx *ctx)
{
#if defined(NGL_HAVE_ZSTD)
    ZSTD_freeCCtx((ZSTD_CCtx *)ctx->zstd_c);
    ZSTD_freeDCtx((ZSTD_DCtx *)ctx->zstd_d);
#endif
    ctx->zstd_c = NULL;
    ctx->zstd_d = NULL;
}

/* Length of the zero run starting at p (at most n). */
static size_t zero_run(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i + 8 <= n) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != 0) {
            break;
        }
        i += 8;
    }
    while (i < n && p[i] == 0) {
        i++;
    }
    return i;
}

static size_t rle_compress(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    size_t in = 0, out = 0;
    while (in < len) {
        /* literal run: until a zero run of RLE_MIN_ZERO_RUN or the end */
        size_t lit_start = in, lit_end = in;
        size_t z = 0;
        while (lit_end < len) {
            if (src[lit_end] == 0) {
                z = zero_run(src + lit_end, len - lit_end);
                if (z >= RLE_MIN_ZERO_RUN || lit_end + z == len) {
                    break;
                }
                lit_end += z;
                z = 0;
            } else {
                lit_end++;
            }
        }
        if (lit_end == len) {
            z = 0;
        }
        size_t lit = lit_end - lit_start;
        if (out + 10 + lit > cap) {
            return 0;
        }
        out += ngl_varint_put(dst + out, lit);
        memcpy(dst + out, src + lit_start, lit);
        out += lit;
        out += ngl_varint_put(dst + out, z);
        in = lit_end + z;
    }
    return out;
}

static ngl_status rle_decompress(const uint8_t *src, size_t len, uint8_t *dst, size_t out_len)
{
    size_t in = 0, out = 0;
    while (in < len) {
        uint32_t lit, z;
        size_t n = ngl_varint_get32(src + in, len - in, &lit);
        if (n == 0) {
            return NGL_ERR_BAD_BACKEND;
        }
        in += n;
        if (lit > len - in || lit > out_len - out) {
            return NGL_ERR_BAD_BACKEND;
        }
        memcpy(dst + out, src + in, lit);
        in += lit;
        out += lit;
        n = ngl_varint_get32(src + in, len - in, &z);
        if (n == 0 || (lit == 0 && z == 0) || z > out_len - out) {
            return NGL_ERR_BAD_BACKEND;
        }
        in += n;
        if (z == 0 && in < len) {
            return NGL_ERR_BAD_BACKEND; /* only the last pair may end without zeros */
        }
        memset(dst + out, 0, z);
        out += z;
    }
    return out == out_len ? NGL_OK : NGL_ERR_BAD_BACKEND;
}

size_t ngl_backend_compress(ngl_backend_ctx *ctx, unsigned backend, const uint8_t *src, size_t len,
                            uint8_t *dst, size_t dst_cap)
{
    switch (backend) {
    case NGL_LOSSLESS_RLE: return rle_compress(src, len, dst, dst_cap);
    case NGL_LOSSLESS_ZSTD:
#if defined(NGL_HAVE_ZSTD)
    {
        if (ctx->zstd_c == NULL) {
            return 0;
        }
        size_t r = ZSTD_compressCCtx((ZSTD_CCtx *)ctx->zstd_c, dst, dst_cap, src, len, 1);
        return ZSTD_isError(r) ? 0 : r;
    }
#else
        (void)ctx;
        return 0;
#endif
    default: return 0;
    }
}

ngl_status ngl_backend_decompress(ngl_backend_ctx *ctx, unsigned backend, const uint8_t *src,
                                  size_t len, uint8_t *dst, size_t out_len)
{
    switch (backend) {
    case NGL_LOSSLESS_RLE: return rle_decompress(src, len, dst, out_len);
    case NGL_LOSSLESS_ZSTD:
#if defined(NGL_HAVE_ZSTD)
    {
        if (ZSTD_findFrameCompressedSize(src, len) != len) {
            return NGL_ERR_BAD_BACKEND;
        }
        unsigned long long content = ZSTD_getFrameContentSize(src, len);
        if (content != (unsigned long long)out_len) {
            return NGL_ERR_BAD_BACKEND;
        }
        size_t r = ctx->zstd_d
                       ? ZSTD_decompressDCtx((ZSTD_DCtx *)ctx->zstd_d, dst, out_len, src, len)
                       : ZSTD_decompress(dst, out_len, src, len);
        if (ZSTD_isError(r) || r != out_len) {
            return NGL_ERR_BAD_BACKEND;
        }
        return NGL_OK;
    }
#else
        (void)ctx;
        return NGL_ERR_BACKEND_UNAVAILABLE;
#endif
    default: return NGL_ERR_BAD_BACKEND;
    }
}
