/* SPDX-License-Identifier: Apache-2.0 */
/* wire.c -- frame header writer and validating parser. */
#include "ngl_wire.h"

void ngl_wire_write_header(uint8_t *d, const ngl_frame_info *fi)
{
    ngl_wr_u32(d + 0, NGL_MAGIC);
    d[4] = (uint8_t)NGL_FORMAT_VERSION;
    d[5] = (uint8_t)fi->codec;
    d[6] = (uint8_t)fi->dtype;
    d[7] = (uint8_t)fi->predictor;
    ngl_wr_u16(d + 8, fi->flags);
    ngl_wr_u16(d + 10, 0);
    ngl_wr_u32(d + 12, fi->block_size);
    ngl_wr_u64(d + 16, fi->stream_id);
    ngl_wr_u64(d + 24, fi->step);
    ngl_wr_u64(d + 32, fi->count);
    ngl_wr_u32(d + NGL_HDR_PAYLOAD_LEN, fi->payload_len);
    ngl_wr_u32(d + NGL_HDR_CRC, 0);
}

static uint32_t frame_crc(const uint8_t *frame, size_t frame_len)
{
    uint32_t c = ngl_crc32c(0, frame, NGL_HDR_CRC);
    return ngl_crc32c(c, frame + NGL_FRAME_HEADER_SIZE, frame_len - NGL_FRAME_HEADER_SIZE);
}

void ngl_wire_seal(uint8_t *frame, size_t frame_len)
{
    ngl_wr_u32(frame + NGL_HDR_CRC, frame_crc(frame, frame_len));
}

ngl_status ngl_wire_parse(const uint8_t *s, size_t len, int check_crc, ngl_frame_info *fi)
{
    if (s == NULL || len < NGL_FRAME_HEADER_SIZE) {
        return NGL_ERR_TRUNCATED;
    }
    if (ngl_rd_u32(s) != NGL_MAGIC) {
        return NGL_ERR_BAD_MAGIC;
    }
    if (s[4] != NGL_FORMAT_VERSION) {
        return NGL_ERR_BAD_VERSION;
    }
    const unsigned codec = s[5], dtype = s[6], pred = s[7];
    const uint16_t flags = ngl_rd_u16(s + 8);
    if (codec > NGL_CODEC_EPS) {
        return NGL_ERR_BAD_CODEC;
    }
    if (dtype > NGL_DTYPE_F64 ||
        (dtype == NGL_DTYPE_F64 && (codec == NGL_CODEC_INT8 || codec == NGL_CODEC_INT4)) ||
        (codec == NGL_CODEC_EPS && dtype != NGL_DTYPE_F32 && dtype != NGL_DTYPE_F64)) {
        return NGL_ERR_BAD_DTYPE;
    }
    if (pred > NGL_PRED_LINEAR || (codec == NGL_CODEC_RAW && pred != NGL_PRED_NONE)) {
        return NGL_ERR_BAD_PREDICTOR;
    }
    if ((flags & ~NGL_FLAGS_KNOWN) != 0 || ngl_rd_u16(s + 10) != 0 ||
        ngl_flags_backend(flags) == 3u ||
        ((codec == NGL_CODEC_RAW || codec == NGL_CODEC_EPS) &&
         (flags & (NGL_FLAG_TOPK | NGL_FLAG_MASK)) != 0)) {
        return NGL_ERR_BAD_FLAGS;
    }
    const uint32_t block = ngl_rd_u32(s + 12);
    if (block < NGL_BLOCK_MIN || block > NGL_BLOCK_MAX || (block % 8u) != 0) {
        return NGL_ERR_BAD_BLOCK_SIZE;
    }
    const uint64_t count = ngl_rd_u64(s + 32);
    if (count > NGL_COUNT_MAX) {
        return NGL_ERR_BAD_LENGTH;
    }
    const uint32_t payload_len = ngl_rd_u32(s + NGL_HDR_PAYLOAD_LEN);
    const uint64_t want = (uint64_t)NGL_FRAME_HEADER_SIZE + payload_len;
    if (len < want) {
        return NGL_ERR_TRUNCATED;
    }
    if (len > want) {
        return NGL_ERR_BAD_LENGTH;
    }
    const uint32_t crc = ngl_rd_u32(s + NGL_HDR_CRC);
    if (check_crc && frame_crc(s, len) != crc) {
        return NGL_ERR_CRC_MISMATCH;
    }
    if (fi) {
        fi->version = s[4];
        fi->codec = (ngl_codec)codec;
        fi->dtype = (ngl_dtype)dtype;
        fi->predictor = (ngl_predictor)pred;
        fi->flags = flags;
        fi->block_size = block;
        fi->stream_id = ngl_rd_u64(s + 16);
        fi->step = ngl_rd_u64(s + 24);
        fi->count = count;
        fi->payload_len = payload_len;
        fi->crc32c = crc;
    }
    return NGL_OK;
}

ngl_status ngl_frame_inspect(const void *src, size_t src_len, int check_crc, ngl_frame_info *info)
{
    return ngl_wire_parse((const uint8_t *)src, src_len, check_crc, info);
}
