#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/gpu-test.sh -- the kernels/ test suite on this machine's GPU, then
# the CUDA test programs again under compute-sanitizer (memcheck with leak
# check, racecheck, synccheck, initcheck).
#
#   scripts/gpu-test.sh [builddir] [logdir]     (default build/gpu, verification/gpu)
#
# Exits 77 (skipped) when there is no GPU; fails if any test or any
# sanitizer tool reports an error. compute-sanitizer missing is reported and
# skipped, not hidden: the summary says so.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
# shellcheck source=scripts/lib/kernels-gpu.sh
. scripts/lib/kernels-gpu.sh

build=${1:-build/gpu}
logs=${2:-verification/gpu}
mkdir -p "$logs"

nangila_gpu_deps
nangila_gpu_setup "$build"
if ! nangila_gpu_present "$build"; then
    echo "==> no CUDA device: GPU tests skipped"
    exit 77
fi

echo "==> kernels suite on the GPU ($build)"
# pipefail: a failing suite stops the script here
meson test -C "$build" --suite kernels --print-errorlogs 2>&1 | tee "$logs/kernels-tests.log"
if grep -q "test_gpu_parity_cuda.*SKIP" "$build/meson-logs/testlog.txt"; then
    echo "GPU present but test_gpu_parity_cuda skipped: inconsistent" >&2
    exit 1
fi

if ! command -v compute-sanitizer >/dev/null; then
    echo "==> compute-sanitizer not found: sanitizer runs SKIPPED" | tee "$logs/kernels-sanitizer.log"
    exit 0
fi
status=0
: >"$logs/kernels-sanitizer.log"
for tool in memcheck racecheck synccheck initcheck; do
    extra=()
    if [ "$tool" = memcheck ]; then
        extra=(--leak-check full)
    fi
    for t in test_gpu_parity_cuda test_gpu_reject_cuda; do
        echo "==> compute-sanitizer --tool $tool $t" | tee -a "$logs/kernels-sanitizer.log"
        if compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 99 \
            "$build/kernels/tests/$t" >>"$logs/kernels-sanitizer.log" 2>&1; then
            echo "    clean" | tee -a "$logs/kernels-sanitizer.log"
        else
            echo "    FAILED (see $logs/kernels-sanitizer.log)" | tee -a "$logs/kernels-sanitizer.log"
            status=1
        fi
    done
done
exit $status
