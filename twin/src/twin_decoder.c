/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_decoder.c -- ngl_twin_decoder: one message in, its samples out, with
 * the sequencing rules of docs/wire-format.md ("Twin messages: receiving").
 */
#include "twin_core.h"

#include <stdlib.h>

struct ngl_twin_decoder {
    ngl_twin_decoder_opts opts;
    int locked;         /* stream_id below is the stream followed */
    uint32_t stream_id; /* valid when locked or opts.match_stream_id */
    int synced;         /* st holds the encoder's state after message seq - 1 */
    int expect_valid;   /* st.seq is the next sequence number expected */
    int lost;           /* sync was lost (gap, error): the next keyframe is a resync */
    int have_crc0;      /* crc0 holds the CRC of the last seq-0 keyframe accepted */
    uint32_t crc0;
    twin_stream st;
    ngl_twin_decoder_stats stats;
};

void ngl_twin_decoder_opts_init(ngl_twin_decoder_opts *opts)
{
    if (opts == NULL) {
        return;
    }
    memset(opts, 0, sizeof(*opts));
    opts->max_channels = 4096;
    opts->max_samples = NGL_TWIN_MAX_SAMPLES;
}

ngl_status ngl_twin_decoder_create(const ngl_twin_decoder_opts *opts, ngl_twin_decoder **out)
{
    ngl_twin_decoder_opts o;
    if (out == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *out = NULL;
    ngl_twin_decoder_opts_init(&o);
    if (opts != NULL) {
        o = *opts;
    }
    if (o.max_channels == 0 || o.max_channels > NGL_TWIN_MAX_CHANNELS || o.max_samples == 0 ||
        o.max_samples > NGL_TWIN_MAX_SAMPLES) {
        return NGL_ERR_INVALID_ARG;
    }
    ngl_twin_decoder *dec = calloc(1, sizeof(*dec));
    if (dec == NULL) {
        return NGL_ERR_NO_MEMORY;
    }
    dec->opts = o;
    dec->stream_id = o.stream_id;
    /* context tables now; channel state at the first keyframe */
    if (twin_stream_alloc(&dec->st, 1) != NGL_OK) {
        free(dec);
        return NGL_ERR_NO_MEMORY;
    }
    *out = dec;
    return NGL_OK;
}

void ngl_twin_decoder_destroy(ngl_twin_decoder *dec)
{
    if (dec == NULL) {
        return;
    }
    twin_stream_free(&dec->st);
    free(dec);
}

void ngl_twin_decoder_reset(ngl_twin_decoder *dec)
{
    if (dec == NULL) {
        return;
    }
    dec->locked = 0;
    dec->stream_id = dec->opts.stream_id;
    dec->synced = 0;
    dec->expect_valid = 0;
    dec->lost = 0;
    dec->have_crc0 = 0;
}

uint64_t ngl_twin_decoder_state_hash(const ngl_twin_decoder *dec)
{
    return dec && dec->synced ? twin_stream_hash(&dec->st) : 0;
}

int ngl_twin_decoder_synced(const ngl_twin_decoder *dec)
{
    return dec ? dec->synced : 0;
}

void ngl_twin_decoder_get_stats(const ngl_twin_decoder *dec, ngl_twin_decoder_stats *out)
{
    if (out == NULL) {
        return;
    }
    if (dec == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = dec->stats;
}

size_t ngl_twin_decoder_bound(const ngl_twin_decoder *dec)
{
    return dec ? (size_t)dec->opts.max_samples * dec->opts.max_channels * 8u : 0;
}

/* Read one token of context @p cx; -1 if the coder produced one the encoder
 * cannot have written. */
static inline int read_token(twin_rdec *rd, hpc_ctx *cx)
{
    unsigned s = twin_rdec_sym(rd, cx);
    if (__builtin_expect(s == HPC_TOK_RARE, 0)) {
        s = (unsigned)twin_rdec_raw(rd, 8);
        /* an escape stands only for a token the context cannot code directly */
        if (s >= TWIN_TOK_COUNT || cx->freq[s] != 0) {
            return -1;
        }
    } else if (s >= TWIN_TOK_COUNT) {
        return -1;
    }
    hpc_ctx_count(cx, s);
    return (int)s;
}

/* Write value @p v's bit pattern (native byte order). */
static inline void store_bits(uint8_t *dst, size_t v, int is64, uint64_t bits)
{
    if (is64) {
        memcpy(dst + 8 * v, &bits, 8);
    } else {
        const uint32_t b32 = (uint32_t)bits;
        memcpy(dst + 4 * v, &b32, 4);
    }
}

/* Decode the message's values into @p dst, advancing the state. @return
 * NGL_OK or NGL_ERR_BAD_CODE (state then unusable). */
static ngl_status decode_values(twin_stream *s, const twin_msg *m, uint8_t *dst)
{
    const uint32_t C = s->channels;
    const int is64 = s->dtype == NGL_DTYPE_F64;
    twin_rdec rd;
    if (twin_rdec_init(&rd, m->body, m->body_len) != 0) {
        return NGL_ERR_BAD_CODE;
    }
    twin_refresh(s->ctx, 1);
    size_t v = 0, next_refresh = HPC_CHUNK;
    for (uint32_t i = 0; i < m->hdr.nsamples; i++) {
        for (uint32_t j = 0; j < C; j++, v++) {
            if (__builtin_expect(v == next_refresh, 0)) {
                twin_refresh(s->ctx, 1);
                next_refresh += HPC_CHUNK;
            }
            twin_chan *c = &s->ch[j];
            const twin_param *pp = &s->par[j];
            int64_t p[TWIN_NPRED];
            double d[TWIN_TAPS], y;
            twin_predict(c, p, d, &y);
            const unsigned k = twin_choose(c);
            const int tok = read_token(&rd, &s->ctx[twin_ctx_index(c)]);
            if (__builtin_expect(tok >= (int)TWIN_TOK_EXACT, 0)) {
                if (tok == (int)TWIN_TOK_EXACT) {
                    c->xbits = twin_rdec_raw(&rd, is64 ? 64u : 32u);
                }
                store_bits(dst, v, is64, c->xbits);
                continue;
            }
            if (tok < 0) {
                return NGL_ERR_BAD_CODE;
            }
            unsigned nraw;
            uint64_t z = twin_untoken((unsigned)tok, &nraw);
            if (nraw) {
                z |= twin_rdec_raw(&rd, nraw);
            }
            const int64_t q = hpc_wadd(p[k], ngl_unzigzag(z));
            uint64_t bits;
            if (is64) {
                if (!twin_recon64(pp, q, &bits)) {
                    return NGL_ERR_BAD_CODE;
                }
            } else {
                uint32_t b32;
                if (!twin_recon32(pp, q, &b32)) {
                    return NGL_ERR_BAD_CODE;
                }
                bits = b32;
            }
            store_bits(dst, v, is64, bits);
            twin_update(c, q, p, d, y, twin_bitlen(z));
        }
    }
    /* The section must be consumed exactly, the state back at its start. */
    if (twin_rdec_finish(&rd) != 0) {
        return NGL_ERR_BAD_CODE;
    }
    return NGL_OK;
}

/* Take the keyframe's stream parameters and reset the state. */
static ngl_status adopt_keyframe(ngl_twin_decoder *dec, const twin_msg *m)
{
    twin_stream *s = &dec->st;
    const uint32_t C = m->hdr.channels;
    if (C > s->cap) {
        ngl_status st = twin_stream_alloc(s, C);
        if (st != NGL_OK) {
            return st;
        }
    }
    s->channels = C;
    s->dtype = m->hdr.dtype;
    for (uint32_t j = 0; j < C; j++) {
        s->bounds[j] = twin_msg_bound(m, j);
    }
    /* configure from the copied bounds (param derivation is shared) */
    twin_stream_configure(s, C, m->hdr.dtype, s->bounds, s->bounds[0]);
    twin_msg_divs(m, s->divs);
    twin_stream_set_divs(s, m->divs_present ? s->divs : NULL);
    twin_stream_reset(s);
    return NGL_OK;
}

static void lose_sync(ngl_twin_decoder *dec)
{
    dec->synced = 0;
    dec->lost = 1;
}

ngl_status ngl_twin_decoder_decode(ngl_twin_decoder *dec, const void *msg, size_t msg_len,
                                   void *dst, size_t dst_cap, ngl_twin_info *info)
{
    twin_msg m;
    ngl_status st;
    if (info != NULL) {
        memset(info, 0, sizeof(*info));
    }
    if (dec == NULL || msg == NULL || info == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    if ((st = twin_parse(msg, msg_len, 1, &m)) != NGL_OK) {
        goto reject;
    }
    const ngl_twin_header *h = &m.hdr;
    const int key = h->type == NGL_TWIN_MSG_KEY;
    if ((dec->opts.match_stream_id || dec->locked) && h->stream_id != dec->stream_id) {
        st = NGL_ERR_STREAM_MISMATCH;
        goto reject;
    }
    if (h->nsamples > dec->opts.max_samples || (key && h->channels > dec->opts.max_channels)) {
        st = NGL_ERR_UNSUPPORTED;
        goto reject;
    }
    twin_stream *s = &dec->st;
    info->type = h->type;
    info->stream_id = h->stream_id;
    info->seq = h->seq;
    info->channels = key ? h->channels : (dec->synced ? s->channels : 0);
    info->dtype = key ? h->dtype : (dec->synced ? s->dtype : NGL_DTYPE_F32);
    if (key) {
        info->flags |= NGL_TWIN_INFO_KEYFRAME;
    }

    /* Where does the message stand relative to the one expected? */
    const int behind = dec->expect_valid && h->seq < s->seq;
    /* A keyframe with seq 0 behind the expected one is an encoder restart,
     * unless it is a copy of the seq-0 keyframe already taken. */
    const uint32_t crc = ngl_rd_u32((const uint8_t *)msg + msg_len - TWIN_CRC_SIZE);
    const int restart = key && behind && h->seq == 0 && !(dec->have_crc0 && dec->crc0 == crc);
    if (behind && !restart) {
        info->flags |= NGL_TWIN_INFO_STALE;
        dec->stats.stale++;
        dec->stats.messages++;
        return NGL_OK;
    }
    uint64_t missing = 0;
    if (dec->expect_valid && h->seq > s->seq) {
        missing = h->seq - s->seq;
    }

    if (key) {
        const size_t need = (size_t)h->nsamples * h->channels * twin_value_size(h->dtype);
        if (dst_cap < need || (dst == NULL && need > 0)) {
            info->nsamples = h->nsamples;
            return NGL_ERR_DST_TOO_SMALL;
        }
        if ((st = adopt_keyframe(dec, &m)) != NGL_OK) {
            lose_sync(dec);
            goto reject;
        }
        /* A keyframe continues the stream cleanly only at the expected
         * sequence number, after a delta or an end-of-stream message that
         * was accepted; anything else (re)establishes sync. */
        const int clean = !missing && !restart && dec->expect_valid && (dec->synced || !dec->lost);
        if (missing) {
            info->flags |= NGL_TWIN_INFO_GAP;
            info->missing = missing;
            dec->stats.gaps++;
            dec->stats.missing += missing;
        }
        if (restart) {
            info->flags |= NGL_TWIN_INFO_RESTART;
        }
        if (!clean) {
            info->flags |= NGL_TWIN_INFO_RESYNC;
            dec->stats.resyncs++;
        }
        dec->locked = 1;
        dec->stream_id = h->stream_id;
        s->seq = h->seq;
        if ((st = decode_values(s, &m, dst)) != NGL_OK) {
            memset(info, 0, sizeof(*info));
            lose_sync(dec);
            dec->expect_valid = 1;
            s->seq = h->seq + 1;
            goto reject;
        }
        s->seq = h->seq + 1;
        if (h->seq == 0) {
            dec->have_crc0 = 1;
            dec->crc0 = crc;
        }
        dec->synced = 1;
        dec->expect_valid = 1;
        dec->lost = 0;
        info->nsamples = h->nsamples;
        dec->stats.samples += h->nsamples;
        dec->stats.messages++;
        return NGL_OK;
    }

    /* delta or end-of-stream */
    if (missing) {
        info->flags |= NGL_TWIN_INFO_GAP;
        info->missing = missing;
        dec->stats.gaps++;
        dec->stats.missing += missing;
        if (dec->synced) {
            lose_sync(dec);
        }
    }
    if (h->type == NGL_TWIN_MSG_END) {
        info->flags |= NGL_TWIN_INFO_END;
        /* the stream stops here; the next keyframe continues it */
        dec->synced = 0;
        if (missing) {
            dec->lost = 1;
        }
    } else if (!dec->synced) {
        info->flags |= NGL_TWIN_INFO_WAITING;
        dec->stats.waiting++;
        dec->lost = 1;
    } else {
        if ((uint64_t)h->nsamples * s->channels > NGL_TWIN_MAX_VALUES) {
            st = NGL_ERR_COUNT_MISMATCH;
            memset(info, 0, sizeof(*info));
            goto reject;
        }
        const size_t need = (size_t)h->nsamples * s->channels * twin_value_size(s->dtype);
        if (dst_cap < need || dst == NULL) {
            info->nsamples = h->nsamples;
            return NGL_ERR_DST_TOO_SMALL;
        }
        if ((st = decode_values(s, &m, dst)) != NGL_OK) {
            memset(info, 0, sizeof(*info));
            lose_sync(dec);
            s->seq = h->seq + 1;
            goto reject;
        }
        info->nsamples = h->nsamples;
        dec->stats.samples += h->nsamples;
    }
    if (dec->locked || dec->opts.match_stream_id) {
        /* a stream followed: account for this message's sequence number */
        s->seq = h->seq + 1;
        dec->expect_valid = 1;
    }
    dec->stats.messages++;
    return NGL_OK;

reject:
    dec->stats.rejected++;
    return st;
}
