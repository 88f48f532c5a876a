//! RFC 3768 section 7.1, the receive checks: every malformed or foreign advert is discarded and
//! counted by reason, played on the simulated pair (see `sim::pair`).

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod sim;

use std::net::Ipv4Addr;

use vrrp_core::counters::DropReason;
use vrrp_core::instance::{InstanceConfig, State};
use vrrp_core::packet::{AdvertisementV3, AuthData, MULTICAST_GROUP};

use sim::pair::*;
use sim::{secs, Lan};

#[test]
fn receive_checks_discard_and_count_by_reason() {
    let cases: Vec<(&str, Vec<u8>, DropReason, bool)> = vec![
        (
            "TTL 254",
            datagram(A_IP, 254, |_, ttl| {
                *ttl = 254;
                None
            }),
            DropReason::Ttl,
            false,
        ),
        (
            "bad checksum",
            datagram(A_IP, 254, |a, _| {
                let mut b = a.encode();
                b[7] ^= 1;
                Some(b)
            }),
            DropReason::Checksum,
            true,
        ),
        (
            "version 4",
            datagram(A_IP, 254, |a, _| {
                let mut b = a.encode();
                b[0] = 0x41;
                Some(b)
            }),
            DropReason::Version,
            true,
        ),
        (
            "a VRRPv3 advert to a VRRPv2 instance",
            datagram(A_IP, 254, |a, _| {
                let v3 = AdvertisementV3 {
                    vrid: a.vrid,
                    priority: a.priority,
                    max_advert_int: 100,
                    addresses: a.addresses.iter().map(|&v| v.into()).collect(),
                };
                Some(v3.encode(A_IP.into(), MULTICAST_GROUP.into()))
            }),
            DropReason::Version,
            false,
        ),
        (
            "type 2",
            datagram(A_IP, 254, |a, _| {
                let mut b = a.encode();
                b[0] = 0x22;
                Some(b)
            }),
            DropReason::Type,
            true,
        ),
        ("truncated", datagram(A_IP, 254, |a, _| Some(a.encode()[..12].to_vec())), DropReason::TooShort, true),
        (
            "count 2 with one address",
            datagram(A_IP, 254, |a, _| {
                let mut b = a.encode();
                b[3] = 2;
                Some(b)
            }),
            DropReason::Length,
            true,
        ),
        (
            "wrong password",
            datagram(A_IP, 254, |a, _| {
                a.auth = AuthData::Pass(*b"wrong\0\0\0");
                None
            }),
            DropReason::AuthPassword,
            false,
        ),
        (
            "no authentication",
            datagram(A_IP, 254, |a, _| {
                a.auth = AuthData::None;
                None
            }),
            DropReason::AuthType,
            false,
        ),
        (
            "AH",
            datagram(A_IP, 254, |a, _| {
                a.auth = AuthData::Other { auth_type: 2, data: [0; 8] };
                None
            }),
            DropReason::AuthType,
            false,
        ),
        (
            "advert_int 2",
            datagram(A_IP, 254, |a, _| {
                a.advert_int = 2;
                None
            }),
            DropReason::AdvertInterval,
            false,
        ),
        (
            "other VIPs",
            datagram(A_IP, 254, |a, _| {
                a.addresses = vec![Ipv4Addr::new(192, 0, 2, 200)];
                None
            }),
            DropReason::AddressList,
            false,
        ),
        (
            "VRID 52",
            datagram(A_IP, 254, |a, _| {
                a.vrid = 52;
                None
            }),
            DropReason::UnknownVrid,
            true,
        ),
        ("our own address", datagram(B_IP, 254, |_, _| None), DropReason::OwnAddress, false),
    ];
    let mut lan = Lan::new();
    lan.add_host("B", B_IP, vec![b()]);
    lan.start(0);
    lan.run_to(1.0);
    for (name, packet, reason, unattributed) in cases {
        let host = &lan.hosts[0];
        let before = if unattributed { host.unattributed.get(reason) } else { host.instances[0].stats().drops.get(reason) };
        lan.inject(0, packet);
        let host = &lan.hosts[0];
        let after = if unattributed { host.unattributed.get(reason) } else { host.instances[0].stats().drops.get(reason) };
        assert_eq!(after, before + 1, "{name}: counted as {reason}");
        assert_eq!(lan.state(0), State::Backup, "{name}: no state change");
    }
    lan.run_to(10.0);
    assert_eq!(lan.entered(0, State::Master), Some(secs(MDI_B)), "no bad packet reset the timer");
}

#[test]
fn address_list_mismatch_is_accepted_from_the_owner() {
    let mut lan = Lan::new();
    lan.add_host("B", B_IP, vec![b()]);
    lan.start(0);
    lan.run_to(1.0);
    lan.inject(
        0,
        datagram(A_IP, 255, |a, _| {
            a.addresses = vec![Ipv4Addr::new(192, 0, 2, 200)];
            None
        }),
    );
    lan.run_to(10.0);
    assert_eq!(lan.entered(0, State::Master), Some(secs(1.0 + MDI_B)), "the owner's advert reset the timer");
}

#[test]
fn address_order_does_not_matter() {
    let two = vec![VIP, Ipv4Addr::new(192, 0, 2, 101)];
    let mut lan = Lan::new();
    lan.add_host("B", B_IP, vec![InstanceConfig { vips: two.iter().map(|&a| a.into()).collect(), ..b() }]);
    lan.start(0);
    lan.run_to(1.0);
    lan.inject(
        0,
        datagram(A_IP, 254, |a, _| {
            a.addresses = two.into_iter().rev().collect();
            None
        }),
    );
    assert_eq!(lan.hosts[0].instances[0].stats().drops.total(), 0);
}
