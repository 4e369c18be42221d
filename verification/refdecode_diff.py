#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""refdecode_diff.py -- differential test: the C decoder against refdecode.py.

  refdecode_diff.py LIBNANGILA_SO GOLDEN_DIR [-n MUTATIONS_PER_FRAME] [-s SEED]

Every frame of every golden valid stream is mutated (bit flips, byte values,
cut and grown payloads, boundary values in the body's length fields, splices
from other frames), mostly with payload_len and CRC repaired so that the
mutation reaches the body checks. Each mutant goes to the C decoder (through
ctypes, public API only) and to refdecode.py, both brought to the frame's
step by the stream's earlier frames. They must agree on the status, and on
the output bytes when both accept. Exit 1 on any disagreement.

Known gaps where the C decoder checks its configuration beyond the spec are
skipped and counted (see KNOWN below): they are findings for the spec.
"""

import copy
import ctypes
import math
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refdecode as R  # noqa: E402

STATUS_NAME = {v: k for k, v in R.STATUS.items()}


class Config(ctypes.Structure):
    """ngl_stream_config of nangila.h (x86-64 / LP64 layout)."""
    _fields_ = [
        ("codec", ctypes.c_int), ("dtype", ctypes.c_int), ("predictor", ctypes.c_int),
        ("lossless", ctypes.c_int), ("isa", ctypes.c_int), ("block_size", ctypes.c_uint32),
        ("momentum_beta", ctypes.c_float), ("error_feedback", ctypes.c_int),
        ("topk_fraction", ctypes.c_double), ("mask_fraction", ctypes.c_double),
        ("eps", ctypes.c_double), ("seed", ctypes.c_uint64), ("stream_id", ctypes.c_uint64),
        ("count", ctypes.c_uint64),
    ]


LOSSLESS = ["none", "rle", "zstd", "auto"]


class CLib:
    def __init__(self, path):
        lib = ctypes.CDLL(path)
        lib.ngl_stream_config_init.argtypes = [ctypes.POINTER(Config)]
        lib.ngl_decoder_create.argtypes = [ctypes.POINTER(Config), ctypes.POINTER(ctypes.c_void_p)]
        lib.ngl_decoder_destroy.argtypes = [ctypes.c_void_p]
        lib.ngl_decoder_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                           ctypes.c_void_p, ctypes.c_uint]
        lib.ngl_decoder_decode.restype = ctypes.c_int
        lib.ngl_stream_config_check.argtypes = [ctypes.POINTER(Config), ctypes.c_void_p]
        lib.ngl_crc32c.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]
        lib.ngl_crc32c.restype = ctypes.c_uint32
        self.lib = lib

    def config(self, kv):
        c = Config()
        self.lib.ngl_stream_config_init(ctypes.byref(c))
        c.codec = R.CODEC_NAMES.index(kv["codec"])
        c.dtype = R.DTYPE_NAMES.index(kv["dtype"])
        c.predictor = R.PRED_NAMES.index(kv["pred"])
        c.lossless = LOSSLESS.index(kv["lossless"])
        c.block_size = int(kv["block"])
        c.momentum_beta = float.fromhex(kv["beta"])
        c.error_feedback = int(kv["ef"])
        c.topk_fraction = float.fromhex(kv["topk"])
        c.mask_fraction = float.fromhex(kv["mask"])
        c.eps = float.fromhex(kv["eps"])
        c.seed = int(kv["seed"])
        c.stream_id = int(kv["stream"])
        c.count = int(kv["count"])
        return c

    def decode_stream(self, cfg, frames, out_bytes):
        """Decodes frames in order; returns (status name, output) of the last."""
        dec = ctypes.c_void_p()
        st = self.lib.ngl_decoder_create(ctypes.byref(cfg), ctypes.byref(dec))
        if st != 0:
            raise RuntimeError(f"decoder_create: {st}")
        out = ctypes.create_string_buffer(out_bytes + 1)
        try:
            for i, fr in enumerate(frames):
                st = self.lib.ngl_decoder_decode(dec, fr, len(fr), out, 0)
                if i < len(frames) - 1 and st != 0:
                    raise RuntimeError(f"valid frame {i} rejected: {st}")
            return STATUS_NAME.get(st, str(st)), out.raw[:out_bytes]
        finally:
            self.lib.ngl_decoder_destroy(dec)


def refix(frame, lib):
    """payload_len and CRC recomputed."""
    b = bytearray(frame)
    if len(b) < R.HEADER_SIZE:
        return bytes(b)
    struct.pack_into("<I", b, 40, len(b) - R.HEADER_SIZE)
    crc = lib.ngl_crc32c(0, bytes(b[:44]), 44)
    crc = lib.ngl_crc32c(crc, bytes(b[48:]), len(b) - 48)
    struct.pack_into("<I", b, 44, crc)
    return bytes(b)


BOUNDARY = [0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def mutate(rng, frame, others):
    b = bytearray(frame)
    kind = rng.randrange(8)
    n = len(b)
    if kind == 0 and n:  # flip a bit
        i = rng.randrange(n)
        b[i] ^= 1 << rng.randrange(8)
    elif kind == 1 and n:  # set a byte
        b[rng.randrange(n)] = rng.randrange(256)
    elif kind == 2 and n > 48:  # cut the payload
        del b[rng.randrange(48, n):]
    elif kind == 3:  # grow the payload
        at = rng.randrange(48, n + 1) if n >= 48 else n
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
    elif kind == 4 and n >= 56:  # a body length field to a boundary value
        off = rng.choice([48, 52, 56, 60, 64, 68]) if n >= 72 else 48
        struct.pack_into("<I", b, off, rng.choice(BOUNDARY) if off + 4 <= n else 0)
    elif kind == 5 and n > 48:  # delete a few payload bytes
        at = rng.randrange(48, n)
        del b[at:at + rng.randrange(1, 5)]
    elif kind == 6 and others:  # splice another frame's payload tail
        o = rng.choice(others)
        if len(o) > 48 and n > 48:
            at = rng.randrange(48, n)
            b[at:] = o[at:] if at < len(o) else b""
    else:  # several bit flips
        for _ in range(rng.randrange(2, 6)):
            if b:
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def c_body_bound(kv):
    """The C decoder's limit on body_len: the worst-case body of the stream's
    configuration (its ngl_body_bound(), restated)."""
    n, B = int(kv["count"]), int(kv["block"])
    ds = R.DTYPE_SIZE[R.DTYPE_NAMES.index(kv["dtype"])]
    nblocks = -(-n // B)
    codec = kv["codec"]
    if codec == "raw":
        return 8 + n * ds
    if codec == "eps":
        return 8 + 16 + n * (5 + ds)
    total = 8 + -(-nblocks // 8)
    topk = float.fromhex(kv["topk"])
    if topk > 0:
        k = c_k_max(kv)
        total += 12 + -(-n // 8) + 4 * -(-k // B) + (k if codec == "int8" else -(-k // 2))
    else:
        total += 4 * nblocks + (n if codec == "int8" else -(-n // 2))
    return total + n * (4 + ds)


def c_k_max(kv):
    n, f = int(kv["count"]), float.fromhex(kv["topk"])
    return min(n, math.ceil(f * n)) if f > 0 and n else 0


# Disagreements that come from the stream-level checks of a configured C
# decoder (docs/wire-format.md section 1, "stream checks"); refdecode is a
# pure frame decoder and does not make them.
def known(c_st, r_st, kv, m):
    if len(m) < R.HEADER_SIZE:
        return None
    flags = struct.unpack_from("<H", m, 8)[0]
    backend = (flags >> 3) & 3
    if c_st == "CONFIG_MISMATCH":
        if bool(flags & 2) != (float.fromhex(kv["topk"]) > 0):
            return "TOPK flag differs from the decoder's Top-K setting"
        if backend and kv["lossless"] == "none":
            return "back-end frame to a decoder configured without back end"
    if c_st == "CONFIG_MISMATCH" and flags & 2:
        try:
            body = R.payload_body(R.parse_header(m, check_crc=False), m[R.HEADER_SIZE:])
        except R.FrameError:
            body = b""
        k = struct.unpack_from("<I", body, 8)[0] if len(body) >= 12 else 0
        if c_k_max(kv) < k <= int(kv["count"]):
            return "k above the decoder's ceil(topk_fraction * count), not above count"
    if c_st == "BAD_BACKEND" and backend and len(m) >= 52:
        if struct.unpack_from("<I", m, 48)[0] > c_body_bound(kv):
            return "body_len above the configuration's worst case"
    return None


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    lib = CLib(argv[1])
    golden = argv[2]
    per_frame = 20
    seed = 1
    args = argv[3:]
    while args:
        if args[0] == "-n":
            per_frame = int(args[1])
        elif args[0] == "-s":
            seed = int(args[1])
        args = args[2:]
    rng = random.Random(seed)
    cases = R.read_valid_manifest(golden)
    total = bad = 0
    known_counts = {}
    agree = {}
    zcfg = lib.config(dict(next(iter(cases.values())), lossless="zstd"))
    have_zstd = lib.lib.ngl_stream_config_check(ctypes.byref(zcfg), None) == 0
    for name, kv in cases.items():
        cfg = lib.config(kv)
        if lib.lib.ngl_stream_config_check(ctypes.byref(cfg), None) != 0:
            continue  # zstd not in this build
        steps = int(kv["steps"])
        frames = [R.read(os.path.join(golden, "valid", name, f"frame-{t:03d}.bin"))
                  for t in range(steps)]
        if not have_zstd and any((f[8] >> 3) & 3 == 2 for f in frames):
            continue  # frames that need zstd: the C decoder says BACKEND_UNAVAILABLE
        out_bytes = int(kv["count"]) * R.DTYPE_SIZE[R.DTYPE_NAMES.index(kv["dtype"])]
        ref = R.stream_for_case(kv)
        for t in range(steps):
            for _ in range(per_frame):
                m = mutate(rng, frames[t], frames)
                if rng.random() < 0.85:
                    m = refix(m, lib.lib)
                c_st, c_out = lib.decode_stream(cfg, frames[:t] + [m], out_bytes)
                r = copy.deepcopy(ref)
                try:
                    r_out = r.decode(m)
                    r_st = "OK"
                except R.FrameError as e:
                    r_st, r_out = e.status, None
                total += 1
                agree[c_st] = agree.get(c_st, 0) + (c_st == r_st)
                if c_st == r_st and (c_st != "OK" or c_out == r_out):
                    continue
                why = known(c_st, r_st, kv, m)
                if why:
                    known_counts[why] = known_counts.get(why, 0) + 1
                    continue
                bad += 1
                if bad <= 20:
                    print(f"{name} step {t}: C {c_st}, refdecode {r_st}; mutant {m.hex()}")
            ref.decode(frames[t])
    for why, n in sorted(known_counts.items()):
        print(f"known gap ({n}x): {why}")
    print(f"refdecode_diff: {total} mutants, {bad} disagreements; statuses agreed: "
          + ", ".join(f"{k} {v}" for k, v in sorted(agree.items())))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
