//! Health checks on the wire: a TCP connect, or an AMQP handshake up to the broker's
//! Connection.Start. With `send_proxy` the check opens with a PROXY header carrying its real
//! addresses (RabbitMQ refuses a LOCAL one).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ha_common::config::{CheckKind, ProxyProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::health::amqp::{self, PROTOCOL_HEADER};
use crate::health::{CheckResult, Status};
use crate::proxy_protocol;
use crate::registry::{CloseReason, Sessions};
use crate::server::{ProxyState, ServerState};

/// A server changed status (after rise/fall), with the check that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEvent {
    pub proxy: String,
    pub server: String,
    pub up: bool,
    /// What the deciding check saw ("Connection.Start 0-9", "connection refused", ...).
    pub detail: String,
    /// Sessions closed because the server went DOWN.
    pub closed: usize,
}

/// Runs one check against `address`.
pub async fn check_once(
    kind: CheckKind,
    address: SocketAddr,
    timeout: Duration,
    send_proxy: Option<ProxyProtocol>,
) -> CheckResult {
    let started = Instant::now();
    let outcome = tokio::time::timeout(timeout, probe(kind, address, send_proxy)).await;
    let duration = started.elapsed();
    match outcome {
        Ok(Ok(detail)) => CheckResult { ok: true, detail, duration },
        Ok(Err(detail)) => CheckResult { ok: false, detail, duration },
        Err(_) => CheckResult { ok: false, detail: format!("no answer within {} ms", timeout.as_millis()), duration },
    }
}

async fn probe(kind: CheckKind, address: SocketAddr, send_proxy: Option<ProxyProtocol>) -> Result<String, String> {
    let mut stream = TcpStream::connect(address).await.map_err(|e| format!("connect: {e}"))?;
    if let Some(version) = send_proxy {
        let local = stream.local_addr().map_err(|e| format!("local address: {e}"))?;
        stream
            .write_all(&proxy_protocol::header(version, local, address))
            .await
            .map_err(|e| format!("send PROXY header: {e}"))?;
    }
    match kind {
        CheckKind::Tcp => Ok("connected".to_owned()),
        CheckKind::Amqp => {
            stream.write_all(&PROTOCOL_HEADER).await.map_err(|e| format!("send AMQP header: {e}"))?;
            let mut buf = Vec::with_capacity(512);
            loop {
                let mut chunk = [0u8; 512];
                let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err(format!("closed after {} bytes, before Connection.Start", buf.len()));
                }
                buf.extend_from_slice(&chunk[..n]);
                match amqp::parse_connection_start(&buf) {
                    Ok(Some(start)) => return Ok(format!("Connection.Start {}-{}", start.version_major, start.version_minor)),
                    Ok(None) if buf.len() <= amqp::MAX_START_FRAME => continue,
                    Ok(None) => return Err("answer too long".to_owned()),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
}

/// Checks one server until `stop` is cancelled (the server was removed, or is no longer
/// checked): at `inter`, `fastinter` or `downinter` as its health says, with the settings of
/// the proxy's current configuration (a reload applies to the very next wait). Status changes
/// are logged, published, and (with `on_marked_down = shutdown-sessions`) close the server's
/// sessions.
pub async fn run_checks(
    mut current: watch::Receiver<Arc<ProxyState>>,
    server: Arc<ServerState>,
    sessions: Arc<Sessions>,
    events: broadcast::Sender<ServerEvent>,
    stop: CancellationToken,
) {
    // Spread the first checks of a proxy's servers over one interval (at most half a second).
    let first = {
        let proxy = current.borrow();
        let position = proxy.servers.iter().position(|s| Arc::ptr_eq(s, &server)).unwrap_or(0);
        proxy.config.check.interval.mul_f64(position as f64 / proxy.servers.len().max(1) as f64)
    };
    tokio::select! {
        () = stop.cancelled() => return,
        () = tokio::time::sleep(first.min(Duration::from_millis(500))) => {}
    }
    loop {
        let proxy = Arc::clone(&current.borrow_and_update());
        let config = &proxy.config;
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = check_once(config.check.kind, server.address, config.check.timeout, config.send_proxy) => result,
        };
        let detail = result.detail.clone();
        let change = {
            let mut health = server.health();
            // Checks turned off meanwhile: the server counts as UP now, whatever this one says.
            if stop.is_cancelled() || !server.checked() {
                return;
            }
            let now = Instant::now();
            let change = health.record(now, result);
            if let Some(status) = change {
                // Coming back UP: the weight ramps up over `slowstart` before the server counts
                // fully, so leastconn does not hand it every reconnecting client at once.
                if status == Status::Up {
                    server.start_ramp(now);
                }
                server.up.store(status == Status::Up, Relaxed);
            }
            change
        };
        if let Some(status) = change {
            match status {
                Status::Up => info!(proxy = %config.name, server = %server.name, check = %detail, "server is UP"),
                Status::Down => warn!(proxy = %config.name, server = %server.name, check = %detail, "server is DOWN"),
            }
            let mut closed = 0;
            if status == Status::Down && config.shutdown_sessions_on_down {
                closed = sessions.close_server(&server, CloseReason::ServerDown);
                if closed > 0 {
                    info!(proxy = %config.name, server = %server.name, closed, "closed the sessions of a server marked DOWN");
                }
            }
            // Nobody listening is fine: the events are for the timeline, the log has them too.
            let _ = events.send(ServerEvent {
                proxy: config.name.clone(),
                server: server.name.clone(),
                up: status == Status::Up,
                detail,
                closed,
            });
            proxy.update_availability();
            proxy.shared.slot_freed.notify_waiters();
        }
        let checked = Instant::now();
        loop {
            // Read again after a reload: new settings shorten (or lengthen) the current wait.
            let wait = server.health().next_interval().saturating_sub(checked.elapsed());
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => break,
                changed = current.changed() => if changed.is_err() { return },
            }
        }
    }
}
