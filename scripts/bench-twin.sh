#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/bench-twin.sh -- the twin benchmark: nangila twin against raw
# float32/64, zstd -3/-19, pcodec, SZ3 and ZFP on the rotor simulator and two
# recorded signals shipped by Debian (scipy's ECG record, statsmodels' CO2
# record), at eps 1e-2, 1e-3, 1e-4 of each channel's range and 0; then the
# rotor stream (64 channels x 1 kHz) through mosquitto, raw against nangila:
# latency p50/p99 and the bytes the broker counted. Writes
# verification/twin/{bench.csv,broker.csv,ratio.png,broker.png}.
#
#   scripts/bench-twin.sh                  everything (about 3 minutes alone)
#   NGL_BENCH_SECONDS=5 scripts/bench-twin.sh   a shorter rotor stream
#   NGL_BENCH_REPEAT=1 NGL_BENCH_BROKER=0 ...   one timing each, no broker runs
#
# PyPI packages (pcodec, pysz, zfpy; chimp-encoding is tried) go into a venv
# at build/bench-twin-venv that also sees Debian's numpy/scipy/statsmodels.
# Timings on a busy machine are inflated: run it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
nangila_ensure_deps python3-venv python3-scipy python3-statsmodels

venv=build/bench-twin-venv
if [ ! -x "$venv/bin/python" ]; then
    "$(nangila_python)" -m venv --system-site-packages "$venv"
fi
for p in pcodec pysz zfpy chimp-encoding; do
    if ! "$venv/bin/pip" show -q "$p" >/dev/null 2>&1; then
        "$venv/bin/pip" install -q "$p" >/dev/null 2>&1 || echo "bench-twin: $p did not install; its rows stay empty"
    fi
done

build=build/bench
if [ -f "$build/build.ninja" ]; then
    meson setup --reconfigure "$build" -Dbuildtype=release -Dtests=false >/dev/null
else
    meson setup "$build" -Dbuildtype=release -Dtests=false >/dev/null
fi
meson compile -C "$build" tools/nangila >/dev/null

"$venv/bin/python" scripts/lib/bench_twin.py --nangila "$build/tools/nangila" \
    --out verification/twin --seconds "${NGL_BENCH_SECONDS:-10}" \
    --repeat "${NGL_BENCH_REPEAT:-3}" \
    $([ "${NGL_BENCH_BROKER:-1}" = 0 ] && echo --no-broker)
