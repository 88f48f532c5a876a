//! What keepalived's `vrrp_script` and `vrrp_instance` blocks become in vrrpd: decided once
//! here, with a note wherever the meaning is not the same; `emit.rs` only writes it down.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use super::keepalived::{Instance, Keepalived, Script, Track};
use super::proxies::Balancer;
use super::tracked;
use super::values;
use super::vips::{self, VipOut};
use super::watchers::{self, Listening, Verdict};
use super::{Lookups, NoteKind, Notes, Written};

/// keepalived's (and vrrpd's) range for a tracker weight.
const WEIGHT: std::ops::RangeInclusive<i64> = -253..=253;

pub struct Vrrp {
    pub router_id: Option<String>,
    pub garp_interval: Option<String>,
    pub script_user: Option<String>,
    pub scripts: Vec<ScriptOut>,
    pub instances: Vec<InstanceOut>,
    /// `[[vrrp_track_process]]`, `[[vrrp_track_file]]` and `[[vrrp_sync_group]]` sections.
    pub sections: Vec<tracked::Section>,
    /// Instances not written, with why: (name, line, why).
    pub left_out: Vec<(String, usize, String)>,
}

pub struct ScriptOut {
    pub name: String,
    pub line: usize,
    pub script: String,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub weight: Option<i64>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub user: Option<String>,
}

pub struct TrackOut {
    pub name: String,
    pub weight: Option<i64>,
    pub reverse: bool,
}

