#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# twin_mqtt_broker_restart.sh NANGILA RELAY -- the broker is killed (SIGKILL)
# in the middle of a live 1 kHz stream and restarted on the same port 0.8 s
# later. The publisher reconnects with backoff and keeps what it produced
# meanwhile in its bounded queue; the subscriber reconnects, reports the gap,
# asks for a keyframe if it lost anything, and resyncs. Checked: both finish;
# every written sample is within its bound and in order; any loss is reported
# (gaps, messages missing or dropped while waiting) and accounts for every
# absent sample. Then the same with a queue of 50 messages, which must
# overflow: the publisher counts what it dropped, the subscriber the gap.
here0=$(cd "$(dirname "$0")" && pwd)
. "$here0/common.sh"

"$py" "$here/twin_check.py" gen --rows 4000 --out "$tmp/in.csv"
echo "0,1e-3,1e-3,1e-3,1e-3,1e-3" >"$tmp/eps"

run() { # NAME BUFFER
    local n=$1
    bg "$nangila" twin subscribe --port "$port" --topic "t/$n" --timeout 30 --out "$tmp/$n.csv" \
        --stats-json "$tmp/$n.sub.json" 2>"$tmp/$n.sub.log"
    local sub=$bg_pid
    wait_for "$tmp/$n.sub.log" "subscribed to" 10
    bg "$nangila" twin publish --port "$port" --topic "t/$n" --eps-file "$tmp/eps" \
        --keyframe 100 --rate-hz 1000 --buffer "$2" --stats-json "$tmp/$n.pub.json" \
        "$tmp/in.csv" 2>"$tmp/$n.pub.log"
    local pub=$bg_pid
    sleep 1.2
    ngl_broker_kill
    sleep 0.8
    ngl_broker_restart
    wait "$pub" || { cat "$tmp/$n.pub.log"; fail "$n: publish"; }
    wait "$sub" || { cat "$tmp/$n.sub.log"; fail "$n: subscribe"; }
    cat "$tmp/$n.pub.log" "$tmp/$n.sub.log"
    "$py" "$here/twin_check.py" check --input "$tmp/in.csv" --output "$tmp/$n.csv" \
        --eps-file "$tmp/eps" --json "$tmp/$n.check.json" || fail "$n: bound"
    [ "$(json "$tmp/$n.pub.json" reconnects)" -ge 1 ] || fail "$n: publisher did not reconnect"
    [ "$(json "$tmp/$n.sub.json" ended)" = 1 ] || fail "$n: no end of stream"
    local absent reported
    absent=$(json "$tmp/$n.check.json" missing_rows)
    # batch 1: one message per sample
    reported=$(($(json "$tmp/$n.sub.json" missing) + $(json "$tmp/$n.sub.json" waiting)))
    echo "$n: $absent samples absent, $reported reported lost"
    [ "$reported" -ge "$absent" ] || fail "$n: $absent samples absent but $reported reported"
    if [ "$absent" -gt 0 ]; then
        [ "$(json "$tmp/$n.sub.json" gaps)" -ge 1 ] || fail "$n: loss without a reported gap"
        [ "$(json "$tmp/$n.sub.json" resyncs)" -ge 1 ] || fail "$n: no resync"
    fi
    echo "$absent" >"$tmp/$n.absent"
}

# A queue that holds the outage: the publisher's writes fail on the dead
# socket and stay queued, so the stream may come through whole (or lose the
# messages the subscriber missed while it reconnected: then reported).
run big 10000
# A queue of 50 messages cannot hold 0.8 s at 1 kHz: the oldest are dropped,
# counted by the publisher, seen as a gap by the subscriber, and the next
# message is a keyframe.
run small 50
[ "$(json "$tmp/small.pub.json" dropped)" -ge 1 ] || fail "small queue: no overflow counted"
[ "$(cat "$tmp/small.absent")" -ge "$(json "$tmp/small.pub.json" dropped)" ] ||
    fail "small queue: fewer samples absent than dropped"
echo "PASS"
