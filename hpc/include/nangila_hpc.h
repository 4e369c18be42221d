/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nangila_hpc.h -- Nangila HPC mode: error-bounded, streaming compression of
 * molecular-dynamics trajectories (atom coordinates), and the LAMMPS text-dump
 * container built on it.
 *
 * Model
 * -----
 * A *stream* is a sequence of *frames* (snapshots). A frame holds the xyz
 * coordinates of n atoms, each tagged with an integer id; n, the ids and their
 * order may change from frame to frame (atoms may appear, disappear or be
 * listed in any order). An ngl_hpc_encoder turns each frame into one or more
 * self-delimiting, CRC32C-protected *records* (hpc/FORMAT.md); an
 * ngl_hpc_decoder turns the records back into frames, in the same order.
 *
 * Error bound: every decoded coordinate c' satisfies |c' - c| <= eps, where c
 * is the coordinate given to the encoder, both taken as values of the stream's
 * dtype. The encoder checks this for every value, on exactly the value the
 * decoder will produce; a value it cannot place on the lattice within eps
 * (NaN, Inf, huge magnitudes, float32 values coarser than eps) is stored bit
 * for bit instead. eps = 0 means lossless: decoded values are bit-identical.
 *
 * Method: values are quantized on the integer lattice q = round(c / 2eps).
 * Predictors run on the reconstructed lattice only, so encoder and decoder
 * stay bit-exact; residuals go to an adaptive, context-modelled rANS coder.
 * Per block of atoms the encoder picks the previous frame, linear
 * extrapolation, or a per-frame least-squares model (a short linear filter
 * over the atom's past displacements, plus, at level 2, a pair-force term
 * learned from the data); atoms without history use a spatial delta. Level 3
 * adds, for frames far apart in time, the *cage*: each atom is moved towards
 * the energy minimum among the neighbours decoded before it (at their new
 * positions) and those still to come (at their old ones), with a pair energy
 * learned from the previous frame's radial distribution; it costs about a
 * microsecond per atom on both sides.
 * Levels 0 and 1 keep a lean state and run their first pass vectorised;
 * level 0 (NGL_HPC_LEVEL_FASTEST) uses the integer predictors only, for
 * compression in situ at ~300 MB/s per core. All levels write the same format.
 *
 * Memory: state is proportional to the largest frame seen (about 1 KB per
 * atom: eight frames of history per coordinate, twice, plus scratch; level-1
 * encoders about 650 bytes, level-0 encoders about 450; level 3 about 200
 * more), plus about 400 KB of context tables, never to the number of frames. Buffers grow when a
 * larger frame arrives; otherwise encode()/decode() do not allocate, except that the first frame
 * whose ids need a section creates a zstd context.
 *
 * Threading: objects are not thread-safe; distinct objects may be used from
 * distinct threads. Nothing here prints; errors come back as ngl_status plus
 * an optional message from the object's *_error() accessor.
 */
#ifndef NANGILA_HPC_H
#define NANGILA_HPC_H

#include "nangila.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Every ngl_hpc_* function is marked visible here, unconditionally (as zstd
 * does): the tree builds with -fvisibility=hidden, and a hidden symbol in the
 * internal static library could not be exported again by libnangila-hpc.so.
 * That library's version script, not this mark, decides what it exports;
 * the HDF5 plugin, which links the same static library, exports none of them.
 */
#if defined(__GNUC__)
#define NGL_HPC_API __attribute__((visibility("default")))
#else
#define NGL_HPC_API
#endif

/** Format version written by this library (hpc/FORMAT.md). */
#define NGL_HPC_FORMAT_VERSION 1u

/** Largest number of atoms in one frame. */
#define NGL_HPC_MAX_ATOMS ((uint64_t)1 << 28)

typedef enum ngl_hpc_dtype {
    NGL_HPC_F32 = 0, /* coordinates are float  (binary32) */
    NGL_HPC_F64 = 1  /* coordinates are double (binary64) */
} ngl_hpc_dtype;

