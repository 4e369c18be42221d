/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_h5z_chunk.c -- the HDF5 filter's chunk codec without HDF5: the bound
 * on every finite value, NaN/Inf bit for bit, the relative bound, lossless
 * eps 0, the raw fallback and its size limit, awkward sizes, and rejection
 * of every corrupted byte, every truncation and crafted headers.
 */
#include "h5z_chunk.h"
#include "ngl_hash.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ------------------------------------------------------------ utilities */
static uint64_t rng_state;

static uint64_t rnd(void)
{
    return ngl_hash_mix64(rng_state += 0x9E3779B97F4A7C15ull); /* splitmix64 */
}

static double urand(void)
{
    return (double)(rnd() >> 11) * 0x1p-53;
}

static int setup(void **state)
{
    (void)state;
    rng_state = 0x6E616E67696C61ull;
    return 0;
}

/* A trajectory: atoms in a 20-sigma box taking small correlated steps. */
static void make_traj(void *buf, ngl_hpc_dtype t, uint64_t frames, uint64_t atoms)
{
    double *pos = malloc(atoms * 3 * sizeof(double));
    double *vel = malloc(atoms * 3 * sizeof(double));
    assert_non_null(pos);
    assert_non_null(vel);
    for (uint64_t i = 0; i < atoms * 3; i++) {
        pos[i] = 20.0 * urand();
        vel[i] = 0.02 * (urand() - 0.5);
    }
    for (uint64_t f = 0; f < frames; f++) {
        for (uint64_t i = 0; i < atoms * 3; i++) {
            vel[i] += 0.002 * (urand() - 0.5);
            pos[i] += vel[i];
            if (t == NGL_HPC_F64) {
                ((double *)buf)[f * atoms * 3 + i] = pos[i];
            } else {
                ((float *)buf)[f * atoms * 3 + i] = (float)pos[i];
            }
        }
    }
    free(pos);
    free(vel);
}

static double value_at(const void *buf, ngl_hpc_dtype t, size_t i)
{
    return t == NGL_HPC_F64 ? ((const double *)buf)[i] : ((const float *)buf)[i];
}

static size_t esize(ngl_hpc_dtype t)
{
    return t == NGL_HPC_F64 ? 8 : 4;
}

/* Encode, decode, and check: finite values within eps_abs (as reported),
 * non-finite ones bit for bit, size within the bound. Returns the length. */
static size_t roundtrip(const h5z_chunk_params *p, const void *src, size_t nbytes,
                        h5z_chunk_info *info_out)
{
    size_t cap = h5z_chunk_bound(nbytes), len = 0, dlen = 0, n = nbytes / esize(p->dtype);
    uint8_t *enc = malloc(cap);
    uint8_t *dec = malloc(nbytes + 1);
    assert_non_null(enc);
    assert_non_null(dec);
    h5z_chunk_info info;
    assert_int_equal(h5z_chunk_encode(p, src, nbytes, enc, cap, &len, &info), NGL_OK);
    assert_true(len <= nbytes + NGL_H5Z_HEADER_SIZE);
    size_t want = 0;
    assert_int_equal(h5z_chunk_inspect(enc, len, &want), NGL_OK);
    assert_int_equal(want, nbytes);
    assert_int_equal(h5z_chunk_decode(enc, len, dec, nbytes, &dlen), NGL_OK);
    assert_int_equal(dlen, nbytes);
    for (size_t i = 0; i < n; i++) {
        double a = value_at(src, p->dtype, i), b = value_at(dec, p->dtype, i);
        if (isfinite(a)) {
            if (!(fabs(b - a) <= info.eps_abs)) {
                fail_msg("value %zu: %.17g -> %.17g, eps %.17g", i, a, b, info.eps_abs);
            }
        } else {
            assert_memory_equal((const uint8_t *)src + i * esize(p->dtype),
                                dec + i * esize(p->dtype), esize(p->dtype));
        }
    }
    if (info.eps_abs == 0.0) {
        assert_memory_equal(src, dec, nbytes); /* lossless or raw: the same bytes */
    }
    if (info_out != NULL) {
        *info_out = info;
    }
    free(enc);
    free(dec);
    return len;
}

