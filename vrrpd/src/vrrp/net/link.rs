//! Interfaces and addresses through rtnetlink: look up an interface, add and remove VIPs with
//! a label (so `ip a` shows what vrrpd owns), clean stale ones, and follow link state.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::{Stream, StreamExt, TryStreamExt};
use ha_common::config::{IpPrefix, Vip};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, MulticastGroup};

use super::NetError;

/// An interface as the kernel describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    pub mac: [u8; 6],
    /// Administratively up with carrier (IFF_UP and IFF_LOWER_UP).
    pub up: bool,
    pub addresses: Vec<InterfaceAddress>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub prefix: IpPrefix,
    pub secondary: bool,
    pub label: Option<String>,
}

impl Interface {
    /// The address adverts are sent from: the first primary (non-secondary) IPv4 address that is
    /// not one of `vips`.
    pub fn primary_ipv4(&self, vips: &[IpAddr]) -> Option<Ipv4Addr> {
        let v4 = |a: &InterfaceAddress| match a.prefix.addr {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        };
        let candidates = self.addresses.iter().filter(|a| a.prefix.addr.is_ipv4() && !vips.contains(&a.prefix.addr));
        candidates.clone().find(|a| !a.secondary).or_else(|| candidates.clone().next()).and_then(v4)
    }

    /// The IPv6 link-local address (fe80::/10) VRRPv3 adverts leave from (RFC 5798 section
    /// 5.1.2.1).
    pub fn link_local(&self) -> Option<Ipv6Addr> {
        self.addresses.iter().find_map(|a| match a.prefix.addr {
            IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some(v6),
            _ => None,
        })
    }
}

/// The label vrrpd puts on a VIP it adds: `eth0:vrrp51` (IFNAMSIZ allowing), so that `ip a`
/// says who added the address.
pub fn vip_label(interface: &str, vrid: u8) -> Option<String> {
    [format!("{interface}:vrrp{vrid}"), format!("{interface}:{vrid}")].into_iter().find(|l| l.len() <= 15)
}

/// A label vrrpd put on an address of `interface`, for any VRID.
pub fn is_vrrpd_label(interface: &str, label: &str) -> bool {
    label.strip_prefix(interface).and_then(|rest| rest.strip_prefix(':')).is_some_and(|rest| {
        let digits = rest.strip_prefix("vrrp").unwrap_or(rest);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A handle on the routing netlink socket. The connection runs as a task on the current
/// runtime.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    pub fn new() -> Result<Self, NetError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|source| NetError::Io {
            interface: String::new(),
            what: "open a netlink socket",
            source,
        })?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    pub async fn interface(&self, name: &str) -> Result<Interface, NetError> {
        let mut links = self.handle.link().get().match_name(name.to_owned()).execute();
        let link = match links.try_next().await {
            Ok(Some(link)) => link,
            Ok(None) => return Err(NetError::NoInterface(name.to_owned())),
            // ENODEV comes back as an error, not an empty answer.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
                return Err(NetError::NoInterface(name.to_owned()))
            }
            Err(source) => return Err(NetError::Netlink { what: format!("look up interface {name}"), source }),
        };
        let (index, up, mac) = link_summary(&link);
        let addresses = self.addresses(index).await?;
        Ok(Interface { index, name: name.to_owned(), mac: mac.unwrap_or_default(), up, addresses })
    }

    async fn addresses(&self, index: u32) -> Result<Vec<InterfaceAddress>, NetError> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|source| NetError::Netlink { what: format!("list addresses of interface #{index}"), source })?;
        Ok(messages.iter().filter_map(interface_address).collect())
    }

    /// Adds a VIP with its scope and label (the configured one, or vrrpd's own); an address
    /// already present is fine (a restart, or a manual add).
    pub async fn add_vip(&self, interface: &Interface, vrid: u8, vip: &Vip) -> Result<(), NetError> {
        let prefix = vip.prefix;
        let mut request = self.handle.address().add(interface.index, prefix.addr, prefix.len);
        request.message_mut().header.scope = AddressScope::from(vip.scope);
        match prefix.addr {
            IpAddr::V4(_) => {
                let attributes = &mut request.message_mut().attributes;
                // rtnetlink adds the prefix's broadcast address by itself; keepalived and `ip
                // address add` add one only when told (`brd`), and so does vrrpd.
                attributes.retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
                if let Some(broadcast) = vip.broadcast {
                    attributes.push(AddressAttribute::Broadcast(broadcast));
                }
                // IPv4 labels: `ip a` shows who added the address.
                if let Some(label) = vip.label.clone().or_else(|| vip_label(&interface.name, vrid)) {
                    attributes.push(AddressAttribute::Label(label));
                }
            }
            // No duplicate address detection: a tentative VIP answers nothing for a second or
            // more, and the peer that held it has just given it up (keepalived does the same).
            IpAddr::V6(_) => {
                let message = request.message_mut();
                message.header.flags |= AddressHeaderFlags::Nodad;
                message.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        match request.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(source) => Err(NetError::Netlink { what: format!("add {vip} to {}", interface.name), source }),
        }
    }

    /// Removes a VIP; an address already gone is fine.
    pub async fn remove_vip(&self, interface: &Interface, vip: IpPrefix) -> Result<(), NetError> {
        let mut message = AddressMessage::default();
        message.header.family = match vip.addr {
            IpAddr::V4(_) => netlink_packet_route::AddressFamily::Inet,
            IpAddr::V6(_) => netlink_packet_route::AddressFamily::Inet6,
        };
        message.header.prefix_len = vip.len;
        message.header.index = interface.index;
        if vip.addr.is_ipv4() {
            message.attributes.push(AddressAttribute::Local(vip.addr));
        }
        message.attributes.push(AddressAttribute::Address(vip.addr));
        match self.handle.address().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => Ok(()),
            Err(source) => Err(NetError::Netlink { what: format!("remove {vip} from {}", interface.name), source }),
        }
    }

    /// Removes what a crashed run may have left on `interface`: every VIP configured on it
    /// (`vips`, whatever its label: keepalived's start removes exactly its configured
    /// (address, dev) pairs), and, when `vrrpd_labels_but` is given, every address carrying a
    /// vrrpd label (a VIP of an earlier configuration) but those it lists (VIPs another
    /// driver holds here). Returns what was removed.
    pub async fn remove_stale_vips(
        &self,
        interface: &Interface,
        vips: &[IpPrefix],
        vrrpd_labels_but: Option<&[IpPrefix]>,
    ) -> Result<Vec<IpPrefix>, NetError> {
        let mut removed = Vec::new();
        for address in self.addresses(interface.index).await? {
            let labelled = address.label.as_deref().is_some_and(|l| is_vrrpd_label(&interface.name, l));
            let ours = labelled && vrrpd_labels_but.is_some_and(|spared| !spared.iter().any(|s| s.addr == address.prefix.addr));
            if ours || vips.iter().any(|v| v.addr == address.prefix.addr) {
                self.remove_vip(interface, address.prefix).await?;
                removed.push(address.prefix);
            }
        }
        Ok(removed)
    }
}

