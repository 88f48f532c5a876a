//! Hostile and broken VRRP traffic against a running pair (vrrpd on both proxy hosts, adverts
//! injected from the client namespace by `vrrp-inject`): none of it changes state, each packet
//! is counted by reason on the stats page, the log stays bounded, and a flood neither starves
//! the protocol nor burns unbounded CPU. Needs root.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use integration::lab::{vrrpd_binary, wait_until, Lab, VIP};
use integration::netns::http_get;
use integration::netns_available;
use integration::scenario::{HostConfig, Pair, Stats};

fn stats(lab: &Lab, host: &str) -> serde_json::Value {
    let address: SocketAddr = format!("{host}:8100").parse().unwrap();
    serde_json::from_str(&http_get(&lab.ns("client"), address, "/stats.json", None).unwrap().body).unwrap()
}

fn inject(lab: &Lab, args: &[&str]) {
    let tool = vrrpd_binary().with_file_name("vrrp-inject");
    let mut command = vec![tool.to_str().unwrap()];
    command.extend_from_slice(args);
    let out = lab.exec("client", &command);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: nix::unistd::Pid) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 1000 / 100)
}

#[test]
fn hostile_adverts_change_nothing_and_are_counted_by_reason() {
    if !netns_available("hostile_adverts_change_nothing_and_are_counted_by_reason", &["ip"]) {
        return;
    }
    let lab = Lab::up("hostile");
    let (a, b) = Pair::with(|host, priority| HostConfig::vi1(host, priority).stats(Stats::on(8100))).start(&lab);

    // (what is wrong, inject arguments, reason counted, counted by the instance or the interface)
    let cases: [(&str, &[&str], &str, bool); 9] = [
        ("TTL 254", &["--password", "s3cret", "--ttl", "254"], "ttl", true),
        ("bad checksum", &["--password", "s3cret", "--bad-checksum"], "checksum", false),
        ("version 4", &["--password", "s3cret", "--version", "4"], "version", false),
        ("type 2", &["--password", "s3cret", "--type", "2"], "type", false),
        ("truncated", &["--password", "s3cret", "--truncate", "12"], "too_short", false),
        ("2 addresses claimed, 1 sent", &["--password", "s3cret", "--claim-count", "2"], "length", false),
        ("wrong password", &["--password", "guess"], "auth_password", true),
        ("wrong VRID", &["--password", "s3cret", "--vrid", "52"], "unknown_vrid", false),
        ("advert_int 2", &["--password", "s3cret", "--advert-int", "2"], "advert_interval", true),
    ];
    for (what, args, _, _) in &cases {
        let mut all = vec!["--priority", "254", "--count", "10", "--interval-ms", "5"];
        all.extend_from_slice(args);
        inject(&lab, &all);
        assert_eq!(lab.holders(VIP), ["a"], "{what} moved the VIP");
    }
    // The page shows counts as the driver publishes them (at most every 200 ms, and at its
    // next advert or tick after a burst): wait for them rather than a fixed time.
    for host in ["192.0.2.11", "192.0.2.12"] {
        let counted = |json: &serde_json::Value, reason: &str, by_instance: bool| {
            let counted = if by_instance {
                json["instances"][0]["dropped"][reason].as_u64()
            } else {
                json["interface_drops"]["eth0"][reason].as_u64()
            };
            counted.unwrap_or(0)
        };
        let all_counted = |json: &serde_json::Value| cases.iter().all(|(_, _, r, i)| counted(json, r, *i) >= 10);
        wait_until(Duration::from_secs(5), || all_counted(&stats(&lab, host)));
        let json = stats(&lab, host);
        for (what, _, reason, by_instance) in &cases {
            assert!(counted(&json, reason, *by_instance) >= 10, "{host}: {what} not counted as {reason}: {json}");
        }
    }
    assert!(!b.log().contains("to=MASTER"), "B never took over");
    for log in [a.log(), b.log()] {
        assert!(log.matches("advert dropped").count() <= cases.len(), "one line per reason:\n{log}");
    }

    // A flood of priority-254 adverts with the wrong password, as fast as the sender can go.
    let before = cpu_time(a.pid().unwrap());
    let started = Instant::now();
    inject(&lab, &["--priority", "254", "--password", "guess", "--count", "200000", "--interval-ms", "0"]);
    let elapsed = started.elapsed();
    let used = cpu_time(a.pid().unwrap()) - before;
    let share = used.as_secs_f64() / elapsed.as_secs_f64();
    eprintln!("flood: 200000 adverts in {elapsed:?}; vrrpd on A used {used:?} of CPU ({:.0}% of one core)", share * 100.0);
    std::thread::sleep(Duration::from_secs(2));
    // The protocol went on: A's adverts kept B a backup, the VIP stayed put.
    assert_eq!(lab.holders(VIP), ["a"]);
    assert!(!b.log().contains("to=MASTER"), "{}", b.log());
    let dropped = stats(&lab, "192.0.2.11")["instances"][0]["dropped"]["auth_password"].as_u64().unwrap();
    assert!(dropped > 100_000, "the flood was received and counted: {dropped}");
    assert!(a.log().matches("reason=auth_password").count() <= 3, "the flood left a handful of log lines:\n{}", a.log());
    // Bounded: a single core at most, whatever the sender manages.
    assert!(share < 1.0, "{share}");
    // Neither our password nor the intruder's guess reaches a log line.
    for log in [a.log(), b.log()] {
        assert!(!log.contains("s3cret") && !log.contains("guess"), "{log}");
    }
}
