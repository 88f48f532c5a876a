//! haproxy.cfg as written: `global`, `defaults`, `listen`, `frontend` + `backend` sections of
//! directives, each value kept with its line. A frontend is joined with the backend it sends
//! everything to; what the file says that vrrpd has no place for is noted here, with its line.
//! What the kept values become is decided in `proxies.rs`.

pub(crate) use super::Written;
use super::{frontends, NoteKind, Notes};

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
    /// `ssl` or `check-ssl`: the server, or its checks, speak TLS.
    pub tls: bool,
    /// `check-ssl`: the checks speak TLS whatever the traffic does.
    pub check_ssl: bool,
    /// `ssl`: the traffic (and, without `port` or `addr`, the checks) speak TLS.
    pub ssl: bool,
    /// `port` and `addr`: where the checks go instead of the traffic's address.
    pub check_port: Option<String>,
    pub check_addr: Option<String>,
    /// `ca-file`, `check-sni`, `verify`: how TLS checks verify the server.
    pub ca_file: Option<String>,
    pub check_sni: Option<String>,
    pub verify: Option<String>,
    pub backup: bool,
    pub disabled: bool,
    pub weight: Option<String>,
    pub maxconn: Option<String>,
    pub send_proxy: Option<&'static str>,
    pub shutdown_sessions: bool,
    pub slowstart: Option<String>,
}

/// Settings a `defaults` section passes on, and that a proxy section may override.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub mode: Option<String>,
    /// The algorithm with its arguments (`url_param userid`).
    pub balance: Option<Written>,
    pub timeout_connect: Option<Written>,
    pub timeout_client: Option<Written>,
    pub timeout_server: Option<Written>,
    pub timeout_tunnel: Option<Written>,
    pub timeout_check: Option<Written>,
    pub timeout_queue: Option<Written>,
    pub retries: Option<Written>,
    pub redispatch: Option<bool>,
    pub maxconn: Option<Written>,
    /// `option ssl-hello-chk`: the servers were checked with a TLS hello.
    pub tls_check: bool,
    /// `option httpchk [METHOD] [URI]`: the method and path of the HTTP check.
    pub httpchk: Option<(String, Written)>,
    /// `http-check expect status N`.
    pub http_expect: Option<Written>,
    /// `option allbackups`.
    pub allbackups: Option<bool>,
    pub default_server: Server,
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub bind: String,
    pub line: usize,
    pub auth: Option<(String, String)>,
    pub refresh: Option<Written>,
}

