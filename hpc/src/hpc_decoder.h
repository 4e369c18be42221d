/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_decoder.h -- private to the hpc stream decoder; never installed.
 *
 *   hpc_decoder.c         the API, the records, and the frame driver: every
 *                         section of a frame record (FORMAT.md §3.1) parsed
 *                         and checked by its own function into a frame_in,
 *                         before anything of the decoder's state changes
 *   hpc_decoder_values.c  the value pass over the parsed frame: prediction,
 *                         contexts, wrap symbols, tokens and reconstruction,
 *                         the mirror of hpc_encoder_values.c
 */
#ifndef NGL_HPC_DECODER_H
#define NGL_HPC_DECODER_H

#include "hpc_core.h"

#include <stdarg.h>
#include <stdio.h>

#if defined(NGL_HAVE_ZSTD)
#include <zstd.h>
#endif

/* The decoder: the state shared with the encoder's definition (hpc_core),
 * and two output sets, so that the last good frame stays readable while the
 * next one is decoded into the other. */
struct ngl_hpc_decoder {
    hpc_core c;
    int poisoned; /* a value pass failed: the adaptive state is lost */
    int64_t *ids_out[2];
    void *xyz_out[2];
    uint64_t out_cap[2];
    int cur; /* output set holding the last frame */
    uint64_t max_atoms;
    int have_frame;
    ngl_hpc_frame frame;
    uint8_t *idraw; /* the unpacked ids section */
    size_t idraw_cap;
    ngl_hpc_stats stats;
    char err[256];
#if defined(NGL_HAVE_ZSTD)
    ZSTD_DCtx *zd;
#endif
};

/* A frame record's sections, parsed (nothing of the decoder changed yet). */
typedef struct frame_in {
    uint64_t index, n;
    unsigned flags;
    int same, identity; /* ids: as the last frame, or 0..n-1 */
    int has_box, per[3];
    double lo[3], hi[3], blen[3]; /* blen: periodic length or 0 */
    int out_set;                  /* output set the frame goes to */
    int64_t *ids;                 /* its ids */
    void *xyz;                    /* its values */
    hpc_model model;              /* the model this frame codes with */
    int cage, cage_table;         /* §6.8: MODEL blocks use the cage; new table */
    hpc_cage_params cagep;
    uint32_t want_crc;         /* §6.6 */
    int any_model;             /* some block selects MODEL */
    const uint8_t *rans, *raw; /* §4.3, §4.4 */
    size_t rans_len, raw_len;
} frame_in;

/* Set the decoder's error message and @return @p st. Inline here, so that
 * the decoder's rooms share it without calling each other. */
static inline __attribute__((format(printf, 3, 4))) ngl_status
hpc_dec_fail(ngl_hpc_decoder *dec, ngl_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dec->err, sizeof(dec->err), fmt, ap);
    va_end(ap);
    return st;
}

/* The value pass of a parsed frame (hpc_decoder_values.c): every value into
 * fi->xyz and the new state entries, then the checks that the rANS and raw
 * sections ended exactly and the values' CRC is the encoder's (§6.6).
 * A failure leaves the adaptive state lost (the caller poisons the decoder). */
ngl_status hpc_dec_values(ngl_hpc_decoder *dec, const frame_in *fi, hpc_rdec *rdx, hpc_bitr *raw,
                          int use_force, uint64_t *exact_count, uint64_t *wraps);

#endif /* NGL_HPC_DECODER_H */
