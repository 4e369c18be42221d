#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plot verification/core/bench-<isa>.csv: encode/decode GB/s per codec,
with the memcpy bandwidth of the same run as a reference line."""
import csv
import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src_dir, png):
    files = sorted(glob.glob(os.path.join(src_dir, "bench-*.csv")))
    files = [f for f in files if not f.endswith("-meta.csv")]
    if not files:
        sys.exit("no bench-*.csv in " + src_dir)
    fig, axes = plt.subplots(len(files), 1, figsize=(11, 3.6 * len(files)), squeeze=False)
    for ax, path in zip(axes[:, 0], files):
        rows = list(csv.DictReader(open(path)))
        memcpy = next(float(r["memcpy_gbs"]) for r in rows)
        codecs = [r for r in rows if r["codec"] != "memcpy"]
        names = [r["codec"] for r in codecs]
        enc = [float(r["encode_gbs"]) for r in codecs]
        dec = [float(r["decode_gbs"]) for r in codecs]
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], enc, width=0.4, label="encode")
        ax.bar([x + 0.2 for x in xs], dec, width=0.4, label="decode")
        ax.axhline(memcpy, color="k", ls="--", lw=1, label=f"memcpy {memcpy:.1f} GB/s")
        ax.axhline(0.25 * memcpy, color="tab:red", ls=":", lw=1, label="25% memcpy (encode target)")
        ax.axhline(0.50 * memcpy, color="tab:purple", ls=":", lw=1, label="50% memcpy (decode target)")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("GB/s of fp32 input")
        isa = codecs[0]["isa"] if codecs[0]["isa"] != "-" else os.path.basename(path)
        ax.set_title(f"nangila bench, one core, isa {isa}")
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
