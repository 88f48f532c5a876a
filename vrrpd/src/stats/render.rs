//! One snapshot, four readers: the stats page (HTML), HAProxy-style CSV, Prometheus metrics,
//! and the terminal table of `vrrpd ctl status`.

use std::fmt::Write;
use std::time::Duration;

use proxy::snapshot::{FenceSnapshot, ProxySnapshot, ServerSnapshot};

use super::events::Event;
use super::{InstanceSnapshot, Snapshot};

/// Rows of the timeline on the page (newest first); `/stats.json` carries a hundred.
const TIMELINE_ROWS: usize = 30;

// Writing into a String cannot fail; `let _ =` below says so once per line.

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// "3d 4h", "2m 05s", "12s".
pub fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m"),
        _ => format!("{d}d {h}h"),
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An instance's VIPs joined by `sep`, then the excluded ones between `open` and `close`.
fn vips_text(i: &InstanceSnapshot, sep: &str, open: &str, close: &str) -> String {
    let mut text = i.vips.join(sep);
    if !i.vips_excluded.is_empty() {
        text = format!("{text}{open}{}{close}", i.vips_excluded.join(sep));
    }
    text
}

fn state_class(state: &str) -> &'static str {
    match state {
        "MASTER" | "UP" => "good",
        "BACKUP" => "standby",
        "FAULT" | "DOWN" => "bad",
        "DRAIN" => "drain",
        "MAINT" => "maint",
        _ => "idle",
    }
}

const STYLE: &str =
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.4em 0}th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left;font-size:.92em}\
th{background:#eee}.good{background:#b8f0b8}.standby{background:#cfe3ff}.bad{background:#ff9c9c}.drain{background:#ffd37a}\
.maint{background:#c9c3ff}.idle{background:#ddd}.meta{color:#555}td.n{text-align:right}";

/// The stats page; it reloads itself every `refresh`.
pub fn html(snapshot: &Snapshot, refresh: Duration) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{}\">\
         <title>vrrpd on {id}</title><style>{STYLE}</style></head><body>\
         <h1>vrrpd on {id}</h1><p class=\"meta\">version {}, up {}, refreshes every {} s. \
         <a href=\"stats.json\">JSON</a> · <a href=\"stats.csv\">CSV</a> · <a href=\"metrics\">metrics</a></p>",
        refresh.as_secs().max(1),
        snapshot.version,
        age(snapshot.uptime_s),
        refresh.as_secs().max(1),
        id = escape(&snapshot.router_id),
    );
    for warning in &snapshot.warnings {
        let _ = write!(out, "<p class=\"bad\" id=\"warning\">{}</p>", escape(warning));
    }
    out.push_str("<h2>VRRP</h2><table id=\"vrrp\"><tr><th>instance</th><th>state</th><th>priority</th><th>master</th><th>VIPs</th><th>last change</th><th>adverts sent / received</th><th>dropped</th><th>tracked</th></tr>");
    for i in &snapshot.instances {
        instance_row(&mut out, i);
    }
    out.push_str("</table>");
    for p in &snapshot.proxies {
        proxy_html(&mut out, p);
    }
    timeline_html(&mut out, &snapshot.events);
    out.push_str("</body></html>\n");
    out
}

fn instance_row(out: &mut String, i: &InstanceSnapshot) {
    let state = if i.resigned { format!("{} (resigned)", i.state) } else { i.state.clone() };
    let priority = if i.effective_priority == i.priority {
        i.priority.to_string()
    } else {
        format!("{} (configured {})", i.effective_priority, i.priority)
    };
    let dropped = if i.dropped.is_empty() {
        "0".to_owned()
    } else {
        i.dropped.iter().map(|(r, n)| format!("{r}: {n}")).collect::<Vec<_>>().join(", ")
    };
    let trackers: Vec<String> = i
        .trackers
        .iter()
        .map(|t| {
            let value = t.value.map_or(String::new(), |v| format!(" = {v}"));
            let reverse = if t.reverse { " reverse" } else { "" };
            format!(
                "<span class=\"{}\">{} {}{value} ({}{reverse})</span>",
                if t.up { "good" } else { "bad" },
                t.kind,
                escape(&t.name),
                t.weight
            )
        })
        .collect();
    let _ = write!(
        out,
        "<tr><td>{} <span class=\"meta\">VRID {} on {}, VRRPv{} every {} ms</span></td><td class=\"{}\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td class=\"n\">{} / {}</td><td>{}</td><td>{}</td></tr>",
        escape(&i.name),
        i.vrid,
        escape(&i.interface),
        i.vrrp_version,
        i.advert_int_ms,
        state_class(&i.state),
        state,
        priority,
        i.master.as_deref().unwrap_or("-"),
        escape(&vips_text(i, ", ", "; not in adverts: ", "")),
        i.since_last_transition_s.map_or("-".to_owned(), |s| format!("{} ago", age(s))),
        i.adverts_sent,
        i.adverts_received,
        dropped,
        trackers.join(" "),
    );
}

