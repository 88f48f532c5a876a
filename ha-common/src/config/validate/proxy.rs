//! The `[[proxy]]` sections: bind, balance, timeouts, health checks and servers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::*;

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
            let bind = self.socket_addr(&p.bind, &key("bind"), "0.0.0.0:5672");
            if let Some(bind) = bind {
                if let Some(other) = binds.insert(bind, i) {
                    self.error(p.bind.span(), &key("bind"), format!("{bind} is already the bind of proxy[{other}]"));
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
            let servers = self.servers(&p.server, &p.name, i);
            proxies.push(Proxy {
                name,
                bind: bind.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 1))),
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
            } else if let Err(e) = std::fs::File::open(&path) {
                self.error(file.span(), &key("ca_file"), format!("cannot read {}: {e}", path.display()));
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
            password: raw.password.get_ref().clone(),
            ca_file,
            fence_addresses,
        })
    }

    fn check(&mut self, raw: Option<&S<RawCheck>>, key: &str) -> HealthCheck {
        let key = |field: &str| format!("{key}.{field}");
        let interval_default = Duration::from_secs(2);
        let Some(raw) = raw.map(S::get_ref) else {
            return HealthCheck {
                kind: CheckKind::Tcp,
                interval: interval_default,
                fastinter: interval_default,
                downinter: interval_default,
                timeout: interval_default,
                rise: 2,
                fall: 3,
            };
        };
        let kind = match &raw.kind {
            Some(k) => match k.get_ref().as_str() {
                "tcp" => CheckKind::Tcp,
                "amqp" => CheckKind::Amqp,
                other => {
                    self.error(k.span(), &key("kind"), format!("{other:?} is not a check kind: use tcp or amqp"));
                    CheckKind::Tcp
                }
            },
            None => CheckKind::Tcp,
        };
        let interval = self.duration(&raw.interval, &key("interval"), INTERVAL, interval_default);
        HealthCheck {
            kind,
            interval,
            fastinter: self.duration(&raw.fastinter, &key("fastinter"), INTERVAL, interval),
            downinter: self.duration(&raw.downinter, &key("downinter"), INTERVAL, interval),
            timeout: self.duration(&raw.timeout, &key("timeout"), TIMEOUT, interval),
            rise: self.opt_int(&raw.rise, &key("rise"), 1..=1000, 2),
            fall: self.opt_int(&raw.fall, &key("fall"), 1..=1000, 3),
        }
    }

    fn servers(&mut self, raw: &[S<RawServer>], proxy_name: &S<String>, i: usize) -> Vec<Server> {
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
            servers.push(Server {
                name,
                address,
                weight: self.opt_int(&s.weight, &key("weight"), 0..=256, 1),
                backup: s.backup.unwrap_or(false),
                maxconn: s.maxconn.as_ref().and_then(|m| self.int(m, &key("maxconn"), 1..=1_000_000)),
                check: s.check.unwrap_or(true),
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
