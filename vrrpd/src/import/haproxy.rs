//! haproxy.cfg: `global`, `defaults`, `listen`, `frontend` + `backend` sections of directives.
//! TCP proxies become `[[proxy]]`, a stats listener becomes `[stats]`; everything else is
//! noted with its line.

use super::{NoteKind, Notes};

#[derive(Clone, Debug, Default)]
pub struct Server {
    pub name: String,
    pub address: String,
    pub line: usize,
    pub check: bool,
    pub inter: Option<String>,
    pub fastinter: Option<String>,
    pub downinter: Option<String>,
    pub rise: Option<String>,
    pub fall: Option<String>,
    pub backup: bool,
    pub weight: Option<String>,
    pub maxconn: Option<String>,
    pub send_proxy: Option<&'static str>,
}

/// Settings a `defaults` section passes on, and that a proxy section may override.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub mode: Option<String>,
    pub balance: Option<(String, usize)>,
    pub timeout_connect: Option<String>,
    pub timeout_client: Option<(String, usize)>,
    pub timeout_server: Option<(String, usize)>,
    pub timeout_check: Option<String>,
    pub timeout_queue: Option<String>,
    pub retries: Option<String>,
    pub redispatch: Option<bool>,
    pub maxconn: Option<String>,
    pub default_server: Server,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub bind: String,
    pub line: usize,
    pub auth: Option<(String, String)>,
    pub refresh: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Proxy {
    pub name: String,
    pub line: usize,
    pub bind: Option<String>,
    pub settings: Settings,
    pub servers: Vec<Server>,
    pub stats: bool,
    pub stats_auth: Option<(String, String)>,
    pub stats_refresh: Option<String>,
    pub default_backend: Option<String>,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kind {
    #[default]
    Listen,
    Frontend,
    Backend,
}

#[derive(Debug, Default)]
pub struct Haproxy {
    pub maxconn: Option<String>,
    pub proxies: Vec<Proxy>,
    pub stats: Option<Stats>,
}

/// HAProxy times: a bare number is milliseconds; `d` days become hours for vrrpd.
pub fn duration(value: &str) -> String {
    if value.chars().all(|c| c.is_ascii_digit()) {
        return format!("{value}ms");
    }
    match value.strip_suffix('d').and_then(|d| d.parse::<u64>().ok()) {
        Some(days) => format!("{}h", days * 24),
        None => value.to_owned(),
    }
}

/// `*:5670`, `:5670`, `0.0.0.0:5670`, `[::]:5670`.
fn bind_address(value: &str) -> String {
    match value.rsplit_once(':') {
        Some(("" | "*", port)) => format!("0.0.0.0:{port}"),
        _ => value.to_owned(),
    }
}

pub fn convert(text: &str, notes: &mut Notes) -> Haproxy {
    let mut out = Haproxy::default();
    let mut defaults = Settings::default();
    let mut section: Option<(&str, Proxy)> = None;
    let mut in_global = false;
    let finish = |section: &mut Option<(&str, Proxy)>, out: &mut Haproxy| {
        if let Some((_, proxy)) = section.take() {
            out.proxies.push(proxy);
        }
    };
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let words: Vec<&str> = raw.split('#').next().unwrap_or("").split_whitespace().collect();
        let Some(&keyword) = words.first() else { continue };
        match keyword {
            "global" => {
                finish(&mut section, &mut out);
                in_global = true;
                continue;
            }
            "defaults" => {
                finish(&mut section, &mut out);
                in_global = false;
                section = Some(("defaults", Proxy { line, ..Proxy::default() }));
                continue;
            }
            "listen" | "frontend" | "backend" => {
                if matches!(section, Some(("defaults", _))) {
                    if let Some((_, d)) = section.take() {
                        defaults = d.settings;
                    }
                }
                finish(&mut section, &mut out);
                in_global = false;
                let kind = match keyword {
                    "frontend" => Kind::Frontend,
                    "backend" => Kind::Backend,
                    _ => Kind::Listen,
                };
                let mut proxy = Proxy {
                    name: words.get(1).unwrap_or(&"proxy").to_string(),
                    line,
                    settings: defaults.clone(),
                    kind,
                    ..Proxy::default()
                };
                // `listen NAME ADDRESS` (older HAProxy) binds on the section line.
                if let Some(address) = words.get(2) {
                    proxy.bind = Some(bind_address(address));
                }
                section = Some((keyword, proxy));
                continue;
            }
            "userlist" | "peers" | "resolvers" | "mailers" | "program" | "http-errors" | "cache" | "ring" => {
                finish(&mut section, &mut out);
                in_global = false;
                notes.add(line, NoteKind::Dropped, format!("section `{keyword}`"));
                section = Some(("ignored", Proxy::default()));
                continue;
            }
            _ => {}
        }
        if in_global {
            match (keyword, words.get(1)) {
                ("maxconn", Some(n)) => out.maxconn = Some(n.to_string()),
                _ => notes.add(line, NoteKind::Dropped, format!("global `{}`", words.join(" "))),
            }
            continue;
        }
        match section.as_mut() {
            Some(("ignored", _)) => {}
            Some((_, proxy)) => directive(proxy, &words, line, notes),
            None => notes.add(line, NoteKind::Dropped, format!("`{}` outside any section", words.join(" "))),
        }
    }
    if let Some(("defaults", _)) = section {
        section = None;
    }
    finish(&mut section, &mut out);
    join_frontends(&mut out, notes);
    extract_stats(&mut out, notes);
    out
}

