//! What the stats page and `vrrpd ctl status` show of the balancer: a serialisable snapshot
//! read from the live counters, and the operator's controls over servers.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use serde::Serialize;

use crate::server::{Admin, ProxyState, ServerState};

#[derive(Clone, Debug, Serialize)]
pub struct SessionCounts {
    pub current: u32,
    pub max: u32,
    pub total: u64,
    /// The configured maxconn, if any.
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckSnapshot {
    /// tcp, amqp, amqps, http or https.
    pub kind: String,
    /// Where the check goes: the server's address, or the port and address it names.
    pub target: String,
    /// "UP", "DOWN", "UP, going down 1/3"...
    pub health: String,
    pub last_ok: Option<bool>,
    pub last_detail: Option<String>,
    pub last_duration_ms: Option<u64>,
    pub checks: u64,
    pub failed: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServerSnapshot {
    pub name: String,
    pub address: String,
    /// UP, DOWN, DRAIN or MAINT: the operator's state wins over health.
    pub status: String,
    pub weight: u32,
    pub backup: bool,
    pub checked: bool,
    pub check: CheckSnapshot,
    pub since_last_change_s: u64,
    pub downtime_s: u64,
    pub sessions: SessionCounts,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub failed_connects: u64,
    /// During `slowstart`: the share of its weight the server has reached, in percent
    /// (HAProxy's `throttle`).
    pub throttle_percent: Option<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProxySnapshot {
    pub name: String,
    pub bind: String,
    pub balance: String,
    pub listening: bool,
    pub available: bool,
    pub sessions: SessionCounts,
    pub queue_current: u32,
    pub queue_max: u32,
    pub denied: u64,
    /// Sessions that panicked: each was closed and the proxy served on. Any is a bug to report.
    pub panics: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub servers: Vec<ServerSnapshot>,
    /// Present when the proxy has a `rabbitmq_api`.
    pub fencing: Option<FenceSnapshot>,
    /// The running rebalance: sessions closed so far, the most it closes, its rate.
    pub rebalancing: Option<String>,
    /// Sessions closed by rebalances, all told.
    pub rebalance_closed: u64,
    /// Clients refused for a missing, slow or malformed PROXY header (`accept_proxy`).
    pub bad_proxy_headers: u64,
}

/// Fencing through the management API: runs, connections closed, failures, the last run. No
/// URL or credential: those stay in the configuration.
#[derive(Clone, Debug, Serialize)]
pub struct FenceSnapshot {
    pub runs: u64,
    pub failed_runs: u64,
    pub closed: u64,
    pub close_failures: u64,
    pub last: Option<crate::fence::LastFence>,
}

impl ProxySnapshot {
    pub fn of(proxy: &ProxyState, now: Instant) -> Self {
        ProxySnapshot {
            name: proxy.config.name.clone(),
            bind: proxy
                .config
                .binds
                .iter()
                .map(|b| if proxy.config.accept_proxy.contains(b) { format!("{b} (accept_proxy)") } else { b.to_string() })
                .collect::<Vec<_>>()
                .join(", "),
            balance: proxy.config.balance.to_string(),
            listening: proxy.shared.listening(),
            available: *proxy.shared.available.borrow(),
            sessions: SessionCounts {
                current: proxy.shared.counters.current.load(Relaxed),
                max: proxy.shared.counters.max.load(Relaxed),
                total: proxy.shared.counters.total.load(Relaxed),
                limit: proxy.config.maxconn,
            },
            queue_current: proxy.shared.queued.load(Relaxed),
            queue_max: proxy.shared.queued_max.load(Relaxed),
            denied: proxy.shared.denied.load(Relaxed),
            panics: proxy.shared.panics.load(Relaxed),
            bytes_in: proxy.shared.counters.bytes_in.load(Relaxed),
            bytes_out: proxy.shared.counters.bytes_out.load(Relaxed),
            servers: proxy.servers.iter().map(|s| server_snapshot(proxy, s, now)).collect(),
            fencing: proxy.config.rabbitmq_api.as_ref().map(|_| {
                let f = &proxy.shared.fencing;
                FenceSnapshot {
                    runs: f.runs.load(Relaxed),
                    failed_runs: f.failed_runs.load(Relaxed),
                    closed: f.closed.load(Relaxed),
                    close_failures: f.close_failures.load(Relaxed),
                    last: f.last(),
                }
            }),
            rebalancing: proxy
                .shared
                .rebalance()
                .map(|r| format!("{} of at most {} sessions closed, {}/s", r.closed, r.limit, r.rate)),
            rebalance_closed: proxy.shared.rebalance_closed.load(Relaxed),
            bad_proxy_headers: proxy.shared.bad_proxy_headers.load(Relaxed),
        }
    }
}

fn server_snapshot(proxy: &ProxyState, server: &ServerState, now: Instant) -> ServerSnapshot {
    let health = server.health();
    let last = health.last_result();
    let own = proxy.config.servers.iter().find(|s| s.name == server.name);
    let target = own.map_or(server.address, |own| proxy.config.check.for_server(own).target(server.address));
    let (checks, failed) = health.counts();
    let status = match server.admin() {
        Admin::Maint => "MAINT".to_owned(),
        Admin::Drain => "DRAIN".to_owned(),
        Admin::Ready if server.up.load(Relaxed) => "UP".to_owned(),
        Admin::Ready => "DOWN".to_owned(),
    };
    ServerSnapshot {
        name: server.name.clone(),
        address: server.address.to_string(),
        status,
        weight: server.weight.load(Relaxed),
        backup: server.backup(),
        checked: server.checked(),
        check: CheckSnapshot {
            kind: proxy.config.check.kind.to_string(),
            target: target.to_string(),
            health: if server.checked() { health.describe() } else { "not checked".to_owned() },
            last_ok: last.map(|r| r.ok),
            last_detail: last.map(|r| r.detail.clone()),
            last_duration_ms: last.map(|r| r.duration.as_millis() as u64),
            checks,
            failed,
        },
        since_last_change_s: now.saturating_duration_since(health.last_change()).as_secs(),
        downtime_s: health.downtime(now).as_secs(),
        sessions: SessionCounts {
            current: server.counters.current.load(Relaxed),
            max: server.counters.max.load(Relaxed),
            total: server.counters.total.load(Relaxed),
            limit: server.maxconn(),
        },
        bytes_in: server.counters.bytes_in.load(Relaxed),
        bytes_out: server.counters.bytes_out.load(Relaxed),
        failed_connects: server.failed_connects.load(Relaxed),
        throttle_percent: server.ramp(now).map(|progress| (progress * 100.0) as u32),
    }
}
