//! Runtime state of proxies and servers: what selection reads lock-free (status, current
//! sessions), the counters the stats page shows, and the health kept by the checks. A reload
//! builds a new [`ProxyState`] but carries over [`ProxyShared`] and every [`ServerState`] whose
//! name and address stay, so counters, health and sessions live on.
//!
//! A session's part in the counts is held by guards ([`SessionCount`], [`ServerSlot`],
//! [`QueueEntry`]) released on drop: a session cancelled at any await point, or one that
//! panics, gives back what it counted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ha_common::config::{HealthCheck, Proxy, Server};
use tokio::sync::{watch, Notify, Semaphore};

use crate::health::Health;
use crate::rebalance::Progress;
use crate::registry::CloseReason;
use crate::select::{Candidate, Selector};

/// Counters of sessions and bytes, shared by proxies and servers.
#[derive(Debug, Default)]
pub struct Counters {
    pub current: AtomicU32,
    pub max: AtomicU32,
    pub total: AtomicU64,
    /// Client to server.
    pub bytes_in: AtomicU64,
    /// Server to client.
    pub bytes_out: AtomicU64,
}

impl Counters {
    /// Counts a session in `current` until the returned guard is dropped.
    pub fn count_session(&self) -> SessionCount<'_> {
        self.started(self.current.fetch_add(1, Relaxed) + 1);
        SessionCount(self)
    }

    /// Records a session that made `current` reach `now`.
    fn started(&self, now: u32) {
        self.max.fetch_max(now, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }
}

/// A session counted in a [`Counters`]; dropping it ends the count.
#[must_use = "the session is no longer counted once this is dropped"]
pub struct SessionCount<'a>(&'a Counters);

impl Drop for SessionCount<'_> {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Relaxed);
    }
}

/// Effective weights are the configured weight times this, so that a server early in its
/// slowstart ramp still compares finely against the others (HAProxy's BE_WEIGHT_SCALE).
pub const WEIGHT_SCALE: u32 = 16;

/// The instant [`ServerState`] ramp starts are counted from (they are kept in atomics).
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The operator's say over a server, beside its health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Admin {
    /// Serves as its health allows.
    Ready = 0,
    /// Keeps its sessions, takes no new ones.
    Drain = 1,
    /// Takes nothing; its sessions were closed when it entered maintenance.
    Maint = 2,
}

/// One server. Its name and address are what it is: a reload that keeps both keeps this state,
/// and the rest of its configuration changes in place ([`ServerState::reconfigure`]).
pub struct ServerState {
    pub name: String,
    pub address: SocketAddr,
    /// Passed its checks (always, when not checked).
    pub up: AtomicBool,
    admin: AtomicU8,
    pub weight: AtomicU32,
    backup: AtomicBool,
    /// The configured `maxconn`, 0 for none (a configured one is at least 1).
    maxconn: AtomicU32,
    checked: AtomicBool,
    /// Removed from the configuration by a reload: its sessions were closed, no new ones.
    retired: AtomicBool,
    /// The configured `slowstart`, in milliseconds (0: none).
    slowstart_ms: AtomicU64,
    /// When the current slowstart ramp began, in nanoseconds after [`origin`] plus one (0:
    /// no ramp, the server runs at full weight).
    ramp_started: AtomicU64,
    pub counters: Counters,
    pub failed_connects: AtomicU64,
    health: Mutex<Health>,
}

impl ServerState {
    pub fn new(config: Server, health: Health) -> Self {
        ServerState {
            up: AtomicBool::new(true),
            admin: AtomicU8::new(Admin::Ready as u8),
            weight: AtomicU32::new(config.weight),
            backup: AtomicBool::new(config.backup),
            maxconn: AtomicU32::new(config.maxconn.unwrap_or(0)),
            checked: AtomicBool::new(config.check),
            retired: AtomicBool::new(false),
            slowstart_ms: AtomicU64::new(u64::try_from(config.slowstart.as_millis()).unwrap_or(u64::MAX)),
            // A server starts at full weight: slowstart applies to a server coming back, not
            // to the first start, as in HAProxy.
            ramp_started: AtomicU64::new(0),
            counters: Counters::default(),
            failed_connects: AtomicU64::new(0),
            health: Mutex::new(health),
            name: config.name,
            address: config.address,
        }
    }

