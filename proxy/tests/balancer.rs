//! The balancer with real sockets on loopback: each feature, and the bad inputs a production
//! balancer meets (a client sending garbage, a server that never answers, a server that
//! resets, all servers down).

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ha_common::config::{Balance, CheckKind, Proxy, ProxyProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

mod common;

use common::*;

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
async fn half_close_from_the_server_side_then_the_client_ends_cleanly() {
    // The server says its piece and shuts its side; the client goes on sending, then closes.
    // The second end of stream is passed on by closing the session's sockets: both peers must
    // still see an orderly end (EOF, not a reset) with every byte delivered.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (counted, mut count) = mpsc::channel(1);
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(b"bye\n").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 65536];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("the server's read ended with {e}, not EOF"),
            }
        }
        counted.send(total).await.unwrap();
    });
    let mut config = proxy_config(vec![server("closer", address)]);
    config.servers[0].check = false;
    let _balancer = start(&config);
    let mut client = connect(&config).await;
    let mut said = Vec::new();
    client.read_to_end(&mut said).await.unwrap();
    assert_eq!(said, b"bye\n");
    let payload = vec![9u8; 1024 * 1024];
    client.write_all(&payload).await.unwrap();
    client.shutdown().await.unwrap();
    let total = tokio::time::timeout(Duration::from_secs(10), count.recv()).await.unwrap().unwrap();
    assert_eq!(total, payload.len());
    // And the client's side ends in EOF too, not a reset.
    let mut rest = Vec::new();
    assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
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
    use proxy::health::probe::check_once;
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