static h5z_chunk_params traj_params(ngl_hpc_dtype t, double eps, uint64_t frames, uint64_t atoms)
{
    h5z_chunk_params p = {.dtype = t,
                          .mode = NGL_H5Z_MODE_ABS,
                          .eps = eps,
                          .level = NGL_HPC_LEVEL_FAST,
                          .frames = frames,
                          .atoms = atoms};
    return p;
}

/* -------------------------------------------------------------- tests */
static void test_h5z_chunk_traj_bound_f32_f64(void **state)
{
    (void)state;
    const uint64_t frames = 16, atoms = 700;
    for (int t = 0; t < 2; t++) {
        ngl_hpc_dtype dt = t ? NGL_HPC_F64 : NGL_HPC_F32;
        size_t nbytes = frames * atoms * 3 * esize(dt);
        void *buf = malloc(nbytes);
        assert_non_null(buf);
        make_traj(buf, dt, frames, atoms);
        for (int level = 0; level <= 1; level++) {
            h5z_chunk_params p = traj_params(dt, 1e-3, frames, atoms);
            p.level = level;
            h5z_chunk_info info;
            size_t len = roundtrip(&p, buf, nbytes, &info);
            assert_int_equal(info.codec, H5Z_CODEC_TRAJ);
            assert_true(info.eps_abs == 1e-3);
            /* Small steps on a 2e-3 lattice: far below 32 (or 64) bits a value. */
            assert_true(len * 3 < nbytes);
        }
        free(buf);
    }
}

/* Frames must help: the same values coded as one flat frame cost more. */
static void test_h5z_chunk_traj_beats_flat(void **state)
{
    (void)state;
    const uint64_t frames = 32, atoms = 500;
    size_t nbytes = frames * atoms * 3 * 4;
    float *buf = malloc(nbytes);
    assert_non_null(buf);
    make_traj(buf, NGL_HPC_F32, frames, atoms);
    h5z_chunk_params traj = traj_params(NGL_HPC_F32, 1e-3, frames, atoms);
    h5z_chunk_params flat = traj_params(NGL_HPC_F32, 1e-3, 0, 0);
    h5z_chunk_info ti, fi;
    size_t lt = roundtrip(&traj, buf, nbytes, &ti);
    size_t lf = roundtrip(&flat, buf, nbytes, &fi);
    assert_int_equal(ti.codec, H5Z_CODEC_TRAJ);
    assert_int_equal(fi.codec, H5Z_CODEC_FLAT);
    assert_true(lt * 2 < lf);
    free(buf);
}

static void test_h5z_chunk_nonfinite_exact(void **state)
{
    (void)state;
    const uint64_t frames = 6, atoms = 300;
    for (int t = 0; t < 2; t++) {
        ngl_hpc_dtype dt = t ? NGL_HPC_F64 : NGL_HPC_F32;
        size_t es = esize(dt), n = frames * atoms * 3, nbytes = n * es;
        uint8_t *buf = malloc(nbytes);
        assert_non_null(buf);
        make_traj(buf, dt, frames, atoms);
        /* NaNs with payloads and both signs, infinities, the largest finite
         * value, a subnormal: every 37th value. */
        const uint64_t f64_specials[] = {0x7FF8000000000000ull, 0xFFF8000000000001ull,
                                         0x7FF0000000000001ull, 0x7FF0000000000000ull,
                                         0xFFF0000000000000ull, 0x7FEFFFFFFFFFFFFFull,
                                         0x0000000000000001ull};
        const uint32_t f32_specials[] = {0x7FC00000u, 0xFFC00001u, 0x7F800001u, 0x7F800000u,
                                         0xFF800000u, 0x7F7FFFFFu, 0x00000001u};
        for (size_t i = 5, k = 0; i < n; i += 37, k++) {
            if (dt == NGL_HPC_F64) {
                memcpy(buf + i * es, &f64_specials[k % 7], es);
            } else {
                memcpy(buf + i * es, &f32_specials[k % 7], es);
            }
        }
        for (int flat = 0; flat < 2; flat++) {
            h5z_chunk_params p = traj_params(dt, 1e-4, flat ? 0 : frames, flat ? 0 : atoms);
            h5z_chunk_info info;
            roundtrip(&p, buf, nbytes, &info);
            assert_int_not_equal(info.codec, H5Z_CODEC_RAW);
        }
        free(buf);
    }
}

