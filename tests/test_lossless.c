/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_lossless.c -- the lossless back ends (RLE always, zstd when built).
 *
 * Through frames: a stream with a back end decodes to exactly what the same
 * stream without one decodes, its body (after the back end) is byte for
 * byte the plain stream's payload, zero-heavy bodies shrink, incompressible
 * ones go out without a back end (flag 0), and NGL_LOSSLESS_AUTO picks zstd
 * when built, else RLE. Directly: RLE round trips at the zero-run threshold
 * and edge lengths, and malformed back-end data is rejected.
 */
#include "ngl_testutil.h"

#include "ngl_wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ll_zstd_built(void)
{
    return ngl_backend_available(NGL_LOSSLESS_ZSTD);
}

typedef enum { LL_ZEROS, LL_SPARSE, LL_NOISE, LL_SIGNAL } ll_input;

static void ll_fill(void *x, ngl_dtype dt, uint64_t n, ll_input kind, uint64_t step)
{
    tu_rng rng;
    tu_rng_seed(&rng, 0x11 + step);
    for (uint64_t i = 0; i < n; i++) {
        switch (kind) {
        case LL_ZEROS: tu_elem_set(x, dt, (size_t)i, 0.0); break;
        case LL_SPARSE:
            tu_elem_set(x, dt, (size_t)i,
                        tu_rng_below(&rng, 50) == 0 ? tu_rng_float(&rng, -1.0f, 1.0f) : 0.0);
            break;
        case LL_NOISE: {
            /* random finite bit patterns: incompressible */
            do {
                tu_elem_set_bits(x, dt, (size_t)i, tu_rng_u64(&rng));
            } while (!tu_elem_finite(x, dt, (size_t)i));
            break;
        }
        case LL_SIGNAL: tu_elem_set(x, dt, (size_t)i, tu_rng_float(&rng, -1.0f, 1.0f)); break;
        }
    }
}

typedef struct ll_stats {
    uint64_t frames, with_backend, bytes_plain, bytes_packed;
} ll_stats;

/* Run the same inputs through a plain stream and one with @p lossless. */
static ll_stats ll_compare(ngl_stream_config c, ngl_lossless lossless, ll_input kind)
{
    ngl_stream_config cp = c;
    cp.lossless = NGL_LOSSLESS_NONE;
    c.lossless = lossless;
    tu_pair plain, packed;
    tu_pair_open(&plain, &cp);
    tu_pair_open(&packed, &c);
    assert_true(packed.cap == plain.cap + 4); /* the u32 body_len prefix */
    const size_t bytes = (size_t)c.count * ngl_dtype_size(c.dtype);
    uint8_t *x = malloc(bytes + 1), *y1 = malloc(bytes + 1), *y2 = malloc(bytes + 1);
    uint8_t *body = malloc(plain.cap + 1);
    assert_true(x && y1 && y2 && body);
    ngl_backend_ctx ctx;
    assert_int_equal(ngl_backend_ctx_init(&ctx, ll_zstd_built()), NGL_OK);
    const unsigned want_backend =
        lossless == NGL_LOSSLESS_AUTO ? (ll_zstd_built() ? 2u : 1u) : (unsigned)lossless;
    ll_stats st = {0, 0, 0, 0};
    for (uint64_t step = 0; step < 4; step++) {
        ll_fill(x, c.dtype, c.count, kind, step);
        tu_pair_step(&plain, x, y1);
        tu_pair_step(&packed, x, y2);
        if (bytes) {
            assert_memory_equal(y1, y2, bytes);
        }
        assert_true(ngl_encoder_state_hash(plain.enc) == ngl_encoder_state_hash(packed.enc));
        ngl_frame_info fp, fk;
        assert_int_equal(ngl_frame_inspect(plain.frame, plain.len, 1, &fp), NGL_OK);
        assert_int_equal(ngl_frame_inspect(packed.frame, packed.len, 1, &fk), NGL_OK);
        const unsigned backend = (fk.flags >> 3) & 3u;
        assert_int_equal((fp.flags >> 3) & 3u, 0);
        assert_int_equal(fk.flags & 7u, fp.flags & 7u);
        const uint8_t *payload = packed.frame + NGL_FRAME_HEADER_SIZE;
        if (backend == 0) {
            /* not worth it: the payload is the plain body */
            assert_int_equal(fk.payload_len, fp.payload_len);
            assert_memory_equal(payload, plain.frame + NGL_FRAME_HEADER_SIZE, fp.payload_len);
        } else {
            assert_int_equal(backend, want_backend);
            assert_int_equal(ngl_rd_u32(payload), fp.payload_len);
            assert_true(fk.payload_len < fp.payload_len); /* kept only when it saves */
            assert_int_equal(ngl_backend_decompress(&ctx, backend, payload + 4, fk.payload_len - 4,
                                                    body, fp.payload_len),
                             NGL_OK);
            assert_memory_equal(body, plain.frame + NGL_FRAME_HEADER_SIZE, fp.payload_len);
            st.with_backend++;
        }
        st.frames++;
        st.bytes_plain += plain.len;
        st.bytes_packed += packed.len;
    }
    ngl_backend_ctx_fini(&ctx);
    tu_pair_close(&plain);
    tu_pair_close(&packed);
    free(x);
    free(y1);
    free(y2);
    free(body);
    return st;
}

