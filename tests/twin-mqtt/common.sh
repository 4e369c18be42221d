# SPDX-License-Identifier: Apache-2.0
# tests/twin-mqtt/common.sh -- sourced by every broker test script:
#   NANGILA RELAY are the script's arguments (meson passes the built CLI and
#   the lossy relay); sets nangila, relay, py, tmp, here; starts a broker
#   (NGL_BROKER_PORT) and makes sure it, and every background process the
#   test started through bg, dies with the script.
set -euo pipefail
nangila=$(realpath "$1")
relay=$(realpath "$2")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/twin-mqtt/broker.sh
. "$here/broker.sh"
if ! ngl_broker_find; then
    # only when mosquitto cannot be installed at all (scripts/lib/deps.sh has it)
    echo "mosquitto not installed: skipping"
    exit 77
fi
# Under the sanitizers a report must fail the test, and must not pass for
# the status 1 some tests expect from a refused client.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=66}
py=${NGL_PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3
tmp=$(mktemp -d)
ngl_bg_pids=()

ngl_test_cleanup() {
    local p
    for p in "${ngl_bg_pids[@]:-}"; do
        if [ -n "$p" ]; then
            kill "$p" 2>/dev/null || true
        fi
    done
    for p in "${ngl_bg_pids[@]:-}"; do
        if [ -n "$p" ]; then
            wait "$p" 2>/dev/null || true
        fi
    done
    ngl_broker_stop
    if [ "${NGL_KEEP_TMP:-0}" = 1 ]; then
        echo "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap ngl_test_cleanup EXIT
ngl_broker_start "$tmp/broker"
port=$NGL_BROKER_PORT

# bg CMD...: runs CMD in the background, remembered for the cleanup; its pid
# in $bg_pid.
bg() {
    "$@" &
    bg_pid=$!
    ngl_bg_pids+=("$bg_pid")
}

# wait_for FILE PATTERN SECONDS: until FILE has a line matching PATTERN.
wait_for() {
    local i
    for i in $(seq $(($3 * 20))); do
        if grep -q -- "$2" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "FAIL: no '$2' in $1 within $3 s" >&2
    cat "$1" >&2 || true
    return 1
}

# json FILE KEY: a number from a stats file.
json() {
    "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
