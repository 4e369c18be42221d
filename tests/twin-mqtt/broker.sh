# SPDX-License-Identifier: Apache-2.0
# tests/twin-mqtt/broker.sh -- sourced by the broker tests, the twin bench and
# the demo: a real mosquitto on a loopback port, configured in a temporary
# directory (no persistence file, no log file in the tree).
#
#   ngl_broker_find || exit 77        mosquitto's path in NGL_MOSQUITTO
#   ngl_broker_start DIR              listens on 127.0.0.1:$NGL_BROKER_PORT
#                                     (NGL_BROKER_USER=name:password: only
#                                     that account may connect;
#                                     NGL_BROKER_TLS_DIR=DIR: TLS with DIR's
#                                     ca.crt, server.crt, server.key)
#   ngl_broker_stop                   SIGTERM, wait; safe to call twice
#   ngl_broker_kill                   SIGKILL (the fault tests' "crash")
#   ngl_broker_restart                same port, same config
#
# The caller installs `trap ngl_broker_stop EXIT` (or calls it from its own
# trap), so a failing test never leaves a broker behind.

NGL_BROKER_PID=""
NGL_BROKER_PORT=""
NGL_BROKER_DIR=""

ngl_broker_find() {
    NGL_MOSQUITTO=$(command -v mosquitto 2>/dev/null || true)
    if [ -z "$NGL_MOSQUITTO" ] && [ -x /usr/sbin/mosquitto ]; then
        NGL_MOSQUITTO=/usr/sbin/mosquitto
    fi
    [ -n "$NGL_MOSQUITTO" ]
}

# True once something accepts TCP connections on 127.0.0.1:$1.
ngl_port_listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Starts mosquitto with the config already in $NGL_BROKER_DIR; 0 once it
# listens, 1 if it died (port taken) or did not listen within 5 s.
ngl_broker_launch() {
    "$NGL_MOSQUITTO" -c "$NGL_BROKER_DIR/mosquitto.conf" >>"$NGL_BROKER_DIR/broker.log" 2>&1 &
    NGL_BROKER_PID=$!
    local i
    for i in $(seq 100); do
        if ! kill -0 "$NGL_BROKER_PID" 2>/dev/null; then
            wait "$NGL_BROKER_PID" 2>/dev/null || true
            NGL_BROKER_PID=""
            return 1
        fi
        if ngl_port_listening "$NGL_BROKER_PORT"; then
            return 0
        fi
        sleep 0.05
    done
    ngl_broker_kill
    return 1
}

ngl_broker_start() {
    NGL_BROKER_DIR=$1
    mkdir -p "$NGL_BROKER_DIR"
    ngl_broker_find || {
        echo "broker.sh: mosquitto not installed" >&2
        return 1
    }
    # A random port in the dynamic range; a port another process holds makes
    # mosquitto exit at once, and we try another.
    local try
    for try in $(seq 20); do
        NGL_BROKER_PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if ngl_port_listening "$NGL_BROKER_PORT"; then
            continue
        fi
        # user: a broker started as root stays the test's user, so it can
        # read the test's private temporary directory (the password file).
        # sys_interval 1: $SYS/broker/bytes/* (the bench's byte counts) are
        # refreshed every second. Queues are large so the broker itself does
        # not drop under the bench's bursts; persistence off: nothing on disk.
        local auth="allow_anonymous true"
        if [ -n "${NGL_BROKER_USER:-}" ]; then
            # NGL_BROKER_USER=name:password: the only account; no anonymous access
            mosquitto_passwd -c -b "$NGL_BROKER_DIR/passwd" "${NGL_BROKER_USER%%:*}" \
                "${NGL_BROKER_USER#*:}" >/dev/null
            auth="allow_anonymous false
password_file $NGL_BROKER_DIR/passwd"
        fi
        local tls=""
        if [ -n "${NGL_BROKER_TLS_DIR:-}" ]; then
            # NGL_BROKER_TLS_DIR holds ca.crt, server.crt, server.key: TLS only,
            # and a client certificate signed by the CA is required
            tls="cafile $NGL_BROKER_TLS_DIR/ca.crt
certfile $NGL_BROKER_TLS_DIR/server.crt
keyfile $NGL_BROKER_TLS_DIR/server.key
require_certificate true"
        fi
        cat >"$NGL_BROKER_DIR/mosquitto.conf" <<CONF
listener $NGL_BROKER_PORT 127.0.0.1
$tls
$auth
user $(id -un)
persistence false
sys_interval 1
max_queued_messages 1000000
max_inflight_messages 100
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
CONF
        if ngl_broker_launch; then
            return 0
        fi
    done
    echo "broker.sh: mosquitto did not start; log:" >&2
    cat "$NGL_BROKER_DIR/broker.log" >&2 || true
    return 1
}

ngl_broker_kill() {
    if [ -n "$NGL_BROKER_PID" ]; then
        kill -KILL "$NGL_BROKER_PID" 2>/dev/null || true
        wait "$NGL_BROKER_PID" 2>/dev/null || true
        NGL_BROKER_PID=""
    fi
}

ngl_broker_stop() {
    if [ -n "$NGL_BROKER_PID" ]; then
        kill -TERM "$NGL_BROKER_PID" 2>/dev/null || true
        wait "$NGL_BROKER_PID" 2>/dev/null || true
        NGL_BROKER_PID=""
    fi
}

# Same port and config; retried briefly in case the old socket lingers.
ngl_broker_restart() {
    ngl_broker_stop
    local try
    for try in $(seq 50); do
        if ngl_broker_launch; then
            return 0
        fi
        sleep 0.1
    done
    echo "broker.sh: restart on port $NGL_BROKER_PORT failed" >&2
    return 1
}
