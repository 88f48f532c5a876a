//! Rebalancing: after a broker returns, long-lived AMQP connections stay where they are and the
//! brokers that stayed UP carry everything. A rebalance closes sessions on the servers above
//! their fair share, a few per second, so clients with automatic recovery reconnect, and
//! selection sends them to the least loaded server. No proxy offers this; HAProxy's answer is
//! to wait for clients to reconnect on their own.
//!
//! The fair share of a server is the proxy's sessions times its effective weight (slowstart
//! included) over the sum of the effective weights of the servers that take new sessions.
//! Sessions closed by the rebalance are still counted in the total until they come back, so
//! the fair share does not shrink while clients are between two connections.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::info;

use crate::registry::{CloseReason, Sessions};
use crate::select::Candidate;
use crate::server::ProxyState;

/// Closes per second when the operator gives no rate.
pub const DEFAULT_RATE: u32 = 5;
/// The highest rate accepted: faster is a reconnect storm, which is what this avoids.
pub const MAX_RATE: u32 = 1000;

/// A rebalance started, progressed to its end, or was replaced, for the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebalanceEvent {
    pub proxy: String,
    pub message: String,
}

/// The servers that take new sessions, as selection picks them: usable primaries, or with none
/// the first usable backup (all of them with `allbackups`).
fn pool(servers: &[Candidate], all_backups: bool) -> Vec<usize> {
    let takes_new = |c: &Candidate| c.up && c.ready && c.weight > 0;
    let mut pool: Vec<usize> = (0..servers.len()).filter(|&i| takes_new(&servers[i]) && !servers[i].backup).collect();
    if pool.is_empty() {
        pool = (0..servers.len()).filter(|&i| takes_new(&servers[i]) && servers[i].backup).collect();
        if !all_backups {
            pool.truncate(1);
        }
    }
    pool
}

/// Each server's fair share of `total` sessions, 0 for servers not taking new ones (and for
/// all when there is only one to move to).
fn shares(servers: &[Candidate], total: u32, all_backups: bool) -> Vec<f64> {
    let pool = pool(servers, all_backups);
    let weights: u64 = pool.iter().map(|&i| u64::from(servers[i].weight)).sum();
    let mut shares = vec![0.0; servers.len()];
    if weights == 0 || pool.len() < 2 {
        return shares;
    }
    for &i in &pool {
        shares[i] = f64::from(total) * f64::from(servers[i].weight) / weights as f64;
    }
    shares
}

/// Sessions each server holds beyond its fair share (0 for servers not taking new sessions,
/// and everywhere when there is only one to move to), given `total`, the sessions to share out
/// (at least those the servers hold). Shares are rounded up: a server one session above an
/// uneven share is not worth a reconnect.
pub fn excess(servers: &[Candidate], total: u32, all_backups: bool) -> Vec<u32> {
    let shares = shares(servers, total, all_backups);
    (0..servers.len())
        .map(|i| if shares[i] > 0.0 { servers[i].current.saturating_sub(shares[i].ceil() as u32) } else { 0 })
        .collect()
}

/// How much the most loaded server holds over its fair share (1.5: half as much again), among
/// the servers that take new sessions; 0.0 when there is no share to compare with.
pub fn imbalance(servers: &[Candidate], total: u32, all_backups: bool) -> f64 {
    let shares = shares(servers, total, all_backups);
    (0..servers.len()).filter(|&i| shares[i] > 0.0).map(|i| f64::from(servers[i].current) / shares[i]).fold(0.0, f64::max)
}

/// The running rebalance of each proxy, whoever started it (the operator or the automatic
/// mode). Dropping an entry's guard stops that rebalance.
#[derive(Default)]
pub struct Rebalances {
    running: Mutex<Vec<(String, DropGuard, JoinHandle<()>)>>,
}

