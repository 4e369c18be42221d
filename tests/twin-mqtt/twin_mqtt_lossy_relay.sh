#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# twin_mqtt_lossy_relay.sh NANGILA RELAY -- messages pass through a seeded
# relay that drops 5 %, duplicates 5 % and reorders 5 % of them (three
# seeds, batches of 1 and 4, f64 and f32): the subscriber writes only
# samples within their bound, in order; duplicates and late messages are
# ignored and counted; gaps are reported, and resynced at keyframes it asks
# for.
here0=$(cd "$(dirname "$0")" && pwd)
. "$here0/common.sh"

"$py" "$here/twin_check.py" gen --rows 3000 --out "$tmp/in.csv"
"$py" "$here/twin_check.py" gen --rows 3000 --f32 --out "$tmp/in32.csv"
echo "0,1e-3,1e-3,1e-3,1e-3,1e-3" >"$tmp/eps"

for cfg in "11 1 f64" "12 4 f64" "13 1 f32"; do
    read -r seed batch ty <<<"$cfg"
    n=s$seed
    in=$tmp/in.csv
    extra=()
    if [ "$ty" = f32 ]; then
        in=$tmp/in32.csv
        extra=(--f32)
    fi
    bg "$relay" --port "$port" --from "t/$n" --to "t/$n/lossy" --seed "$seed" \
        --drop 0.05 --dup 0.05 --reorder 0.05 >"$tmp/$n.relay.out" 2>"$tmp/$n.relay.log"
    wait_for "$tmp/$n.relay.out" ready 10
    bg "$nangila" twin subscribe --port "$port" --topic "t/$n/lossy" --timeout 20 \
        --out "$tmp/$n.csv" --stats-json "$tmp/$n.sub.json" 2>"$tmp/$n.sub.log"
    sub=$bg_pid
    wait_for "$tmp/$n.sub.log" "subscribed to" 10
    # paced at 2 kHz so keyframe requests answer within a few messages
    "$nangila" twin publish --port "$port" --topic "t/$n" --eps-file "$tmp/eps" --keyframe 50 \
        --batch "$batch" --rate-hz 2000 "${extra[@]}" "$in" 2>"$tmp/$n.pub.log" ||
        fail "$n: publish"
    wait "$sub" || { cat "$tmp/$n.sub.log"; fail "$n: subscribe"; }
    tail -n 4 "$tmp/$n.sub.log"
    cat "$tmp/$n.relay.log"
    "$py" "$here/twin_check.py" check --input "$in" --output "$tmp/$n.csv" "${extra[@]}" \
        --eps-file "$tmp/eps" --json "$tmp/$n.check.json" || fail "$n: bound"
    [ "$(json "$tmp/$n.sub.json" gaps)" -ge 1 ] || fail "$n: drops without gaps"
    [ "$(json "$tmp/$n.sub.json" stale)" -ge 1 ] || fail "$n: duplicates not seen as such"
    [ "$(json "$tmp/$n.sub.json" resyncs)" -ge 1 ] || fail "$n: no resync"
    [ "$(json "$tmp/$n.check.json" missing_rows)" -gt 0 ] || fail "$n: relay lost nothing?"
    [ "$(json "$tmp/$n.check.json" output_rows)" -gt 1000 ] || fail "$n: too little got through"
done
echo "PASS"
