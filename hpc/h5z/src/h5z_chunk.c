/* SPDX-License-Identifier: Apache-2.0 */
/*
 * h5z_chunk.c -- one HDF5 chunk through the hpc codec and back.
 *
 * Each chunk is an independent hpc stream (its own encoder, from scratch), so
 * HDF5 can read any chunk alone. A trajectory chunk is coded frame after
 * frame, so the closed-loop temporal predictors work across the frames of the
 * chunk; any other chunk is one frame whose "atoms" are the values taken
 * three at a time, where only the spatial delta applies. The hpc codec checks
 * the bound on every value itself and stores what it cannot bound (NaN, Inf,
 * huge values) bit for bit, so the filter needs no exception list of its own.
 */
#include "h5z_chunk.h"
#include "ngl_byteorder.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t h5z_magic[4] = {'N', 'H', '5', 'Z'};

enum {
    OFF_VERSION = 4,
    OFF_DTYPE = 5,
    OFF_CODEC = 6,
    OFF_FLAGS = 7,
    OFF_NBYTES = 8,
    OFF_FRAMES = 16,
    OFF_ATOMS = 24,
    OFF_EPS = 32,
    OFF_PAYLOAD_LEN = 40,
    OFF_CRC = 48
};
_Static_assert(OFF_CRC + 4 == NGL_H5Z_HEADER_SIZE, "header layout");

#define H5Z_FLAG_REL 1u

/* HDF5 chunks are below 4 GiB; anything claiming more is not ours. */
#define H5Z_NBYTES_MAX 0xFFFFFFFFull

static size_t dtype_size(ngl_hpc_dtype t)
{
    return t == NGL_HPC_F64 ? 8u : 4u;
}

size_t h5z_chunk_bound(size_t nbytes)
{
    return nbytes + NGL_H5Z_HEADER_SIZE;
}

static void write_header(uint8_t *dst, ngl_hpc_dtype dtype, int codec, unsigned flags,
                         uint64_t nbytes, uint64_t frames, uint64_t atoms, double eps,
                         uint64_t payload_len)
{
    memcpy(dst, h5z_magic, 4);
    dst[OFF_VERSION] = H5Z_FORMAT_VERSION;
    dst[OFF_DTYPE] = (uint8_t)dtype;
    dst[OFF_CODEC] = (uint8_t)codec;
    dst[OFF_FLAGS] = (uint8_t)flags;
    ngl_wr_u64(dst + OFF_NBYTES, nbytes);
    ngl_wr_u64(dst + OFF_FRAMES, frames);
    ngl_wr_u64(dst + OFF_ATOMS, atoms);
    ngl_wr_f64(dst + OFF_EPS, eps);
    ngl_wr_u64(dst + OFF_PAYLOAD_LEN, payload_len);
    uint32_t crc = ngl_crc32c(0, dst, OFF_CRC);
    crc = ngl_crc32c(crc, dst + NGL_H5Z_HEADER_SIZE, (size_t)payload_len);
    ngl_wr_u32(dst + OFF_CRC, crc);
}

static size_t store_raw(ngl_hpc_dtype dtype, const void *src, size_t nbytes, uint8_t *dst)
{
    if (nbytes > 0) {
        memcpy(dst + NGL_H5Z_HEADER_SIZE, src, nbytes);
    }
    write_header(dst, dtype, H5Z_CODEC_RAW, 0, nbytes, 0, 0, 0.0, nbytes);
    return NGL_H5Z_HEADER_SIZE + nbytes;
}

/* Range of the finite values, for the relative bound; 0 when there are none. */
static double finite_range(ngl_hpc_dtype dtype, const void *src, size_t n)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double v = dtype == NGL_HPC_F64 ? ((const double *)src)[i] : ((const float *)src)[i];
        if (isfinite(v)) {
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
    return hi >= lo ? hi - lo : 0.0;
}

/*
 * Code @p frames frames of @p atoms atoms from @p xyz into the payload at
 * @p out (capacity @p cap). Returns the payload length, or 0 when it does not
 * fit or the codec failed: the caller then stores the chunk raw.
 */
