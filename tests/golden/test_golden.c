/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_golden -- the library against the committed golden frames.
 *
 *   test_golden GOLDEN_DIR      (tests/golden)
 *
 * valid/: encoding each case's committed input reproduces its committed
 * frames byte for byte, on every kernel variant this CPU has; decoding the
 * frames reproduces the committed output bit for bit.
 * invalid/: each frame is rejected with exactly the manifest's status, with
 * the output and the decoder state untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> /* needs the three above */

#include "golden_util.h"
#include "nangila.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASES_MAX   128
#define INVALID_MAX 512

static const char *golden_dir;
static golden_case valid_cases[CASES_MAX];
static size_t n_valid;
static golden_invalid invalid_frames[INVALID_MAX];
static size_t n_invalid;
static int have_zstd;

static uint8_t *read_rel(size_t *len, const char *fmt, ...)
{
    char rel[256], path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/%s", golden_dir, rel);
    uint8_t *p = golden_read_file(path, len);
    if (p == NULL) {
        fail_msg("cannot read %s", path);
    }
    return p;
}

static int setup_manifests(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = (char *)read_rel(&len, "valid/MANIFEST");
    text[len] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char copy[1024];
        snprintf(copy, sizeof(copy), "%s", line);
        golden_case gc;
        int r = golden_case_parse(copy, &gc);
        if (r < 0 || n_valid == CASES_MAX) {
            fprintf(stderr, "bad valid/MANIFEST line: %s\n", line);
            free(text);
            return -1;
        }
        if (r == 0) {
            valid_cases[n_valid++] = gc;
        }
    }
    free(text);
    text = (char *)read_rel(&len, "invalid/MANIFEST");
    text[len] = '\0';
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char copy[1024];
        snprintf(copy, sizeof(copy), "%s", line);
        golden_invalid gi;
        int r = golden_invalid_parse(copy, &gi);
        if (r < 0 || n_invalid == INVALID_MAX) {
            fprintf(stderr, "bad invalid/MANIFEST line: %s\n", line);
            free(text);
            return -1;
        }
        if (r == 0) {
            invalid_frames[n_invalid++] = gi;
        }
    }
    free(text);
    ngl_stream_config z;
    ngl_stream_config_init(&z);
    z.lossless = NGL_LOSSLESS_ZSTD;
    have_zstd = ngl_stream_config_check(&z, NULL) == NGL_OK;
    return (n_valid > 0 && n_invalid > 0) ? 0 : -1;
}

static const golden_case *find_valid(const char *name)
{
    for (size_t i = 0; i < n_valid; i++) {
        if (!strcmp(valid_cases[i].name, name)) {
            return &valid_cases[i];
        }
    }
    fail_msg("no valid case %s", name);
    return NULL;
}

static int uses_zstd(const golden_case *gc)
{
    return gc->cfg.lossless == NGL_LOSSLESS_ZSTD || gc->cfg.lossless == NGL_LOSSLESS_AUTO;
}

static unsigned frame_backend(const uint8_t *b, size_t n)
{
    return n >= 10 ? (unsigned)((b[8] >> 3) & 3u) : 0u;
}

static size_t step_bytes(const golden_case *gc)
{
    return (size_t)gc->cfg.count * ngl_dtype_size(gc->cfg.dtype);
}

static size_t skip_bytes(const golden_case *gc)
{
    uint64_t nblocks = (gc->cfg.count + gc->cfg.block_size - 1) / gc->cfg.block_size;
    return (size_t)((nblocks + 7) / 8);
}

/* A decoder for @p gc. The library's decoder accepts back-end frames only
 * when its configuration names a back end (any one); without zstd in the
 * build, a zstd configuration cannot be created, so RLE stands in. */
static ngl_decoder *make_decoder(const golden_case *gc)
{
    ngl_stream_config cfg = gc->cfg;
    if (uses_zstd(gc) && !have_zstd) {
        cfg.lossless = NGL_LOSSLESS_RLE;
    }
    ngl_decoder *dec = NULL;
    assert_int_equal(ngl_decoder_create(&cfg, &dec), NGL_OK);
    return dec;
}

