//! Slowstart and rebalancing measured against real RabbitMQ: a three-node 3.10 cluster in the
//! backend namespace, vrrpd on proxy host A, and 300 AMQP connections in the client namespace
//! that reconnect whenever they lose their connection (amqprs has no automatic recovery, so
//! each client runs the small loop a recovering client library would). A few of them publish
//! with confirms and consume with acks the whole time. A broker stops and comes back, a broker
//! is taken out for a rolling restart, and the test prints where the clients land: with and
//! without slowstart, and before and after `vrrpd ctl rebalance`. Nothing confirmed is lost.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, ConfirmSelectArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::BasicProperties;
use integration::lab::{wait_until, Daemon, Lab, VIP};
use integration::netns_available;
use integration::rabbit::Cluster;
use integration::scenario::{HostConfig, Instance, Proxy};
use support::amqp::{declare, Confirm, ConfirmCallback};
use tokio::sync::mpsc;

mod support;

const PROGRAMS: &[&str] = &["ip", "rabbitmq-server", "rabbitmqctl"];
const QUEUE: &str = "vrrpd-rebalance";
/// AMQP connections in all.
const CLIENTS: usize = 300;
/// Of which these publish with confirms, and as many consume with acks; the rest hold an idle
/// connection with one channel, as most AMQP clients of a service do most of the time.
const PUBLISHERS: usize = 5;
const SLOWSTART: &str = "60s";
const REBALANCE_RATE: u32 = 25;

#[derive(Default)]
struct Observed {
    confirmed: BTreeSet<u64>,
    consumed: BTreeSet<u64>,
}

#[derive(Default)]
struct Control {
    stop_publishing: AtomicBool,
    done: AtomicBool,
    /// Connections opened, all clients together.
    connections: AtomicU32,
}

/// The proxy host's balancer, read through `vrrpd ctl status --json`.
struct Balancer<'a> {
    lab: &'a Lab,
}

