#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plot scripts/bench-kernels.sh output: effective bandwidth of each GPU
kernel next to the device-to-device copy measured in the same run.

    plot_kernels.py kernels-bench.csv kernels-bench.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit("no rows in " + src)
    copy = float(rows[0]["copy_GBps"])
    names = [r["kernel"] for r in rows]
    eff = [float(r["effective_GBps"]) for r in rows]
    logical = [float(r["logical_GBps_fp32"]) for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.8))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], eff, height=0.4, label="effective (bytes moved)")
    ax.barh([i - 0.2 for i in y], logical, height=0.4, label="logical (fp32 input)")
    ax.axvline(copy, color="k", lw=1, label="D2D copy %.0f GB/s" % copy)
    ax.axvline(0.7 * copy, color="r", lw=1, ls="--", label="target 0.7 x copy")
    ax.set_yticks(list(y))
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlabel("GB/s")
    ax.set_title("%s, %s elements" % (rows[0]["device"], rows[0]["count"]))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(dst, dpi=120)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
