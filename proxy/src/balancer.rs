//! All proxies of one daemon, started on the balancer's own runtime, and what the rest of vrrpd
//! asks of them: is a proxy available (track_proxy), close the sessions accepted on a VIP this
//! host gives up, the operator's controls, and reloads that keep what did not change.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ha_common::config::Proxy;
use tokio::runtime::Handle;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::health::probe;
use crate::health::Health;
use crate::listener;
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
}

/// A running proxy: its current configuration (listeners and checks follow it) and its
/// listener.
struct Running {
    state: watch::Sender<Arc<ProxyState>>,
    bind: SocketAddr,
    listener: CancellationToken,
}

pub struct Balancer {
    running: Mutex<Vec<Running>>,
    sessions: Arc<Sessions>,
    stop: CancellationToken,
    global: Option<Arc<Semaphore>>,
    hard_stop_after: Duration,
    runtime: Handle,
}

impl Balancer {
    /// Starts listeners and health checks for `proxies` on `runtime`. Listeners are bound
    /// before this returns (a failure is logged and retried every second).
    pub fn start(proxies: &[Proxy], global_maxconn: Option<u32>, hard_stop_after: Duration, runtime: &Handle) -> Arc<Balancer> {
        let balancer = Balancer {
            running: Mutex::new(Vec::new()),
            sessions: Arc::new(Sessions::default()),
            stop: CancellationToken::new(),
            global: global_maxconn.map(|m| Arc::new(Semaphore::new(m as usize))),
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
        let bind = state.config.bind;
        let listener = self.start_listener(&sender, bind);
        for server in &state.servers {
            self.start_checks(&sender, server);
        }
        Running { state: sender, bind, listener }
    }

    fn start_listener(&self, state: &watch::Sender<Arc<ProxyState>>, bind: SocketAddr) -> CancellationToken {
        let proxy = Arc::clone(&state.borrow());
        let bound = match listener::bind(bind) {
            Ok(listener) => Some(listener),
            Err(e) => {
                warn!(proxy = %proxy.config.name, %bind, error = %e, "cannot listen yet; retrying every second");
                proxy.shared.listener_ok.store(false, Relaxed);
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

    fn start_checks(&self, state: &watch::Sender<Arc<ProxyState>>, server: &Arc<ServerState>) {
        let checks =
            probe::run_checks(state.subscribe(), Arc::clone(server), Arc::clone(&self.sessions), self.stop.child_token());
        self.runtime.spawn(checks);
    }

    /// The current configuration and state of every proxy.
    pub fn proxies(&self) -> Vec<Arc<ProxyState>> {
        self.lock().iter().map(|r| Arc::clone(&r.state.borrow())).collect()
    }

    pub fn proxy(&self, name: &str) -> Option<Arc<ProxyState>> {
        self.proxies().into_iter().find(|p| p.config.name == name)
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

    /// Applies a new list of proxies. A server whose name, address and role are unchanged
    /// keeps its sessions, counters and health (a new weight applies at once); other servers
    /// are added or removed (sessions on a removed server are closed). A proxy whose bind
    /// changes gets its new listener bound before the old one stops. Returns what changed.
    pub fn reload(&self, proxies: &[Proxy]) -> Vec<String> {
        let mut changes = Vec::new();
        let now = Instant::now();
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
            let mut servers = Vec::new();
            let mut fresh = Vec::new();
            for server in &config.servers {
                let same = old.servers.iter().find(|s| {
                    s.config.name == server.name
                        && s.config.address == server.address
                        && s.config.backup == server.backup
                        && s.config.maxconn == server.maxconn
                        && s.config.check == server.check
                });
                match same {
                    Some(existing) => {
                        let before = existing.weight.swap(server.weight, Relaxed);
                        if before != server.weight {
                            changes.push(format!("{}/{} weight {before} -> {}", config.name, server.name, server.weight));
                        }
                        servers.push(Arc::clone(existing));
                    }
                    None => {
                        changes.push(format!("{}/{} added", config.name, server.name));
                        let state = Arc::new(ServerState::new(server.clone(), Health::new(config.check, now)));
                        fresh.push(Arc::clone(&state));
                        servers.push(state);
                    }
                }
            }
            for gone in old.servers.iter().filter(|s| !servers.iter().any(|n| Arc::ptr_eq(n, s))) {
                let closed = self.sessions.close_server(gone, CloseReason::Admin);
                changes.push(format!("{}/{} removed ({closed} sessions closed)", config.name, gone.config.name));
            }
            let semaphore = if old.config.maxconn == config.maxconn { old.maxconn.clone() } else { None };
            let state = Arc::new(ProxyState::with(config.clone(), servers, semaphore, Arc::clone(&old.shared)));
            entry.state.send_replace(Arc::clone(&state));
            for server in &fresh {
                self.start_checks(&entry.state, server);
            }
            if config.bind != entry.bind {
                // The new address listens before the old one closes.
                let listener = self.start_listener(&entry.state, config.bind);
                entry.listener.cancel();
                changes.push(format!("proxy {} now listens on {} instead of {}", config.name, config.bind, entry.bind));
                entry.listener = listener;
                entry.bind = config.bind;
            }
            state.update_availability();
            state.shared.slot_freed.notify_waiters();
            kept.push(entry);
        }
        for gone in running {
            let name = gone.state.borrow().config.name.clone();
            gone.listener.cancel();
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
