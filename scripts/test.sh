#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/test.sh -- install what is missing, build, and run the whole suite:
# once in a normal build, once under AddressSanitizer + UBSan.
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    normal build only
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh

quick=0
[ "${1:-}" = "--quick" ] && quick=1

# python3-torch: the examples/torchrun-ddp script runs with gloo in the suite.
nangila_ensure_deps python3-torch
# Not NANGILA_*: that prefix is reserved for user settings, and an unknown
# NANGILA_* variable is rejected at start-up.
export NGL_PYTHON
NGL_PYTHON=$(nangila_python)
jobs=$(nproc)

setup() { # dir, extra meson args...
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
}

echo "==> format check (scripts/format.sh --check)"
scripts/format.sh --check

echo "==> normal build (build/test)"
setup build/test -Dwerror=true
meson compile -C build/test
meson test -C build/test --num-processes "$jobs" --print-errorlogs

if [ "$quick" = 0 ]; then
    echo "==> ASan + UBSan build (build/asan)"
    setup build/asan -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
    meson compile -C build/asan
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        meson test -C build/asan --num-processes "$jobs" --print-errorlogs
fi
echo "==> all tests passed"