static void test_h5z_chunk_rel_bound(void **state)
{
    (void)state;
    const uint64_t frames = 8, atoms = 400;
    size_t n = frames * atoms * 3;
    double *buf = malloc(n * sizeof(double));
    assert_non_null(buf);
    make_traj(buf, NGL_HPC_F64, frames, atoms);
    buf[17] = NAN; /* ignored by the range */
    buf[18] = -INFINITY;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(buf[i])) {
            lo = fmin(lo, buf[i]);
            hi = fmax(hi, buf[i]);
        }
    }
    h5z_chunk_params p = traj_params(NGL_HPC_F64, 1e-5, frames, atoms);
    p.mode = NGL_H5Z_MODE_REL;
    h5z_chunk_info info;
    roundtrip(&p, buf, n * sizeof(double), &info);
    assert_true(info.eps_abs == 1e-5 * (hi - lo));
    free(buf);
}

static void test_h5z_chunk_lossless_eps0(void **state)
{
    (void)state;
    const uint64_t frames = 10, atoms = 256;
    size_t nbytes = frames * atoms * 3 * 4;
    float *buf = malloc(nbytes);
    assert_non_null(buf);
    make_traj(buf, NGL_HPC_F32, frames, atoms);
    h5z_chunk_params p = traj_params(NGL_HPC_F32, 0.0, frames, atoms);
    h5z_chunk_info info;
    roundtrip(&p, buf, nbytes, &info); /* checks the bytes */
    assert_int_equal(info.codec, H5Z_CODEC_TRAJ);
    free(buf);
}

/* Random bits do not compress losslessly: the chunk is stored as given. */
static void test_h5z_chunk_incompressible_stored_raw(void **state)
{
    (void)state;
    size_t n = 3000, nbytes = n * 4;
    uint32_t *buf = malloc(nbytes);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint32_t)rnd();
    }
    h5z_chunk_params p = traj_params(NGL_HPC_F32, 0.0, 10, 100);
    h5z_chunk_info info;
    size_t len = roundtrip(&p, buf, nbytes, &info);
    assert_int_equal(info.codec, H5Z_CODEC_RAW);
    assert_int_equal(len, nbytes + NGL_H5Z_HEADER_SIZE);
    free(buf);
}

/* Sizes that are not a multiple of three, a single value, an odd byte count,
 * and a trajectory shape that does not match the size (coded flat). */
static void test_h5z_chunk_awkward_sizes(void **state)
{
    (void)state;
    const size_t sizes[] = {1, 2, 3, 4, 5, 7, 253, 1000, 1001, 4097};
    for (int t = 0; t < 2; t++) {
        ngl_hpc_dtype dt = t ? NGL_HPC_F64 : NGL_HPC_F32;
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            size_t n = sizes[k];
            double *d = malloc(n * sizeof(double));
            assert_non_null(d);
            for (size_t i = 0; i < n; i++) {
                double v = sin(0.01 * (double)i) * 50.0;
                if (dt == NGL_HPC_F64) {
                    d[i] = v;
                } else {
                    ((float *)d)[i] = (float)v;
                }
            }
            h5z_chunk_params p = traj_params(dt, 1e-2, 0, 0);
            h5z_chunk_info info;
            roundtrip(&p, d, n * esize(dt), &info);
            p = traj_params(dt, 1e-2, 7, 11); /* 231 values: not this chunk */
            roundtrip(&p, d, n * esize(dt), &info);
            assert_int_not_equal(info.codec, H5Z_CODEC_TRAJ);
            if (n >= 1000) {
                assert_int_equal(info.codec, H5Z_CODEC_FLAT);
            }
            free(d);
        }
    }
    /* A byte count that is not whole values goes through raw. */
    uint8_t odd[7] = {1, 2, 3, 4, 5, 6, 7};
    h5z_chunk_params p = traj_params(NGL_HPC_F32, 1e-2, 0, 0);
    h5z_chunk_info info;
    roundtrip(&p, odd, sizeof(odd), &info);
    assert_int_equal(info.codec, H5Z_CODEC_RAW);
}

