#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Plot scripts/bench-plugin.sh results: speedup of the compressed collNet
allreduce over the exact ring allreduce, per link rate and message size.

usage: plot_bench_plugin.py bench-plugin.csv bench-plugin.png
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(src)))
    series = []
    for r in rows:
        s = (r["label"], r.get("loop", "stateless"))
        if s not in series:
            series.append(s)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for lab, loop in series:
        rs = [r for r in rows if r["label"] == lab and r.get("loop", "stateless") == loop]
        size = [float(r["size_mib"]) for r in rs]
        ls = "-" if loop == "closed" else "--"
        name = f"{lab} links, {loop}"
        ax1.plot(size, [float(r["speedup"]) for r in rs], marker="o", ls=ls, label=name)
        wr = [float(r["wire_ratio"]) for r in rs]
        if all(w > 0 for w in wr):
            ax2.plot(size, wr, marker="s", ls=ls, label=name)
    ax1.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("allreduce size (MiB, fp32)")
    ax1.set_ylabel("speedup (ring time / collNet time)")
    ax1.set_title("Nangila collNet vs exact ring (same run)")
    ax1.legend()
    ax2.set_ylim(0, 4.5)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("allreduce size (MiB, fp32)")
    ax2.set_ylabel("wire bytes ring / collNet")
    ax2.set_title("bytes on the wire (interface counters)")
    ax2.legend()
    ranks = rows[0]["ranks"] if rows else "?"
    fig.suptitle(f"{ranks} ranks, network namespaces with tc tbf rate limits (preliminary)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main()
