#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/bench-hpc-kernels.sh -- levels 0 and 1 with each first-pass vector
# kernel this CPU has (avx512, avx2) and with the scalar code, on the real
# LAMMPS trajectories at absolute eps 1e-3: compress / decompress MB/s of float32 xyz
# (one core, CPU time, best of NGL_BENCH_REPEAT, default 3), the speed-up over
# the scalar code and over memcpy measured in the same run. The streams are
# the same bytes whatever the kernel (the script checks the sizes agree;
# test_hpc_lean checks the bytes). Writes verification/hpc/lean-kernels.csv
# and lean-kernels.png.
#
#   scripts/bench-hpc-kernels.sh [FILE...]   names in verification/data/
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
# shellcheck source=scripts/lib/hpc_bench_setup.sh
. scripts/lib/hpc_bench_setup.sh "$@"

out=verification/hpc/lean-kernels.csv
echo "file,level,kernel,bytes,ratio_f32,comp_MBps,decomp_MBps,memcpy_MBps,comp_vs_scalar,comp_vs_memcpy" >"$out"
for f in "${files[@]}"; do
    for level in 0 1; do
        flag=--fastest
        [ "$level" = 1 ] && flag=--fast
        scalar=""
        for k in scalar avx2 avx512; do
            line=$("$build/tools/nangila" hpc bench --eps 1e-3 "$flag" --kernel "$k" \
                --repeat "${NGL_BENCH_REPEAT:-3}" "$data/$f.dump" 2>/dev/null) || {
                echo "$f $k: not on this CPU"
                continue
            }
            "$py" - "$f" "$level" "$k" "$line" "$scalar" >>"$out" <<'PY'
import sys
f, level, k, line, scalar = sys.argv[1:6]
kv = dict(t.split("=", 1) for t in line.split() if "=" in t)
assert kv["kernel"] == k, kv
base = float(scalar.split(",")[5]) if scalar else float(kv["enc_MBps"])
if scalar:
    assert scalar.split(",")[3] == kv["bytes"], "the kernels disagree on the size"
print("%s,%s,%s,%s,%s,%s,%s,%s,%.2f,%.4f" % (f, level, k, kv["bytes"], kv["ratio_f32"],
      kv["enc_MBps"], kv["dec_MBps"], kv["memcpy_MBps"], float(kv["enc_MBps"]) / base,
      float(kv["enc_vs_memcpy"])))
PY
            [ "$k" = scalar ] && scalar=$(tail -1 "$out")
            tail -1 "$out"
        done
    done
done
"$py" - "$out" <<'PY'
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
rows = list(csv.DictReader(open(sys.argv[1])))
files = list(dict.fromkeys(r["file"] for r in rows))
kernels = [k for k in ("scalar", "avx2", "avx512") if any(r["kernel"] == k for r in rows)]
fig, axs = plt.subplots(1, 2, figsize=(14, 4.5), sharey=True)
for ax, level, name in zip(axs, ("0", "1"), ("--fastest", "--fast")):
    w = 0.8 / len(kernels)
    for i, k in enumerate(kernels):
        vals = [next((float(r["comp_MBps"]) for r in rows
                      if r["file"] == f and r["kernel"] == k and r["level"] == level), 0)
                for f in files]
        ax.bar(np.arange(len(files)) + i * w, vals, w, label=k)
    ax.axhline(300, color="grey", ls="--", lw=1, label="300 MB/s target")
    ax.set_xticks(np.arange(len(files)) + 0.4 - w / 2)
    ax.set_xticklabels(files, rotation=20)
    ax.set_title("level %s (%s), abs eps 1e-3, by first-pass kernel" % (level, name))
    ax.grid(axis="y", alpha=0.3)
axs[0].set_ylabel("compress MB/s of float32 xyz (one core)")
axs[0].legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[1].replace(".csv", ".png"), dpi=110)
PY
echo "wrote $out and ${out%.csv}.png"
