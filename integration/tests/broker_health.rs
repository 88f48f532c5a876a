//! Broker health beyond the port, against a real three-node RabbitMQ 3.10 cluster with its
//! management plugin and a TLS listener whose CA and certificate this test makes:
//! - AMQPS passthrough: clients' TLS goes through the VIP untouched to the brokers (vrrpd holds
//!   no certificate), while vrrpd's `amqps` check completes a verified handshake with each
//!   broker and reads its Connection.Start inside TLS.
//! - The `http` check on the management port (each server's own `check = { port = 15672 }`,
//!   as `vrrpd import` writes HAProxy's `server ... check port 15672`): a node in a memory
//!   alarm (publishers blocked) answers 503 on `/api/health/checks/local-alarms` and leaves the
//!   rotation for new sessions; it comes back once the alarm clears. The check's password,
//!   read from a `password_file`, never shows.
//! - The management UI balanced through a second proxy on 15672.
//!
//! One cluster run serves all three (a cluster takes ~45 s to start).

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::lab::{wait_until, Daemon, Lab, VIP};
use integration::netns_available;
use integration::rabbit::Cluster;
use integration::scenario::{HostConfig, Proxy, Server, Stats, TAKEOVER};

const PROGRAMS: &[&str] = &["ip", "rabbitmq-server", "rabbitmqctl", "openssl", "curl"];
/// The check's credentials: a user made for it, with a password found nowhere else.
const MONITOR_USER: &str = "vrrpd-monitor";
const MONITOR_PASSWORD: &str = "m0n1tor-Pa55-7f3a";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, and a certificate it signs for the three brokers' addresses and `rabbit.lab`.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca-key.pem"]);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca-key.pem",
            "-subj",
            "/CN=vrrpd test CA",
            "-days",
            "2",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "key.pem"]);
    openssl(dir, &["req", "-new", "-key", "key.pem", "-subj", "/CN=rabbit.lab", "-out", "server.csr"]);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:rabbit.lab,IP:192.0.2.21,IP:192.0.2.22,IP:192.0.2.23\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