/// `use_backend BACKEND [if|unless CONDITION]`.
#[derive(Clone, Debug)]
pub(super) struct Route {
    pub backend: String,
    pub condition: Option<String>,
    pub line: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Proxy {
    pub name: String,
    pub line: usize,
    pub bind: Option<Written>,
    /// The `bind` lines after the first: the same proxy listens there too.
    pub more_binds: Vec<Written>,
    /// Whether each `bind` (the first, then `more_binds`) has `accept-proxy`.
    pub accept_proxy: Vec<bool>,
    pub settings: Settings,
    pub servers: Vec<Server>,
    /// Line of the first `stats` directive.
    pub(super) stats: Option<usize>,
    pub(super) stats_auth: Option<(String, String)>,
    pub(super) stats_refresh: Option<Written>,
    pub(super) default_backend: Option<Written>,
    pub(super) routes: Vec<Route>,
    pub(super) disabled: bool,
    pub(super) kind: Kind,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Kind {
    #[default]
    Listen,
    Frontend,
    Backend,
    Defaults,
    /// A section vrrpd has nothing for (`userlist`, `peers`...), noted once.
    Ignored,
}

#[derive(Debug, Default)]
pub struct Haproxy {
    pub maxconn: Option<Written>,
    pub proxies: Vec<Proxy>,
    pub stats: Option<Stats>,
    /// Every address HAProxy listens on, as written: the ports a watcher script may probe.
    pub listening: Vec<String>,
}

/// HAProxy times: a bare number is milliseconds; `d` days become hours for vrrpd.
pub fn duration(value: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
        return format!("{value}ms");
    }
    match value.strip_suffix('d').and_then(|d| d.parse::<u64>().ok()) {
        Some(days) => format!("{}h", days.saturating_mul(24)),
        None => value.to_owned(),
    }
}

const IGNORED_SECTIONS: &[&str] = &[
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "cache",
    "ring",
    "log-forward",
    "crt-store",
    "traces",
    "acme",
];

pub fn convert(text: &str, notes: &mut Notes) -> Haproxy {
    let mut out = Haproxy::default();
    let mut defaults = Settings::default();
    let mut section: Option<Proxy> = None;
    let mut in_global = false;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let words: Vec<&str> = raw.split('#').next().unwrap_or("").split_whitespace().collect();
        let Some(&keyword) = words.first() else { continue };
        let kind = match keyword {
            "global" => None,
            "defaults" => Some(Kind::Defaults),
            "listen" => Some(Kind::Listen),
            "frontend" => Some(Kind::Frontend),
            "backend" => Some(Kind::Backend),
            k if IGNORED_SECTIONS.contains(&k) => Some(Kind::Ignored),
            _ => {
                if in_global {
                    match (keyword, words.get(1)) {
                        ("maxconn", Some(n)) => out.maxconn = Some(Written { text: n.to_string(), line }),
                        _ => notes.add(line, NoteKind::Dropped, format!("global `{}`", words.join(" "))),
                    }
                } else {
                    match section.as_mut() {
                        Some(proxy) if proxy.kind == Kind::Ignored => {}
                        Some(proxy) => directive(proxy, &words, line, notes),
                        None => notes.add(line, NoteKind::Dropped, format!("`{}` outside any section", words.join(" "))),
                    }
                }
                continue;
            }
        };
        // A new section: the one before it is complete.
        finish(section.take(), &mut out, &mut defaults);
        in_global = kind.is_none();
        let Some(kind) = kind else { continue };
        if kind == Kind::Ignored {
            notes.add(line, NoteKind::Dropped, format!("section `{}`: vrrpd has no equivalent", words.join(" ")));
        }
        let mut proxy = Proxy {
            name: words.get(1).unwrap_or(&"proxy").to_string(),
            line,
            settings: if kind == Kind::Defaults { Settings::default() } else { defaults.clone() },
            kind,
            ..Proxy::default()
        };
        match words.get(2..).unwrap_or_default() {
            [] => {}
            // `listen NAME ADDRESS` (HAProxy 1.4) binds on the section line.
            // No bind options there: its `accept_proxy` entry is false, keeping the list in step.
            [address] if kind == Kind::Listen => {
                proxy.bind = Some(Written { text: address.to_string(), line });
                proxy.accept_proxy.push(false);
            }
            rest if kind != Kind::Ignored => notes.add(
                line,
                NoteKind::Dropped,
                format!("`{}` on the section line: a section inherits the last `defaults` before it", rest.join(" ")),
            ),
            _ => {}
        }
        section = Some(proxy);
    }
    finish(section, &mut out, &mut defaults);
    out.listening = out.proxies.iter().filter_map(|p| p.bind.as_ref().map(|b| b.text.clone())).collect();
    frontends::join(&mut out, notes);
    frontends::extract_stats(&mut out, notes);
    out.proxies.retain(|p| {
        if p.disabled {
            notes.add(p.line, NoteKind::Dropped, format!("proxy {} is `disabled` in HAProxy: not imported", p.name));
        }
        !p.disabled
    });
    out
}

fn finish(section: Option<Proxy>, out: &mut Haproxy, defaults: &mut Settings) {
    match section {
        Some(p) if p.kind == Kind::Defaults => *defaults = p.settings,
        Some(p) if p.kind == Kind::Ignored => {}
        Some(p) => out.proxies.push(p),
        None => {}
    }
}

