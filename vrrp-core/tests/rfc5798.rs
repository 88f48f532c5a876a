//! RFC 5798 (VRRPv3) rules, one test each: the centisecond timers, Master_Adver_Interval learned
//! from the master, the version check, and IPv6 virtual routers. The pair is the RFC 3768 one
//! (A 192.0.2.11 priority 101, B 192.0.2.12 priority 100) speaking VRRPv3 with a 100 ms
//! interval, as keepalived's `vrrp_version 3` / `advert_int 0.1`:
//! Skew_Time(A) = 155 x 0.1 / 256 s = 60.546875 ms, Master_Down_Interval(A) = 360.546875 ms;
//! Skew_Time(B) = 156 x 0.1 / 256 s = 60.9375 ms,   Master_Down_Interval(B) = 360.9375 ms.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod sim;

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use sim::pair::*;
use sim::Lan;
use vrrp_core::counters::{DropCounters, DropReason};
use vrrp_core::instance::{Action, Instance, InstanceConfig, Reason, State, Version};
use vrrp_core::packet::{encode_ipv4, Advert, AdvertisementV3, MULTICAST_GROUP, MULTICAST_GROUP_V6, TTL};
use vrrp_core::receive::{receive_message, Received};

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

fn nanos(n: u64) -> Duration {
    Duration::from_nanos(n)
}

fn v3(ip: std::net::Ipv4Addr, priority: u8, interval: Duration) -> InstanceConfig {
    InstanceConfig { priority, version: Version::V3, advert_interval: interval, ..InstanceConfig::new("VI_1", 51, ip, [VIP]) }
}

const MDI_A_V3: u64 = 360_546_875;
const MDI_B_V3: u64 = 360_937_500;

fn elected_v3_pair(a: InstanceConfig, b: InstanceConfig) -> Lan {
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![a]);
    lan.add_host("B", B_IP, vec![b]);
    lan.start(0);
    lan.start(1);
    lan.run_to(2.0);
    lan
}

#[test]
fn skew_time_and_master_down_interval_scale_with_the_interval() {
    // Section 6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256;
    // Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_Time.
    for priority in 1..=255u8 {
        let instance = Instance::new(v3(A_IP, priority, ms(100)));
        assert_eq!(instance.skew_time() * 256, ms(100) * (256 - u32::from(priority)));
        assert_eq!(instance.master_down_interval(), ms(300) + instance.skew_time());
    }
    assert_eq!(Instance::new(v3(B_IP, 100, ms(100))).master_down_interval(), nanos(MDI_B_V3));
}

#[test]
fn the_first_election_takes_one_master_down_interval_of_100_ms_adverts() {
    let lan = elected_v3_pair(v3(A_IP, 101, ms(100)), v3(B_IP, 100, ms(100)));
    assert_eq!(lan.entered(0, State::Master), Some(nanos(MDI_A_V3)));
    assert_one_master(&lan, "A");
    let times: Vec<_> = lan.hosts[0].adverts_sent.iter().map(|(t, _, _)| *t).take(3).collect();
    assert_eq!(times, vec![nanos(MDI_A_V3), nanos(MDI_A_V3) + ms(100), nanos(MDI_A_V3) + ms(200)]);
    assert!(matches!(&lan.hosts[0].adverts_sent[0].2, Advert::V3(a) if a.max_advert_int == 10), "10 centiseconds on the wire");
}

#[test]
fn a_cut_master_link_moves_the_vip_within_master_down_interval() {
    // Section 6.4.2: the backup's Master_Down_Timer fires 3 intervals and a skew after the
    // last advert it heard: 361 ms with 100 ms adverts, where VRRPv2 needs 3.6 s.
    let mut lan = elected_v3_pair(v3(A_IP, 101, ms(100)), v3(B_IP, 100, ms(100)));
    lan.cut_link(0);
    let last = lan.hosts[0].adverts_sent.last().unwrap().0;
    lan.run_to(4.0);
    let took_over = lan.entered(1, State::Master).unwrap();
    assert_eq!(took_over, last + nanos(MDI_B_V3));
}

