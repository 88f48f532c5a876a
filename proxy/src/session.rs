//! One proxied session: choose a server (queueing while all are full), connect with retries
//! and redispatch, send the PROXY header, then copy both ways with half-close until both sides
//! are done, the session idles out, or it is closed from outside. Ends with one log line.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{SockRef, TcpKeepalive};
use std::os::fd::AsRawFd;

use nix::sys::socket::MsgFlags;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tracing::{debug, info};

use crate::proxy_protocol;
use crate::registry::{CloseReason, Ticket};
use crate::select::Choice;
use crate::server::{ProxyState, QueueEntry, ServerSlot, ServerState};

/// Buffer for one read: large enough for throughput; held only while data flows, so an idle
/// AMQP connection costs no buffer at all.
const BUFFER: usize = 64 * 1024;
/// Queued sessions beyond this are refused at once.
const MAX_QUEUE: u32 = 4096;
/// Pause before retrying the same server (no redispatch).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// TCP keepalive on both sides: a vanished peer is noticed within minutes even when AMQP
/// heartbeats are off.
/// Sessions that live this long get TCP keepalive; shorter ones never need it and are spared
/// the system calls.
const KEEPALIVE_AFTER: Duration = Duration::from_secs(1);

pub fn set_keepalive(stream: &TcpStream) {
    let keepalive = TcpKeepalive::new().with_time(Duration::from_secs(60)).with_interval(Duration::from_secs(10)).with_retries(6);
    let _ = SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// Small AMQP frames go out at once (no Nagle delay) in both directions.
fn set_nodelay(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
}

/// Serves a client accepted on `local` (the VIP or a host address). The client's socket is
/// shared with the registry only weakly (a VIP release shuts it down at once); this task holds
/// the one strong reference, so the socket is closed when the session ends.
/// The ticket is the session's registry entry. Once the session has copied, it is dropped
/// last, after the sockets and the guards of its counts, so a release waiting on this session
/// resolves only once both connections are closed and everything it counted is given back; a
/// session refused earlier drops its ticket as it returns (a release has shut its client down
/// already).
pub async fn run(
    proxy: Arc<ProxyState>,
    client: Arc<TcpStream>,
    peer: SocketAddr,
    local: SocketAddr,
    accept_proxy: bool,
    ticket: Ticket,
) {
    let started = Instant::now();
    set_nodelay(&client);
    let _counted = proxy.shared.counters.count_session();
    // On an accept_proxy bind the client's first bytes say who the client really is; `local`
    // stays the address it reached here (VIP fencing goes by it).
    let (peer, destination, early) = if accept_proxy {
        let header = tokio::select! {
            biased;
            () = ticket.cancelled() => Err(HeaderError::Closed(ticket.reason().unwrap_or(CloseReason::Shutdown))),
            header = read_proxy_header(&client) => header,
        };
        match header {
            Ok((decoded, early)) => {
                let (source, destination) = decoded.addresses.unwrap_or((peer, local));
                debug!(proxy = %proxy.config.name, client = %source, via = %peer, "PROXY header accepted");
                (source, destination, early)
            }
            Err(error) => {
                proxy.shared.denied.fetch_add(1, Relaxed);
                // A client shut down by a release reads as an end of stream: not its fault.
                if !matches!(error, HeaderError::Closed(_)) && ticket.reason().is_none() {
                    proxy.shared.bad_proxy_headers.fetch_add(1, Relaxed);
                }
                info!(proxy = %proxy.config.name, client = %peer, %local, reason = %error, "session refused");
                return;
            }
        }
    } else {
        (peer, local, Vec::new())
    };
    let outcome = tokio::select! {
        biased;
        () = ticket.cancelled() => Err(ticket.reason().unwrap_or(CloseReason::Shutdown)),
        // Boxed: the connect phase (selection, retries, queueing) is over once the session runs.
        connected = Box::pin(connect(&proxy, &client, &ticket, peer, destination)) => connected,
    };
    let (slot, upstream, connect_time) = match outcome {
        Ok(connected) => connected,
        Err(reason) => {
            proxy.shared.denied.fetch_add(1, Relaxed);
            info!(proxy = %proxy.config.name, client = %peer, %local, reason = %reason, "session refused");
            return;
        }
    };
    let server = slot.server();
    if proxy.config.rabbitmq_api.is_some() {
        // Before a byte is copied: the broker cannot list the connection before its handshake.
        if let Ok(local) = upstream.local_addr() {
            ticket.set_upstream(local);
        }
    }
    let mut upstream = upstream;
    // What the client sent behind its PROXY header goes first.
    if !early.is_empty() && upstream.write_all(&early).await.is_err() {
        info!(proxy = %proxy.config.name, client = %peer, %local, server = %server.name, reason = %CloseReason::ServerError, "session closed");
        return;
    }
    let in_bytes = AtomicU64::new(0);
    let out_bytes = AtomicU64::new(0);
    let reason = pipe(&client, &upstream, &proxy, server, &ticket, &in_bytes, &out_bytes).await;
    // Free with the sockets: a queued client need not wait for the log line.
    drop((client, upstream));
    drop(slot);
    info!(
        proxy = %proxy.config.name, client = %peer, %local, server = %server.name,
        connect_ms = connect_time.as_millis() as u64, duration_ms = started.elapsed().as_millis() as u64,
        bytes_in = in_bytes.load(Relaxed), bytes_out = out_bytes.load(Relaxed), reason = %reason, "session closed"
    );
}

/// How long a client of an `accept_proxy` bind may take to send its PROXY header. The header
/// comes first and in one piece from any real sender; a client that dribbles it is refused.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a PROXY header was not had.
#[derive(Debug, thiserror::Error)]
enum HeaderError {
    #[error("bad PROXY header: {0}")]
    Invalid(#[from] proxy_protocol::DecodeError),
    #[error("no complete PROXY header within {} s", PROXY_HEADER_TIMEOUT.as_secs())]
    Timeout,
    #[error("client closed before its PROXY header ended")]
    Eof,
    #[error("client error reading its PROXY header: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Closed(CloseReason),
}

/// Reads the client's PROXY header (bounded by [`proxy_protocol::V2_MAX`] bytes and
/// [`PROXY_HEADER_TIMEOUT`]); returns it and the bytes that came behind it.
async fn read_proxy_header(client: &TcpStream) -> Result<(proxy_protocol::Decoded, Vec<u8>), HeaderError> {
    let read = async {
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        loop {
            client.readable().await?;
            let n = match client.try_read(&mut chunk) {
                Ok(0) => return Err(HeaderError::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(decoded) = proxy_protocol::decode(&buf)? {
                let early = buf.split_off(decoded.length);
                return Ok((decoded, early));
            }
            // decode asks for more only below its bounds; this holds whatever it says.
            if buf.len() > proxy_protocol::V2_MAX {
                return Err(proxy_protocol::DecodeError::V2TooLong(buf.len()).into());
            }
        }
    };
    tokio::time::timeout(PROXY_HEADER_TIMEOUT, read).await.unwrap_or(Err(HeaderError::Timeout))
}

/// Chooses and connects a server, holding a place on it from the choice on. Each failed
/// attempt excludes the server it tried when `redispatch` is on, so the client is refused only
/// when no UP server accepts; without it the same server is tried again, its place kept.
/// A connect that completes after its server was withdrawn (DOWN with
/// `shutdown_sessions_on_down`, maintenance, removed) is dropped before a byte is passed and
/// the client goes to another server, as it would have had it come a moment later; that does
/// not use up a retry, and happens at most once per server, so a flapping server cannot hold
/// a client. (A withdrawal in the instant between registering and asking closes the session
/// instead, as it closes every session on that server.)
async fn connect<'p>(
    proxy: &'p ProxyState,
    client: &TcpStream,
    ticket: &Ticket,
    peer: SocketAddr,
    destination: SocketAddr,
) -> Result<(ServerSlot<'p>, TcpStream, Duration), CloseReason> {
    let config = &proxy.config;
    let started = Instant::now();
    let mut failed: Vec<usize> = Vec::new();
    let mut kept: Option<(usize, ServerSlot<'p>)> = None;
    let mut withdrawn_skips = 0;
    let mut attempt = 0;
    while attempt <= config.retries {
        let (index, slot) = match kept.take() {
            Some(kept) => {
                tokio::time::sleep(RETRY_PAUSE).await;
                kept
            }
            None => wait_for_server(proxy, &failed, started).await?,
        };
        let server = slot.server();
        match connect_server(server.address, config.timeout_connect).await {
            Ok(mut upstream) => {
                // Registered on the server first, then asked: a withdrawal either sees this
                // session and closes it, or happened before and is seen here.
                ticket.set_server(server);
                if let Some(reason) = server.withdrawn(config.shutdown_sessions_on_down) {
                    ticket.clear_server();
                    drop(upstream);
                    debug!(proxy = %config.name, server = %server.name, attempt, %reason, "connected to a withdrawn server: choosing again");
                    failed.push(index);
                    if failed.len() >= proxy.servers.len() {
                        failed.clear();
                    }
                    withdrawn_skips += 1;
                    if withdrawn_skips > proxy.servers.len() {
                        attempt += 1;
                    }
                    continue;
                }
                set_nodelay(&upstream);
                if let Some(version) = config.send_proxy {
                    let header = proxy_protocol::header(version, peer, destination);
                    upstream.write_all(&header).await.map_err(|_| CloseReason::ServerError)?;
                }
                return Ok((slot, upstream, started.elapsed()));
            }
            Err(e) => {
                server.failed_connects.fetch_add(1, Relaxed);
                debug!(proxy = %config.name, server = %server.name, attempt, error = %e, "connect failed");
                failed.push(index);
                // Every server failed once: start over rather than give up while retries remain.
                if failed.len() >= proxy.servers.len() {
                    failed.clear();
                }
                if !config.redispatch {
                    kept = Some((index, slot));
                }
            }
        }
        if client.peer_addr().is_err() {
            return Err(CloseReason::ClientError);
        }
        attempt += 1;
    }
    Err(CloseReason::NoServer)
}

/// Takes a place on a server, waiting in the queue (up to `timeout_queue`) while all usable
/// ones are full.
async fn wait_for_server<'p>(
    proxy: &'p ProxyState,
    exclude: &[usize],
    since: Instant,
) -> Result<(usize, ServerSlot<'p>), CloseReason> {
    let deadline = since + proxy.config.timeout_queue;
    let mut queued: Option<QueueEntry<'p>> = None;
    loop {
        // Asked for before looking, so a place freed meanwhile still wakes this session.
        let freed = proxy.shared.slot_freed.notified();
        let candidates = proxy.candidates();
        let choice = match proxy.selector.choose(&candidates, exclude) {
            // Everything else was excluded by failures: try them again.
            Choice::Unavailable if !exclude.is_empty() => proxy.selector.choose(&candidates, &[]),
            choice => choice,
        };
        match choice {
            Choice::Unavailable => return Err(CloseReason::NoServer),
            Choice::Server(i) => {
                if let Some(slot) = ServerSlot::take(&proxy.servers[i], &proxy.shared) {
                    return Ok((i, slot));
                }
                // Another session took the last place first: wait for the next one.
            }
            Choice::Full => {}
        }
        if queued.is_none() {
            let entry = proxy.shared.join_queue();
            if entry.depth() > MAX_QUEUE {
                return Err(CloseReason::QueueTimeout);
            }
            queued = Some(entry);
        }
        if tokio::time::timeout_at(deadline.into(), freed).await.is_err() {
            return Err(CloseReason::QueueTimeout);
        }
    }
}

async fn connect_server(address: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    match tokio::time::timeout(timeout, socket.connect(address)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {} ms", timeout.as_millis()))),
    }
}

/// Copies both ways until both directions end, the idle timeout passes, a socket fails, or the
/// ticket is cancelled. A direction that reaches EOF shuts down the other side's write half and
/// the other direction carries on (half-close).
async fn pipe(
    client: &TcpStream,
    server: &TcpStream,
    proxy: &ProxyState,
    state: &ServerState,
    ticket: &Ticket,
    in_bytes: &AtomicU64,
    out_bytes: &AtomicU64,
) -> CloseReason {
    let origin = Instant::now();
    let activity = AtomicU64::new(0);
    // Directions that have seen their end of stream (see `copy`).
    let ended = AtomicU8::new(0);
    let upstream =
        copy(client, server, [&state.counters.bytes_in, &proxy.shared.counters.bytes_in, in_bytes], &activity, origin, &ended);
    let downstream =
        copy(server, client, [&state.counters.bytes_out, &proxy.shared.counters.bytes_out, out_bytes], &activity, origin, &ended);
    let idle = proxy.config.timeout_idle;
    // One timer per session: it first turns TCP keepalive on (both sides, once the session has
    // lived KEEPALIVE_AFTER, so a vanished peer is noticed within minutes even when AMQP
    // heartbeats are off), then watches for the idle timeout.
    let timer = async {
        let keepalive_at = origin + KEEPALIVE_AFTER;
        let mut keepalive_on = false;
        loop {
            let idle_at = origin + Duration::from_millis(activity.load(Relaxed)) + idle;
            let wake = if keepalive_on { idle_at } else { idle_at.min(keepalive_at) };
            tokio::time::sleep_until(wake.into()).await;
            let now = Instant::now();
            if !keepalive_on && now >= keepalive_at {
                keepalive_on = true;
                set_keepalive(client);
                set_keepalive(server);
            }
            if now >= origin + Duration::from_millis(activity.load(Relaxed)) + idle {
                return;
            }
        }
    };
    tokio::pin!(upstream, downstream, timer);
    // A session closed from outside says why, even when that also broke or ended a direction
    // (a VIP release shuts the client socket down, possibly between two polls of this loop).
    let because = |reason: CloseReason| ticket.reason().unwrap_or(reason);
    let (mut upstream_done, mut downstream_done) = (false, false);
    while !(upstream_done && downstream_done) {
        tokio::select! {
            biased;
            () = ticket.cancelled() => return because(CloseReason::Shutdown),
            result = &mut upstream, if !upstream_done => match result {
                Ok(()) => upstream_done = true,
                Err(Side::Read) => return because(CloseReason::ClientError),
                Err(Side::Write) => return because(CloseReason::ServerError),
            },
            result = &mut downstream, if !downstream_done => match result {
                Ok(()) => downstream_done = true,
                Err(Side::Read) => return because(CloseReason::ServerError),
                Err(Side::Write) => return because(CloseReason::ClientError),
            },
            () = &mut timer => return CloseReason::IdleTimeout,
        }
    }
    because(CloseReason::Done)
}

/// One read, as HAProxy does it: a read shorter than the buffer emptied the socket, so the
/// socket is marked not ready at once instead of by a second read that only returns EAGAIN
/// (one system call per message and direction). Safe with tokio's edge-triggered readiness:
/// data arriving later raises a new edge, and an end of stream sets READ_CLOSED, which a
/// cleared readiness keeps.
fn read_drained(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    let outcome = stream.try_io(Interest::READABLE, || {
        got = nix::sys::socket::recv(stream.as_raw_fd(), buf, MsgFlags::empty()).map_err(io::Error::from)?;
        if got > 0 && got < buf.len() {
            // Hand the bytes over, and let tokio clear the readiness.
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(got)
        }
    });
    match outcome {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

/// Which socket of a direction failed: its reading side or its writing side.
enum Side {
    Read,
    Write,
}

/// One direction. A buffer is taken from the thread's pool when data arrives and given back as
/// soon as the socket has nothing more to read, so a mostly idle AMQP connection holds no
/// buffer between its heartbeats, and a busy one does not pay an allocation per message. When
/// a read fills the whole buffer the flow is bulk: the bytes then go socket to pipe to socket
/// with splice(2), never through user space, until the flow pauses.
///
/// At its end of stream a direction passes the FIN on. The first direction to end shuts its
/// write side down (half-close: the other direction goes on); the second ends the session,
/// whose sockets are then closed, and close(2) sends that FIN: a shutdown(2) before it would
/// be one more system call per connection for nothing (HAProxy makes one shutdown, not two).
async fn copy(
    from: &TcpStream,
    to: &TcpStream,
    counters: [&AtomicU64; 3],
    activity: &AtomicU64,
    origin: Instant,
    ended: &AtomicU8,
) -> Result<(), Side> {
    let end = || {
        if ended.fetch_add(1, Relaxed) == 0 {
            let _ = SockRef::from(to).shutdown(std::net::Shutdown::Write);
        }
    };
    let count = |n: usize| {
        for counter in counters {
            counter.fetch_add(n as u64, Relaxed);
        }
        activity.store(origin.elapsed().as_millis() as u64, Relaxed);
    };
    loop {
        from.readable().await.map_err(|_| Side::Read)?;
        let mut buf = buffers::take();
        let n = match read_drained(from, &mut buf) {
            Ok(0) => {
                buffers::give(buf);
                end();
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                buffers::give(buf);
                continue;
            }
            Err(_) => return Err(Side::Read),
        };
        let written = write_all(to, &buf[..n]).await;
        let bulk = n == buf.len();
        buffers::give(buf);
        written.map_err(|_| Side::Write)?;
        count(n);
        if bulk {
            if let Some(pipe) = splice::Pipe::new() {
                // Boxed: only bulk flows pay for this state, not every idle session.
                match Box::pin(pipe.run(from, to, &count)).await? {
                    splice::Ended::Eof => {
                        end();
                        return Ok(());
                    }
                    splice::Ended::Paused => {}
                }
            }
        }
    }
}

/// Writes all of `buf`, waiting while the socket's send buffer is full.
async fn write_all(to: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        to.writable().await?;
        match to.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Kernel-side copying for bulk flows (Linux splice through a pipe).
mod splice {
    use std::io;
    use std::os::fd::OwnedFd;

    use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
    use tokio::io::Interest;
    use tokio::net::TcpStream;

    use super::Side;

    /// Bytes moved per splice call, and the pipe's capacity.
    const CHUNK: usize = 1 << 20;

    pub enum Ended {
        /// The sender closed its side.
        Eof,
        /// Nothing more to read for now: back to buffered copying (and no pipe held).
        Paused,
    }

    pub struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
    }

    impl Pipe {
        /// A non-blocking pipe, as large as the system lets it be (up to 1 MiB); `None` when
        /// the system has no descriptor to spare, in which case buffered copying goes on.
        pub fn new() -> Option<Pipe> {
            let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).ok()?;
            let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
            Some(Pipe { read, write })
        }

        /// Moves bytes from `from` to `to` until the source pauses or ends.
        pub async fn run(&self, source: &TcpStream, sink: &TcpStream, count: &impl Fn(usize)) -> Result<Ended, Side> {
            let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
            loop {
                let moved = source.try_io(Interest::READABLE, || {
                    splice(source, None, &self.write, None, CHUNK, flags).map_err(io::Error::from)
                });
                let mut pending = match moved {
                    Ok(0) => return Ok(Ended::Eof),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Ended::Paused),
                    Err(_) => return Err(Side::Read),
                };
                while pending > 0 {
                    sink.writable().await.map_err(|_| Side::Write)?;
                    let sent = sink.try_io(Interest::WRITABLE, || {
                        splice(&self.read, None, sink, None, pending, flags).map_err(io::Error::from)
                    });
                    match sent {
                        Ok(n) => {
                            pending -= n;
                            count(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return Err(Side::Write),
                    }
                }
            }
        }
    }
}

/// Copy buffers, pooled per worker thread: taken for one read and write, then given back.
mod buffers {
    use std::cell::RefCell;

    use super::BUFFER;

    /// At most this many idle buffers stay pooled per thread (2 MiB).
    const POOLED: usize = 32;

    thread_local! {
        static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    pub fn take() -> Vec<u8> {
        POOL.with(|pool| pool.borrow_mut().pop()).unwrap_or_else(|| vec![0; BUFFER])
    }

    pub fn give(buffer: Vec<u8>) {
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < POOLED {
                pool.push(buffer);
            }
        });
    }
}