    pub fn backup(&self) -> bool {
        self.backup.load(Relaxed)
    }

    pub fn maxconn(&self) -> Option<u32> {
        Some(self.maxconn.load(Relaxed)).filter(|&m| m > 0)
    }

    /// Whether health checks decide this server's status.
    pub fn checked(&self) -> bool {
        self.checked.load(Relaxed)
    }

    /// Applies a reloaded configuration of this server (same name and address) and its check
    /// settings (the proxy's, with the server's own over them), in place: sessions and counters
    /// stay. A new `maxconn` applies to the next sessions; a server no longer checked counts as
    /// UP, and one checked again starts over from UP as a new server does. Says what changed, for the reload's log (the caller
    /// starts or stops the checks).
    pub fn reconfigure(&self, config: &Server, check: HealthCheck, now: Instant) -> Vec<String> {
        let mut changes = Vec::new();
        let weight = self.weight.swap(config.weight, Relaxed);
        if weight != config.weight {
            changes.push(format!("weight {weight} -> {}", config.weight));
        }
        if self.backup.swap(config.backup, Relaxed) != config.backup {
            changes.push(if config.backup { "is now a backup" } else { "is no longer a backup" }.to_owned());
        }
        let maxconn = self.maxconn.swap(config.maxconn.unwrap_or(0), Relaxed);
        if maxconn != config.maxconn.unwrap_or(0) {
            let said = |m: Option<u32>| m.map_or_else(|| "none".to_owned(), |m| m.to_string());
            changes.push(format!("maxconn {} -> {}", said(Some(maxconn).filter(|&m| m > 0)), said(config.maxconn)));
        }
        let slowstart = u64::try_from(config.slowstart.as_millis()).unwrap_or(u64::MAX);
        let before = self.slowstart_ms.swap(slowstart, Relaxed);
        if before != slowstart {
            let said = |ms: u64| if ms == 0 { "none".to_owned() } else { ha_common::duration::format(Duration::from_millis(ms)) };
            changes.push(format!("slowstart {} -> {}", said(before), said(slowstart)));
        }
        // Under the health lock: a check finishing now sees the new flag before it records.
        let mut health = self.health();
        if self.checked.swap(config.check, Relaxed) != config.check {
            *health = Health::new(check, now);
            self.up.store(true, Relaxed);
            changes.push(if config.check { "is checked again" } else { "is no longer checked" }.to_owned());
        } else {
            let (before, after) = (health.check().target(self.address), check.target(self.address));
            if before != after {
                changes.push(format!("is now checked at {after} instead of {before}"));
            } else if *health.check() != check {
                changes.push("has new check settings".to_owned());
            }
            health.reconfigure(check);
        }
        changes
    }

    pub fn health(&self) -> MutexGuard<'_, Health> {
        // A panic while holding the lock cannot leave Health half-updated in a way that
        // matters more than losing the stats; keep serving.
        self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn admin(&self) -> Admin {
        match self.admin.load(Relaxed) {
            1 => Admin::Drain,
            2 => Admin::Maint,
            _ => Admin::Ready,
        }
    }

    pub fn set_admin(&self, admin: Admin) {
        self.admin.store(admin as u8, Relaxed);
    }

    /// Marks a server a reload removed; call before closing its sessions.
    pub fn retire(&self) {
        self.retired.store(true, Relaxed);
    }

