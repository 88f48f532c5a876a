//! Failover drill: plays each scenario on a namespace lab with the real vrrpd on both proxy
//! hosts and prints what a client probing the VIP saw, next to what RFC 3768 predicts.
//! `scripts/drill.sh` builds and runs it (root needed). Numbers only: pass/fail is the tests'
//! business.

use std::time::{Duration, Instant};

use clap::Parser;
use integration::lab::{vrrpd_binary, vrrpd_config, wait_until, Daemon, Lab, Probe, ProbeReport, VIP};

/// Priorities 101 (A) and 100 (B), advert_int 1.
const MDI_A: f64 = 3.0 + 155.0 / 256.0;
const MDI_B: f64 = 3.0 + 156.0 / 256.0;
const SKEW_B: f64 = 156.0 / 256.0;
const SCENARIOS: [&str; 6] = ["link-cut", "kill-9", "graceful-stop", "preemption-back", "track-script", "auth-mismatch"];

#[derive(Parser)]
#[command(about = "Failover drill on a namespace lab: prints each scenario's client-visible outage")]
struct Args {
    /// Scenarios to play (default: all): link-cut, kill-9, graceful-stop, preemption-back,
    /// track-script, auth-mismatch.
    #[arg(long = "scenario")]
    scenarios: Vec<String>,
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
    let wanted = |name: &str| args.scenarios.is_empty() || args.scenarios.iter().any(|s| s == name);
    println!("vrrpd failover drill: A priority 101 (MASTER), B priority 100, advert_int 1 s");
    println!("Master_Down_Interval(B) = {MDI_B:.3} s, Skew_Time(B) = {SKEW_B:.3} s; probe: ping every 10 ms from the client\n");

    let lab = Lab::up("drill");
    let mut a = start_a(&lab, "");
    let b = Daemon::vrrpd(&lab, "b", &vrrpd_config("b", 100, "", ""), &[]);
    lab.expect_holder(VIP, "a", Duration::from_secs(8), &[&a, &b]);
    let mut rows = Vec::new();

    if wanted("link-cut") {
        let (report, moved) = measure(&lab, "b", true, || lab.cut_link("a"));
        let within = (report.outage.as_secs_f64() - MDI_B).abs() <= 0.1;
        rows.push(Row {
            scenario: "master link cut",
            outage: report.outage,
            moved,
            expected: format!("MDI(B) {MDI_B:.3} s"),
            note: format!("within 100 ms of MDI: {}", yes_no(within)),
        });
        lab.heal_link("a");
        lab.expect_holder(VIP, "a", Duration::from_secs(10), &[&a, &b]);
    }

    if wanted("kill-9") {
        let (report, moved) = measure(&lab, "b", true, || a.kill());
        rows.push(Row {
            scenario: "master kill -9",
            outage: report.outage,
            moved,
            expected: format!("VIP moves after MDI(B) {MDI_B:.3} s"),
            note: "A's kernel keeps answering ping on the VIP it could not remove".into(),
        });
        a = start_a(&lab, "");
        lab.expect_holder(VIP, "a", Duration::from_secs(10), &[&a, &b]);
    }

    if wanted("graceful-stop") {
        let (report, moved) = measure(&lab, "b", false, || {
            a.stop();
        });
        let within = (report.outage.as_secs_f64() - SKEW_B).abs() <= 0.1;
        rows.push(Row {
            scenario: "graceful stop",
            outage: report.outage,
            moved,
            expected: format!("Skew_Time(B) {SKEW_B:.3} s"),
            note: format!("within 100 ms of Skew_Time: {}", yes_no(within)),
        });
    }

    if wanted("preemption-back") {
        if lab.holders(VIP) != ["b"] {
            a.stop();
            lab.expect_holder(VIP, "b", Duration::from_secs(10), &[&a, &b]);
        }
        let (report, moved) = measure(&lab, "a", false, || a = Daemon::vrrpd(&lab, "a", &vrrpd_config("a", 101, "", ""), &[]));
        rows.push(Row {
            scenario: "preemption back",
            outage: report.outage,
            moved,
            expected: format!("VIP back after MDI(A) {MDI_A:.3} s"),
            note: "A starts BACKUP, preempts the lower master".into(),
        });
    }

    if wanted("track-script") {
        a.stop();
        let flag = lab.file("healthy");
        std::fs::write(&flag, "").expect("flag file");
        let script = format!(
            "[[vrrp_script]]\nname = \"chk\"\nscript = \"/usr/bin/test -e {}\"\ninterval = \"500ms\"\nweight = -20\n",
            flag.display()
        );
        a = start_a(&lab, &script);
        lab.expect_holder(VIP, "a", Duration::from_secs(10), &[&a, &b]);
        let (report, moved) = measure(&lab, "b", true, || std::fs::remove_file(&flag).expect("remove flag"));
        rows.push(Row {
            scenario: "track script fails (-20)",
            outage: report.outage,
            moved,
            expected: format!("VIP moves after MDI(B) {MDI_B:.3} s + up to 0.5 s"),
            note: "A keeps serving until B takes over".into(),
        });
        std::fs::write(&flag, "").expect("flag file");
        lab.expect_holder(VIP, "a", Duration::from_secs(10), &[&a, &b]);
    }

    if wanted("auth-mismatch") {
        let probe = Probe::start(&lab, VIP);
        let inject = vrrpd_binary().with_file_name("vrrp-inject");
        let out = lab
            .exec("client", &[inject.to_str().expect("utf-8"), "--password", "wrong", "--count", "30", "--interval-ms", "100"]);
        std::thread::sleep(Duration::from_millis(300));
        let report = probe.stop();
        let held = lab.holders(VIP) == ["a"];
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

fn start_a(lab: &Lab, after: &str) -> Daemon {
    let extra = if after.is_empty() { "" } else { "track_script = [{ name = \"chk\" }]" };
    Daemon::vrrpd(lab, "a", &vrrpd_config("a", 101, extra, after), &["--state", "MASTER"])
}

/// Runs `action` while the client probes the VIP: returns the probe's longest outage and the
/// time from the action until `to` holds the VIP. With `after_advert`, the action comes right
/// after an advert seen on B, so the backup's timer has just been reset.
fn measure(lab: &Lab, to: &str, after_advert: bool, action: impl FnOnce()) -> (ProbeReport, Option<Duration>) {
    let probe = Probe::start(lab, VIP);
    std::thread::sleep(Duration::from_millis(300));
    if after_advert {
        lab.wait_for_advert("b");
    }
    let t0 = Instant::now();
    action();
    let moved = moved_to(lab, to, t0);
    std::thread::sleep(Duration::from_millis(500));
    (probe.stop(), moved)
}

/// Time from `t0` until `host` alone holds the VIP (`ip -br a`), polled every 20 ms.
fn moved_to(lab: &Lab, host: &str, t0: Instant) -> Option<Duration> {
    wait_until(Duration::from_secs(15), || lab.holders(VIP).contains(&host)).then(|| t0.elapsed())
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}
