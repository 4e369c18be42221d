#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/netns-mpi.sh -- a small rate-limited "cluster" on one machine:
# one network namespace per MPI rank, each with a veth link to a bridge in
# the root namespace, and a token-bucket limit on both directions of every
# link (a full-duplex NIC of the given rate). Needs root (ip, tc).
#
#   netns-mpi.sh up N RATE     create N namespaces ngl-r0.. with links of RATE
#                              (tc syntax: 1gbit, 10gbit; none: no tc limit,
#                              the veth's own speed); replaces any old set
#   netns-mpi.sh down          remove everything this script created
#   netns-mpi.sh hosts N [S]   print the host list for mpirun --host (S slots,
#                              i.e. ranks, per node; default 1)
#   netns-mpi.sh rsh [opts] HOST CMD...
#                              mpirun's launch agent (instead of ssh): runs
#                              CMD in the namespace of HOST
#   netns-mpi.sh iface         print the interface name inside a namespace
#
# Each namespace is a "node" with its own Open MPI daemon, so the ranks'
# local plumbing (PMIx over loopback) stays inside their namespace and only
# MPI traffic crosses the links. Node i is 10.77.0.(i+1); the bridge, in the
# root namespace where mpirun runs, is 10.77.0.254. Run Open MPI with
#   --host $(netns-mpi.sh hosts N) --mca plm_rsh_agent "netns-mpi.sh rsh"
#   --mca btl self,tcp --mca btl_tcp_if_include 10.77.0.0/24
#   --mca oob_tcp_if_include 10.77.0.0/24
# so that all MPI traffic, and only TCP, crosses the limited links.
set -euo pipefail

# NGL_NETNS_NAME and NGL_NETNS_SUBNET give a second set its own names and
# addresses (the test suite's set must not tear down a benchmark's).
name=${NGL_NETNS_NAME:-ngl}
BR=$name-br0
NS=$name-r
VETH=$name-v
SUBNET=${NGL_NETNS_SUBNET:-10.77.0}
IFACE=eth0

down() {
    local ns
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${NS}[0-9]*$" || true); do
        ip netns del "$ns"
    done
    ip link del "$BR" 2>/dev/null || true
    rm -rf /dev/shm/"$NS"[0-9]*-vader
    # veth pairs vanish with their namespace; remove stragglers.
    for v in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$VETH" || true); do
        ip link del "$v" 2>/dev/null || true
    done
}

limit() { # dev rate: token bucket, burst sized for the rate and 64 KiB GSO packets
    local dev=$1 rate=$2 ns=${3:-}
    local burst=256kb
    [ "$rate" = none ] && return 0
    case "$rate" in
    *[0-9]gbit) [ "${rate%gbit}" -ge 10 ] && burst=4mb ;;
    esac
    ${ns:+ip netns exec "$ns"} tc qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 50ms
}

up() {
    local n=$1 rate=$2 i
    down
    ip link add "$BR" type bridge
    ip addr add "$SUBNET.254/24" dev "$BR"
    ip link set "$BR" up
    for ((i = 0; i < n; i++)); do
        ip netns add "$NS$i"
        ip link add "$VETH$i" type veth peer name "$IFACE" netns "$NS$i"
        ip link set "$VETH$i" master "$BR" up
        ip netns exec "$NS$i" ip addr add "$SUBNET.$((i + 1))/24" dev "$IFACE"
        ip netns exec "$NS$i" ip link set lo up
        ip netns exec "$NS$i" ip link set "$IFACE" up
        limit "$IFACE" "$rate" "$NS$i"  # rank -> bridge
        limit "$VETH$i" "$rate"         # bridge -> rank
    done
}

case "${1:-}" in
up) up "${2:?ranks}" "${3:?rate, e.g. 1gbit or none}" ;;
down) down ;;
hosts)
    n=${2:?ranks}
    slots=${3:-1}
    for ((i = 0; i < n; i++)); do
        printf '%s%s' "$([ "$i" -gt 0 ] && echo ,)" "$SUBNET.$((i + 1))"
        [ "$slots" -gt 1 ] && printf ':%s' "$slots"
    done
    echo
    ;;
rsh)
    shift
    while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do
        shift # ssh options (-x, ...) mean nothing here
    done
    host=${1:?host}
    shift
    node=${host##*.}
    [ "$host" = "$SUBNET.$node" ] || { echo "netns-mpi.sh: unknown host $host" >&2; exit 2; }
    # Ranks of one namespace ("node") talk over shared memory (vader). Its
    # segment files are named by hostname, job and local rank, and every
    # namespace has the same hostname: each node gets its own directory.
    shm=/dev/shm/$NS$((node - 1))-vader
    mkdir -p "$shm"
    exec ip netns exec "$NS$((node - 1))" env OMPI_MCA_btl_vader_backing_directory="$shm" \
        /bin/sh -c "$*"
    ;;
iface) echo "$IFACE" ;;
*) sed -n '3,20p' "$0"; exit 2 ;;
esac
