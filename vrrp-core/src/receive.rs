//! The receive path shared by every instance on one interface: parse the datagram, decode the
//! advert (VRRPv2 or VRRPv3), find the instance by VRID, and count whatever is dropped on the
//! way.

use std::net::IpAddr;
use std::time::Instant;

use crate::counters::{DropCounters, DropReason};
use crate::instance::Instance;
use crate::packet::{Advert, IpDatagram};

/// A datagram that did not make it to an election, already counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub reason: DropReason,
    /// The IP source, when the IP header was readable.
    pub source: Option<IpAddr>,
    /// The instance that counted it; `None` when counted in `unattributed`.
    pub instance: Option<usize>,
}

/// What a receiver knows of one VRRP message: an IPv6 raw socket delivers the payload alone,
/// with the addresses and the hop limit beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received<'a> {
    pub source: IpAddr,
    pub destination: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    pub payload: &'a [u8],
}

/// Hands one received IPv4 datagram (IP header included, as an IPv4 raw socket delivers it) to
/// the instance it is for. Packets that cannot be attributed to an instance are counted in
/// `unattributed`; the instance counts the rest. Returns the index of the instance that accepted
/// the advert.
pub fn receive(
    now: Instant,
    datagram: &[u8],
    instances: &mut [Instance],
    unattributed: &mut DropCounters,
) -> Result<usize, Dropped> {
    let ip = match IpDatagram::parse(datagram) {
        Ok(ip) => ip,
        Err(error) => {
            let reason = DropReason::from(&error);
            unattributed.record(reason);
            return Err(Dropped { reason, source: None, instance: None });
        }
    };
    let message = Received { source: ip.source.into(), destination: ip.destination.into(), ttl: ip.ttl, payload: ip.payload };
    receive_message(now, message, instances, unattributed)
}

/// [`receive`] for a message whose IP header was already read (IPv6).
pub fn receive_message(
    now: Instant,
    message: Received,
    instances: &mut [Instance],
    unattributed: &mut DropCounters,
) -> Result<usize, Dropped> {
    let source = Some(message.source);
    let unattributed_drop = |reason, counters: &mut DropCounters| {
        counters.record(reason);
        Err(Dropped { reason, source, instance: None })
    };
    let advert = match Advert::decode(message.payload, message.source, message.destination) {
        Ok(advert) => advert,
        Err(error) => return unattributed_drop(DropReason::from(&error), unattributed),
    };
    let Some(index) =
        instances.iter().position(|i| i.vrid() == advert.vrid() && i.config().primary_ip.is_ipv4() == message.source.is_ipv4())
    else {
        return unattributed_drop(DropReason::UnknownVrid, unattributed);
    };
    instances[index].handle_advert(now, message.source, message.ttl, &advert).map(|()| index).map_err(|reason| Dropped {
        reason,
        source,
        instance: Some(index),
    })
}
