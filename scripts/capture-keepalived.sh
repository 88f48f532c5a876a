#!/usr/bin/env bash
# Capture VRRPv2 advertisements sent by the real keepalived (Debian package) inside a
# throw-away network namespace, and print them as hex, one packet per line: COUNT adverts
# as MASTER, then the priority-0 advert keepalived sends when it stops.
#
#   scripts/capture-keepalived.sh [COUNT]
#   scripts/capture-keepalived.sh COUNT v3   # vrrp_version 3: VRID 51 over IPv4 (advert_int
#                                            # 0.1) and VRID 61 over IPv6 (0.5, 2001:db8::100)
#
# The codec tests in vrrpd/src/packet.rs carry vectors produced by this script. Only the
# namespace's own veth pair (192.0.2.0/24) sees any traffic.
set -euo pipefail

count=${1:-3}
version=${2:-v2}
ns=vrrpd-capture-$$
workdir=$(mktemp -d)

cleanup() {
    [ -n "${keepalived_pid:-}" ] && kill "$keepalived_pid" 2>/dev/null && wait "$keepalived_pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$workdir"
}
trap cleanup EXIT

for tool in keepalived tcpdump ip; do
    command -v "$tool" >/dev/null || { echo "capture-keepalived: $tool is not installed (scripts/install-test-deps.sh)" >&2; exit 1; }
done

ip netns add "$ns"
# IPv6 on, link-local addresses usable at once (no duplicate address detection).
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
    net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
ip -n "$ns" link add ka0 type veth peer name ka1
ip -n "$ns" link set ka0 address 02:00:00:00:16:0a
ip -n "$ns" addr add 192.0.2.11/24 dev ka0
ip -n "$ns" link set lo up
ip -n "$ns" link set ka0 up
ip -n "$ns" link set ka1 up

if [ "$version" = v3 ]; then
cat > "$workdir/keepalived.conf" <<CONF
global_defs {
    router_id capture
    vrrp_version 3
}
vrrp_instance VI_4 {
    state MASTER
    interface ka0
    virtual_router_id 51
    priority 101
    advert_int 0.1
    virtual_ipaddress {
        192.0.2.100/24
        192.0.2.101/24
    }
}
vrrp_instance VI_6 {
    state MASTER
    interface ka0
    virtual_router_id 61
    priority 101
    advert_int 0.5
    virtual_ipaddress {
        2001:db8::100/64
    }
}
CONF
else
cat > "$workdir/keepalived.conf" <<CONF
global_defs {
    router_id capture
}
vrrp_instance VI_1 {
    state MASTER
    interface ka0
    virtual_router_id 51
    priority 101
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    virtual_ipaddress {
        192.0.2.100/24
        192.0.2.101/24
    }
}
CONF
fi

ip netns exec "$ns" tcpdump -Z root -U -i ka0 -n -w "$workdir/vrrp.pcap" 'ip proto 112 or ip6 proto 112' 2>/dev/null &
tcpdump_pid=$!
sleep 0.5
ip netns exec "$ns" keepalived -n -P -f "$workdir/keepalived.conf" \
    -p "$workdir/keepalived.pid" -r "$workdir/vrrp.pid" >/dev/null 2>&1 &
keepalived_pid=$!

# keepalived starts BACKUP and becomes MASTER after Master_Down_Interval (about 3.6 s here).
# With v3, the slower IPv6 instance decides: COUNT of its adverts (and many more IPv4 ones).
captured() { tcpdump -r "$workdir/vrrp.pcap" 2>/dev/null | if [ "$version" = v3 ]; then grep -c IP6; else wc -l; fi; }
for _ in $(seq 300); do
    [ "$(captured)" -ge "$count" ] && break
    sleep 0.1
done
[ "$(captured)" -ge "$count" ] || { echo "capture-keepalived: fewer than $count adverts within 30 s" >&2; exit 1; }

# A graceful stop sends one advert with priority 0 (RFC 3768 section 6.4.3): capture it too.
kill -TERM "$keepalived_pid"
wait "$keepalived_pid" 2>/dev/null || true
keepalived_pid=
sleep 0.3
kill "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true

# One line per packet: the whole IPv4 or IPv6 datagram (the Ethernet header stripped), as hex.
python3 - "$workdir/vrrp.pcap" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
off = 24  # pcap global header
while off + 16 <= len(data):
    _, _, incl, _ = struct.unpack_from("<IIII", data, off)
    frame = data[off + 16: off + 16 + incl]
    off += 16 + incl
    print(frame[14:].hex())
PY