    /// Why a session on this server would be closed now, if it would: the server was
    /// removed, put in maintenance, or marked DOWN with `shutdown_sessions_on_down`. A session
    /// whose connect was under way while that happened asks this once it is registered on the
    /// server (the registry's lock orders the two), so no session outlives its server's
    /// withdrawal unclosed.
    pub fn withdrawn(&self, shutdown_sessions_on_down: bool) -> Option<CloseReason> {
        if self.retired.load(Relaxed) || self.admin() == Admin::Maint {
            Some(CloseReason::Admin)
        } else if shutdown_sessions_on_down && !self.up.load(Relaxed) {
            Some(CloseReason::ServerDown)
        } else {
            None
        }
    }

    /// Starts the slowstart ramp (the server just came back UP, or out of maintenance); no-op
    /// without `slowstart`.
    pub fn start_ramp(&self, now: Instant) {
        if self.slowstart_ms.load(Relaxed) > 0 {
            let since = u64::try_from(now.saturating_duration_since(origin()).as_nanos()).unwrap_or(u64::MAX - 1);
            self.ramp_started.store(since + 1, Relaxed);
        }
    }

    /// How far into its slowstart ramp the server is, 0.0..1.0, or `None` at full weight.
    pub fn ramp(&self, now: Instant) -> Option<f64> {
        let started = self.ramp_started.load(Relaxed).checked_sub(1)?;
        let slowstart = Duration::from_millis(self.slowstart_ms.load(Relaxed));
        let elapsed = now.saturating_duration_since(origin() + Duration::from_nanos(started));
        (elapsed < slowstart).then(|| elapsed.as_secs_f64() / slowstart.as_secs_f64())
    }

    /// The weight selection uses, in [`WEIGHT_SCALE`] units: the configured weight, times the
    /// ramp's progress during slowstart; at least 1 while the configured weight is not 0, so a
    /// ramping server takes its first session at once (as HAProxy's, it grows from ~0).
    pub fn effective_weight(&self, now: Instant) -> u32 {
        let full = self.weight.load(Relaxed).saturating_mul(WEIGHT_SCALE);
        match self.ramp(now) {
            Some(progress) if full > 0 => ((f64::from(full) * progress).round() as u32).clamp(1, full),
            _ => full,
        }
    }

    pub fn candidate(&self, now: Instant) -> Candidate {
        Candidate {
            up: self.up.load(Relaxed),
            // A server a reload removed is not chosen by sessions still holding the old proxy.
            ready: self.admin() == Admin::Ready && !self.retired.load(Relaxed),
            backup: self.backup(),
            weight: self.effective_weight(now),
            current: self.counters.current.load(Relaxed),
            maxconn: self.maxconn(),
        }
    }
}

/// A session's place on a server: counted in the server's `current`, which selection and
/// `maxconn` read, for as long as it is held. Dropping it, whatever ends the session (its end,
/// a cancellation at any await point, a panic), frees the place and wakes the proxy's queued
/// sessions to take it.
#[must_use = "the place on the server is freed once this is dropped"]
pub struct ServerSlot<'a> {
    server: &'a Arc<ServerState>,
    shared: &'a ProxyShared,
}

impl<'a> ServerSlot<'a> {
    /// Takes a place on `server` if its `maxconn` leaves one.
    pub fn take(server: &'a Arc<ServerState>, shared: &'a ProxyShared) -> Option<Self> {
        let limit = server.maxconn();
        let has_room = |current: u32| limit.is_none_or(|max| current < max).then_some(current + 1);
        let before = server.counters.current.fetch_update(Relaxed, Relaxed, has_room).ok()?;
        server.counters.started(before + 1);
        Some(ServerSlot { server, shared })
    }

    pub fn server(&self) -> &'a Arc<ServerState> {
        self.server
    }
}

impl Drop for ServerSlot<'_> {
    fn drop(&mut self) {
        // Freed before the wake-up, so the woken sessions see the place.
        self.server.counters.current.fetch_sub(1, Relaxed);
        self.shared.slot_freed.notify_waiters();
    }
}

