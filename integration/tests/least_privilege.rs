//! Least privilege as a new user meets it: vrrpd under the shipped unit's identity (a non-root
//! user with ambient CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE, here by `setpriv`),
//! the scripts it runs, the control socket, the stats server under slow clients, and /metrics
//! read by Prometheus's own parser. Needs root.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use integration::lab::{vrrpd_binary, wait_until, Daemon, Lab, VIP};
use integration::netns::{http_get, raise_nofile, spawn_in};
use integration::netns_available;
use integration::scenario::{HostConfig, Instance, Proxy, Script, Stats, TAKEOVER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The unprivileged user vrrpd runs as in these tests (nobody).
const UID: u32 = 65534;

/// What the shipped unit gives vrrpd: its own user, three capabilities as ambient ones.
fn as_the_unit() -> Vec<String> {
    let caps = "+net_admin,+net_raw,+net_bind_service";
    ["setpriv", &format!("--reuid={UID}"), &format!("--regid={UID}"), "--clear-groups"]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--inh-caps={caps}"), format!("--ambient-caps={caps}")])
        .collect()
}

/// The lab's files readable by the unprivileged daemon, a run directory it owns (control
/// socket, script output), and a root-owned directory for scripts.
fn directories(lab: &Lab) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let run = lab.file("run");
    std::fs::create_dir(&run).unwrap();
    nix::unistd::chown(&run, Some(nix::unistd::Uid::from_raw(UID)), Some(nix::unistd::Gid::from_raw(UID))).unwrap();
    let scripts = lab.file("scripts");
    std::fs::create_dir(&scripts).unwrap();
    std::fs::set_permissions(&scripts, std::fs::Permissions::from_mode(0o755)).unwrap();
    (run, scripts)
}

fn write_script(path: &Path, body: &str, mode: u32) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn status_field<'a>(status: &'a str, field: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{field} in {status}"))
}

