//! End to end with real RabbitMQ: a three-node 3.10 cluster (Debian's rabbitmq-server) in the
//! backend namespace, vrrpd with its balancer on both proxy hosts, and an AMQP publisher (with
//! publisher confirms) and consumer (with manual acks) in the client namespace, talking through
//! the VIP. The VIP moves by a graceful failover while the consumer holds unacknowledged
//! messages, then a broker node stops: every confirmed message is consumed, and the held
//! messages come back to the consumer at once rather than after the broker's heartbeat timeout.
//! Before that, the benchmark's load (`loadgen confirms`) runs through the VIP for 2 s on the
//! same cluster: it confirms and consumes messages, loses none and counts no error.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, ConfirmSelectArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::BasicProperties;
use integration::lab::{wait_until, Lab, VIP};
use integration::netns_available;
use integration::rabbit::Cluster;
use integration::scenario::{HostConfig, Instance, Pair, Proxy, Server, Stats};
use support::amqp::{declare, Confirm, ConfirmCallback};
use tokio::sync::mpsc;

mod support;

const PROGRAMS: &[&str] = &["ip", "rabbitmq-server", "rabbitmqctl"];
const QUEUE: &str = "vrrpd-e2e";

/// What the clients saw, shared with the test thread.
#[derive(Default)]
struct Observed {
    confirmed: BTreeSet<u64>,
    consumed: BTreeSet<u64>,
    /// Unacknowledged deliveries the consumer is holding on to.
    held: usize,
    /// Ids redelivered after the failover began, and when the first came.
    redelivered: BTreeSet<u64>,
    first_redelivery: Option<Instant>,
    failover_at: Option<Instant>,
    publisher_connections: u32,
    consumer_connections: u32,
}

impl Observed {
    fn summary(&self) -> String {
        format!(
            "confirmed {}, consumed {}, held {}, redelivered {}, publisher connections {}, consumer connections {}",
            self.confirmed.len(),
            self.consumed.len(),
            self.held,
            self.redelivered.len(),
            self.publisher_connections,
            self.consumer_connections
        )
    }
}

#[derive(Default)]
struct Control {
    hold_acks: AtomicBool,
    stop_publishing: AtomicBool,
    done: AtomicBool,
}

