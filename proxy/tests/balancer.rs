//! The balancer with real sockets on loopback: each feature, and the bad inputs a production
//! balancer meets (a client sending garbage, a server that never answers, a server that
//! resets, all servers down).

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ha_common::config::{Balance, CheckKind, HealthCheck, Proxy, ProxyProtocol, Server};
use proxy::balancer::Balancer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn fast_check(kind: CheckKind) -> HealthCheck {
    let ms = Duration::from_millis;
    HealthCheck { kind, interval: ms(100), fastinter: ms(50), downinter: ms(100), timeout: ms(200), rise: 1, fall: 1 }
}

fn server(name: &str, address: SocketAddr) -> Server {
    Server { name: name.into(), address, weight: 1, backup: false, maxconn: None, check: true }
}

fn proxy_config(servers: Vec<Server>) -> Proxy {
    Proxy {
        name: "amqp".into(),
        bind: SocketAddr::from(([127, 0, 0, 1], free_port())),
        balance: Balance::LeastConn,
        check: fast_check(CheckKind::Tcp),
        timeout_connect: Duration::from_millis(500),
        timeout_idle: Duration::from_secs(3600),
        timeout_queue: Duration::from_secs(2),
        retries: 3,
        redispatch: true,
        maxconn: None,
        send_proxy: None,
        shutdown_sessions_on_down: true,
        servers,
    }
}

fn start(config: &Proxy) -> Arc<Balancer> {
    Balancer::start(std::slice::from_ref(config), None, Duration::from_millis(300), &tokio::runtime::Handle::current())
}

/// A backend that greets every connection with its name and a newline, then echoes.
async fn greeter(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let _ = stream.write_all(format!("{name}\n").as_bytes()).await;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (address, task)
}

/// An address where nothing listens.
fn dead_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

