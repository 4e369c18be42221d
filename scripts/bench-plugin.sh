#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/bench-plugin.sh -- the NCCL plugin's compressed collNet allreduce
# against an exact ring allreduce built on the plugin's own ncclNet, both in
# the same run, between processes in rate-limited network namespaces.
# Prints and records speedup ratios (ring time / collNet time), with the
# closed loop on (error feedback carried across calls) and off
# (NANGILA_EF=0: stateless, what the collNet did before it had stream
# identity), in the same run. The bench repeats calls of one size, which
# automatic stream identity rightly cannot tell from one bucket's slices
# (docs/stream-identity.md), so the closed rows fix the identity with
# NANGILA_COLLNET_PERIOD = the call's 2 MiB slices: every slice keeps its
# own state from repetition to repetition, as in a training job once its
# step pattern is locked (the untimed warm-up creates the state).
#
#   scripts/bench-plugin.sh [--rates "1gbit 10gbit"] [--sizes 1,4,16,64,256]
#                           [--ranks 2] [--iters 3] [--loops "closed stateless"]
#                           [--out verification/plugin]
#
# Needs root (ip netns, tc). Writes <out>/bench-plugin.csv, .png and .txt.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
# shellcheck source=scripts/lib/plugin-netns.sh
. scripts/lib/plugin-netns.sh

rates="1gbit 10gbit"
sizes="1,4,16,64,256"
ranks=2
iters=3
loops="closed stateless"
out=verification/plugin
while [ $# -gt 0 ]; do
    case $1 in
    --rates) rates=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --loops) loops=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "bench-plugin.sh needs root for ip netns and tc" >&2
    exit 1
fi

nangila_ensure_deps
py=$(nangila_python)
build=build/bench
if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" -Dbuildtype=release >/dev/null
else
    meson setup "$build" -Dbuildtype=release >/dev/null
fi
meson compile -C "$build" ngl_plugin_harness nccl-net-nangila >/dev/null
harness=$build/nccl-net-plugin/tests/ngl_plugin_harness
plugin=$PWD/$build/nccl-net-plugin/libnccl-net-nangila.so

prefix=nglpb
trap 'plugin_netns_down "$prefix" "$ranks"' EXIT
mkdir -p "$out"
csv=$out/bench-plugin.csv
tmp=$(mktemp)
header_done=0
for rate in $rates; do
    echo "==> $ranks ranks, links limited to $rate"
    plugin_netns_up "$prefix" "$ranks" "$rate"
    # One harness run per size and loop mode, so that the closed loop's
    # slices map to the same state in every repetition (see above).
    for size in ${sizes//,/ }; do
        for loop in $loops; do
            case $loop in
            closed)
                period=$("$py" -c "import math,sys; print(max(1, math.ceil(float(sys.argv[1]) / 2)))" "$size")
                loop_env=(NANGILA_COLLNET_PERIOD="$period") ;;
            stateless) loop_env=(NANGILA_EF=0) ;;
            *) echo "unknown loop mode $loop (closed, stateless)" >&2; exit 2 ;;
            esac
            echo "--> $size MiB, closed loop: $loop"
            # int8 on every slice: the codec against the ring, not auto's choice
            env "${loop_env[@]}" NANGILA_MODE=int8 NANGILA_SOCKET_IFNAME=${prefix}v "$harness" "$plugin" bench \
                --ranks "$ranks" --sizes "$size" --iters "$iters" --netns "$prefix" \
                --label "$rate" | tee "$tmp.run"
            if [ $header_done = 0 ]; then
                echo "loop,$(grep '^label,' "$tmp.run")" >"$tmp"
                header_done=1
            fi
            grep -E "^${rate}," "$tmp.run" | sed "s/^/$loop,/" >>"$tmp"
        done
    done
    plugin_netns_down "$prefix" "$ranks"
done
mv "$tmp" "$csv"
rm -f "$tmp.run"

{
    echo "command: scripts/bench-plugin.sh --rates \"$rates\" --sizes $sizes --ranks $ranks --iters $iters --loops \"$loops\""
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "settings: NANGILA_MODE=int8, defaults (block 256, automatic stream identity); closed rows NANGILA_COLLNET_PERIOD=ceil(size / 2 MiB) (one state per slice), stateless rows NANGILA_EF=0; one harness run per size and mode; fp32; best of $iters after one warm-up"
    "$py" - "$csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
key = lambda r: (r["label"], r["size_mib"])
closed = {key(r): r for r in rows if r["loop"] == "closed"}
for r in rows:
    if r["loop"] == "stateless" and key(r) in closed:
        c = closed[key(r)]
        print(f"closed-loop cost {r['label']} {r['size_mib']} MiB: collNet time closed/stateless "
              f"{float(c['collnet_s']) / float(r['collnet_s']):.3f}, speedup over the ring "
              f"{c['speedup']} (closed) vs {r['speedup']} (stateless)")
PY
} >"$out/bench-plugin.txt"
"$py" verification/plugin/plot_bench_plugin.py "$csv" "$out/bench-plugin.png"
echo "==> $csv, $out/bench-plugin.png, $out/bench-plugin.txt"