/// Runs `f` on a thread inside the lab's client namespace.
fn in_client<T: Send + 'static>(lab: &Lab, f: impl FnOnce() -> T + Send + 'static) -> T {
    let client_ns = lab.ns("client");
    std::thread::spawn(move || {
        let namespace = std::fs::File::open(format!("/run/netns/{client_ns}")).unwrap();
        nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Reads an AMQP server's first frame after the protocol header: Ok(frame) when it is a
/// Connection.Start (method frame, class 10, method 10).
fn connection_start(stream: &mut impl ReadWrite) -> Result<Vec<u8>, String> {
    stream.write_all(b"AMQP\x00\x00\x09\x01").map_err(|e| format!("send header: {e}"))?;
    let mut frame = Vec::new();
    let mut chunk = [0u8; 1024];
    while frame.len() < 11 {
        let n = stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {} bytes", frame.len()));
        }
        frame.extend_from_slice(&chunk[..n]);
    }
    if frame[0] != 1 || frame[7..11] != [0, 10, 0, 10] {
        return Err(format!("not a Connection.Start: {:02x?}", &frame[..11]));
    }
    Ok(frame)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A TLS client that trusts only the test's CA and verifies the certificate for `name`.
fn amqps_through_vip(ca_file: &Path, name: &str) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    let tcp = TcpStream::connect_timeout(&SocketAddr::from((VIP.octets(), 5671)), Duration::from_secs(3))
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    connection_start(&mut tls)
}

fn status_json(lab: &Lab) -> serde_json::Value {
    let out = Daemon::ctl(lab, "a", &["status", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The servers of `proxy` in the status: (name, status, check kind, last detail, sessions total).
fn servers(lab: &Lab, proxy: &str) -> Vec<(String, String, String, String, u64)> {
    let status = status_json(lab);
    let proxies = status["proxies"].as_array().cloned().unwrap_or_default();
    let Some(p) = proxies.iter().find(|p| p["name"] == proxy) else { return Vec::new() };
    p["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
                s["check"]["kind"].as_str().unwrap().to_owned(),
                s["check"]["last_detail"].as_str().unwrap_or("").to_owned(),
                s["sessions"]["total"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn brokers_are_checked_past_the_port_and_amqps_passes_through() {
    if !netns_available("brokers_are_checked_past_the_port_and_amqps_passes_through", PROGRAMS) {
        return;
    }
    let lab = Lab::up("bh");
    let tls_dir = lab.file("tls");
    make_certificates(&tls_dir);
    let ca_file = tls_dir.join("ca.pem");
    let cluster = Cluster::start_with_tls(&lab, &tls_dir);
    cluster.ctl(1, &["add_user", MONITOR_USER, MONITOR_PASSWORD]);
    cluster.ctl(1, &["set_user_tags", MONITOR_USER, "monitoring"]);

    let fast = r#"interval = "500ms", rise = 1, fall = 1, timeout = "2s""#;
    let password_file = lab.file("monitor.pw");
    std::fs::write(&password_file, format!("{MONITOR_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&password_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let amqp = Proxy::amqp(
        &format!(
            r#"kind = "http", path = "/api/health/checks/local-alarms", expect_status = 200, user = "{MONITOR_USER}", password_file = "{}", {fast}"#,
            password_file.display()
        ),
        3,
    )
    .servers((1..=3).map(|n| Server::rabbit(n).check("port = 15672")).collect());
    let amqps = Proxy::amqp(&format!(r#"kind = "amqps", ca_file = "{}", {fast}"#, ca_file.display()), 3)
        .port(5671)
        .servers((1..=3).map(|n| Server { address: format!("192.0.2.2{n}:5671"), ..Server::rabbit(n) }).collect());
    let amqps = Proxy { name: "amqps".into(), ..amqps };
    let ui = Proxy::amqp(&format!(r#"kind = "http", path = "/", {fast}"#), 3)
        .port(15672)
        .servers((1..=3).map(|n| Server { address: format!("192.0.2.2{n}:15672"), ..Server::rabbit(n) }).collect())
        .with(r#"balance = "roundrobin""#);
    let ui = Proxy { name: "management".into(), ..ui };
    let config = HostConfig::vi1("a", 150).proxy(amqp).proxy(amqps).proxy(ui).stats(Stats::on(8100));
    let mut a = config.start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", TAKEOVER, &[&a]);

    let all_up = |proxy: &str, detail: &str| {
        let s = servers(&lab, proxy);
        s.len() == 3 && s.iter().all(|(_, status, _, last, _)| status == "UP" && last == detail)
    };
    assert!(
        wait_until(Duration::from_secs(20), || all_up("amqp", "http 200")),
        "every broker healthy on its management port: {:?}\n{}",
        servers(&lab, "amqp"),
        a.log()
    );
    assert!(
        wait_until(Duration::from_secs(20), || all_up("amqps", "TLS, Connection.Start 0-9")),
        "every broker's AMQPS listener checked inside TLS: {:?}\n{}",
        servers(&lab, "amqps"),
        a.log()
    );
    assert_eq!(servers(&lab, "amqps")[0].2, "amqps");
    let status = status_json(&lab);
    let amqp_proxy = status["proxies"].as_array().unwrap().iter().find(|p| p["name"] == "amqp").unwrap().clone();
    assert_eq!(amqp_proxy["servers"][0]["check"]["kind"], "http");
    assert_eq!(amqp_proxy["servers"][0]["check"]["target"], "192.0.2.21:15672", "each server's own check port");

    // AMQPS through the VIP: the handshake is the broker's own (vrrpd holds no certificate),
    // verified by the client against the test's CA, and the broker greets inside it.
    let ca = ca_file.clone();
    let greetings = in_client(&lab, move || (0..3).map(|_| amqps_through_vip(&ca, "rabbit.lab")).collect::<Vec<_>>());
    for greeting in &greetings {
        let frame = greeting.as_ref().unwrap_or_else(|e| panic!("AMQPS through the VIP: {e}"));
        assert!(frame.windows(8).any(|w| w == b"RabbitMQ"), "the broker's own Connection.Start");
    }
    let sessions: u64 = servers(&lab, "amqps").iter().map(|s| s.4).sum();
    assert!(sessions >= 3, "the AMQPS sessions went through the amqps proxy: {sessions}");

    // The management UI balanced through the second proxy.
    let ui_answer = lab.exec(
        "client",
        &[
            "curl",
            "-sS",
            "-m",
            "5",
            "-u",
            "guest:guest",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://192.0.2.100:15672/api/overview",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&ui_answer.stdout), "200", "{}", String::from_utf8_lossy(&ui_answer.stderr));

    // A memory alarm on rabbit1: its publishers are blocked; it leaves the rotation.
    let raised = Instant::now();
    cluster.ctl(1, &["set_vm_memory_high_watermark", "0.0001"]);
    let rabbit1 = |lab: &Lab| servers(lab, "amqp").into_iter().find(|s| s.0 == "rabbit1").unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || rabbit1(&lab).1 == "DOWN"),
        "rabbit1 in a memory alarm goes DOWN: {:?}\n{}",
        servers(&lab, "amqp"),
        a.log()
    );
    println!("alarm raised -> rabbit1 DOWN in {} ms", raised.elapsed().as_millis());
    assert_eq!(rabbit1(&lab).3, "http 503, expected 200");
    let before = servers(&lab, "amqp");
    assert!(before.iter().filter(|s| s.0 != "rabbit1").all(|s| s.1 == "UP"), "the others stay in: {before:?}");
    let opened = in_client(&lab, || {
        (0..6)
            .map(|_| {
                let mut tcp = TcpStream::connect_timeout(&SocketAddr::from((VIP.octets(), 5672)), Duration::from_secs(3))?;
                tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
                connection_start(&mut tcp).map_err(std::io::Error::other)
            })
            .collect::<Vec<_>>()
    });
    assert!(opened.iter().all(Result::is_ok), "{opened:?}");
    let after = servers(&lab, "amqp");
    let total = |list: &[(String, String, String, String, u64)], name: &str| list.iter().find(|s| s.0 == name).unwrap().4;
    assert_eq!(total(&after, "rabbit1"), total(&before, "rabbit1"), "no new session on the alarmed broker: {after:?}");
    assert_eq!(
        total(&after, "rabbit2") + total(&after, "rabbit3"),
        total(&before, "rabbit2") + total(&before, "rabbit3") + 6,
        "{after:?}"
    );

    let cleared = Instant::now();
    cluster.ctl(1, &["set_vm_memory_high_watermark", "0.4"]);
    assert!(
        wait_until(Duration::from_secs(20), || rabbit1(&lab).1 == "UP"),
        "rabbit1 back once the alarm clears: {:?}",
        servers(&lab, "amqp")
    );
    println!("alarm cleared -> rabbit1 UP in {} ms", cleared.elapsed().as_millis());

    // The check's password is nowhere an operator looks.
    let status_text = String::from_utf8_lossy(&Daemon::ctl(&lab, "a", &["status"]).stdout).into_owned();
    let json = status_json(&lab).to_string();
    let page = lab.exec("a", &["curl", "-sS", "-m", "5", "http://127.0.0.1:8100/"]);
    let stats_json = lab.exec("a", &["curl", "-sS", "-m", "5", "http://127.0.0.1:8100/stats.json"]);
    assert!(status_text.contains("http 503") || status_text.contains("http 200"), "{status_text}");
    for (what, text) in [
        ("log", a.log()),
        ("ctl status", status_text),
        ("ctl status --json", json),
        ("stats page", String::from_utf8_lossy(&page.stdout).into_owned()),
        ("stats JSON", String::from_utf8_lossy(&stats_json.stdout).into_owned()),
    ] {
        assert!(!text.contains(MONITOR_PASSWORD), "the password shows in the {what}");
    }
    assert_eq!(a.stop(), Some(0));
}
