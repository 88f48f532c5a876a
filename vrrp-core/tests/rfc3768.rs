//! RFC 3768 rules, one test each, played on a simulated LAN with a virtual clock. Router A is
//! 192.0.2.11 with priority 101, router B is 192.0.2.12 with priority 100 (keepalived's usual
//! pair), advert_int 1 s, PASS authentication, one VIP. With these numbers:
//! Skew_Time(A) = 155/256 s = 0.60546875 s, Master_Down_Interval(A) = 3.60546875 s,
//! Skew_Time(B) = 156/256 s = 0.609375 s,  Master_Down_Interval(B) = 3.609375 s.

#![allow(clippy::unwrap_used)] // a test fails by panicking

mod sim;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sim::pair::*;
use sim::{secs, Lan};
use vrrp_core::instance::{Action, Instance, InstanceConfig, Reason, State};
use vrrp_core::instance::{GarpConfig, InitialState};
use vrrp_core::track::{Tracker, TrackerKind};

#[test]
fn skew_time_and_master_down_interval_are_exact_for_every_priority() {
    // Section 6.1: Skew_Time = (256 - Priority) / 256; Master_Down_Interval = 3 * Adver + Skew.
    for priority in 1..=255u8 {
        let instance = Instance::new(config(A_IP, priority));
        assert_eq!(instance.skew_time() * 256, Duration::from_secs(256 - u64::from(priority)));
        assert_eq!(instance.master_down_interval(), Duration::from_secs(3) + instance.skew_time());
    }
    assert_eq!(Instance::new(b()).master_down_interval(), secs(MDI_B), "priority 100: 3.609375 s, not 3 s or 4 s");
}

#[test]
fn startup_backup_becomes_master_after_master_down_interval() {
    // Section 6.4.1: not the owner -> Backup, Master_Down_Timer = Master_Down_Interval.
    // Section 6.4.2: the timer fires -> send an advert, gratuitous ARP, become Master.
    let mut lan = Lan::new();
    lan.add_host("B", B_IP, vec![b()]);
    lan.start(0);
    assert_eq!(lan.state(0), State::Backup);
    lan.run_to(MDI_B - 0.001);
    assert_eq!(lan.state(0), State::Backup);
    lan.run_to(MDI_B);
    assert_eq!(lan.history(0), vec![(Duration::ZERO, State::Backup), (secs(MDI_B), State::Master)]);
    assert_eq!(lan.hosts[0].garps.first().map(|g| g.0), Some(secs(MDI_B)));
    assert_eq!(lan.vip_holders(0), vec!["B"]);
}

#[test]
fn owner_with_priority_255_becomes_master_at_startup() {
    // Section 6.4.1: "If the Priority = 255 ... transition to the Master state" at once.
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![config(A_IP, 255)]);
    lan.start(0);
    assert_eq!(lan.history(0), vec![(Duration::ZERO, State::Master)]);
    assert_eq!(lan.hosts[0].adverts_sent[0].2.priority(), 255);
}

#[test]
fn initial_state_master_takes_over_at_startup() {
    // keepalived's `state MASTER` / `vrrpd --state MASTER`: start as master, then follow the
    // election like any master.
    let mut lan = Lan::new();
    lan.add_host("B", B_IP, vec![InstanceConfig { initial_state: InitialState::Master, ..b() }]);
    lan.start(0);
    assert_eq!(lan.history(0), vec![(Duration::ZERO, State::Master)]);
    assert_eq!(lan.vip_holders(0), vec!["B"]);
}

#[test]
fn election_the_higher_priority_wins_and_the_backup_keeps_resetting_its_timer() {
    let mut lan = elected_pair(a(), b());
    assert_eq!(lan.history(0), vec![(Duration::ZERO, State::Backup), (secs(MDI_A), State::Master)]);
    assert_eq!(lan.history(1), vec![(Duration::ZERO, State::Backup)]);
    lan.run_to(120.0);
    assert_eq!(lan.history(1).len(), 1, "B never left BACKUP");
    assert_one_master(&lan, "A");
    assert_eq!(lan.hosts[1].instances[0].master().map(|m| (m.address, m.priority)), Some((A_IP.into(), 101)));
}

