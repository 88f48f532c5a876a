#!/usr/bin/env bash
# Installs the Debian packages the test suite and the lab need, skipping what is present.
# Needs root (it runs apt-get); without root it lists what is missing and exits 0, and the
# namespace tests then say they were skipped.
set -euo pipefail

packages=(
    iproute2        # ip netns, veth, bridge
    keepalived      # the peer vrrpd must interoperate with
    tcpdump         # wire captures
    iputils-ping    # probes in the lab
    procps          # pkill, ps, sysctl (IPv6 in the lab)
    python3         # pcap parsing in capture-keepalived.sh
    rabbitmq-server # the brokers of the end-to-end tests (3.10 in Debian 12)
    chromium        # the stats page as a person sees it (headless)
    systemd         # systemd-analyze verify for the unit
    iperf3          # benchmark: throughput
    haproxy         # benchmark: the proxy vrrpd is compared with
    util-linux      # taskset, prlimit, setpriv
    prometheus      # promtool: /metrics parsed by Prometheus's own parser
    openssl         # a CA and broker certificates for the AMQPS tests
    curl            # the management UI through a proxy
)

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: not root; missing packages: ${missing[*]} (namespace tests will be skipped)" >&2
    exit 0
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# Do not let package scripts start daemons (keepalived) on this machine.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
