//! Every way a session ends gives back what it counted, with real sockets on loopback:
//! sessions cancelled by the thousand while queued, while connecting and while copying (by a
//! VIP release or an operator's shutdown-sessions), and a session that panics.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ha_common::config::{Proxy, ProxyProtocol};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use proxy::balancer::Balancer;
use proxy::server::ProxyState;
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod common;

use common::*;

/// Sessions per phase: thousands, as many as the open files limit allows (a session holds up
/// to four descriptors in this process: client, proxy's accepted and upstream, backend's).
/// The soft limit is raised to the hard one first, as a daemon does.
fn batch_size() -> usize {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let raised = hard.min(65_536);
    setrlimit(Resource::RLIMIT_NOFILE, raised, hard).unwrap();
    let nofile = proxy::balancer::open_files_limit().unwrap();
    let n = usize::try_from(nofile.saturating_sub(1000) / 5).unwrap_or(usize::MAX).min(2000);
    assert!(n >= 1000, "an open files limit of {nofile} leaves room for {n} sessions per phase only");
    n
}

/// Clients connected at once, a hundred at a time: a burst beyond an accept queue (the
/// proxy's, the backend's) would wait on SYN-ACK retransmissions, seconds.
const CHUNK: usize = 100;

/// Connects `n` clients to `proxy` on `ip`, each chunk accepted before the next.
async fn clients(proxy: &ProxyState, ip: [u8; 4], n: usize) -> Vec<TcpStream> {
    let address = SocketAddr::from((ip, proxy.config.binds[0].port()));
    let before = proxy.shared.counters.total.load(Relaxed);
    let mut clients = Vec::with_capacity(n);
    while clients.len() < n {
        for _ in 0..CHUNK.min(n - clients.len()) {
            clients.push(TcpStream::connect(address).await.unwrap());
        }
        let accepted = before + clients.len() as u64;
        settle("the proxy to accept", || proxy.shared.counters.total.load(Relaxed) >= accepted).await;
    }
    clients
}

/// Connects `n` clients to `proxy` on `ip`, each served (greeted by `expected`) before the
/// next chunk connects; all of them hold a session at the end.
async fn served(proxy: &ProxyState, ip: [u8; 4], n: usize, expected: &str) -> Vec<TcpStream> {
    let address = SocketAddr::from((ip, proxy.config.binds[0].port()));
    let mut clients = Vec::with_capacity(n);
    while clients.len() < n {
        let from = clients.len();
        for _ in 0..CHUNK.min(n - from) {
            clients.push(TcpStream::connect(address).await.unwrap());
        }
        for (i, client) in clients[from..].iter_mut().enumerate() {
            assert_eq!(greeting(client).await.as_deref(), Some(expected), "client {} of {n} was not served", from + i);
        }
    }
    clients
}