impl Rebalances {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, DropGuard, JoinHandle<()>)>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the rebalance of `proxy` that `spawn` starts with the token it is given,
    /// stopping the one running; true when one was running.
    pub fn start(
        &self,
        proxy: &str,
        parent: &CancellationToken,
        spawn: impl FnOnce(CancellationToken) -> JoinHandle<()>,
    ) -> bool {
        let stop = parent.child_token();
        let task = spawn(stop.clone());
        let mut running = self.lock();
        let replaced = running.iter().any(|(name, _, task)| name == proxy && !task.is_finished());
        running.retain(|(name, _, task)| name != proxy && !task.is_finished());
        running.push((proxy.to_owned(), stop.drop_guard(), task));
        replaced
    }

    pub fn is_running(&self, proxy: &str) -> bool {
        self.lock().iter().any(|(name, _, task)| name == proxy && !task.is_finished())
    }

    /// Stops every rebalance; returns the proxies whose rebalance was still running.
    pub fn stop_all(&self) -> Vec<String> {
        let stopped = std::mem::take(&mut *self.lock());
        stopped.into_iter().filter(|(_, _, task)| !task.is_finished()).map(|(name, _, _)| name).collect()
    }
}

/// How often the automatic mode looks at the spread.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// The automatic mode of one proxy, for as long as the proxy runs: with `rebalance` configured,
/// starts a rebalance when no rebalance runs and the most loaded server holds more than
/// `threshold` times its fair share (and at least two sessions too many).
pub async fn watch(
    current: watch::Receiver<Arc<ProxyState>>,
    sessions: Arc<Sessions>,
    rebalances: Arc<Rebalances>,
    events: broadcast::Sender<RebalanceEvent>,
    parent: CancellationToken,
) {
    loop {
        tokio::select! {
            () = parent.cancelled() => return,
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
        let proxy = Arc::clone(&current.borrow());
        let Some(auto) = proxy.config.rebalance else { continue };
        let name = &proxy.config.name;
        if rebalances.is_running(name) {
            continue;
        }
        let candidates = proxy.candidates();
        let total = candidates.iter().map(|c| c.current).sum();
        let over: u32 = excess(&candidates, total, proxy.config.allbackups).iter().sum();
        let ratio = imbalance(&candidates, total, proxy.config.allbackups);
        if ratio <= auto.threshold || over < 2 {
            continue;
        }
        let message = format!("a server holds {ratio:.2} times its fair share (threshold {}): rebalancing", auto.threshold);
        info!(proxy = %name, "{message}");
        let _ = events.send(RebalanceEvent { proxy: name.clone(), message });
        let (current, sessions, events) = (current.clone(), Arc::clone(&sessions), events.clone());
        rebalances.start(name, &parent, |stop| tokio::spawn(run(current, sessions, auto.rate, events, stop)));
    }
}

/// Clears a rebalance's progress when dropped (unless a newer one replaced it).
struct ShownAsRunning {
    shared: Arc<crate::server::ProxyShared>,
    id: u64,
}

impl Drop for ShownAsRunning {
    fn drop(&mut self) {
        self.shared.clear_rebalance(self.id);
    }
}

/// What a running rebalance shows in `ctl status` and on the stats page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Tells rebalances of one proxy apart: one that was replaced must not clear its successor's.
    pub id: u64,
    pub closed: u32,
    /// The most it will close: the excess when it started.
    pub limit: u32,
    pub rate: u32,
}

