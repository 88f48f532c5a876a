//! The seam between VRRP and the balancer. A driver announces the addresses it claims and the
//! ones it is giving up; whoever serves sessions on them (the daemon wires the balancer here)
//! answers a release once the last session accepted on those addresses is gone. The driver
//! keeps running while it waits: other instances' adverts and timers never wait on sessions.

use std::net::IpAddr;

use tokio::sync::{mpsc, oneshot};

#[derive(Debug)]
pub enum VipEvent {
    /// This host holds these addresses (again): serve sessions accepted on them.
    Claimed(Vec<IpAddr>),
    /// This host is giving these addresses up: refuse new sessions on them, close the open
    /// ones, and send how many were closed on `drained` once the last of them is gone.
    Releasing { addresses: Vec<IpAddr>, drained: oneshot::Sender<usize> },
    /// This host took these addresses over because their master fell silent (its
    /// Master_Down_Timer fired; not a priority-0 handoff): that master may still hold broker
    /// sessions it can no longer close. Fence them; nothing is answered, the driver goes on.
    TakenFromSilentMaster { instance: String, addresses: Vec<IpAddr>, master: IpAddr },
}

/// Where drivers send [`VipEvent`]s. Unbounded, so a driver never waits to send: events come
/// only with state transitions, which the protocol itself paces.
pub type VipEvents = mpsc::UnboundedSender<VipEvent>;