/* A bound beyond every value's magnitude, absolute or relative. */
static void test_h5z_chunk_huge_eps(void **state)
{
    (void)state;
    const uint64_t frames = 4, atoms = 100;
    size_t n = frames * atoms * 3;
    double *buf = malloc(n * sizeof(double));
    assert_non_null(buf);
    make_traj(buf, NGL_HPC_F64, frames, atoms);
    buf[3] = 1e308;
    buf[4] = -1e308; /* range overflows to inf in relative mode */
    h5z_chunk_params p = traj_params(NGL_HPC_F64, 1e308, frames, atoms);
    h5z_chunk_info info;
    roundtrip(&p, buf, n * sizeof(double), &info);
    assert_true(info.eps_abs <= H5Z_EPS_MAX);
    p.mode = NGL_H5Z_MODE_REL;
    p.eps = 0.5;
    roundtrip(&p, buf, n * sizeof(double), &info);
    free(buf);
}

static void test_h5z_chunk_rejects_bad_params(void **state)
{
    (void)state;
    float src[30] = {0};
    uint8_t dst[30 * 4 + NGL_H5Z_HEADER_SIZE];
    size_t len;
    h5z_chunk_params good = traj_params(NGL_HPC_F32, 1e-3, 0, 0);
    assert_int_equal(h5z_chunk_encode(&good, src, sizeof(src), dst, sizeof(dst), &len, NULL),
                     NGL_OK);
    assert_int_equal(h5z_chunk_encode(&good, src, sizeof(src), dst, sizeof(dst) - 1, &len, NULL),
                     NGL_ERR_DST_TOO_SMALL);
    h5z_chunk_params bad[5];
    for (int i = 0; i < 5; i++) {
        bad[i] = good;
    }
    bad[0].eps = -1e-3;
    bad[1].eps = NAN;
    bad[2].eps = INFINITY;
    bad[3].mode = 2;
    bad[4].level = NGL_HPC_LEVEL_DEFAULT;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(h5z_chunk_encode(&bad[i], src, sizeof(src), dst, sizeof(dst), &len, NULL),
                         NGL_ERR_INVALID_ARG);
    }
    assert_int_equal(h5z_chunk_encode(NULL, src, sizeof(src), dst, sizeof(dst), &len, NULL),
                     NGL_ERR_INVALID_ARG);
}

/* Every byte flipped and every truncation of a coded chunk (and of a raw
 * one) is an error; never a decoded buffer. */
static void check_corruption(const uint8_t *enc, size_t len, size_t nbytes)
{
    uint8_t *bad = malloc(len);
    uint8_t *dec = malloc(nbytes);
    assert_non_null(bad);
    assert_non_null(dec);
    size_t out;
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, enc, len);
        bad[i] ^= (uint8_t)(1u << (i % 8));
        if (h5z_chunk_decode(bad, len, dec, nbytes, &out) == NGL_OK) {
            fail_msg("flip at byte %zu of %zu decoded", i, len);
        }
    }
    for (size_t l = 0; l < len; l++) {
        assert_int_not_equal(h5z_chunk_decode(enc, l, dec, nbytes, &out), NGL_OK);
    }
    assert_int_equal(h5z_chunk_decode(enc, len, dec, nbytes - 1, &out), NGL_ERR_DST_TOO_SMALL);
    free(bad);
    free(dec);
}

static void test_h5z_chunk_corrupt_rejected(void **state)
{
    (void)state;
    const uint64_t frames = 6, atoms = 64;
    size_t nbytes = frames * atoms * 3 * 4;
    float *buf = malloc(nbytes);
    uint8_t *enc = malloc(h5z_chunk_bound(nbytes));
    assert_non_null(buf);
    assert_non_null(enc);
    make_traj(buf, NGL_HPC_F32, frames, atoms);
    buf[10] = NAN;
    size_t len;
    h5z_chunk_info info;
    h5z_chunk_params p = traj_params(NGL_HPC_F32, 1e-3, frames, atoms);
    assert_int_equal(h5z_chunk_encode(&p, buf, nbytes, enc, h5z_chunk_bound(nbytes), &len, &info),
                     NGL_OK);
    assert_int_equal(info.codec, H5Z_CODEC_TRAJ);
    check_corruption(enc, len, nbytes);
    /* raw */
    p.eps = 0;
    for (size_t i = 0; i < nbytes / 4; i++) {
        ((uint32_t *)buf)[i] = (uint32_t)rnd();
    }
    assert_int_equal(h5z_chunk_encode(&p, buf, nbytes, enc, h5z_chunk_bound(nbytes), &len, &info),
                     NGL_OK);
    assert_int_equal(info.codec, H5Z_CODEC_RAW);
    check_corruption(enc, len, nbytes);
    free(buf);
    free(enc);
}

