//! PROXY protocol headers (HAProxy's spec, versions 1 and 2) that tell a server the client's
//! real address. RabbitMQ accepts both with `proxy_protocol = true`, for every connection on the
//! listener, and crashes on a v2 LOCAL command: so health checks send a real PROXY header too.
//! With `accept_proxy`, the balancer reads one from its own clients ([`decode`]): bounded in
//! size here, and in time by the session.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ha_common::config::ProxyProtocol;

/// The 12-byte signature opening a v2 header.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\x00\r\nQUIT\n";
/// Version 2, command PROXY.
const V2_PROXY: u8 = 0x21;
const V2_TCP4: u8 = 0x11;
const V2_TCP6: u8 = 0x21;

/// The header announcing a connection from `source` to `destination`.
pub fn header(version: ProxyProtocol, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    match version {
        ProxyProtocol::V1 => v1(source, destination),
        ProxyProtocol::V2 => v2(source, destination),
    }
}

fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => format!("PROXY TCP4 {} {} {} {}\r\n", s.ip(), d.ip(), s.port(), d.port()),
        (s, d) => {
            let (s, d) = (to_v6(s), to_v6(d));
            format!("PROXY TCP6 {} {} {} {}\r\n", s.ip(), d.ip(), s.port(), d.port())
        }
    }
    .into_bytes()
}

fn v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(V2_PROXY);
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(V2_TCP4);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
        (s, d) => {
            let (s, d) = (to_v6(s), to_v6(d));
            out.push(V2_TCP6);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&s.ip().octets());
            out.extend_from_slice(&d.ip().octets());
            out.extend_from_slice(&s.port().to_be_bytes());
            out.extend_from_slice(&d.port().to_be_bytes());
        }
    }
    out
}

/// The longest v1 header, CRLF included (the spec's bound).
pub const V1_MAX: usize = 107;
/// The longest v2 header accepted: the 16-byte preamble and addresses with room for TLVs
/// (HAProxy's own buffers bound them likewise; a client has no reason to send kilobytes).
pub const V2_MAX: usize = 16 + 1024;

/// A header read from a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes the header took; what follows belongs to the client's own protocol.
    pub length: usize,
    /// The client and the address it connected to, as the sender saw them; `None` for a
    /// LOCAL (v2) or UNKNOWN (v1) header, or an address family other than TCP over IP: the
    /// connection's own addresses stand.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a PROXY protocol header")]
    Signature,
    #[error("PROXY v1 line longer than 107 bytes")]
    V1TooLong,
    #[error("malformed PROXY v1 line: {0}")]
    V1Malformed(&'static str),
    #[error("PROXY v2 version {0} (only 2 exists)")]
    V2Version(u8),
    #[error("PROXY v2 command {0} (LOCAL 0 or PROXY 1)")]
    V2Command(u8),
    #[error("PROXY v2 header of {0} bytes, more than {V2_MAX}")]
    V2TooLong(usize),
    #[error("PROXY v2 addresses shorter than their family needs")]
    V2Short,
}

/// Reads a header at the start of `buf`: `Ok(None)` while more bytes are needed (never beyond
/// [`V1_MAX`] or [`V2_MAX`]), the header once complete, or why `buf` cannot start with one.
pub fn decode(buf: &[u8]) -> Result<Option<Decoded>, DecodeError> {
    let prefix = |signature: &[u8]| buf[..buf.len().min(signature.len())] == signature[..buf.len().min(signature.len())];
    if prefix(&V2_SIGNATURE) && !buf.is_empty() && buf[0] == V2_SIGNATURE[0] {
        return decode_v2(buf);
    }
    if prefix(b"PROXY ") {
        return decode_v1(buf);
    }
    Err(DecodeError::Signature)
}

fn decode_v1(buf: &[u8]) -> Result<Option<Decoded>, DecodeError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX { Err(DecodeError::V1TooLong) } else { Ok(None) };
    };
    let length = end + 2;
    if length > V1_MAX {
        return Err(DecodeError::V1TooLong);
    }
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| DecodeError::V1Malformed("not text"))?;
    let words: Vec<&str> = line.split(' ').collect();
    let addresses = match words.as_slice() {
        ["PROXY", "UNKNOWN", ..] => None,
        ["PROXY", family @ ("TCP4" | "TCP6"), source, destination, source_port, destination_port] => {
            let ip = |text: &str| -> Result<IpAddr, DecodeError> {
                let ip = if *family == "TCP4" {
                    text.parse::<Ipv4Addr>().map(IpAddr::V4)
                } else {
                    text.parse::<Ipv6Addr>().map(IpAddr::V6)
                };
                ip.map_err(|_| DecodeError::V1Malformed("an address that is not of its family"))
            };
            let port = |text: &str| -> Result<u16, DecodeError> {
                // The spec: no leading zeroes, no sign.
                if text.starts_with('0') && text.len() > 1 || text.starts_with('+') {
                    return Err(DecodeError::V1Malformed("a port that is not a plain number"));
                }
                text.parse().map_err(|_| DecodeError::V1Malformed("a port that is not a number up to 65535"))
            };
            Some((SocketAddr::new(ip(source)?, port(source_port)?), SocketAddr::new(ip(destination)?, port(destination_port)?)))
        }
        _ => return Err(DecodeError::V1Malformed("expected PROXY TCP4|TCP6|UNKNOWN and four fields")),
    };
    Ok(Some(Decoded { length, addresses }))
}

