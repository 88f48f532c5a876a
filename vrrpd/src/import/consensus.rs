//! Settings HAProxy keeps per server and vrrpd per proxy (check timing, the PROXY protocol):
//! the value most of a proxy's servers have is carried, and every server that had another is
//! named with what it had. The `check` flag itself stays per server (`emit.rs`).

use std::time::Duration;

use super::haproxy::{self, Proxy, Server};
use super::values;
use super::{NoteKind, Notes};

/// The AMQPS port: TLS from the first byte.
pub const AMQPS_PORT: &str = "5671";

/// `check = { ... }` as decided: the kind, then each field with its TOML value; and each
/// server's own settings where they differ from the proxy's (`check = { port = 15672 }`).
#[derive(Debug)]
pub struct Check {
    pub kind: &'static str,
    pub fields: Vec<(&'static str, String)>,
    pub per_server: Vec<(String, Vec<(&'static str, String)>)>,
}

impl Check {
    /// The settings of its own written for server `name` (HAProxy's name).
    pub fn own(&self, name: &str) -> &[(&'static str, String)] {
        self.per_server.iter().find(|(n, _)| n == name).map_or(&[], |(_, fields)| fields)
    }

    fn add_own(&mut self, server: &str, field: &'static str, value: String) {
        match self.per_server.iter_mut().find(|(n, _)| n == server) {
            Some((_, fields)) => fields.push((field, value)),
            None => self.per_server.push((server.to_owned(), vec![(field, value)])),
        }
    }
}

/// The most common value (the first seen among equally common ones), and the servers that
/// had another.
fn most_common<T: PartialEq + Clone>(values: &[(&Server, T)]) -> Option<(T, Vec<usize>)> {
    let mut best: Option<(usize, &T)> = None;
    for (_, v) in values {
        let count = values.iter().filter(|(_, w)| w == v).count();
        if best.is_none_or(|(most, _)| count > most) {
            best = Some((count, v));
        }
    }
    let winner = best?.1.clone();
    let others = values.iter().enumerate().filter(|(_, (_, v))| *v != winner).map(|(i, _)| i).collect();
    Some((winner, others))
}

/// One timing setting of a server as HAProxy applies it: what it wrote (if it did) and the
/// value in effect.
#[derive(Clone)]
struct Effective<T> {
    written: Option<String>,
    value: T,
}

impl<T: PartialEq> PartialEq for Effective<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

fn timing(server: &Server, written: Option<&String>, default: Duration, what: &str, notes: &mut Notes) -> Effective<Duration> {
    let parsed = written.map(|w| (w, ha_common::duration::parse(&haproxy::duration(w))));
    match parsed {
        Some((w, Ok(value))) => Effective { written: Some(haproxy::duration(w)), value },
        Some((w, Err(_))) => {
            notes.add(
                server.line,
                NoteKind::Dropped,
                format!("server {} `{what} {w}` is not a duration: HAProxy's default applies", server.name),
            );
            Effective { written: None, value: default }
        }
        None => Effective { written: None, value: default },
    }
}

fn count(server: &Server, written: Option<&String>, default: u64, what: &str, notes: &mut Notes) -> Effective<u64> {
    match written.map(|w| (w, w.parse::<u64>())) {
        Some((w, Ok(value))) => Effective { written: Some(w.clone()), value },
        Some((w, Err(_))) => {
            notes.add(
                server.line,
                NoteKind::Dropped,
                format!("server {} `{what} {w}` is not a number: HAProxy's default applies", server.name),
            );
            Effective { written: None, value: default }
        }
        None => Effective { written: None, value: default },
    }
}

/// HAProxy's defaults, which are vrrpd's too: inter 2s, rise 2, fall 3.
const INTER: Duration = Duration::from_secs(2);
const RISE: u64 = 2;
const FALL: u64 = 3;

/// The carried value of one setting, as it is to be written, and the line that wrote it.
struct Settled<T> {
    text: String,
    value: T,
    line: usize,
}

/// Carries the most common value of one setting; every server that had another keeps its own
/// (returned as the server and its value as HAProxy wrote it, or its default shown).
/// The setting is None when vrrpd's default is that value and no server wrote it.
fn settle<T: PartialEq + Clone>(
    p: &Proxy,
    pairs: &[(&Server, Effective<T>)],
    vrrpd_default: &T,
    show: impl Fn(&T) -> String,
) -> (Option<Settled<T>>, Vec<(usize, String)>) {
    let Some((winner, others)) = most_common(pairs) else { return (None, Vec::new()) };
    let shown = show(&winner.value);
    // When no server wrote the setting, a difference follows from another one (fastinter
    // from inter), which the server's own value of that one carries.
    let others = if pairs.iter().any(|(_, e)| e.written.is_some()) { others } else { Vec::new() };
    let own = others
        .into_iter()
        .map(|i| {
            let had = &pairs[i].1;
            (i, had.written.clone().unwrap_or_else(|| show(&had.value)))
        })
        .collect();
    // The text as one of the servers wrote it, when one did.
    let written = pairs.iter().find(|(_, e)| e.written.is_some() && *e == winner);
    let settled = match written {
        Some((server, e)) => {
            Some(Settled { text: e.written.clone().unwrap_or_default(), value: winner.value, line: server.line })
        }
        None if winner.value != *vrrpd_default => Some(Settled { text: shown, value: winner.value, line: p.line }),
        None => None,
    };
    (settled, own)
}

/// A server that speaks TLS, or is checked over TLS: a plaintext AMQP check fails on it.
pub fn speaks_tls(server: &Server) -> bool {
    server.tls || server.address.rsplit_once(':').is_some_and(|(_, port)| port == AMQPS_PORT)
}

/// Whether HAProxy checked this server over TLS: `check-ssl`, or `ssl` when the check goes
/// to the traffic's port and address.
fn checked_over_tls(server: &Server) -> bool {
    server.check_ssl || (server.ssl && server.check_port.is_none() && server.check_addr.is_none())
}

/// The kind of check: `http`/`https` after `option httpchk`; on AMQP proxies `amqps` where
/// HAProxy checked over TLS, `amqp` otherwise, unless the servers speak TLS to clients that
/// HAProxy only connected to (then a TCP connect, as HAProxy did); `tcp` elsewhere.
fn check_kind(p: &Proxy, servers: &[&Server], amqp: bool, notes: &mut Notes) -> &'static str {
    let over_tls = servers.iter().any(|s| checked_over_tls(s)) || p.settings.tls_check;
    if p.settings.httpchk.is_some() {
        return if over_tls { "https" } else { "http" };
    }
    if !amqp {
        if over_tls {
            notes.add(
                p.line,
                NoteKind::Changed,
                format!("proxy {}: HAProxy checked its servers over TLS (`check-ssl`, `ssl` or `option ssl-hello-chk`): vrrpd checks them with a TCP connect", p.name),
            );
        }
        return "tcp";
    }
    if over_tls {
        return "amqps";
    }
    let tls: Vec<&str> = servers.iter().filter(|s| speaks_tls(s)).map(|s| s.name.as_str()).collect();
    if tls.is_empty() {
        return "amqp";
    }
    let which = match tls.as_slice() {
        [one] => format!("server {one} speaks"),
        many => format!("servers {} speak", many.join(", ")),
    };
    notes.add(
        p.line,
        NoteKind::Changed,
        format!(
            "proxy {}: {which} TLS (port {AMQPS_PORT}) and HAProxy only connected to check it: checked with a TCP connect; vrrpd's `kind = \"amqps\"` with `ca_file` would complete the TLS handshake and read the broker's greeting",
            p.name
        ),
    );
    "tcp"
}

fn quoted(text: &str) -> String {
    ::toml::Value::String(text.to_owned()).to_string()
}

/// The HTTP check's path and expected status (`option httpchk`, `http-check expect status`).
fn http_fields(p: &Proxy, fields: &mut Vec<(&'static str, String)>, notes: &mut Notes) {
    let Some((method, uri)) = &p.settings.httpchk else { return };
    if method != "GET" {
        notes.add(uri.line, NoteKind::Changed, format!("`option httpchk {method} {}`: vrrpd's HTTP check sends GET", uri.text));
    }
    let path_ok = uri.text.starts_with('/') && !uri.text.chars().any(|c| c.is_ascii_whitespace() || c.is_ascii_control());
    if path_ok {
        if uri.text != "/" {
            fields.push(("path", quoted(&uri.text)));
        }
    } else {
        notes.add(uri.line, NoteKind::Dropped, format!("`option httpchk` URI {:?} is not a path: / is checked", uri.text));
    }
    if let Some(status) = &p.settings.http_expect {
        match status.text.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => fields.push(("expect_status", code.to_string())),
            _ => notes.add(
                status.line,
                NoteKind::Dropped,
                format!("`http-check expect status {}` is not one status: any 2xx or 3xx passes", status.text),
            ),
        }
    }
}

/// How a TLS check verifies: the `ca-file` and `check-sni` most checked servers had.
fn tls_fields(p: &Proxy, servers: &[&Server], fields: &mut Vec<(&'static str, String)>, notes: &mut Notes) {
    let tls_servers: Vec<&Server> = servers.iter().copied().filter(|s| checked_over_tls(s) || p.settings.tls_check).collect();
    for (field, keyword) in [("ca_file", "ca-file"), ("sni", "check-sni")] {
        let pairs: Vec<(&Server, Option<String>)> =
            tls_servers.iter().map(|s| (*s, if field == "ca_file" { s.ca_file.clone() } else { s.check_sni.clone() })).collect();
        let Some((winner, others)) = most_common(&pairs) else { continue };
        for i in others {
            let (server, had) = &pairs[i];
            notes.add(
                server.line,
                NoteKind::Changed,
                format!(
                    "server {} had {}: vrrpd's TLS check has one {field} per proxy: {} of proxy {} (as most of its servers)",
                    server.name,
                    had.as_ref().map_or_else(|| format!("no `{keyword}`"), |v| format!("`{keyword} {v}`")),
                    winner.as_deref().unwrap_or("none"),
                    p.name
                ),
            );
        }
        match winner {
            Some(value) if field == "ca_file" && !value.starts_with('/') => notes.add(
                tls_servers.iter().find(|s| s.ca_file.as_ref() == Some(&value)).map_or(p.line, |s| s.line),
                NoteKind::Dropped,
                format!("`ca-file {value}` is not an absolute path: set ca_file to the CA's full path"),
            ),
            Some(value) => fields.push((field, quoted(&value))),
            None => {}
        }
    }
    if !fields.iter().any(|(f, _)| *f == "ca_file") {
        let unverified: Vec<&str> =
            tls_servers.iter().filter(|s| s.verify.as_deref() == Some("none")).map(|s| s.name.as_str()).collect();
        let line = tls_servers.first().map_or(p.line, |s| s.line);
        notes.add(
            line,
            NoteKind::Warning,
            format!(
                "proxy {}: the TLS check verifies the servers' certificates against the system's CAs{}: set ca_file to the CA that signed them, or every server may be DOWN",
                p.name,
                if unverified.is_empty() { String::new() } else { format!(" (HAProxy did not verify them: `verify none` on {})", unverified.join(", ")) }
            ),
        );
    }
}

/// The proxy's `check` table from its checked servers' settings; None when no server is
/// checked (each server then says `check = false`). Where a server's timing differs from most
/// of its proxy's, or HAProxy sent its check to another `port` or `addr`, the server keeps its
/// own (`check = { ... }` on the server).
pub fn check(p: &Proxy, amqp: bool, notes: &mut Notes) -> Option<Check> {
    let servers: Vec<&Server> = p.servers.iter().filter(|s| s.check).collect();
    if servers.is_empty() {
        return None;
    }
    let kind = check_kind(p, &servers, amqp, notes);
    let mut check = Check { kind, fields: Vec::new(), per_server: Vec::new() };
    let show = |d: &Duration| ha_common::duration::format(*d);
    let inters: Vec<(&Server, Effective<Duration>)> =
        servers.iter().map(|s| (*s, timing(s, s.inter.as_ref(), INTER, "inter", notes))).collect();
    let (interval, own) = settle(p, &inters, &INTER, show);
    let chosen = interval.as_ref().map_or(INTER, |s| s.value);
    let mut timings = vec![("interval", interval, own, inters.clone())];
    for field in ["fastinter", "downinter"] {
        // Unwritten, each defaults to the server's own inter.
        let pairs: Vec<(&Server, Effective<Duration>)> = inters
            .iter()
            .map(|(s, own)| {
                let written = if field == "fastinter" { s.fastinter.as_ref() } else { s.downinter.as_ref() };
                (*s, timing(s, written, own.value, field, notes))
            })
            .collect();
        let (settled, own) = settle(p, &pairs, &chosen, show);
        timings.push((field, settled, own, pairs));
    }
    for (field, settled, own, pairs) in timings {
        if let Some(s) = settled {
            if let Some(v) = values::duration(&s.text, values::INTERVAL, s.line, &format!("check {field}"), notes) {
                check.fields.push((field, quoted(&v)));
            }
        }
        for (i, text) in own {
            let server = pairs[i].0;
            let what = format!("server {} {field}", server.name);
            if let Some(v) = values::duration(&text, values::INTERVAL, server.line, &what, notes) {
                check.add_own(&server.name, field, quoted(&v));
            }
        }
    }
    if let Some(t) = &p.settings.timeout_check {
        if let Some(v) = values::duration(&haproxy::duration(&t.text), values::TIMEOUT, t.line, "timeout check", notes) {
            check.fields.push(("timeout", quoted(&v)));
        }
    }
    for (field, default) in [("rise", RISE), ("fall", FALL)] {
        let pairs: Vec<(&Server, Effective<u64>)> = servers
            .iter()
            .map(|s| (*s, count(s, if field == "rise" { s.rise.as_ref() } else { s.fall.as_ref() }, default, field, notes)))
            .collect();
        let (settled, own) = settle(p, &pairs, &default, u64::to_string);
        if let Some(s) = settled {
            if let Some(v) = values::integer(&s.text, 1..=1000, s.line, &format!("check {field}"), notes) {
                check.fields.push((field, v.to_string()));
            }
        }
        for (i, text) in own {
            let server = pairs[i].0;
            if let Some(v) = values::integer(&text, 1..=1000, server.line, &format!("server {} {field}", server.name), notes) {
                check.add_own(&server.name, field, v.to_string());
            }
        }
    }
    for server in &servers {
        if let Some(port) = &server.check_port {
            let what = format!("server {} check port", server.name);
            if let Some(v) = values::integer(port, 1..=65535, server.line, &what, notes) {
                check.add_own(&server.name, "port", v.to_string());
            }
        }
        if let Some(addr) = &server.check_addr {
            match addr.parse::<std::net::IpAddr>() {
                Ok(ip) => check.add_own(&server.name, "addr", quoted(&ip.to_string())),
                Err(_) => notes.add(
                    server.line,
                    NoteKind::Dropped,
                    format!("server {} `addr {addr}`: vrrpd checks an IP address; the server's own is checked", server.name),
                ),
            }
        }
    }
    http_fields(p, &mut check.fields, notes);
    if kind == "amqps" || kind == "https" {
        tls_fields(p, &servers, &mut check.fields, notes);
    }
    Some(check)
}

/// `send_proxy` for the proxy: the PROXY protocol version most servers had.
pub fn send_proxy(p: &Proxy, notes: &mut Notes) -> Option<&'static str> {
    let pairs: Vec<(&Server, Option<&'static str>)> = p.servers.iter().map(|s| (s, s.send_proxy)).collect();
    let (winner, others) = most_common(&pairs)?;
    let shown = |v: Option<&str>| match v {
        Some("v1") => "`send-proxy`",
        Some(_) => "`send-proxy-v2`",
        None => "no send-proxy",
    };
    let sent = match winner {
        Some(v) => format!("a PROXY {v} header to every server"),
        None => "no PROXY header to any server".to_owned(),
    };
    for i in others {
        let (server, had) = pairs[i];
        notes.add(
            server.line,
            NoteKind::Changed,
            format!(
                "server {} had {}: vrrpd sends the PROXY protocol per proxy: {sent} of proxy {} (as most of its servers)",
                server.name,
                shown(had),
                p.name
            ),
        );
    }
    winner
}
