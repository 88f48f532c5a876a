//! Raw TOML structs to the typed [`Config`]: defaults, ranges and cross references. Every problem
//! is collected (not just the first) and located by the span of the value at fault.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::Diagnostic;
use super::model::*;
use super::raw::*;
use crate::duration::{self, ConfigDuration};

mod proxy;
mod sync_group;
mod trackers;
mod vip;

/// keepalived's range for a tracker weight.
const WEIGHT_RANGE: RangeInclusive<i64> = -253..=253;
/// Linux interface names are at most IFNAMSIZ - 1 bytes.
const IFNAME_MAX: usize = 15;
/// Longest instance, proxy, server, script or router name.
const NAME_MAX: usize = 64;

/// How long a duration may be. Every duration has an upper bound: past it a value is a typo
/// ("3y" for "3h"), and the deadline computed from it (`Instant + Duration`) would overflow and
/// panic where the daemon uses it, in every session or every check.
#[derive(Clone, Copy)]
struct Bounds {
    /// Whether zero means something (off, at once) rather than nothing.
    zero: bool,
    longest: Duration,
    /// `longest` as the message says it.
    said: &'static str,
    /// What the bound is ("the longest timeout").
    what: &'static str,
}

const DAY: Duration = Duration::from_secs(24 * 3600);
/// Connect, queue, check and script timeouts.
const TIMEOUT: Bounds = Bounds { zero: false, longest: DAY, said: "24h", what: "the longest timeout" };
/// Check and script intervals, the stats page's refresh.
const INTERVAL: Bounds = Bounds { zero: false, longest: DAY, said: "24h", what: "the longest interval" };
/// Delays where zero means none, or off (`hard_stop_after`, `garp_master_delay`,
/// `garp_master_refresh`).
const DELAY: Bounds = Bounds { zero: true, longest: DAY, said: "24h", what: "the longest delay" };
/// An idle AMQP client is a healthy one: the default (3h) is far above any heartbeat, and a
/// month leaves room for clients that disable heartbeats.
const IDLE: Bounds = Bounds {
    zero: false,
    longest: Duration::from_secs(30 * 24 * 3600),
    said: "30 days",
    what: "the longest idle timeout (the default is 3h)",
};
/// keepalived's resolution is microseconds; longer than a second would delay a takeover's
/// announcement by seconds per VIP.
const GARP_INTERVAL: Bounds =
    Bounds { zero: true, longest: Duration::from_secs(1), said: "1s", what: "the longest gap between gratuitous ARPs" };
const PREEMPT_DELAY: Bounds =
    Bounds { zero: true, longest: Duration::from_secs(1000), said: "1000s", what: "keepalived's limit" };

/// What `ip link` accepts in practice, and nothing any output format gives a meaning to.
fn is_interface_name(name: &str) -> bool {
    name.len() <= IFNAME_MAX && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
}

/// What instances may track, by name.
struct Known<'a> {
    scripts: &'a [VrrpScript],
    processes: &'a [TrackProcess],
    files: &'a [TrackFile],
    proxies: &'a [Proxy],
}

/// Each lookup gives a tracked object's default weight and reverse, or why the name is unknown.
impl Known<'_> {
    fn script(&self, name: &str) -> Result<(i32, bool), String> {
        let script = self.scripts.iter().find(|s| s.name == name);
        script.map(|s| (s.weight, false)).ok_or_else(|| format!("names no vrrp_script {name:?}"))
    }

    fn proxy(&self, name: &str) -> Result<(i32, bool), String> {
        self.proxies.iter().any(|p| p.name == name).then_some((0, false)).ok_or_else(|| format!("names no proxy {name:?}"))
    }

    fn interface(name: &str) -> Result<(i32, bool), String> {
        if is_interface_name(name) {
            Ok((0, false))
        } else {
            Err(format!("{name:?} cannot be a Linux interface name"))
        }
    }

    fn process(&self, name: &str) -> Result<(i32, bool), String> {
        let process = self.processes.iter().find(|p| p.name == name);
        process.map(|p| (p.weight, p.reverse)).ok_or_else(|| format!("names no vrrp_track_process {name:?}"))
    }

    fn file(&self, name: &str) -> Result<(i32, bool), String> {
        let file = self.files.iter().find(|f| f.name == name);
        file.map(|f| (f.weight, f.reverse)).ok_or_else(|| format!("names no vrrp_track_file {name:?}"))
    }
}

