//! The benchmark script keeps working (its full run is for people and the README; here the
//! tiny setting). Numbers are printed, never asserted: these machines are noisy.

use integration::{netns_available, run_script};

#[test]
fn bench_runs_on_a_tiny_setting_and_prints_every_row() {
    if !netns_available("bench_runs_on_a_tiny_setting_and_prints_every_row", &["ip", "iperf3", "haproxy", "keepalived"]) {
        return;
    }
    let output = run_script("bench.sh", &["--quick"]);
    for row in [
        "throughput, 1 stream(s)",
        "throughput, 8 stream(s)",
        "connections/s",
        "latency p50",
        "latency p99",
        "messages/s, ",
        "proxy CPU per message",
        "round trip p99",
        "memory per idle connection",
        "idle CPU over",
        "failover: vrrpd on both hosts",
        "failover: keepalived 2.2.7 on both hosts",
        "graceful stop",
    ] {
        assert!(output.contains(row), "missing {row:?} in:\n{output}");
    }
    eprintln!("{output}");
}
