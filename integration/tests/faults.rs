//! What vrrpd does when something around it goes wrong, with the real binary in namespaces: an
//! interface missing at start, deleted and created again, a flood of link changes, the master
//! stopped (SIGSTOP) and resumed, a broker that never answers while a VIP is released. Needs root.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use integration::lab::{wait_until, Daemon, Lab, Probe, VIP};
use integration::netns::spawn_in;
use integration::netns_available;
use integration::scenario::{HostConfig, Instance, Pair, Proxy, Server, TAKEOVER};

const PROGRAMS: &[&str] = &["ip"];
/// A VIP for an instance on the lab host's second interface.
const SIDE_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 150);

/// `vrrpd ctl status --json`, once the daemon answers.
fn status(lab: &Lab, host: &str) -> serde_json::Value {
    let mut answer = None;
    let answered = wait_until(Duration::from_secs(5), || {
        let out = Daemon::ctl(lab, host, &["status", "--json"]);
        answer = out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap());
        answer.is_some()
    });
    assert!(answered, "vrrpd on {host} answers ctl status");
    answer.unwrap()
}

fn state_of(lab: &Lab, host: &str, instance: &str) -> String {
    let json = status(lab, host);
    let instances = json["instances"].as_array().unwrap();
    instances.iter().find(|i| i["name"] == instance).map(|i| i["state"].as_str().unwrap().to_owned()).unwrap_or_default()
}

