//! Rebalancing and slowstart against real sockets: clients that reconnect when their session is
//! closed, servers that come back, and where the clients end up.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proxy::balancer::{AdminError, Balancer};
use proxy::server::Admin;
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use common::*;

/// Clients that each hold one connection and reconnect (after `pause`) when it closes,
/// recording which server greeted them.
async fn reconnecting_clients(
    config: &ha_common::config::Proxy,
    n: usize,
    pause: Duration,
) -> (JoinSet<()>, Arc<Mutex<Vec<String>>>) {
    let landed = Arc::new(Mutex::new(vec![String::new(); n]));
    let mut clients = JoinSet::new();
    for i in 0..n {
        let (config, landed) = (config.clone(), Arc::clone(&landed));
        clients.spawn(async move {
            loop {
                let mut stream = connect(&config).await;
                let Some(name) = greeting(&mut stream).await else { continue };
                landed.lock().await[i] = name;
                while !closed_within(&mut stream, Duration::from_secs(3600)).await {}
                landed.lock().await[i] = String::new();
                tokio::time::sleep(pause).await;
            }
        });
    }
    (clients, landed)
}

fn spread(balancer: &Balancer) -> Vec<u32> {
    balancer.proxies()[0].servers.iter().map(|s| s.counters.current.load(Relaxed)).collect()
}

