//! What the namespace tests run, as values: a [`HostConfig`] holds a proxy host's VRRP
//! instances, track scripts, proxies and stats page, and [`HostConfig::render`] is the one place
//! that writes vrrpd's TOML. [`Pair`] starts vrrpd on both proxy hosts the way most tests begin.
//!
//! ```no_run
//! # use integration::lab::Lab;
//! # use integration::scenario::{HostConfig, Instance, Pair, Proxy};
//! # let lab = Lab::up("doc");
//! let proxy = Proxy::amqp(r#"kind = "tcp", interval = "200ms""#, 2);
//! let host = |name: &str, priority| {
//!     HostConfig::new(name).instance(Instance::vi1(priority).track_proxy("amqp", 0)).proxy(proxy.clone())
//! };
//! let (a, b) = Pair::with(host).start(&lab);
//! ```

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::lab::{control_socket, vrrpd_config_path, Daemon, Lab, VIP, VIP2};

/// How long a takeover may take in the lab: Master_Down_Interval (3.6 s) with room to spare.
pub const TAKEOVER: Duration = Duration::from_secs(8);

/// One `[[vrrp_instance]]` on eth0.
#[derive(Clone, Debug)]
pub struct Instance {
    pub name: String,
    /// The lab host's interface; `eth0` unless set.
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    /// Each a /24.
    pub vips: Vec<Ipv4Addr>,
    /// Each a /64; when set, the instance carries these instead of `vips` (one family).
    pub vips6: Vec<Ipv6Addr>,
    /// More `virtual_ipaddress` entries as written (`{ address = "...", dev = "eth1" }`).
    pub vip_entries: Vec<String>,
    /// 2 or 3; vrrpd's default (2, or `[global] vrrp_version`) when unset.
    pub version: Option<u8>,
    /// As written in TOML (`1`, `"100ms"`); vrrpd's default (1 s) when unset.
    pub advert_int: Option<String>,
    /// PASS authentication with this password; none when unset.
    pub auth_pass: Option<String>,
    pub track_scripts: Vec<String>,
    /// Proxy names with their weights.
    pub track_proxies: Vec<(String, i32)>,
    /// `unicast_src_ip` and `unicast_peer`; multicast when unset.
    pub unicast: Option<(Ipv4Addr, Vec<Ipv4Addr>)>,
    /// Raw `key = value` lines for keys used once or twice (notify scripts...).
    pub extra: Vec<String>,
}

impl Instance {
    /// VI_1: VRID 51, the lab's VIP, advert_int 1, PASS s3cret.
    pub fn vi1(priority: u8) -> Instance {
        Instance {
            name: "VI_1".into(),
            interface: "eth0".into(),
            vrid: 51,
            priority,
            vips: vec![VIP],
            vips6: Vec::new(),
            vip_entries: Vec::new(),
            version: None,
            advert_int: Some("1".into()),
            auth_pass: Some("s3cret".into()),
            track_scripts: Vec::new(),
            track_proxies: Vec::new(),
            unicast: None,
            extra: Vec::new(),
        }
    }

    /// VI_2: VRID 52, the lab's second VIP, default advert_int, no authentication.
    pub fn vi2(priority: u8) -> Instance {
        Instance { name: "VI_2".into(), vrid: 52, vips: vec![VIP2], advert_int: None, auth_pass: None, ..Instance::vi1(priority) }
    }

    /// VRRPv3 (no authentication) advertising every `advert_int` ("100ms").
    pub fn v3(mut self, advert_int: &str) -> Instance {
        self.version = Some(3);
        self.advert_int = Some(quote(advert_int));
        self.auth_pass = None;
        self
    }

    /// An IPv6 virtual router (VRRPv3, `advert_int`) carrying `vip` alone.
    pub fn ipv6(self, vip: Ipv6Addr, advert_int: &str) -> Instance {
        Instance { vips6: vec![vip], ..self.v3(advert_int) }
    }

    /// On another interface, as another virtual router, with only `vip`.
    pub fn on(mut self, interface: &str, vrid: u8, vip: Ipv4Addr) -> Instance {
        self.interface = interface.into();
        self.vrid = vrid;
        self.vips = vec![vip];
        self
    }

