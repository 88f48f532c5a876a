//! One virtual router: the RFC 3768 section 6 state machine, without I/O and without a clock.
//!
//! Inputs are method calls that take `now` ([`Instance::startup`], [`Instance::handle_advert`],
//! [`Instance::handle_timeout`], [`Instance::set_tracker`], [`Instance::shutdown`]); outputs are
//! polled: [`Instance::poll_action`] for what to do on the wire and on the host, and
//! [`Instance::poll_timeout`] for when to call `handle_timeout` next. The driver owns sockets,
//! netlink and scripts; this file owns every protocol decision.

mod model;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use self::model::{
    Action, GarpConfig, InitialState, InstanceConfig, InstanceStats, MasterInfo, Reason, State, Transition, Version,
};
use crate::counters::DropReason;
use crate::packet::v3::MAX_ADVERT_INT;
use crate::packet::{Advert, Advertisement, AdvertisementV3, AuthData, TTL};
use crate::track::{Reading, Tracker, TrackerKind, Trackers};

/// The pending gratuitous ARP burst after becoming master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GarpPhase {
    /// The second burst, `garp_master_delay` after the transition.
    Delayed,
    /// Periodic refresh every `garp_master_refresh`.
    Refresh,
}

pub struct Instance {
    config: InstanceConfig,
    trackers: Trackers,
    state: State,
    master_down_at: Option<Instant>,
    advert_at: Option<Instant>,
    garp_at: Option<(Instant, GarpPhase)>,
    /// When a lower-priority master was first seen while preempt_delay holds us back.
    lower_master_since: Option<Instant>,
    /// When each sender was last answered out of turn, to rate-limit the answers.
    replies: ReplyLimiter,
    master: Option<MasterInfo>,
    /// The master's last advert was discarded because this router outranks it: it is alive, and
    /// the Master_Down_Timer firing is a preemption, not a master falling silent.
    outranked: bool,
    /// VRRPv3's Master_Adver_Interval (RFC 5798 section 6.1): the interval of the master we
    /// follow, learned from its adverts; our own Advertisement_Interval otherwise. VRRPv2
    /// never learns it (the intervals must match).
    master_adver_interval: Duration,
    /// Held in BACKUP by an operator: never takes over until resumed.
    resigned: bool,
    last_transition: Option<Instant>,
    stats: InstanceStats,
    actions: VecDeque<Action>,
}