/** Compression levels. */
#define NGL_HPC_LEVEL_FASTEST 0 /* integer temporal predictors, lean state: for in situ use */
#define NGL_HPC_LEVEL_FAST    1 /* adds the least-squares model on each atom's past moves */
#define NGL_HPC_LEVEL_DEFAULT 2 /* adds the learned pair-force predictor (needs a box) */
#define NGL_HPC_LEVEL_BEST    3 /* adds the cage predictor for coarse dumps (needs a box; slow) */

typedef struct ngl_hpc_params {
    ngl_hpc_dtype dtype; /* default NGL_HPC_F32 */
    double eps;          /* absolute bound, finite, >= 0; 0 = lossless; default 1e-3 */
    double rel;          /* 0 (default): use eps. > 0: range-relative, eps := rel * (max - min)
                            over every finite coordinate of the first frame with atoms (all
                            three axes together); that eps is written to the stream */
    int level;           /* NGL_HPC_LEVEL_FASTEST, _FAST, _DEFAULT (default) or _BEST */
} ngl_hpc_params;

/** Fill @p p with the defaults documented above. */
NGL_HPC_API void ngl_hpc_params_init(ngl_hpc_params *p);

/** One frame, as given to the encoder or returned by the decoder. */
typedef struct ngl_hpc_frame {
    uint64_t natoms;    /* atoms in this frame, <= NGL_HPC_MAX_ATOMS */
    const int64_t *ids; /* natoms distinct ids in coding order; NULL means ids 0..natoms-1 */
    const void *xyz;    /* natoms * 3 values of the stream dtype: x0 y0 z0 x1 y1 z1 ... */
    int has_box;        /* 1: box_lo/box_hi/periodic are meaningful */
    double box_lo[3];   /* box bounds (finite, lo < hi) */
    double box_hi[3];
    uint8_t periodic[3]; /* 1: this axis is wrapped into the box; values jump by hi - lo when an
                            atom crosses a face (handled, not an error); 0: free */
} ngl_hpc_frame;

/* ------------------------------------------------------------------------ */
/* Encoder                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct ngl_hpc_encoder ngl_hpc_encoder;

/**
 * Create an encoder. @p p is copied.
 * @return NGL_OK and *out; NGL_ERR_INVALID_ARG for a bad parameter (negative,
 *         NaN or infinite eps/rel, unknown dtype or level); NGL_ERR_NO_MEMORY.
 */
NGL_HPC_API ngl_status ngl_hpc_encoder_create(const ngl_hpc_params *p, ngl_hpc_encoder **out);
/** Free @p enc. NULL is a no-op. */
NGL_HPC_API void ngl_hpc_encoder_destroy(ngl_hpc_encoder *enc);

/** Worst-case output size in bytes of one encode() call with @p natoms atoms. */
NGL_HPC_API size_t ngl_hpc_encode_bound(uint64_t natoms);

/**
 * Encode one frame into @p dst. The first call also writes the stream-header
 * record before the frame record.
 * @param dst_cap  >= ngl_hpc_encode_bound(f->natoms) always suffices.
 * @return NGL_OK (state advanced), or with state unchanged:
 *         NGL_ERR_INVALID_ARG (NULL pointers, too many atoms, duplicate ids,
 *         bad box), NGL_ERR_DST_TOO_SMALL, NGL_ERR_NO_MEMORY.
 */
NGL_HPC_API ngl_status ngl_hpc_encoder_encode(ngl_hpc_encoder *enc, const ngl_hpc_frame *f,
                                              void *dst, size_t dst_cap, size_t *out_len);

/** Absolute eps in use (after rel mode resolved it), or -1 before the first frame in rel mode. */
NGL_HPC_API double ngl_hpc_encoder_eps(const ngl_hpc_encoder *enc);

typedef struct ngl_hpc_stats {
    uint64_t frames;       /* frames encoded / decoded */
    uint64_t values;       /* coordinates (3 per atom) */
    uint64_t bytes_out;    /* record bytes written / read, headers included */
    uint64_t exact;        /* values stored bit for bit */
    uint64_t wraps;        /* periodic wraps coded */
    uint64_t model_frames; /* frames that used the least-squares model */
    uint64_t force_frames; /* frames whose model had the pair-force term */
    uint64_t cage_frames;  /* frames that used the cage predictor (level 3) */
} ngl_hpc_stats;

