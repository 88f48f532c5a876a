//! The balancer's life around VRRP and the operator, with real sockets on loopback: releasing an
//! address, listening before the address is held, availability, maxconn, shutdown and reload.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ha_common::config::{Balance, CheckKind, HealthCheck, Proxy};
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
    config.binds = vec![SocketAddr::from(([0, 0, 0, 0], free_port()))];
    let balancer = start(&config);
    // One client comes in on 127.0.0.1 (the host's address), one on 127.0.0.2 (standing in for
    // the VIP).
    let on = |ip: [u8; 4]| SocketAddr::from((ip, config.binds[0].port()));
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
    config.binds = vec![SocketAddr::from(([192, 0, 2, 200], free_port()))];
    let balancer = start(&config);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(balancer.proxies()[0].shared.listening());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_follows_the_listener() {
    let config = proxy_config(vec![server("r", greeter("r").await.0)]);
    // Someone else holds the port: the proxy cannot listen and says so.
    let squatter = std::net::TcpListener::bind(config.binds[0]).unwrap();
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
    assert!(TcpStream::connect(config.binds[0]).await.is_err(), "no longer accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_maxconn_holds_clients_in_the_backlog_instead_of_refusing_them() {
    let mut config = proxy_config(vec![server("r", greeter("r").await.0)]);
    config.maxconn = Some(1);
    let _balancer = start(&config);
    let mut first = connect(&config).await;
    assert_eq!(greeting(&mut first).await.as_deref(), Some("r"));
    // The kernel completes the handshake; the proxy does not accept until a slot frees.
    let mut second = TcpStream::connect(config.binds[0]).await.unwrap();
    let mut byte = [0u8; 1];
    assert!(tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await.is_err(), "served beyond maxconn");
    drop(first);
    assert_eq!(greeting(&mut second).await.as_deref(), Some("r"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_maxconn_spans_proxies() {
    let backend = greeter("r").await.0;
    let one = proxy_config(vec![server("r", backend)]);
    let two = Proxy { name: "other".into(), binds: vec![SocketAddr::from(([127, 0, 0, 1], free_port()))], ..one.clone() };
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
async fn a_reload_that_flips_accept_proxy_on_a_kept_bind_says_so_and_applies_it() {
    let config = proxy_config(vec![server("a", greeter("a").await.0)]);
    let balancer = start(&config);
    let mut before = connect(&config).await;
    assert_eq!(greeting(&mut before).await.as_deref(), Some("a"));
    let behind = Proxy { accept_proxy: config.binds.clone(), ..config.clone() };
    let changes = balancer.reload(std::slice::from_ref(&behind));
    let said = format!("proxy amqp expects a PROXY header on {} now", config.binds[0]);
    assert!(changes.contains(&said), "{changes:?}");
    // A client without a header is refused from now on; the one before keeps its session.
    let mut plain = connect(&config).await;
    plain.write_all(b"AMQP\0\0\x09\x01").await.unwrap();
    assert!(closed_within(&mut plain, Duration::from_secs(2)).await);
    before.write_all(b"still here\n").await.unwrap();
    assert_eq!(greeting(&mut before).await.as_deref(), Some("still here"));
    let changes = balancer.reload(std::slice::from_ref(&config));
    assert!(changes.iter().any(|c| c.contains("no longer expects a PROXY header")), "{changes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_changes_a_kept_server_in_place_without_closing_its_sessions() {
    let (address, _) = greeter("a").await;
    let config = Proxy { timeout_queue: Duration::from_secs(10), ..proxy_config(vec![server("a", address)]) };
    let balancer = start(&config);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = connect(&config).await;
        assert_eq!(greeting(&mut client).await.as_deref(), Some("a"));
        held.push(client);
    }
    let before = Arc::clone(balancer.proxies()[0].server("a").unwrap());
    let total = before.counters.total.load(Relaxed);

    // Everything but the name and the address changes; requeueing every unacked message of
    // these AMQP sessions would be for nothing.
    let mut changed = server("a", address);
    (changed.weight, changed.backup, changed.maxconn, changed.check) = (5, true, Some(2), false);
    let reloaded = Proxy { servers: vec![changed], ..config.clone() };
    let changes = balancer.reload(std::slice::from_ref(&reloaded));
    for expected in ["amqp/a weight 1 -> 5", "amqp/a is now a backup", "amqp/a maxconn none -> 2", "amqp/a is no longer checked"]
    {
        assert!(changes.iter().any(|c| c == expected), "{expected:?} not in {changes:?}");
    }
    assert!(!changes.iter().any(|c| c.contains("removed") || c.contains("added")), "{changes:?}");
    for client in &mut held {
        client.write_all(b"still here\n").await.unwrap();
        assert_eq!(greeting(client).await.as_deref(), Some("still here"), "the sessions live through the reload");
    }
    let proxy = Arc::clone(&balancer.proxies()[0]);
    let after = proxy.server("a").unwrap();
    assert!(Arc::ptr_eq(&before, after), "the same server, not a new one");
    assert_eq!((after.counters.current.load(Relaxed), after.counters.total.load(Relaxed)), (2, total));
    let shown = &balancer.snapshot()[0].servers[0];
    assert_eq!((shown.weight, shown.backup, shown.checked, shown.sessions.limit), (5, true, false, Some(2)));

    // maxconn 2 applies to the next session: it queues...
    let mut third = connect(&reloaded).await;
    let mut byte = [0u8; 1];
    assert!(tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await.is_err(), "served beyond maxconn 2");
    assert_eq!(proxy.shared.queued.load(Relaxed), 1);
    // ...until a reload raises it.
    let mut raised = reloaded.servers[0].clone();
    raised.maxconn = Some(3);
    balancer.reload(&[Proxy { servers: vec![raised], ..reloaded.clone() }]);
    assert_eq!(greeting(&mut third).await.as_deref(), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_gives_the_servers_it_keeps_the_new_check_settings() {
    let (address, backend) = greeter("r").await;
    // Checked once an hour, down at the first failure.
    let hourly =
        HealthCheck { interval: Duration::from_secs(3600), fastinter: Duration::from_secs(3600), ..fast_check(CheckKind::Tcp) };
    let config = Proxy { check: hourly, ..proxy_config(vec![server("r", address)]) };
    let balancer = start(&config);
    let mut client = connect(&config).await;
    assert_eq!(greeting(&mut client).await.as_deref(), Some("r"));
    let checks = || balancer.snapshot()[0].servers[0].check.checks;
    wait_for("the first check", || checks() == 1).await;

    // Checked every 50 ms from now on (not in an hour), down only after 1000 failures.
    let patient = Proxy { check: HealthCheck { fall: 1000, ..fast_check(CheckKind::Tcp) }, ..config.clone() };
    let changes = balancer.reload(std::slice::from_ref(&patient));
    assert!(changes.contains(&"proxy amqp has new check settings".to_owned()), "{changes:?}");
    backend.abort();
    wait_for("three failed checks", || balancer.snapshot()[0].servers[0].check.failed >= 3).await;
    let shown = &balancer.snapshot()[0].servers[0];
    assert_eq!(shown.status, "UP", "fall is 1000 now");
    assert!(shown.check.health.starts_with("UP, going down") && shown.check.health.ends_with("/1000"), "{}", shown.check.health);
    assert!(!closed_within(&mut client, Duration::from_millis(200)).await, "a server still UP keeps its sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_turns_checks_on_and_off_on_the_same_server() {
    let mut unchecked = server("r", dead_address());
    unchecked.check = false;
    let config = proxy_config(vec![unchecked.clone()]);
    let balancer = start(&config);
    let server = Arc::clone(&balancer.proxies()[0].servers[0]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.up.load(Relaxed), "a server not checked counts as UP");

    let checked = Proxy { servers: vec![server_checked(&unchecked, true)], ..config.clone() };
    assert!(balancer.reload(std::slice::from_ref(&checked)).contains(&"amqp/r is checked again".to_owned()));
    wait_for("the checks to take it DOWN", || !server.up.load(Relaxed)).await;

    assert!(balancer.reload(std::slice::from_ref(&config)).contains(&"amqp/r is no longer checked".to_owned()));
    assert!(server.up.load(Relaxed), "UP again at once");
    let checks = balancer.snapshot()[0].servers[0].check.checks;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(server.up.load(Relaxed));
    assert_eq!(balancer.snapshot()[0].servers[0].check.checks, checks, "its checks stopped");
    assert!(Arc::ptr_eq(&server, &balancer.proxies()[0].servers[0]), "the same server throughout");
}

fn server_checked(server: &ha_common::config::Server, check: bool) -> ha_common::config::Server {
    ha_common::config::Server { check, ..server.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_moves_a_listener_new_address_first() {
    let config = proxy_config(vec![server("r", greeter("r").await.0)]);
    let balancer = start(&config);
    let mut old_session = connect(&config).await;
    assert_eq!(greeting(&mut old_session).await.as_deref(), Some("r"));
    let moved = Proxy { binds: vec![SocketAddr::from(([127, 0, 0, 1], free_port()))], ..config.clone() };
    let changes = balancer.reload(std::slice::from_ref(&moved));
    assert!(changes.iter().any(|c| c.contains("now listens on")), "{changes:?}");
    let mut new_session = connect(&moved).await;
    assert_eq!(greeting(&mut new_session).await.as_deref(), Some("r"));
    old_session.write_all(b"ok\n").await.unwrap();
    assert_eq!(greeting(&mut old_session).await.as_deref(), Some("ok"), "sessions accepted on the old address stay");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(config.binds[0]).await.is_err(), "the old address stopped listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_and_removes_proxies() {
    let one = proxy_config(vec![server("r", greeter("r").await.0)]);
    let balancer = start(&one);
    let two = Proxy { name: "other".into(), binds: vec![SocketAddr::from(([127, 0, 0, 1], free_port()))], ..one.clone() };
    let changes = balancer.reload(std::slice::from_ref(&two));
    assert!(
        changes.contains(&"proxy other added".to_owned()) && changes.iter().any(|c| c.starts_with("proxy amqp removed")),
        "{changes:?}"
    );
    let mut client = connect(&two).await;
    assert_eq!(greeting(&mut client).await.as_deref(), Some("r"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(one.binds[0]).await.is_err());
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
    assert!(with_keepalive(config.binds[0]), "client side:\n{text}");
    let upstream = text.lines().filter(|l| l.contains(&format!(" {backend}")) && l.contains("keepalive")).count();
    assert!(upstream >= 1, "server side:\n{text}");
}

/// An idle AMQP connection costs its session's task and little else: keep that state small.
#[tokio::test]
async fn an_idle_session_stays_under_two_kib() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let client = Arc::new(TcpStream::connect(address).await.unwrap());
    let config = proxy_config(vec![server("r", address)]);
    let state = Arc::new(proxy::server::ProxyState::new(config, Instant::now()));
    let sessions = Arc::new(proxy::registry::Sessions::default());
    let ticket = sessions.register(address, &Arc::from("amqp"), Arc::downgrade(&client)).unwrap();
    let future = proxy::session::run(state, client, address, address, false, ticket);
    let size = std::mem::size_of_val(&future);
    eprintln!("session future: {size} bytes");
    assert!(size < 2048, "{size} bytes per session task");
}

/// The global limit is shared by every proxy: a proxy without clients must never hold a place
/// while another proxy's client waits (it did when listeners took the place before accept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_maxconn_is_never_held_by_a_proxy_without_clients() {
    let backend = greeter("r").await.0;
    for round in 0..6 {
        let one = proxy_config(vec![server("r", backend)]);
        let two = Proxy { name: "other".into(), binds: vec![SocketAddr::from(([127, 0, 0, 1], free_port()))], ..one.clone() };
        let balancer =
            Balancer::start(&[one.clone(), two.clone()], Some(1), Duration::from_millis(300), &tokio::runtime::Handle::current());
        // Give both listeners time to wait for their first client.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let target = if round % 2 == 0 { &one } else { &two };
        let mut client = connect(target).await;
        assert_eq!(greeting(&mut client).await.as_deref(), Some("r"), "round {round}: the only client is served");
        drop(client);
        balancer.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bind_of_a_proxy_serves_and_a_reload_changes_one_without_the_others() {
    let mut config = proxy_config(vec![server("r", greeter("r").await.0)]);
    let second = SocketAddr::from(([127, 0, 0, 1], free_port()));
    config.binds.push(second);
    let balancer = start(&config);
    let mut first_client = connect(&config).await;
    assert_eq!(greeting(&mut first_client).await.as_deref(), Some("r"));
    let mut second_client = TcpStream::connect(second).await.unwrap();
    assert_eq!(greeting(&mut second_client).await.as_deref(), Some("r"));
    assert_eq!(balancer.proxies()[0].shared.counters.current.load(Relaxed), 2, "one proxy counts both");

    // One bind taken, another added: the remaining one keeps its sessions and listener.
    let third = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let reloaded = Proxy { binds: vec![config.binds[0], third], ..config.clone() };
    let changes = balancer.reload(std::slice::from_ref(&reloaded));
    assert_eq!(changes, vec![format!("proxy amqp now listens on {third}"), format!("proxy amqp no longer listens on {second}")]);
    let mut third_client = loop {
        if let Ok(s) = TcpStream::connect(third).await {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(greeting(&mut third_client).await.as_deref(), Some("r"));
    first_client.write_all(b"still\n").await.unwrap();
    assert_eq!(greeting(&mut first_client).await.as_deref(), Some("still"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(TcpStream::connect(second).await.is_err(), "the dropped bind stopped listening");
    assert!(balancer.proxies()[0].shared.listening());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bind_that_cannot_listen_makes_the_proxy_unavailable() {
    let mut config = proxy_config(vec![server("r", greeter("r").await.0)]);
    config.servers[0].check = false;
    let squatted = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let squatter = std::net::TcpListener::bind(squatted).unwrap();
    config.binds.push(squatted);
    let balancer = start(&config);
    let mut available = balancer.availability("amqp").unwrap();
    tokio::time::timeout(Duration::from_secs(2), available.wait_for(|a| !*a)).await.unwrap().unwrap();
    drop(squatter);
    tokio::time::timeout(Duration::from_secs(3), available.wait_for(|a| *a)).await.unwrap().unwrap();
}
