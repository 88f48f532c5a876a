//! The checks that look past the port: an HTTP status on another port (RabbitMQ's management
//! API), the AMQP greeting inside verified TLS, and a server's own check settings, against
//! real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ha_common::config::{CheckKind, CheckTls, HealthCheck, HttpCheck, Secret, ServerCheck};
use proxy::health::probe::Checker;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP server answering every request with `status`, which the test may change; it keeps
/// the last request it received.
struct HttpServer {
    address: SocketAddr,
    status: Arc<AtomicU16>,
    last_request: Arc<Mutex<String>>,
}

async fn http_server(status: u16) -> HttpServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let status = Arc::new(AtomicU16::new(status));
    let last_request = Arc::new(Mutex::new(String::new()));
    let (answer, seen) = (Arc::clone(&status), Arc::clone(&last_request));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (answer, seen) = (Arc::clone(&answer), Arc::clone(&seen));
            tokio::spawn(async move {
                let request = read_head(&mut socket).await;
                *seen.lock().unwrap() = request;
                let body = r#"{"status":"failed","reason":"resource alarm(s) in effect"}"#;
                let code = answer.load(Relaxed);
                let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    HttpServer { address, status, last_request }
}

async fn read_head<S: AsyncRead + Unpin>(socket: &mut S) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

fn http_check(expect_status: Option<u16>) -> HealthCheck {
    HealthCheck {
        kind: CheckKind::Http,
        timeout: Duration::from_secs(2),
        http: Some(HttpCheck {
            path: "/api/health/checks/alarms".into(),
            expect_status,
            user: Some("monitor".into()),
            password: Some(Secret::new("s3cret-pw".into())),
        }),
        ..HealthCheck::default()
    }
}

#[tokio::test]
async fn http_check_asks_the_path_with_credentials_and_judges_the_status() {
    let api = http_server(200).await;
    // The traffic goes to another port: the check goes to the one it is told.
    let traffic = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let checker = Checker::new(HealthCheck { port: Some(api.address.port()), ..http_check(Some(200)) });
    let ok = checker.run(traffic, None).await;
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.detail, "http 200");
    let request = api.last_request.lock().unwrap().clone();
    assert!(request.starts_with("GET /api/health/checks/alarms HTTP/1.1\r\n"), "{request}");
    // monitor:s3cret-pw
    assert!(request.contains("authorization: Basic bW9uaXRvcjpzM2NyZXQtcHc=\r\n"), "{request}");

    api.status.store(503, Relaxed);
    let alarm = checker.run(traffic, None).await;
    assert!(!alarm.ok, "{alarm:?}");
    assert_eq!(alarm.detail, "http 503, expected 200");

    // Without expect_status, HAProxy's rule: 2xx and 3xx pass.
    let lenient = Checker::new(HealthCheck { port: Some(api.address.port()), ..http_check(None) });
    assert!(!lenient.run(traffic, None).await.ok);
    api.status.store(204, Relaxed);
    assert!(lenient.run(traffic, None).await.ok);
}

#[tokio::test]
async fn no_check_outcome_or_debug_output_carries_the_password() {
    let api = http_server(401).await;
    let check = HealthCheck { port: Some(api.address.port()), ..http_check(Some(200)) };
    assert!(!format!("{check:?}").contains("s3cret-pw"), "{check:?}");
    let checker = Checker::new(check.clone());
    assert!(!format!("{checker:?}").contains("s3cret-pw"));
    let traffic = SocketAddr::from(([127, 0, 0, 1], 5672));
    let refused = Checker::new(HealthCheck { port: Some(free_port()), ..check.clone() }).run(traffic, None).await;
    let silent_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent_listener.local_addr().unwrap().port();
    let silent = Checker::new(HealthCheck { port: Some(silent_port), timeout: Duration::from_millis(200), ..check.clone() })
        .run(traffic, None)
        .await;
    let denied = checker.run(traffic, None).await;
    for result in [refused, silent, denied] {
        assert!(!result.ok);
        assert!(!result.detail.contains("s3cret-pw") && !result.detail.contains("bW9uaXRvcjpz"), "{}", result.detail);
        println!("failed check says: {}", result.detail);
    }
}