NGL_HPC_API void ngl_hpc_encoder_get_stats(const ngl_hpc_encoder *enc, ngl_hpc_stats *out);

/** Message describing the last error of @p enc ("" if none); owned by @p enc. */
NGL_HPC_API const char *ngl_hpc_encoder_error(const ngl_hpc_encoder *enc);

/* ------------------------------------------------------------------------ */
/* Decoder                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct ngl_hpc_decoder ngl_hpc_decoder;

NGL_HPC_API ngl_status ngl_hpc_decoder_create(ngl_hpc_decoder **out);
/** Free @p dec. NULL is a no-op. */
NGL_HPC_API void ngl_hpc_decoder_destroy(ngl_hpc_decoder *dec);

/**
 * Length of the record starting at @p src, from its header alone.
 * @return NGL_OK and *rec_len; NGL_ERR_TRUNCATED if fewer than 8 bytes;
 *         NGL_ERR_BAD_MAGIC if @p src does not start a record.
 */
NGL_HPC_API ngl_status ngl_hpc_record_size(const void *src, size_t src_len, size_t *rec_len);

/**
 * Decode exactly one record of @p src_len bytes (use ngl_hpc_record_size to
 * split a byte stream). A stream-header record sets the stream up and yields
 * no frame (*got_frame = 0); a frame record yields one frame (*got_frame = 1),
 * readable through ngl_hpc_decoder_frame() until the next call.
 * The record's CRC32C, lengths and fields are checked before any state
 * changes; the decoded values are then checked against the CRC32C the encoder
 * computed on its own reconstruction before the frame is returned.
 * @return NGL_OK, or one of the frame errors of nangila.h (NGL_ERR_TRUNCATED,
 *         NGL_ERR_BAD_MAGIC, NGL_ERR_BAD_VERSION, NGL_ERR_CRC_MISMATCH,
 *         NGL_ERR_BAD_LENGTH, NGL_ERR_BAD_SECTION, NGL_ERR_BAD_CODE,
 *         NGL_ERR_BAD_FLAGS, NGL_ERR_STEP_MISMATCH ...), with the previous
 *         frame still readable; NGL_ERR_NO_MEMORY. A record that passes the
 *         checks but whose entropy-coded data does not decode (only a crafted
 *         record or an encoder/decoder mismatch can do that) leaves the
 *         adaptive state lost: every later call returns NGL_ERR_BAD_CODE
 *         until the decoder is re-created. Other errors change nothing.
 */
NGL_HPC_API ngl_status ngl_hpc_decoder_decode(ngl_hpc_decoder *dec, const void *src, size_t src_len,
                                              int *got_frame);

/**
 * Refuse frames of more than @p max_atoms atoms (default NGL_HPC_MAX_ATOMS).
 * A frame of constant values costs almost nothing on the wire, so a decoder
 * fed untrusted data should set the largest frame it is prepared to hold.
 * @return NGL_OK or NGL_ERR_INVALID_ARG.
 */
NGL_HPC_API ngl_status ngl_hpc_decoder_set_max_atoms(ngl_hpc_decoder *dec, uint64_t max_atoms);

/** The last decoded frame (ids never NULL; xyz in the stream dtype). Owned by @p dec. */
NGL_HPC_API const ngl_hpc_frame *ngl_hpc_decoder_frame(const ngl_hpc_decoder *dec);

/** Stream parameters (valid after the stream header): dtype, eps (absolute), rel, level. */
NGL_HPC_API ngl_status ngl_hpc_decoder_params(const ngl_hpc_decoder *dec, ngl_hpc_params *out);

NGL_HPC_API void ngl_hpc_decoder_get_stats(const ngl_hpc_decoder *dec, ngl_hpc_stats *out);