fn proxy_html(out: &mut String, p: &ProxySnapshot) {
    let _ = write!(
        out,
        "<h2>proxy {} <span class=\"meta\">on {}, {}</span> <span class=\"{}\">{}</span></h2>\
         <p class=\"meta\">sessions {} now, {} max{}, {} total; queue {} (max {}); refused {}; in {}, out {}</p>\
         <table class=\"servers\" id=\"proxy-{}\"><tr><th>server</th><th>status</th><th>check</th><th>last change</th><th>downtime</th>\
         <th>weight</th><th>sessions now / max / total</th><th>bytes in / out</th><th>failed connects</th></tr>",
        escape(&p.name),
        escape(&p.bind),
        p.balance,
        if p.available { "good" } else { "bad" },
        serving(p),
        p.sessions.current,
        p.sessions.max,
        p.sessions.limit.map_or(String::new(), |l| format!(" of {l}")),
        p.sessions.total,
        p.queue_current,
        p.queue_max,
        p.denied,
        bytes(p.bytes_in),
        bytes(p.bytes_out),
        escape(&p.name),
    );
    for s in &p.servers {
        server_row(out, s);
    }
    out.push_str("</table>");
    // What `vrrpd ctl status` says beside the table: a rebalance under way, fencing.
    if let Some(rebalancing) = &p.rebalancing {
        let _ = write!(out, "<p class=\"meta\" id=\"rebalancing-{}\">rebalancing: {}</p>", escape(&p.name), escape(rebalancing));
    }
    if p.rebalance_closed > 0 {
        let _ = write!(out, "<p class=\"meta\">sessions closed by rebalances: {}</p>", p.rebalance_closed);
    }
    if let Some(f) = &p.fencing {
        let last = f.last.as_ref().map_or_else(
            || "none yet".to_owned(),
            |l| format!("{} ({}, {} ms): {}", l.hosts.join(", "), if l.ok { "ok" } else { "FAILED" }, l.duration_ms, l.result),
        );
        let _ = write!(
            out,
            "<p class=\"meta\" id=\"fencing-{}\">fencing: {} runs ({} failed), {} broker connections closed, {} close failures; last: <span class=\"{}\">{}</span></p>",
            escape(&p.name),
            f.runs,
            f.failed_runs,
            f.closed,
            f.close_failures,
            if f.last.as_ref().is_none_or(|l| l.ok) { "good" } else { "bad" },
            escape(&last),
        );
    }
}

/// A proxy's state in two words.
fn serving(p: &ProxySnapshot) -> &'static str {
    match (p.listening, p.available) {
        (false, _) => "NOT LISTENING",
        (true, true) => "serving",
        (true, false) => "NO SERVER",
    }
}

fn server_row(out: &mut String, s: &ServerSnapshot) {
    let check = match (&s.check.last_detail, s.check.last_duration_ms) {
        (Some(detail), Some(ms)) => format!("{} · {} in {ms} ms", s.check.health, escape(detail)),
        _ => s.check.health.clone(),
    };
    let _ = write!(
        out,
        "<tr><td>{}{} <span class=\"meta\">{}</span></td><td class=\"{}\">{}</td><td>{}</td><td>{} ago</td><td>{}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{} / {} / {}{}</td><td class=\"n\">{} / {}</td><td class=\"n\">{}</td></tr>",
        escape(&s.name),
        if s.backup { " (backup)" } else { "" },
        escape(&s.address),
        state_class(&s.status),
        s.status,
        check,
        age(s.since_last_change_s),
        age(s.downtime_s),
        s.weight,
        s.sessions.current,
        s.sessions.max,
        s.sessions.total,
        s.sessions.limit.map_or(String::new(), |l| format!(" (limit {l})")),
        bytes(s.bytes_in),
        bytes(s.bytes_out),
        s.failed_connects,
    );
}

