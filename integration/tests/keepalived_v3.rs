//! VRRPv3 with 100 ms adverts in a mixed pair: vrrpd on one proxy host, keepalived 2.2.7 with
//! `vrrp_version 3` / `advert_int 0.1` on the other, both role assignments. A master's link is
//! cut and the backup must hold the VIP within its Master_Down_Interval (3 x 100 ms + Skew_Time,
//! 360.9 ms at priority 100) + 100 ms, whichever program is the backup. Needs root and
//! keepalived; without them the tests say they were skipped.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::time::{Duration, Instant};

use integration::lab::{Daemon, Lab, Probe, VIP};
use integration::netns_available;
use integration::scenario::{keepalived_v3_config, HostConfig, Instance, TAKEOVER};

const PROGRAMS: &[&str] = &["ip", "keepalived", "ping", "tcpdump"];

/// Master_Down_Interval of the backup (priority 100) with 100 ms adverts: 3 x 100 ms +
/// 156/256 x 100 ms.
const MDI_B: Duration = Duration::from_nanos(360_937_500);
/// What the issue allows a link cut to cost: Master_Down_Interval + 100 ms.
const HANDOVER_BOUND: Duration = Duration::from_nanos(460_937_500);

fn vrrpd_v3(host: &str, priority: u8) -> HostConfig {
    HostConfig::new(host).instance(Instance::vi1(priority).v3("100ms"))
}

/// Cuts `from`'s link right after an advert reached `to`, and returns how long until `to`
/// holds the VIP (polled every 5 ms) and what a client pinging the VIP every 10 ms saw.
fn cut_and_time_handover(lab: &Lab, from: &str, to: &str, context: &[&Daemon]) -> (Duration, Duration) {
    let probe = Probe::start(lab, VIP);
    std::thread::sleep(Duration::from_millis(300));
    lab.wait_for_advert(to);
    let t0 = Instant::now();
    lab.cut_link(from);
    let mut moved = None;
    while t0.elapsed() < Duration::from_secs(5) {
        if lab.addresses(to).contains(&VIP) {
            moved = Some(t0.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let report = probe.stop();
    let logs: Vec<String> = context.iter().map(|d| format!("--- {}:\n{}", d.name, d.log())).collect();
    let moved = moved.unwrap_or_else(|| panic!("{to} never took the VIP\n{}", logs.join("\n")));
    println!(
        "link cut on {from}: {to} holds the VIP after {:.3} s (MDI {:.3} s), client outage {:.3} s",
        moved.as_secs_f64(),
        MDI_B.as_secs_f64(),
        report.outage.as_secs_f64()
    );
    (moved, report.outage)
}

#[test]
fn keepalived_v3_master_with_vrrpd_backup_at_100ms() {
    if !netns_available("keepalived_v3_master_with_vrrpd_backup_at_100ms", PROGRAMS) {
        return;
    }
    let lab = Lab::up("ka3master");
    let keepalived = Daemon::keepalived(&lab, "a", &keepalived_v3_config("a", 101, "MASTER", "0.1"));
    // keepalived takes a few hundred ms to start: vrrpd (Master_Down_Interval 361 ms) would
    // win the first election, then yield. Started once keepalived is master, it never runs.
    lab.expect_holder(VIP, "a", TAKEOVER, &[&keepalived]);
    let vrrpd = vrrpd_v3("b", 100).start(&lab, &[]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.holders(VIP), ["a"], "vrrpd follows keepalived's 100 ms VRRPv3 adverts");
    assert!(!vrrpd.log().contains("advert dropped"), "{}", vrrpd.log());
    assert!(!vrrpd.log().contains("to=MASTER"), "vrrpd never took over between adverts: {}", vrrpd.log());

    let (moved, _) = cut_and_time_handover(&lab, "a", "b", &[&keepalived, &vrrpd]);
    assert!(moved <= HANDOVER_BOUND, "vrrpd took {moved:?}, more than MDI + 100 ms");

    // keepalived's link returns: it preempts vrrpd with its higher priority.
    lab.heal_link("a");
    lab.expect_holder(VIP, "a", TAKEOVER, &[&keepalived, &vrrpd]);
    assert!(vrrpd.wait_for_log("from=MASTER to=BACKUP", Duration::from_secs(2)), "{}", vrrpd.log());
}

#[test]
fn vrrpd_v3_master_with_keepalived_backup_at_100ms() {
    if !netns_available("vrrpd_v3_master_with_keepalived_backup_at_100ms", PROGRAMS) {
        return;
    }
    let lab = Lab::up("v3master");
    let mut vrrpd = vrrpd_v3("a", 101).start(&lab, &["--state", "MASTER"]);
    let keepalived = Daemon::keepalived(&lab, "b", &keepalived_v3_config("b", 100, "BACKUP", "0.1"));
    lab.expect_holder(VIP, "a", TAKEOVER, &[&vrrpd, &keepalived]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.holders(VIP), ["a"], "keepalived accepts vrrpd's VRRPv3 adverts (checksum with pseudo-header)");
    assert!(keepalived.log().contains("Entering BACKUP STATE"), "{}", keepalived.log());
    assert!(!keepalived.log().contains("Entering MASTER STATE"), "{}", keepalived.log());

    let (moved, _) = cut_and_time_handover(&lab, "a", "b", &[&vrrpd, &keepalived]);
    assert!(moved <= HANDOVER_BOUND, "keepalived took {moved:?}, more than MDI + 100 ms");

    // vrrpd's link returns: out of FAULT it preempts keepalived.
    lab.heal_link("a");
    lab.expect_holder(VIP, "a", TAKEOVER, &[&vrrpd, &keepalived]);

    // A graceful stop: keepalived takes over after its Skew_Time (61 ms).
    let t0 = Instant::now();
    assert_eq!(vrrpd.stop(), Some(0));
    lab.expect_holder(VIP, "b", Duration::from_secs(2), &[&vrrpd, &keepalived]);
    println!("graceful stop: keepalived holds the VIP {:.3} s after SIGTERM", t0.elapsed().as_secs_f64());
}