static void ll_config(ngl_stream_config *c, ngl_codec codec, ngl_dtype dt, uint64_t n)
{
    ngl_stream_config_init(c);
    c->codec = codec;
    c->dtype = dt;
    c->count = n;
    c->block_size = 64;
    c->eps = 1e-3;
}

static void test_lossless_frames_round_trip(void **state)
{
    (void)state;
    const ngl_lossless backends[] = {NGL_LOSSLESS_RLE, NGL_LOSSLESS_ZSTD, NGL_LOSSLESS_AUTO};
    static const struct {
        ngl_codec codec;
        ngl_dtype dt;
        double topk;
    } codecs[] = {
        {NGL_CODEC_RAW, NGL_DTYPE_F32, 0.0},  {NGL_CODEC_RAW, NGL_DTYPE_F64, 0.0},
        {NGL_CODEC_INT8, NGL_DTYPE_F32, 0.0}, {NGL_CODEC_INT4, NGL_DTYPE_BF16, 0.0},
        {NGL_CODEC_INT8, NGL_DTYPE_F16, 0.1}, {NGL_CODEC_EPS, NGL_DTYPE_F32, 0.0},
        {NGL_CODEC_EPS, NGL_DTYPE_F64, 0.0},
    };
    const uint64_t counts[] = {0, 1, 7, 1000, 20011};
    for (size_t b = 0; b < 3; b++) {
        if (backends[b] == NGL_LOSSLESS_ZSTD && !ll_zstd_built()) {
            continue;
        }
        for (size_t k = 0; k < sizeof codecs / sizeof codecs[0]; k++) {
            for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
                for (int kind = LL_ZEROS; kind <= LL_SIGNAL; kind++) {
                    ngl_stream_config c;
                    ll_config(&c, codecs[k].codec, codecs[k].dt, counts[ci]);
                    c.topk_fraction = codecs[k].topk;
                    const ll_stats st = ll_compare(c, backends[b], (ll_input)kind);
                    if (counts[ci] >= 1000 && kind == LL_ZEROS) {
                        /* an all-zero body must shrink a lot (payloads) */
                        assert_int_equal(st.with_backend, st.frames);
                        const uint64_t hdr = NGL_FRAME_HEADER_SIZE * st.frames;
                        assert_true((st.bytes_packed - hdr) * 4 < st.bytes_plain - hdr);
                    }
                    if (counts[ci] >= 1000 && kind == LL_NOISE &&
                        codecs[k].codec == NGL_CODEC_RAW) {
                        assert_int_equal(st.with_backend, 0); /* incompressible */
                    }
                }
            }
        }
    }
}

static void test_lossless_auto_choice(void **state)
{
    (void)state;
    ngl_stream_config c;
    ll_config(&c, NGL_CODEC_RAW, NGL_DTYPE_F32, 4096);
    const ll_stats st = ll_compare(c, NGL_LOSSLESS_AUTO, LL_SPARSE);
    assert_int_equal(st.with_backend, st.frames); /* checked: zstd if built, else RLE */
    /* NGL_LOSSLESS_ZSTD without zstd is a config error */
    c.lossless = NGL_LOSSLESS_ZSTD;
    const char *why = NULL;
    assert_int_equal(ngl_stream_config_check(&c, &why),
                     ll_zstd_built() ? NGL_OK : NGL_ERR_UNSUPPORTED);
}

/* ---- RLE directly -------------------------------------------------------- */

