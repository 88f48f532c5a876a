//! Publishing with publisher confirms through a real RabbitMQ cluster (`loadgen confirms`), for
//! `scripts/bench-confirms.sh`: the same load direct to the brokers and through each proxy.
//!
//! What RabbitMQ operators run for data they must not lose: durable quorum queues (replicated
//! over the three nodes, one led from each node: see [`run`]), persistent messages, publisher
//! confirms (a quorum queue confirms once a majority of its replicas has the message on disk),
//! consumers with manual acks. Each publisher (a channel) keeps at most
//! `window` messages unconfirmed; consumers on their own connections ack what they receive, so
//! the queues stay short. Every message carries its id in its first 8 bytes: at the end, a message
//! confirmed but never consumed is counted as lost.
//!
//! Every AMQP operation has a timeout; failures are counted by kind and reported, a failed
//! publisher or consumer stops (no reconnection: the run measures a steady state).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, Channel, ConfirmSelectArguments,
    ConsumerMessage, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::error::Error as AmqpError;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, FieldValue, Nack, Return};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::timeout;

/// The largest body sent: it fits one AMQP body frame at RabbitMQ's default frame_max (128 KiB).
pub const MAX_SIZE: usize = 65_536;

/// What one run does.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Connections are spread over these in turn (one proxy, or the brokers themselves).
    pub addresses: Vec<SocketAddr>,
    /// Publishing connections.
    pub connections: usize,
    /// Publishers (channels in confirm mode) per connection.
    pub channels: usize,
    /// Message body size in bytes (at least 8: the id).
    pub size: usize,
    pub warmup: Duration,
    pub measured: Duration,
    /// Unconfirmed messages a publisher may have at once.
    pub window: usize,
    /// Quorum queues, each with one consumer; every publisher publishes to them in turn.
    pub queues: usize,
    /// Deliveries a consumer may hold unacked.
    pub prefetch: u16,
    /// Limit on each AMQP operation (connect, declare, publish, a confirm, an ack...).
    pub timeout: Duration,
    pub user: String,
    pub password: String,
}

impl Settings {
    /// The settings' own contradictions, before anything connects.
    pub fn check(&self) -> Result<(), String> {
        if self.addresses.is_empty() {
            return Err("no address to connect to".into());
        }
        if !(8..=MAX_SIZE).contains(&self.size) {
            return Err(format!("--size {}: from 8 (a message carries its 8-byte id) to {MAX_SIZE} (one body frame)", self.size));
        }
        if self.connections == 0 || self.channels == 0 || self.window == 0 || self.queues == 0 || self.prefetch == 0 {
            return Err("--connections, --channels, --window, --queues and --prefetch must be at least 1".into());
        }
        if self.measured.is_zero() || self.timeout.is_zero() {
            return Err("--seconds and --timeout must be above 0".into());
        }
        Ok(())
    }

    fn address(&self, n: usize) -> SocketAddr {
        self.addresses[n % self.addresses.len()]
    }
}

/// Failures by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Errors {
    /// Connections or channels that could not be opened or set up.
    pub setup: u64,
    /// `basic.publish` that failed or did not go out in time.
    pub publish: u64,
    /// Publishers that waited longer than the timeout for a confirm, or whose channel closed.
    pub confirm: u64,
    /// Consumers whose deliveries stopped (channel closed) or whose ack failed.
    pub consume: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.setup + self.publish + self.confirm + self.consume
    }
}

/// The figures of one run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub settings_line: String,
    /// Messages confirmed (acked by the broker) within the measured window.
    pub confirmed_in_window: u64,
    pub consumed_in_window: u64,
    pub window_seconds: f64,
    /// Confirm latency (publish to ack) of the messages confirmed in the window, microseconds.
    pub p50_us: u64,
    pub p99_us: u64,
    /// Over the whole run, warm-up and drain included.
    pub published: u64,
    pub confirmed: u64,
    pub consumed: u64,
    pub nacked: u64,
    /// Confirmed, and not consumed by the end of the drain.
    pub lost: u64,
    /// Deliveries of an id already consumed (redeliveries).
    pub duplicates: u64,
    pub errors: Errors,
    pub first_error: Option<String>,
    /// The watched process's CPU time over the window, in USER_HZ ticks.
    pub cpu_ticks: Option<u64>,
}

