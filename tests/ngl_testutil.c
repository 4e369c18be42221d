/* SPDX-License-Identifier: Apache-2.0 */
/* ngl_testutil.c -- see ngl_testutil.h. */
#include "ngl_testutil.h"

#include "ngl_arith.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- random inputs --------------------------------------------------- */
void tu_rng_seed(tu_rng *r, uint64_t seed)
{
    r->s = seed ^ 0x6a09e667f3bcc909ull;
}

uint64_t tu_rng_u64(tu_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint32_t tu_rng_below(tu_rng *r, uint32_t n)
{
    return (uint32_t)(((tu_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

double tu_rng_unit(tu_rng *r)
{
    return (double)(tu_rng_u64(r) >> 11) * 0x1p-53;
}

float tu_rng_float(tu_rng *r, float lo, float hi)
{
    return (float)((double)lo + ((double)hi - (double)lo) * tu_rng_unit(r));
}

/* ---- dtype helpers --------------------------------------------------- */
double tu_elem_get(const void *buf, ngl_dtype dt, size_t i)
{
    const uint8_t *b = (const uint8_t *)buf;
    switch (dt) {
    case NGL_DTYPE_F32: {
        float f;
        memcpy(&f, b + 4 * i, 4);
        return (double)f;
    }
    case NGL_DTYPE_F64: {
        double d;
        memcpy(&d, b + 8 * i, 8);
        return d;
    }
    case NGL_DTYPE_F16: {
        uint16_t h;
        memcpy(&h, b + 2 * i, 2);
        return (double)ngl_f16_to_f32(h);
    }
    case NGL_DTYPE_BF16: {
        uint16_t h;
        memcpy(&h, b + 2 * i, 2);
        return (double)ngl_bf16_to_f32(h);
    }
    }
    fail_msg("bad dtype %d", (int)dt);
    return 0.0;
}

void tu_elem_set(void *buf, ngl_dtype dt, size_t i, double v)
{
    uint8_t *b = (uint8_t *)buf;
    switch (dt) {
    case NGL_DTYPE_F32: {
        float f = (float)v;
        memcpy(b + 4 * i, &f, 4);
        return;
    }
    case NGL_DTYPE_F64: memcpy(b + 8 * i, &v, 8); return;
    case NGL_DTYPE_F16: {
        uint16_t h = ngl_f32_to_f16_sat((float)v);
        memcpy(b + 2 * i, &h, 2);
        return;
    }
    case NGL_DTYPE_BF16: {
        uint16_t h = ngl_f32_to_bf16_sat((float)v);
        memcpy(b + 2 * i, &h, 2);
        return;
    }
    }
    fail_msg("bad dtype %d", (int)dt);
}

uint64_t tu_elem_bits(const void *buf, ngl_dtype dt, size_t i)
{
    const uint8_t *b = (const uint8_t *)buf;
    switch (ngl_dtype_size(dt)) {
    case 2: {
        uint16_t h;
        memcpy(&h, b + 2 * i, 2);
        return h;
    }
    case 4: {
        uint32_t u;
        memcpy(&u, b + 4 * i, 4);
        return u;
    }
    default: {
        uint64_t u;
        memcpy(&u, b + 8 * i, 8);
        return u;
    }
    }
}

void tu_elem_set_bits(void *buf, ngl_dtype dt, size_t i, uint64_t bits)
{
    uint8_t *b = (uint8_t *)buf;
    switch (ngl_dtype_size(dt)) {
    case 2: {
        uint16_t h = (uint16_t)bits;
        memcpy(b + 2 * i, &h, 2);
        return;
    }
    case 4: {
        uint32_t u = (uint32_t)bits;
        memcpy(b + 4 * i, &u, 4);
        return;
    }
    default: memcpy(b + 8 * i, &bits, 8); return;
    }
}

int tu_elem_finite(const void *buf, ngl_dtype dt, size_t i)
{
    uint64_t u = tu_elem_bits(buf, dt, i);
    switch (dt) {
    case NGL_DTYPE_F32: return (u & 0x7f800000u) != 0x7f800000u;
    case NGL_DTYPE_F64: return (u & 0x7ff0000000000000ull) != 0x7ff0000000000000ull;
    case NGL_DTYPE_F16: return (u & 0x7c00u) != 0x7c00u;
    case NGL_DTYPE_BF16: return (u & 0x7f80u) != 0x7f80u;
    }
    return 0;
}

double tu_ulp(ngl_dtype dt, double v)
{
    int mant_bits, emin;
    switch (dt) {
    case NGL_DTYPE_F32:
        mant_bits = 23;
        emin = -126;
        break;
    case NGL_DTYPE_F16:
        mant_bits = 10;
        emin = -14;
        break;
    case NGL_DTYPE_BF16:
        mant_bits = 7;
        emin = -126;
        break;
    default:
        mant_bits = 52;
        emin = -1022;
        break;
    }
    int e;
    if (v == 0.0 || !isfinite(v)) {
        e = emin;
    } else {
        (void)frexp(fabs(v), &e);
        e -= 1; /* |v| in [2^e, 2^(e+1)) */
        if (e < emin) {
            e = emin;
        }
    }
    return ldexp(1.0, e - mant_bits);
}

uint64_t tu_fnv(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ---- encoder/decoder pair -------------------------------------------- */
void tu_pair_open(tu_pair *p, const ngl_stream_config *cfg)
{
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
    assert_int_equal(ngl_encoder_create(cfg, &p->enc), NGL_OK);
    assert_int_equal(ngl_decoder_create(cfg, &p->dec), NGL_OK);
    p->cap = ngl_encode_bound(cfg);
    assert_true(p->cap >= NGL_FRAME_HEADER_SIZE);
    p->frame = malloc(p->cap);
    assert_non_null(p->frame);
}

void tu_pair_close(tu_pair *p)
{
    ngl_encoder_destroy(p->enc);
    ngl_decoder_destroy(p->dec);
    free(p->frame);
    memset(p, 0, sizeof *p);
}

void tu_pair_step(tu_pair *p, const void *src, void *dst)
{
    const uint64_t step = ngl_encoder_step(p->enc);
    assert_true(ngl_decoder_step(p->dec) == step);
    p->len = 0;
    assert_int_equal(ngl_encoder_encode(p->enc, src, p->frame, p->cap, &p->len), NGL_OK);
    assert_true(p->len >= NGL_FRAME_HEADER_SIZE && p->len <= p->cap);
    ngl_status st = ngl_decoder_decode(p->dec, p->frame, p->len, dst, 0);
    if (st != NGL_OK) {
        fail_msg("decode of a fresh frame failed: %s (step %llu)", ngl_status_str(st),
                 (unsigned long long)step);
    }
    assert_true(ngl_encoder_step(p->enc) == step + 1);
    assert_true(ngl_decoder_step(p->dec) == step + 1);
    if (ngl_encoder_state_hash(p->enc) != ngl_decoder_state_hash(p->dec)) {
        fail_msg("encoder/decoder state hashes differ after step %llu", (unsigned long long)step);
    }
}

/* ---- frame sections -------------------------------------------------- */
static int bit_get(const uint8_t *bits, uint64_t i)
{
    return (bits[i >> 3] >> (i & 7u)) & 1u;
}

void tu_frame_parse_quant(const uint8_t *frame, size_t len, tu_frame *f)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(ngl_frame_inspect(frame, len, 1, &f->fi), NGL_OK);
    assert_true(f->fi.codec == NGL_CODEC_INT8 || f->fi.codec == NGL_CODEC_INT4);
    assert_int_equal((f->fi.flags >> 3) & 3u, 0); /* no back end */
    const int int4 = f->fi.codec == NGL_CODEC_INT4;
    const uint64_t n = f->fi.count, B = f->fi.block_size;
    const uint64_t nb = (n + B - 1) / B;
    const size_t ds = ngl_dtype_size(f->fi.dtype);
    f->body = frame + NGL_FRAME_HEADER_SIZE;
    f->body_len = f->fi.payload_len;
    const uint8_t *b = f->body;
    assert_true(f->body_len >= 8);
    f->n_exc = ngl_rd_u32(b);
    f->exc_size = 4 + ds;
    size_t off = 8;
    const int topk = (f->fi.flags & 2u) != 0;
    if (topk) {
        assert_true(f->body_len >= off + 12);
        f->k = ngl_rd_u32(b + off);
        f->idx_bytes = ngl_rd_u32(b + off + 4);
        f->idx_fmt = b[off + 8];
        assert_int_equal(b[off + 9] | b[off + 10] | b[off + 11], 0);
        off += 12;
    }
    uint64_t coded = n, nsent = nb;
    if (f->fi.flags & 4u) {
        f->mask = b + off;
        off += (size_t)((nb + 7) / 8);
        assert_true(off <= f->body_len);
        for (uint64_t blk = 0; blk < nb; blk++) {
            if (bit_get(f->mask, blk)) {
                nsent--;
                coded -= (blk + 1) * B <= n ? B : n - blk * B;
            }
        }
    }
    if (topk) {
        f->idx = b + off;
        off += f->idx_bytes;
        coded = f->k;
        nsent = (f->k + B - 1) / B;
    }
    f->scales = b + off;
    f->nscales = nsent;
    off += 4 * (size_t)nsent;
    f->codes = b + off;
    f->ncoded = coded;
    off += (size_t)(int4 ? (coded + 1) / 2 : coded);
    f->exc = b + off;
    off += (size_t)f->n_exc * f->exc_size;
    if (off != f->body_len) {
        fail_msg("frame sections add up to %zu bytes, body has %zu", off, f->body_len);
    }
}

void tu_frame_topk_indices(const tu_frame *f, uint64_t count, uint32_t *out)
{
    uint64_t got = 0;
    if (f->idx_fmt == 0) {
        assert_int_equal(f->idx_bytes, (count + 7) / 8);
        for (uint64_t i = 0; i < count; i++) {
            if (bit_get(f->idx, i)) {
                assert_true(got < f->k);
                out[got++] = (uint32_t)i;
            }
        }
        for (uint64_t i = count; i < 8ull * f->idx_bytes; i++) {
            assert_int_equal(bit_get(f->idx, i), 0);
        }
    } else {
        assert_int_equal(f->idx_fmt, 1);
        size_t pos = 0;
        uint64_t prev = 0;
        for (got = 0; got < f->k; got++) {
            uint64_t v = 0;
            unsigned sh = 0;
            for (;;) {
                assert_true(pos < f->idx_bytes && sh < 35);
                uint8_t byte = f->idx[pos++];
                v |= (uint64_t)(byte & 0x7fu) << sh;
                sh += 7;
                if (!(byte & 0x80u)) {
                    break;
                }
            }
            uint64_t i = got == 0 ? v : prev + 1 + v;
            assert_true(i < count);
            out[got] = (uint32_t)i;
            prev = i;
        }
        assert_int_equal(pos, f->idx_bytes);
    }
    assert_int_equal(got, f->k);
    for (uint64_t e = 1; e < got; e++) {
        assert_true(out[e] > out[e - 1]);
    }
}

/* ---- spec model ------------------------------------------------------ */
unsigned tu_mask_skip_count(double fraction)
{
    if (!(fraction > 0.0)) {
        return 0;
    }
    /* docs/wire-format.md section 5: round(16 f), at most 15 so that every
     * block is sent within NGL_MASK_PERIOD steps. */
    long s = lround(fraction * NGL_MASK_PERIOD);
    return (unsigned)(s > (long)NGL_MASK_PERIOD - 1 ? (long)NGL_MASK_PERIOD - 1 : s);
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    assert_non_null(p);
    return p;
}

void tu_model_init(tu_model *m, const ngl_stream_config *cfg)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->n = cfg->count;
    m->B = cfg->block_size;
    m->nb = (uint32_t)((m->n + m->B - 1) / m->B);
    m->qmax = cfg->codec == NGL_CODEC_INT4 ? 7 : 127;
    const size_t n = (size_t)m->n;
    m->st1 = xcalloc(n, sizeof(float));
    m->st2 = xcalloc(n, sizeof(float));
    m->gate = xcalloc(m->nb, 1);
    if (cfg->error_feedback) {
        m->ef = xcalloc(n, sizeof(float));
    }
    m->x = xcalloc(n, sizeof(float));
    m->t = xcalloc(n, sizeof(float));
    m->p = xcalloc(n, sizeof(float));
    m->praw = xcalloc(n, sizeof(float));
    m->r = xcalloc(n, sizeof(float));
    m->xhat = xcalloc(n, sizeof(float));
    m->is_exc = xcalloc(n, 1);
    m->is_sel = xcalloc(n, 1);
    m->idx = xcalloc(n, sizeof(uint32_t));
}

void tu_model_fini(tu_model *m)
{
    free(m->st1);
    free(m->st2);
    free(m->gate);
    free(m->ef);
    free(m->x);
    free(m->t);
    free(m->p);
    free(m->praw);
    free(m->r);
    free(m->xhat);
    free(m->is_exc);
    free(m->is_sel);
    free(m->idx);
    memset(m, 0, sizeof *m);
}

static int f32_finite(float f)
{
    return ngl_f32_finite(f);
}

static float model_x(const void *src, ngl_dtype dt, size_t i)
{
    const uint8_t *b = (const uint8_t *)src;
    if (dt == NGL_DTYPE_F32) {
        float f;
        memcpy(&f, b + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, b + 2 * i, 2);
    return dt == NGL_DTYPE_F16 ? ngl_f16_to_f32(h) : ngl_bf16_to_f32(h);
}

static int32_t frame_code(const tu_frame *f, uint64_t pos, int int4)
{
    if (!int4) {
        return (int8_t)f->codes[pos];
    }
    uint8_t byte = f->codes[pos >> 1];
    int32_t nib = (pos & 1u) ? (byte >> 4) : (byte & 0xf);
    return nib >= 8 ? nib - 16 : nib;
}

/* Scale of a group from its largest |r|: section 5. */
static float model_scale(float maxabs, int qmax)
{
    if (maxabs < 0x1p-100f) {
        return 0.0f;
    }
    return maxabs / (float)qmax;
}

/* The spec's code for residual r (section 5): q = clamp(floor(r*inv + u)),
 * u from the counter-based noise of (seed, stream, step, element). */
static int32_t model_expected_code(const tu_model *m, uint64_t i, float maxabs)
{
    float inv = 0.0f;
    if (maxabs >= 0x1p-100f) {
        inv = (float)m->qmax / maxabs;
    }
    const ngl_rng_key key = ngl_rng_key_make(m->cfg.seed, m->cfg.stream_id, m->step);
    const float u = (float)(ngl_rng_hash(key, (uint32_t)i) >> 8) * 0x1p-24f;
    const float v = m->r[i] * inv;
    const float w = v + u;
    float q = floorf(w);
    q = q > (float)m->qmax ? (float)m->qmax : q;
    q = q < (float)-m->qmax ? (float)-m->qmax : q;
    return (int32_t)q;
}

/* Check the code of coded element i and reconstruct it. An element that is
 * an exception (non-finite x or r, or a reconstruction that would overflow)
 * must have code 0. */
static void model_code(tu_model *m, uint64_t i, int32_t q, float scale, float maxabs)
{
    if (q < -m->qmax || q > m->qmax) {
        fail_msg("element %llu: code %d outside [-%d, %d]", (unsigned long long)i, q, m->qmax,
                 m->qmax);
    }
    if (m->is_exc[i]) {
        if (q != 0) {
            fail_msg("exception element %llu has code %d", (unsigned long long)i, q);
        }
        return;
    }
    const int32_t want = model_expected_code(m, i, maxabs);
    const float xh = m->p[i] + (float)want * scale;
    if (!f32_finite(xh)) {
        /* the reconstruction overflows: the element goes out exactly */
        m->is_exc[i] = 1;
        if (q != 0) {
            fail_msg("element %llu: reconstruction overflows, code must be 0, is %d",
                     (unsigned long long)i, q);
        }
        return;
    }
    if (q != want) {
        fail_msg("step %llu element %llu: code %d, the spec's stochastic rounding gives %d "
                 "(r %a, max|r| %a)",
                 (unsigned long long)m->step, (unsigned long long)i, q, want, (double)m->r[i],
                 (double)maxabs);
    }
    /* Stochastic rounding moves r*inv by less than one level: the coded
     * value is within one step (the scale) of the residual, up to the
     * rounding of r*inv and q*scale. A block below 2^-100 goes out with
     * scale 0: its error is |r|. */
    const double err = fabs((double)((float)q * scale) - (double)m->r[i]);
    const double tol = scale > 0.0f ? (double)scale * (1.0 + 0x1p-15) : 0x1p-100;
    if (err > tol) {
        fail_msg("element %llu: |q*scale - r| = %.9g exceeds the step %.9g (q %d, r %.9g)",
                 (unsigned long long)i, err, (double)scale, q, (double)m->r[i]);
    }
    if (scale > 0.0f && err / (double)scale > m->last_max_err_ratio) {
        m->last_max_err_ratio = err / (double)scale;
    }
    m->xhat[i] = xh;
}

static void model_check_topk(tu_model *m, const tu_frame *f, const uint8_t *skip)
{
    const uint64_t n = m->n;
    uint64_t eligible = 0;
    for (uint64_t i = 0; i < n; i++) {
        eligible += !m->is_exc[i] && !(skip && bit_get(skip, i / m->B));
    }
    uint64_t kmax = 0;
    if (n > 0) {
        double kd = ceil(m->cfg.topk_fraction * (double)n);
        kmax = kd > (double)n ? n : (uint64_t)kd;
    }
    const uint64_t k = kmax < eligible ? kmax : eligible;
    if (f->k != k) {
        fail_msg("Top-K frame selects %u elements, expected %llu (eligible %llu)", f->k,
                 (unsigned long long)k, (unsigned long long)eligible);
    }
    tu_frame_topk_indices(f, n, m->idx);
    memset(m->is_sel, 0, (size_t)n);
    size_t varint_bytes = 0;
    for (uint64_t e = 0; e < k; e++) {
        uint32_t i = m->idx[e];
        assert_false(m->is_exc[i]);
        assert_false(skip && bit_get(skip, i / m->B));
        m->is_sel[i] = 1;
        uint64_t v = e == 0 ? i : (uint64_t)i - m->idx[e - 1] - 1;
        do {
            varint_bytes++;
            v >>= 7;
        } while (v);
    }
    const size_t bitmap_bytes = (size_t)((n + 7) / 8);
    const unsigned want_fmt = varint_bytes < bitmap_bytes ? 1u : 0u;
    if (f->idx_fmt != want_fmt) {
        fail_msg("Top-K index format %u, expected %u (varint %zu B, bitmap %zu B)", f->idx_fmt,
                 want_fmt, varint_bytes, bitmap_bytes);
    }
    /* The k largest |r| with ties to the lowest index: every unselected
     * eligible key is <= the smallest selected key T, and among keys equal
     * to T the selected ones come first in index order. */
    if (k > 0) {
        uint32_t T = UINT32_MAX;
        for (uint64_t e = 0; e < k; e++) {
            uint32_t key = (ngl_f32_bits(m->r[m->idx[e]]) & 0x7fffffffu) + 1u;
            if (key < T) {
                T = key;
            }
        }
        uint64_t last_sel_T = 0;
        for (uint64_t e = 0; e < k; e++) {
            uint32_t key = (ngl_f32_bits(m->r[m->idx[e]]) & 0x7fffffffu) + 1u;
            if (key == T) {
                last_sel_T = m->idx[e];
            }
        }
        for (uint64_t i = 0; i < n; i++) {
            if (m->is_sel[i] || m->is_exc[i] || (skip && bit_get(skip, i / m->B))) {
                continue;
            }
            uint32_t key = (ngl_f32_bits(m->r[i]) & 0x7fffffffu) + 1u;
            if (key > T || (key == T && i < last_sel_T)) {
                fail_msg("Top-K left out element %llu (|r| %.9g) but selected a smaller or "
                         "later-tied one",
                         (unsigned long long)i, (double)ngl_absf(m->r[i]));
            }
        }
    }
    /* groups of B selected elements share a scale */
    const int int4 = m->cfg.codec == NGL_CODEC_INT4;
    for (uint64_t g = 0; g * m->B < k; g++) {
        const uint64_t lo = g * m->B, hi = lo + m->B < k ? lo + m->B : k;
        float maxabs = 0.0f;
        for (uint64_t e = lo; e < hi; e++) {
            float a = ngl_absf(m->r[m->idx[e]]);
            if (a > maxabs) {
                maxabs = a;
            }
        }
        const float scale = ngl_bits_f32(ngl_rd_u32(f->scales + 4 * g));
        const float want = model_scale(maxabs, m->qmax);
        if (ngl_f32_bits(scale) != ngl_f32_bits(want)) {
            fail_msg("Top-K group %llu: scale %a, expected %a", (unsigned long long)g,
                     (double)scale, (double)want);
        }
        for (uint64_t e = lo; e < hi; e++) {
            model_code(m, m->idx[e], frame_code(f, e, int4), scale, maxabs);
        }
    }
}

static void model_check_dense(tu_model *m, const tu_frame *f, const uint8_t *skip)
{
    const int int4 = m->cfg.codec == NGL_CODEC_INT4;
    uint64_t sent = 0, pos = 0;
    for (uint32_t b = 0; b < m->nb; b++) {
        const uint64_t lo = (uint64_t)b * m->B, hi = lo + m->B < m->n ? lo + m->B : m->n;
        if (skip && bit_get(skip, b)) {
            continue;
        }
        float maxabs = 0.0f;
        for (uint64_t i = lo; i < hi; i++) {
            if (!m->is_exc[i] && ngl_absf(m->r[i]) > maxabs) {
                maxabs = ngl_absf(m->r[i]);
            }
        }
        assert_true(sent < f->nscales);
        const float scale = ngl_bits_f32(ngl_rd_u32(f->scales + 4 * sent));
        const float want = model_scale(maxabs, m->qmax);
        if (ngl_f32_bits(scale) != ngl_f32_bits(want)) {
            fail_msg("block %u: scale %a, expected %a (max |r| %a)", b, (double)scale, (double)want,
                     (double)maxabs);
        }
        for (uint64_t i = lo; i < hi; i++, pos++) {
            model_code(m, i, frame_code(f, pos, int4), scale, maxabs);
        }
        sent++;
    }
    assert_int_equal(sent, f->nscales);
    assert_int_equal(pos, f->ncoded);
}

void tu_model_step(tu_model *m, const void *src, const uint8_t *frame, size_t len,
                   const void *dec_out)
{
    const ngl_dtype dt = m->cfg.dtype;
    const size_t ds = ngl_dtype_size(dt);
    const uint64_t n = m->n;
    tu_frame f;
    tu_frame_parse_quant(frame, len, &f);

    /* header */
    assert_int_equal(f.fi.codec, m->cfg.codec);
    assert_int_equal(f.fi.dtype, dt);
    assert_int_equal(f.fi.predictor, m->cfg.predictor);
    assert_int_equal(f.fi.block_size, m->B);
    assert_true(f.fi.stream_id == m->cfg.stream_id);
    assert_true(f.fi.step == m->step);
    assert_true(f.fi.count == n);
    assert_int_equal((f.fi.flags & 1u) != 0, m->cfg.error_feedback != 0);
    assert_int_equal((f.fi.flags & 2u) != 0, m->cfg.topk_fraction > 0.0);
    const uint32_t want_param =
        m->cfg.predictor == NGL_PRED_MOMENTUM ? ngl_f32_bits(m->cfg.momentum_beta) : 0u;
    assert_int_equal(ngl_rd_u32(f.body + 4), want_param);

    /* inputs and error-feedback targets */
    for (uint64_t i = 0; i < n; i++) {
        const float x = model_x(src, dt, (size_t)i);
        float t = x;
        if (m->ef) {
            const float tt = x + m->ef[i];
            if (f32_finite(tt)) {
                t = tt;
            }
        }
        m->x[i] = x;
        m->t[i] = t;
    }

    /* the mask this step must carry */
    uint8_t *want_mask = xcalloc(m->nb / 8 + 1, 1);
    int any_skip = 0;
    if (m->expect_mask) {
        for (uint32_t b = 0; b < m->nb; b++) {
            if (bit_get(m->expect_mask, b)) {
                want_mask[b >> 3] = (uint8_t)(want_mask[b >> 3] | (1u << (b & 7u)));
                any_skip = 1;
            }
        }
    } else {
        const unsigned skip = tu_mask_skip_count(m->cfg.mask_fraction);
        for (uint32_t b = 0; b < m->nb; b++) {
            if ((b + m->step) % NGL_MASK_PERIOD < skip) {
                want_mask[b >> 3] = (uint8_t)(want_mask[b >> 3] | (1u << (b & 7u)));
                any_skip = 1;
            }
        }
    }
    if (any_skip) {
        assert_non_null(f.mask);
        assert_memory_equal(f.mask, want_mask, (m->nb + 7) / 8);
    } else {
        assert_null(f.mask);
    }
    const uint8_t *skip = any_skip ? want_mask : NULL;
    m->last_skipped_blocks = 0;
    for (uint32_t b = 0; skip && b < m->nb; b++) {
        m->last_skipped_blocks += bit_get(skip, b);
    }

    /* predictions and residuals */
    for (uint32_t b = 0; b < m->nb; b++) {
        const uint64_t lo = (uint64_t)b * m->B, hi = lo + m->B < n ? lo + m->B : n;
        const int use = m->cfg.predictor != NGL_PRED_NONE && m->gate[b];
        for (uint64_t i = lo; i < hi; i++) {
            float praw = 0.0f;
            if (m->cfg.predictor == NGL_PRED_MOMENTUM) {
                praw = m->st1[i];
            } else if (m->cfg.predictor == NGL_PRED_LINEAR) {
                if (m->hist >= 2) {
                    const float twice = 2.0f * m->st1[i];
                    praw = twice - m->st2[i];
                } else if (m->hist == 1) {
                    praw = m->st1[i];
                }
            }
            m->praw[i] = praw;
            m->p[i] = use ? praw : 0.0f;
            m->r[i] = m->t[i] - m->p[i];
            m->is_exc[i] = !f32_finite(m->x[i]) || !f32_finite(m->r[i]);
            m->xhat[i] = m->p[i]; /* skipped / unselected; overwritten below */
        }
    }

    m->last_max_err_ratio = 0.0;
    if (m->cfg.topk_fraction > 0.0) {
        model_check_topk(m, &f, skip);
    } else {
        model_check_dense(m, &f, skip);
    }
    /* an element that is not coded reconstructs to p: if that is not
     * finite while x is, it is sent exactly as well */
    for (uint64_t i = 0; i < n; i++) {
        if (!m->is_exc[i] && !f32_finite(m->xhat[i])) {
            m->is_exc[i] = 1;
        }
        if (m->is_exc[i]) {
            m->xhat[i] = m->x[i];
        }
    }

    /* exceptions: exactly the elements above, carrying x's bits */
    {
        uint64_t e = 0;
        for (uint64_t i = 0; i < n; i++) {
            if (!m->is_exc[i]) {
                continue;
            }
            if (e >= f.n_exc) {
                fail_msg("element %llu must be an exception; the frame has %u",
                         (unsigned long long)i, f.n_exc);
            }
            const uint8_t *ent = f.exc + e * f.exc_size;
            if (ngl_rd_u32(ent) != i) {
                fail_msg("exception %llu is element %u, expected %llu", (unsigned long long)e,
                         ngl_rd_u32(ent), (unsigned long long)i);
            }
            uint64_t bits = ds == 2 ? (uint64_t)(ent[4] | (ent[5] << 8)) : ngl_rd_u32(ent + 4);
            assert_true(bits == tu_elem_bits(src, dt, (size_t)i));
            e++;
        }
        assert_int_equal(e, f.n_exc);
        m->last_exc = e;
    }

    /* the decoder's output, bit for bit */
    for (uint64_t i = 0; i < n; i++) {
        uint64_t want;
        if (m->is_exc[i]) {
            want = tu_elem_bits(src, dt, (size_t)i);
        } else if (dt == NGL_DTYPE_F32) {
            want = ngl_f32_bits(m->xhat[i]);
        } else if (dt == NGL_DTYPE_F16) {
            want = ngl_f32_to_f16_sat(m->xhat[i]);
        } else {
            want = ngl_f32_to_bf16_sat(m->xhat[i]);
        }
        const uint64_t got = tu_elem_bits(dec_out, dt, (size_t)i);
        if (got != want) {
            fail_msg("step %llu element %llu: decoded bits %#llx, spec says %#llx (x %.9g)",
                     (unsigned long long)m->step, (unsigned long long)i, (unsigned long long)got,
                     (unsigned long long)want, (double)m->x[i]);
        }
    }

    /* error feedback (section 5): e <- t - xhat, 0 where x is not finite */
    if (m->ef) {
        for (uint64_t i = 0; i < n; i++) {
            m->ef[i] = f32_finite(m->x[i]) ? m->t[i] - m->xhat[i] : 0.0f;
        }
    }

    /* closed-loop state (section 4) */
    const float beta = m->cfg.momentum_beta, omb = 1.0f - m->cfg.momentum_beta;
    for (uint32_t b = 0; b < m->nb; b++) {
        const uint64_t lo = (uint64_t)b * m->B, hi = lo + m->B < n ? lo + m->B : n;
        float a = 0.0f, c = 0.0f;
        for (uint64_t i = lo; i < hi; i++) {
            const float xh = m->xhat[i];
            if (!f32_finite(xh)) {
                continue;
            }
            const float d = ngl_absf(xh - m->praw[i]);
            if (d > a) {
                a = d;
            }
            if (ngl_absf(xh) > c) {
                c = ngl_absf(xh);
            }
            if (m->cfg.predictor == NGL_PRED_MOMENTUM) {
                const float u = beta * m->st1[i];
                const float v = omb * xh;
                const float nm = u + v;
                if (f32_finite(nm)) {
                    m->st1[i] = nm;
                }
            } else if (m->cfg.predictor == NGL_PRED_LINEAR) {
                m->st2[i] = m->st1[i];
                m->st1[i] = xh;
            }
        }
        m->gate[b] = (uint8_t)(a < c);
    }
    if (m->hist < 2) {
        m->hist++;
    }
    m->step++;
    m->expect_mask = NULL;
    free(want_mask);
}

/* ---- signals --------------------------------------------------------- */
void tu_fill_signal(void *buf, ngl_dtype dt, size_t n, uint64_t seed, uint64_t step, float amp)
{
    tu_rng base, noise;
    tu_rng_seed(&base, seed);
    tu_rng_seed(&noise, seed ^ (0x9e3779b97f4a7c15ull * (step + 1)));
    for (size_t i = 0; i < n; i++) {
        /* base level and drift per element, small noise per step: the
         * predictors have something to predict and the quantizer noise to
         * fight. */
        const float lvl = tu_rng_float(&base, -0.8f, 0.8f);
        const float drift = tu_rng_float(&base, -0.01f, 0.01f);
        const float nz = tu_rng_float(&noise, -0.05f, 0.05f);
        const float v = lvl + drift * (float)step;
        const float x = (v + nz) * amp;
        tu_elem_set(buf, dt, i, (double)x);
    }
}