/// Waits until the servers' session counts satisfy `done` and every client has its greeting
/// (a session counted on a server may still be connecting, out of reach of a close).
async fn settle(balancer: &Balancer, landed: &Mutex<Vec<String>>, what: &str, done: impl Fn(&[u32]) -> bool) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = spread(balancer);
        let greeted = landed.lock().await.iter().all(|l| !l.is_empty());
        if done(&now) && greeted {
            return now;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_moves_the_excess_to_a_returned_server_at_the_given_rate() {
    let mut config = proxy_config(vec![server("a", greeter("a").await.0), server("b", greeter("b").await.0)]);
    config.servers.iter_mut().for_each(|s| s.check = false);
    let balancer = start(&config);
    balancer.set_admin("amqp", "b", Admin::Maint).unwrap();
    let (_clients, landed) = reconnecting_clients(&config, 40, Duration::from_millis(50)).await;
    settle(&balancer, &landed, "every client on a", |s| s == [40, 0]).await;
    balancer.set_admin("amqp", "b", Admin::Ready).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(spread(&balancer), vec![40, 0], "a returning server gets nothing by itself");

    let mut events = balancer.rebalance_events();
    let started = Instant::now();
    let said = balancer.rebalance("amqp", Some(50)).unwrap();
    assert_eq!(said, "amqp: rebalancing 20 sessions above the fair share at 50/s");
    let even = settle(&balancer, &landed, "an even spread", |s| s == [20, 20]).await;
    let took = started.elapsed();
    println!("rebalanced 40 clients to {even:?} in {} ms", took.as_millis());
    assert!(took >= Duration::from_millis(300), "20 closes at 50/s take about 0.4 s, not less: {took:?}");
    let shared = Arc::clone(&balancer.proxies()[0].shared);
    assert_eq!(shared.rebalance_closed.load(Relaxed), 20, "exactly the excess was closed");
    assert!(events.recv().await.unwrap().message.starts_with("rebalance started: 20 sessions"));
    let end = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
    assert!(end.message.starts_with("rebalance done") && end.message.contains("20 of at most 20"), "{end:?}");
    assert_eq!(shared.rebalance(), None, "no rebalance shows as running once done");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(spread(&balancer), vec![20, 20], "and it stays even");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_rebalance_or_a_reload_stops_the_running_one() {
    let mut config = proxy_config(vec![server("a", greeter("a").await.0), server("b", greeter("b").await.0)]);
    config.servers.iter_mut().for_each(|s| s.check = false);
    let balancer = start(&config);
    balancer.set_admin("amqp", "b", Admin::Maint).unwrap();
    let (_clients, landed) = reconnecting_clients(&config, 20, Duration::from_millis(50)).await;
    settle(&balancer, &landed, "every client on a", |s| s == [20, 0]).await;
    balancer.set_admin("amqp", "b", Admin::Ready).unwrap();

    let mut events = balancer.rebalance_events();
    balancer.rebalance("amqp", Some(1)).unwrap();
    assert!(events.recv().await.unwrap().message.starts_with("rebalance started"));
    let said = balancer.rebalance("amqp", Some(2)).unwrap();
    assert!(said.ends_with("(the running rebalance stops)"), "{said}");
    let mut messages = Vec::new();
    for _ in 0..2 {
        messages.push(tokio::time::timeout(Duration::from_secs(2), events.recv()).await.unwrap().unwrap().message);
    }
    assert!(messages.iter().any(|m| m.starts_with("rebalance replaced or stopped")), "{messages:?}");
    let progress = balancer.proxies()[0].shared.rebalance().unwrap_or_else(|| panic!("the second one runs: {messages:?}"));
    assert_eq!(progress.rate, 2);

    let changes = balancer.reload(std::slice::from_ref(&config));
    assert!(changes.contains(&"proxy amqp: the running rebalance stopped".to_owned()), "{changes:?}");
    let end = tokio::time::timeout(Duration::from_secs(2), events.recv()).await.unwrap().unwrap();
    assert!(end.message.starts_with("rebalance replaced or stopped"), "{end:?}");
    let closed = balancer.proxies()[0].shared.rebalance_closed.load(Relaxed);
    assert!(closed < 10, "stopped well before the excess was closed: {closed}");

    assert_eq!(balancer.rebalance("amqp", Some(0)), Err(AdminError::Rate(0)));
    assert_eq!(balancer.rebalance("nope", None), Err(AdminError::NoProxy("nope".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowstart_holds_back_a_returning_server_under_a_reconnect_storm() {
    // A rolling restart: c comes back from maintenance, then a goes into it, and a's clients all
    // reconnect at once. Without slowstart leastconn hands every one of them to c, the server
    // with no sessions; with it, c takes a share that grows with its ramp and b takes the rest.
    let mut landed_on_c = Vec::new();
    for slowstart in [Duration::ZERO, Duration::from_secs(60)] {
        let mut config = proxy_config(vec![
            server("a", greeter("a").await.0),
            server("b", greeter("b").await.0),
            server("c", greeter("c").await.0),
        ]);
        config.servers.iter_mut().for_each(|s| {
            s.check = false;
            s.slowstart = slowstart;
        });
        let balancer = start(&config);
        balancer.set_admin("amqp", "c", Admin::Maint).unwrap();
        let (_clients, landed) = reconnecting_clients(&config, 60, Duration::from_millis(20)).await;
        // About 30 each: clients connecting at the same instant may both see the same counts.
        let shared = settle(&balancer, &landed, "a and b share", |s| s[2] == 0 && s[0] + s[1] == 60).await;
        balancer.set_admin("amqp", "c", Admin::Ready).unwrap();
        balancer.set_admin("amqp", "a", Admin::Maint).unwrap();
        let proxy = Arc::clone(&balancer.proxies()[0]);
        // Every one of a's clients has reconnected once (a held shared[0] of the 60: about 30,
        // not always exactly).
        let moved = u64::from(shared[0]);
        let reconnected = || proxy.servers.iter().map(|s| s.counters.total.load(Relaxed)).sum::<u64>() >= 60 + moved;
        let after = settle(&balancer, &landed, "every client back", |s| reconnected() && s.iter().sum::<u32>() == 60).await;
        println!("slowstart {slowstart:?}: a's {} clients reconnecting landed as {after:?}", shared[0]);
        landed_on_c.push((after[2], shared[0]));
    }
    let ((plain, moved), (slow, _)) = (landed_on_c[0], landed_on_c[1]);
    assert!(plain + 3 >= moved, "without slowstart the fresh server takes (nearly) all {moved}: {landed_on_c:?}");
    assert!(slow <= 5, "with slowstart it takes a few: {landed_on_c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automatic_mode_rebalances_once_a_server_holds_more_than_its_threshold() {
    let mut config = proxy_config(vec![server("a", greeter("a").await.0), server("b", greeter("b").await.0)]);
    config.servers.iter_mut().for_each(|s| s.check = false);
    config.rebalance = Some(ha_common::config::AutoRebalance { threshold: 1.5, rate: 50 });
    let balancer = start(&config);
    let mut events = balancer.rebalance_events();
    balancer.set_admin("amqp", "b", Admin::Maint).unwrap();
    let (_clients, landed) = reconnecting_clients(&config, 40, Duration::from_millis(50)).await;
    settle(&balancer, &landed, "every client on a", |s| s == [40, 0]).await;
    // With b out, a's load is its fair share: nothing happens.
    tokio::time::sleep(proxy::rebalance::WATCH_INTERVAL + Duration::from_millis(500)).await;
    assert_eq!(spread(&balancer), vec![40, 0]);
    assert!(events.try_recv().is_err(), "no rebalance while a is the only server");
    let returned = Instant::now();
    balancer.set_admin("amqp", "b", Admin::Ready).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(7), events.recv()).await.unwrap().unwrap();
    assert!(first.message.contains("2.00 times its fair share (threshold 1.5)"), "{first:?}");
    let even = settle(&balancer, &landed, "an even spread", |s| s == [20, 20]).await;
    println!("automatic rebalance: {even:?} {} ms after b returned", returned.elapsed().as_millis());
}