/** Message describing the last error of @p dec ("" if none); owned by @p dec. */
NGL_HPC_API const char *ngl_hpc_decoder_error(const ngl_hpc_decoder *dec);

/* ------------------------------------------------------------------------ */
/* LAMMPS text dumps (`dump custom`, `dump atom`)                           */
/* ------------------------------------------------------------------------ */

typedef struct ngl_hpc_dump_opts {
    double eps; /* bound on every coordinate after decompression and parsing; >= 0 */
    int rel;    /* 1: eps is range-relative (see ngl_hpc_params.rel) */
    int level;  /* NGL_HPC_LEVEL_FASTEST, _FAST or _DEFAULT */
} ngl_hpc_dump_opts;

typedef struct ngl_hpc_dump_report {
    uint64_t snapshots;      /* snapshots processed */
    uint64_t atoms;          /* atom lines, summed over snapshots */
    uint64_t coords;         /* coordinates compressed (or checked) */
    uint64_t bytes_in;       /* bytes read */
    uint64_t bytes_out;      /* bytes written */
    double eps;              /* absolute bound in use (verify: the bound checked) */
    double max_err;          /* verify: largest |decoded - original| seen */
    uint64_t verbatim_lines; /* atom lines kept as text (not parseable as numbers) */
    char message[256];       /* error message ("" on success) */
} ngl_hpc_dump_report;

/**
 * Compress a LAMMPS text dump read from @p in into the container written to
 * @p out. Streams one snapshot at a time.
 * @return NGL_OK; NGL_ERR_INVALID_ARG for input that is not a LAMMPS text dump
 *         or is truncated (report->message says where); NGL_ERR_NO_MEMORY;
 *         NGL_ERR_UNSUPPORTED on a write error.
 */
NGL_HPC_API ngl_status ngl_hpc_dump_compress(FILE *in, FILE *out, const ngl_hpc_dump_opts *opts,
                                             ngl_hpc_dump_report *report);

/**
 * Decompress a container from @p in to a LAMMPS text dump on @p out. Every
 * record is checked before its snapshot is written; a corrupted or truncated
 * container stops with an error and nothing of the bad snapshot is written.
 * @return NGL_OK, a frame error (report->message says which record), or
 *         NGL_ERR_UNSUPPORTED on a write error.
 */
NGL_HPC_API ngl_status ngl_hpc_dump_decompress(FILE *in, FILE *out, ngl_hpc_dump_report *report);

/**
 * Check that @p decoded is @p original with every coordinate within eps and
 * everything else byte for byte identical (same snapshots, headers, atoms,
 * columns, tokens). @p opts->rel resolves eps as the compressor would.
 * @return NGL_OK if it holds; NGL_ERR_BAD_CODE if a coordinate is off by more
 *         than eps; NGL_ERR_BAD_SECTION if anything else differs;
 *         NGL_ERR_INVALID_ARG if either file is not a LAMMPS dump. The message
 *         names the first difference.
 */
NGL_HPC_API ngl_status ngl_hpc_dump_verify(FILE *original, FILE *decoded,
                                           const ngl_hpc_dump_opts *opts,
                                           ngl_hpc_dump_report *report);

/** Called by ngl_hpc_dump_scan() once per snapshot; nonzero stops the scan. */
typedef int (*ngl_hpc_dump_frame_fn)(void *user, uint64_t index, const ngl_hpc_frame *f);

/**
 * Parse a LAMMPS text dump and hand each snapshot's coordinates to @p fn as a
 * frame of doubles (the atoms of its canonical lines, in file order, with ids
 * and the box as the compressor would use them). For tools and benchmarks.
 * @return NGL_OK; NGL_ERR_INVALID_ARG for bad input (message set) or when
 *         @p fn stops; NGL_ERR_NO_MEMORY.
 */
NGL_HPC_API ngl_status ngl_hpc_dump_scan(FILE *in, ngl_hpc_dump_frame_fn fn, void *user,
                                         ngl_hpc_dump_report *report);

#ifdef __cplusplus
}
#endif
#endif /* NANGILA_HPC_H */
