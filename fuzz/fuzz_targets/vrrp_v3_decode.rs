//! The VRRPv3 decoder (and the version dispatch in front of it) on any message, over IPv4 and
//! IPv6 pseudo-headers: never a panic, and what decodes re-encodes to the same bytes' meaning.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vrrp_core::packet::{Advert, AdvertisementV3, MULTICAST_GROUP, MULTICAST_GROUP_V6};

fuzz_target!(|data: &[u8]| {
    let pairs = [
        (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)), IpAddr::V4(MULTICAST_GROUP)),
        (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x160a)), IpAddr::V6(MULTICAST_GROUP_V6)),
    ];
    for (source, destination) in pairs {
        if let Ok(advert) = AdvertisementV3::decode(data, source, destination) {
            let again = AdvertisementV3::decode(&advert.encode(source, destination), source, destination)
                .expect("an encoded advert decodes");
            assert_eq!(again, advert);
        }
        if let Ok(advert) = Advert::decode(data, source, destination) {
            let again = Advert::decode(&advert.encode(source, destination), source, destination).expect("re-decodes");
            assert_eq!(again, advert);
        }
    }
});
