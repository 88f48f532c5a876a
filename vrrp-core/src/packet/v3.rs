//! The VRRPv3 advertisement (RFC 5798 section 5), over IPv4 or IPv6, and [`Advert`], either
//! version as the receive path and the state machine see it.
//!
//! Unlike VRRPv2 there is no authentication, the interval is 12 bits of centiseconds, and the
//! checksum covers the IPv4 or IPv6 pseudo-header (section 5.2.8), so encoding and decoding
//! need the datagram's source and destination addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::util::{ipv4_checksum, ipv6_checksum};

use super::{Advertisement, DecodeError, CHECKSUM_WORD, IP_PROTOCOL, TYPE_ADVERTISEMENT};

pub const VERSION: u8 = 3;
/// The VRRP IPv6 multicast group (RFC 5798 section 5.1.2.2), sent to with hop limit 255.
pub const MULTICAST_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Version/type, VRID, priority, count, reserved + Max Adver Int, checksum.
pub const HEADER_LEN: usize = 8;
/// The largest Max Adver Int: 12 bits of centiseconds, 40.95 s.
pub const MAX_ADVERT_INT: u16 = 0x0fff;

/// A VRRPv3 advertisement (RFC 5798 section 5.1):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |(rsvd) |     Max Adver Int     |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      IPvX Address(es)                         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// The addresses are all of the carrying datagram's family (4 or 16 bytes each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertisementV3 {
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds between adverts (12 bits; 0 is decoded but refused by the receive checks).
    pub max_advert_int: u16,
    pub addresses: Vec<IpAddr>,
}

impl AdvertisementV3 {
    /// Encodes the message with its checksum over the pseudo-header of a datagram from `source`
    /// to `destination` (RFC 5798 section 5.2.8). Only addresses of `source`'s family are
    /// written (configuration keeps an instance to one family, as section 5.2.5 requires); the
    /// reserved bits are zero and the interval is clamped to 12 bits.
    pub fn encode(&self, source: IpAddr, destination: IpAddr) -> Vec<u8> {
        let addresses: Vec<&IpAddr> = self.addresses.iter().filter(|a| a.is_ipv4() == source.is_ipv4()).collect();
        debug_assert_eq!(addresses.len(), self.addresses.len(), "one address family per advert");
        debug_assert!(addresses.len() <= usize::from(u8::MAX));
        let mut buf = Vec::with_capacity(HEADER_LEN + 16 * addresses.len());
        buf.push((VERSION << 4) | TYPE_ADVERTISEMENT);
        buf.push(self.vrid);
        buf.push(self.priority);
        buf.push(u8::try_from(addresses.len()).unwrap_or(u8::MAX));
        buf.extend_from_slice(&self.max_advert_int.min(MAX_ADVERT_INT).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        for address in addresses.into_iter().take(usize::from(u8::MAX)) {
            match address {
                IpAddr::V4(a) => buf.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => buf.extend_from_slice(&a.octets()),
            }
        }
        let sum = pseudo_header_checksum(&buf, source, destination);
        buf[6..8].copy_from_slice(&sum.to_be_bytes());
        buf
    }

    /// Decodes a VRRPv3 message (the IP payload) carried from `source` to `destination`.
    /// Checks, in order: length, version, type, address count against length (4 or 16 bytes
    /// each, by the datagram's family), checksum with the pseudo-header.
    pub fn decode(bytes: &[u8], source: IpAddr, destination: IpAddr) -> Result<Self, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort { len: bytes.len() });
        }
        let version = bytes[0] >> 4;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let kind = bytes[0] & 0x0f;
        if kind != TYPE_ADVERTISEMENT {
            return Err(DecodeError::Type(kind));
        }
        let count = bytes[3];
        let width = if source.is_ipv4() { 4 } else { 16 };
        let expected = HEADER_LEN + width * usize::from(count);
        if bytes.len() != expected {
            return Err(DecodeError::Length { len: bytes.len(), count, expected });
        }
        let received = u16::from_be_bytes([bytes[6], bytes[7]]);
        let computed = pseudo_header_checksum(bytes, source, destination);
        if received != computed {
            return Err(DecodeError::Checksum { received, computed });
        }
        let addresses = bytes[HEADER_LEN..]
            .chunks_exact(width)
            .map(|octets| match <[u8; 4]>::try_from(octets) {
                Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
                Err(_) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(octets).unwrap_or([0; 16]))),
            })
            .collect();
        Ok(AdvertisementV3 {
            vrid: bytes[1],
            priority: bytes[2],
            max_advert_int: u16::from_be_bytes([bytes[4], bytes[5]]) & MAX_ADVERT_INT,
            addresses,
        })
    }
}

/// The checksum of `message` (its checksum word skipped) with the pseudo-header of a datagram
/// from `source` to `destination`. Mixed families cannot be a real datagram: the sum then
/// covers the message alone, which no correct sender produces.
fn pseudo_header_checksum(message: &[u8], source: IpAddr, destination: IpAddr) -> u16 {
    let protocol = IpNextHeaderProtocol(IP_PROTOCOL);
    match (source, destination) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4_checksum(message, CHECKSUM_WORD, &[], &s, &d, protocol),
        (IpAddr::V6(s), IpAddr::V6(d)) => ipv6_checksum(message, CHECKSUM_WORD, &[], &s, &d, protocol),
        _ => pnet_packet::util::checksum(message, CHECKSUM_WORD),
    }
}

/// An advert of either version, as received or to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Advert {
    V2(Advertisement),
    V3(AdvertisementV3),
}

impl Advert {
    /// Decodes the payload of a datagram from `source` to `destination` by its version nibble:
    /// VRRPv2 only over IPv4, VRRPv3 over either family.
    pub fn decode(bytes: &[u8], source: IpAddr, destination: IpAddr) -> Result<Self, DecodeError> {
        match bytes.first().map(|b| b >> 4) {
            Some(VERSION) => AdvertisementV3::decode(bytes, source, destination).map(Advert::V3),
            Some(super::VERSION) if source.is_ipv4() => Advertisement::decode(bytes).map(Advert::V2),
            Some(version) if bytes.len() >= HEADER_LEN => Err(DecodeError::Version(version)),
            _ => Err(DecodeError::TooShort { len: bytes.len() }),
        }
    }

    /// The message as sent from `source` to `destination` (only VRRPv3 needs them).
    pub fn encode(&self, source: IpAddr, destination: IpAddr) -> Vec<u8> {
        match self {
            Advert::V2(advert) => advert.encode(),
            Advert::V3(advert) => advert.encode(source, destination),
        }
    }

    pub fn version(&self) -> u8 {
        match self {
            Advert::V2(_) => super::VERSION,
            Advert::V3(_) => VERSION,
        }
    }

    pub fn vrid(&self) -> u8 {
        match self {
            Advert::V2(a) => a.vrid,
            Advert::V3(a) => a.vrid,
        }
    }

    pub fn priority(&self) -> u8 {
        match self {
            Advert::V2(a) => a.priority,
            Advert::V3(a) => a.priority,
        }
    }

    /// The virtual addresses the advert lists, in its order.
    pub fn addresses(&self) -> Vec<IpAddr> {
        match self {
            Advert::V2(a) => a.addresses.iter().copied().map(IpAddr::V4).collect(),
            Advert::V3(a) => a.addresses.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
