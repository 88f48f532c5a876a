//! What each HAProxy proxy becomes as a vrrpd `[[proxy]]`: decided once here, with a note
//! wherever the meaning is not the same; `emit.rs` only writes it down.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::consensus::{self, Check};
use super::haproxy::{self, Haproxy, Proxy, Written};
use super::values;
use super::{Lookups, NoteKind, Notes};

/// AMQP's default heartbeat: an idle timeout below it cuts idle, healthy clients.
const AMQP_HEARTBEAT: Duration = Duration::from_secs(60);

/// The balancer side of the import.
pub struct Balancer {
    pub maxconn: Option<i64>,
    pub sections: Vec<Section>,
    pub stats: Option<StatsOut>,
    /// Every port HAProxy listens on (proxies left out and the stats page included).
    pub ports: Vec<u16>,
    /// Every address HAProxy listens on that is not a wildcard.
    pub addresses: Vec<IpAddr>,
}

impl Balancer {
    /// The proxies written as `[[proxy]]`.
    pub fn proxies(&self) -> impl Iterator<Item = &ProxyOut> {
        self.sections.iter().filter_map(|s| match s {
            Section::Proxy(p) => Some(p.as_ref()),
            Section::LeftOut { .. } => None,
        })
    }
}

pub enum Section {
    Proxy(Box<ProxyOut>),
    /// Written as a comment saying why.
    LeftOut {
        name: String,
        line: usize,
        why: String,
    },
}

pub struct ProxyOut {
    pub name: String,
    pub line: usize,
    pub bind: SocketAddr,
    /// HAProxy's further `bind` lines of the proxy.
    pub more_binds: Vec<SocketAddr>,
    /// The binds with `accept-proxy`.
    pub accept_proxy: Vec<SocketAddr>,
    pub allbackups: bool,
    pub balance: &'static str,
    pub check: Option<Check>,
    pub timeout_connect: Option<String>,
    pub timeout_idle: Option<String>,
    pub timeout_queue: Option<String>,
    pub retries: Option<i64>,
    pub redispatch: bool,
    pub maxconn: Option<i64>,
    pub send_proxy: Option<&'static str>,
    pub servers: Vec<ServerOut>,
}

pub struct ServerOut {
    pub name: String,
    /// The address to write, or the address as written when it could not be resolved.
    pub address: Result<SocketAddr, String>,
    pub backup: bool,
    pub weight: Option<i64>,
    pub maxconn: Option<i64>,
    pub check: bool,
    /// Its own check settings (`check = { ... }`), where they differ from the proxy's.
    pub check_settings: Vec<(&'static str, String)>,
    pub slowstart: Option<String>,
}

pub struct StatsOut {
    pub line: usize,
    pub listen: SocketAddr,
    pub refresh: Option<String>,
    pub auth: Option<(String, String)>,
}

/// `*:5670`, `:5670`, `0.0.0.0:5670`, `[::]:5670`, `:::5670`, `ipv4@...` as an address.
fn bind_address(value: &str) -> Option<SocketAddr> {
    let value = value.trim_start_matches("ipv4@").trim_start_matches("ipv6@");
    let (host, port) = value.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let ip: IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
        "" | "*" => IpAddr::from([0, 0, 0, 0]),
        "::" | ":" => IpAddr::from([0u16; 8]),
        ip => ip.parse().ok()?,
    };
    Some(SocketAddr::new(ip, port))
}

fn looks_like_amqp(p: &Proxy) -> bool {
    let port = |a: &str| a.rsplit_once(':').map(|(_, port)| port.to_owned()).unwrap_or_default();
    p.servers.iter().any(|s| matches!(port(&s.address).as_str(), "5672" | consensus::AMQPS_PORT))
        || p.bind.as_ref().is_some_and(|b| matches!(port(&b.text).as_str(), "5672" | "5670" | consensus::AMQPS_PORT))
}

