//! keepalived's `virtual_ipaddress` lines, `<IPADDR>[/<MASK>] [brd <IPADDR>] [dev <STRING>]
//! [scope <SCOPE>] [label <LABEL>] ...`: the address, and the placement words vrrpd carries
//! (`brd`, `dev`, `label`, `scope`, `no_track`) as a TOML table; a note for every other word.

use std::net::IpAddr;

use ha_common::config::Vip;

use super::{NoteKind, Notes, Written};

/// A `virtual_ipaddress` line as written: the address and the words after it.
#[derive(Debug)]
pub struct VipWritten {
    pub address: Written,
    pub options: Vec<String>,
}

/// A VIP as vrrpd will carry it.
pub struct VipOut {
    pub address: String,
    pub dev: Option<String>,
    pub label: Option<String>,
    /// The TOML value: a name (`"host"`) or a number.
    pub scope: Option<String>,
    /// An IPv4 address, `+` or `-`.
    pub brd: Option<String>,
    pub no_track: bool,
}

impl VipOut {
    pub fn addr(&self) -> Option<IpAddr> {
        self.address.split('/').next()?.parse().ok()
    }

    /// The string form when nothing but the address is set, the table otherwise.
    pub fn toml(&self) -> String {
        let q = |text: &str| ::toml::Value::String(text.to_owned()).to_string();
        if self.dev.is_none() && self.label.is_none() && self.scope.is_none() && self.brd.is_none() && !self.no_track {
            return q(&self.address);
        }
        let mut fields = vec![format!("address = {}", q(&self.address))];
        fields.extend(self.dev.as_deref().map(|d| format!("dev = {}", q(d))));
        fields.extend(self.label.as_deref().map(|l| format!("label = {}", q(l))));
        fields.extend(self.scope.as_deref().map(|s| format!("scope = {s}")));
        fields.extend(self.brd.as_deref().map(|b| format!("brd = {}", q(b))));
        if self.no_track {
            fields.push("no_track = true".to_owned());
        }
        format!("{{ {} }}", fields.join(", "))
    }
}

/// keepalived's words that take a value, and those that stand alone, which vrrpd has no use for.
const VALUED: &[&str] = &["brd", "broadcast", "dev", "scope", "label", "peer", "preferred_lft"];
const FLAGS: &[&str] = &["home", "-nodad", "mngtmpaddr", "noprefixroute", "autojoin", "use_vmac"];

/// What `v` (whose address is `addr`) becomes on an instance of `interface`.
pub fn placement(
    v: &VipWritten,
    addr: IpAddr,
    interface: &str,
    is_interface_name: fn(&str) -> bool,
    notes: &mut Notes,
) -> VipOut {
    let line = v.address.line;
    let mut out = VipOut { address: v.address.text.clone(), dev: None, label: None, scope: None, brd: None, no_track: false };
    let mut label = None;
    let mut words = v.options.iter();
    while let Some(word) = words.next() {
        let word = word.as_str();
        if word == "no_track" {
            out.no_track = true;
            continue;
        }
        if FLAGS.contains(&word) {
            let why = match word {
                "-nodad" => "vrrpd adds IPv6 VIPs without duplicate address detection anyway",
                _ => "vrrpd has no such option",
            };
            notes.add(line, NoteKind::Dropped, format!("VIP {} `{word}`: {why}", v.address.text));
            continue;
        }
        if !VALUED.contains(&word) {
            notes.add(line, NoteKind::Dropped, format!("VIP {} `{word}`: not an option vrrpd knows", v.address.text));
            continue;
        }
        let Some(value) = words.next() else {
            notes.add(line, NoteKind::Dropped, format!("VIP {} `{word}` without a value", v.address.text));
            break;
        };
        match word {
            "dev" if is_interface_name(value) => out.dev = Some(value.clone()),
            "dev" => notes.add(
                line,
                NoteKind::Dropped,
                format!("VIP {} dev {value:?} cannot be a Linux interface name: it goes on {interface}", v.address.text),
            ),
            "label" => label = Some(value.clone()),
            "scope" => match Vip::parse_scope(value) {
                Some(_) if value.bytes().all(|b| b.is_ascii_digit()) => out.scope = Some(value.clone()),
                Some(n) => out.scope = Some(format!("\"{}\"", Vip::scope_name(n))),
                None => notes.add(
                    line,
                    NoteKind::Dropped,
                    format!("VIP {} scope {value}: not global, site, link, host, nowhere or 0..=255", v.address.text),
                ),
            },
            "brd" | "broadcast" if addr.is_ipv6() => notes.add(
                line,
                NoteKind::Dropped,
                format!("VIP {} {word} {value}: IPv6 has no broadcast addresses", v.address.text),
            ),
            "brd" | "broadcast" if value == "+" || value == "-" || value.parse::<std::net::Ipv4Addr>().is_ok() => {
                out.brd = Some(value.clone())
            }
            "brd" | "broadcast" => notes.add(
                line,
                NoteKind::Dropped,
                format!("VIP {} {word} {value}: not an IPv4 address, + or -; added without one", v.address.text),
            ),
            _ => notes.add(line, NoteKind::Dropped, format!("VIP {} `{word} {value}`: vrrpd has no such option", v.address.text)),
        }
    }
    let dev = out.dev.as_deref().unwrap_or(interface).to_owned();
    out.label = label.and_then(|label| vip_label(&v.address.text, addr, &dev, label, line, notes));
    out
}

/// keepalived takes any label; vrrpd wants `ip`'s `<dev>:<name>` within IFNAMSIZ, and none on
/// IPv6 (Linux keeps none).
fn vip_label(address: &str, addr: IpAddr, dev: &str, label: String, line: usize, notes: &mut Notes) -> Option<String> {
    if addr.is_ipv6() {
        notes.add(line, NoteKind::Dropped, format!("VIP {address} label {label}: Linux keeps no label on IPv6 addresses"));
        return None;
    }
    let well_formed = label.strip_prefix(dev).and_then(|r| r.strip_prefix(':')).is_some_and(|r| !r.is_empty());
    let label = if well_formed {
        label
    } else {
        let renamed = format!("{dev}:{}", label.rsplit(':').next().unwrap_or(&label));
        notes.add(
            line,
            NoteKind::Changed,
            format!("VIP {address} label {label}: written {renamed} (vrrpd, like `ip`, wants the interface's name and ':')"),
        );
        renamed
    };
    if label.len() > 15 || !label.bytes().all(|b| b.is_ascii_graphic()) {
        notes.add(
            line,
            NoteKind::Dropped,
            format!("VIP {address} label {label}: longer than 15 characters (IFNAMSIZ); vrrpd's own label applies"),
        );
        return None;
    }
    Some(label)
}
