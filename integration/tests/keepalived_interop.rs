//! A mixed pair: one proxy host runs vrrpd, the other keepalived 2.2.7 (Debian's), as during a
//! migration one host at a time. Both role assignments elect one master and fail over both
//! ways. Needs root and keepalived; without them the tests say they were skipped.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::time::Duration;

use integration::lab::{Daemon, Lab, VIP};
use integration::netns_available;
use integration::scenario::{keepalived_config, HostConfig, TAKEOVER};

const PROGRAMS: &[&str] = &["ip", "keepalived"];

#[test]
fn keepalived_master_with_vrrpd_backup() {
    if !netns_available("keepalived_master_with_vrrpd_backup", PROGRAMS) {
        return;
    }
    let lab = Lab::up("kamaster");
    let mut keepalived = Daemon::keepalived(&lab, "a", &keepalived_config("a", 101, "MASTER"));
    let vrrpd = HostConfig::vi1("b", 100).start(&lab, &[]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&keepalived, &vrrpd]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.holders(VIP), ["a"], "vrrpd accepts keepalived's adverts as its master's");
    assert!(!vrrpd.log().contains("advert dropped"), "{}", vrrpd.log());

    // keepalived stops: its priority-0 advert hands over within vrrpd's Skew_Time.
    keepalived.stop();
    lab.expect_holder(VIP, "b", Duration::from_secs(3), &[&keepalived, &vrrpd]);

    // keepalived returns and preempts vrrpd, which steps down on its higher priority.
    let keepalived = Daemon::keepalived(&lab, "a", &keepalived_config("a", 101, "BACKUP"));
    lab.expect_holder(VIP, "a", TAKEOVER, &[&keepalived, &vrrpd]);
    assert!(vrrpd.log().contains("from=MASTER to=BACKUP"), "{}", vrrpd.log());
}

#[test]
fn vrrpd_master_with_keepalived_backup() {
    if !netns_available("vrrpd_master_with_keepalived_backup", PROGRAMS) {
        return;
    }
    let lab = Lab::up("vmaster");
    let mut vrrpd = HostConfig::vi1("a", 101).start(&lab, &["--state", "MASTER"]);
    let keepalived = Daemon::keepalived(&lab, "b", &keepalived_config("b", 100, "BACKUP"));
    lab.expect_holder(VIP, "a", TAKEOVER, &[&vrrpd, &keepalived]);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(lab.holders(VIP), ["a"], "keepalived accepts vrrpd's adverts");
    assert!(keepalived.log().contains("Entering BACKUP STATE"), "{}", keepalived.log());
    assert!(!keepalived.log().contains("Entering MASTER STATE"), "{}", keepalived.log());

    // vrrpd stops gracefully: keepalived takes over after its Skew_Time.
    assert_eq!(vrrpd.stop(), Some(0));
    lab.expect_holder(VIP, "b", Duration::from_secs(3), &[&vrrpd, &keepalived]);

    // vrrpd returns and preempts keepalived.
    let vrrpd = HostConfig::vi1("a", 101).start(&lab, &[]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&vrrpd, &keepalived]);
    assert!(keepalived.wait_for_log("Entering BACKUP STATE", Duration::from_secs(2)));

    // And the other way: vrrpd's host is cut off; keepalived takes over after its
    // Master_Down_Interval.
    lab.cut_link("a");
    lab.expect_holder(VIP, "b", TAKEOVER, &[&vrrpd, &keepalived]);
}

#[test]
fn a_password_mismatch_with_keepalived_is_reported_not_obeyed() {
    if !netns_available("a_password_mismatch_with_keepalived_is_reported_not_obeyed", PROGRAMS) {
        return;
    }
    let lab = Lab::up("kapass");
    let keepalived = Daemon::keepalived(&lab, "a", &keepalived_config("a", 101, "MASTER").replace("s3cret", "other"));
    let vrrpd = HostConfig::vi1("b", 100).start(&lab, &[]);
    // vrrpd cannot accept keepalived's adverts: it says why (and, like keepalived, takes the
    // VIP itself: a mismatched pair is two masters, which is what the log line is for).
    assert!(vrrpd.wait_for_log("reason=auth_password", TAKEOVER), "{}", vrrpd.log());
    drop(keepalived);
}