/* Encoding the committed inputs gives the committed frames, on every ISA. */
static void test_golden_encode_reproduces_frames(void **state)
{
    (void)state;
    unsigned checked = 0;
    for (size_t c = 0; c < n_valid; c++) {
        const golden_case *gc = &valid_cases[c];
        if (uses_zstd(gc) && !have_zstd) {
            continue; /* the frames depend on the zstd back end */
        }
        size_t in_len = 0, skip_len = 0;
        uint8_t *in = read_rel(&in_len, "valid/%s/input.bin", gc->name);
        uint8_t *skip =
            gc->override_mask ? read_rel(&skip_len, "valid/%s/skip.bin", gc->name) : NULL;
        assert_int_equal(in_len, step_bytes(gc) * gc->steps);
        if (skip != NULL) {
            assert_int_equal(skip_len, skip_bytes(gc) * gc->steps);
        }
        for (int isa = NGL_ISA_REF; isa <= NGL_ISA_AVX512; isa++) {
            if (!ngl_isa_available((ngl_isa)isa)) {
                continue;
            }
            ngl_stream_config cfg = gc->cfg;
            cfg.isa = (ngl_isa)isa;
            ngl_encoder *enc = NULL;
            assert_int_equal(ngl_encoder_create(&cfg, &enc), NGL_OK);
            size_t cap = ngl_encode_bound(&cfg);
            uint8_t *buf = malloc(cap);
            assert_non_null(buf);
            for (unsigned s = 0; s < gc->steps; s++) {
                if (skip != NULL) {
                    assert_int_equal(ngl_encoder_set_block_mask(enc, skip + s * skip_bytes(gc)),
                                     NGL_OK);
                }
                size_t len = 0, want_len = 0;
                assert_int_equal(ngl_encoder_encode(enc, in + s * step_bytes(gc), buf, cap, &len),
                                 NGL_OK);
                uint8_t *want = read_rel(&want_len, "valid/%s/frame-%03u.bin", gc->name, s);
                if (len != want_len || memcmp(buf, want, len) != 0) {
                    fail_msg("%s step %u (%s): encoded frame differs from the golden one "
                             "(%zu vs %zu bytes)",
                             gc->name, s, ngl_isa_name((ngl_isa)isa), len, want_len);
                }
                free(want);
                checked++;
            }
            free(buf);
            ngl_encoder_destroy(enc);
        }
        free(skip);
        free(in);
    }
    assert_true(checked > 0);
}

/* Decoding the committed frames gives the committed outputs, bit for bit. */
static void test_golden_decode_reproduces_outputs(void **state)
{
    (void)state;
    for (size_t c = 0; c < n_valid; c++) {
        const golden_case *gc = &valid_cases[c];
        size_t out_len = 0;
        uint8_t *want = read_rel(&out_len, "valid/%s/output.bin", gc->name);
        assert_int_equal(out_len, step_bytes(gc) * gc->steps);
        ngl_decoder *dec = make_decoder(gc);
        uint8_t *got = malloc(step_bytes(gc) + 1);
        assert_non_null(got);
        for (unsigned s = 0; s < gc->steps; s++) {
            size_t len = 0;
            uint8_t *f = read_rel(&len, "valid/%s/frame-%03u.bin", gc->name, s);
            ngl_status st = ngl_decoder_decode(dec, f, len, got, 0);
            if (frame_backend(f, len) == NGL_LOSSLESS_ZSTD && !have_zstd) {
                assert_int_equal(st, NGL_ERR_BACKEND_UNAVAILABLE);
                free(f);
                break;
            }
            if (st != NGL_OK) {
                fail_msg("%s step %u: %s", gc->name, s, ngl_status_str(st));
            }
            if (memcmp(got, want + s * step_bytes(gc), step_bytes(gc)) != 0) {
                fail_msg("%s step %u: decoded output differs from the golden one", gc->name, s);
            }
            assert_int_equal(ngl_decoder_step(dec), s + 1);
            free(f);
        }
        free(got);
        ngl_decoder_destroy(dec);
        free(want);
    }
}