static size_t encode_frames(const h5z_chunk_params *p, double eps_abs, const void *xyz,
                            uint64_t frames, uint64_t atoms, uint8_t *out, size_t cap)
{
    ngl_hpc_params hp;
    ngl_hpc_params_init(&hp);
    hp.dtype = p->dtype;
    hp.eps = eps_abs;
    hp.level = p->level;
    const size_t frame_bytes = (size_t)atoms * 3u * dtype_size(p->dtype);
    const size_t scratch_cap = ngl_hpc_encode_bound(atoms);
    size_t pos = 0;
    ngl_hpc_encoder *enc = NULL;
    uint8_t *scratch = malloc(scratch_cap);
    if (scratch == NULL || ngl_hpc_encoder_create(&hp, &enc) != NGL_OK) {
        goto fail;
    }
    for (uint64_t f = 0; f < frames; f++) {
        /* No ids (atoms 0..n-1 in order) and no box: the filter does not know
         * the simulation box, so unwrapped or wrapped coordinates alike are
         * coded as free ones. */
        ngl_hpc_frame fr = {.natoms = atoms, .xyz = (const uint8_t *)xyz + f * frame_bytes};
        size_t len = 0;
        if (ngl_hpc_encoder_encode(enc, &fr, scratch, scratch_cap, &len) != NGL_OK ||
            len > cap - pos) {
            goto fail;
        }
        memcpy(out + pos, scratch, len);
        pos += len;
    }
    ngl_hpc_encoder_destroy(enc);
    free(scratch);
    return pos;
fail:
    ngl_hpc_encoder_destroy(enc);
    free(scratch);
    return 0;
}

ngl_status h5z_chunk_encode(const h5z_chunk_params *p, const void *src, size_t nbytes, void *dst,
                            size_t dst_cap, size_t *out_len, h5z_chunk_info *info)
{
    if (p == NULL || dst == NULL || out_len == NULL || (src == NULL && nbytes > 0) ||
        (p->dtype != NGL_HPC_F32 && p->dtype != NGL_HPC_F64) ||
        (p->mode != NGL_H5Z_MODE_ABS && p->mode != NGL_H5Z_MODE_REL) || !(p->eps >= 0) ||
        !isfinite(p->eps) ||
        (p->level != NGL_HPC_LEVEL_FASTEST && p->level != NGL_HPC_LEVEL_FAST) ||
        (uint64_t)nbytes > H5Z_NBYTES_MAX) {
        return NGL_ERR_INVALID_ARG;
    }
    if (dst_cap < h5z_chunk_bound(nbytes)) {
        return NGL_ERR_DST_TOO_SMALL;
    }
    uint8_t *out = dst;
    h5z_chunk_info local = {.codec = H5Z_CODEC_RAW, .eps_abs = 0.0};
    const size_t es = dtype_size(p->dtype);
    const size_t n = nbytes / es;
    *out_len = 0;
    if (n == 0 || nbytes % es != 0) {
        goto raw;
    }

    double eps_abs = p->eps;
    if (p->mode == NGL_H5Z_MODE_REL) {
        eps_abs = p->eps * finite_range(p->dtype, src, n);
    }
    if (!(eps_abs <= H5Z_EPS_MAX)) {
        eps_abs = H5Z_EPS_MAX; /* inf * range overflowed, or a huge eps: tighter is fine */
    }

    int codec = H5Z_CODEC_FLAT;
    uint64_t frames = 1, atoms = (n + 2) / 3;
    const void *xyz = src;
    void *padded = NULL;
    if (p->frames > 0 && p->atoms > 0 && p->atoms <= NGL_HPC_MAX_ATOMS &&
        p->frames <= n / 3 / p->atoms && p->frames * p->atoms * 3 == n) {
        codec = H5Z_CODEC_TRAJ;
        frames = p->frames;
        atoms = p->atoms;
    } else if (atoms > NGL_HPC_MAX_ATOMS) {
        goto raw;
    } else if (n % 3 != 0) {
        /* Pad the last triple by repeating the last value: its spatial delta
         * is then zero, and the decoder drops it. */
        padded = malloc(atoms * 3 * es);
        if (padded == NULL) {
            goto raw;
        }
        memcpy(padded, src, nbytes);
        for (size_t i = n; i < atoms * 3; i++) {
            memcpy((uint8_t *)padded + i * es, (const uint8_t *)src + (n - 1) * es, es);
        }
        xyz = padded;
    }
    /* Worth it only when strictly smaller than storing the bytes. */
    size_t plen =
        encode_frames(p, eps_abs, xyz, frames, atoms, out + NGL_H5Z_HEADER_SIZE, nbytes - 1);
    free(padded);
    if (plen == 0) {
        goto raw;
    }
    write_header(out, p->dtype, codec, p->mode == NGL_H5Z_MODE_REL ? H5Z_FLAG_REL : 0u, nbytes,
                 frames, atoms, eps_abs, plen);
    *out_len = NGL_H5Z_HEADER_SIZE + plen;
    local.codec = codec;
    local.eps_abs = eps_abs;
    if (info != NULL) {
        *info = local;
    }
    return NGL_OK;
raw:
    *out_len = store_raw(p->dtype, src, nbytes, out);
    if (info != NULL) {
        *info = local;
    }
    return NGL_OK;
}