#[test]
fn confirmed_messages_survive_a_failover_and_a_broker_stop() {
    if !netns_available("confirmed_messages_survive_a_failover_and_a_broker_stop", PROGRAMS) {
        return;
    }
    let lab = Lab::up("rmq");
    let cluster = Cluster::start(&lab);
    // Both hosts balance over the three nodes, checked with AMQP handshakes; VI_1 tracks it.
    let proxy = Proxy::amqp(r#"kind = "amqp", interval = "500ms", rise = 2, fall = 2, timeout = "1s""#, 3);
    let base = |name: &str, priority| HostConfig::new(name).instance(Instance::vi1(priority).track_proxy("amqp", 0));
    let host = |name: &str, priority| base(name, priority).proxy(proxy.clone());
    let (mut a, b) = Pair::with(host).start(&lab);

    // The benchmark's load (`loadgen confirms`, scripts/bench-confirms.sh) on this cluster,
    // through the VIP: confirms flow, every confirmed message is consumed, nothing fails.
    let load = confirms_through_vip(&lab);
    let figure = |key: &str| load.get(key).and_then(|v| v.parse::<f64>().ok()).unwrap_or(-1.0);
    assert!(figure("confirmed") > 0.0 && figure("confirmed_per_s") > 0.0 && figure("consumed_per_s") > 0.0, "{load:?}");
    assert_eq!((figure("lost"), figure("nacked"), figure("errors")), (0.0, 0.0, 0.0), "{load:?}");
    assert!(figure("consumed") >= figure("confirmed"), "{load:?}");

    let observed = Arc::new(Mutex::new(Observed::default()));
    let control = Arc::new(Control::default());
    let client_ns = lab.ns("client");
    let workload = {
        let (observed, control) = (Arc::clone(&observed), Arc::clone(&control));
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(format!("/run/netns/{client_ns}")).unwrap();
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let publisher = tokio::spawn(publish(Arc::clone(&observed), Arc::clone(&control)));
                let consumer = tokio::spawn(consume(observed, Arc::clone(&control)));
                let _ = publisher.await;
                while !control.done.load(SeqCst) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                consumer.abort();
            });
        })
    };
    let observe = |f: &dyn Fn(&Observed) -> bool| f(&observed.lock().unwrap());
    assert!(
        wait_until(Duration::from_secs(30), || observe(&|o| o.consumed.len() > 100)),
        "traffic flows through the VIP\n{}",
        a.log()
    );

    // Graceful failover while the consumer holds unacknowledged messages.
    control.hold_acks.store(true, SeqCst);
    assert!(wait_until(Duration::from_secs(10), || observe(&|o| o.held >= 5)), "the consumer holds deliveries");
    let held_before = observed.lock().unwrap().held;
    observed.lock().unwrap().failover_at = Some(Instant::now());
    assert_eq!(a.stop(), Some(0));
    lab.expect_holder(VIP, "b", Duration::from_secs(3), &[&a, &b]);
    let redelivered = wait_until(Duration::from_secs(10), || observe(&|o| o.redelivered.len() >= held_before));
    let summary = observed.lock().unwrap().summary();
    let sessions: Vec<String> =
        a.log().lines().filter(|l| l.contains("session") || l.contains("state change")).map(str::to_owned).collect();
    assert!(redelivered, "the held messages were redelivered: {summary}\n{}", sessions.join("\n"));
    let redelivery = {
        let o = observed.lock().unwrap();
        o.first_redelivery.unwrap() - o.failover_at.unwrap()
    };
    eprintln!("held {held_before} unacked messages; first redelivered {} ms after the failover began", redelivery.as_millis());
    // Had the old proxy kept the broker connection, the broker would have held them until its
    // heartbeat timeout (60 s or more).
    assert!(redelivery < Duration::from_secs(5), "redelivered after {redelivery:?}");

    // A hundred reloads of the master while messages flow, each changing the servers' weights
    // and maxconn: applied in place, no session is closed, nothing is lost.
    let connections = |o: &Observed| o.publisher_connections + o.consumer_connections;
    // The clients have settled after the failover: no (re)connection for three seconds.
    let mut settled = (connections(&observed.lock().unwrap()), Instant::now());
    assert!(
        wait_until(Duration::from_secs(30), || {
            let now = connections(&observed.lock().unwrap());
            if now != settled.0 {
                settled = (now, Instant::now());
            }
            settled.1.elapsed() >= Duration::from_secs(3)
        }),
        "the clients settle after the failover"
    );
    let (connections_before, consumed_before) = {
        let o = observed.lock().unwrap();
        (connections(&o), o.consumed.len())
    };
    let reloading = Instant::now();
    for n in 0..100u32 {
        let servers = (1..=3).map(|i| Server::rabbit(i).weight(1 + (n + i as u32) % 3).maxconn(1000 + n)).collect();
        base("b", 100).proxy(proxy.clone().servers(servers)).write(&lab);
        let out = integration::lab::Daemon::ctl(&lab, "b", &["reload"]);
        assert!(out.status.success(), "reload {n}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let o = observed.lock().unwrap();
    eprintln!("100 reloads in {:?} while {} messages were consumed", reloading.elapsed(), o.consumed.len() - consumed_before);
    assert_eq!(connections(&o), connections_before, "no client was disconnected by a reload");
    drop(o);

    // A broker node stops: the proxy marks it DOWN, closes its sessions, clients reconnect.
    std::thread::sleep(Duration::from_secs(2));
    cluster.node("stop-node", 2);
    assert!(b.wait_for_log("server is DOWN", Duration::from_secs(10)), "{}", b.log());
    let consumed_before = observed.lock().unwrap().consumed.len();
    assert!(
        wait_until(Duration::from_secs(30), || observe(&|o| o.consumed.len() > consumed_before + 100)),
        "traffic flows again after the broker stopped"
    );

    control.stop_publishing.store(true, SeqCst);
    let drained = wait_until(Duration::from_secs(30), || observe(&|o| o.confirmed.is_subset(&o.consumed)));
    control.done.store(true, SeqCst);
    workload.join().unwrap();
    let o = observed.lock().unwrap();
    let lost: Vec<_> = o.confirmed.difference(&o.consumed).take(10).collect();
    eprintln!(
        "confirmed {}, consumed {}, publisher connections {}, consumer connections {}",
        o.confirmed.len(),
        o.consumed.len(),
        o.publisher_connections,
        o.consumer_connections
    );
    assert!(drained && lost.is_empty(), "confirmed but never consumed: {lost:?}");
    assert!(o.confirmed.len() > 300);
    assert!(o.publisher_connections >= 2 && o.consumer_connections >= 2, "both clients reconnected");
    drop(b);
}

/// `loadgen confirms` for 2 s (after 1 s of warm-up) through the VIP from the client host, 2
/// connections of 2 publishers each: its report as key=value pairs.
fn confirms_through_vip(lab: &Lab) -> BTreeMap<String, String> {
    let address = format!("{VIP}:5672");
    let args = ["confirms", &address, "--connections", "2", "--channels", "2", "--seconds", "2", "--warmup", "1"];
    let mut command = vec![env!("CARGO_BIN_EXE_loadgen")];
    command.extend(args);
    let out = lab.exec("client", &command);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("loadgen confirms through the VIP: {stdout}{stderr}");
    assert!(out.status.success(), "loadgen confirms failed: {stdout}{stderr}");
    stdout.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// Opens a connection through the VIP, retrying with a short connect timeout: a client that
/// waits out a full SYN retransmission after a failover loses a second for nothing.
async fn connect() -> Connection {
    connect_to(&VIP.to_string(), 60).await
}

/// [`connect`] to `address` with an AMQP heartbeat of `heartbeat` seconds.
async fn connect_to(address: &str, heartbeat: u16) -> Connection {
    loop {
        let mut args = OpenConnectionArguments::new(address, 5672, "guest", "guest");
        args.heartbeat(heartbeat);
        if let Ok(Ok(connection)) = tokio::time::timeout(Duration::from_millis(300), Connection::open(&args)).await {
            return connection;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`publish_at_least_once`] with a 60 s heartbeat, into [`Observed`].
async fn publish(observed: Arc<Mutex<Observed>>, control: Arc<Control>) {
    publish_at_least_once(
        60,
        Duration::from_millis(5),
        || observed.lock().unwrap().publisher_connections += 1,
        |id| {
            observed.lock().unwrap().confirmed.insert(id);
        },
        || control.stop_publishing.load(SeqCst),
    )
    .await;
}

/// Publishes ids 0, 1, 2... through the VIP with confirms (AMQP heartbeat `heartbeat` s, a
/// publish every `pace`); after a lost connection, republishes every id not yet confirmed
/// (at-least-once) until `stop` says so and everything is confirmed.
async fn publish_at_least_once(
    heartbeat: u16,
    pace: Duration,
    connected: impl Fn(),
    confirmed: impl Fn(u64),
    stop: impl Fn() -> bool,
) {
    let mut next_id = 0u64;
    let mut unconfirmed: BTreeSet<u64> = BTreeSet::new();
    'connection: loop {
        let connection = connect_to(&VIP.to_string(), heartbeat).await;
        connected();
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
                for t in done {
                    if let Some(id) = tags.remove(&t) {
                        unconfirmed.remove(&id);
                        confirmed(id);
                    }
                }
            }
            let stopping = stop();
            if stopping && unconfirmed.is_empty() {
                return;
            }
            if !connection.is_open() || !channel.is_open() {
                continue 'connection;
            }
            let id = match backlog.pop() {
                Some(id) => id,
                None if !stopping => {
                    next_id += 1;
                    unconfirmed.insert(next_id - 1);
                    next_id - 1
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
            tokio::time::sleep(pace).await;
        }
    }
}

/// Consumes with manual acks (prefetch 20); while told to hold, keeps deliveries unacked.
async fn consume(observed: Arc<Mutex<Observed>>, control: Arc<Control>) {
    loop {
        let connection = connect().await;
        observed.lock().unwrap().consumer_connections += 1;
        let Ok(channel) = connection.open_channel(None).await else { continue };
        if !declare(&channel, QUEUE).await || channel.basic_qos(BasicQosArguments::new(0, 20, false)).await.is_err() {
            continue;
        }
        let Ok((_, mut deliveries)) =
            channel.basic_consume_rx(BasicConsumeArguments::new(QUEUE, "").manual_ack(true).finish()).await
        else {
            continue;
        };
        let mut held = 0usize;
        observed.lock().unwrap().held = 0;
        // A consumer only reads: it learns of a closed connection from the I/O failure signal,
        // not from a failed write.
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
            {
                let mut o = observed.lock().unwrap();
                o.consumed.insert(id);
                if deliver.redelivered() && o.failover_at.is_some() {
                    o.redelivered.insert(id);
                    o.first_redelivery.get_or_insert_with(Instant::now);
                }
            }
            // Hold only on the connection that existed when holding began: after the
            // failover, the redelivered messages are acknowledged normally.
            if control.hold_acks.load(SeqCst) && observed.lock().unwrap().failover_at.is_none() {
                held += 1;
                observed.lock().unwrap().held = held;
                continue;
            }
            if channel.basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false)).await.is_err() {
                break;
            }
        }
    }
}