    /// One more VIP (a /24).
    pub fn vip(mut self, vip: Ipv4Addr) -> Instance {
        self.vips.push(vip);
        self
    }

    /// One more `virtual_ipaddress` entry as written: a table with `dev`, `label`, `scope`.
    pub fn vip_entry(mut self, entry: impl Into<String>) -> Instance {
        self.vip_entries.push(entry.into());
        self
    }

    pub fn track_script(mut self, name: &str) -> Instance {
        self.track_scripts.push(name.into());
        self
    }

    pub fn track_proxy(mut self, name: &str, weight: i32) -> Instance {
        self.track_proxies.push((name.into(), weight));
        self
    }

    /// Adverts go from `source` to `peers` only.
    pub fn unicast(mut self, source: Ipv4Addr, peers: &[Ipv4Addr]) -> Instance {
        self.unicast = Some((source, peers.to_vec()));
        self
    }

    /// A raw `key = value` line inside the instance.
    pub fn with(mut self, line: impl Into<String>) -> Instance {
        self.extra.push(line.into());
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str("\n[[vrrp_instance]]\n");
        line(out, "name", quote(&self.name));
        line(out, "interface", quote(&self.interface));
        line(out, "virtual_router_id", self.vrid);
        line(out, "priority", self.priority);
        if let Some(version) = self.version {
            line(out, "version", version);
        }
        if let Some(advert_int) = &self.advert_int {
            line(out, "advert_int", advert_int);
        }
        if let Some(pass) = &self.auth_pass {
            line(out, "authentication", format!("{{ auth_type = \"PASS\", auth_pass = {} }}", quote(pass)));
        }
        let entries = self.vip_entries.iter().cloned();
        if self.vips6.is_empty() {
            line(out, "virtual_ipaddress", list(self.vips.iter().map(|vip| quote(&format!("{vip}/24"))).chain(entries)));
        } else {
            line(out, "virtual_ipaddress", list(self.vips6.iter().map(|vip| quote(&format!("{vip}/64"))).chain(entries)));
        }
        if !self.track_scripts.is_empty() {
            line(out, "track_script", list(self.track_scripts.iter().map(|name| format!("{{ name = {} }}", quote(name)))));
        }
        if !self.track_proxies.is_empty() {
            let tracks =
                self.track_proxies.iter().map(|(name, weight)| format!("{{ name = {}, weight = {weight} }}", quote(name)));
            line(out, "track_proxy", list(tracks));
        }
        if let Some((source, peers)) = &self.unicast {
            line(out, "unicast_src_ip", quote(&source.to_string()));
            line(out, "unicast_peer", list(peers.iter().map(|peer| quote(&peer.to_string()))));
        }
        raw_lines(out, &self.extra);
    }
}

/// One `[[vrrp_script]]`.
#[derive(Clone, Debug)]
pub struct Script {
    pub name: String,
    /// The command line.
    pub script: String,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub weight: Option<i32>,
}

impl Script {
    pub fn new(name: &str, script: impl Into<String>) -> Script {
        Script { name: name.into(), script: script.into(), interval: None, timeout: None, weight: None }
    }

    /// `interval` as vrrpd reads it, e.g. "500ms".
    pub fn interval(mut self, interval: &str) -> Script {
        self.interval = Some(interval.into());
        self
    }

    pub fn timeout(mut self, timeout: &str) -> Script {
        self.timeout = Some(timeout.into());
        self
    }

    pub fn weight(mut self, weight: i32) -> Script {
        self.weight = Some(weight);
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str("\n[[vrrp_script]]\n");
        line(out, "name", quote(&self.name));
        line(out, "script", quote(&self.script));
        if let Some(interval) = &self.interval {
            line(out, "interval", quote(interval));
        }
        if let Some(timeout) = &self.timeout {
            line(out, "timeout", quote(timeout));
        }
        if let Some(weight) = self.weight {
            line(out, "weight", weight);
        }
    }
}

/// One `[[proxy.server]]`.
#[derive(Clone, Debug)]
pub struct Server {
    pub name: String,
    pub address: String,
    pub weight: Option<u32>,
    pub maxconn: Option<u32>,
    /// The inside of the server's own `check = { ... }` table.
    pub check: Option<String>,
}

