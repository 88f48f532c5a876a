#!/usr/bin/env bash
# Publishing with publisher confirms through a real three-node RabbitMQ 3.10 cluster: the same
# load (`loadgen confirms`: persistent messages to durable quorum queues, a bounded window of
# unconfirmed messages per publisher, acking consumers) direct to the brokers, through HAProxy
# 2.6 and through vrrpd's balancer, side by side. The broker is the bottleneck here: a proxy
# should cost no measurable rate.
#
# In a namespace lab (scripts/lab.sh): the brokers in $LAB-backend (192.0.2.21-23:5672, not
# pinned: three Erlang VMs need both cores), both proxies in $LAB-a (vrrpd on 192.0.2.11:5672,
# HAProxy on 192.0.2.11:5673, leastconn over the three brokers, pinned to CPU 0), the load in
# $LAB-client (pinned to CPU 1). Direct, the load's connections go to the three brokers in
# turn, as leastconn spreads them; where each lands does not change the brokers' work (see
# integration/src/confirms.rs). Called by scripts/bench.sh (`--confirms` runs only this,
# `--quick --confirms` a tiny setting); needs root, rabbitmq-server and haproxy.
#
#   scripts/bench-confirms.sh BIN_DIR [quick]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?the directory holding vrrpd and loadgen}
if [ "${2:-}" = quick ]; then
    connection_counts=(10); sizes=(64); seconds=2; warmup=1; repeats=1
else
    connection_counts=(10 100); sizes=(64 4096); seconds=5; warmup=2; repeats=3
fi
for tool in ip rabbitmq-server haproxy taskset python3; do
    command -v "$tool" >/dev/null || { echo "bench-confirms: $tool is missing (scripts/install-test-deps.sh)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "bench-confirms: needs root (network namespaces)" >&2; exit 1; }

export LAB=bconf-$$
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    scripts/rabbitmq-cluster.sh stop >/dev/null 2>&1 || true
    scripts/lab.sh down
    rm -rf "$work"
}
trap cleanup EXIT
# The EXIT trap also runs on Ctrl-C or kill: the cluster and the namespaces go with the script.
trap 'exit 130' INT TERM
scripts/lab.sh up
started=$(date +%s)
scripts/rabbitmq-cluster.sh start
echo "RabbitMQ cluster of three started in $(( $(date +%s) - started )) s"

cat > "$work/haproxy.cfg" <<CFG
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    option splice-auto
listen amqp
    bind 192.0.2.11:5673
    balance leastconn
    server rabbit1 192.0.2.21:5672 check inter 2s rise 2 fall 3
    server rabbit2 192.0.2.22:5672 check inter 2s rise 2 fall 3
    server rabbit3 192.0.2.23:5672 check inter 2s rise 2 fall 3
CFG
ip netns exec "$LAB-a" taskset -c 0 haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 & haproxy_pid=$!; pids+=($haproxy_pid)

# As conf/proxy-a.toml, balancer only (no VRRP instance: the VIP plays no part in the rate).
cat > "$work/vrrpd.toml" <<CFG
[global]
router_id = "bench-confirms"
control_socket = "$work/vrrpd.sock"

[[proxy]]
name = "amqp"
bind = "192.0.2.11:5672"
balance = "leastconn"
check = { kind = "amqp", interval = "2s", rise = 2, fall = 3, timeout = "1s" }
timeout_connect = "2s"
timeout_idle = "1h"
CFG
for n in 1 2 3; do
    printf '\n[[proxy.server]]\nname = "rabbit%s"\naddress = "192.0.2.2%s:5672"\n' "$n" "$n" >> "$work/vrrpd.toml"
done
VRRPD_LOG=warn ip netns exec "$LAB-a" taskset -c 0 "$bin/vrrpd" --config "$work/vrrpd.toml" >"$work/vrrpd.log" 2>&1 & vrrpd_pid=$!; pids+=($vrrpd_pid)
# Both proxies see every broker up (rise 2 at 2 s) before the first run.
sleep 6
for pid in "$haproxy_pid" "$vrrpd_pid"; do
    kill -0 "$pid" 2>/dev/null || { echo "bench-confirms: a proxy did not start:" >&2; cat "$work/haproxy.log" "$work/vrrpd.log" >&2; exit 1; }