/* Each invalid frame: exactly its status, nothing written, no state change. */
static void test_golden_invalid_rejected(void **state)
{
    (void)state;
    unsigned wrong = 0;
    for (size_t i = 0; i < n_invalid; i++) {
        const golden_invalid *gi = &invalid_frames[i];
        const golden_case *gc = find_valid(gi->base);
        assert_true(gi->after < gc->steps);
        size_t len = 0, out_len = 0;
        uint8_t *frame = read_rel(&len, "invalid/%s.bin", gi->name);
        uint8_t *want = read_rel(&out_len, "valid/%s/output.bin", gc->name);
        if (!have_zstd && (frame_backend(frame, len) == NGL_LOSSLESS_ZSTD)) {
            free(want);
            free(frame);
            continue;
        }
        ngl_decoder *dec = make_decoder(gc);
        size_t sb = step_bytes(gc);
        uint8_t *out = malloc(sb + 1), *sentinel = malloc(sb + 1);
        assert_non_null(out);
        assert_non_null(sentinel);
        for (unsigned s = 0; s < gi->after; s++) {
            size_t flen = 0;
            uint8_t *f = read_rel(&flen, "valid/%s/frame-%03u.bin", gc->name, s);
            assert_int_equal(ngl_decoder_decode(dec, f, flen, out, 0), NGL_OK);
            free(f);
        }
        uint64_t hash = ngl_decoder_state_hash(dec);
        memset(out, 0xa5, sb + 1);
        memcpy(sentinel, out, sb + 1);
        ngl_status st = ngl_decoder_decode(dec, frame, len, out, 0);
        if (st != gi->status) {
            /* report every disagreement, then fail */
            fprintf(stderr, "invalid/%s: got %s (%s), manifest says %s\n", gi->name,
                    golden_status_name(st), ngl_status_str(st), golden_status_name(gi->status));
            wrong++;
        } else if (st == NGL_OK) {
            assert_memory_equal(out, want + gi->after * sb, sb);
            assert_int_equal(ngl_decoder_step(dec), gi->after + 1);
        } else {
            if (memcmp(out, sentinel, sb + 1) != 0) {
                fail_msg("invalid/%s: rejected, but the output was written", gi->name);
            }
            assert_true(ngl_decoder_state_hash(dec) == hash);
            assert_int_equal(ngl_decoder_step(dec), gi->after);
        }
        /* Header-level failures are also what ngl_frame_inspect() reports;
         * everything later passes inspection. */
        ngl_frame_info info;
        ngl_status ist = ngl_frame_inspect(frame, len, 1, &info);
        int header_only = gi->status >= NGL_ERR_TRUNCATED && gi->status <= NGL_ERR_CRC_MISMATCH &&
                          gi->status != NGL_ERR_BAD_FLAGS && gi->status != NGL_ERR_BAD_PREDICTOR;
        if ((ist != NGL_OK && ist != gi->status) || (ist == NGL_OK && header_only)) {
            /* BAD_FLAGS and BAD_PREDICTOR also come from payload fields,
             * which inspection does not read */
            fprintf(stderr, "invalid/%s: ngl_frame_inspect() says %s\n", gi->name,
                    golden_status_name(ist));
            wrong++;
        }
        free(sentinel);
        free(out);
        ngl_decoder_destroy(dec);
        free(want);
        free(frame);
    }
    assert_int_equal(wrong, 0);
}

/* The corpus covers what it claims: every frame error of the spec, every
 * codec/dtype pair, predictor, back end, index format and the mask. */
static void test_golden_coverage(void **state)
{
    (void)state;
    int status_seen[64] = {0};
    for (size_t i = 0; i < n_invalid; i++) {
        status_seen[invalid_frames[i].status] = 1;
    }
    for (int s = NGL_ERR_TRUNCATED; s <= NGL_ERR_STEP_MISMATCH; s++) {
        if (!status_seen[s]) {
            fail_msg("no invalid golden frame for %s", golden_status_name((ngl_status)s));
        }
    }
    int codec_dtype[4][4] = {{0}}, pred[3] = {0}, backend[3] = {0}, index_format[2] = {0};
    int mask = 0, count0 = 0, count1 = 0, count_odd = 0;
    for (size_t c = 0; c < n_valid; c++) {
        const golden_case *gc = &valid_cases[c];
        count0 |= gc->cfg.count == 0;
        count1 |= gc->cfg.count == 1;
        count_odd |= gc->cfg.count > 1 && (gc->cfg.count & 1);
        for (unsigned s = 0; s < gc->steps; s++) {
            size_t len = 0;
            uint8_t *f = read_rel(&len, "valid/%s/frame-%03u.bin", gc->name, s);
            ngl_frame_info info;
            assert_int_equal(ngl_frame_inspect(f, len, 1, &info), NGL_OK);
            codec_dtype[info.codec][info.dtype] = 1;
            pred[info.predictor] = 1;
            backend[(info.flags >> 3) & 3u] = 1;
            mask |= (info.flags >> 2) & 1;
            if ((info.flags & 0x2u) && ((info.flags >> 3) & 3u) == 0) {
                /* payload: n_exc, pred_param, k, index_bytes, index_format */
                index_format[f[48 + 16] & 1u] = 1;
            }
            free(f);
        }
    }
    static const int allowed[4][4] = {
        /* f32 f16 bf16 f64 */
        {1, 1, 1, 1}, /* RAW */
        {1, 1, 1, 0}, /* INT8 */
        {1, 1, 1, 0}, /* INT4 */
        {1, 0, 0, 1}, /* EPS */
    };
    for (int c = 0; c < 4; c++) {
        for (int d = 0; d < 4; d++) {
            if (allowed[c][d] && !codec_dtype[c][d]) {
                fail_msg("no valid golden frame for codec %d dtype %d", c, d);
            }
        }
    }
    for (int i = 0; i < 3; i++) {
        assert_true(pred[i]);
        assert_true(backend[i]);
    }
    assert_true(index_format[0] && index_format[1]);
    assert_true(mask && count0 && count1 && count_odd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_golden GOLDEN_DIR\n");
        return 2;
    }
    golden_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_encode_reproduces_frames),
        cmocka_unit_test(test_golden_decode_reproduces_outputs),
        cmocka_unit_test(test_golden_invalid_rejected),
        cmocka_unit_test(test_golden_coverage),
    };
    return cmocka_run_group_tests(tests, setup_manifests, NULL);
}
