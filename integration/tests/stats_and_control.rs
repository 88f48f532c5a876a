//! The stats page and the control socket of a running vrrpd, as an operator uses them during a
//! failover drill and a broker's maintenance. Needs root.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use integration::lab::{vrrpd_binary, Daemon, Greeters, Lab, LineClient, VIP};
use integration::netns::http_get;
use integration::netns_available;
use integration::scenario::{HostConfig, Pair, Proxy, Stats, TAKEOVER};

const PROGRAMS: &[&str] = &["ip"];

/// VI_1, a proxy over both brokers and the stats page on port 8100.
fn with_stats(host: &str, priority: u8, stats: Stats) -> HostConfig {
    let proxy = Proxy::amqp(r#"kind = "tcp", interval = "200ms", rise = 1, fall = 2, timeout = "200ms""#, 2);
    HostConfig::vi1(host, priority).proxy(proxy).stats(stats)
}

fn stats_page() -> Stats {
    Stats::on(8100).refresh("2s")
}

/// A session through the VIP.
fn open(lab: &Lab) -> LineClient {
    LineClient::connect(lab, SocketAddr::from((VIP, 5672)))
}

fn ctl(lab: &Lab, host: &str, words: &[&str]) -> (bool, String, String) {
    let out = Daemon::ctl(lab, host, words);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_stats_endpoints_show_both_halves_behind_basic_auth() {
    if !netns_available("the_stats_endpoints_show_both_halves_behind_basic_auth", PROGRAMS) {
        return;
    }
    let lab = Lab::up("stats");
    let _backends = Greeters::start(&lab);
    let (_a, _b) = Pair::with(|host, priority| with_stats(host, priority, stats_page().auth("admin", "s3cret-pw"))).start(&lab);
    let _session = open(&lab);
    let client = lab.ns("client");
    let get = |host: &str, path: &str, auth: Option<(&str, &str)>| {
        let address: SocketAddr = format!("{host}:8100").parse().unwrap();
        http_get(&client, address, path, auth).unwrap()
    };
    let good = Some(("admin", "s3cret-pw"));

    // Wrong or missing credentials: 401 and nothing else.
    for auth in [None, Some(("admin", "wrong")), Some(("root", "s3cret-pw"))] {
        let response = get("192.0.2.100", "/", auth);
        assert_eq!(response.status, 401, "{auth:?}");
        assert!(response.body.is_empty(), "{response:?}");
        assert!(response.headers.contains("WWW-Authenticate: Basic") || response.headers.contains("www-authenticate: Basic"));
        assert_eq!(get("192.0.2.100", "/metrics", auth).status, 401);
    }

    let page = get("192.0.2.100", "/", good);
    assert_eq!(page.status, 200);
    for needle in ["MASTER", "VI_1", "192.0.2.100/24", "rabbit1", "rabbit2", ">UP<", "http-equiv=\"refresh\" content=\"2\""] {
        assert!(page.body.contains(needle), "{needle} missing from the page");
    }
    assert!(!page.body.contains("s3cret"), "no password on the page");

    let json: serde_json::Value = serde_json::from_str(&get("192.0.2.100", "/stats.json", good).body).unwrap();
    assert_eq!(json["instances"][0]["state"], "MASTER");
    assert_eq!(json["instances"][0]["vips"][0], "192.0.2.100/24");
    assert_eq!(json["proxies"][0]["servers"].as_array().unwrap().len(), 2);
    assert_eq!(json["proxies"][0]["sessions"]["current"], 1);

    let csv = get("192.0.2.100", "/stats;csv", good).body;
    assert!(csv.starts_with("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,"), "{csv}");
    assert!(csv.lines().all(|l| l.split(',').count() == 40), "every row has HAProxy's columns:\n{csv}");
    assert!(csv.lines().any(|l| l.starts_with("amqp,rabbit1,") && l.contains(",UP,")), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("amqp,BACKEND,")), "{csv}");
    assert_eq!(get("192.0.2.100", "/stats.csv", good).body, csv.replace("\r", ""));

    let metrics = get("192.0.2.100", "/metrics", good).body;
    assert!(metrics.contains("vrrpd_instance_master{instance=\"VI_1\",vrid=\"51\"} 1"), "{metrics}");
    assert!(metrics.contains("vrrpd_server_up{proxy=\"amqp\",server=\"rabbit1\"} 1"), "{metrics}");
    assert!(metrics.contains("# TYPE vrrpd_proxy_sessions_total counter"), "{metrics}");

    // The backup's page tells who the master is (from the master's next advert at the latest).
    let backup = || -> serde_json::Value { serde_json::from_str(&get("192.0.2.12", "/stats.json", good).body).unwrap() };
    assert!(
        integration::lab::wait_until(Duration::from_secs(3), || backup()["instances"][0]["master"] == "192.0.2.11"),
        "{}",
        backup()
    );
    assert_eq!(backup()["instances"][0]["state"], "BACKUP");
    assert_eq!(get("192.0.2.100", "/nope", good).status, 404);
}

#[test]
fn ctl_drains_and_disables_a_broker_and_sessions_move() {
    if !netns_available("ctl_drains_and_disables_a_broker_and_sessions_move", PROGRAMS) {
        return;
    }
    let lab = Lab::up("ctl");
    let _backends = Greeters::start(&lab);
    let a = with_stats("a", 101, stats_page()).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let mut sessions: Vec<LineClient> = (0..4).map(|_| open(&lab)).collect();
    assert_eq!(sessions.iter().filter(|s| s.greeting == "rabbit1").count(), 2);

    // Drain: existing sessions stay, new ones avoid rabbit1.
    let (ok, out, _) = ctl(&lab, "a", &["server", "drain", "amqp/rabbit1"]);
    assert!(ok && out.contains("amqp/rabbit1: ready -> draining; 2 sessions stay"), "{out}");
    assert!(sessions.iter_mut().all(LineClient::alive));
    for _ in 0..3 {
        assert_eq!(open(&lab).greeting, "rabbit2");
    }
    let (_, status, _) = ctl(&lab, "a", &["status"]);
    assert!(status.contains("DRAIN"), "{status}");

    // Disable: maintenance closes rabbit1's sessions; the clients reconnect to rabbit2.
    let (ok, out, _) = ctl(&lab, "a", &["server", "disable", "amqp/rabbit1"]);
    assert!(ok && out.contains("in maintenance; 2 sessions closed"), "{out}");
    for session in sessions.iter_mut() {
        if session.greeting == "rabbit1" {
            assert!(!session.alive(), "the maintenance closed it");
            *session = open(&lab);
            assert_eq!(session.greeting, "rabbit2");
        }
    }

    // Back in service, then weight 0 on rabbit2 sends every new session to rabbit1.
    assert!(ctl(&lab, "a", &["server", "enable", "amqp/rabbit1"]).0);
    let (ok, out, _) = ctl(&lab, "a", &["server", "weight", "amqp/rabbit2", "0"]);
    assert!(ok && out.contains("weight 1 -> 0"), "{out}");
    assert_eq!(open(&lab).greeting, "rabbit1");
    let (ok, out, _) = ctl(&lab, "a", &["shutdown-sessions", "amqp/rabbit2"]);
    assert!(ok && out.contains("sessions closed"), "{out}");

    let (ok, json, _) = ctl(&lab, "a", &["status", "--json"]);
    assert!(ok);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["proxies"][0]["servers"][1]["weight"], 0);

    // Mistakes get a clear error and exit status 1.
    for (words, message) in [
        (&["server", "drain", "amqp/rabbit9"][..], "has no server named \"rabbit9\""),
        (&["server", "drain", "amqps/rabbit1"][..], "no proxy named \"amqps\""),
        (&["server", "weight", "amqp/rabbit1", "999"][..], "outside 0..=256"),
        (&["server", "drain", "rabbit1"][..], "is not PROXY/SERVER"),
        (&["resign", "VI_9"][..], "no instance named \"VI_9\""),
        (&["launch", "rockets"][..], "unknown command"),
    ] {
        let (ok, _, err) = ctl(&lab, "a", words);
        assert!(!ok && err.contains(message), "{words:?}: {err}");
    }
    let out = Command::new(vrrpd_binary()).args(["ctl", "--socket", "/nonexistent/vrrpd.sock", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach vrrpd at /nonexistent/vrrpd.sock"));
    let socket = integration::lab::control_socket(&lab, "a");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the control socket is for root only");
}

#[test]
fn ctl_resign_hands_the_vip_over_and_resume_takes_it_back() {
    if !netns_available("ctl_resign_hands_the_vip_over_and_resume_takes_it_back", PROGRAMS) {
        return;
    }
    let lab = Lab::up("resign");
    let (a, b) = Pair::default().start(&lab);
    let (ok, out, _) = ctl(&lab, "a", &["resign", "VI_1"]);
    assert!(ok && out.contains("VI_1: resigned"), "{out}");
    // Priority 0: B takes over after its Skew_Time; A stays BACKUP despite its priority.
    lab.expect_holder(VIP, "b", Duration::from_secs(2), &[&a, &b]);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(lab.holders(VIP), ["b"]);
    assert!(ctl(&lab, "a", &["status"]).1.contains("BACKUP (resigned)"));
    let (ok, out, _) = ctl(&lab, "a", &["resume", "VI_1"]);
    assert!(ok && out.contains("resumed"), "{out}");
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
}

#[test]
fn ctl_reload_applies_a_good_file_and_explains_a_bad_one() {
    if !netns_available("ctl_reload_applies_a_good_file_and_explains_a_bad_one", PROGRAMS) {
        return;
    }
    let lab = Lab::up("creload");
    let a = HostConfig::vi1("a", 101).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
    let path = lab.file("vrrpd-a.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &config).unwrap();
    let (ok, out, _) = ctl(&lab, "a", &["reload"]);
    assert!(ok && out.contains("configuration reloaded"), "{out}");
    std::fs::write(&path, config.replace("priority = 101", "priority = 300")).unwrap();
    let (ok, _, err) = ctl(&lab, "a", &["reload"]);
    assert!(!ok && err.contains("reload rejected") && err.contains("priority: 300 is outside 1..=255"), "{err}");
    assert_eq!(lab.holders(VIP), ["a"]);
}

#[test]
fn the_stats_page_as_a_person_sees_it_in_chromium() {
    if !netns_available("the_stats_page_as_a_person_sees_it_in_chromium", &["ip", "chromium"]) {
        return;
    }
    let lab = Lab::up("chrome");
    let _backends = Greeters::start(&lab);
    let (_a, _b) = Pair::with(|host, priority| with_stats(host, priority, stats_page())).start(&lab);
    let _sessions: Vec<LineClient> = (0..3).map(|_| open(&lab)).collect();
    assert!(ctl(&lab, "a", &["server", "drain", "amqp/rabbit2"]).0);

    let artifacts = integration::repo_root().join("integration/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("stats-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let profile = lab.file("chromium-profile");
    let chromium = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "netns",
            "exec",
            &lab.ns("client"),
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("http://192.0.2.100:8100/".to_owned());
        Command::new("ip").args(&args).output().unwrap()
    };
    let dom = chromium(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    // What a person looks for: who is master, and each broker's state.
    assert!(dom.contains("class=\"good\">MASTER</td>"), "{dom}");
    assert!(dom.contains("class=\"good\">UP</td>"), "rabbit1 UP:\n{dom}");
    assert!(dom.contains("class=\"drain\">DRAIN</td>"), "rabbit2 draining:\n{dom}");
    let shot = chromium(&[&format!("--screenshot={}", screenshot.display())]);
    assert!(screenshot.exists(), "no screenshot: {}", String::from_utf8_lossy(&shot.stderr));
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
}
