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
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ha_common::config::{HealthCheck, Proxy, Server};
use tokio::sync::{watch, Notify, Semaphore};

use crate::health::Health;
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

    pub fn candidate(&self) -> Candidate {
        Candidate {
            up: self.up.load(Relaxed),
            ready: self.admin() == Admin::Ready,
            backup: self.backup(),
            weight: self.weight.load(Relaxed),
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
    pub listener_ok: AtomicBool,
    /// Whether the proxy can serve: its listener is bound and a server is usable.
    pub available: watch::Sender<bool>,
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
            listener_ok: AtomicBool::new(true),
            available: watch::channel(true).0,
        }
    }
}

impl ProxyShared {
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
        let selector = Selector::new(config.balance, servers.len());
        let maxconn = maxconn.or_else(|| config.maxconn.map(|m| Arc::new(Semaphore::new(m as usize))));
        ProxyState { name: Arc::from(config.name.as_str()), config, servers, selector, maxconn, shared }
    }

    pub fn candidates(&self) -> Vec<Candidate> {
        self.servers.iter().map(|s| s.candidate()).collect()
    }

    /// Recomputes availability and tells watchers (track_proxy) when it changed.
    pub fn update_availability(&self) {
        let usable = self.servers.iter().any(|s| {
            let c = s.candidate();
            c.up && c.ready && c.weight > 0
        });
        let available = usable && self.shared.listener_ok.load(Relaxed);
        self.shared.available.send_if_modified(|current| std::mem::replace(current, available) != available);
    }

    pub fn server(&self, name: &str) -> Option<&Arc<ServerState>> {
        self.servers.iter().find(|s| s.name == name)
    }
}