pub fn decide(h: &Haproxy, lookups: Lookups, notes: &mut Notes) -> Balancer {
    let maxconn = h.maxconn.as_ref().and_then(|m| values::integer(&m.text, 1..=10_000_000, m.line, "global maxconn", notes));
    let listening: Vec<SocketAddr> = h.listening.iter().filter_map(|b| bind_address(b)).collect();
    let mut sections = Vec::new();
    for p in &h.proxies {
        if p.servers.is_empty() {
            notes.add(p.line, NoteKind::Dropped, format!("proxy {} has no server: not imported", p.name));
            continue;
        }
        let taken: Vec<SocketAddr> = sections
            .iter()
            .flat_map(|s| match s {
                Section::Proxy(p) => std::iter::once(p.bind).chain(p.more_binds.iter().copied()).collect(),
                Section::LeftOut { .. } => Vec::new(),
            })
            .collect();
        sections.push(proxy(p, &taken, lookups, notes));
    }
    Balancer {
        maxconn,
        sections,
        stats: h.stats.as_ref().and_then(|s| stats(s, notes)),
        ports: listening.iter().map(SocketAddr::port).collect(),
        addresses: listening.iter().map(SocketAddr::ip).filter(|ip| !ip.is_unspecified()).collect(),
    }
}

fn left_out(p: &Proxy, why: String, notes: &mut Notes) -> Section {
    notes.add(p.line, NoteKind::Dropped, format!("proxy {}: {why}; left out, written as a comment", p.name));
    Section::LeftOut { name: p.name.clone(), line: p.line, why }
}

fn proxy(p: &Proxy, taken: &[SocketAddr], lookups: Lookups, notes: &mut Notes) -> Section {
    let Some(bind_written) = &p.bind else {
        return left_out(p, "no `bind`: it receives no connection of its own".to_owned(), notes);
    };
    let Some(bind) = bind_address(&bind_written.text) else {
        let why = format!("`bind {}` is not one IP address and port", bind_written.text);
        return left_out(p, why, notes);
    };
    if taken.contains(&bind) {
        return left_out(p, format!("{bind} is already the bind of another proxy"), notes);
    }
    let mut more_binds = Vec::new();
    // HAProxy's `accept-proxy` is a bind's: the binds that have it.
    let mut accept_proxy = Vec::new();
    if p.accept_proxy.first().copied().unwrap_or(false) {
        accept_proxy.push(bind);
    }
    for (n, written) in p.more_binds.iter().enumerate() {
        match bind_address(&written.text) {
            Some(address) if taken.contains(&address) || address == bind || more_binds.contains(&address) => notes.add(
                written.line,
                NoteKind::Dropped,
                format!("`bind {}`: {address} is already a bind of this or another proxy", written.text),
            ),
            Some(address) => {
                more_binds.push(address);
                if p.accept_proxy.get(n + 1).copied().unwrap_or(false) {
                    accept_proxy.push(address);
                }
            }
            None => notes.add(written.line, NoteKind::Dropped, format!("`bind {}` is not one IP address and port", written.text)),
        }
    }
    if p.settings.mode.as_deref() == Some("http") {
        notes.add(
            p.line,
            NoteKind::Changed,
            format!("proxy {}: mode http is balanced in TCP mode (no HTTP rewriting or logging)", p.name),
        );
    }
    let mut servers: Vec<ServerOut> = p.servers.iter().map(|s| server(s, bind.port(), lookups, notes)).collect();
    if servers.iter().all(|s| s.address.is_err()) {
        return left_out(p, "no server address could be resolved".to_owned(), notes);
    }
    let s = &p.settings;
    let amqp = looks_like_amqp(p);
    if s.redispatch.is_none() {
        notes.add(
            p.line,
            NoteKind::Changed,
            format!("proxy {}: redispatch off as in HAProxy's default; vrrpd recommends redispatch = true", p.name),
        );
    }
    let check = consensus::check(p, amqp, notes);
    if let Some(check) = &check {
        for (out, written) in servers.iter_mut().zip(&p.servers) {
            out.check_settings = check.own(&written.name).to_vec();
        }
    }
    if check.is_some() && !p.servers.iter().filter(|s| s.check).all(|s| s.shutdown_sessions) {
        notes.add(
            p.line,
            NoteKind::Changed,
            format!(
                "proxy {}: the sessions of a server marked DOWN are closed (vrrpd's on_marked_down = \"shutdown-sessions\"); HAProxy kept them without `on-marked-down shutdown-sessions`",
                p.name
            ),
        );
    }
    let timeout = |w: &Option<Written>, what: &str, notes: &mut Notes| {
        w.as_ref().and_then(|w| values::duration(&haproxy::duration(&w.text), values::TIMEOUT, w.line, what, notes))
    };
    Section::Proxy(Box::new(ProxyOut {
        name: values::name(&p.name, p.line, "proxy", notes),
        line: p.line,
        bind,
        more_binds,
        accept_proxy,
        allbackups: s.allbackups.unwrap_or(false),
        balance: balance(p, notes),
        check,
        timeout_connect: timeout(&s.timeout_connect, "timeout connect", notes),
        timeout_idle: idle_timeout(p, amqp, notes),
        timeout_queue: timeout(&s.timeout_queue, "timeout queue", notes),
        retries: s.retries.as_ref().and_then(|r| values::integer(&r.text, 0..=100, r.line, "retries", notes)),
        redispatch: s.redispatch.unwrap_or(false),
        maxconn: s
            .maxconn
            .as_ref()
            .filter(|m| m.text != "0")
            .and_then(|m| values::integer(&m.text, 1..=1_000_000, m.line, "maxconn", notes)),
        send_proxy: consensus::send_proxy(p, notes),
        servers,
    }))
}

