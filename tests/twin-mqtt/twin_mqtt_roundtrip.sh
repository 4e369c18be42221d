#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# twin_mqtt_roundtrip.sh NANGILA RELAY -- streams through a real mosquitto:
#  1. a CSV file (f64, nan/inf/-inf, one bound per channel) at QoS 0 and 1,
#     unpaced (the broker under load), batches of 1 and of 16: every sample
#     arrives, in order, within its bound; the header comes back as sent;
#  2. the same file as float32 with a pointwise relative bound;
#  3. the rotor simulator, paced in real time, against `nangila twin
#     simulate`'s copy of the same samples; the subscriber writes to stdout
#     and every message carries a latency stamp;
#  4. raw publishing (the bench's baseline) and raw binary output.
here0=$(cd "$(dirname "$0")" && pwd)
. "$here0/common.sh"

"$py" "$here/twin_check.py" gen --rows 3000 --out "$tmp/in.csv"
echo "0,1e-3,1e-3,1e-3,1e-3,1e-3" >"$tmp/eps"

# run_pair NAME SUB_ARGS -- PUB_ARGS: subscriber first (waits until it is
# subscribed), then the publisher; both must succeed.
run_pair() {
    local name=$1
    shift
    local sub_args=()
    while [ "$1" != "--" ]; do
        sub_args+=("$1")
        shift
    done
    shift
    bg "$nangila" twin subscribe --port "$port" --timeout 20 --stats-json "$tmp/$name.sub.json" \
        "${sub_args[@]}" 2>"$tmp/$name.sub.log"
    local sub=$bg_pid
    wait_for "$tmp/$name.sub.log" "subscribed to" 10
    "$nangila" twin publish --port "$port" "$@" 2>"$tmp/$name.pub.log" ||
        { cat "$tmp/$name.pub.log" >&2; fail "$name: publish failed"; }
    wait "$sub" || { cat "$tmp/$name.sub.log" >&2; fail "$name: subscribe exited $?"; }
    cat "$tmp/$name.pub.log" "$tmp/$name.sub.log"
    [ "$(json "$tmp/$name.sub.json" ended)" = 1 ] || fail "$name: no end of stream"
}

for qos in 0 1; do
    for batch in 1 16; do
        n=csv-q$qos-b$batch
        run_pair "$n" --topic "t/$n" --qos "$qos" --out "$tmp/$n.csv" -- \
            --topic "t/$n" --qos "$qos" --batch "$batch" --eps-file "$tmp/eps" --keyframe 50 "$tmp/in.csv"
        "$py" "$here/twin_check.py" check --input "$tmp/in.csv" --output "$tmp/$n.csv" \
            --eps-file "$tmp/eps" --expect-all || fail "$n: bound or order"
        [ "$(json "$tmp/$n.sub.json" gaps)" = 0 ] || fail "$n: gaps on a healthy broker"
        [ "$(json "$tmp/$n.sub.json" rejected)" = 0 ] || fail "$n: rejected messages"
        [ "$(json "$tmp/$n.sub.json" values)" = 18000 ] || fail "$n: values count"
    done
done
# compression happened: the bound is loose on all but two columns
ratio=$(json "$tmp/csv-q0-b16.sub.json" ratio)
"$py" -c "import sys; sys.exit(0 if float('$ratio') > 1.5 else 1)" || fail "ratio $ratio"

# float32, pointwise relative bound, from stdin
"$py" "$here/twin_check.py" gen --rows 2000 --f32 --out "$tmp/in32.csv"
run_pair f32 --topic t/f32 --out "$tmp/f32.csv" -- \
    --topic t/f32 --f32 --rel --eps 1e-4 --batch 8 - <"$tmp/in32.csv"
"$py" "$here/twin_check.py" check --input "$tmp/in32.csv" --output "$tmp/f32.csv" \
    --f32 --rel --eps 1e-4 --expect-all || fail "f32 rel"

# the rotor simulator, real time (1 kHz, 16 channels, 1.5 s), to stdout
"$nangila" twin simulate --rate-hz 1000 --channels 16 --duration 1.5 --seed 3 --out "$tmp/sim-ref.csv"
bg "$nangila" twin subscribe --port "$port" --topic t/sim --timeout 20 --out - \
    --stats-json "$tmp/sim.sub.json" >"$tmp/sim.csv" 2>"$tmp/sim.sub.log"
sub=$bg_pid
wait_for "$tmp/sim.sub.log" "subscribed to" 10
"$nangila" twin publish --port "$port" --topic t/sim --simulate rotor --rate-hz 1000 \
    --channels 16 --duration 1.5 --seed 3 --eps 0.01 --keyframe 100 2>"$tmp/sim.pub.log"
wait "$sub" || fail "sim: subscribe"
cat "$tmp/sim.pub.log" "$tmp/sim.sub.log"
"$py" "$here/twin_check.py" check --input "$tmp/sim-ref.csv" --output "$tmp/sim.csv" \
    --eps 0.01 --expect-all || fail "sim: bound"
p50=$(json "$tmp/sim.sub.json" latency_p50_ms)
[ "$(json "$tmp/sim.sub.json" latency_n)" -ge 1400 ] || fail "sim: latency stamps missing"
"$py" -c "import sys; sys.exit(0 if 0 <= float('$p50') < 1000 else 1)" || fail "sim: latency $p50"

# raw publishing (no codec), raw binary output: bit-exact
run_pair raw --topic t/raw --binary --out "$tmp/raw.bin" -- --topic t/raw --raw --batch 4 "$tmp/in.csv"
"$py" - "$tmp/in.csv" "$tmp/raw.bin" <<'PY' || fail "raw: values differ"
import struct, sys
rows = [l.strip().split(",") for l in open(sys.argv[1]).readlines()[1:]]
want = b"".join(struct.pack("<d", float(v)) for r in rows for v in r)
got = open(sys.argv[2], "rb").read()
sys.exit(0 if want == got else 1)
PY
echo "PASS"