/* The parsed, checked header. */
typedef struct h5z_header {
    ngl_hpc_dtype dtype;
    int codec;
    uint64_t nbytes, frames, atoms, payload_len;
    double eps;
} h5z_header;

static ngl_status parse_header(const uint8_t *s, size_t len, h5z_header *h)
{
    if (s == NULL || len < NGL_H5Z_HEADER_SIZE) {
        return NGL_ERR_TRUNCATED;
    }
    if (memcmp(s, h5z_magic, 4) != 0) {
        return NGL_ERR_BAD_MAGIC;
    }
    if (s[OFF_VERSION] != H5Z_FORMAT_VERSION) {
        return NGL_ERR_BAD_VERSION;
    }
    h->payload_len = ngl_rd_u64(s + OFF_PAYLOAD_LEN);
    if (h->payload_len != (uint64_t)(len - NGL_H5Z_HEADER_SIZE)) {
        return h->payload_len > (uint64_t)(len - NGL_H5Z_HEADER_SIZE) ? NGL_ERR_TRUNCATED
                                                                      : NGL_ERR_BAD_LENGTH;
    }
    uint32_t crc = ngl_crc32c(0, s, OFF_CRC);
    crc = ngl_crc32c(crc, s + NGL_H5Z_HEADER_SIZE, (size_t)h->payload_len);
    if (crc != ngl_rd_u32(s + OFF_CRC)) {
        return NGL_ERR_CRC_MISMATCH;
    }
    /* From here on the bytes are what an encoder wrote, unless crafted: the
     * checks below keep a crafted header from making us allocate or index
     * out of proportion. */
    if (s[OFF_DTYPE] > NGL_HPC_F64) {
        return NGL_ERR_BAD_DTYPE;
    }
    h->dtype = (ngl_hpc_dtype)s[OFF_DTYPE];
    h->codec = s[OFF_CODEC];
    if (h->codec > H5Z_CODEC_FLAT) {
        return NGL_ERR_BAD_CODEC;
    }
    if ((s[OFF_FLAGS] & ~H5Z_FLAG_REL) != 0 || (h->codec == H5Z_CODEC_RAW && s[OFF_FLAGS] != 0)) {
        return NGL_ERR_BAD_FLAGS;
    }
    h->nbytes = ngl_rd_u64(s + OFF_NBYTES);
    h->frames = ngl_rd_u64(s + OFF_FRAMES);
    h->atoms = ngl_rd_u64(s + OFF_ATOMS);
    h->eps = ngl_rd_f64(s + OFF_EPS);
    if (h->nbytes > H5Z_NBYTES_MAX) {
        return NGL_ERR_BAD_LENGTH;
    }
    const uint64_t es = dtype_size(h->dtype);
    switch (h->codec) {
    case H5Z_CODEC_RAW:
        if (h->frames != 0 || h->atoms != 0 || h->payload_len != h->nbytes || h->eps != 0.0) {
            return NGL_ERR_BAD_LENGTH;
        }
        break;
    case H5Z_CODEC_TRAJ:
        if (h->atoms == 0 || h->atoms > NGL_HPC_MAX_ATOMS || h->frames == 0 ||
            h->frames > h->nbytes / (3 * es * h->atoms) ||
            h->frames * h->atoms * 3 * es != h->nbytes) {
            return NGL_ERR_BAD_LENGTH;
        }
        break;
    default: /* FLAT */
        if (h->nbytes == 0 || h->nbytes % es != 0 || h->frames != 1 ||
            h->atoms != (h->nbytes / es + 2) / 3 || h->atoms > NGL_HPC_MAX_ATOMS) {
            return NGL_ERR_BAD_LENGTH;
        }
        break;
    }
    if (h->codec != H5Z_CODEC_RAW && !(h->eps >= 0 && h->eps <= H5Z_EPS_MAX)) {
        return NGL_ERR_BAD_SCALE;
    }
    return NGL_OK;
}