/// Runs one rebalance of `proxy` until the servers are within their fair share, `limit`
/// sessions were closed, or `stop` is cancelled (a newer rebalance, a reload, shutdown).
/// Reads the proxy's current configuration at every step.
pub async fn run(
    mut current: watch::Receiver<Arc<ProxyState>>,
    sessions: Arc<Sessions>,
    rate: u32,
    events: broadcast::Sender<RebalanceEvent>,
    stop: CancellationToken,
) {
    let proxy = Arc::clone(&current.borrow_and_update());
    let name = proxy.config.name.clone();
    let held = |p: &ProxyState| p.servers.iter().map(|s| s.counters.current.load(Relaxed)).sum::<u32>();
    // Sessions closed here come back: until they do, they still count in the share.
    let total = held(&proxy);
    let limit: u32 = excess(&proxy.candidates(), total, proxy.config.allbackups).iter().sum();
    let said = |closed: u32, how: &str| format!("{how}: {closed} of at most {limit} sessions closed at {rate}/s");
    let publish = |message: String| {
        info!(proxy = %name, "{message}");
        let _ = events.send(RebalanceEvent { proxy: name.clone(), message });
    };
    if limit == 0 {
        publish("rebalance: every server is within its fair share, nothing to close".to_owned());
        return;
    }
    static IDS: AtomicU64 = AtomicU64::new(0);
    let id = IDS.fetch_add(1, Relaxed);
    // Shown as running before it is said to have started, and no longer once this task ends,
    // however it ends (a panic included).
    proxy.shared.set_rebalance(Progress { id, closed: 0, limit, rate });
    let shown = ShownAsRunning { shared: Arc::clone(&proxy.shared), id };
    publish(format!("rebalance started: {limit} sessions above the fair share, closing {rate}/s"));
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.clamp(1, MAX_RATE)));
    let mut next = Instant::now();
    let mut closed = 0;
    let ending = loop {
        if stop.is_cancelled() {
            break "rebalance replaced or stopped";
        }
        let proxy = Arc::clone(&current.borrow_and_update());
        proxy.shared.update_rebalance(Progress { id, closed, limit, rate });
        let candidates = proxy.candidates();
        let excess = excess(&candidates, held(&proxy).max(total), proxy.config.allbackups);
        let Some(heaviest) = (0..excess.len()).filter(|&i| excess[i] > 0).max_by_key(|&i| excess[i]) else {
            break "rebalance done, every server within its fair share";
        };
        // Clients that went elsewhere, or servers that changed meanwhile: never more than the
        // excess there was.
        if closed >= limit {
            break "rebalance ended at its limit";
        }
        if sessions.close_some(&proxy.servers[heaviest], 1, CloseReason::Rebalance) == 1 {
            closed += 1;
            proxy.shared.rebalance_closed.fetch_add(1, Relaxed);
        }
        next += period;
        tokio::select! {
            () = stop.cancelled() => break "rebalance replaced or stopped",
            () = tokio::time::sleep_until(next.into()) => {}
        }
    };
    drop(shown);
    publish(said(closed, ending));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(current: u32) -> Candidate {
        Candidate { up: true, ready: true, backup: false, weight: 16, current, maxconn: None }
    }

    #[test]
    fn a_returned_server_makes_the_others_exceed_their_share() {
        let servers = [server(150), server(150), server(0)];
        assert_eq!(excess(&servers, 300, false), vec![50, 50, 0]);
        assert_eq!(excess(&[server(101), server(100), server(99)], 300, false), vec![1, 0, 0]);
        assert_eq!(excess(&[server(100), server(100), server(99)], 299, false), vec![0, 0, 0], "an uneven share is fair");
    }

    #[test]
    fn the_share_follows_effective_weights_and_leaves_other_servers_alone() {
        // A server a quarter into its slowstart counts for a quarter: 300 x 16/36 = 133.3, so
        // the others keep 134.
        let ramping = Candidate { weight: 4, ..server(0) };
        assert_eq!(excess(&[server(150), server(150), ramping], 300, false), vec![16, 16, 0]);
        // Drained, DOWN and backup servers keep their sessions: they take no new ones.
        let drained = Candidate { ready: false, ..server(100) };
        let down = Candidate { up: false, ..server(100) };
        let backup = Candidate { backup: true, ..server(100) };
        assert_eq!(excess(&[server(200), server(0), drained, down, backup], 200, false), vec![100, 0, 0, 0, 0]);
        assert_eq!(excess(&[server(300)], 300, false), vec![0], "one server: nowhere to move to");
    }

    #[test]
    fn imbalance_is_the_most_loaded_servers_load_over_its_share() {
        assert_eq!(imbalance(&[server(150), server(150), server(0)], 300, false), 1.5);
        assert_eq!(imbalance(&[server(100), server(100), server(100)], 300, false), 1.0, "even");
        let heavy = Candidate { weight: 32, ..server(200) };
        assert_eq!(imbalance(&[heavy, server(100)], 300, false), 1.0, "weighted shares are fair");
        assert_eq!(imbalance(&[heavy, server(0)], 200, false), 1.5);
    }

    #[test]
    fn with_every_primary_down_the_backups_share_only_with_allbackups() {
        let down = Candidate { up: false, ..server(0) };
        let backup = |current| Candidate { backup: true, ..server(current) };
        assert_eq!(excess(&[down, backup(100), backup(0)], 100, false), vec![0, 0, 0]);
        assert_eq!(excess(&[down, backup(100), backup(0)], 100, true), vec![0, 50, 0]);
    }
}
