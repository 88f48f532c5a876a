//! Accepting clients. The socket binds with IP_FREEBIND, so a listener on the VIP starts before
//! this host holds the VIP (on a BACKUP). `maxconn` permits are taken before `accept`, so
//! clients beyond the limit wait in the kernel's backlog instead of being refused; running out
//! of file descriptors backs off instead of spinning. A session that panics is closed, counted
//! and logged, and the proxy serves on.

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use std::{future, io};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::registry::{Sessions, Ticket};
use crate::server::ProxyState;
use crate::session;

/// The global and the proxy's `maxconn` permits of one session.
type Permits = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

const BACKLOG: i32 = 1024;
const REBIND_PAUSE: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// One warning per this interval about the same trouble.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Binds and listens (blocking-free; call from anywhere). The listener is non-blocking.
pub fn bind(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if address.is_ipv4() {
        socket.set_freebind_v4(true)?;
    } else {
        socket.set_freebind_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Serves one proxy on `address` until `stop` is cancelled: uses `bound` when the caller could
/// bind already, otherwise binds (retrying every second while the address cannot be had),
/// accepts, and spawns a session per client with the proxy's current configuration.
pub async fn serve(
    current: watch::Receiver<Arc<ProxyState>>,
    address: SocketAddr,
    sessions: Arc<Sessions>,
    global: Option<Arc<Semaphore>>,
    bound: Option<std::net::TcpListener>,
    stop: CancellationToken,
) {
    let proxy = Arc::clone(&current.borrow());
    let name = proxy.config.name.clone();
    let shared = Arc::clone(&proxy.shared);
    // However this task ends (stopped by a reload that dropped the bind, or by shutdown), the
    // bind no longer counts as failing.
    let _forget = BindGuard { shared: Arc::clone(&shared), address };
    let mut last_warning: Option<Instant> = None;
    let mut bound = bound;
    let listener = loop {
        match bound.take().map_or_else(|| bind(address), Ok).and_then(TcpListener::from_std) {
            Ok(listener) => break listener,
            Err(e) => {
                if shared.mark_unbound(address) || last_warning.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
                    error!(proxy = %name, bind = %address, error = %e, "cannot listen; retrying every second");
                    last_warning = Some(Instant::now());
                }
                current.borrow().update_availability();
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(REBIND_PAUSE) => {}
                }
            }
        }
    };
    shared.mark_bound(address);
    current.borrow().update_availability();
    info!(proxy = %name, bind = %address, "listening");

    let mut backoff = BACKOFF_MIN;
    loop {
        let proxy = Arc::clone(&current.borrow());
        // The proxy's own limit is taken before accept: beyond it clients wait in the backlog.
        let proxy_permit = tokio::select! {
            () = stop.cancelled() => return,
            permit = acquire(proxy.maxconn.clone()) => permit,
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, peer)) => {
                backoff = BACKOFF_MIN;
                // The global limit spans every proxy, so it is taken after accept: a listener
                // with no client must not hold a place another proxy's client waits for. At
                // the limit each listener holds one accepted client until a place frees; the
                // others wait in its backlog.
                let global_permit = tokio::select! {
                    () = stop.cancelled() => return,
                    permit = acquire(global.clone()) => permit,
                };
                let permits = (global_permit, proxy_permit);
                // Bound to one address, the listener knows where clients arrive: asking the
                // socket (getsockname) is needed only for a wildcard bind.
                let local = if address.ip().is_unspecified() { client.local_addr().unwrap_or(address) } else { address };
                // The configuration of the moment the client arrived (a reload may follow).
                let proxy = Arc::clone(&current.borrow());
                // A VIP being given up: the client must go to the new master.
                let client = Arc::new(client);
                let Some(ticket) = sessions.register(local, &proxy.name, Arc::downgrade(&client)) else {
                    shared.denied.fetch_add(1, Relaxed);
                    continue;
                };
                let accept_proxy = proxy.config.accept_proxy.contains(&address);
                tokio::spawn(supervise(proxy, client, peer, local, accept_proxy, ticket, permits));
            }
            Err(e) if is_resource_exhaustion(&e) => {
                if last_warning.is_none_or(|t| t.elapsed() >= LOG_INTERVAL) {
                    warn!(proxy = %name, error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed: out of resources, backing off");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            // A client that gave up between SYN and accept, and the like: nothing to wait for.
            Err(_) => {}
        }
    }
}

/// Forgets a bind's failure when its listener task ends.
struct BindGuard {
    shared: Arc<crate::server::ProxyShared>,
    address: SocketAddr,
}

impl Drop for BindGuard {
    fn drop(&mut self) {
        self.shared.mark_bound(self.address);
    }
}

/// Runs one session in its own task, holding its permits to the end, and catches a panic in
/// it within that task (no task more per session). The panicked session is dropped before
/// anything else: that closes its sockets and gives back its counts, server slot and queue
/// place, all held by guards. What is left is to count the panic and say so.
async fn supervise(
    proxy: Arc<ProxyState>,
    client: Arc<tokio::net::TcpStream>,
    peer: SocketAddr,
    local: SocketAddr,
    accept_proxy: bool,
    ticket: Ticket,
    permits: Permits,
) {
    let _permits = permits;
    let shared = Arc::clone(&proxy.shared);
    let name = Arc::clone(&proxy.name);
    let outcome = {
        let mut session = pin!(session::run(proxy, client, peer, local, accept_proxy, ticket));
        // A panic ends the session: it is never polled again, and dropped at the end of this block.
        future::poll_fn(|cx| match catch_unwind(AssertUnwindSafe(|| session.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Err(panic) => Poll::Ready(Err(panic)),
        })
        .await
    };
    if let Err(panic) = outcome {
        let panics = shared.panics.fetch_add(1, Relaxed) + 1;
        error!(proxy = %name, client = %peer, %local, panic = panic_message(&*panic), panics, "session panicked: closed it, serving on");
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    match panic.downcast_ref::<&str>() {
        Some(message) => message,
        None => panic.downcast_ref::<String>().map_or("(no message)", String::as_str),
    }
}

async fn acquire(semaphore: Option<Arc<Semaphore>>) -> Option<OwnedSemaphorePermit> {
    // Semaphores are never closed, so acquiring cannot fail.
    match semaphore {
        Some(s) => s.acquire_owned().await.ok(),
        None => None,
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc_errno::EMFILE | libc_errno::ENFILE | libc_errno::ENOBUFS | libc_errno::ENOMEM))
}

/// The errno values of running out of descriptors or memory (Linux).
mod libc_errno {
    pub const ENOMEM: i32 = 12;
    pub const ENFILE: i32 = 23;
    pub const EMFILE: i32 = 24;
    pub const ENOBUFS: i32 = 105;
}
