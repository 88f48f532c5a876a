//! Every live session, so that sessions can be closed from outside: those accepted on a VIP
//! when the host leaves MASTER, those of a server marked DOWN, all of them at shutdown.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::server::ServerState;

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CloseReason {
    /// The client closed (both directions finished).
    Done = 1,
    ClientError,
    ServerError,
    IdleTimeout,
    /// No server could be connected (all retries failed, or none UP).
    NoServer,
    QueueTimeout,
    ServerDown,
    /// The host left MASTER: the client has moved to the other proxy host.
    VipLost,
    Shutdown,
    /// An operator closed it (shutdown-sessions).
    Admin,
}

impl CloseReason {
    fn from_u8(value: u8) -> Option<Self> {
        use CloseReason::*;
        [Done, ClientError, ServerError, IdleTimeout, NoServer, QueueTimeout, ServerDown, VipLost, Shutdown, Admin]
            .into_iter()
            .find(|r| *r as u8 == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Done => "closed",
            CloseReason::ClientError => "client error",
            CloseReason::ServerError => "server error",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::NoServer => "no server available",
            CloseReason::QueueTimeout => "queue timeout",
            CloseReason::ServerDown => "server marked down",
            CloseReason::VipLost => "VIP lost",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Admin => "closed by operator",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session's side of the registry: its cancellation and the reason it was given.
#[derive(Clone)]
pub struct Ticket {
    pub id: u64,
    pub cancel: CancellationToken,
    reason: Arc<AtomicU8>,
}

impl Ticket {
    /// The reason the session was cancelled with, if it was.
    pub fn reason(&self) -> Option<CloseReason> {
        CloseReason::from_u8(self.reason.load(Relaxed))
    }
}

struct Entry {
    local: SocketAddr,
    /// Shared with the proxy's state: one allocation per proxy, not per session.
    proxy: Arc<str>,
    server: Option<Arc<ServerState>>,
    ticket: Ticket,
}

#[derive(Default)]
pub struct Sessions {
    next_id: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
    /// Local addresses being given up: sessions accepted on them are refused.
    fenced: Mutex<Vec<IpAddr>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a session accepted on `local` by proxy `proxy`.
    pub fn register(&self, local: SocketAddr, proxy: &Arc<str>) -> Ticket {
        let id = self.next_id.fetch_add(1, Relaxed);
        let ticket = Ticket { id, cancel: CancellationToken::new(), reason: Arc::new(AtomicU8::new(0)) };
        self.lock().insert(id, Entry { local, proxy: Arc::clone(proxy), server: None, ticket: ticket.clone() });
        ticket
    }

    /// Refuses sessions accepted on `addresses` from now on, and closes those already open.
    pub fn fence(&self, addresses: &[IpAddr], reason: CloseReason) -> usize {
        {
            let mut fenced = self.fenced.lock().unwrap_or_else(|p| p.into_inner());
            for address in addresses {
                if !fenced.contains(address) {
                    fenced.push(*address);
                }
            }
        }
        self.close_accepted_on(addresses, reason)
    }

    /// Accepts sessions on `addresses` again.
    pub fn unfence(&self, addresses: &[IpAddr]) {
        self.fenced.lock().unwrap_or_else(|p| p.into_inner()).retain(|a| !addresses.contains(a));
    }

    pub fn is_fenced(&self, address: IpAddr) -> bool {
        self.fenced.lock().unwrap_or_else(|p| p.into_inner()).contains(&address)
    }

    /// Sessions accepted on one of `addresses` that are still open.
    pub fn open_on(&self, addresses: &[IpAddr]) -> usize {
        self.lock().values().filter(|e| addresses.contains(&e.local.ip())).count()
    }

    pub fn set_server(&self, id: u64, server: &Arc<ServerState>) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.server = Some(Arc::clone(server));
        }
    }

    pub fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Closes the sessions accepted on any of `addresses`; returns how many.
    pub fn close_accepted_on(&self, addresses: &[IpAddr], reason: CloseReason) -> usize {
        self.close_where(|e| addresses.contains(&e.local.ip()), reason)
    }

    /// Closes the sessions sent to `server`.
    pub fn close_server(&self, server: &Arc<ServerState>, reason: CloseReason) -> usize {
        self.close_where(|e| e.server.as_ref().is_some_and(|s| Arc::ptr_eq(s, server)), reason)
    }

    /// Closes the sessions of proxy `proxy`.
    pub fn close_proxy(&self, proxy: &str, reason: CloseReason) -> usize {
        self.close_where(|e| &*e.proxy == proxy, reason)
    }

    pub fn close_all(&self, reason: CloseReason) -> usize {
        self.close_where(|_| true, reason)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn close_where(&self, matches: impl Fn(&Entry) -> bool, reason: CloseReason) -> usize {
        let entries = self.lock();
        let mut closed = 0;
        for entry in entries.values().filter(|e| matches(e)) {
            // The first reason given wins.
            let _ = entry.ticket.reason.compare_exchange(0, reason as u8, Relaxed, Relaxed);
            entry.ticket.cancel.cancel();
            closed += 1;
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_by_local_address_and_by_server_with_the_first_reason() {
        let sessions = Sessions::default();
        let vip: SocketAddr = "192.0.2.100:5672".parse().unwrap();
        let host: SocketAddr = "192.0.2.11:5672".parse().unwrap();
        let name: Arc<str> = Arc::from("amqp");
        let on_vip = sessions.register(vip, &name);
        let on_host = sessions.register(host, &name);
        let server = Arc::new(ServerState::new(
            ha_common::config::Server {
                name: "r".into(),
                address: "192.0.2.21:5672".parse().unwrap(),
                weight: 1,
                backup: false,
                maxconn: None,
                check: true,
            },
            crate::health::Health::new(
                ha_common::config::HealthCheck {
                    kind: ha_common::config::CheckKind::Tcp,
                    interval: std::time::Duration::from_secs(1),
                    fastinter: std::time::Duration::from_secs(1),
                    downinter: std::time::Duration::from_secs(1),
                    timeout: std::time::Duration::from_secs(1),
                    rise: 1,
                    fall: 1,
                },
                std::time::Instant::now(),
            ),
        ));
        sessions.set_server(on_host.id, &server);
        assert_eq!(sessions.close_accepted_on(&[vip.ip()], CloseReason::VipLost), 1);
        assert!(on_vip.cancel.is_cancelled() && !on_host.cancel.is_cancelled());
        assert_eq!(on_vip.reason(), Some(CloseReason::VipLost));
        assert_eq!(sessions.close_server(&server, CloseReason::ServerDown), 1);
        assert_eq!(sessions.close_all(CloseReason::Shutdown), 2);
        assert_eq!(on_host.reason(), Some(CloseReason::ServerDown), "the first reason stays");
        sessions.unregister(on_vip.id);
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn fenced_addresses_refuse_until_unfenced() {
        let sessions = Sessions::default();
        let vip: SocketAddr = "192.0.2.100:5672".parse().unwrap();
        let open = sessions.register(vip, &Arc::from("amqp"));
        assert_eq!(sessions.fence(&[vip.ip()], CloseReason::VipLost), 1);
        assert!(open.cancel.is_cancelled());
        assert!(sessions.is_fenced(vip.ip()));
        assert_eq!(sessions.open_on(&[vip.ip()]), 1, "until the session task unregisters");
        sessions.unregister(open.id);
        assert_eq!(sessions.open_on(&[vip.ip()]), 0);
        sessions.unfence(&[vip.ip()]);
        assert!(!sessions.is_fenced(vip.ip()));
    }
}
