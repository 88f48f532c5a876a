//! All proxies of one daemon, started on the balancer's own runtime, and what the VRRP side
//! asks of them: is a proxy available (track_proxy), and close the sessions a host accepted
//! on a VIP it no longer holds.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ha_common::config::Proxy;
use tokio::runtime::Handle;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::check;
use crate::listener;
use crate::server::{Admin, ProxyState};
use crate::sessions::{CloseReason, Sessions};
use crate::stats::ProxySnapshot;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminError {
    #[error("no proxy named {0:?}")]
    NoProxy(String),
    #[error("proxy {0:?} has no server named {1:?}")]
    NoServer(String, String),
    #[error("weight {0} is outside 0..=256")]
    Weight(u32),
}

pub struct Balancer {
    proxies: Vec<Arc<ProxyState>>,
    sessions: Arc<Sessions>,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    hard_stop_after: Duration,
}

impl Balancer {
    /// Starts listeners and health checks for `proxies` on `runtime`.
    pub fn start(proxies: &[Proxy], global_maxconn: Option<u32>, hard_stop_after: Duration, runtime: &Handle) -> Arc<Balancer> {
        let now = Instant::now();
        let states: Vec<Arc<ProxyState>> = proxies.iter().map(|p| Arc::new(ProxyState::new(p.clone(), now))).collect();
        let sessions = Arc::new(Sessions::default());
        let stop = CancellationToken::new();
        let global = global_maxconn.map(|m| Arc::new(Semaphore::new(m as usize)));
        let mut tasks = Vec::new();
        for (index, proxy) in states.iter().enumerate() {
            // Bound here, so that whoever started the balancer knows the listeners are up.
            let bound = match listener::bind(proxy.config.bind) {
                Ok(listener) => Some(listener),
                Err(e) => {
                    warn!(proxy = %proxy.config.name, bind = %proxy.config.bind, error = %e, "cannot listen yet; retrying every second");
                    proxy.listener_ok.store(false, std::sync::atomic::Ordering::Relaxed);
                    proxy.update_availability();
                    None
                }
            };
            let serve = listener::serve(Arc::clone(proxy), index, Arc::clone(&sessions), global.clone(), bound, stop.clone());
            tasks.push(runtime.spawn(serve));
            for server in 0..proxy.servers.len() {
                tasks.push(runtime.spawn(check::run_checks(Arc::clone(proxy), index, server, Arc::clone(&sessions))));
            }
        }
        Arc::new(Balancer { proxies: states, sessions, stop, tasks: Mutex::new(tasks), hard_stop_after })
    }

    pub fn proxies(&self) -> &[Arc<ProxyState>] {
        &self.proxies
    }

    pub fn proxy(&self, name: &str) -> Option<(usize, &Arc<ProxyState>)> {
        self.proxies.iter().enumerate().find(|(_, p)| p.config.name == name)
    }

    /// Watches whether proxy `name` can serve (listener bound, a server usable).
    pub fn availability(&self, name: &str) -> Option<watch::Receiver<bool>> {
        self.proxy(name).map(|(_, p)| p.available.subscribe())
    }

    /// Closes every session accepted on one of `addresses`, backend side included; returns how
    /// many.
    pub fn close_sessions_accepted_on(&self, addresses: &[IpAddr]) -> usize {
        self.sessions.close_accepted_on(addresses, CloseReason::VipLost)
    }

    /// Gives up VIPs: refuses new sessions accepted on `addresses`, closes the open ones
    /// (broker side included), and waits up to `within` for their sockets to be gone. Call it
    /// while the addresses are still on the interface: a FIN can only leave from an address the
    /// host holds, and a client that only reads (an AMQP consumer) would otherwise learn of the
    /// failover at its next heartbeat, while the broker keeps its unacknowledged messages.
    /// Returns how many sessions were closed.
    pub async fn release_addresses(&self, addresses: &[IpAddr], within: Duration) -> usize {
        let closed = self.sessions.fence(addresses, CloseReason::VipLost);
        let deadline = Instant::now() + within;
        while self.sessions.open_on(addresses) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        closed
    }

    /// Takes VIPs (back): sessions accepted on them are served again.
    pub fn claim_addresses(&self, addresses: &[IpAddr]) {
        self.sessions.unfence(addresses);
    }

    pub fn close_server_sessions(&self, proxy: usize, server: usize, reason: CloseReason) -> usize {
        self.sessions.close_server(proxy, server, reason)
    }

    /// The current state of every proxy and server.
    pub fn snapshot(&self) -> Vec<ProxySnapshot> {
        let now = Instant::now();
        self.proxies.iter().map(|p| ProxySnapshot::of(p, now)).collect()
    }

    /// Finds `proxy/server`, or says which half of the name is unknown.
    fn locate(&self, proxy: &str, server: &str) -> Result<(usize, &Arc<ProxyState>, usize), AdminError> {
        let (index, state) = self.proxy(proxy).ok_or_else(|| AdminError::NoProxy(proxy.to_owned()))?;
        let server_index = state.server_index(server).ok_or_else(|| AdminError::NoServer(proxy.to_owned(), server.to_owned()))?;
        Ok((index, state, server_index))
    }

    /// The operator's drain / maintenance / ready. Maintenance also closes the server's
    /// sessions. Returns a sentence saying what changed.
    pub fn set_admin(&self, proxy: &str, server: &str, admin: Admin) -> Result<String, AdminError> {
        let (index, state, server_index) = self.locate(proxy, server)?;
        let target = &state.servers[server_index];
        let before = target.admin();
        target.set_admin(admin);
        let closed = if admin == Admin::Maint { self.sessions.close_server(index, server_index, CloseReason::Admin) } else { 0 };
        state.update_availability();
        state.slot_freed.notify_waiters();
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
                target.counters.current.load(std::sync::atomic::Ordering::Relaxed)
            ),
            Admin::Ready => format!("{proxy}/{server}: {} -> ready", word(before)),
        })
    }

    pub fn set_weight(&self, proxy: &str, server: &str, weight: u32) -> Result<String, AdminError> {
        if weight > 256 {
            return Err(AdminError::Weight(weight));
        }
        let (_, state, server_index) = self.locate(proxy, server)?;
        let before = state.servers[server_index].weight.swap(weight, std::sync::atomic::Ordering::Relaxed);
        state.update_availability();
        state.slot_freed.notify_waiters();
        info!(proxy, server, from = before, to = weight, "server weight changed");
        Ok(format!("{proxy}/{server}: weight {before} -> {weight}"))
    }

    pub fn shutdown_sessions(&self, proxy: &str, server: &str) -> Result<String, AdminError> {
        let (index, _, server_index) = self.locate(proxy, server)?;
        let closed = self.sessions.close_server(index, server_index, CloseReason::Admin);
        info!(proxy, server, closed, "sessions closed by operator");
        Ok(format!("{proxy}/{server}: {closed} sessions closed"))
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
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
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
        }
    }
}
