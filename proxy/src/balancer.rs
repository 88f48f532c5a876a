//! All proxies of one daemon, started on the balancer's own runtime, and what the rest of vrrpd
//! asks of them: is a proxy available (track_proxy), close the sessions accepted on a VIP this
//! host gives up, the operator's controls, and reloads that keep what did not change.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ha_common::config::Proxy;
use nix::sys::resource::{getrlimit, Resource};
use tokio::runtime::Handle;
use tokio::sync::{broadcast, watch, Semaphore};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};

use crate::fence::{self, ApiError, FenceOutcome};
use crate::health::probe::{self, ServerEvent};
use crate::health::Health;
use crate::listener;
use crate::rebalance::{self, RebalanceEvent, Rebalances};
use crate::registry::{CloseReason, Release, Sessions};
use crate::server::{Admin, ProxyState, ServerState};
use crate::snapshot::ProxySnapshot;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminError {
    #[error("no proxy named {0:?}")]
    NoProxy(String),
    #[error("proxy {0:?} has no server named {1:?}")]
    NoServer(String, String),
    #[error("weight {0} is outside 0..=256")]
    Weight(u32),
    #[error("rate {0} is outside 1..={max} sessions per second", max = rebalance::MAX_RATE)]
    Rate(u32),
}

/// Whose broker connections to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceTarget {
    /// A master that fell silent, by its adverts' source address (plus the `fence_addresses`
    /// configured for it).
    SilentPeer(IpAddr),
    /// This host's own, left by a previous run (a crash, a kill -9): every connection whose
    /// peer is one of this host's source addresses towards the servers, except the live
    /// sessions' own.
    Leftovers,
}

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("proxy {0:?} has no rabbitmq_api")]
    NoApi(String),
    #[error("{0} is one of this host's own addresses towards the brokers: its sessions are not fenced")]
    OwnAddress(IpAddr),
    #[error("proxy {0:?}: no route to its servers, so no address of this host to look for")]
    NoSourceAddress(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Descriptors kept aside from sessions when `maxconn` is derived from the open files limit:
/// listeners, health checks, the stats page and control socket, VRRP and netlink sockets,
/// scripts' pipes, logs. A quarter of a small limit.
const RESERVED_DESCRIPTORS: u64 = 256;
/// The largest derived `maxconn`, as the largest a configuration may set.
const DERIVED_MAXCONN_MAX: u32 = 10_000_000;

/// The global `maxconn` to apply when none is configured, from the soft limit on open files
/// (`ulimit -n`), as HAProxy derives its own: each proxied session holds two descriptors (the
/// client's, the server's), and some are kept for everything else. (Splice pipes for bulk
/// flows are not counted: without a descriptor to spare, copying goes through buffers.)
pub fn default_maxconn(nofile: u64) -> u32 {
    let reserved = (nofile / 4).min(RESERVED_DESCRIPTORS);
    let sessions = (nofile - reserved) / 2;
    u32::try_from(sessions).unwrap_or(u32::MAX).clamp(1, DERIVED_MAXCONN_MAX)
}

/// This process's soft limit on open files, the input of [`default_maxconn`].
pub fn open_files_limit() -> io::Result<u64> {
    let (soft, _hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    Ok(soft)
}

/// A running proxy: its current configuration (listeners and checks follow it), its listener
/// and the health checks of its checked servers (dropping a guard stops them).
struct Running {
    state: watch::Sender<Arc<ProxyState>>,
    /// The automatic rebalancing's watch (idle unless configured); dropping it stops it.
    _rebalance_watch: DropGuard,
    /// One listener per bind.
    listeners: Vec<(SocketAddr, CancellationToken)>,
    checks: Vec<(Arc<ServerState>, DropGuard)>,
}

/// Server events kept for a slow reader of [`Balancer::server_events`].
const SERVER_EVENTS: usize = 256;

pub struct Balancer {
    running: Mutex<Vec<Running>>,
    sessions: Arc<Sessions>,
    /// Servers going UP or DOWN, for whoever keeps a timeline.
    events: broadcast::Sender<ServerEvent>,
    /// Rebalances starting and ending, for the timeline.
    rebalance_events: broadcast::Sender<RebalanceEvent>,
    /// The running rebalance of each proxy.
    rebalances: Arc<Rebalances>,
    stop: CancellationToken,
    global: Option<Arc<Semaphore>>,
    hard_stop_after: Duration,
    runtime: Handle,
}

impl Balancer {
    /// Starts listeners and health checks for `proxies` on `runtime`. Listeners are bound
    /// before this returns (a failure is logged and retried every second). Without a
    /// `global_maxconn`, one is derived from the open files limit ([`default_maxconn`]).
    pub fn start(proxies: &[Proxy], global_maxconn: Option<u32>, hard_stop_after: Duration, runtime: &Handle) -> Arc<Balancer> {
        let global = global_maxconn.or_else(|| match open_files_limit() {
            Ok(nofile) => {
                let derived = default_maxconn(nofile);
                info!(maxconn = derived, nofile, "no global maxconn configured: derived from the open files limit");
                Some(derived)
            }
            Err(e) => {
                warn!(error = %e, "no global maxconn configured and the open files limit is unknown: sessions are not limited");
                None
            }
        });
        let balancer = Balancer {
            running: Mutex::new(Vec::new()),
            sessions: Arc::new(Sessions::default()),
            events: broadcast::channel(SERVER_EVENTS).0,
            rebalance_events: broadcast::channel(SERVER_EVENTS).0,
            rebalances: Arc::default(),
            stop: CancellationToken::new(),
            global: global.map(|m| Arc::new(Semaphore::new(m as usize))),
            hard_stop_after,
            runtime: runtime.clone(),
        };
        for proxy in proxies {
            let state = Arc::new(ProxyState::new(proxy.clone(), Instant::now()));
            let running = balancer.launch(state);
            balancer.lock().push(running);
        }
        Arc::new(balancer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Binds, then starts the listener and the checks of a proxy.
    fn launch(&self, state: Arc<ProxyState>) -> Running {
        let (sender, _) = watch::channel(Arc::clone(&state));
        let listeners = state.config.binds.iter().map(|&bind| (bind, self.start_listener(&sender, bind))).collect();
        let watch_stop = self.stop.child_token();
        self.runtime.spawn(rebalance::watch(
            sender.subscribe(),
            Arc::clone(&self.sessions),
            Arc::clone(&self.rebalances),
            self.rebalance_events.clone(),
            watch_stop.clone(),
        ));
        let mut running = Running { state: sender, _rebalance_watch: watch_stop.drop_guard(), listeners, checks: Vec::new() };
        self.follow_check_flags(&mut running);
        running
    }

    fn start_listener(&self, state: &watch::Sender<Arc<ProxyState>>, bind: SocketAddr) -> CancellationToken {
        let proxy = Arc::clone(&state.borrow());
        let bound = match listener::bind(bind) {
            Ok(listener) => Some(listener),
            Err(e) => {
                warn!(proxy = %proxy.config.name, %bind, error = %e, "cannot listen yet; retrying every second");
                proxy.shared.mark_unbound(bind);
                proxy.update_availability();
                None
            }
        };
        let stop = self.stop.child_token();
        let serve =
            listener::serve(state.subscribe(), bind, Arc::clone(&self.sessions), self.global.clone(), bound, stop.clone());
        self.runtime.spawn(serve);
        stop
    }

    /// Runs health checks where the proxy's current servers are checked, and only there:
    /// stops those of servers gone or no longer checked, starts those of servers new or
    /// checked again.
    fn follow_check_flags(&self, running: &mut Running) {
        let state = Arc::clone(&running.state.borrow());
        let current = |server: &Arc<ServerState>| state.servers.iter().any(|s| Arc::ptr_eq(s, server)) && server.checked();
        running.checks.retain(|(server, _)| current(server));
        for server in state.servers.iter().filter(|s| s.checked()) {
            if !running.checks.iter().any(|(checked, _)| Arc::ptr_eq(checked, server)) {
                let stop = self.stop.child_token();
                let checks = probe::run_checks(
                    running.state.subscribe(),
                    Arc::clone(server),
                    Arc::clone(&self.sessions),
                    self.events.clone(),
                    stop.clone(),
                );
                self.runtime.spawn(checks);
                running.checks.push((Arc::clone(server), stop.drop_guard()));
            }
        }
    }

    /// The current configuration and state of every proxy.
    pub fn proxies(&self) -> Vec<Arc<ProxyState>> {
        self.lock().iter().map(|r| Arc::clone(&r.state.borrow())).collect()
    }

    pub fn proxy(&self, name: &str) -> Option<Arc<ProxyState>> {
        self.proxies().into_iter().find(|p| p.config.name == name)
    }

    /// Servers going UP or DOWN from now on. A receiver that falls more than a few hundred
    /// events behind is told how many it missed ([`broadcast::error::RecvError::Lagged`]).
    pub fn server_events(&self) -> broadcast::Receiver<ServerEvent> {
        self.events.subscribe()
    }

    /// Rebalances starting and ending, from now on (lagging as [`Balancer::server_events`]).
    pub fn rebalance_events(&self) -> broadcast::Receiver<RebalanceEvent> {
        self.rebalance_events.subscribe()
    }

    /// Starts closing sessions of `proxy`'s servers above their fair share, `rate` per second
    /// (default [`rebalance::DEFAULT_RATE`]), so their clients reconnect to the least loaded
    /// servers. Replaces the proxy's running rebalance. Returns a sentence saying what starts.
    pub fn rebalance(&self, proxy: &str, rate: Option<u32>) -> Result<String, AdminError> {
        let rate = rate.unwrap_or(rebalance::DEFAULT_RATE);
        if rate == 0 || rate > rebalance::MAX_RATE {
            return Err(AdminError::Rate(rate));
        }
        let current = {
            let running = self.lock();
            let entry = running.iter().find(|r| r.state.borrow().config.name == proxy);
            entry.map(|r| r.state.subscribe()).ok_or_else(|| AdminError::NoProxy(proxy.to_owned()))?
        };
        let state = Arc::clone(&current.borrow());
        let held = state.servers.iter().map(|s| s.counters.current.load(Relaxed)).sum();
        let excess: u32 = rebalance::excess(&state.candidates(), held, state.config.allbackups).iter().sum();
        let (sessions, events) = (Arc::clone(&self.sessions), self.rebalance_events.clone());
        let replaced = self
            .rebalances
            .start(proxy, &self.stop, |stop| self.runtime.spawn(rebalance::run(current, sessions, rate, events, stop)));
        let replacing = if replaced { " (the running rebalance stops)" } else { "" };
        Ok(format!("{proxy}: rebalancing {excess} sessions above the fair share at {rate}/s{replacing}"))
    }

    /// Watches whether proxy `name` can serve (listener bound, a server usable).
    pub fn availability(&self, name: &str) -> Option<watch::Receiver<bool>> {
        self.proxy(name).map(|p| p.shared.available.subscribe())
    }

    /// Gives up VIPs: refuses new sessions accepted on `addresses` and closes the open ones,
    /// broker side included. Call it while the addresses are still on the interface: a FIN can
    /// only leave from an address the host holds, and a client that only reads (an AMQP
    /// consumer) would otherwise learn of the failover at its next heartbeat, while the broker
    /// keeps its unacknowledged messages. The returned [`Release`] resolves when the last of
    /// those sessions is gone; the caller decides how long to wait for it.
    pub fn release_addresses(&self, addresses: &[IpAddr]) -> Release {
        self.sessions.release(addresses, CloseReason::VipLost)
    }

    /// Takes VIPs (back): sessions accepted on them are served again.
    pub fn claim_addresses(&self, addresses: &[IpAddr]) {
        self.sessions.claim(addresses);
    }

    /// The proxies that fence for `vips` (all that fence, for `None`): those with a
    /// `rabbitmq_api` that serve one of the addresses (a bind on it, or on every address).
    pub fn fencing_proxies(&self, vips: Option<&[IpAddr]>) -> Vec<Arc<ProxyState>> {
        self.proxies()
            .into_iter()
            .filter(|p| p.config.rabbitmq_api.is_some())
            .filter(|p| vips.is_none_or(|vips| p.config.binds.iter().any(|b| b.ip().is_unspecified() || vips.contains(&b.ip()))))
            .collect()
    }

    /// Closes the broker connections of `target` through `proxy`'s management API, and
    /// counts and logs the outcome. `whoami` names this host in the reason the broker logs.
    /// Bounded by [`fence::FENCE_DEADLINE`].
    pub async fn fence(&self, proxy: &ProxyState, target: FenceTarget, whoami: &str) -> Result<FenceOutcome, FenceError> {
        let config = proxy.config.rabbitmq_api.as_ref().ok_or_else(|| FenceError::NoApi(proxy.config.name.clone()))?;
        let sources = fence::source_addresses(proxy.servers.iter().map(|s| s.address));
        let (hosts, reason) = match target {
            FenceTarget::SilentPeer(peer) => {
                let mut hosts = vec![peer.to_canonical()];
                hosts.extend(config.fence_addresses.get(&peer).into_iter().flatten().copied());
                // Never this host's own sessions: a peer address that is ours is a mistake.
                if let Some(own) = hosts.iter().find(|h| sources.contains(h)) {
                    return Err(FenceError::OwnAddress(*own));
                }
                let list: Vec<String> = hosts.iter().map(ToString::to_string).collect();
                (hosts, format!("vrrpd {whoami} took over from {}, which fell silent", list.join(", ")))
            }
            FenceTarget::Leftovers => {
                let hosts: Vec<IpAddr> = sources.iter().copied().collect();
                (hosts, format!("vrrpd {whoami} restarted: a connection its previous run left open"))
            }
        };
        if hosts.is_empty() {
            return Err(FenceError::NoSourceAddress(proxy.config.name.clone()));
        }
        let api = Arc::new(fence::ManagementApi::new(config)?);
        let started = Instant::now();
        let own = self.sessions.upstream_locals();
        let result = api.fence(&hosts, &own, &reason).await;
        proxy.shared.fencing.record(&hosts, started, &result);
        let hosts_text: Vec<String> = hosts.iter().map(ToString::to_string).collect();
        let hosts_text = hosts_text.join(", ");
        match &result {
            Ok(outcome) if outcome.failed.is_empty() => info!(
                proxy = %proxy.config.name, hosts = %hosts_text, api = %api.describe(), closed = outcome.closed,
                matched = outcome.matched, kept = outcome.kept, duration_ms = started.elapsed().as_millis() as u64,
                "fenced broker connections"
            ),
            Ok(outcome) => warn!(
                proxy = %proxy.config.name, hosts = %hosts_text, closed = outcome.closed, failed = outcome.failed.len(),
                first_failure = %outcome.failed.first().map(String::as_str).unwrap_or_default(), "fencing left connections open"
            ),
            Err(e) => warn!(proxy = %proxy.config.name, hosts = %hosts_text, error = %e, "fencing failed"),
        }
        Ok(result?)
    }

    /// The current state of every proxy and server.
    pub fn snapshot(&self) -> Vec<ProxySnapshot> {
        let now = Instant::now();
        self.proxies().iter().map(|p| ProxySnapshot::of(p, now)).collect()
    }

    /// Finds `proxy/server`, or says which half of the name is unknown.
    fn locate(&self, proxy: &str, server: &str) -> Result<(Arc<ProxyState>, Arc<ServerState>), AdminError> {
        let state = self.proxy(proxy).ok_or_else(|| AdminError::NoProxy(proxy.to_owned()))?;
        let found = state.server(server).cloned().ok_or_else(|| AdminError::NoServer(proxy.to_owned(), server.to_owned()))?;
        Ok((state, found))
    }

    /// The operator's drain / maintenance / ready. Maintenance also closes the server's
    /// sessions. Returns a sentence saying what changed.
    pub fn set_admin(&self, proxy: &str, server: &str, admin: Admin) -> Result<String, AdminError> {
        let (state, target) = self.locate(proxy, server)?;
        let before = target.admin();
        if before == Admin::Maint && admin != Admin::Maint {
            // Back from maintenance with no sessions: ramp up as a server coming back UP does.
            target.start_ramp(Instant::now());
        }
        target.set_admin(admin);
        let closed = if admin == Admin::Maint { self.sessions.close_server(&target, CloseReason::Admin) } else { 0 };
        state.update_availability();
        state.shared.slot_freed.notify_waiters();
        let word = |a: Admin| match a {
            Admin::Ready => "ready",
            Admin::Drain => "draining",
            Admin::Maint => "in maintenance",
        };
        info!(proxy, server, from = word(before), to = word(admin), closed, "server admin state changed");
        Ok(match admin {
            Admin::Maint => format!("{proxy}/{server}: {} -> in maintenance; {closed} sessions closed", word(before)),
            Admin::Drain => format!(
                "{proxy}/{server}: {} -> draining; {} sessions stay, no new ones",
                word(before),
                target.counters.current.load(Relaxed)
            ),
            Admin::Ready => format!("{proxy}/{server}: {} -> ready", word(before)),
        })
    }

    pub fn set_weight(&self, proxy: &str, server: &str, weight: u32) -> Result<String, AdminError> {
        if weight > 256 {
            return Err(AdminError::Weight(weight));
        }
        let (state, target) = self.locate(proxy, server)?;
        let before = target.weight.swap(weight, Relaxed);
        state.update_availability();
        state.shared.slot_freed.notify_waiters();
        info!(proxy, server, from = before, to = weight, "server weight changed");
        Ok(format!("{proxy}/{server}: weight {before} -> {weight}"))
    }

    pub fn shutdown_sessions(&self, proxy: &str, server: &str) -> Result<String, AdminError> {
        let (_, target) = self.locate(proxy, server)?;
        let closed = self.sessions.close_server(&target, CloseReason::Admin);
        info!(proxy, server, closed, "sessions closed by operator");
        Ok(format!("{proxy}/{server}: {closed} sessions closed"))
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Applies a new list of proxies. A server whose name and address stay keeps its sessions,
    /// counters and health, whatever else changed: its weight, backup role, `maxconn` and check
    /// flag, and the proxy's check settings, apply in place. Only a server whose address
    /// changed, or that is gone, is replaced and has its sessions closed. A proxy whose bind
    /// changes gets its new listener bound before the old one stops. Returns what changed.
    pub fn reload(&self, proxies: &[Proxy]) -> Vec<String> {
        let mut changes = Vec::new();
        let now = Instant::now();
        // A reload replaces running rebalances: the shares they aimed at may have changed.
        for name in self.rebalances.stop_all() {
            changes.push(format!("proxy {name}: the running rebalance stopped"));
        }
        let mut running = std::mem::take(&mut *self.lock());
        let mut kept = Vec::new();
        for config in proxies {
            let Some(position) = running.iter().position(|r| r.state.borrow().config.name == config.name) else {
                changes.push(format!("proxy {} added", config.name));
                kept.push(self.launch(Arc::new(ProxyState::new(config.clone(), now))));
                continue;
            };
            let mut entry = running.remove(position);
            let old = Arc::clone(&entry.state.borrow());
            if old.config.check != config.check {
                changes.push(format!("proxy {} has new check settings", config.name));
            }
            let mut servers = Vec::new();
            for server in &config.servers {
                match old.server(&server.name).filter(|s| s.address == server.address) {
                    Some(existing) => {
                        for change in existing.reconfigure(server, config.check.for_server(server), now) {
                            changes.push(format!("{}/{} {change}", config.name, server.name));
                        }
                        servers.push(Arc::clone(existing));
                    }
                    None => {
                        changes.push(format!("{}/{} added", config.name, server.name));
                        servers
                            .push(Arc::new(ServerState::new(server.clone(), Health::new(config.check.for_server(server), now))));
                    }
                }
            }
            for gone in old.servers.iter().filter(|s| !servers.iter().any(|n| Arc::ptr_eq(n, s))) {
                gone.retire();
                let closed = self.sessions.close_server(gone, CloseReason::Admin);
                changes.push(format!("{}/{} removed ({closed} sessions closed)", config.name, gone.name));
            }
            let semaphore = if old.config.maxconn == config.maxconn { old.maxconn.clone() } else { None };
            let state = Arc::new(ProxyState::with(config.clone(), servers, semaphore, Arc::clone(&old.shared)));
            entry.state.send_replace(Arc::clone(&state));
            self.follow_check_flags(&mut entry);
            // New addresses listen before the old ones close.
            let new: Vec<SocketAddr> =
                config.binds.iter().copied().filter(|b| !entry.listeners.iter().any(|(l, _)| l == b)).collect();
            for bind in new {
                entry.listeners.push((bind, self.start_listener(&entry.state, bind)));
                changes.push(format!("proxy {} now listens on {bind}", config.name));
            }
            entry.listeners.retain(|(bind, stop)| {
                let kept = config.binds.contains(bind);
                if !kept {
                    stop.cancel();
                    changes.push(format!("proxy {} no longer listens on {bind}", config.name));
                }
                kept
            });
            // Clients of a kept bind must now send a PROXY header, or no longer may: say so.
            for (bind, _) in &entry.listeners {
                match (old.config.accept_proxy.contains(bind), config.accept_proxy.contains(bind)) {
                    (false, true) => changes.push(format!("proxy {} expects a PROXY header on {bind} now", config.name)),
                    (true, false) => changes.push(format!("proxy {} no longer expects a PROXY header on {bind}", config.name)),
                    _ => {}
                }
            }
            state.update_availability();
            // A higher maxconn, a server ready again: queued sessions look again.
            state.shared.slot_freed.notify_waiters();
            kept.push(entry);
        }
        for gone in running {
            let name = gone.state.borrow().config.name.clone();
            for (_, stop) in &gone.listeners {
                stop.cancel();
            }
            let closed = self.sessions.close_proxy(&name, CloseReason::Admin);
            changes.push(format!("proxy {name} removed ({closed} sessions closed)"));
        }
        *self.lock() = kept;
        for change in &changes {
            info!(change = %change, "balancer reloaded");
        }
        changes
    }

    /// Stops accepting, lets sessions finish for up to `hard_stop_after`, then closes the rest.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let deadline = Instant::now() + self.hard_stop_after;
        while !self.sessions.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let closed = self.sessions.close_all(CloseReason::Shutdown);
        if closed > 0 {
            info!(closed, "closed the sessions still open at the end of hard_stop_after");
        }
        let wait_until = Instant::now() + Duration::from_secs(1);
        while !self.sessions.is_empty() && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_maxconn_gives_two_descriptors_per_session_and_keeps_a_reserve() {
        assert_eq!(default_maxconn(1024), (1024 - 256) / 2);
        assert_eq!(default_maxconn(65_536), (65_536 - 256) / 2);
        assert_eq!(default_maxconn(1_048_576), (1_048_576 - 256) / 2);
        // A small limit keeps a quarter aside.
        assert_eq!(default_maxconn(256), (256 - 64) / 2);
        assert_eq!(default_maxconn(0), 1, "never zero: a proxy that accepts nothing looks broken");
        assert_eq!(default_maxconn(u64::MAX), 10_000_000, "an unlimited limit is not an unlimited maxconn");
    }

    #[test]
    fn this_process_has_an_open_files_limit() {
        assert!(open_files_limit().unwrap() > 0);
    }
}
