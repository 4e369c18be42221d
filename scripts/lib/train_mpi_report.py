#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Summarise scripts/train-mpi.sh runs: merged CSV, loss-curve plot, markdown.

usage: train_mpi_report.py MODEL RUNDIR OUTDIR NAME... > OUTDIR/train-MODEL.md

RUNDIR holds MODEL-NAME.csv and MODEL-NAME.log for each run NAME (the first
is the uncompressed baseline). The CSV has step and train_loss columns and
one evaluation column, test_accuracy (rows by epoch) or val_loss (rows by
step), empty where not evaluated. The log is the run's output: the script's
"final:" line and the NANGILA_STATS summary.
"""
import csv
import datetime
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_run(rundir, model, name):
    steps, losses, ex, ev = [], [], [], []
    with open(os.path.join(rundir, f"{model}-{name}.csv")) as f:
        rd = csv.DictReader(f)
        metric = "test_accuracy" if "test_accuracy" in rd.fieldnames else "val_loss"
        xcol = "epoch" if metric == "test_accuracy" else "step"
        rows = list(rd)
    for r in rows:
        if r["train_loss"]:
            steps.append(int(r["step"]))
            losses.append(float(r["train_loss"]))
        if r[metric]:
            ex.append(int(r[xcol]))
            ev.append(float(r[metric]))
    log = open(os.path.join(rundir, f"{model}-{name}.log")).read()
    final = re.search(r"^final: (.*)$", log, re.M)
    fields = dict(kv.split("=", 1) for kv in final.group(1).split()) if final else {}
    wire = re.search(r"wire ratio ([0-9.]+)x", log)
    sent = re.search(r"sent by rank 0: ([0-9.]+) MiB; a ring allreduce sends .* = ([0-9.]+) MiB",
                     log)
    stats = [ln for ln in log.splitlines() if ln.startswith("nangila:")]
    return {
        "rows": rows, "metric": metric, "xcol": xcol,
        "steps": steps, "losses": losses, "ex": ex, "ev": ev,
        "final": fields, "wire": float(wire.group(1)) if wire else None,
        "sent": (float(sent.group(1)), float(sent.group(2))) if sent else None,
        "stats": stats,
    }


def smooth(v, k=9):
    out = []
    for i in range(len(v)):
        w = v[max(0, i - k + 1):i + 1]
        out.append(sum(w) / len(w))
    return out


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    model, rundir, outdir, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    runs = {n: read_run(rundir, model, n) for n in names}

    metric = runs[names[0]]["metric"]
    xcol = runs[names[0]]["xcol"]
    with open(os.path.join(outdir, f"train-{model}.csv"), "w", newline="") as f:
        w = csv.writer(f)
        cols = list(runs[names[0]]["rows"][0].keys())
        w.writerow(["config"] + cols)
        for n in names:
            for r in runs[n]["rows"]:
                w.writerow([n] + [r[c] for c in cols])

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.4))
    for n in names:
        r = runs[n]
        a1.plot(r["steps"], smooth(r["losses"]), label=n, lw=1)
        scale = 100 if metric == "test_accuracy" else 1
        a2.plot(r["ex"], [scale * v for v in r["ev"]], label=n, lw=1, marker=".")
    a1.set_yscale("log")
    a1.set_xlabel("step")
    a1.set_ylabel("training loss (moving average of 9 steps)")
    a2.set_xlabel(xcol)
    if metric == "test_accuracy":
        a2.set_ylabel("test accuracy (%)")
        lo = min(min(r["ev"][len(r["ev"]) // 2:] or [1]) for r in runs.values())
        a2.set_ylim(max(0, 100 * lo - 2), 100)
    else:
        a2.set_ylabel("validation loss")
    for a in (a1, a2):
        a.grid(True, alpha=0.3)
        a.legend()
    fig.suptitle(f"{model}: same seed, NANGILA_MODE off vs compressed gradients")
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, f"train-{model}.png"), dpi=120)

    base = runs[names[0]]
    base_v = float(base["final"].get(metric, "nan"))
    cmd = f"scripts/train-mpi.sh --model {model}"
    print(f"# Training with compressed MPI_Allreduce: {model}\n")
    print("Runs are deterministic: accuracy, losses and wire ratios do not depend on the "
          "machine's load; the times do (4 ranks over loopback, no rate limit, on a "
          f"{os.cpu_count()}-core machine, load average {open('/proc/loadavg').read().split()[0]} "
          "at the end).\n")
    print(f"- regenerate: `{cmd}` ({datetime.date.today()}; curves: `train-{model}.csv`, "
          f"`train-{model}.png`)")
    print("- the script is unmodified mpi4py code; every gradient allreduce is compressed "
          "(NANGILA_MIN_BYTES=0), error feedback on, no predictor; same seed and data order for "
          "every run; wire ratio = fp32 bytes in / frame bytes out, headers included "
          "(NANGILA_STATS, rank 0)\n")
    label = "test accuracy" if metric == "test_accuracy" else "validation loss"
    unit = "points" if metric == "test_accuracy" else "nats/char"
    print(f"| run | final {label} | vs off ({unit}) | final train loss | wire ratio "
          "| sent by rank 0 vs ring allreduce | allreduce time (s) | params identical on all ranks |")
    print("|---|---|---|---|---|---|---|---|")
    for n in names:
        r = runs[n]
        f = r["final"]
        v = float(f.get(metric, "nan"))
        if metric == "test_accuracy":
            shown, delta = f"{100 * v:.2f}%", f"{100 * (v - base_v):+.2f}"
        else:
            shown, delta = f"{v:.4f}", f"{v - base_v:+.4f}"
        wire = f"{r['wire']:.2f}x" if r["wire"] else "1x (off)"
        sent = (f"{r['sent'][0]:.0f} MiB vs {r['sent'][1]:.0f} MiB"
                if r["sent"] and r["wire"] else "-")
        print(f"| {n} | {shown} | {delta} | {f.get('train_loss', '?')} | {wire} | {sent} "
              f"| {f.get('allreduce_s', '?')} "
              f"| {'yes' if f.get('identical_params') == '1' else 'NO'} |")
    print()
    for n in names[1:]:
        if runs[n]["stats"]:
            print(f"NANGILA_STATS, {n}:\n```\n" + "\n".join(runs[n]["stats"]) + "\n```")


if __name__ == "__main__":
    main()
