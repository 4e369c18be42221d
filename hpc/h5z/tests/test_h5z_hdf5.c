/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_h5z_hdf5.c -- the filter plugin through the HDF5 C API, found the way
 * users find it: HDF5 loads libh5z-nangila.so from HDF5_PLUGIN_PATH (set by
 * meson to the plugin's build directory, or by test_h5z_install.sh to an
 * installed copy). Writes and reads trajectories and other shapes, checks
 * the bound, NaN/Inf, the stored sizes, corrupted chunks on disk (a read
 * error, and the other chunks still readable) and rejected parameters.
 */
#include "nangila_h5z.h"

#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double urand(void)
{
    return (double)(rnd() >> 11) * 0x1p-53;
}

typedef struct fixture {
    char path[64];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL) {
        return -1;
    }
    rng_state = 0x4835A;
    snprintf(fx->path, sizeof(fx->path), "/tmp/test_h5z_XXXXXX");
    int fd = mkstemp(fx->path);
    if (fd < 0) {
        free(fx);
        return -1;
    }
    close(fd);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    unlink(fx->path);
    free(fx);
    return 0;
}

/* frames x atoms x 3 doubles: atoms taking small correlated steps. */
static double *make_traj(size_t frames, size_t atoms)
{
    double *x = malloc(frames * atoms * 3 * sizeof(double));
    double *v = malloc(atoms * 3 * sizeof(double));
    assert_non_null(x);
    assert_non_null(v);
    for (size_t i = 0; i < atoms * 3; i++) {
        x[i] = 30.0 * urand();
        v[i] = 0.03 * (urand() - 0.5);
    }
    for (size_t f = 1; f < frames; f++) {
        for (size_t i = 0; i < atoms * 3; i++) {
            v[i] += 0.003 * (urand() - 0.5);
            x[f * atoms * 3 + i] = x[(f - 1) * atoms * 3 + i] + v[i];
        }
    }
    free(v);
    return x;
}

/* Create @p name of @p rank dims with the filter (mandatory), write @p data. */
static void write_dataset(const char *path, const char *name, hid_t mem_type, hid_t file_type,
                          int rank, const hsize_t *dims, const hsize_t *chunk, size_t cd_n,
                          const unsigned *cd, const void *data)
{
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    assert_true(H5Pset_chunk(dcpl, rank, chunk) >= 0);
    assert_true(H5Pset_filter(dcpl, NGL_H5Z_FILTER_ID, H5Z_FLAG_MANDATORY, cd_n, cd) >= 0);
    hid_t ds = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(ds >= 0);
    assert_true(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
}

/* Read @p name back into @p out; returns H5Dread's status. */
static herr_t read_dataset(const char *path, const char *name, hid_t mem_type, void *out)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(file >= 0);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    assert_true(ds >= 0);
    herr_t st = H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(ds);
    H5Fclose(file);
    return st;
}

static hsize_t storage_size(const char *path, const char *name)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    hsize_t s = H5Dget_storage_size(ds);
    H5Dclose(ds);
    H5Fclose(file);
    return s;
}

static void test_h5z_hdf5_filter_available(void **state)
{
    (void)state;
    assert_true(H5Zfilter_avail(NGL_H5Z_FILTER_ID) > 0);
    unsigned cfg = 0;
    assert_true(H5Zget_filter_info(NGL_H5Z_FILTER_ID, &cfg) >= 0);
    assert_true(cfg & H5Z_FILTER_CONFIG_ENCODE_ENABLED);
    assert_true(cfg & H5Z_FILTER_CONFIG_DECODE_ENABLED);
}

/* float32 (frames, atoms, 3), chunks of 16 frames with a partial last one,
 * NaN and infinities: the bound, the specials, the size, the pipeline. */
static void test_h5z_hdf5_traj_f32_roundtrip(void **state)
{
    fixture *fx = *state;
    const size_t frames = 40, atoms = 300, n = frames * atoms * 3;
    double *x = make_traj(frames, atoms);
    float *in = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    assert_non_null(in);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        in[i] = (float)x[i];
    }
    in[7] = NAN;
    in[9000] = INFINITY;
    in[n - 1] = -INFINITY;
    const uint32_t nan_payload = 0xFFC01234u;
    memcpy(&in[20000], &nan_payload, 4);
    const double eps = 1e-3;
    unsigned cd[3];
    ngl_h5z_cd_values(NGL_H5Z_MODE_ABS, eps, cd);
    hsize_t dims[3] = {frames, atoms, 3}, chunk[3] = {16, atoms, 3};
    write_dataset(fx->path, "pos", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 3, dims, chunk, 3, cd, in);
    assert_true(read_dataset(fx->path, "pos", H5T_NATIVE_FLOAT, out) >= 0);
    for (size_t i = 0; i < n; i++) {
        if (isfinite(in[i])) {
            if (!(fabs((double)out[i] - (double)in[i]) <= eps)) {
                fail_msg("value %zu: %.9g -> %.9g", i, (double)in[i], (double)out[i]);
            }
        } else {
            assert_memory_equal(&in[i], &out[i], 4);
        }
    }
    hsize_t stored = storage_size(fx->path, "pos");
    assert_true(stored * 3 < n * sizeof(float));

    /* set_local appended the value size and chunk shape to the user's three. */
    hid_t file = H5Fopen(fx->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "pos", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(ds);
    unsigned flags, got[16];
    size_t nc = 16;
    assert_true(H5Pget_filter_by_id2(dcpl, NGL_H5Z_FILTER_ID, &flags, &nc, got, 0, NULL, NULL) >=
                0);
    assert_int_equal(nc, 9);
    assert_memory_equal(got, cd, sizeof(cd));
    assert_int_equal(got[3], 1); /* default level */
    assert_int_equal(got[4], 4);
    assert_int_equal(got[5], 3);
    assert_int_equal(got[6], 16);
    assert_int_equal(got[7], atoms);
    assert_int_equal(got[8], 3);
    H5Pclose(dcpl);
    H5Dclose(ds);
    H5Fclose(file);
    free(x);
    free(in);
    free(out);
}