pub(crate) struct Validator<'a> {
    file: &'a Path,
    source: &'a str,
    pub problems: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Read the files the configuration names (a password file, a CA file); off for a file
    /// checked for another machine.
    pub read_files: bool,
}

impl<'a> Validator<'a> {
    pub fn new(file: &'a Path, source: &'a str) -> Self {
        Validator { file, source, problems: Vec::new(), warnings: Vec::new(), read_files: true }
    }

    fn error(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        self.problems.push(Diagnostic::new(self.file, self.source, span, key.to_owned(), message.into()));
    }

    fn warn(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        self.warnings.push(Diagnostic::new(self.file, self.source, span, key.to_owned(), message.into()));
    }

    /// An integer that must fall in `range`; `None` (with a problem recorded) otherwise.
    fn int<T: TryFrom<i64>>(&mut self, value: &S<i64>, key: &str, range: RangeInclusive<i64>) -> Option<T> {
        let v = *value.get_ref();
        if !range.contains(&v) {
            self.error(value.span(), key, format!("{v} is outside {}..={}", range.start(), range.end()));
            return None;
        }
        T::try_from(v).ok()
    }

    fn opt_int<T: TryFrom<i64>>(&mut self, value: &Option<S<i64>>, key: &str, range: RangeInclusive<i64>, default: T) -> T {
        match value {
            Some(v) => self.int(v, key, range).unwrap_or(default),
            None => default,
        }
    }

    /// A duration within `bounds`; `default` when absent, or out of bounds (a problem recorded).
    fn duration(&mut self, value: &Option<S<ConfigDuration>>, key: &str, bounds: Bounds, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        let written = value.get_ref().0;
        if written.is_zero() && !bounds.zero {
            self.error(value.span(), key, "must be longer than zero");
            default
        } else if written > bounds.longest {
            let message = format!("{} is longer than {}, {}", duration::format(written), bounds.said, bounds.what);
            self.error(value.span(), key, message);
            default
        } else {
            written
        }
    }

    /// `notify`, `notify_master`, `notify_backup`, `notify_fault`, `notify_stop`, in that order,
    /// of an instance or a sync group (`key` names `notify` there).
    fn notify(&mut self, raw: [&Option<S<String>>; 5], key: &str) -> Notify {
        let [any, master, backup, fault, stop] =
            [("", raw[0]), ("_master", raw[1]), ("_backup", raw[2]), ("_fault", raw[3]), ("_stop", raw[4])]
                .map(|(field, value)| value.as_ref().map(|v| self.non_empty(v, &format!("{key}{field}"))));
        Notify { any, master, backup, fault, stop }
    }

    fn non_empty(&mut self, value: &S<String>, key: &str) -> String {
        let text = value.get_ref().trim();
        if text.is_empty() {
            self.error(value.span(), key, "must not be empty");
        }
        text.to_owned()
    }

    /// A name that ends up in logs, the CSV, metrics labels and systemd's STATUS: a character
    /// set none of them gives a meaning to, so nothing can be injected into any of them.
    fn name(&mut self, value: &S<String>, key: &str) -> String {
        let text = self.non_empty(value, key);
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
        if !text.is_empty() && (text.len() > NAME_MAX || !text.chars().all(allowed)) {
            self.error(
                value.span(),
                key,
                format!("{text:?}: a name is 1 to {NAME_MAX} letters, digits, '_', '.', ':' or '-' (it goes into logs, CSV and metrics)"),
            );
        }
        text
    }