fn directive(proxy: &mut Proxy, words: &[&str], line: usize, notes: &mut Notes) {
    let s = &mut proxy.settings;
    let arg = |i: usize| words.get(i).map(|w| w.to_string());
    match (words[0], words.get(1).copied()) {
        ("bind", Some(address)) if proxy.bind.is_none() => {
            proxy.bind = Some(bind_address(address));
            if words.len() > 2 {
                notes.add(line, NoteKind::Dropped, format!("bind options `{}`", words[2..].join(" ")));
            }
        }
        ("bind", _) => notes.add(line, NoteKind::Dropped, "a second `bind`: a vrrpd proxy listens on one address".to_owned()),
        ("mode", Some(mode)) => s.mode = Some(mode.to_owned()),
        ("balance", Some(b)) => s.balance = Some((b.to_owned(), line)),
        ("timeout", Some("connect")) => s.timeout_connect = arg(2),
        ("timeout", Some("client")) => s.timeout_client = arg(2).map(|v| (v, line)),
        ("timeout", Some("server")) => s.timeout_server = arg(2).map(|v| (v, line)),
        ("timeout", Some("check")) => s.timeout_check = arg(2),
        ("timeout", Some("queue")) => s.timeout_queue = arg(2),
        ("retries", Some(n)) => s.retries = Some(n.to_owned()),
        ("option", Some("redispatch")) => s.redispatch = Some(true),
        ("no", Some("option")) if words.get(2) == Some(&"redispatch") => s.redispatch = Some(false),
        ("maxconn", Some(n)) => s.maxconn = Some(n.to_owned()),
        ("option", Some("tcpka" | "clitcpka" | "srvtcpka")) => {
            notes.add(line, NoteKind::Dropped, format!("`{}`: vrrpd always uses TCP keepalive on both sides", words.join(" ")))
        }
        ("default-server", _) => s.default_server = server_options(Server::default(), &words[1..], line, notes),
        ("server", Some(name)) => {
            let Some(address) = words.get(2) else {
                notes.add(line, NoteKind::Dropped, format!("server {name} has no address"));
                return;
            };
            let server = Server { name: name.to_owned(), address: address.to_string(), line, ..s.default_server.clone() };
            proxy.servers.push(server_options(server, words.get(3..).unwrap_or_default(), line, notes));
        }
        ("stats", Some("enable")) => proxy.stats = true,
        ("stats", Some("auth")) => {
            proxy.stats = true;
            if let Some((user, password)) = words.get(2).and_then(|a| a.split_once(':')) {
                proxy.stats_auth = Some((user.to_owned(), password.to_owned()));
            }
        }
        ("stats", Some("refresh")) => {
            proxy.stats = true;
            proxy.stats_refresh = arg(2);
        }
        ("stats", Some("uri")) => {
            proxy.stats = true;
            notes.add(
                line,
                NoteKind::Changed,
                format!("`stats uri {}`: the vrrpd page is at /, CSV at /stats.csv and /stats;csv", words.get(2).unwrap_or(&"")),
            );
        }
        ("default_backend" | "use_backend", Some(backend)) => proxy.default_backend = Some(backend.to_owned()),
        _ => notes.add(line, NoteKind::Dropped, format!("`{}`", words.join(" "))),
    }
}

/// HAProxy server keywords that take a value (the others are flags).
const VALUE_KEYWORDS: &[&str] = &[
    "port",
    "addr",
    "cookie",
    "id",
    "slowstart",
    "on-marked-down",
    "on-marked-up",
    "on-error",
    "error-limit",
    "observe",
    "check-sni",
    "sni",
    "ca-file",
    "crt",
    "verify",
    "resolvers",
    "resolve-prefer",
    "init-addr",
    "agent-port",
    "agent-inter",
    "agent-send",
    "source",
    "proto",
    "maxqueue",
    "minconn",
    "redir",
    "track",
    "pool-max-conn",
    "max-reuse",
    "namespace",
];

