//! The VRRPv2 advertisement on the wire (RFC 3768 section 5) and the IPv4 datagram carrying it;
//! [`v3`] is VRRPv3 (RFC 5798) over IPv4 and IPv6.
//!
//! Decoding never panics: every malformed input is a [`DecodeError`] whose variant names the
//! reason, so the receive path can count it (see [`crate::counters::DropReason`]).

use std::fmt;
use std::net::Ipv4Addr;

use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv4::{self, Ipv4Packet, MutableIpv4Packet};
use pnet_packet::util::checksum;

pub mod v3;

pub use self::v3::{Advert, AdvertisementV3, MULTICAST_GROUP_V6};

/// IP protocol number assigned to VRRP (RFC 3768 section 5.2.4).
pub const IP_PROTOCOL: u8 = 112;
/// The VRRP IPv4 multicast group (RFC 3768 section 5.2.2).
pub const MULTICAST_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// Adverts are sent with TTL 255 and received only with TTL 255 (RFC 3768 section 5.2.3).
pub const TTL: u8 = 255;
pub const VERSION: u8 = 2;
/// The only packet type VRRPv2 defines (RFC 3768 section 5.3.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Version/type, VRID, priority, count, auth type, advert int, checksum.
const FIXED_LEN: usize = 8;
const AUTH_DATA_LEN: usize = 8;
/// An advertisement with no address: 8 fixed bytes and 8 bytes of authentication data.
pub const MIN_LEN: usize = FIXED_LEN + AUTH_DATA_LEN;
/// Index of the checksum among the message's 16-bit words.
const CHECKSUM_WORD: usize = 3;

/// Authentication Type and Authentication Data (RFC 2338 section 5.3.6, kept in RFC 3768 for
/// compatibility; keepalived sends type 1 when `auth_type PASS` is configured).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AuthData {
    /// Type 0: the data is zero on transmit and ignored on receipt.
    None,
    /// Type 1: a password of up to 8 bytes, zero-padded, compared over all 8 bytes.
    Pass([u8; 8]),
    /// Any other type (2 was IPsec AH); kept so the receiver can report a type mismatch.
    Other { auth_type: u8, data: [u8; 8] },
}

impl AuthData {
    pub fn auth_type(&self) -> u8 {
        match self {
            AuthData::None => 0,
            AuthData::Pass(_) => 1,
            AuthData::Other { auth_type, .. } => *auth_type,
        }
    }

    fn data(&self) -> [u8; 8] {
        match self {
            AuthData::None => [0; 8],
            AuthData::Pass(data) | AuthData::Other { data, .. } => *data,
        }
    }
}

impl fmt::Debug for AuthData {
    // Passwords stay out of logs even at debug level.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            AuthData::None => f.write_str("None"),
            AuthData::Pass(_) => f.write_str("Pass(<hidden>)"),
            AuthData::Other { auth_type, .. } => write!(f, "Other({auth_type})"),
        }
    }
}

/// A VRRPv2 advertisement (RFC 3768 section 5.1):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Auth Type   |   Adver Int   |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         IP Address (1)                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                            .                                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         IP Address (n)                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     Authentication Data (1)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     Authentication Data (2)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertisement {
    pub vrid: u8,
    /// 255: the address owner; 1..=254: a backup; 0: the master is resigning.
    pub priority: u8,
    pub auth: AuthData,
    /// Seconds between adverts.
    pub advert_int: u8,
    pub addresses: Vec<Ipv4Addr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{len} bytes is shorter than the {MIN_LEN}-byte VRRP header")]
    TooShort { len: usize },
    #[error("version {0} is not the VRRP version expected")]
    Version(u8),
    #[error("type {0} is not ADVERTISEMENT (1)")]
    Type(u8),
    #[error("{len} bytes cannot hold {count} addresses ({expected} bytes expected)")]
    Length { len: usize, count: u8, expected: usize },
    #[error("checksum {received:#06x} does not match the computed {computed:#06x}")]
    Checksum { received: u16, computed: u16 },
    #[error("malformed IPv4 header: {0}")]
    IpHeader(&'static str),
    #[error("IP protocol {0} is not VRRP (112)")]
    IpProtocol(u8),
}

impl Advertisement {
    /// Length of the encoded message.
    pub fn len(&self) -> usize {
        MIN_LEN + 4 * self.addresses.len()
    }