/* float64 2-D data (any other shape) with the relative bound: the bound is
 * eps times each chunk's range; chunks tile the dataset exactly here. */
static void test_h5z_hdf5_other_shape_f64_rel(void **state)
{
    fixture *fx = *state;
    const size_t rows = 96, cols = 37, crow = 32, n = rows * cols;
    double *in = malloc(n * sizeof(double)), *out = malloc(n * sizeof(double));
    assert_non_null(in);
    assert_non_null(out);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            in[r * cols + c] = 1e3 * sin(0.05 * (double)r) * cos(0.2 * (double)c) + (double)r;
        }
    }
    in[100] = NAN;
    const double rel = 1e-4;
    unsigned cd[4];
    ngl_h5z_cd_values(NGL_H5Z_MODE_REL, rel, cd);
    cd[3] = 0; /* level 0 */
    hsize_t dims[2] = {rows, cols}, chunk[2] = {crow, cols};
    write_dataset(fx->path, "field", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 2, dims, chunk, 4, cd, in);
    assert_true(read_dataset(fx->path, "field", H5T_NATIVE_DOUBLE, out) >= 0);
    for (size_t r0 = 0; r0 < rows; r0 += crow) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = r0 * cols; i < (r0 + crow) * cols; i++) {
            if (isfinite(in[i])) {
                lo = fmin(lo, in[i]);
                hi = fmax(hi, in[i]);
            }
        }
        for (size_t i = r0 * cols; i < (r0 + crow) * cols; i++) {
            if (isfinite(in[i])) {
                assert_true(fabs(out[i] - in[i]) <= rel * (hi - lo));
            } else {
                assert_memory_equal(&in[i], &out[i], 8);
            }
        }
    }
    assert_true(storage_size(fx->path, "field") < n * sizeof(double) / 2);
    free(in);
    free(out);
}

/* Random bits with eps 0 cannot shrink: stored raw, header added, exact. */
static void test_h5z_hdf5_incompressible_stored_raw(void **state)
{
    fixture *fx = *state;
    const size_t n = 3 * 1000 * 4;
    uint32_t *in = malloc(n * 4), *out = malloc(n * 4);
    assert_non_null(in);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        in[i] = (uint32_t)rnd();
    }
    unsigned cd[3];
    ngl_h5z_cd_values(NGL_H5Z_MODE_ABS, 0.0, cd);
    hsize_t dims[3] = {4, 1000, 3}, chunk[3] = {2, 1000, 3};
    write_dataset(fx->path, "noise", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 3, dims, chunk, 3, cd, in);
    assert_true(read_dataset(fx->path, "noise", H5T_NATIVE_FLOAT, out) >= 0);
    assert_memory_equal(in, out, n * 4);
    assert_true(storage_size(fx->path, "noise") <= n * 4 + 2 * NGL_H5Z_HEADER_SIZE);
    free(in);
    free(out);
}

/* Flip bytes inside chunk 1 on disk: reading it is an error (never other
 * values), reading chunk 0 alone still works. */