#[test]
fn master_sends_an_advert_every_advert_interval() {
    // Section 6.4.3: Adver_Timer fires -> send an advert, reset the timer to Advertisement_Interval.
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![config(A_IP, 255)]);
    lan.start(0);
    lan.run_to(5.5);
    let times: Vec<_> = lan.hosts[0].adverts_sent.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(times, (0..=5).map(Duration::from_secs).collect::<Vec<_>>());
    assert!(lan.hosts[0].adverts_sent.iter().all(|(_, _, a)| a.priority() == 255 && a.addresses() == vec![IpAddr::from(VIP)]));
}

#[test]
fn master_crash_backup_takes_over_after_master_down_interval() {
    let mut lan = elected_pair(a(), b());
    // A's adverts go out at MDI_A + k; the last before the crash at 9.60546875.
    lan.crash(0);
    lan.run_to(20.0);
    assert_eq!(lan.entered(1, State::Master), Some(secs(9.60546875 + MDI_B)));
    assert_one_master(&lan, "B");
}

#[test]
fn graceful_stop_sends_priority_zero_and_the_backup_waits_only_skew_time() {
    // Section 6.4.3 Shutdown: send an advert with priority 0. Section 6.4.2: a backup receiving
    // priority 0 sets Master_Down_Timer to Skew_Time.
    let mut lan = elected_pair(a(), b());
    lan.stop(0);
    let last = lan.hosts[0].adverts_sent.last().unwrap();
    assert_eq!((last.0, last.2.priority()), (secs(10.2), 0));
    assert!(!lan.hosts[0].vips_held[0], "the stopping master drops its VIP");
    lan.run_to(20.0);
    assert_eq!(lan.entered(1, State::Master), Some(secs(10.2 + SKEW_B)));
    assert_one_master(&lan, "B");
}

#[test]
fn preemption_back_when_the_higher_priority_router_returns() {
    // Section 6.4.2: a backup with Preempt_Mode discards adverts of lower priority, so its timer
    // runs out and it takes over; the old master sees a higher priority and steps down.
    let mut lan = elected_pair(a(), b());
    lan.crash(0);
    lan.run_to(20.0);
    lan.start(0);
    lan.run_to(40.0);
    assert_eq!(lan.entered(0, State::Master), Some(secs(20.0 + MDI_A)));
    assert_eq!(lan.entered(1, State::Backup), Some(secs(20.0 + MDI_A)));
    let step_down = lan.hosts[1].transitions.last().unwrap();
    assert_eq!(step_down.2.reason, Reason::Preempted { by: A_IP.into(), priority: 101 });
    assert_one_master(&lan, "A");
}

#[test]
fn nopreempt_keeps_the_lower_priority_master() {
    // Section 6.4.2: with Preempt_Mode False every advert resets the timer, whatever its priority.
    let mut lan = elected_pair(InstanceConfig { preempt: false, ..a() }, b());
    lan.crash(0);
    lan.run_to(20.0);
    lan.start(0);
    lan.run_to(120.0);
    assert_eq!(lan.state(0), State::Backup);
    assert_one_master(&lan, "B");
}

#[test]
fn preempt_delay_holds_a_lower_priority_master_for_the_delay() {
    let mut lan = elected_pair(InstanceConfig { preempt_delay: Duration::from_secs(10), ..a() }, b());
    lan.crash(0);
    lan.run_to(20.0);
    // B is master since 13.21484375 and advertises at 13.21484375 + k.
    lan.start(0);
    lan.run_to(60.0);
    // First lower advert seen at 20.21484375; accepted until 30.21484375 (exclusive); the last
    // accepted one at 29.21484375 starts the final Master_Down_Interval.
    assert_eq!(lan.entered(0, State::Master), Some(secs(29.21484375 + MDI_A)));
    assert_one_master(&lan, "A");
}

