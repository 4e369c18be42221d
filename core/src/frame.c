/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame.c -- the validating frame parser and the layout helpers of
 * ngl_frame.h. Every check of docs/wire-format.md lives here once, in the
 * spec's order: core's decoder and the CUDA host decoder both call
 * ngl_frame_validate() before they touch an output or a state.
 */
#include "ngl_frame.h"

#include <math.h>
#include <stdlib.h>

/* ---- section checks ---------------------------------------------------- */

/* The common preamble's predictor parameter against the stream. */
static ngl_status check_preamble(const ngl_stream_config *cfg, const uint8_t *body)
{
    const uint32_t param = ngl_rd_u32(body + 4);
    const int mom = cfg->predictor == NGL_PRED_MOMENTUM;
    const uint32_t want = mom ? ngl_f32_bits(cfg->momentum_beta) : 0u;
    if (mom) {
        float beta = ngl_bits_f32(param);
        if (!(beta >= 0.0f && beta < 1.0f)) {
            return NGL_ERR_BAD_FLAGS;
        }
    }
    if (param == want) {
        return NGL_OK;
    }
    return mom ? NGL_ERR_CONFIG_MISMATCH : NGL_ERR_BAD_FLAGS;
}

/* The mask section at *off when the frame has one: present in full, bits
 * at or above nblocks clear. */
static ngl_status check_mask(const uint8_t *body, size_t body_len, uint32_t nblocks, uint64_t *off,
                             const uint8_t **mask)
{
    const size_t mb = ngl_mask_bytes(nblocks);
    if (*off + mb > body_len) {
        return NGL_ERR_BAD_SECTION;
    }
    const uint8_t *m = body + *off;
    if ((nblocks % 8u) && (m[mb - 1] >> (nblocks % 8u))) {
        return NGL_ERR_BAD_MASK;
    }
    *mask = m;
    *off += mb;
    return NGL_OK;
}

static ngl_status check_scales(const uint8_t *p, uint64_t n)
{
    for (uint64_t g = 0; g < n; g++) {
        uint32_t bits = ngl_rd_u32(p + 4 * g);
        /* finite, sign clear (+0.0 allowed) */
        if ((bits & 0x80000000u) || (bits & 0x7f800000u) == 0x7f800000u) {
            return NGL_ERR_BAD_SCALE;
        }
    }
    return NGL_OK;
}

/* INT8: -128 never appears. INT4: nibble 8 never appears; an odd count
 * leaves the last high nibble zero. */
static ngl_status check_codes(const uint8_t *codes, uint64_t coded, int int4)
{
    if (!int4) {
        return memchr(codes, 0x80, (size_t)coded) ? NGL_ERR_BAD_CODE : NGL_OK;
    }
    size_t nbytes = (size_t)NGL_DIV_CEIL(coded, 2u);
    /* A nibble is 8 iff its top bit is set and its low three bits are
     * zero; adding 7 to the low bits sets bit 3 exactly when they are not
     * zero, with no carry out of the nibble. Eight bytes at a time. */
    const uint64_t hi8 = 0x8888888888888888ull, lo7 = 0x7777777777777777ull;
    uint64_t bad64 = 0;
    size_t i = 0;
    for (; i + 8 <= nbytes; i += 8) {
        uint64_t w;
        memcpy(&w, codes + i, 8);
        bad64 |= w & hi8 & ~((w & lo7) + lo7);
    }
    unsigned bad = bad64 != 0;
    for (; i < nbytes; i++) {
        uint8_t b = codes[i];
        bad |= ((b & 0x0fu) == 0x08u) | ((b & 0xf0u) == 0x80u);
    }
    if (bad || ((coded & 1u) && (codes[nbytes - 1] & 0xf0u))) {
        return NGL_ERR_BAD_CODE;
    }
    return NGL_OK;
}

