#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# twin_mqtt_tls.sh NANGILA RELAY -- --cafile/--cert/--key reach libmosquitto:
# a broker that speaks only TLS and requires a client certificate (a CA,
# server and client certificates made here with openssl) carries the stream
# for clients given the CA and a client certificate; a client without its
# certificate does not get through (it keeps retrying; --timeout ends the
# subscriber with status 3 and no output). Exit 77 without openssl.
command -v openssl >/dev/null || { echo "openssl missing: skipping"; exit 77; }
pki=$(mktemp -d)
(
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=nangila test CA" \
        -keyout ca.key -out ca.crt 2>/dev/null
    for who in server client; do
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$who.key" \
            -out "$who.csr" 2>/dev/null
        printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" >"$who.ext"
        openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -extfile "$who.ext" -out "$who.crt" 2>/dev/null
    done
)
export NGL_BROKER_TLS_DIR=$pki
here0=$(cd "$(dirname "$0")" && pwd)
. "$here0/common.sh"
trap 'ngl_test_cleanup; rm -rf "$pki"' EXIT

"$py" "$here/twin_check.py" gen --rows 500 --out "$tmp/in.csv"
tls=(--host localhost --cafile "$pki/ca.crt" --cert "$pki/client.crt" --key "$pki/client.key")

bg "$nangila" twin subscribe --port "$port" "${tls[@]}" --topic t/tls --timeout 20 \
    --out "$tmp/out.csv" 2>"$tmp/sub.log"
sub=$bg_pid
wait_for "$tmp/sub.log" "subscribed to" 10
"$nangila" twin publish --port "$port" "${tls[@]}" --topic t/tls --eps 0.01 \
    "$tmp/in.csv" 2>"$tmp/pub.log" || { cat "$tmp/pub.log"; fail "publish over TLS"; }
wait "$sub" || { cat "$tmp/sub.log"; fail "subscribe over TLS"; }
"$py" "$here/twin_check.py" check --input "$tmp/in.csv" --output "$tmp/out.csv" --eps 0.01 \
    --index none --expect-all || fail "bound"

# the CA but no client certificate: the broker refuses the handshake
set +e
"$nangila" twin subscribe --port "$port" --host localhost --cafile "$pki/ca.crt" \
    --topic t/tls --timeout 2 --out "$tmp/nocert.csv" 2>"$tmp/nocert.log"
rc=$?
set -e
cat "$tmp/nocert.log"
[ "$rc" = 3 ] || fail "a client without its certificate: status $rc"
[ ! -e "$tmp/nocert.csv" ] || fail "output left behind"
echo "PASS"