fn ip(lab: &Lab, host: &str, args: &[&str]) {
    let mut command = vec!["ip"];
    command.extend_from_slice(args);
    let out = lab.exec(host, &command);
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A second interface `eth1` (a veth pair inside host a) with an address, up.
fn create_eth1(lab: &Lab) {
    ip(lab, "a", &["link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"]);
    ip(lab, "a", &["addr", "add", "192.0.2.211/32", "dev", "eth1"]);
    ip(lab, "a", &["link", "set", "eth1p", "up"]);
    ip(lab, "a", &["link", "set", "eth1", "up"]);
}

fn eth1_addresses(lab: &Lab) -> String {
    String::from_utf8_lossy(&lab.exec("a", &["ip", "-br", "-4", "addr", "show", "dev", "eth1"]).stdout).into_owned()
}

#[test]
fn a_missing_interface_is_fault_until_it_appears_and_is_followed_when_created_again() {
    if !netns_available("a_missing_interface_is_fault_until_it_appears_and_is_followed_when_created_again", PROGRAMS) {
        return;
    }
    let lab = Lab::up("noiface");
    let side = Instance::vi1(101).on("eth1", 61, SIDE_VIP);
    let mut a = HostConfig::new("a").instance(side).start(&lab, &["--state", "MASTER"]);
    // keepalived goes FAULT and waits; so does vrrpd, instead of exiting.
    assert!(wait_until(Duration::from_secs(5), || state_of(&lab, "a", "VI_1") == "FAULT"), "{}", a.log());
    assert!(a.is_running());

    let appeared = Instant::now();
    create_eth1(&lab);
    assert!(wait_until(Duration::from_secs(5), || eth1_addresses(&lab).contains("192.0.2.150")), "VIP on eth1:\n{}", a.log());
    eprintln!("interface created: MASTER with the VIP after {:?}", appeared.elapsed());
    assert_eq!(state_of(&lab, "a", "VI_1"), "MASTER");

    ip(&lab, "a", &["link", "del", "eth1"]);
    assert!(wait_until(Duration::from_secs(5), || state_of(&lab, "a", "VI_1") == "FAULT"), "{}", a.log());
    let recreated = Instant::now();
    create_eth1(&lab);
    assert!(
        wait_until(Duration::from_secs(5), || eth1_addresses(&lab).contains("192.0.2.150")),
        "the new eth1 (a new index) is followed:\n{}",
        a.log()
    );
    eprintln!("interface created again: MASTER with the VIP after {:?}", recreated.elapsed());
    assert!(a.log().contains("interface ready"), "{}", a.log());

    // Deleted and created again in one burst: the link monitor may report no change at all
    // (up before, up after); the new index is found all the same.
    let batch = lab.file("recreate.batch");
    std::fs::write(
        &batch,
        "link del eth1\nlink add eth1 type veth peer name eth1p\naddr add 192.0.2.211/32 dev eth1\nlink set eth1p up\nlink set eth1 up\n",
    )
    .unwrap();
    ip(&lab, "a", &["-batch", batch.to_str().unwrap()]);
    assert!(
        wait_until(Duration::from_secs(8), || eth1_addresses(&lab).contains("192.0.2.150")),
        "the VIP is back on the new eth1 after a burst:\n{}",
        a.log()
    );
    assert_eq!(a.stop(), Some(0));
}

#[test]
fn a_flood_of_link_changes_leaves_every_tracker_where_the_link_ended() {
    if !netns_available("a_flood_of_link_changes_leaves_every_tracker_where_the_link_ended", PROGRAMS) {
        return;
    }
    let lab = Lab::up("flood");
    create_eth1(&lab);
    let (a, b) = Pair {
        a: HostConfig::new("a").instance(Instance::vi1(101).with("track_interface = [{ name = \"eth1\", weight = -50 }]")),
        ..Pair::default()
    }
    .start(&lab);
    // Thousands of link messages in a burst: dummies created and deleted, eth1 flapping,
    // ending down. Whatever the kernel had to drop, the tracker ends where eth1 ended.
    let mut batch = String::new();
    for n in 0..400 {
        batch.push_str(&format!("link add fl{n} type veth peer name fp{n}\nlink set fl{n} up\n"));
        batch.push_str(if n % 2 == 0 { "link set eth1 down\n" } else { "link set eth1 up\n" });
    }
    for n in 0..400 {
        batch.push_str(&format!("link del fl{n}\n"));
    }
    batch.push_str("link set eth1 down\n");
    let file = lab.file("flood.batch");
    std::fs::write(&file, &batch).unwrap();
    let flooded = Instant::now();
    ip(&lab, "a", &["-batch", file.to_str().unwrap()]);
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    let tracker = |json: &serde_json::Value| {
        json["instances"][0]["trackers"].as_array().unwrap().iter().find(|t| t["name"] == "eth1").cloned().unwrap()
    };
    let json = status(&lab, "a");
    assert_eq!(tracker(&json)["up"], false, "{json}");
    assert_eq!(json["instances"][0]["effective_priority"], 51);
    eprintln!("after {} link messages: eth1 down, VIP on B after {:?}", 2400, flooded.elapsed());

    ip(&lab, "a", &["link", "set", "eth1", "up"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    assert_eq!(tracker(&status(&lab, "a"))["up"], true);
}

#[test]
fn a_master_stopped_and_resumed_yields_without_a_second_outage() {
    if !netns_available("a_master_stopped_and_resumed_yields_without_a_second_outage", &["ip", "ping"]) {
        return;
    }
    let lab = Lab::up("sigstop");
    let (a, b) = Pair::default().start(&lab);
    a.signal(nix::sys::signal::Signal::SIGSTOP);
    assert!(wait_until(TAKEOVER, || lab.holders(VIP).contains(&"b")), "B takes over:\n{}", b.log());
    // Stopped well past any backup's wait (3 x advert_int + Skew_Time).
    std::thread::sleep(Duration::from_secs(2));
    // From here on the client is on B; A's return must not cut it off again.
    let probe = Probe::start(&lab, VIP);
    std::thread::sleep(Duration::from_millis(500));
    a.signal(nix::sys::signal::Signal::SIGCONT);
    assert!(a.wait_for_log("longer than a backup waits: yielding", Duration::from_secs(5)), "{}", a.log());
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    std::thread::sleep(Duration::from_millis(500));
    let report = probe.stop();
    eprintln!("SIGCONT of the stopped master: longest gap {:?} over {} replies", report.outage, report.replies);
    assert!(report.replies > 100, "{report:?}");
    assert!(report.outage < Duration::from_secs(1), "a second outage of {:?} when A came back", report.outage);
}

#[test]
fn a_broker_that_never_answers_does_not_hold_up_a_vip_release() {
    if !netns_available("a_broker_that_never_answers_does_not_hold_up_a_vip_release", PROGRAMS) {
        return;
    }
    let lab = Lab::up("silentbroker");
    // 192.0.2.29 is on the lab's segment and answers nothing (no host): connects hang.
    let proxy = Proxy::amqp(r#"kind = "tcp", interval = "1h""#, 1)
        .servers(vec![Server { address: "192.0.2.29:5672".into(), ..Server::rabbit(1) }])
        .with("timeout_connect = \"30s\"");
    let a = HostConfig::vi1("a", 101).proxy(proxy).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let clients = spawn_in(&lab.ns("client"), || async {
        let mut held = Vec::new();
        for _ in 0..200 {
            held.push(tokio::net::TcpStream::connect((VIP, 5672)).await.unwrap());
        }
        tokio::time::sleep(Duration::from_secs(8)).await;
        held.len()
    });
    let sessions = |lab: &Lab| status(lab, "a")["proxies"][0]["sessions"]["current"].as_u64().unwrap();
    assert!(wait_until(Duration::from_secs(5), || sessions(&lab) == 200), "200 sessions connecting: {}", sessions(&lab));
    let released = Instant::now();
    assert!(Daemon::ctl(&lab, "a", &["resign", "VI_1"]).status.success());
    assert!(wait_until(Duration::from_secs(2), || lab.holders(VIP).is_empty()), "the VIP goes:\n{}", a.log());
    eprintln!("VIP released with 200 sessions stuck connecting after {:?}", released.elapsed());
    assert!(wait_until(Duration::from_secs(2), || sessions(&lab) == 0), "every session ended: {}", sessions(&lab));
    let server = &status(&lab, "a")["proxies"][0]["servers"][0];
    assert_eq!(server["sessions"]["current"], 0, "the server's count returned to zero: {server}");
    clients.join().unwrap().unwrap();
}

#[test]
fn a_reload_applies_what_it_can_and_says_what_waits_for_a_restart() {
    if !netns_available("a_reload_applies_what_it_can_and_says_what_waits_for_a_restart", PROGRAMS) {
        return;
    }
    let lab = Lab::up("reloadwait");
    let config = HostConfig::vi1("a", 101);
    let a = config.start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    config.clone().instance(Instance::vi2(101)).stats(integration::scenario::Stats::on(8100)).write(&lab);
    let out = Daemon::ctl(&lab, "a", &["reload"]);
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(answer.contains("take effect at the next restart") && answer.contains("[stats]"), "{answer}");
    lab.expect_holder(integration::lab::VIP2, "a", TAKEOVER, &[&a]);
}

#[test]
fn a_failing_script_changed_by_a_reload_clears_its_fault_when_it_passes() {
    if !netns_available("a_failing_script_changed_by_a_reload_clears_its_fault_when_it_passes", PROGRAMS) {
        return;
    }
    let lab = Lab::up("scriptreload");
    let flag = lab.file("healthy");
    let check = format!("/usr/bin/test -e {}", flag.display());
    // Weight 0: FAULT while the check fails.
    let config = |interval: &str| {
        HostConfig::new("a")
            .instance(Instance::vi1(101).track_script("chk"))
            .script(integration::scenario::Script::new("chk", check.clone()).interval(interval))
    };
    // The first run (at start) fails, and the next is a minute away.
    let a = config("60s").start(&lab, &["--state", "MASTER"]);
    assert!(wait_until(Duration::from_secs(5), || state_of(&lab, "a", "VI_1") == "FAULT"), "{}", a.log());
    // The check would pass now; a reload changes the script's definition. The new runner
    // starts from the failing state the instance knows, so its first pass clears the FAULT
    // (starting from "up" instead, a pass would be no change and the FAULT would stay).
    std::fs::write(&flag, "").unwrap();
    config("500ms").write(&lab);
    assert!(Daemon::ctl(&lab, "a", &["reload"]).status.success());
    assert!(
        wait_until(Duration::from_secs(8), || state_of(&lab, "a", "VI_1") == "MASTER"),
        "the passing check clears the FAULT:\n{}",
        a.log()
    );
}