static int code_is_zero(const uint8_t *codes, uint64_t pos, int int4)
{
    if (!int4) {
        return codes[pos] == 0;
    }
    uint8_t b = codes[pos >> 1];
    return ((pos & 1u) ? (b >> 4) : (b & 0x0fu)) == 0;
}

/* n_exc against count, then the section lengths against the body. */
static ngl_status check_layout(const ngl_frame_view *v, uint64_t count, uint64_t exc_off,
                               size_t esz)
{
    if (v->n_exc > count || exc_off + (uint64_t)v->n_exc * esz != v->body_len) {
        return NGL_ERR_BAD_SECTION;
    }
    return NGL_OK;
}

/* Exception indices strictly increase and stay below count. */
static inline int exc_index_ok(uint64_t i, uint32_t e, uint64_t prev, uint64_t count)
{
    return i < count && (e == 0 || i > prev);
}

/* ---- bodies ------------------------------------------------------------ */

static ngl_status validate_raw(const ngl_stream_config *cfg, ngl_frame_view *v)
{
    const size_t n = (size_t)cfg->count;
    const size_t ds = ngl_dtype_size(cfg->dtype);
    if (v->body_len != NGL_PREAMBLE_COMMON + n * ds) {
        return NGL_ERR_BAD_SECTION;
    }
    if (v->n_exc != 0) {
        return NGL_ERR_BAD_EXCEPTION;
    }
    v->codes = v->body + NGL_PREAMBLE_COMMON;
    v->codes_len = n * ds;
    return NGL_OK;
}

static ngl_status validate_eps(const ngl_stream_config *cfg, uint8_t *flags, ngl_frame_view *v)
{
    const uint8_t *body = v->body;
    const uint64_t count = cfg->count;
    const size_t esz = 4u + ngl_dtype_size(cfg->dtype);
    if (v->body_len < NGL_PREAMBLE_COMMON + NGL_PREAMBLE_EPS) {
        return NGL_ERR_BAD_SECTION;
    }
    const double eps = ngl_bits_f64(ngl_rd_u64(body + 8));
    const uint64_t code_bytes = ngl_rd_u32(body + 16);
    if (ngl_rd_u32(body + 20) != 0) {
        return NGL_ERR_BAD_FLAGS;
    }
    if (!(ngl_f64_finite(eps) && eps > 0.0)) {
        return NGL_ERR_BAD_SCALE;
    }
    if (ngl_f64_bits(eps) != ngl_f64_bits(cfg->eps)) {
        return NGL_ERR_CONFIG_MISMATCH;
    }
    const uint64_t codes_off = NGL_PREAMBLE_COMMON + NGL_PREAMBLE_EPS;
    const uint64_t exc_off = codes_off + code_bytes;
    ngl_status st = check_layout(v, count, exc_off, esz);
    if (st != NGL_OK) {
        return st;
    }
    /* codes: exactly count canonical varints, |q| <= 2^30, nothing left;
     * flags marks the zero codes for the exception check */
    const uint8_t *codes = body + codes_off;
    memset(flags, 0, NGL_DIV_CEIL((size_t)count, 8u));
    size_t pos = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint32_t z;
        size_t used = ngl_varint_get32(codes + pos, (size_t)code_bytes - pos, &z);
        if (used == 0 || z > 0x80000000u) {
            return NGL_ERR_BAD_CODE;
        }
        if (z == 0) {
            ngl_bit_set(flags, i);
        }
        pos += used;
    }
    if (pos != code_bytes) {
        return NGL_ERR_BAD_CODE;
    }
    v->exc = body + exc_off;
    uint64_t prev = 0;
    for (uint32_t e = 0; e < v->n_exc; e++) {
        const uint64_t i = ngl_rd_u32(v->exc + (uint64_t)e * esz);
        if (!exc_index_ok(i, e, prev, count)) {
            return NGL_ERR_BAD_EXCEPTION;
        }
        prev = i;
        if (!ngl_bit_get(flags, i)) {
            return NGL_ERR_BAD_CODE;
        }
    }
    v->codes = codes;
    v->codes_len = code_bytes;
    v->eps = eps;
    return NGL_OK;
}

