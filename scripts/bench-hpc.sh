#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/bench-hpc.sh -- compare Nangila's hpc codec with ZFP (fixed accuracy)
# and zstd -3 / zstd -19 / xz -9 (lossless) on real LAMMPS trajectories, at
# eps 1e-2, 1e-3 and 1e-4, absolute and range-relative, in one run.
#
#   scripts/bench-hpc.sh                 default files, CSV + PNGs in verification/hpc/
#   scripts/bench-hpc.sh melt-e1 lj-e10  chosen files (names in verification/data/)
#   NGL_BENCH_REPEAT=3 ...           best of 3 for every timing (default 1)
#   NGL_BENCH_MERGE=1 scripts/bench-hpc.sh melt-e100
#                                        re-run some files, keep the other rows
#   NGL_BENCH_LEVELS=3 NGL_BENCH_BASELINES=0 NGL_BENCH_MERGE=1 scripts/bench-hpc.sh
#                                        re-run only level 3 (levels: 3,2,1,0)
#
# Generates the trajectories first if they are missing (scripts/make-trajectories.sh).
# Reports, per file, tool and eps: bytes, ratio vs the text dump and vs float32
# xyz, compress and decompress MB/s (CPU time of one core, MB of float32 xyz
# per second, or of the input file for text inputs) and the largest error each
# tool actually reached. Timings on a busy machine are inflated: run it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
# shellcheck source=scripts/lib/hpc_bench_setup.sh
. scripts/lib/hpc_bench_setup.sh "$@"

"$py" scripts/lib/bench_hpc.py --nangila "$build/tools/nangila" --data "$data" \
    --out verification/hpc --repeat "${NGL_BENCH_REPEAT:-1}" \
    --levels "${NGL_BENCH_LEVELS:-3,2,1,0}" \
    $([ "${NGL_BENCH_BASELINES:-1}" = 0 ] && echo --no-baselines) \
    ${NGL_BENCH_MERGE:+--merge} "${files[@]}"
