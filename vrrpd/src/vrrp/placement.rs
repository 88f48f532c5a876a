//! Where each VIP goes: its `dev` (keepalived's word; by default the instance's interface),
//! with its label and scope. A VIP on another interface than its driver's is added, announced
//! (gratuitous ARP, unsolicited NA, from that interface's MAC, as keepalived does) and removed
//! there; that interface is looked up when needed, as it may come and go.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ha_common::config::{IpPrefix, Vip};
use tracing::{debug, info, warn};

use super::net::arp::{GarpPacer, GarpSender};
use super::net::link::{Interface, Netlink};
use super::net::nd::NaSender;
use super::net::NetError;

/// Whether `vip` goes on the driver's own interface `own`.
pub fn on_own(vip: &Vip, own: &str) -> bool {
    vip.dev.as_deref().is_none_or(|dev| dev == own)
}

/// Whether neighbours must hear that this host now holds `vip`: not when the address is of
/// host scope (or nowhere) or sits on the loopback, which no neighbour reaches.
pub fn announced(vip: &Vip) -> bool {
    vip.scope < Vip::SCOPE_HOST && vip.dev.as_deref() != Some("lo")
}

/// The same address on the same interface (label and scope aside).
pub fn same_place(a: &Vip, b: &Vip, own: &str) -> bool {
    a.prefix.addr == b.prefix.addr && a.dev_or(own) == b.dev_or(own)
}

/// The interface `vip` goes on: the driver's own (`port`, when it has one), or another one,
/// looked up now.
pub async fn interface_for(netlink: &Netlink, own: &str, port: Option<&Interface>, vip: &Vip) -> Result<Interface, NetError> {
    match (on_own(vip, own), port) {
        (true, Some(port)) => Ok(port.clone()),
        (true, None) => Err(NetError::NoInterface(own.to_owned())),
        (false, _) => netlink.interface(vip.dev_or(own)).await,
    }
}

/// The VIPs that go on other interfaces than `own`, by interface.
pub fn elsewhere<'a>(vips: impl IntoIterator<Item = &'a Vip>, own: &str) -> BTreeMap<&'a str, Vec<&'a Vip>> {
    let mut by_dev: BTreeMap<&str, Vec<&Vip>> = BTreeMap::new();
    for vip in vips {
        if let Some(dev) = vip.dev.as_deref().filter(|dev| *dev != own) {
            by_dev.entry(dev).or_default().push(vip);
        }
    }
    by_dev
}

/// What a crashed run may have left on other interfaces: exactly the configured (address,
/// dev) pairs that are present now, whatever their label (keepalived's start does the same).
/// Nothing else on those interfaces is touched: another driver's VIPs or the host's own
/// addresses may be there.
pub async fn remove_stale_elsewhere(netlink: &Netlink, own: &str, vips: &[Vip]) {
    for (dev, vips) in elsewhere(vips, own) {
        let interface = match netlink.interface(dev).await {
            Ok(interface) => interface,
            Err(e) => {
                debug!(interface = %own, vip_dev = dev, error = %e, "no VIP left to look for: the interface is missing");
                continue;
            }
        };
        let prefixes: Vec<IpPrefix> = vips.iter().map(|v| v.prefix).collect();
        match netlink.remove_stale_vips(&interface, &prefixes, None).await {
            Ok(removed) => removed
                .iter()
                .for_each(|vip| info!(interface = %own, vip_dev = dev, %vip, "removed a VIP left by an earlier run")),
            Err(e) => warn!(interface = %own, vip_dev = dev, error = %e, "could not look for VIPs an earlier run left"),
        }
    }
}

/// keepalived's `garp_interval` for the VIPs on other interfaces: one pacer per interface,
/// kept while that interface (its index and MAC) and the interval stay the same, so bursts
/// that follow each other are spaced too.
#[derive(Default)]
pub struct ElsewherePacers(HashMap<String, (u32, [u8; 6], GarpPacer)>);

impl ElsewherePacers {
    /// Queues a burst on `interface`'s pacer; false when its queue is full (dropped).
    fn send(&mut self, interface: &Interface, vips: Vec<Ipv4Addr>, count: u32, interval: Duration) -> Result<bool, NetError> {
        let current = self.0.get(&interface.name).is_some_and(|(index, mac, pacer)| {
            *index == interface.index && *mac == interface.mac && pacer.interval == interval && pacer.running()
        });
        if !current {
            let sender = Arc::new(GarpSender::open(interface)?);
            self.0.insert(interface.name.clone(), (interface.index, interface.mac, GarpPacer::start(sender, interval)));
        }
        Ok(self.0.get(&interface.name).is_some_and(|(_, _, pacer)| pacer.send(vips, count)))
    }
}

