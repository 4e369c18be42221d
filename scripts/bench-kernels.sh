#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/bench-kernels.sh -- GPU kernel throughput next to the
# device-to-device copy bandwidth measured in the same run; CSV and PNG in
# verification/gpu/.
#
#   scripts/bench-kernels.sh [builddir] [count] [reps]   (default build/gpu, 2^26, 20)
#
# Exits 77 when there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
# shellcheck source=scripts/lib/kernels-gpu.sh
. scripts/lib/kernels-gpu.sh

build=${1:-build/gpu}
count=${2:-67108864}
reps=${3:-20}
out=verification/gpu
mkdir -p "$out"

nangila_gpu_deps
nangila_gpu_setup "$build"
# Results replace the recorded ones only when the run succeeds.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
"$build/kernels/bench_gpu_kernels" "$count" "$reps" "$tmp/kernels-bench.csv" |
    tee "$tmp/kernels-bench.log" || rc=${PIPESTATUS[0]}
if [ "$rc" -eq 77 ]; then
    echo "==> no CUDA device: benchmark skipped"
    exit 77
fi
[ "$rc" -eq 0 ] || exit "$rc"
mv "$tmp/kernels-bench.csv" "$tmp/kernels-bench.log" "$out/"
"$(nangila_python)" verification/gpu/plot_kernels.py "$out/kernels-bench.csv" \
    "$out/kernels-bench.png"
echo "==> $out/kernels-bench.csv, $out/kernels-bench.png"