static void ll_rle_roundtrip(const uint8_t *src, size_t len, size_t *packed_len)
{
    ngl_backend_ctx ctx;
    assert_int_equal(ngl_backend_ctx_init(&ctx, 0), NGL_OK);
    const size_t cap = 2 * len + 64;
    uint8_t *dst = malloc(cap), *back = malloc(len + 1);
    assert_true(dst && back);
    const size_t c = ngl_backend_compress(&ctx, NGL_LOSSLESS_RLE, src, len, dst, cap);
    assert_true(c > 0 || len == 0);
    memset(back, 0xee, len + 1);
    assert_int_equal(ngl_backend_decompress(&ctx, NGL_LOSSLESS_RLE, dst, c, back, len), NGL_OK);
    if (len) {
        assert_memory_equal(back, src, len);
    }
    /* the wrong expected length is rejected */
    if (len > 0) {
        assert_int_equal(ngl_backend_decompress(&ctx, NGL_LOSSLESS_RLE, dst, c, back, len - 1),
                         NGL_ERR_BAD_BACKEND);
    }
    assert_int_equal(ngl_backend_decompress(&ctx, NGL_LOSSLESS_RLE, dst, c, back, len + 1),
                     NGL_ERR_BAD_BACKEND);
    /* every truncation of the encoding is rejected */
    for (size_t t = 0; t < c; t++) {
        assert_int_not_equal(ngl_backend_decompress(&ctx, NGL_LOSSLESS_RLE, dst, t, back, len),
                             NGL_OK);
    }
    /* too small an output buffer: compress says so with 0 */
    if (c > 1) {
        assert_int_equal(ngl_backend_compress(&ctx, NGL_LOSSLESS_RLE, src, len, dst, c - 1), 0);
    }
    *packed_len = c;
    free(dst);
    free(back);
    ngl_backend_ctx_fini(&ctx);
}

static void test_lossless_rle_patterns(void **state)
{
    (void)state;
    uint8_t buf[1200];
    size_t c;
    /* all zeros: a couple of bytes whatever the length */
    for (size_t len = 1; len <= 1200; len += (len < 40 ? 1 : 97)) {
        memset(buf, 0, len);
        ll_rle_roundtrip(buf, len, &c);
        assert_true(c <= 4);
    }
    /* no zeros: literal runs */
    for (size_t len = 1; len <= 300; len += 7) {
        memset(buf, 0x5a, len);
        ll_rle_roundtrip(buf, len, &c);
        assert_true(c <= len + 4);
    }
    /* zero runs of every length around the threshold, at every position */
    for (size_t run = 1; run <= 9; run++) {
        for (size_t pos = 0; pos < 12; pos++) {
            memset(buf, 0x77, 40);
            memset(buf + pos, 0, run);
            ll_rle_roundtrip(buf, 40, &c);
            ll_rle_roundtrip(buf, pos + run, &c); /* ending in the run */
        }
    }
    /* random sparse data of random lengths */
    tu_rng rng;
    tu_rng_seed(&rng, 77);
    for (int k = 0; k < 200; k++) {
        const size_t len = tu_rng_below(&rng, sizeof buf);
        const uint32_t density = 1 + tu_rng_below(&rng, 8);
        for (size_t i = 0; i < len; i++) {
            buf[i] = tu_rng_below(&rng, 8) < density ? 0 : (uint8_t)tu_rng_u64(&rng);
        }
        ll_rle_roundtrip(buf, len, &c);
    }
}

