//! PROXY protocol headers (HAProxy's spec, versions 1 and 2) that tell a server the client's
//! real address. RabbitMQ accepts both with `proxy_protocol = true`, for every connection on the
//! listener, and crashes on a v2 LOCAL command: so health checks send a real PROXY header too.

use std::net::SocketAddr;

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
    fn v2_is_the_binary_layout_of_the_spec() {
        let (s, d) = addrs();
        let bytes = header(ProxyProtocol::V2, s, d);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, concat!("0d0a0d0a000d0a515549540a", "21", "11", "000c", "c000021f", "c0000264", "9c40", "1628"));
        let v6: SocketAddr = "[2001:db8::1]:1234".parse().unwrap();
        assert_eq!(header(ProxyProtocol::V2, v6, d).len(), 16 + 36);
    }
}