fn server(s: &haproxy::Server, bind_port: u16, lookups: Lookups, notes: &mut Notes) -> ServerOut {
    // Without a port HAProxy connects to the port the client connected to: the bind's.
    let address = if s.address.parse::<IpAddr>().is_ok() || !s.address.contains(':') {
        let with_port = match s.address.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:{bind_port}"),
            _ => format!("{}:{bind_port}", s.address),
        };
        notes.add(
            s.line,
            NoteKind::Changed,
            format!("server {} has no port: HAProxy used the port the client connected to; written {with_port}", s.name),
        );
        with_port
    } else {
        s.address.clone()
    };
    let resolved = (lookups.resolve)(&address);
    if resolved.is_none() {
        notes.add(
            s.line,
            NoteKind::Dropped,
            format!("server {} {}: cannot resolve the address here; left commented out", s.name, s.address),
        );
    }
    let weight = if s.disabled {
        Some(0)
    } else {
        s.weight.as_ref().and_then(|w| values::integer(w, 0..=256, s.line, &format!("server {} weight", s.name), notes))
    };
    ServerOut {
        name: values::name(&s.name, s.line, "server", notes),
        address: resolved.ok_or_else(|| address.clone()),
        backup: s.backup,
        weight,
        // HAProxy's `maxconn 0` is no limit, as no maxconn is in vrrpd.
        maxconn: s
            .maxconn
            .as_ref()
            .filter(|m| m.as_str() != "0")
            .and_then(|m| values::integer(m, 1..=1_000_000, s.line, &format!("server {} maxconn", s.name), notes)),
        check: s.check,
        check_settings: Vec::new(),
        slowstart: s.slowstart.as_ref().and_then(|v| {
            values::duration(&haproxy::duration(v), values::DELAY, s.line, &format!("server {} slowstart", s.name), notes)
        }),
    }
}

/// What each HAProxy algorithm did that vrrpd does not.
fn lost_by(algorithm: &str) -> &'static str {
    match algorithm {
        "source" => "each client address stuck to one server",
        "uri" | "url_param" | "rdp-cookie" => "a hash of the request chose the server (HTTP or RDP only)",
        a if a.starts_with("hdr(") || a.starts_with("rdp-cookie(") => "a hash of the request chose the server (HTTP or RDP only)",
        a if a.starts_with("random") => "a random pick chose the server",
        "hash" => "a hash of a sample expression chose the server",
        _ => "an algorithm vrrpd does not know",
    }
}

/// vrrpd balances with leastconn, roundrobin or first. HAProxy's default is roundrobin.
fn balance(p: &Proxy, notes: &mut Notes) -> &'static str {
    let Some(Written { text, line }) = &p.settings.balance else {
        notes.add(
            p.line,
            NoteKind::Changed,
            format!(
                "proxy {}: no `balance`: HAProxy's default, roundrobin, is written (vrrpd's own default is leastconn)",
                p.name
            ),
        );
        return "roundrobin";
    };
    let algorithm = text.split_whitespace().next().unwrap_or_default();
    match algorithm {
        "roundrobin" | "static-rr" => "roundrobin",
        "leastconn" => "leastconn",
        "first" => "first",
        other => {
            notes.add(
                *line,
                NoteKind::Changed,
                format!(
                    "proxy {}: `balance {text}` ({}) has no vrrpd equivalent: written leastconn, which spreads long-lived AMQP connections by how many each server holds",
                    p.name,
                    lost_by(other)
                ),
            );
            "leastconn"
        }
    }
}

