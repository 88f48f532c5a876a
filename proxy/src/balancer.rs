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
    /// many. Called when the host leaves MASTER for the VIPs it gave up: the clients are
    /// reconnecting through the other host, and a broker holding their old connections would
    /// keep their unacknowledged messages until the heartbeat expires.
    pub fn close_sessions_accepted_on(&self, addresses: &[IpAddr]) -> usize {
        self.sessions.close_accepted_on(addresses, CloseReason::VipLost)
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
