#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# twin_mqtt_auth.sh NANGILA RELAY -- --username/--password reach the broker
# (one that allows no anonymous client): without them, or with a wrong
# password, publish and subscribe stop at once with a clear message and
# status 1 instead of retrying for ever; with them the stream goes through.
export NGL_BROKER_USER="plant:s3cret pass"
here0=$(cd "$(dirname "$0")" && pwd)
. "$here0/common.sh"
command -v mosquitto_passwd >/dev/null || { echo "mosquitto_passwd missing: skipping"; exit 77; }

"$py" "$here/twin_check.py" gen --rows 500 --out "$tmp/in.csv"

set +e
timeout 20 "$nangila" twin subscribe --port "$port" --topic t/a --out "$tmp/x.csv" 2>"$tmp/anon.log"
rc=$?
timeout 20 "$nangila" twin publish --port "$port" --topic t/a --eps 0.01 \
    --username plant --password wrong "$tmp/in.csv" 2>"$tmp/wrong.log"
rc2=$?
set -e
cat "$tmp/anon.log" "$tmp/wrong.log"
[ "$rc" = 1 ] || fail "anonymous subscribe exited $rc"
[ "$rc2" = 1 ] || fail "wrong password publish exited $rc2"
grep -q "refused" "$tmp/anon.log" || fail "no clear message for the anonymous client"
grep -q "refused" "$tmp/wrong.log" || fail "no clear message for the wrong password"
[ ! -e "$tmp/x.csv" ] || fail "a refused subscriber left an output file"

bg "$nangila" twin subscribe --port "$port" --topic t/a --timeout 20 --out "$tmp/out.csv" \
    --username plant --password "s3cret pass" 2>"$tmp/sub.log"
sub=$bg_pid
wait_for "$tmp/sub.log" "subscribed to" 10
"$nangila" twin publish --port "$port" --topic t/a --eps 0.01 --username plant \
    --password "s3cret pass" "$tmp/in.csv" 2>"$tmp/pub.log" || fail "publish with credentials"
wait "$sub" || { cat "$tmp/sub.log"; fail "subscribe with credentials"; }
"$py" "$here/twin_check.py" check --input "$tmp/in.csv" --output "$tmp/out.csv" --eps 0.01 --index none \
    --expect-all || fail "bound"
echo "PASS"
