//! Byte vectors both ways. The keepalived vectors are whole datagrams captured with tcpdump
//! (`scripts/capture-keepalived.sh 3 v3` prints such captures; `keepalived_wire.rs` checks them live) from
//! keepalived 2.2.7 (Debian package) with `vrrp_version 3`, sent from 192.0.2.11 / the
//! link-local fe80::ff:fe00:160a (MAC 02:00:00:00:16:0a):
//! - IPv4: VRID 51, priority 101, `advert_int 0.1`, VIPs 192.0.2.100 and 192.0.2.101;
//! - IPv6: VRID 61, priority 101, `advert_int 0.5`, VIP 2001:db8::100.
//!
//! Both carry the pseudo-header checksum of RFC 5798 section 5.2.8, IPv4 included.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::packet::{IpDatagram, MULTICAST_GROUP};

const KEEPALIVED_V4_MASTER: &str = "45c0002400010000ff70188bc000020be000001231336502000a4257c0000264c0000265";
/// The advert keepalived sends when stopped: priority 0.
const KEEPALIVED_V4_STOP: &str = "45c0002400170000ff701875c000020be000001231330002000aa757c0000264c0000265";
/// IPv6 header (40 bytes) then the advert: hop limit 255, traffic class 0xc0.
const KEEPALIVED_V6_MASTER: &str = "6c044d09001870fffe80000000000000000000fffe00160aff020000000000000000000000000012313d6501003227ae20010db8000000000000000000000100";
const KEEPALIVED_V6_STOP: &str = "6c044d09001870fffe80000000000000000000fffe00160aff020000000000000000000000000012313d000100328cae20010db8000000000000000000000100";

const V4_SOURCE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const V6_SOURCE: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x160a);

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn v4_vips() -> Vec<IpAddr> {
    vec![Ipv4Addr::new(192, 0, 2, 100).into(), Ipv4Addr::new(192, 0, 2, 101).into()]
}

fn v6_vip() -> IpAddr {
    "2001:db8::100".parse().unwrap()
}

/// The IPv6 header of the vectors: source, destination, hop limit, payload.
fn split_ipv6(datagram: &[u8]) -> (Ipv6Addr, Ipv6Addr, u8, &[u8]) {
    let address = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&datagram[at..at + 16]).unwrap());
    assert_eq!(datagram[6], IP_PROTOCOL, "next header is VRRP");
    (address(8), address(24), datagram[7], &datagram[40..])
}

#[test]
fn decodes_keepalived_v3_ipv4_adverts_from_the_wire() {
    for (vector, priority) in [(KEEPALIVED_V4_MASTER, 101), (KEEPALIVED_V4_STOP, 0)] {
        let datagram = hex(vector);
        let ip = IpDatagram::parse(&datagram).unwrap();
        assert_eq!((ip.source, ip.destination, ip.ttl), (V4_SOURCE, MULTICAST_GROUP, 255));
        let advert = AdvertisementV3::decode(ip.payload, ip.source.into(), ip.destination.into()).unwrap();
        assert_eq!(advert, AdvertisementV3 { vrid: 51, priority, max_advert_int: 10, addresses: v4_vips() });
    }
}

#[test]
fn encodes_exactly_what_keepalived_sends_over_ipv4() {
    for (vector, priority) in [(KEEPALIVED_V4_MASTER, 101), (KEEPALIVED_V4_STOP, 0)] {
        let datagram = hex(vector);
        let payload = IpDatagram::parse(&datagram).unwrap().payload;
        let advert = AdvertisementV3 { vrid: 51, priority, max_advert_int: 10, addresses: v4_vips() };
        assert_eq!(advert.encode(V4_SOURCE.into(), MULTICAST_GROUP.into()), payload, "priority {priority}");
    }
}

#[test]
fn decodes_and_encodes_keepalived_v3_ipv6_adverts() {
    for (vector, priority) in [(KEEPALIVED_V6_MASTER, 101), (KEEPALIVED_V6_STOP, 0)] {
        let datagram = hex(vector);
        let (source, destination, hop_limit, payload) = split_ipv6(&datagram);
        assert_eq!((source, destination, hop_limit), (V6_SOURCE, MULTICAST_GROUP_V6, 255));
        let advert = AdvertisementV3::decode(payload, source.into(), destination.into()).unwrap();
        let expected = AdvertisementV3 { vrid: 61, priority, max_advert_int: 50, addresses: vec![v6_vip()] };
        assert_eq!(advert, expected);
        assert_eq!(expected.encode(source.into(), destination.into()), payload, "priority {priority}");
    }
}