pub struct InstanceOut {
    pub name: String,
    pub line: usize,
    pub interface: String,
    pub state: Option<&'static str>,
    pub vrid: i64,
    pub priority: Option<i64>,
    /// Written only when 3: 2 is the default.
    pub version: Option<i64>,
    /// The TOML value: whole seconds (`1`) with VRRPv2, a duration (`"100ms"`) with VRRPv3.
    pub advert_int: Option<String>,
    pub preempt: bool,
    pub preempt_delay: Option<String>,
    pub auth_pass: Option<String>,
    pub vips: Vec<VipOut>,
    /// keepalived's `virtual_ipaddress_excluded`.
    pub vips_excluded: Vec<VipOut>,
    pub track_script: Vec<TrackOut>,
    pub track_interface: Vec<TrackOut>,
    pub track_process: Vec<TrackOut>,
    pub track_file: Vec<TrackOut>,
    pub track_proxy: Vec<String>,
    pub notify: Vec<(&'static str, String)>,
    pub unicast_src_ip: Option<String>,
    pub unicast_peer: Vec<String>,
    /// Each GARP setting with its TOML value.
    pub garp: Vec<(&'static str, String)>,
}

/// The scripts as carried over, and the names of those dropped as HAProxy watchers.
struct Scripts {
    kept: Vec<ScriptOut>,
    watchers: Vec<String>,
}

pub fn decide(k: &Keepalived, balancer: Option<&Balancer>, lookups: Lookups, notes: &mut Notes) -> Vrrp {
    let mut hosts: Vec<String> = k
        .instances
        .iter()
        .flat_map(|i| i.vips.iter().chain(&i.vips_excluded))
        .filter_map(|v| v.address.text.split('/').next())
        .map(str::to_owned)
        .collect();
    hosts.extend(balancer.iter().flat_map(|b| &b.addresses).map(IpAddr::to_string));
    let listening = Listening { ports: balancer.map(|b| b.ports.clone()).unwrap_or_default(), hosts };
    let replacement = match balancer {
        Some(b) if b.proxies().next().is_some() => {
            "vrrpd tracks its own proxies instead (track_proxy, weight 0: FAULT while no server of a proxy is UP)"
        }
        Some(_) => "nothing replaces it, since no proxy of the haproxy.cfg could be imported (see its notes)",
        None => "nothing replaces it, since no haproxy.cfg was imported (import with --haproxy to track the proxies)",
    };
    let scripts = scripts(k, &listening, lookups, replacement, notes);
    if !k.enable_script_security {
        let first =
            scripts.kept.first().map(|s| s.line).or_else(|| k.instances.iter().find(|i| !i.notify.is_empty()).map(|i| i.line));
        if let Some(line) = first {
            notes.add(
                line,
                NoteKind::Changed,
                "scripts run under vrrpd's enable_script_security (on by default): one that would run as root and that a non-root user can modify is refused".to_owned(),
            );
        }
    }
    let mut seen_vips = HashSet::new();
    let mut instances = Vec::new();
    let mut left_out = Vec::new();
    let default_version = version(k.vrrp_version.as_ref(), 2, "global_defs vrrp_version", notes);
    for i in &k.instances {
        match instance(i, &scripts, (&k.track_processes, &k.track_files), default_version, &mut seen_vips, notes) {
            Ok(out) => instances.push(out),
            Err(why) => {
                notes.add(i.line, NoteKind::Dropped, format!("vrrp_instance {}: {why}; left out, written as a comment", i.name));
                left_out.push((i.name.clone(), i.line, why));
            }
        }
    }
    track_proxies(&mut instances, balancer, notes);
    shared_sources(&instances, notes);
    weight_notes(k, &scripts, notes);
    let mut sections: Vec<tracked::Section> = k
        .track_processes
        .iter()
        .chain(&k.track_files)
        .map(|s| tracked::Section { name: s.name.clone(), line: s.line, text: s.text.clone() })
        .collect();
    let imported = |name: &str| instances.iter().any(|i| i.name == values::clean_name(name));
    for node in &k.sync_group_nodes {
        sections.push(tracked::sync_group(node, &imported, notes));
    }
    Vrrp {
        garp_interval: k.garp_interval.as_ref().and_then(|g| {
            values::duration(&values::seconds(&g.text), values::GARP_INTERVAL, g.line, "vrrp_garp_interval", notes)
        }),
        router_id: k.router_id.as_ref().map(|r| values::name(&r.text, r.line, "router_id", notes)),
        script_user: k.script_user.as_ref().map(|u| u.text.clone()),
        scripts: scripts.kept,
        instances,
        sections,
        left_out,
    }
}

/// Every vrrp_script, kept or dropped; `replacement` says what replaces a dropped watcher.
fn scripts(k: &Keepalived, listening: &Listening, lookups: Lookups, replacement: &str, notes: &mut Notes) -> Scripts {
    let mut out = Scripts { kept: Vec::new(), watchers: Vec::new() };
    let mut names = HashSet::new();
    for s in &k.scripts {
        let Some(command) = s.script.as_deref().filter(|c| !c.trim().is_empty()) else {
            notes.add(
                s.line,
                NoteKind::Dropped,
                format!("vrrp_script {} has no `script`: keepalived ignores it, and so does vrrpd", s.name),
            );
            continue;
        };
        if !names.insert(s.name.clone()) {
            notes.add(s.line, NoteKind::Dropped, format!("vrrp_script {} is defined twice: the first one is kept", s.name));
            continue;
        }
        match watchers::classify(s, listening, lookups.read_script) {
            Verdict::Haproxy(why) => {
                notes.add(
                    s.line,
                    NoteKind::Changed,
                    format!(
                        "vrrp_script {} watches HAProxy ({why}): dropped with its track_script entries; under vrrpd there is no haproxy process, and ps or killall fail in the unit's sandbox; {replacement}",
                        s.name
                    ),
                );
                out.watchers.push(s.name.clone());
                continue;
            }
            Verdict::Unread(path) => notes.add(
                s.line,
                NoteKind::Warning,
                format!("vrrp_script {}: {path} cannot be read here to tell what it watches; if it watches HAProxy, drop it: vrrpd tracks its proxies itself (track_proxy)", s.name),
            ),
            Verdict::Other => {}
        }
        out.kept.push(script(s, command, notes));
    }
    out
}

fn script(s: &Script, command: &str, notes: &mut Notes) -> ScriptOut {
    let what = |key: &str| format!("vrrp_script {} {key}", s.name);
    let seconds = |w: &Option<Written>, bound, key: &str, notes: &mut Notes| {
        w.as_ref().and_then(|w| values::duration(&values::seconds(&w.text), bound, w.line, &what(key), notes))
    };
    let number = |w: &Option<Written>, range, key: &str, notes: &mut Notes| {
        w.as_ref().and_then(|w| values::integer(&w.text, range, w.line, &what(key), notes))
    };
    ScriptOut {
        name: values::name(&s.name, s.line, "vrrp_script", notes),
        line: s.line,
        script: command.to_owned(),
        interval: seconds(&s.interval, values::INTERVAL, "interval", notes),
        timeout: seconds(&s.timeout, values::TIMEOUT, "timeout", notes),
        weight: number(&s.weight, WEIGHT, "weight", notes),
        rise: number(&s.rise, 1..=1000, "rise", notes),
        fall: number(&s.fall, 1..=1000, "fall", notes),
        user: s.user.clone(),
    }
}

/// An IPv4 VIP with an optional prefix, as vrrpd accepts it.
fn vip(text: &str, version: i64) -> Result<IpAddr, &'static str> {
    let (addr, len) = text.split_once('/').map_or((text, None), |(a, l)| (a, Some(l)));
    let addr = match addr.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) if version != 3 => {
            return Err("is IPv6: VRRPv2 carries IPv4 addresses only (IPv6 virtual routers need vrrp_version 3)")
        }
        Ok(addr) => addr,
        Err(_) => return Err("is not an IP address"),
    };
    let longest = if addr.is_ipv4() { 32 } else { 128 };
    if len.is_some_and(|l| l.parse::<u8>().map_or(true, |l| l > longest)) {
        return Err("has a prefix length out of range");
    }
    let unusable = match addr {
        IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast() || a.is_loopback() || (a.segments()[0] & 0xffc0) == 0xfe80,
    };
    if unusable {
        return Err("cannot be a virtual address");
    }
    Ok(addr)
}

