//! The balancer inside vrrpd, on a namespace lab: clients reach the brokers through the VIP,
//! `track_proxy` hands the VIP over when this host's proxy has no server left, and a host that
//! leaves MASTER closes the sessions it accepted on the VIP, broker side included.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::time::Duration;

use integration::lab::{wait_until, Daemon, Greeters, Lab, LineClient, VIP};
use integration::netns_available;
use integration::scenario::{HostConfig, Instance, Pair, Proxy, TAKEOVER};

const PROGRAMS: &[&str] = &["ip"];

fn proxy() -> Proxy {
    Proxy::amqp(r#"kind = "tcp", interval = "200ms", rise = 1, fall = 2, timeout = "200ms""#, 2)
}

/// Both hosts proxy to both brokers, and VI_1 tracks the proxy (weight 0: FAULT without one).
fn tracking_pair(lab: &Lab) -> (Daemon, Daemon) {
    Pair::with(|host, priority| HostConfig::new(host).instance(Instance::vi1(priority).track_proxy("amqp", 0)).proxy(proxy()))
        .start(lab)
}

#[test]
fn clients_reach_the_brokers_through_the_vip_and_the_backup_listens_too() {
    if !netns_available("clients_reach_the_brokers_through_the_vip_and_the_backup_listens_too", PROGRAMS) {
        return;
    }
    let lab = Lab::up("pxy");
    let _backends = Greeters::start(&lab);
    let (a, b) = tracking_pair(&lab);
    let mut seen = Vec::new();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut client = LineClient::connect(&lab, SocketAddr::from((VIP, 5672)));
        seen.push(client.greeting.clone());
        assert_eq!(client.echo("ping").as_deref(), Some("ping"));
        held.push(client);
    }
    seen.sort();
    assert_eq!(seen, ["rabbit1", "rabbit1", "rabbit2", "rabbit2"], "leastconn over both brokers");
    // The backup's proxy listens as well, so its health is known before it is needed.
    let direct = LineClient::connect(&lab, "192.0.2.12:5672".parse().unwrap());
    assert!(direct.greeting.starts_with("rabbit"), "{}", b.log());
    drop(a);
}

#[test]
fn track_proxy_hands_the_vip_over_when_this_host_loses_every_broker() {
    if !netns_available("track_proxy_hands_the_vip_over_when_this_host_loses_every_broker", PROGRAMS) {
        return;
    }
    let lab = Lab::up("tpx");
    let _backends = Greeters::start(&lab);
    let (a, b) = tracking_pair(&lab);
    // A alone loses its way to both brokers.
    for broker in ["192.0.2.21/32", "192.0.2.22/32"] {
        assert!(lab.exec("a", &["ip", "route", "add", "blackhole", broker]).status.success());
    }
    // Its checks fail, the proxy has no server UP: FAULT, a priority-0 advert, and B takes
    // over after its Skew_Time.
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    assert!(a.log().contains("to=FAULT") && a.log().contains("proxy amqp"), "{}", a.log());
    let client = LineClient::connect(&lab, SocketAddr::from((VIP, 5672)));
    assert!(client.greeting.starts_with("rabbit"), "served through B");
    // The brokers come back for A: it recovers and preempts.
    for broker in ["192.0.2.21/32", "192.0.2.22/32"] {
        lab.exec("a", &["ip", "route", "del", "blackhole", broker]);
    }
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
}

#[test]
fn leaving_master_closes_the_vip_sessions_broker_side_included() {
    if !netns_available("leaving_master_closes_the_vip_sessions_broker_side_included", PROGRAMS) {
        return;
    }
    let lab = Lab::up("vipc");
    let backends = Greeters::start(&lab);
    let a = HostConfig::vi1("a", 99).proxy(proxy()).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let mut on_vip = LineClient::connect(&lab, SocketAddr::from((VIP, 5672)));
    assert!(on_vip.greeting.starts_with("rabbit"));
    let mut on_host = LineClient::connect(&lab, "192.0.2.11:5672".parse().unwrap());
    assert!(on_host.greeting.starts_with("rabbit"));
    // B arrives with a higher priority and preempts: A leaves MASTER.
    let b = HostConfig::vi1("b", 100).proxy(proxy()).start(&lab, &[]);
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    assert_eq!(on_vip.echo("still there?"), None, "the session through the VIP was closed");
    assert!(a.wait_for_log("closed the sessions accepted on the VIPs given up", Duration::from_secs(2)), "{}", a.log());
    assert!(a.log().contains("reason=VIP lost"), "{}", a.log());
    // The broker saw its side close, from A's address.
    assert!(wait_until(Duration::from_secs(2), || backends.output().contains("192.0.2.11:")), "{}", backends.output());
    // A session accepted on A's own address is not the VIP's: it lives on.
    assert_eq!(on_host.echo("hello").as_deref(), Some("hello"));
    // The client reconnects through the VIP, now to B.
    let again = LineClient::connect(&lab, SocketAddr::from((VIP, 5672)));
    assert!(again.greeting.starts_with("rabbit"));
}
