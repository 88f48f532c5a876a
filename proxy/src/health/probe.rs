//! Health checks on the wire: a TCP connect, an AMQP handshake up to the broker's
//! Connection.Start (inside a verified TLS session for `amqps`), or an HTTP GET whose status
//! decides (`http`, `https`: RabbitMQ's management API, on another port than the traffic).
//! With `send_proxy` a check of the traffic port opens with a PROXY header carrying its real
//! addresses (RabbitMQ refuses a LOCAL one).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ha_common::config::{CheckKind, HealthCheck, ProxyProtocol};
use hyper::Method;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::health::amqp::{self, PROTOCOL_HEADER};
use crate::health::{CheckResult, Status};
use crate::http_client::{Call, Endpoint};
use crate::proxy_protocol;
use crate::registry::{CloseReason, Sessions};
use crate::server::{ProxyState, ServerState};
use crate::tls::TlsClient;

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

/// Largest HTTP answer a check reads: RabbitMQ's health answers are a few hundred bytes.
const HTTP_CHECK_BODY_LIMIT: usize = 64 * 1024;

/// One check configuration made ready to run: its TLS setup loaded once (the CA file is read
/// when the settings are applied, not at every check). A CA file that cannot be used fails
/// every check with the reason, which the stats page shows.
#[derive(Debug)]
pub struct Checker {
    check: HealthCheck,
    tls: Result<Option<TlsClient>, String>,
}

impl Checker {
    pub fn new(check: HealthCheck) -> Checker {
        let tls = if check.kind.uses_tls() {
            TlsClient::new(check.tls.ca_file.as_deref()).map(Some).map_err(|e| e.to_string())
        } else {
            Ok(None)
        };
        Checker { check, tls }
    }

    /// [`Checker::new`] on the blocking pool when it reads files (a CA bundle, the system's
    /// roots), so a reload does not stall the runtime's other tasks.
    pub async fn off_the_runtime(check: HealthCheck) -> Checker {
        if !check.kind.uses_tls() {
            return Checker::new(check);
        }
        let kept = check.clone();
        tokio::task::spawn_blocking(move || Checker::new(check))
            .await
            .unwrap_or_else(|_| Checker { check: kept, tls: Err("TLS setup failed unexpectedly".to_owned()) })
    }

    pub fn check(&self) -> &HealthCheck {
        &self.check
    }

    /// Runs one check of the server at `address` (or where `addr`/`port` send it). A PROXY
    /// header goes first when the proxy sends one and the check goes to the server's own
    /// address and port, as in HAProxy (not to a management port).
    pub async fn run(&self, address: SocketAddr, send_proxy: Option<ProxyProtocol>) -> CheckResult {
        let target = self.check.target(address);
        let send_proxy = send_proxy.filter(|_| target == address);
        let started = Instant::now();
        let timeout = self.check.timeout;
        let outcome = tokio::time::timeout(timeout, self.probe(target, send_proxy)).await;
        let duration = started.elapsed();
        match outcome {
            Ok(Ok(detail)) => CheckResult { ok: true, detail, duration },
            Ok(Err(detail)) => CheckResult { ok: false, detail, duration },
            Err(_) => CheckResult { ok: false, detail: format!("no answer within {} ms", timeout.as_millis()), duration },
        }
    }

    async fn probe(&self, target: SocketAddr, send_proxy: Option<ProxyProtocol>) -> Result<String, String> {
        let tls = self.tls.as_ref().map_err(Clone::clone)?;
        if self.check.kind.is_http() {
            return self.http(target, tls.clone()).await;
        }
        let mut stream = TcpStream::connect(target).await.map_err(|e| format!("connect: {e}"))?;
        if let Some(version) = send_proxy {
            let local = stream.local_addr().map_err(|e| format!("local address: {e}"))?;
            stream
                .write_all(&proxy_protocol::header(version, local, target))
                .await
                .map_err(|e| format!("send PROXY header: {e}"))?;
        }
        match (self.check.kind, tls) {
            (CheckKind::Tcp, _) => Ok("connected".to_owned()),
            (CheckKind::Amqps, Some(tls)) => {
                let name = self.server_name(target);
                let stream = tls.connect(stream, &name).await.map_err(|e| format!("TLS handshake: {e}"))?;
                connection_start(stream).await.map(|start| format!("TLS, {start}"))
            }
            _ => connection_start(stream).await,
        }
    }

    /// The name the server's certificate must carry: `sni`, or the address checked.
    fn server_name(&self, target: SocketAddr) -> String {
        self.check.tls.sni.clone().unwrap_or_else(|| target.ip().to_string())
    }

    async fn http(&self, target: SocketAddr, tls: Option<TlsClient>) -> Result<String, String> {
        let Some(http) = &self.check.http else { return Err("no HTTP check settings".to_owned()) };
        let mut endpoint = Endpoint::plain(target.ip().to_string(), target.port(), tls);
        if let Some(sni) = &self.check.tls.sni {
            endpoint = endpoint.with_server_name(sni.clone());
        }
        let basic_auth = http.user.as_deref().zip(http.password.as_ref().map(|p| p.expose()));
        let call = Call {
            method: Method::GET,
            path: &http.path,
            basic_auth,
            headers: &[],
            timeout: self.check.timeout,
            max_body: HTTP_CHECK_BODY_LIMIT,
        };
        // Errors name the endpoint (scheme, address, port), never the credentials.
        let response = endpoint.send(call).await.map_err(|e| e.to_string())?;
        let kind = self.check.kind;
        let healthy = match http.expect_status {
            Some(expected) => response.status == expected,
            None => (200..400).contains(&response.status),
        };
        match (healthy, http.expect_status) {
            (true, _) => Ok(format!("{kind} {}", response.status)),
            (false, Some(expected)) => Err(format!("{kind} {}, expected {expected}", response.status)),
            (false, None) => Err(format!("{kind} {}, expected 2xx or 3xx", response.status)),
        }
    }
}

/// Sends the AMQP protocol header and reads up to the broker's Connection.Start.
async fn connection_start<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> Result<String, String> {
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

/// Runs one check of kind `kind` against `address`, with the proxy's other settings at
/// their defaults (tests and one-off checks).
pub async fn check_once(
    kind: CheckKind,
    address: SocketAddr,
    timeout: Duration,
    send_proxy: Option<ProxyProtocol>,
) -> CheckResult {
    Checker::new(HealthCheck { kind, timeout, ..HealthCheck::default() }).run(address, send_proxy).await
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
        let own = proxy.config.servers.iter().find(|s| s.name == server.name);
        let interval = own.map_or(proxy.config.check.interval, |s| proxy.config.check.for_server(s).interval);
        interval.mul_f64(position as f64 / proxy.servers.len().max(1) as f64)
    };
    tokio::select! {
        () = stop.cancelled() => return,
        () = tokio::time::sleep(first.min(Duration::from_millis(500))) => {}
    }
    let mut checker: Option<Checker> = None;
    loop {
        let proxy = Arc::clone(&current.borrow_and_update());
        let config = &proxy.config;
        let check = match config.servers.iter().find(|s| s.name == server.name) {
            Some(own) => config.check.for_server(own),
            None => config.check.clone(),
        };
        // Built again only when a reload changed this server's check settings.
        let checker = match checker.take() {
            Some(c) if *c.check() == check => checker.insert(c),
            _ => checker.insert(Checker::off_the_runtime(check).await),
        };
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = checker.run(server.address, config.send_proxy) => result,
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
