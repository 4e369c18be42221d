#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/demo.sh -- install what is missing, build, and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
nangila_ensure_deps

if [ -f build/demo/build.ninja ]; then
    meson setup --reconfigure build/demo -Dbuildtype=release >/dev/null
else
    meson setup build/demo -Dbuildtype=release >/dev/null
fi
meson compile -C build/demo

echo
echo "==> codec throughput on one core (nangila bench)"
build/demo/tools/nangila bench --count 4194304 --iters 5