fn server_options(mut server: Server, options: &[&str], line: usize, notes: &mut Notes) -> Server {
    let mut i = 0;
    while i < options.len() {
        let value = options.get(i + 1).map(|v| v.to_string());
        let mut takes_value = true;
        match options[i] {
            "check" => {
                server.check = true;
                takes_value = false;
            }
            "backup" => {
                server.backup = true;
                takes_value = false;
            }
            "send-proxy" => {
                server.send_proxy = Some("v1");
                takes_value = false;
            }
            "send-proxy-v2" => {
                server.send_proxy = Some("v2");
                takes_value = false;
            }
            "inter" => server.inter = value,
            "fastinter" => server.fastinter = value,
            "downinter" => server.downinter = value,
            "rise" => server.rise = value,
            "fall" => server.fall = value,
            "weight" => server.weight = value,
            "maxconn" => server.maxconn = value,
            other => {
                takes_value = VALUE_KEYWORDS.contains(&other);
                let shown = if takes_value { format!("{other} {}", value.as_deref().unwrap_or("")) } else { other.to_owned() };
                notes.add(line, NoteKind::Dropped, format!("server {} option `{}`", server.name, shown.trim()));
            }
        }
        i += if takes_value { 2 } else { 1 };
    }
    server
}

/// A frontend with a `default_backend` becomes one proxy with that backend's servers.
fn join_frontends(out: &mut Haproxy, notes: &mut Notes) {
    let backends: Vec<Proxy> = out.proxies.iter().filter(|p| p.kind == Kind::Backend).cloned().collect();
    let mut used = Vec::new();
    for proxy in out.proxies.iter_mut().filter(|p| p.kind == Kind::Frontend) {
        let Some(name) = proxy.default_backend.clone() else {
            continue;
        };
        match backends.iter().find(|b| b.name == name) {
            Some(backend) => {
                proxy.servers = backend.servers.clone();
                // The backend's own settings win over the frontend's for the server side.
                let s = &backend.settings;
                let t = &mut proxy.settings;
                t.balance = s.balance.clone().or(t.balance.take());
                t.timeout_server = s.timeout_server.clone().or(t.timeout_server.take());
                t.timeout_connect = s.timeout_connect.clone().or(t.timeout_connect.take());
                t.timeout_check = s.timeout_check.clone().or(t.timeout_check.take());
                t.retries = s.retries.clone().or(t.retries.take());
                t.redispatch = s.redispatch.or(t.redispatch);
                t.mode = s.mode.clone().or(t.mode.take());
                used.push(name);
            }
            None => notes.add(proxy.line, NoteKind::Dropped, format!("frontend {}: backend {name:?} is not defined", proxy.name)),
        }
    }
    out.proxies.retain(|p| {
        if p.kind == Kind::Backend && !used.contains(&p.name) {
            notes.add(p.line, NoteKind::Dropped, format!("backend {} is used by no frontend", p.name));
            return false;
        }
        p.kind != Kind::Backend
    });
}

/// The first section with `stats enable` and no servers becomes `[stats]`.
fn extract_stats(out: &mut Haproxy, notes: &mut Notes) {
    out.proxies.retain(|p| {
        if !p.stats || !p.servers.is_empty() {
            return true;
        }
        match (&out.stats, &p.bind) {
            (None, Some(bind)) => {
                out.stats = Some(Stats {
                    bind: bind.clone(),
                    line: p.line,
                    auth: p.stats_auth.clone(),
                    refresh: p.stats_refresh.clone(),
                });
            }
            _ => notes.add(p.line, NoteKind::Dropped, format!("stats section {}: vrrpd has one stats page", p.name)),
        }
        false
    });
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Found by the import_haproxy fuzzer: `server NAME` without an address.
    #[test]
    fn a_server_without_an_address_is_noted_not_a_panic() {
        let mut notes = Notes::new(Path::new("haproxy.cfg"));
        let parsed = convert("listen amqp\n    bind :5672\n    server rabbit\n    server ok 192.0.2.21:5672 check\n", &mut notes);
        assert_eq!(parsed.proxies[0].servers.len(), 1);
        assert!(notes.notes.iter().any(|n| n.line == 3 && n.message.contains("server rabbit has no address")));
    }

    #[test]
    fn haproxy_durations() {
        assert_eq!(duration("5000"), "5000ms");
        assert_eq!(duration("1d"), "24h");
        assert_eq!(duration("30s"), "30s");
    }
}
