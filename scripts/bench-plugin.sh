#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/bench-plugin.sh -- the NCCL plugin's compressed collNet allreduce
# against an exact ring allreduce built on the plugin's own ncclNet, both in
# the same run, between processes in rate-limited network namespaces.
# Prints and records speedup ratios (ring time / collNet time).
#
#   scripts/bench-plugin.sh [--rates "1gbit 10gbit"] [--sizes 1,4,16,64,256]
#                           [--ranks 2] [--iters 3] [--out verification/plugin]
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
out=verification/plugin
while [ $# -gt 0 ]; do
    case $1 in
    --rates) rates=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
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
    NANGILA_SOCKET_IFNAME=${prefix}v "$harness" "$plugin" bench --ranks "$ranks" \
        --sizes "$sizes" --iters "$iters" --netns "$prefix" --label "$rate" | tee "$tmp.run"
    if [ $header_done = 0 ]; then
        grep '^label,' "$tmp.run" >"$tmp"
        header_done=1
    fi
    grep -E "^${rate}," "$tmp.run" >>"$tmp"
    plugin_netns_down "$prefix" "$ranks"
done
mv "$tmp" "$csv"
rm -f "$tmp.run"

{
    echo "command: scripts/bench-plugin.sh --rates \"$rates\" --sizes $sizes --ranks $ranks --iters $iters"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "settings: defaults (NANGILA_MODE=int8, block 256, period 0); fp32; best of $iters after one warm-up"
} >"$out/bench-plugin.txt"
"$py" verification/plugin/plot_bench_plugin.py "$csv" "$out/bench-plugin.png"
echo "==> $csv, $out/bench-plugin.png, $out/bench-plugin.txt"
