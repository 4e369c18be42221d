#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/format.sh -- keep the C/CUDA tree formatted with the committed
# .clang-format.
#
#   scripts/format.sh          reformat every tracked .c/.h/.cu file in place
#   scripts/format.sh --check  list files that differ; exit 1 if any do
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
    echo "format.sh: clang-format not installed; skipping" >&2
    exit 0
fi
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cu')
if [ "${1:-}" = "--check" ]; then
    bad=0
    for f in "${files[@]}"; do
        if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
            echo "not formatted: $f (run scripts/format.sh)"
            bad=1
        fi
    done
    exit $bad
fi
clang-format -i "${files[@]}"