fn written(words: &[&str], i: usize, line: usize) -> Option<Written> {
    words.get(i).map(|w| Written { text: w.to_string(), line })
}

fn directive(proxy: &mut Proxy, words: &[&str], line: usize, notes: &mut Notes) {
    let whole = words.join(" ");
    if proxy.kind == Kind::Defaults && matches!(words[0], "stats" | "default_backend" | "use_backend" | "bind" | "server" | "acl")
    {
        notes.add(line, NoteKind::Dropped, format!("`{whole}` in `defaults`: the sections below do not inherit it here"));
        return;
    }
    let s = &mut proxy.settings;
    match (words[0], words.get(1).copied()) {
        ("bind", Some(address)) => {
            let address = Written { text: address.to_owned(), line };
            if proxy.bind.is_none() {
                proxy.bind = Some(address);
            } else {
                proxy.more_binds.push(address);
            }
            let all = words.get(2..).unwrap_or_default();
            proxy.accept_proxy.push(all.contains(&"accept-proxy"));
            let options: Vec<&str> = all.iter().copied().filter(|o| *o != "accept-proxy").collect();
            if options.contains(&"ssl") {
                notes.add(
                    line,
                    NoteKind::Warning,
                    format!(
                        "bind options `{}`: HAProxy terminated TLS here; vrrpd does not, so the clients' TLS reaches the servers as it is: point the servers at their TLS port, or the clients at a plaintext one",
                        options.join(" ")
                    ),
                );
            } else if !options.is_empty() {
                notes.add(line, NoteKind::Dropped, format!("bind options `{}`", options.join(" ")));
            }
        }
        ("mode", Some(mode)) => s.mode = Some(mode.to_owned()),
        ("balance", Some(_)) => s.balance = Some(Written { text: words[1..].join(" "), line }),
        ("timeout", Some(which)) if words.len() == 3 => match which {
            "connect" => s.timeout_connect = written(words, 2, line),
            "client" => s.timeout_client = written(words, 2, line),
            "server" => s.timeout_server = written(words, 2, line),
            "tunnel" => s.timeout_tunnel = written(words, 2, line),
            "check" => s.timeout_check = written(words, 2, line),
            "queue" => s.timeout_queue = written(words, 2, line),
            _ => notes.add(line, NoteKind::Dropped, format!("`{whole}`: vrrpd has no such timeout")),
        },
        ("retries", Some(_)) => s.retries = written(words, 1, line),
        ("option", Some("redispatch")) => s.redispatch = Some(true),
        ("option", Some("allbackups")) => s.allbackups = Some(true),
        ("no", Some("option")) if words.get(2) == Some(&"allbackups") => s.allbackups = Some(false),
        ("no", Some("option")) if words.get(2) == Some(&"redispatch") => s.redispatch = Some(false),
        ("maxconn", Some(_)) => s.maxconn = written(words, 1, line),
        ("option", Some("tcpka" | "clitcpka" | "srvtcpka")) => {
            notes.add(line, NoteKind::Dropped, format!("`{whole}`: vrrpd always uses TCP keepalive on both sides"))
        }
        ("option", Some("ssl-hello-chk")) => {
            s.tls_check = true;
            notes.add(
                line,
                NoteKind::Changed,
                format!("`{whole}`: on an AMQP proxy vrrpd completes a verified TLS handshake and reads the broker's greeting (kind amqps); elsewhere it connects over TCP"),
            );
        }
        ("option", Some("httpchk")) => {
            // `option httpchk`, `option httpchk URI`, `option httpchk METHOD URI [VERSION]`.
            let (method, uri) = match &words[2..] {
                [] => ("OPTIONS", "/"),
                [uri] => ("OPTIONS", *uri),
                [method, uri, ..] => (*method, *uri),
            };
            if words.len() > 5 {
                notes.add(line, NoteKind::Dropped, format!("`{whole}`: the HTTP version and headers (vrrpd sends HTTP/1.1)"));
            }
            s.httpchk = Some((method.to_owned(), Written { text: uri.to_owned(), line }));
        }
        ("http-check", Some("expect")) => match words.get(2..) {
            Some(["status", status]) => s.http_expect = Some(Written { text: status.to_string(), line }),
            _ => notes.add(
                line,
                NoteKind::Dropped,
                format!("`{whole}`: vrrpd's HTTP check expects one status (`http-check expect status N`), or any 2xx/3xx"),
            ),
        },
        ("option", Some(check)) if check.ends_with("chk") || check.ends_with("-check") => notes.add(
            line,
            NoteKind::Dropped,
            format!("`{whole}`: vrrpd checks servers with a TCP connect, or the AMQP handshake on AMQP ports"),
        ),
        ("http-check" | "tcp-check", _) => notes.add(
            line,
            NoteKind::Dropped,
            format!("`{whole}`: vrrpd checks servers with a TCP connect, or the AMQP handshake on AMQP ports"),
        ),
        ("default-server", _) => s.default_server = server_options(s.default_server.clone(), &words[1..], line, notes),
        ("server", Some(name)) => {
            let Some(address) = words.get(2) else {
                notes.add(line, NoteKind::Dropped, format!("server {name} has no address"));
                return;
            };
            if proxy.servers.iter().any(|s| s.name == *name) {
                notes.add(
                    line,
                    NoteKind::Dropped,
                    format!("server {name} is defined twice (HAProxy refuses it too): the first is kept"),
                );
                return;
            }
            let server = Server { name: name.to_owned(), address: address.to_string(), line, ..s.default_server.clone() };
            proxy.servers.push(server_options(server, words.get(3..).unwrap_or_default(), line, notes));
        }
        ("stats", Some(what)) => stats(proxy, what, words, line, notes),
        ("default_backend", Some(_)) => proxy.default_backend = written(words, 1, line),
        ("use_backend", Some(backend)) => {
            let condition = words.get(2..).filter(|rest| !rest.is_empty()).map(|rest| rest.join(" "));
            proxy.routes.push(Route { backend: backend.to_owned(), condition, line });
        }
        ("acl", Some(name)) => {
            notes.add(line, NoteKind::Dropped, format!("acl {name}: vrrpd has no ACLs (no routing or filtering rules)"))
        }
        ("disabled", None) => proxy.disabled = true,
        _ => notes.add(line, NoteKind::Dropped, format!("`{whole}`")),
    }
}