fn link_summary(link: &LinkMessage) -> (u32, bool, Option<[u8; 6]>) {
    let flags = link.header.flags;
    let up = flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp);
    let mac = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
        _ => None,
    });
    (link.header.index, up, mac)
}

fn interface_address(message: &AddressMessage) -> Option<InterfaceAddress> {
    // IPv4 names the address IFA_LOCAL (IFA_ADDRESS is the peer's on point-to-point links);
    // IPv6 sends IFA_ADDRESS alone.
    let addr = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(addr @ IpAddr::V4(_)) => Some(*addr),
        AddressAttribute::Address(addr @ IpAddr::V6(_)) => Some(*addr),
        _ => None,
    })?;
    let label = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Label(label) => Some(label.clone()),
        _ => None,
    });
    Some(InterfaceAddress {
        prefix: IpPrefix { addr, len: message.header.prefix_len },
        secondary: message.header.flags.contains(AddressHeaderFlags::Secondary),
        label,
    })
}

/// What the link monitor hears from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// An interface's state: up with carrier, or not (down, or deleted).
    Changed { name: String, up: bool },
    /// The kernel dropped notifications: whatever is tracked must be read again.
    Overrun,
}

fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

/// Link state changes as the kernel announces them (`ip monitor link`), and the overruns that
/// mean some were lost.
pub fn link_events() -> Result<impl Stream<Item = LinkEvent>, NetError> {
    let (connection, _handle, messages) = rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
        .map_err(|source| NetError::Io { interface: String::new(), what: "subscribe to link events", source })?;
    tokio::spawn(connection);
    Ok(messages.filter_map(|(message, _)| async move { link_event(message.payload) }))
}

fn link_event(payload: netlink_packet_core::NetlinkPayload<RouteNetlinkMessage>) -> Option<LinkEvent> {
    match payload {
        netlink_packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
            let (_, up, _) = link_summary(&link);
            Some(LinkEvent::Changed { name: link_name(&link)?, up })
        }
        netlink_packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
            Some(LinkEvent::Changed { name: link_name(&link)?, up: false })
        }
        netlink_packet_core::NetlinkPayload::Overrun(_) => Some(LinkEvent::Overrun),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overrun_is_an_event_not_silence() {
        assert_eq!(link_event(netlink_packet_core::NetlinkPayload::Overrun(Vec::new())), Some(LinkEvent::Overrun));
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName("eth0".into()));
        let deleted = link_event(netlink_packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)));
        assert_eq!(deleted, Some(LinkEvent::Changed { name: "eth0".into(), up: false }));
    }

    #[test]
    fn labels_fit_ifnamsiz_and_are_recognised() {
        assert_eq!(vip_label("eth0", 51).as_deref(), Some("eth0:vrrp51"));
        assert_eq!(vip_label("enp0s31f6", 255).as_deref(), Some("enp0s31f6:255"));
        assert_eq!(vip_label("abcdefghijklmno", 1), None);
        assert!(is_vrrpd_label("eth0", "eth0:vrrp51"));
        assert!(is_vrrpd_label("eth0", "eth0:51"));
        assert!(!is_vrrpd_label("eth0", "eth0:web"));
        assert!(!is_vrrpd_label("eth0", "eth1:vrrp51"));
        assert!(!is_vrrpd_label("eth0", "eth0"));
    }

    #[test]
    fn primary_address_skips_vips_and_secondaries() {
        let a = |last, secondary| InterfaceAddress {
            prefix: IpPrefix { addr: Ipv4Addr::new(192, 0, 2, last).into(), len: 24 },
            secondary,
            label: None,
        };
        let iface = Interface {
            index: 2,
            name: "eth0".into(),
            mac: [0; 6],
            up: true,
            addresses: vec![a(100, false), a(12, true), a(11, false)],
        };
        assert_eq!(iface.primary_ipv4(&[Ipv4Addr::new(192, 0, 2, 100).into()]), Some(Ipv4Addr::new(192, 0, 2, 11)));
    }
}
