//! keepalived's `virtual_ipaddress_excluded` in a mixed pair: VIPs a VRRPv2 instance adds and
//! removes with its others, an IPv6 one among them, but never lists in its adverts. keepalived
//! drops an advert whose address list differs from its own (and so does vrrpd), so a pair
//! agrees only if both leave the same addresses out. Checked with `ip a` on both hosts. Needs
//! root; without it every test says it was skipped.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::io::Read;
use std::net::Ipv4Addr;
use std::time::Duration;

use integration::lab::{wait_until, Daemon, Lab, VIP, VIP6};
use integration::netns_available;
use integration::scenario::{keepalived_config, HostConfig, Instance, TAKEOVER};

/// An IPv4 VIP excluded too, beside the IPv6 one.
const EXCLUDED4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 160);

fn keepalived(priority: u8, state: &str) -> String {
    let conf = keepalived_config("a", priority, state).replace(
        "        192.0.2.100/24\n    }\n",
        &format!("        192.0.2.100/24\n    }}\n    virtual_ipaddress_excluded {{\n        {VIP6}/64\n        {EXCLUDED4}/24\n    }}\n"),
    );
    assert!(conf.contains("virtual_ipaddress_excluded"), "{conf}");
    conf
}

fn vrrpd(lab: &Lab, priority: u8) -> Daemon {
    let excluded = format!("virtual_ipaddress_excluded = [\"{VIP6}/64\", \"{EXCLUDED4}/24\"]");
    HostConfig::new("b").instance(Instance::vi1(priority).with(excluded)).start(lab, &[])
}

fn holds_all(lab: &Lab, host: &str) -> bool {
    lab.holders(VIP) == [host] && lab.holders(EXCLUDED4) == [host] && lab.holders6(VIP6) == [host]
}

fn holds_none(lab: &Lab, host: &str) -> bool {
    let held = |holders: Vec<&str>| holders.contains(&host);
    !held(lab.holders(VIP)) && !held(lab.holders(EXCLUDED4)) && !held(lab.holders6(VIP6))
}

/// Both directions: vrrpd stays BACKUP under keepalived's adverts, takes every VIP when
/// keepalived stops, and keepalived (lower now) stays BACKUP under vrrpd's. Before vrrpd knew
/// the list, an import dropped it; had vrrpd listed the excluded VIPs in its adverts, or
/// counted them when comparing keepalived's, each side would drop the other's adverts and
/// both would be MASTER.
#[test]
fn keepalived_and_vrrpd_leave_the_same_vips_out_of_their_adverts_and_move_them_all() {
    if !netns_available("keepalived_and_vrrpd_leave_the_same_vips_out_of_their_adverts_and_move_them_all", &["ip", "keepalived"])
    {
        return;
    }
    let lab = Lab::up("vipexcl");
    let mut ka = Daemon::keepalived(&lab, "a", &keepalived(101, "MASTER"));
    let b = vrrpd(&lab, 100);
    // Both start at once: keepalived's `state MASTER` waits a Master_Down_Interval, so vrrpd
    // may be MASTER for a moment before keepalived's higher priority sends it back.
    assert!(wait_until(TAKEOVER, || holds_all(&lab, "a")), "keepalived holds every VIP\n{}\n{}", ka.log(), b.log());
    let last_state =
        |log: String| log.lines().rev().find_map(|l| l.split_whitespace().find(|w| w.starts_with("to="))).map(str::to_owned);
    assert!(wait_until(TAKEOVER, || last_state(b.log()).as_deref() == Some("to=BACKUP")), "{}", b.log());
    let masters = b.log().matches("to=MASTER").count();
    // Four advert intervals later vrrpd is still BACKUP: it accepts keepalived's adverts (a
    // backup dropping them would take over after its Master_Down_Interval, 3.6 s).
    std::thread::sleep(Duration::from_secs(4));
    assert!(holds_none(&lab, "b"), "vrrpd took a VIP while keepalived was MASTER:\n{}", b.log());
    assert_eq!(b.log().matches("to=MASTER").count(), masters, "{}", b.log());

    // keepalived stops (priority 0): vrrpd takes every VIP, the excluded ones included.
    ka.stop();
    assert!(wait_until(TAKEOVER, || holds_all(&lab, "b")), "vrrpd holds every VIP\n{}", b.log());

    // keepalived back, lower: it stays BACKUP under vrrpd's adverts. (Its log file goes on
    // from the first run: only what comes after counts.)
    let count = |log: String, what: &str| log.matches(what).count();
    let (backups, masters) = (count(ka.log(), "Entering BACKUP STATE"), count(ka.log(), "Entering MASTER STATE"));
    drop(ka);
    let ka = Daemon::keepalived(&lab, "a", &keepalived(99, "BACKUP"));
    assert!(wait_until(TAKEOVER, || count(ka.log(), "Entering BACKUP STATE") > backups), "{}", ka.log());
    std::thread::sleep(Duration::from_secs(4));
    assert!(holds_all(&lab, "b") && holds_none(&lab, "a"), "keepalived took over:\n{}", ka.log());
    assert_eq!(count(ka.log(), "Entering MASTER STATE"), masters, "{}", ka.log());
}

/// A reload that adds an IPv6 VIP to a VRRPv2 master's excluded list: the port, opened without
/// IPv6 (there was no IPv6 VIP), is opened again, and the new VIP is added and announced with
/// unsolicited neighbour advertisements, seen on the client; the instance stays MASTER.
#[test]
fn a_reload_adds_an_excluded_ipv6_vip_to_a_master_and_announces_it() {
    if !netns_available("a_reload_adds_an_excluded_ipv6_vip_to_a_master_and_announces_it", &["ip", "tcpdump", "timeout"]) {
        return;
    }
    let lab = Lab::up("vipexrl");
    let a = HostConfig::new("a").instance(Instance::vi1(101)).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    // Neighbour advertisements (ICMPv6 type 136) for the VIP, seen on the client.
    let mut capture = lab.capture("client", 10, &["icmp6 and ip6[40] == 136"]);
    std::thread::sleep(Duration::from_secs(1));
    HostConfig::new("a").instance(Instance::vi1(101).with(format!("virtual_ipaddress_excluded = [\"{VIP6}/64\"]"))).write(&lab);
    a.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(a.wait_for_log("configuration reloaded", Duration::from_secs(5)), "{}", a.log());
    lab.expect_holder6(VIP6, "a", Duration::from_secs(5), &[&a]);
    let _ = capture.wait();
    let mut seen = String::new();
    capture.stdout.take().unwrap().read_to_string(&mut seen).unwrap();
    println!("neighbour advertisements on the client:\n{seen}");
    assert!(seen.contains(&format!("tgt is {VIP6}")), "no NA for {VIP6}:\n{seen}\n{}", a.log());
    assert!(!a.log().contains("not announced"), "{}", a.log());
    assert_eq!(a.log().matches("instance=VI_1 vrid=51 from=").count(), 1, "VI_1 changed state on reload:\n{}", a.log());
}
