//! `vrrpd import` on the seed documents' configurations (tests/import/seeds) and on a corpus
//! written after keepalived's and HAProxy's documentation (tests/import/corpus): the output
//! passes `vrrpd check`, means what the source meant, and what cannot be carried over (or is
//! carried over differently) is a note with its file and line.

#![allow(clippy::unwrap_used)] // a test fails by panicking

#[path = "import/coverage.rs"]
mod coverage;
#[path = "import/findings.rs"]
mod findings;

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/import").join(name)
}

/// Runs the import of the files, checks the result with `vrrpd check`, returns (toml, stderr).
fn import_files(keepalived: Option<&Path>, haproxy: Option<&Path>) -> (String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vrrpd"));
    command.arg("import");
    if let Some(k) = keepalived {
        command.arg("--keepalived").arg(k);
    }
    if let Some(h) = haproxy {
        command.arg("--haproxy").arg(h);
    }
    let out = command.output().unwrap();
    let (toml, notes) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert!(out.status.success(), "import of {keepalived:?} {haproxy:?} failed ({}):\n{notes}", out.status);
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

/// [`import_files`] on test data under tests/import.
fn import(keepalived: Option<&str>, haproxy: Option<&str>) -> (String, String) {
    import_files(keepalived.map(data).as_deref(), haproxy.map(data).as_deref())
}

/// [`import_files`] on text written to keepalived.conf and haproxy.cfg in a temporary directory.
fn import_text(keepalived: Option<&str>, haproxy: Option<&str>) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let k = keepalived.map(|t| write("keepalived.conf", t));
    let h = haproxy.map(|t| write("haproxy.cfg", t));
    import_files(k.as_deref(), h.as_deref())
}

fn has_line(notes: &str, file: &str, line: usize, text: &str) -> bool {
    notes.lines().any(|l| l.contains(&format!("{file}:{line}:")) && l.contains(text))
}

fn assert_contains(toml: &str, expected: &[&str]) {
    for e in expected {
        assert!(toml.contains(e), "missing {e:?} in:\n{toml}");
    }
}

/// The `[[proxy]]` section named `name`, up to the next proxy.
fn proxy_section<'a>(toml: &'a str, name: &str) -> &'a str {
    let start = toml.find(&format!("[[proxy]]\nname = \"{name}\"")).unwrap_or_else(|| panic!("no proxy {name} in:\n{toml}"));
    let rest = &toml[start + 1..];
    let end = rest.find("[[proxy]]").or_else(|| rest.find("[stats]")).map_or(toml.len(), |e| start + 1 + e);
    &toml[start..end]
}

