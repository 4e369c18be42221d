/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_io.h -- sample streams for `nangila twin`: CSV and raw binary readers
 * and writers, and the rotor simulator. Rows are always carried as double;
 * with f32 the values are float32 (parsed with strtof, read as float) held
 * exactly in a double, and are written back as float32.
 *
 * CSV: a header line of channel names separated by commas, then one row per
 * sample with one value per channel. `nan`, `inf` and `-inf` (any case, as
 * strtod reads them) are accepted and kept. Binary: little-endian float64 (or
 * float32) values, row-major, no header; the channel count comes from the
 * command line.
 */
#ifndef NGL_TWIN_IO_H
#define NGL_TWIN_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ngl_twin_reader ngl_twin_reader;

/* Opens a reader on f (not owned, not closed). binary: raw values, and
 * channels must be > 0; CSV: channels is ignored and the header decides.
 * Returns NULL with a message in err when the header is unusable or memory
 * runs out. */
ngl_twin_reader *ngl_twin_reader_open(FILE *f, int binary, int f32, size_t channels, char *err,
                                      size_t err_cap);
void ngl_twin_reader_close(ngl_twin_reader *r);
size_t ngl_twin_reader_channels(const ngl_twin_reader *r);
/* The header line as read (no newline); for binary input "c0,c1,...". */
const char *ngl_twin_reader_header(const ngl_twin_reader *r);
/* Reads one sample into row[channels]. Returns 1 for a row, 0 at the end of
 * the input, -1 for a malformed row or a read error (message in err, with the
 * line number for CSV). Blocks on a pipe until a row or EOF arrives. */
int ngl_twin_reader_next(ngl_twin_reader *r, double *row, char *err, size_t err_cap);

typedef struct ngl_twin_writer ngl_twin_writer;

/* Writes to f (not owned). CSV writes header (one line, no newline in it)
 * first. Returns NULL when memory runs out. */
ngl_twin_writer *ngl_twin_writer_open(FILE *f, int binary, int f32, size_t channels,
                                      const char *header);
/* One sample. CSV prints %.17g (f64) or %.9g (f32), which parse back to the
 * same value, so the bound that held on the decoded value holds on the file;
 * every NaN prints as `nan`. Returns 0, or -1 on a write error. */
int ngl_twin_writer_row(ngl_twin_writer *w, const double *row);
/* Flushes; returns 0, or -1 if any write failed. Frees w. */
int ngl_twin_writer_close(ngl_twin_writer *w);

/* Rotor simulator: a deterministic (seeded) machine whose channels cycle
 * through vibration (harmonics of a slowly varying shaft speed, plus noise),
 * bearing temperature (first-order drift towards a load-dependent level),
 * motor current (mains-frequency sine whose amplitude follows the load) and
 * shaft speed. The same seed, rate and channel count give the same values
 * run after run (on one libm: sin and exp come from it). */
typedef struct ngl_twin_sim ngl_twin_sim;
ngl_twin_sim *ngl_twin_sim_create(size_t channels, double rate_hz, uint64_t seed);
void ngl_twin_sim_destroy(ngl_twin_sim *s);
/* "vib0,temp0,cur0,rpm0,vib1,..." */
const char *ngl_twin_sim_header(const ngl_twin_sim *s);
/* The next sample (sample n at time n / rate_hz). */
void ngl_twin_sim_next(ngl_twin_sim *s, double *row);

#endif