done

# One run: "CONFIRMED_PER_S CPU_US P99_US LOST ERRORS" (CPU "-" without a proxy).
confirms() { # ADDRESSES CONNECTIONS SIZE [PROXY_PID]
    ip netns exec "$LAB-client" taskset -c 1 "$bin/loadgen" confirms "$1" --connections "$2" --size "$3" \
        --seconds "$seconds" --warmup "$warmup" ${4:+--cpu-of "$4"} 2>>"$work/loadgen.err" |
        python3 -c '
import sys
f = dict(kv.split("=", 1) for kv in sys.stdin.read().split())
if not f:
    print("0 - 0 - -")
else:
    print(f["confirmed_per_s"], f.get("cpu_us_per_message", "-"), f["p99_us"], f["lost"], f["errors"])'
}
medians() { # one line per run in, the median of each numeric column out (sums for lost, errors)
    python3 -c '
import statistics, sys
runs = [line.split() for line in sys.stdin if line.strip()]
cols = list(zip(*runs))
med = lambda col: "-" if "-" in col else round(statistics.median(float(v) for v in col), 2)
total = lambda col: "-" if "-" in col else sum(int(v) for v in col)
print(med(cols[0]), med(cols[1]), med(cols[2]), total(cols[3]), total(cols[4]))'
}
ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.2f}x" if b else "-")' "$1" "$2"; }
row() { printf '%-34s %12s %12s %9s  %s\n' "$@"; }

echo "publisher confirms through RabbitMQ $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo '?') (3 nodes, quorum queues, persistent messages)"
echo "brokers in namespace $LAB-backend (unpinned); vrrpd and HAProxy in $LAB-a on CPU 0; loadgen in $LAB-client on CPU 1"
echo "${seconds} s per run after ${warmup} s of warm-up, median of ${repeats}; direct, HAProxy and vrrpd take turns"
echo
direct_addresses=192.0.2.21:5672,192.0.2.22:5672,192.0.2.23:5672
# A fresh cluster's first run is slower (it was always the direct one): one run, discarded.
confirms "$direct_addresses" "${connection_counts[0]}" "${sizes[0]}" >/dev/null
row "measure" "vrrpd" "HAProxy" "ratio" "reference"
for connections in "${connection_counts[@]}"; do
    for size in "${sizes[@]}"; do
        d_runs=(); h_runs=(); v_runs=()
        for repeat in $(seq "$repeats"); do
            # Each repeat starts with the next of the three, so none is always first or last.
            for turn in 0 1 2; do
                case $(( (repeat + turn) % 3 )) in
                    0) d_runs+=("$(confirms "$direct_addresses" "$connections" "$size")") ;;
                    1) h_runs+=("$(confirms 192.0.2.11:5673 "$connections" "$size" "$haproxy_pid")") ;;
                    2) v_runs+=("$(confirms 192.0.2.11:5672 "$connections" "$size" "$vrrpd_pid")") ;;
                esac
            done
        done
        read -r d _ dp99 dlost derr < <(printf '%s\n' "${d_runs[@]}" | medians)
        read -r h hcpu hp99 hlost herr < <(printf '%s\n' "${h_runs[@]}" | medians)
        read -r v vcpu vp99 vlost verr < <(printf '%s\n' "${v_runs[@]}" | medians)
        row "confirmed msgs/s, $connections conns, $size B" "$v" "$h" "$(ratio "$v" "$h")" "(direct: $d, vrrpd/direct $(ratio "$v" "$d"))"
        row "  proxy CPU per message, us" "$vcpu" "$hcpu" "$(ratio "$vcpu" "$hcpu")" "lower is better"
        row "  confirm latency p99, us" "$vp99" "$hp99" "$(ratio "$vp99" "$hp99")" "(direct: $dp99)"
        row "  lost / errors" "$vlost/$verr" "$hlost/$herr" "" "(direct: $dlost/$derr; must be 0)"
    done
done
if [ -s "$work/loadgen.err" ]; then
    echo
    echo "loadgen reported:"
    sort "$work/loadgen.err" | uniq -c | head -10
fi
