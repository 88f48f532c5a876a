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
use tracing::info;

use crate::check;
use crate::listener;
use crate::server::ProxyState;
use crate::sessions::{CloseReason, Sessions};

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
            tasks.push(runtime.spawn(listener::serve(
                Arc::clone(proxy),
                index,
                Arc::clone(&sessions),
                global.clone(),
                stop.clone(),
            )));
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
