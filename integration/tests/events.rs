//! The timeline an operator reads the morning after: state changes with their reason and
//! priority, tracked objects, brokers going DOWN with the check that decided it, VIP releases,
//! reloads and their outcome, on `vrrpd ctl events`, in `/stats.json` and on the page. Needs root.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::time::Duration;

use integration::lab::{Daemon, Greeters, Lab, LineClient, VIP};
use integration::netns::http_get;
use integration::netns_available;
use integration::scenario::{HostConfig, Instance, Pair, Proxy, Stats, TAKEOVER};

#[test]
fn the_timeline_tells_what_happened_in_order() {
    if !netns_available("the_timeline_tells_what_happened_in_order", &["ip"]) {
        return;
    }
    let lab = Lab::up("events");
    let brokers = Greeters::start(&lab);
    let proxy = Proxy::amqp(r#"kind = "tcp", interval = "200ms", rise = 1, fall = 1, timeout = "200ms""#, 2);
    let a_config = HostConfig::new("a").instance(Instance::vi1(101).track_proxy("amqp", -60)).proxy(proxy).stats(Stats::on(8100));
    let (a, b) = Pair { a: a_config.clone(), ..Pair::default() }.start(&lab);
    let _session = LineClient::connect(&lab, SocketAddr::from((VIP, 5672)));

    // The brokers die: both servers DOWN, the proxy unavailable, the weight hands the VIP over.
    drop(brokers);
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    assert!(Daemon::ctl(&lab, "a", &["reload"]).status.success());

    let out = Daemon::ctl(&lab, "a", &["events"]);
    let events = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let position = |needle: &str| events.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the timeline:\n{events}"));
    let started = position("INIT -> MASTER: startup; priority 101");
    let down = position("DOWN: ");
    let tracker = position("proxy amqp down: priority 101 -> 41");
    let handed = position("MASTER -> BACKUP: advert from 192.0.2.12 with priority 100");
    let released = position("VIPs 192.0.2.100/24 released");
    let reloaded = position("configuration reloaded");
    assert!(
        started < down && down < tracker && tracker < handed && handed < released && released < reloaded,
        "in order:\n{events}"
    );
    assert!(events.contains("amqp/rabbit1") && events.contains("amqp/rabbit2"), "{events}");

    let client = lab.ns("client");
    let get = |path: &str| http_get(&client, SocketAddr::from(([192, 0, 2, 11], 8100)), path, None).unwrap();
    let json: serde_json::Value = serde_json::from_str(&get("/stats.json").body).unwrap();
    let listed = json["events"].as_array().unwrap();
    assert!(listed.iter().any(|e| e["kind"] == "server" && e["message"].as_str().unwrap().starts_with("DOWN")), "{json}");
    assert!(listed.iter().all(|e| e["time"].as_str().is_some_and(|t| t.ends_with('Z'))));
    let page = get("/").body;
    assert!(page.contains("<h2>Timeline</h2>") && page.contains("configuration reloaded"), "{page}");
    std::thread::sleep(Duration::from_millis(100));
}