#[test]
fn under_the_units_identity_scripts_get_no_capability() {
    if !netns_available("under_the_units_identity_scripts_get_no_capability", &["ip", "setpriv"]) {
        return;
    }
    let lab = Lab::up("caps");
    let (run, scripts) = directories(&lab);
    let out = run.join("status.txt");
    let script = scripts.join("caps.sh");
    write_script(&script, &format!("grep -E '^(Cap|NoNewPrivs)' /proc/self/status > {}", out.display()), 0o755);
    let config = HostConfig::new("a")
        .control_socket(run.join("vrrpd.sock"))
        .script(Script::new("chk_caps", script.display().to_string()).interval("1s").weight(-10))
        .instance(Instance::vi1(101).track_script("chk_caps"));
    let wrapper = as_the_unit();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let a = config.start_under(&lab, &wrapper, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    assert!(wait_until(Duration::from_secs(5), || out.exists()), "the script ran:\n{}", a.log());
    let status = std::fs::read_to_string(&out).unwrap();
    for field in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(status_field(&status, field), "0000000000000000", "{field} of the script:\n{status}");
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{status}");
}

#[test]
fn under_the_units_identity_a_script_others_can_modify_is_refused_by_path() {
    if !netns_available("under_the_units_identity_a_script_others_can_modify_is_refused_by_path", &["ip", "setpriv"]) {
        return;
    }
    let lab = Lab::up("unsafe");
    let (run, _) = directories(&lab);
    let open = lab.file("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = open.join("check.sh");
    write_script(&script, "exit 0", 0o755);
    let config = HostConfig::new("a")
        .control_socket(run.join("vrrpd.sock"))
        .script(Script::new("chk", script.display().to_string()))
        .instance(Instance::vi1(101).track_script("chk"));
    let wrapper = as_the_unit();
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut a = config.start_under(&lab, &wrapper, &[]);
    assert!(wait_until(Duration::from_secs(5), || !a.is_running()), "vrrpd refuses to start:\n{}", a.log());
    let log = a.log();
    assert!(log.contains(&format!("{} is writable by a non-root user", open.display())), "{log}");
    assert!(lab.holders(VIP).is_empty());
}

#[test]
fn the_control_socket_answers_only_root_and_its_own_user() {
    if !netns_available("the_control_socket_answers_only_root_and_its_own_user", &["ip", "setpriv"]) {
        return;
    }
    let lab = Lab::up("ctlcred");
    std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let a = HostConfig::vi1("a", 101).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let socket = integration::lab::control_socket(&lab, "a");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "created 0600");
    // Even a socket file someone loosened does not let another user in.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new("setpriv")
        .args([&format!("--reuid={UID}"), &format!("--regid={UID}"), "--clear-groups"])
        .arg(vrrpd_binary())
        .args(["ctl", "--socket", socket.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("uid {UID} may not use the control socket")), "{stderr}");
    assert!(Daemon::ctl(&lab, "a", &["status"]).status.success(), "root still may");
    assert!(a.log().contains("control connection refused"), "{}", a.log());
}

#[test]
fn slow_half_header_clients_are_closed_within_the_timeout_while_the_page_answers() {
    if !netns_available("slow_half_header_clients_are_closed_within_the_timeout_while_the_page_answers", &["ip"]) {
        return;
    }
    const SLOW: usize = 2000;
    raise_nofile(16_384);
    let lab = Lab::up("slowhttp");
    let a = HostConfig::vi1("a", 101).stats(Stats::on(8100)).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let pid = a.pid().unwrap().as_raw();
    let descriptors = || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let before = descriptors();

    let (opened_tx, opened_rx) = mpsc::channel();
    let slow = spawn_in(&lab.ns("client"), move || async move {
        let mut streams = Vec::with_capacity(SLOW);
        for _ in 0..SLOW {
            let mut stream = tokio::net::TcpStream::connect("192.0.2.11:8100").await.unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nHost: proxy-a\r\nX-Slow: ").await.unwrap();
            streams.push(stream);
        }
        opened_tx.send(()).unwrap();
        // Each connection is closed by the server: EOF or a reset, well within the deadline.
        let mut closed = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        for mut stream in streams {
            let mut rest = Vec::new();
            if tokio::time::timeout_at(deadline, stream.read_to_end(&mut rest)).await.is_ok() {
                closed += 1;
            }
        }
        closed
    });
    opened_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let page = http_get(&lab.ns("client"), SocketAddr::from(([192, 0, 2, 11], 8100)), "/", None).unwrap();
    assert_eq!(page.status, 200, "the page answers with {SLOW} slow clients connected");
    let held = descriptors();
    assert!(held < before + 200, "vrrpd holds {held} descriptors ({before} before): the slow clients cannot take them");
    assert_eq!(slow.join().unwrap().unwrap(), SLOW, "every slow client was closed within the header timeout");
}

#[test]
fn metrics_parse_with_prometheus_and_a_root_start_without_user_is_flagged() {
    if !netns_available("metrics_parse_with_prometheus_and_a_root_start_without_user_is_flagged", &["ip", "promtool"]) {
        return;
    }
    let lab = Lab::up("metrics");
    let _brokers = integration::lab::Greeters::start(&lab);
    let a = HostConfig::vi1("a", 101)
        .stats(Stats::on(8100))
        .proxy(Proxy::amqp(r#"kind = "tcp", interval = "500ms""#, 2))
        .start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let get = |path: &str| http_get(&lab.ns("client"), SocketAddr::from(([192, 0, 2, 11], 8100)), path, None).unwrap();
    let metrics = get("/metrics");
    assert_eq!(metrics.status, 200);
    let file = lab.file("metrics.txt");
    std::fs::write(&file, &metrics.body).unwrap();
    let out = Command::new("sh").arg("-c").arg(format!("promtool check metrics < {}", file.display())).output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        metrics.body
    );
    // Started as root without [global] user: said at start, on the page and in the JSON.
    assert!(a.log().contains("running as root: no [global] user is set"), "{}", a.log());
    assert!(get("/").body.contains("running as root"));
    let json: serde_json::Value = serde_json::from_str(&get("/stats.json").body).unwrap();
    assert!(json["warnings"][0].as_str().unwrap().contains("running as root"), "{json}");
}

/// The capability sets of a process, as /proc shows them.
fn capabilities(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
}

#[test]
fn under_the_units_identity_script_user_runs_scripts_through_a_launcher() {
    if !netns_available("under_the_units_identity_script_user_runs_scripts_through_a_launcher", &["ip", "setpriv"]) {
        return;
    }
    const SCRIPT_UID: &str = "1"; // Debian's `daemon` user
    let lab = Lab::up("launcher");
    let (run, scripts) = directories(&lab);
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run.join("status.txt");
    let script = scripts.join("whoami.sh");
    write_script(&script, &format!("grep -E '^(Uid|Cap|NoNewPrivs)' /proc/self/status > {}", out.display()), 0o755);
    let config = HostConfig::new("a")
        .control_socket(run.join("vrrpd.sock"))
        .global("script_user = \"daemon\"")
        .script(Script::new("chk_user", script.display().to_string()).interval("1s").weight(-10))
        .instance(Instance::vi1(101).track_script("chk_user"));
    // The shipped unit's capabilities, CAP_SETUID and CAP_SETGID included.
    let caps = "+net_admin,+net_raw,+net_bind_service,+setuid,+setgid";
    let (inh, amb) = (format!("--inh-caps={caps}"), format!("--ambient-caps={caps}"));
    let (reuid, regid) = (format!("--reuid={UID}"), format!("--regid={UID}"));
    let wrapper = ["setpriv", reuid.as_str(), regid.as_str(), "--clear-groups", inh.as_str(), amb.as_str()];
    let a = config.start_under(&lab, &wrapper, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    assert!(wait_until(Duration::from_secs(5), || out.exists()), "the script ran:\n{}", a.log());
    let status = std::fs::read_to_string(&out).unwrap();
    assert!(status_field(&status, "Uid").split_whitespace().all(|id| id == SCRIPT_UID), "runs as daemon:\n{status}");
    for field in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(status_field(&status, field), "0000000000000000", "{field} of the script:\n{status}");
    }
    // vrrpd gave CAP_SETUID and CAP_SETGID up; only its launcher holds them, and only them.
    let pid = a.pid().unwrap().as_raw();
    let own = capabilities(pid);
    assert_eq!(status_field(&own, "CapPrm"), "0000000000003400", "vrrpd keeps NET_ADMIN, NET_RAW, NET_BIND_SERVICE:\n{own}");
    assert_eq!(status_field(&own, "CapAmb"), "0000000000003400", "{own}");
    let launcher = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .map(capabilities)
        .find(|s| status_field_opt(s, "Name") == Some("vrrpd-launcher") && status_field_opt(s, "PPid") == Some(&pid.to_string()))
        .unwrap_or_else(|| panic!("no launcher child of {pid}:\n{}", a.log()));
    assert_eq!(status_field(&launcher, "CapPrm"), "00000000000000c0", "the launcher keeps SETUID and SETGID only:\n{launcher}");
    assert_eq!(status_field(&launcher, "NoNewPrivs"), "1");
}

fn status_field_opt<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).map(str::trim)
}