/// Gratuitous ARPs and unsolicited NAs for the VIPs on other interfaces than `own`, each from
/// its own interface (keepalived sends them where the address is). The ARPs are spaced by
/// `garp_interval` (zero: a burst leaves at once) per interface, as the instance interface's
/// own are.
pub async fn announce_elsewhere(
    netlink: &Netlink,
    own: &str,
    instance: &str,
    vips: &[Vip],
    count: u32,
    garp_interval: Duration,
    pacers: &mut ElsewherePacers,
) {
    for (dev, vips) in elsewhere(vips.iter().filter(|v| announced(v)), own) {
        let interface = match netlink.interface(dev).await {
            Ok(interface) => interface,
            Err(e) => {
                warn!(%instance, vip_dev = dev, error = %e, "no gratuitous ARP for the VIPs of a missing interface");
                continue;
            }
        };
        let v4: Vec<Ipv4Addr> = vips.iter().filter_map(|v| if let IpAddr::V4(a) = v.addr() { Some(a) } else { None }).collect();
        let v6: Vec<Ipv6Addr> = vips.iter().filter_map(|v| if let IpAddr::V6(a) = v.addr() { Some(a) } else { None }).collect();
        if !v4.is_empty() && garp_interval.is_zero() {
            pacers.0.remove(dev);
            match GarpSender::open(&interface).and_then(|sender| {
                sender.send(&v4, count).map_err(|source| NetError::Io {
                    interface: dev.to_owned(),
                    what: "send gratuitous ARP",
                    source,
                })
            }) {
                Ok(()) => debug!(%instance, vip_dev = dev, count, "gratuitous ARP sent"),
                Err(e) => warn!(%instance, vip_dev = dev, error = %e, "sending gratuitous ARP failed"),
            }
        } else if !v4.is_empty() {
            match pacers.send(&interface, v4, count, garp_interval) {
                Ok(true) => debug!(%instance, vip_dev = dev, count, interval = ?garp_interval, "gratuitous ARP queued"),
                Ok(false) => {
                    warn!(%instance, vip_dev = dev, count, "gratuitous ARP dropped: bursts are queued faster than garp_interval lets them leave")
                }
                Err(e) => warn!(%instance, vip_dev = dev, error = %e, "sending gratuitous ARP failed"),
            }
        }
        if !v6.is_empty() {
            match NaSender::open(&interface).and_then(|sender| {
                sender.send(&v6, count).map_err(|source| NetError::Io {
                    interface: dev.to_owned(),
                    what: "send neighbour advertisements",
                    source,
                })
            }) {
                Ok(()) => debug!(%instance, vip_dev = dev, count, "unsolicited neighbour advertisements sent"),
                Err(e) => warn!(%instance, vip_dev = dev, error = %e, "sending neighbour advertisements failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(last: u8, dev: Option<&str>, scope: u8) -> Vip {
        Vip {
            prefix: IpPrefix { addr: Ipv4Addr::new(192, 0, 2, last).into(), len: 24 },
            dev: dev.map(str::to_owned),
            label: None,
            scope,
        }
    }

    #[test]
    fn vips_on_other_interfaces_are_grouped_by_interface() {
        let vips = [vip(100, None, 0), vip(101, Some("eth1"), 0), vip(102, Some("eth0"), 0), vip(103, Some("eth1"), 0)];
        let by_dev = elsewhere(&vips, "eth0");
        assert_eq!(by_dev.keys().copied().collect::<Vec<_>>(), ["eth1"]);
        assert_eq!(by_dev["eth1"].iter().map(|v| v.prefix.addr.to_string()).collect::<Vec<_>>(), ["192.0.2.101", "192.0.2.103"]);
        assert!(on_own(&vips[0], "eth0") && on_own(&vips[2], "eth0") && !on_own(&vips[1], "eth0"));
    }

    #[test]
    fn host_scope_and_loopback_vips_are_not_announced() {
        assert!(announced(&vip(100, None, 0)));
        assert!(announced(&vip(100, Some("eth1"), 200)));
        assert!(!announced(&vip(100, Some("eth1"), Vip::SCOPE_HOST)));
        assert!(!announced(&vip(100, Some("lo"), 0)));
    }

    #[test]
    fn a_vip_moved_to_another_interface_is_not_in_the_same_place() {
        assert!(same_place(&vip(100, None, 0), &vip(100, Some("eth0"), 254), "eth0"));
        assert!(!same_place(&vip(100, None, 0), &vip(100, Some("eth1"), 0), "eth0"));
    }
}
