#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pmpi_iallreduce.sh PROGRAM NP [RUNNER OPTIONS...] -- MPI_Iallreduce must
# give what MPI_Allreduce gives, bit for bit: the same calls run once
# blocking (hashes recorded) and once nonblocking on the progress thread
# (hashes compared). Extra options go to pmpi_run.sh for both runs (e.g.
# fake nodes, so the hierarchical allreduce runs on the progress thread).
# A fixed NANGILA_MODE: auto's choices follow measured times, which differ
# between two runs.
set -uo pipefail
here=$(dirname "$0")
prog=${1:?program}
np=${2:?ranks}
shift 2
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$here/pmpi_run.sh" --np "$np" --env NANGILA_MODE=int8 "$@" -- \
    "$prog" iallreduce --blocking --record "$tmp" || exit $?
"$here/pmpi_run.sh" --np "$np" --env NANGILA_MODE=int8 --env NANGILA_LOG_LEVEL=info "$@" \
    --expect-count "$np" 'progress thread started' -- "$prog" iallreduce --compare "$tmp"
