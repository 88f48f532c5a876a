//! VRRPv3 over IPv6 (RFC 5798): an IPv6 VIP on a vrrpd pair answers `ping -6` from the client
//! before and after a graceful failover (unsolicited neighbour advertisements move the
//! client's neighbour entry), and mixed pairs with keepalived 2.2.7 over IPv6 elect one master
//! both ways. Needs root (and keepalived for the mixed pairs); skipped otherwise.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::time::{Duration, Instant};

use std::net::SocketAddr;

use integration::lab::{vrrpd_binary, Daemon, Greeters, Lab, LineClient, Probe, VIP6};
use integration::netns_available;
use integration::scenario::{keepalived_v6_config, HostConfig, Instance, Proxy, TAKEOVER};

fn vrrpd_v6(host: &str, priority: u8) -> HostConfig {
    HostConfig::new(host).instance(Instance::vi1(priority).ipv6(VIP6, "100ms"))
}

fn ping6(lab: &Lab) -> bool {
    lab.exec("client", &["ping", "-6", "-n", "-c", "2", "-i", "0.2", "-W", "1", &VIP6.to_string()]).status.success()
}

/// The MAC the client's neighbour cache holds for the VIP.
fn client_neighbour(lab: &Lab) -> Option<String> {
    let out = lab.exec("client", &["ip", "-6", "neigh", "show", &VIP6.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_owned)
}

#[test]
fn an_ipv6_vip_answers_ping_before_and_after_a_graceful_failover() {
    if !netns_available("an_ipv6_vip_answers_ping_before_and_after_a_graceful_failover", &["ip", "ping"]) {
        return;
    }
    let lab = Lab::up("v6ping");
    let mut a = vrrpd_v6("a", 101).start(&lab, &["--state", "MASTER"]);
    let b = vrrpd_v6("b", 100).start(&lab, &[]);
    lab.expect_holder6(VIP6, "a", TAKEOVER, &[&a, &b]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lab.holders6(VIP6), ["a"], "B follows A's IPv6 adverts: {}", b.log());
    assert!(ping6(&lab), "the VIP answers ping -6 on A");
    assert_eq!(client_neighbour(&lab).as_deref(), Some(Lab::mac("a")));

    let probe = Probe::start(&lab, VIP6);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    assert_eq!(a.stop(), Some(0));
    lab.expect_holder6(VIP6, "b", Duration::from_secs(2), &[&a, &b]);
    let moved = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let report = probe.stop();
    println!(
        "graceful stop over IPv6: VIP on B after {:.3} s, client outage {:.3} s ({} replies)",
        moved.as_secs_f64(),
        report.outage.as_secs_f64(),
        report.replies
    );
    assert!(ping6(&lab), "the VIP answers ping -6 on B");
    assert_eq!(client_neighbour(&lab).as_deref(), Some(Lab::mac("b")), "B's neighbour advertisements moved the client");
    assert!(report.outage < Duration::from_secs(1), "outage {:?}", report.outage);
}

#[test]
fn keepalived_and_vrrpd_elect_one_ipv6_master_both_ways() {
    if !netns_available("keepalived_and_vrrpd_elect_one_ipv6_master_both_ways", &["ip", "ping", "keepalived"]) {
        return;
    }
    // keepalived master, vrrpd backup.
    let lab = Lab::up("ka6");
    let mut keepalived = Daemon::keepalived(&lab, "a", &keepalived_v6_config("a", 101, "MASTER", "0.1", VIP6));
    lab.expect_holder6(VIP6, "a", TAKEOVER, &[&keepalived]);
    let vrrpd = vrrpd_v6("b", 100).start(&lab, &[]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.holders6(VIP6), ["a"], "vrrpd follows keepalived's IPv6 adverts");
    assert!(!vrrpd.log().contains("to=MASTER"), "{}", vrrpd.log());
    assert!(!vrrpd.log().contains("advert dropped"), "{}", vrrpd.log());
    keepalived.stop();
    lab.expect_holder6(VIP6, "b", Duration::from_secs(2), &[&keepalived, &vrrpd]);
    assert!(ping6(&lab), "the VIP answers ping -6 on vrrpd's host");
    drop((keepalived, vrrpd));
    drop(lab);

    // vrrpd master, keepalived backup.
    let lab = Lab::up("v6ka");
    let vrrpd = vrrpd_v6("a", 101).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder6(VIP6, "a", TAKEOVER, &[&vrrpd]);
    let keepalived = Daemon::keepalived(&lab, "b", &keepalived_v6_config("b", 100, "BACKUP", "0.1", VIP6));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.holders6(VIP6), ["a"], "keepalived accepts vrrpd's IPv6 adverts");
    assert!(keepalived.log().contains("Entering BACKUP STATE"), "{}", keepalived.log());
    assert!(!keepalived.log().contains("Entering MASTER STATE"), "{}", keepalived.log());
    lab.cut_link("a");
    lab.expect_holder6(VIP6, "b", Duration::from_secs(2), &[&vrrpd, &keepalived]);
}

