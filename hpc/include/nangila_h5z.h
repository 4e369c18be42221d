/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nangila_h5z.h -- the HDF5 filter of Nangila's HPC mode: error-bounded
 * compression of float32 / float64 chunks, with the trajectory codec of
 * nangila_hpc.h on datasets of shape (frames, atoms, 3).
 *
 * The filter is a plugin, libh5z-nangila.so, that HDF5 loads on demand from
 * the directories in HDF5_PLUGIN_PATH (or HDF5's default plugin directory).
 * Nothing here needs HDF5 or links anything: this header only names the
 * filter and its parameters, for the HDF5 C API, netCDF-4 and h5py users
 * alike (hpc/h5z/README.md has the snippets and the chunk format).
 *
 * Parameters (cd_values, what H5Pset_filter() is given):
 *   cd_values[0]  mode: NGL_H5Z_MODE_ABS (eps is the absolute bound) or
 *                 NGL_H5Z_MODE_REL (bound = eps * (max - min) over the finite
 *                 values of each chunk)
 *   cd_values[1]  eps as an IEEE-754 double: low 32 bits of its bit pattern
 *   cd_values[2]  eps: high 32 bits
 *   cd_values[3]  optional: level, NGL_HPC_LEVEL_FASTEST (0) or
 *                 NGL_HPC_LEVEL_FAST (1, default)
 * eps must be finite and >= 0; 0 means lossless (bit for bit). No
 * cd_values at all also means lossless. After the filter's set_local step
 * the dataset's pipeline holds more values (dtype size, chunk rank and
 * dims) that the filter appends itself; users never write them.
 *
 * Guarantees, per chunk: every finite value decodes within the bound, NaN
 * and +-Inf (any payload) come back bit for bit; a chunk never takes more
 * than its raw size plus NGL_H5Z_HEADER_SIZE bytes; a corrupted chunk fails
 * to read (the filter returns 0, HDF5 reports an error) rather than decode
 * to wrong values.
 */
#ifndef NANGILA_H5Z_H
#define NANGILA_H5Z_H

#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The filter's HDF5 id. 47011 lies in the range HDF5 leaves to unregistered
 * third-party filters (>= 32768; 256-511 are for testing, below 32768 the HDF
 * Group assigns them). It will change to an assigned id once one is
 * registered; files written with this one keep it in their pipeline message.
 */
#define NGL_H5Z_FILTER_ID 47011

/** The filter's name in HDF5's pipeline message (h5dump, h5ls -v). */
#define NGL_H5Z_FILTER_NAME "nangila: error-bounded float (hpc/h5z)"

/** cd_values[0]. */
#define NGL_H5Z_MODE_ABS 0u /* eps is absolute */
#define NGL_H5Z_MODE_REL 1u /* eps is relative to each chunk's value range */

/** Number of cd_values a user gives: mode, eps low, eps high (level optional). */
#define NGL_H5Z_CD_NELMTS 3u

/** Bytes of the filter's chunk header (hpc/h5z/README.md). */
#define NGL_H5Z_HEADER_SIZE 52u

/**
 * Fill cd_values[0..2] with @p mode and @p eps, split as the filter reads it.
 * cd_values[0..2] is what H5Pset_filter(dcpl, NGL_H5Z_FILTER_ID,
 * H5Z_FLAG_MANDATORY, NGL_H5Z_CD_NELMTS, cd_values) takes.
 */
static inline void ngl_h5z_cd_values(unsigned mode, double eps, unsigned cd_values[3])
{
    uint64_t bits;
    memcpy(&bits, &eps, sizeof(bits));
    cd_values[0] = mode;
    cd_values[1] = (unsigned)(bits & 0xFFFFFFFFu);
    cd_values[2] = (unsigned)(bits >> 32);
}

#ifdef __cplusplus
}
#endif
#endif /* NANGILA_H5Z_H */