fn ipv4(w: &Written, what: &str, notes: &mut Notes) -> Option<String> {
    match w.text.parse::<Ipv4Addr>() {
        Ok(ip) => Some(ip.to_string()),
        Err(_) => {
            notes.add(w.line, NoteKind::Dropped, format!("{what} {} is not an IPv4 address", w.text));
            None
        }
    }
}

fn interface_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 15 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
}

fn instance(
    i: &Instance,
    scripts: &Scripts,
    (processes, files): (&[tracked::Section], &[tracked::Section]),
    default_version: i64,
    seen_vips: &mut HashSet<IpAddr>,
    notes: &mut Notes,
) -> Result<InstanceOut, String> {
    let version = version(i.version.as_ref(), default_version, &format!("vrrp_instance {} version", i.name), notes);
    let interface = match &i.interface {
        Some(w) if interface_name(&w.text) => w.text.clone(),
        Some(w) => return Err(format!("{:?} cannot be a Linux interface name", w.text)),
        None => {
            notes.add(
                i.line,
                NoteKind::Changed,
                format!("vrrp_instance {} has no `interface`: written eth0, set the right one", i.name),
            );
            "eth0".to_owned()
        }
    };
    let vrid = match i.vrid.as_ref().map(|v| v.text.parse::<i64>()) {
        Some(Ok(v)) if (1..=255).contains(&v) => v,
        Some(_) => return Err("its virtual_router_id is not 1..=255".to_owned()),
        None => return Err("no virtual_router_id (keepalived refuses it too)".to_owned()),
    };
    let mut vips = Vec::new();
    let mut family: Option<bool> = None;
    for written in &i.vips {
        let v = &written.address;
        match vip(&v.text, version) {
            Ok(addr) if *family.get_or_insert(addr.is_ipv4()) != addr.is_ipv4() => notes.add(
                v.line,
                NoteKind::Dropped,
                format!(
                    "VIP {}: a virtual router carries one address family (RFC 5798); the instance's first VIP decides",
                    v.text
                ),
            ),
            Ok(addr) if !seen_vips.insert(addr) => {
                notes.add(v.line, NoteKind::Dropped, format!("VIP {}: already a VIP of an instance above", v.text))
            }
            Ok(addr) => vips.push(vips::placement(written, addr, &interface, interface_name, notes)),
            Err(why) => notes.add(v.line, NoteKind::Dropped, format!("VIP {} {why}", v.text)),
        }
    }
    if vips.is_empty() {
        return Err("no virtual address left to carry".to_owned());
    }
    // Not in the adverts: either family, whatever the version.
    let mut vips_excluded = Vec::new();
    for written in &i.vips_excluded {
        let v = &written.address;
        match vip(&v.text, 3) {
            Ok(addr) if !seen_vips.insert(addr) => {
                let ours = vips.iter().chain(&vips_excluded).any(|o: &VipOut| o.addr() == Some(addr));
                let whose = if ours { "this instance" } else { "an instance above" };
                notes.add(v.line, NoteKind::Dropped, format!("VIP {}: already a VIP of {whose}", v.text))
            }
            Ok(addr) => vips_excluded.push(vips::placement(written, addr, &interface, interface_name, notes)),
            Err(why) => notes.add(v.line, NoteKind::Dropped, format!("VIP {} {why}", v.text)),
        }
    }
    let state = i.state.as_ref().and_then(|s| match s.text.to_ascii_uppercase().as_str() {
        "MASTER" => Some("MASTER"),
        "BACKUP" => Some("BACKUP"),
        _ => {
            notes.add(s.line, NoteKind::Dropped, format!("state {}: vrrpd knows MASTER and BACKUP; BACKUP applies", s.text));
            None
        }
    });
    let named = |what: &str| format!("vrrp_instance {} {what}", i.name);
    Ok(InstanceOut {
        name: values::name(&i.name, i.line, "vrrp_instance", notes),
        line: i.line,
        interface,
        state,
        vrid,
        priority: i.priority.as_ref().and_then(|p| values::integer(&p.text, 1..=255, p.line, &named("priority"), notes)),
        version: (version == 3).then_some(3),
        advert_int: i.advert_int.as_ref().and_then(|a| match version {
            3 => advert_int_v3(a, &i.name, notes),
            _ => advert_int(a, &i.name, notes).map(|secs| secs.to_string()),
        }),
        preempt: !i.nopreempt,
        preempt_delay: i.preempt_delay.as_ref().and_then(|d| {
            values::duration(&values::seconds(&d.text), values::PREEMPT_DELAY, d.line, &named("preempt_delay"), notes)
        }),
        auth_pass: match (&i.auth, version) {
            (Some(a), 3) => {
                notes.add(
                    a.kind.line,
                    NoteKind::Dropped,
                    format!(
                        "vrrp_instance {} authentication: VRRPv3 has none (RFC 5798; keepalived ignores it with version 3 too)",
                        i.name
                    ),
                );
                None
            }
            (Some(a), _) => auth_pass(a.kind.clone(), a.pass.as_ref(), notes),
            (None, _) => None,
        },
        vips,
        vips_excluded,
        track_script: track_scripts(i, scripts, notes),
        track_interface: tracks(
            &i.track_interface,
            "track_interface",
            |t, notes| {
                let valid = interface_name(&t.name) && values::clean_name(&t.name) == t.name;
                if !valid {
                    notes.add(
                        t.line,
                        NoteKind::Dropped,
                        format!("track_interface {:?} cannot be a Linux interface name", t.name),
                    );
                }
                valid
            },
            notes,
        ),
        track_process: tracks(&i.track_process, "track_process", known_in(processes, "vrrp_track_process"), notes),
        track_file: tracks(&i.track_file, "track_file", known_in(files, "track_file"), notes),
        track_proxy: Vec::new(),
        notify: i.notify.iter().filter(|(_, w)| !w.text.trim().is_empty()).map(|(key, w)| (*key, w.text.clone())).collect(),
        unicast_src_ip: source_address(i, notes),
        unicast_peer: i.unicast_peer.iter().filter_map(|p| ipv4(p, "unicast_peer", notes)).collect(),
        garp: garp(i, notes),
    })
}

