#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/train-mpi.sh -- train unmodified data-parallel scripts under
# mpirun with LD_PRELOAD=libnangila-mpi.so, the same seed for every
# setting: NANGILA_MODE=off, int8, int4, int4 + top-k 10%. Records loss
# curves, final accuracy and the wire ratio NANGILA_STATS reports.
#
#   scripts/train-mpi.sh [--model digits|charlm|all] [--np 4] [--out DIR]
#
#   digits  examples/mpi_train_digits.py: numpy MLP on scikit-learn's digits
#   charlm  examples/mpi_train_charlm.py: PyTorch character-level transformer
#           on text shipped with the system (installs python3-torch)
#
# Writes DIR/train-<model>.csv (all runs), .png and .md (default DIR:
# verification/mpi).
# Every gradient allreduce is compressed (NANGILA_MIN_BYTES=0): the
# harshest setting for accuracy. Ranks talk TCP over loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh

model=digits
np=4
out=verification/mpi
while [ $# -gt 0 ]; do
    case "$1" in
    --model) model=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
    esac
done
models=("$model")
[ "$model" = all ] && models=(digits charlm)

extra=()
for m in "${models[@]}"; do
    [ "$m" = charlm ] && extra+=(python3-torch)
done
nangila_ensure_deps "${extra[@]}"
py=$(nangila_python)
if [ -f build/demo/build.ninja ]; then
    meson setup --reconfigure build/demo -Dbuildtype=release >/dev/null
else
    meson setup build/demo -Dbuildtype=release >/dev/null
fi
meson compile -C build/demo mpi-pmpi/nangila-mpi >/dev/null
lib=$PWD/build/demo/mpi-pmpi/libnangila-mpi.so
for v in $(env | grep -o '^NANGILA_[A-Z_]*' || true); do
    unset "$v"
done
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for m in "${models[@]}"; do
    case "$m" in
    digits) script=examples/mpi_train_digits.py; args=(--epochs 40) ;;
    charlm) script=examples/mpi_train_charlm.py; args=(--steps 400) ;;
    *) echo "train-mpi.sh: unknown model $m" >&2; exit 2 ;;
    esac
    runs=()
    for c in "off 0" "int8 0" "int4 0" "int4 0.1"; do
        read -r mode topk <<<"$c"
        name=$mode
        [ "$topk" != 0 ] && name="$mode+topk$topk"
        log=$tmp/$m-$name.log
        echo "==> $m, NANGILA_MODE=$mode NANGILA_TOPK=$topk"
        mpirun -np "$np" --oversubscribe --bind-to none \
            --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
            --mca mpi_yield_when_idle 1 \
            -x LD_PRELOAD="$lib" -x NANGILA_MODE="$mode" -x NANGILA_TOPK="$topk" \
            -x NANGILA_MIN_BYTES=0 -x NANGILA_STATS=1 -x OMP_NUM_THREADS=1 \
            "$py" "$script" "${args[@]}" --seed 1 --csv "$tmp/$m-$name.csv" 2>&1 |
            tee "$log" | grep -E "^(epoch +[0-9]*[05] |final|nangila: +(compressed|sent))" || true
        runs+=("$name")
    done
    "$py" scripts/lib/train_mpi_report.py "$m" "$tmp" "$out" "${runs[@]}" >"$out/train-$m.md"
    cat "$out/train-$m.md"
done
