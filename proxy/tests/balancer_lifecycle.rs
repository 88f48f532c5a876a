//! The balancer's life around VRRP and the operator, with real sockets on loopback: releasing an
//! address, listening before the address is held, availability, maxconn, shutdown and reload.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ha_common::config::{Balance, Proxy};
use proxy::balancer::Balancer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

mod common;

use common::*;

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
    let release = balancer.release_addresses(&["127.0.0.2".parse().unwrap()]);
    assert_eq!(release.closed, 1);
    tokio::time::timeout(Duration::from_secs(1), release.drained()).await.expect("the release is signalled once drained");
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
    let sessions = Arc::new(proxy::registry::Sessions::default());
    let ticket = sessions.register(address, &Arc::from("amqp"));
    let future = proxy::session::run(state, client, address, address, ticket);
    let size = std::mem::size_of_val(&future);
    eprintln!("session future: {size} bytes");
    assert!(size < 2048, "{size} bytes per session task");
}