/// keepalived's `vrrp_version` / `version`: 2 or 3; anything else is noted and `default` applies.
fn version(w: Option<&Written>, default: i64, what: &str, notes: &mut Notes) -> i64 {
    match w.map(|w| (w, w.text.as_str())) {
        None => default,
        Some((_, "2")) => 2,
        Some((_, "3")) => 3,
        Some((w, other)) => {
            notes.add(w.line, NoteKind::Dropped, format!("{what} {other:?} is not 2 or 3: {default} applies"));
            default
        }
    }
}

/// VRRPv3 advertises centiseconds, 10 ms to 40.95 s: keepalived's seconds (`0.1`) become
/// `"100ms"`.
fn advert_int_v3(a: &Written, instance: &str, notes: &mut Notes) -> Option<String> {
    let Some(secs) = a.text.parse::<f64>().ok().filter(|s| s.is_finite()) else {
        notes.add(
            a.line,
            NoteKind::Dropped,
            format!("vrrp_instance {instance} advert_int {:?} is not a number: 1 s applies", a.text),
        );
        return None;
    };
    let centis = (secs * 100.0).round().clamp(1.0, 4095.0);
    if (centis / 100.0 - secs).abs() > 1e-9 {
        notes.add(
            a.line,
            NoteKind::Changed,
            format!(
                "vrrp_instance {instance} advert_int {}: VRRPv3 advertises whole centiseconds (0.01 to 40.95 s): written {}ms",
                a.text,
                centis as i64 * 10
            ),
        );
    }
    Some(format!("\"{}ms\"", centis as i64 * 10))
}