#[test]
fn equal_priority_tie_break_on_the_higher_primary_address() {
    // Section 6.4.3: equal priority and a greater sender primary address -> Backup.
    let master = |ip| InstanceConfig { initial_state: InitialState::Master, ..config(ip, 100) };
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![master(A_IP)]);
    lan.add_host("B", B_IP, vec![master(B_IP)]);
    lan.start(0);
    lan.start(1);
    lan.run_to(10.0);
    assert_eq!(lan.history(0), vec![(Duration::ZERO, State::Master), (Duration::ZERO, State::Backup)]);
    assert_one_master(&lan, "B");
}

#[test]
fn master_answers_a_priority_zero_advert_at_once() {
    // Section 6.4.3: "If the Priority in the ADVERTISEMENT is Zero, then: Send an ADVERTISEMENT;
    // Reset the Adver_Timer".
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![config(A_IP, 255)]);
    lan.start(0);
    lan.run_to(0.5);
    lan.inject(0, datagram(B_IP, 0, |_, _| None));
    let sent: Vec<_> = lan.hosts[0].adverts_sent.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(sent, vec![Duration::ZERO, secs(0.5)]);
    lan.run_to(1.6);
    assert_eq!(lan.hosts[0].adverts_sent.last().unwrap().0, secs(1.5), "the timer restarted");
}

#[test]
fn answers_to_priority_zero_adverts_are_rate_limited_per_sender() {
    // A forged flood of priority-0 adverts must not make the master a 1:1 reflector onto
    // 224.0.0.18: one answer per sender per advert interval, and a bounded number of senders.
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![config(A_IP, 255)]);
    lan.start(0);
    lan.run_to(0.5);
    let before = lan.hosts[0].adverts_sent.len();
    for _ in 0..100 {
        lan.inject(0, datagram(B_IP, 0, |_, _| None));
    }
    assert_eq!(lan.hosts[0].adverts_sent.len(), before + 1, "one answer to one sender");
    for last in 0..=255u8 {
        lan.inject(0, datagram(Ipv4Addr::new(192, 0, 2, last), 0, |_, _| None));
    }
    assert!(lan.hosts[0].adverts_sent.len() <= before + 9, "a bounded number of senders is answered");
}

#[test]
fn master_never_demotes_itself_over_its_own_priority() {
    let tracked = InstanceConfig { trackers: vec![Tracker::new(TrackerKind::Script, "chk", -100)], ..a() };
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![tracked]);
    lan.start(0);
    lan.run_to(5.0);
    lan.set_tracker(0, 0, 0, false);
    lan.run_to(30.0);
    assert_eq!(lan.state(0), State::Master);
    assert_eq!(lan.hosts[0].adverts_sent.last().unwrap().2.priority(), 1, "adverts carry the lowered priority");
}

#[test]
fn negative_weight_tracker_hands_over_after_the_backups_master_down_interval() {
    // keepalived's classic setup: chk_haproxy weight -20 on a 101/100 pair.
    let tracked = InstanceConfig { trackers: vec![Tracker::new(TrackerKind::Script, "chk_haproxy", -20)], ..a() };
    let mut lan = elected_pair(tracked, b());
    lan.set_tracker(0, 0, 0, false);
    assert_eq!(lan.hosts[0].instances[0].priority(), 81);
    lan.run_to(20.0);
    // B discards A's adverts at 81 from then on; the last accepted was at 9.60546875.
    assert_eq!(lan.entered(1, State::Master), Some(secs(9.60546875 + MDI_B)));
    assert_eq!(lan.entered(0, State::Backup), Some(secs(9.60546875 + MDI_B)));
    assert_one_master(&lan, "B");
}

#[test]
fn weight_smaller_than_the_priority_gap_changes_nothing() {
    // The most common keepalived support question: weight -1 on a 101/90 pair cannot hand over.
    let tracked = InstanceConfig { trackers: vec![Tracker::new(TrackerKind::Script, "chk", -1)], ..a() };
    let mut lan = elected_pair(tracked, config(B_IP, 90));
    lan.set_tracker(0, 0, 0, false);
    lan.run_to(30.0);
    assert_one_master(&lan, "A");
}

