/* SPDX-License-Identifier: Apache-2.0 */
/*
 * h5z_plugin.c -- libh5z-nangila.so: the HDF5 dynamically loaded filter.
 * HDF5 calls H5PLget_plugin_type() / H5PLget_plugin_info() (the only two
 * symbols exported, h5z_plugin.map) and then the three callbacks below:
 * can_apply and set_local once per dataset created, filter once per chunk.
 * The codec is h5z_chunk.c; this file only translates between it and HDF5.
 *
 * cd_values as stored in a dataset's pipeline after set_local:
 *   [0] mode  [1] eps low  [2] eps high  [3] level            (the user's)
 *   [4] bytes per value (4 or 8)  [5] chunk rank r  [6 .. 6+r) chunk dims
 * The chunk header carries everything the decoder needs, so reading uses
 * none of them: a file stays readable whatever they say.
 */
#include "h5z_chunk.h"

#include <H5PLextern.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    CD_MODE = 0,
    CD_EPS_LO = 1,
    CD_EPS_HI = 2,
    CD_LEVEL = 3,
    CD_VALUE_SIZE = 4,
    CD_RANK = 5,
    CD_DIMS = 6,
    CD_MAX = CD_DIMS + H5S_MAX_RANK
};

/* Also the default when a dataset names the filter without any cd_values. */
#define H5Z_DEFAULT_LEVEL NGL_HPC_LEVEL_FAST

static double cd_eps(const unsigned cd[])
{
    uint64_t bits = (uint64_t)cd[CD_EPS_LO] | ((uint64_t)cd[CD_EPS_HI] << 32);
    double eps;
    memcpy(&eps, &bits, sizeof(eps));
    return eps;
}

/* The user's part of cd_values, checked; 0 if valid. */
static int user_params(size_t n, const unsigned cd[], unsigned *mode, double *eps, int *level)
{
    *mode = NGL_H5Z_MODE_ABS;
    *eps = 0.0; /* no cd_values: lossless */
    *level = H5Z_DEFAULT_LEVEL;
    if (n == 0) {
        return 0;
    }
    if (n < NGL_H5Z_CD_NELMTS) {
        return -1;
    }
    *mode = cd[CD_MODE];
    *eps = cd_eps(cd);
    if (n > CD_LEVEL) {
        *level = (int)cd[CD_LEVEL];
    }
    if ((*mode != NGL_H5Z_MODE_ABS && *mode != NGL_H5Z_MODE_REL) || !(*eps >= 0) ||
        !isfinite(*eps) || (*level != NGL_HPC_LEVEL_FASTEST && *level != NGL_HPC_LEVEL_FAST)) {
        return -1;
    }
    return 0;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* IEEE binary32 / binary64, little-endian, as the codec reads them. */
static htri_t h5z_can_apply(hid_t dcpl, hid_t type, hid_t space)
{
    (void)dcpl;
    (void)space;
    if (!host_is_little_endian() || H5Tget_class(type) != H5T_FLOAT) {
        return 0;
    }
    size_t size = H5Tget_size(type);
    if ((size != 4 && size != 8) || H5Tget_order(type) != H5T_ORDER_LE ||
        H5Tget_precision(type) != 8 * size || H5Tget_offset(type) != 0) {
        return 0;
    }
    return 1;
}

static herr_t h5z_set_local(hid_t dcpl, hid_t type, hid_t space)
{
    (void)space;
    unsigned flags = 0, cd[CD_MAX] = {0};
    size_t n = CD_MAX;
    if (H5Pget_filter_by_id2(dcpl, NGL_H5Z_FILTER_ID, &flags, &n, cd, 0, NULL, NULL) < 0) {
        return -1;
    }
    unsigned mode;
    double eps;
    int level;
    /* A dataset copied by h5repack arrives with the full list: keep the user's part. */
    if (user_params(n < CD_VALUE_SIZE ? n : CD_VALUE_SIZE, cd, &mode, &eps, &level) != 0) {
        return -1;
    }
    hsize_t dims[H5S_MAX_RANK];
    int rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, dims);
    if (rank <= 0) {
        return -1;
    }
    ngl_h5z_cd_values(mode, eps, cd);
    cd[CD_LEVEL] = (unsigned)level;
    cd[CD_VALUE_SIZE] = (unsigned)H5Tget_size(type);
    cd[CD_RANK] = (unsigned)rank;
    for (int i = 0; i < rank; i++) {
        /* HDF5 limits a chunk to 2^32 - 1 elements, so each dim fits. */
        cd[CD_DIMS + i] = (unsigned)dims[i];
    }
    return H5Pmodify_filter(dcpl, NGL_H5Z_FILTER_ID, flags, (size_t)(CD_DIMS + rank), cd);
}

