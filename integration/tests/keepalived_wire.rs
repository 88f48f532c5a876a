//! The codec against what keepalived 2.2.7 puts on the wire right now: adverts captured live in
//! a network namespace decode to what its configuration says, and re-encode to the same bytes.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::net::Ipv4Addr;

use integration::{hex, netns_available, run_script};
use vrrp_core::packet::{Advertisement, AuthData, IpDatagram, MULTICAST_GROUP, TTL};

#[test]
fn live_keepalived_adverts_decode_and_reencode_byte_for_byte() {
    if !netns_available("live_keepalived_adverts_decode_and_reencode_byte_for_byte", &["keepalived", "tcpdump", "ip"]) {
        return;
    }
    let output = run_script("capture-keepalived.sh", &["3"]);
    let datagrams: Vec<Vec<u8>> = output.lines().map(hex).collect();
    assert_eq!(datagrams.len(), 4, "3 adverts as MASTER and the priority-0 advert on stop:\n{output}");
    for (n, datagram) in datagrams.iter().enumerate() {
        let ip = IpDatagram::parse(datagram).unwrap();
        assert_eq!((ip.source, ip.destination, ip.ttl), (Ipv4Addr::new(192, 0, 2, 11), MULTICAST_GROUP, TTL));
        let advert = Advertisement::decode(ip.payload).unwrap();
        let expected_priority = if n == 3 { 0 } else { 101 };
        assert_eq!(
            advert,
            Advertisement {
                vrid: 51,
                priority: expected_priority,
                auth: AuthData::Pass(*b"s3cret\0\0"),
                advert_int: 1,
                addresses: vec![Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 101)],
            }
        );
        assert_eq!(advert.encode(), ip.payload);
    }
}

/// The IPv6 header of a captured datagram: source, destination, hop limit, payload.
fn split_ipv6(datagram: &[u8]) -> (std::net::Ipv6Addr, std::net::Ipv6Addr, u8, &[u8]) {
    let address = |at: usize| std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&datagram[at..at + 16]).unwrap());
    assert_eq!(datagram[6], 112, "next header is VRRP");
    (address(8), address(24), datagram[7], &datagram[40..])
}

#[test]
fn live_keepalived_v3_adverts_over_ipv4_and_ipv6_decode_and_reencode_byte_for_byte() {
    if !netns_available(
        "live_keepalived_v3_adverts_over_ipv4_and_ipv6_decode_and_reencode_byte_for_byte",
        &["keepalived", "tcpdump", "ip"],
    ) {
        return;
    }
    use std::net::IpAddr;
    use vrrp_core::packet::{AdvertisementV3, MULTICAST_GROUP_V6};

    let output = run_script("capture-keepalived.sh", &["2", "v3"]);
    let datagrams: Vec<Vec<u8>> = output.lines().map(hex).collect();
    let (v4, v6): (Vec<_>, Vec<_>) = datagrams.iter().partition(|d| d[0] >> 4 == 4);
    assert!(v4.len() >= 3 && v6.len() >= 3, "adverts of both families and a priority-0 advert each:\n{output}");
    for (n, datagram) in v4.iter().enumerate() {
        let ip = IpDatagram::parse(datagram).unwrap();
        assert_eq!((ip.source, ip.destination, ip.ttl), (Ipv4Addr::new(192, 0, 2, 11), MULTICAST_GROUP, TTL));
        let (source, destination) = (IpAddr::from(ip.source), IpAddr::from(ip.destination));
        let advert = AdvertisementV3::decode(ip.payload, source, destination).unwrap();
        let priority = if n + 1 == v4.len() { 0 } else { 101 };
        let addresses = vec![IpAddr::from(Ipv4Addr::new(192, 0, 2, 100)), IpAddr::from(Ipv4Addr::new(192, 0, 2, 101))];
        assert_eq!(advert, AdvertisementV3 { vrid: 51, priority, max_advert_int: 10, addresses });
        assert_eq!(advert.encode(source, destination), ip.payload);
    }
    for (n, datagram) in v6.iter().enumerate() {
        let (source, destination, hop_limit, payload) = split_ipv6(datagram);
        assert_eq!(
            (source.segments()[0], destination, hop_limit),
            (0xfe80, MULTICAST_GROUP_V6, 255),
            "from the link-local address"
        );
        let advert = AdvertisementV3::decode(payload, source.into(), destination.into()).unwrap();
        let priority = if n + 1 == v6.len() { 0 } else { 101 };
        let addresses = vec!["2001:db8::100".parse::<IpAddr>().unwrap()];
        assert_eq!(advert, AdvertisementV3 { vrid: 61, priority, max_advert_int: 50, addresses });
        assert_eq!(advert.encode(source.into(), destination.into()), payload);
    }
}
