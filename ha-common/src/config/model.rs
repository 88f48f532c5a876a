//! The validated configuration: every value typed, every default filled in, every cross reference
//! (track_script, track_proxy) known to resolve. Code past `Config::load` never re-checks these.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything one `vrrpd` process runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub global: Global,
    pub scripts: Vec<VrrpScript>,
    pub instances: Vec<VrrpInstance>,
    pub proxies: Vec<Proxy>,
    pub stats: Option<Stats>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Global {
    /// Names this host in logs and on the stats page (keepalived's `router_id`).
    pub router_id: String,
    /// User that track and notify scripts run as, unless a script names its own.
    pub script_user: Option<String>,
    /// When true (the default) a script that would run as root is refused if a non-root user
    /// could modify it or any directory above it (keepalived's `enable_script_security`, on by
    /// default here). `false` runs such scripts anyway, with a warning.
    pub enable_script_security: bool,
    pub control_socket: PathBuf,
    /// Sessions across every proxy (HAProxy's global `maxconn`).
    pub maxconn: Option<u32>,
    /// How long a stopping daemon lets sessions finish before closing them.
    pub hard_stop_after: Duration,
    /// Started as root, vrrpd drops to this user (keeping only its network capabilities).
    pub user: Option<String>,
    /// The version of instances that do not say (`vrrp_version`, 2 by default as keepalived).
    pub vrrp_version: VrrpVersion,
}

/// The VRRP an instance speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VrrpVersion {
    /// RFC 3768: whole-second intervals, optional PASS authentication.
    #[default]
    V2,
    /// RFC 5798: centisecond intervals, no authentication.
    V3,
}

impl fmt::Display for VrrpVersion {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            VrrpVersion::V2 => "2",
            VrrpVersion::V3 => "3",
        })
    }
}

pub const DEFAULT_CONTROL_SOCKET: &str = "/run/vrrpd/vrrpd.sock";

/// A `vrrp_script`: a command run every `interval`, its exit status tracked with rise/fall.
#[derive(Clone, Debug, PartialEq)]
pub struct VrrpScript {
    pub name: String,
    /// Command line; split on whitespace, the first word is the program.
    pub script: String,
    pub interval: Duration,
    /// A run that takes longer is killed and counts as a failure.
    pub timeout: Duration,
    /// Priority change: negative applies while failing, positive while succeeding, 0 means FAULT
    /// while failing.
    pub weight: i32,
    pub rise: u32,
    pub fall: u32,
    pub user: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialState {
    Master,
    Backup,
}

impl fmt::Display for InitialState {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            InitialState::Master => "MASTER",
            InitialState::Backup => "BACKUP",
        })
    }
}

impl std::str::FromStr for InitialState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_uppercase().as_str() {
            "MASTER" => Ok(InitialState::Master),
            "BACKUP" => Ok(InitialState::Backup),
            _ => Err(format!("{text:?} is not a state: write MASTER or BACKUP")),
        }
    }
}

/// VRRPv2 authentication (RFC 2338 section 5.3.6; RFC 3768 keeps the field for compatibility).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    None,
    /// Simple text password: up to 8 bytes, zero-padded to 8 on the wire.
    Pass([u8; 8]),
}

impl fmt::Debug for Authentication {
    // The password never reaches a log line through Debug.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Authentication::None => f.write_str("None"),
            Authentication::Pass(_) => f.write_str("Pass(<hidden>)"),
        }
    }
}

/// An address with the prefix length it is added with (`192.0.2.100/24`, `2001:db8::100/64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A tracked object and the priority change it causes (see [`VrrpScript::weight`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    pub name: String,
    pub weight: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// Called on every transition with `INSTANCE <name> <STATE> <priority>`.
    pub any: Option<String>,
    pub master: Option<String>,
    pub backup: Option<String>,
    pub fault: Option<String>,
    pub stop: Option<String>,
}

/// Gratuitous ARP after becoming master, with keepalived's meaning of each knob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GarpConfig {
    /// Delay before the second burst (`garp_master_delay`, 5 s); zero sends no second burst.
    pub master_delay: Duration,
    /// ARPs per burst (`garp_master_repeat`, 5).
    pub master_repeat: u32,
    /// Interval of refresh bursts while master (`garp_master_refresh`); zero is off.
    pub master_refresh: Duration,
    /// ARPs per refresh (`garp_master_refresh_repeat`, 1).
    pub master_refresh_repeat: u32,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    pub initial_state: InitialState,
    pub vrid: u8,
    /// 1..=254, or 255 for the address owner.
    pub priority: u8,
    pub version: VrrpVersion,
    /// Whole seconds, 1..=255, with VRRPv2; whole centiseconds from 10 ms to 40.95 s with
    /// VRRPv3.
    pub advert_int: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub authentication: Authentication,
    pub virtual_ipaddress: Vec<IpPrefix>,
    pub track_script: Vec<Track>,
    pub track_proxy: Vec<Track>,
    pub track_interface: Vec<Track>,
    pub notify: Notify,
    pub unicast_src_ip: Option<Ipv4Addr>,
    pub unicast_peer: Vec<Ipv4Addr>,
    pub garp: GarpConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// Fewest current sessions, weighted; the right choice for long-lived AMQP connections.
    LeastConn,
    RoundRobin,
    /// The first UP server in configuration order with a free slot.
    First,
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Balance::LeastConn => "leastconn",
            Balance::RoundRobin => "roundrobin",
            Balance::First => "first",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connect.
    Tcp,
    /// Sends the AMQP 0-9-1 protocol header and requires a Connection.Start frame.
    Amqp,
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Amqp => "amqp",
        })
    }
}

/// Health checking, HAProxy's `check inter rise fall` with `fastinter` and `downinter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: CheckKind,
    pub interval: Duration,
    /// Interval while a server is changing state (between its first failure and DOWN, or its
    /// first success and UP).
    pub fastinter: Duration,
    /// Interval while a server is DOWN.
    pub downinter: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyProtocol {
    V1,
    V2,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Proxy {
    pub name: String,
    pub bind: SocketAddr,
    pub balance: Balance,
    pub check: HealthCheck,
    pub timeout_connect: Duration,
    /// Idle time after which a session is closed; hours by default, because AMQP heartbeats
    /// only flow every 30 s or so and an idle client is a healthy client.
    pub timeout_idle: Duration,
    /// How long a client may wait for a free server slot.
    pub timeout_queue: Duration,
    pub retries: u32,
    pub redispatch: bool,
    pub maxconn: Option<u32>,
    pub send_proxy: Option<ProxyProtocol>,
    /// Close a server's sessions when it is marked DOWN (`on-marked-down shutdown-sessions`).
    pub shutdown_sessions_on_down: bool,
    pub servers: Vec<Server>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub name: String,
    pub address: SocketAddr,
    /// 0..=256 as in HAProxy; 0 takes no new sessions.
    pub weight: u32,
    pub backup: bool,
    pub maxconn: Option<u32>,
    pub check: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub listen: SocketAddr,
    pub refresh: Duration,
    pub auth: Option<StatsAuth>,
}

#[derive(Clone, PartialEq)]
pub struct StatsAuth {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for StatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("StatsAuth").field("user", &self.user).field("password", &"<hidden>").finish()
    }
}
