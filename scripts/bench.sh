#!/usr/bin/env bash
# Side-by-side benchmark of vrrpd's balancer and HAProxy 2.6 (Debian), on loopback, with the
# same TCP configuration (HAProxy allowed its best: splice-auto). Proxies run on CPU 0, load
# generators and backends on CPU 1. Each figure is the median of REPEATS runs.
#
#   scripts/bench.sh            # full run (a few minutes)
#   scripts/bench.sh --quick    # tiny setting, seconds (the test suite runs this)
#   scripts/bench.sh --syscalls # only: system calls and CPU per message (AMQP shape) and per
#                               # connection (needs strace); PROFILE_SHAPE="1000 4096" picks
#                               # the connections and frame size (default "100 64")
#   scripts/bench.sh --unpinned # the loopback table only, with nothing pinned: proxies, load and
#                               # backends share every CPU (each proxy then runs a thread per CPU)
#   scripts/bench.sh --ceiling  # only: how far 1.2x HAProxy is from what this machine can show.
#                               # Connections/s and AMQP-shaped messages/s, alternated runs,
#                               # through no proxy (direct: the load side's own limit), HAProxy,
#                               # vrrpd and uring-copy (a relay with no features on io_uring:
#                               # what a different I/O model could buy); with --unpinned too
#   scripts/bench.sh --confirms # only: publisher confirms through a real RabbitMQ cluster, direct,
#                               # HAProxy and vrrpd (scripts/bench-confirms.sh; about 13 minutes,
#                               # root); with --quick first, a tiny setting (about 90 s)
#
# Needs iperf3 and haproxy (scripts/install-test-deps.sh), and root for the idle-cost part
# (network namespaces for VRRP). Builds into $CARGO_TARGET_DIR when set, else target/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"

quick=false; syscalls=false; confirms=false; unpinned=false; ceiling=false
for arg in "$@"; do
    case "$arg" in
        --quick) quick=true ;;
        --syscalls) syscalls=true ;;
        --confirms) confirms=true ;;
        --unpinned) unpinned=true ;;
        --ceiling) ceiling=true ;;
        *) echo "usage: scripts/bench.sh [--quick] [--unpinned] [--syscalls | --confirms | --ceiling]" >&2; exit 2 ;;
    esac
done
# Where the proxies run, and where the load generators and backends run.
proxy_cpus=0; load_cpus=1
if $unpinned; then
    proxy_cpus=0-$(( $(nproc) - 1 )); load_cpus=$proxy_cpus
fi
# frame_*: AMQP's shape, kept-alive connections each sending a frame and waiting for its echo.
if $quick; then
    # The test suite's check that the script works: reuse its debug build; numbers mean little.
    seconds=1; repeats=1; idle_connections=200; idle_seconds=3; concurrency=8; profile=debug
    frame_connections=(10); frame_sizes=(64); frame_seconds=1
else
    seconds=5; repeats=3; idle_connections=10000; idle_seconds=60; concurrency=32; profile=release
    frame_connections=(100 1000); frame_sizes=(64 512 4096); frame_seconds=3
fi
$syscalls && frame_seconds=5
# The kept-alive connections and frame size the system-call profile is taken at.
read -r profile_connections profile_size <<<"${PROFILE_SHAPE:-100 64}"
ulimit -n "$(ulimit -Hn)"
limit=$(ulimit -n)
# Each idle proxied connection costs a proxy two descriptors, and HAProxy reserves more for
# splice pipes (about 2.5 per connection in all) and refuses to start when they would not fit.
# Where the hard limit is low, both proxies are measured with as many as HAProxy can hold.
max_idle=$(( (limit - 500) * 2 / 5 ))
[ "$idle_connections" -gt "$max_idle" ] && idle_connections=$max_idle

tools=(iperf3 haproxy taskset python3)
$syscalls && tools+=(strace)
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (scripts/install-test-deps.sh)" >&2; exit 1; }
done
if [ "$profile" = release ]; then
    cargo build -q --release -p vrrpd -p integration --bins
else
    cargo build -q -p vrrpd -p integration --bins
