//! An instance's `virtual_ipaddress` and `virtual_ipaddress_excluded` entries: the address,
//! and keepalived's placement words (`dev`, `label`, `scope`, `brd`, `no_track`) when the entry
//! is a table.

use std::collections::HashMap;

use super::*;

impl Validator<'_> {
    /// The instance's VIPs; `taken` holds every address seen so far and whose it is: an
    /// address local on any interface is local to the whole host (Linux's weak host model), so
    /// the same address twice is refused whatever its `dev`.
    pub(super) fn vips(
        &mut self,
        raw: &S<Vec<S<RawVip>>>,
        i: usize,
        interface: &str,
        version: VrrpVersion,
        taken: &mut HashMap<IpAddr, usize>,
    ) -> Vec<Vip> {
        let key = |field: &str| format!("vrrp_instance[{i}].{field}");
        if raw.get_ref().is_empty() {
            self.error(raw.span(), &key("virtual_ipaddress"), "lists no address: an instance needs at least one VIP");
        }
        let mut vips: Vec<Vip> = Vec::new();
        for (j, entry) in raw.get_ref().iter().enumerate() {
            let vip_key = key(&format!("virtual_ipaddress[{j}]"));
            let Some(vip) = self.vip(entry, &vip_key, interface, version == VrrpVersion::V2) else { continue };
            // RFC 5798 section 5.2.5: one family per virtual router.
            if let Some(first) = vips.first().filter(|f| f.addr().is_ipv4() != vip.addr().is_ipv4()) {
                self.error(
                    entry.span(),
                    &vip_key,
                    format!(
                        "{} is not of the family of {}: a virtual router carries IPv4 or IPv6 addresses, not both",
                        vip.addr(),
                        first.addr()
                    ),
                );
                continue;
            }
            self.take(taken, &vip, i, entry, &vip_key);
            vips.push(vip);
        }
        vips
    }

    /// keepalived's `virtual_ipaddress_excluded`: VIPs left out of the adverts, so of either
    /// family whatever the version (an IPv6 address beside a VRRPv2 instance's IPv4 ones) and
    /// as many as wanted (a VRRPv2 advert counts its addresses in one byte).
    pub(super) fn excluded_vips(
        &mut self,
        raw: &S<Vec<S<RawVip>>>,
        i: usize,
        interface: &str,
        taken: &mut HashMap<IpAddr, usize>,
    ) -> Vec<Vip> {
        let mut vips = Vec::new();
        for (j, entry) in raw.get_ref().iter().enumerate() {
            let vip_key = format!("vrrp_instance[{i}].virtual_ipaddress_excluded[{j}]");
            let Some(vip) = self.vip(entry, &vip_key, interface, false) else { continue };
            self.take(taken, &vip, i, entry, &vip_key);
            vips.push(Vip { excluded: true, ..vip });
        }
        vips
    }

    /// Records `vip` as instance `i`'s; the same address twice (anywhere) is refused.
    fn take(&mut self, taken: &mut HashMap<IpAddr, usize>, vip: &Vip, i: usize, entry: &S<RawVip>, key: &str) {
        if let Some(other) = taken.insert(vip.addr(), i) {
            let whose = if other == i { "this instance".to_owned() } else { format!("vrrp_instance[{other}]") };
            self.error(entry.span(), key, format!("{} is already a VIP of {whose}", vip.addr()));
        }
    }

    /// One entry; `ipv4_only`: a VRRPv2 advert's address (IPv4).
    fn vip(&mut self, entry: &S<RawVip>, key: &str, interface: &str, ipv4_only: bool) -> Option<Vip> {
        let table = match entry.get_ref() {
            RawVip::Text(text) => {
                if text.trim().contains(char::is_whitespace) {
                    self.error(
                        entry.span(),
                        key,
                        format!(
                            "{text:?}: dev, label, scope and brd are written as a table: {{ address = \"192.0.2.101/24\", \
                             dev = \"eth1\", label = \"eth1:amqp\", scope = \"global\", brd = \"+\" }}"
                        ),
                    );
                    return None;
                }
                return self.vip_prefix(text, entry.span(), key, ipv4_only).map(Vip::plain);
            }
            RawVip::Table(table) => table,
        };
        let prefix = self.vip_prefix(table.address.get_ref(), table.address.span(), &format!("{key}.address"), ipv4_only);
        let dev = table.dev.as_ref().map(|d| {
            let name = self.non_empty(d, &format!("{key}.dev"));
            if !is_interface_name(&name) {
                self.error(d.span(), &format!("{key}.dev"), format!("{name:?} cannot be a Linux interface name"));
            }
            name
        });
        let on = dev.as_deref().unwrap_or(interface);
        let label = table.label.as_ref().and_then(|l| {
            let label_key = format!("{key}.label");
            let text = l.get_ref().as_str();
            if prefix.is_some_and(|p| p.addr.is_ipv6()) {
                self.error(l.span(), &label_key, "IPv6 addresses have no label in Linux: remove it");
                return None;
            }
            // The kernel takes any label, but `ip` and keepalived want `<dev>:<anything>`
            // (ifconfig's alias syntax), and the kernel keeps IFNAMSIZ bytes of it.
            let rest = text.strip_prefix(on).and_then(|r| r.strip_prefix(':'));
            if rest.is_none_or(|r| r.is_empty()) {
                self.error(l.span(), &label_key, format!("{text:?} must be the interface name, ':' and a name, as {on}:amqp"));
                return None;
            }
            if text.len() > IFNAME_MAX || !text.bytes().all(|b| b.is_ascii_graphic()) {
                self.error(
                    l.span(),
                    &label_key,
                    format!("{text:?} must be at most {IFNAME_MAX} printable characters without spaces (IFNAMSIZ)"),
                );
                return None;
            }
            Some(text.to_owned())
        });
        let scope = match &table.scope {
            None => Vip::SCOPE_GLOBAL,
            Some(s) => {
                let parsed = match s.get_ref() {
                    RawScope::Name(name) => Vip::parse_scope(name),
                    RawScope::Number(n) => u8::try_from(*n).ok(),
                };
                parsed.unwrap_or_else(|| {
                    self.error(
                        s.span(),
                        &format!("{key}.scope"),
                        "must be \"global\", \"site\", \"link\", \"host\", \"nowhere\" or a number 0..=255",
                    );
                    Vip::SCOPE_GLOBAL
                })
            }
        };
        let broadcast = table.brd.as_ref().and_then(|b| self.vip_broadcast(b, prefix, &format!("{key}.brd")));
        let no_track = table.no_track.unwrap_or(false);
        if no_track && on == interface {
            let span = table.address.span();
            self.warn(
                span,
                &format!("{key}.no_track"),
                format!("has no effect on a VIP on the instance's own interface {interface}"),
            );
        }
        Some(Vip { prefix: prefix?, dev, label, scope, broadcast, excluded: false, no_track })
    }

    /// `brd` as `ip address add` takes it: an address, `+` (the prefix's host bits set) or `-`
    /// (cleared). IPv4 only.
    fn vip_broadcast(&mut self, brd: &S<String>, prefix: Option<IpPrefix>, key: &str) -> Option<Ipv4Addr> {
        let IpAddr::V4(addr) = prefix?.addr else {
            self.error(brd.span(), key, "IPv6 has no broadcast addresses: remove it");
            return None;
        };
        let len = prefix?.len;
        let host_bits = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
        match brd.get_ref().trim() {
            // keepalived (and `ip`) compute none for a /31 or /32: its "broadcast" would be the
            // peer's address or the VIP itself.
            "+" | "-" if len > 30 => {
                self.warn(brd.span(), key, format!("a /{len} has no broadcast address: none is added"));
                None
            }
            "+" => Some(Ipv4Addr::from(u32::from(addr) | host_bits)),
            "-" => Some(Ipv4Addr::from(u32::from(addr) & !host_bits)),
            text => text.parse::<Ipv4Addr>().map_err(|_| ()).ok().or_else(|| {
                self.error(
                    brd.span(),
                    key,
                    format!("{text:?} must be an IPv4 address, \"+\" or \"-\" (as ip address add ... brd)"),
                );
                None
            }),
        }
    }

    pub(super) fn vip_prefix(&mut self, text: &str, span: Range<usize>, key: &str, ipv4_only: bool) -> Option<IpPrefix> {
        let raw = text.trim();
        let (addr, len) = match raw.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (raw, None),
        };
        let addr = match addr.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) if ipv4_only => {
                self.error(
                    span,
                    key,
                    format!(
                        "{raw:?} is IPv6: VRRPv2 carries IPv4 addresses only (set version = 3, or list it in \
                         virtual_ipaddress_excluded)"
                    ),
                );
                return None;
            }
            Ok(addr) => addr,
            Err(_) => {
                self.error(
                    span,
                    key,
                    format!("{raw:?} is not an IP address with an optional prefix (\"192.0.2.100/24\", \"2001:db8::100/64\")"),
                );
                return None;
            }
        };
        let longest = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len.map(str::parse::<u8>) {
            None => longest,
            Some(Ok(len)) if len <= longest => len,
            Some(_) => {
                self.error(span, key, format!("{raw:?} has a prefix length outside 0..={longest}"));
                return None;
            }
        };
        let unusable = match addr {
            IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback(),
            // A link-local VIP would need RFC 5798's "first address is the link-local" rule and
            // is not what a balancer listens on.
            IpAddr::V6(a) => a.is_unspecified() || a.is_multicast() || a.is_loopback() || (a.segments()[0] & 0xffc0) == 0xfe80,
        };
        if unusable {
            self.error(span, key, format!("{addr} cannot be a virtual address"));
            return None;
        }
        Some(IpPrefix { addr, len })
    }
}