impl Report {
    pub fn confirmed_per_s(&self) -> f64 {
        if self.window_seconds > 0.0 {
            self.confirmed_in_window as f64 / self.window_seconds
        } else {
            0.0
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_s = |n: u64| if self.window_seconds > 0.0 { n as f64 / self.window_seconds } else { 0.0 };
        write!(
            f,
            "{} confirmed_per_s={:.0} consumed_per_s={:.0} p50_us={} p99_us={} published={} confirmed={} consumed={} \
             nacked={} lost={} duplicates={} errors={} setup_errors={} publish_errors={} confirm_errors={} consume_errors={}",
            self.settings_line,
            per_s(self.confirmed_in_window),
            per_s(self.consumed_in_window),
            self.p50_us,
            self.p99_us,
            self.published,
            self.confirmed,
            self.consumed,
            self.nacked,
            self.lost,
            self.duplicates,
            self.errors.total(),
            self.errors.setup,
            self.errors.publish,
            self.errors.confirm,
            self.errors.consume,
        )
    }
}

const MEASURING: u8 = 1;
const FINISHED: u8 = 2;

/// What the publishers and consumers share with the run.
#[derive(Default)]
struct Shared {
    /// 0 while warming up, then MEASURING, then FINISHED.
    phase: AtomicU8,
    stop_publishing: AtomicBool,
    stop_consuming: AtomicBool,
    next_id: AtomicU64,
    confirmed: Mutex<HashSet<u64>>,
    consumed: Mutex<HashSet<u64>>,
    confirmed_in_window: AtomicU64,
    consumed_in_window: AtomicU64,
    published: AtomicU64,
    nacked: AtomicU64,
    duplicates: AtomicU64,
    setup_errors: AtomicU64,
    publish_errors: AtomicU64,
    confirm_errors: AtomicU64,
    consume_errors: AtomicU64,
    /// Consumers that stopped before being told to (their queue is no longer drained).
    consumers_ended: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn failed(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(what);
    }

    fn measuring(&self) -> bool {
        self.phase.load(Relaxed) == MEASURING
    }

    fn lost(&self) -> u64 {
        let consumed = self.consumed.lock().unwrap_or_else(|e| e.into_inner());
        let confirmed = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        confirmed.iter().filter(|id| !consumed.contains(id)).count() as u64
    }
}

/// A publisher's confirm stream, from the channel's callback.
pub enum Confirm {
    Ack { tag: u64, multiple: bool },
    Nack { tag: u64, multiple: bool },
    ChannelClosed(String),
}

/// Forwards a channel's confirms (and its closing) to the publishing loop.
pub struct ConfirmCallback(pub mpsc::UnboundedSender<Confirm>);

#[async_trait::async_trait]
impl ChannelCallback for ConfirmCallback {
    async fn close(&mut self, _: &Channel, close: CloseChannel) -> Result<(), AmqpError> {
        let _ = self.0.send(Confirm::ChannelClosed(close.to_string()));
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), AmqpError> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, AmqpError> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send(Confirm::Ack { tag: ack.delivery_tag(), multiple: ack.mutiple() });
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self.0.send(Confirm::Nack { tag: nack.delivery_tag(), multiple: nack.multiple() });
    }
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}