fi
bin=${CARGO_TARGET_DIR:-target}/$profile
vrrpd=$bin/vrrpd
loadgen=$bin/loadgen
if $confirms; then
    exec scripts/bench-confirms.sh "$bin" $($quick && echo quick)
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Backends on CPU 1: an echo server and an iperf3 server.
taskset -c "$load_cpus" "$loadgen" serve 127.0.0.1:25001 & pids+=($!)
taskset -c "$load_cpus" iperf3 -s -B 127.0.0.1 -p 25201 >/dev/null 2>&1 & pids+=($!)

cat > "$work/haproxy.cfg" <<CFG
global
    maxconn $(( idle_connections + 100 ))
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    option splice-auto
listen echo
    bind 127.0.0.1:26001
    server s1 127.0.0.1:25001
listen iperf
    bind 127.0.0.1:26201
    server s1 127.0.0.1:25201
CFG
taskset -c "$proxy_cpus" haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 & haproxy_pid=$!; pids+=($haproxy_pid)
sleep 0.5
kill -0 "$haproxy_pid" 2>/dev/null || { echo "bench: haproxy did not start:" >&2; cat "$work/haproxy.log" >&2; exit 1; }

cat > "$work/vrrpd.toml" <<CFG
[global]
router_id = "bench"
control_socket = "$work/vrrpd.sock"

[[proxy]]
name = "echo"
bind = "127.0.0.1:27001"
timeout_idle = "1h"
[[proxy.server]]
name = "s1"
address = "127.0.0.1:25001"
check = false

[[proxy]]
name = "iperf"
bind = "127.0.0.1:27201"
timeout_idle = "1h"
[[proxy.server]]
name = "s1"
address = "127.0.0.1:25201"
check = false
CFG
VRRPD_LOG=warn taskset -c "$proxy_cpus" "$vrrpd" --config "$work/vrrpd.toml" >"$work/vrrpd.log" 2>&1 & vrrpd_pid=$!; pids+=($vrrpd_pid)
if $ceiling; then
    # As many threads as the proxies get CPUs, as tokio and HAProxy do.
    taskset -c "$proxy_cpus" "$bin/uring-copy" 127.0.0.1:28001 127.0.0.1:25001 --threads "$(taskset -c "$proxy_cpus" nproc)" \
        >"$work/uring-copy.log" 2>&1 & uring_pid=$!; pids+=($uring_pid)
fi
sleep 1

median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(statistics.median(v))' "$@"; }
repeat() { local out=(); for _ in $(seq "$repeats"); do out+=("$("$@")"); done; median "${out[@]}"; }

