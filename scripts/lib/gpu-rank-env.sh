#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# torchrun worker wrapper for scripts/gpu-check.sh: give each local rank its
# own NCCL_HOSTID so that NCCL treats the processes sharing one GPU as two
# nodes, then run the (unchanged) program.
set -euo pipefail
export NCCL_HOSTID="nangila-gpucheck-node${LOCAL_RANK:?torchrun sets LOCAL_RANK}"
exec "$@"
