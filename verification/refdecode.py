#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""refdecode.py -- an independent decoder for Nangila frames.

Written from docs/wire-format.md alone (and the status values of the public
header core/include/nangila.h), without looking at core/src/, so that the
spec, not the C code, is what it implements. It validates frames in the
spec's order, decodes every codec, keeps the closed-loop predictor and gate
state across a stream's frames, and writes what the C decoder writes.

  refdecode.py check GOLDEN_DIR        compare with tests/golden (exit 1 on any
                                       disagreement)
  refdecode.py inspect FRAME...        print header fields, or the error
  refdecode.py decode OUT FRAME...     decode a stream (configured from its
                                       first frame) into OUT

Needs Python 3 and numpy; zstd frames need the zstandard module (Debian:
python3-zstandard) or the zstd command (used when the module is missing, or
when REFDECODE_ZSTD_CLI is set).
"""

import os
import shutil
import struct
import subprocess
import sys

import numpy as np

# Status values of core/include/nangila.h (ngl_status).
STATUS = {
    "OK": 0,
    "TRUNCATED": 16,
    "BAD_MAGIC": 17,
    "BAD_VERSION": 18,
    "BAD_CODEC": 19,
    "BAD_DTYPE": 20,
    "BAD_PREDICTOR": 21,
    "BAD_FLAGS": 22,
    "BAD_BLOCK_SIZE": 23,
    "BAD_LENGTH": 24,
    "CRC_MISMATCH": 25,
    "BAD_BACKEND": 26,
    "BAD_SECTION": 27,
    "BAD_SCALE": 28,
    "BAD_CODE": 29,
    "BAD_INDEX": 30,
    "BAD_EXCEPTION": 31,
    "BAD_MASK": 32,
    "COUNT_MISMATCH": 33,
    "CONFIG_MISMATCH": 34,
    "STREAM_MISMATCH": 35,
    "STEP_MISMATCH": 36,
    "BACKEND_UNAVAILABLE": 37,
}

RAW, INT8, INT4, EPS = 0, 1, 2, 3
F32, F16, BF16, F64 = 0, 1, 2, 3
PRED_NONE, PRED_MOMENTUM, PRED_LINEAR = 0, 1, 2
CODEC_NAMES = ["raw", "int8", "int4", "eps"]
DTYPE_NAMES = ["f32", "f16", "bf16", "f64"]
PRED_NAMES = ["none", "momentum", "linear"]
DTYPE_SIZE = [4, 2, 2, 8]
MAGIC = b"\x4e\x47\x4c\x1a"
HEADER_SIZE = 48
COUNT_MAX = 1 << 28
F16_MAX_BITS = 0x7BFF
BF16_MAX_BITS = 0x7F7F


class FrameError(Exception):
    """A frame was rejected; .status is the spec's name for why."""

    def __init__(self, status, why=""):
        super().__init__(f"{status}: {why}" if why else status)
        self.status = status


# --------------------------------------------------------------------------
# CRC32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF)
# --------------------------------------------------------------------------
def _crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --------------------------------------------------------------------------
# Header (section 1)
# --------------------------------------------------------------------------
class Header:
    __slots__ = ("version", "codec", "dtype", "predictor", "flags", "block", "stream_id",
                 "step", "count", "payload_len", "crc")

    @property
    def ef(self):
        return self.flags & 1

    @property
    def topk(self):
        return (self.flags >> 1) & 1

    @property
    def mask(self):
        return (self.flags >> 2) & 1

    @property
    def backend(self):
        return (self.flags >> 3) & 3