# iperf3's JSON to Gbit/s, or iperf3's own error on stderr (and 0).
iperf_gbits() {
    python3 -c '
import json, sys
result = json.load(sys.stdin)
try:
    print(round(result["end"]["sum_received"]["bits_per_second"] / 1e9, 2))
except KeyError:
    print("iperf3: " + str(result.get("error", "no result")), file=sys.stderr)
    print(0)'
}
gbits() { # PORT STREAMS
    taskset -c "$load_cpus" iperf3 -c 127.0.0.1 -p "$1" -t "$seconds" -P "$2" -J | iperf_gbits
}
direct_gbits() { # STREAMS: client on CPU 0, server on CPU 1: the ceiling
    taskset -c "$proxy_cpus" iperf3 -c 127.0.0.1 -p 25201 -t "$seconds" -P "$1" -J | iperf_gbits
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Connections per second, and the proxy's CPU per connection in microseconds ("RATE US").
rate() { # PORT PID
    local before after out
    before=$(ticks "$2")
    out=$(taskset -c "$load_cpus" "$loadgen" rate "127.0.0.1:$1" --concurrency "$concurrency" --seconds "$seconds" | sed -E 's/connections_per_s=([0-9]+).*/\1/')
    after=$(ticks "$2")
    python3 -c "import sys; r=float(sys.argv[1]); t=(int(sys.argv[3])-int(sys.argv[2]))/$(getconf CLK_TCK); print(r, round(t*1e6/(r*$seconds)) if r else 0)" "$out" "$before" "$after"
}
latency() { # PORT FIELD
    taskset -c "$load_cpus" "$loadgen" latency "127.0.0.1:$1" --connections 16 --seconds "$seconds" | tr ' ' '\n' | sed -n "s/^$2=//p"
}
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
idle_memory() { # PORT PID: bytes of proxy memory per idle connection
    local fifo="$work/hold.$1" out="$work/held.$1" before after
    mkfifo "$fifo"
    before=$(rss "$2")
    taskset -c "$load_cpus" "$loadgen" idle "127.0.0.1:$1" --count "$idle_connections" <"$fifo" >"$out" &
    local holder=$!
    exec 3>"$fifo"
    for _ in $(seq 600); do grep -q held= "$out" 2>/dev/null && break; sleep 0.1; done
    sleep 1
    after=$(rss "$2")
    exec 3>&-
    wait "$holder" 2>/dev/null || true
    rm -f "$fifo"
    echo $(( (after - before) * 1024 / idle_connections ))
}

# AMQP's shape: "MESSAGES_PER_S CPU_US P99_US" for one run, the CPU being the proxy's per message
# ("-" without one). A message is a frame out and its echo back. Direct: no proxy, the load and
# the echo server on CPU 1 as in the proxied runs, so it is the most the load side can drive.
frames() { # PORT CONNECTIONS SIZE [PROXY_PID]
    taskset -c "$load_cpus" "$loadgen" frames "127.0.0.1:$1" --connections "$2" --size "$3" --seconds "$frame_seconds" ${4:+--cpu-of "$4"} |
        python3 -c 'import sys; f=dict(kv.split("=", 1) for kv in sys.stdin.read().split()); print(f["messages_per_s"], f.get("cpu_us_per_message", "-"), f["p99_us"])'
}
frames_medians() { # as frames: the median of each figure over the repeats
    local runs=()
    for _ in $(seq "$repeats"); do runs+=("$(frames "$@")"); done
    printf '%s\n' "${runs[@]}" | python3 -c '
import statistics, sys
runs = [line.split() for line in sys.stdin if line.strip()]
print(*("-" if "-" in col else round(statistics.median(float(v) for v in col), 2) for col in zip(*runs)))'
}

# System calls and CPU per message for AMQP's shape (PROFILE_SHAPE: 100 connections and 64 B
# unless told), vrrpd and HAProxy side by side: untraced (rate and CPU, medians), then one run
# under `strace -f -c` (calls by name and how many failed: for recvfrom, EAGAIN) and, where
# perf reads the syscall tracepoints, one under `perf stat`, far lighter than strace so the
# batching of events per epoll_wait stays nearer the untraced run's. Counts are per message
# the traced run completed; the set-up of its connections is in them (a few calls each).
traced_messages() { # PORT PID TRACER...: loadgen's message count while TRACER... -p PID watches
    local port=$1 pid=$2 tracer
    shift 2
    "$@" -p "$pid" 2>/dev/null & tracer=$!
    sleep 1
    taskset -c "$load_cpus" "$loadgen" frames "127.0.0.1:$port" --connections "$profile_connections" --size "$profile_size" --seconds "$frame_seconds" |
        sed -E 's/.*messages=([0-9]+).*/\1/'
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
}
traced_connections() { # PORT PID TRACER...: loadgen's connection count while TRACER... -p PID watches
    local port=$1 pid=$2 tracer
    shift 2
    "$@" -p "$pid" 2>/dev/null & tracer=$!
    sleep 1
    taskset -c "$load_cpus" "$loadgen" rate "127.0.0.1:$port" --concurrency "$concurrency" --seconds "$seconds" |
        sed -E 's/.*connections=([0-9]+).*/\1/'
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
}
syscall_profile() {
    local v h vm hm vc hc
    read -r v vcpu _ < <(frames_medians 27001 "$profile_connections" "$profile_size" "$vrrpd_pid")
    read -r h hcpu _ < <(frames_medians 26001 "$profile_connections" "$profile_size" "$haproxy_pid")
    vm=$(traced_messages 27001 "$vrrpd_pid" strace -f -c -o "$work/strace.vrrpd")
    hm=$(traced_messages 26001 "$haproxy_pid" strace -f -c -o "$work/strace.haproxy")
    vc=$(traced_connections 27001 "$vrrpd_pid" strace -f -c -o "$work/strace-conn.vrrpd")
    hc=$(traced_connections 26001 "$haproxy_pid" strace -f -c -o "$work/strace-conn.haproxy")
    local events=(-e raw_syscalls:sys_enter -e syscalls:sys_enter_recvfrom -e syscalls:sys_exit_recvfrom --filter 'ret == -11'
        -e syscalls:sys_enter_sendto -e syscalls:sys_enter_epoll_wait -e syscalls:sys_enter_futex -e context-switches)
    local vp=0 hp=0
    if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_recvfrom true >/dev/null 2>&1; then
        vp=$(traced_messages 27001 "$vrrpd_pid" perf stat -x, -o "$work/perf.vrrpd" "${events[@]}")
        hp=$(traced_messages 26001 "$haproxy_pid" perf stat -x, -o "$work/perf.haproxy" "${events[@]}")
    fi
    python3 - "$work" "$v" "$vcpu" "$h" "$hcpu" "$vm" "$hm" "$vp" "$hp" "$vc" "$hc" "$profile_connections" "$profile_size" <<'PY'
import sys
work, v, vcpu, h, hcpu = sys.argv[1:6]
vm, hm, vp, hp, vc, hc, connections, size = (int(x) for x in sys.argv[6:14])
row = lambda *cells: print(f"{cells[0]:<44} {cells[1]:>10} {cells[2]:>10}")
per = lambda n, m: f"{n / m:.2f}" if m else "-"

def strace_counts(path):  # {syscall: (calls, errors)}
    counts = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls, errors = int(f[3]), int(f[4]) if len(f) == 6 else 0
            counts[f[-1]] = (calls, errors)
    return counts

def perf_counts(path):  # {event: count}
    counts = {}
    for line in open(path):
        f = line.strip().split(",")
        if len(f) > 2 and f[0].isdigit():
            counts[f[2]] = counts.get(f[2], 0) + int(f[0])
    return counts

def strace_table(sv, sh, vm, hm, rest_label):
    rest = [0, 0]
    for name in sorted(set(sv) | set(sh), key=lambda n: -(sv.get(n, (0, 0))[0] / vm + sh.get(n, (0, 0))[0] / hm)):
        (vc, ve), (hc, he) = sv.get(name, (0, 0)), sh.get(name, (0, 0))
        if vc / vm < 0.01 and hc / hm < 0.01:
            rest[0] += vc; rest[1] += hc
            continue
        row(f"  {name}", per(vc, vm), per(hc, hm))
        if ve / vm >= 0.01 or he / hm >= 0.01:
            row(f"    {name} failed (EAGAIN)" if name.startswith("recv") else f"    {name} failed", per(ve, vm), per(he, hm))
    row(f"  others ({rest_label})", per(rest[0], vm), per(rest[1], hm))
    row("  all", per(sum(c for c, _ in sv.values()), vm), per(sum(c for c, _ in sh.values()), hm))

print(f"per message (a {size} B frame each way, one of {connections} kept-alive connections)")
row("", "vrrpd", "HAProxy")
row("untraced: messages/s", v, h)
row("untraced: proxy CPU per message, us", vcpu, hcpu)
row(f"strace -f -c (messages: {vm} / {hm})", "", "")
strace_table(strace_counts(f"{work}/strace.vrrpd"), strace_counts(f"{work}/strace.haproxy"), vm, hm,
             "the connections' set-up, timers")
if vp and hp:
    pv, ph = perf_counts(f"{work}/perf.vrrpd"), perf_counts(f"{work}/perf.haproxy")
    row(f"perf stat, syscall tracepoints (messages: {vp} / {hp})", "", "")
    for event, label in [("raw_syscalls:sys_enter", "all system calls"), ("syscalls:sys_enter_recvfrom", "recvfrom"),
                         ("syscalls:sys_exit_recvfrom", "  recvfrom returning EAGAIN"), ("syscalls:sys_enter_sendto", "sendto"),
                         ("syscalls:sys_enter_epoll_wait", "epoll_wait"), ("syscalls:sys_enter_futex", "futex"),
                         ("context-switches", "context switches")]:
        row(f"  {label}", per(pv.get(event, 0), vp), per(ph.get(event, 0), hp))
print()
print("per connection (a new connection, 64 B each way, closed; loadgen rate mode)")
row(f"strace -f -c (connections: {vc} / {hc})", "vrrpd", "HAProxy")
strace_table(strace_counts(f"{work}/strace-conn.vrrpd"), strace_counts(f"{work}/strace-conn.haproxy"), vc, hc, "timers and the rest")
PY
}

# How far 1.2x HAProxy is from what this machine can show: the same load through no proxy (the
# load side's own limit: whatever a proxy costs, it cannot go faster), HAProxy, vrrpd and
# uring-copy. Each repeat runs the four in turn, so a slow minute hits all of them.
ceiling_table() {
    local targets=("direct 25001" "HAProxy 26001 $haproxy_pid" "vrrpd 27001 $vrrpd_pid")
    if kill -0 "$uring_pid" 2>/dev/null; then
        targets+=("io_uring 28001 $uring_pid")
    elif grep -q "io_uring unavailable" "$work/uring-copy.log"; then
        echo "io_uring column: $(cat "$work/uring-copy.log")"
    else
        echo "ceiling: uring-copy did not start: $(cat "$work/uring-copy.log")" >&2
        exit 1
    fi
    local shapes=("rate") runs=() shape target
    for connections in "${frame_connections[@]}"; do shapes+=("$connections 64"); done
    $quick || shapes+=("100 4096")
    for shape in "${shapes[@]}"; do
        for _ in $(seq "$repeats"); do
            for target in "${targets[@]}"; do
                set -- $target
                if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
                    echo "ceiling: $1 (pid $3) is gone" >&2
                    exit 1
                fi
                if [ "$shape" = rate ]; then
                    # Direct has no proxy: its CPU column (this shell's) is not shown.
                    runs+=("rate $1 $(rate "$2" "${3:-$$}")")
                else
                    runs+=("$shape $1 $(frames "$2" $shape ${3:-})")
                fi
            done
        done
    done
    printf '%s\n' "${runs[@]}" | python3 -c '
import collections, statistics, sys
figures = collections.defaultdict(lambda: collections.defaultdict(list))  # shape -> target -> [(rate, cpu_us)]
for line in sys.stdin:
    f = line.split()
    if f[0] == "rate":
        figures["rate"][f[1]].append((float(f[2]), float(f[3]) if float(f[2]) else None))
    else:
        shape = f"{f[0]} {f[1]}"
        figures[shape][f[2]].append((float(f[3]), None if f[4] == "-" else float(f[4])))
targets = ["direct", "HAProxy", "vrrpd", "io_uring"]
row = lambda *c: print(f"{c[0]:<32}" + "".join(f"{x:>10}" for x in c[1:]))
ratio = lambda a, b: "-" if a is None or not b else f"{a / b:.2f}x"
row("measure", *targets, "vrrpd/H", "uring/H", "direct/H")
for shape, by in figures.items():
    rate = {t: statistics.median(r for r, _ in by[t]) if by[t] else None for t in targets}
    cpus = {t: [c for _, c in by[t] if c is not None] for t in targets}
    cpu = {t: statistics.median(cpus[t]) if cpus[t] and t != "direct" else None for t in targets}
    label = "connections/s (64 B each way)" if shape == "rate" else "messages/s, {} conns, {} B".format(*shape.split())
    row(label, *("-" if rate[t] is None else f"{rate[t]:.0f}" for t in targets),
        *(ratio(rate[t], rate["HAProxy"]) for t in ("vrrpd", "io_uring", "direct")))
    row("  proxy CPU per " + ("connection" if shape == "rate" else "message") + ", us",
        *("-" if cpu[t] is None else f"{cpu[t]:.2f}" for t in targets),
        *(ratio(cpu[t], cpu["HAProxy"]) for t in ("vrrpd", "io_uring")), "")
'
}

ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.2f}x" if b else "-")' "$1" "$2"; }
row() { printf '%-34s %12s %12s %9s  %s\n' "$@"; }