#[test]
fn positive_weight_raises_the_priority_while_up() {
    let boosted = InstanceConfig { trackers: vec![Tracker::new(TrackerKind::Script, "chk", 2)], ..b() };
    let mut lan = elected_pair(a(), boosted);
    assert_eq!(lan.hosts[1].instances[0].priority(), 102);
    assert_one_master(&lan, "B");
    lan.set_tracker(1, 0, 0, false);
    lan.run_to(30.0);
    assert_one_master(&lan, "A");
}

#[test]
fn weight_zero_tracker_failure_is_fault_with_a_priority_zero_handoff() {
    let tracked = InstanceConfig { trackers: vec![Tracker::new(TrackerKind::Proxy, "amqp", 0)], ..a() };
    let mut lan = elected_pair(tracked, b());
    lan.set_tracker(0, 0, 0, false);
    assert_eq!(lan.state(0), State::Fault);
    assert_eq!(lan.hosts[0].adverts_sent.last().unwrap().2.priority(), 0);
    assert!(!lan.hosts[0].vips_held[0]);
    assert_eq!(lan.hosts[0].transitions.last().unwrap().2.reason, Reason::Fault(vec!["proxy amqp".into()]));
    lan.run_to(20.0);
    assert_eq!(lan.entered(1, State::Master), Some(secs(10.2 + SKEW_B)), "Skew_Time, not Master_Down_Interval");
    assert_eq!(lan.state(0), State::Fault, "FAULT ignores adverts and stays put");
    assert_one_master(&lan, "B");

    // Recovery: back to BACKUP, then preemption as for a returning router.
    lan.set_tracker(0, 0, 0, true);
    assert_eq!(lan.state(0), State::Backup);
    lan.run_to(40.0);
    assert_eq!(lan.entered(0, State::Master), Some(secs(20.0 + MDI_A)));
    assert_one_master(&lan, "A");
}

#[test]
fn a_fault_at_startup_keeps_the_instance_out_of_elections() {
    let tracked = InstanceConfig {
        trackers: vec![Tracker { up: false, ..Tracker::new(TrackerKind::Interface, "eth0", 0) }],
        initial_state: InitialState::Master,
        ..a()
    };
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![tracked]);
    lan.start(0);
    lan.run_to(30.0);
    assert_eq!(lan.history(0), vec![(Duration::ZERO, State::Fault)]);
    assert!(lan.hosts[0].adverts_sent.is_empty());
}

#[test]
fn split_brain_heals_within_one_advert_interval_and_the_winner_reannounces() {
    let mut lan = elected_pair(a(), b());
    lan.cut_link(0);
    lan.run_to(20.0);
    assert_eq!(lan.state(0), State::Master);
    assert_eq!(lan.state(1), State::Master, "both masters while the link is cut");
    lan.heal_link(0);
    let healed = lan.elapsed();
    lan.run_to(25.0);
    // B's next advert (20.21484375) reaches A, which answers at once; B steps down.
    let b_backup = lan.entered(1, State::Backup).unwrap();
    assert!(b_backup - healed <= Duration::from_secs(1), "one master again within one advert interval");
    assert_eq!(b_backup, secs(20.21484375));
    assert!(lan.hosts[0].garps.iter().any(|g| g.0 == b_backup), "the winner re-announces the VIP");
    assert_one_master(&lan, "A");
}

#[test]
fn answers_to_a_lower_priority_master_are_rate_limited() {
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![a()]);
    lan.start(0);
    lan.run_to(MDI_A + 0.1);
    let before = lan.hosts[0].adverts_sent.len();
    for _ in 0..100 {
        lan.inject(0, datagram(B_IP, 50, |_, _| None));
    }
    assert_eq!(lan.hosts[0].adverts_sent.len(), before + 1, "a flood of lower adverts earns one answer");
}

#[test]
fn gratuitous_arp_follows_keepalived_delay_repeat_and_refresh() {
    let garp = GarpConfig {
        master_delay: Duration::from_secs(5),
        master_repeat: 5,
        master_refresh: Duration::from_secs(10),
        master_refresh_repeat: 2,
    };
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![InstanceConfig { garp, ..config(A_IP, 255) }]);
    lan.start(0);
    lan.run_to(30.0);
    let garps: Vec<_> = lan.hosts[0].garps.iter().map(|&(t, _, n)| (t, n)).collect();
    let s = Duration::from_secs;
    assert_eq!(garps, vec![(s(0), 5), (s(5), 5), (s(15), 2), (s(25), 2)]);
}