static size_t h5z_encode(size_t n, const unsigned cd[], size_t nbytes, size_t *buf_size, void **buf)
{
    h5z_chunk_params p = {0};
    if (n < CD_DIMS || user_params(CD_VALUE_SIZE, cd, &p.mode, &p.eps, &p.level) != 0 ||
        (cd[CD_VALUE_SIZE] != 4 && cd[CD_VALUE_SIZE] != 8) || n != CD_DIMS + (size_t)cd[CD_RANK]) {
        return 0;
    }
    p.dtype = cd[CD_VALUE_SIZE] == 8 ? NGL_HPC_F64 : NGL_HPC_F32;
    /* (frames, atoms, 3) chunks go frame by frame; anything else is flat. */
    if (cd[CD_RANK] == 3 && cd[CD_DIMS + 2] == 3) {
        p.frames = cd[CD_DIMS];
        p.atoms = cd[CD_DIMS + 1];
    }
    size_t cap = h5z_chunk_bound(nbytes), len = 0;
    void *out = malloc(cap);
    if (out == NULL || h5z_chunk_encode(&p, *buf, nbytes, out, cap, &len, NULL) != NGL_OK) {
        free(out);
        return 0;
    }
    /* HDF5 allocates chunk buffers with the C library's malloc (H5MM in a
     * release build), as every filter plugin assumes. */
    free(*buf);
    *buf = out;
    *buf_size = cap;
    return len;
}

static size_t h5z_decode(size_t nbytes, size_t *buf_size, void **buf)
{
    size_t size = 0, len = 0;
    if (h5z_chunk_inspect(*buf, nbytes, &size) != NGL_OK) {
        return 0;
    }
    /* malloc(0) may return NULL; an empty chunk still needs a buffer. */
    void *out = malloc(size > 0 ? size : 1);
    if (out == NULL || h5z_chunk_decode(*buf, nbytes, out, size, &len) != NGL_OK) {
        free(out);
        return 0; /* HDF5 turns this into a read error: never hand back guesses */
    }
    free(*buf);
    *buf = out;
    *buf_size = size > 0 ? size : 1;
    return len;
}

static size_t h5z_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
                         size_t nbytes, size_t *buf_size, void **buf)
{
    if (flags & H5Z_FLAG_REVERSE) {
        return h5z_decode(nbytes, buf_size, buf);
    }
    return h5z_encode(cd_nelmts, cd_values, nbytes, buf_size, buf);
}

static const H5Z_class2_t h5z_nangila_class = {
    .version = H5Z_CLASS_T_VERS,
    .id = (H5Z_filter_t)NGL_H5Z_FILTER_ID,
    .encoder_present = 1,
    .decoder_present = 1,
    .name = NGL_H5Z_FILTER_NAME,
    .can_apply = h5z_can_apply,
    .set_local = h5z_set_local,
    .filter = h5z_filter,
};

H5PL_type_t H5PLget_plugin_type(void)
{
    return H5PL_TYPE_FILTER;
}

const void *H5PLget_plugin_info(void)
{
    return &h5z_nangila_class;
}