def parse_header(buf, check_crc=True):
    """Section 1's checks, in its order. Returns a Header or raises."""
    if len(buf) < HEADER_SIZE:
        raise FrameError("TRUNCATED", "shorter than the header")
    if buf[0:4] != MAGIC:
        raise FrameError("BAD_MAGIC")
    h = Header()
    (h.version, h.codec, h.dtype, h.predictor, h.flags, reserved, h.block, h.stream_id, h.step,
     h.count, h.payload_len, h.crc) = struct.unpack_from("<BBBBHHIQQQII", buf, 4)
    if h.version != 1:
        raise FrameError("BAD_VERSION")
    if h.codec > EPS:
        raise FrameError("BAD_CODEC")
    if h.dtype > F64:
        raise FrameError("BAD_DTYPE")
    if h.dtype == F64 and h.codec in (INT8, INT4):
        raise FrameError("BAD_DTYPE", "f64 with INT8/INT4")
    if h.codec == EPS and h.dtype in (F16, BF16):
        raise FrameError("BAD_DTYPE", "EPS with f16/bf16")
    if h.predictor > PRED_LINEAR:
        raise FrameError("BAD_PREDICTOR")
    if h.codec == RAW and h.predictor != PRED_NONE:
        raise FrameError("BAD_PREDICTOR", "RAW with a predictor")
    if h.flags >> 5 or reserved != 0:
        raise FrameError("BAD_FLAGS", "reserved bits or field")
    if h.backend == 3:
        raise FrameError("BAD_FLAGS", "back end 3")
    if h.codec in (RAW, EPS) and (h.topk or h.mask):
        raise FrameError("BAD_FLAGS", "TOPK/MASK with RAW/EPS")
    if h.block % 8 != 0 or not 8 <= h.block <= 65536:
        raise FrameError("BAD_BLOCK_SIZE")
    if h.count > COUNT_MAX:
        raise FrameError("BAD_LENGTH", "count above 2^28")
    if HEADER_SIZE + h.payload_len > len(buf):
        raise FrameError("TRUNCATED", "shorter than its payload")
    if HEADER_SIZE + h.payload_len < len(buf):
        raise FrameError("BAD_LENGTH", "bytes after the payload")
    if check_crc and crc32c(bytes(buf[HEADER_SIZE:]), crc32c(bytes(buf[0:44]))) != h.crc:
        raise FrameError("CRC_MISMATCH")
    return h


# --------------------------------------------------------------------------
# Varints and back ends (section 2)
# --------------------------------------------------------------------------
def read_varint(data, pos, end, status):
    """Canonical unsigned LEB128 below 2^32 at data[pos:end]: (value, next pos)."""
    value = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise FrameError(status, "varint runs past its section")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
        if shift >= 35:
            raise FrameError(status, "varint too long")
    if pos - start > 1 and data[pos - 1] == 0:
        raise FrameError(status, "non-canonical varint")
    if value >= 1 << 32:
        raise FrameError(status, "varint not below 2^32")
    return value, pos


def rle_decode(data, body_len):
    out = bytearray()
    pos = 0
    end = len(data)
    while pos < end:
        lit, pos = read_varint(data, pos, end, "BAD_BACKEND")
        if pos + lit > end:
            raise FrameError("BAD_BACKEND", "literal run past the input")
        out += data[pos:pos + lit]
        pos += lit
        zeros, pos = read_varint(data, pos, end, "BAD_BACKEND")
        if lit == 0 and zeros == 0:
            raise FrameError("BAD_BACKEND", "a pair with L = 0 and Z = 0")
        if zeros == 0 and pos != end:
            raise FrameError("BAD_BACKEND", "Z = 0 in a pair before the last")
        if len(out) + zeros > body_len:
            raise FrameError("BAD_BACKEND", "decodes past body_len")
        out += bytes(zeros)
        if len(out) > body_len:
            raise FrameError("BAD_BACKEND", "decodes past body_len")
    return bytes(out)