#[test]
fn no_second_gratuitous_arp_burst_when_the_delay_is_zero() {
    let garp = GarpConfig { master_delay: Duration::ZERO, ..GarpConfig::default() };
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![InstanceConfig { garp, ..config(A_IP, 255) }]);
    lan.start(0);
    lan.run_to(30.0);
    assert_eq!(lan.hosts[0].garps.len(), 1);
}

/// Section 7.1: each malformed or mismatched advert is discarded and counted. The lone backup
/// B would reset its timer on a valid priority-254 advert; none of these may, so B still takes
/// over at exactly MDI(B).
#[test]
fn shutdown_from_backup_sends_nothing_and_reports_stop() {
    let mut lan = elected_pair(a(), b());
    let sent = lan.hosts[1].adverts_sent.len();
    lan.stop(1);
    assert_eq!(lan.hosts[1].adverts_sent.len(), sent);
    assert_eq!(lan.hosts[1].transitions.last().unwrap().2.to, State::Initialize);
    assert_one_master(&lan, "A");
}

#[test]
fn actions_on_becoming_master_add_vips_before_announcing_them() {
    let mut instance = Instance::new(config(A_IP, 255));
    instance.startup(std::time::Instant::now());
    let actions: Vec<_> = std::iter::from_fn(|| instance.poll_action()).collect();
    assert!(matches!(actions[0], Action::AddVips));
    assert!(matches!(actions[1], Action::SendAdvert(_)));
    assert!(matches!(actions[2], Action::GratuitousArp { count: 5 }));
    assert!(matches!(&actions[3], Action::Transition(t) if t.to == State::Master && t.priority == 255));
}

#[test]
fn several_instances_on_one_interface_are_independent() {
    // Active-active: VI_1 master on A, VI_2 master on B.
    let vi2 =
        |ip, priority| InstanceConfig { priority, ..InstanceConfig::new("VI_2", 52, ip, vec![Ipv4Addr::new(192, 0, 2, 200)]) };
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![a(), vi2(A_IP, 100)]);
    lan.add_host("B", B_IP, vec![b(), vi2(B_IP, 101)]);
    lan.start(0);
    lan.start(1);
    lan.run_to(10.0);
    assert_eq!(lan.vip_holders(0), vec!["A"]);
    assert_eq!(lan.vip_holders(1), vec!["B"]);
    lan.crash(1);
    lan.run_to(20.0);
    assert_eq!(lan.vip_holders(1), vec!["A"]);
}

#[test]
fn resign_hands_the_vip_over_within_skew_time_and_stays_backup() {
    // Maintenance (`vrrpd ctl resign`): priority 0 like a graceful stop, but the daemon runs on.
    let mut lan = elected_pair(a(), b());
    lan.resign(0);
    assert_eq!(lan.state(0), State::Backup);
    assert_eq!(lan.hosts[0].adverts_sent.last().unwrap().2.priority(), 0);
    assert_eq!(lan.hosts[0].transitions.last().unwrap().2.reason, Reason::Resigned);
    lan.run_to(60.0);
    assert_eq!(lan.entered(1, State::Master), Some(secs(10.2 + SKEW_B)));
    assert_eq!(lan.state(0), State::Backup, "a resigned instance does not preempt");
    assert_one_master(&lan, "B");
}

#[test]
fn a_resigned_backup_never_takes_over() {
    let mut lan = elected_pair(a(), b());
    lan.resign(1);
    lan.crash(0);
    lan.run_to(60.0);
    assert_eq!(lan.state(1), State::Backup);
    assert!(lan.vip_holders(0).is_empty(), "the operator asked for it: nobody holds the VIP");
}

