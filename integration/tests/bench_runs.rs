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

    // The ceiling table (same ports, so not in a test of its own running beside this one):
    // every target measured, uring-copy included, each with a rate.
    let output = run_script("bench.sh", &["--ceiling", "--quick"]);
    for row in ["connections/s (64 B each way)", "messages/s, 10 conns, 64 B"] {
        let line = output.lines().find(|line| line.starts_with(row)).unwrap_or_else(|| panic!("missing {row:?} in:\n{output}"));
        let rates: Vec<f64> = line[row.len()..].split_whitespace().take(4).map(|v| v.parse().unwrap_or(0.0)).collect();
        // Where the kernel has io_uring turned off, that column alone is "-", and said why.
        let measured = if output.contains("io_uring unavailable") { 3 } else { 4 };
        assert!(rates.len() == 4 && rates[..measured].iter().all(|&r| r > 0.0), "a target relayed nothing: {line:?}\n{output}");
    }
    eprintln!("{output}");
}