/// HAProxy's CSV header, in its column order, up to `check_duration`.
pub const CSV_HEADER: &str =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,\
act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,\
check_code,check_duration,";

/// HAProxy-style CSV (`/stats;csv`): a FRONTEND row, one row per server, a BACKEND row per
/// proxy; columns that have no meaning here are empty, so positions match HAProxy's.
pub fn csv(snapshot: &Snapshot) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for (iid, p) in snapshot.proxies.iter().enumerate() {
        let iid = iid + 1;
        let limit = |l: Option<u32>| l.map_or(String::new(), |l| l.to_string());
        let _ = writeln!(
            out,
            "{},FRONTEND,,,{},{},{},{},{},{},,,,,,,,{},,,,,,,,,1,{iid},0,,,,0,,,,,,,",
            p.name,
            p.sessions.current,
            p.sessions.max,
            limit(p.sessions.limit),
            p.sessions.total,
            p.bytes_in,
            p.bytes_out,
            if p.listening { "OPEN" } else { "STOP" },
        );
        for (sid, s) in p.servers.iter().enumerate() {
            let (check_status, check_duration) = check_columns(s, p);
            let _ = writeln!(
                out,
                "{},{},0,0,{},{},{},{},{},{},,,,{},,,,{},{},{},{},{},,{},{},,1,{iid},{},{},{},,2,,,,{},,{},",
                p.name,
                s.name,
                s.sessions.current,
                s.sessions.max,
                limit(s.sessions.limit),
                s.sessions.total,
                s.bytes_in,
                s.bytes_out,
                s.failed_connects,
                s.status,
                s.weight,
                u8::from(!s.backup),
                u8::from(s.backup),
                s.check.failed,
                s.since_last_change_s,
                s.downtime_s,
                sid + 1,
                s.throttle_percent.map_or(String::new(), |t| t.to_string()),
                s.sessions.total,
                check_status,
                check_duration,
            );
        }
        let up: Vec<&ServerSnapshot> = p.servers.iter().filter(|s| s.status == "UP").collect();
        let _ = writeln!(
            out,
            "{},BACKEND,{},{},{},{},{},{},{},{},,,,{},,,,{},{},{},{},,,,,,1,{iid},0,,{},,1,,,,,,,",
            p.name,
            p.queue_current,
            p.queue_max,
            p.sessions.current,
            p.sessions.max,
            limit(p.sessions.limit),
            p.sessions.total,
            p.bytes_in,
            p.bytes_out,
            p.servers.iter().map(|s| s.failed_connects).sum::<u64>(),
            if p.available { "UP" } else { "DOWN" },
            up.iter().map(|s| s.weight).sum::<u32>(),
            up.iter().filter(|s| !s.backup).count(),
            up.iter().filter(|s| s.backup).count(),
            p.sessions.total,
        );
    }
    out
}

/// HAProxy's check_status words: L4OK/L7OK, L4TOUT/L7TOUT, L4CON, L6RSP (TLS), L7RSP.
fn check_columns(s: &ServerSnapshot, p: &ProxySnapshot) -> (&'static str, String) {
    let _ = p;
    let status = check_status(&s.check.kind, s.check.last_ok, s.check.last_detail.as_deref());
    (status, s.check.last_duration_ms.map_or(String::new(), |ms| ms.to_string()))
}

fn check_status(kind: &str, last_ok: Option<bool>, detail: Option<&str>) -> &'static str {
    let layer7 = kind != "tcp";
    match (last_ok, detail) {
        (None, _) => "",
        (Some(true), _) if layer7 => "L7OK",
        (Some(true), _) => "L4OK",
        (Some(false), Some(d)) if d.contains("no answer within") => {
            if layer7 {
                "L7TOUT"
            } else {
                "L4TOUT"
            }
        }
        (Some(false), Some(d)) if d.starts_with("connect") => "L4CON",
        (Some(false), Some(d)) if d.starts_with("TLS handshake") => "L6RSP",
        (Some(false), _) => "L7RSP",
    }
}

