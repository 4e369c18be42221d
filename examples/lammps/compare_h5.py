#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Store a trajectory (a .npy of shape (frames, atoms, 3), e.g. from
insitu_lammps.py --save-npy) in HDF5 with several filters and print the
sizes: no filter (float32), gzip with shuffle, Nangila's filter at a few
bounds, levels and chunk lengths, and for reference (outside HDF5) the zfp
CLI in fixed-accuracy mode, also error-bounded. Every lossy result is read
back and its maximum error checked against its bound.

    HDF5_PLUGIN_PATH=build/hpc/h5z/plugin /usr/bin/python3 \\
        examples/lammps/compare_h5.py melt.npy [--eps 1e-3 1e-4] [--chunk 100]

Times are wall-clock on whatever machine runs it: indicative only.
"""
import argparse
import os
import shutil
import subprocess
import struct
import sys
import tempfile
import time

import h5py
import numpy as np

NGL_H5Z_FILTER_ID = 47011


def nangila(eps, level, relative=False):
    lo, hi = struct.unpack("<II", struct.pack("<d", eps))
    return dict(compression=NGL_H5Z_FILTER_ID, compression_opts=(int(relative), lo, hi, level))


def run(name, pos, chunk, kw, bound, tmp):
    path = os.path.join(tmp, "c.h5")
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        f.create_dataset("pos", data=pos, chunks=chunk, **kw)
    t1 = time.perf_counter()
    with h5py.File(path, "r") as f:
        size = f["pos"].id.get_storage_size()
        back = f["pos"][...]
    t2 = time.perf_counter()
    err = float(np.abs(back.astype(np.float64) - pos.astype(np.float64)).max())
    ok = "ok" if err <= bound else "BOUND VIOLATED"
    mb = pos.nbytes / 1e6
    print(f"{name:38s} {size:>11d} {pos.nbytes / size:7.2f}x {8 * size / pos.size:6.2f} "
          f"{mb / (t1 - t0):7.1f} {mb / (t2 - t1):7.1f}   {err:.3g} {ok}")
    os.unlink(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("npy")
    ap.add_argument("--eps", type=float, nargs="+", default=[1e-3, 1e-4])
    ap.add_argument("--chunk", type=int, nargs="+", default=[100, 10])
    args = ap.parse_args()
    pos = np.load(args.npy).astype(np.float32)
    frames, atoms, _ = pos.shape
    print(f"{args.npy}: {frames} frames x {atoms} atoms, {pos.nbytes} bytes as float32")
    print(f"{'filter':38s} {'bytes':>11s} {'ratio':>8s} {'bits':>6s} {'w MB/s':>7s} "
          f"{'r MB/s':>7s}   max error")
    tmp = tempfile.mkdtemp(prefix="compare_h5_")
    c0 = min(args.chunk[0], frames)
    full = (c0, atoms, 3)
    run("none (float32)", pos, full, {}, 0.0, tmp)
    run("gzip 4 + shuffle", pos, full, dict(compression="gzip", compression_opts=4,
                                            shuffle=True), 0.0, tmp)
    for eps in args.eps:
        for cf in args.chunk:
            cf = min(cf, frames)
            for level in (0, 1):
                run(f"nangila eps {eps:g} level {level} chunk {cf}", pos, (cf, atoms, 3),
                    nangila(eps, level), eps, tmp)
    if shutil.which("zfp"):
        # ZFP (error-bounded too) for reference, through its CLI rather than
        # an HDF5 filter (Debian ships no ZFP plugin): a 3-D array
        # (frames, atoms, 3), fixed accuracy eps.
        raw = os.path.join(tmp, "pos.f32")
        pos.tofile(raw)
        for eps in args.eps:
            z, back = os.path.join(tmp, "pos.zfp"), os.path.join(tmp, "back.f32")
            subprocess.run(["zfp", "-q", "-f", "-3", "3", str(atoms), str(frames), "-a", str(eps),
                            "-i", raw, "-z", z, "-o", back], check=True)
            size = os.path.getsize(z)
            err = float(np.abs(np.fromfile(back, np.float32).reshape(pos.shape)
                               .astype(np.float64) - pos).max())
            print(f"{'zfp -a ' + format(eps, 'g') + ' (CLI, no HDF5)':38s} {size:>11d} "
                  f"{pos.nbytes / size:7.2f}x {8 * size / pos.size:6.2f} {'':>7s} {'':>7s}   "
                  f"{err:.3g} {'ok' if err <= eps else 'BOUND VIOLATED'}")
            os.unlink(z)
            os.unlink(back)
        os.unlink(raw)
    os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
