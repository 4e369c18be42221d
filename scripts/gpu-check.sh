#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/gpu-check.sh -- NCCL's allreduce through libnccl-net-nangila.so on a
# machine with one NVIDIA GPU and PyTorch: two processes share the GPU but
# set different NCCL_HOSTID, so NCCL sees two nodes and uses the network
# plugin (and its collNet) between them.
#
#   (a) torch.distributed all_reduce in fp32 and bf16: within the codec's
#       bound of the exact sum, bit-identical on both ranks;
#   (b) an unchanged DDP training script under torchrun, with and without
#       the plugin, from the same seed: the losses must agree;
#   and NCCL_DEBUG=INFO logs must show the collNet of nangila at work, with
#   no fallback. Logs and results go to verification/gpu/.
#
# Exits 77 (skip) when there is no NVIDIA GPU or no PyTorch with CUDA.
#   scripts/gpu-check.sh [--steps 200] [--out verification/gpu]
set -euo pipefail
cd "$(dirname "$0")/.."

steps=200
out=verification/gpu
while [ $# -gt 0 ]; do
    case $1 in
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "gpu-check: no NVIDIA GPU here; skipping"
    exit 77
fi
py=""
for cand in "${NANGILA_GPU_PYTHON:-}" python3 /usr/bin/python3; do
    if [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 &&
        "$cand" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        py=$(command -v "$cand")
        break
    fi
done
if [ -z "$py" ]; then
    echo "gpu-check: no PyTorch with CUDA found (set NANGILA_GPU_PYTHON); skipping"
    exit 77
fi

# Build only what is needed: the plugin (no tests, no MPI).
build=build/gpu
if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" -Dtests=false -Dmpi=disabled >/dev/null
else
    meson setup "$build" -Dtests=false -Dmpi=disabled >/dev/null
fi
meson compile -C "$build" nccl-net-nangila >/dev/null
plugin_dir=$PWD/$build/nccl-net-plugin
test -f "$plugin_dir/libnccl-net-nangila.so"

mkdir -p "$out"
nccl_version=$("$py" -c 'import torch; print(".".join(map(str, torch.cuda.nccl.version())))')
torch_version=$("$py" -c 'import torch; print(torch.__version__)')
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
echo "gpu-check: $gpu_name, torch $torch_version, NCCL $nccl_version, python $py"

# NCCL >= 2.24 can force the algorithm for allreduce alone; older ones would
# force it for every collective, which fails for broadcast, so they rely on
# the cost model (the log check below then tells whether collNet ran).
algo=""
if "$py" -c "import sys; v=tuple(map(int,'$nccl_version'.split('.'))); sys.exit(0 if v >= (2,24,0) else 1)"; then
    algo="allreduce:CollNetChain"
fi

# Environment common to both runs: two "nodes" on one GPU, bootstrap on lo.
common_env=(
    CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-0}"
    NCCL_SOCKET_IFNAME=lo
    NCCL_DEBUG=INFO
    NCCL_DEBUG_SUBSYS=INIT,NET,GRAPH,TUNING,ENV
)
plugin_env=(
    LD_LIBRARY_PATH="$plugin_dir:${LD_LIBRARY_PATH:-}"
    NCCL_NET_PLUGIN=nangila
    NCCL_NET=nangila
    NCCL_COLLNET_ENABLE=1
    NCCL_NET_PLUGIN_REF_COUNT=1
    NANGILA_SOCKET_IFNAME=lo
)
if [ -n "$algo" ]; then
    plugin_env+=(NCCL_ALGO="$algo")
fi
baseline_env=(
    NCCL_NET_PLUGIN=none
    NCCL_NET=Socket
    NCCL_COLLNET_ENABLE=0
)

run_torch() { # log, VAR=value ..., --, script and its arguments
    local log=$1
    shift
    local envs=()
    while [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift
    # Each worker gets its own NCCL_HOSTID (scripts/lib/gpu-rank-env.sh).
    if ! env "${envs[@]}" "$py" -m torch.distributed.run --standalone --nproc-per-node 2 \
        --no-python scripts/lib/gpu-rank-env.sh "$py" "$@" >"$log" 2>&1; then
        echo "gpu-check: run failed, see $log" >&2
        tail -30 "$log" >&2
        return 1
    fi
}

status=0
echo "==> (a) all_reduce correctness through the collNet"
run_torch "$out/allreduce-nangila.log" "${common_env[@]}" "${plugin_env[@]}" -- \
    verification/gpu/allreduce_check.py --out "$out/allreduce-check.json" || status=1
echo "==> (b) DDP training, baseline (NCCL's own socket transport)"
run_torch "$out/ddp-baseline.log" "${common_env[@]}" "${baseline_env[@]}" -- \
    verification/gpu/ddp_train.py --steps "$steps" --out "$out/ddp-baseline.json" || status=1
echo "==> (b) DDP training, through nangila"
run_torch "$out/ddp-nangila.log" "${common_env[@]}" "${plugin_env[@]}" -- \
    verification/gpu/ddp_train.py --steps "$steps" --out "$out/ddp-nangila.json" || status=1

echo "==> logs and results"
if ! "$py" verification/gpu/check_gpu_run.py --dir "$out" --summary "$out/summary.txt" \
    --meta "gpu=$gpu_name torch=$torch_version nccl=$nccl_version algo=${algo:-cost-model}"; then
    status=1
fi
cat "$out/summary.txt" 2>/dev/null || true
exit $status
