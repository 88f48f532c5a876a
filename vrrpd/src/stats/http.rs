//! The stats page over HTTP (`[stats] listen`): `/` (HTML, refreshing itself), `/stats.json`,
//! `/stats.csv` (also HAProxy's `/stats;csv`), `/metrics` (Prometheus). Optional basic auth:
//! wrong or missing credentials get 401 and nothing else.
//!
//! It shares the process's descriptors with the balancer, so it holds few and lets no client
//! keep one: at most [`MAX_CONNECTIONS`] at once (a new one evicts the one that has gone
//! longest without a request), [`HEADER_TIMEOUT`] to send a request header of at most
//! [`MAX_HEADER_BYTES`], [`IDLE_TIMEOUT`] between requests on a kept-alive connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use ha_common::config::Stats;
use hyper_util::rt::{TokioIo, TokioTimer};
use proxy::Balancer;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tower_service::Service;
use tracing::{error, info, warn};

use super::render;
use super::StatusBoard;

struct Context {
    board: StatusBoard,
    balancer: Option<Arc<Balancer>>,
    stats: Stats,
    /// `Basic <base64(user:password)>`, when auth is configured.
    expected_authorization: Option<String>,
}

/// At most this many connections at once.
pub const MAX_CONNECTIONS: usize = 64;
/// A client gets this long to send a request's header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection without a request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request header read (hyper's smallest buffer is 8 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Binds the stats listener now (so a bad address fails the start) and returns the server, to
/// be spawned on the balancer's runtime; it stops with `stop`.
pub fn start(
    stats: &Stats,
    board: StatusBoard,
    balancer: Option<Arc<Balancer>>,
    stop: CancellationToken,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    let listener = std::net::TcpListener::bind(stats.listen)?;
    listener.set_nonblocking(true)?;
    let expected_authorization = stats
        .auth
        .as_ref()
        .map(|a| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.user, a.password))));
    let context = Arc::new(Context { board, balancer, stats: stats.clone(), expected_authorization });
    let app = router(context);
    let listen = stats.listen;
    Ok(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => return error!(%listen, error = %e, "stats listener failed"),
        };
        info!(%listen, "stats page listening");
        let connections = Arc::new(Connections::default());
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let slot = connections.admit(&stop);
                    tokio::spawn(serve_connection(stream, app.clone(), slot));
                }
                Err(e) => {
                    warn!(%listen, error = %e, "stats page: accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    })
}

/// One connection: HTTP/1.1 with the header timeout and size cap, closed when idle, evicted,
/// or when the server stops.
async fn serve_connection(stream: tokio::net::TcpStream, app: Router, slot: Slot) {
    let last_request = Arc::clone(&slot.last_request);
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        last_request.store(slot_clock(), Relaxed);
        let mut app = app.clone();
        async move { app.call(request.map(Body::new)).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(MAX_HEADER_BYTES);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let idle = async {
        loop {
            let since = Duration::from_millis(slot_clock().saturating_sub(slot.last_request.load(Relaxed)));
            if since >= IDLE_TIMEOUT {
                return;
            }
            tokio::time::sleep(IDLE_TIMEOUT - since).await;
        }
    };
    tokio::select! {
        _ = connection => {}
        () = slot.close.cancelled() => {}
        () = idle => {}
    }
}

/// Milliseconds on a process-wide monotonic clock, for timestamps kept in atomics.
fn slot_clock() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The open connections: when full, admitting one more closes the one that has gone longest
/// without a request (a slow or silent client, never one being answered).
#[derive(Default)]
struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (Arc<AtomicU64>, CancellationToken)>>,
}

/// A connection's place; dropping it frees the place.
struct Slot {
    id: u64,
    last_request: Arc<AtomicU64>,
    close: CancellationToken,
    connections: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Arc<AtomicU64>, CancellationToken)>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn admit(self: &Arc<Self>, stop: &CancellationToken) -> Slot {
        let id = self.next.fetch_add(1, Relaxed);
        let last_request = Arc::new(AtomicU64::new(slot_clock()));
        let close = stop.child_token();
        let mut open = self.lock();
        if open.len() >= MAX_CONNECTIONS {
            let stalest = open.iter().min_by_key(|(_, (last, _))| last.load(Relaxed)).map(|(id, _)| *id);
            if let Some((_, evicted)) = stalest.and_then(|id| open.remove(&id)) {
                evicted.cancel();
            }
        }
        open.insert(id, (Arc::clone(&last_request), close.clone()));
        Slot { id, last_request, close, connections: Arc::clone(self) }
    }
}

fn router(context: Arc<Context>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/stats", get(page))
        .route("/stats.json", get(json))
        .route("/stats.csv", get(csv))
        .route("/stats;csv", get(csv))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(Arc::clone(&context), authenticate))
        .with_state(context)
}

async fn authenticate(State(context): State<Arc<Context>>, request: Request, next: Next) -> Response {
    let Some(expected) = &context.expected_authorization else { return next.run(request).await };
    let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        next.run(request).await
    } else {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"vrrpd\""));
        response
    }
}

/// Compares without stopping at the first difference, so timing says nothing of the password,
/// nor of its length: the digests compared always have the same length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

fn typed(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn page(State(context): State<Arc<Context>>) -> Response {
    let snapshot = context.board.snapshot(context.balancer.as_deref());
    typed("text/html; charset=utf-8", render::html(&snapshot, context.stats.refresh))
}

async fn json(State(context): State<Arc<Context>>) -> Response {
    let snapshot = context.board.snapshot(context.balancer.as_deref());
    match serde_json::to_string_pretty(&snapshot) {
        Ok(body) => typed("application/json", body),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn csv(State(context): State<Arc<Context>>) -> Response {
    let snapshot = context.board.snapshot(context.balancer.as_deref());
    typed("text/csv; charset=utf-8", render::csv(&snapshot))
}

async fn metrics(State(context): State<Arc<Context>>) -> Response {
    let snapshot = context.board.snapshot(context.balancer.as_deref());
    typed("text/plain; version=0.0.4; charset=utf-8", render::prometheus(&snapshot))
}