/// Keeps a track entry naming one of `sections`; keepalived ignores the others, and so does
/// the import, with a note.
fn known_in<'a>(sections: &'a [tracked::Section], what: &'a str) -> impl Fn(&Track, &mut Notes) -> bool + 'a {
    move |t, notes| {
        let known = sections.iter().any(|s| s.name == values::clean_name(&t.name));
        if !known {
            notes.add(t.line, NoteKind::Dropped, format!("track entry {} names no {what} (keepalived ignores it too)", t.name));
        }
        known
    }
}

/// VRRPv2 advertises whole seconds, 1 to 255. keepalived's VRRPv3 allows fractions.
fn advert_int(a: &Written, instance: &str, notes: &mut Notes) -> Option<i64> {
    let Some(secs) = a.text.parse::<f64>().ok().filter(|s| s.is_finite()) else {
        notes.add(
            a.line,
            NoteKind::Dropped,
            format!("vrrp_instance {instance} advert_int {:?} is not a number: 1 s applies", a.text),
        );
        return None;
    };
    let whole = secs.ceil().clamp(1.0, 255.0) as i64;
    if secs.fract() != 0.0 || !(1.0..=255.0).contains(&secs) {
        notes.add(
            a.line,
            NoteKind::Changed,
            format!(
                "vrrp_instance {instance} advert_int {}: VRRPv2 advertises whole seconds (1 to 255): written {whole}; a keepalived peer must use {whole} too (sub-second adverts need vrrp_version 3 on both hosts)",
                a.text
            ),
        );
    }
    Some(whole)
}

