//! A driver's hold on its interface: the interface as the kernel knows it now, the advert
//! sockets and the gratuitous ARP socket bound to it, and the address adverts leave from. A
//! driver without a port (the interface is missing, has no IPv4 address, or was deleted) keeps
//! its instances in FAULT and tries again; an interface deleted and created again comes back
//! with a new index, and the port is opened anew on it.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ha_common::config::IpPrefix;
use tracing::{info, warn};

use super::net::arp::GarpSender;
use super::net::link::{Interface, Netlink};
use super::net::nd::NaSender;
use super::net::socket::AdvertSocket;
use super::net::socket6::AdvertSocket6;
use super::net::NetError;

pub struct Port {
    pub interface: Interface,
    pub socket: AdvertSocket,
    pub garp: Arc<GarpSender>,
    /// The address adverts leave from (and the election's tie-breaker).
    pub source: Ipv4Addr,
    /// For IPv6 virtual routers, when the interface has any.
    pub v6: Option<Port6>,
    /// Unsolicited neighbour advertisements for the IPv6 VIPs on this interface: those of IPv6
    /// virtual routers, and those excluded from a VRRPv2 router's adverts.
    pub na: Option<NaSender>,
}

/// What a port needs of IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv6Side {
    /// No IPv6 VIP goes on this interface.
    None,
    /// IPv6 VIPs excluded from a VRRPv2 router's adverts: NAs only, and a port without them
    /// still serves the router (the VIPs are added, not announced; logged).
    Announce,
    /// An IPv6 virtual router: adverts from the link-local address, and NAs; without them the
    /// port does not open (FAULT).
    Router,
}

/// The IPv6 side of a port for VRRPv3 over IPv6: adverts from the link-local address.
pub struct Port6 {
    pub socket: AdvertSocket6,
    pub link_local: Ipv6Addr,
}

impl Port {
    /// Looks `name` up and opens the sockets. `unicast_src_ip` wins over the interface's first
    /// primary address; `vips` are never the source.
    pub async fn open(
        netlink: &Netlink,
        name: &str,
        unicast_src_ip: Option<Ipv4Addr>,
        vips: &[IpPrefix],
        ipv6: Ipv6Side,
    ) -> Result<Port, NetError> {
        let interface = netlink.interface(name).await?;
        let vip_addrs: Vec<_> = vips.iter().map(|v| v.addr).collect();
        let source = unicast_src_ip
            .or_else(|| interface.primary_ipv4(&vip_addrs))
            .ok_or_else(|| NetError::NoIpv4Address(interface.name.clone()))?;
        let socket = AdvertSocket::open(&interface, source)?;
        let garp = Arc::new(GarpSender::open(&interface)?);
        let v6 = match ipv6 {
            Ipv6Side::Router => {
                let link_local = interface.link_local().ok_or_else(|| NetError::NoLinkLocal(interface.name.clone()))?;
                Some(Port6 { socket: AdvertSocket6::open(&interface, link_local)?, link_local })
            }
            Ipv6Side::Announce | Ipv6Side::None => None,
        };
        let na = match ipv6 {
            Ipv6Side::Router => Some(NaSender::open(&interface)?),
            Ipv6Side::Announce => NaSender::open(&interface)
                .inspect_err(|e| {
                    warn!(interface = %interface.name, error = %e, "IPv6 VIPs excluded from adverts will be added but not announced")
                })
                .ok(),
            Ipv6Side::None => None,
        };
        let link_local = v6.as_ref().map(|p| p.link_local.to_string()).unwrap_or_default();
        info!(interface = %interface.name, index = interface.index, %source, link_local, up = interface.up, "interface ready");
        Ok(Port { interface, socket, garp, source, v6, na })
    }

    /// Whether this port lacks what `ipv6` asks (opened before an IPv6 VIP was configured).
    pub fn lacks(&self, ipv6: Ipv6Side) -> bool {
        match ipv6 {
            Ipv6Side::Router => self.v6.is_none() || self.na.is_none(),
            Ipv6Side::Announce => self.na.is_none(),
            Ipv6Side::None => false,
        }
    }
}

/// Remembers why the port could not be opened, so the same reason is logged once, not at
/// every retry.
#[derive(Default)]
pub struct PortTrouble {
    last: Option<String>,
}

impl PortTrouble {
    pub fn report(&mut self, interface: &str, error: &NetError) {
        let reason = error.to_string();
        if self.last.as_deref() != Some(reason.as_str()) {
            warn!(interface, error = %reason, "interface not usable: its instances stay in FAULT until it is");
            self.last = Some(reason);
        }
    }

    pub fn clear(&mut self) {
        self.last = None;
    }
}
