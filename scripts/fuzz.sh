#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) and prints executions and time per target.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable toolchain use them.
#
#   cargo install cargo-fuzz        # once
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Seeds (real captures and configurations) are in fuzz/seeds/TARGET; the corpus grows in
# fuzz/corpus/TARGET; a crash is saved in fuzz/artifacts/TARGET and fails the script.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(vrrp_decode vrrp_v3_decode config_load import_keepalived import_haproxy amqp_start proxy_header)

cargo fuzz build -O >/dev/null 2>&1 || cargo fuzz build -O
printf '%-18s %14s %10s %8s\n' target executions seconds result
status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- -max_total_time="$seconds" -max_len=65536 >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        status=1
    fi
    runs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | awk '{print $2, $5}' || true)
    [ -n "$runs" ] || runs="- -"
    printf '%-18s %14s %10s %8s\n' "$target" "${runs% *}" "${runs#* }" "$result"
    [ "$result" = ok ] || tail -30 "$log"
    rm -f "$log"
done
exit $status
