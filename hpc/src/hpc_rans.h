/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_rans.h -- adaptive context models and a two-way interleaved rANS coder
 * (32-bit states, 16-bit renormalisation, 15-bit probabilities).
 *
 * Adaptation is backward: every coded symbol is counted in its context, and
 * both sides rebuild a context's frequency table at the same points (the
 * start of a frame and every HPC_CHUNK values) once enough new symbols
 * arrived. No table is ever transmitted. Symbols a context has never seen
 * have frequency 0 and are sent as the escape symbol HPC_TOK_RARE followed by
 * 8 raw bits, so the tables need no probability mass for the unseen tail.
 */
#ifndef NGL_HPC_RANS_H
#define NGL_HPC_RANS_H

#include "hpc_internal.h"

#define HPC_PROB_BITS   15u
#define HPC_PROB_SCALE  (1u << HPC_PROB_BITS)
#define HPC_RANS_L      (1u << 16)
#define HPC_COUNT_LIMIT (1u << 15) /* halve the counts of a context at this total */
#define HPC_CHUNK       1024u      /* values between table refresh points */

typedef enum hpc_ctx_kind {
    HPC_CTX_TOKEN = 0, /* 256-symbol token alphabet, escape HPC_TOK_RARE */
    HPC_CTX_BINARY = 1 /* symbols 0 and 1, both always codable */
} hpc_ctx_kind;

typedef struct hpc_ctx {
    uint32_t total; /* sum of acc[] */
    uint32_t since; /* symbols counted since the table was built */
    uint16_t nsym;
    uint16_t kind;
    uint16_t acc[HPC_NSYM];           /* adaptive counts (total < HPC_COUNT_LIMIT) */
    uint16_t freq[HPC_NSYM];          /* current table; 0 = not codable directly */
    uint16_t cum[HPC_NSYM + 1];       /* cum[s] = sum of freq[0..s-1]; cum[nsym] = scale */
    uint8_t lut[HPC_PROB_SCALE >> 7]; /* first symbol of each 128-slot stretch */
    uint32_t word[HPC_NSYM];          /* encoder: cum[s] | freq[s] << 16 (0: not codable) */
} hpc_ctx;

void hpc_ctx_init(hpc_ctx *c, hpc_ctx_kind kind);
/* Rebuild the table from the counts (FORMAT.md §4.2; exact). @p with_lut:
 * also the decoder's slot lookup table, which the encoder does not need. */
void hpc_ctx_build(hpc_ctx *c, int with_lut);
void hpc_ctx_halve(hpc_ctx *c);
/* Rebuild every context of the set whose counts moved enough since its last build. */
void hpc_ctxset_refresh(hpc_ctx *set, unsigned n, int with_lut);
/* floor(a 2^15 / T) for 1 <= a <= T < 2^15, inv_total = 1.0 / T (exposed for
 * the test that checks it on every pair). */
uint32_t hpc_scaled_count(uint32_t a, double inv_total);

static inline void hpc_ctx_count(hpc_ctx *c, unsigned s)
{
    c->acc[s]++;
    c->total++;
    c->since++;
    if (c->total >= HPC_COUNT_LIMIT) {
        hpc_ctx_halve(c);
    }
}

/* ------------------------------------------------------------ encoding */
/* The encoder records (start, freq) of each symbol in coding order, then
 * runs rANS backwards over the record. */
typedef struct hpc_symbuf {
    uint32_t *sym; /* start | freq << 16 */
    size_t n, cap;
} hpc_symbuf;

/* Code symbol @p s in context @p c: appends to @p sb (and, for an escape, 8 raw
 * bits to @p raw), then counts it. */
static inline __attribute__((always_inline)) void hpc_enc_sym(hpc_symbuf *sb, hpc_bitw *raw,
                                                              hpc_ctx *c, unsigned s)
{
    uint32_t w = c->word[s];
    assert(sb->n < sb->cap);
    if (__builtin_expect(w != 0, 1)) {
        sb->sym[sb->n++] = w;
    } else {
        assert(c->kind == HPC_CTX_TOKEN && c->freq[HPC_TOK_RARE] != 0);
        sb->sym[sb->n++] = c->word[HPC_TOK_RARE];
        hpc_bitw_put(raw, s, 8);
    }
    hpc_ctx_count(c, s);
}

/* rANS-encode sb->sym[0..n) into the tail of [buf, buf + cap).
 * @return the number of bytes; they start at buf + cap - return value. */
size_t hpc_rans_encode(const hpc_symbuf *sb, uint8_t *buf, size_t cap);

/* Worst case of hpc_rans_encode for @p nsym symbols. */
static inline size_t hpc_rans_bound(size_t nsym)
{
    return 2 * nsym + 8;
}

/* ------------------------------------------------------------ decoding */
typedef struct hpc_rdec {
    uint32_t x[2];
    unsigned which;
    const uint8_t *p, *end;
    int overrun;
} hpc_rdec;

/* @return 0, or -1 if the section is too short to hold the two states. */
int hpc_rdec_init(hpc_rdec *d, const uint8_t *buf, size_t len);

/* Decode one symbol of context @p c (escapes are resolved by the caller). */
static inline unsigned hpc_rdec_sym(hpc_rdec *d, hpc_ctx *c)
{
    uint32_t *x = &d->x[d->which];
    d->which ^= 1u;
    uint32_t slot = *x & (HPC_PROB_SCALE - 1);
    unsigned s = c->lut[slot >> 7];
    while (c->cum[s + 1] <= slot) {
        s++;
    }
    *x = (uint32_t)c->freq[s] * (*x >> HPC_PROB_BITS) + slot - c->cum[s];
    if (*x < HPC_RANS_L) {
        if (d->p + 2 <= d->end) {
            *x = (*x << 16) | ngl_rd_u16(d->p);
            d->p += 2;
        } else {
            d->overrun = 1;
            *x = HPC_RANS_L; /* keep going; the frame is rejected at the end */
        }
    }
    return s;
}

/* After the last symbol: 0 if both states are back at their initial value and
 * the section is consumed exactly, -1 otherwise. */
int hpc_rdec_finish(const hpc_rdec *d);

#endif /* NGL_HPC_RANS_H */