/// In TCP mode `timeout tunnel` is the inactivity timeout; without it, the shorter of
/// `timeout client` and `timeout server` ends an idle session. Below the AMQP heartbeat on an
/// AMQP proxy it is not carried (vrrpd's 3h default applies) and a warning says so.
fn idle_timeout(p: &Proxy, amqp: bool, notes: &mut Notes) -> Option<String> {
    let s = &p.settings;
    let candidates: Vec<(&str, &Written)> = match &s.timeout_tunnel {
        Some(tunnel) => vec![("tunnel", tunnel)],
        None => [("client", &s.timeout_client), ("server", &s.timeout_server)]
            .into_iter()
            .filter_map(|(which, w)| w.as_ref().map(|w| (which, w)))
            .collect(),
    };
    let mut sides = Vec::new();
    for (which, w) in candidates {
        match ha_common::duration::parse(&haproxy::duration(&w.text)) {
            Ok(d) => sides.push((d, which, w)),
            Err(_) => notes.add(w.line, NoteKind::Dropped, format!("`timeout {which} {}` is not a duration", w.text)),
        }
    }
    // Zero is HAProxy's "no timeout": the other side's limit is the one that acts.
    let limited: Vec<_> = sides.iter().filter(|(d, _, _)| !d.is_zero()).collect();
    let Some(&&(shortest, _, chosen)) = limited.iter().min_by_key(|(d, _, _)| *d) else {
        let (_, _, w) = sides.first()?;
        return values::duration(&haproxy::duration(&w.text), values::IDLE, w.line, "idle timeout", notes);
    };
    for (d, which, w) in &limited {
        if *d < AMQP_HEARTBEAT {
            let message = if amqp {
                format!("proxy {}: `timeout {which} {}` would cut idle AMQP clients (heartbeats come every 30 s); imported with vrrpd's default timeout_idle (3h)", p.name, w.text)
            } else {
                format!(
                    "proxy {}: `timeout {which} {}` is below an AMQP heartbeat; fine only if no AMQP client uses it",
                    p.name, w.text
                )
            };
            notes.add(w.line, NoteKind::Warning, message);
        }
    }
    if amqp && shortest < AMQP_HEARTBEAT {
        return None;
    }
    if limited.iter().any(|(d, _, _)| *d != shortest) {
        notes.add(
            chosen.line,
            NoteKind::Changed,
            format!(
                "proxy {}: vrrpd has one idle timeout for both sides: the shorter, `{}`, which HAProxy hit first",
                p.name, chosen.text
            ),
        );
    }
    values::duration(&haproxy::duration(&chosen.text), values::IDLE, chosen.line, "idle timeout", notes)
}

fn stats(s: &haproxy::Stats, notes: &mut Notes) -> Option<StatsOut> {
    let Some(listen) = bind_address(&s.bind) else {
        notes.add(s.line, NoteKind::Dropped, format!("stats page: `bind {}` is not one IP address and port", s.bind));
        return None;
    };
    let auth = s.auth.clone().filter(|(user, password)| {
        let complete = !user.is_empty() && !password.is_empty();
        if !complete {
            notes.add(s.line, NoteKind::Dropped, "stats page: `stats auth` needs a user and a password".to_owned());
        }
        complete
    });
    Some(StatsOut {
        line: s.line,
        listen,
        refresh: s
            .refresh
            .as_ref()
            .and_then(|r| values::duration(&haproxy::duration(&r.text), values::INTERVAL, r.line, "stats refresh", notes)),
        auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_as_haproxy_writes_them() {
        assert_eq!(bind_address("*:5670"), "0.0.0.0:5670".parse().ok());
        assert_eq!(bind_address(":5670"), "0.0.0.0:5670".parse().ok());
        assert_eq!(bind_address(":::5670"), "[::]:5670".parse().ok());
        assert_eq!(bind_address("[::]:5670"), "[::]:5670".parse().ok());
        assert_eq!(bind_address("192.0.2.10:5672"), "192.0.2.10:5672".parse().ok());
        assert_eq!(bind_address("ipv4@192.0.2.10:5672"), "192.0.2.10:5672".parse().ok());
        assert_eq!(bind_address(":5672-5680"), None);
        assert_eq!(bind_address("unix@/run/haproxy.sock"), None);
    }
}