/// Waits up to 15 s: thousands of sessions in a debug build take a while to get in place.
async fn settle(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_nothing_counted(proxy: &ProxyState, phase: &str) {
    let server = &proxy.servers[0];
    assert_eq!(
        (proxy.shared.counters.current.load(Relaxed), server.counters.current.load(Relaxed), proxy.shared.queued.load(Relaxed)),
        (0, 0, 0),
        "{phase}: proxy sessions, server sessions, queued"
    );
}

/// One proxy on all addresses with one unchecked server.
fn proxy_for(name: &str, server_address: SocketAddr, maxconn: usize) -> Proxy {
    let mut config = proxy_config(vec![server(name, server_address)]);
    config.name = name.into();
    config.binds[0] = SocketAddr::from(([0, 0, 0, 0], free_port()));
    config.servers[0].check = false;
    config.servers[0].maxconn = Some(u32::try_from(maxconn).unwrap());
    config
}

/// A listener whose accept queue is full and never accepted from: the kernel drops further
/// SYNs, so a connect to it hangs, as to a broker that stopped answering.
fn blackhole() -> (Socket, SocketAddr, Vec<std::net::TcpStream>) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    socket.listen(0).unwrap();
    let address = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
        assert!(fillers.len() < 16, "the accept queue never filled");
    }
    (socket, address, fillers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_sessions_cancelled_in_every_phase_give_back_every_count_slot_and_queue_place() {
    let n = batch_size();
    let (greeter_address, _) = greeter("r").await;
    let (blackhole, blackhole_address, fillers) = blackhole();
    let queued = Proxy { timeout_queue: Duration::from_secs(60), ..proxy_for("queued", greeter_address, 1) };
    let connecting = Proxy {
        timeout_connect: Duration::from_secs(60),
        send_proxy: Some(ProxyProtocol::V2),
        ..proxy_for("connecting", blackhole_address, n)
    };
    let copying = Proxy { send_proxy: Some(ProxyProtocol::V1), ..proxy_for("copying", greeter_address, n) };
    let balancer = Balancer::start(
        &[queued.clone(), connecting.clone(), copying.clone()],
        None,
        Duration::from_millis(300),
        &tokio::runtime::Handle::current(),
    );
    // Listening already: `start` binds before it returns.

    // Queued: the server's one slot is held, everyone else waits for it, then their VIP goes.
    let (proxy, vip) = (balancer.proxy("queued").unwrap(), [127, 0, 0, 2]);
    let holder = served(&proxy, [127, 0, 0, 1], 1, "r").await;
    let mut waiting = clients(&proxy, vip, n).await;
    settle("the clients to queue", || proxy.shared.queued.load(Relaxed) == n as u32).await;
    let release = balancer.release_addresses(&[IpAddr::from(vip)]);
    assert_eq!(release.closed, n);
    tokio::time::timeout(Duration::from_secs(10), release.drained()).await.expect("the queued sessions end");
    assert_eq!(proxy.shared.queued.load(Relaxed), 0, "queue places given back");
    assert!(closed_within(&mut waiting[0], Duration::from_secs(1)).await);
    drop(waiting);
    drop(holder);
    settle("the holder's session to end", || proxy.shared.counters.current.load(Relaxed) == 0).await;
    assert_nothing_counted(&proxy, "queued");
    balancer.claim_addresses(&[IpAddr::from(vip)]);
    // The one slot serves, and the queue still works: the second client gets it in turn.
    let first = served(&proxy, vip, 1, "r").await;
    let mut second = clients(&proxy, vip, 1).await;
    settle("the second client to queue", || proxy.shared.queued.load(Relaxed) == 1).await;
    drop(first);
    assert_eq!(greeting(&mut second[0]).await.as_deref(), Some("r"));
    drop(second);

    // Connecting: each session holds a server slot (maxconn n) while its SYN goes unanswered.
    let (proxy, vip) = (balancer.proxy("connecting").unwrap(), [127, 0, 0, 3]);
    let stuck = clients(&proxy, vip, n).await;
    settle("the sessions to connect", || proxy.servers[0].counters.current.load(Relaxed) == n as u32).await;
    let release = balancer.release_addresses(&[IpAddr::from(vip)]);
    assert_eq!(release.closed, n);
    tokio::time::timeout(Duration::from_secs(10), release.drained()).await.expect("the connecting sessions end");
    assert_nothing_counted(&proxy, "connecting");
    drop(stuck);
    // The broker answers again: all n slots serve a new batch at once (a lost slot would
    // leave a client queued, then refused).
    blackhole.listen(4096).unwrap();
    blackhole.set_nonblocking(true).unwrap();
    let backend = TcpListener::from_std(blackhole.into()).unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = backend.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(b"back\n").await;
                let mut buf = [0u8; 256];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    drop(fillers);
    balancer.claim_addresses(&[IpAddr::from(vip)]);
    drop(served(&proxy, vip, n, "back").await);
    settle("the served sessions to end", || proxy.shared.counters.current.load(Relaxed) == 0).await;
    assert_nothing_counted(&proxy, "connecting, served");

    // Copying (the PROXY header written): an operator closes the server's sessions.
    let (proxy, vip) = (balancer.proxy("copying").unwrap(), [127, 0, 0, 4]);
    let copying_clients = served(&proxy, vip, n, "r").await;
    let said = balancer.shutdown_sessions("copying", "copying").unwrap();
    assert_eq!(said, format!("copying/copying: {n} sessions closed"));
    settle("the copying sessions to end", || proxy.shared.counters.current.load(Relaxed) == 0).await;
    assert_nothing_counted(&proxy, "copying");
    drop(copying_clients);
    served(&proxy, vip, n, "r").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_panics_is_closed_counted_and_the_proxy_serves_on() {
    let (address, _) = greeter("r").await;
    let mut config = proxy_config(vec![server("r", address)]);
    config.servers[0].check = false;
    config.servers[0].maxconn = Some(1);
    // What validation refuses, built by hand: the idle deadline overflows `Instant`, and the
    // session panics as soon as it starts copying, holding a server slot.
    config.timeout_idle = Duration::MAX;
    let balancer = start(&config);
    let proxy = Arc::clone(&balancer.proxies()[0]);
    let mut client = connect(&config).await;
    assert!(closed_within(&mut client, Duration::from_secs(5)).await, "the panicked session is closed");
    wait_for("the panic to be counted", || proxy.shared.panics.load(Relaxed) == 1).await;
    assert_nothing_counted(&proxy, "after the panic");
    assert_eq!(balancer.session_count(), 0);
    assert_eq!(balancer.snapshot()[0].panics, 1, "the stats carry it");

    // The proxy serves on, on the slot the panicked session gave back (maxconn 1).
    let fixed = Proxy { timeout_idle: Duration::from_secs(3600), ..config.clone() };
    balancer.reload(std::slice::from_ref(&fixed));
    let mut next = connect(&fixed).await;
    assert_eq!(greeting(&mut next).await.as_deref(), Some("r"));
    next.write_all(b"still copying\n").await.unwrap();
    assert_eq!(greeting(&mut next).await.as_deref(), Some("still copying"));
    assert_eq!(proxy.shared.panics.load(Relaxed), 1);
}
