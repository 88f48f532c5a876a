#!/usr/bin/env bash
# Installs vrrpd on a Debian host: the binary, a configuration (never overwriting one that is
# there), the systemd unit, and the vrrpd system user the unit runs as.
#
#   sudo scripts/install.sh [--config conf/proxy-a.toml] [--binary PATH] [--root DIR]
#
# Without --binary it builds the release binary first. --root DIR installs under DIR (for
# packaging and tests) and leaves users and systemd alone. Then, on the host:
#   systemctl enable --now vrrpd && ip -br a && curl http://<host>:8100/
set -euo pipefail
cd "$(dirname "$0")/.."

config=conf/proxy-a.toml
binary=
root=
while [ $# -gt 0 ]; do
    case "$1" in
        --config) config=$2; shift 2 ;;
        --binary) binary=$2; shift 2 ;;
        --root) root=$2; shift 2 ;;
        *) echo "usage: scripts/install.sh [--config FILE] [--binary PATH] [--root DIR]" >&2; exit 2 ;;
    esac
done

if [ -z "$binary" ]; then
    command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
    cargo build --release -p vrrpd
    binary=target/release/vrrpd
fi
"$binary" check --config "$config" >/dev/null || { echo "install: $config does not pass vrrpd check" >&2; exit 1; }

if [ -z "$root" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "install: run as root (or with --root DIR)" >&2; exit 1; }
    # vrrpd's own user, and the user its scripts run as (script_user), when it does not exist.
    script_user=$(sed -n 's/^[[:space:]]*script_user[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$config" | head -n 1)
    for account in vrrpd $script_user; do
        if ! getent passwd "$account" >/dev/null; then
            useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$account"
        fi
    done
fi
group=$(getent group vrrpd >/dev/null && echo vrrpd || echo root)

install -d -m 0755 "$root/usr/local/sbin" "$root/etc/systemd/system"
install -m 0755 "$binary" "$root/usr/local/sbin/vrrpd"
install -d -m 0750 -g "$group" "$root/etc/vrrpd"
if [ -e "$root/etc/vrrpd/vrrpd.toml" ]; then
    echo "install: keeping the existing $root/etc/vrrpd/vrrpd.toml"
else
    # Readable by the service user (reloads re-read it), not by everyone: it holds passwords.
    install -m 0640 -g "$group" "$config" "$root/etc/vrrpd/vrrpd.toml"
fi
install -m 0644 conf/vrrpd.service "$root/etc/systemd/system/vrrpd.service"

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
cat <<TXT
installed vrrpd:
  $root/usr/local/sbin/vrrpd
  $root/etc/vrrpd/vrrpd.toml      (edit: interface, VIPs, priority, servers)
  $root/etc/systemd/system/vrrpd.service
next: vrrpd check --config /etc/vrrpd/vrrpd.toml && systemctl enable --now vrrpd
TXT