/// What the clients of the link-cut drill saw, shared with the test thread.
#[derive(Default)]
struct CutObserved {
    confirmed: BTreeSet<u64>,
    consumed: BTreeSet<u64>,
    /// Deliveries the consumer holds unacknowledged on the connection told to hold.
    held: BTreeSet<u64>,
    /// When the master's link was cut, and when each held id was delivered again (to either
    /// consumer) after it.
    cut_at: Option<Instant>,
    returned: BTreeMap<u64, Instant>,
    publisher_connections: u32,
    consumer_connections: u32,
    /// The bystander's connection through B's own address closed.
    bystander_lost: bool,
    bystander_checks: u32,
}

impl CutObserved {
    /// How long the held messages stayed stranded: until the last of them came back.
    fn stranded(&self) -> Option<Duration> {
        let cut = self.cut_at?;
        (self.returned.len() >= self.held.len() && !self.held.is_empty())
            .then(|| self.returned.values().max().map(|last| *last - cut))
            .flatten()
    }

    /// A delivery of `id`, redelivered or not, by either consumer.
    fn delivered(&mut self, id: u64, redelivered: bool) {
        self.consumed.insert(id);
        if redelivered && self.cut_at.is_some() && self.held.contains(&id) {
            self.returned.entry(id).or_insert_with(Instant::now);
        }
    }
}

