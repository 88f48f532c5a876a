//! `vrrpd check` as a user runs it: the shipped examples pass, each bad input fails with exit
//! status 1 and a message naming the file, the line and the key.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vrrpd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vrrpd")).args(args).output().expect("run vrrpd")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn example(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("conf").join(name)).unwrap()
}

#[test]
fn every_shipped_example_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_root().join("conf")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = vrrpd(&["check", "--config", path.to_str().unwrap()]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
            assert!(stdout.contains(": valid"), "{stdout}");
            checked += 1;
        }
    }
    assert!(checked >= 3, "conf/ holds the examples");
}

#[test]
fn check_prints_what_it_would_run() {
    let out = vrrpd(&["check", "--config", repo_root().join("conf/proxy-a.toml").to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "vrrp_instance VI_1",
        "interface eth0, VRRPv2, VRID 51, priority 101",
        "starts MASTER",
        "VIPs 192.0.2.100/24",
        "Master_Down_Interval 3.60546875s",
        "track_proxy amqp (FAULT while down)",
        "proxy amqp on 0.0.0.0:5672: balance leastconn, check amqp",
        "server rabbit1 192.0.2.21:5672",
        "server rabbit3 192.0.2.23:5672",
        "stats on http://127.0.0.1:8100/",
        "derived from this process's open-file limit",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("s3cret"), "the password is never printed");
}

#[test]
fn check_offline_does_not_read_the_files_the_configuration_names() {
    // A file imported on the old host names a password file that exists only on the new one.
    let text = example("proxy-a.toml").replacen(
        "check = { kind = \"amqp\",",
        "check = { kind = \"http\", port = 15672, path = \"/api/health/checks/local-alarms\", user = \"monitor\", \
         password_file = \"/etc/vrrpd/not-here.pw\",",
        1,
    );
    assert!(text.contains("not-here.pw"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vrrpd.toml");
    std::fs::write(&path, &text).unwrap();
    let offline = vrrpd(&["check", "--offline", "--config", path.to_str().unwrap()]);
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    // Checked on the host that runs it, the missing file is an error at its line.
    let here = vrrpd(&["check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&here.stderr);
    assert_eq!(here.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not-here.pw") && stderr.contains(&format!(":{}:", line_of(&text, "not-here.pw"))), "{stderr}");
}

#[test]
fn command_line_overrides_show_in_check() {
    let path = repo_root().join("conf/proxy-b.toml");
    let out = vrrpd(&["--state", "MASTER", "--priority", "150", "check", "--config", path.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("priority 150") && stdout.contains("starts MASTER"), "{stdout}");
    let out = vrrpd(&["--priority", "0", "check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "clap refuses priority 0");
}

/// Writes `text` to a file, runs `vrrpd check` on it, and returns its stderr, asserting exit 1
/// and a `file:line:` location.
fn rejected(text: &str, line: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vrrpd.toml");
    std::fs::write(&path, text).unwrap();
    let out = vrrpd(&["check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let location = format!("{}:{line}:", path.display());
    assert!(stderr.contains(&location), "expected {location} in:\n{stderr}");
    stderr
}

fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

/// proxy-a.toml with one line replaced.
fn broken(from: &str, to: &str) -> (String, usize) {
    let base = example("proxy-a.toml");
    assert!(base.contains(from), "{from}");
    let text = base.replacen(from, to, 1);
    // The line of the replacement's last line.
    let line = line_of(&base, from) + to.matches('\n').count();
    (text, line)
}

#[test]
fn each_bad_input_is_rejected_at_its_line() {
    let cases = [
        ("preempt = true", "preempt = true\nadvert_intt = 1", "unknown field `advert_intt`"),
        ("virtual_router_id = 51", "virtual_router_id = 256", "virtual_router_id: 256 is outside 1..=255"),
        ("priority = 101", "priority = 0", "priority: 0 is outside 1..=255"),
        ("auth_pass = \"s3cret\"", "auth_pass = \"123456789\"", "auth_pass: is 9 bytes"),
        ("[\"192.0.2.100/24\"]", "[\"2001:db8::100/64\"]", "VRRPv2 carries IPv4 addresses only"),
        ("name = \"rabbit2\"", "name = \"rabbit1\"", "server \"rabbit1\" is defined twice"),
        (
            "track_proxy = [{ name = \"amqp\", weight = 0 }]",
            "track_proxy = [{ name = \"amqps\", weight = 0 }]",
            "names no proxy \"amqps\"",
        ),
        ("address = \"192.0.2.22:5672\"", "address = \"rabbit2:5672\"", "is not an IP address and port"),
        (
            "track_proxy = [{ name = \"amqp\", weight = 0 }]",
            "track_script = [{ name = \"chk_haproxy\" }]",
            "names no vrrp_script \"chk_haproxy\"",
        ),
        ("advert_int = 1 ", "advert_int = 0.5 ", "whole seconds"),
        ("timeout_connect = \"2s\"", "timeout_connect = \"2 parsecs\"", "is not a duration"),
    ];
    for (from, to, message) in cases {
        let (text, line) = broken(from, to);
        let stderr = rejected(&text, line);
        assert!(stderr.contains(message), "expected {message:?} in:\n{stderr}");
    }
}

#[test]
fn duplicate_instance_names_are_rejected() {
    let base = example("proxy-a.toml");
    let text = format!("{base}\n[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth1\"\nvirtual_router_id = 52\nvirtual_ipaddress = [\"192.0.2.101\"]\n");
    let stderr = rejected(&text, text.matches('\n').count() - 3);
    assert!(stderr.contains("vrrp_instance \"VI_1\" is defined twice"), "{stderr}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = vrrpd(&["check", "--config", "/nonexistent/vrrpd.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("/nonexistent/vrrpd.toml: cannot read the configuration"), "{stderr}");
}

#[test]
fn version_and_help() {
    let out = vrrpd(&["--version"]);
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("vrrpd "));
    let out = vrrpd(&["--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--config", "--state", "--priority", "--log-format", "--log-level", "check"] {
        assert!(help.contains(flag), "{flag} in --help");
    }
}

#[test]
fn check_refuses_a_script_the_start_would_refuse_and_names_the_path() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("check_refuses_a_script_the_start_would_refuse_and_names_the_path: SKIPPED, needs root");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let open = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = open.path().join("check.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = example("proxy-a.toml").replace(
        "[[vrrp_instance]]",
        &format!("[[vrrp_script]]\nname = \"chk\"\nscript = \"{}\"\n\n[[vrrp_instance]]", script.display()),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vrrpd.toml");
    std::fs::write(&path, text).unwrap();
    let out = vrrpd(&["check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("{} is writable by a non-root user", open.path().display())), "{stderr}");
}

const BROKER_HEALTH: &str = r#"
[[proxy]]
name = "amqp"
bind = "127.0.0.1:56720"
check = { kind = "http", path = "/api/health/checks/alarms", port = 15672, expect_status = 200, user = "monitor", password = "pa55-w0rd" }

[[proxy.server]]
name = "rabbit1"
address = "192.0.2.21:5672"
check = { interval = "5s", fall = 4, addr = "192.0.2.31" }

[[proxy.server]]
name = "rabbit2"
address = "192.0.2.22:5672"

[[proxy]]
name = "amqps"
bind = "127.0.0.1:56710"
check = { kind = "amqps", ca_file = "/etc/vrrpd/rabbit-ca.pem", sni = "rabbit.example" }

[[proxy.server]]
name = "rabbit1"
address = "192.0.2.21:5671"
"#;

#[test]
fn check_shows_what_a_health_check_asks_but_never_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vrrpd.toml");
    std::fs::write(&path, BROKER_HEALTH).unwrap();
    let out = vrrpd(&["check", "--config", path.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "check http GET /api/health/checks/alarms expecting 200 as monitor on port 15672 every 2s",
        "server rabbit1 192.0.2.21:5672 weight 1 (check interval 5s fastinter 5s downinter 5s fall 4 at 192.0.2.31:15672)",
        "server rabbit2 192.0.2.22:5672 weight 1\n",
        "check amqps, CA /etc/vrrpd/rabbit-ca.pem, name rabbit.example every 2s",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("pa55-w0rd"), "{stdout}");

    // A mistake on the line that holds the password: located, the password starred out.
    let stderr = rejected(&BROKER_HEALTH.replace("expect_status = 200", "expect_status = 999"), 5);
    assert!(stderr.contains("proxy[0].check.expect_status"), "{stderr}");
    assert!(!stderr.contains("pa55-w0rd"), "{stderr}");
}

#[test]
fn check_refuses_a_track_file_others_could_write_and_does_not_create_it() {
    use std::os::unix::fs::PermissionsExt;
    let open = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let file = open.path().join("prio");
    let text = example("proxy-a.toml").replace(
        "[[vrrp_instance]]",
        &format!("[[vrrp_track_file]]\nname = \"prio\"\nfile = \"{}\"\ninit_file = 0\n\n[[vrrp_instance]]", file.display()),
    );
    let text = text.replacen("virtual_router_id", "track_file = [{ name = \"prio\" }]\nvirtual_router_id", 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vrrpd.toml");
    std::fs::write(&path, text).unwrap();
    let out = vrrpd(&["check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("vrrp_track_file \"prio\""), "{stderr}");
    assert!(stderr.contains("could be written by a non-root user"), "{stderr}");
    assert!(!file.exists(), "check never writes init_file");
}

#[test]
fn check_shows_a_vips_dev_scope_and_label_and_warns_when_its_interface_is_missing() {
    let entry = r#"{ address = "192.0.2.101/24", dev = "vrrpdnoif9", label = "vrrpdnoif9:mq", scope = "host" }"#;
    let (text, line) =
        broken(r#"virtual_ipaddress = ["192.0.2.100/24"]"#, &format!("virtual_ipaddress = [\"192.0.2.100/24\", {entry}]"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vrrpd.toml");
    std::fs::write(&path, text).unwrap();
    let out = vrrpd(&["check", "--config", path.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("VIPs 192.0.2.100/24, 192.0.2.101/24 dev vrrpdnoif9 scope host label vrrpdnoif9:mq"), "{stdout}");
    let location = format!("{}:{line}:", path.display());
    assert!(
        stderr.lines().any(|l| l.contains(&location) && l.contains("vrrpdnoif9") && l.contains("FAULT")),
        "expected a warning at {location} in:\n{stderr}"
    );
}
