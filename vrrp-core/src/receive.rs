//! The receive path shared by every instance on one interface: parse the IPv4 datagram, decode
//! the advert, find the instance by VRID, and count whatever is dropped on the way.

use std::net::Ipv4Addr;
use std::time::Instant;

use crate::counters::{DropCounters, DropReason};
use crate::instance::Instance;
use crate::packet::{Advertisement, IpDatagram};

/// A datagram that did not make it to an election, already counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub reason: DropReason,
    /// The IP source, when the IP header was readable.
    pub source: Option<Ipv4Addr>,
    /// The instance that counted it; `None` when counted in `unattributed`.
    pub instance: Option<usize>,
}

/// Hands one received datagram (IP header included) to the instance it is for. Packets that
/// cannot be attributed to an instance are counted in `unattributed`; the instance counts the
/// rest. Returns the index of the instance that accepted the advert.
pub fn receive(
    now: Instant,
    datagram: &[u8],
    instances: &mut [Instance],
    unattributed: &mut DropCounters,
) -> Result<usize, Dropped> {
    let unattributed_drop = |reason, source, counters: &mut DropCounters| {
        counters.record(reason);
        Err(Dropped { reason, source, instance: None })
    };
    let ip = match IpDatagram::parse(datagram) {
        Ok(ip) => ip,
        Err(error) => return unattributed_drop(DropReason::from(&error), None, unattributed),
    };
    let advert = match Advertisement::decode(ip.payload) {
        Ok(advert) => advert,
        Err(error) => return unattributed_drop(DropReason::from(&error), Some(ip.source), unattributed),
    };
    let Some(index) = instances.iter().position(|i| i.vrid() == advert.vrid) else {
        return unattributed_drop(DropReason::UnknownVrid, Some(ip.source), unattributed);
    };
    instances[index].handle_advert(now, ip.source, ip.ttl, &advert).map(|()| index).map_err(|reason| Dropped {
        reason,
        source: Some(ip.source),
        instance: Some(index),
    })
}
