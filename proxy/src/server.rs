//! Runtime state of proxies and servers: what selection reads lock-free (status, current
//! sessions), the counters the stats page shows, and the health kept by the checks. A reload
//! builds a new [`ProxyState`] but carries over [`ProxyShared`] and every unchanged
//! [`ServerState`], so counters, health and sessions live on.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use ha_common::config::{Proxy, Server};
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
    pub fn session_started(&self) {
        let now = self.current.fetch_add(1, Relaxed) + 1;
        self.max.fetch_max(now, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }

    pub fn session_ended(&self) {
        self.current.fetch_sub(1, Relaxed);
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

pub struct ServerState {
    pub config: Server,
    /// Passed its checks (always, when not checked).
    pub up: AtomicBool,
    admin: AtomicU8,
    pub weight: AtomicU32,
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
            counters: Counters::default(),
            failed_connects: AtomicU64::new(0),
            health: Mutex::new(health),
            config,
        }
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
            backup: self.config.backup,
            weight: self.weight.load(Relaxed),
            current: self.counters.current.load(Relaxed),
            maxconn: self.config.maxconn,
        }
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
            slot_freed: Notify::new(),
            listener_ok: AtomicBool::new(true),
            available: watch::channel(true).0,
        }
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
        let servers =
            config.servers.iter().map(|s| Arc::new(ServerState::new(s.clone(), Health::new(config.check, now)))).collect();
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
        self.servers.iter().find(|s| s.config.name == name)
    }
}