echo "vrrpd $($vrrpd --version | awk '{print $2}') ($profile build) vs $(haproxy -v | head -1 | awk '{print $1, $2, $3}'); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
if $unpinned; then
    echo "nothing pinned: proxies, load and backends share CPUs $proxy_cpus; ${seconds} s per run (messages: ${frame_seconds} s), median of ${repeats}"
else
    echo "proxies on CPU 0, load and backends on CPU 1; ${seconds} s per run (messages: ${frame_seconds} s), median of ${repeats}"
fi
echo
if $syscalls; then
    syscall_profile
    exit 0
fi
if $ceiling; then
    ceiling_table
    exit 0
fi
row "measure" "vrrpd" "HAProxy" "ratio" "target"
for streams in 1 8; do
    v=$(repeat gbits 27201 "$streams"); h=$(repeat gbits 26201 "$streams")
    row "throughput, $streams stream(s), Gbit/s" "$v" "$h" "$(ratio "$v" "$h")" ">= 1.2x (direct: $(repeat direct_gbits "$streams"))"
done
# Each run gives "rate cpu_us"; medians of both.
rates() { # PORT PID
    local runs=()
    for _ in $(seq "$repeats"); do runs+=("$(rate "$1" "$2")"); done
    printf '%s\n' "${runs[@]}" | python3 -c 'import statistics,sys; r=[l.split() for l in sys.stdin if l.strip()]; print(statistics.median(float(a) for a,_ in r), statistics.median(float(b) for _,b in r))'
}
direct_rate() { rate 25001 $$ | cut -d' ' -f1; }  # no proxy: this shell's CPU is not read
read -r v vcpu < <(rates 27001 "$vrrpd_pid"); read -r h hcpu < <(rates 26001 "$haproxy_pid")
direct=$(repeat direct_rate)
row "connections/s (64 B each way)" "$v" "$h" "$(ratio "$v" "$h")" ">= 1.2x (direct: ${direct%.0})"
row "  proxy CPU per connection, us" "$vcpu" "$hcpu" "$(ratio "$vcpu" "$hcpu")" "lower is better"
v=$(repeat latency 27001 p50_us); h=$(repeat latency 26001 p50_us)
row "latency p50, us" "$v" "$h" "$(ratio "$v" "$h")" ""
v=$(repeat latency 27001 p99_us); h=$(repeat latency 26001 p99_us)
row "latency p99, us" "$v" "$h" "$(ratio "$v" "$h")" "<= 1.00x"
for connections in "${frame_connections[@]}"; do
    for size in "${frame_sizes[@]}"; do
        read -r d _ dp99 < <(frames_medians 25001 "$connections" "$size")
        read -r v vcpu vp99 < <(frames_medians 27001 "$connections" "$size" "$vrrpd_pid")
        read -r h hcpu hp99 < <(frames_medians 26001 "$connections" "$size" "$haproxy_pid")
        row "messages/s, $connections conns, $size B" "$v" "$h" "$(ratio "$v" "$h")" "(direct: $d)"
        row "  proxy CPU per message, us" "$vcpu" "$hcpu" "$(ratio "$vcpu" "$hcpu")" "lower is better"
        row "  round trip p99, us" "$vp99" "$hp99" "$(ratio "$vp99" "$hp99")" "(direct: $dp99)"
    done