def zstd_decode(data, body_len):
    try:
        import zstandard
    except ImportError:
        zstandard = None
    if os.environ.get("REFDECODE_ZSTD_CLI"):  # to test the fallback
        zstandard = None
    if zstandard is not None:
        try:
            if zstandard.get_frame_parameters(bytes(data)).content_size != body_len:
                raise FrameError("BAD_BACKEND", "zstd frame does not declare body_len")
            dobj = zstandard.ZstdDecompressor().decompressobj()
            out = dobj.decompress(bytes(data))
        except zstandard.ZstdError as e:
            raise FrameError("BAD_BACKEND", f"zstd: {e}") from None
        if not dobj.eof or dobj.unused_data:
            raise FrameError("BAD_BACKEND", "not exactly one zstd frame")
        return out
    if shutil.which("zstd") is None:
        raise FrameError("BACKEND_UNAVAILABLE", "no zstandard module and no zstd command")
    # The CLI accepts concatenated frames; require one frame by checking that
    # its own frame walk stops at the end (zstd -l lists the frames).
    r = subprocess.run(["zstd", "-d", "-c", "-q"], input=bytes(data), capture_output=True,
                       check=False)
    if r.returncode != 0:
        raise FrameError("BAD_BACKEND", "zstd: " + r.stderr.decode(errors="replace").strip())
    # The CLI accepts concatenated frames and frames without a content size;
    # check both from the frame header (RFC 8878, 3.1.1.1).
    size = _zstd_declared_size(data)
    if size != body_len or _zstd_frame_length(data) != len(data):
        raise FrameError("BAD_BACKEND", "not exactly one zstd frame declaring body_len")
    return r.stdout


