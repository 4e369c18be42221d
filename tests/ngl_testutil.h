/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_testutil.h -- helpers shared by the core test suite (tests/test_*.c).
 *
 * - tu_rng: a seeded splitmix64 generator; every input a test uses comes
 *   from it, so a failure reproduces exactly. No libm in the generators
 *   that feed committed hashes.
 * - tu_pair: an encoder/decoder pair for one stream configuration.
 * - tu_frame: the sections of a frame, located from docs/wire-format.md
 *   (frames without a lossless back end).
 * - tu_model: the stream reconstruction and the encoder rules of
 *   docs/wire-format.md sections 4 and 5, written from the spec, that
 *   checks every INT8/INT4 frame: header, mask, Top-K selection, scales,
 *   code range, exceptions, the decoded output bit for bit, and the error
 *   bound of every coded element against the error-feedback target.
 *
 * Test helpers fail through cmocka's assert macros, so a caller needs no
 * error handling.
 */
#ifndef NGL_TESTUTIL_H
#define NGL_TESTUTIL_H

#include "ngl_byteorder.h" /* frame fields: ngl_rd_u32() and friends */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the headers above first */
#include <cmocka.h>

#include "nangila.h"

#include <stdio.h>

/* ---- random inputs --------------------------------------------------- */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;

void tu_rng_seed(tu_rng *r, uint64_t seed);
uint64_t tu_rng_u64(tu_rng *r);
/* Uniform in [0, n), n > 0. */
uint32_t tu_rng_below(tu_rng *r, uint32_t n);
/* Uniform in [0, 1) with 53 bits. */
double tu_rng_unit(tu_rng *r);
/* Uniform float in [lo, hi), rounded once to binary32. */
float tu_rng_float(tu_rng *r, float lo, float hi);

/* ---- dtype helpers --------------------------------------------------- */
/* Element i of @p buf (dtype @p dt) widened to double; f16/bf16 exactly. */
double tu_elem_get(const void *buf, ngl_dtype dt, size_t i);
/* Store @p v into element i, rounded to nearest even (halves saturate
 * like the codec's output does, f32 rounds and may overflow). */
void tu_elem_set(void *buf, ngl_dtype dt, size_t i, double v);
/* Raw bits of element i (dtype width, zero-extended). */
uint64_t tu_elem_bits(const void *buf, ngl_dtype dt, size_t i);
void tu_elem_set_bits(void *buf, ngl_dtype dt, size_t i, uint64_t bits);
int tu_elem_finite(const void *buf, ngl_dtype dt, size_t i);
/* Spacing of dtype @p dt at magnitude |v| (the ulp of the binade of v). */
double tu_ulp(ngl_dtype dt, double v);

/* FNV-1a 64 over bytes, continuing from h (start with TU_FNV_INIT). */
#define TU_FNV_INIT 0xcbf29ce484222325ull
uint64_t tu_fnv(uint64_t h, const void *data, size_t len);

/* ---- encoder/decoder pair -------------------------------------------- */
typedef struct tu_pair {
    ngl_stream_config cfg;
    ngl_encoder *enc;
    ngl_decoder *dec;
    uint8_t *frame;
    size_t cap;
    size_t len;
} tu_pair;

void tu_pair_open(tu_pair *p, const ngl_stream_config *cfg);
void tu_pair_close(tu_pair *p);
/* Encode @p src, check len <= bound, decode into @p dst (flags 0), check
 * both sides' state hashes are equal and the steps advanced. */
void tu_pair_step(tu_pair *p, const void *src, void *dst);

/* ---- frame sections (no back end) ------------------------------------ */
typedef struct tu_frame {
    ngl_frame_info fi;
    const uint8_t *body;
    size_t body_len;
    uint32_t n_exc;
    const uint8_t *mask; /* NULL unless MASK */
    uint32_t k;          /* TOPK */
    uint32_t idx_bytes;
    unsigned idx_fmt;
    const uint8_t *idx;
    const uint8_t *scales;
    uint64_t nscales;
    const uint8_t *codes;
    uint64_t ncoded;
    const uint8_t *exc; /* n_exc entries of u32 index + dtype bits */
    size_t exc_size;    /* bytes per entry */
} tu_frame;

/* Locate the sections of an INT8/INT4 frame and check that they add up. */
void tu_frame_parse_quant(const uint8_t *frame, size_t len, tu_frame *f);
/* Decode the Top-K index section into @p out (k entries); asserts it is
 * well formed and strictly increasing. */
void tu_frame_topk_indices(const tu_frame *f, uint64_t count, uint32_t *out);

/* ---- spec model of an INT8/INT4 stream ------------------------------- */
typedef struct tu_model {
    ngl_stream_config cfg;
    uint64_t n;
    uint32_t B, nb;
    int qmax;
    uint64_t step;
    uint32_t hist;
    float *st1, *st2; /* momentum m / linear x1, linear x2 */
    uint8_t *gate;
    float *ef; /* tracked error feedback, NULL when off */
    float *x, *t, *p, *praw, *r, *xhat;
    uint8_t *is_exc, *is_sel;
    uint32_t *idx; /* Top-K indices of the current frame */
    /* optional: the mask the next frame must carry (user mask); NULL =
     * the rotation rule */
    const uint8_t *expect_mask;
    /* statistics of the last step */
    uint64_t last_exc, last_skipped_blocks;
    double last_max_err_ratio; /* max |xhat - t| / scale over coded elements */
} tu_model;

void tu_model_init(tu_model *m, const ngl_stream_config *cfg);
void tu_model_fini(tu_model *m);
/* Check one frame and the decoder's output for input @p src, then advance
 * the model. @p dec_out is what ngl_decoder_decode() wrote (flags 0). */
void tu_model_step(tu_model *m, const void *src, const uint8_t *frame, size_t len,
                   const void *dec_out);
/* Blocks skipped by the rotation at @p step for @p fraction. */
unsigned tu_mask_skip_count(double fraction);

/* Fill @p buf with @p n elements of a smooth, slowly drifting signal plus
 * noise, deterministic in (seed, step); values roughly in [-amp, amp]. */
void tu_fill_signal(void *buf, ngl_dtype dt, size_t n, uint64_t seed, uint64_t step, float amp);

#endif /* NGL_TESTUTIL_H */