#[test]
fn a_stopping_master_hands_over_after_skew_time() {
    // Section 6.4.3, Shutdown: priority 0; section 6.4.2: the backup waits Skew_Time only.
    let mut lan = elected_v3_pair(v3(A_IP, 101, ms(100)), v3(B_IP, 100, ms(100)));
    let stopped = lan.elapsed();
    lan.stop(0);
    lan.run_to(3.0);
    assert_eq!(lan.entered(1, State::Master), Some(stopped + nanos(60_937_500)));
}

#[test]
fn a_backup_learns_master_adver_interval_from_the_master() {
    // Section 6.4.2: "Set Master_Adver_Interval to Adver Interval contained in the
    // ADVERTISEMENT; Recompute the Master_Down_Interval". B is configured with 100 ms but
    // follows A's 1 s adverts without taking over between them, and waits 3 x 1 s + skew.
    // (Started together, B is master first: A's first election takes 3.6 s.)
    let mut lan = elected_v3_pair(v3(A_IP, 101, ms(1000)), v3(B_IP, 100, ms(100)));
    lan.run_to(5.0);
    let settled = lan.history(1).len();
    lan.run_to(20.0);
    assert_one_master(&lan, "A");
    assert_eq!(lan.history(1).len(), settled, "B never took over between A's adverts: {:?}", lan.history(1));
    let b = &lan.hosts[1].instances[0];
    assert_eq!((b.master_adver_interval(), b.master_down_interval()), (ms(1000), nanos(3_609_375_000)));
    lan.cut_link(0);
    let last = lan.hosts[0].adverts_sent.last().unwrap().0;
    lan.run_to(30.0);
    assert_eq!(lan.entered(1, State::Master), Some(last + nanos(3_609_375_000)));
    // As master it advertises its own interval again.
    assert!(matches!(&lan.hosts[1].adverts_sent.last().unwrap().2, Advert::V3(a) if a.max_advert_int == 10));
}

#[test]
fn a_master_preempted_learns_the_new_masters_interval() {
    // Section 6.4.3: a master that hears a higher priority sets Master_Adver_Interval from the
    // advert and becomes backup. A (1 s) is master alone; B (100 ms, priority 101) preempts.
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![v3(A_IP, 100, ms(1000))]);
    lan.add_host("B", B_IP, vec![v3(B_IP, 101, ms(100))]);
    lan.start(0);
    lan.run_to(5.0);
    lan.start(1);
    lan.run_to(10.0);
    assert_one_master(&lan, "B");
    let a = &lan.hosts[0].instances[0];
    assert_eq!(a.master_adver_interval(), ms(100));
    assert_eq!(a.master_down_interval(), nanos(MDI_B_V3), "priority 100 with B's 100 ms");
    lan.crash(1);
    let crashed = lan.elapsed();
    lan.run_to(12.0);
    let took_over = lan.entered(0, State::Master).unwrap();
    assert!(took_over - crashed <= ms(363), "A took over {:?} after B vanished", took_over - crashed);
}

#[test]
fn a_version_2_advert_is_dropped_by_a_version_3_router() {
    // Section 7.1: "MUST verify that the VRRP version is 3"; mixed versions are not interworked.
    let mut lan = Lan::new();
    lan.add_host("B", B_IP, vec![v3(B_IP, 100, ms(100))]);
    lan.start(0);
    lan.inject(0, datagram(A_IP, 254, |_, _| None));
    assert_eq!(lan.hosts[0].instances[0].stats().drops.get(DropReason::Version), 1);
    lan.run_to(1.0);
    assert_eq!(lan.state(0), State::Master, "the v2 master was ignored");
}

#[test]
fn a_zero_interval_is_refused() {
    let mut lan = Lan::new();
    lan.add_host("B", B_IP, vec![v3(B_IP, 100, ms(100))]);
    lan.start(0);
    let zero = AdvertisementV3 { vrid: 51, priority: 254, max_advert_int: 0, addresses: vec![VIP.into()] };
    lan.inject(0, encode_ipv4(A_IP, MULTICAST_GROUP, TTL, &zero.encode(A_IP.into(), MULTICAST_GROUP.into())));
    assert_eq!(lan.hosts[0].instances[0].stats().drops.get(DropReason::AdvertInterval), 1);
}

