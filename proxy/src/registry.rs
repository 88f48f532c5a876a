//! Every live session, so that sessions can be closed from outside: those accepted on a VIP
//! when the host leaves MASTER, those of a server marked DOWN, all of them at shutdown.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
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
    /// A rebalance closed it: its server was above its fair share.
    Rebalance,
}

impl CloseReason {
    fn from_u8(value: u8) -> Option<Self> {
        use CloseReason::*;
        [Done, ClientError, ServerError, IdleTimeout, NoServer, QueueTimeout, ServerDown, VipLost, Shutdown, Admin, Rebalance]
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
            CloseReason::Rebalance => "rebalanced",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a session is closed from outside: its cancellation and the reason it was given.
#[derive(Clone)]
struct Closer {
    cancel: CancellationToken,
    reason: Arc<AtomicU8>,
}

impl Closer {
    fn close(&self, reason: CloseReason) {
        // The first reason given wins.
        let _ = self.reason.compare_exchange(0, reason as u8, Relaxed, Relaxed);
        self.cancel.cancel();
    }
}

/// A session's place in the registry, held by its task. Dropping it (the session ended, or its
/// task was cancelled or panicked) removes the entry, and with it the session's part in every
/// pending [`Release`].
pub struct Ticket {
    id: u64,
    closer: Closer,
    sessions: Arc<Sessions>,
}

impl Ticket {
    /// Resolves when the session is closed from outside.
    pub async fn cancelled(&self) {
        self.closer.cancel.cancelled().await;
    }

    /// The reason the session was closed with, if it was.
    pub fn reason(&self) -> Option<CloseReason> {
        CloseReason::from_u8(self.closer.reason.load(Relaxed))
    }

    /// Records the server the session was sent to, so closing that server's sessions finds it.
    pub fn set_server(&self, server: &Arc<ServerState>) {
        if let Some(entry) = self.sessions.lock().get_mut(&self.id) {
            entry.server = Some(Arc::clone(server));
        }
    }

    /// Undoes [`Ticket::set_server`]: the session goes to another server.
    pub fn clear_server(&self) {
        if let Some(entry) = self.sessions.lock().get_mut(&self.id) {
            entry.server = None;
        }
    }

    /// Records this host's end of the connection to the server: what the broker lists as the
    /// connection's peer, so fencing this host's own address keeps its live sessions.
    pub fn set_upstream(&self, local: SocketAddr) {
        if let Some(entry) = self.sessions.lock().get_mut(&self.id) {
            entry.upstream = Some(local);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.sessions.lock().remove(&self.id);
    }
}

/// Sessions closed because their local addresses were given up. [`Release::drained`] resolves
/// once the last of them has dropped its sockets: each holds a sender of one channel, and the
/// receiver wakes when the last sender is gone. Nothing polls.
pub struct Release {
    /// How many sessions were closed.
    pub closed: usize,
    drained: mpsc::Receiver<()>,
}

impl Release {
    /// Resolves when every session closed by this release is gone.
    pub async fn drained(mut self) {
        while self.drained.recv().await.is_some() {}
    }
}

struct Entry {
    local: SocketAddr,
    /// The client's socket, while the session holds it: a release shuts it down at once.
    client: Weak<TcpStream>,
    /// Shared with the proxy's state: one allocation per proxy, not per session.
    proxy: Arc<str>,
    server: Option<Arc<ServerState>>,
    /// This host's end of the server connection, recorded for proxies that fence.
    upstream: Option<SocketAddr>,
    closer: Closer,
    /// Held while a [`Release`] waits for this session to be gone.
    releases: Vec<mpsc::Sender<()>>,
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

    /// Registers a session accepted on `local` by proxy `proxy` from `client`; the entry lives
    /// as long as the returned ticket. `None` when `local` is being given up: the client must
    /// go to the new master. Checked under the same lock a release takes, so a session is
    /// either refused or closed by the release, never missed.
    pub fn register(self: &Arc<Self>, local: SocketAddr, proxy: &Arc<str>, client: Weak<TcpStream>) -> Option<Ticket> {
        let mut entries = self.lock();
        if self.is_fenced(local.ip()) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        let closer = Closer { cancel: CancellationToken::new(), reason: Arc::new(AtomicU8::new(0)) };
        let entry = Entry {
            local,
            client,
            proxy: Arc::clone(proxy),
            server: None,
            upstream: None,
            closer: closer.clone(),
            releases: Vec::new(),
        };
        entries.insert(id, entry);
        Some(Ticket { id, closer, sessions: Arc::clone(self) })
    }

    /// Gives up `addresses`: refuses sessions accepted on them from now on, closes those
    /// already open, and returns what to wait on until they are gone.
    ///
    /// Each client socket is shut down here, not only by its session's task: the FIN must
    /// leave while the address is still this host's (once it is removed the kernel has no
    /// route to send it from, and the client would wait for its own timeout), and a thousand
    /// tasks woken on a loaded host may not all run before the VIP goes. The socket is reached
    /// through a weak reference, so a session that has closed it is skipped, and no descriptor
    /// number reused by another socket is ever touched.
    pub fn release(&self, addresses: &[IpAddr], reason: CloseReason) -> Release {
        let mut entries = self.lock();
        {
            let mut fenced = self.fenced.lock().unwrap_or_else(|p| p.into_inner());
            for address in addresses {
                if !fenced.contains(address) {
                    fenced.push(*address);
                }
            }
        }
        let (signal, drained) = mpsc::channel(1);
        let mut clients = Vec::new();
        let mut closed = 0;
        for entry in entries.values_mut().filter(|e| addresses.contains(&e.local.ip())) {
            entry.closer.close(reason);
            clients.extend(entry.client.upgrade());
            entry.releases.push(signal.clone());
            closed += 1;
        }
        // Outside the lock: a thousand FINs must not hold up sessions starting or ending on
        // other addresses. The addresses are fenced already, and each socket held here stays
        // open (its descriptor not reused) until it is dropped below.
        drop(entries);
        for client in clients {
            let _ = socket2::SockRef::from(&*client).shutdown(std::net::Shutdown::Both);
        }
        Release { closed, drained }
    }

    /// Accepts sessions on `addresses` again.
    pub fn claim(&self, addresses: &[IpAddr]) {
        self.fenced.lock().unwrap_or_else(|p| p.into_inner()).retain(|a| !addresses.contains(a));
    }

    pub fn is_fenced(&self, address: IpAddr) -> bool {
        self.fenced.lock().unwrap_or_else(|p| p.into_inner()).contains(&address)
    }

    /// Closes the sessions sent to `server`.
    pub fn close_server(&self, server: &Arc<ServerState>, reason: CloseReason) -> usize {
        self.close_where(|e| e.server.as_ref().is_some_and(|s| Arc::ptr_eq(s, server)), reason)
    }

    /// Closes up to `n` of the sessions sent to `server` that are not closing already; returns
    /// how many it closed.
    pub fn close_some(&self, server: &Arc<ServerState>, n: usize, reason: CloseReason) -> usize {
        let entries = self.lock();
        let open = entries
            .values()
            .filter(|e| e.server.as_ref().is_some_and(|s| Arc::ptr_eq(s, server)) && !e.closer.cancel.is_cancelled());
        let mut closed = 0;
        for entry in open.take(n) {
            entry.closer.close(reason);
            closed += 1;
        }
        closed
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

    /// This host's ends of its live server connections (those recorded).
    pub fn upstream_locals(&self) -> std::collections::HashSet<SocketAddr> {
        self.lock().values().filter_map(|e| e.upstream).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn close_where(&self, matches: impl Fn(&Entry) -> bool, reason: CloseReason) -> usize {
        let entries = self.lock();
        let mut closed = 0;
        for entry in entries.values().filter(|e| matches(e)) {
            entry.closer.close(reason);
            closed += 1;
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Arc<ServerState> {
        Arc::new(ServerState::new(
            ha_common::config::Server {
                name: "r".into(),
                address: "192.0.2.21:5672".parse().unwrap(),
                weight: 1,
                backup: false,
                maxconn: None,
                check: true,
                check_settings: Default::default(),
                slowstart: std::time::Duration::ZERO,
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
                    ..Default::default()
                },
                std::time::Instant::now(),
            ),
        ))
    }

    #[test]
    fn closes_by_local_address_and_by_server_with_the_first_reason() {
        let sessions = Arc::new(Sessions::default());
        let vip: SocketAddr = "192.0.2.100:5672".parse().unwrap();
        let host: SocketAddr = "192.0.2.11:5672".parse().unwrap();
        let name: Arc<str> = Arc::from("amqp");
        let on_vip = sessions.register(vip, &name, Weak::new()).unwrap();
        let on_host = sessions.register(host, &name, Weak::new()).unwrap();
        let server = server();
        on_host.set_server(&server);
        assert_eq!(sessions.release(&[vip.ip()], CloseReason::VipLost).closed, 1);
        assert!(on_vip.closer.cancel.is_cancelled() && !on_host.closer.cancel.is_cancelled());
        assert_eq!(on_vip.reason(), Some(CloseReason::VipLost));
        assert_eq!(sessions.close_some(&server, 5, CloseReason::Rebalance), 1, "one session on the server");
        assert_eq!(sessions.close_some(&server, 5, CloseReason::Rebalance), 0, "a closing session is not closed twice");
        assert_eq!(sessions.close_server(&server, CloseReason::ServerDown), 1);
        assert_eq!(sessions.close_all(CloseReason::Shutdown), 2);
        assert_eq!(on_host.reason(), Some(CloseReason::Rebalance), "the first reason stays");
        drop(on_vip);
        assert_eq!(sessions.len(), 1, "a dropped ticket leaves the registry");
    }

    #[tokio::test]
    async fn a_release_is_drained_when_its_last_session_is_dropped() {
        let sessions = Arc::new(Sessions::default());
        let vip: SocketAddr = "192.0.2.100:5672".parse().unwrap();
        let name: Arc<str> = Arc::from("amqp");
        let first = sessions.register(vip, &name, Weak::new()).unwrap();
        let second = sessions.register(vip, &name, Weak::new()).unwrap();
        let release = sessions.release(&[vip.ip()], CloseReason::VipLost);
        assert_eq!(release.closed, 2);
        assert!(sessions.is_fenced(vip.ip()));
        let drained = tokio::spawn(release.drained());
        drop(first);
        tokio::task::yield_now().await;
        assert!(!drained.is_finished(), "one session is still open");
        drop(second);
        tokio::time::timeout(std::time::Duration::from_secs(1), drained).await.unwrap().unwrap();
        assert!(sessions.register(vip, &name, Weak::new()).is_none(), "a fenced address refuses new sessions");
        sessions.claim(&[vip.ip()]);
        assert!(!sessions.is_fenced(vip.ip()));
        assert!(sessions.register(vip, &name, Weak::new()).is_some());
    }

    /// The FIN must leave before the VIP goes, whether or not the session's task gets to run:
    /// no task runs here at all.
    #[tokio::test]
    async fn a_release_shuts_its_clients_down_itself_and_never_touches_a_closed_one() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let name: Arc<str> = Arc::from("amqp");
        let sessions = Arc::new(Sessions::default());
        let accept = || async {
            let client = tokio::net::TcpStream::connect(local).await.unwrap();
            (client, Arc::new(listener.accept().await.unwrap().0))
        };
        // A session that closed its socket while its ticket lives on; the next socket opened
        // (the next connection's client end) may well get the same descriptor number, and must
        // not be shut by this release.
        let (_gone_client, gone) = accept().await;
        let gone_ticket = sessions.register(local, &name, Arc::downgrade(&gone)).unwrap();
        drop(gone);
        let (mut other_client, other) = accept().await;
        let (mut client, accepted) = accept().await;
        let ticket = sessions.register(local, &name, Arc::downgrade(&accepted)).unwrap();

        assert_eq!(sessions.release(&[local.ip()], CloseReason::VipLost).closed, 2);
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(2), client.read_to_end(&mut rest)).await;
        assert!(matches!(ended, Ok(Ok(0))), "the client saw its session end with no task running: {ended:?}");
        let mut byte = [0u8; 1];
        let untouched = tokio::time::timeout(std::time::Duration::from_millis(200), other_client.read(&mut byte)).await;
        assert!(untouched.is_err(), "a socket not registered is left alone: {untouched:?}");
        drop((ticket, gone_ticket, other));
    }

    #[tokio::test]
    async fn a_release_with_nothing_open_is_drained_at_once() {
        let sessions = Arc::new(Sessions::default());
        let release = sessions.release(&["192.0.2.100".parse().unwrap()], CloseReason::VipLost);
        assert_eq!(release.closed, 0);
        tokio::time::timeout(std::time::Duration::from_millis(100), release.drained()).await.unwrap();
    }
}
