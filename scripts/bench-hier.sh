#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/bench-hier.sh -- flat vs hierarchical compressed MPI_Allreduce on
# fake nodes: one network namespace per node (its own Open MPI daemon), L
# ranks in each, shared memory (vader) inside a node, TCP across a veth link
# limited with tc between nodes (scripts/netns-mpi.sh).
#
# For every layout NODESxRANKS one mpirun of mpi-pmpi/bench/pmpi_bench per
# configuration measures, call by call in the same run, plain Open MPI (its
# own choice and each tuned algorithm forced) and MPI_Allreduce through
# libnangila-mpi.so:
#   flat-int8, flat-int4   NANGILA_HIER=off: every rank sends frames to every rank
#   slices-int8, slices-int4
#                          NANGILA_HIER=slices: exact reduce-scatter in the
#                          node, compressed across nodes, exact allgather
#   leaders-int8           NANGILA_HIER=leaders: exact reduce to one rank per
#                          node, compressed among those, exact broadcast
#   auto                   the defaults (NANGILA_HIER=auto, NANGILA_MODE=auto)
# Open MPI's own hierarchical component (HAN) would be a fair plain
# baseline, but Debian 12's Open MPI 4.1.4 HAN crashes in this benchmark
# (SIGSEGV at address 0x10001 inside mca_coll_han_allreduce_intra, with and
# without vader's single-copy mechanism), so it is not measured.
#
# Then the error of the reduced sum against the number of ranks
# (pmpi_check sum: rms error / rms of the exact sum, 2 to 16 ranks, flat
# and hierarchical with 2 fake nodes) and the cost model
# (scripts/lib/hier_model.py): fitted to these measurements, then
# extrapolated to 1024 nodes.
#
#   scripts/bench-hier.sh [--layouts "2x1 2x2 2x4 4x2 2x8"] [--rate 1gbit]
#                         [--sizes 64k,1M,4M,16M,64M] [--configs "..."]
#                         [--out DIR] [--no-error | --error-only] [--merge]
# (--error-only: only the error measurement and the model, on the CSV already there)
#
# Writes DIR/bench-hier.csv (pmpi_bench rows, LABEL = link,layout,config),
# bench-hier-error.csv, bench-hier.md and the model's CSV and PNGs
# (default DIR: verification/mpi-hier). Needs root (ip netns, tc).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh

layouts="2x1 2x2 2x4 4x2 2x8"
rate=1gbit
sizes=64k,1M,4M,16M,64M
configs="flat-int8 slices-int8 leaders-int8 flat-int4 slices-int4 auto"
out=verification/mpi-hier
error=1
error_only=0
merge=0
while [ $# -gt 0 ]; do
    case "$1" in
    --layouts) layouts=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --configs) configs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-error) error=0; shift ;;
    --error-only) error_only=1; shift ;;
    --merge) merge=1; shift ;;
    *) sed -n '2,34p' "$0"; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-hier.sh: needs root for ip netns and tc" >&2; exit 1; }

nangila_ensure_deps
py=$(nangila_python)
if [ -f build/bench/build.ninja ]; then
    meson setup --reconfigure build/bench -Dbuildtype=release | tail -n 3
else
    meson setup build/bench -Dbuildtype=release | tail -n 3
fi
meson compile -C build/bench mpi-pmpi/nangila-mpi mpi-pmpi/pmpi_bench mpi-pmpi/tests/pmpi_check |
    tail -n 1
lib=$PWD/build/bench/mpi-pmpi/libnangila-mpi.so
bench=$PWD/build/bench/mpi-pmpi/pmpi_bench
check=$PWD/build/bench/mpi-pmpi/tests/pmpi_check
netns=$PWD/scripts/netns-mpi.sh

export PMIX_MCA_gds=hash
# Namespaces of our own (scripts/bench-mpi.sh's are ngl/10.77.0).
export NGL_NETNS_NAME=nglh NGL_NETNS_SUBNET=10.80.0
for v in $(env | grep -o '^NANGILA_[A-Z_]*' || true); do
    unset "$v"
done

mkdir -p "$out"
csv=$out/bench-hier.csv
tmp=$(mktemp)
errf=$(mktemp)
trap 'rm -f "$tmp" "$errf" "$tmp.err"; "$netns" down' EXIT
echo "link,layout,config,nranks,bytes,method,iters,median_s,min_s,speedup_vs_plain,wire_bytes_per_rank,total_s,detail" >"$tmp"