static void test_h5z_hdf5_corrupt_chunk_read_error(void **state)
{
    fixture *fx = *state;
    const size_t frames = 20, atoms = 200, n = frames * atoms * 3;
    double *x = make_traj(frames, atoms);
    float *in = malloc(n * 4), *out = malloc(n * 4);
    assert_non_null(in);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        in[i] = (float)x[i];
    }
    unsigned cd[3];
    ngl_h5z_cd_values(NGL_H5Z_MODE_ABS, 1e-3, cd);
    hsize_t dims[3] = {frames, atoms, 3}, chunk[3] = {10, atoms, 3};
    write_dataset(fx->path, "pos", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 3, dims, chunk, 3, cd, in);

    hid_t file = H5Fopen(fx->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, "pos", H5P_DEFAULT);
    hsize_t off[3] = {10, 0, 0}, size = 0;
    haddr_t addr = 0;
    unsigned mask = 0;
    hid_t fspace = H5Dget_space(ds);
    assert_true(H5Dget_chunk_info_by_coord(ds, off, &mask, &addr, &size) >= 0);
    assert_int_equal(mask, 0); /* the filter ran */
    H5Sclose(fspace);
    H5Dclose(ds);
    H5Fclose(file);

    FILE *f = fopen(fx->path, "r+b");
    assert_non_null(f);
    for (hsize_t k = 0; k < 3; k++) {
        long at = (long)(addr + size / 4 * (k + 1));
        assert_int_equal(fseek(f, at, SEEK_SET), 0);
        int c = fgetc(f);
        assert_int_equal(fseek(f, at, SEEK_SET), 0);
        fputc(c ^ 0x5A, f);
    }
    fclose(f);

    H5E_auto2_t efn;
    void *edata;
    H5Eget_auto2(H5E_DEFAULT, &efn, &edata);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the expected failure prints nothing */
    memset(out, 0, n * 4);
    assert_true(read_dataset(fx->path, "pos", H5T_NATIVE_FLOAT, out) < 0);
    H5Eset_auto2(H5E_DEFAULT, efn, edata);

    /* Chunk 0 through a hyperslab: random access by chunk is intact. */
    file = H5Fopen(fx->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ds = H5Dopen2(file, "pos", H5P_DEFAULT);
    fspace = H5Dget_space(ds);
    hsize_t start[3] = {0, 0, 0}, count[3] = {10, atoms, 3};
    H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t mspace = H5Screate_simple(3, count, NULL);
    assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, out) >= 0);
    for (size_t i = 0; i < 10 * atoms * 3; i++) {
        assert_true(fabs((double)out[i] - (double)in[i]) <= 1e-3);
    }
    H5Sclose(mspace);
    H5Sclose(fspace);
    H5Dclose(ds);
    H5Fclose(file);
    free(x);
    free(in);
    free(out);
}

/* Bad parameters and datatypes stop H5Dcreate; no cd_values is lossless. */
static void test_h5z_hdf5_rejects_bad_params(void **state)
{
    fixture *fx = *state;
    hid_t file = H5Fcreate(fx->path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {64}, chunk[1] = {64};
    hid_t space = H5Screate_simple(1, dims, NULL);
    unsigned bad[5][4];
    ngl_h5z_cd_values(2, 1e-3, bad[0]);                /* unknown mode */
    ngl_h5z_cd_values(NGL_H5Z_MODE_ABS, -1.0, bad[1]); /* negative */
    ngl_h5z_cd_values(NGL_H5Z_MODE_ABS, NAN, bad[2]);  /* NaN */
    ngl_h5z_cd_values(NGL_H5Z_MODE_ABS, 1e-3, bad[3]);
    bad[3][3] = 2; /* level 2 needs a box the filter does not have */
    ngl_h5z_cd_values(NGL_H5Z_MODE_ABS, 1e-3, bad[4]);
    const size_t nelm[5] = {3, 3, 3, 4, 2}; /* the last: eps cut in half */
    H5E_auto2_t efn;
    void *edata;
    H5Eget_auto2(H5E_DEFAULT, &efn, &edata);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int k = 0; k < 5; k++) {
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 1, chunk);
        H5Pset_filter(dcpl, NGL_H5Z_FILTER_ID, H5Z_FLAG_MANDATORY, nelm[k], bad[k]);
        char name[8];
        snprintf(name, sizeof(name), "b%d", k);
        hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        assert_true(ds < 0);
        H5Pclose(dcpl);
    }
    /* integers: can_apply says no, and the filter is mandatory */
    unsigned cd[3];
    ngl_h5z_cd_values(NGL_H5Z_MODE_ABS, 1e-3, cd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    H5Pset_filter(dcpl, NGL_H5Z_FILTER_ID, H5Z_FLAG_MANDATORY, 3, cd);
    assert_true(H5Dcreate2(file, "ints", H5T_STD_I32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) < 0);
    /* big-endian floats: the codec reads little-endian only */
    assert_true(H5Dcreate2(file, "be", H5T_IEEE_F32BE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) < 0);
    H5Pclose(dcpl);
    H5Eset_auto2(H5E_DEFAULT, efn, edata);

    /* No cd_values: lossless, bit for bit. */
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    H5Pset_filter(dcpl, NGL_H5Z_FILTER_ID, H5Z_FLAG_MANDATORY, 0, NULL);
    hid_t ds = H5Dcreate2(file, "lossless", H5T_IEEE_F64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    assert_true(ds >= 0);
    double in[64], out[64];
    for (int i = 0; i < 64; i++) {
        in[i] = sqrt((double)i) * 1.000001;
    }
    assert_true(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, in) >= 0);
    assert_true(H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    assert_memory_equal(in, out, sizeof(in));
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
    assert_true(read_dataset(fx->path, "lossless", H5T_NATIVE_DOUBLE, out) >= 0);
    assert_memory_equal(in, out, sizeof(in));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h5z_hdf5_filter_available),
        cmocka_unit_test_setup_teardown(test_h5z_hdf5_traj_f32_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_h5z_hdf5_other_shape_f64_rel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_h5z_hdf5_incompressible_stored_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_h5z_hdf5_corrupt_chunk_read_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_h5z_hdf5_rejects_bad_params, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