impl Server {
    /// The lab's broker `n` (1 to 3): rabbit`n` on 192.0.2.2`n`:5672.
    pub fn rabbit(n: usize) -> Server {
        Server { name: format!("rabbit{n}"), address: format!("192.0.2.2{n}:5672"), weight: None, maxconn: None, check: None }
    }

    pub fn maxconn(mut self, maxconn: u32) -> Server {
        self.maxconn = Some(maxconn);
        self
    }

    pub fn weight(mut self, weight: u32) -> Server {
        self.weight = Some(weight);
        self
    }

    /// Its own check settings, e.g. `port = 15672, fall = 1`.
    pub fn check(mut self, settings: &str) -> Server {
        self.check = Some(settings.into());
        self
    }
}

/// One `[[proxy]]` with its servers.
#[derive(Clone, Debug)]
pub struct Proxy {
    pub name: String,
    pub bind: String,
    /// The inside of the `check = { ... }` table.
    pub check: String,
    pub servers: Vec<Server>,
    /// Raw `key = value` lines for the proxy (balance...).
    pub extra: Vec<String>,
}

impl Proxy {
    /// `amqp` on 0.0.0.0:5672 over the lab's first `brokers` brokers (rabbit1 on 192.0.2.21,
    /// rabbit2 on .22, rabbit3 on .23), checked as `check` says.
    pub fn amqp(check: &str, brokers: usize) -> Proxy {
        Proxy {
            name: "amqp".into(),
            bind: "0.0.0.0:5672".into(),
            check: check.into(),
            servers: (1..=brokers).map(Server::rabbit).collect(),
            extra: Vec::new(),
        }
    }

    /// Listens on 0.0.0.0:`port`.
    pub fn port(mut self, port: u16) -> Proxy {
        self.bind = format!("0.0.0.0:{port}");
        self
    }

    /// These servers instead.
    pub fn servers(mut self, servers: Vec<Server>) -> Proxy {
        self.servers = servers;
        self
    }

    /// A raw `key = value` line inside the proxy.
    pub fn with(mut self, line: impl Into<String>) -> Proxy {
        self.extra.push(line.into());
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str("\n[[proxy]]\n");
        line(out, "name", quote(&self.name));
        line(out, "bind", quote(&self.bind));
        line(out, "check", format!("{{ {} }}", self.check));
        raw_lines(out, &self.extra);
        for server in &self.servers {
            out.push_str("\n[[proxy.server]]\n");
            line(out, "name", quote(&server.name));
            line(out, "address", quote(&server.address));
            if let Some(maxconn) = server.maxconn {
                line(out, "maxconn", maxconn);
            }
            if let Some(weight) = server.weight {
                line(out, "weight", weight);
            }
            if let Some(check) = &server.check {
                line(out, "check", format!("{{ {check} }}"));
            }
        }
    }
}

/// The `[stats]` page.
#[derive(Clone, Debug)]
pub struct Stats {
    pub listen: String,
    pub refresh: Option<String>,
    /// Basic auth: user and password.
    pub auth: Option<(String, String)>,
}

impl Stats {
    /// On 0.0.0.0:`port`.
    pub fn on(port: u16) -> Stats {
        Stats { listen: format!("0.0.0.0:{port}"), refresh: None, auth: None }
    }

    pub fn refresh(mut self, refresh: &str) -> Stats {
        self.refresh = Some(refresh.into());
        self
    }

    pub fn auth(mut self, user: &str, password: &str) -> Stats {
        self.auth = Some((user.into(), password.into()));
        self
    }

    fn render(&self, out: &mut String) {
        out.push_str("\n[stats]\n");
        line(out, "listen", quote(&self.listen));
        if let Some(refresh) = &self.refresh {
            line(out, "refresh", quote(refresh));
        }
        if let Some((user, password)) = &self.auth {
            line(out, "auth", format!("{{ user = {}, password = {} }}", quote(user), quote(password)));
        }
    }
}

