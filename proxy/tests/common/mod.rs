//! What the balancer tests share: configurations, greeting backends, clients, waits.

#![allow(dead_code)] // each test file uses a different part
#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ha_common::config::{Balance, CheckKind, HealthCheck, Proxy, Server};
use proxy::balancer::Balancer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn fast_check(kind: CheckKind) -> HealthCheck {
    let ms = Duration::from_millis;
    HealthCheck {
        kind,
        interval: ms(100),
        fastinter: ms(50),
        downinter: ms(100),
        timeout: ms(200),
        rise: 1,
        fall: 1,
        ..HealthCheck::default()
    }
}

pub fn server(name: &str, address: SocketAddr) -> Server {
    Server {
        name: name.into(),
        address,
        weight: 1,
        backup: false,
        maxconn: None,
        check: true,
        check_settings: Default::default(),
        slowstart: Duration::ZERO,
    }
}

pub fn proxy_config(servers: Vec<Server>) -> Proxy {
    Proxy {
        name: "amqp".into(),
        binds: vec![SocketAddr::from(([127, 0, 0, 1], free_port()))],
        accept_proxy: Vec::new(),
        allbackups: false,
        rebalance: None,
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
        rabbitmq_api: None,
        servers,
    }
}

pub fn start(config: &Proxy) -> Arc<Balancer> {
    Balancer::start(std::slice::from_ref(config), None, Duration::from_millis(300), &tokio::runtime::Handle::current())
}

/// A backend that greets every connection with its name and a newline, then echoes.
pub async fn greeter(name: &'static str) -> (SocketAddr, JoinHandle<()>) {
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
pub fn dead_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

pub async fn connect(config: &Proxy) -> TcpStream {
    for _ in 0..100 {
        if let Ok(stream) = TcpStream::connect(config.binds[0]).await {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the proxy never listened on {}", config.binds[0]);
}

/// Reads the backend's greeting line; None when the proxy closed the connection instead.
pub async fn greeting(stream: &mut TcpStream) -> Option<String> {
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

pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads until EOF or error; true when the connection was closed within `within`.
pub async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
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
