//! The `[[proxy]]` sections: bind, balance, timeouts, health checks and servers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// A password file is one line; anything much longer is the wrong file.
const PASSWORD_FILE_LIMIT: u64 = 4096;

/// AMQP's default heartbeat: an idle timeout below it cuts idle, healthy clients.
const AMQP_HEARTBEAT: Duration = Duration::from_secs(60);

impl Validator<'_> {
    pub(super) fn proxies(&mut self, raw: &[S<RawProxy>]) -> Vec<Proxy> {
        let mut names = HashSet::new();
        let mut binds: HashMap<SocketAddr, usize> = HashMap::new();
        let mut proxies = Vec::new();
        for (i, p) in raw.iter().enumerate() {
            let p = p.get_ref();
            let key = |field: &str| format!("proxy[{i}].{field}");
            let name = self.name(&p.name, &key("name"));
            self.unique(&mut names, &p.name, &key("name"), "proxy");
            let mut addresses = Vec::new();
            let every_bind = p.accept_proxy.unwrap_or(false);
            let written: Vec<(S<String>, String, bool)> = match p.bind.get_ref() {
                RawBinds::One(one) => vec![(S::new(p.bind.span(), one.clone()), key("bind"), every_bind)],
                RawBinds::Many(many) => many
                    .iter()
                    .enumerate()
                    .map(|(n, b)| match b.get_ref() {
                        RawBind::Address(text) => (S::new(b.span(), text.clone()), format!("{}[{n}]", key("bind")), every_bind),
                        RawBind::Table { address, accept_proxy } => {
                            (address.clone(), format!("{}[{n}].address", key("bind")), accept_proxy.unwrap_or(every_bind))
                        }
                    })
                    .collect(),
            };
            if written.is_empty() {
                self.error(p.bind.span(), &key("bind"), "a proxy needs at least one address to listen on");
            }
            let mut accept_proxy = Vec::new();
            for (text, bind_key, expects_header) in &written {
                let Some(bind) = self.socket_addr(text, bind_key, "0.0.0.0:5672") else { continue };
                match binds.insert(bind, i) {
                    Some(other) if other == i => self.error(text.span(), bind_key, format!("{bind} is listed twice")),
                    Some(other) => self.error(text.span(), bind_key, format!("{bind} is already a bind of proxy[{other}]")),
                    None => {
                        addresses.push(bind);
                        if *expects_header {
                            accept_proxy.push(bind);
                        }
                    }
                }
            }
            let balance = match &p.balance {
                Some(b) => match b.get_ref().as_str() {
                    "leastconn" => Balance::LeastConn,
                    "roundrobin" => Balance::RoundRobin,
                    "first" => Balance::First,
                    other => {
                        self.error(
                            b.span(),
                            &key("balance"),
                            format!("{other:?} is not a balance: use leastconn, roundrobin or first"),
                        );
                        Balance::LeastConn
                    }
                },
                None => Balance::LeastConn,
            };
            let check = self.check(p.check.as_ref(), &key("check"));
            let timeout_connect = self.duration(&p.timeout_connect, &key("timeout_connect"), TIMEOUT, Duration::from_secs(5));
            let timeout_idle = self.duration(&p.timeout_idle, &key("timeout_idle"), IDLE, Duration::from_secs(3 * 3600));
            if let Some(idle) = &p.timeout_idle {
                if idle.get_ref().0 < AMQP_HEARTBEAT && !idle.get_ref().0.is_zero() {
                    self.warn(
                        idle.span(),
                        &key("timeout_idle"),
                        format!(
                            "{} is below the AMQP heartbeat ({}): idle but healthy AMQP clients will be cut; RabbitMQ setups use hours",
                            duration::format(idle.get_ref().0),
                            duration::format(AMQP_HEARTBEAT)
                        ),
                    );
                }
            }
            let send_proxy = p.send_proxy.as_ref().and_then(|v| match v.get_ref().as_str() {
                "v1" => Some(ProxyProtocol::V1),
                "v2" => Some(ProxyProtocol::V2),
                other => {
                    self.error(
                        v.span(),
                        &key("send_proxy"),
                        format!("{other:?} is not a PROXY protocol version: use \"v1\" or \"v2\""),
                    );
                    None
                }
            });
            let shutdown_sessions_on_down = match &p.on_marked_down {
                Some(v) => match v.get_ref().as_str() {
                    "shutdown-sessions" => true,
                    "none" => false,
                    other => {
                        self.error(
                            v.span(),
                            &key("on_marked_down"),
                            format!("{other:?} is not an action: use \"shutdown-sessions\" or \"none\""),
                        );
                        true
                    }
                },
                None => true,
            };
            let rabbitmq_api = p.rabbitmq_api.as_ref().and_then(|api| self.rabbitmq_api(api, &key("rabbitmq_api")));
            if let (Some(api), Some(v)) = (&p.rabbitmq_api, &p.send_proxy) {
                if rabbitmq_api.is_some() && send_proxy.is_some() {
                    self.error(
                        api.span(),
                        &key("rabbitmq_api"),
                        format!(
                            "cannot fence with send_proxy = {:?}: behind a PROXY header the brokers see the clients' addresses, \
                             not this host's, so a silent master's connections cannot be told apart; remove one of them",
                            v.get_ref()
                        ),
                    );
                }
            }
            let slowstart = self.duration(&p.slowstart, &key("slowstart"), DELAY, Duration::ZERO);
            let servers = self.servers(&p.server, &p.name, i, slowstart);
            if addresses.is_empty() {
                addresses.push(SocketAddr::from(([0, 0, 0, 0], 1)));
            }
            proxies.push(Proxy {
                name,
                binds: addresses,
                accept_proxy,
                allbackups: p.allbackups.unwrap_or(false),
                rebalance: p.rebalance.as_ref().map(|r| self.auto_rebalance(r.get_ref(), &key("rebalance"))),
                balance,
                check,
                timeout_connect,
                timeout_idle,
                timeout_queue: self.duration(&p.timeout_queue, &key("timeout_queue"), TIMEOUT, timeout_connect),
                retries: self.opt_int(&p.retries, &key("retries"), 0..=100, 3),
                redispatch: p.redispatch.unwrap_or(true),
                maxconn: p.maxconn.as_ref().and_then(|m| self.int(m, &key("maxconn"), 1..=1_000_000)),
                send_proxy,
                shutdown_sessions_on_down,
                rabbitmq_api,
                servers,
            });
        }
        proxies
    }

    fn rabbitmq_api(&mut self, raw: &S<RawRabbitmqApi>, key: &str) -> Option<RabbitmqApi> {
        let raw = raw.get_ref();
        let key = |field: &str| format!("{key}.{field}");
        let before = self.problems.len();
        if raw.urls.get_ref().is_empty() {
            self.error(raw.urls.span(), &key("urls"), "name at least one node's API, as \"http://192.0.2.21:15672\"");
        }
        let mut urls = Vec::new();
        let mut https = false;
        for (n, url) in raw.urls.get_ref().iter().enumerate() {
            match check_api_url(url.get_ref()) {
                Ok(secure) => {
                    https |= secure;
                    urls.push(url.get_ref().trim().trim_end_matches('/').to_owned());
                }
                Err(why) => self.error(url.span(), &format!("{}[{n}]", key("urls")), why),
            }
        }
        let user = self.non_empty(&raw.user, &key("user"));
        if raw.password.get_ref().is_empty() {
            self.error(raw.password.span(), &key("password"), "must not be empty");
        }
        let ca_file = raw.ca_file.as_ref().map(|file| {
            let path = PathBuf::from(self.non_empty(file, &key("ca_file")));
            if !https {
                self.warn(file.span(), &key("ca_file"), "is used for https only, and no URL is https");
            } else if self.read_files {
                if let Err(e) = std::fs::File::open(&path) {
                    self.error(file.span(), &key("ca_file"), format!("cannot read {}: {e}", path.display()));
                }
            }
            path
        });
        let mut fence_addresses = BTreeMap::new();
        for (peer, addresses) in &raw.fence_addresses {
            let item_key = format!("{}.{peer:?}", key("fence_addresses"));
            let Ok(peer_address) = peer.trim().parse::<IpAddr>() else {
                self.error(addresses.span(), &item_key, format!("{peer:?} is not a peer's IP address (its adverts' source)"));
                continue;
            };
            let mut extra = Vec::new();
            for address in addresses.get_ref() {
                match address.get_ref().trim().parse::<IpAddr>() {
                    Ok(a) if a.is_unspecified() || a.is_multicast() || a.is_loopback() => {
                        self.error(address.span(), &item_key, format!("{a} is not an address a peer connects from"))
                    }
                    Ok(a) => extra.push(a),
                    Err(_) => self.error(address.span(), &item_key, format!("{:?} is not an IP address", address.get_ref())),
                }
            }
            fence_addresses.insert(peer_address, extra);
        }
        (self.problems.len() == before).then(|| RabbitmqApi {
            urls,
            user,
            password: Secret::new(raw.password.get_ref().clone()),
            ca_file,
            fence_addresses,
        })
    }

    fn auto_rebalance(&mut self, raw: &RawRebalance, key: &str) -> AutoRebalance {
        let threshold = match &raw.threshold {
            Some(t) if !(1.1..=10.0).contains(t.get_ref()) => {
                let message = format!("{} is outside 1.1..=10 (times the fair share)", t.get_ref());
                self.error(t.span(), &format!("{key}.threshold"), message);
                1.5
            }
            Some(t) => *t.get_ref(),
            None => 1.5,
        };
        AutoRebalance { threshold, rate: self.opt_int(&raw.rate, &format!("{key}.rate"), 1..=1000, 5) }
    }

    fn check(&mut self, raw: Option<&S<RawCheck>>, key: &str) -> HealthCheck {
        let key = |field: &str| format!("{key}.{field}");
        let interval_default = HealthCheck::default().interval;
        let Some(raw) = raw.map(S::get_ref) else { return HealthCheck::default() };
        let kind = match &raw.kind {
            Some(k) => match k.get_ref().as_str() {
                "tcp" => CheckKind::Tcp,
                "amqp" => CheckKind::Amqp,
                "amqps" => CheckKind::Amqps,
                "http" => CheckKind::Http,
                "https" => CheckKind::Https,
                other => {
                    self.error(
                        k.span(),
                        &key("kind"),
                        format!("{other:?} is not a check kind: use tcp, amqp, amqps, http or https"),
                    );
                    CheckKind::Tcp
                }
            },
            None => CheckKind::Tcp,
        };
        let interval = self.duration(&raw.interval, &key("interval"), INTERVAL, interval_default);
        let tls = self.check_tls(raw, kind, &key);
        let http = self.http_check(raw, kind, &key);
        HealthCheck {
            kind,
            interval,
            fastinter: self.duration(&raw.fastinter, &key("fastinter"), INTERVAL, interval),
            downinter: self.duration(&raw.downinter, &key("downinter"), INTERVAL, interval),
            timeout: self.duration(&raw.timeout, &key("timeout"), TIMEOUT, interval),
            rise: self.opt_int(&raw.rise, &key("rise"), 1..=1000, 2),
            fall: self.opt_int(&raw.fall, &key("fall"), 1..=1000, 3),
            port: raw.port.as_ref().and_then(|p| self.int(p, &key("port"), 1..=65535)),
            addr: None,
            tls,
            http,
        }
    }

    /// A setting that only some check kinds read: written for another, it is a mistake.
    fn only_for<T>(&mut self, value: &Option<S<T>>, key: &str, kind: CheckKind, applies: bool, kinds: &str) {
        if let Some(v) = value {
            if !applies {
                self.error(v.span(), key, format!("only a check of kind {kinds} reads this; this check is {kind}"));
            }
        }
    }

    fn check_tls(&mut self, raw: &RawCheck, kind: CheckKind, key: &dyn Fn(&str) -> String) -> CheckTls {
        self.only_for(&raw.ca_file, &key("ca_file"), kind, kind.uses_tls(), "amqps or https");
        self.only_for(&raw.sni, &key("sni"), kind, kind.uses_tls(), "amqps or https");
        let ca_file = raw.ca_file.as_ref().map(|f| PathBuf::from(self.non_empty(f, &key("ca_file"))));
        if let Some((file, written)) = ca_file.as_ref().zip(raw.ca_file.as_ref()) {
            if !file.is_absolute() {
                self.error(written.span(), &key("ca_file"), "must be an absolute path");
            }
        }
        let sni = raw.sni.as_ref().map(|n| {
            let name = n.get_ref();
            let valid = !name.is_empty()
                && name.len() <= 253
                && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
            if !valid {
                self.error(n.span(), &key("sni"), format!("{name:?} is not a host name or IP address"));
            }
            name.clone()
        });
        CheckTls { ca_file, sni }
    }

    fn http_check(&mut self, raw: &RawCheck, kind: CheckKind, key: &dyn Fn(&str) -> String) -> Option<HttpCheck> {
        for (field, value) in
            [("path", &raw.path), ("user", &raw.user), ("password", &raw.password), ("password_file", &raw.password_file)]
        {
            self.only_for(value, &key(field), kind, kind.is_http(), "http or https");
        }
        self.only_for(&raw.expect_status, &key("expect_status"), kind, kind.is_http(), "http or https");
        if !kind.is_http() {
            return None;
        }
        let path = match &raw.path {
            Some(p) => {
                let path = p.get_ref();
                // Sent as the request line's target: one token, no control characters.
                if !path.starts_with('/') || path.chars().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
                    self.error(p.span(), &key("path"), format!("{path:?} is not a path starting with / without spaces"));
                }
                path.clone()
            }
            None => "/".to_owned(),
        };
        let expect_status = raw.expect_status.as_ref().and_then(|s| self.int(s, &key("expect_status"), 100..=599));
        let user = raw.user.as_ref().map(|u| {
            if u.get_ref().is_empty() || u.get_ref().contains(':') || u.get_ref().chars().any(|c| c.is_control()) {
                self.error(u.span(), &key("user"), "must be a non-empty name without ':' or control characters");
            }
            u.get_ref().clone()
        });
        let mut password = raw.password.as_ref().map(|p| {
            if p.get_ref().chars().any(|c| c.is_control()) {
                // The value itself is never repeated in a message.
                self.error(p.span(), &key("password"), "must not contain control characters");
            }
            Secret::new(p.get_ref().clone())
        });
        if let Some(file) = &raw.password_file {
            if let Some(p) = &raw.password {
                self.error(p.span(), &key("password"), "give password or password_file, not both");
            }
            password = self.password_file(file, &key("password_file"));
        }
        let given = raw.password.as_ref().or(raw.password_file.as_ref());
        match (&raw.user, given) {
            (Some(u), None) => self.error(u.span(), &key("user"), "a user needs a password (or password_file)"),
            (None, Some(p)) => self.error(p.span(), &key("password"), "a password needs a user"),
            _ => {}
        }
        Some(HttpCheck { path, expect_status, user, password })
    }

    /// The password in `file`: its first line. The file must be root's and no one else may
    /// change it (the rule vrrpd applies to scripts it runs as root) or read it; it is read
    /// at every load and reload. Messages name the file, never what it holds.
    fn password_file(&mut self, file: &S<String>, key: &str) -> Option<Secret> {
        let path = Path::new(file.get_ref());
        let refuse = |v: &mut Self, why: String| {
            v.error(file.span(), key, format!("{}: {why}", path.display()));
            None
        };
        if !path.is_absolute() {
            return refuse(self, "must be an absolute path".into());
        }
        if !self.read_files {
            // Checked for another machine: that one reads the file at its start.
            return Some(Secret::new(String::new()));
        }
        if let Some(open) = crate::file_safety::modifiable_by_others(path) {
            return refuse(
                self,
                format!("{} can be changed by a user other than root (owner, group write or world write): the password it holds could be swapped", open.display()),
            );
        }
        let metadata = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return refuse(self, e.to_string()),
        };
        if metadata.mode() & 0o004 != 0 {
            return refuse(
                self,
                "every user can read it: chmod o-r (root:vrrpd 0640 lets a dropped-privilege vrrpd read it)".into(),
            );
        }
        if !metadata.is_file() || metadata.len() > PASSWORD_FILE_LIMIT {
            return refuse(self, format!("not a regular file of at most {PASSWORD_FILE_LIMIT} bytes"));
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return refuse(self, e.to_string()),
        };
        let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if password.is_empty() || password.chars().any(|c| c.is_control()) {
            return refuse(self, "its first line must be the password, without control characters".into());
        }
        Some(Secret::new(password.to_owned()))
    }

    fn server_check(&mut self, raw: &RawServerCheckSettings, key: &dyn Fn(&str) -> String) -> ServerCheck {
        let duration = |v: &mut Self, value: &Option<S<ConfigDuration>>, field: &str, bounds| {
            value.as_ref().map(|_| v.duration(value, &key(field), bounds, Duration::from_secs(2)))
        };
        ServerCheck {
            interval: duration(self, &raw.interval, "interval", INTERVAL),
            fastinter: duration(self, &raw.fastinter, "fastinter", INTERVAL),
            downinter: duration(self, &raw.downinter, "downinter", INTERVAL),
            timeout: duration(self, &raw.timeout, "timeout", TIMEOUT),
            rise: raw.rise.as_ref().and_then(|r| self.int(r, &key("rise"), 1..=1000)),
            fall: raw.fall.as_ref().and_then(|f| self.int(f, &key("fall"), 1..=1000)),
            port: raw.port.as_ref().and_then(|p| self.int(p, &key("port"), 1..=65535)),
            addr: raw.addr.as_ref().and_then(|a| match a.get_ref().parse::<IpAddr>() {
                Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() => Some(ip),
                _ => {
                    self.error(a.span(), &key("addr"), format!("{:?} is not a unicast IP address", a.get_ref()));
                    None
                }
            }),
        }
    }

    fn servers(&mut self, raw: &[S<RawServer>], proxy_name: &S<String>, i: usize, slowstart: Duration) -> Vec<Server> {
        if raw.is_empty() {
            self.error(proxy_name.span(), &format!("proxy[{i}].server"), "a proxy needs at least one [[proxy.server]]");
        }
        let mut names = HashSet::new();
        let mut servers = Vec::new();
        for (j, s) in raw.iter().enumerate() {
            let s = s.get_ref();
            let key = |field: &str| format!("proxy[{i}].server[{j}].{field}");
            let name = self.name(&s.name, &key("name"));
            self.unique(&mut names, &s.name, &key("name"), "server");
            let Some(address) = self.socket_addr(&s.address, &key("address"), "192.0.2.21:5672") else { continue };
            let (check, check_settings) = match &s.check {
                None => (true, ServerCheck::default()),
                Some(RawServerCheck::Flag(on)) => (*on, ServerCheck::default()),
                Some(RawServerCheck::Settings(settings)) => (true, self.server_check(settings, &|f| key(&format!("check.{f}")))),
            };
            servers.push(Server {
                name,
                address,
                weight: self.opt_int(&s.weight, &key("weight"), 0..=256, 1),
                backup: s.backup.unwrap_or(false),
                maxconn: s.maxconn.as_ref().and_then(|m| self.int(m, &key("maxconn"), 1..=1_000_000)),
                check,
                check_settings,
                slowstart: self.duration(&s.slowstart, &key("slowstart"), DELAY, slowstart),
            });
        }
        servers
    }
}

/// `http://host[:port][/base]` or `https://...`: whether it is https, or what is wrong. No
/// credentials in it (they would reach logs), no query or fragment.
fn check_api_url(url: &str) -> Result<bool, String> {
    let url = url.trim();
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!("{url:?} is not an http:// or https:// URL (for example \"http://192.0.2.21:15672\")"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err("credentials go in user and password, not in the URL (logs show URLs)".to_owned());
    }
    if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?}: a URL here is scheme, host, port and an optional path, nothing else"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(format!("{url:?}: {port:?} is not a port"));
        }
    }
    Ok(https)
}