async fn connect(config: &Proxy) -> TcpStream {
    for _ in 0..100 {
        if let Ok(stream) = TcpStream::connect(config.bind).await {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the proxy never listened on {}", config.bind);
}

/// Reads the backend's greeting line; None when the proxy closed the connection instead.
async fn greeting(stream: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await.expect("an answer within 5 s") {
            Ok(0) | Err(_) => return None,
            Ok(_) if byte[0] == b'\n' => return Some(String::from_utf8(line).unwrap()),
            Ok(_) => line.push(byte[0]),
        }
    }
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads until EOF or error; true when the connection was closed within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_both_ways_with_half_close() {
    // A backend that reads to EOF, then answers with what it counted: only possible if the
    // proxy passes the client's FIN on and keeps the other direction open.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 65536];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        stream.write_all(format!("got {total}\n").as_bytes()).await.unwrap();
    });
    let mut config = proxy_config(vec![server("counter", address)]);
    config.servers[0].check = false;
    let balancer = start(&config);
    let mut client = connect(&config).await;
    let payload = vec![7u8; 4 * 1024 * 1024];
    client.write_all(&payload).await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(greeting(&mut client).await.as_deref(), Some("got 4194304"));
    let proxy = &balancer.proxies()[0];
    wait_for("byte counters", || proxy.shared.counters.bytes_in.load(Relaxed) == 4 * 1024 * 1024).await;
    assert_eq!(proxy.shared.counters.bytes_out.load(Relaxed), "got 4194304\n".len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leastconn_spreads_long_lived_sessions_evenly() {
    let mut servers = Vec::new();
    for name in ["rabbit1", "rabbit2", "rabbit3"] {
        servers.push(server(name, greeter(name).await.0));
    }
    let config = proxy_config(servers);
    let _balancer = start(&config);
    let mut held = Vec::new();
    let mut counts = std::collections::HashMap::new();
    for _ in 0..30 {
        let mut client = connect(&config).await;
        *counts.entry(greeting(&mut client).await.unwrap()).or_insert(0) += 1;
        held.push(client);
    }
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![10, 10, 10], "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundrobin_follows_weights() {
    let mut heavy = server("heavy", greeter("heavy").await.0);
    heavy.weight = 2;
    let config = Proxy { balance: Balance::RoundRobin, ..proxy_config(vec![heavy, server("light", greeter("light").await.0)]) };
    let _balancer = start(&config);
    let mut seen = Vec::new();
    for _ in 0..6 {
        let mut client = connect(&config).await;
        seen.push(greeting(&mut client).await.unwrap());
    }
    assert_eq!(seen.iter().filter(|s| *s == "heavy").count(), 4, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_serves_only_while_no_primary_is_up() {
    let primary_address = dead_address();
    let mut backup = server("backup", greeter("backup").await.0);
    backup.backup = true;
    let config = proxy_config(vec![server("primary", primary_address), backup]);
    let balancer = start(&config);
    let proxy = Arc::clone(&balancer.proxies()[0]);
    wait_for("the primary to be marked DOWN", || !proxy.servers[0].up.load(Relaxed)).await;
    let mut client = connect(&config).await;
    assert_eq!(greeting(&mut client).await.as_deref(), Some("backup"));

    // The primary comes up: new sessions go to it.
    let listener = TcpListener::bind(primary_address).await.unwrap();
    let (_, _) = (listener.local_addr(), ());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"primary\n").await;
            tokio::spawn(async move {
                let mut b = [0u8; 64];
                while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
            });
        }
    });
    wait_for("the primary to be marked UP", || proxy.servers[0].up.load(Relaxed)).await;
    let mut client = connect(&config).await;
    assert_eq!(greeting(&mut client).await.as_deref(), Some("primary"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_redispatch_hide_a_dead_server_from_clients() {
    // The dead server is not checked, so it stays UP: only retries can save the clients.
    let mut dead = server("dead", dead_address());
    dead.check = false;
    let config = Proxy { balance: Balance::RoundRobin, ..proxy_config(vec![dead, server("alive", greeter("alive").await.0)]) };
    let balancer = start(&config);
    for _ in 0..20 {
        let mut client = connect(&config).await;
        assert_eq!(greeting(&mut client).await.as_deref(), Some("alive"), "a client saw the dead server");
    }
    assert!(balancer.proxies()[0].servers[0].failed_connects.load(Relaxed) >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_servers_down_closes_the_client_and_counts_it() {
    let config = proxy_config(vec![server("a", dead_address()), server("b", dead_address())]);
    let balancer = start(&config);
    let proxy = Arc::clone(&balancer.proxies()[0]);
    wait_for("both servers DOWN", || proxy.servers.iter().all(|s| !s.up.load(Relaxed))).await;
    let mut availability = balancer.availability("amqp").unwrap();
    assert!(!*availability.borrow_and_update(), "no usable server: unavailable");
    let mut client = connect(&config).await;
    assert!(closed_within(&mut client, Duration::from_secs(2)).await);
    wait_for("the denial to be counted", || proxy.shared.denied.load(Relaxed) == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_check_wants_a_connection_start() {
    use proxy::check::check_once;
    // A broker-shaped greeting: Connection.Start 0-9 with an empty property table.
    let broker = serve_on_connect(|_| {
        let payload = [
            0x00, 0x0a, 0x00, 0x0a, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 5, b'P', b'L', b'A', b'I', b'N', 0, 0, 0, 5, b'e', b'n',
            b'_', b'U', b'S',
        ];
        let mut frame = vec![1, 0, 0];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame.push(0xce);
        frame
    })
    .await;
    let http = serve_on_connect(|_| b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec()).await;
    let silent = serve_on_connect(|_| Vec::new()).await;
    let timeout = Duration::from_millis(300);
    let ok = check_once(CheckKind::Amqp, broker, timeout, None).await;
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.detail, "Connection.Start 0-9");
    let bad = check_once(CheckKind::Amqp, http, timeout, None).await;
    assert!(!bad.ok && bad.detail.contains("not a method frame"), "{bad:?}");
    let hung = check_once(CheckKind::Amqp, silent, timeout, None).await;
    assert!(!hung.ok && hung.detail.contains("no answer within 300 ms"), "{hung:?}");
    assert!(check_once(CheckKind::Tcp, silent, timeout, None).await.ok, "a bare TCP check is fooled");
    assert!(!check_once(CheckKind::Amqp, dead_address(), timeout, None).await.ok);
}

/// A backend that, on each connection, waits for the client's first bytes, answers with
/// `answer(first bytes)`, and then stays silent (never closes).
async fn serve_on_connect(answer: fn(&[u8]) -> Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let _ = stream.write_all(&answer(&buf[..n])).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_and_a_silent_client_meet_the_idle_timeout() {
    let silent = serve_on_connect(|_| Vec::new()).await;
    let mut config = proxy_config(vec![server("silent", silent)]);
    config.timeout_idle = Duration::from_millis(300);
    let _balancer = start(&config);
    let mut client = connect(&config).await;
    client.write_all(b"\x00\xffgarbage that is not AMQP\r\n").await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut client, Duration::from_secs(3)).await);
    assert!(started.elapsed() >= Duration::from_millis(250), "closed before the idle timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_idle_timeout_never_cuts_an_amqp_heartbeat_interval() {
    let config = ha_common::Config::parse(
        "[[proxy]]\nname = \"amqp\"\nbind = \"127.0.0.1:5672\"\n[[proxy.server]]\nname = \"r\"\naddress = \"127.0.0.1:5673\"\n",
        std::path::Path::new("default.toml"),
    )
    .unwrap()
    .config;
    assert!(config.proxies[0].timeout_idle >= Duration::from_secs(3600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resetting_server_ends_the_session_but_not_the_proxy() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // SO_LINGER 0: close sends RST.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            drop(stream);
        }
    });
    let mut config = proxy_config(vec![server("resetter", address)]);
    config.servers[0].check = false;
    let balancer = start(&config);
    for _ in 0..5 {
        let mut client = connect(&config).await;
        assert!(closed_within(&mut client, Duration::from_secs(2)).await);
    }
    wait_for("sessions to end", || balancer.session_count() == 0).await;
    assert_eq!(balancer.proxies()[0].shared.counters.total.load(Relaxed), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_maxconn_queues_then_times_out() {
    let mut limited = server("one", greeter("one").await.0);
    limited.maxconn = Some(1);
    let mut config = proxy_config(vec![limited]);
    config.timeout_queue = Duration::from_millis(400);
    let balancer = start(&config);
    let mut first = connect(&config).await;
    assert_eq!(greeting(&mut first).await.as_deref(), Some("one"));
    // The second waits in the queue and goes through when the first leaves.
    let mut second = connect(&config).await;
    let proxy = Arc::clone(&balancer.proxies()[0]);
    wait_for("the second session to queue", || proxy.shared.queued.load(Relaxed) == 1).await;
    drop(first);
    assert_eq!(greeting(&mut second).await.as_deref(), Some("one"));
    // A third, while the second holds the slot, gives up after timeout_queue.
    let mut third = connect(&config).await;
    let started = Instant::now();
    assert!(closed_within(&mut third, Duration::from_secs(3)).await);
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert_eq!(proxy.shared.queued.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_a_server_marked_down_are_closed() {
    let (address, backend) = greeter("doomed").await;
    let balancer = start(&proxy_config(vec![server("doomed", address)]));
    let config = &balancer.proxies()[0].config;
    let mut client = connect(config).await;
    assert_eq!(greeting(&mut client).await.as_deref(), Some("doomed"));
    // The broker stops accepting (its open connections live on): checks fail, the server is
    // marked DOWN, and its sessions are closed so clients reconnect elsewhere.
    backend.abort();
    assert!(closed_within(&mut client, Duration::from_secs(3)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_proxy_tells_the_server_the_client_address_in_sessions_and_checks() {
    for version in [ProxyProtocol::V1, ProxyProtocol::V2] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (headers, mut received) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let headers = headers.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 256];
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    let _ = headers.send(buf[..n].to_vec());
                    let _ = stream.write_all(b"hi\n").await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        let mut config = proxy_config(vec![server("r", address)]);
        config.send_proxy = Some(version);
        let _balancer = start(&config);
        // The checks already send a header with their own addresses.
        let first = tokio::time::timeout(Duration::from_secs(3), received.recv()).await.unwrap().unwrap();
        assert!(!first.is_empty());
        let mut client = connect(&config).await;
        let client_port = client.local_addr().unwrap().port();
        assert_eq!(greeting(&mut client).await.as_deref(), Some("hi"));
        let expected = proxy::proxy_protocol::header(version, client.local_addr().unwrap(), config.bind);
        let mut found = false;
        while let Ok(Some(h)) = tokio::time::timeout(Duration::from_secs(1), received.recv()).await {
            if h.starts_with(&expected) {
                found = true;
                break;
            }
        }
        assert!(found, "{version:?}: no header for client port {client_port}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_accepted_on_a_given_address_are_closed_on_request_backend_side_included() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (closed_tx, mut backend_closed) = mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let _ = stream.write_all(b"hi\n").await;
                let mut buf = [0u8; 64];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = closed_tx.send(());
            });
        }
    });
    let mut config = proxy_config(vec![server("r", address)]);
    config.servers[0].check = false;
    config.bind = SocketAddr::from(([0, 0, 0, 0], free_port()));
    let balancer = start(&config);
    // One client comes in on 127.0.0.1 (the host's address), one on 127.0.0.2 (standing in for
    // the VIP).
    let on = |ip: [u8; 4]| SocketAddr::from((ip, config.bind.port()));
    let mut host_client = loop {
        if let Ok(s) = TcpStream::connect(on([127, 0, 0, 1])).await {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut vip_client = TcpStream::connect(on([127, 0, 0, 2])).await.unwrap();
    assert_eq!(greeting(&mut host_client).await.as_deref(), Some("hi"));
    assert_eq!(greeting(&mut vip_client).await.as_deref(), Some("hi"));
    assert_eq!(balancer.close_sessions_accepted_on(&["127.0.0.2".parse().unwrap()]), 1);
    assert!(closed_within(&mut vip_client, Duration::from_secs(1)).await);
    tokio::time::timeout(Duration::from_secs(1), backend_closed.recv()).await.expect("the broker side was closed too");
    assert!(!closed_within(&mut host_client, Duration::from_millis(300)).await, "the other session lives on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_on_an_address_the_host_does_not_hold_yet() {
    // 192.0.2.200 is on no interface here: IP_FREEBIND lets a BACKUP listen on its future VIP.
    let mut config = proxy_config(vec![server("r", greeter("r").await.0)]);
    config.bind = SocketAddr::from(([192, 0, 2, 200], free_port()));
    let balancer = start(&config);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(balancer.proxies()[0].shared.listener_ok.load(Relaxed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_follows_the_listener() {
    let config = proxy_config(vec![server("r", greeter("r").await.0)]);
    // Someone else holds the port: the proxy cannot listen and says so.
    let squatter = std::net::TcpListener::bind(config.bind).unwrap();
    let balancer = start(&config);
    let mut available = balancer.availability("amqp").unwrap();
    tokio::time::timeout(Duration::from_secs(2), available.wait_for(|a| !*a)).await.unwrap().unwrap();
    drop(squatter);
    tokio::time::timeout(Duration::from_secs(3), available.wait_for(|a| *a)).await.unwrap().unwrap();
    let mut client = connect(&config).await;
    assert_eq!(greeting(&mut client).await.as_deref(), Some("r"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_then_closes_at_the_hard_deadline() {
    let config = proxy_config(vec![server("r", greeter("r").await.0)]);
    let balancer = start(&config);
    let mut client = connect(&config).await;
    assert_eq!(greeting(&mut client).await.as_deref(), Some("r"));
    let started = Instant::now();
    balancer.shutdown().await;
    assert!(started.elapsed() >= Duration::from_millis(250), "sessions had hard_stop_after to finish");
    assert!(closed_within(&mut client, Duration::from_secs(1)).await);
    assert!(TcpStream::connect(config.bind).await.is_err(), "no longer accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_maxconn_holds_clients_in_the_backlog_instead_of_refusing_them() {
    let mut config = proxy_config(vec![server("r", greeter("r").await.0)]);
    config.maxconn = Some(1);
    let _balancer = start(&config);
    let mut first = connect(&config).await;
    assert_eq!(greeting(&mut first).await.as_deref(), Some("r"));
    // The kernel completes the handshake; the proxy does not accept until a slot frees.
    let mut second = TcpStream::connect(config.bind).await.unwrap();
    let mut byte = [0u8; 1];
    assert!(tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await.is_err(), "served beyond maxconn");
    drop(first);
    assert_eq!(greeting(&mut second).await.as_deref(), Some("r"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_maxconn_spans_proxies() {
    let backend = greeter("r").await.0;
    let one = proxy_config(vec![server("r", backend)]);
    let two = Proxy { name: "other".into(), bind: SocketAddr::from(([127, 0, 0, 1], free_port())), ..one.clone() };
    let _balancer =
        Balancer::start(&[one.clone(), two.clone()], Some(1), Duration::from_millis(300), &tokio::runtime::Handle::current());
    let mut first = connect(&one).await;
    assert_eq!(greeting(&mut first).await.as_deref(), Some("r"));
    let mut second = connect(&two).await;
    let mut byte = [0u8; 1];
    assert!(tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await.is_err());
    drop(first);
    assert_eq!(greeting(&mut second).await.as_deref(), Some("r"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_what_did_not_change() {
    let (a, b, c) = (greeter("a").await.0, greeter("b").await.0, greeter("c").await.0);
    let mut config = proxy_config(vec![server("a", a), server("b", b)]);
    config.balance = Balance::RoundRobin;
    let balancer = start(&config);
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let mut client = connect(&config).await;
        let name = greeting(&mut client).await.unwrap();
        sessions.push((name, client));
    }
    let total_before = balancer.proxies()[0].shared.counters.total.load(Relaxed);

    // a goes, b is reweighted, c arrives.
    let mut heavier_b = server("b", b);
    heavier_b.weight = 3;
    let reloaded = Proxy { servers: vec![heavier_b, server("c", c)], ..config.clone() };
    let changes = balancer.reload(std::slice::from_ref(&reloaded));
    assert!(changes.iter().any(|c| c == "amqp/b weight 1 -> 3"), "{changes:?}");
    assert!(changes.iter().any(|c| c == "amqp/c added"), "{changes:?}");
    assert!(changes.iter().any(|c| c.starts_with("amqp/a removed (2 sessions closed)")), "{changes:?}");
    for (name, client) in &mut sessions {
        if name == "a" {
            assert!(closed_within(client, Duration::from_secs(1)).await, "a session on a removed server is closed");
        } else {
            client.write_all(b"still here\n").await.unwrap();
            assert_eq!(greeting(client).await.as_deref(), Some("still here"), "b's sessions live through the reload");
        }
    }
    let proxy = Arc::clone(&balancer.proxies()[0]);
    assert_eq!(proxy.server("b").unwrap().counters.current.load(Relaxed), 2, "b kept its sessions and counters");
    assert!(proxy.shared.counters.total.load(Relaxed) >= total_before, "proxy counters carry over");
    let mut seen = Vec::new();
    for _ in 0..8 {
        let mut client = connect(&reloaded).await;
        seen.push(greeting(&mut client).await.unwrap());
    }
    assert!(!seen.contains(&"a".to_owned()) && seen.contains(&"c".to_owned()), "{seen:?}");
    assert!(seen.iter().filter(|s| *s == "b").count() > seen.iter().filter(|s| *s == "c").count(), "b weighs 3: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_moves_a_listener_new_address_first() {
    let config = proxy_config(vec![server("r", greeter("r").await.0)]);
    let balancer = start(&config);
    let mut old_session = connect(&config).await;
    assert_eq!(greeting(&mut old_session).await.as_deref(), Some("r"));
    let moved = Proxy { bind: SocketAddr::from(([127, 0, 0, 1], free_port())), ..config.clone() };
    let changes = balancer.reload(std::slice::from_ref(&moved));
    assert!(changes.iter().any(|c| c.contains("now listens on")), "{changes:?}");
    let mut new_session = connect(&moved).await;
    assert_eq!(greeting(&mut new_session).await.as_deref(), Some("r"));
    old_session.write_all(b"ok\n").await.unwrap();
    assert_eq!(greeting(&mut old_session).await.as_deref(), Some("ok"), "sessions accepted on the old address stay");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(config.bind).await.is_err(), "the old address stopped listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_and_removes_proxies() {
    let one = proxy_config(vec![server("r", greeter("r").await.0)]);
    let balancer = start(&one);
    let two = Proxy { name: "other".into(), bind: SocketAddr::from(([127, 0, 0, 1], free_port())), ..one.clone() };
    let changes = balancer.reload(std::slice::from_ref(&two));
    assert!(
        changes.contains(&"proxy other added".to_owned()) && changes.iter().any(|c| c.starts_with("proxy amqp removed")),
        "{changes:?}"
    );
    let mut client = connect(&two).await;
    assert_eq!(greeting(&mut client).await.as_deref(), Some("r"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(one.bind).await.is_err());
    assert_eq!(balancer.proxies().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_last_get_tcp_keepalive_on_both_sides() {
    let (backend, _) = greeter("r").await;
    let config = proxy_config(vec![server("r", backend)]);
    let _balancer = start(&config);
    let mut client = connect(&config).await;
    assert_eq!(greeting(&mut client).await.as_deref(), Some("r"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // `ss -o` shows a keepalive timer on the proxy's client-facing and server-facing sockets.
    let out = std::process::Command::new("ss").args(["-tnoH", "state", "established"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let with_keepalive = |local: SocketAddr| text.lines().any(|l| l.contains(&format!(" {local} ")) && l.contains("keepalive"));
    assert!(with_keepalive(config.bind), "client side:\n{text}");
    let upstream = text.lines().filter(|l| l.contains(&format!(" {backend}")) && l.contains("keepalive")).count();
    assert!(upstream >= 1, "server side:\n{text}");
}

/// An idle AMQP connection costs its session's task and little else: keep that state small.
#[tokio::test]
async fn an_idle_session_stays_under_two_kib() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let client = TcpStream::connect(address).await.unwrap();
    let config = proxy_config(vec![server("r", address)]);
    let state = Arc::new(proxy::server::ProxyState::new(config, Instant::now()));
    let sessions = Arc::new(proxy::sessions::Sessions::default());
    let ticket = sessions.register(address, &Arc::from("amqp"));
    let future = proxy::session::run(state, sessions, client, address, address, ticket);
    let size = std::mem::size_of_val(&future);
    eprintln!("session future: {size} bytes");
    assert!(size < 2048, "{size} bytes per session task");
}