#[test]
fn the_balancer_serves_clients_on_the_ipv6_vip_before_and_after_a_failover() {
    if !netns_available("the_balancer_serves_clients_on_the_ipv6_vip_before_and_after_a_failover", &["ip"]) {
        return;
    }
    let lab = Lab::up("v6proxy");
    let _backends = Greeters::start(&lab);
    let check = r#"kind = "tcp", interval = "200ms", rise = 1, fall = 1, timeout = "200ms""#;
    // IPv4 brokers behind a listener on every address, the IPv6 VIP included.
    let host = |name: &str, priority| {
        HostConfig::new(name)
            .instance(Instance::vi1(priority).ipv6(VIP6, "100ms"))
            .proxy(Proxy { bind: "[::]:5672".into(), ..Proxy::amqp(check, 2) })
    };
    let mut a = host("a", 101).start(&lab, &["--state", "MASTER"]);
    let b = host("b", 100).start(&lab, &[]);
    lab.expect_holder6(VIP6, "a", TAKEOVER, &[&a, &b]);
    std::thread::sleep(Duration::from_millis(500));
    let to = SocketAddr::from((VIP6, 5672));
    let mut before = LineClient::connect(&lab, to);
    assert!(before.greeting.starts_with("rabbit"), "greeted through A on [{VIP6}]:5672: {:?}", before.greeting);
    assert!(before.alive());
    assert_eq!(a.stop(), Some(0));
    lab.expect_holder6(VIP6, "b", Duration::from_secs(2), &[&a, &b]);
    let mut after = LineClient::connect(&lab, to);
    assert!(after.greeting.starts_with("rabbit"), "greeted through B: {:?}", after.greeting);
    assert!(after.alive());
}

#[test]
fn ipv6_adverts_with_a_hop_limit_below_255_or_a_bad_checksum_are_dropped_and_counted() {
    if !netns_available("ipv6_adverts_with_a_hop_limit_below_255_or_a_bad_checksum_are_dropped_and_counted", &["ip"]) {
        return;
    }
    // RFC 5798 section 7.1: "MUST verify that the IPv6 Hop Limit is 255"; the hop limit comes
    // from the socket's ancillary data, the checksum covers the pseudo-header.
    let lab = Lab::up("v6hop");
    let a = vrrpd_v6("a", 101).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder6(VIP6, "a", TAKEOVER, &[&a]);
    let inject = vrrpd_binary().with_file_name("vrrp-inject");
    // The client's link-local address (EUI-64 of 02:00:00:00:00:31).
    let client = "fe80::ff:fe00:31";
    for extra in [&["--ttl", "64"][..], &["--bad-checksum"][..]] {
        let mut args =
            vec![inject.to_str().unwrap(), "--ipv6-from", client, "--priority", "254", "--count", "10", "--interval-ms", "5"];
        args.extend_from_slice(extra);
        let out = lab.exec("client", &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.holders6(VIP6), ["a"], "A stays master: {}", a.log());
    assert!(a.log().contains("reason=ttl"), "{}", a.log());
    assert!(a.log().contains("reason=checksum"), "{}", a.log());
    // A well-formed advert with a higher priority is obeyed: the checks above were the reason.
    let out = lab.exec(
        "client",
        &[inject.to_str().unwrap(), "--ipv6-from", client, "--priority", "254", "--count", "5", "--interval-ms", "50"],
    );
    assert!(out.status.success());
    assert!(a.wait_for_log("from=MASTER to=BACKUP", Duration::from_secs(2)), "{}", a.log());
}

#[test]
fn a_reload_that_adds_an_ipv6_router_opens_the_ipv6_sockets() {
    if !netns_available("a_reload_that_adds_an_ipv6_router_opens_the_ipv6_sockets", &["ip"]) {
        return;
    }
    // The port was opened for IPv4 only; the reload must give the new router its link-local
    // source and sockets, or it would be a silent master.
    let lab = Lab::up("v6reload");
    let ipv4_only = HostConfig::new("a").instance(Instance::vi1(101).v3("100ms"));
    let a = ipv4_only.start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(integration::lab::VIP, "a", TAKEOVER, &[&a]);
    ipv4_only.clone().instance(Instance { name: "VI_6".into(), vrid: 61, ..Instance::vi1(101).ipv6(VIP6, "100ms") }).write(&lab);
    a.signal(nix::sys::signal::Signal::SIGHUP);
    lab.expect_holder6(VIP6, "a", TAKEOVER, &[&a]);
    let out = lab.exec("b", &["timeout", "3", "tcpdump", "-c", "1", "-n", "-i", "eth0", "ip6 proto 112"]);
    let seen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(seen.contains("fe80::ff:fe00:11 > ff02::12"), "an IPv6 advert from A's link-local address: {seen:?}\n{}", a.log());
}