/* Dense INT8/INT4: [preamble][mask][scales][codes][exceptions]. */
static ngl_status validate_dense(const ngl_stream_config *cfg, ngl_frame_view *v)
{
    const int int4 = cfg->codec == NGL_CODEC_INT4;
    const uint64_t count = cfg->count;
    const uint32_t block = cfg->block_size;
    const uint32_t nblocks = (uint32_t)NGL_DIV_CEIL(count, (uint64_t)block);
    const size_t esz = 4u + ngl_dtype_size(cfg->dtype);
    uint64_t off = NGL_PREAMBLE_COMMON;
    uint64_t n_sent = nblocks, coded = count;
    const uint8_t *mask = NULL;

    if (v->fi.flags & NGL_FLAG_MASK) {
        ngl_status st = check_mask(v->body, v->body_len, nblocks, &off, &mask);
        if (st != NGL_OK) {
            return st;
        }
        ngl_mask_count(mask, nblocks, block, count, &n_sent, &coded);
    }
    const uint64_t scales_off = off;
    const uint64_t codes_off = scales_off + 4u * n_sent;
    const uint64_t codes_len = ngl_codes_bytes(coded, int4);
    const uint64_t exc_off = codes_off + codes_len;
    ngl_status st = check_layout(v, count, exc_off, esz);
    if (st == NGL_OK) {
        st = check_scales(v->body + scales_off, n_sent);
    }
    if (st == NGL_OK) {
        st = check_codes(v->body + codes_off, coded, int4);
    }
    if (st != NGL_OK) {
        return st;
    }
    /* exceptions: strictly increasing, in range, and code 0 where coded */
    const uint8_t *codes = v->body + codes_off;
    v->exc = v->body + exc_off;
    uint64_t prev = 0;
    uint32_t b = 0;
    uint64_t skipped_before = 0; /* skipped blocks before block b */
    for (uint32_t e = 0; e < v->n_exc; e++) {
        const uint64_t idx = ngl_rd_u32(v->exc + (uint64_t)e * esz);
        if (!exc_index_ok(idx, e, prev, count)) {
            return NGL_ERR_BAD_EXCEPTION;
        }
        prev = idx;
        const uint32_t eb = (uint32_t)(idx / block);
        while (b < eb) {
            if (mask && ngl_bit_get(mask, b)) {
                skipped_before++;
            }
            b++;
        }
        if (mask && ngl_bit_get(mask, eb)) {
            continue;
        }
        if (!code_is_zero(codes, idx - skipped_before * block, int4)) {
            return NGL_ERR_BAD_CODE;
        }
    }
    v->mask = mask;
    v->scales = v->body + scales_off;
    v->n_scales = n_sent;
    v->codes = codes;
    v->n_codes = coded;
    v->codes_len = codes_len;
    return NGL_OK;
}

/* The Top-K index section into sel: k indices, increasing, below count,
 * none in a skipped block. Kept out of line: inlined into the validator,
 * its varint loop runs out of registers (measured ~15% slower decode). */
