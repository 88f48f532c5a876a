//! `vrrp_sync_group` end to end: instances that fail over together on a vrrpd pair of a
//! namespace lab, the member that fails on another interface (another driver) than the others.
//! Needs root; without it every test says it was skipped.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use integration::lab::{Lab, VIP, VIP2};
use integration::netns_available;
use integration::scenario::{HostConfig, Instance, Pair, TAKEOVER};

const PROGRAMS: &[&str] = &["ip"];
const SIDE_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 150);

fn ip(lab: &Lab, host: &str, args: &[&str]) {
    let mut command = vec!["ip"];
    command.extend_from_slice(args);
    let out = lab.exec(host, &command);
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

const GROUP: &str = "[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_2\", \"SIDE\"]\n";

#[test]
fn a_member_losing_its_link_takes_the_whole_group_to_fault_and_back() {
    if !netns_available("a_member_losing_its_link_takes_the_whole_group_to_fault_and_back", PROGRAMS) {
        return;
    }
    let lab = Lab::up("sync");
    // eth1: a veth inside host a, a third member's interface (another driver than eth0's).
    ip(&lab, "a", &["link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"]);
    ip(&lab, "a", &["addr", "add", "192.0.2.211/32", "dev", "eth1"]);
    ip(&lab, "a", &["link", "set", "eth1p", "up"]);
    ip(&lab, "a", &["link", "set", "eth1", "up"]);
    let side = Instance { name: "SIDE".into(), ..Instance::vi1(101).on("eth1", 61, SIDE_VIP) };
    let a = HostConfig::vi1("a", 101).instance(Instance::vi2(101)).instance(side).section(GROUP);
    let b = HostConfig::vi1("b", 100)
        .instance(Instance::vi2(100))
        .section("[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_2\"]\n");
    let (a, b) = Pair { a, b }.start(&lab);
    lab.expect_holder(VIP2, "a", TAKEOVER, &[&a, &b]);

    // The side member's carrier goes: it is in FAULT, and so are VI_1 and VI_2 on eth0.
    let cut = Instant::now();
    ip(&lab, "a", &["link", "set", "eth1p", "down"]);
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    lab.expect_holder(VIP2, "b", TAKEOVER, &[&a, &b]);
    let moved = cut.elapsed();
    println!("side link cut -> VIP and VIP2 on b in {moved:?}");
    assert!(moved < Duration::from_secs(3), "priority-0 adverts: B takes over after Skew_Time: {moved:?}");
    assert!(a.log().contains("tracker=sync_peer SIDE reading=down"), "{}", a.log());

    // Back: the whole group is MASTER on A again (101 preempts 100).
    ip(&lab, "a", &["link", "set", "eth1p", "up"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    lab.expect_holder(VIP2, "a", TAKEOVER, &[&a, &b]);
}

#[test]
fn a_failing_group_track_script_moves_every_vip_and_the_group_notifies_once_per_state() {
    if !netns_available("a_failing_group_track_script_moves_every_vip_and_the_group_notifies_once_per_state", PROGRAMS) {
        return;
    }
    let lab = Lab::up("syncscr");
    let flag = lab.file("healthy");
    std::fs::write(&flag, "").unwrap();
    // The group's own notify scripts, keepalived's: `notify` gets GROUP <name> <STATE> 0.
    let out = lab.file("group.out");
    let script = lab.file("group.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$*\" >> {}\n", out.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fault = lab.file("group-fault.sh");
    std::fs::write(&fault, format!("#!/bin/sh\necho to-fault >> {}\n", out.display())).unwrap();
    std::fs::set_permissions(&fault, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // The group's track_script, with a weight that the group turns into 0 (FAULT), as keepalived.
    let group = format!(
        "[[vrrp_script]]\nname = \"chk\"\nscript = \"/usr/bin/test -e {}\"\ninterval = \"500ms\"\nweight = -20\n\n\
         [[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_2\"]\ntrack_script = [{{ name = \"chk\" }}]\n\
         notify = \"{}\"\nnotify_fault = \"{}\"\n",
        flag.display(),
        script.display(),
        fault.display()
    );
    let a = HostConfig::vi1("a", 101).instance(Instance::vi2(101)).section(group);
    let b = HostConfig::vi1("b", 100).instance(Instance::vi2(100));
    let (mut a, b) = Pair { a, b }.start(&lab);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    lab.expect_holder(VIP2, "a", TAKEOVER, &[&a, &b]);
    std::fs::remove_file(&flag).unwrap();
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    lab.expect_holder(VIP2, "b", TAKEOVER, &[&a, &b]);
    std::fs::write(&flag, "").unwrap();
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    lab.expect_holder(VIP2, "a", TAKEOVER, &[&a, &b]);
    a.stop();
    // Each state of the group once, however many members moved (A starts with --state
    // MASTER); the state's own script before `notify`, as for instances.
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        lines,
        "GROUP G1 MASTER 0\nto-fault\nGROUP G1 FAULT 0\nGROUP G1 BACKUP 0\nGROUP G1 MASTER 0\nGROUP G1 STOP 0\n",
        "log:\n{}",
        a.log()
    );
}