/// A server whose listen queue is full: a connect to it waits for the kernel's SYN
/// retransmission (1 s) until `open` accepts the connection filling the queue, then greets
/// with `name` as [`greeter`] does.
async fn full_server(name: &'static str) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let address = listener.local_addr().unwrap();
    // Backlog 0 holds one connection: this one, so the next SYN is dropped.
    let filler = tokio::net::TcpStream::connect(address).await.unwrap();
    let (open, opened) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = opened.await;
        drop(filler);
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let _ = stream.write_all(format!("{name}\n").as_bytes()).await;
                let mut buf = [0u8; 64];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    (address, open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_that_completes_after_its_server_was_withdrawn_goes_to_another_server() {
    // The session's connect to "slow" is under way (SYN unanswered) when the operator puts
    // "slow" in maintenance, which closes its sessions; the connect completes a second later.
    // Before: the session had no server yet, so the maintenance did not close it, and it ran
    // on the server in maintenance. Now it is taken to the backup before a byte is passed.
    let (slow_address, open) = full_server("slow").await;
    let mut slow = server("slow", slow_address);
    slow.check = false;
    let mut other = server("other", greeter("other").await.0);
    other.check = false;
    other.backup = true;
    // No retries: going elsewhere after a withdrawal is not a retry.
    let config = Proxy { timeout_connect: Duration::from_secs(5), retries: 0, ..proxy_config(vec![slow, other]) };
    let balancer = start(&config);
    let mut client = connect(&config).await;
    let proxy = Arc::clone(&balancer.proxies()[0]);
    wait_for("the session to hold a place on slow", || proxy.servers[0].counters.current.load(Relaxed) == 1).await;
    balancer.set_admin("amqp", "slow", proxy::server::Admin::Maint).unwrap();
    open.send(()).unwrap();
    assert_eq!(greeting(&mut client).await.as_deref(), Some("other"), "the session ran on a server in maintenance");
    assert_eq!(proxy.servers[0].counters.current.load(Relaxed), 0);
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
        let expected = proxy::proxy_protocol::header(version, client.local_addr().unwrap(), config.binds[0]);
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

/// A backend that sends everything it receives on a connection (its first 512 bytes) to the
/// test, and greets.
async fn recorder() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (sender, received) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let _ = stream.write_all(b"hi\n").await;
                let mut got = Vec::new();
                let mut buf = [0u8; 512];
                while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let _ = sender.send(got);
            });
        }
    });
    (address, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_proxy_carries_the_client_address_from_its_header_to_the_servers() {
    let (address, mut received) = recorder().await;
    let mut config = proxy_config(vec![server("r", address)]);
    config.servers[0].check = false;
    config.accept_proxy = config.binds.clone();
    config.send_proxy = Some(ProxyProtocol::V1);
    let _balancer = start(&config);
    let (claimed, original): (SocketAddr, SocketAddr) =
        ("192.0.2.31:40000".parse().unwrap(), "192.0.2.100:5672".parse().unwrap());
    // A v2 header and the client's first bytes in one segment, as a load balancer sends them.
    let mut client = connect(&config).await;
    let mut first = proxy::proxy_protocol::header(ProxyProtocol::V2, claimed, original);
    first.extend_from_slice(b"AMQP\0\0\x09\x01");
    client.write_all(&first).await.unwrap();
    assert_eq!(greeting(&mut client).await.as_deref(), Some("hi"));
    let got = tokio::time::timeout(Duration::from_secs(3), received.recv()).await.unwrap().unwrap();
    let expected = [proxy::proxy_protocol::header(ProxyProtocol::V1, claimed, original), b"AMQP\0\0\x09\x01".to_vec()].concat();
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected), "the server hears of the real client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_proxy_applies_to_its_own_bind_only() {
    // HAProxy's `bind :5672` for clients beside `bind :5673 accept-proxy` for another balancer.
    let (address, mut received) = recorder().await;
    let mut config = proxy_config(vec![server("r", address)]);
    config.servers[0].check = false;
    let behind = SocketAddr::from(([127, 0, 0, 1], free_port()));
    config.binds.push(behind);
    config.accept_proxy = vec![behind];
    let _balancer = start(&config);
    // A plain client on the first bind: served as is (before, the flag held for every bind).
    let mut plain = connect(&config).await;
    plain.write_all(b"AMQP\0\0\x09\x01").await.unwrap();
    assert_eq!(greeting(&mut plain).await.as_deref(), Some("hi"), "a plain client refused on a bind without accept_proxy");
    let got = tokio::time::timeout(Duration::from_secs(3), received.recv()).await.unwrap().unwrap();
    assert_eq!(got, b"AMQP\0\0\x09\x01");
    // A client of the second bind must send a header: without one it is refused.
    let without = Proxy { binds: vec![behind], ..config.clone() };
    let mut refused = connect(&without).await;
    refused.write_all(b"AMQP\0\0\x09\x01").await.unwrap();
    assert!(closed_within(&mut refused, Duration::from_secs(2)).await, "no PROXY header on an accept_proxy bind");
    let mut relayed = connect(&without).await;
    let mut first = proxy::proxy_protocol::header(ProxyProtocol::V2, "192.0.2.31:40000".parse().unwrap(), behind);
    first.extend_from_slice(b"AMQP\0\0\x09\x01");
    relayed.write_all(&first).await.unwrap();
    assert_eq!(greeting(&mut relayed).await.as_deref(), Some("hi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_proxy_refuses_and_counts_garbage_and_headers_that_never_end() {
    let (address, mut received) = recorder().await;
    let mut config = proxy_config(vec![server("r", address)]);
    config.servers[0].check = false;
    config.accept_proxy = config.binds.clone();
    let balancer = start(&config);
    let shared = Arc::clone(&balancer.proxies()[0].shared);

    // An AMQP client that does not know it must send a header: refused at once.
    let mut plain = connect(&config).await;
    plain.write_all(b"AMQP\0\0\x09\x01").await.unwrap();
    assert!(closed_within(&mut plain, Duration::from_secs(1)).await);

    // A header sent a byte at a time, and never finished: refused at the timeout, not held.
    let mut slow = connect(&config).await;
    let started = Instant::now();
    for byte in b"PROXY TCP4 192.0.2.31" {
        slow.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await);
    let waited = started.elapsed();
    println!("a dribbled header was refused after {} ms", waited.as_millis());
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(5), "{waited:?}");

    // A client that says nothing at all.
    let mut silent = connect(&config).await;
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);

    assert_eq!(shared.bad_proxy_headers.load(Relaxed), 3);
    assert!(tokio::time::timeout(Duration::from_millis(200), received.recv()).await.is_err(), "no server was bothered");
}
