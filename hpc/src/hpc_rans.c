/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_rans.c -- adaptive context tables and rANS (see hpc_rans.h and
 * hpc/FORMAT.md §4).
 */
#include "hpc_rans.h"

#include <stddef.h>

void hpc_ctx_init(hpc_ctx *c, hpc_ctx_kind kind)
{
    /* The initial tables, written directly: they are exactly what
     * hpc_ctx_build() makes of these counts (checked by an assert). */
    memset(c, 0, offsetof(hpc_ctx, lut));
    c->kind = (uint16_t)kind;
    if (kind == HPC_CTX_BINARY) {
        c->nsym = 2;
        c->acc[0] = 1;
        c->acc[1] = 1;
        c->total = 2;
        c->freq[0] = c->freq[1] = HPC_PROB_SCALE / 2;
        c->cum[1] = HPC_PROB_SCALE / 2;
        for (unsigned s = 2; s <= HPC_NSYM; s++) {
            c->cum[s] = HPC_PROB_SCALE;
        }
        memset(c->lut, 0, sizeof(c->lut) / 2);
        memset(c->lut + sizeof(c->lut) / 2, 1, sizeof(c->lut) / 2);
    } else {
        c->nsym = HPC_NSYM;
        c->acc[HPC_TOK_RARE] = 1;
        c->total = 1;
        c->freq[HPC_TOK_RARE] = (uint16_t)HPC_PROB_SCALE;
        for (unsigned s = HPC_TOK_RARE + 1; s <= HPC_NSYM; s++) {
            c->cum[s] = HPC_PROB_SCALE;
        }
        memset(c->lut, HPC_TOK_RARE, sizeof(c->lut));
    }
    for (unsigned s = 0; s < HPC_NSYM; s++) {
        c->word[s] =
            s < c->nsym && c->freq[s] ? (uint32_t)c->cum[s] | ((uint32_t)c->freq[s] << 16) : 0;
    }
    c->since = 0;
}

void hpc_ctx_halve(hpc_ctx *c)
{
    uint32_t total = 0;
    for (unsigned s = 0; s < c->nsym; s++) {
        /* ceil(acc/2): a symbol once seen stays codable without escape */
        c->acc[s] = (uint16_t)(c->acc[s] - (c->acc[s] >> 1));
        total += c->acc[s];
    }
    c->total = total;
}

uint32_t hpc_scaled_count(uint32_t a, double inv_total)
{
    /* floor(a 2^15 / T) for 1 <= a <= T < 2^15 without a division: the
     * product is within 2^-37 of the quotient, whose fraction is 0 or at least
     * 1/T >= 2^-15 below the next integer, so adding 2^-20 and truncating is
     * exact (test_hpc_rans checks every pair). */
    return (uint32_t)((double)a * (double)HPC_PROB_SCALE * inv_total + 0x1p-20);
}

void hpc_ctx_build(hpc_ctx *c, int with_lut)
{
    const unsigned n = c->nsym;
    const uint32_t total = c->total;
    const double inv_total = 1.0 / (double)total;
    uint32_t sum = 0;
    unsigned best = 0;
    assert(total > 0 && total < HPC_COUNT_LIMIT);
    for (unsigned s = 0; s < n; s++) {
        uint32_t a = c->acc[s];
        uint32_t f = 0;
        if (a != 0) {
            f = hpc_scaled_count(a, inv_total);
            if (f == 0) {
                f = 1;
            }
        }
        c->freq[s] = (uint16_t)f;
        sum += f;
        if (f > c->freq[best]) {
            best = s;
        }
    }
    /* Make the frequencies sum to the scale exactly. Rounding down loses less
     * than one per symbol; the bumps to 1 add less than one per symbol. */
    if (sum < HPC_PROB_SCALE) {
        c->freq[best] = (uint16_t)(c->freq[best] + (HPC_PROB_SCALE - sum));
    } else {
        while (sum > HPC_PROB_SCALE) {
            unsigned big = 0;
            for (unsigned s = 1; s < n; s++) {
                if (c->freq[s] > c->freq[big]) {
                    big = s;
                }
            }
            uint32_t take = sum - HPC_PROB_SCALE;
            if (take > (uint32_t)c->freq[big] - 1) {
                take = (uint32_t)c->freq[big] - 1;
            }
            c->freq[big] = (uint16_t)(c->freq[big] - take);
            sum -= take;
        }
    }
    uint32_t cum = 0;
    for (unsigned s = 0; s < n; s++) {
        c->cum[s] = (uint16_t)cum;
        cum += c->freq[s];
    }
    for (unsigned s = n; s <= HPC_NSYM; s++) {
        c->cum[s] = (uint16_t)cum; /* == HPC_PROB_SCALE; sentinels for the decoder scan */
    }
    assert(cum == HPC_PROB_SCALE);
    if (!with_lut) {
        for (unsigned s = 0; s < n; s++) {
            c->word[s] = c->freq[s] ? (uint32_t)c->cum[s] | ((uint32_t)c->freq[s] << 16) : 0;
        }
    }
    if (with_lut) {
        unsigned s = 0;
        for (unsigned i = 0; i < (HPC_PROB_SCALE >> 7); i++) {
            uint32_t slot = (uint32_t)i << 7;
            while (c->cum[s + 1] <= slot) {
                s++;
            }
            c->lut[i] = (uint8_t)s;
        }
    }
    c->since = 0;
}