static __attribute__((noinline)) ngl_status parse_indices(const ngl_stream_config *cfg,
                                                          const uint8_t *idx, size_t idx_bytes,
                                                          unsigned fmt, uint64_t k,
                                                          const uint8_t *mask, uint32_t *sel)
{
    const uint64_t n = cfg->count;
    uint64_t got = 0;
    if (fmt == NGL_TOPK_FMT_BITMAP) {
        if (idx_bytes != NGL_DIV_CEIL(n, 8u)) {
            return NGL_ERR_BAD_INDEX;
        }
        if ((n % 8u) && (idx[idx_bytes - 1] >> (n % 8u))) {
            return NGL_ERR_BAD_INDEX;
        }
        for (size_t byte = 0; byte < idx_bytes; byte++) {
            uint8_t v = idx[byte];
            while (v) {
                unsigned bit = (unsigned)__builtin_ctz(v);
                v &= (uint8_t)(v - 1u);
                if (got >= k) {
                    return NGL_ERR_BAD_INDEX;
                }
                sel[got++] = (uint32_t)(byte * 8u + bit);
            }
        }
    } else if (fmt == NGL_TOPK_FMT_VARINT) {
        size_t pos = 0;
        uint64_t prev = 0;
        for (got = 0; got < k; got++) {
            uint32_t v;
            size_t used = ngl_varint_get32(idx + pos, idx_bytes - pos, &v);
            if (used == 0) {
                return NGL_ERR_BAD_INDEX;
            }
            pos += used;
            uint64_t i = got == 0 ? v : prev + 1u + v;
            if (i >= n) {
                return NGL_ERR_BAD_INDEX;
            }
            sel[got] = (uint32_t)i;
            prev = i;
        }
        if (pos != idx_bytes) {
            return NGL_ERR_BAD_INDEX;
        }
    } else {
        return NGL_ERR_BAD_INDEX;
    }
    if (got != k) {
        return NGL_ERR_BAD_INDEX;
    }
    if (mask) {
        for (uint64_t e = 0; e < k; e++) {
            if (ngl_bit_get(mask, sel[e] / cfg->block_size)) {
                return NGL_ERR_BAD_INDEX;
            }
        }
    }
    return NGL_OK;
}

/* Top-K INT8/INT4: [preamble][Top-K preamble][mask][indices][scales]
 * [codes][exceptions]. */
static ngl_status validate_topk(const ngl_stream_config *cfg, uint32_t *sel, ngl_frame_view *v)
{
    const uint8_t *body = v->body;
    const int int4 = cfg->codec == NGL_CODEC_INT4;
    const uint64_t count = cfg->count;
    const uint32_t block = cfg->block_size;
    const size_t esz = 4u + ngl_dtype_size(cfg->dtype);
    if (v->body_len < NGL_PREAMBLE_COMMON + NGL_PREAMBLE_TOPK) {
        return NGL_ERR_BAD_SECTION;
    }
    const uint64_t k = ngl_rd_u32(body + 8);
    const uint64_t idx_bytes = ngl_rd_u32(body + 12);
    const unsigned fmt = body[16];
    if (body[17] | body[18] | body[19]) {
        return NGL_ERR_BAD_FLAGS;
    }
    if (k > count) {
        return NGL_ERR_BAD_INDEX;
    }
    if (k > ngl_topk_k_max(cfg)) {
        return NGL_ERR_CONFIG_MISMATCH; /* a sender with a larger Top-K fraction */
    }
    uint64_t off = NGL_PREAMBLE_COMMON + NGL_PREAMBLE_TOPK;
    const uint8_t *mask = NULL;
    if (v->fi.flags & NGL_FLAG_MASK) {
        const uint32_t nblocks = (uint32_t)NGL_DIV_CEIL(count, (uint64_t)block);
        ngl_status st = check_mask(body, v->body_len, nblocks, &off, &mask);
        if (st != NGL_OK) {
            return st;
        }
    }
    const uint64_t idx_off = off;
    const uint64_t ngroups = NGL_DIV_CEIL(k, (uint64_t)block);
    const uint64_t scales_off = idx_off + idx_bytes;
    const uint64_t codes_off = scales_off + 4u * ngroups;
    const uint64_t codes_len = ngl_codes_bytes(k, int4);
    const uint64_t exc_off = codes_off + codes_len;
    ngl_status st = check_layout(v, count, exc_off, esz);
    if (st == NGL_OK) {
        st = parse_indices(cfg, body + idx_off, (size_t)idx_bytes, fmt, k, mask, sel);
    }
    if (st == NGL_OK) {
        st = check_scales(body + scales_off, ngroups);
    }
    if (st == NGL_OK) {
        st = check_codes(body + codes_off, k, int4);
    }
    if (st != NGL_OK) {
        return st;
    }
    /* exceptions: strictly increasing, in range, code 0 if selected */
    const uint8_t *codes = body + codes_off;
    v->exc = body + exc_off;
    uint64_t cur = 0, prev = 0;
    for (uint32_t e = 0; e < v->n_exc; e++) {
        const uint64_t i = ngl_rd_u32(v->exc + (uint64_t)e * esz);
        if (!exc_index_ok(i, e, prev, count)) {
            return NGL_ERR_BAD_EXCEPTION;
        }
        prev = i;
        while (cur < k && sel[cur] < i) {
            cur++;
        }
        if (cur < k && sel[cur] == i && !code_is_zero(codes, cur, int4)) {
            return NGL_ERR_BAD_CODE;
        }
    }
    v->mask = mask;
    v->scales = body + scales_off;
    v->n_scales = ngroups;
    v->codes = codes;
    v->n_codes = k;
    v->codes_len = codes_len;
    v->k = k;
    v->sel = sel;
    return NGL_OK;
}

