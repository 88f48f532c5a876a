//! The pair every RFC scenario starts from: router A (192.0.2.11, priority 101) and router B
//! (192.0.2.12, priority 100), VRID 51, advert_int 1 s, PASS authentication, one VIP.

use std::net::Ipv4Addr;

use vrrp_core::instance::{InstanceConfig, State};
use vrrp_core::packet::{encode_ipv4, Advertisement, AuthData, MULTICAST_GROUP, TTL};

use super::Lan;

pub const A_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
pub const B_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub const MDI_A: f64 = 3.60546875;
pub const MDI_B: f64 = 3.609375;
pub const SKEW_B: f64 = 0.609375;

pub fn config(ip: Ipv4Addr, priority: u8) -> InstanceConfig {
    InstanceConfig { priority, auth: AuthData::Pass(*b"s3cret\0\0"), ..InstanceConfig::new("VI_1", 51, ip, vec![VIP]) }
}

pub fn a() -> InstanceConfig {
    config(A_IP, 101)
}

pub fn b() -> InstanceConfig {
    config(B_IP, 100)
}

/// A and B started together; A wins the first election at MDI(A).
pub fn elected_pair(a: InstanceConfig, b: InstanceConfig) -> Lan {
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![a]);
    lan.add_host("B", B_IP, vec![b]);
    lan.start(0);
    lan.start(1);
    lan.run_to(10.2);
    lan
}

pub fn assert_one_master(lan: &Lan, name: &str) {
    assert_eq!(lan.vip_holders(0), vec![name], "exactly one host holds the VIP");
    let masters: Vec<_> = (0..lan.hosts.len()).filter(|&h| lan.hosts[h].running && lan.state(h) == State::Master).collect();
    assert_eq!(masters.len(), 1, "exactly one MASTER");
}

/// A well-formed advert for VRID 51 from `source`, as a datagram; `edit` may spoil any field.
pub fn datagram(source: Ipv4Addr, priority: u8, edit: impl FnOnce(&mut Advertisement, &mut u8) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut advert =
        Advertisement { vrid: 51, priority, auth: AuthData::Pass(*b"s3cret\0\0"), advert_int: 1, addresses: vec![VIP] };
    let mut ttl = TTL;
    let payload = edit(&mut advert, &mut ttl).unwrap_or_else(|| advert.encode());
    encode_ipv4(source, MULTICAST_GROUP, ttl, &payload)
}