/// vrrpd's PASS authentication; keepalived sends only the first 8 bytes of a longer password.
fn auth_pass(kind: Written, pass: Option<&Written>, notes: &mut Notes) -> Option<String> {
    match kind.text.to_ascii_uppercase().as_str() {
        "PASS" => {}
        "AH" => {
            notes.add(
                kind.line,
                NoteKind::Warning,
                "auth_type AH: vrrpd does not support AH (RFC 3768 removed it): written without authentication; a peer still using AH drops vrrpd's adverts".to_owned(),
            );
            return None;
        }
        other => {
            notes.add(
                kind.line,
                NoteKind::Dropped,
                format!("auth_type {other}: vrrpd knows PASS; written without authentication"),
            );
            return None;
        }
    }
    let Some(pass) = pass.filter(|p| !p.text.is_empty()) else {
        notes.add(kind.line, NoteKind::Dropped, "auth_type PASS without auth_pass: written without authentication".to_owned());
        return None;
    };
    let mut cut = 0;
    for (at, c) in pass.text.char_indices() {
        if at + c.len_utf8() > 8 {
            break;
        }
        cut = at + c.len_utf8();
    }
    if cut < pass.text.len() {
        notes.add(
            pass.line,
            NoteKind::Changed,
            format!("auth_pass is {} bytes: keepalived sent only the first 8, which are written", pass.text.len()),
        );
    }
    Some(pass.text[..cut].to_owned())
}

fn tracks(list: &[Track], what: &str, keep: impl Fn(&Track, &mut Notes) -> bool, notes: &mut Notes) -> Vec<TrackOut> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for t in list {
        if !keep(t, notes) {
            continue;
        }
        if !seen.insert(t.name.clone()) {
            notes.add(t.line, NoteKind::Dropped, format!("{what} {} is listed twice: the first is kept", t.name));
            continue;
        }
        let weight =
            t.weight.as_ref().and_then(|w| values::integer(w, WEIGHT, t.line, &format!("{what} {} weight", t.name), notes));
        out.push(TrackOut { name: values::clean_name(&t.name), weight, reverse: t.reverse });
    }
    out
}

fn track_scripts(i: &Instance, scripts: &Scripts, notes: &mut Notes) -> Vec<TrackOut> {
    tracks(
        &i.track_script,
        "track_script",
        |t, notes| {
            if scripts.watchers.contains(&t.name) {
                notes.add(
                    t.line,
                    NoteKind::Changed,
                    format!("track_script {}: dropped with the vrrp_script, which watches HAProxy", t.name),
                );
                return false;
            }
            if !scripts.kept.iter().any(|s| s.name == values::clean_name(&t.name)) {
                notes.add(
                    t.line,
                    NoteKind::Dropped,
                    format!("track_script {} names no vrrp_script: not carried over (keepalived ignores it too)", t.name),
                );
                return false;
            }
            true
        },
        notes,
    )
}

/// keepalived's `mcast_src_ip` and `unicast_src_ip` are one setting under two names: the
/// address adverts leave from, multicast or unicast. vrrpd's `unicast_src_ip` is that setting.
fn source_address(i: &Instance, notes: &mut Notes) -> Option<String> {
    let chosen = match (&i.unicast_src_ip, &i.mcast_src_ip) {
        (Some(u), Some(m)) if u.text != m.text => {
            let (last, other) = if m.line > u.line { (m, u) } else { (u, m) };
            notes.add(
                other.line,
                NoteKind::Dropped,
                format!("vrrp_instance {}: mcast_src_ip and unicast_src_ip are one setting in keepalived: the last one, {}, is written", i.name, last.text),
            );
            last
        }
        (Some(u), _) => u,
        (None, Some(m)) => {
            notes.add(
                m.line,
                NoteKind::Changed,
                format!(
                    "vrrp_instance {}: `mcast_src_ip {}` is written as unicast_src_ip, vrrpd's advert source address for multicast and unicast alike (without it vrrpd sends from the interface's first primary address)",
                    i.name, m.text
                ),
            );
            m
        }
        (None, None) => return None,
    };
    ipv4(chosen, "advert source address", notes)
}