#[test]
fn resume_rejoins_the_election() {
    let mut lan = elected_pair(a(), b());
    lan.resign(0);
    lan.run_to(20.0);
    lan.resume(0);
    lan.run_to(40.0);
    // A discards B's lower adverts and preempts after its Master_Down_Interval.
    assert_eq!(lan.entered(0, State::Master), Some(secs(20.0 + MDI_A)));
    assert_one_master(&lan, "A");
}

#[test]
fn reconfiguring_a_master_keeps_it_master_and_announces_the_change() {
    // A reload that adds a VIP on both hosts: no election, no flap.
    let two: Vec<IpAddr> = vec![VIP.into(), Ipv4Addr::new(192, 0, 2, 101).into()];
    let mut lan = elected_pair(a(), b());
    let transitions = lan.hosts[0].transitions.len();
    lan.reconfigure(1, InstanceConfig { vips: two.clone(), ..b() });
    lan.reconfigure(0, InstanceConfig { vips: two.clone(), ..a() });
    assert_eq!(lan.hosts[0].transitions.len(), transitions, "no transition");
    let last = lan.hosts[0].adverts_sent.last().unwrap();
    assert_eq!((last.0, last.2.addresses()), (secs(10.2), two.clone()), "the new VIP list goes out at once");
    assert_eq!(lan.hosts[0].garps.last().unwrap().0, secs(10.2), "and is announced");
    lan.run_to(30.0);
    assert_one_master(&lan, "A");
    assert_eq!(lan.hosts[1].instances[0].stats().drops.total(), 0, "B accepts the new list");
}

#[test]
fn reconfiguring_keeps_tracker_status_and_applies_new_weights() {
    let tracked = |weight| InstanceConfig { trackers: vec![Tracker::new(TrackerKind::Script, "chk", weight)], ..a() };
    let mut lan = elected_pair(tracked(-20), b());
    lan.set_tracker(0, 0, 0, false);
    assert_eq!(lan.hosts[0].instances[0].priority(), 81);
    // The new weight applies to the status the tracker already had (down).
    lan.reconfigure(0, tracked(-5));
    assert_eq!(lan.hosts[0].instances[0].priority(), 96);
    assert_eq!(lan.hosts[0].adverts_sent.last().unwrap().2.priority(), 96);
    assert_eq!(lan.state(0), State::Master, "a master never demotes itself");
}

#[test]
fn reconfiguring_with_a_weight_zero_tracker_down_is_fault() {
    let mut lan = elected_pair(InstanceConfig { trackers: vec![Tracker::new(TrackerKind::Script, "chk", -20)], ..a() }, b());
    lan.set_tracker(0, 0, 0, false);
    lan.reconfigure(0, InstanceConfig { trackers: vec![Tracker::new(TrackerKind::Script, "chk", 0)], ..a() });
    assert_eq!(lan.state(0), State::Fault);
    lan.run_to(20.0);
    assert_eq!(lan.entered(1, State::Master), Some(secs(10.2 + SKEW_B)));
}

#[test]
fn a_master_stopped_longer_than_a_backup_waits_yields_and_preempts_back_in_order() {
    // SIGSTOP of the master (a frozen VM): B takes over after its Master_Down_Interval. When A
    // runs again its VIPs are still configured and clients follow B; A must not keep them as
    // if nothing happened (two holders, clients on B). It yields, then preempts back as any
    // returning higher-priority router does, announced with gratuitous ARP.
    let mut lan = elected_pair(a(), b());
    let frozen_at = lan.elapsed().as_secs_f64();
    lan.freeze(0);
    lan.run_to(frozen_at + 6.0);
    assert_eq!(lan.state(1), State::Master, "B took over while A was stopped");
    lan.thaw(0);
    assert_eq!(lan.state(0), State::Backup, "A yields on waking");
    assert!(matches!(lan.hosts[0].transitions.last().unwrap().2.reason, Reason::Stalled(_)));
    assert_eq!(lan.vip_holders(0), vec!["B"], "only B holds the VIP");
    let thawed = lan.elapsed();
    lan.run_to(frozen_at + 12.0);
    assert_one_master(&lan, "A");
    let back = lan.entered(0, State::Master).unwrap();
    assert!(back > thawed, "A preempted back after waking");
    assert!(lan.hosts[0].garps.iter().any(|(at, _, _)| *at == back), "and announced it");
}