/// Runs the load; `cpu_ticks` samples the watched process (if any) at the window's edges.
/// Err only when the run cannot start at all (no consumer could declare its queue).
///
/// The brokers' work should not depend on which broker each connection lands on, since a
/// proxy's leastconn spreads them in its own order: each consumer declares its own queue,
/// whose leader RabbitMQ places on the consumer's node (client-local), so consumers always
/// read from the leader; every publisher sends its messages to all the queues in turn, so
/// whatever its node, the same share of its messages goes to a leader elsewhere. Connections
/// open one at a time, consumers first, the k-th to `addresses[k mod len]` (direct to three
/// brokers: the even spread leastconn makes).
pub async fn run(settings: Settings, cpu_ticks: Option<&dyn Fn() -> std::io::Result<u64>>) -> Result<Report, String> {
    settings.check()?;
    let settings = Arc::new(settings);
    let shared = Arc::new(Shared::default());
    let limit = settings.timeout;
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
    );
    let queues: Vec<String> = (0..settings.queues).map(|n| format!("loadgen-confirms-{run_id}-{n}")).collect();

    let mut consumers = JoinSet::new();
    let mut held = Vec::new();
    for (n, queue) in queues.iter().enumerate() {
        match open_consumer(&settings, n, queue).await {
            Ok((connection, channel, deliveries)) => {
                held.push(connection);
                consumers.spawn(consume(channel, deliveries, Arc::clone(&shared), Arc::clone(&settings)));
            }
            Err(e) => shared.failed(&shared.setup_errors, e),
        }
    }
    if consumers.is_empty() {
        let first = shared.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        return Err(first.unwrap_or_else(|| "no consumer".into()));
    }

    // All publishing connections and channels are set up before the warm-up starts.
    let mut publishers = JoinSet::new();
    for n in 0..settings.connections {
        match open_publishers(&settings, settings.queues + n).await {
            Ok((connection, channels)) => {
                held.push(connection);
                for (c, (channel, confirms)) in channels.into_iter().enumerate() {
                    // Publishers start on different queues, so that all are busy from the start.
                    let first = n * settings.channels + c;
                    let queues = queues.clone();
                    publishers.spawn(publish(channel, confirms, queues, first, Arc::clone(&settings), Arc::clone(&shared)));
                }
            }
            Err(e) => shared.failed(&shared.setup_errors, e),
        }
    }

    tokio::time::sleep(settings.warmup).await;
    // A watched process that has gone is reported as an error; the run still cleans up.
    let sample = || {
        cpu_ticks.map(|f| f()).transpose().unwrap_or_else(|e| {
            shared.failed(&shared.setup_errors, format!("CPU time of the watched process: {e}"));
            None
        })
    };
    let cpu_before = sample();
    let started = Instant::now();
    shared.phase.store(MEASURING, Relaxed);
    tokio::time::sleep(settings.measured).await;
    shared.phase.store(FINISHED, Relaxed);
    let window_seconds = started.elapsed().as_secs_f64();
    let cpu_after = sample();

    shared.stop_publishing.store(true, Relaxed);
    let mut latencies = Vec::new();
    while let Some(done) = publishers.join_next().await {
        latencies.extend(done.unwrap_or_default());
    }
    // Drain: every confirmed message should reach a consumer; give them a few timeouts to.
    let drain_deadline = Instant::now() + limit * 3;
    while shared.lost() > 0 && Instant::now() < drain_deadline && consumers.len() as u64 > shared.consumers_ended.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shared.stop_consuming.store(true, Relaxed);
    let mut channels = Vec::new();
    while let Some(ended) = consumers.join_next().await {
        channels.extend(ended.ok());
    }

    // Any open channel can delete any queue (a consumer that failed leaves its channel closed).
    // Clean-up is bounded as a whole: a broker that stopped answering costs one timeout each
    // for the deletes and the closes, not one per queue or per connection.
    let deleting = async {
        for queue in &queues {
            for channel in channels.iter().filter(|c| c.is_open()) {
                if let Ok(Ok(_)) = timeout(limit, channel.queue_delete(QueueDeleteArguments::new(queue))).await {
                    break;
                }
            }
        }
    };
    let _ = timeout(limit, deleting).await;
    let mut closing = JoinSet::new();
    for connection in held {
        closing.spawn(connection.close());
    }
    let _ = timeout(limit, async { while closing.join_next().await.is_some() {} }).await;
    closing.abort_all();

    latencies.sort_unstable();
    let count = |set: &Mutex<HashSet<u64>>| set.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
    let first_error = shared.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(Report {
        settings_line: format!(
            "connections={} channels={} size={} queues={} window={}",
            settings.connections, settings.channels, settings.size, settings.queues, settings.window
        ),
        confirmed_in_window: shared.confirmed_in_window.load(Relaxed),
        consumed_in_window: shared.consumed_in_window.load(Relaxed),
        window_seconds,
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        published: shared.published.load(Relaxed),
        confirmed: count(&shared.confirmed),
        consumed: count(&shared.consumed),
        nacked: shared.nacked.load(Relaxed),
        lost: shared.lost(),
        duplicates: shared.duplicates.load(Relaxed),
        errors: Errors {
            setup: shared.setup_errors.load(Relaxed),
            publish: shared.publish_errors.load(Relaxed),
            confirm: shared.confirm_errors.load(Relaxed),
            consume: shared.consume_errors.load(Relaxed),
        },
        first_error,
        cpu_ticks: cpu_before.zip(cpu_after).map(|(before, after)| after.saturating_sub(before)),
    })
}