fn garp(i: &Instance, notes: &mut Notes) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (key, w) in &i.garp {
        let value = if key.ends_with("repeat") {
            values::integer(&w.text, 1..=255, w.line, key, notes).map(|n| n.to_string())
        } else {
            values::duration(&values::seconds(&w.text), values::DELAY, w.line, key, notes)
                .map(|d| ::toml::Value::String(d).to_string())
        };
        if let Some(v) = value {
            out.push((*key, v));
        }
    }
    out
}

/// Each instance tracks every proxy it fronts: those bound to one of its VIPs, and those
/// bound to a wildcard or to no VIP at all (any instance's traffic may reach them).
fn track_proxies(instances: &mut [InstanceOut], balancer: Option<&Balancer>, notes: &mut Notes) {
    let Some(balancer) = balancer else { return };
    let vip_of = |i: &InstanceOut, ip: IpAddr| i.vips.iter().chain(&i.vips_excluded).any(|v| v.addr() == Some(ip));
    let fronts: Vec<(String, Option<IpAddr>)> = balancer
        .proxies()
        .map(|p| {
            let ip = p.bind.ip();
            let owned = !ip.is_unspecified() && instances.iter().any(|i| vip_of(i, ip));
            (p.name.clone(), owned.then_some(ip))
        })
        .collect();
    for i in instances.iter_mut() {
        i.track_proxy = fronts.iter().filter(|(_, ip)| ip.is_none_or(|ip| vip_of(i, ip))).map(|(name, _)| name.clone()).collect();
        if !i.track_proxy.is_empty() {
            notes.add(
                i.line,
                NoteKind::Changed,
                format!(
                    "vrrp_instance {}: track_proxy {} with weight 0 (FAULT while none of a proxy's servers is UP): vrrpd knows its own balancer's health",
                    i.name,
                    i.track_proxy.join(", ")
                ),
            );
        }
    }
}

/// vrrpd opens one advert socket per interface, bound to the first instance's source address.
fn shared_sources(instances: &[InstanceOut], notes: &mut Notes) {
    for (n, i) in instances.iter().enumerate() {
        let Some(first) = instances[..n].iter().find(|o| o.interface == i.interface) else { continue };
        if first.unicast_src_ip != i.unicast_src_ip {
            notes.add(
                i.line,
                NoteKind::Warning,
                format!(
                    "vrrp_instance {}: vrrpd sends every instance on {} from one address, that of vrrp_instance {} ({}): its own source address does not apply",
                    i.name,
                    i.interface,
                    first.name,
                    first.unicast_src_ip.as_deref().unwrap_or("the interface's first primary address")
                ),
            );
        }
    }
}

/// keepalived's classic trap: a negative weight no larger than the gap to the peer's priority
/// never hands the VIP over. The peer's priority is not in this file, so say what it takes.
fn weight_notes(k: &Keepalived, scripts: &Scripts, notes: &mut Notes) {
    for i in &k.instances {
        let Some(priority) = i.priority.as_ref().and_then(|p| p.text.parse::<i64>().ok()) else { continue };
        for t in &i.track_script {
            let Some(script) = scripts.kept.iter().find(|s| s.name == values::clean_name(&t.name)) else { continue };
            let weight = t.weight.as_ref().and_then(|w| w.parse::<i64>().ok()).or(script.weight);
            if let Some(w) = weight.filter(|w| *w < 0) {
                notes.add(
                    i.line,
                    NoteKind::Warning,
                    format!(
                        "vrrp_instance {}: track_script {} weight {w} lowers priority {priority} to {}: the VIP moves only if the peer's priority is above that",
                        i.name,
                        t.name,
                        priority.saturating_add(w).max(1)
                    ),
                );
            }
        }
    }
}