void hpc_ctxset_refresh(hpc_ctx *set, unsigned n, int with_lut)
{
    for (unsigned i = 0; i < n; i++) {
        hpc_ctx *c = &set[i];
        /* Young contexts rebuild at every refresh point, mature ones after
         * 1/8 of their (capped) count turned over. */
        if (c->since != 0 && (uint64_t)c->since * 8 >= c->total) {
            hpc_ctx_build(c, with_lut);
        }
    }
}

/* Renormalise state *x for a symbol of frequency @p freq: push 16 bits if
 * encoding would leave the state's range. */
static inline uint8_t *rans_renorm(uint32_t *x, uint32_t freq, uint8_t *p)
{
    const uint64_t x_max = ((uint64_t)(HPC_RANS_L >> HPC_PROB_BITS) << 16) * freq;
    if ((uint64_t)*x >= x_max) {
        p -= 2;
        ngl_wr_u16(p, (uint16_t)*x);
        *x >>= 16;
    }
    return p;
}

static inline uint32_t rans_step(uint32_t x, uint32_t sym)
{
    const uint32_t start = sym & 0xFFFFu, freq = sym >> 16;
    return ((x / freq) << HPC_PROB_BITS) + (x % freq) + start;
}

size_t hpc_rans_encode(const hpc_symbuf *sb, uint8_t *buf, size_t cap)
{
    uint32_t x0 = HPC_RANS_L, x1 = HPC_RANS_L;
    uint8_t *p = buf + cap;
    assert(cap >= hpc_rans_bound(sb->n));
    size_t i = sb->n;
    if (i & 1) { /* the last symbol is even: state 0 */
        i--;
        p = rans_renorm(&x0, sb->sym[i] >> 16, p);
        x0 = rans_step(x0, sb->sym[i]);
    }
    /* Pairs from the back: symbol i-1 on state 1, then i-2 on state 0. Their
     * words go out in that order; the two divisions are independent, so the
     * CPU overlaps them. */
    while (i >= 2) {
        const uint32_t a = sb->sym[i - 1], b = sb->sym[i - 2];
        p = rans_renorm(&x1, a >> 16, p);
        p = rans_renorm(&x0, b >> 16, p);
        x1 = rans_step(x1, a);
        x0 = rans_step(x0, b);
        i -= 2;
    }
    p -= 4;
    ngl_wr_u32(p, x1);
    p -= 4;
    ngl_wr_u32(p, x0);
    return (size_t)(buf + cap - p);
}

int hpc_rdec_init(hpc_rdec *d, const uint8_t *buf, size_t len)
{
    d->which = 0;
    d->overrun = 0;
    if (len < 8) {
        d->x[0] = d->x[1] = HPC_RANS_L;
        d->p = d->end = buf;
        return -1;
    }
    d->x[0] = ngl_rd_u32(buf);
    d->x[1] = ngl_rd_u32(buf + 4);
    d->p = buf + 8;
    d->end = buf + len;
    if (d->x[0] < HPC_RANS_L || d->x[1] < HPC_RANS_L) {
        return -1;
    }
    return 0;
}

int hpc_rdec_finish(const hpc_rdec *d)
{
    if (d->overrun || d->p != d->end || d->x[0] != HPC_RANS_L || d->x[1] != HPC_RANS_L) {
        return -1;
    }
    return 0;
}
