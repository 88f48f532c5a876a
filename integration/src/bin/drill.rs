//! Failover drill: plays each scenario on a namespace lab with the real vrrpd on both proxy
//! hosts and prints what a client probing the VIP saw, next to what RFC 3768 predicts.
//! `scripts/drill.sh` builds and runs it (root needed). Numbers only: pass/fail is the tests'
//! business.

use std::time::{Duration, Instant};

use clap::Parser;
use std::net::IpAddr;

use integration::lab::{vrrpd_binary, wait_until, Daemon, Greeters, Lab, Probe, ProbeReport, VIP, VIP6};
use integration::scenario::{
    keepalived_config, keepalived_v3_config, keepalived_v6_config, HostConfig, Instance, Proxy, Script, TAKEOVER,
};

/// The protocol both hosts speak: VRRPv2 with 1 s adverts, or VRRPv3 with 100 ms adverts.
#[derive(Clone, Copy)]
struct Timing {
    v3: bool,
    /// The VIP is IPv6 (VRRPv3 over IPv6).
    ipv6: bool,
}

impl Timing {
    fn advert_int(self) -> f64 {
        if self.v3 {
            0.1
        } else {
            1.0
        }
    }

    /// Skew_Time: (256 - priority) / 256 s with VRRPv2, times the interval with VRRPv3.
    fn skew(self, priority: u8) -> f64 {
        let fraction = (256.0 - f64::from(priority)) / 256.0;
        if self.v3 {
            fraction * self.advert_int()
        } else {
            fraction
        }
    }

    fn mdi(self, priority: u8) -> f64 {
        3.0 * self.advert_int() + self.skew(priority)
    }
}
const SCENARIOS: [&str; 7] =
    ["link-cut", "kill-9", "graceful-stop", "preemption-back", "track-script", "proxy-health", "auth-mismatch"];
/// Scenarios that only make sense with vrrpd on both hosts.
const VRRPD_ONLY: [&str; 2] = ["proxy-health", "auth-mismatch"];

#[derive(Parser)]
#[command(about = "Failover drill on a namespace lab: prints each scenario's client-visible outage")]
struct Args {
    /// Scenarios to play (default: all): link-cut, kill-9, graceful-stop, preemption-back,
    /// track-script, proxy-health, auth-mismatch.
    #[arg(long = "scenario")]
    scenarios: Vec<String>,
    /// What runs on both proxy hosts: vrrpd, or keepalived 2.2.7 for comparison.
    #[arg(long, default_value = "vrrpd", value_parser = ["vrrpd", "keepalived"])]
    peer: String,
    /// VRRPv3 with 100 ms adverts (keepalived: vrrp_version 3, advert_int 0.1) instead of
    /// VRRPv2 with 1 s adverts.
    #[arg(long)]
    v3: bool,
    /// An IPv6 VIP (2001:db8::100/64) over VRRPv3 with 100 ms adverts; implies --v3.
    #[arg(long)]
    ipv6: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    Vrrpd,
    Keepalived,
}

/// What a proxy host runs besides its VRRP instance.
#[derive(Clone, Copy, Default)]
struct Extras<'a> {
    /// A track script (weight -20) that fails when this file is gone.
    flag: Option<&'a std::path::Path>,
    /// vrrpd's balancer over the lab's brokers, with track_proxy weight 0.
    proxy: bool,
}

fn start(lab: &Lab, host: &str, peer: Peer, timing: Timing, extras: Extras) -> Daemon {
    let priority = if host == "a" { 101 } else { 100 };
    match peer {
        Peer::Vrrpd => {
            let mut instance = Instance::vi1(priority);
            if timing.ipv6 {
                instance = instance.ipv6(VIP6, "100ms");
            } else if timing.v3 {
                instance = instance.v3("100ms");
            }
            let mut config = HostConfig::new(host);
            if let Some(flag) = extras.flag {
                instance = instance.track_script("chk");
                config = config
                    .script(Script::new("chk", format!("/usr/bin/test -e {}", flag.display())).interval("500ms").weight(-20));
            }
            if extras.proxy {
                instance = instance.track_proxy("amqp", 0);
                let check = r#"kind = "tcp", interval = "100ms", fastinter = "100ms", timeout = "100ms", rise = 1, fall = 1"#;
                config = config.proxy(Proxy::amqp(check, 2));
            }
            let args: &[&str] = if host == "a" { &["--state", "MASTER"] } else { &[] };
            config.instance(instance).start(lab, args)
        }
        Peer::Keepalived => {
            let state = if host == "a" { "MASTER" } else { "BACKUP" };
            let mut config = if timing.ipv6 {
                keepalived_v6_config(host, priority, state, "0.1", VIP6)
            } else if timing.v3 {
                keepalived_v3_config(host, priority, state, "0.1")
            } else {
                keepalived_config(host, priority, state)
            };
            if let Some(flag) = extras.flag {
                let script = format!(
                    "vrrp_script chk {{\n    script \"/usr/bin/test -e {}\"\n    interval 1\n    weight -20\n}}\n",
                    flag.display()
                );
                config = format!(
                    "{script}{}",
                    config.replacen(
                        "    virtual_ipaddress {\n",
                        "    track_script {\n        chk\n    }\n    virtual_ipaddress {\n",
                        1
                    )
                );
            }
            Daemon::keepalived(lab, host, &config)
        }
    }
}