fn stats(proxy: &mut Proxy, what: &str, words: &[&str], line: usize, notes: &mut Notes) {
    proxy.stats.get_or_insert(line);
    match what {
        "enable" => {}
        "auth" => match words.get(2).and_then(|a| a.split_once(':')) {
            Some(_) if proxy.stats_auth.is_some() => {
                notes.add(line, NoteKind::Dropped, format!("`{}`: vrrpd's stats page has one user", words.join(" ")))
            }
            Some((user, password)) => proxy.stats_auth = Some((user.to_owned(), password.to_owned())),
            None => notes.add(line, NoteKind::Dropped, format!("`{}`: not user:password", words.join(" "))),
        },
        "refresh" => proxy.stats_refresh = written(words, 2, line),
        "uri" => notes.add(
            line,
            NoteKind::Changed,
            format!("`stats uri {}`: the vrrpd page is at /, CSV at /stats.csv and /stats;csv", words.get(2).unwrap_or(&"")),
        ),
        _ => notes.add(line, NoteKind::Dropped, format!("`{}`", words.join(" "))),
    }
}

/// HAProxy server keywords that take a value (the others are flags).
const VALUE_KEYWORDS: &[&str] = &[
    "agent-addr",
    "agent-inter",
    "agent-port",
    "agent-send",
    "alpn",
    "ca-file",
    "check-alpn",
    "check-proto",
    "check-sni",
    "ciphers",
    "ciphersuites",
    "cookie",
    "crl-file",
    "crt",
    "curves",
    "error-limit",
    "hash-key",
    "id",
    "init-addr",
    "init-state",
    "log-proto",
    "max-reuse",
    "maxqueue",
    "minconn",
    "namespace",
    "npn",
    "observe",
    "on-error",
    "on-marked-up",
    "pool-low-conn",
    "pool-max-conn",
    "pool-purge-delay",
    "proto",
    "proxy-v2-options",
    "redir",
    "resolve-net",
    "resolve-opts",
    "resolve-prefer",
    "resolvers",
    "sigalgs",
    "sni",
    "socks4",
    "source",
    "ssl-max-ver",
    "ssl-min-ver",
    "tcp-ut",
    "track",
    "verify",
    "verifyhost",
    "ws",
];

