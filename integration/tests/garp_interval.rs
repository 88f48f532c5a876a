//! keepalived's `garp_interval` on the wire: the gratuitous ARPs of a new master, captured with
//! tcpdump on the other host of a namespace lab, leave at least the interval apart.
//! Needs root; without it every test says it was skipped.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::time::Duration;

use integration::lab::{Daemon, Lab, VIP};
use integration::netns_available;
use integration::scenario::{HostConfig, Instance, TAKEOVER};

const PROGRAMS: &[&str] = &["ip", "tcpdump", "timeout"];

/// The capture times (seconds) of the first `count` ARPs on `host`'s eth0, captured from now.
fn capture_arps(lab: &Lab, host: &str, count: usize) -> std::process::Child {
    lab.capture(host, 15, &["-tt", "-c", &count.to_string(), "arp"])
}

fn times(output: &[u8]) -> Vec<f64> {
    String::from_utf8_lossy(output).lines().filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect()
}

#[test]
fn garp_interval_spaces_a_new_masters_gratuitous_arps() {
    if !netns_available("garp_interval_spaces_a_new_masters_gratuitous_arps", PROGRAMS) {
        return;
    }
    let lab = Lab::up("garpint");
    let tcpdump = capture_arps(&lab, "b", 4);
    // Let tcpdump open its socket before the first ARP leaves.
    std::thread::sleep(Duration::from_millis(700));
    let a = HostConfig::new("a")
        .global("garp_interval = \"300ms\"")
        .instance(Instance::vi1(101).with("garp_master_repeat = 4").with("garp_master_delay = \"0s\""))
        .start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let out = tcpdump.wait_with_output().unwrap();
    let times = times(&out.stdout);
    assert_eq!(times.len(), 4, "four gratuitous ARPs:\n{}\n{}", String::from_utf8_lossy(&out.stdout), a.log());
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    println!("gaps between gratuitous ARPs with garp_interval 300ms: {gaps:?}");
    assert!(gaps.iter().all(|g| *g >= 0.28 && *g < 1.5), "{gaps:?}");
}

#[test]
fn without_garp_interval_a_burst_leaves_at_once() {
    if !netns_available("without_garp_interval_a_burst_leaves_at_once", PROGRAMS) {
        return;
    }
    let lab = Lab::up("garpnone");
    let tcpdump = capture_arps(&lab, "b", 4);
    std::thread::sleep(Duration::from_millis(700));
    let a = HostConfig::new("a")
        .instance(Instance::vi1(101).with("garp_master_repeat = 4").with("garp_master_delay = \"0s\""))
        .start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let times = times(&tcpdump.wait_with_output().unwrap().stdout);
    assert_eq!(times.len(), 4);
    let spread = times[3] - times[0];
    println!("a burst of 4 without garp_interval spans {spread:.4} s");
    assert!(spread < 0.1, "{spread}");
}

/// A master that gives its VIP up stops claiming it at once: the gratuitous ARPs still queued
/// behind garp_interval are dropped (keepalived drops its pending ARPs too), or this host would
/// pull the clients' ARP entries back from the new master for seconds.
#[test]
fn a_master_that_resigns_sends_none_of_its_queued_gratuitous_arps() {
    if !netns_available("a_master_that_resigns_sends_none_of_its_queued_gratuitous_arps", PROGRAMS) {
        return;
    }
    let lab = Lab::up("garpquit");
    let tcpdump = lab.capture("b", 6, &["-tt", "arp"]);
    std::thread::sleep(Duration::from_millis(700));
    // Twenty ARPs 300 ms apart: six seconds of them, were they all sent.
    let a = HostConfig::new("a")
        .global("garp_interval = \"300ms\"")
        .instance(Instance::vi1(101).with("garp_master_repeat = 20").with("garp_master_delay = \"0s\""))
        .start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    std::thread::sleep(Duration::from_millis(900));
    let out = Daemon::ctl(&lab, "a", &["resign", "VI_1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resigned = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let out = tcpdump.wait_with_output().unwrap();
    let arps = String::from_utf8_lossy(&out.stdout);
    let times: Vec<f64> =
        arps.lines().filter(|l| l.contains(&VIP.to_string())).filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect();
    assert!(times.len() >= 2, "the ARPs before the resignation were seen:\n{arps}\n{}", a.log());
    let after: Vec<f64> = times.iter().map(|t| t - resigned).filter(|d| *d > 0.1).collect();
    println!("{} gratuitous ARPs before the resignation, {} after it: {after:.3?}", times.len() - after.len(), after.len());
    assert!(after.is_empty(), "ARPs for the VIP after it was given up (s after): {after:.3?}\n{}", a.log());
}
