//! What a keepalived user writes for a drill works as written: two vrrpd in two network
//! namespaces of one host, with configurations that set nothing but what keepalived users set
//! (no control_socket), each with its own control socket, and `ip netns exec NS vrrpd ctl`
//! reaching the daemon of NS. Needs root.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::process::Command;
use std::time::Duration;

use integration::lab::{vrrpd_binary, wait_until, Daemon, Lab, VIP};
use integration::netns_available;
use integration::scenario::{HostConfig, TAKEOVER};

fn ctl_in(lab: &Lab, host: &str) -> (bool, String) {
    let out =
        Command::new("ip").args(["netns", "exec", &lab.ns(host)]).arg(vrrpd_binary()).args(["ctl", "status"]).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn two_namespaces_on_defaults_each_get_their_own_control_socket() {
    if !netns_available("two_namespaces_on_defaults_each_get_their_own_control_socket", &["ip"]) {
        return;
    }
    let lab = Lab::up("defaults");
    // As keepalived users write them: no control_socket anywhere.
    let a_config = HostConfig::vi1("a", 101).render();
    assert!(!a_config.contains("control_socket"), "{a_config}");
    let mut a = Daemon::vrrpd(&lab, "a", &a_config, &["--state", "MASTER"]);
    let mut b = Daemon::vrrpd(&lab, "b", &HostConfig::vi1("b", 100).render(), &[]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
    std::thread::sleep(Duration::from_secs(1));
    assert!(a.is_running() && b.is_running(), "both run:\n{}\n{}", a.log(), b.log());
    let socket = |host: &str| std::path::PathBuf::from(format!("/run/vrrpd/netns-{}.sock", lab.ns(host)));
    assert!(socket("a").exists() && socket("b").exists());

    let (ok, status) = ctl_in(&lab, "a");
    assert!(ok && status.contains("proxy-a") && status.contains("MASTER"), "{status}");
    let (ok, status) = ctl_in(&lab, "b");
    assert!(ok && status.contains("proxy-b") && status.contains("BACKUP"), "{status}");

    assert_eq!(a.stop(), Some(0));
    assert_eq!(b.stop(), Some(0));
    assert!(wait_until(Duration::from_secs(2), || !socket("a").exists() && !socket("b").exists()), "sockets removed at exit");
}

#[test]
fn check_looks_at_the_host_as_the_start_would() {
    if !netns_available("check_looks_at_the_host_as_the_start_would", &["ip"]) {
        return;
    }
    let lab = Lab::up("preflight");
    let text = r#"[global]
router_id = "proxy-a"
user = "no-such-user-here"

[[vrrp_instance]]
name = "VI_1"
interface = "eth0"
virtual_router_id = 51
virtual_ipaddress = ["192.0.2.100/24", "192.0.2.11/24"]
unicast_peer = ["192.0.2.12", "198.51.100.7"]

[[vrrp_instance]]
name = "VI_2"
interface = "eth9"
virtual_router_id = 52
virtual_ipaddress = ["192.0.2.101/24"]
"#;
    let path = lab.file("preflight.toml");
    std::fs::write(&path, text).unwrap();
    let check = |extra: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &lab.ns("a")])
            .arg(vrrpd_binary())
            .args(["check", "--config", path.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = check(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    let line_of = |needle: &str| text[..text.find(needle).unwrap()].matches('\n').count() + 1;
    let file = path.display();
    for (line, what) in [
        (line_of("user = "), "user \"no-such-user-here\" does not exist"),
        (line_of("virtual_ipaddress = [\"192.0.2.100"), "192.0.2.11 is already an address of eth0"),
        (line_of("unicast_peer"), "198.51.100.7 is on no subnet of eth0"),
        (line_of("interface = \"eth9\""), "interface \"eth9\" does not exist"),
    ] {
        assert!(
            stderr.lines().any(|l| l.contains(&format!("{file}:{line}:")) && l.contains(what)),
            "{what} at line {line}:\n{stderr}"
        );
    }
    assert!(!stderr.contains("192.0.2.12 is on no subnet"), "a peer on the subnet is fine:\n{stderr}");
    let (code, stderr) = check(&["--offline"]);
    assert_eq!(code, Some(0), "--offline checks the file only:\n{stderr}");
}
