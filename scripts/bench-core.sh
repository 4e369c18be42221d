#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/bench-core.sh -- single-core codec throughput vs memcpy, recorded.
#
#   scripts/bench-core.sh [--count N] [--iters N]
#
# Builds a release tree (build/bench), runs `nangila bench` for every kernel
# variant the CPU has, and writes verification/core/bench-<isa>.csv plus
# verification/core/bench.png. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh
nangila_ensure_deps

count=16777216
iters=9
while [ $# -gt 0 ]; do
    case "$1" in
        --count) count=$2; shift 2 ;;
        --iters) iters=$2; shift 2 ;;
        *) echo "usage: $0 [--count N] [--iters N]" >&2; exit 2 ;;
    esac
done

if [ -f build/bench/build.ninja ]; then
    meson setup --reconfigure build/bench -Dbuildtype=release >/dev/null
else
    meson setup build/bench -Dbuildtype=release >/dev/null
fi
meson compile -C build/bench tools/nangila:executable >/dev/null

out=verification/core
mkdir -p "$out"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
{
    echo "# nangila bench, $(date -u +%Y-%m-%dT%H:%MZ), $cpu, $(nproc) cores"
    echo "# command: scripts/bench-core.sh --count $count --iters $iters"
} > "$out/bench-meta.txt"
for isa in ref avx2 avx512; do
    if build/bench/tools/nangila bench --isa "$isa" --count 8 --iters 1 >/dev/null 2>&1; then
        n=$count
        # the portable reference is ~10x slower; keep its run short
        [ "$isa" = ref ] && n=$((count / 4))
        echo "==> isa $isa"
        build/bench/tools/nangila bench --isa "$isa" --count "$n" --iters "$iters" \
            --csv "$out/bench-$isa.csv" | tee -a "$out/bench-meta.txt"
    fi
done
"$(nangila_python)" scripts/plot/plot_bench_core.py "$out" "$out/bench.png"
echo "wrote $out/bench-*.csv and $out/bench.png"