/* Headers with a valid CRC but fields that disagree: each names its fault. */
static void reseal(uint8_t *c, size_t len)
{
    uint32_t crc = ngl_crc32c(0, c, 48);
    crc = ngl_crc32c(crc, c + NGL_H5Z_HEADER_SIZE, len - NGL_H5Z_HEADER_SIZE);
    for (int i = 0; i < 4; i++) {
        c[48 + i] = (uint8_t)(crc >> (8 * i));
    }
}

static void test_h5z_chunk_crafted_headers_rejected(void **state)
{
    (void)state;
    const uint64_t frames = 4, atoms = 50;
    size_t nbytes = frames * atoms * 3 * 4, len;
    float *buf = malloc(nbytes);
    uint8_t *enc = malloc(h5z_chunk_bound(nbytes));
    uint8_t *bad = malloc(h5z_chunk_bound(nbytes));
    uint8_t *dec = malloc(nbytes * 2);
    assert_non_null(buf);
    assert_non_null(enc);
    assert_non_null(bad);
    assert_non_null(dec);
    make_traj(buf, NGL_HPC_F32, frames, atoms);
    h5z_chunk_params p = traj_params(NGL_HPC_F32, 1e-3, frames, atoms);
    assert_int_equal(h5z_chunk_encode(&p, buf, nbytes, enc, h5z_chunk_bound(nbytes), &len, NULL),
                     NGL_OK);
    struct {
        size_t off;
        uint8_t val;
        ngl_status want;
    } cases[] = {
        {0, 'X', NGL_ERR_BAD_MAGIC},
        {4, 2, NGL_ERR_BAD_VERSION},
        {5, 7, NGL_ERR_BAD_DTYPE},
        {6, 9, NGL_ERR_BAD_CODEC},
        {7, 0x80, NGL_ERR_BAD_FLAGS},
        {8, (uint8_t)(nbytes + 12), NGL_ERR_BAD_LENGTH},
        {16, 3, NGL_ERR_BAD_LENGTH},
        {24, 49, NGL_ERR_BAD_LENGTH},
        {5, NGL_HPC_F64, NGL_ERR_BAD_LENGTH}, /* f64 needs twice the bytes */
        {39, 0xFF, NGL_ERR_BAD_SCALE},        /* eps NaN */
    };
    size_t out;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        memcpy(bad, enc, len);
        bad[cases[k].off] = cases[k].val;
        if (cases[k].off != 0 && cases[k].off != 4) {
            reseal(bad, len);
        }
        assert_int_equal(h5z_chunk_decode(bad, len, dec, nbytes * 2, &out), cases[k].want);
    }
    /* A consistent header over a stream of another dtype or shape: the hpc
     * records disagree with it. */
    memcpy(bad, enc, len);
    bad[16] = 2;   /* frames 2 ... */
    bad[24] = 100; /* ... of 100 atoms: the same byte count */
    reseal(bad, len);
    assert_int_not_equal(h5z_chunk_decode(bad, len, dec, nbytes, &out), NGL_OK);
    memcpy(bad, enc, len);
    bad[6] = H5Z_CODEC_FLAT; /* flat would be 1 frame of 200 atoms */
    bad[16] = 1;
    bad[24] = 200;
    reseal(bad, len);
    assert_int_not_equal(h5z_chunk_decode(bad, len, dec, nbytes, &out), NGL_OK);
    free(buf);
    free(enc);
    free(bad);
    free(dec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_h5z_chunk_traj_bound_f32_f64, setup),
        cmocka_unit_test_setup(test_h5z_chunk_traj_beats_flat, setup),
        cmocka_unit_test_setup(test_h5z_chunk_nonfinite_exact, setup),
        cmocka_unit_test_setup(test_h5z_chunk_rel_bound, setup),
        cmocka_unit_test_setup(test_h5z_chunk_lossless_eps0, setup),
        cmocka_unit_test_setup(test_h5z_chunk_incompressible_stored_raw, setup),
        cmocka_unit_test_setup(test_h5z_chunk_awkward_sizes, setup),
        cmocka_unit_test_setup(test_h5z_chunk_huge_eps, setup),
        cmocka_unit_test_setup(test_h5z_chunk_rejects_bad_params, setup),
        cmocka_unit_test_setup(test_h5z_chunk_corrupt_rejected, setup),
        cmocka_unit_test_setup(test_h5z_chunk_crafted_headers_rejected, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