/* ---- the frame --------------------------------------------------------- */

ngl_status ngl_frame_validate(const ngl_stream_config *cfg, uint64_t step, const uint8_t *src,
                              size_t len, const ngl_frame_scratch *scratch, ngl_frame_view *v)
{
    memset(v, 0, sizeof *v);
    ngl_frame_info *fi = &v->fi;
    ngl_status st = ngl_wire_parse(src, len, 1, fi);
    if (st != NGL_OK) {
        return st;
    }
    if (fi->count != cfg->count) {
        return NGL_ERR_COUNT_MISMATCH;
    }
    if (fi->codec != cfg->codec || fi->dtype != cfg->dtype || fi->predictor != cfg->predictor ||
        fi->block_size != cfg->block_size ||
        ((fi->flags & NGL_FLAG_TOPK) != 0) != (cfg->topk_fraction > 0.0)) {
        return NGL_ERR_CONFIG_MISMATCH;
    }
    if (fi->stream_id != cfg->stream_id) {
        return NGL_ERR_STREAM_MISMATCH;
    }
    if (fi->step != step) {
        return NGL_ERR_STEP_MISMATCH;
    }

    const uint8_t *payload = src + NGL_FRAME_HEADER_SIZE;
    v->body = payload;
    v->body_len = fi->payload_len;
    const unsigned backend = ngl_flags_backend(fi->flags);
    if (backend != NGL_LOSSLESS_NONE) {
        if (!ngl_backend_available(backend)) {
            return NGL_ERR_BACKEND_UNAVAILABLE;
        }
        if (scratch->body == NULL) {
            return NGL_ERR_CONFIG_MISMATCH; /* stream configured without back end */
        }
        if (fi->payload_len < 4) {
            return NGL_ERR_BAD_BACKEND;
        }
        v->body_len = ngl_rd_u32(payload);
        if (v->body_len > scratch->body_cap || v->body_len < NGL_PREAMBLE_COMMON) {
            return NGL_ERR_BAD_BACKEND;
        }
        st = ngl_backend_decompress(scratch->backend, backend, payload + 4, fi->payload_len - 4,
                                    scratch->body, v->body_len);
        if (st != NGL_OK) {
            return st;
        }
        v->body = scratch->body;
    }
    if (v->body_len < NGL_PREAMBLE_COMMON) {
        return NGL_ERR_BAD_SECTION;
    }
    st = check_preamble(cfg, v->body);
    if (st != NGL_OK) {
        return st;
    }
    v->n_exc = ngl_rd_u32(v->body);

    switch (cfg->codec) {
    case NGL_CODEC_RAW: return validate_raw(cfg, v);
    case NGL_CODEC_EPS: return validate_eps(cfg, scratch->flags, v);
    case NGL_CODEC_INT8:
    case NGL_CODEC_INT4: break;
    }
    return cfg->topk_fraction > 0.0 ? validate_topk(cfg, scratch->sel, v) : validate_dense(cfg, v);
}

