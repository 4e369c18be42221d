#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/bench-mpi.sh -- compressed vs uncompressed MPI_Allreduce across 4
# real MPI ranks, each in its own network namespace (its own Open MPI
# daemon: a "node") behind a veth link to a bridge, links rate-limited with
# tc (token bucket, both directions) or not at all ("none"), Open MPI over
# TCP only.
#
# For every link and Nangila configuration, one mpirun of
# mpi-pmpi/bench/pmpi_bench measures, call by call in the same run: plain
# Open MPI with its own algorithm choice, plain Open MPI with each tuned
# allreduce algorithm forced (1 basic linear, 2 nonoverlapping, 3 recursive
# doubling, 4 ring, 5 segmented ring, 6 Rabenseifner; one communicator per
# algorithm, see pmpi_bench.c), a user-written bf16 allreduce, and
# MPI_Allreduce through libnangila-mpi.so, after warm-up calls whose cost is
# reported too (auto explores there).
#
#   scripts/bench-mpi.sh [--quick] [--rates "none 10gbit 1gbit"] [--out DIR]
#                        [--configs "CONFIG ..."] [--sizes LIST] [--merge]
#
# CONFIG is MODE[/MAX][:TOPK[:POLICY]]: MODE a NANGILA_MODE (off, int8, int4,
# auto), MAX a NANGILA_MODE_MAX for auto, TOPK a NANGILA_TOPK (0 = dense),
# POLICY forced (NANGILA_MIN_BYTES=0: compress at every size) or default
# (NANGILA_MIN_BYTES unset: what users get). Defaults: TOPK 0; POLICY
# default for auto, forced otherwise. Default set: "auto auto/int4 int8 int4"
# (CSV config names auto, auto-int4, int8, int4). Rates: tc syntax (1gbit,
# 10gbit) or none (unshaped veth). Sizes: 4k,8k,...,256M (powers of 2);
# --quick: 4k,64k,256k,1M,4M,16M.
#
# Writes DIR/bench-mpi.csv, bench-mpi.png, bench-mpi.md and
# bench-mpi-stats.txt (each run's NANGILA_STATS summary: what auto chose per
# size class, from which times) (default DIR: verification/mpi). Needs root (ip netns, tc). On the 2-core recording
# machine: ~35-45 minutes; --quick (6 sizes) ~5-10.
# --merge replaces only the measured (link, config, policy, size) rows of
# an existing CSV (with --sizes, the other sizes keep their old rows).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh

rates="none 10gbit 1gbit"
out=verification/mpi
quick=0
merge=0
only=""
sizes=""
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1; shift ;;
    --configs) only=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    --rates) rates=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) sed -n '2,35p' "$0"; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "bench-mpi.sh: needs root for ip netns and tc" >&2; exit 1; }

nangila_ensure_deps
py=$(nangila_python)
if [ -f build/bench/build.ninja ]; then
    meson setup --reconfigure build/bench -Dbuildtype=release | tail -n 3
else
    meson setup build/bench -Dbuildtype=release | tail -n 3
fi
meson compile -C build/bench mpi-pmpi/nangila-mpi mpi-pmpi/pmpi_bench | tail -n 1
lib=$PWD/build/bench/mpi-pmpi/libnangila-mpi.so
bench=$PWD/build/bench/mpi-pmpi/pmpi_bench
netns=$PWD/scripts/netns-mpi.sh

# PMIx's shared-memory store trips over several daemons on one host (an
# error message at exit); its hash store does not.
export PMIX_MCA_gds=hash
# Only the settings given below reach the ranks.
for v in $(env | grep -o '^NANGILA_[A-Z_]*' || true); do
    unset "$v"
done

configs="auto auto/int4 int8 int4"
if [ "$quick" = 1 ]; then
    : "${sizes:=4k,64k,256k,1M,4M,16M}"
fi
: "${sizes:=4k,8k,16k,32k,64k,128k,256k,512k,1M,2M,4M,8M,16M,32M,64M,128M,256M}"
[ -n "$only" ] && configs=$only

mkdir -p "$out"
csv=$out/bench-mpi.csv
tmp=$(mktemp)
stats=$(mktemp)
errf=$(mktemp)
trap 'rm -f "$tmp" "$stats" "$errf"; "$netns" down' EXIT

# One mpirun of "${run[@]}": stdout live, stderr live (less Open MPI's
# setpgid noise) and kept in $errf; the status is mpirun's.
run_one() {
    { "${run[@]}" 2>&1 1>&3 3>&- | tee "$errf" | sed '/setpgid/d' >&2; } 3>&1
}
echo "link,config,policy,nranks,bytes,method,iters,median_s,min_s,speedup_vs_plain,wire_bytes_per_rank,total_s,detail" >"$tmp"