#[tokio::test]
async fn http_check_bounds_what_it_reads() {
    // An endless body: the check fails at its size limit, not at memory exhaustion.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        read_head(&mut socket).await;
        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").await;
        let chunk = vec![b'x'; 64 * 1024];
        while socket.write_all(&chunk).await.is_ok() {}
    });
    let checker = Checker::new(HealthCheck { port: Some(port), ..http_check(Some(200)) });
    let result = checker.run(SocketAddr::from(([127, 0, 0, 1], 5672)), None).await;
    assert!(!result.ok && result.detail.contains("larger than"), "{result:?}");
}

/// A CA, and a server certificate it signed for 127.0.0.1 and `broker.test`.
struct Pki {
    dir: tempdir::Dir,
    ca_file: PathBuf,
    acceptor: tokio_rustls::TlsAcceptor,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn make_pki(name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "broker.test".to_owned()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let dir = std::env::temp_dir().join(format!("vrrpd-check-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    Pki { dir: tempdir::Dir(dir), ca_file, acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) }
}

/// Connection.Start 0-9 with an empty property table, as a broker greets.
fn connection_start() -> Vec<u8> {
    let payload = [
        0x00, 0x0a, 0x00, 0x0a, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 5, b'P', b'L', b'A', b'I', b'N', 0, 0, 0, 5, b'e', b'n', b'_',
        b'U', b'S',
    ];
    let mut frame = vec![1, 0, 0];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(0xce);
    frame
}

/// After the handshake, answers the AMQP header with Connection.Start (or `answer`).
async fn serve_tls<S>(mut tls: S, answer: Vec<u8>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut header = [0u8; 8];
    if tls.read_exact(&mut header).await.is_ok() && &header == b"AMQP\x00\x00\x09\x01" {
        let _ = tls.write_all(&answer).await;
        let _ = tls.flush().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn amqps_broker(pki: &Pki, answer: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let acceptor = pki.acceptor.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, answer) = (acceptor.clone(), answer.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(socket).await {
                    serve_tls(tls, answer).await;
                }
            });
        }
    });
    address
}

fn amqps_check(ca_file: Option<PathBuf>, sni: Option<&str>) -> HealthCheck {
    HealthCheck {
        kind: CheckKind::Amqps,
        timeout: Duration::from_secs(2),
        tls: CheckTls { ca_file, sni: sni.map(str::to_owned) },
        ..HealthCheck::default()
    }
}

#[tokio::test]
async fn amqps_check_completes_a_verified_handshake_then_wants_connection_start() {
    let pki = make_pki("amqps");
    let broker = amqps_broker(&pki, connection_start()).await;
    let ok = Checker::new(amqps_check(Some(pki.ca_file.clone()), None)).run(broker, None).await;
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.detail, "TLS, Connection.Start 0-9");
    let by_name = Checker::new(amqps_check(Some(pki.ca_file.clone()), Some("broker.test"))).run(broker, None).await;
    assert!(by_name.ok, "{by_name:?}");

    // A name the certificate does not carry, another CA, or plaintext AMQP: DOWN, and why.
    let wrong_name = Checker::new(amqps_check(Some(pki.ca_file.clone()), Some("other.test"))).run(broker, None).await;
    assert!(!wrong_name.ok && wrong_name.detail.starts_with("TLS handshake: "), "{wrong_name:?}");
    let other = make_pki("other");
    let untrusted = Checker::new(amqps_check(Some(other.ca_file.clone()), None)).run(broker, None).await;
    assert!(!untrusted.ok && untrusted.detail.starts_with("TLS handshake: "), "{untrusted:?}");
    println!("untrusted certificate: {}", untrusted.detail);
    let plaintext = Checker::new(HealthCheck { kind: CheckKind::Amqp, ..amqps_check(None, None) }).run(broker, None).await;
    assert!(!plaintext.ok, "{plaintext:?}");

    // TLS is fine but what speaks inside is not a broker.
    let not_amqp = amqps_broker(&pki, b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()).await;
    let result = Checker::new(amqps_check(Some(pki.ca_file.clone()), None)).run(not_amqp, None).await;
    assert!(!result.ok && result.detail.contains("not a method frame"), "{result:?}");

    // A CA file that cannot be used fails every check with the reason.
    let garbage = pki.dir.0.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let result = Checker::new(amqps_check(Some(garbage), None)).run(broker, None).await;
    assert!(!result.ok && result.detail.contains("CA file"), "{result:?}");
}

