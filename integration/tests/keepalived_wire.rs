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
