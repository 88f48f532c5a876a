//! `vrrpd import` on every keepalived and HAProxy configuration of the seed documents (copied
//! under tests/import/): the output passes `vrrpd check`, means what the source meant, and
//! what cannot be carried over is listed with its file and line.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::Command;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/import").join(name)
}

/// Runs the import, checks the result with `vrrpd check`, returns (toml, stderr).
fn import(keepalived: Option<&str>, haproxy: Option<&str>) -> (String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vrrpd"));
    command.arg("import");
    if let Some(k) = keepalived {
        command.arg("--keepalived").arg(sample(k));
    }
    if let Some(h) = haproxy {
        command.arg("--haproxy").arg(sample(h));
    }
    let out = command.output().unwrap();
    let (toml, notes) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(out.status.success(), "{notes}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imported.toml");
    std::fs::write(&path, &toml).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_vrrpd"))
        .args(["check", "--offline", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "vrrpd check refused the import of {keepalived:?} {haproxy:?}:\n{}\n{toml}",
        String::from_utf8_lossy(&check.stderr)
    );
    (toml, notes)
}

fn has_line(notes: &str, file: &str, line: usize, text: &str) -> bool {
    notes.lines().any(|l| l.contains(&format!("{file}:{line}:")) && l.contains(text))
}

#[test]
fn every_seed_configuration_imports_into_a_valid_vrrpd_configuration() {
    let keepalived = [
        "seed000-keepalived-master.conf",
        "seed000-keepalived-backup.conf",
        "seed001-keepalived-master.conf",
        "seed002-keepalived-master.conf",
        "seed002-keepalived-backup.conf",
        "seed003-keepalived-rabbitmq01.conf",
    ];
    let haproxy = [
        "seed000-haproxy.cfg",
        "seed001-haproxy.cfg",
        "seed002-haproxy.cfg",
        "seed003-haproxy.cfg",
        "seed004-haproxy.cfg",
        "seed004-haproxy-warren.cfg",
    ];
    for k in keepalived {
        import(Some(k), None);
    }
    for h in haproxy {
        import(None, Some(h));
    }
    let found: Vec<_> = std::fs::read_dir(sample(""))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".md"))
        .collect();
    assert_eq!(found.len(), keepalived.len() + haproxy.len(), "every sample is imported here");
}

#[test]
fn keepalived_master_and_haproxy_from_seed000_mean_the_same() {
    let (toml, notes) = import(Some("seed000-keepalived-master.conf"), Some("seed000-haproxy.cfg"));
    for expected in [
        "router_id = \"NodeA\"",
        "name = \"chk_haproxy\"\nscript = \"/etc/keepalived/check_haproxy.sh\"\ninterval = \"5s\"\nweight = 2",
        "state = \"MASTER\"",
        "virtual_router_id = 1\npriority = 100\nadvert_int = 1",
        "authentication = { auth_type = \"PASS\", auth_pass = \"root123\" }",
        "virtual_ipaddress = [\"192.168.16.130\"]",
        "track_script = [{ name = \"chk_haproxy\" }]",
        "track_proxy = [{ name = \"haproxy\", weight = 0 }]",
        "bind = \"0.0.0.0:5666\"\nbalance = \"roundrobin\"",
        "check = { kind = \"amqp\", interval = \"5000ms\", timeout = \"2000ms\", rise = 2, fall = 2 }",
        "name = \"rabbit3\"\naddress = \"192.168.16.128:5674\"",
        "[stats]\nlisten = \"192.168.16.128:8888\"\nrefresh = \"5s\"\nauth = { user = \"admin\", password = \"123456\" }",
        "maxconn = 10240",
    ] {
        assert!(toml.contains(expected), "missing {expected:?} in:\n{toml}");
    }
    // `timeout client 5000` cuts idle AMQP clients: warned about, not carried over.
    assert!(has_line(&notes, "seed000-haproxy.cfg", 15, "would cut idle AMQP clients"), "{notes}");
    assert!(!toml.contains("timeout_idle"), "{toml}");
    assert!(has_line(&notes, "seed000-haproxy.cfg", 30, "`option tcplog`"), "{notes}");
    assert!(has_line(&notes, "seed000-haproxy.cfg", 23, "stats uri /haproxy"), "{notes}");
}

#[test]
fn lvs_and_unknown_keywords_are_listed_with_their_lines() {
    let (_, notes) = import(Some("seed003-keepalived-rabbitmq01.conf"), Some("seed003-haproxy.cfg"));
    assert!(has_line(&notes, "seed003-keepalived-rabbitmq01.conf", 8, "lvs_sync_daemon_inteface"), "{notes}");
    assert!(has_line(&notes, "seed003-keepalived-rabbitmq01.conf", 21, "virtual_server fwmark 1"), "{notes}");
    assert!(has_line(&notes, "seed003-haproxy.cfg", 3, "chroot /var/lib/haproxy"), "{notes}");
    let (_, notes) = import(Some("seed001-keepalived-master.conf"), None);
    assert!(has_line(&notes, "seed001-keepalived-master.conf", 27, "virtual_server 192.168.204.66 5672"), "{notes}");
}

#[test]
fn the_listen_line_address_and_defaults_carry_over() {
    let (toml, _) = import(None, Some("seed003-haproxy.cfg"));
    for expected in [
        "bind = \"0.0.0.0:5670\"",
        "retries = 3",
        "redispatch = true",
        "maxconn = 3000",
        "timeout_idle = \"24h\"",
        "interval = \"2000ms\"",
    ] {
        assert!(toml.contains(expected), "missing {expected:?} in:\n{toml}");
    }
}

#[test]
fn backup_servers_and_a_stats_listener_without_auth() {
    let (toml, _) = import(None, Some("seed004-haproxy-warren.cfg"));
    assert!(toml.contains("name = \"rabbit_backup\"\naddress = \"172.17.0.6:5672\"\nbackup = true"), "{toml}");
    assert!(toml.contains("[stats]\nlisten = \"0.0.0.0:8101\""), "{toml}");
}

#[test]
fn unresolvable_servers_are_left_commented_out_and_said_so() {
    let (toml, notes) = import(Some("seed002-keepalived-master.conf"), Some("seed002-haproxy.cfg"));
    assert!(has_line(&notes, "seed002-haproxy.cfg", 18, "server rabbit1 rabbit1:5672: cannot resolve"), "{notes}");
    assert!(toml.contains("proxy rabbitmq-balancer left out"), "{toml}");
    // The manager UI balancer (mode http) would be balanced in TCP mode.
    assert!(has_line(&notes, "seed002-haproxy.cfg", 26, "mode http is balanced in TCP mode"), "{notes}");
    // keepalived's trap: weight -2 on 101 against a peer at 100 never hands over.
    assert!(has_line(&notes, "seed002-keepalived-master.conf", 8, "weight -2 lowers priority 101 to 99"), "{notes}");
    assert!(toml.contains("auth_pass = \"qwe86512\""), "keepalived sends only 8 bytes of the password:\n{toml}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("keepalived.conf");
    std::fs::write(&broken, "vrrp_instance VI_1 {\n    state MASTER\n").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_vrrpd")).args(["import", "--keepalived", broken.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keepalived.conf:1: block opened here is never closed"));
    let out = Command::new(env!("CARGO_BIN_EXE_vrrpd")).args(["import", "--haproxy", "/nonexistent.cfg"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.cfg: cannot read"));
    let out = Command::new(env!("CARGO_BIN_EXE_vrrpd")).args(["import"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
