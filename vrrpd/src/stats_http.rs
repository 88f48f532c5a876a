//! The stats page over HTTP (`[stats] listen`): `/` (HTML, refreshing itself), `/stats.json`,
//! `/stats.csv` (also HAProxy's `/stats;csv`), `/metrics` (Prometheus). Optional basic auth:
//! wrong or missing credentials get 401 and nothing else.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use ha_common::config::Stats;
use proxy::Balancer;
use tracing::{error, info};

use crate::render;
use crate::status::StatusBoard;

struct Context {
    board: StatusBoard,
    balancer: Option<Arc<Balancer>>,
    stats: Stats,
    /// `Basic <base64(user:password)>`, when auth is configured.
    expected_authorization: Option<String>,
}

/// Binds the stats listener now (so a bad address fails the start) and serves it on `runtime`.
pub fn start(
    stats: &Stats,
    board: StatusBoard,
    balancer: Option<Arc<Balancer>>,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(stats.listen)?;
    listener.set_nonblocking(true)?;
    let expected_authorization = stats
        .auth
        .as_ref()
        .map(|a| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", a.user, a.password))));
    let context = Arc::new(Context { board, balancer, stats: stats.clone(), expected_authorization });
    let app = router(context);
    let listen = stats.listen;
    runtime.spawn(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => return error!(%listen, error = %e, "stats listener failed"),
        };
        info!(%listen, "stats page listening");
        if let Err(e) = axum::serve(listener, app).await {
            error!(%listen, error = %e, "stats server stopped");
        }
    });
    Ok(())
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

/// Compares without stopping at the first difference, so timing says nothing of the password.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