def _zstd_declared_size(data):
    """Frame_Content_Size of the zstd frame at data[0:], or None."""
    if len(data) < 6 or data[0:4] != b"\x28\xb5\x2f\xfd":
        return None
    fhd = data[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = 5 + (0 if single else 1) + [0, 1, 2, 4][dict_flag]
    size_len = [1 if single else 0, 2, 4, 8][fcs_flag]
    if size_len == 0 or pos + size_len > len(data):
        return None
    v = int.from_bytes(data[pos:pos + size_len], "little")
    return v + 256 if size_len == 2 else v


def _zstd_frame_length(data):
    """Length of the zstd frame at data[0:] by walking its blocks, or -1."""
    fhd = data[4]
    fcs_flag, single, dict_flag, checksum = fhd >> 6, (fhd >> 5) & 1, fhd & 3, (fhd >> 2) & 1
    pos = 5 + (0 if single else 1) + [0, 1, 2, 4][dict_flag]
    pos += [1 if single else 0, 2, 4, 8][fcs_flag]
    while pos + 3 <= len(data):
        bh = int.from_bytes(data[pos:pos + 3], "little")
        last, btype, bsize = bh & 1, (bh >> 1) & 3, bh >> 3
        pos += 3 + (1 if btype == 1 else bsize)
        if last:
            return pos + (4 if checksum else 0)
    return -1


def max_body(h):
    """The largest body of any valid frame with header h (k <= count)."""
    n, esz = h.count, DTYPE_SIZE[h.dtype]
    nblocks = (n + h.block - 1) // h.block
    if h.codec == RAW:
        return 8 + n * esz
    if h.codec == EPS:
        return 8 + 16 + n * (5 + esz)  # an exception's code is one byte
    codes = n if h.codec == INT8 else (n + 1) // 2
    total = 8 + (nblocks + 7) // 8 + 4 * nblocks + codes + n * (4 + esz)
    if h.topk:
        total += 12 + max((n + 7) // 8, 5 * n)
    return total


def payload_body(h, payload):
    if h.backend == 0:
        return bytes(payload)
    if len(payload) < 4:
        raise FrameError("BAD_BACKEND", "no room for body_len")
    (body_len,) = struct.unpack_from("<I", payload, 0)
    if body_len < 8:
        raise FrameError("BAD_BACKEND", "body_len below the common preamble")
    if body_len > max_body(h):
        # not in the spec: this decoder's own limit, the largest body any
        # valid frame with this header can have (see the report)
        raise FrameError("BAD_BACKEND", "body_len beyond any valid body for this header")
    data = payload[4:]
    body = rle_decode(data, body_len) if h.backend == 1 else zstd_decode(data, body_len)
    if len(body) != body_len:
        raise FrameError("BAD_BACKEND", f"decodes to {len(body)} bytes, body_len {body_len}")
    return body


# --------------------------------------------------------------------------
# Body (section 3)
# --------------------------------------------------------------------------
class Body:
    pass


def f32_from_bits(bits):
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


def parse_body(h, body, expect_beta_bits=None, expect_eps=None):
    """Validates every section; returns a Body. expect_beta_bits, expect_eps:
    the stream's momentum beta (f32 bits) and eps, or None to skip those
    configuration checks."""
    n = h.count
    B = h.block
    esz = DTYPE_SIZE[h.dtype]
    nblocks = (n + B - 1) // B
    blen = len(body)
    if blen < 8:
        raise FrameError("BAD_SECTION", "body shorter than the common preamble")
    r = Body()
    r.n_exc, r.pred_param = struct.unpack_from("<II", body, 0)
    if h.predictor == PRED_MOMENTUM:
        beta = f32_from_bits(r.pred_param)
        if not (np.isfinite(beta) and 0.0 <= beta < 1.0):
            raise FrameError("BAD_FLAGS", "momentum beta outside [0, 1)")
        if expect_beta_bits is not None and r.pred_param != expect_beta_bits:
            raise FrameError("CONFIG_MISMATCH", "momentum beta differs from the stream's")
    elif r.pred_param != 0:
        raise FrameError("BAD_FLAGS", "pred_param set without momentum")
    pos = 8
    r.k = 0
    if h.topk:
        if blen < pos + 12:
            raise FrameError("BAD_SECTION", "body shorter than the Top-K preamble")
        r.k, r.index_bytes, r.index_format = struct.unpack_from("<IIB", body, pos)
        if body[pos + 9:pos + 12] != b"\0\0\0":
            raise FrameError("BAD_FLAGS", "Top-K preamble padding")
        if r.k > n:
            raise FrameError("BAD_INDEX", "k above count")
        pos += 12
    if h.codec == EPS:
        if blen < pos + 16:
            raise FrameError("BAD_SECTION", "body shorter than the EPS preamble")
        (r.eps, r.code_bytes, zero) = struct.unpack_from("<dII", body, pos)
        if zero != 0:
            raise FrameError("BAD_FLAGS", "EPS preamble reserved field")
        if not (np.isfinite(r.eps) and r.eps > 0):
            raise FrameError("BAD_SCALE", "eps not finite and > 0")
        if expect_eps is not None and r.eps != expect_eps:
            raise FrameError("CONFIG_MISMATCH", "eps differs from the stream's")
        pos += 16

    # mask
    skipped = np.zeros(nblocks, dtype=bool)
    mask_len = (nblocks + 7) // 8 if h.mask else 0
    if h.mask:
        if blen < pos + mask_len:
            raise FrameError("BAD_SECTION", "body shorter than the mask")
        m = body[pos:pos + mask_len]
        for b in range(mask_len * 8):
            bit = (m[b // 8] >> (b % 8)) & 1
            if b >= nblocks and bit:
                raise FrameError("BAD_MASK", "bit at or above nblocks")
            if b < nblocks:
                skipped[b] = bool(bit)
    mask_pos = pos
    pos += mask_len

    # section lengths
    block_len = np.array([min(B, n - b * B) for b in range(nblocks)], dtype=np.int64)
    if h.topk:
        ncoded = r.k
        ngroups = (r.k + B - 1) // B
        idx_len = r.index_bytes
    else:
        ncoded = int(block_len[~skipped].sum()) if nblocks else 0
        ngroups = int((~skipped).sum())
        idx_len = 0
    if h.codec in (INT8, INT4):
        scale_len = 4 * ngroups
        code_len = ncoded if h.codec == INT8 else (ncoded + 1) // 2
    elif h.codec == EPS:
        scale_len = 0
        code_len = r.code_bytes
    else:
        scale_len = 0
        code_len = n * esz
    exc_len = r.n_exc * (4 + esz) if h.codec != RAW else 0
    if r.n_exc > n and h.codec != RAW:  # RAW: n_exc must be 0, checked later
        raise FrameError("BAD_SECTION", "n_exc above count")
    if pos + idx_len + scale_len + code_len + exc_len != blen:
        raise FrameError("BAD_SECTION", "sections do not add up to the body")
    del mask_pos

    # indices
    if h.topk:
        sec = body[pos:pos + idx_len]
        if r.index_format > 1:
            raise FrameError("BAD_INDEX", "unknown index format")
        if r.index_format == 0:
            if idx_len != (n + 7) // 8:
                raise FrameError("BAD_INDEX", "bitmap length")
            bits = np.unpackbits(np.frombuffer(sec, dtype=np.uint8), bitorder="little")
            if bits[n:].any():
                raise FrameError("BAD_INDEX", "bitmap bit at or above count")
            idx = np.nonzero(bits[:n])[0].astype(np.int64)
            if len(idx) != r.k:
                raise FrameError("BAD_INDEX", "bitmap does not have k bits")
        else:
            idx = []
            p = 0
            prev = -1
            for _ in range(r.k):
                v, p = read_varint(sec, p, idx_len, "BAD_INDEX")
                cur = v if prev < 0 else prev + v + 1
                if cur >= n:
                    raise FrameError("BAD_INDEX", "index at or above count")
                idx.append(cur)
                prev = cur
            if p != idx_len:
                raise FrameError("BAD_INDEX", "bytes left after k varints")
            idx = np.array(idx, dtype=np.int64)
        if len(idx) and skipped[idx // B].any():
            raise FrameError("BAD_INDEX", "selected element in a skipped block")
        r.coded = idx
    else:
        if nblocks:
            sent = np.repeat(~skipped, block_len)
            r.coded = np.nonzero(sent)[0].astype(np.int64)
        else:
            r.coded = np.zeros(0, dtype=np.int64)
    pos += idx_len

    # scales
    if h.codec in (INT8, INT4):
        sbits = np.frombuffer(body, dtype="<u4", count=ngroups, offset=pos).astype(np.uint32)
        sc = sbits.view(np.float32)
        if (sbits >> 31).any() or not np.isfinite(sc).all():
            raise FrameError("BAD_SCALE", "negative, signed or non-finite scale")
        if h.topk:
            r.elem_scale = sc[np.arange(ncoded) // B] if ncoded else np.zeros(0, np.float32)
        else:
            sent_blocks = np.nonzero(~skipped)[0]
            rank = np.full(nblocks, -1, dtype=np.int64)
            rank[sent_blocks] = np.arange(len(sent_blocks))
            r.elem_scale = sc[rank[r.coded // B]] if ncoded else np.zeros(0, np.float32)
    pos += scale_len

    # codes
    sec = body[pos:pos + code_len]
    if h.codec == INT8:
        q = np.frombuffer(sec, dtype=np.int8).astype(np.int64)
        if (q == -128).any():
            raise FrameError("BAD_CODE", "INT8 code -128")
        r.q = q
    elif h.codec == INT4:
        raw = np.frombuffer(sec, dtype=np.uint8)
        nib = np.empty(2 * len(raw), dtype=np.int64)
        nib[0::2] = raw & 0xF
        nib[1::2] = raw >> 4
        if ncoded % 2 and nib[-1] != 0:
            raise FrameError("BAD_CODE", "INT4 padding nibble")
        nib = nib[:ncoded]
        if (nib == 8).any():
            raise FrameError("BAD_CODE", "INT4 code -8")
        r.q = np.where(nib >= 8, nib - 16, nib)
    elif h.codec == EPS:
        q = []
        p = 0
        for _ in range(n):
            z, p = read_varint(sec, p, code_len, "BAD_CODE")
            v = (z >> 1) ^ -(z & 1)
            if abs(v) > 1 << 30:
                raise FrameError("BAD_CODE", "|q| above 2^30")
            q.append(v)
        if p != code_len:
            raise FrameError("BAD_CODE", "bytes left after count varints")
        r.q = np.array(q, dtype=np.int64)
    else:
        r.raw = bytes(sec)
    pos += code_len

    # exceptions: each entry's index, then its code if the element is coded
    if h.codec == RAW:
        if r.n_exc != 0:
            raise FrameError("BAD_EXCEPTION", "a RAW frame with exceptions")
        rank = {}
    elif h.codec == EPS:
        rank = None  # every element is coded, code j is element j
    else:
        rank = {int(i): j for j, i in enumerate(r.coded)}
    r.exc_idx = []
    r.exc_bits = []
    prev = -1
    for _ in range(r.n_exc):
        (i,) = struct.unpack_from("<I", body, pos)
        if i <= prev or i >= n:
            raise FrameError("BAD_EXCEPTION", "indices not increasing or not below count")
        j = i if rank is None else rank.get(i)
        if j is not None and r.q[j] != 0:
            raise FrameError("BAD_CODE", "nonzero code at an exception")
        r.exc_idx.append(i)
        r.exc_bits.append(bytes(body[pos + 4:pos + 4 + esz]))
        prev = i
        pos += 4 + esz
    r.skipped = skipped
    return r


# --------------------------------------------------------------------------
# Reconstruction (section 4)
# --------------------------------------------------------------------------
def widen(dtype, bits):
    """Exception bits -> value in the arithmetic type (f32, or f64 for f64)."""
    if dtype == F32:
        return np.frombuffer(bits, dtype="<f4")[0]
    if dtype == F64:
        return np.frombuffer(bits, dtype="<f8")[0]
    if dtype == F16:
        return np.float32(np.frombuffer(bits, dtype="<f2")[0])
    (u,) = struct.unpack("<H", bits)
    return np.array([u << 16], dtype=np.uint32).view(np.float32)[0]


def f32_to_f16_bits(x):
    """Round to nearest even; a finite value that would round to Inf
    saturates to the largest finite value of its sign."""
    with np.errstate(over="ignore", invalid="ignore"):
        h = x.astype(np.float16)
    bits = h.view(np.uint16).copy()
    sat = np.isfinite(x) & ~np.isfinite(h)
    bits[sat] = F16_MAX_BITS | (np.signbit(x[sat]).astype(np.uint16) << 15)
    return bits


def f32_to_bf16_bits(x):
    u = x.view(np.uint32).astype(np.uint64)
    nan = np.isnan(x)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)  # not reached: NaN x̂ are exceptions
    inf_out = (r & 0x7FFF) == 0x7F80
    sat = np.isfinite(x) & inf_out
    r[sat] = BF16_MAX_BITS | (np.signbit(x[sat]).astype(np.uint16) << 15)
    return r


class Stream:
    """A stream decoder: configuration, expected step and closed-loop state."""

    def __init__(self, codec, dtype, predictor, block, stream_id, count, beta=None, eps=None):
        self.codec, self.dtype, self.predictor = codec, dtype, predictor
        self.block, self.stream_id, self.count = block, stream_id, count
        self.beta_bits = None
        if beta is not None and predictor == PRED_MOMENTUM:
            self.beta_bits = int(np.array([beta], dtype=np.float32).view(np.uint32)[0])
        self.eps = eps if codec == EPS else None
        self.step = 0
        ft = np.float64 if codec == EPS else np.float32
        self.ft = ft
        nblocks = (count + block - 1) // block
        self.hist = 0
        self.m = np.zeros(count, dtype=ft)
        self.x1 = np.zeros(count, dtype=ft)
        self.x2 = np.zeros(count, dtype=ft)
        self.g = np.zeros(nblocks, dtype=bool)

    @classmethod
    def from_frame(cls, frame):
        h = parse_header(frame)
        beta = eps = None
        body = payload_body(h, frame[HEADER_SIZE:])
        if h.predictor == PRED_MOMENTUM and len(body) >= 8:
            beta = float(f32_from_bits(struct.unpack_from("<I", body, 4)[0]))
        if h.codec == EPS and len(body) >= 16:
            eps = struct.unpack_from("<d", body, 8)[0]
        s = cls(h.codec, h.dtype, h.predictor, h.block, h.stream_id, h.count, beta, eps)
        s.step = h.step
        return s

    def decode(self, frame):
        """Returns the output bytes (count elements of dtype) or raises; on a
        raise nothing of the state changed."""
        h = parse_header(frame)
        if h.count != self.count:
            raise FrameError("COUNT_MISMATCH")
        if (h.codec, h.dtype, h.predictor, h.block) != (self.codec, self.dtype, self.predictor,
                                                        self.block):
            raise FrameError("CONFIG_MISMATCH")
        if h.stream_id != self.stream_id:
            raise FrameError("STREAM_MISMATCH")
        if h.step != self.step:
            raise FrameError("STEP_MISMATCH")
        body = payload_body(h, frame[HEADER_SIZE:])
        r = parse_body(h, body, self.beta_bits, self.eps)
        out = self._reconstruct(h, r)
        self.step += 1
        return out

    def _reconstruct(self, h, r):
        n, B, ft = self.count, self.block, self.ft
        dt = h.dtype
        if h.codec == RAW:
            return r.raw
        elem_block = np.arange(n, dtype=np.int64) // B
        with np.errstate(over="ignore", invalid="ignore"):
            if self.predictor == PRED_MOMENTUM:
                p_raw = self.m.copy()
            elif self.predictor == PRED_LINEAR:
                if self.hist == 0:
                    p_raw = np.zeros(n, dtype=ft)
                elif self.hist == 1:
                    p_raw = self.x1.copy()
                else:
                    p_raw = (ft(2) * self.x1) - self.x2
            else:
                p_raw = np.zeros(n, dtype=ft)
            p = np.where(self.g[elem_block], p_raw, ft(0)).astype(ft)
            xhat = p.copy()
            if h.codec in (INT8, INT4):
                c = r.coded
                xhat[c] = p[c] + (r.q.astype(np.float32) * r.elem_scale)
            else:
                two_eps = np.float64(2.0) * np.float64(r.eps)
                v = p + (r.q.astype(np.float64) * two_eps)
                if dt == F32:
                    v = v.astype(np.float32).astype(np.float64)
                xhat = v
            exc_vals = [widen(dt, b) for b in r.exc_bits]
            for i, v in zip(r.exc_idx, exc_vals):
                xhat[i] = v

            # output
            if dt == F32:
                out = bytearray(xhat.astype("<f4").tobytes())
            elif dt == F64:
                out = bytearray(xhat.astype("<f8").tobytes())
            elif dt == F16:
                out = bytearray(f32_to_f16_bits(xhat.astype(np.float32)).astype("<u2").tobytes())
            else:
                out = bytearray(f32_to_bf16_bits(xhat.astype(np.float32)).astype("<u2").tobytes())
            esz = DTYPE_SIZE[dt]
            for i, b in zip(r.exc_idx, r.exc_bits):
                out[i * esz:(i + 1) * esz] = b

            # state update, finite elements only
            fin = np.isfinite(xhat)
            if self.predictor == PRED_MOMENTUM:
                beta = f32_from_bits(r.pred_param)
                if ft is np.float64:
                    beta = np.float64(beta)
                omb = ft(1) - ft(beta)
                m_new = (ft(beta) * self.m) + (omb * xhat)
                upd = fin & np.isfinite(m_new)
                self.m = np.where(upd, m_new, self.m).astype(ft)
            elif self.predictor == PRED_LINEAR:
                self.x2 = np.where(fin, self.x1, self.x2).astype(ft)
                self.x1 = np.where(fin, xhat, self.x1).astype(ft)
            nblocks = len(self.g)
            if nblocks:
                dev = np.where(fin, np.abs(xhat - p_raw), ft(0)).astype(ft)
                mag = np.where(fin, np.abs(xhat), ft(0)).astype(ft)
                a = np.zeros(nblocks, dtype=ft)
                c = np.zeros(nblocks, dtype=ft)
                np.maximum.at(a, elem_block, dev)
                np.maximum.at(c, elem_block, mag)
                self.g = a < c
            self.hist = min(self.hist + 1, 2)
        return bytes(out)


# --------------------------------------------------------------------------
# Golden files
# --------------------------------------------------------------------------
def read_valid_manifest(golden):
    cases = {}
    with open(os.path.join(golden, "valid", "MANIFEST"), encoding="ascii") as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            kv = dict(t.split("=", 1) for t in line[1:])
            cases[line[0]] = kv
    return cases


def stream_for_case(kv):
    return Stream(CODEC_NAMES.index(kv["codec"]), DTYPE_NAMES.index(kv["dtype"]),
                  PRED_NAMES.index(kv["pred"]), int(kv["block"]), int(kv["stream"]),
                  int(kv["count"]), float.fromhex(kv["beta"]), float.fromhex(kv["eps"]))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check_golden(golden, verbose=False):
    cases = read_valid_manifest(golden)
    bad = 0
    frames = 0
    for name, kv in cases.items():
        s = stream_for_case(kv)
        steps = int(kv["steps"])
        want = read(os.path.join(golden, "valid", name, "output.bin"))
        sb = s.count * DTYPE_SIZE[s.dtype]
        for t in range(steps):
            fr = read(os.path.join(golden, "valid", name, f"frame-{t:03d}.bin"))
            frames += 1
            try:
                got = s.decode(fr)
            except FrameError as e:
                print(f"valid/{name} step {t}: rejected: {e}")
                bad += 1
                break
            if got != want[t * sb:(t + 1) * sb]:
                esz = DTYPE_SIZE[s.dtype]
                w = want[t * sb:(t + 1) * sb]
                diff = [i for i in range(s.count)
                        if got[i * esz:(i + 1) * esz] != w[i * esz:(i + 1) * esz]]
                print(f"valid/{name} step {t}: output differs at {len(diff)} elements, "
                      f"first {diff[:8]}")
                bad += 1
                break
    ninvalid = 0
    with open(os.path.join(golden, "invalid", "MANIFEST"), encoding="ascii") as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            name, status = line[0], line[1]
            base = line[2].split("=", 1)[1]
            after = int(line[3].split("=", 1)[1])
            kv = cases[base]
            s = stream_for_case(kv)
            for t in range(after):
                s.decode(read(os.path.join(golden, "valid", base, f"frame-{t:03d}.bin")))
            fr = read(os.path.join(golden, "invalid", name + ".bin"))
            ninvalid += 1
            try:
                got = s.decode(fr)
                st = "OK"
            except FrameError as e:
                st = e.status
                why = str(e)
            if st != status:
                print(f"invalid/{name}: refdecode says {st}"
                      f"{' (' + why + ')' if st != 'OK' else ''}, manifest says {status}")
                bad += 1
            elif st == "OK":
                want = read(os.path.join(golden, "valid", base, "output.bin"))
                sb = s.count * DTYPE_SIZE[s.dtype]
                if got != want[after * sb:(after + 1) * sb]:
                    print(f"invalid/{name}: decodes, but not to the base case's output")
                    bad += 1
            elif verbose:
                print(f"invalid/{name}: {st} ({why})")
    print(f"refdecode: {len(cases)} valid streams ({frames} frames), {ninvalid} invalid frames, "
          f"{bad} disagreements")
    return bad == 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "check":
        return 0 if check_golden(argv[2], "-v" in argv[3:]) else 1
    if len(argv) >= 3 and argv[1] == "inspect":
        rc = 0
        for path in argv[2:]:
            try:
                h = parse_header(read(path))
                print(f"{path}: v{h.version} {CODEC_NAMES[h.codec]} {DTYPE_NAMES[h.dtype]} "
                      f"{PRED_NAMES[h.predictor]} flags={h.flags:#x} block={h.block} "
                      f"stream={h.stream_id} step={h.step} count={h.count} "
                      f"payload={h.payload_len}")
            except FrameError as e:
                print(f"{path}: {e}")
                rc = 1
        return rc
    if len(argv) >= 4 and argv[1] == "decode":
        frames = [read(p) for p in argv[3:]]
        try:
            s = Stream.from_frame(frames[0])
            with open(argv[2], "wb") as f:
                for fr in frames:
                    f.write(s.decode(fr))
        except FrameError as e:
            print(f"refdecode: {e}", file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
