#!/usr/bin/env bash
# Runs every test of the project, from a fresh machine: installs the Debian packages the tests
# need, builds the workspace once, and runs all tests (unit, RFC scenarios, CLI, and the
# network-namespace tests against real peers, which need root).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-test-deps.sh

cargo build --workspace --all-targets --locked

if [ "$(id -u)" -eq 0 ]; then
    # As root nothing excuses a namespace test from running.
    export VRRPD_REQUIRE_NETNS=1
fi
cargo test --workspace --locked