#[test]
fn a_lone_master_stopped_and_resumed_is_back_within_an_advert_interval_and_skew() {
    // No backup took over (there is none, or it was frozen too): yielding must not cost a full
    // Master_Down_Interval of outage.
    let mut lan = Lan::new();
    lan.add_host("A", A_IP, vec![a()]);
    lan.start(0);
    lan.run_to(MDI_A + 0.1);
    assert_eq!(lan.state(0), State::Master);
    lan.freeze(0);
    lan.run_to(MDI_A + 10.0);
    lan.thaw(0);
    assert_eq!(lan.state(0), State::Backup);
    let thawed = lan.elapsed();
    lan.run_to(MDI_A + 14.0);
    let back = lan.entered(0, State::Master).unwrap() - thawed;
    assert_eq!(back, secs(1.0 + 155.0 / 256.0), "advert interval + Skew_Time, not {MDI_A} s");
}

/// The reason B gave for its last transition to MASTER.
fn takeover_reason(lan: &Lan, h: usize) -> Reason {
    lan.hosts[h].transitions.iter().rev().find(|t| t.2.to == State::Master).map(|t| t.2.reason.clone()).unwrap()
}

#[test]
fn a_master_that_falls_silent_is_named_by_the_takeover() {
    // Section 6.4.2: Master_Down_Timer fires. The master whose adverts stopped is the one whose
    // broker sessions the new master fences.
    let mut lan = elected_pair(a(), b());
    lan.cut_link(0);
    lan.run_to(20.0);
    assert_eq!(lan.state(1), State::Master);
    assert_eq!(takeover_reason(&lan, 1), Reason::MasterDown { silent: Some(std::net::IpAddr::V4(A_IP)) });
    assert_eq!(takeover_reason(&lan, 1).to_string(), "master down timer expired (192.0.2.11 fell silent)");
}

#[test]
fn a_handoff_a_start_or_a_preemption_names_no_silent_master() {
    // Priority 0 (section 6.4.2, "If the Priority is zero"): the master resigned and closed its
    // sessions itself.
    let mut lan = elected_pair(a(), b());
    lan.stop(0);
    lan.run_to(20.0);
    assert_eq!(lan.state(1), State::Master);
    assert_eq!(takeover_reason(&lan, 1), Reason::MasterDown { silent: None });

    // Nobody heard before the timer fired: no master to name.
    let mut lan = Lan::new();
    lan.add_host("B", B_IP, vec![b()]);
    lan.start(0);
    lan.run_to(MDI_B + 0.1);
    assert_eq!(takeover_reason(&lan, 0), Reason::MasterDown { silent: None });

    // A higher-priority router preempting a live lower master: the lower one is heard to the
    // end and steps down (closing its sessions) when it hears the new master.
    let mut lan = Lan::new();
    lan.add_host("B", B_IP, vec![b()]);
    lan.start(0);
    lan.run_to(MDI_B + 1.0);
    lan.add_host("A", A_IP, vec![a()]);
    lan.start(1);
    lan.run_to(MDI_B + 10.0);
    assert_eq!(lan.state(1), State::Master);
    assert_eq!(takeover_reason(&lan, 1), Reason::MasterDown { silent: None });
}

#[test]
fn preempting_a_master_that_dropped_below_us_names_no_silent_master() {
    // B followed A (101); A's script fails (-20): A advertises 81, B (100, preempt) discards
    // those adverts and takes over when its timer fires. A was heard to the end: it steps down
    // and closes its own sessions, nothing to fence.
    let tracked = InstanceConfig { trackers: vec![Tracker::new(TrackerKind::Script, "chk", -20)], ..a() };
    let mut lan = elected_pair(tracked, b());
    assert_eq!(lan.state(0), State::Master);
    lan.set_tracker(0, 0, 0, false);
    lan.run_to(20.0);
    assert_eq!(lan.state(1), State::Master);
    assert_eq!(lan.state(0), State::Backup);
    assert_eq!(takeover_reason(&lan, 1), Reason::MasterDown { silent: None });
}