#[derive(Default)]
struct CutControl {
    /// The consumer holds its deliveries unacked while its connection number is this one.
    hold_generation: std::sync::atomic::AtomicU32,
    stop_publishing: AtomicBool,
    done: AtomicBool,
}

/// The drill of issue 18: the master's link is cut while the consumer holds unacknowledged
/// messages. Without `rabbitmq_api` the broker keeps them on the dead master's connection until
/// its heartbeat timeout; with it, the new master closes that connection through the management
/// API when it takes over, and the messages come back within Master_Down_Interval + 1 s. The
/// new master's own connections stay open, and no confirmed message is lost.
#[test]
fn a_cut_masters_unacked_messages_come_back_within_master_down_interval() {
    if !netns_available("a_cut_masters_unacked_messages_come_back_within_master_down_interval", PROGRAMS) {
        return;
    }
    let lab = Lab::up("rcut");
    let _cluster = Cluster::start(&lab);
    let proxy = Proxy::amqp(r#"kind = "amqp", interval = "500ms", rise = 2, fall = 2, timeout = "1s""#, 3);
    let api = r#"rabbitmq_api = { urls = ["http://192.0.2.21:15672", "http://192.0.2.22:15672", "http://192.0.2.23:15672"], user = "guest", password = "guest" }"#;
    let host = |name: &str, priority, fencing: bool| {
        let proxy = if fencing { proxy.clone().with(api) } else { proxy.clone() };
        HostConfig::new(name).instance(Instance::vi1(priority)).proxy(proxy).stats(Stats::on(8100))
    };
    let (a, b) = Pair::with(|name, priority| host(name, priority, false)).start(&lab);

    let observed = Arc::new(Mutex::new(CutObserved::default()));
    let control = Arc::new(CutControl::default());
    let client_ns = lab.ns("client");
    let workload = {
        let (observed, control) = (Arc::clone(&observed), Arc::clone(&control));
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(format!("/run/netns/{client_ns}")).unwrap();
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let publisher = tokio::spawn(publish_cut(Arc::clone(&observed), Arc::clone(&control)));
                let consumer = tokio::spawn(consume_cut(Arc::clone(&observed), Arc::clone(&control), VIP.to_string(), true));
                // Straight to a broker: takes the held messages once the broker lets them go.
                let rescuer = tokio::spawn(consume_cut(Arc::clone(&observed), Arc::clone(&control), "192.0.2.21".into(), false));
                let bystander = tokio::spawn(bystander(Arc::clone(&observed)));
                let _ = publisher.await;
                while !control.done.load(SeqCst) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                consumer.abort();
                rescuer.abort();
                bystander.abort();
            });
        })
    };
    let observe = |f: &dyn Fn(&CutObserved) -> bool| f(&observed.lock().unwrap());
    assert!(wait_until(Duration::from_secs(30), || observe(&|o| o.consumed.len() > 100)), "traffic flows\n{}", a.log());
    assert!(wait_until(Duration::from_secs(10), || observe(&|o| o.bystander_checks > 0)), "the bystander is connected through B");

    // Holds, cuts A's link, and returns how long the held messages stayed stranded.
    let cut = |what: &str| -> Duration {
        let settled = settle(&observed);
        assert!(settled, "{what}: the clients settle");
        {
            let mut o = observed.lock().unwrap();
            o.held.clear();
            o.returned.clear();
            o.cut_at = None;
            control.hold_generation.store(o.consumer_connections, SeqCst);
        }
        assert!(
            wait_until(Duration::from_secs(10), || observe(&|o| o.held.len() >= 10)),
            "{what}: the consumer holds deliveries"
        );
        std::thread::sleep(Duration::from_millis(300));
        let held = {
            let mut o = observed.lock().unwrap();
            o.cut_at = Some(Instant::now());
            o.held.len()
        };
        lab.cut_link("a");
        lab.expect_holder(VIP, "b", Duration::from_secs(8), &[&b]);
        let back = wait_until(Duration::from_secs(60), || observe(&|o| o.stranded().is_some()));
        let o = observed.lock().unwrap();
        assert!(back, "{what}: the {held} held messages came back (returned {})\n{}", o.returned.len(), b.log());
        let stranded = o.stranded().unwrap();
        eprintln!("{what}: {held} unacked messages of the cut master stranded for {:.3} s", stranded.as_secs_f64());
        stranded
    };
    let heal = || {
        lab.heal_link("a");
        // A has the higher priority: it preempts B back, and B closes its VIP sessions.
        lab.expect_holder(VIP, "a", Duration::from_secs(10), &[&a, &b]);
    };

    // Without rabbitmq_api: the broker waits for the heartbeat (10 s, two missed).
    let without = cut("without rabbitmq_api");
    assert!(without > Duration::from_secs(8), "without fencing, the broker's heartbeat decides: {without:?}");
    heal();

    // With rabbitmq_api on both hosts (a reload).
    for (name, priority) in [("a", 101), ("b", 100)] {
        host(name, priority, true).write(&lab);
        let out = integration::lab::Daemon::ctl(&lab, name, &["reload"]);
        assert!(out.status.success(), "reload {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let checks_before = observed.lock().unwrap().bystander_checks;
    let with = cut("with rabbitmq_api");
    // B's Master_Down_Interval (priority 100): 3 x 1 s + 156/256 s.
    let mdi = Duration::from_secs(3) + Duration::from_nanos(156 * 3_906_250);
    assert!(with <= mdi + Duration::from_secs(1), "stranded {with:?}, more than Master_Down_Interval + 1 s\n{}", b.log());
    assert!(b.wait_for_log("fenced broker connections", Duration::from_secs(5)), "{}", b.log());
    let log = b.log();
    let fenced: Vec<&str> = log.lines().filter(|l| l.contains("fenc")).collect();
    eprintln!("B's fencing lines:\n{}", fenced.join("\n"));
    // The new master's own connection (the bystander through B's address) stayed open.
    assert!(
        wait_until(Duration::from_secs(5), || observe(&|o| o.bystander_checks > checks_before + 2)),
        "the bystander keeps working"
    );
    assert!(!observe(&|o| o.bystander_lost), "fencing closed none of the new master's connections");
    let status = integration::lab::Daemon::ctl(&lab, "b", &["status"]);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("fencing: 1 runs (0 failed)"), "{status}");
    assert!(!status.contains("guest"), "no credential in ctl status: {status}");
    // The stats page says the same.
    let page = integration::netns::http_get(&lab.ns("client"), "192.0.2.12:8100".parse().unwrap(), "/", None).unwrap().body;
    assert!(page.contains("fencing: 1 runs (0 failed)") && page.contains("(ok, "), "{page}");
    assert!(!page.contains("guest"), "no credential on the page");
    heal();

    // By hand: the rescuer's connection (straight from the client, 192.0.2.31) is closed, and
    // it reconnects; this host's own address is refused.
    let out = integration::lab::Daemon::ctl(&lab, "b", &["fence", "192.0.2.31"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("vrrpd ctl fence 192.0.2.31: {said}");
    assert!(out.status.success() && said.contains("closed 1 of 1 matching connections"), "{said}");
    let out = integration::lab::Daemon::ctl(&lab, "b", &["fence", "192.0.2.12"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("one of this host's own addresses"), "{said}");
    assert!(!observe(&|o| o.bystander_lost), "refused: B's own connection stays");

    // At start, A closes the connections a previous run of A left: here one opened straight
    // from A's address, as the broker would list a session of a host that lost power.
    let leftover_closed = Arc::new(AtomicBool::new(false));
    let leftover = {
        let (a_ns, closed) = (lab.ns("a"), Arc::clone(&leftover_closed));
        std::thread::spawn(move || {
            let namespace = std::fs::File::open(format!("/run/netns/{a_ns}")).unwrap();
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let connection = connect_to("192.0.2.21", 10).await;
                let channel = connection.open_channel(None).await.unwrap();
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    if !connection.is_open() || !declare(&channel, QUEUE).await {
                        closed.store(true, SeqCst);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        })
    };
    // The management API lists a connection once the broker has collected its statistics
    // (every 5 s by default), as a real leftover (from a run that died seconds ago or more)
    // would be: let one interval pass, then see a connection from A listed. (A's own proxied
    // sessions come from that address too, so the listing alone does not tell the leftover.)
    std::thread::sleep(Duration::from_secs(6));
    let listed = || {
        let out = lab.exec(
            "backend",
            &["curl", "-s", "-m", "2", "-u", "guest:guest", "http://192.0.2.21:15672/api/connections?columns=peer_host"],
        );
        String::from_utf8_lossy(&out.stdout).contains("\"192.0.2.11\"")
    };
    assert!(wait_until(Duration::from_secs(20), listed), "the leftover connection is listed by the management API");
    assert!(!leftover_closed.load(SeqCst), "the leftover connection is open before the restart");
    let mut a = a;
    assert_eq!(a.stop(), Some(0));
    let a = host("a", 101, true).start(&lab, &[]);
    assert!(wait_until(Duration::from_secs(10), || leftover_closed.load(SeqCst)), "A's start closed its leftover\n{}", a.log());
    assert!(a.wait_for_log("fenced broker connections", Duration::from_secs(5)), "{}", a.log());
    leftover.join().unwrap();
    lab.expect_holder(VIP, "a", Duration::from_secs(10), &[&a, &b]);

    control.stop_publishing.store(true, SeqCst);
    let drained = wait_until(Duration::from_secs(60), || observe(&|o| o.confirmed.is_subset(&o.consumed)));
    control.done.store(true, SeqCst);
    workload.join().unwrap();
    let o = observed.lock().unwrap();
    let lost: Vec<_> = o.confirmed.difference(&o.consumed).take(10).collect();
    eprintln!(
        "confirmed {}, consumed {}, publisher connections {}, consumer connections {}; stranded {:.3} s without rabbitmq_api, {:.3} s with (Master_Down_Interval {:.3} s)",
        o.confirmed.len(),
        o.consumed.len(),
        o.publisher_connections,
        o.consumer_connections,
        without.as_secs_f64(),
        with.as_secs_f64(),
        mdi.as_secs_f64()
    );
    // Where the missing messages are, as the brokers see them (the test ran once in CI
    // without them, and did not fail again in runs here): ready, unacknowledged and on which
    // connections.
    let brokers = || {
        let get = |path: &str| {
            let url = format!("http://192.0.2.21:15672/api/{path}");
            let out = lab.exec("backend", &["curl", "-s", "-m", "5", "-u", "guest:guest", &url]);
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        format!(
            "queue: {}\nconnections: {}\nchannels: {}",
            get(&format!("queues/%2f/{QUEUE}?columns=messages_ready,messages_unacknowledged,consumers,leader,members")),
            get("connections?columns=name,peer_host,state,channels,connected_at"),
            get("channels?columns=name,messages_unacknowledged,consumer_count")
        )
    };
    assert!(
        drained && lost.is_empty(),
        "confirmed but never consumed: {lost:?}\n{}",
        if lost.is_empty() { String::new() } else { brokers() }
    );
    drop((a, b));
}

/// Waits until the clients have not (re)connected for three seconds.
fn settle(observed: &Mutex<CutObserved>) -> bool {
    let count = |o: &CutObserved| o.publisher_connections + o.consumer_connections;
    let mut settled = (count(&observed.lock().unwrap()), Instant::now());
    wait_until(Duration::from_secs(60), || {
        let now = count(&observed.lock().unwrap());
        if now != settled.0 {
            settled = (now, Instant::now());
        }
        settled.1.elapsed() >= Duration::from_secs(3)
    })
}

/// [`publish`] with a 10 s heartbeat.
async fn publish_cut(observed: Arc<Mutex<CutObserved>>, control: Arc<CutControl>) {
    publish_at_least_once(
        10,
        Duration::from_millis(10),
        || observed.lock().unwrap().publisher_connections += 1,
        |id| {
            observed.lock().unwrap().confirmed.insert(id);
        },
        || control.stop_publishing.load(SeqCst),
    )
    .await;
}

/// Consumes from `address` with manual acks and a 10 s heartbeat. The consumer through the VIP
/// (`counted`) holds its deliveries unacked while its connection is the one told to hold.
async fn consume_cut(observed: Arc<Mutex<CutObserved>>, control: Arc<CutControl>, address: String, counted: bool) {
    loop {
        let connection = connect_to(&address, 10).await;
        let generation = if counted {
            let mut o = observed.lock().unwrap();
            o.consumer_connections += 1;
            o.consumer_connections
        } else {
            0
        };
        let Ok(channel) = connection.open_channel(None).await else { continue };
        let prefetch = if counted { 20 } else { 200 };
        if !declare(&channel, QUEUE).await || channel.basic_qos(BasicQosArguments::new(0, prefetch, false)).await.is_err() {
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
            let hold = counted && control.hold_generation.load(SeqCst) == generation;
            {
                let mut o = observed.lock().unwrap();
                o.delivered(id, deliver.redelivered());
                if hold && o.cut_at.is_none() {
                    o.held.insert(id);
                }
            }
            if hold {
                continue;
            }
            if channel.basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false)).await.is_err() {
                break;
            }
        }
    }
}

/// A client of B's own address (192.0.2.12:5672, not the VIP): B's broker connection for it
/// has B as its peer, and must survive B fencing A. Declares the queue every 500 ms.
async fn bystander(observed: Arc<Mutex<CutObserved>>) {
    let connection = connect_to("192.0.2.12", 10).await;
    let channel = connection.open_channel(None).await.unwrap();
    loop {
        let alive = connection.is_open() && declare(&channel, QUEUE).await;
        {
            let mut o = observed.lock().unwrap();
            if alive {
                o.bystander_checks += 1;
            } else {
                o.bystander_lost = true;
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