const LL_A: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x11);
const LL_B: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x12);

fn v6_vip() -> IpAddr {
    "2001:db8::100".parse().unwrap()
}

fn v6(ip: Ipv6Addr, priority: u8) -> InstanceConfig {
    InstanceConfig { priority, version: Version::V3, advert_interval: ms(100), ..InstanceConfig::new("VI_6", 51, ip, [v6_vip()]) }
}

fn v6_message(source: Ipv6Addr, priority: u8) -> Vec<u8> {
    AdvertisementV3 { vrid: 51, priority, max_advert_int: 10, addresses: vec![v6_vip()] }
        .encode(source.into(), MULTICAST_GROUP_V6.into())
}

fn received(source: Ipv6Addr, hop_limit: u8, payload: &[u8]) -> Received<'_> {
    Received { source: source.into(), destination: MULTICAST_GROUP_V6.into(), ttl: hop_limit, payload }
}

#[test]
fn an_ipv6_master_with_equal_priority_yields_to_the_higher_link_local_address() {
    // Section 6.4.3: equal priority, "the primary IPvX address of the sender is greater than
    // the local primary IPvX address" -> Backup. For IPv6 the primary address is link-local.
    let now = Instant::now();
    let mut instances =
        vec![Instance::new(InstanceConfig { initial_state: vrrp_core::instance::InitialState::Master, ..v6(LL_A, 100) })];
    instances[0].startup(now);
    assert_eq!(instances[0].state(), State::Master);
    let sent: Vec<_> = std::iter::from_fn(|| instances[0].poll_action()).collect();
    assert!(sent.iter().any(|a| matches!(a, Action::SendAdvert(Advert::V3(v)) if v.addresses == vec![v6_vip()])));
    let mut unattributed = DropCounters::default();
    let lower = v6_message(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x10), 100);
    receive_message(now, received(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x10), 255, &lower), &mut instances, &mut unattributed)
        .unwrap();
    assert_eq!(instances[0].state(), State::Master, "a lower address does not win");
    let higher = v6_message(LL_B, 100);
    receive_message(now, received(LL_B, 255, &higher), &mut instances, &mut unattributed).unwrap();
    assert_eq!(instances[0].state(), State::Backup);
    let reason = std::iter::from_fn(|| instances[0].poll_action())
        .find_map(|a| match a {
            Action::Transition(t) => Some(t.reason),
            _ => None,
        })
        .unwrap();
    assert_eq!(reason, Reason::Preempted { by: LL_B.into(), priority: 100 });
}

#[test]
fn ipv6_adverts_need_hop_limit_255_and_reach_only_ipv6_routers() {
    // Section 7.1: "MUST verify that the IPv6 Hop Limit is 255". IPv4 and IPv6 virtual routers
    // are separate VRID spaces (section 5.2.3): an IPv6 advert for VRID 51 is not for the IPv4
    // VRID 51.
    let now = Instant::now();
    let mut instances = vec![Instance::new(v3(B_IP, 100, ms(100))), Instance::new(v6(LL_B, 100))];
    instances.iter_mut().for_each(|i| i.startup(now));
    let mut unattributed = DropCounters::default();
    let message = v6_message(LL_A, 200);
    let hop_64 = receive_message(now, received(LL_A, 64, &message), &mut instances, &mut unattributed).unwrap_err();
    assert_eq!((hop_64.reason, hop_64.instance), (DropReason::Ttl, Some(1)));
    assert_eq!(receive_message(now, received(LL_A, 255, &message), &mut instances, &mut unattributed), Ok(1));
    assert_eq!(instances[1].master().map(|m| m.address), Some(LL_A.into()));
    assert_eq!(instances[0].stats().adverts_received, 0, "the IPv4 router never saw it");
}