/// The sample at fraction `p` of sorted `samples` (0 when there are none).
fn percentile(samples: &[u64], p: f64) -> u64 {
    samples.get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1))).copied().unwrap_or(0)
}

/// `what` within `limit`: its error, or a timeout, as text.
async fn within<T, E: fmt::Display>(
    limit: Duration,
    what: &str,
    operation: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match timeout(limit, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {limit:?}")),
    }
}

async fn connect(settings: &Settings, address: SocketAddr, name: &str) -> Result<Connection, String> {
    let mut args = OpenConnectionArguments::new(&address.ip().to_string(), address.port(), &settings.user, &settings.password);
    args.connection_name(name);
    within(settings.timeout, &format!("connect to {address}"), Connection::open(&args)).await
}

/// A durable quorum queue led from the node of the connection declaring it.
fn quorum_queue(name: &str) -> Result<QueueDeclareArguments, String> {
    let mut arguments = FieldTable::new();
    for (key, value) in [("x-queue-type", "quorum"), ("x-queue-leader-locator", "client-local")] {
        let key = key.try_into().map_err(|e| format!("{key}: {e:?}"))?;
        let value = value.try_into().map_err(|e| format!("{value}: {e:?}"))?;
        arguments.insert(key, FieldValue::S(value));
    }
    Ok(QueueDeclareArguments::new(name).durable(true).arguments(arguments).finish())
}

type Deliveries = mpsc::UnboundedReceiver<ConsumerMessage>;

/// Consumer `n`'s connection, declaring and consuming queue `queue`.
async fn open_consumer(settings: &Settings, n: usize, queue: &str) -> Result<(Connection, Channel, Deliveries), String> {
    let limit = settings.timeout;
    let connection = connect(settings, settings.address(n), &format!("loadgen-consumer-{n}")).await?;
    let channel = within(limit, "open a channel", connection.open_channel(None)).await?;
    within(limit, &format!("declare {queue}"), channel.queue_declare(quorum_queue(queue)?)).await?;
    within(limit, "basic.qos", channel.basic_qos(BasicQosArguments::new(0, settings.prefetch, false))).await?;
    let (_, deliveries) = within(
        limit,
        &format!("consume {queue}"),
        channel.basic_consume_rx(BasicConsumeArguments::new(queue, "").manual_ack(true).finish()),
    )
    .await?;
    Ok((connection, channel, deliveries))
}

/// The `n`-th connection opened, publishing: its channels, each in confirm mode.
async fn open_publishers(
    settings: &Settings,
    n: usize,
) -> Result<(Connection, Vec<(Channel, mpsc::UnboundedReceiver<Confirm>)>), String> {
    let limit = settings.timeout;
    let connection = connect(settings, settings.address(n), &format!("loadgen-publisher-{n}")).await?;
    let mut channels = Vec::with_capacity(settings.channels);
    for _ in 0..settings.channels {
        let channel = within(limit, "open a channel", connection.open_channel(None)).await?;
        let (confirms, events) = mpsc::unbounded_channel();
        within(limit, "register the confirm callback", channel.register_callback(ConfirmCallback(confirms))).await?;
        within(limit, "confirm.select", channel.confirm_select(ConfirmSelectArguments::default())).await?;
        channels.push((channel, events));
    }
    Ok((connection, channels))
}

