# SPDX-License-Identifier: Apache-2.0
# Sourced by scripts/bench-plugin.sh: network namespaces joined by a bridge,
# with a rate limit on every link, so that processes on one machine talk
# through a network of known speed.
#
#   rank r lives in namespace <prefix><r> with interface <prefix>v<r>
#   (10.201.0.<r+1>/24); a namespace <prefix>sw holds the bridge. Every veth
#   end gets a tc tbf qdisc at the given rate, so each direction of each
#   link is limited. Names stay under 15 characters for short prefixes.

plugin_netns_down() { # prefix nranks
    local p=$1 n=$2 r
    for ((r = 0; r < n; r++)); do
        ip netns del "${p}${r}" 2>/dev/null || true
    done
    ip netns del "${p}sw" 2>/dev/null || true
}

# Burst for tc tbf: 1 ms worth of traffic, at least 16 KiB. A larger bucket
# lets small messages pass at memory speed and hides the rate limit.
plugin_netns_burst() { # rate like 1gbit, 10gbit, 500mbit
    local rate=$1 num unit bits
    num=${rate%%[a-zA-Z]*}
    unit=${rate#"$num"}
    case $unit in
    gbit) bits=$((num * 1000000000)) ;;
    mbit) bits=$((num * 1000000)) ;;
    kbit) bits=$((num * 1000)) ;;
    *) echo "unsupported rate $rate (use kbit, mbit or gbit)" >&2; return 1 ;;
    esac
    local b=$((bits / 8 / 1000))
    ((b < 16384)) && b=16384
    echo "$b"
}

plugin_netns_up() { # prefix nranks rate
    local p=$1 n=$2 rate=$3 r burst
    burst=$(plugin_netns_burst "$rate")
    plugin_netns_down "$p" "$n"
    ip netns add "${p}sw"
    ip -n "${p}sw" link add br0 type bridge
    ip -n "${p}sw" link set br0 up
    for ((r = 0; r < n; r++)); do
        ip netns add "${p}${r}"
        ip link add "${p}v${r}" type veth peer name "${p}s${r}"
        ip link set "${p}v${r}" netns "${p}${r}"
        ip link set "${p}s${r}" netns "${p}sw"
        ip -n "${p}sw" link set "${p}s${r}" master br0 up
        ip -n "${p}${r}" link set lo up
        ip -n "${p}${r}" addr add "10.201.0.$((r + 1))/24" dev "${p}v${r}"
        ip -n "${p}${r}" link set "${p}v${r}" up
        tc -n "${p}${r}" qdisc add dev "${p}v${r}" root tbf rate "$rate" burst "$burst" latency 50ms
        tc -n "${p}sw" qdisc add dev "${p}s${r}" root tbf rate "$rate" burst "$burst" latency 50ms
    done
}
