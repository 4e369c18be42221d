#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Summarise scripts/bench-mpi.sh results: plot and markdown report.

usage: bench_mpi_report.py bench-mpi.csv bench-mpi.png > bench-mpi.md

Speedups are plain Open MPI time / method time, both measured in the same
run. The crossover of a configuration is the smallest size from which
compression is at least as fast as plain MPI at every larger size.
"""
import csv
import datetime
import os
import platform
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def human(b):
    for unit, k in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= k:
            v = b / k
            return f"{v:g} {unit}"
    return f"{b} B"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rows = list(csv.DictReader(open(sys.argv[1])))
    # (link, config, policy) -> bytes -> method -> row
    runs = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        runs[(r["link"], r["config"], r["policy"])][int(r["bytes"])][r["method"]] = r
    links = sorted({k[0] for k in runs}, key=lambda s: float(s.rstrip("gbit")))

    fig, axes = plt.subplots(1, len(links), figsize=(6.5 * len(links), 4.6), squeeze=False)
    out = []
    out.append("# MPI_Allreduce: Nangila vs Open MPI over rate-limited links\n")
    out.append("The 4 ranks share the machine's cores (on the 2-core recording machine: two "
               "ranks per core), so every rank's codec work runs on half a core; the load "
               "average below includes the benchmark itself.\n")
    out.append(f"- machine: {cpu_model()}, {os.cpu_count()} cores, load average at the end "
               f"{open('/proc/loadavg').read().split()[0]}; {datetime.date.today()}")
    out.append("- setting: 4 MPI ranks, one network namespace each (its own Open MPI daemon), "
               "veth links to one bridge, tc token-bucket limit on both directions of every link; "
               "Open MPI 4.1 TCP BTL only (`--mca btl self,tcp`)")
    out.append("- regenerate: `sudo scripts/bench-mpi.sh` (CSV: `bench-mpi.csv`, plot: "
               "`bench-mpi.png`)")
    out.append("- speedup = plain fp32 `MPI_Allreduce` time / method time, same run, median of "
               "calls; bf16 = user-written bf16 buffer + user-defined sum op; wire = bytes the "
               "busiest rank put on its link per call (TCP/IP included)\n")

    for ax, link in zip(axes[0], links):
        out.append(f"## {link}/s links\n")
        out.append("| config | NANGILA_MIN_BYTES | crossover | speedup at 16 MiB / 64 MiB / 256 MiB "
                   "| bf16 speedup at 16 MiB / 64 MiB / 256 MiB | worst speedup, all sizes "
                   "| wire ratio (plain/nangila) at >= 16 MiB |")
        out.append("|---|---|---|---|---|---|---|")
        bf16_drawn = False
        for (lk, cfg, pol), by_size in sorted(runs.items()):
            if lk != link:
                continue
            sizes = sorted(by_size)
            sp = [float(by_size[s]["nangila"]["speedup_vs_plain"]) for s in sizes]
            bf = [float(by_size[s]["bf16"]["speedup_vs_plain"]) for s in sizes]
            cross = None
            for i in range(len(sizes)):
                if all(v >= 1.0 for v in sp[i:]):
                    cross = sizes[i]
                    break

            def at(s, series):
                return f"{series[sizes.index(s)]:.2f}" if s in sizes else "-"

            big = [s for s in sizes if s >= 16 << 20]
            wr = []
            for s in big:
                wn = float(by_size[s]["nangila"]["wire_bytes_per_rank"])
                wp = float(by_size[s]["plain"]["wire_bytes_per_rank"])
                if wn > 0:
                    wr.append(wp / wn)
            wire = f"{min(wr):.2f} - {max(wr):.2f}" if wr else "-"
            label = f"{cfg}" + (" (default min)" if pol == "default" else " (forced)")
            out.append(
                f"| {cfg} | {'default' if pol == 'default' else '0 (forced)'} "
                f"| {human(cross) if cross else 'none'} "
                f"| {at(16 << 20, sp)} / {at(64 << 20, sp)} / {at(256 << 20, sp)} "
                f"| {at(16 << 20, bf)} / {at(64 << 20, bf)} / {at(256 << 20, bf)} "
                f"| {min(sp):.2f} at {human(sizes[sp.index(min(sp))])} | {wire} |")
            style = "--" if pol == "default" else "-"
            ax.plot(sizes, sp, style, marker="o", ms=3, label=label)
            if not bf16_drawn:
                ax.plot(sizes, bf, ":", color="gray", marker="s", ms=3, label="bf16 + user op")
                bf16_drawn = True
        out.append("")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(0.9, color="red", lw=0.6, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("allreduce size (bytes of fp32)")
        ax.set_ylabel("speedup vs plain Open MPI (same run)")
        ax.set_title(f"4 ranks, {link}/s links, TCP")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=120)
    print("\n".join(out))


if __name__ == "__main__":
    main()