#[test]
fn the_checksum_covers_the_pseudo_header() {
    // The same message from another source, or to a unicast peer instead of the group, no
    // longer checks: the addresses are part of the sum (RFC 5798 section 5.2.8).
    let datagram = hex(KEEPALIVED_V4_MASTER);
    let payload = IpDatagram::parse(&datagram).unwrap().payload;
    let other_source = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12));
    assert!(matches!(AdvertisementV3::decode(payload, other_source, MULTICAST_GROUP.into()), Err(DecodeError::Checksum { .. })));
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12));
    assert!(matches!(AdvertisementV3::decode(payload, V4_SOURCE.into(), peer), Err(DecodeError::Checksum { .. })));
    let advert = AdvertisementV3 { vrid: 51, priority: 101, max_advert_int: 10, addresses: v4_vips() };
    let unicast = advert.encode(V4_SOURCE.into(), peer);
    assert_eq!(AdvertisementV3::decode(&unicast, V4_SOURCE.into(), peer).unwrap(), advert);
}

#[test]
fn refuses_bad_lengths_versions_types_and_sums_without_panicking() {
    let datagram = hex(KEEPALIVED_V4_MASTER);
    let payload = IpDatagram::parse(&datagram).unwrap().payload.to_vec();
    let (s, d) = (IpAddr::from(V4_SOURCE), IpAddr::from(MULTICAST_GROUP));
    for len in 0..payload.len() {
        assert!(AdvertisementV3::decode(&payload[..len], s, d).is_err(), "{len} bytes");
        assert!(Advert::decode(&payload[..len], s, d).is_err(), "{len} bytes");
    }
    let mut v2 = payload.clone();
    v2[0] = 0x21;
    assert_eq!(AdvertisementV3::decode(&v2, s, d), Err(DecodeError::Version(2)));
    let mut kind = payload.clone();
    kind[0] = 0x32;
    assert_eq!(AdvertisementV3::decode(&kind, s, d), Err(DecodeError::Type(2)));
    let mut count = payload.clone();
    count[3] = 3;
    assert!(matches!(AdvertisementV3::decode(&count, s, d), Err(DecodeError::Length { expected: 20, .. })));
    // The same 16 bytes read over IPv6 would need 16-byte addresses.
    let (s6, d6) = (IpAddr::from(V6_SOURCE), IpAddr::from(MULTICAST_GROUP_V6));
    assert!(matches!(AdvertisementV3::decode(&payload, s6, d6), Err(DecodeError::Length { expected: 40, .. })));
    let mut sum = payload;
    sum[7] ^= 1;
    assert!(matches!(AdvertisementV3::decode(&sum, s, d), Err(DecodeError::Checksum { .. })));
}

#[test]
fn reserved_bits_are_ignored_on_receipt_and_zero_on_send() {
    let (s, d) = (IpAddr::from(V4_SOURCE), IpAddr::from(MULTICAST_GROUP));
    let advert = AdvertisementV3 { vrid: 7, priority: 100, max_advert_int: 4095, addresses: v4_vips() };
    let mut bytes = advert.encode(s, d);
    assert_eq!(bytes[4] >> 4, 0);
    bytes[4] |= 0xf0;
    // Fix the sum for the changed word: the receiver must still read 4095.
    bytes[6..8].copy_from_slice(&[0, 0]);
    let sum = pseudo_header_checksum(&bytes, s, d);
    bytes[6..8].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(AdvertisementV3::decode(&bytes, s, d).unwrap(), advert);
    let too_long = AdvertisementV3 { max_advert_int: 5000, ..advert };
    assert_eq!(AdvertisementV3::decode(&too_long.encode(s, d), s, d).unwrap().max_advert_int, MAX_ADVERT_INT);
}

#[test]
fn advert_decodes_by_version_and_keeps_v2_on_ipv4() {
    let (s, d) = (IpAddr::from(V4_SOURCE), IpAddr::from(MULTICAST_GROUP));
    let v3 = AdvertisementV3 { vrid: 51, priority: 101, max_advert_int: 10, addresses: v4_vips() };
    assert_eq!(Advert::decode(&v3.encode(s, d), s, d).unwrap(), Advert::V3(v3.clone()));
    let v2 = Advertisement {
        vrid: 51,
        priority: 101,
        auth: crate::packet::AuthData::None,
        advert_int: 1,
        addresses: vec![Ipv4Addr::new(192, 0, 2, 100)],
    };
    assert_eq!(Advert::decode(&v2.encode(), s, d).unwrap(), Advert::V2(v2.clone()));
    // VRRPv2 has no IPv6 form.
    let (s6, d6) = (IpAddr::from(V6_SOURCE), IpAddr::from(MULTICAST_GROUP_V6));
    assert_eq!(Advert::decode(&v2.encode(), s6, d6), Err(DecodeError::Version(2)));
    assert_eq!(Advert::V3(v3).addresses(), v4_vips());
}