t_start=$SECONDS
[ "$error_only" = 1 ] && layouts=""
for layout in $layouts; do
    nodes=${layout%x*}
    per=${layout#*x}
    np=$((nodes * per))
    "$netns" up "$nodes" "$rate"
    for c in $configs; do
        env=(-x NANGILA_STATS=1)
        warmup=4
        case "$c" in
        flat-*) env+=(-x NANGILA_HIER=off -x NANGILA_MODE="${c#*-}" -x NANGILA_MIN_BYTES=0) ;;
        slices-* | leaders-*)
            env+=(-x NANGILA_HIER="${c%-*}" -x NANGILA_MODE="${c#*-}" -x NANGILA_MIN_BYTES=0) ;;
        auto) warmup=16 ;;
        *) echo "bench-hier.sh: unknown config $c" >&2; exit 2 ;;
        esac
        echo "==> $rate, $layout, $c ($((SECONDS - t_start)) s so far)"
        # Open MPI over this fake cluster: vader inside a node, TCP across.
        run=(mpirun -np "$np" --host "$("$netns" hosts "$nodes" "$per")"
             --mca plm_rsh_agent "$netns rsh" --mca rtc_hwloc_vmhole none --bind-to none
             --mca btl self,vader,tcp --mca btl_tcp_if_include 10.80.0.0/24
             --mca oob_tcp_if_include 10.80.0.0/24 --mca mpi_yield_when_idle 1
             --mca coll_tuned_use_dynamic_rules 1 -x LD_PRELOAD="$lib" "${env[@]}"
             "$bench" --sizes "$sizes" --algs 1,2,3,4,5,6 --warmup "$warmup" --max-time 20
             --iface "$("$netns" iface)" --label "$rate,$layout,$c" --csv "$tmp")
        lines=$(wc -l <"$tmp")
        if ! "${run[@]}" 2> >(tee "$errf" | sed '/setpgid/d' >&2); then
            echo "bench-hier.sh: mpirun failed; retrying once" >&2
            head -n "$lines" "$tmp" >"$tmp.part" && mv "$tmp.part" "$tmp"
            sleep 2
            "${run[@]}" 2> >(tee "$errf" | sed '/setpgid/d' >&2)
        fi
        { echo "== $rate, $layout, $c"; grep '^nangila' "$errf" || true; } >>"$out/bench-hier-stats.txt.new"
    done
done
"$netns" down
took=$((SECONDS - t_start))

if [ "$merge" = 1 ] && [ -f "$csv" ]; then
    "$py" - "$csv" "$tmp" <<'EOF'
import csv, sys
old, new = sys.argv[1], sys.argv[2]
rows_new = list(csv.DictReader(open(new)))
fresh = {(r["link"], r["layout"], r["config"]) for r in rows_new}
kept = [r for r in csv.DictReader(open(old))
        if (r["link"], r["layout"], r["config"]) not in fresh]
with open(new, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows_new[0].keys()))
    w.writeheader()
    w.writerows(kept + rows_new)
EOF
fi
if [ "$error_only" = 0 ]; then
    chmod 644 "$tmp"
    mv "$tmp" "$csv"
    { echo "# measured in $took s"; cat "$out/bench-hier-stats.txt.new"; } >"$out/bench-hier-stats.txt"
    rm -f "$out/bench-hier-stats.txt.new"
else
    took=$(sed -n '1s/^# measured in \([0-9]*\) s$/\1/p' "$out/bench-hier-stats.txt")
fi

# ---- error of the reduced sum against P (shared memory: bytes do not
# matter here, only the arithmetic) ----------------------------------------
if [ "$error" = 1 ]; then
    ecsv=$out/bench-hier-error.csv
    echo "nranks,nodes,algorithm,mode,floats,calls,rel_rms_mean,rel_rms_max" >"$ecsv"
    n=1048576
    for np in 2 4 8 16; do
        for alg in flat slices; do
            [ "$alg" = slices ] && [ "$np" -lt 4 ] && continue
            nodes=$np
            [ "$alg" = slices ] && nodes=2
            for mode in int8 int4; do
                # Open MPI takes -x per application context: every rank's
                # context carries the whole environment (slices: its node id).
                xs=(-x LD_PRELOAD="$lib" -x PMPI_CHECK_VERBOSE=1 -x NANGILA_MODE="$mode"
                    -x NANGILA_MIN_BYTES=0
                    -x NANGILA_HIER="$([ "$alg" = flat ] && echo off || echo slices)")
                ctx=()
                for ((r = 0; r < np; r++)); do
                    [ "$r" -gt 0 ] && ctx+=(:)
                    ctx+=(-np 1 "${xs[@]}" -x NANGILA_NODE_ID=$((r * nodes / np))
                          "$check" sum --steps 8 --sizes "$n")
                done
                mpirun --oversubscribe --bind-to none --mca btl self,vader \
                    --mca mpi_yield_when_idle 1 "${ctx[@]}" 2>/dev/null |
                    grep '^n=' | "$py" -c '
import re, sys
rel = [float(re.search(r"rel_rms=(\S+)", l).group(1)) for l in sys.stdin]
print(",".join(sys.argv[1:]) + ",%d,%.5g,%.5g" % (len(rel), sum(rel) / len(rel), max(rel)))
' "$np" "$nodes" "$alg" "$mode" "$n" >>"$ecsv"
                tail -n 1 "$ecsv"
            done
        done
    done
fi

"$py" scripts/lib/hier_model.py "$csv" --error "$out/bench-hier-error.csv" \
    --out "$out" --seconds "$took" >"$out/bench-hier.md"
cat "$out/bench-hier.md"