load_start=$(cut -d' ' -f1 /proc/loadavg)
t_start=$SECONDS
for rate in $rates; do
    "$netns" up 4 "$rate"
    for c in $configs; do
        IFS=: read -r modemax topk policy <<<"$c"
        mode=${modemax%%/*}
        max=""
        [ "$mode" != "$modemax" ] && max=${modemax#*/}
        topk=${topk:-0}
        if [ -z "${policy:-}" ]; then
            policy=forced
            [ "$mode" = auto ] && policy=default
        fi
        case "$policy" in
        forced | default) ;;
        *) echo "bench-mpi.sh: config $c: POLICY must be forced or default" >&2; exit 2 ;;
        esac
        cfg=$mode
        [ -n "$max" ] && cfg="$mode-$max"
        [ "$topk" != 0 ] && cfg="$cfg+topk$topk"
        env=(-x NANGILA_MODE="$mode" -x NANGILA_TOPK="$topk" -x NANGILA_STATS=1)
        [ -n "$max" ] && env+=(-x NANGILA_MODE_MAX="$max")
        [ "$policy" = forced ] && env+=(-x NANGILA_MIN_BYTES=0)
        # auto explores during its first calls of each size (7 plain arms
        # and the codecs: 3 calls each, then 3 more for each arm within
        # 1.25x of the best; at most ~54 calls, plus those that create
        # streams): give it room; fixed modes only need their buffers and
        # state set up.
        warmup=4
        [ "$mode" = auto ] && warmup=56
        echo "==> $rate, $cfg, NANGILA_MIN_BYTES ${policy} ($((SECONDS - t_start)) s so far)"
        run=(mpirun -np 4 --host "$("$netns" hosts 4)" --mca plm_rsh_agent "$netns rsh" --mca rtc_hwloc_vmhole none
             --bind-to none --mca btl self,tcp
             --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24
             --mca mpi_yield_when_idle 1
             --mca coll_tuned_use_dynamic_rules 1
             -x LD_PRELOAD="$lib" "${env[@]}"
             "$bench" --sizes "$sizes" --algs 1,2,3,4,5,6 --warmup "$warmup"
             --iface "$("$netns" iface)" --label "$rate,$cfg,$policy" --csv "$tmp")
        # A launch can fail on a busy machine ("try again"); retry once,
        # without the rows of the failed attempt.
        lines=$(wc -l <"$tmp")
        run_one || {
            echo "bench-mpi.sh: mpirun failed; retrying once" >&2
            head -n "$lines" "$tmp" >"$tmp.part" && mv "$tmp.part" "$tmp"
            sleep 2
            run_one
        }
        # rank 0's NANGILA_STATS summary: what auto chose per size, and why
        { echo "== $rate, $cfg, NANGILA_MIN_BYTES $policy"; grep '^nangila' "$errf" || true; } >>"$stats"
    done
done
took=$((SECONDS - t_start))
echo "==> measured in $took s"
if [ "$merge" = 1 ] && [ -f "$csv" ]; then
    # keep the old rows of every (link, config, policy, size) not measured now
    "$py" - "$csv" "$tmp" <<'EOF'
import csv, sys
old, new = sys.argv[1], sys.argv[2]
rd_new = csv.DictReader(open(new))
rows_new = list(rd_new)
key = lambda r: (r["link"], r["config"], r["policy"], r["bytes"])
fresh = {key(r) for r in rows_new}
kept = [r for r in csv.DictReader(open(old)) if key(r) not in fresh]
with open(new, "w", newline="") as f:
    # older CSVs lack the later columns: they stay empty
    w = csv.DictWriter(f, fieldnames=rd_new.fieldnames, restval="", extrasaction="ignore")
    w.writeheader()
    w.writerows(kept + rows_new)
EOF
fi
chmod 644 "$tmp" "$stats"
mv "$tmp" "$csv"
if [ "$merge" = 1 ] && [ -f "$out/bench-mpi-stats.txt" ]; then
    cat "$stats" >>"$out/bench-mpi-stats.txt"
    rm -f "$stats"
else
    mv "$stats" "$out/bench-mpi-stats.txt"
fi
rm -f "$errf"
trap '"$netns" down' EXIT

"$py" scripts/lib/bench_mpi_report.py "$csv" "$out/bench-mpi.png" \
    --load-start "$load_start" --seconds "$took" >"$out/bench-mpi.md"
cat "$out/bench-mpi.md"