#[tokio::test]
async fn amqps_check_gives_up_on_a_server_that_stalls_the_handshake() {
    let pki = make_pki("stall");
    // Accepts TCP and never answers the ClientHello.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let check = HealthCheck { timeout: Duration::from_millis(300), ..amqps_check(Some(pki.ca_file.clone()), None) };
    let result = Checker::new(check).run(address, None).await;
    assert!(!result.ok && result.detail == "no answer within 300 ms", "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_checked_on_its_management_port_leaves_the_rotation_when_that_says_so() {
    // Two brokers whose traffic ports are fine; r1's health API raises an alarm.
    let (r1, _t1) = greeter("r1").await;
    let (r2, _t2) = greeter("r2").await;
    let api1 = http_server(200).await;
    let api2 = http_server(200).await;
    let mut config = proxy_config(vec![server("r1", r1), server("r2", r2)]);
    config.check = HealthCheck { rise: 1, fall: 1, ..fast_check(CheckKind::Http) };
    config.check.http = http_check(Some(200)).http;
    config.servers[0].check_settings = ServerCheck { port: Some(api1.address.port()), ..ServerCheck::default() };
    config.servers[1].check_settings = ServerCheck { port: Some(api2.address.port()), ..ServerCheck::default() };
    let balancer = start(&config);
    let proxy = balancer.proxy("amqp").unwrap();
    wait_for("both checked UP", || proxy.servers.iter().all(|s| s.health().counts().0 >= 1)).await;
    api1.status.store(503, Relaxed);
    wait_for("r1 DOWN", || !proxy.servers[0].up.load(Relaxed)).await;
    let detail = proxy.servers[0].health().last_result().unwrap().detail.clone();
    assert_eq!(detail, "http 503, expected 200");
    let snapshot = proxy::snapshot::ProxySnapshot::of(&proxy, std::time::Instant::now());
    assert_eq!(snapshot.servers[0].check.kind, "http");
    assert_eq!(snapshot.servers[0].check.last_detail.as_deref(), Some("http 503, expected 200"));
    for _ in 0..4 {
        let mut client = connect(&config).await;
        assert_eq!(greeting(&mut client).await.as_deref(), Some("r2"), "new sessions avoid the alarmed broker");
    }
    api1.status.store(200, Relaxed);
    wait_for("r1 UP again", || proxy.servers[0].up.load(Relaxed)).await;
    balancer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_own_rise_fall_and_interval_apply_to_it_alone_and_reload_in_place() {
    let (r1, _t1) = greeter("r1").await;
    let dead = dead_address();
    let ms = Duration::from_millis;
    let mut config = proxy_config(vec![server("r1", r1), server("dead", dead)]);
    config.check = HealthCheck { fall: 1000, ..fast_check(CheckKind::Tcp) };
    // Only "dead" falls fast; the proxy's fall of 1000 would keep it UP for 100 s.
    config.servers[1].check_settings = ServerCheck { fall: Some(2), interval: Some(ms(50)), ..ServerCheck::default() };
    let balancer = start(&config);
    let proxy = balancer.proxy("amqp").unwrap();
    wait_for("dead DOWN after its own fall", || !proxy.servers[1].up.load(Relaxed)).await;
    assert_eq!(proxy.servers[1].health().counts().1, 2, "exactly its own fall of 2 failures");
    // A reload that sends r1's check to a dead port keeps r1's state and applies at once.
    let mut reloaded = config.clone();
    reloaded.servers[0].check_settings = ServerCheck { port: Some(dead.port()), fall: Some(1), ..ServerCheck::default() };
    let changes = balancer.reload(std::slice::from_ref(&reloaded));
    println!("reload: {changes:?}");
    assert!(
        changes.contains(&format!("amqp/r1 is now checked at {dead} instead of {r1}")),
        "the reload says where r1 is checked now: {changes:?}"
    );
    let r1_state = balancer.proxy("amqp").unwrap().servers[0].clone();
    assert!(Arc::ptr_eq(&r1_state, &proxy.servers[0]), "r1 kept across the reload");
    wait_for("r1 DOWN on its new check port", || !r1_state.up.load(Relaxed)).await;
    balancer.shutdown().await;
}
