/* SPDX-License-Identifier: Apache-2.0 */
/*
 * h5z_chunk.h -- the HDF5 filter's chunk codec, without HDF5: one chunk of
 * float32 / float64 values in, one self-contained, CRC-protected buffer out
 * (format in hpc/h5z/README.md), and back. The plugin (h5z_plugin.c) is only
 * the glue between this and HDF5's filter interface; the tests drive both.
 * Private to hpc/h5z; never installed.
 */
#ifndef NGL_H5Z_CHUNK_H
#define NGL_H5Z_CHUNK_H

#include "nangila_h5z.h"
#include "nangila_hpc.h"

#include <stddef.h>
#include <stdint.h>

#define H5Z_FORMAT_VERSION 1u

/** Codec ids in the chunk header. */
enum {
    H5Z_CODEC_RAW = 0,  /* the chunk's bytes as given */
    H5Z_CODEC_TRAJ = 1, /* hpc stream, one frame per (atoms x 3) slice */
    H5Z_CODEC_FLAT = 2  /* hpc stream of one frame: the values taken three by three */
};

/** Largest bound used: a larger one (or a relative one on a huge range) is
 *  clamped to it, which only tightens the bound. */
#define H5Z_EPS_MAX 1e300

typedef struct h5z_chunk_params {
    ngl_hpc_dtype dtype; /* of the values */
    unsigned mode;       /* NGL_H5Z_MODE_ABS or NGL_H5Z_MODE_REL */
    double eps;          /* finite, >= 0 */
    int level;           /* NGL_HPC_LEVEL_FASTEST or NGL_HPC_LEVEL_FAST */
    uint64_t frames;     /* > 0: the chunk is frames x atoms x 3 values (a trajectory) */
    uint64_t atoms;      /* frames = 0: any other shape */
} h5z_chunk_params;

/** What one chunk became (for tests and statistics). */
typedef struct h5z_chunk_info {
    int codec;      /* H5Z_CODEC_* */
    double eps_abs; /* the absolute bound in force (0 for RAW) */
} h5z_chunk_info;

/** @return the largest size h5z_chunk_encode() can write for @p nbytes of input. */
size_t h5z_chunk_bound(size_t nbytes);

/**
 * Compress @p nbytes at @p src (values in host byte order, which must be
 * little-endian) into @p dst. When the codec would not make the chunk
 * smaller, or cannot be used (an odd size, a failed allocation), the chunk
 * is stored raw: the output never exceeds h5z_chunk_bound(nbytes).
 * @return NGL_OK, *out_len and *info (may be NULL); NGL_ERR_INVALID_ARG for
 *         bad parameters or NULL pointers; NGL_ERR_DST_TOO_SMALL when
 *         @p dst_cap < h5z_chunk_bound(nbytes).
 */
ngl_status h5z_chunk_encode(const h5z_chunk_params *p, const void *src, size_t nbytes, void *dst,
                            size_t dst_cap, size_t *out_len, h5z_chunk_info *info);

/**
 * Check the header and CRC of a compressed chunk and give its decoded size.
 * @return NGL_OK and *nbytes; NGL_ERR_TRUNCATED, NGL_ERR_BAD_MAGIC,
 *         NGL_ERR_BAD_VERSION, NGL_ERR_BAD_LENGTH, NGL_ERR_CRC_MISMATCH,
 *         NGL_ERR_BAD_DTYPE, NGL_ERR_BAD_CODEC, NGL_ERR_BAD_FLAGS.
 */
ngl_status h5z_chunk_inspect(const void *src, size_t len, size_t *nbytes);

/**
 * Decompress a chunk into @p dst (@p dst_cap >= the size inspect gives).
 * Everything is checked (header, CRC, each hpc record and its value CRC,
 * frame and atom counts) before NGL_OK: on any error @p dst holds no
 * meaningful data and must not be used.
 * @return NGL_OK and *out_len; the errors of h5z_chunk_inspect();
 *         NGL_ERR_DST_TOO_SMALL; a frame error of the hpc decoder;
 *         NGL_ERR_NO_MEMORY.
 */
ngl_status h5z_chunk_decode(const void *src, size_t len, void *dst, size_t dst_cap,
                            size_t *out_len);

#endif /* NGL_H5Z_CHUNK_H */
