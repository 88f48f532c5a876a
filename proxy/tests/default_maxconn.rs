//! A balancer started without a global `maxconn` derives one from the open files limit. Alone
//! in its test binary: the limit it lowers is the whole process's.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use proxy::balancer::{default_maxconn, Balancer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_maxconn_sessions_are_limited_by_the_open_files_limit() {
    let config = proxy_config(vec![server("r", greeter("r").await.0)]);
    // Started under a small limit (75 sessions), then given room again so that nothing but
    // the derived maxconn can hold a client back.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, 200, hard).unwrap();
    let balancer =
        Balancer::start(std::slice::from_ref(&config), None, Duration::from_millis(300), &tokio::runtime::Handle::current());
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    let limit = default_maxconn(200) as usize;
    assert_eq!(limit, 75);

    let mut served = Vec::new();
    for _ in 0..limit {
        let mut client = connect(&config).await;
        assert_eq!(greeting(&mut client).await.as_deref(), Some("r"));
        served.push(client);
    }
    // One more waits in the kernel's backlog until a session ends.
    let mut waiting = TcpStream::connect(config.binds[0]).await.unwrap();
    let mut byte = [0u8; 1];
    assert!(tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut byte)).await.is_err(), "served beyond maxconn");
    served.pop();
    assert_eq!(greeting(&mut waiting).await.as_deref(), Some("r"));
    assert_eq!(balancer.proxies()[0].shared.counters.current.load(std::sync::atomic::Ordering::Relaxed), limit as u32);
}