/// What a proxy keeps across reloads.
pub struct ProxyShared {
    pub counters: Counters,
    /// Sessions waiting for a server slot.
    pub queued: AtomicU32,
    pub queued_max: AtomicU32,
    /// Sessions refused: no server, queue full or timed out.
    pub denied: AtomicU64,
    /// Sessions that panicked (and were closed; the proxy serves on).
    pub panics: AtomicU64,
    /// Wakes queued sessions when a slot frees or a server comes UP.
    pub slot_freed: Notify,
    /// Clients of an `accept_proxy` bind refused for a missing, slow or malformed PROXY header.
    pub bad_proxy_headers: AtomicU64,
    /// Sessions closed by rebalances, all told.
    pub rebalance_closed: AtomicU64,
    /// The running rebalance, if one runs.
    rebalance: Mutex<Option<Progress>>,
    /// Binds that cannot listen at the moment (each listener adds and removes its own).
    unbound: Mutex<Vec<SocketAddr>>,
    /// Whether the proxy can serve: its listener is bound and a server is usable.
    pub available: watch::Sender<bool>,
    /// Broker sessions of silent masters closed through the management API.
    pub fencing: crate::fence::FenceStats,
}

impl Default for ProxyShared {
    fn default() -> Self {
        ProxyShared {
            counters: Counters::default(),
            queued: AtomicU32::new(0),
            queued_max: AtomicU32::new(0),
            denied: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            slot_freed: Notify::new(),
            bad_proxy_headers: AtomicU64::new(0),
            rebalance_closed: AtomicU64::new(0),
            rebalance: Mutex::new(None),
            unbound: Mutex::new(Vec::new()),
            available: watch::channel(true).0,
            fencing: crate::fence::FenceStats::default(),
        }
    }
}

impl ProxyShared {
    /// The running rebalance's progress.
    pub fn rebalance(&self) -> Option<Progress> {
        self.rebalance.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_rebalance(&self, progress: Progress) {
        *self.rebalance.lock().unwrap_or_else(|p| p.into_inner()) = Some(progress);
    }

    /// Updates the progress of a running rebalance, unless a newer one replaced it.
    pub fn update_rebalance(&self, progress: Progress) {
        let mut rebalance = self.rebalance.lock().unwrap_or_else(|p| p.into_inner());
        if rebalance.as_ref().is_some_and(|p| p.id == progress.id) {
            *rebalance = Some(progress);
        }
    }

    /// Clears the progress of rebalance `id`, unless a newer one replaced it already.
    pub fn clear_rebalance(&self, id: u64) {
        let mut rebalance = self.rebalance.lock().unwrap_or_else(|p| p.into_inner());
        if rebalance.as_ref().is_some_and(|p| p.id == id) {
            *rebalance = None;
        }
    }

    /// Whether every bind of the proxy is listening.
    pub fn listening(&self) -> bool {
        self.unbound_lock().is_empty()
    }

    fn unbound_lock(&self) -> MutexGuard<'_, Vec<SocketAddr>> {
        self.unbound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `bind` cannot listen; true when it could before (the first failure).
    pub fn mark_unbound(&self, bind: SocketAddr) -> bool {
        let mut unbound = self.unbound_lock();
        let first = !unbound.contains(&bind);
        if first {
            unbound.push(bind);
        }
        first
    }

    /// Records that `bind` listens, or no longer needs to (its listener stopped).
    pub fn mark_bound(&self, bind: SocketAddr) {
        self.unbound_lock().retain(|b| *b != bind);
    }

    /// Joins the queue of sessions waiting for a server slot, until the entry is dropped.
    pub fn join_queue(&self) -> QueueEntry<'_> {
        let depth = self.queued.fetch_add(1, Relaxed) + 1;
        self.queued_max.fetch_max(depth, Relaxed);
        QueueEntry { shared: self, depth }
    }
}

/// A session waiting for a server slot, counted in its proxy's `queued` while held.
#[must_use = "the session leaves the queue once this is dropped"]
pub struct QueueEntry<'a> {
    shared: &'a ProxyShared,
    depth: u32,
}

impl QueueEntry<'_> {
    /// The queue's depth when this session joined it, itself included.
    pub fn depth(&self) -> u32 {
        self.depth
    }
}

