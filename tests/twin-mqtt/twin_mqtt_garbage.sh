#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# twin_mqtt_garbage.sh NANGILA RELAY -- corrupt, truncated and foreign
# payloads published on a live stream's topic (with mosquitto_pub): the
# subscriber rejects each with a clear message naming the error, counts it,
# does not crash, and writes no wrong sample; a malformed stream description
# is ignored with a message. Exit 77 without mosquitto_pub.
here0=$(cd "$(dirname "$0")" && pwd)
. "$here0/common.sh"
command -v mosquitto_pub >/dev/null || { echo "mosquitto_pub missing: skipping"; exit 77; }

"$py" "$here/twin_check.py" gen --rows 3000 --out "$tmp/in.csv"
echo "0,1e-3,1e-3,1e-3,1e-3,1e-3" >"$tmp/eps"

# real messages to mangle: a first stream, captured by the relay's topic
bg "$nangila" twin subscribe --port "$port" --topic t/g --timeout 20 --out "$tmp/out.csv" \
    --stats-json "$tmp/sub.json" 2>"$tmp/sub.log"
sub=$bg_pid
wait_for "$tmp/sub.log" "subscribed to" 10
bg "$nangila" twin publish --port "$port" --topic t/g --eps-file "$tmp/eps" --keyframe 100 \
    --rate-hz 1000 "$tmp/in.csv" 2>"$tmp/pub.log"
pub=$bg_pid
# three live messages, as hex
timeout 10 mosquitto_sub -p "$port" -t t/g -C 3 -F '%x' >"$tmp/frames.hex"
"$py" - "$tmp" <<'PY'
import os, random, sys
tmp = sys.argv[1]
frames = [bytes.fromhex(l.strip()) for l in open(tmp + "/frames.hex") if l.strip()]
assert len(frames) == 3, frames
rnd = random.Random(5)
bad = {
    "truncated": frames[0][: len(frames[0]) // 2],
    "one-byte": frames[1][:1],
    "flipped": bytes(b ^ (0x10 if i == len(frames[1]) // 2 else 0) for i, b in enumerate(frames[1])),
    "foreign-json": b'{"temperature": 21.5, "unit": "C"}',
    "foreign-random": bytes(rnd.randrange(256) for _ in range(300)),
    "empty": b"",
}
for name, data in bad.items():
    open(os.path.join(tmp, "bad-" + name), "wb").write(data)
PY
sleep 0.3
nbad=0
for f in "$tmp"/bad-*; do
    if [ -s "$f" ]; then
        mosquitto_pub -p "$port" -t t/g -f "$f"
    else
        mosquitto_pub -p "$port" -t t/g -n
    fi
    nbad=$((nbad + 1))
    sleep 0.1
done
# a malformed description (not retained: the stream's own stays)
mosquitto_pub -p "$port" -t t/g/meta -m "hello"
wait "$pub" || fail "publish"
wait "$sub" || { cat "$tmp/sub.log"; fail "subscriber crashed or failed"; }
cat "$tmp/sub.log"
"$py" "$here/twin_check.py" check --input "$tmp/in.csv" --output "$tmp/out.csv" \
    --eps-file "$tmp/eps" --expect-all || fail "a wrong or missing sample"
[ "$(json "$tmp/sub.json" rejected)" = "$nbad" ] || fail "rejected $(json "$tmp/sub.json" rejected) of $nbad"
[ "$(grep -c "rejected a" "$tmp/sub.log")" = "$nbad" ] || fail "not every rejection said why"
grep -q "rejected a .*: .*" "$tmp/sub.log" || fail "no reason printed"
grep -q "ignoring a malformed stream description" "$tmp/sub.log" || fail "bad description"
echo "PASS"
