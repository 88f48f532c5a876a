//! The validated configuration: every value typed, every default filled in, every cross reference
//! (track_script, track_proxy) known to resolve. Code past `Config::load` never re-checks these.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Everything one `vrrpd` process runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub global: Global,
    pub scripts: Vec<VrrpScript>,
    pub track_processes: Vec<TrackProcess>,
    pub track_files: Vec<TrackFile>,
    pub instances: Vec<VrrpInstance>,
    pub sync_groups: Vec<SyncGroup>,
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
    /// Every instance's `garp_interval` unless it sets its own (keepalived's
    /// `vrrp_garp_interval`).
    pub garp_interval: Duration,
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

/// How a `vrrp_track_process`'s `params` must match a process's arguments (keepalived's
/// `param_match`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamMatch {
    /// Exactly these arguments, no more.
    Exact,
    /// These arguments first; more may follow.
    Partial,
    /// As `Partial`, and the last one configured may be the start of the process's argument.
    Initial,
}

/// A `vrrp_track_process`: up while the number of matching running processes is within
/// `quorum..=quorum_max`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackProcess {
    pub name: String,
    /// The process name (`/proc/PID/comm`), or with `params` or `full_command` the program as
    /// the command line's first word.
    pub process: String,
    pub params: Vec<String>,
    /// `None` when neither `params` nor `param_match` is written: the name alone matches.
    pub param_match: Option<ParamMatch>,
    /// Match the command line (`argv[0]`), not the process name.
    pub full_command: bool,
    /// Default weight for instances tracking it (keepalived's default: 1).
    pub weight: i32,
    pub reverse: bool,
    pub quorum: u32,
    pub quorum_max: Option<u32>,
    /// How long a gained quorum must hold before the tracker is up.
    pub fork_delay: Duration,
    /// How long a lost quorum must stay lost before the tracker is down.
    pub terminate_delay: Duration,
}

/// A `vrrp_track_file`: a file holding a number, read when it changes.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackFile {
    pub name: String,
    pub path: PathBuf,
    /// Default weight for instances tracking it (keepalived's default: 1).
    pub weight: i32,
    pub reverse: bool,
    /// `init_file`: the value written at start when the file does not exist, or always with
    /// `init_file_overwrite`.
    pub init: Option<(i64, bool)>,
    /// Read the file even when a non-root user could write it.
    pub allow_unsafe: bool,
}

/// A `vrrp_sync_group`: instances that fail over together. A member in FAULT (by its own
/// trackers) puts the others in FAULT; the group's own trackers are added to every member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroup {
    pub name: String,
    pub members: Vec<String>,
    /// Run when the group changes state (all members MASTER, one in FAULT, back to BACKUP,
    /// all stopped); `notify` gets `GROUP <name> <STATE> 0`, as in keepalived.
    pub notify: Notify,
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

/// One `virtual_ipaddress` entry: the address and where it goes, as keepalived's
/// `<IPADDR>[/<MASK>] [brd <IPADDR>] [dev <STRING>] [scope <SCOPE>] [label <LABEL>]` says.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vip {
    pub prefix: IpPrefix,
    /// The interface the address is added on; `None`: the instance's interface.
    pub dev: Option<String>,
    /// IPv4 only (the kernel has no IPv6 labels); `None`: vrrpd's own `dev:vrrpNN`.
    pub label: Option<String>,
    /// The address scope (rtnetlink's numbers: 0 global, 200 site, 253 link, 254 host, 255
    /// nowhere).
    pub scope: u8,
    /// IPv4 only: the broadcast address added with it. `None` adds none, as keepalived and
    /// `ip address add` do without `brd`.
    pub broadcast: Option<Ipv4Addr>,
    /// From `virtual_ipaddress_excluded` (keepalived's): added, announced and removed with the
    /// instance's other VIPs, but not listed in its adverts, and of either family.
    pub excluded: bool,
    /// keepalived's `no_track`: the VIP's interface (when not the instance's) going down or
    /// missing does not put the instance in FAULT.
    pub no_track: bool,
}

impl Vip {
    pub const SCOPE_GLOBAL: u8 = 0;
    pub const SCOPE_HOST: u8 = 254;

    /// A VIP written as a bare address: on the instance's interface, scope global.
    pub fn plain(prefix: IpPrefix) -> Vip {
        Vip { prefix, dev: None, label: None, scope: Vip::SCOPE_GLOBAL, broadcast: None, excluded: false, no_track: false }
    }

    pub fn addr(&self) -> IpAddr {
        self.prefix.addr
    }

    /// The interface the address goes on, given the instance's.
    pub fn dev_or<'a>(&'a self, interface: &'a str) -> &'a str {
        self.dev.as_deref().unwrap_or(interface)
    }

