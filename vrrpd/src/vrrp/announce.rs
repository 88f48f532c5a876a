//! Announcing a new master's VIPs: gratuitous ARPs (IPv4) and unsolicited neighbour
//! advertisements (IPv6), each from the interface the address is on and that interface's MAC,
//! as keepalived sends them. keepalived's `garp_interval` spaces the ARPs leaving one
//! interface, bursts of every instance on it included: one pacer per interface.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ha_common::config::Vip;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::net::arp::{GarpPacer, GarpSender};
use super::net::link::{Interface, Netlink};
use super::net::nd::NaSender;
use super::net::NetError;
use super::placement::{announced, elsewhere, on_own};
use super::port::Port;

/// A driver's pacers: its own interface's, and one for each other interface its instances put
/// VIPs on, kept while that interface (its index and MAC) and the interval stay the same, so
/// bursts that follow each other are spaced too. Each instance's queued bursts are withdrawn
/// when it gives its VIPs up ([`Announcer::withdraw`]).
#[derive(Default)]
pub struct Announcer {
    own: Option<GarpPacer>,
    elsewhere: HashMap<String, (u32, [u8; 6], GarpPacer)>,
    /// Per instance: cancelled to withdraw what its pacers still hold for it.
    instances: HashMap<String, CancellationToken>,
}

impl Announcer {
    /// `instance` no longer holds its VIPs: none of its queued gratuitous ARPs leaves.
    pub fn withdraw(&mut self, instance: &str) {
        if let Some(token) = self.instances.remove(instance) {
            token.cancel();
        }
    }

    fn token(&mut self, instance: &str) -> CancellationToken {
        self.instances.entry(instance.to_owned()).or_default().clone()
    }

    /// Announces `vips` of `instance` `count` times: those on the driver's interface `own`
    /// through `port` (none without one), the others from their own interfaces. A zero
    /// `interval` sends each burst at once.
    #[allow(clippy::too_many_arguments)] // the driver's context, passed in rather than held
    pub async fn announce(
        &mut self,
        netlink: &Netlink,
        own: &str,
        port: Option<&Port>,
        instance: &str,
        vips: &[Vip],
        count: u32,
        interval: Duration,
    ) {
        self.announce_elsewhere(netlink, own, instance, vips, count, interval).await;
        let Some(port) = port else { return };
        let (v4, v6) = split(vips.iter().filter(|v| on_own(v, own) && announced(v)));
        if !v6.is_empty() {
            match port.na.as_ref().map(|na| na.send(&v6, count)) {
                Some(Ok(())) => debug!(%instance, count, "unsolicited neighbour advertisements sent"),
                Some(Err(e)) => warn!(%instance, error = %e, "sending neighbour advertisements failed"),
                None => {
                    warn!(%instance, vips = ?v6, "IPv6 VIPs not announced: no neighbour advertisement socket on this interface")
                }
            }
        }
        if v4.is_empty() {
            return;
        }
        if interval.is_zero() {
            self.own = None;
            match port.garp.send(&v4, count) {
                Ok(()) => debug!(%instance, count, "gratuitous ARP sent"),
                Err(e) => warn!(%instance, error = %e, "sending gratuitous ARP failed"),
            }
            return;
        }
        if !self.own.as_ref().is_some_and(|p| p.interval == interval && p.serves(&port.garp)) {
            self.own = Some(GarpPacer::start(Arc::clone(&port.garp), interval));
        }
        let token = self.token(instance);
        queued(self.own.as_ref().is_some_and(|p| p.send(v4, count, token)), instance, None, count, interval);
    }

    /// The VIPs on other interfaces than `own`, each from its own interface.
    async fn announce_elsewhere(
        &mut self,
        netlink: &Netlink,
        own: &str,
        instance: &str,
        vips: &[Vip],
        count: u32,
        interval: Duration,
    ) {
        for (dev, vips) in elsewhere(vips.iter().filter(|v| announced(v)), own) {
            let interface = match netlink.interface(dev).await {
                Ok(interface) => interface,
                Err(e) => {
                    warn!(%instance, vip_dev = dev, error = %e, "no gratuitous ARP for the VIPs of a missing interface");
                    continue;
                }
            };
            let (v4, v6) = split(vips.into_iter());
            if !v4.is_empty() && interval.is_zero() {
                self.elsewhere.remove(dev);
                let sent = GarpSender::open(&interface)
                    .and_then(|sender| sender.send(&v4, count).map_err(on(dev, "send gratuitous ARP")));
                match sent {
                    Ok(()) => debug!(%instance, vip_dev = dev, count, "gratuitous ARP sent"),
                    Err(e) => warn!(%instance, vip_dev = dev, error = %e, "sending gratuitous ARP failed"),
                }
            } else if !v4.is_empty() {
                let token = self.token(instance);
                match self.paced_elsewhere(&interface, v4, count, interval, token) {
                    Ok(accepted) => queued(accepted, instance, Some(dev), count, interval),
                    Err(e) => warn!(%instance, vip_dev = dev, error = %e, "sending gratuitous ARP failed"),
                }
            }
            if !v6.is_empty() {
                let sent = NaSender::open(&interface)
                    .and_then(|sender| sender.send(&v6, count).map_err(on(dev, "send neighbour advertisements")));
                match sent {
                    Ok(()) => debug!(%instance, vip_dev = dev, count, "unsolicited neighbour advertisements sent"),
                    Err(e) => warn!(%instance, vip_dev = dev, error = %e, "sending neighbour advertisements failed"),
                }
            }
        }
    }

    /// Queues a burst on `interface`'s pacer; false when its queue is full (dropped).
    fn paced_elsewhere(
        &mut self,
        interface: &Interface,
        vips: Vec<Ipv4Addr>,
        count: u32,
        interval: Duration,
        withdrawn: CancellationToken,
    ) -> Result<bool, NetError> {
        let current = self.elsewhere.get(&interface.name).is_some_and(|(index, mac, pacer)| {
            *index == interface.index && *mac == interface.mac && pacer.interval == interval && pacer.running()
        });
        if !current {
            let sender = Arc::new(GarpSender::open(interface)?);
            self.elsewhere.insert(interface.name.clone(), (interface.index, interface.mac, GarpPacer::start(sender, interval)));
        }
        Ok(self.elsewhere.get(&interface.name).is_some_and(|(_, _, pacer)| pacer.send(vips, count, withdrawn)))
    }
}

/// The addresses of `vips`, IPv4 and IPv6 apart.
/// A failed send on `dev` as the error that names it.
fn on<'a>(dev: &'a str, what: &'static str) -> impl FnOnce(std::io::Error) -> NetError + 'a {
    move |source| NetError::Io { interface: dev.to_owned(), what, source }
}

fn split<'a>(vips: impl Iterator<Item = &'a Vip>) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for vip in vips {
        match vip.addr() {
            IpAddr::V4(a) => v4.push(a),
            IpAddr::V6(a) => v6.push(a),
        }
    }
    (v4, v6)
}

fn queued(accepted: bool, instance: &str, vip_dev: Option<&str>, count: u32, interval: Duration) {
    let vip_dev = vip_dev.unwrap_or_default();
    if accepted {
        debug!(%instance, vip_dev, count, ?interval, "gratuitous ARP queued");
    } else {
        warn!(%instance, vip_dev, count, "gratuitous ARP dropped: bursts are queued faster than garp_interval lets them leave");
    }
}