    fn ipv4(&mut self, value: &S<String>, key: &str) -> Option<Ipv4Addr> {
        match value.get_ref().trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(addr)) => Some(addr),
            Ok(IpAddr::V6(_)) => {
                self.error(value.span(), key, format!("{:?} is not IPv4: VRRPv2 carries IPv4 addresses only", value.get_ref()));
                None
            }
            Err(_) => {
                self.error(value.span(), key, format!("{:?} is not an IPv4 address", value.get_ref()));
                None
            }
        }
    }

    fn socket_addr(&mut self, value: &S<String>, key: &str, example: &str) -> Option<SocketAddr> {
        match value.get_ref().trim().parse::<SocketAddr>() {
            Ok(addr) if addr.port() == 0 => {
                self.error(value.span(), key, format!("{:?} has port 0: name the port", value.get_ref()));
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    value.span(),
                    key,
                    format!("{:?} is not an IP address and port (for example {example:?})", value.get_ref()),
                );
                None
            }
        }
    }

    /// Records a duplicate when `name` was seen before in `seen`.
    fn unique(&mut self, seen: &mut HashSet<String>, name: &S<String>, key: &str, what: &str) {
        if !seen.insert(name.get_ref().clone()) {
            self.error(name.span(), key, format!("{what} {:?} is defined twice", name.get_ref()));
        }
    }

    pub fn config(&mut self, raw: &RawConfig) -> Config {
        let global = self.global(&raw.global);
        let scripts = self.scripts(&raw.vrrp_script);
        let track_processes = self.track_processes(&raw.vrrp_track_process);
        let track_files = self.track_files(&raw.vrrp_track_file);
        let proxies = self.proxies(&raw.proxy);
        let known = Known { scripts: &scripts, processes: &track_processes, files: &track_files, proxies: &proxies };
        let mut instances = self.instances(&raw.vrrp_instance, &known, global.garp_interval, global.vrrp_version);
        let sync_groups = self.sync_groups(&raw.vrrp_sync_group, &mut instances, &known);
        let stats = raw.stats.as_ref().map(|s| self.stats(s));
        Config { global, scripts, track_processes, track_files, instances, sync_groups, proxies, stats }
    }

    fn global(&mut self, raw: &RawGlobal) -> Global {
        let router_id = match &raw.router_id {
            Some(id) => self.name(id, "global.router_id"),
            None => hostname(),
        };
        Global {
            router_id,
            script_user: raw.script_user.as_ref().map(|u| self.non_empty(u, "global.script_user")),
            enable_script_security: raw.enable_script_security.unwrap_or(true),
            control_socket: raw.control_socket.as_ref().map_or_else(
                || PathBuf::from(DEFAULT_CONTROL_SOCKET),
                |p| PathBuf::from(self.non_empty(p, "global.control_socket")),
            ),
            maxconn: raw.maxconn.as_ref().and_then(|m| self.int(m, "global.maxconn", 1..=10_000_000)),
            hard_stop_after: self.duration(&raw.hard_stop_after, "global.hard_stop_after", DELAY, Duration::from_secs(10)),
            user: raw.user.as_ref().map(|u| self.non_empty(u, "global.user")),
            vrrp_version: self.version(&raw.vrrp_version, "global.vrrp_version", VrrpVersion::V2),
            garp_interval: self.duration(&raw.garp_interval, "global.garp_interval", GARP_INTERVAL, Duration::ZERO),
        }
    }

    /// `version` / `vrrp_version`: 2 or 3.
    fn version(&mut self, value: &Option<S<i64>>, key: &str, default: VrrpVersion) -> VrrpVersion {
        match value.as_ref().map(|v| (v, *v.get_ref())) {
            None => default,
            Some((_, 2)) => VrrpVersion::V2,
            Some((_, 3)) => VrrpVersion::V3,
            Some((v, other)) => {
                self.error(v.span(), key, format!("{other} is not a VRRP version: 2 (RFC 3768) or 3 (RFC 5798)"));
                default
            }
        }
    }

    fn scripts(&mut self, raw: &[S<RawScript>]) -> Vec<VrrpScript> {
        let mut names = HashSet::new();
        let mut scripts = Vec::new();
        for (i, s) in raw.iter().enumerate() {
            let s = s.get_ref();
            let key = |field: &str| format!("vrrp_script[{i}].{field}");
            let name = self.name(&s.name, &key("name"));
            self.unique(&mut names, &s.name, &key("name"), "vrrp_script");
            let interval = self.duration(&s.interval, &key("interval"), INTERVAL, Duration::from_secs(1));
            scripts.push(VrrpScript {
                name,
                script: self.non_empty(&s.script, &key("script")),
                interval,
                timeout: self.duration(&s.timeout, &key("timeout"), TIMEOUT, interval),
                weight: self.opt_int(&s.weight, &key("weight"), WEIGHT_RANGE, 0),
                rise: self.opt_int(&s.rise, &key("rise"), 1..=1000, 1),
                fall: self.opt_int(&s.fall, &key("fall"), 1..=1000, 1),
                user: s.user.as_ref().map(|u| self.non_empty(u, &key("user"))),
            });
        }
        scripts
    }

    fn instances(
        &mut self,
        raw: &[S<RawInstance>],
        known: &Known,
        global_garp_interval: Duration,
        default_version: VrrpVersion,
    ) -> Vec<VrrpInstance> {
        let mut names = HashSet::new();
        let mut vrids: HashMap<(String, u8), usize> = HashMap::new();
        let mut vips: HashMap<IpAddr, usize> = HashMap::new();
        let mut instances = Vec::new();
        for (i, spanned) in raw.iter().enumerate() {
            let r = spanned.get_ref();
            let key = |field: &str| format!("vrrp_instance[{i}].{field}");
            let name = self.name(&r.name, &key("name"));
            self.unique(&mut names, &r.name, &key("name"), "vrrp_instance");

            let interface = self.non_empty(&r.interface, &key("interface"));
            if !is_interface_name(&interface) {
                self.error(r.interface.span(), &key("interface"), format!("{interface:?} cannot be a Linux interface name"));
            }
            let initial_state = match &r.state {
                Some(s) => s.get_ref().parse().unwrap_or_else(|e: String| {
                    self.error(s.span(), &key("state"), e);
                    InitialState::Backup
                }),
                None => InitialState::Backup,
            };
            let vrid: u8 = self.int(&r.virtual_router_id, &key("virtual_router_id"), 1..=255).unwrap_or(1);
            if let Some(first) = vrids.insert((interface.clone(), vrid), i) {
                self.error(
                    r.virtual_router_id.span(),
                    &key("virtual_router_id"),
                    format!("VRID {vrid} on {interface} is already used by vrrp_instance[{first}]"),
                );
            }
            let priority: u8 = self.opt_int(&r.priority, &key("priority"), 1..=255, 100);
            if priority == 255 && initial_state == InitialState::Backup && r.state.is_some() {
                let span = r.priority.as_ref().map_or(r.name.span(), |p| p.span());
                self.warn(
                    span,
                    &key("priority"),
                    "priority 255 makes this host the address owner: it starts as MASTER whatever `state` says",
                );
            }
            let version = self.version(&r.version, &key("version"), default_version);
            let advert_int = self.advert_int(&r.advert_int, &key("advert_int"), version);
            if let Some(accept) = r.accept_mode.as_ref().filter(|a| !*a.get_ref()) {
                // The VIP is an address of the interface: the kernel delivers what is sent to
                // it, and the balancer listens on it. keepalived's accept_mode off drops that
                // traffic with firewall rules, which would blind the balancer.
                self.error(
                    accept.span(),
                    &key("accept_mode"),
                    "false is not supported: vrrpd's master always accepts packets to its VIPs (RFC 5798 Accept_Mode \
                     true), as the balancer listens on them",
                );
            }
            let preempt = r.preempt.unwrap_or(true);
            let preempt_delay = self.duration(&r.preempt_delay, &key("preempt_delay"), PREEMPT_DELAY, Duration::ZERO);
            if let Some(d) = r.preempt_delay.as_ref().filter(|d| !preempt && d.get_ref().0 <= PREEMPT_DELAY.longest) {
                self.warn(d.span(), &key("preempt_delay"), "has no effect with preempt = false");
            }
            let authentication = match &r.authentication {
                Some(a) if version == VrrpVersion::V3 => {
                    self.error(
                        a.span(),
                        &key("authentication"),
                        "VRRPv3 has no authentication (RFC 5798 section 9): remove it, or use version = 2",
                    );
                    Authentication::None
                }
                Some(a) => self.authentication(a.get_ref(), &key("authentication")),
                None => Authentication::None,
            };

            let mut instance_vips = self.vips(&r.virtual_ipaddress, i, &interface, version, &mut vips);
            if let Some(excluded) = &r.virtual_ipaddress_excluded {
                instance_vips.extend(self.excluded_vips(excluded, i, &interface, &mut vips));
            }

            let track_script = self.tracks(&r.track_script, &key("track_script"), |name| known.script(name));
            let track_proxy = self.tracks(&r.track_proxy, &key("track_proxy"), |name| known.proxy(name));
            let track_interface = self.tracks(&r.track_interface, &key("track_interface"), Known::interface);
            let track_process = self.tracks(&r.track_process, &key("track_process"), |name| known.process(name));
            let track_file = self.tracks(&r.track_file, &key("track_file"), |name| known.file(name));

            let notify =
                self.notify([&r.notify, &r.notify_master, &r.notify_backup, &r.notify_fault, &r.notify_stop], &key("notify"));

            let unicast_src_ip = r.unicast_src_ip.as_ref().and_then(|ip| self.ipv4(ip, &key("unicast_src_ip")));
            let unicast_peer = r
                .unicast_peer
                .iter()
                .enumerate()
                .filter_map(|(j, ip)| self.ipv4(ip, &key(&format!("unicast_peer[{j}]"))))
                .collect();

            if instance_vips.iter().find(|v| !v.excluded).is_some_and(|v| v.addr().is_ipv6()) {
                for (field, span) in [
                    ("unicast_src_ip", r.unicast_src_ip.as_ref().map(|s| s.span())),
                    ("unicast_peer", r.unicast_peer.first().map(|s| s.span())),
                ] {
                    if let Some(span) = span {
                        self.error(
                            span,
                            &key(field),
                            "IPv6 virtual routers advertise to ff02::12 from the link-local address: unicast is IPv4 only",
                        );
                    }
                }
            }

            let defaults = GarpConfig::default();
            let garp = GarpConfig {
                master_delay: self.duration(&r.garp_master_delay, &key("garp_master_delay"), DELAY, defaults.master_delay),
                master_repeat: self.opt_int(&r.garp_master_repeat, &key("garp_master_repeat"), 1..=255, defaults.master_repeat),
                master_refresh: self.duration(
                    &r.garp_master_refresh,
                    &key("garp_master_refresh"),
                    DELAY,
                    defaults.master_refresh,
                ),
                master_refresh_repeat: self.opt_int(
                    &r.garp_master_refresh_repeat,
                    &key("garp_master_refresh_repeat"),
                    1..=255,
                    defaults.master_refresh_repeat,
                ),
                interval: self.duration(&r.garp_interval, &key("garp_interval"), GARP_INTERVAL, global_garp_interval),
            };

            instances.push(VrrpInstance {
                name,
                interface,
                initial_state,
                vrid,
                priority,
                version,
                advert_int,
                preempt,
                preempt_delay,
                authentication,
                virtual_ipaddress: instance_vips,
                track_script,
                track_proxy,
                track_interface,
                track_process,
                track_file,
                sync_peers: Vec::new(),
                notify,
                unicast_src_ip,
                unicast_peer,
                garp,
            });
        }
        instances
    }

    /// Whole seconds 1..=255 with VRRPv2; whole centiseconds from 10 ms to 40.95 s with VRRPv3.
    fn advert_int(&mut self, value: &Option<S<RawAdvertInt>>, key: &str, version: VrrpVersion) -> Duration {
        const DEFAULT: Duration = Duration::from_secs(1);
        let Some(value) = value else { return DEFAULT };
        let (written, nanos) = match value.get_ref() {
            RawAdvertInt::Seconds(secs) => (secs.to_string(), seconds_as_nanos(*secs)),
            RawAdvertInt::Text(text) => (format!("{text:?}"), advert_int_text(text)),
        };
        let Some(nanos) = nanos else {
            self.error(value.span(), key, format!("{written} is not an interval: write seconds (1, 0.1) or \"100ms\", \"0.5s\""));
            return DEFAULT;
        };
        match version {
            VrrpVersion::V2 if nanos % 1_000_000_000 != 0 => {
                let message = format!(
                    "{written} is not whole seconds: VRRPv2 advertises whole seconds (1..=255); sub-second adverts need version = 3"
                );
                self.error(value.span(), key, message);
                DEFAULT
            }
            VrrpVersion::V2 if !(1..=255).contains(&(nanos / 1_000_000_000)) => {
                self.error(value.span(), key, format!("{written} is outside 1..=255 seconds"));
                DEFAULT
            }
            VrrpVersion::V3 if !(10_000_000..=40_950_000_000).contains(&nanos) => {
                self.error(value.span(), key, format!("{written} is outside 10ms..=40.95s, VRRPv3's range"));
                DEFAULT
            }
            VrrpVersion::V3 if nanos % 10_000_000 != 0 => {
                let message = format!("{written} is not whole centiseconds: VRRPv3 advertises centiseconds (10ms to 40.95s)");
                self.error(value.span(), key, message);
                DEFAULT
            }
            _ => Duration::from_nanos(nanos),
        }
    }

    fn authentication(&mut self, raw: &RawAuthentication, key: &str) -> Authentication {
        let auth_type = raw.auth_type.get_ref().to_ascii_uppercase();
        match auth_type.as_str() {
            "PASS" => {
                let Some(pass) = &raw.auth_pass else {
                    self.error(raw.auth_type.span(), &format!("{key}.auth_pass"), "auth_type PASS needs auth_pass");
                    return Authentication::None;
                };
                let bytes = pass.get_ref().as_bytes();
                if bytes.is_empty() || bytes.len() > 8 {
                    self.error(
                        pass.span(),
                        &format!("{key}.auth_pass"),
                        format!(
                            "is {} bytes: a PASS password is 1 to 8 bytes (keepalived silently truncates a longer one; \
                             configure its first 8 bytes here)",
                            bytes.len()
                        ),
                    );
                    return Authentication::None;
                }
                let mut data = [0u8; 8];
                data[..bytes.len()].copy_from_slice(bytes);
                Authentication::Pass(data)
            }
            "NONE" => {
                if let Some(pass) = &raw.auth_pass {
                    self.warn(pass.span(), &format!("{key}.auth_pass"), "is ignored with auth_type NONE");
                }
                Authentication::None
            }
            "AH" => {
                self.error(
                    raw.auth_type.span(),
                    &format!("{key}.auth_type"),
                    "AH is not supported (RFC 3768 removed it): use PASS or NONE",
                );
                Authentication::None
            }
            other => {
                self.error(
                    raw.auth_type.span(),
                    &format!("{key}.auth_type"),
                    format!("{other:?} is not an auth_type: use PASS or NONE"),
                );
                Authentication::None
            }
        }
    }

    /// Resolves track entries; `lookup` gives the default weight and reverse, or why the name is
    /// unknown.
    fn tracks(&mut self, raw: &[S<RawTrack>], key: &str, lookup: impl Fn(&str) -> Result<(i32, bool), String>) -> Vec<Track> {
        let mut seen = HashSet::new();
        let mut tracks = Vec::new();
        for (j, t) in raw.iter().enumerate() {
            let t = t.get_ref();
            let name_key = format!("{key}[{j}].name");
            let name = self.name(&t.name, &name_key);
            self.unique(&mut seen, &t.name, &name_key, "tracked object");
            let (default_weight, default_reverse) = match lookup(&name) {
                Ok(defaults) => defaults,
                Err(why) => {
                    self.error(t.name.span(), &name_key, why);
                    continue;
                }
            };
            let weight = self.opt_int(&t.weight, &format!("{key}[{j}].weight"), WEIGHT_RANGE, default_weight);
            tracks.push(Track { name, weight, reverse: t.reverse.unwrap_or(default_reverse) });
        }
        tracks
    }

    fn stats(&mut self, raw: &S<RawStats>) -> Stats {
        let raw = raw.get_ref();
        Stats {
            listen: self
                .socket_addr(&raw.listen, "stats.listen", "0.0.0.0:8100")
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 1))),
            refresh: self.duration(&raw.refresh, "stats.refresh", INTERVAL, Duration::from_secs(5)),
            auth: raw.auth.as_ref().map(|a| StatsAuth {
                user: self.non_empty(&a.get_ref().user, "stats.auth.user"),
                password: self.non_empty(&a.get_ref().password, "stats.auth.password"),
            }),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "vrrpd".to_owned())
}

/// Seconds written as a number (keepalived's `advert_int 0.1`), in nanoseconds, rounded to the
/// microsecond so that 0.1 is 100 ms exactly.
fn seconds_as_nanos(secs: f64) -> Option<u64> {
    if !secs.is_finite() || !(0.0..=1e6).contains(&secs) {
        return None;
    }
    Some((secs * 1e6).round() as u64 * 1000)
}

/// `"100ms"`, `"0.5s"`, `"1s"`, `"1"` (seconds), or any duration the other keys accept.
fn advert_int_text(text: &str) -> Option<u64> {
    let text = text.trim();
    let number = |digits: &str, scale: f64| digits.trim().parse::<f64>().ok().and_then(|n| seconds_as_nanos(n * scale));
    if let Some(ms) = text.strip_suffix("ms") {
        return number(ms, 1e-3);
    }
    if let Some(s) = text.strip_suffix('s').filter(|s| s.trim().parse::<f64>().is_ok()) {
        return number(s, 1.0);
    }
    if let Some(n) = number(text, 1.0) {
        return Some(n);
    }
    duration::parse(text).ok().and_then(|d| u64::try_from(d.as_nanos()).ok())
}
