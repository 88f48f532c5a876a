#!/usr/bin/env bash
# A test network of network namespaces on one machine:
#
#   ${LAB}-a        eth0 192.0.2.11/24   2001:db8::11/64  proxy host A
#   ${LAB}-b        eth0 192.0.2.12/24   2001:db8::12/64  proxy host B
#   ${LAB}-client   eth0 192.0.2.31/24   2001:db8::31/64  a client of the VIP (192.0.2.100)
#   ${LAB}-backend  eth0 192.0.2.21-23/24  2001:db8::21/64  the backend (brokers)
#   ${LAB}-sw       bridge br0 joining the four; ports port-a, port-b, port-client, port-backend
#
#   scripts/lab.sh up | down | status
#   LAB=name scripts/lab.sh up     # several labs side by side (the tests use this)
#
# 192.0.2.0/24 exists only inside these namespaces: no traffic leaves them.
set -euo pipefail

lab=${LAB:-vrrpd}
hosts=(a b client backend)
declare -A address=([a]=192.0.2.11/24 [b]=192.0.2.12/24 [client]=192.0.2.31/24 [backend]=192.0.2.21/24)
declare -A address6=([a]=2001:db8::11/64 [b]=2001:db8::12/64 [client]=2001:db8::31/64 [backend]=2001:db8::21/64)
declare -A mac=([a]=02:00:00:00:00:11 [b]=02:00:00:00:00:12 [client]=02:00:00:00:00:31 [backend]=02:00:00:00:00:21)

up() {
    down quiet
    ip netns add "$lab-sw"
    ip -n "$lab-sw" link set lo up
    ip -n "$lab-sw" link add name br0 type bridge mcast_snooping 0 stp_state 0 forward_delay 0
    ip -n "$lab-sw" link set br0 up
    for host in "${hosts[@]}"; do
        ns="$lab-$host"
        ip netns add "$ns"
        # IPv6 on, without duplicate address detection: eth0 (created below, so it takes
        # these defaults) has its link-local address at once, as VRRPv3 over IPv6 needs.
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
            net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
        ip -n "$ns" link set lo up
        ip -n "$lab-sw" link add name "port-$host" type veth peer name eth0 netns "$ns"
        ip -n "$lab-sw" link set dev "port-$host" master br0 up
        ip -n "$ns" link set eth0 address "${mac[$host]}"
        ip -n "$ns" addr add "${address[$host]}" dev eth0
        ip -n "$ns" addr add "${address6[$host]}" dev eth0 nodad
        ip -n "$ns" link set eth0 up
    done
    ip -n "$lab-backend" addr add 192.0.2.22/24 dev eth0
    ip -n "$lab-backend" addr add 192.0.2.23/24 dev eth0
    # Wait for the links to come up (veth carrier, no DAD on IPv4).
    for host in "${hosts[@]}"; do
        for _ in $(seq 50); do
            ip -n "$lab-$host" -br link show eth0 | grep -q "UP" && break
            sleep 0.1
        done
    done
}

down() {
    # ip netns list complains about namespaces other labs are creating at the same moment.
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$lab-(sw|a|b|client|backend)$" || true); do
        # Anything still running in the namespace goes with it.
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
        ip netns del "$ns"
    done
    [ "${1:-}" = quiet ] || true
}

status() {
    for host in "${hosts[@]}"; do
        printf '%-8s ' "$host"
        ip -n "$lab-$host" -br -4 addr show dev eth0 2>/dev/null || echo "(down)"
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: scripts/lab.sh up|down|status" >&2; exit 2 ;;
esac