/// A proxy host's whole vrrpd configuration.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The lab host ("a", "b"): router_id `proxy-HOST`, and where [`HostConfig::start`] runs it.
    pub host: String,
    /// [`HostConfig::start`] and [`HostConfig::write`] fill in the lab's socket for this host.
    pub control_socket: Option<PathBuf>,
    /// Raw `key = value` lines for `[global]` (user, enable_script_security...).
    pub global: Vec<String>,
    pub instances: Vec<Instance>,
    pub scripts: Vec<Script>,
    pub proxies: Vec<Proxy>,
    pub stats: Option<Stats>,
    /// Raw TOML sections for what has no builder (`[[vrrp_track_process]]`...), at the end.
    pub sections: Vec<String>,
}

impl HostConfig {
    /// Nothing but `[global]`.
    pub fn new(host: &str) -> HostConfig {
        HostConfig {
            host: host.into(),
            control_socket: None,
            global: Vec::new(),
            instances: Vec::new(),
            scripts: Vec::new(),
            proxies: Vec::new(),
            stats: None,
            sections: Vec::new(),
        }
    }

    /// A raw TOML section, written after everything else.
    pub fn section(mut self, text: impl Into<String>) -> HostConfig {
        self.sections.push(text.into());
        self
    }

    /// What most tests run: VI_1 ([`Instance::vi1`]) and nothing else.
    pub fn vi1(host: &str, priority: u8) -> HostConfig {
        HostConfig::new(host).instance(Instance::vi1(priority))
    }

    pub fn instance(mut self, instance: Instance) -> HostConfig {
        self.instances.push(instance);
        self
    }

    pub fn script(mut self, script: Script) -> HostConfig {
        self.scripts.push(script);
        self
    }

    pub fn proxy(mut self, proxy: Proxy) -> HostConfig {
        self.proxies.push(proxy);
        self
    }

    pub fn stats(mut self, stats: Stats) -> HostConfig {
        self.stats = Some(stats);
        self
    }

    /// A raw `key = value` line in `[global]`.
    pub fn global(mut self, line: impl Into<String>) -> HostConfig {
        self.global.push(line.into());
        self
    }

    pub fn control_socket(mut self, path: impl Into<PathBuf>) -> HostConfig {
        self.control_socket = Some(path.into());
        self
    }

    /// The configuration file's text.
    pub fn render(&self) -> String {
        let mut out = String::from("[global]\n");
        line(&mut out, "router_id", quote(&format!("proxy-{}", self.host)));
        if let Some(socket) = &self.control_socket {
            line(&mut out, "control_socket", quote(&socket.display().to_string()));
        }
        raw_lines(&mut out, &self.global);
        for instance in &self.instances {
            instance.render(&mut out);
        }
        for script in &self.scripts {
            script.render(&mut out);
        }
        for proxy in &self.proxies {
            proxy.render(&mut out);
        }
        if let Some(stats) = &self.stats {
            stats.render(&mut out);
        }
        for section in &self.sections {
            out.push('\n');
            out.push_str(section.trim_end());
            out.push('\n');
        }
        out
    }

    /// [`HostConfig::render`] as it runs in `lab`: with the host's own control socket (the
    /// namespaces share one filesystem) unless one is set.
    pub fn render_in(&self, lab: &Lab) -> String {
        if self.control_socket.is_some() {
            return self.render();
        }
        self.clone().control_socket(control_socket(lab, &self.host)).render()
    }

    /// Starts vrrpd with this configuration on its host.
    pub fn start(&self, lab: &Lab, args: &[&str]) -> Daemon {
        self.start_with_env(lab, args, &[])
    }

    /// [`HostConfig::start`] with extra environment variables (NOTIFY_SOCKET, JOURNAL_STREAM...).
    pub fn start_with_env(&self, lab: &Lab, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::vrrpd_with_env(lab, &self.host, &self.render_in(lab), args, env)
    }

    /// Starts vrrpd with this configuration through `wrapper` (`setpriv ...`).
    pub fn start_under(&self, lab: &Lab, wrapper: &[&str], args: &[&str]) -> Daemon {
        Daemon::vrrpd_under(lab, &self.host, wrapper, &self.render_in(lab), args, &[])
    }

    /// Writes this configuration over the file the host's vrrpd reads (for a reload); returns
    /// its path.
    pub fn write(&self, lab: &Lab) -> PathBuf {
        let path = vrrpd_config_path(lab, &self.host);
        std::fs::write(&path, self.render_in(lab)).expect("write config");
        path
    }
}