/* ---- layout helpers ---------------------------------------------------- */

size_t ngl_topk_gaps_len(const uint32_t *sel, uint64_t k)
{
    size_t n = 0;
    for (uint64_t e = 0; e < k; e++) {
        n += ngl_varint_len(e == 0 ? sel[0] : sel[e] - sel[e - 1] - 1u);
    }
    return n;
}

size_t ngl_topk_gaps_put(uint8_t *dst, const uint32_t *sel, uint64_t k)
{
    size_t w = 0;
    for (uint64_t e = 0; e < k; e++) {
        w += ngl_varint_put(dst + w, e == 0 ? sel[0] : sel[e] - sel[e - 1] - 1u);
    }
    return w;
}

static int exc_entry_cmp(const void *a, const void *b)
{
    uint32_t x = ngl_rd_u32((const uint8_t *)a), y = ngl_rd_u32((const uint8_t *)b);
    return (x > y) - (x < y);
}

void ngl_exc_sort(uint8_t *exc, size_t n, size_t esz)
{
    qsort(exc, n, esz, exc_entry_cmp);
}

void ngl_mask_copy(uint8_t *dst, const uint8_t *src, uint32_t nblocks)
{
    const size_t nb = ngl_mask_bytes(nblocks);
    memcpy(dst, src, nb);
    if (nblocks % 8u) {
        dst[nb - 1] &= (uint8_t)((1u << (nblocks % 8u)) - 1u);
    }
}

int ngl_mask_build(uint8_t *mask, uint32_t nblocks, const uint8_t *user, double mask_fraction,
                   uint64_t step)
{
    const size_t nb = ngl_mask_bytes(nblocks);
    if (user != NULL) {
        memcpy(mask, user, nb);
    } else {
        memset(mask, 0, nb);
        unsigned skip = (unsigned)lround(mask_fraction * NGL_MASK_PERIOD);
        /* mask_fraction >= 31/32 would round to the whole period and skip
         * every block for ever; one step in each period always sends. */
        if (skip > NGL_MASK_PERIOD - 1u) {
            skip = NGL_MASK_PERIOD - 1u;
        }
        if (skip > 0) {
            for (uint32_t b = 0; b < nblocks; b++) {
                if ((unsigned)((b + step) % NGL_MASK_PERIOD) < skip) {
                    ngl_bit_set(mask, b);
                }
            }
        }
    }
    for (size_t i = 0; i < nb; i++) {
        if (mask[i]) {
            return 1;
        }
    }
    return 0;
}

void ngl_mask_count(const uint8_t *mask, uint32_t nblocks, uint32_t block, uint64_t count,
                    uint64_t *n_sent, uint64_t *coded)
{
    uint64_t ns = nblocks, c = count;
    for (uint32_t b = 0; b < nblocks; b++) {
        if (ngl_bit_get(mask, b)) {
            const uint64_t lo = (uint64_t)b * block;
            ns--;
            c -= NGL_MIN((uint64_t)block, count - lo);
        }
    }
    *n_sent = ns;
    *coded = c;
}

size_t ngl_frame_seal(uint8_t *frame, const ngl_stream_config *cfg, uint16_t flags, uint64_t step,
                      size_t payload_len)
{
    ngl_frame_info fi;
    memset(&fi, 0, sizeof fi);
    fi.codec = cfg->codec;
    fi.dtype = cfg->dtype;
    fi.predictor = cfg->predictor;
    fi.flags = flags;
    fi.block_size = cfg->block_size;
    fi.stream_id = cfg->stream_id;
    fi.step = step;
    fi.count = cfg->count;
    fi.payload_len = (uint32_t)payload_len;
    ngl_wire_write_header(frame, &fi);
    ngl_wire_seal(frame, NGL_FRAME_HEADER_SIZE + payload_len);
    return NGL_FRAME_HEADER_SIZE + payload_len;
}