    /// The name `ip address` uses for a scope number, or the number.
    pub fn scope_name(scope: u8) -> String {
        match scope {
            0 => "global".into(),
            200 => "site".into(),
            253 => "link".into(),
            254 => "host".into(),
            255 => "nowhere".into(),
            n => n.to_string(),
        }
    }

    /// The number of a scope name (`ip address`'s names) or of a number 0..=255.
    pub fn parse_scope(text: &str) -> Option<u8> {
        match text {
            "global" | "universe" => Some(0),
            "site" => Some(200),
            "link" => Some(253),
            "host" => Some(254),
            "nowhere" => Some(255),
            n => n.parse().ok(),
        }
    }
}

/// keepalived's order: `192.0.2.101/24 brd 192.0.2.255 dev eth1 scope host label eth1:amqp`,
/// defaults left out.
impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        if let Some(broadcast) = self.broadcast {
            write!(f, " brd {broadcast}")?;
        }
        if let Some(dev) = &self.dev {
            write!(f, " dev {dev}")?;
        }
        if self.scope != Vip::SCOPE_GLOBAL {
            write!(f, " scope {}", Vip::scope_name(self.scope))?;
        }
        if let Some(label) = &self.label {
            write!(f, " label {label}")?;
        }
        if self.no_track {
            write!(f, " no_track")?;
        }
        Ok(())
    }
}

/// A tracked object and the priority change it causes (see [`VrrpScript::weight`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    pub name: String,
    pub weight: i32,
    /// The adjustment turned around (keepalived's `reverse`).
    pub reverse: bool,
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
    /// Least gap between two gratuitous ARPs on the interface (`garp_interval`, keepalived's
    /// `vrrp_garp_interval`; 0: none). The interface uses the longest of its instances'.
    pub interval: Duration,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
            interval: Duration::ZERO,
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
    /// Every VIP the instance adds: those of `virtual_ipaddress`, then those of
    /// `virtual_ipaddress_excluded` (marked [`Vip::excluded`]).
    pub virtual_ipaddress: Vec<Vip>,
    pub track_script: Vec<Track>,
    pub track_proxy: Vec<Track>,
    pub track_interface: Vec<Track>,
    pub track_process: Vec<Track>,
    pub track_file: Vec<Track>,
    /// The other members of this instance's `vrrp_sync_group`: while one of them is in FAULT by
    /// its own trackers, so is this one.
    pub sync_peers: Vec<String>,
    pub notify: Notify,
    pub unicast_src_ip: Option<Ipv4Addr>,
    pub unicast_peer: Vec<Ipv4Addr>,
    pub garp: GarpConfig,
}

impl VrrpInstance {
    /// The VIPs the instance's adverts list (all but `virtual_ipaddress_excluded`).
    pub fn advertised_vips(&self) -> impl Iterator<Item = &Vip> {
        self.virtual_ipaddress.iter().filter(|v| !v.excluded)
    }

    /// An IPv6 virtual router (VRRPv3 over IPv6): its advertised VIPs are IPv6. Excluded VIPs
    /// may be of the other family.
    pub fn is_ipv6(&self) -> bool {
        self.advertised_vips().next().is_some_and(|v| v.addr().is_ipv6())
    }
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
    /// The AMQP check inside TLS: a verified handshake first (RabbitMQ's 5671).
    Amqps,
    /// An HTTP GET whose status must match (HAProxy's `option httpchk`), such as RabbitMQ's
    /// `/api/health/checks/alarms` on the management port.
    Http,
    /// The HTTP check over TLS.
    Https,
}

impl CheckKind {
    pub fn uses_tls(self) -> bool {
        matches!(self, CheckKind::Amqps | CheckKind::Https)
    }

    pub fn is_http(self) -> bool {
        matches!(self, CheckKind::Http | CheckKind::Https)
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Amqp => "amqp",
            CheckKind::Amqps => "amqps",
            CheckKind::Http => "http",
            CheckKind::Https => "https",
        })
    }
}

/// A password from the configuration: never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Self {
        Secret(text)
    }

    /// The password itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// What an HTTP check asks and expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// Path and query of the GET (`/api/health/checks/alarms`).
    pub path: String,
    /// The status that counts as healthy; any 2xx or 3xx (as HAProxy) without one.
    pub expect_status: Option<u16>,
    /// HTTP basic authentication.
    pub user: Option<String>,
    pub password: Option<Secret>,
}

/// How a TLS check verifies the server: the CA file (the system's roots without one) and the
/// name the certificate must carry, sent as SNI (the checked IP address without one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckTls {
    pub ca_file: Option<PathBuf>,
    pub sni: Option<String>,
}