/// Prometheus text exposition format.
pub fn prometheus(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP vrrpd_{name} {help}\n# TYPE vrrpd_{name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "vrrpd_{name}{{{labels}}} {value}");
        }
    };
    let label = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let inst = |i: &InstanceSnapshot| format!("instance=\"{}\",vrid=\"{}\"", label(&i.name), i.vrid);
    let each = |f: &dyn Fn(&InstanceSnapshot) -> String| snapshot.instances.iter().map(|i| (inst(i), f(i))).collect::<Vec<_>>();
    metric("up", "gauge", "1 while vrrpd runs.", vec![(format!("router_id=\"{}\"", label(&snapshot.router_id)), "1".into())]);
    metric(
        "instance_master",
        "gauge",
        "1 when the instance is MASTER (holds its VIPs).",
        each(&|i| u8::from(i.state == "MASTER").to_string()),
    );
    metric(
        "instance_state",
        "gauge",
        "Instance state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT.",
        each(&|i| {
            match i.state.as_str() {
                "BACKUP" => "1",
                "MASTER" => "2",
                "FAULT" => "3",
                _ => "0",
            }
            .into()
        }),
    );
    metric(
        "instance_priority",
        "gauge",
        "Effective priority (configured priority with tracker weights).",
        each(&|i| i.effective_priority.to_string()),
    );
    metric("instance_transitions_total", "counter", "State transitions.", each(&|i| i.transitions.to_string()));
    metric("adverts_sent_total", "counter", "VRRP adverts sent.", each(&|i| i.adverts_sent.to_string()));
    metric(
        "adverts_received_total",
        "counter",
        "VRRP adverts received for this VRID.",
        each(&|i| i.adverts_received.to_string()),
    );
    let mut dropped = Vec::new();
    for i in &snapshot.instances {
        for (reason, n) in &i.dropped {
            dropped.push((format!("{},reason=\"{reason}\"", inst(i)), n.to_string()));
        }
    }
    for (interface, reasons) in &snapshot.interface_drops {
        for (reason, n) in reasons {
            dropped.push((format!("interface=\"{}\",reason=\"{reason}\"", label(interface)), n.to_string()));
        }
    }
    metric("adverts_dropped_total", "counter", "Received packets dropped, by reason.", dropped);

    let px = |p: &ProxySnapshot| format!("proxy=\"{}\"", label(&p.name));
    let per_proxy = |f: &dyn Fn(&ProxySnapshot) -> String| snapshot.proxies.iter().map(|p| (px(p), f(p))).collect::<Vec<_>>();
    metric(
        "proxy_available",
        "gauge",
        "1 while the proxy listens and has a usable server.",
        per_proxy(&|p| u8::from(p.available).to_string()),
    );
    metric("proxy_sessions", "gauge", "Current sessions.", per_proxy(&|p| p.sessions.current.to_string()));
    let limited: Vec<(String, String)> =
        snapshot.proxies.iter().filter_map(|p| p.sessions.limit.map(|limit| (px(p), limit.to_string()))).collect();
    metric("proxy_sessions_limit", "gauge", "The proxy's maxconn, when it has one.", limited);
    metric("proxy_sessions_total", "counter", "Sessions accepted.", per_proxy(&|p| p.sessions.total.to_string()));
    metric("proxy_queue", "gauge", "Sessions waiting for a server slot.", per_proxy(&|p| p.queue_current.to_string()));
    metric(
        "proxy_refused_total",
        "counter",
        "Sessions refused (no server, queue timeout).",
        per_proxy(&|p| p.denied.to_string()),
    );
    metric(
        "proxy_session_panics_total",
        "counter",
        "Sessions ended by a panic (a bug): closed and counted, the proxy went on.",
        per_proxy(&|p| p.panics.to_string()),
    );
    metric(
        "proxy_rebalance_closed_total",
        "counter",
        "Sessions closed by rebalances (vrrpd ctl rebalance).",
        per_proxy(&|p| p.rebalance_closed.to_string()),
    );
    metric(
        "proxy_bad_proxy_headers_total",
        "counter",
        "Clients refused for a missing, slow or malformed PROXY header (accept_proxy).",
        per_proxy(&|p| p.bad_proxy_headers.to_string()),
    );
    metric("proxy_bytes_in_total", "counter", "Bytes from clients to servers.", per_proxy(&|p| p.bytes_in.to_string()));
    metric("proxy_bytes_out_total", "counter", "Bytes from servers to clients.", per_proxy(&|p| p.bytes_out.to_string()));
    let servers = |f: &dyn Fn(&ServerSnapshot) -> String| {
        snapshot
            .proxies
            .iter()
            .flat_map(|p| p.servers.iter().map(move |s| (format!("{},server=\"{}\"", px(p), label(&s.name)), f(s))))
            .collect::<Vec<_>>()
    };
    metric(
        "server_up",
        "gauge",
        "1 when the server passes its checks and is not drained or in maintenance.",
        servers(&|s| u8::from(s.status == "UP").to_string()),
    );
    metric("server_sessions", "gauge", "Current sessions.", servers(&|s| s.sessions.current.to_string()));
    metric("server_sessions_total", "counter", "Sessions sent to the server.", servers(&|s| s.sessions.total.to_string()));
    metric("server_bytes_in_total", "counter", "Bytes from clients to the server.", servers(&|s| s.bytes_in.to_string()));
    metric("server_bytes_out_total", "counter", "Bytes from the server to clients.", servers(&|s| s.bytes_out.to_string()));
    metric(
        "server_failed_connects_total",
        "counter",
        "Connection attempts that failed.",
        servers(&|s| s.failed_connects.to_string()),
    );
    metric("server_check_failures_total", "counter", "Failed health checks.", servers(&|s| s.check.failed.to_string()));
    metric("server_downtime_seconds_total", "counter", "Time spent DOWN.", servers(&|s| s.downtime_s.to_string()));
    metric("server_weight", "gauge", "Current weight.", servers(&|s| s.weight.to_string()));
    let fencing = |f: &dyn Fn(&FenceSnapshot) -> u64| {
        snapshot.proxies.iter().filter_map(|p| p.fencing.as_ref().map(|x| (px(p), f(x).to_string()))).collect::<Vec<_>>()
    };
    metric(
        "fence_runs_total",
        "counter",
        "Fencing runs through the management API (a silent master, this host's previous run, ctl fence).",
        fencing(&|f| f.runs),
    );
    metric(
        "fence_failed_runs_total",
        "counter",
        "Fencing runs that failed or left a matching connection open.",
        fencing(&|f| f.failed_runs),
    );
    metric("fence_connections_closed_total", "counter", "Broker connections closed by fencing.", fencing(&|f| f.closed));
    metric(
        "fence_close_failures_total",
        "counter",
        "Broker connections fencing could not close.",
        fencing(&|f| f.close_failures),
    );
    out
}

