//! keepalived's `virtual_ipaddress` placement words (`dev`, `label`, `scope`) on real hosts: a
//! VIP on a second interface of each proxy host, added there with its label and scope,
//! announced from that interface's MAC, moved by a failover, and cleaned after a kill -9 while
//! an address vrrpd did not configure on that interface stays, its gratuitous ARPs spaced by
//! `garp_interval`. Checked with `ip -o addr` and tcpdump on the client. Needs root; without it
//! every test says it was skipped.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::process::{Child, Command};
use std::time::Duration;

use integration::lab::{wait_until, Daemon, Lab, VIP};
use integration::netns_available;
use integration::scenario::{keepalived_config, HostConfig, Instance, TAKEOVER};

const PROGRAMS: &[&str] = &["ip", "tcpdump", "timeout"];

/// The VIP the tests place on eth1, with a label and a scope.
const SIDE_VIP: &str = "192.0.2.150";
/// Its entry as an operator coming from keepalived writes it
/// (`192.0.2.150/24 dev eth1 label eth1:amqp scope site`), and a host-scope one on lo.
const SIDE_ENTRY: &str = r#"{ address = "192.0.2.150/24", dev = "eth1", label = "eth1:amqp", scope = "site" }"#;
const LO_ENTRY: &str = r#"{ address = "192.0.2.151/32", dev = "lo", scope = "host" }"#;

fn eth1_mac(host: &str) -> &'static str {
    match host {
        "a" => "02:00:00:00:01:11",
        _ => "02:00:00:00:01:12",
    }
}

/// A second interface `eth1` on `host`, a veth whose other end is a port of the lab's bridge
/// (the same network as eth0), with its own MAC and no address.
fn add_eth1(lab: &Lab, host: &str) {
    let sw = lab.ns("sw");
    let port = format!("port-{host}1");
    let run = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["-n", &lab.ns(host), "link", "add", "eth1", "type", "veth", "peer", "name", &port, "netns", &sw]);
    run(&["-n", &sw, "link", "set", "dev", &port, "master", "br0", "up"]);
    run(&["-n", &lab.ns(host), "link", "set", "eth1", "address", eth1_mac(host), "up"]);
    assert!(wait_until(Duration::from_secs(5), || {
        String::from_utf8_lossy(&lab.exec(host, &["ip", "-br", "link", "show", "eth1"]).stdout).contains("UP")
    }));
}

/// `ip -o -4 addr show dev DEV` on `host`: one line per address, with scope and label.
fn addr_lines(lab: &Lab, host: &str, dev: &str) -> String {
    String::from_utf8_lossy(&lab.exec(host, &["ip", "-o", "-4", "addr", "show", "dev", dev]).stdout).into_owned()
}

fn has(lab: &Lab, host: &str, dev: &str, address: &str) -> bool {
    addr_lines(lab, host, dev).contains(&format!("inet {address}/"))
}

/// ARPs seen on the client for `seconds`, with their Ethernet source (`tcpdump -e`).
fn capture_arps(lab: &Lab, seconds: u32) -> Child {
    lab.capture("client", seconds, &["-e", "arp"])
}

fn host_config(host: &str, priority: u8) -> HostConfig {
    HostConfig::new(host).instance(Instance::vi1(priority).vip_entry(SIDE_ENTRY).vip_entry(LO_ENTRY))
}