ngl_status h5z_chunk_inspect(const void *src, size_t len, size_t *nbytes)
{
    h5z_header h;
    ngl_status st = parse_header(src, len, &h);
    if (st == NGL_OK && nbytes != NULL) {
        *nbytes = (size_t)h.nbytes;
    }
    return st;
}

/* Decode the hpc stream of a TRAJ or FLAT chunk, frame by frame, into dst. */
static ngl_status decode_frames(const h5z_header *h, const uint8_t *s, size_t len, uint8_t *dst)
{
    const size_t es = dtype_size(h->dtype);
    const size_t frame_bytes = (size_t)h->atoms * 3 * es;
    ngl_hpc_decoder *dec = NULL;
    ngl_status st = ngl_hpc_decoder_create(&dec);
    if (st != NGL_OK) {
        return st;
    }
    /* The header says how large a frame is; a record claiming more is corrupt,
     * and must not make the decoder allocate for it. */
    if ((st = ngl_hpc_decoder_set_max_atoms(dec, h->atoms)) != NGL_OK) {
        goto out;
    }
    uint64_t frames = 0;
    int have_params = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t rec = 0;
        int got = 0;
        if ((st = ngl_hpc_record_size(s + pos, len - pos, &rec)) != NGL_OK) {
            goto out;
        }
        if (rec > len - pos) {
            st = NGL_ERR_TRUNCATED;
            goto out;
        }
        if ((st = ngl_hpc_decoder_decode(dec, s + pos, rec, &got)) != NGL_OK) {
            goto out;
        }
        pos += rec;
        if (!have_params) {
            ngl_hpc_params hp;
            /* The first record is the stream header: its dtype must be ours. */
            if (got || ngl_hpc_decoder_params(dec, &hp) != NGL_OK || hp.dtype != h->dtype) {
                st = NGL_ERR_BAD_DTYPE;
                goto out;
            }
            have_params = 1;
            continue;
        }
        if (!got) {
            st = NGL_ERR_BAD_SECTION;
            goto out;
        }
        const ngl_hpc_frame *f = ngl_hpc_decoder_frame(dec);
        if (frames >= h->frames || f->natoms != h->atoms) {
            st = NGL_ERR_COUNT_MISMATCH;
            goto out;
        }
        if (h->codec == H5Z_CODEC_FLAT) {
            memcpy(dst, f->xyz, (size_t)h->nbytes); /* the pad stays behind */
        } else {
            memcpy(dst + frames * frame_bytes, f->xyz, frame_bytes);
        }
        frames++;
    }
    st = frames == h->frames ? NGL_OK : NGL_ERR_COUNT_MISMATCH;
out:
    ngl_hpc_decoder_destroy(dec);
    return st;
}

ngl_status h5z_chunk_decode(const void *src, size_t len, void *dst, size_t dst_cap, size_t *out_len)
{
    if (out_len == NULL) {
        return NGL_ERR_INVALID_ARG;
    }
    *out_len = 0;
    h5z_header h;
    ngl_status st = parse_header(src, len, &h);
    if (st != NGL_OK) {
        return st;
    }
    if (dst_cap < h.nbytes || (dst == NULL && h.nbytes > 0)) {
        return NGL_ERR_DST_TOO_SMALL;
    }
    const uint8_t *payload = (const uint8_t *)src + NGL_H5Z_HEADER_SIZE;
    if (h.codec == H5Z_CODEC_RAW) {
        if (h.nbytes > 0) {
            memcpy(dst, payload, (size_t)h.nbytes);
        }
    } else if ((st = decode_frames(&h, payload, (size_t)h.payload_len, dst)) != NGL_OK) {
        return st;
    }
    *out_len = (size_t)h.nbytes;
    return NGL_OK;
}
