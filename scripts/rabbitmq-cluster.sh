#!/usr/bin/env bash
# A three-node RabbitMQ cluster (Debian's rabbitmq-server) in a lab's backend namespace:
# rabbit1..3@localhost listening on 192.0.2.21..23:5672, quorum queues replicated over all
# three, and the management API (plugin rabbitmq_management) on 192.0.2.21..23:15672, user
# guest/guest. Data and logs under $RABBIT_DIR (default /tmp/vrrpd-rabbit-$LAB).
# With RABBIT_TLS_DIR=dir holding ca.pem, server.pem and key.pem, each node also listens for
# AMQPS on 192.0.2.2N:5671 with that certificate (no client certificate asked).
#
#   LAB=vrrpd scripts/rabbitmq-cluster.sh start | stop | stop-node N | start-node N | status
#   LAB=vrrpd scripts/rabbitmq-cluster.sh ctl N rabbitmqctl-arguments...
set -euo pipefail

lab=${LAB:-vrrpd}
ns="$lab-backend"
base=${RABBIT_DIR:-/tmp/vrrpd-rabbit-$lab}

node_env() {
    local n=$1 dir="$base/rabbit$1"
    echo RABBITMQ_NODENAME="rabbit$n@localhost" \
        RABBITMQ_NODE_IP_ADDRESS="192.0.2.2$n" RABBITMQ_NODE_PORT=5672 \
        RABBITMQ_DIST_PORT="$((25671 + n))" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/rabbit.pid" RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$base/advanced.config"
}

ctl() {
    local n=$1
    shift
    ip netns exec "$ns" env $(node_env "$n") rabbitmqctl -n "rabbit$n@localhost" "$@"
}

start_node() {
    local n=$1 dir="$base/rabbit$1"
    mkdir -p "$dir/mnesia" "$dir/log"
    # Each node's own management listener: the nodes share one namespace, not one address.
    {
        cat "$base/rabbitmq.conf"
        echo "management.tcp.ip = 192.0.2.2$n"
        echo "management.tcp.port = 15672"
        [ -d "$base/tls" ] && echo "listeners.ssl.default = 192.0.2.2$n:5671"
    } > "$dir/rabbitmq.conf"
    chown -R rabbitmq:rabbitmq "$base"
    ip netns exec "$ns" env $(node_env "$n") setsid rabbitmq-server > "$dir/server.out" 2>&1 < /dev/null &
    # `wait` follows the pid file the node writes, then waits for the app to boot.
    if ! ctl "$n" wait "$dir/rabbit.pid" --timeout 120 > /dev/null 2>&1; then
        echo "rabbitmq-cluster: rabbit$n did not start; its output:" >&2
        tail -20 "$dir/server.out" >&2
        exit 1
    fi
}

start() {
    mkdir -p "$base"
    # Guests may log in from other hosts (through the proxies).
    cat > "$base/rabbitmq.conf" <<CONF
loopback_users = none
log.console = false
log.file.level = info
CONF
    if [ -n "${RABBIT_TLS_DIR:-}" ]; then
        # Copied so that the rabbitmq user can read them wherever the originals are.
        mkdir -p "$base/tls"
        for file in ca.pem server.pem key.pem; do
            cp "$RABBIT_TLS_DIR/$file" "$base/tls/$file"
        done
        chmod 0600 "$base/tls/key.pem"
        cat >> "$base/rabbitmq.conf" <<CONF
ssl_options.cacertfile = $base/tls/ca.pem
ssl_options.certfile = $base/tls/server.pem
ssl_options.keyfile = $base/tls/key.pem
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
CONF
    fi
    echo '[rabbitmq_management].' > "$base/enabled_plugins"
    echo '[].' > "$base/advanced.config"
    start_node 1
    for n in 2 3; do
        start_node "$n"
        ctl "$n" stop_app > /dev/null
        ctl "$n" join_cluster rabbit1@localhost > /dev/null
        ctl "$n" start_app > /dev/null
    done
    ctl 1 cluster_status --formatter json > "$base/cluster.json"
}

stop_node() {
    ctl "$1" shutdown > /dev/null 2>&1 || true
}

stop() {
    for n in 3 2 1; do stop_node "$n"; done
    # Only this lab's epmd: `pkill` inside `ip netns exec` would see every process on the
    # machine, and another lab's cluster may be running beside this one.
    local pid
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = epmd ] && kill "$pid" 2>/dev/null
    done
    true
    rm -rf "$base"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    stop-node) stop_node "${2:?node number}" ;;
    start-node) start_node "${2:?node number}" ;;
    status) ctl 1 cluster_status ;;
    ctl) shift; ctl "${1:?node number}" "${@:2}" ;;
    *) echo "usage: scripts/rabbitmq-cluster.sh start|stop|stop-node N|start-node N|status|ctl N ARGS..." >&2; exit 2 ;;
esac