impl Instance {
    pub fn new(mut config: InstanceConfig) -> Self {
        config.vips.sort_unstable();
        let trackers = Trackers::new(std::mem::take(&mut config.trackers));
        let master_adver_interval = config.advert_interval;
        Instance {
            config,
            trackers,
            state: State::Initialize,
            master_down_at: None,
            advert_at: None,
            garp_at: None,
            lower_master_since: None,
            replies: ReplyLimiter::default(),
            master: None,
            outranked: false,
            master_adver_interval,
            resigned: false,
            last_transition: None,
            stats: InstanceStats::default(),
            actions: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn vrid(&self) -> u8 {
        self.config.vrid
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Configured priority with tracker weights applied.
    pub fn priority(&self) -> u8 {
        self.trackers.effective_priority(self.config.priority)
    }

    pub fn trackers(&self) -> &Trackers {
        &self.trackers
    }

    /// The current master: ourselves while MASTER, else the sender of the last accepted advert.
    pub fn master(&self) -> Option<MasterInfo> {
        self.master
    }

    pub fn is_resigned(&self) -> bool {
        self.resigned
    }

    /// Maintenance: a master hands its VIPs to the peer with a priority-0 advert (the peer
    /// takes over after its Skew_Time); in any state the instance then stays out of elections
    /// (BACKUP that never takes over) until [`Instance::resume`]. Returns false if it already was.
    pub fn resign(&mut self, now: Instant) -> bool {
        if self.resigned {
            return false;
        }
        self.resigned = true;
        match self.state {
            State::Master => {
                self.resign_mastership();
                self.transition(now, State::Backup, Reason::Resigned);
            }
            State::Backup => self.master_down_at = None,
            State::Fault | State::Initialize => {}
        }
        true
    }

    /// Ends a resignation: a BACKUP takes part in elections again (it takes over if no master
    /// is heard for Master_Down_Interval, or preempts a lower one). Returns false if it was not
    /// resigned.
    pub fn resume(&mut self, now: Instant) -> bool {
        if !self.resigned {
            return false;
        }
        self.resigned = false;
        if self.state == State::Backup {
            self.master_down_at = Some(now + self.master_down_interval());
        }
        true
    }

    /// Applies a changed configuration of the same virtual router (same VRID) without leaving
    /// the current state: priority, timers, preemption, authentication, VIPs and trackers
    /// (which keep the status they had, by kind and name). A master advertises the change at
    /// once and re-announces its VIPs when they changed; the driver adds and removes the
    /// addresses themselves.
    pub fn reconfigure(&mut self, now: Instant, mut config: InstanceConfig) {
        config.vips.sort_unstable();
        let trackers: Vec<Tracker> = std::mem::take(&mut config.trackers)
            .into_iter()
            .map(|t| {
                let old = self.trackers.find(t.kind, &t.name).and_then(|i| self.trackers.iter().nth(i));
                let mut tracker = Tracker { up: old.map_or(t.up, |old| old.up), ..t };
                if let Some(old) = old.filter(|old| old.kind == TrackerKind::File) {
                    // Weight or reverse may have changed: judge the kept number again.
                    tracker.apply_reading(Reading::Value(old.value));
                }
                tracker
            })
            .collect();
        let vips_changed = config.vips != self.config.vips;
        let timing_changed = config.advert_interval != self.config.advert_interval || config.version != self.config.version;
        let priority_before = self.priority();
        self.config = config;
        self.trackers = Trackers::new(trackers);
        if timing_changed {
            self.master_adver_interval = self.config.advert_interval;
        }
        match (self.state, self.trackers.in_fault()) {
            (State::Backup | State::Master, true) => {
                self.resign_mastership();
                let reason = self.fault_reason();
                self.transition(now, State::Fault, reason);
                return;
            }
            (State::Fault, false) => {
                self.become_backup(now, Reason::FaultCleared);
                return;
            }
            _ => {}
        }
        match self.state {
            State::Master if vips_changed || timing_changed || self.priority() != priority_before => {
                self.send_advert(self.priority());
                self.advert_at = Some(now + self.advert_interval());
                if vips_changed {
                    self.actions.push_back(Action::GratuitousArp { count: self.config.garp.master_repeat });
                }
            }
            State::Backup if timing_changed && !self.resigned => self.master_down_at = Some(now + self.master_down_interval()),
            _ => {}
        }
    }

    pub fn last_transition(&self) -> Option<Instant> {
        self.last_transition
    }

    pub fn stats(&self) -> &InstanceStats {
        &self.stats
    }

    /// Skew_Time, exactly: ((256 - Priority) / 256) seconds with VRRPv2 (RFC 3768 section
    /// 6.1); ((256 - Priority) * Master_Adver_Interval) / 256 with VRRPv3 (RFC 5798 section 6.1).
    pub fn skew_time(&self) -> Duration {
        let weight = 256 - u32::from(self.priority());
        match self.config.version {
            // 1 s / 256 = 3_906_250 ns, so the product is exact.
            Version::V2 => Duration::from_nanos(u64::from(weight) * 3_906_250),
            Version::V3 => self.master_adver_interval * weight / 256,
        }
    }

    /// Master_Down_Interval = 3 * Advertisement_Interval + Skew_Time (RFC 3768 section 6.1);
    /// with VRRPv3, 3 * Master_Adver_Interval + Skew_Time (RFC 5798 section 6.1).
    pub fn master_down_interval(&self) -> Duration {
        3 * self.master_adver_interval() + self.skew_time()
    }

    /// The interval of the master this instance follows (VRRPv3 learns it from the master's
    /// adverts); the configured Advertisement_Interval with VRRPv2.
    pub fn master_adver_interval(&self) -> Duration {
        match self.config.version {
            Version::V2 => self.advert_interval(),
            Version::V3 => self.master_adver_interval,
        }
    }

    /// A master whose advert is overdue by longer than any backup waits was stopped (SIGSTOP, a
    /// frozen VM): a backup has taken the VIPs and the clients with them. It yields instead of
    /// pulling them back at once; preemption, if configured, takes them back in order,
    /// announced with gratuitous ARP. Returns whether it yielded.
    fn yield_after_stall(&mut self, now: Instant) -> bool {
        let Some(at) = self.advert_at.filter(|&at| self.state == State::Master && now > at + self.longest_backup_wait()) else {
            return false;
        };
        self.advert_at = None;
        self.become_backup(now, Reason::Stalled(now.duration_since(at)));
        // If no backup took over (it was frozen too, or there is none), an advert interval and
        // the skew are enough to hear from it: the VIPs come back without a full
        // Master_Down_Interval of outage.
        if !self.resigned {
            self.master_down_at = Some(now + self.advert_interval() + self.skew_time());
        }
        true
    }

    /// Longer than any backup's Master_Down_Interval: 3 x Advertisement_Interval + a Skew_Time
    /// under a second (VRRPv2), or under the interval the backups learn from us (VRRPv3).
    fn longest_backup_wait(&self) -> Duration {
        let skew_bound = match self.config.version {
            Version::V2 => Duration::from_secs(1),
            Version::V3 => self.advert_interval(),
        };
        3 * self.advert_interval() + skew_bound
    }

    pub fn advert_interval(&self) -> Duration {
        self.config.advert_interval
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest deadline at which [`Instance::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.master_down_at, self.advert_at, self.garp_at.map(|(at, _)| at)].into_iter().flatten().min()
    }

    /// RFC 3768 section 6.4.1: leave Initialize.
    pub fn startup(&mut self, now: Instant) {
        if self.state != State::Initialize {
            return;
        }
        if self.trackers.in_fault() {
            let reason = self.fault_reason();
            self.transition(now, State::Fault, reason);
        } else if self.config.priority == 255 || self.config.initial_state == InitialState::Master {
            self.become_master(now, Reason::Startup);
        } else {
            self.become_backup(now, Reason::Startup);
        }
    }

    /// RFC 3768 sections 6.4.2 and 6.4.3, Shutdown event: a master sends one advert with
    /// priority 0 so that a backup takes over after its Skew_Time, and drops its VIPs.
    pub fn shutdown(&mut self, now: Instant) {
        if self.state == State::Initialize {
            return;
        }
        self.resign_mastership();
        self.transition(now, State::Initialize, Reason::Shutdown);
    }

    /// Processes every deadline that has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.master_down_at.is_some_and(|at| at <= now) {
            self.master_down_at = None;
            // Section 6.4.2: Master_Down_Timer fires in Backup.
            if self.state == State::Backup {
                let silent = self.master.filter(|_| !self.outranked).map(|m| m.address);
                self.become_master(now, Reason::MasterDown { silent });
            }
        }
        if self.yield_after_stall(now) {
            return;
        }
        if let Some(at) = self.advert_at.filter(|&at| at <= now) {
            // Section 6.4.3: Adver_Timer fires in Master. Scheduled from the deadline, not from
            // `now`, so a late wake-up does not shift every later advert.
            self.send_advert(self.priority());
            let next = at + self.advert_interval();
            self.advert_at = Some(if next > now { next } else { now + self.advert_interval() });
        }
        if let Some((at, phase)) = self.garp_at.filter(|&(at, _)| at <= now) {
            let garp = self.config.garp;
            let count = match phase {
                GarpPhase::Delayed => garp.master_repeat,
                GarpPhase::Refresh => garp.master_refresh_repeat,
            };
            self.actions.push_back(Action::GratuitousArp { count });
            self.garp_at = (!garp.master_refresh.is_zero()).then(|| (at.max(now) + garp.master_refresh, GarpPhase::Refresh));
        }
    }

    /// Sets a tracked object's status (index into the configured trackers). Entering or leaving
    /// FAULT happens here; a weight change only changes the priority adverts carry and the
    /// preemption decisions that follow: a master never demotes itself over its own priority.
    pub fn set_tracker(&mut self, now: Instant, index: usize, up: bool) {
        self.apply_tracker_reading(now, index, Reading::Up(up));
    }

    /// [`Instance::set_tracker`] for any reading, a file's number included.
    pub fn apply_tracker_reading(&mut self, now: Instant, index: usize, reading: Reading) {
        if !self.trackers.apply(index, reading) {
            return;
        }
        match (self.state, self.trackers.in_fault()) {
            (State::Backup | State::Master, true) => {
                self.resign_mastership();
                let reason = self.fault_reason();
                self.transition(now, State::Fault, reason);
            }
            (State::Fault, false) if self.config.priority == 255 && !self.resigned => {
                self.become_master(now, Reason::FaultCleared)
            }
            (State::Fault, false) => self.become_backup(now, Reason::FaultCleared),
            _ => {}
        }
    }

    /// Section 7.1 receive checks that need this instance's configuration, then the section
    /// 6.4.2 (Backup) or 6.4.3 (Master) rules for a received advert. `ttl` and `source` come
    /// from the IP header. A discarded advert is counted, and its reason returned.
    pub fn handle_advert(&mut self, now: Instant, source: IpAddr, ttl: u8, advert: &Advert) -> Result<(), DropReason> {
        if self.state == State::Initialize {
            return Ok(());
        }
        self.stats.adverts_received += 1;
        if let Err(reason) = self.check(source, ttl, advert) {
            self.stats.drops.record(reason);
            return Err(reason);
        }
        let sender = MasterInfo { address: source, priority: advert.priority() };
        let sender_interval = match advert {
            Advert::V2(_) => self.advert_interval(),
            Advert::V3(v3) => centiseconds(v3.max_advert_int),
        };
        // Adverts that waited in the socket while this process was stopped may be read before
        // the late timer fires: the stall is judged first either way.
        self.yield_after_stall(now);
        match self.state {
            State::Backup => self.backup_receives(now, sender, sender_interval),
            State::Master => self.master_receives(now, sender, sender_interval),
            State::Fault | State::Initialize => {}
        }
        Ok(())
    }

    fn check(&self, source: IpAddr, ttl: u8, advert: &Advert) -> Result<(), DropReason> {
        // "MUST verify that the IP TTL is 255" (RFC 5798: "the IPv4 TTL or IPv6 Hop Limit").
        if ttl != TTL {
            return Err(DropReason::Ttl);
        }
        if source == self.config.primary_ip {
            return Err(DropReason::OwnAddress);
        }
        // "MUST verify the VRRP version": a VRRPv2 advert never reaches a VRRPv3 instance and
        // back (keepalived's v2/v3 interworking mode is not offered).
        if advert.version() != self.config.version.number() {
            return Err(DropReason::Version);
        }
        match advert {
            Advert::V2(v2) => self.check_v2(v2)?,
            // RFC 5798 drops the interval check: a backup learns the master's interval. Zero
            // would make Master_Down_Interval a bare Skew_Time: refused.
            Advert::V3(v3) if v3.max_advert_int == 0 => return Err(DropReason::AdvertInterval),
            Advert::V3(_) => {}
        }
        // "MAY verify that the IP address(es) associated with the VRID are valid": a mismatch
        // is dropped unless the sender is the owner (priority 255).
        if advert.priority() != 255 && !self.same_addresses(&advert.addresses()) {
            return Err(DropReason::AddressList);
        }
        Ok(())
    }

    /// RFC 3768 section 7.1's checks that VRRPv3 dropped: authentication and the interval.
    fn check_v2(&self, advert: &Advertisement) -> Result<(), DropReason> {
        // "MUST perform authentication specified by Auth Type": the type must match ours, and a
        // PASS password is compared over all 8 bytes.
        match (&self.config.auth, &advert.auth) {
            (AuthData::None, AuthData::None) => {}
            (AuthData::Pass(ours), AuthData::Pass(theirs)) if ours == theirs => {}
            (AuthData::Pass(_), AuthData::Pass(_)) => return Err(DropReason::AuthPassword),
            _ => return Err(DropReason::AuthType),
        }
        // "MUST verify that the Adver Interval in the packet is the same as the locally
        // configured for this virtual router".
        if Duration::from_secs(advert.advert_int.into()) != self.config.advert_interval {
            return Err(DropReason::AdvertInterval);
        }
        Ok(())
    }

    fn same_addresses(&self, addresses: &[IpAddr]) -> bool {
        if addresses.len() != self.config.vips.len() {
            return false;
        }
        let mut sorted = addresses.to_vec();
        sorted.sort_unstable();
        sorted == self.config.vips
    }

    /// Section 6.4.2, Backup receives an ADVERTISEMENT (RFC 5798 section 6.4.2 for VRRPv3).
    fn backup_receives(&mut self, now: Instant, sender: MasterInfo, sender_interval: Duration) {
        if self.resigned {
            self.master = (sender.priority != 0).then_some(sender);
            return;
        }
        self.outranked = false;
        if sender.priority == 0 {
            // The master is resigning: take over after Skew_Time only.
            self.master = None;
            self.master_down_at = Some(now + self.skew_time());
            return;
        }
        if !self.config.preempt || sender.priority >= self.priority() || self.holds_off_preemption(now) {
            if sender.priority >= self.priority() {
                self.lower_master_since = None;
            }
            self.master = Some(sender);
            // RFC 5798: "Set Master_Adver_Interval to Adver Interval contained in the
            // ADVERTISEMENT", then recompute Skew_Time and Master_Down_Interval.
            self.master_adver_interval = sender_interval;
            self.master_down_at = Some(now + self.master_down_interval());
        } else {
            // Discard: the lower-priority master's adverts no longer reset our timer, and we
            // preempt it when Master_Down_Timer fires. It is alive and gives its VIPs (and
            // sessions) up itself when it hears us.
            self.outranked = true;
        }
    }

    /// keepalived's preempt_delay: a lower-priority master is accepted for this long after we
    /// first see it.
    fn holds_off_preemption(&mut self, now: Instant) -> bool {
        if self.config.preempt_delay.is_zero() {
            return false;
        }
        let since = *self.lower_master_since.get_or_insert(now);
        now < since + self.config.preempt_delay
    }

    /// Section 6.4.3, Master receives an ADVERTISEMENT.
    fn master_receives(&mut self, now: Instant, sender: MasterInfo, sender_interval: Duration) {
        let local = self.priority();
        if sender.priority == 0 {
            // Another router resigned: advertise now so the backups do not wait Skew_Time. At
            // most once per advert interval per sender: a forged stream of priority-0 adverts
            // must not turn this router into a reflector onto the group.
            if self.replies.allow(now, sender.address, self.advert_interval()) {
                self.send_advert(local);
                self.advert_at = Some(now + self.advert_interval());
            }
        } else if sender.priority > local
            // Same family: IpAddr orders the octets as an unsigned number, the RFC's comparison.
            || (sender.priority == local && sender.address > self.config.primary_ip)
        {
            self.master = Some(sender);
            // RFC 5798 section 6.4.3: "Set Master_Adver_Interval to Adver Interval contained
            // in the ADVERTISEMENT".
            self.master_adver_interval = sender_interval;
            self.become_backup(now, Reason::Preempted { by: sender.address, priority: sender.priority });
        } else {
            // Two masters (a healed split brain, or a restarted peer with a lower priority):
            // RFC 3768 says discard. Like keepalived, we also answer at once so the other steps
            // down now rather than at our next advert, and re-announce the VIPs so clients
            // follow the winner. At most once per advert interval, so a peer cannot make us
            // flood the link.
            if self.replies.allow(now, sender.address, self.advert_interval()) {
                self.send_advert(local);
                self.advert_at = Some(now + self.advert_interval());
                self.actions.push_back(Action::GratuitousArp { count: self.config.garp.master_repeat });
            }
        }
    }

    fn become_master(&mut self, now: Instant, reason: Reason) {
        // Section 6.4.2: send an ADVERTISEMENT, broadcast gratuitous ARP, set Adver_Timer.
        self.actions.push_back(Action::AddVips);
        self.send_advert(self.priority());
        let garp = self.config.garp;
        self.actions.push_back(Action::GratuitousArp { count: garp.master_repeat });
        self.master_down_at = None;
        self.advert_at = Some(now + self.advert_interval());
        self.garp_at = if !garp.master_delay.is_zero() {
            Some((now + garp.master_delay, GarpPhase::Delayed))
        } else if !garp.master_refresh.is_zero() {
            Some((now + garp.master_refresh, GarpPhase::Refresh))
        } else {
            None
        };
        self.master = Some(MasterInfo { address: self.config.primary_ip, priority: self.priority() });
        self.stats.became_master += 1;
        self.transition(now, State::Master, reason);
    }

    fn become_backup(&mut self, now: Instant, reason: Reason) {
        if !matches!(reason, Reason::Preempted { .. }) {
            // RFC 5798 section 6.4.1: a new backup starts from its own interval.
            self.master_adver_interval = self.advert_interval();
        }
        if self.state == State::Master {
            self.actions.push_back(Action::RemoveVips);
        }
        self.outranked = false;
        self.advert_at = None;
        self.garp_at = None;
        self.master_down_at = (!self.resigned).then(|| now + self.master_down_interval());
        self.transition(now, State::Backup, reason);
    }

    /// Leaving MASTER other than by losing an election: priority 0 so a backup takes over after
    /// Skew_Time, then drop the VIPs. Clears every timer.
    fn resign_mastership(&mut self) {
        if self.state == State::Master {
            self.send_advert(0);
            self.actions.push_back(Action::RemoveVips);
        }
        self.master = None;
        self.master_down_at = None;
        self.advert_at = None;
        self.garp_at = None;
        self.lower_master_since = None;
    }

    fn send_advert(&mut self, priority: u8) {
        self.stats.adverts_sent += 1;
        let interval = self.config.advert_interval;
        let advert = match self.config.version {
            Version::V2 => Advert::V2(Advertisement {
                vrid: self.config.vrid,
                priority,
                auth: self.config.auth,
                advert_int: u8::try_from(interval.as_secs()).unwrap_or(u8::MAX),
                addresses: self
                    .config
                    .vips
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(v4) => Some(*v4),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
            }),
            Version::V3 => Advert::V3(AdvertisementV3 {
                vrid: self.config.vrid,
                priority,
                max_advert_int: u16::try_from(interval.as_millis() / 10).unwrap_or(MAX_ADVERT_INT).clamp(1, MAX_ADVERT_INT),
                addresses: self.config.vips.clone(),
            }),
        };
        self.actions.push_back(Action::SendAdvert(advert));
    }

    fn fault_reason(&self) -> Reason {
        Reason::Fault(self.trackers.faults().map(|t| format!("{} {}", t.kind.as_str(), t.name)).collect())
    }

    fn transition(&mut self, now: Instant, to: State, reason: Reason) {
        let from = self.state;
        self.state = to;
        if to != State::Backup {
            self.lower_master_since = None;
        }
        self.last_transition = Some(now);
        self.stats.transitions += 1;
        let master = self.master.map(|m| m.address);
        self.actions.push_back(Action::Transition(Transition { from, to, priority: self.priority(), reason, master }));
    }
}

/// Answers out of turn (to a priority-0 advert, to a lower-priority master) at most once per
/// advert interval per sender, for at most [`ReplyLimiter::SENDERS`] senders at a time: a flood
/// from forged addresses earns no more answers than that.
#[derive(Debug, Default)]
struct ReplyLimiter {
    recent: Vec<(IpAddr, Instant)>,
}

impl ReplyLimiter {
    const SENDERS: usize = 8;

    fn allow(&mut self, now: Instant, sender: IpAddr, interval: Duration) -> bool {
        self.recent.retain(|(_, at)| now < *at + interval);
        if self.recent.iter().any(|(address, _)| *address == sender) || self.recent.len() >= Self::SENDERS {
            return false;
        }
        self.recent.push((sender, now));
        true
    }
}

/// A VRRPv3 Max Adver Int as a duration.
fn centiseconds(value: u16) -> Duration {
    Duration::from_millis(u64::from(value) * 10)
}
