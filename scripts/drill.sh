#!/usr/bin/env bash
# Failover drill: builds vrrpd and plays master link cut, master kill -9, graceful stop,
# preemption back, track script failure and an authentication mismatch on a namespace lab
# (scripts/lab.sh), printing each scenario's client-visible outage. Needs root.
#
#   scripts/drill.sh                          # every scenario
#   scripts/drill.sh --scenario graceful-stop # one (repeatable)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
cargo build -q --workspace --bins
exec target/debug/drill "$@"
