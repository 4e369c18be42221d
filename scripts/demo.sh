#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/demo.sh -- install what is missing, build, and run the main job:
# a 4-rank data-parallel training run (examples/mpi_train_digits.py: numpy +
# mpi4py, gradients averaged with comm.Allreduce) over loopback, first with
# plain Open MPI, then with the same script, unchanged, under
# LD_PRELOAD=libnangila-mpi.so. Prints accuracy, bytes on the wire and
# allreduce time for both, then the codec throughput table.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
nangila_ensure_deps

if [ -f build/demo/build.ninja ]; then
    meson setup --reconfigure build/demo -Dbuildtype=release | tail -n 1
else
    meson setup build/demo -Dbuildtype=release | tail -n 1
fi
meson compile -C build/demo | tail -n 1
lib=$PWD/build/demo/mpi-pmpi/libnangila-mpi.so
py=$(nangila_python)
for v in $(env | grep -o '^NANGILA_[A-Z_]*' || true); do
    unset "$v"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

train() { # log, extra mpirun arguments...
    local log=$1
    shift
    mpirun -np 4 --oversubscribe --bind-to none \
        --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo \
        --mca mpi_yield_when_idle 1 -x OMP_NUM_THREADS=1 "$@" \
        "$py" examples/mpi_train_digits.py --epochs 15 --seed 1 >"$log" 2>&1 || {
        cat "$log"
        exit 1
    }
    grep -E "^(epoch +[0-9]*[05] |final)" "$log"
}
field() { # log, key -> value from the script's "final:" line
    sed -n "s/^final: .*\b$2=\([^ ]*\).*/\1/p" "$1"
}

echo
echo "==> 4 ranks, MLP on scikit-learn digits, plain Open MPI (TCP over loopback)"
train "$tmp/off"
echo
echo "==> the same script, unchanged, with LD_PRELOAD=libnangila-mpi.so and NANGILA_STATS=1"
echo "    (defaults: NANGILA_MODE=auto: per message size, plain MPI or int8 with error"
echo "    feedback, whichever the ranks measured faster on this machine)"
train "$tmp/int8" -x LD_PRELOAD="$lib" -x NANGILA_STATS=1
grep "^nangila:" "$tmp/int8"

read -r sent ring < <(sed -n 's/.*sent by rank 0: \([0-9.]*\) MiB; a ring allreduce sends .* = \([0-9.]*\) MiB.*/\1 \2/p' "$tmp/int8")
echo
echo "==> summary (4 ranks, 15 epochs, same seed)"
printf '    %-34s %10s %10s\n' "" "plain MPI" "Nangila"
printf '    %-34s %9.2f%% %9.2f%%\n' "test accuracy" \
    "$(awk "BEGIN{print 100*$(field "$tmp/off" test_accuracy)}")" \
    "$(awk "BEGIN{print 100*$(field "$tmp/int8" test_accuracy)}")"
printf '    %-34s %10s %10s\n' "seconds in comm.Allreduce (rank 0)" \
    "$(field "$tmp/off" allreduce_s)" "$(field "$tmp/int8" allreduce_s)"
if awk "BEGIN{exit !(${sent:-0} > 0)}"; then
    echo "    rank 0 sent $sent MiB of frames for the compressed calls, where a ring allreduce"
    echo "    (2(P-1)/P x the fp32 bytes) sends $ring MiB:" \
        "$(awk "BEGIN{printf \"%.1f MiB saved, %.2fx less\", $ring-$sent, $ring/$sent}")"
else
    echo "    auto measured plain MPI faster at every size here, so nothing was compressed"
fi
echo "    Loopback has no bandwidth to save; over real links see verification/mpi/bench-mpi.md"
echo "    (scripts/bench-mpi.sh: 4 ranks behind 1 and 10 Gbit/s links)."

echo
echo "==> codec throughput on one core (nangila bench)"
build/demo/tools/nangila bench --count 4194304 --iters 5