fn server_options(mut server: Server, options: &[&str], line: usize, notes: &mut Notes) -> Server {
    let mut i = 0;
    while i < options.len() {
        let value = options.get(i + 1).map(|v| v.to_string());
        let shown = |value: &Option<String>| format!("{} {}", options[i], value.as_deref().unwrap_or(""));
        let mut takes_value = true;
        match options[i] {
            "check" => {
                server.check = true;
                takes_value = false;
            }
            "no-check" => {
                server.check = false;
                takes_value = false;
            }
            "backup" => {
                server.backup = true;
                takes_value = false;
            }
            "send-proxy" | "send-proxy-v2" => {
                server.send_proxy = Some(if options[i] == "send-proxy" { "v1" } else { "v2" });
                takes_value = false;
            }
            "ssl" => {
                server.tls = true;
                server.ssl = true;
                takes_value = false;
                notes.add(
                    line,
                    NoteKind::Warning,
                    format!(
                        "server {} option `ssl`: HAProxy spoke TLS to this server, vrrpd passes the client's bytes as they come (clients must speak TLS themselves)",
                        server.name
                    ),
                );
            }
            "check-ssl" => {
                server.tls = true;
                server.check_ssl = true;
                takes_value = false;
            }
            "no-check-ssl" => {
                server.check_ssl = false;
                takes_value = false;
            }
            "ca-file" => server.ca_file = value,
            "check-sni" => server.check_sni = value,
            "verify" => server.verify = value,
            "port" => server.check_port = value,
            "addr" => server.check_addr = value,
            "disabled" => {
                server.disabled = true;
                takes_value = false;
                notes.add(
                    line,
                    NoteKind::Changed,
                    format!(
                        "server {} is `disabled` (maintenance): written with weight 0, so it takes no new sessions",
                        server.name
                    ),
                );
            }
            "on-marked-down" => server.shutdown_sessions = value.as_deref() == Some("shutdown-sessions"),
            "inter" => server.inter = value,
            "fastinter" => server.fastinter = value,
            "downinter" => server.downinter = value,
            "rise" => server.rise = value,
            "fall" => server.fall = value,
            "weight" => server.weight = value,
            "slowstart" => server.slowstart = value,
            "maxconn" => server.maxconn = value,
            other => {
                takes_value = VALUE_KEYWORDS.contains(&other);
                let shown = if takes_value { shown(&value) } else { other.to_owned() };
                notes.add(line, NoteKind::Dropped, format!("server {} option `{}`", server.name, shown.trim()));
            }
        }
        i += if takes_value { 2 } else { 1 };
    }
    server
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

    #[test]
    fn a_defaults_section_followed_by_global_still_applies() {
        let mut notes = Notes::new(Path::new("haproxy.cfg"));
        let text = "defaults\n  retries 5\nglobal\n  maxconn 10\nlisten a\n  bind :5672\n  server s 192.0.2.1:5672\n";
        let parsed = convert(text, &mut notes);
        assert_eq!(parsed.proxies.len(), 1);
        assert_eq!(parsed.proxies[0].settings.retries.as_ref().map(|r| r.text.as_str()), Some("5"));
    }
}
