//! Where each VIP goes: its `dev` (keepalived's word; by default the instance's interface),
//! with its label and scope. A VIP on another interface than its driver's is added and removed
//! there (and announced from there: [`super::announce`]); that interface is looked up when
//! needed, as it may come and go.

use std::collections::BTreeMap;

use ha_common::config::{IpPrefix, Vip, VrrpInstance};
use tracing::{debug, info, warn};

use super::net::link::{Interface, Netlink};
use super::net::NetError;
use super::port::Ipv6Side;

/// Whether `vip` goes on the driver's own interface `own`.
pub fn on_own(vip: &Vip, own: &str) -> bool {
    vip.dev.as_deref().is_none_or(|dev| dev == own)
}

/// What interface `own`'s port needs of IPv6 for `instances`: an IPv6 virtual router needs its
/// adverts' socket; IPv6 VIPs placed here (excluded from a VRRPv2 router's adverts) need
/// neighbour advertisements only.
pub fn ipv6_side<'a>(own: &str, instances: impl IntoIterator<Item = &'a VrrpInstance>) -> Ipv6Side {
    let mut side = Ipv6Side::None;
    for instance in instances {
        if instance.is_ipv6() {
            return Ipv6Side::Router;
        }
        if instance.virtual_ipaddress.iter().any(|v| v.addr().is_ipv6() && on_own(v, own)) {
            side = Ipv6Side::Announce;
        }
    }
    side
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn vip(last: u8, dev: Option<&str>, scope: u8) -> Vip {
        Vip {
            prefix: IpPrefix { addr: Ipv4Addr::new(192, 0, 2, last).into(), len: 24 },
            dev: dev.map(str::to_owned),
            label: None,
            scope,
            broadcast: None,
            excluded: false,
            no_track: false,
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
