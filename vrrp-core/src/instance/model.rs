//! The state machine's vocabulary: what an instance is configured with, its states, why it
//! changes state, and the actions it asks its driver to carry out.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::counters::DropCounters;
use crate::packet::{Advert, AuthData};
use crate::track::Tracker;

/// How an instance starts (keepalived's `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialState {
    /// Takes the VIPs at once (a lower-priority master steps down at the first better advert).
    Master,
    /// Waits a Master_Down_Interval before becoming master.
    Backup,
}

/// Gratuitous ARP after becoming master (keepalived's `garp_master_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GarpConfig {
    /// Delay before the second burst; zero sends no second burst.
    pub master_delay: Duration,
    /// ARPs per burst.
    pub master_repeat: u32,
    /// Interval of refresh bursts while master; zero is off.
    pub master_refresh: Duration,
    /// ARPs per refresh.
    pub master_refresh_repeat: u32,
}

impl Default for GarpConfig {
    /// keepalived's defaults: a second burst of 5 after 5 s, no refresh.
    fn default() -> Self {
        GarpConfig {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
        }
    }
}

/// The protocol an instance speaks (keepalived's `vrrp_version`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Version {
    /// RFC 3768: IPv4 only, whole-second intervals, optional PASS authentication.
    #[default]
    V2,
    /// RFC 5798: IPv4 or IPv6, centisecond intervals learned from the master, no authentication.
    V3,
}

impl Version {
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// What the core needs to know about an instance.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceConfig {
    pub name: String,
    pub vrid: u8,
    /// Configured priority before tracker weights; 255 makes this router the address owner.
    pub priority: u8,
    pub version: Version,
    /// Advertisement_Interval: whole seconds (1 to 255) with VRRPv2, centiseconds (10 ms to
    /// 40.95 s) with VRRPv3; the configuration enforces both.
    pub advert_interval: Duration,
    pub preempt: bool,
    /// Keeps a lower-priority master for this long after we first see it (keepalived's
    /// `preempt_delay`).
    pub preempt_delay: Duration,
    /// Always [`AuthData::None`] with VRRPv3.
    pub auth: AuthData,
    /// All of one family, the family of `primary_ip` (RFC 5798 section 5.2.5).
    pub vips: Vec<IpAddr>,
    /// This router's address on the interface: the advert source and the tie-breaker (the
    /// primary IPv4 address, or the IPv6 link-local address).
    pub primary_ip: IpAddr,
    pub initial_state: InitialState,
    pub garp: GarpConfig,
    pub trackers: Vec<Tracker>,
}

impl InstanceConfig {
    /// An instance with keepalived's defaults: VRRPv2, priority 100, advert_int 1, preempt, no
    /// auth.
    pub fn new<A: Into<IpAddr>>(
        name: impl Into<String>,
        vrid: u8,
        primary_ip: impl Into<IpAddr>,
        vips: impl IntoIterator<Item = A>,
    ) -> Self {
        InstanceConfig {
            name: name.into(),
            vrid,
            priority: 100,
            version: Version::V2,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            auth: AuthData::None,
            vips: vips.into_iter().map(Into::into).collect(),
            primary_ip: primary_ip.into(),
            initial_state: InitialState::Backup,
            garp: GarpConfig::default(),
            trackers: Vec::new(),
        }
    }
}

/// RFC 3768 section 6.4 states, plus keepalived's FAULT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// A weight-0 tracker is down: no adverts, no VIPs, no elections.
    Fault,
}

impl State {
    /// The name keepalived passes to notify scripts (INIT for Initialize).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened, for logs and the stats page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Startup,
    /// Master_Down_Timer fired: no advert from a master we accept. `silent` is the master whose
    /// adverts stopped (their source address), when one had been accepted and had not resigned
    /// (priority 0) nor been outranked by this router: its sessions may still be open where it
    /// can no longer close them.
    MasterDown {
        silent: Option<IpAddr>,
    },
    /// An advert that wins the election arrived.
    Preempted {
        by: IpAddr,
        priority: u8,
    },
    Shutdown,
    /// Trackers holding the instance in FAULT, by name.
    Fault(Vec<String>),
    FaultCleared,
    /// An operator handed the VIPs over for maintenance.
    Resigned,
    /// A master that could not run (stopped, frozen) for longer than a backup waits.
    Stalled(Duration),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Reason::Startup => f.write_str("startup"),
            Reason::MasterDown { silent: None } => f.write_str("master down timer expired"),
            Reason::MasterDown { silent: Some(master) } => write!(f, "master down timer expired ({master} fell silent)"),
            Reason::Preempted { by, priority } => write!(f, "advert from {by} with priority {priority}"),
            Reason::Shutdown => f.write_str("shutdown"),
            Reason::Fault(names) => write!(f, "tracked object down: {}", names.join(", ")),
            Reason::FaultCleared => f.write_str("tracked objects recovered"),
            Reason::Resigned => f.write_str("resigned by operator"),
            Reason::Stalled(d) => write!(f, "did not run for {:.1} s, longer than a backup waits: yielding", d.as_secs_f64()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// Effective priority at the transition (what notify scripts receive).
    pub priority: u8,
    pub reason: Reason,
    /// The master after the transition, when known.
    pub master: Option<IpAddr>,
}

/// Something the driver must do, in the order polled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this advert to the VRRP group (or unicast peers) with TTL (hop limit) 255.
    SendAdvert(Advert),
    /// Add the configured VIPs to the interface.
    AddVips,
    /// Remove the configured VIPs from the interface.
    RemoveVips,
    /// Send `count` gratuitous ARPs for each VIP.
    GratuitousArp { count: u32 },
    /// The state changed: log it and run notify scripts.
    Transition(Transition),
}

/// The master this instance currently follows, as learned from its adverts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterInfo {
    pub address: IpAddr,
    pub priority: u8,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceStats {
    pub adverts_sent: u64,
    /// Adverts for this VRID that reached the instance, accepted or not.
    pub adverts_received: u64,
    pub drops: DropCounters,
    pub transitions: u64,
    pub became_master: u64,
}
