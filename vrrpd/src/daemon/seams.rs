//! The balancer's side of the two seams, run on its runtime: VIP claims and releases from the
//! drivers, fencing the broker sessions of a master that fell silent, and servers going UP or
//! DOWN for the timeline.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proxy::balancer::FenceTarget;
use proxy::health::probe::ServerEvent;
use proxy::Balancer;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::stats::events::EventKind;
use crate::stats::StatusBoard;
use crate::vrrp::vip::VipEvent;

/// What fencing runs need besides the balancer.
#[derive(Clone)]
pub struct Fencing {
    pub tasks: TaskTracker,
    pub board: StatusBoard,
    /// This host's name in the reason the broker logs.
    pub whoami: String,
}

/// A fencing run under way, cancelled if this host gives the addresses up again before it ends
/// (the old master came back: what it connects from now on is not to be closed).
struct Run {
    addresses: Vec<IpAddr>,
    cancel: CancellationToken,
    started: Instant,
}

/// A run is over by then (each is bounded by [`proxy::fence::FENCE_DEADLINE`]), and forgotten.
const RUN_REMEMBERED: Duration = Duration::from_secs(2 * proxy::fence::FENCE_DEADLINE.as_secs());

/// The balancer's side of the VIP seam: serves claims, closes the sessions of released
/// addresses and answers once they are gone, and fences silent masters. Runs on the balancer's
/// runtime; nothing here makes a driver wait.
pub async fn serve_vip_events(
    balancer: Arc<Balancer>,
    mut events: mpsc::UnboundedReceiver<VipEvent>,
    fencing: Fencing,
    stop: CancellationToken,
) {
    let mut runs: Vec<Run> = Vec::new();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        runs.retain(|run| !run.cancel.is_cancelled() && run.started.elapsed() < RUN_REMEMBERED);
        match event {
            Some(VipEvent::Claimed(addresses)) => balancer.claim_addresses(&addresses),
            Some(VipEvent::Releasing { addresses, drained }) => {
                for run in runs.iter().filter(|run| run.addresses.iter().any(|a| addresses.contains(a))) {
                    run.cancel.cancel();
                }
                let release = balancer.release_addresses(&addresses);
                let closed = release.closed;
                tokio::spawn(async move {
                    release.drained().await;
                    let _ = drained.send(closed);
                });
            }
            Some(VipEvent::TakenFromSilentMaster { instance, addresses, master }) => {
                let cancel = stop.child_token();
                for proxy in balancer.fencing_proxies(Some(&addresses)) {
                    let run = fence_run(
                        Arc::clone(&balancer),
                        proxy,
                        FenceTarget::SilentPeer(master),
                        instance.clone(),
                        fencing.clone(),
                    );
                    let (cancel, instance) = (cancel.clone(), instance.clone());
                    fencing.tasks.spawn(async move {
                        tokio::select! {
                            () = cancel.cancelled() => info!(%instance, %master, "fencing abandoned: this host gave the VIPs up again"),
                            _ = run => {}
                        }
                    });
                }
                runs.push(Run { addresses, cancel, started: Instant::now() });
            }
            None => return,
        }
    }
}

/// One proxy's fencing run, its outcome on the timeline (the log line is the balancer's).
/// Returns the sentence it recorded.
pub async fn fence_run(
    balancer: Arc<Balancer>,
    proxy: Arc<proxy::server::ProxyState>,
    target: FenceTarget,
    subject: String,
    fencing: Fencing,
) -> Result<String, String> {
    let result = balancer.fence(&proxy, target, &fencing.whoami).await;
    let whose = match target {
        FenceTarget::SilentPeer(peer) if subject == "ctl" => format!("{peer} (by hand)"),
        FenceTarget::SilentPeer(peer) => format!("silent master {peer}"),
        FenceTarget::Leftovers => "this host's previous run".to_owned(),
    };
    let (ok, message) = match result {
        Ok(outcome) => (outcome.failed.is_empty(), format!("proxy {}: {whose}: {}", proxy.config.name, outcome.describe())),
        Err(e) => (false, format!("proxy {}: {whose}: failed: {e}", proxy.config.name)),
    };
    fencing.board.record(EventKind::Fence, subject, message.clone());
    if ok {
        Ok(message)
    } else {
        Err(message)
    }
}

/// Puts servers going UP or DOWN on the timeline.
pub async fn record_server_events(mut events: broadcast::Receiver<ServerEvent>, board: StatusBoard, stop: CancellationToken) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(e) => {
                let closed = if e.closed > 0 { format!("; {} sessions closed", e.closed) } else { String::new() };
                let status = if e.up { "UP" } else { "DOWN" };
                board.record(EventKind::Server, format!("{}/{}", e.proxy, e.server), format!("{status}: {}{closed}", e.detail));
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                board.record(EventKind::Server, "", format!("{missed} server events were not recorded (too many at once)"));
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