impl Balancer<'_> {
    fn ctl(&self, words: &[&str]) -> String {
        let out = Daemon::ctl(self.lab, "a", words);
        assert!(out.status.success(), "vrrpd ctl {words:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sessions on rabbit1, rabbit2, rabbit3.
    fn spread(&self) -> Vec<u64> {
        let status: serde_json::Value = serde_json::from_str(&self.ctl(&["status", "--json"])).unwrap();
        let servers = status["proxies"][0]["servers"].as_array().unwrap().clone();
        servers.iter().map(|s| s["sessions"]["current"].as_u64().unwrap()).collect()
    }

    fn server_status(&self, n: usize) -> String {
        let status: serde_json::Value = serde_json::from_str(&self.ctl(&["status", "--json"])).unwrap();
        status["proxies"][0]["servers"][n - 1]["status"].as_str().unwrap().to_owned()
    }

    /// Waits until every client is connected and the spread has not moved for two seconds;
    /// returns it.
    fn settled(&self, what: &str) -> Vec<u64> {
        let mut last = (Vec::new(), Instant::now());
        let settled = wait_until(Duration::from_secs(60), || {
            let now = self.spread();
            if now != last.0 {
                last = (now, Instant::now());
            }
            last.0.iter().sum::<u64>() == CLIENTS as u64 && last.1.elapsed() >= Duration::from_secs(2)
        });
        assert!(settled, "{what}: the clients never settled: {:?}", last.0);
        last.0
    }
}

#[test]
fn slowstart_and_rebalance_spread_300_reconnecting_amqp_clients_and_lose_nothing() {
    let test = "slowstart_and_rebalance_spread_300_reconnecting_amqp_clients_and_lose_nothing";
    if !netns_available(test, PROGRAMS) {
        return;
    }
    let started = Instant::now();
    let lab = Lab::up("rbl");
    let cluster = Cluster::start(&lab);
    eprintln!("cluster up after {:.0?}", started.elapsed());
    let proxy = Proxy::amqp(r#"kind = "amqp", interval = "500ms", rise = 2, fall = 2, timeout = "1s""#, 3);
    let host = |proxy: Proxy| HostConfig::new("a").instance(Instance::vi1(101)).proxy(proxy);
    let a = host(proxy.clone()).start(&lab, &["--state", "MASTER"]);
    lab.expect_holder(VIP, "a", Duration::from_secs(5), &[&a]);
    let balancer = Balancer { lab: &lab };

    let observed = Arc::new(Mutex::new(Observed::default()));
    let control = Arc::new(Control::default());
    let workload = {
        let (observed, control) = (Arc::clone(&observed), Arc::clone(&control));
        let client_ns = lab.ns("client");
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(format!("/run/netns/{client_ns}")).unwrap();
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let mut publishers = Vec::new();
                let mut others = Vec::new();
                for i in 0..CLIENTS {
                    let (observed, control) = (Arc::clone(&observed), Arc::clone(&control));
                    match i % (CLIENTS / PUBLISHERS) {
                        0 => publishers.push(tokio::spawn(publish(observed, control))),
                        1 => others.push(tokio::spawn(consume(observed, control))),
                        _ => others.push(tokio::spawn(idle(control))),
                    }
                    // Not all at once: the first connections are a cluster's normal life.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                for publisher in publishers {
                    let _ = publisher.await;
                }
                while !control.done.load(SeqCst) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                others.iter().for_each(tokio::task::JoinHandle::abort);
            });
        })
    };
    let initial = balancer.settled("initial connections");
    eprintln!("{CLIENTS} clients connected after {:.0?}: {initial:?}", started.elapsed());

    // A broker stops: its clients move to the other two. It comes back: nothing moves back.
    cluster.node("stop-node", 3);
    let without_3 = balancer.settled("rabbit3 stopped");
    assert_eq!(without_3[2], 0, "{without_3:?}");
    cluster.node("start-node", 3);
    assert!(wait_until(Duration::from_secs(20), || balancer.server_status(3) == "UP"), "rabbit3 comes back UP");
    let returned = balancer.settled("rabbit3 back");
    eprintln!("rabbit3 stopped: {without_3:?}; back UP: {returned:?} (connections stay where they are)");

    // Rolling restart, next step, without slowstart: rabbit1 goes into maintenance and its
    // clients all reconnect at once; leastconn sends every one of them to the fresh rabbit3.
    balancer.ctl(&["server", "disable", "amqp/rabbit1"]);
    let storm_plain = balancer.settled("rabbit1's clients reconnect (no slowstart)");
    eprintln!("no slowstart: rabbit1's {} clients reconnect and land as {storm_plain:?}", returned[0]);
    balancer.ctl(&["server", "enable", "amqp/rabbit1"]);

    // Rebalance: sessions above the fair share are closed at a bounded rate and their clients
    // reconnect to the least loaded brokers.
    let before = balancer.settled("rabbit1 back in service");
    let rebalancing = Instant::now();
    let said = balancer.ctl(&["rebalance", "amqp", "--rate", &REBALANCE_RATE.to_string()]).trim().to_owned();
    let ended = |log: &str| log.contains("rebalance done") || log.contains("rebalance ended");
    assert!(wait_until(Duration::from_secs(60), || ended(&a.log())), "{said}\n{}", a.log());
    let ending = a.log().lines().filter(|l| l.contains("fair share:")).map(str::to_owned).collect::<Vec<_>>();
    let after = balancer.settled("after the rebalance");
    let took = rebalancing.elapsed();
    let closed = a.log().lines().filter(|l| l.contains("reason=rebalanced")).count();
    eprintln!("rebalance at {REBALANCE_RATE}/s: {before:?} -> {after:?}, {closed} sessions closed, {took:.1?} ({said})");
    eprintln!("{}", ending.join("\n"));
    let fair = CLIENTS as u64 / 3;
    assert!(after.iter().all(|&n| n.abs_diff(fair) <= 10), "the spread evens out: {after:?}");
    let status = balancer.ctl(&["status", "--json"]);
    assert!(status.contains(&format!("\"rebalance_closed\": {closed}")), "counted: {closed}\n{status}");
    let timeline = balancer.ctl(&["events"]);
    let on_timeline = |what: &str| timeline.lines().any(|l| l.contains("rebalance") && l.contains("amqp") && l.contains(what));
    assert!(on_timeline("rebalance started") && on_timeline("sessions closed at"), "{timeline}");

    // The same rolling-restart step with slowstart: rabbit3 stops and comes back, and ramps.
    let slow = proxy.clone().with(format!("slowstart = \"{SLOWSTART}\""));
    host(slow).write(&lab);
    balancer.ctl(&["reload"]);
    cluster.node("stop-node", 3);
    balancer.settled("rabbit3 stopped again");
    cluster.node("start-node", 3);
    assert!(wait_until(Duration::from_secs(20), || balancer.server_status(3) == "UP"), "rabbit3 comes back UP");
    let returned = balancer.settled("rabbit3 back again");
    let up_at = Instant::now();
    balancer.ctl(&["server", "disable", "amqp/rabbit1"]);
    let storm_slow = balancer.settled("rabbit1's clients reconnect (slowstart)");
    eprintln!(
        "slowstart {SLOWSTART}: rabbit1's {} clients reconnect {:.1?} after rabbit3 came back and land as {storm_slow:?}",
        returned[0],
        up_at.elapsed()
    );
    balancer.ctl(&["server", "enable", "amqp/rabbit1"]);
    assert!(storm_plain[2] >= returned[0] * 8 / 10, "without slowstart the fresh broker takes them: {storm_plain:?}");
    assert!(storm_slow[2] < storm_plain[2] / 2, "with slowstart it takes far fewer: {storm_slow:?} vs {storm_plain:?}");

    // Nothing confirmed was lost through all of it.
    control.stop_publishing.store(true, SeqCst);
    let drained = wait_until(Duration::from_secs(30), || {
        let o = observed.lock().unwrap();
        o.confirmed.is_subset(&o.consumed)
    });
    control.done.store(true, SeqCst);
    workload.join().unwrap();
    let o = observed.lock().unwrap();
    let lost: Vec<_> = o.confirmed.difference(&o.consumed).take(10).collect();
    eprintln!(
        "confirmed {}, consumed {}, lost {}, connections opened {}; test took {:.0?}",
        o.confirmed.len(),
        o.consumed.len(),
        o.confirmed.difference(&o.consumed).count(),
        control.connections.load(SeqCst),
        started.elapsed()
    );
    assert!(drained && lost.is_empty(), "confirmed but never consumed: {lost:?}");
    assert!(o.confirmed.len() > 500, "messages flowed: {}", o.confirmed.len());
}

