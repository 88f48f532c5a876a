//! Daily operation: the systemd unit, the notify protocol as systemd sees it, running without
//! root, and log formats. Needs root.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use integration::lab::{vrrpd_binary, wait_until, Daemon, Lab, VIP};
use integration::scenario::{HostConfig, Instance, Proxy, Server, TAKEOVER};
use integration::{netns_available, repo_root};
use nix::sys::signal::Signal;

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if !netns_available("the_unit_passes_systemd_analyze_verify", &["systemd-analyze"]) {
        return;
    }
    // verify wants the executables to exist: point the unit at this build.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo_root().join("conf/vrrpd.service")).unwrap();
    let unit = unit.replace("/usr/local/sbin/vrrpd", vrrpd_binary().to_str().unwrap());
    let path = dir.path().join("vrrpd.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze").args(["verify", path.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("vrrpd.service:"), "no complaint about the unit: {stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "User=vrrpd",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "WatchdogSec=",
    ] {
        assert!(text.contains(line), "{line}");
    }
    assert!(text.contains("AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE"));
}

/// What vrrpd told a fake `NOTIFY_SOCKET`, message by message.
fn notifications(socket: &UnixDatagram, within: Duration, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !until(&seen) {
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    seen
}

#[test]
fn systemd_hears_ready_status_watchdog_reloading_and_stopping() {
    if !netns_available("systemd_hears_ready_status_watchdog_reloading_and_stopping", &["ip"]) {
        return;
    }
    let lab = Lab::up("notify");
    let socket_path = lab.file("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let env = [("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")];
    let mut a = HostConfig::vi1("a", 101).start_with_env(&lab, &["--state", "MASTER"], &env);
    let seen = notifications(&socket, Duration::from_secs(5), |s| s.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3);
    let ready = seen.iter().find(|m| m.contains("READY=1")).unwrap_or_else(|| panic!("{seen:?}\n{}", a.log()));
    assert!(ready.contains("STATUS=VI_1 MASTER"), "{ready}");
    assert!(seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3, "pings at half WATCHDOG_USEC: {seen:?}");

    a.signal(Signal::SIGHUP);
    let seen = notifications(&socket, Duration::from_secs(5), |s| s.iter().any(|m| m.contains("READY=1")));
    let reloading = seen.iter().position(|m| m.contains("RELOADING=1")).expect("RELOADING=1");
    let ready = seen.iter().position(|m| m.contains("READY=1")).expect("READY=1 after the reload");
    assert!(reloading < ready, "{seen:?}");

    assert_eq!(a.stop(), Some(0));
    let seen = notifications(&socket, Duration::from_millis(500), |_| false);
    assert!(seen.iter().any(|m| m.contains("STOPPING=1")), "{seen:?}");
}

#[test]
fn started_as_root_it_drops_to_the_configured_user_keeping_three_capabilities() {
    if !netns_available("started_as_root_it_drops_to_the_configured_user_keeping_three_capabilities", &["ip"]) {
        return;
    }
    let lab = Lab::up("drop");
    let run_dir = format!("/tmp/vrrpd-drop-{}", std::process::id());
    let _ = std::fs::remove_dir_all(&run_dir);
    let config = HostConfig::vi1("a", 101).global("user = \"nobody\"").control_socket(format!("{run_dir}/vrrpd.sock"));
    let a = config.start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", a.pid().unwrap())).unwrap();
    let field = |name: &str| status.lines().find(|l| l.starts_with(name)).unwrap().split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(field("Uid:"), "65534", "runs as nobody:\n{status}");
    // CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13).
    assert_eq!(field("CapEff:"), "0000000000003400", "{status}");
    assert_eq!(field("CapPrm:"), "0000000000003400", "{status}");
    assert_eq!(field("CapInh:"), "0000000000000000", "{status}");
    assert!(a.log().contains("dropped root"), "{}", a.log());
    // It still works: VRRP (raw sockets), VIPs (netlink), the control socket.
    let out =
        Command::new(vrrpd_binary()).args(["ctl", "--socket", &format!("{run_dir}/vrrpd.sock"), "status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("MASTER"), "{out:?}");
    drop(a);
    let _ = std::fs::remove_dir_all(&run_dir);
}

#[test]
fn logs_are_plain_under_journald_and_json_on_request() {
    if !netns_available("logs_are_plain_under_journald_and_json_on_request", &["ip"]) {
        return;
    }
    let lab = Lab::up("logs");
    let a = HostConfig::vi1("a", 101).start_with_env(&lab, &["--state", "MASTER"], &[("JOURNAL_STREAM", "8:1234")]);
    assert!(a.wait_for_log("state change", Duration::from_secs(5)));
    let line = a.log().lines().find(|l| l.contains("state change")).unwrap().to_owned();
    assert!(line.starts_with(" INFO") || line.starts_with("INFO"), "no timestamp under journald: {line:?}");
    drop(a);
    let b = HostConfig::vi1("b", 100).start(&lab, &["--log-format", "json", "--log-level", "debug"]);
    // Alone, B becomes MASTER after its Master_Down_Interval and logs its ARPs at debug level.
    assert!(wait_until(Duration::from_secs(8), || b.log().contains("\"level\":\"DEBUG\"")), "--log-level debug:\n{}", b.log());
    for line in b.log().lines() {
        let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(json["timestamp"].is_string() && json["message"].is_string(), "{line}");
    }
}

#[test]
fn install_puts_the_binary_config_and_unit_in_place() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/install.sh"))
        .args(["--root", root.path().to_str().unwrap(), "--binary", vrrpd_binary().to_str().unwrap(), "--config"])
        .arg(repo_root().join("conf/proxy-b.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let path = |p: &str| root.path().join(p);
    let mode = |p: &str| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path(p)).unwrap().permissions()) & 0o777;
    assert_eq!(mode("usr/local/sbin/vrrpd"), 0o755);
    assert_eq!(mode("etc/vrrpd/vrrpd.toml"), 0o640, "the configuration holds passwords");
    assert_eq!(mode("etc/systemd/system/vrrpd.service"), 0o644);
    let check = Command::new(path("usr/local/sbin/vrrpd"))
        .args(["check", "--config"])
        .arg(path("etc/vrrpd/vrrpd.toml"))
        .output()
        .unwrap();
    assert!(check.status.success());
    // A second install keeps the operator's edits.
    std::fs::write(path("etc/vrrpd/vrrpd.toml"), "# edited\n").unwrap();
    let again = Command::new("bash")
        .arg(repo_root().join("scripts/install.sh"))
        .args(["--root", root.path().to_str().unwrap(), "--binary", vrrpd_binary().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(path("etc/vrrpd/vrrpd.toml")).unwrap(), "# edited\n");
}

#[test]
fn reload_changes_servers_vips_and_listener_keeping_valid_sessions_and_mastership() {
    if !netns_available("reload_changes_servers_vips_and_listener_keeping_valid_sessions_and_mastership", &["ip"]) {
        return;
    }
    use integration::lab::{Greeters, LineClient, VIP2};
    let lab = Lab::up("reloadpx");
    let _greeters = Greeters::start(&lab);
    let proxy = Proxy::amqp(r#"kind = "tcp", interval = "200ms", rise = 1, fall = 2"#, 2).with("balance = \"roundrobin\"");
    let a = HostConfig::vi1("a", 101).proxy(proxy.clone()).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let mut sessions: Vec<LineClient> = (0..4).map(|_| LineClient::connect(&lab, (VIP, 5672).into())).collect();
    assert_eq!(sessions.iter().filter(|s| s.greeting == "rabbit1").count(), 2);

    // rabbit1 leaves, rabbit2 weighs 3, VI_1 gets a second VIP, the proxy moves to port 5673.
    let changed = HostConfig::new("a")
        .instance(Instance::vi1(101).vip(VIP2))
        .proxy(proxy.port(5673).servers(vec![Server::rabbit(2).weight(3)]));
    changed.write(&lab);
    let out = Daemon::ctl(&lab, "a", &["reload"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Still MASTER without a transition, with the new VIP.
    assert!(wait_until(Duration::from_secs(3), || lab.addresses("a").contains(&VIP2)), "{}", a.log());
    assert_eq!(a.log().matches("instance=VI_1 vrid=51 from=").count(), 1, "no transition:\n{}", a.log());
    assert!(a.log().contains("instance reconfigured in place"), "{}", a.log());
    // The sessions on rabbit2 live on; those on the removed rabbit1 were closed.
    for session in &mut sessions {
        assert_eq!(session.alive(), session.greeting == "rabbit2", "{}", session.greeting);
    }
    // The listener moved.
    let moved = LineClient::connect(&lab, (VIP, 5673).into());
    assert_eq!(moved.greeting, "rabbit2");
    assert!(integration::netns::connect_from(&lab.ns("client"), (VIP, 5672).into()).is_err(), "the old port closed");
    let status = String::from_utf8_lossy(&Daemon::ctl(&lab, "a", &["status"]).stdout).into_owned();
    assert!(status.contains("rabbit2") && !status.contains("rabbit1") && status.contains("      3 "), "{status}");
}
