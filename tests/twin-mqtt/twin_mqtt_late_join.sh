#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# twin_mqtt_late_join.sh NANGILA RELAY -- a subscriber that joins a live
# stream (1 kHz, keyframe every 200 messages) 0.7 s late: it gets the stream
# description (retained), asks for a keyframe, and writes its first sample
# within one keyframe interval of joining; every sample it writes is within
# the bound, and nothing before its first sample is reported as a gap.
# A second late subscriber that never asks (--passive) still starts at the
# next periodic keyframe, within one interval.
here0=$(cd "$(dirname "$0")" && pwd)
. "$here0/common.sh"

"$py" "$here/twin_check.py" gen --rows 3000 --out "$tmp/in.csv"
echo "0,1e-3,1e-3,1e-3,1e-3,1e-3" >"$tmp/eps"
kf=200

bg "$nangila" twin publish --port "$port" --topic t/late --eps-file "$tmp/eps" \
    --keyframe $kf --rate-hz 1000 "$tmp/in.csv" 2>"$tmp/pub.log"
pub=$bg_pid
sleep 0.7
"$nangila" twin subscribe --port "$port" --topic t/late --timeout 20 --out "$tmp/out.csv" \
    --stats-json "$tmp/sub.json" 2>"$tmp/sub.log" || { cat "$tmp/sub.log"; fail "subscribe"; }
wait "$pub" || fail "publish"
cat "$tmp/pub.log" "$tmp/sub.log"
"$py" "$here/twin_check.py" check --input "$tmp/in.csv" --output "$tmp/out.csv" \
    --eps-file "$tmp/eps" --json "$tmp/check.json" || fail "bound"
waiting=$(json "$tmp/sub.json" waiting)
[ "$waiting" -le $kf ] || fail "$waiting messages before the first keyframe (interval $kf)"
grep -q "in sync at seq" "$tmp/sub.log" || fail "no sync reported"
[ "$(json "$tmp/sub.json" keyframe_requests)" -ge 1 ] || fail "no keyframe asked for"
[ "$(json "$tmp/sub.json" gaps)" = 0 ] || fail "late join reported as a gap"
# after the first sample, nothing is missing: the output is the input's tail
first=$(sed -n 2p "$tmp/out.csv" | cut -d, -f1)
[ "$(json "$tmp/check.json" output_rows)" = $((3000 - ${first%.*})) ] || fail "rows after join"

# the periodic keyframe alone: a --passive subscriber never asks (as one
# whose account may not publish), and still starts within one interval
bg "$nangila" twin publish --port "$port" --topic t/late2 --eps-file "$tmp/eps" \
    --keyframe $kf --rate-hz 1000 "$tmp/in.csv" 2>"$tmp/pub2.log"
pub=$bg_pid
sleep 0.5
"$nangila" twin subscribe --port "$port" --topic t/late2 --passive --timeout 20 \
    --out "$tmp/out2.csv" --stats-json "$tmp/sub2.json" 2>"$tmp/sub2.log" ||
    { cat "$tmp/sub2.log"; fail "subscribe 2"; }
wait "$pub" || fail "publish 2"
cat "$tmp/pub2.log" "$tmp/sub2.log"
"$py" "$here/twin_check.py" check --input "$tmp/in.csv" --output "$tmp/out2.csv" \
    --eps-file "$tmp/eps" || fail "bound 2"
[ "$(json "$tmp/sub2.json" keyframe_requests)" = 0 ] || fail "passive subscriber asked"
[ "$(json "$tmp/sub2.json" waiting)" -le $kf ] || fail "passive: waited more than one interval"
[ "$(json "$tmp/sub2.json" waiting)" -ge 1 ] || fail "passive: joined on a keyframe by luck; test proves nothing"
grep -q "keyframes, 0 asked for" "$tmp/pub2.log" || fail "publisher saw requests"
echo "PASS"