done
v=$(idle_memory 27001 "$vrrpd_pid"); h=$(idle_memory 26001 "$haproxy_pid")
row "memory per idle connection, bytes" "$v" "$h" "$(ratio "$v" "$h")" "<= 1.00x ($idle_connections connections)"
# Idle cost, failover and confirms do not depend on where the proxies run: the pinned run has them.
$unpinned && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "idle cost and failover: need root (network namespaces); skipped"
    exit 0
fi
# bench-idle.sh finds its binaries under target/PROFILE: give it the way from there to ours.
scripts/bench-idle.sh "$idle_seconds" "$(realpath -m --relative-to=target "$bin")"

# Failover, same lab topology, vrrpd on both hosts and then keepalived 2.2.7 on both. The
# ping probe only sees VRRP: while a host with a broken proxy keeps the VIP (keepalived's
# weighted script), ping still answers but AMQP clients do not.
if $quick; then
    scenarios=(--scenario graceful-stop)
    keepalived_scenarios=(--scenario graceful-stop)
else
    scenarios=(--scenario link-cut --scenario graceful-stop --scenario track-script --scenario proxy-health)
    keepalived_scenarios=(--scenario link-cut --scenario graceful-stop --scenario track-script)
fi
echo
echo "failover: vrrpd on both hosts"
"$bin/drill" "${scenarios[@]}" | sed -n '/^scenario/,$p'
echo
echo "failover: keepalived 2.2.7 on both hosts"
"$bin/drill" --peer keepalived "${keepalived_scenarios[@]}" | sed -n '/^scenario/,$p'

# Publisher confirms through RabbitMQ: minutes (a cluster start, then 36 runs), so not in --quick.
if ! $quick && command -v rabbitmq-server >/dev/null; then
    echo
    scripts/bench-confirms.sh "$bin"
fi
