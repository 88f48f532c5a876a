//! Settings HAProxy keeps per server and vrrpd per proxy (check timing, the PROXY protocol):
//! the value most of a proxy's servers have is carried, and every server that had another is
//! named with what it had. The `check` flag itself stays per server (`emit.rs`).

use std::time::Duration;

use super::haproxy::{self, Proxy, Server};
use super::values;
use super::{NoteKind, Notes};

/// The AMQPS port: TLS from the first byte.
pub const AMQPS_PORT: &str = "5671";

/// `check = { ... }` as decided: the kind, then each field with its TOML value.
#[derive(Debug)]
pub struct Check {
    pub kind: &'static str,
    pub fields: Vec<(&'static str, String)>,
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

/// Carries the most common value of one setting; notes every server that had another.
/// None when vrrpd's default is that value and no server wrote it.
fn settle<T: PartialEq + Clone>(
    p: &Proxy,
    pairs: &[(&Server, Effective<T>)],
    (field, haproxy_name): (&str, &str),
    vrrpd_default: &T,
    show: impl Fn(&T) -> String,
    notes: &mut Notes,
) -> Option<Settled<T>> {
    let (winner, others) = most_common(pairs)?;
    let shown = show(&winner.value);
    // When no server wrote the setting, a difference follows from another one (fastinter
    // from inter), already noted.
    let others = if pairs.iter().any(|(_, e)| e.written.is_some()) { others } else { Vec::new() };
    for i in others {
        let (server, had) = &pairs[i];
        let had = match &had.written {
            Some(w) => format!("`{haproxy_name} {w}`"),
            None => format!("HAProxy's default {haproxy_name} ({})", show(&had.value)),
        };
        notes.add(
            server.line,
            NoteKind::Changed,
            format!(
                "server {} had {had}: vrrpd checks every server of proxy {} alike, with {field} {shown} (as most of its servers)",
                server.name, p.name
            ),
        );
    }
    // The text as one of the servers wrote it, when one did.
    let written = pairs.iter().find(|(_, e)| e.written.is_some() && *e == winner);
    match written {
        Some((server, e)) => {
            Some(Settled { text: e.written.clone().unwrap_or_default(), value: winner.value, line: server.line })
        }
        None if winner.value != *vrrpd_default => Some(Settled { text: shown, value: winner.value, line: p.line }),
        None => None,
    }
}

/// A server that speaks TLS, or is checked over TLS: a plaintext AMQP check fails on it.
pub fn speaks_tls(server: &Server) -> bool {
    server.tls || server.address.rsplit_once(':').is_some_and(|(_, port)| port == AMQPS_PORT)
}

/// AMQP servers get the AMQP handshake check, unless they speak TLS: then a TCP connect.
fn check_kind(p: &Proxy, servers: &[&Server], amqp: bool, notes: &mut Notes) -> &'static str {
    let tls: Vec<&str> = servers.iter().filter(|s| speaks_tls(s)).map(|s| s.name.as_str()).collect();
    if !amqp {
        return "tcp";
    }
    if tls.is_empty() && !p.settings.tls_check {
        return "amqp";
    }
    let which = match tls.as_slice() {
        [] => "its servers (`option ssl-hello-chk`) speak".to_owned(),
        [one] => format!("server {one} speaks"),
        many => format!("servers {} speak", many.join(", ")),
    };
    notes.add(
        p.line,
        NoteKind::Changed,
        format!(
            "proxy {}: {which} TLS (port {AMQPS_PORT}, `ssl` or `check-ssl`): checked with a TCP connect, since vrrpd's AMQP check sends the plaintext protocol header, which a TLS port never answers (every server would be DOWN)",
            p.name
        ),
    );
    "tcp"
}

fn quoted(text: &str) -> String {
    ::toml::Value::String(text.to_owned()).to_string()
}

/// The proxy's `check` table from its checked servers' settings; None when no server is
/// checked (each server then says `check = false`).
pub fn check(p: &Proxy, amqp: bool, notes: &mut Notes) -> Option<Check> {
    let servers: Vec<&Server> = p.servers.iter().filter(|s| s.check).collect();
    if servers.is_empty() {
        return None;
    }
    let kind = check_kind(p, &servers, amqp, notes);
    let mut fields = Vec::new();
    let show = |d: &Duration| ha_common::duration::format(*d);
    let inters: Vec<(&Server, Effective<Duration>)> =
        servers.iter().map(|s| (*s, timing(s, s.inter.as_ref(), INTER, "inter", notes))).collect();
    let interval = settle(p, &inters, ("interval", "inter"), &INTER, show, notes);
    let chosen = interval.as_ref().map_or(INTER, |s| s.value);
    let mut timings = vec![("interval", interval)];
    for field in ["fastinter", "downinter"] {
        // Unwritten, each defaults to the server's own inter.
        let pairs: Vec<(&Server, Effective<Duration>)> = inters
            .iter()
            .map(|(s, own)| {
                let written = if field == "fastinter" { s.fastinter.as_ref() } else { s.downinter.as_ref() };
                (*s, timing(s, written, own.value, field, notes))
            })
            .collect();
        timings.push((field, settle(p, &pairs, (field, field), &chosen, show, notes)));
    }
    for (field, settled) in timings {
        let Some(s) = settled else { continue };
        if let Some(v) = values::duration(&s.text, values::INTERVAL, s.line, &format!("check {field}"), notes) {
            fields.push((field, quoted(&v)));
        }
    }
    if let Some(t) = &p.settings.timeout_check {
        if let Some(v) = values::duration(&haproxy::duration(&t.text), values::TIMEOUT, t.line, "timeout check", notes) {
            fields.push(("timeout", quoted(&v)));
        }
    }
    for (field, default) in [("rise", RISE), ("fall", FALL)] {
        let pairs: Vec<(&Server, Effective<u64>)> = servers
            .iter()
            .map(|s| (*s, count(s, if field == "rise" { s.rise.as_ref() } else { s.fall.as_ref() }, default, field, notes)))
            .collect();
        let Some(s) = settle(p, &pairs, (field, field), &default, u64::to_string, notes) else { continue };
        if let Some(v) = values::integer(&s.text, 1..=1000, s.line, &format!("check {field}"), notes) {
            fields.push((field, v.to_string()));
        }
    }
    Some(Check { kind, fields })
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