/// vrrpd on both proxy hosts, as most tests begin: A (priority 101) started `--state MASTER`,
/// B (priority 100), and A alone holds the VIP within [`TAKEOVER`].
#[derive(Clone, Debug)]
pub struct Pair {
    pub a: HostConfig,
    pub b: HostConfig,
}

impl Default for Pair {
    /// VI_1 alone on both hosts.
    fn default() -> Pair {
        Pair::with(HostConfig::vi1)
    }
}

impl Pair {
    /// Both hosts configured by `host(name, priority)`.
    pub fn with(host: impl Fn(&str, u8) -> HostConfig) -> Pair {
        Pair { a: host("a", 101), b: host("b", 100) }
    }

    /// Starts A, then B; panics with their logs unless A alone holds the VIP in time.
    pub fn start(&self, lab: &Lab) -> (Daemon, Daemon) {
        let a = self.a.start(lab, &["--state", "MASTER"]);
        let b = self.b.start(lab, &[]);
        lab.expect_holder(VIP, "a", TAKEOVER, &[&a, &b]);
        (a, b)
    }
}

/// The keepalived.conf equivalent of [`Instance::v3`] on VI_1: `vrrp_version 3`, no
/// authentication, `advert_int` in keepalived's seconds ("0.1").
pub fn keepalived_v3_config(host: &str, priority: u8, state: &str, advert_int: &str) -> String {
    format!(
        r#"global_defs {{
    router_id proxy-{host}
    vrrp_version 3
}}
vrrp_instance VI_1 {{
    state {state}
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert_int}
    virtual_ipaddress {{
        {VIP}/24
    }}
}}
"#
    )
}

/// The keepalived.conf equivalent of [`Instance::ipv6`] on VI_1: VRRPv3 over IPv6 with `vip`.
pub fn keepalived_v6_config(host: &str, priority: u8, state: &str, advert_int: &str, vip: Ipv6Addr) -> String {
    keepalived_v3_config(host, priority, state, advert_int).replace(&format!("{VIP}/24"), &format!("{vip}/64"))
}

/// The keepalived.conf equivalent of [`HostConfig::vi1`] (keepalived's own format).
pub fn keepalived_config(host: &str, priority: u8, state: &str) -> String {
    format!(
        r#"global_defs {{
    router_id proxy-{host}
}}
vrrp_instance VI_1 {{
    state {state}
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass s3cret
    }}
    virtual_ipaddress {{
        {VIP}/24
    }}
}}
"#
    )
}

fn line(out: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{key} = {value}");
}