/// One publisher: keeps up to `window` persistent messages unconfirmed until told to stop, then
/// waits for the rest of its confirms. Returns the confirm latencies (microseconds) of the
/// messages confirmed in the measured window.
async fn publish(
    channel: Channel,
    mut confirms: mpsc::UnboundedReceiver<Confirm>,
    queues: Vec<String>,
    first: usize,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
) -> Vec<u64> {
    // Delivery tag (1, 2... from confirm.select) -> (message id, when it was published).
    let mut in_flight: BTreeMap<u64, (u64, Instant)> = BTreeMap::new();
    let mut next_tag = 1u64;
    let mut latencies = Vec::new();
    let mut properties = BasicProperties::default();
    properties.with_delivery_mode(amqprs::DELIVERY_MODE_PERSISTENT);
    let properties = properties.finish();
    loop {
        let stopping = shared.stop_publishing.load(Relaxed);
        if stopping && in_flight.is_empty() {
            break;
        }
        if !stopping && in_flight.len() < settings.window {
            let id = shared.next_id.fetch_add(1, Relaxed);
            let mut body = vec![0x42; settings.size];
            body[..8].copy_from_slice(&id.to_be_bytes());
            let sent = Instant::now();
            let queue = &queues[(first + next_tag as usize) % queues.len()];
            let publishing = channel.basic_publish(properties.clone(), body, BasicPublishArguments::new("", queue));
            if let Err(e) = within(settings.timeout, "basic.publish", publishing).await {
                shared.failed(&shared.publish_errors, e);
                break;
            }
            shared.published.fetch_add(1, Relaxed);
            in_flight.insert(next_tag, (id, sent));
            next_tag += 1;
            while let Ok(confirm) = confirms.try_recv() {
                if !settle(confirm, &mut in_flight, &mut latencies, &shared) {
                    return latencies;
                }
            }
            continue;
        }
        let confirm = match timeout(settings.timeout, confirms.recv()).await {
            Ok(Some(confirm)) => confirm,
            Ok(None) => Confirm::ChannelClosed("the connection closed".into()),
            Err(_) => {
                let what = format!("no confirm within {:?} ({} unconfirmed)", settings.timeout, in_flight.len());
                shared.failed(&shared.confirm_errors, what);
                break;
            }
        };
        if !settle(confirm, &mut in_flight, &mut latencies, &shared) {
            break;
        }
    }
    latencies
}

/// Applies one confirm to a publisher's unconfirmed messages; false when the channel closed.
fn settle(confirm: Confirm, in_flight: &mut BTreeMap<u64, (u64, Instant)>, latencies: &mut Vec<u64>, shared: &Shared) -> bool {
    let (tag, multiple, acked) = match confirm {
        Confirm::Ack { tag, multiple } => (tag, multiple, true),
        Confirm::Nack { tag, multiple } => (tag, multiple, false),
        Confirm::ChannelClosed(why) => {
            shared.failed(&shared.confirm_errors, format!("publisher channel closed: {why}"));
            return false;
        }
    };
    let tags: Vec<u64> = if multiple { in_flight.range(..=tag).map(|(t, _)| *t).collect() } else { vec![tag] };
    let now = Instant::now();
    let measuring = shared.measuring();
    let mut ids = Vec::with_capacity(tags.len());
    for t in tags {
        let Some((id, sent)) = in_flight.remove(&t) else { continue };
        ids.push(id);
        if acked && measuring {
            latencies.push((now - sent).as_micros() as u64);
        }
    }
    if acked {
        if measuring {
            shared.confirmed_in_window.fetch_add(ids.len() as u64, Relaxed);
        }
        shared.confirmed.lock().unwrap_or_else(|e| e.into_inner()).extend(ids);
    } else {
        shared.nacked.fetch_add(ids.len() as u64, Relaxed);
    }
    true
}

