#!/usr/bin/env bash
# Idle cost: CPU used over SECONDS by vrrpd (one VRRP instance, advert_int 1, a proxy checking
# two brokers every 2 s) and by keepalived + HAProxy doing the same, on proxy host `a` of a
# namespace lab. Called by scripts/bench.sh; needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
profile=${2:-release}
export LAB=bench-idle-$$
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    scripts/lab.sh down
    rm -rf "$work"
}
trap cleanup EXIT
scripts/lab.sh up
ip netns exec "$LAB-backend" "target/$profile/greeter" rabbit1=192.0.2.21:5672 rabbit2=192.0.2.22:5672 >/dev/null & pids+=($!)

# CPU ticks (user + system) of a process and its children.
ticks() {
    local total=0 pid
    for pid in "$@" $(for p in "$@"; do pgrep -P "$p" || true; done); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat") ))
    done
    echo "$total"
}
measure() { # PIDS...: CPU milliseconds over $seconds
    local before after
    before=$(ticks "$@"); sleep "$seconds"; after=$(ticks "$@")
    echo $(( (after - before) * 1000 / $(getconf CLK_TCK) ))
}

cat > "$work/vrrpd.toml" <<CFG
[global]
control_socket = "$work/vrrpd.sock"
[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
state = "MASTER"
virtual_router_id = 51
priority = 101
advert_int = 1
virtual_ipaddress = ["192.0.2.100/24"]
[[proxy]]
name = "amqp"
bind = "0.0.0.0:5672"
check = { kind = "tcp", interval = "2s" }
[[proxy.server]]
name = "rabbit1"
address = "192.0.2.21:5672"
[[proxy.server]]
name = "rabbit2"
address = "192.0.2.22:5672"
CFG
VRRPD_LOG=warn ip netns exec "$LAB-a" "target/$profile/vrrpd" --config "$work/vrrpd.toml" >/dev/null 2>&1 & vrrpd=$!; pids+=($vrrpd)
sleep 5
v=$(measure "$vrrpd")
kill "$vrrpd"; wait "$vrrpd" 2>/dev/null || true

cat > "$work/keepalived.conf" <<CFG
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 101
    advert_int 1
    virtual_ipaddress {
        192.0.2.100/24
    }
}
CFG
cat > "$work/haproxy.cfg" <<CFG
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen amqp
    bind 0.0.0.0:5672
    server rabbit1 192.0.2.21:5672 check inter 2s
    server rabbit2 192.0.2.22:5672 check inter 2s
CFG
ip netns exec "$LAB-a" keepalived -n -P -f "$work/keepalived.conf" -p "$work/k.pid" -r "$work/kv.pid" >/dev/null 2>&1 & keepalived=$!; pids+=($keepalived)
ip netns exec "$LAB-a" haproxy -db -f "$work/haproxy.cfg" >/dev/null 2>&1 & haproxy=$!; pids+=($haproxy)
sleep 5
k=$(measure "$keepalived" "$haproxy")
printf '%-34s %12s %12s %9s  %s\n' "idle CPU over ${seconds} s, ms" "$v" "$k" \
    "$(python3 -c "import sys; a,b=$v,$k; print(f'{a/b:.2f}x' if b else '-')")" "(vs keepalived + HAProxy)"