fn raw_lines(out: &mut String, lines: &[String]) {
    for text in lines {
        out.push_str(text);
        out.push('\n');
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn list(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ha_common::config::{Authentication, Config, IpPrefix, Track, Vip};

    use super::*;

    /// Writes the rendered text to a file and loads it the way vrrpd does.
    fn load(config: &HostConfig) -> Config {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("vrrpd.toml");
        std::fs::write(&path, config.render()).expect("write");
        Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{}", config.render())).config
    }

    fn prefix(addr: Ipv4Addr) -> Vip {
        Vip::plain(IpPrefix { addr: addr.into(), len: 24 })
    }

    #[test]
    fn everything_the_builder_writes_loads_as_written() {
        let check = r#"kind = "tcp", interval = "200ms", rise = 1, fall = 2, timeout = "200ms""#;
        let (a_ip, b_ip, vip3) = (Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(192, 0, 2, 12), Ipv4Addr::new(192, 0, 2, 102));
        let host = HostConfig::new("a")
            .control_socket("/tmp/with \"quotes\" and \\/vrrpd.sock")
            .global("user = \"nobody\"")
            .global("enable_script_security = false")
            .instance(
                Instance::vi1(101)
                    .vip(vip3)
                    .track_script("chk")
                    .track_proxy("amqp", 0)
                    .unicast(a_ip, &[b_ip])
                    .with("notify = \"/bin/true\""),
            )
            .instance(Instance::vi2(100).vip_entry(r#"{ address = "192.0.2.150/24", dev = "eth1", label = "eth1:mq" }"#))
            .script(Script::new("chk", "/bin/sleep 30").interval("1s").timeout("300ms").weight(-20))
            .proxy(Proxy::amqp(check, 2).with("balance = \"roundrobin\""))
            .proxy(Proxy { name: "other".into(), ..Proxy::amqp(check, 0).port(5673).servers(vec![Server::rabbit(3).weight(3)]) })
            .stats(Stats::on(8100).refresh("2s").auth("admin", "s3cret-pw"));
        let config = load(&host);

        assert_eq!(config.global.router_id, "proxy-a");
        assert_eq!(config.global.control_socket, Path::new("/tmp/with \"quotes\" and \\/vrrpd.sock"));
        assert_eq!(config.global.user.as_deref(), Some("nobody"));
        assert!(!config.global.enable_script_security);

        let vi1 = config.instance("VI_1").expect("VI_1");
        assert_eq!((vi1.interface.as_str(), vi1.vrid, vi1.priority), ("eth0", 51, 101));
        assert_eq!(vi1.advert_int, Duration::from_secs(1));
        assert_eq!(vi1.authentication, Authentication::Pass(*b"s3cret\0\0"));
        assert_eq!(vi1.virtual_ipaddress, [prefix(VIP), prefix(vip3)]);
        assert_eq!(vi1.track_script, [Track { name: "chk".into(), weight: -20, reverse: false }]);
        assert_eq!(vi1.track_proxy, [Track { name: "amqp".into(), weight: 0, reverse: false }]);
        assert_eq!((vi1.unicast_src_ip, vi1.unicast_peer.as_slice()), (Some(a_ip), &[b_ip][..]));
        assert_eq!(vi1.notify.any.as_deref(), Some("/bin/true"));
        let vi2 = config.instance("VI_2").expect("VI_2");
        assert_eq!((vi2.vrid, vi2.priority, vi2.authentication), (52, 100, Authentication::None));
        let side = Vip { dev: Some("eth1".into()), label: Some("eth1:mq".into()), ..prefix(Ipv4Addr::new(192, 0, 2, 150)) };
        assert_eq!(vi2.virtual_ipaddress, [prefix(VIP2), side]);

        let script = config.script("chk").expect("chk");
        assert_eq!(script.script, "/bin/sleep 30");
        assert_eq!((script.interval, script.timeout, script.weight), (Duration::from_secs(1), Duration::from_millis(300), -20));

        let amqp = config.proxy("amqp").expect("amqp");
        assert_eq!(amqp.binds[0].to_string(), "0.0.0.0:5672");
        assert_eq!((amqp.check.interval, amqp.check.rise, amqp.check.fall), (Duration::from_millis(200), 1, 2));
        let servers: Vec<String> = amqp.servers.iter().map(|s| format!("{} {} {}", s.name, s.address, s.weight)).collect();
        assert_eq!(servers, ["rabbit1 192.0.2.21:5672 1", "rabbit2 192.0.2.22:5672 1"]);
        let other = config.proxy("other").expect("other");
        assert_eq!(other.binds[0].to_string(), "0.0.0.0:5673");
        assert_eq!((other.servers[0].name.as_str(), other.servers[0].weight), ("rabbit3", 3));

        let stats = config.stats.expect("[stats]");
        assert_eq!((stats.listen.to_string(), stats.refresh), ("0.0.0.0:8100".to_owned(), Duration::from_secs(2)));
        assert_eq!(stats.auth.map(|a| (a.user, a.password)), Some(("admin".into(), "s3cret-pw".into())));
    }

    #[test]
    fn the_plain_pair_is_vi1_on_both_hosts() {
        let Pair { a, b } = Pair::default();
        for (host, priority) in [(a, 101), (b, 100)] {
            let config = load(&host);
            assert_eq!(config.global.router_id, format!("proxy-{}", host.host));
            assert_eq!(config.instances.len(), 1);
            assert_eq!((config.instances[0].vrid, config.instances[0].priority), (51, priority));
            assert!(config.proxies.is_empty() && config.scripts.is_empty() && config.stats.is_none());
        }
        assert!(load(&HostConfig::new("a")).instances.is_empty());
    }
}