#[test]
fn a_vip_with_dev_label_and_scope_lives_announces_and_fails_over_on_its_own_interface() {
    if !netns_available("a_vip_with_dev_label_and_scope_lives_announces_and_fails_over_on_its_own_interface", PROGRAMS) {
        return;
    }
    let lab = Lab::up("vipdev");
    add_eth1(&lab, "a");
    add_eth1(&lab, "b");
    let tcpdump = capture_arps(&lab, 7);
    // Let tcpdump open its socket before the first ARP leaves.
    std::thread::sleep(Duration::from_millis(700));
    let mut a = host_config("a", 101).start(&lab, &["--state", "MASTER"]);
    let b = host_config("b", 100).start(&lab, &[]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);

    // On eth1 with its label and scope; the host-scope one on lo; nothing on B.
    assert!(wait_until(Duration::from_secs(2), || has(&lab, "a", "eth1", SIDE_VIP)), "{}", a.log());
    let eth1 = addr_lines(&lab, "a", "eth1");
    println!("A's eth1: {eth1}");
    let line = eth1.lines().find(|l| l.contains(SIDE_VIP)).unwrap();
    assert!(line.contains("192.0.2.150/24") && line.contains("scope site") && line.contains("eth1:amqp"), "{line}");
    let lo = addr_lines(&lab, "a", "lo");
    let line = lo.lines().find(|l| l.contains("192.0.2.151")).unwrap_or_else(|| panic!("{lo}\n{}", a.log()));
    assert!(line.contains("192.0.2.151/32") && line.contains("scope host") && line.contains("lo:vrrp51"), "{line}");
    assert!(!has(&lab, "a", "eth0", SIDE_VIP), "{}", addr_lines(&lab, "a", "eth0"));
    assert!(!has(&lab, "b", "eth1", SIDE_VIP) && !has(&lab, "b", "lo", "192.0.2.151"));

    // The gratuitous ARP for the eth1 VIP leaves from eth1's MAC, never from eth0's; none for
    // the host-scope address on lo.
    let arps = String::from_utf8_lossy(&tcpdump.wait_with_output().unwrap().stdout).into_owned();
    let garps: Vec<&str> = arps.lines().filter(|l| l.contains("who-has 192.0.2.150 tell 192.0.2.150")).collect();
    println!("gratuitous ARPs for {SIDE_VIP}:\n{}", garps.join("\n"));
    let from_eth1 = format!("{} > ff:ff:ff:ff:ff:ff", eth1_mac("a"));
    assert!(!garps.is_empty() && garps.iter().all(|l| l.contains(&from_eth1)), "{arps}\n{}", a.log());
    assert!(!arps.contains("who-has 192.0.2.151 tell 192.0.2.151"), "{arps}");

    // A failover (a graceful stop) moves it: B adds it on its eth1, A's leaves its eth1 and lo.
    assert_eq!(a.stop(), Some(0));
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    assert!(wait_until(Duration::from_secs(2), || has(&lab, "b", "eth1", SIDE_VIP)), "{}", b.log());
    assert!(addr_lines(&lab, "b", "eth1").contains("eth1:amqp"));
    assert!(!has(&lab, "a", "eth1", SIDE_VIP) && !has(&lab, "a", "lo", "192.0.2.151"), "{}", addr_lines(&lab, "a", "eth1"));

    // A comes back, preempts, and B gives the eth1 VIP up.
    let mut a = host_config("a", 101).start(&lab, &[]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    assert!(wait_until(Duration::from_secs(2), || has(&lab, "a", "eth1", SIDE_VIP) && !has(&lab, "b", "eth1", SIDE_VIP)));

    // kill -9: the labelled VIP stays behind on A's eth1 while B takes over.
    a.kill();
    assert!(wait_until(TAKEOVER, || has(&lab, "b", "eth1", SIDE_VIP)), "{}", b.log());
    assert!(has(&lab, "a", "eth1", SIDE_VIP), "the crash left it: {}", addr_lines(&lab, "a", "eth1"));
    // An address of eth1 that vrrpd does not configure, with the very same label.
    let out = lab.exec("a", &["ip", "addr", "add", "192.0.2.160/32", "dev", "eth1", "label", "eth1:amqp"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Restarted as BACKUP (a lower priority): the leftover goes, the other address stays.
    let a = host_config("a", 99).start(&lab, &[]);
    assert!(a.wait_for_log("removed a VIP left by an earlier run", Duration::from_secs(5)), "{}", a.log());
    assert!(a.wait_for_log("to=BACKUP", Duration::from_secs(5)), "{}", a.log());
    let eth1 = addr_lines(&lab, "a", "eth1");
    println!("A's eth1 after the restart: {eth1}");
    assert!(!eth1.contains("192.0.2.150/"), "{eth1}\n{}", a.log());
    assert!(eth1.contains("192.0.2.160/32") && eth1.contains("eth1:amqp"), "{eth1}");
    assert!(!has(&lab, "a", "lo", "192.0.2.151"), "{}", addr_lines(&lab, "a", "lo"));
    assert!(has(&lab, "b", "eth1", SIDE_VIP));
    assert_eq!(lab.holders(VIP), ["b"]);
}

#[test]
fn a_reload_moves_a_kept_vip_to_its_new_label_scope_and_dev_while_master() {
    if !netns_available("a_reload_moves_a_kept_vip_to_its_new_label_scope_and_dev_while_master", PROGRAMS) {
        return;
    }
    let lab = Lab::up("vipmove");
    add_eth1(&lab, "a");
    let a = host_config("a", 101).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    assert!(wait_until(Duration::from_secs(2), || addr_lines(&lab, "a", "eth1").contains("eth1:amqp")), "{}", a.log());
    let reload = |entry: &str, done: usize| {
        HostConfig::new("a").instance(Instance::vi1(101).vip_entry(entry)).write(&lab);
        a.signal(nix::sys::signal::Signal::SIGHUP);
        assert!(wait_until(Duration::from_secs(5), || a.log().matches("configuration reloaded").count() == done), "{}", a.log());
    };

    // Another label and scope on the same interface.
    reload(r#"{ address = "192.0.2.150/24", dev = "eth1", label = "eth1:mq", scope = "global" }"#, 1);
    assert!(
        wait_until(Duration::from_secs(2), || {
            let eth1 = addr_lines(&lab, "a", "eth1");
            eth1.contains("eth1:mq") && eth1.contains("scope global") && !eth1.contains("eth1:amqp")
        }),
        "{}\n{}",
        addr_lines(&lab, "a", "eth1"),
        a.log()
    );
    // Another interface: the instance's own (no dev), with vrrpd's label.
    reload(r#"{ address = "192.0.2.150/24" }"#, 2);
    assert!(
        wait_until(Duration::from_secs(2), || !has(&lab, "a", "eth1", SIDE_VIP) && has(&lab, "a", "eth0", SIDE_VIP)),
        "eth1: {}\neth0: {}\n{}",
        addr_lines(&lab, "a", "eth1"),
        addr_lines(&lab, "a", "eth0"),
        a.log()
    );
    let eth0 = addr_lines(&lab, "a", "eth0");
    println!("A's eth0 after the move: {eth0}");
    assert!(eth0.lines().any(|l| l.contains("192.0.2.150/24") && l.contains("eth0:vrrp51")), "{eth0}");
    assert_eq!(a.log().matches("instance=VI_1 vrid=51 from=").count(), 1, "VI_1 changed state on reload:\n{}", a.log());
}

#[test]
fn a_missing_or_downed_vip_interface_holds_the_instance_in_fault_as_keepalived_does() {
    if !netns_available("a_missing_or_downed_vip_interface_holds_the_instance_in_fault_as_keepalived_does", PROGRAMS) {
        return;
    }
    let lab = Lab::up("vipfault");
    // No eth1 yet: the instance waits in FAULT, holding nothing.
    let a = HostConfig::new("a").instance(Instance::vi1(101).vip_entry(SIDE_ENTRY)).start(&lab, &["--state", "MASTER"]);
    assert!(a.wait_for_log("to=FAULT", Duration::from_secs(5)), "{}", a.log());
    std::thread::sleep(Duration::from_millis(500));
    assert!(lab.holders(VIP).is_empty(), "{}", a.log());
    // eth1 appears: MASTER, with the VIP on it.
    add_eth1(&lab, "a");
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    assert!(wait_until(Duration::from_secs(2), || has(&lab, "a", "eth1", SIDE_VIP)), "{}", a.log());
    // eth1 goes down: FAULT again, and the VIPs go.
    assert!(lab.exec("a", &["ip", "link", "set", "eth1", "down"]).status.success());
    assert!(wait_until(Duration::from_secs(5), || lab.holders(VIP).is_empty()), "{}", a.log());
    assert_eq!(a.log().matches("to=FAULT").count(), 2, "{}", a.log());
}

/// keepalived's `no_track`: a VIP whose interface goes down keeps its instance MASTER (the
/// IPv4 address stays on the downed interface, as the kernel keeps it there), while another
/// instance's tracked VIP there puts that one in FAULT. The link goes down within
/// milliseconds of the first VIP appearing, while the daemon may still be starting its
/// drivers: before the link monitor was started ahead of them, that change was lost in three
/// runs of six, and the tracked instance stayed MASTER on a dead link.
#[test]
fn a_no_track_vip_whose_interface_goes_down_leaves_its_instance_master() {
    if !netns_available("a_no_track_vip_whose_interface_goes_down_leaves_its_instance_master", PROGRAMS) {
        return;
    }
    let lab = Lab::up("vipnotrk");
    add_eth1(&lab, "a");
    let untracked = r#"{ address = "192.0.2.150/24", dev = "eth1", label = "eth1:amqp", no_track = true }"#;
    // Beside it, another instance with a tracked VIP on the same interface: its FAULT shows
    // the link-down was seen.
    let tracked = r#"{ address = "192.0.2.152/24", dev = "eth1", label = "eth1:t" }"#;
    let a = HostConfig::new("a")
        .instance(Instance::vi1(101).vip_entry(untracked))
        .instance(Instance::vi2(101).vip_entry(tracked))
        .start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    assert!(wait_until(Duration::from_secs(2), || has(&lab, "a", "eth1", SIDE_VIP)), "{}", a.log());
    assert!(lab.exec("a", &["ip", "link", "set", "eth1", "down"]).status.success());
    assert!(wait_until(TAKEOVER, || a.log().contains("instance=VI_2 vrid=52 from=MASTER to=FAULT")), "{}", a.log());
    // Both instances took the reading at once; let every transition be logged.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lab.holders(VIP), ["a"], "{}", a.log());
    assert!(has(&lab, "a", "eth1", SIDE_VIP), "{}", addr_lines(&lab, "a", "eth1"));
    assert!(!a.log().contains("instance=VI_1 vrid=51 from=MASTER to=FAULT"), "{}", a.log());
}

/// The VIP's line in `ip -o -4 addr` without what differs between hosts (index, interface
/// column): address, broadcast, scope, flags and label as the kernel shows them.
fn placement_of(lab: &Lab, host: &str, dev: &str, address: &str) -> Option<String> {
    let lines = addr_lines(lab, host, dev);
    let line = lines.lines().find(|l| l.contains(&format!("inet {address}/")))?;
    let from = line.find("inet ")?;
    let to = line.find('\\').unwrap_or(line.len());
    Some(line[from..to].split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A VIP with a broadcast address, as keepalived and vrrpd write it. On the instance's own
/// interface: keepalived 2.2.7's netlink request for `brd` with `dev` on another interface
/// fails (EINVAL, the VIP is not added), where vrrpd adds it.
const BRD_VIP: &str = "192.0.2.152";
const BRD_KEEPALIVED: &str = "192.0.2.152/24 brd 192.0.2.255 label eth0:bcast";
const BRD_ENTRY: &str = r#"{ address = "192.0.2.152/24", brd = "+", label = "eth0:bcast" }"#;

#[test]
fn keepalived_and_vrrpd_place_the_same_vip_the_same_way_and_hand_it_over() {
    if !netns_available("keepalived_and_vrrpd_place_the_same_vip_the_same_way_and_hand_it_over", &["ip", "keepalived"]) {
        return;
    }
    let lab = Lab::up("vipka");
    add_eth1(&lab, "a");
    add_eth1(&lab, "b");
    let conf = keepalived_config("a", 101, "MASTER").replace(
        "        192.0.2.100/24\n",
        &format!(
            "        192.0.2.100/24\n        192.0.2.150/24 dev eth1 label eth1:amqp scope site\n        {BRD_KEEPALIVED}\n"
        ),
    );
    assert!(conf.contains("dev eth1"), "{conf}");
    let mut keepalived = Daemon::keepalived(&lab, "a", &conf);
    let vrrpd = HostConfig::new("b").instance(Instance::vi1(100).vip_entry(SIDE_ENTRY).vip_entry(BRD_ENTRY)).start(&lab, &[]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&keepalived, &vrrpd]);
    assert!(
        wait_until(Duration::from_secs(3), || has(&lab, "a", "eth1", SIDE_VIP) && has(&lab, "a", "eth0", BRD_VIP)),
        "{}",
        keepalived.log()
    );
    let placements = |host| [("eth1", SIDE_VIP), ("eth0", BRD_VIP)].map(|(dev, vip)| placement_of(&lab, host, dev, vip).unwrap());
    let by_keepalived = placements("a");

    // keepalived stops (priority 0): vrrpd takes the VIPs, on its eth1, placed the same way:
    // the same scope and label, and a broadcast address only where `brd` asks for one.
    keepalived.stop();
    lab.expect_holder(VIP, "b", Duration::from_secs(3), &[&keepalived, &vrrpd]);
    assert!(
        wait_until(Duration::from_secs(2), || has(&lab, "b", "eth1", SIDE_VIP) && has(&lab, "b", "eth0", BRD_VIP)),
        "{}",
        vrrpd.log()
    );
    let by_vrrpd = placements("b");
    println!("keepalived 2.2.7: {by_keepalived:?}\nvrrpd:            {by_vrrpd:?}");
    assert_eq!(by_vrrpd, by_keepalived);
    assert!(!by_vrrpd[0].contains("brd"), "no broadcast address unless asked: {}", by_vrrpd[0]);
    assert!(by_vrrpd[1].contains("brd 192.0.2.255"), "{}", by_vrrpd[1]);
    assert!(!has(&lab, "a", "eth1", SIDE_VIP), "keepalived removed its own at stop");
}

#[test]
fn a_driver_starting_on_an_interface_leaves_the_vips_other_instances_hold_there() {
    if !netns_available("a_driver_starting_on_an_interface_leaves_the_vips_other_instances_hold_there", PROGRAMS) {
        return;
    }
    let lab = Lab::up("vipguest");
    add_eth1(&lab, "a");
    assert!(lab.exec("a", &["ip", "addr", "add", "192.0.2.211/32", "dev", "eth1"]).status.success());
    // VI_1 (on eth0) holds a VIP on eth1 with vrrpd's own label, eth1:vrrp51.
    let side = r#"{ address = "192.0.2.150/24", dev = "eth1" }"#;
    let config = HostConfig::new("a").instance(Instance::vi1(101).vip_entry(side));
    let a = config.start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    assert!(wait_until(Duration::from_secs(2), || addr_lines(&lab, "a", "eth1").contains("eth1:vrrp51")), "{}", a.log());
    // A reload adds an instance on eth1: its driver's start cleans vrrpd-labelled leftovers
    // there, but not the VIP VI_1 holds.
    config.clone().instance(Instance::vi2(100).on("eth1", 52, std::net::Ipv4Addr::new(192, 0, 2, 101))).write(&lab);
    a.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(a.wait_for_log("configuration reloaded", Duration::from_secs(5)), "{}", a.log());
    assert!(a.wait_for_log("instance=VI_2", Duration::from_secs(5)), "{}", a.log());
    std::thread::sleep(Duration::from_millis(500));
    assert!(has(&lab, "a", "eth1", SIDE_VIP), "{}\n{}", addr_lines(&lab, "a", "eth1"), a.log());
    assert!(!a.log().contains("removed a VIP left by an earlier run"), "{}", a.log());
}

/// keepalived's `garp_interval` paces the gratuitous ARPs of a VIP on another interface too:
/// a new master's burst for the eth1 VIP, seen on the client, leaves the interval apart.
#[test]
fn garp_interval_spaces_the_gratuitous_arps_of_a_vip_on_another_interface() {
    if !netns_available("garp_interval_spaces_the_gratuitous_arps_of_a_vip_on_another_interface", PROGRAMS) {
        return;
    }
    let lab = Lab::up("vipgarp");
    add_eth1(&lab, "a");
    let tcpdump = lab.capture("client", 8, &["-tt", "-e", "arp"]);
    // Let tcpdump open its socket before the first ARP leaves.
    std::thread::sleep(Duration::from_millis(700));
    let side = r#"{ address = "192.0.2.150/24", dev = "eth1" }"#;
    let a = HostConfig::new("a")
        .global("garp_interval = \"300ms\"")
        .instance(Instance::vi1(101).vip_entry(side).with("garp_master_repeat = 4").with("garp_master_delay = \"0s\""))
        .start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let out = tcpdump.wait_with_output().unwrap();
    let arps = String::from_utf8_lossy(&out.stdout);
    let from_eth1 = format!("{} > ff:ff:ff:ff:ff:ff", eth1_mac("a"));
    let times: Vec<f64> = arps
        .lines()
        .filter(|l| l.contains(&from_eth1) && l.contains(SIDE_VIP))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(times.len(), 4, "four gratuitous ARPs from eth1:\n{arps}\n{}", a.log());
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    println!("gaps between the eth1 VIP's gratuitous ARPs with garp_interval 300ms: {gaps:?}");
    assert!(gaps.iter().all(|g| *g >= 0.28 && *g < 1.5), "{gaps:?}");
}