struct Row {
    scenario: &'static str,
    outage: Duration,
    moved: Option<Duration>,
    expected: String,
    note: String,
}

fn main() {
    let args = Args::parse();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("drill: needs root (network namespaces, raw sockets)");
        std::process::exit(2);
    }
    for s in &args.scenarios {
        if !SCENARIOS.contains(&s.as_str()) {
            eprintln!("drill: unknown scenario {s:?}; known: {}", SCENARIOS.join(", "));
            std::process::exit(2);
        }
    }
    let peer = if args.peer == "keepalived" { Peer::Keepalived } else { Peer::Vrrpd };
    // The intruder of auth-mismatch sends VRRPv2 with a password: VRRPv3 has no authentication.
    let wanted = |name: &str| {
        (args.scenarios.is_empty() || args.scenarios.iter().any(|s| s == name))
            && (peer == Peer::Vrrpd || !VRRPD_ONLY.contains(&name))
            && !((args.v3 || args.ipv6) && name == "auth-mismatch")
    };
    let who = if peer == Peer::Vrrpd { "vrrpd" } else { "keepalived 2.2.7" };
    let timing = Timing { v3: args.v3 || args.ipv6, ipv6: args.ipv6 };
    let vip: IpAddr = if timing.ipv6 { VIP6.into() } else { VIP.into() };
    let (mdi_a, mdi_b, skew_b) = (timing.mdi(101), timing.mdi(100), timing.skew(100));
    let protocol = match (timing.ipv6, timing.v3) {
        (true, _) => "VRRPv3 over IPv6 (VIP 2001:db8::100), advert_int 100 ms",
        (false, true) => "VRRPv3, advert_int 100 ms",
        _ => "VRRPv2, advert_int 1 s",
    };
    println!("{who} failover drill: A priority 101 (MASTER), B priority 100, {protocol}");
    println!("Master_Down_Interval(B) = {mdi_b:.3} s, Skew_Time(B) = {skew_b:.3} s; probe: ping every 10 ms from the client\n");

    let lab = Lab::up("drill");
    let _brokers = wanted("proxy-health").then(|| Greeters::start(&lab));
    let mut a = start(&lab, "a", peer, timing, Extras::default());
    let mut b = start(&lab, "b", peer, timing, Extras::default());
    lab.expect_holder_of(vip, "a", TAKEOVER, &[&a, &b]);
    let mut rows = Vec::new();

    if wanted("link-cut") {
        let (report, moved) = measure(&lab, vip, "b", true, || lab.cut_link("a"));
        let within = (report.outage.as_secs_f64() - mdi_b).abs() <= 0.1;
        rows.push(Row {
            scenario: "master link cut",
            outage: report.outage,
            moved,
            expected: format!("MDI(B) {mdi_b:.3} s"),
            note: format!("within 100 ms of MDI: {}", yes_no(within)),
        });
        lab.heal_link("a");
        lab.expect_holder_of(vip, "a", Duration::from_secs(10), &[&a, &b]);
    }

    if wanted("kill-9") {
        let (report, moved) = measure(&lab, vip, "b", true, || a.kill());
        rows.push(Row {
            scenario: "master kill -9",
            outage: report.outage,
            moved,
            expected: format!("VIP moves after MDI(B) {mdi_b:.3} s"),
            note: "A's kernel keeps answering ping on the VIP it could not remove".into(),
        });
        // Restarted as systemd would; vrrpd removes the stale VIP at start.
        let prefix = if timing.ipv6 { 64 } else { 24 };
        let _ = lab.exec("a", &["ip", "addr", "del", &format!("{vip}/{prefix}"), "dev", "eth0"]);
        a = start(&lab, "a", peer, timing, Extras::default());
        lab.expect_holder_of(vip, "a", Duration::from_secs(10), &[&a, &b]);
    }

    if wanted("graceful-stop") {
        let (report, moved) = measure(&lab, vip, "b", false, || {
            a.stop();
        });
        let within = (report.outage.as_secs_f64() - skew_b).abs() <= 0.1;
        rows.push(Row {
            scenario: "graceful stop",
            outage: report.outage,
            moved,
            expected: format!("Skew_Time(B) {skew_b:.3} s"),
            note: format!("within 100 ms of Skew_Time: {}", yes_no(within)),
        });
    }

    if wanted("preemption-back") {
        if lab.holders_of(vip) != ["b"] {
            a.stop();
            lab.expect_holder_of(vip, "b", Duration::from_secs(10), &[&a, &b]);
        }
        let (report, moved) = measure(&lab, vip, "a", false, || a = start(&lab, "a", peer, timing, Extras::default()));
        rows.push(Row {
            scenario: "preemption back",
            outage: report.outage,
            moved,
            expected: format!("VIP back after MDI(A) {mdi_a:.3} s"),
            note: "A starts BACKUP, preempts the lower master".into(),
        });
    }

    if wanted("track-script") {
        a.stop();
        let flag = lab.file("healthy");
        std::fs::write(&flag, "").expect("flag file");
        a = start(&lab, "a", peer, timing, Extras { flag: Some(&flag), ..Extras::default() });
        lab.expect_holder_of(vip, "a", Duration::from_secs(10), &[&a, &b]);
        let (report, moved) = measure(&lab, vip, "b", true, || std::fs::remove_file(&flag).expect("remove flag"));
        rows.push(Row {
            scenario: "health check fails (script, -20)",
            outage: report.outage,
            moved,
            expected: format!("MDI(B) {mdi_b:.3} s + the script's interval"),
            note: "the weight lowers A below B; B waits out its timer".into(),
        });
        std::fs::write(&flag, "").expect("flag file");
        lab.expect_holder_of(vip, "a", Duration::from_secs(10), &[&a, &b]);
    }

    if wanted("proxy-health") {
        a.stop();
        b.stop();
        a = start(&lab, "a", peer, timing, Extras { proxy: true, ..Extras::default() });
        b = start(&lab, "b", peer, timing, Extras { proxy: true, ..Extras::default() });
        lab.expect_holder_of(vip, "a", Duration::from_secs(10), &[&a, &b]);
        std::thread::sleep(Duration::from_secs(1));
        let (report, moved) = measure(&lab, vip, "b", true, || {
            for broker in ["192.0.2.21/32", "192.0.2.22/32"] {
                let _ = lab.exec("a", &["ip", "route", "add", "blackhole", broker]);
            }
        });
        rows.push(Row {
            scenario: "health check fails (proxy, FAULT)",
            outage: report.outage,
            moved,
            expected: format!("check (100 ms) + Skew_Time(B) {skew_b:.3} s"),
            note: "no broker left for A's proxy: priority 0 at once".into(),
        });
        for broker in ["192.0.2.21/32", "192.0.2.22/32"] {
            let _ = lab.exec("a", &["ip", "route", "del", "blackhole", broker]);
        }
        lab.expect_holder_of(vip, "a", Duration::from_secs(10), &[&a, &b]);
    }

    if wanted("auth-mismatch") {
        let probe = Probe::start(&lab, vip);
        let inject = vrrpd_binary().with_file_name("vrrp-inject");
        let out = lab
            .exec("client", &[inject.to_str().expect("utf-8"), "--password", "wrong", "--count", "30", "--interval-ms", "100"]);
        std::thread::sleep(Duration::from_millis(300));
        let report = probe.stop();
        let held = lab.holders_of(vip) == ["a"];
        let logged = a.log().matches("reason=auth_password").count();
        rows.push(Row {
            scenario: "auth mismatch (intruder, prio 254)",
            outage: report.outage,
            moved: None,
            expected: "VIP stays on A".into(),
            note: format!(
                "injected {}; VIP on A: {}; rate-limited log lines on A: {logged}",
                if out.status.success() { "30" } else { "FAILED" },
                yes_no(held)
            ),
        });
    }

    println!("{:<36} {:>12} {:>14}  {:<42} note", "scenario", "outage", "VIP moved in", "expected");
    for row in &rows {
        let moved = row.moved.map_or("-".to_owned(), |d| format!("{:.3} s", d.as_secs_f64()));
        println!("{:<36} {:>10.3} s {:>14}  {:<42} {}", row.scenario, row.outage.as_secs_f64(), moved, row.expected, row.note);
    }
    drop((a, b));
}

/// Runs `action` while the client probes the VIP: returns the probe's longest outage and the
/// time from the action until `to` holds the VIP. With `after_advert`, the action comes right
/// after an advert seen on B, so the backup's timer has just been reset.
fn measure(lab: &Lab, vip: IpAddr, to: &str, after_advert: bool, action: impl FnOnce()) -> (ProbeReport, Option<Duration>) {
    let probe = Probe::start(lab, vip);
    std::thread::sleep(Duration::from_millis(300));
    if after_advert {
        lab.wait_for_advert("b");
    }
    let t0 = Instant::now();
    action();
    let moved = moved_to(lab, vip, to, t0);
    std::thread::sleep(Duration::from_millis(500));
    (probe.stop(), moved)
}

/// Time from `t0` until `host` alone holds the VIP (`ip -br a`), polled every 20 ms.
fn moved_to(lab: &Lab, vip: IpAddr, host: &str, t0: Instant) -> Option<Duration> {
    wait_until(Duration::from_secs(15), || lab.holders_of(vip).contains(&host)).then(|| t0.elapsed())
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}
