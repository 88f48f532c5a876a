//! The receive path shared by every instance on one interface: parse the IPv4 datagram, decode
//! the advert, find the instance by VRID, and count whatever is dropped on the way.

use std::time::Instant;

use crate::counters::{DropCounters, DropReason};
use crate::instance::Instance;
use crate::packet::{Advertisement, IpDatagram};

/// Hands one received datagram (IP header included) to the instance it is for. Packets that
/// cannot be attributed to an instance are counted in `unattributed`; the instance counts the
/// rest. Returns the index of the instance that took the advert.
pub fn receive(now: Instant, datagram: &[u8], instances: &mut [Instance], unattributed: &mut DropCounters) -> Option<usize> {
    let decoded = IpDatagram::parse(datagram).and_then(|ip| Ok((ip, Advertisement::decode(ip.payload)?)));
    let (ip, advert) = match decoded {
        Ok(decoded) => decoded,
        Err(error) => {
            unattributed.record(DropReason::from(&error));
            return None;
        }
    };
    let Some(index) = instances.iter().position(|i| i.vrid() == advert.vrid) else {
        unattributed.record(DropReason::UnknownVrid);
        return None;
    };
    instances[index].handle_advert(now, ip.source, ip.ttl, &advert);
    Some(index)
}
