#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/bench-mpi.sh -- compressed vs uncompressed MPI_Allreduce across 4
# real MPI ranks, each in its own network namespace (its own Open MPI
# daemon: a "node") behind a veth link to a bridge, links rate-limited with
# tc (token bucket, both directions), Open MPI over TCP only.
#
# For every link rate and Nangila configuration, one mpirun of
# mpi-pmpi/bench/pmpi_bench measures, call by call in the same run: plain
# Open MPI (PMPI_Allreduce, fp32), a user-written bf16 allreduce (bf16
# buffer + user-defined sum op), and MPI_Allreduce through
# libnangila-mpi.so. Configurations: int8, int4, int4 + top-k 10% with
# compression forced at every size (NANGILA_MIN_BYTES=0, to find the
# crossover), and int8 with the default NANGILA_MIN_BYTES (what users get).
#
#   scripts/bench-mpi.sh [--quick] [--rates "1gbit 10gbit"] [--out DIR]
#                        [--configs "MODE:TOPK:POLICY ..."] [--merge]
#
# Writes DIR/bench-mpi.csv, bench-mpi.png and bench-mpi.md (default DIR:
# verification/mpi). Needs root (ip netns, tc). Takes ~25 minutes on a busy
# 2-core machine; --quick runs fewer sizes and configurations. --configs
# picks configurations (POLICY: forced or default), e.g. "int8:0:default";
# --merge replaces only their rows in an existing CSV.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh

rates="1gbit 10gbit"
out=verification/mpi
quick=0
merge=0
only=""
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1; shift ;;
    --configs) only=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    --rates) rates=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
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

sizes=1k,4k,16k,64k,128k,256k,512k,1M,2M,4M,8M,16M,32M,64M,128M,256M
configs=("int8 0 forced" "int4 0 forced" "int4 0.1 forced" "int8 0 default")
if [ "$quick" = 1 ]; then
    sizes=64k,256k,1M,4M,16M,64M
    configs=("int8 0 forced" "int4 0 forced" "int8 0 default")
fi
if [ -n "$only" ]; then
    configs=()
    for c in $only; do
        configs+=("${c//:/ }")
    done
fi

mkdir -p "$out"
csv=$out/bench-mpi.csv
tmp=$(mktemp)
trap 'rm -f "$tmp"; "$netns" down' EXIT
echo "link,config,policy,nranks,bytes,method,iters,median_s,min_s,speedup_vs_plain,wire_bytes_per_rank" >"$tmp"

for rate in $rates; do
    "$netns" up 4 "$rate"
    for c in "${configs[@]}"; do
        read -r mode topk policy <<<"$c"
        cfg=$mode
        [ "$topk" != 0 ] && cfg="$mode+topk$topk"
        minb=()
        [ "$policy" = forced ] && minb=(-x NANGILA_MIN_BYTES=0)
        echo "==> $rate, $cfg, NANGILA_MIN_BYTES ${policy}"
        run=(mpirun -np 4 --host "$("$netns" hosts 4)" --mca plm_rsh_agent "$netns rsh"
             --bind-to none --mca btl self,tcp
             --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24
             --mca mpi_yield_when_idle 1
             -x LD_PRELOAD="$lib" -x NANGILA_MODE="$mode" -x NANGILA_TOPK="$topk" "${minb[@]}"
             "$bench" --sizes "$sizes" --iface "$("$netns" iface)"
             --label "$rate,$cfg,$policy" --csv "$tmp")
        # A launch can fail on a busy machine ("try again"); retry once.
        "${run[@]}" 2> >(grep -v setpgid >&2) || {
            echo "bench-mpi.sh: mpirun failed; retrying once" >&2
            sleep 2
            "${run[@]}" 2> >(grep -v setpgid >&2)
        }
    done
done
if [ "$merge" = 1 ] && [ -f "$csv" ]; then
    # keep the old rows of every (link, config, policy) not measured now
    "$py" - "$csv" "$tmp" <<'EOF'
import csv, sys
old, new = sys.argv[1], sys.argv[2]
rows_new = list(csv.DictReader(open(new)))
fresh = {(r["link"], r["config"], r["policy"]) for r in rows_new}
rd = csv.DictReader(open(old))
kept = [r for r in rd if (r["link"], r["config"], r["policy"]) not in fresh]
with open(new, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=rd.fieldnames)
    w.writeheader()
    w.writerows(kept + rows_new)
EOF
fi
mv "$tmp" "$csv"
trap '"$netns" down' EXIT

"$py" scripts/lib/bench_mpi_report.py "$csv" "$out/bench-mpi.png" >"$out/bench-mpi.md"
cat "$out/bench-mpi.md"
