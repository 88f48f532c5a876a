//! The balancer's side of the two seams, run on its runtime: VIP claims and releases from the
//! drivers, fencing the broker sessions of a master that fell silent, and servers going UP or
//! DOWN for the timeline.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proxy::balancer::FenceTarget;
use proxy::health::probe::ServerEvent;
use proxy::rebalance::RebalanceEvent;
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
            Some(VipEvent::Releasing { addresses, taken, drained }) => {
                for run in runs.iter().filter(|run| run.addresses.iter().any(|a| addresses.contains(a))) {
                    run.cancel.cancel();
                }
                // Every client's FIN is out when this returns.
                let release = balancer.release_addresses(&addresses);
                let _ = taken.send(());
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

#[cfg(test)]
mod tests {
    use super::*;
    use ha_common::config::Config;
    use tokio::sync::oneshot;

    /// A balancer with one fencing proxy on 127.0.0.1, whose management API accepts and never
    /// answers; returns how many connections the API received.
    async fn stalled_fencing() -> (Arc<Balancer>, Arc<std::sync::atomic::AtomicUsize>) {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_port = api.local_addr().unwrap().port();
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&asked);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = api.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(socket);
            }
        });
        let bind_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let text = format!(
            "[[proxy]]\nname = \"amqp\"\nbind = \"127.0.0.1:{bind_port}\"\n\
             rabbitmq_api = {{ urls = [\"http://127.0.0.1:{api_port}\"], user = \"u\", password = \"p\" }}\n\
             [[proxy.server]]\nname = \"r1\"\naddress = \"127.0.0.1:9\"\ncheck = false\n"
        );
        let config = Config::parse(&text, std::path::Path::new("t.toml")).unwrap().config;
        let balancer = Balancer::start(&config.proxies, Some(100), Duration::from_secs(1), &tokio::runtime::Handle::current());
        (balancer, asked)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn giving_the_vips_up_again_abandons_the_fencing_run() {
        let (balancer, asked) = stalled_fencing().await;
        let tasks = TaskTracker::new();
        let board = StatusBoard::new("t");
        let fencing = Fencing { tasks: tasks.clone(), board: board.clone(), whoami: "t".into() };
        let (events, queue) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let serving = tokio::spawn(serve_vip_events(Arc::clone(&balancer), queue, fencing, stop.clone()));
        let vip: IpAddr = "127.0.0.1".parse().unwrap();
        let master: IpAddr = "192.0.2.11".parse().unwrap();
        events.send(VipEvent::TakenFromSilentMaster { instance: "VI_1".into(), addresses: vec![vip], master }).unwrap();
        let started = Instant::now();
        while asked.load(std::sync::atomic::Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1, "the run asked the API");
        // The old master came back: this host gives the VIP up.
        let (taken, was_taken) = oneshot::channel();
        let (drained, closed) = oneshot::channel();
        events.send(VipEvent::Releasing { addresses: vec![vip], taken, drained }).unwrap();
        was_taken.await.unwrap();
        assert_eq!(closed.await.unwrap(), 0);
        tasks.close();
        tokio::time::timeout(Duration::from_secs(1), tasks.wait()).await.expect("the run ended at once, not after its 15 s");
        assert!(board.events(10).iter().all(|e| e.kind != EventKind::Fence), "an abandoned run records no outcome");
        stop.cancel();
        serving.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fencing_run_that_fails_says_why_on_the_timeline() {
        let (balancer, _) = stalled_fencing().await;
        let proxy = balancer.fencing_proxies(None).pop().unwrap();
        let fencing = Fencing { tasks: TaskTracker::new(), board: StatusBoard::new("t"), whoami: "t".into() };
        // This host's own address is refused before any API call.
        let own = fence_run(
            Arc::clone(&balancer),
            Arc::clone(&proxy),
            FenceTarget::SilentPeer("127.0.0.1".parse().unwrap()),
            "ctl".into(),
            fencing.clone(),
        )
        .await;
        let said = own.unwrap_err();
        assert!(said.contains("one of this host's own addresses"), "{said}");
        let events = fencing.board.events(10);
        assert_eq!(events.last().map(|e| e.kind), Some(EventKind::Fence));
        assert!(!events.iter().any(|e| e.message.contains("\"p\"") || e.message.contains("u:p")), "no credential");
    }
}