/// Opens a connection through the VIP, retrying until it succeeds (a recovering client).
async fn connect(control: &Control) -> Connection {
    loop {
        let mut args = OpenConnectionArguments::new(&VIP.to_string(), 5672, "guest", "guest");
        args.heartbeat(30);
        if let Ok(Ok(connection)) = tokio::time::timeout(Duration::from_secs(3), Connection::open(&args)).await {
            control.connections.fetch_add(1, SeqCst);
            return connection;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Holds one connection with one channel; reconnects when it is lost.
async fn idle(control: Arc<Control>) {
    loop {
        let connection = connect(&control).await;
        let Ok(_channel) = connection.open_channel(None).await else { continue };
        // Lost either way: the socket fails, or the broker closes the connection (a node
        // shutting down says so with Connection.Close first).
        let lost = connection.listen_network_io_failure();
        tokio::pin!(lost);
        while connection.is_open() {
            tokio::select! {
                _ = &mut lost => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        // As a recovering client: back off a little before reconnecting.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes unique ids with confirms, about 20 a second; after a lost connection, republishes
/// every id not yet confirmed (at-least-once).
async fn publish(observed: Arc<Mutex<Observed>>, control: Arc<Control>) {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut unconfirmed: BTreeSet<u64> = BTreeSet::new();
    'connection: loop {
        let connection = connect(&control).await;
        let Ok(channel) = connection.open_channel(None).await else { continue };
        let (confirms, mut acks) = mpsc::unbounded_channel();
        if channel.register_callback(ConfirmCallback(confirms)).await.is_err()
            || channel.confirm_select(ConfirmSelectArguments::default()).await.is_err()
            || !declare(&channel, QUEUE).await
        {
            continue;
        }
        let mut tags: BTreeMap<u64, u64> = BTreeMap::new();
        let mut next_tag = 1u64;
        let mut backlog: Vec<u64> = unconfirmed.iter().copied().collect();
        loop {
            while let Ok(confirm) = acks.try_recv() {
                // Nacked messages stay unconfirmed; a closed channel is seen by is_open below.
                let Confirm::Ack { tag, multiple } = confirm else { continue };
                let done: Vec<u64> = if multiple { tags.range(..=tag).map(|(t, _)| *t).collect() } else { vec![tag] };
                let mut o = observed.lock().unwrap();
                for t in done {
                    if let Some(id) = tags.remove(&t) {
                        unconfirmed.remove(&id);
                        o.confirmed.insert(id);
                    }
                }
            }
            let stopping = control.stop_publishing.load(SeqCst);
            if stopping && unconfirmed.is_empty() {
                return;
            }
            if !connection.is_open() || !channel.is_open() {
                continue 'connection;
            }
            let id = match backlog.pop() {
                Some(id) => id,
                None if !stopping => {
                    let id = NEXT_ID.fetch_add(1, SeqCst);
                    unconfirmed.insert(id);
                    id
                }
                None => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let mut properties = BasicProperties::default();
            properties.with_delivery_mode(amqprs::DELIVERY_MODE_PERSISTENT).with_message_id(&id.to_string());
            if channel
                .basic_publish(properties.finish(), id.to_be_bytes().to_vec(), BasicPublishArguments::new("", QUEUE))
                .await
                .is_err()
            {
                continue 'connection;
            }
            tags.insert(next_tag, id);
            next_tag += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Consumes with manual acks (prefetch 20); reconnects when the connection is lost.
async fn consume(observed: Arc<Mutex<Observed>>, control: Arc<Control>) {
    loop {
        let connection = connect(&control).await;
        let Ok(channel) = connection.open_channel(None).await else { continue };
        if !declare(&channel, QUEUE).await || channel.basic_qos(BasicQosArguments::new(0, 20, false)).await.is_err() {
            continue;
        }
        let Ok((_, mut deliveries)) =
            channel.basic_consume_rx(BasicConsumeArguments::new(QUEUE, "").manual_ack(true).finish()).await
        else {
            continue;
        };
        let lost = connection.listen_network_io_failure();
        tokio::pin!(lost);
        loop {
            let message = tokio::select! {
                message = deliveries.recv() => message,
                _ = &mut lost => None,
            };
            let Some(message) = message else { break };
            let (Some(deliver), Some(content)) = (message.deliver, message.content) else { continue };
            let id = u64::from_be_bytes(content.as_slice().try_into().unwrap_or([0xff; 8]));
            observed.lock().unwrap().consumed.insert(id);
            if channel.basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false)).await.is_err() {
                break;
            }
        }
    }
}
