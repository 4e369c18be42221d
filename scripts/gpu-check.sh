#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/gpu-check.sh -- NCCL's allreduce through libnccl-net-nangila.so on a
# machine with one NVIDIA GPU and PyTorch: two processes share the GPU but
# set different NCCL_HOSTID, so NCCL sees two nodes and uses the network
# plugin (and its collNet) between them.
#
#   (0) the plugin's GPU path under the mock NCCL on this GPU (the -cuda
#       device tests of the plugin suite: host, device and mixed collComms
#       bit-identical, TCP transport with device memory);
#   (a) torch.distributed all_reduce in fp32 and bf16: within the codec's
#       bound of the exact sum, bit-identical on both ranks;
#   (b) an unchanged DDP training script under torchrun, with and without
#       the plugin, from the same seed: the losses must agree;
#   (c), (d) the same two with GPU Direct enabled (NCCL_NET_GDR_LEVEL=SYS,
#       NCCL_NET_GDR_READ=1): NCCL hands the collNet device buffers and the
#       plugin codes them on the GPU;
#   and NCCL_DEBUG=INFO logs must show the collNet of nangila at work, with
#   no fallback: (a) and (b) on host memory (GPU Direct off), (c) and (d)
#   on device memory (NCCL's GDRDMA connection lines, the plugin's "coding
#   on the GPU" line and its count of calls on GPU memory). Logs and
#   results go to verification/gpu/.
#
# Exits 77 (skip) when there is no NVIDIA GPU, or (after step 0) no PyTorch
# with CUDA.
#   scripts/gpu-check.sh [--steps 200] [--out verification/gpu]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
# shellcheck source=scripts/lib/kernels-gpu.sh
. scripts/lib/kernels-gpu.sh

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
# Build the plugin with its GPU path (nvcc required) and the plugin's tests.
nangila_gpu_deps
if ! nangila_cuda_path; then
    echo "gpu-check: nvcc not found (CUDA_HOME, CUDA_PATH, /usr/local/cuda, PATH)" >&2
    exit 1
fi
build=build/gpu-check
if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" -Dcuda=enabled -Dmpi=disabled >/dev/null
else
    meson setup "$build" -Dcuda=enabled -Dmpi=disabled >/dev/null
fi
meson compile -C "$build" >/dev/null
plugin_dir=$PWD/$build/nccl-net-plugin
test -f "$plugin_dir/libnccl-net-nangila.so"
mkdir -p "$out"

echo "==> (0) the plugin's GPU path under the mock NCCL, on this GPU"
status=0
mapfile -t device_tests < <(meson test -C "$build" --list 2>/dev/null |
    sed -n 's/^nangila:plugin \/ \(plugin-harness-device-.*-cuda\)$/\1/p')
if [ "${#device_tests[@]}" -eq 0 ]; then
    echo "gpu-check: no -cuda device tests in $build (built without CUDA?)" >&2
    status=1
elif ! meson test -C "$build" --print-errorlogs "${device_tests[@]}" \
    >"$out/plugin-device-tests.log" 2>&1; then
    echo "gpu-check: device tests failed, see $out/plugin-device-tests.log" >&2
    status=1
fi
if grep -q 'SKIP' "$out/plugin-device-tests.log" 2>/dev/null; then
    echo "gpu-check: a GPU is present but a -cuda device test skipped: inconsistent" >&2
    status=1
fi
grep -E "^(Ok|Fail|Skipped):" "$out/plugin-device-tests.log" || true

py=""
for cand in "${NANGILA_GPU_PYTHON:-}" python3 /usr/bin/python3; do
    if [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 &&
        "$cand" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        py=$(command -v "$cand")
        break
    fi
done
if [ -z "$py" ]; then
    echo "gpu-check: no PyTorch with CUDA found (set NANGILA_GPU_PYTHON); NCCL runs skipped"
    [ "$status" -eq 0 ] && exit 77
    exit 1
fi

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

# Environment common to all runs: two "nodes" on one GPU, bootstrap on lo.
# shellcheck disable=SC2054 # the commas belong to NCCL_DEBUG_SUBSYS
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
# GPU Direct off: NCCL stages through pinned host memory (the host path).
host_env=(NCCL_NET_GDR_LEVEL=LOC)
# GPU Direct on: loopback has no PCI path, so NCCL places the NIC at the
# CPU (distance SYS); SYS allows it. GDR_READ=1 covers sends on GPUs
# before Ampere too. NCCL then hands the collNet device memory.
gdr_env=(NCCL_NET_GDR_LEVEL=SYS NCCL_NET_GDR_READ=1)
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

echo "==> (a) all_reduce correctness through the collNet (host memory)"
run_torch "$out/allreduce-nangila.log" "${common_env[@]}" "${plugin_env[@]}" "${host_env[@]}" -- \
    verification/gpu/allreduce_check.py --out "$out/allreduce-check.json" || status=1
echo "==> (b) DDP training, baseline (NCCL's own socket transport)"
run_torch "$out/ddp-baseline.log" "${common_env[@]}" "${baseline_env[@]}" -- \
    verification/gpu/ddp_train.py --steps "$steps" --out "$out/ddp-baseline.json" || status=1
echo "==> (b) DDP training, through nangila (host memory)"
run_torch "$out/ddp-nangila.log" "${common_env[@]}" "${plugin_env[@]}" "${host_env[@]}" -- \
    verification/gpu/ddp_train.py --steps "$steps" --out "$out/ddp-nangila.json" || status=1
echo "==> (c) all_reduce correctness through the collNet, GPU Direct (device memory)"
run_torch "$out/allreduce-nangila-gdr.log" "${common_env[@]}" "${plugin_env[@]}" "${gdr_env[@]}" \
    -- verification/gpu/allreduce_check.py --out "$out/allreduce-check-gdr.json" || status=1
echo "==> (d) DDP training, through nangila, GPU Direct (device memory)"
run_torch "$out/ddp-nangila-gdr.log" "${common_env[@]}" "${plugin_env[@]}" "${gdr_env[@]}" -- \
    verification/gpu/ddp_train.py --steps "$steps" --out "$out/ddp-nangila-gdr.json" || status=1

echo "==> logs and results"
if ! "$py" verification/gpu/check_gpu_run.py --dir "$out" --summary "$out/summary.txt" \
    --device-tests "$out/plugin-device-tests.log" \
    --meta "gpu=$gpu_name torch=$torch_version nccl=$nccl_version algo=${algo:-cost-model}"; then
    status=1
fi
cat "$out/summary.txt" 2>/dev/null || true
exit $status
