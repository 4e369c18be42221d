#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/gpu-kernels.sh -- everything for kernels/ on a GPU machine, in one
# command: release build with CUDA, the kernels suite on the GPU, the CUDA
# tests under compute-sanitizer, the benchmark; results and logs go to
# verification/gpu/ (kernels-run.txt summarises the run).
#
#   scripts/gpu-kernels.sh [builddir]     (default build/gpu)
#
# Exits 77 when there is no GPU, nonzero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/gpu}
out=verification/gpu
mkdir -p "$out"
summary=$out/kernels-run.txt

rc_test=0
scripts/gpu-test.sh "$build" "$out" || rc_test=$?
if [ "$rc_test" -eq 77 ]; then
    exit 77
fi
rc_bench=0
scripts/bench-kernels.sh "$build" || rc_bench=$?

{
    echo "# kernels/ on a GPU: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "command: scripts/gpu-kernels.sh $build"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo unknown)"
    echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo unknown)"
    echo "tests + sanitizers: exit $rc_test (logs: kernels-tests.log, kernels-sanitizer.log)"
    echo "benchmark: exit $rc_bench (kernels-bench.csv, kernels-bench.png, kernels-bench.log)"
    if [ -f "$out/kernels-bench.log" ]; then
        echo
        cat "$out/kernels-bench.log"
    fi
} >"$summary"
cat "$summary"
[ "$rc_test" -eq 0 ] && [ "$rc_bench" -eq 0 ]