/// Health checking, HAProxy's `check inter rise fall` with `fastinter` and `downinter`, and
/// where it goes: by default the server's own address and port (`addr` and `port` send it
/// elsewhere, as HAProxy's server keywords do: the management port of a broker).
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Checks this port instead of the server's.
    pub port: Option<u16>,
    /// Checks this address instead of the server's (per server only).
    pub addr: Option<IpAddr>,
    /// For `amqps` and `https`.
    pub tls: CheckTls,
    /// For `http` and `https`.
    pub http: Option<HttpCheck>,
}

impl Default for HealthCheck {
    /// A proxy's check when it writes none: a TCP connect every 2 s, HAProxy's rise 2, fall 3.
    fn default() -> Self {
        let every = Duration::from_secs(2);
        HealthCheck {
            kind: CheckKind::Tcp,
            interval: every,
            fastinter: every,
            downinter: every,
            timeout: every,
            rise: 2,
            fall: 3,
            port: None,
            addr: None,
            tls: CheckTls::default(),
            http: None,
        }
    }
}

impl HealthCheck {
    /// This check with a server's own settings over it.
    pub fn for_server(&self, server: &Server) -> HealthCheck {
        let o = &server.check_settings;
        let interval = o.interval.unwrap_or(self.interval);
        // A fastinter or downinter that followed the proxy's interval follows the server's.
        let following = |own: Duration| if own == self.interval { interval } else { own };
        HealthCheck {
            interval,
            fastinter: o.fastinter.unwrap_or(following(self.fastinter)),
            downinter: o.downinter.unwrap_or(following(self.downinter)),
            timeout: o.timeout.unwrap_or(self.timeout),
            rise: o.rise.unwrap_or(self.rise),
            fall: o.fall.unwrap_or(self.fall),
            port: o.port.or(self.port),
            addr: o.addr.or(self.addr),
            ..self.clone()
        }
    }

    /// Where the check of a server at `address` connects.
    pub fn target(&self, address: SocketAddr) -> SocketAddr {
        SocketAddr::new(self.addr.unwrap_or(address.ip()), self.port.unwrap_or(address.port()))
    }
}

/// A server's own check settings (HAProxy's `server ... check inter 5s rise 2 fall 3 port
/// 15672 addr 192.0.2.31`), each over the proxy's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerCheck {
    pub interval: Option<Duration>,
    pub fastinter: Option<Duration>,
    pub downinter: Option<Duration>,
    pub timeout: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub port: Option<u16>,
    pub addr: Option<IpAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyProtocol {
    V1,
    V2,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Proxy {
    pub name: String,
    /// Where it listens: one or more addresses (HAProxy's several `bind` lines), never empty.
    pub binds: Vec<SocketAddr>,
    /// The binds whose clients open with a PROXY protocol header (v1 or v2), as HAProxy's
    /// `accept-proxy` on a `bind`: the client address it carries is the one logged and passed
    /// on with `send_proxy`.
    pub accept_proxy: Vec<SocketAddr>,
    /// With every primary DOWN, spread over all backups rather than using only the first UP
    /// one (HAProxy's `option allbackups`).
    pub allbackups: bool,
    /// Rebalance on its own when a server holds more than `threshold` times its fair share.
    pub rebalance: Option<AutoRebalance>,
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
    /// The brokers' management API, to close the broker connections of a master that fell
    /// silent (fencing).
    pub rabbitmq_api: Option<RabbitmqApi>,
    pub servers: Vec<Server>,
}

/// RabbitMQ's management API (`rabbitmq_api = { urls, user, password }`): any node answers for
/// the whole cluster, the next URL is tried when one fails.
#[derive(Clone, Debug, PartialEq)]
pub struct RabbitmqApi {
    /// `http://host:port` or `https://...`, each checked (scheme, host, no credentials).
    pub urls: Vec<String>,
    pub user: String,
    pub password: Secret,
    /// Trusted for https; the system's roots without it.
    pub ca_file: Option<PathBuf>,
    /// A peer's advert source address -> the other addresses it connects to the brokers from
    /// (a backend network of its own): fenced with it.
    pub fence_addresses: BTreeMap<IpAddr, Vec<IpAddr>>,
}

/// `rebalance = { threshold = 1.5, rate = 5 }`: what `vrrpd ctl rebalance` does, started by the
/// balancer itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AutoRebalance {
    /// Sessions of the most loaded server over its fair share, above which a rebalance starts.
    pub threshold: f64,
    /// Sessions closed per second.
    pub rate: u32,
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
    /// Its own check settings, over the proxy's ([`HealthCheck::for_server`]).
    pub check_settings: ServerCheck,
    /// After coming back UP, the server's weight grows from almost nothing to `weight` over
    /// this time (HAProxy's `slowstart`); zero for none.
    pub slowstart: Duration,
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