    /// Never true: an advertisement always has its fixed fields.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Encodes the message with its checksum (RFC 3768 section 5.3.8: the 16-bit one's complement
    /// of the one's complement sum of the VRRP message, no pseudo-header).
    ///
    /// At most 255 addresses fit the count field; configuration keeps instances far below that.
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.addresses.len() <= usize::from(u8::MAX));
        let mut buf = Vec::with_capacity(self.len());
        buf.push((VERSION << 4) | TYPE_ADVERTISEMENT);
        buf.push(self.vrid);
        buf.push(self.priority);
        buf.push(self.addresses.len() as u8);
        buf.push(self.auth.auth_type());
        buf.push(self.advert_int);
        buf.extend_from_slice(&[0, 0]);
        for addr in &self.addresses {
            buf.extend_from_slice(&addr.octets());
        }
        buf.extend_from_slice(&self.auth.data());
        let sum = checksum(&buf, CHECKSUM_WORD);
        buf[6..8].copy_from_slice(&sum.to_be_bytes());
        buf
    }

    /// Decodes a VRRP message (the IP payload). Checks, in order: length, version, type,
    /// address count against length, checksum (RFC 3768 section 7.1).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < MIN_LEN {
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
        let expected = MIN_LEN + 4 * usize::from(count);
        if bytes.len() != expected {
            return Err(DecodeError::Length { len: bytes.len(), count, expected });
        }
        let received = u16::from_be_bytes([bytes[6], bytes[7]]);
        let computed = checksum(bytes, CHECKSUM_WORD);
        if received != computed {
            return Err(DecodeError::Checksum { received, computed });
        }
        let addresses_end = FIXED_LEN + 4 * usize::from(count);
        let addresses = bytes[FIXED_LEN..addresses_end]
            .chunks_exact(4)
            .map(|octets| Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
            .collect();
        let mut data = [0u8; 8];
        data.copy_from_slice(&bytes[addresses_end..]);
        let auth = match bytes[4] {
            0 => AuthData::None,
            1 => AuthData::Pass(data),
            auth_type => AuthData::Other { auth_type, data },
        };
        Ok(Advertisement { vrid: bytes[1], priority: bytes[2], auth, advert_int: bytes[5], addresses })
    }
}

/// The parts of a received IPv4 datagram that VRRP's receive checks need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpDatagram<'a> {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub ttl: u8,
    pub payload: &'a [u8],
}

impl<'a> IpDatagram<'a> {
    /// Parses a whole IPv4 datagram as a raw socket delivers it (header included), keeping only
    /// what a VRRP receiver needs. Fragments are refused: an advert always fits one packet.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, DecodeError> {
        let ip = Ipv4Packet::new(datagram).ok_or(DecodeError::IpHeader("shorter than 20 bytes"))?;
        if ip.get_version() != 4 {
            return Err(DecodeError::IpHeader("version is not 4"));
        }
        let header_len = usize::from(ip.get_header_length()) * 4;
        if header_len < 20 || header_len > datagram.len() {
            return Err(DecodeError::IpHeader("header length out of bounds"));
        }
        let total_len = usize::from(ip.get_total_length());
        if total_len < header_len || total_len > datagram.len() {
            return Err(DecodeError::IpHeader("total length out of bounds"));
        }
        // More-fragments flag (0b001) or a non-zero offset.
        if ip.get_flags() & 0b001 != 0 || ip.get_fragment_offset() != 0 {
            return Err(DecodeError::IpHeader("fragmented"));
        }
        let protocol = ip.get_next_level_protocol().0;
        if protocol != IP_PROTOCOL {
            return Err(DecodeError::IpProtocol(protocol));
        }
        Ok(IpDatagram {
            source: ip.get_source(),
            destination: ip.get_destination(),
            ttl: ip.get_ttl(),
            payload: &datagram[header_len..total_len],
        })
    }
}

/// Builds a whole IPv4 datagram (20-byte header, no options) around a VRRP message. The kernel
/// builds the header for the adverts vrrpd sends; this is for tools and tests that must control
/// every field, the TTL above all.
pub fn encode_ipv4(source: Ipv4Addr, destination: Ipv4Addr, ttl: u8, payload: &[u8]) -> Vec<u8> {
    const HEADER_LEN: usize = 20;
    let total = HEADER_LEN + payload.len();
    let mut buf = vec![0u8; total];
    {
        // The buffer is at least 20 bytes, which is all `new` asks for.
        let mut ip = MutableIpv4Packet::new(&mut buf).expect("buffer holds an IPv4 header");
        ip.set_version(4);
        ip.set_header_length((HEADER_LEN / 4) as u8);
        ip.set_dscp(48); // CS6, network control, as keepalived marks adverts
        ip.set_total_length(u16::try_from(total).unwrap_or(u16::MAX));
        ip.set_ttl(ttl);
        ip.set_next_level_protocol(IpNextHeaderProtocol(IP_PROTOCOL));
        ip.set_source(source);
        ip.set_destination(destination);
        ip.set_payload(payload);
        let sum = ipv4::checksum(&ip.to_immutable());
        ip.set_checksum(sum);
    }
    buf
}

#[cfg(test)]
mod tests;
