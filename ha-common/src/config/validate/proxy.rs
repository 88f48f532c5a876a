//! The `[[proxy]]` sections: bind, balance, timeouts, health checks and servers.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
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
            let mut addresses = Vec::new();
            let written: Vec<(S<String>, String)> = match p.bind.get_ref() {
                RawBinds::One(one) => vec![(S::new(p.bind.span(), one.clone()), key("bind"))],
                RawBinds::Many(many) => {
                    many.iter().enumerate().map(|(n, b)| (b.clone(), format!("{}[{n}]", key("bind")))).collect()
                }
            };
            if written.is_empty() {
                self.error(p.bind.span(), &key("bind"), "a proxy needs at least one address to listen on");
            }
            for (text, bind_key) in &written {
                let Some(bind) = self.socket_addr(text, bind_key, "0.0.0.0:5672") else { continue };
                match binds.insert(bind, i) {
                    Some(other) if other == i => self.error(text.span(), bind_key, format!("{bind} is listed twice")),
                    Some(other) => self.error(text.span(), bind_key, format!("{bind} is already a bind of proxy[{other}]")),
                    None => addresses.push(bind),
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
            let slowstart = self.duration(&p.slowstart, &key("slowstart"), DELAY, Duration::ZERO);
            let servers = self.servers(&p.server, &p.name, i, slowstart);
            if addresses.is_empty() {
                addresses.push(SocketAddr::from(([0, 0, 0, 0], 1)));
            }
            proxies.push(Proxy {
                name,
                binds: addresses,
                accept_proxy: p.accept_proxy.unwrap_or(false),
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
                servers,
            });
        }
        proxies
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
            servers.push(Server {
                name,
                address,
                weight: self.opt_int(&s.weight, &key("weight"), 0..=256, 1),
                backup: s.backup.unwrap_or(false),
                maxconn: s.maxconn.as_ref().and_then(|m| self.int(m, &key("maxconn"), 1..=1_000_000)),
                check: s.check.unwrap_or(true),
                slowstart: self.duration(&s.slowstart, &key("slowstart"), DELAY, slowstart),
            });
        }
        servers
    }
}