fn decode_v2(buf: &[u8]) -> Result<Option<Decoded>, DecodeError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return Err(DecodeError::V2Version(version));
    }
    if command > 1 {
        return Err(DecodeError::V2Command(command));
    }
    let length = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if length > V2_MAX {
        return Err(DecodeError::V2TooLong(length));
    }
    if buf.len() < length {
        return Ok(None);
    }
    let body = &buf[16..length];
    let addresses = match (command, buf[13]) {
        (1, V2_TCP4) => {
            let b: &[u8; 12] = body.get(..12).and_then(|b| b.try_into().ok()).ok_or(DecodeError::V2Short)?;
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]));
            let port = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
            Some((SocketAddr::new(ip(0), port(8)), SocketAddr::new(ip(4), port(10))))
        }
        (1, V2_TCP6) => {
            let b: &[u8; 36] = body.get(..36).and_then(|b| b.try_into().ok()).ok_or(DecodeError::V2Short)?;
            let ip = |at: usize| {
                let octets: [u8; 16] = b[at..at + 16].try_into().unwrap_or([0; 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
            Some((SocketAddr::new(ip(0), port(32)), SocketAddr::new(ip(16), port(34))))
        }
        // LOCAL (a health check of the sender), UNSPEC, UDP or UNIX: the connection's own
        // addresses stand, as the spec says of families a receiver does not support.
        _ => None,
    };
    Ok(Some(Decoded { length, addresses }))
}

/// A mixed pair is sent as IPv6, with the IPv4 side mapped.
fn to_v6(addr: SocketAddr) -> std::net::SocketAddrV6 {
    match addr {
        SocketAddr::V6(a) => a,
        SocketAddr::V4(a) => std::net::SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (SocketAddr, SocketAddr) {
        ("192.0.2.31:40000".parse().unwrap(), "192.0.2.100:5672".parse().unwrap())
    }

    #[test]
    fn v1_is_one_text_line() {
        let (s, d) = addrs();
        assert_eq!(header(ProxyProtocol::V1, s, d), b"PROXY TCP4 192.0.2.31 192.0.2.100 40000 5672\r\n");
        let v6: SocketAddr = "[2001:db8::1]:1234".parse().unwrap();
        assert_eq!(header(ProxyProtocol::V1, v6, v6), b"PROXY TCP6 2001:db8::1 2001:db8::1 1234 1234\r\n");
    }

    #[test]
    fn what_is_sent_decodes_to_the_same_addresses_whatever_the_split() {
        let (s, d) = addrs();
        let v6: SocketAddr = "[2001:db8::1]:1234".parse().unwrap();
        for (version, source, destination) in
            [(ProxyProtocol::V1, s, d), (ProxyProtocol::V2, s, d), (ProxyProtocol::V1, v6, v6), (ProxyProtocol::V2, v6, v6)]
        {
            let mut bytes = header(version, source, destination);
            let length = bytes.len();
            for cut in 0..length {
                assert_eq!(decode(&bytes[..cut]), Ok(None), "{version:?} cut at {cut}");
            }
            bytes.extend_from_slice(b"AMQP\0\0\x09\x01");
            let decoded = decode(&bytes).unwrap().unwrap();
            assert_eq!(decoded, Decoded { length, addresses: Some((source, destination)) });
        }
    }

    #[test]
    fn local_and_unknown_headers_keep_the_connections_addresses() {
        assert_eq!(decode(b"PROXY UNKNOWN\r\n"), Ok(Some(Decoded { length: 15, addresses: None })));
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(decode(&local), Ok(Some(Decoded { length: 16, addresses: None })));
    }

    #[test]
    fn garbage_and_oversized_headers_are_refused_with_a_reason() {
        assert_eq!(decode(b"AMQP\0\0\x09\x01"), Err(DecodeError::Signature));
        assert_eq!(decode(b"GET / HTTP/1.1\r\n"), Err(DecodeError::Signature));
        assert_eq!(decode(&[b'P'; 200][..]), Err(DecodeError::Signature));
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(V1_MAX, b'1');
        assert_eq!(decode(&long), Err(DecodeError::V1TooLong), "no CRLF within 107 bytes");
        assert!(matches!(decode(b"PROXY TCP4 192.0.2.1 192.0.2.2 99999 1\r\n"), Err(DecodeError::V1Malformed(_))));
        assert!(matches!(decode(b"PROXY TCP4 2001:db8::1 192.0.2.2 1 1\r\n"), Err(DecodeError::V1Malformed(_))));
        assert!(matches!(decode(b"PROXY TCP4 192.0.2.1 192.0.2.2 01 1\r\n"), Err(DecodeError::V1Malformed(_))));
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(decode(&v2), Err(DecodeError::V2TooLong(16 + 0xffff)), "refused before the body arrives");
        v2[12] = 0x31;
        assert_eq!(decode(&v2), Err(DecodeError::V2Version(3)));
        v2[12] = 0x22;
        assert_eq!(decode(&v2), Err(DecodeError::V2Command(2)));
        let short = [&V2_SIGNATURE[..], &[0x21, 0x11, 0x00, 0x04, 1, 2, 3, 4]].concat();
        assert_eq!(decode(&short), Err(DecodeError::V2Short));
    }

    #[test]
    fn v2_is_the_binary_layout_of_the_spec() {
        let (s, d) = addrs();
        let bytes = header(ProxyProtocol::V2, s, d);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, concat!("0d0a0d0a000d0a515549540a", "21", "11", "000c", "c000021f", "c0000264", "9c40", "1628"));
        let v6: SocketAddr = "[2001:db8::1]:1234".parse().unwrap();
        assert_eq!(header(ProxyProtocol::V2, v6, d).len(), 16 + 36);
    }
}