impl Drop for QueueEntry<'_> {
    fn drop(&mut self) {
        self.shared.queued.fetch_sub(1, Relaxed);
    }
}

/// One proxy as currently configured.
pub struct ProxyState {
    pub config: Proxy,
    /// The proxy's name, shared by its sessions' registry entries.
    pub name: Arc<str>,
    pub servers: Vec<Arc<ServerState>>,
    pub selector: Selector,
    pub maxconn: Option<Arc<Semaphore>>,
    pub shared: Arc<ProxyShared>,
}

impl ProxyState {
    pub fn new(config: Proxy, now: Instant) -> Self {
        let servers = config
            .servers
            .iter()
            .map(|s| Arc::new(ServerState::new(s.clone(), Health::new(config.check.for_server(s), now))))
            .collect();
        ProxyState::with(config, servers, None, Arc::default())
    }

    /// A proxy made of given parts (a reload reuses servers, semaphore and shared state).
    pub fn with(
        config: Proxy,
        servers: Vec<Arc<ServerState>>,
        maxconn: Option<Arc<Semaphore>>,
        shared: Arc<ProxyShared>,
    ) -> Self {
        let selector = Selector::new(config.balance, servers.len()).with_all_backups(config.allbackups);
        let maxconn = maxconn.or_else(|| config.maxconn.map(|m| Arc::new(Semaphore::new(m as usize))));
        ProxyState { name: Arc::from(config.name.as_str()), config, servers, selector, maxconn, shared }
    }

    pub fn candidates(&self) -> Vec<Candidate> {
        let now = Instant::now();
        self.servers.iter().map(|s| s.candidate(now)).collect()
    }

    /// Recomputes availability and tells watchers (track_proxy) when it changed.
    pub fn update_availability(&self) {
        let now = Instant::now();
        let usable = self.servers.iter().any(|s| {
            let c = s.candidate(now);
            c.up && c.ready && c.weight > 0
        });
        let available = usable && self.shared.listening();
        self.shared.available.send_if_modified(|current| std::mem::replace(current, available) != available);
    }

    pub fn server(&self, name: &str) -> Option<&Arc<ServerState>> {
        self.servers.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ha_common::config::CheckKind;

    fn server(weight: u32, slowstart: Duration) -> ServerState {
        let config = Server {
            name: "r".into(),
            address: "192.0.2.21:5672".parse().unwrap(),
            weight,
            backup: false,
            maxconn: None,
            check: true,
            check_settings: Default::default(),
            slowstart,
        };
        let s = Duration::from_secs(1);
        let check = HealthCheck {
            kind: CheckKind::Tcp,
            interval: s,
            fastinter: s,
            downinter: s,
            timeout: s,
            rise: 1,
            fall: 1,
            port: None,
            addr: None,
            tls: Default::default(),
            http: None,
        };
        ServerState::new(config, Health::new(check, Instant::now()))
    }

    #[test]
    fn slowstart_ramps_the_weight_after_a_return_not_at_start() {
        let now = Instant::now();
        let ramping = server(2, Duration::from_secs(60));
        assert_eq!(ramping.effective_weight(now), 32, "a server UP from the start is at full weight");
        ramping.start_ramp(now);
        assert_eq!(ramping.effective_weight(now), 1, "back UP: almost nothing, but not nothing");
        assert_eq!(ramping.effective_weight(now + Duration::from_secs(15)), 8);
        assert_eq!(ramping.effective_weight(now + Duration::from_secs(30)), 16);
        assert_eq!(ramping.effective_weight(now + Duration::from_secs(60)), 32);
        assert_eq!(ramping.ramp(now + Duration::from_secs(61)), None, "the ramp is over");
        let plain = server(2, Duration::ZERO);
        plain.start_ramp(now);
        assert_eq!(plain.effective_weight(now), 32, "no slowstart, no ramp");
        let zero = server(0, Duration::from_secs(60));
        zero.start_ramp(now);
        assert_eq!(zero.effective_weight(now), 0, "weight 0 stays 0");
    }
}
