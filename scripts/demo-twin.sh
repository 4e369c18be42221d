#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/demo-twin.sh -- a rotor (64 channels at 1 kHz, 5 s, from the
# built-in simulator) streams through a local mosquitto with `nangila twin
# publish`, error bound 0.01 on every channel; `nangila twin subscribe`
# decodes it to CSV. Prints the ratio (payload and as counted by the broker)
# and the end-to-end latency.
#
#   scripts/demo-twin.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deps.sh
. scripts/lib/deps.sh
nangila_ensure_deps
# shellcheck source=tests/twin-mqtt/broker.sh
. tests/twin-mqtt/broker.sh
seconds=${1:-5}

build=build/demo
[ -f "$build/build.ninja" ] || meson setup "$build" -Dbuildtype=release -Dtests=false >/dev/null
meson compile -C "$build" tools/nangila >/dev/null
nangila=$build/tools/nangila

tmp=$(mktemp -d)
sub_pid=""
cleanup() {
    [ -z "$sub_pid" ] || kill "$sub_pid" 2>/dev/null || true
    ngl_broker_stop
    rm -rf "$tmp"
}
trap cleanup EXIT
ngl_broker_start "$tmp/broker"
port=$NGL_BROKER_PORT
echo "==> mosquitto on 127.0.0.1:$port"

"$nangila" twin subscribe --port "$port" --topic plant/rotor1 --timeout 10 \
    --out "$tmp/rotor.csv" 2>"$tmp/sub.log" &
sub_pid=$!
for _ in $(seq 100); do
    grep -q "subscribed to" "$tmp/sub.log" && break
    sleep 0.05
done
echo "==> publishing $seconds s of a 64-channel rotor at 1 kHz, eps 0.01"
"$nangila" twin publish --port "$port" --topic plant/rotor1 --simulate rotor --rate-hz 1000 \
    --channels 64 --duration "$seconds" --eps 0.01 --keyframe 100
wait "$sub_pid"
sub_pid=""
cat "$tmp/sub.log"
sleep 2.2 # $SYS counters refresh every second
received=$(mosquitto_sub -p "$port" -t '$SYS/broker/bytes/received' -C 1 -W 5)
raw=$((seconds * 1000 * 64 * 8))
echo "==> the broker received $received bytes for $raw bytes of float64 samples" \
    "(ratio $(awk -v a="$raw" -v b="$received" 'BEGIN { printf "%.2f", a / b }'), MQTT headers" \
    "and latency stamps included)"
echo "==> first rows of the decoded CSV:"
head -n 3 "$tmp/rotor.csv" | cut -c1-120