/// The table `vrrpd ctl status` prints.
/// The newest events first, as an operator reads a timeline after the fact.
fn timeline_html(out: &mut String, events: &[Event]) {
    out.push_str("<h2>Timeline</h2><table id=\"timeline\"><tr><th>time (UTC)</th><th>what</th><th>of</th><th>event</th></tr>");
    for e in events.iter().rev().take(TIMELINE_ROWS) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.time),
            e.kind.as_str(),
            escape(&e.subject),
            escape(&e.message)
        );
    }
    out.push_str("</table>");
}

/// `vrrpd ctl events`: one line per event, oldest first.
pub fn events_text(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        let _ = writeln!(out, "{}  {:<7} {:<20} {}", e.time, e.kind.as_str(), e.subject, e.message);
    }
    if events.is_empty() {
        out.push_str("no events yet\n");
    }
    out
}

pub fn text(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "vrrpd {} on {}, up {}", snapshot.version, snapshot.router_id, age(snapshot.uptime_s));
    let _ = writeln!(
        out,
        "\n{:<10} {:<18} {:>8}  {:<15} {:<20} {:>10}  dropped",
        "instance", "state", "priority", "master", "VIPs", "changed"
    );
    for i in &snapshot.instances {
        let state = if i.resigned { format!("{} (resigned)", i.state) } else { i.state.clone() };
        let priority = if i.priority == i.effective_priority {
            i.priority.to_string()
        } else {
            format!("{}/{}", i.effective_priority, i.priority)
        };
        let _ = writeln!(
            out,
            "{:<10} {:<18} {:>8}  {:<15} {:<20} {:>10}  {}",
            i.name,
            state,
            priority,
            i.master.as_deref().unwrap_or("-"),
            vips_text(i, ",", " (+", " not in adverts)"),
            i.since_last_transition_s.map_or("-".to_owned(), |s| format!("{} ago", age(s))),
            i.dropped.values().sum::<u64>()
        );
    }
    for p in &snapshot.proxies {
        let _ = writeln!(
            out,
            "\nproxy {} on {} ({}): {}, {} sessions, {} total, queue {}",
            p.name,
            p.bind,
            p.balance,
            serving(p),
            p.sessions.current,
            p.sessions.total,
            p.queue_current
        );
        if let Some(rebalancing) = &p.rebalancing {
            let _ = writeln!(out, "  rebalancing: {rebalancing}");
        }
        let _ = writeln!(
            out,
            "  {:<12} {:<21} {:<6} {:>6} {:>6} {:>8}  check",
            "server", "address", "status", "weight", "now", "total"
        );
        if let Some(f) = &p.fencing {
            let last = f.last.as_ref().map_or_else(
                || "none yet".to_owned(),
                |l| {
                    format!("{} ({}, {} ms): {}", l.hosts.join(", "), if l.ok { "ok" } else { "FAILED" }, l.duration_ms, l.result)
                },
            );
            let _ = writeln!(
                out,
                "  fencing: {} runs ({} failed), {} connections closed, {} not closed; last: {last}",
                f.runs, f.failed_runs, f.closed, f.close_failures
            );
        }
        for s in &p.servers {
            let _ = writeln!(
                out,
                "  {:<12} {:<21} {:<6} {:>6} {:>6} {:>8}  {}",
                format!("{}{}", s.name, if s.backup { "*" } else { "" }),
                s.address,
                s.status,
                s.throttle_percent.map_or_else(|| s.weight.to_string(), |t| format!("{}@{t}%", s.weight)),
                s.sessions.current,
                s.sessions.total,
                s.check.last_detail.as_deref().unwrap_or(&s.check.health)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes_read_well() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(125), "2m 05s");
        assert_eq!(age(7260), "2h 01m");
        assert_eq!(age(90000), "1d 1h");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }

    #[test]
    fn check_status_words_follow_haproxy_for_every_kind() {
        assert_eq!(check_status("tcp", Some(true), Some("connected")), "L4OK");
        assert_eq!(check_status("http", Some(true), Some("http 200")), "L7OK");
        assert_eq!(check_status("http", Some(false), Some("http 503, expected 200")), "L7RSP");
        assert_eq!(check_status("https", Some(false), Some("TLS handshake with https://192.0.2.21:15671: bad cert")), "L6RSP");
        assert_eq!(check_status("amqps", Some(false), Some("TLS handshake: invalid peer certificate: UnknownIssuer")), "L6RSP");
        assert_eq!(check_status("amqps", Some(true), Some("TLS, Connection.Start 0-9")), "L7OK");
        assert_eq!(check_status("http", Some(false), Some("connect to http://192.0.2.21:15672: refused")), "L4CON");
        assert_eq!(check_status("amqps", Some(false), Some("no answer within 1000 ms")), "L7TOUT");
        assert_eq!(check_status("http", Some(false), Some("http://192.0.2.21:15672: no answer within 1s")), "L7TOUT");
        assert_eq!(check_status("http", None, None), "");
    }

    #[test]
    fn csv_header_matches_haproxy_order() {
        let columns: Vec<&str> = CSV_HEADER.trim_start_matches("# ").trim_end_matches(',').split(',').collect();
        assert_eq!(&columns[..10], ["pxname", "svname", "qcur", "qmax", "scur", "smax", "slim", "stot", "bin", "bout"]);
        assert_eq!(columns[17], "status");
        assert_eq!(columns[32], "type");
        assert_eq!(columns.len(), 39);
    }
}
