//! keepalived's process and file trackers end to end: the real vrrpd pair of a namespace lab,
//! a process started and killed, a file rewritten, and where the VIP goes, by `ip -br a`.
//! Needs root; without it every test says it was skipped.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use integration::lab::{wait_until, Daemon, Lab, VIP};
use integration::netns_available;
use integration::scenario::{HostConfig, Instance, Pair, TAKEOVER};

const PROGRAMS: &[&str] = &["ip", "sleep"];

/// A process with a name of its own (a copy of sleep), seen in /proc by every namespace.
fn tracked_process(lab: &Lab, name: &str) -> Child {
    let program = lab.file(name);
    if !program.exists() {
        std::fs::copy("/bin/sleep", &program).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    Command::new(&program).arg("600").spawn().unwrap()
}

#[test]
fn a_tracked_process_stopping_faults_the_master_and_its_return_takes_back() {
    if !netns_available("a_tracked_process_stopping_faults_the_master_and_its_return_takes_back", PROGRAMS) {
        return;
    }
    let lab = Lab::up("trkproc");
    // Unique per run: /proc is the host's, shared by every lab and test.
    let name = format!("trk{}", std::process::id());
    let mut process = tracked_process(&lab, &name);
    let tracker = format!("[[vrrp_track_process]]\nname = \"broker\"\nprocess = \"{name}\"\nweight = 0\n");
    let a = HostConfig::new("a").instance(Instance::vi1(101).with("track_process = [{ name = \"broker\" }]")).section(tracker);
    let (a, b) = Pair { a, ..Pair::default() }.start(&lab);

    process.kill().unwrap();
    process.wait().unwrap();
    let killed = Instant::now();
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    // Weight 0: FAULT and a priority-0 advert, so B takes over after its Skew_Time, not its
    // Master_Down_Interval; the scan runs every 500 ms.
    let moved = killed.elapsed();
    println!("process killed -> VIP on b in {moved:?}");
    assert!(moved < Duration::from_secs(3), "{moved:?}");
    assert!(a.wait_for_log("tracked process quorum lost", Duration::from_secs(1)), "{}", a.log());
    assert!(a.log().contains("FAULT"), "{}", a.log());

    let mut process = tracked_process(&lab, &name);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    assert!(a.log().contains("tracked process quorum gained"), "{}", a.log());

    // A reload that tracks another name: the scanner restarts from a fresh scan, and nothing
    // by that name runs, so A goes to FAULT although `name` still runs.
    let other = format!("[[vrrp_track_process]]\nname = \"broker\"\nprocess = \"{name}x\"\nweight = 0\n");
    let reloaded = HostConfig::new("a").instance(Instance::vi1(101).with("track_process = [{ name = \"broker\" }]"));
    reloaded.section(other).write(&lab);
    a.signal(nix::sys::signal::Signal::SIGHUP);
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    process.kill().unwrap();
    process.wait().unwrap();
}

#[test]
fn a_tracked_file_value_times_its_weight_moves_the_vip() {
    if !netns_available("a_tracked_file_value_times_its_weight_moves_the_vip", PROGRAMS) {
        return;
    }
    let lab = Lab::up("trkfile");
    let path = lab.file("prio");
    let tracker = format!("[[vrrp_track_file]]\nname = \"prio\"\nfile = \"{}\"\ninit_file = 0\n", path.display());
    let a = HostConfig::new("a")
        .instance(Instance::vi1(101).with("track_file = [{ name = \"prio\", weight = -30 }]"))
        .section(tracker);
    let (a, b) = Pair { a, ..Pair::default() }.start(&lab);
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), "0", "init_file created it");

    // 101 + 1 x -30 = 71 < 100: B preempts on A's next advert.
    std::fs::write(&path, "1\n").unwrap();
    lab.expect_holder(VIP, "b", TAKEOVER, &[&a, &b]);
    assert!(a.wait_for_log("priority=71", Duration::from_secs(1)), "{}", a.log());

    // The status (and the stats JSON, the same snapshot) shows the tracker and its number.
    let status = Daemon::ctl(&lab, "a", &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let tracker = json["instances"][0]["trackers"].as_array().unwrap().iter().find(|t| t["kind"] == "file").cloned();
    let tracker = tracker.unwrap_or_else(|| panic!("no file tracker in {json}"));
    assert_eq!(
        (tracker["name"].as_str(), tracker["value"].as_i64(), tracker["weight"].as_i64()),
        (Some("prio"), Some(1), Some(-30))
    );

    // Garbage reads as 0 (keepalived's rule), said in the log: back to 101.
    std::fs::write(&path, "not a number\n").unwrap();
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    assert!(a.log().contains("tracked file does not hold a number"), "{}", a.log());

    // -9 x -30 = +270: clamped to 254, still master; a deleted file is 0.
    std::fs::write(&path, "-9").unwrap();
    assert!(a.wait_for_log("priority=254", Duration::from_secs(3)), "{}", a.log());
    std::fs::remove_file(&path).unwrap();
    assert!(a.wait_for_log("tracked file is missing", Duration::from_secs(3)), "{}", a.log());
    assert_eq!(lab.holders(VIP), ["a"]);
}

#[test]
fn a_track_file_others_can_write_is_refused_at_start() {
    if !netns_available("a_track_file_others_can_write_is_refused_at_start", PROGRAMS) {
        return;
    }
    let lab = Lab::up("trkunsafe");
    let path = lab.file("prio");
    std::fs::write(&path, "0").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let tracker = format!("[[vrrp_track_file]]\nname = \"prio\"\nfile = \"{}\"\nweight = 0\n", path.display());
    let config =
        HostConfig::new("a").instance(Instance::vi1(101).with("track_file = [{ name = \"prio\" }]")).section(tracker.clone());
    let mut a = config.start(&lab, &[]);
    assert!(wait_until(Duration::from_secs(5), || !a.is_running()), "vrrpd must refuse to start");
    assert!(a.log().contains("could be written by a non-root user"), "{}", a.log());
    assert!(lab.holders(VIP).is_empty());
    let allowed = HostConfig::new("a")
        .instance(Instance::vi1(101).with("track_file = [{ name = \"prio\" }]"))
        .section(format!("{tracker}allow_unsafe = true\n"));
    let a = allowed.start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);
}
