//! The balancer's side of the two seams, run on its runtime: VIP claims and releases from the
//! drivers, and servers going UP or DOWN for the timeline.

use std::sync::Arc;

use proxy::health::probe::ServerEvent;
use proxy::rebalance::RebalanceEvent;
use proxy::Balancer;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::stats::events::EventKind;
use crate::stats::StatusBoard;
use crate::vrrp::vip::VipEvent;

/// The balancer's side of the VIP seam: serves claims, closes the sessions of released
/// addresses and answers once they are gone. Runs on the balancer's runtime.
pub async fn serve_vip_events(balancer: Arc<Balancer>, mut events: mpsc::UnboundedReceiver<VipEvent>, stop: CancellationToken) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Some(VipEvent::Claimed(addresses)) => balancer.claim_addresses(&addresses),
            Some(VipEvent::Releasing { addresses, drained }) => {
                let release = balancer.release_addresses(&addresses);
                let closed = release.closed;
                tokio::spawn(async move {
                    release.drained().await;
                    let _ = drained.send(closed);
                });
            }
            None => return,
        }
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

/// Puts rebalances starting and ending on the timeline.
pub async fn record_rebalance_events(
    mut events: broadcast::Receiver<RebalanceEvent>,
    board: StatusBoard,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(e) => board.record(EventKind::Rebalance, e.proxy, e.message),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                board.record(EventKind::Rebalance, "", format!("{missed} rebalance events were not recorded"));
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
