//! The seam between VRRP and the balancer. A driver announces the addresses it claims and the
//! ones it is giving up; whoever serves sessions on them (the daemon wires the balancer here)
//! answers a release once the last session accepted on those addresses is gone. The driver
//! keeps running while it waits: other instances' adverts and timers never wait on sessions.

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

#[derive(Debug)]
pub enum VipEvent {
    /// This host holds these addresses (again): serve sessions accepted on them.
    Claimed(Vec<IpAddr>),
    /// This host is giving these addresses up: refuse new sessions on them, close the open
    /// ones (their clients' FINs sent before anything is answered), say so on `taken`, and
    /// send how many were closed on `drained` once the last of them is gone.
    Releasing { addresses: Vec<IpAddr>, taken: oneshot::Sender<()>, drained: oneshot::Sender<usize> },
    /// This host took these addresses over because their master fell silent (its
    /// Master_Down_Timer fired; not a priority-0 handoff): that master may still hold broker
    /// sessions it can no longer close. Fence them; nothing is answered, the driver goes on.
    TakenFromSilentMaster { instance: String, addresses: Vec<IpAddr>, master: IpAddr },
}

/// Where drivers send [`VipEvent`]s. Unbounded, so a driver never waits to send: events come
/// only with state transitions, which the protocol itself paces.
pub type VipEvents = mpsc::UnboundedSender<VipEvent>;

/// How long the balancer's runtime has to take a release (shut the clients of the sessions on
/// those addresses down) before the addresses go anyway. Taken in microseconds normally; this
/// bound is for a runtime stalled by load or a fault.
pub const RELEASE_TAKE_WAIT: Duration = Duration::from_secs(1);
/// How long, once a release is taken, its sessions have to be gone before the addresses go.
pub const RELEASE_DRAIN_WAIT: Duration = Duration::from_millis(200);

/// How far a release got before the driver removes the addresses.
#[derive(Debug, PartialEq, Eq)]
pub enum Released {
    /// No balancer runs on this host: no sessions to close.
    NoBalancer,
    /// The balancer went away (it is stopping) before it answered.
    BalancerGone,
    /// The balancer did not take the release within [`RELEASE_TAKE_WAIT`]: clients of
    /// sessions on these addresses may not have had their FIN.
    NotTaken,
    /// Taken (every client's FIN sent) but sessions were still closing after
    /// [`RELEASE_DRAIN_WAIT`].
    StillClosing,
    /// Every session accepted on the addresses is gone; this many were closed.
    Closed(usize),
}

/// Announces that `addresses` are being given up and waits, boundedly, until the sessions on
/// them are closed: first for the balancer to take the release, whose FINs can only leave
/// while the addresses are still this host's, then for the sessions to be gone. The wait for
/// the sessions starts once the release is taken, so a balancer runtime slow to run its
/// side (a loaded host) does not see the addresses removed under its clients' FINs.
pub async fn release(events: Option<&VipEvents>, addresses: Vec<IpAddr>) -> Released {
    let Some(events) = events else { return Released::NoBalancer };
    let (taken, was_taken) = oneshot::channel();
    let (drained, closed) = oneshot::channel();
    if events.send(VipEvent::Releasing { addresses, taken, drained }).is_err() {
        return Released::BalancerGone;
    }
    match tokio::time::timeout(RELEASE_TAKE_WAIT, was_taken).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Released::BalancerGone,
        Err(_) => return Released::NotTaken,
    }
    match tokio::time::timeout(RELEASE_DRAIN_WAIT, closed).await {
        Ok(Ok(n)) => Released::Closed(n),
        Ok(Err(_)) => Released::BalancerGone,
        Err(_) => Released::StillClosing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// A balancer runtime that takes the release late (a loaded host): the wait for the
    /// sessions starts from the taking, not from the announcement, so the addresses are not
    /// removed before the FINs go.
    #[tokio::test(start_paused = true)]
    async fn the_wait_for_sessions_starts_once_the_balancer_took_the_release() {
        let (events, mut queue) = mpsc::unbounded_channel();
        let started = Instant::now();
        let balancer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let Some(VipEvent::Releasing { taken, drained, .. }) = queue.recv().await else { panic!("a release") };
            taken.send(()).unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            drained.send(3).unwrap();
        });
        let outcome = release(Some(&events), vec!["192.0.2.100".parse().unwrap()]).await;
        assert_eq!(outcome, Released::Closed(3));
        assert_eq!(started.elapsed(), Duration::from_millis(850));
        balancer.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn every_wait_is_bounded_and_says_how_far_it_got() {
        let address: IpAddr = "192.0.2.100".parse().unwrap();
        // Never taken.
        let (events, _queue) = mpsc::unbounded_channel();
        let started = Instant::now();
        assert_eq!(release(Some(&events), vec![address]).await, Released::NotTaken);
        assert_eq!(started.elapsed(), RELEASE_TAKE_WAIT);
        // Taken at once, sessions never gone.
        let (events, mut queue) = mpsc::unbounded_channel();
        let held = tokio::spawn(async move {
            let Some(VipEvent::Releasing { taken, drained, .. }) = queue.recv().await else { panic!("a release") };
            taken.send(()).unwrap();
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(drained);
        });
        let started = Instant::now();
        assert_eq!(release(Some(&events), vec![address]).await, Released::StillClosing);
        assert_eq!(started.elapsed(), RELEASE_DRAIN_WAIT);
        held.abort();
        // No balancer, or one that has stopped.
        assert_eq!(release(None, vec![address]).await, Released::NoBalancer);
        let (events, queue) = mpsc::unbounded_channel();
        drop(queue);
        assert_eq!(release(Some(&events), vec![address]).await, Released::BalancerGone);
    }
}