static void test_lossless_rle_rejects_malformed(void **state)
{
    (void)state;
    ngl_backend_ctx ctx;
    assert_int_equal(ngl_backend_ctx_init(&ctx, 0), NGL_OK);
    uint8_t out[64];
    static const struct {
        uint8_t in[8];
        size_t len, out_len;
        const char *what;
    } bad[] = {
        {{0x00, 0x00, 0x02, 0x01}, 4, 3, "a (0, 0) pair before the end"},
        {{0x80, 0x00, 0x02}, 3, 2, "overlong varint"},
        {{0x05, 0x01, 0x02}, 3, 5, "literal run beyond the input"},
        {{0x01, 0x07, 0x10}, 3, 8, "zero run beyond the output"},
        {{0x01, 0x07}, 2, 1, "truncated after the literal"},
        {{0x01, 0x07, 0x03}, 3, 5, "output too short"},
        {{0xff, 0xff, 0xff, 0xff, 0x7f}, 5, 8, "varint beyond 2^32"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        if (ngl_backend_decompress(&ctx, NGL_LOSSLESS_RLE, bad[k].in, bad[k].len, out,
                                   bad[k].out_len) != NGL_ERR_BAD_BACKEND) {
            fail_msg("RLE accepted %s", bad[k].what);
        }
    }
    ngl_backend_ctx_fini(&ctx);
}

static void test_lossless_zstd_rejects_malformed(void **state)
{
    (void)state;
    if (!ll_zstd_built()) {
        skip();
    }
    ngl_backend_ctx ctx;
    assert_int_equal(ngl_backend_ctx_init(&ctx, 1), NGL_OK);
    uint8_t src[3000], packed[4000], out[3001];
    memset(src, 0, sizeof src);
    for (size_t i = 0; i < sizeof src; i += 37) {
        src[i] = (uint8_t)i;
    }
    const size_t c =
        ngl_backend_compress(&ctx, NGL_LOSSLESS_ZSTD, src, sizeof src, packed, sizeof packed);
    assert_true(c > 0 && c < sizeof src);
    assert_int_equal(ngl_backend_decompress(&ctx, NGL_LOSSLESS_ZSTD, packed, c, out, sizeof src),
                     NGL_OK);
    assert_memory_equal(out, src, sizeof src);
    /* wrong declared size, truncations, trailing bytes, flipped bytes */
    assert_int_equal(
        ngl_backend_decompress(&ctx, NGL_LOSSLESS_ZSTD, packed, c, out, sizeof src - 1),
        NGL_ERR_BAD_BACKEND);
    assert_int_equal(
        ngl_backend_decompress(&ctx, NGL_LOSSLESS_ZSTD, packed, c, out, sizeof src + 1),
        NGL_ERR_BAD_BACKEND);
    for (size_t t = 0; t < c; t++) {
        assert_int_equal(
            ngl_backend_decompress(&ctx, NGL_LOSSLESS_ZSTD, packed, t, out, sizeof src),
            NGL_ERR_BAD_BACKEND);
    }
    packed[c] = 0;
    assert_int_equal(
        ngl_backend_decompress(&ctx, NGL_LOSSLESS_ZSTD, packed, c + 1, out, sizeof src),
        NGL_ERR_BAD_BACKEND);
    for (size_t i = 0; i < c; i++) {
        packed[i] ^= 0x10;
        const ngl_status st =
            ngl_backend_decompress(&ctx, NGL_LOSSLESS_ZSTD, packed, c, out, sizeof src);
        /* zstd has no checksum here: a flip may still decode, to other bytes */
        assert_true(st == NGL_OK || st == NGL_ERR_BAD_BACKEND);
        packed[i] ^= 0x10;
    }
    ngl_backend_ctx_fini(&ctx);
}

/* A frame that names a back end this build lacks, or the reserved value 3. */
static void test_lossless_unknown_backend_in_frame(void **state)
{
    (void)state;
    ngl_stream_config c;
    ll_config(&c, NGL_CODEC_RAW, NGL_DTYPE_F32, 500);
    c.lossless = NGL_LOSSLESS_RLE;
    tu_pair p;
    tu_pair_open(&p, &c);
    float *x = calloc(500, sizeof *x), *y = calloc(500, sizeof *y);
    assert_true(x && y);
    size_t len = 0;
    assert_int_equal(ngl_encoder_encode(p.enc, x, p.frame, p.cap, &len), NGL_OK);
    ngl_frame_info fi;
    assert_int_equal(ngl_frame_inspect(p.frame, len, 1, &fi), NGL_OK);
    assert_int_equal((fi.flags >> 3) & 3u, 1);
    for (unsigned backend = 2; backend <= 3; backend++) {
        p.frame[8] = (uint8_t)((p.frame[8] & ~0x18u) | (backend << 3));
        uint32_t crc = ngl_crc32c(0, p.frame, 44);
        crc = ngl_crc32c(crc, p.frame + 48, len - 48);
        ngl_wr_u32(p.frame + 44, crc);
        const ngl_status st = ngl_decoder_decode(p.dec, p.frame, len, y, 0);
        if (backend == 3) {
            assert_int_equal(st, NGL_ERR_BAD_FLAGS);
        } else {
            /* RLE bytes are not a zstd frame; without zstd it is unavailable */
            assert_int_equal(st,
                             ll_zstd_built() ? NGL_ERR_BAD_BACKEND : NGL_ERR_BACKEND_UNAVAILABLE);
        }
    }
    free(x);
    free(y);
    tu_pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lossless_frames_round_trip),
        cmocka_unit_test(test_lossless_auto_choice),
        cmocka_unit_test(test_lossless_rle_patterns),
        cmocka_unit_test(test_lossless_rle_rejects_malformed),
        cmocka_unit_test(test_lossless_zstd_rejects_malformed),
        cmocka_unit_test(test_lossless_unknown_backend_in_frame),
    };
    return cmocka_run_group_tests_name("lossless", tests, NULL, NULL);
}