#[test]
fn every_seed_and_corpus_file_imports_into_a_valid_configuration_and_every_line_left_behind_is_noted() {
    let mut files = Vec::new();
    for dir in ["seeds", "corpus"] {
        for entry in std::fs::read_dir(data(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.sort();
    let (mut keepalived, mut haproxy) = (0, 0);
    let mut silent = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let (format, notes) = match file.extension().and_then(|e| e.to_str()) {
            Some("conf") => {
                keepalived += 1;
                (coverage::Format::Keepalived, import_files(Some(file), None).1)
            }
            Some("cfg") => {
                haproxy += 1;
                (coverage::Format::Haproxy, import_files(None, Some(file)).1)
            }
            // Watcher scripts, read by the import (see haproxy_watcher_scripts_...).
            _ => continue,
        };
        let unexplained = coverage::unexplained_lines(&text, format, &notes, &file.display().to_string());
        if !unexplained.is_empty() {
            silent.push(format!("{name}: lines left behind without a note: {unexplained:#?}\nnotes:\n{notes}"));
        }
    }
    assert!(silent.is_empty(), "{}", silent.join("\n"));
    assert!(keepalived >= 10 && haproxy >= 10 && keepalived + haproxy >= 20 + 13, "{keepalived} + {haproxy} files");
    // Pairs, as they are deployed together.
    for (k, h) in [
        ("seeds/seed000-keepalived-master.conf", "seeds/seed000-haproxy.cfg"),
        ("seeds/seed000-keepalived-backup.conf", "seeds/seed000-haproxy.cfg"),
        ("seeds/seed001-keepalived-master.conf", "seeds/seed001-haproxy.cfg"),
        ("seeds/seed002-keepalived-master.conf", "seeds/seed002-haproxy.cfg"),
        ("seeds/seed003-keepalived-rabbitmq01.conf", "seeds/seed003-haproxy.cfg"),
        ("corpus/keepalived-man-full.conf", "corpus/haproxy-rabbitmq.cfg"),
        ("corpus/keepalived-mcast-src.conf", "corpus/haproxy-rabbitmq.cfg"),
        ("corpus/keepalived-many-scripts.conf", "corpus/haproxy-server-options.cfg"),
        ("corpus/keepalived-unicast.conf", "corpus/haproxy-amqps.cfg"),
        ("corpus/keepalived-active-active.conf", "corpus/haproxy-tcp-acl-routing.cfg"),
        ("corpus/keepalived-sync-group.conf", "corpus/haproxy-timeouts.cfg"),
    ] {
        import(Some(k), Some(h));
    }
}

#[test]
fn keepalived_master_and_haproxy_from_seed000_mean_the_same() {
    let (toml, notes) = import(Some("seeds/seed000-keepalived-master.conf"), Some("seeds/seed000-haproxy.cfg"));
    assert_contains(
        &toml,
        &[
            "router_id = \"NodeA\"",
            "state = \"MASTER\"",
            "virtual_router_id = 1\npriority = 100\nadvert_int = 1",
            "authentication = { auth_type = \"PASS\", auth_pass = \"root123\" }",
            "virtual_ipaddress = [\"192.168.16.130\"]",
            "track_proxy = [{ name = \"haproxy\", weight = 0 }]",
            "bind = \"0.0.0.0:5666\"\nbalance = \"roundrobin\"",
            "check = { kind = \"amqp\", interval = \"5000ms\", timeout = \"2000ms\", rise = 2, fall = 2 }",
            "name = \"rabbit3\"\naddress = \"192.168.16.128:5674\"",
            "[stats]\nlisten = \"192.168.16.128:8888\"\nrefresh = \"5s\"\nauth = { user = \"admin\", password = \"123456\" }",
            "maxconn = 10240",
        ],
    );
    // The HAProxy watcher is replaced by track_proxy (see haproxy_watcher_scripts_...).
    assert!(!toml.contains("chk_haproxy\"\nscript"), "{toml}");
    // `timeout client 5000` cuts idle AMQP clients: warned about, not carried over.
    assert!(has_line(&notes, "seed000-haproxy.cfg", 15, "would cut idle AMQP clients"), "{notes}");
    assert!(!toml.contains("timeout_idle"), "{toml}");
    assert!(has_line(&notes, "seed000-haproxy.cfg", 30, "`option tcplog`"), "{notes}");
    assert!(has_line(&notes, "seed000-haproxy.cfg", 23, "stats uri /haproxy"), "{notes}");
}

#[test]
fn lvs_and_unknown_keywords_are_listed_with_their_lines() {
    let (_, notes) = import(Some("seeds/seed003-keepalived-rabbitmq01.conf"), Some("seeds/seed003-haproxy.cfg"));
    assert!(has_line(&notes, "seed003-keepalived-rabbitmq01.conf", 8, "lvs_sync_daemon_inteface"), "{notes}");
    assert!(has_line(&notes, "seed003-keepalived-rabbitmq01.conf", 21, "virtual_server fwmark 1"), "{notes}");
    assert!(has_line(&notes, "seed003-haproxy.cfg", 3, "chroot /var/lib/haproxy"), "{notes}");
    let (_, notes) = import(Some("seeds/seed001-keepalived-master.conf"), None);
    assert!(has_line(&notes, "seed001-keepalived-master.conf", 27, "virtual_server 192.168.204.66 5672"), "{notes}");
}

#[test]
fn the_listen_line_address_and_defaults_carry_over() {
    let (toml, _) = import(None, Some("seeds/seed003-haproxy.cfg"));
    assert_contains(
        &toml,
        &[
            "bind = \"0.0.0.0:5670\"",
            "retries = 3",
            "redispatch = true",
            "maxconn = 3000",
            "timeout_idle = \"24h\"",
            "interval = \"2000ms\"",
        ],
    );
}

#[test]
fn backup_servers_and_a_stats_listener_without_auth() {
    let (toml, _) = import(None, Some("seeds/seed004-haproxy-warren.cfg"));
    assert!(toml.contains("name = \"rabbit_backup\"\naddress = \"172.17.0.6:5672\"\nbackup = true"), "{toml}");
    assert!(toml.contains("[stats]\nlisten = \"0.0.0.0:8101\""), "{toml}");
}

#[test]
fn unresolvable_servers_are_left_commented_out_and_said_so() {
    let (toml, notes) = import(Some("seeds/seed002-keepalived-master.conf"), Some("seeds/seed002-haproxy.cfg"));
    assert!(has_line(&notes, "seed002-haproxy.cfg", 18, "server rabbit1 rabbit1:5672: cannot resolve"), "{notes}");
    assert!(toml.contains("proxy rabbitmq-balancer left out"), "{toml}");
    // The manager UI balancer (mode http) would be balanced in TCP mode.
    assert!(has_line(&notes, "seed002-haproxy.cfg", 26, "mode http is balanced in TCP mode"), "{notes}");
    // keepalived's trap: weight -2 on 101 against a peer at 100 never hands over.
    assert!(has_line(&notes, "seed002-keepalived-master.conf", 8, "weight -2 lowers priority 101 to 99"), "{notes}");
    assert!(toml.contains("auth_pass = \"qwe86512\""), "keepalived sends only 8 bytes of the password:\n{toml}");
    assert!(has_line(&notes, "seed002-keepalived-master.conf", 21, "keepalived sent only the first 8"), "{notes}");
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

#[test]
fn several_binds_accept_proxy_allbackups_and_slowstart_carry_over() {
    let haproxy = "\
defaults
    mode tcp
    timeout connect 5s
    timeout client 3h
    timeout server 3h

listen amqp
    bind 192.0.2.100:5672 accept-proxy
    bind 192.0.2.100:5682 accept-proxy
    bind 192.0.2.100:5672
    balance leastconn
    option allbackups
    option redispatch
    server rabbit1 192.0.2.21:5672 check slowstart 60s
    server rabbit2 192.0.2.22:5672 check slowstart 90000
    server rabbit3 192.0.2.23:5672 check backup

listen mixed
    bind 192.0.2.100:5700 accept-proxy
    bind 192.0.2.100:5701
    balance leastconn
    option redispatch
    server rabbit1 192.0.2.21:5672 check
";
    let (toml, notes) = import_text(None, Some(haproxy));
    let amqp = proxy_section(&toml, "amqp");
    assert_contains(
        amqp,
        &[
            "bind = [\"192.0.2.100:5672\", \"192.0.2.100:5682\"]\naccept_proxy = true\nallbackups = true",
            "name = \"rabbit1\"\naddress = \"192.0.2.21:5672\"\nslowstart = \"60s\"",
            "name = \"rabbit2\"\naddress = \"192.0.2.22:5672\"\nslowstart = \"90000ms\"",
        ],
    );
    assert!(!amqp.contains("name = \"rabbit3\"\naddress = \"192.0.2.23:5672\"\nbackup = true\nslowstart"), "{amqp}");
    assert!(has_line(&notes, "haproxy.cfg", 10, "192.0.2.100:5672 is already a bind"), "{notes}");
    let mixed = proxy_section(&toml, "mixed");
    // accept-proxy is a bind's own, in HAProxy and in vrrpd.
    assert_contains(mixed, &["bind = [{ address = \"192.0.2.100:5700\", accept_proxy = true }, \"192.0.2.100:5701\"]\nbalance"]);
    assert!(!mixed.contains("allbackups"), "off unless the backend says so: {mixed}");
    assert!(!notes.contains("accept-proxy"), "nothing lost, nothing to say: {notes}");
    // HAProxy 1.4's `listen NAME ADDRESS` binds on the section line, without options: the
    // accept-proxy of the `bind` below is that bind's, not the section line's.
    let (toml, _) = import_text(
        None,
        Some("listen old 192.0.2.100:5800\n    mode tcp\n    bind 192.0.2.100:5801 accept-proxy\n    server r1 192.0.2.21:5672 check\n"),
    );
    assert_contains(
        proxy_section(&toml, "old"),
        &["bind = [\"192.0.2.100:5800\", { address = \"192.0.2.100:5801\", accept_proxy = true }]"],
    );
}

#[test]
fn track_process_track_file_and_sync_groups_carry_over_as_keepalived_meant_them() {
    let (toml, notes) = import_text(
        Some(
            "\
vrrp_track_process chk_haproxy {
    process /usr/sbin/haproxy -f /etc/haproxy
    param_match initial
    weight -10 reverse
    quorum 2
    quorum_max 4
    delay 1.5
}
track_file maint {
    file /var/run/keepalived/maint
    weight 0
    init_file 0 overwrite
}
vrrp_sync_group G1 {
    group {
        VI_1
        VI_2
        VI_GONE
    }
    track_process {
        chk_haproxy weight 0
    }
    notify_master /etc/keepalived/master.sh
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.100/24
    }
    track_file {
        maint
        nosuch
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 52
    virtual_ipaddress {
        192.0.2.101/24
    }
    track_process {
        chk_haproxy weight 5 reverse
    }
}
",
        ),
        None,
    );
    assert_contains(
        &toml,
        &[
            "[[vrrp_track_process]]\nname = \"chk_haproxy\"\nprocess = \"/usr/sbin/haproxy\"\nparams = [\"-f\", \"/etc/haproxy\"]\n\
             param_match = \"initial\"\nweight = -10\nreverse = true\nquorum = 2\nquorum_max = 4\ndelay = \"1500ms\"\n",
            "[[vrrp_track_file]]\nname = \"maint\"\nfile = \"/var/run/keepalived/maint\"\nweight = 0\ninit_file = 0\ninit_file_overwrite = true\n",
            "[[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\", \"VI_2\"]\ntrack_process = [{ name = \"chk_haproxy\", weight = 0 }]\n\
             notify_master = \"/etc/keepalived/master.sh\"\n",
            "track_file = [{ name = \"maint\" }]",
            "track_process = [{ name = \"chk_haproxy\", weight = 5, reverse = true }]",
        ],
    );
    let file = "keepalived.conf";
    assert!(has_line(&notes, file, 18, "VI_GONE is not an imported vrrp_instance"), "{notes}");
    assert!(!notes.contains("`notify_master`"), "the group's notify_master is carried over: {notes}");
    assert!(has_line(&notes, file, 33, "nosuch names no track_file"), "{notes}");
    assert!(has_line(&notes, file, 9, "non-root user could write the file"), "{notes}");
}

#[test]
fn vrrp_garp_interval_becomes_the_global_garp_interval() {
    let (toml, _) = import_text(
        Some("global_defs {\n    vrrp_garp_interval 0.05\n}\nvrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 51\n    virtual_ipaddress {\n        192.0.2.100/24\n    }\n}\n"),
        None,
    );
    assert_contains(&toml, &["[global]\n", "garp_interval = \"50ms\"\n"]);
}
