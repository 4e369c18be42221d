#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# run_local.sh -- start train_ddp.py on N local processes with the
# environment torchrun gives each worker (RANK, LOCAL_RANK, WORLD_SIZE,
# MASTER_ADDR, MASTER_PORT), wait for all of them, and fail if one fails or
# the run outlives its time limit.
#
#   run_local.sh [--nproc N] [--timeout S] [--] train_ddp.py arguments...
#
# Debian 12's torch 1.13 cannot run its own torchrun under Python 3.11 (the
# launcher's redirect parsing returns None), so CI starts the workers
# itself; the script they run is the same.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
nproc=2
limit=300
while [ $# -gt 0 ]; do
    case $1 in
    --nproc) nproc=$2; shift 2 ;;
    --timeout) limit=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
    esac
done
py=${PYTHON:-/usr/bin/python3}
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pids=()
for ((r = 0; r < nproc; r++)); do
    RANK=$r LOCAL_RANK=$r WORLD_SIZE=$nproc MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
        timeout "$limit" "$py" "$here/train_ddp.py" "$@" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do
    wait "$p" || rc=1
done
exit $rc
