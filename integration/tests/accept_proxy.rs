//! `accept_proxy` behind a real HAProxy 2.6: HAProxy on host B sends a PROXY v2 header to
//! vrrpd's balancer on host A, which logs and serves the client by the address the header
//! carries, and refuses a client that connects directly without one.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use integration::lab::{wait_until, Greeters, Lab, LineClient};
use integration::netns_available;
use integration::scenario::{HostConfig, Instance, Proxy};

const PROGRAMS: &[&str] = &["ip", "haproxy"];

/// HAProxy in a lab host's namespace, stopped on drop.
struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_client_behind_haproxy_send_proxy_v2_is_known_by_its_own_address() {
    if !netns_available("a_client_behind_haproxy_send_proxy_v2_is_known_by_its_own_address", PROGRAMS) {
        return;
    }
    let lab = Lab::up("apx");
    let _backends = Greeters::start(&lab);
    let proxy = Proxy::amqp(r#"kind = "tcp", interval = "200ms", rise = 1, fall = 2, timeout = "200ms""#, 2)
        .port(5673)
        .with("accept_proxy = true");
    let a = HostConfig::new("a").instance(Instance::vi1(101)).proxy(proxy).start(&lab, &["--state", "MASTER"]);
    assert!(a.wait_for_log("listening", Duration::from_secs(5)), "{}", a.log());

    let config = lab.file("haproxy.cfg");
    std::fs::write(
        &config,
        "global\n    maxconn 100\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
         listen front\n    bind 192.0.2.12:5680\n    server vrrpd 192.0.2.11:5673 send-proxy-v2\n",
    )
    .unwrap();
    let haproxy = Command::new("ip")
        .args(["netns", "exec", &lab.ns("b"), "haproxy", "-db", "-f", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _haproxy = Haproxy(haproxy);

    let front: SocketAddr = "192.0.2.12:5680".parse().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || integration::netns::connect_from(&lab.ns("client"), front).is_ok()),
        "HAProxy listens"
    );
    let mut greeting = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            let mut client = LineClient::connect(&lab, front);
            greeting = client.greeting.clone();
            greeting.starts_with("rabbit") && client.echo("hello").as_deref() == Some("hello")
        }),
        "through HAProxy and vrrpd to a broker: {greeting:?}\n{}",
        a.log()
    );
    // The session's log line names the client (192.0.2.31, the client host), not HAProxy (.12).
    assert!(wait_until(Duration::from_secs(3), || a.log().contains("session closed")), "{}", a.log());
    let sessions: Vec<String> = a.log().lines().filter(|l| l.contains("session closed")).map(str::to_owned).collect();
    assert!(sessions.iter().any(|l| l.contains("client=192.0.2.31:")), "{sessions:#?}");
    assert!(!sessions.iter().any(|l| l.contains("client=192.0.2.12:")), "{sessions:#?}");

    // A client that reaches vrrpd directly sends no header: refused, and counted.
    let direct = LineClient::connect(&lab, "192.0.2.11:5673".parse().unwrap());
    assert_eq!(direct.greeting, "", "no broker greets a client without a PROXY header");
    assert!(wait_until(Duration::from_secs(5), || a.log().contains("no complete PROXY header")), "{}", a.log());
    let status = integration::lab::Daemon::ctl(&lab, "a", &["status", "--json"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("\"bad_proxy_headers\": 1"), "{status}");
}