/// One consumer: records every delivery and acks them until told to stop, several at once
/// (`multiple`) as busy consumers do: every quarter of the prefetch, or when no delivery waits.
async fn consume(channel: Channel, mut deliveries: Deliveries, shared: Arc<Shared>, settings: Arc<Settings>) -> Channel {
    let ack_every = u64::from(settings.prefetch / 4).max(1);
    let mut unacked = 0u64;
    while !shared.stop_consuming.load(Relaxed) {
        let message = match timeout(Duration::from_millis(100), deliveries.recv()).await {
            Err(_) => continue,
            Ok(Some(message)) => message,
            Ok(None) => {
                shared.failed(&shared.consume_errors, "consumer's deliveries ended (channel closed)".into());
                shared.consumers_ended.fetch_add(1, Relaxed);
                return channel;
            }
        };
        let (Some(deliver), Some(content)) = (message.deliver, message.content) else { continue };
        let Some(id) = content.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes) else {
            shared.failed(&shared.consume_errors, format!("a delivery of {} bytes, without an id", content.len()));
            continue;
        };
        if shared.consumed.lock().unwrap_or_else(|e| e.into_inner()).insert(id) {
            if shared.measuring() {
                shared.consumed_in_window.fetch_add(1, Relaxed);
            }
        } else {
            shared.duplicates.fetch_add(1, Relaxed);
        }
        unacked += 1;
        if unacked < ack_every && !deliveries.is_empty() {
            continue;
        }
        unacked = 0;
        let acking = channel.basic_ack(BasicAckArguments::new(deliver.delivery_tag(), true));
        if let Err(e) = within(settings.timeout, "basic.ack", acking).await {
            shared.failed(&shared.consume_errors, e);
            shared.consumers_ended.fetch_add(1, Relaxed);
            return channel;
        }
    }
    channel
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test fails by panicking

    use super::*;

    fn settings(address: SocketAddr) -> Settings {
        Settings {
            addresses: vec![address],
            connections: 1,
            channels: 1,
            size: 64,
            warmup: Duration::ZERO,
            measured: Duration::from_secs(1),
            window: 8,
            queues: 1,
            prefetch: 16,
            timeout: Duration::from_millis(500),
            user: "guest".into(),
            password: "guest".into(),
        }
    }

    #[test]
    fn settings_that_cannot_work_are_refused_before_connecting() {
        let address = SocketAddr::from(([127, 0, 0, 1], 5672));
        let too_small = Settings { size: 7, ..settings(address) };
        assert!(too_small.check().unwrap_err().contains("from 8"), "{:?}", too_small.check());
        assert!(Settings { size: MAX_SIZE + 1, ..settings(address) }.check().is_err());
        assert!(Settings { size: MAX_SIZE, ..settings(address) }.check().is_ok());
        assert!(Settings { window: 0, ..settings(address) }.check().is_err());
        assert!(Settings { addresses: Vec::new(), ..settings(address) }.check().is_err());
        assert!(Settings { timeout: Duration::ZERO, ..settings(address) }.check().is_err());
        assert!(settings(address).check().is_ok());
    }

    /// A refused connection and a peer that accepts and never answers both end the run with an
    /// error naming the step, within the timeout, rather than a hang or a panic.
    #[tokio::test]
    async fn a_broker_that_refuses_or_never_answers_is_an_error_within_the_timeout() {
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let refused = run(settings(closed), None).await.unwrap_err();
        assert!(refused.contains(&format!("connect to {closed}")), "{refused}");

        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = silent.local_addr().unwrap();
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let started = Instant::now();
        let silence = run(settings(address), None).await.unwrap_err();
        holder.abort();
        assert!(silence.contains("no answer within"), "{silence}");
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    }
}
