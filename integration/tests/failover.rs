//! Failover drills as tests: the real vrrpd binary on two proxy hosts of a namespace lab
//! (scripts/lab.sh), checked the way an operator checks, with `ip -br a` after every step.
//! Needs root; without it every test says it was skipped.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::Ipv4Addr;
use std::time::Duration;

use integration::lab::{vrrpd_config_path, wait_until, Lab, Probe, VIP, VIP2};
use integration::netns_available;
use integration::scenario::{HostConfig, Instance, Pair, Script, TAKEOVER};

const PROGRAMS: &[&str] = &["ip", "ping", "tcpdump"];

#[test]
fn startup_puts_the_vip_on_the_master_only() {
    if !netns_available("startup_puts_the_vip_on_the_master_only", PROGRAMS) {
        return;
    }
    let lab = Lab::up("start");
    let (a, b) = Pair::default().start(&lab);
    // Stays that way: the backup keeps hearing the master.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(lab.holders(VIP), ["a"]);
    assert!(a.log().contains("to=MASTER"), "{}", a.log());
    assert!(b.log().contains("to=BACKUP") && !b.log().contains("to=MASTER"), "{}", b.log());
    // The label says who added the address.
    let out = lab.exec("a", &["ip", "-4", "addr", "show", "dev", "eth0"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("eth0:vrrp51"));
}

#[test]
fn master_link_cut_moves_the_vip_and_the_master_goes_to_fault() {
    if !netns_available("master_link_cut_moves_the_vip_and_the_master_goes_to_fault", PROGRAMS) {
        return;
    }
    let lab = Lab::up("cut");
    let (a, b) = Pair::default().start(&lab);
    lab.cut_link("a");
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    assert!(a.wait_for_log("to=FAULT", Duration::from_secs(2)), "{}", a.log());
    lab.heal_link("a");
    // Back from FAULT to BACKUP, then preemption: A has the higher priority.
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    assert!(b.wait_for_log("from=MASTER to=BACKUP", Duration::from_secs(2)), "{}", b.log());
}

#[test]
fn master_kill_9_moves_the_vip_and_a_restart_cleans_up_and_preempts_back() {
    if !netns_available("master_kill_9_moves_the_vip_and_a_restart_cleans_up_and_preempts_back", PROGRAMS) {
        return;
    }
    let lab = Lab::up("kill");
    let (mut a, b) = Pair::default().start(&lab);
    a.kill();
    // The killed process could not remove its VIP; B takes over and announces itself.
    assert!(wait_until(TAKEOVER, || lab.holders(VIP).contains(&"b")), "{}", b.log());
    // Restarted (as systemd would), A first removes the VIP the crash left behind.
    let a = HostConfig::vi1("a", 101).start(&lab, &[]);
    assert!(a.wait_for_log("removed a VIP left by an earlier run", Duration::from_secs(5)), "{}", a.log());
    assert!(a.wait_for_log("to=BACKUP", Duration::from_secs(5)), "{}", a.log());
    assert_eq!(lab.holders(VIP), ["b"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
}

#[test]
fn graceful_stop_resigns_releases_the_vip_and_exits_zero() {
    if !netns_available("graceful_stop_resigns_releases_the_vip_and_exits_zero", PROGRAMS) {
        return;
    }
    let lab = Lab::up("stop");
    let (mut a, b) = Pair::default().start(&lab);
    assert_eq!(a.stop(), Some(0));
    assert!(!lab.addresses("a").contains(&VIP), "the VIP left with the daemon");
    // Priority 0: B waits Skew_Time (0.61 s), not Master_Down_Interval.
    lab.expect_holder(VIP, "b", Duration::from_secs(2), &[&a, &b]);
}

#[test]
fn gratuitous_arp_moves_clients_without_waiting_for_arp_expiry() {
    if !netns_available("gratuitous_arp_moves_clients_without_waiting_for_arp_expiry", PROGRAMS) {
        return;
    }
    let lab = Lab::up("garp");
    let (mut a, b) = Pair::default().start(&lab);
    let probe = Probe::start(&lab, VIP);
    assert!(wait_until(Duration::from_secs(3), || lab.neighbour("client", VIP).as_deref() == Some(Lab::mac("a"))));
    a.stop();
    lab.expect_holder(VIP, "b", Duration::from_secs(3), &[&a, &b]);
    // The client's cached entry for the VIP already names B: Linux would otherwise keep A's
    // MAC for seconds (reachable time, then delay_first_probe_time) before asking again.
    assert!(
        wait_until(Duration::from_millis(500), || lab.neighbour("client", VIP).as_deref() == Some(Lab::mac("b"))),
        "client still has {:?} for the VIP",
        lab.neighbour("client", VIP)
    );
    std::thread::sleep(Duration::from_millis(300));
    let report = probe.stop();
    assert!(report.replies > 10, "{report:?}");
    assert!(report.outage < Duration::from_secs(3), "clients followed the VIP at once: {report:?}");
}

#[test]
fn track_script_failure_hands_over_and_recovery_takes_back() {
    if !netns_available("track_script_failure_hands_over_and_recovery_takes_back", PROGRAMS) {
        return;
    }
    let lab = Lab::up("track");
    let flag = lab.file("healthy");
    std::fs::write(&flag, "").unwrap();
    let check = Script::new("chk_flag", format!("/usr/bin/test -e {}", flag.display())).interval("500ms").weight(-20);
    let a = HostConfig::new("a").instance(Instance::vi1(101).track_script("chk_flag")).script(check);
    let (a, b) = Pair { a, ..Pair::default() }.start(&lab);
    std::fs::remove_file(&flag).unwrap();
    // 101 - 20 = 81 < 100: B stops accepting A's adverts and takes over.
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    assert!(a.log().contains("priority=81"), "{}", a.log());
    std::fs::write(&flag, "").unwrap();
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
}

#[test]
fn adverts_with_the_wrong_password_are_dropped_counted_and_logged() {
    if !netns_available("adverts_with_the_wrong_password_are_dropped_counted_and_logged", PROGRAMS) {
        return;
    }
    let lab = Lab::up("auth");
    let (a, b) = Pair::default().start(&lab);
    let inject = integration::lab::vrrpd_binary().with_file_name("vrrp-inject");
    // An intruder claims priority 254 with the wrong password, with no authentication, and
    // with the right password from off the link (TTL 254).
    for args in [&["--password", "wrong"][..], &[][..], &["--password", "s3cret", "--ttl", "254"][..]] {
        let mut command = vec![inject.to_str().unwrap(), "--count", "30", "--interval-ms", "100"];
        command.extend_from_slice(args);
        let out = lab.exec("client", &command);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(lab.holders(VIP), ["a"], "nothing moved");
    assert!(!b.log().contains("to=MASTER"));
    for log in [a.log(), b.log()] {
        assert!(log.contains("advert dropped") && log.contains("reason=auth_password"), "{log}");
        assert!(log.contains("reason=auth_type") && log.contains("reason=ttl"), "{log}");
        // Ninety bad packets, one line per reason: the log is rate-limited.
        assert!(log.matches("advert dropped").count() <= 3, "{log}");
        assert!(!log.contains("s3cret") && !log.contains("wrong"), "passwords stay out of logs:\n{log}");
    }
}

#[test]
fn notify_scripts_run_in_order_with_keepalived_arguments() {
    if !netns_available("notify_scripts_run_in_order_with_keepalived_arguments", PROGRAMS) {
        return;
    }
    let lab = Lab::up("notify");
    let out = lab.file("notify.out");
    let script = lab.file("notify.sh");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$*\" >> {}\n", out.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let master_script = lab.file("to-master.sh");
    std::fs::write(&master_script, format!("#!/bin/sh\necho to-master >> {}\n", out.display())).unwrap();
    std::fs::set_permissions(&master_script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let instance = Instance::vi1(101)
        .with(format!("notify = \"{}\"", script.display()))
        .with(format!("notify_master = \"{}\"", master_script.display()));
    let mut a = HostConfig::new("a").instance(instance).start(&lab, &[]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    a.stop();
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        lines,
        "INSTANCE VI_1 BACKUP 101\nto-master\nINSTANCE VI_1 MASTER 101\nINSTANCE VI_1 STOP 101\n",
        "log:\n{}",
        a.log()
    );
}

#[test]
fn sighup_reloads_keeping_state_and_rejects_a_bad_file() {
    if !netns_available("sighup_reloads_keeping_state_and_rejects_a_bad_file", PROGRAMS) {
        return;
    }
    let lab = Lab::up("reload");
    let config = HostConfig::vi1("a", 101);
    let a = config.start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    // Add a second instance: VI_1 stays MASTER without a transition, VI_2 starts.
    config.clone().instance(Instance::vi2(101)).write(&lab);
    a.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(a.wait_for_log("configuration reloaded", Duration::from_secs(5)), "{}", a.log());
    assert!(wait_until(TAKEOVER, || lab.addresses("a").contains(&VIP2)), "{}", a.log());
    assert_eq!(a.log().matches("instance=VI_1 vrid=51 from=").count(), 1, "VI_1 changed state on reload:\n{}", a.log());
    // A broken file is refused; everything keeps running as it was.
    let broken = config.render_in(&lab).replace("virtual_router_id = 51", "virtual_router_id = 300");
    std::fs::write(vrrpd_config_path(&lab, "a"), broken).unwrap();
    a.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(a.wait_for_log("reload rejected", Duration::from_secs(5)), "{}", a.log());
    assert!(a.log().contains("virtual_router_id"), "the reason is logged:\n{}", a.log());
    assert!(lab.addresses("a").contains(&VIP) && lab.addresses("a").contains(&VIP2));
}

#[test]
fn crossed_priorities_share_the_load_and_one_host_takes_both() {
    if !netns_available("crossed_priorities_share_the_load_and_one_host_takes_both", PROGRAMS) {
        return;
    }
    let lab = Lab::up("aa");
    let a = HostConfig::vi1("a", 101).instance(Instance::vi2(100)).start(&lab, &[]);
    let mut b = HostConfig::vi1("b", 100).instance(Instance::vi2(101)).start(&lab, &[]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    lab.expect_holder(VIP2, "b", TAKEOVER, &[&a, &b]);
    b.stop();
    lab.expect_holder(VIP2, "a", Duration::from_secs(3), &[&a, &b]);
    assert_eq!(lab.holders(VIP), ["a"]);
}

#[test]
fn unicast_peers_elect_and_fail_over_without_multicast() {
    if !netns_available("unicast_peers_elect_and_fail_over_without_multicast", PROGRAMS) {
        return;
    }
    let lab = Lab::up("ucast");
    let (a_ip, b_ip) = (Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(192, 0, 2, 12));
    let a = HostConfig::new("a").instance(Instance::vi1(101).unicast(a_ip, &[b_ip])).start(&lab, &[]);
    let mut b = HostConfig::new("b").instance(Instance::vi1(100).unicast(b_ip, &[a_ip])).start(&lab, &[]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.holders(VIP), ["a"], "B hears A's unicast adverts");
    let out = lab.exec("b", &["timeout", "3", "tcpdump", "-c", "1", "-n", "-i", "eth0", "ip proto 112 and dst 192.0.2.12"]);
    assert!(out.status.success(), "adverts are sent to the peer's address");
    b.stop();
    drop(a);
}

#[test]
fn split_brain_heals_to_one_master_that_reannounces_the_vip() {
    if !netns_available("split_brain_heals_to_one_master_that_reannounces_the_vip", PROGRAMS) {
        return;
    }
    let lab = Lab::up("split");
    let (a, b) = Pair::default().start(&lab);
    lab.isolate("a");
    assert!(wait_until(TAKEOVER, || lab.holders(VIP) == ["a", "b"]), "both masters while apart");
    let probe = Probe::start(&lab, VIP);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lab.neighbour("client", VIP).as_deref(), Some(Lab::mac("b")), "the client followed B's announcement");
    lab.rejoin("a");
    // Within about one advert interval A (higher priority) is the only master again, and
    // its answer to B's advert re-announces the VIP to the client.
    lab.expect_holder(VIP, "a", Duration::from_secs(3), &[&a, &b]);
    assert!(wait_until(Duration::from_secs(1), || lab.neighbour("client", VIP).as_deref() == Some(Lab::mac("a"))));
    drop(probe);
}

#[test]
fn a_root_script_others_can_modify_is_refused_at_start() {
    if !netns_available("a_root_script_others_can_modify_is_refused_at_start", PROGRAMS) {
        return;
    }
    let lab = Lab::up("unsafe");
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = dir.path().join("check.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let config = HostConfig::new("a")
        .instance(Instance::vi1(101).track_script("chk"))
        .script(Script::new("chk", script.display().to_string()));
    let mut a = config.start(&lab, &[]);
    assert!(wait_until(Duration::from_secs(5), || !a.is_running()), "vrrpd must refuse to start");
    assert!(a.log().contains("is writable by a non-root user"), "{}", a.log());
    assert!(lab.holders(VIP).is_empty());
    // Explicitly allowed, it runs (with a warning).
    let a = config.global("enable_script_security = false").start(&lab, &[]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    assert!(a.log().contains("running it anyway"), "{}", a.log());
}
