//! `vrrpd check`: validate a configuration, say in plain words what it would run, and look at
//! the host as the start would (interfaces, addresses, users).

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

use ha_common::config::{Authentication, Config, IpPrefix, Notify, Place};
use ha_common::duration::format as fmt_duration;

use vrrp_core::instance::Instance;

use crate::vrrp::convert;
use crate::vrrp::net::link::{self, Netlink};

/// Renders the summary `vrrpd check` prints for a valid configuration.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_summary(&mut out, config);
    out
}

fn write_summary(out: &mut String, config: &Config) -> std::fmt::Result {
    writeln!(out, "router_id {}", config.global.router_id)?;
    for vi in &config.instances {
        let timers = Instance::new(convert::instance_config(vi, Ipv4Addr::UNSPECIFIED.into(), Vec::new()));
        writeln!(out)?;
        writeln!(out, "vrrp_instance {}", vi.name)?;
        writeln!(
            out,
            "  interface {}, VRRPv{}, VRID {}, priority {}{}, advert_int {}, starts {}, {}",
            vi.interface,
            vi.version,
            vi.vrid,
            vi.priority,
            if vi.priority == 255 { " (address owner)" } else { "" },
            fmt_duration(vi.advert_int),
            vi.initial_state,
            if vi.preempt { "preempt".to_owned() } else { "nopreempt".to_owned() }
                + &if vi.preempt && !vi.preempt_delay.is_zero() {
                    format!(" after {}", fmt_duration(vi.preempt_delay))
                } else {
                    String::new()
                },
        )?;
        let auth = match vi.authentication {
            Authentication::None => "none",
            Authentication::Pass(_) => "PASS",
        };
        writeln!(out, "  authentication {auth}")?;
        let vips: Vec<_> = vi.advertised_vips().map(ToString::to_string).collect();
        writeln!(out, "  VIPs {}", vips.join(", "))?;
        let excluded: Vec<_> = vi.virtual_ipaddress.iter().filter(|v| v.excluded).map(ToString::to_string).collect();
        if !excluded.is_empty() {
            writeln!(out, "  VIPs not in adverts (virtual_ipaddress_excluded) {}", excluded.join(", "))?;
        }
        writeln!(out, "  Skew_Time {:?}, Master_Down_Interval {:?}", timers.skew_time(), timers.master_down_interval())?;
        for (kind, tracks) in [
            ("track_script", &vi.track_script),
            ("track_proxy", &vi.track_proxy),
            ("track_interface", &vi.track_interface),
            ("track_process", &vi.track_process),
        ] {
            for t in tracks {
                let down = if t.reverse { "up" } else { "down" };
                let sign = if t.reverse { -1 } else { 1 };
                let effect = match t.weight {
                    0 => format!("FAULT while {down}"),
                    w if w < 0 => format!("priority {:+} while down", w * sign),
                    w => format!("priority {:+} while up", w * sign),
                };
                writeln!(out, "  {kind} {} ({effect})", t.name)?;
            }
        }
        for t in &vi.track_file {
            let effect = match (t.weight, t.reverse) {
                (0, false) => "FAULT while the value is not 0".to_owned(),
                (0, true) => "FAULT while the value is 0".to_owned(),
                (w, reverse) => format!("priority + value x {}, FAULT below -253", if reverse { -w } else { w }),
            };
            writeln!(out, "  track_file {} ({effect})", t.name)?;
        }
        write_notify(out, &vi.notify)?;
        if !vi.unicast_peer.is_empty() {
            let peers: Vec<_> = vi.unicast_peer.iter().map(ToString::to_string).collect();
            writeln!(out, "  unicast peers {}", peers.join(", "))?;
        }
    }
    for g in &config.sync_groups {
        writeln!(out)?;
        writeln!(out, "vrrp_sync_group {}: {} fail over together", g.name, g.members.join(", "))?;
        write_notify(out, &g.notify)?;
    }
    for p in &config.track_processes {
        writeln!(out)?;
        let params = if p.params.is_empty() { String::new() } else { format!(" {}", p.params.join(" ")) };
        let quorum = match p.quorum_max {
            Some(max) => format!("{}..={max}", p.quorum),
            None => format!("at least {}", p.quorum),
        };
        writeln!(
            out,
            "vrrp_track_process {}: {}{params} ({}), {quorum} running, weight {}, delays {} up / {} down",
            p.name,
            p.process,
            match (p.full_command, p.param_match) {
                (_, Some(m)) => format!("command line, {m:?} parameters"),
                (true, None) => "command line".to_owned(),
                (false, None) => "process name".to_owned(),
            },
            p.weight,
            fmt_duration(p.fork_delay),
            fmt_duration(p.terminate_delay)
        )?;
    }
    for f in &config.track_files {
        writeln!(out)?;
        writeln!(out, "vrrp_track_file {}: {}, weight {}", f.name, f.path.display(), f.weight)?;
    }
    for s in &config.scripts {
        writeln!(out)?;
        writeln!(
            out,
            "vrrp_script {}: {} every {}, timeout {}, rise {}, fall {}, weight {}",
            s.name,
            s.script,
            fmt_duration(s.interval),
            fmt_duration(s.timeout),
            s.rise,
            s.fall,
            s.weight
        )?;
    }
    for p in &config.proxies {
        writeln!(out)?;
        writeln!(
            out,
            "proxy {} on {}: balance {}, check {}{} every {} (timeout {}, rise {}, fall {})",
            p.name,
            p.binds
                .iter()
                .map(|b| if p.accept_proxy.contains(b) { format!("{b} (accept_proxy)") } else { b.to_string() })
                .collect::<Vec<_>>()
                .join(", "),
            p.balance,
            p.check.kind,
            check_target(&p.check),
            fmt_duration(p.check.interval),
            fmt_duration(p.check.timeout),
            p.check.rise,
            p.check.fall
        )?;
        writeln!(
            out,
            "  timeouts connect {}, idle {}; retries {}{}",
            fmt_duration(p.timeout_connect),
            fmt_duration(p.timeout_idle),
            p.retries,
            if p.redispatch { ", redispatch" } else { "" }
        )?;
        if let Some(api) = &p.rabbitmq_api {
            // URLs as written (credentials are refused in them), the user, never the password.
            writeln!(out, "  fences silent masters through {} as {}", api.urls.join(", "), api.user)?;
            for (peer, extra) in &api.fence_addresses {
                let extra: Vec<String> = extra.iter().map(ToString::to_string).collect();
                writeln!(out, "    with {peer}, also {}", extra.join(", "))?;
            }
        }
        for s in &p.servers {
            writeln!(
                out,
                "  server {} {} weight {}{}{}",
                s.name,
                s.address,
                s.weight,
                if s.backup { " backup" } else { "" },
                if s.check { own_check(&p.check, s) } else { " (not checked)".to_owned() }
            )?;
        }
    }
    if !config.proxies.is_empty() {
        writeln!(out)?;
        match (config.global.maxconn, proxy::balancer::open_files_limit()) {
            (Some(maxconn), _) => writeln!(out, "global maxconn {maxconn}")?,
            (None, Ok(nofile)) => writeln!(
                out,
                "global maxconn {} (not set: derived from this process's open-file limit {nofile}, two descriptors a session)",
                proxy::balancer::default_maxconn(nofile)
            )?,
            (None, Err(_)) => writeln!(out, "global maxconn unlimited (not set, and the open-file limit is unreadable)")?,
        }
    }
    if let Some(stats) = &config.stats {
        writeln!(out)?;
        writeln!(out, "stats on http://{}/{}", stats.listen, if stats.auth.is_some() { " (basic auth)" } else { "" })?;
    }
    Ok(())
}

/// What `vrrpd check` finds on this host that the file alone cannot say: refusals (the start
/// would do harm or fail) and warnings (the start would run, with an instance in FAULT).
#[derive(Debug, Default)]
pub struct HostFindings {
    pub errors: Vec<(Place, String)>,
    pub warnings: Vec<(Place, String)>,
}

/// Looks at the interfaces, addresses and users the configuration names, as the start would.
pub async fn host_findings(config: &Config, netlink: &Netlink) -> HostFindings {
    let mut found = HostFindings::default();
    if let Some(user) = &config.global.user {
        if nix::unistd::User::from_name(user).ok().flatten().is_none() {
            found.errors.push((Place::Global("user"), format!("user {user:?} does not exist on this host")));
        }
    }
    for (i, instance) in config.instances.iter().enumerate() {
        let name = &instance.interface;
        let interface = match netlink.interface(name).await {
            Ok(interface) => interface,
            Err(e) => {
                let why = format!("{e}: the instance starts in FAULT and waits for it");
                found.warnings.push((Place::Instance(i, "interface"), why));
                continue;
            }
        };
        if !interface.up {
            found
                .warnings
                .push((Place::Instance(i, "interface"), format!("{name} is down or has no carrier: FAULT until it is up")));
        }
        let vips: Vec<IpAddr> = instance.virtual_ipaddress.iter().map(|v| v.addr()).collect();
        match instance.unicast_src_ip {
            Some(source) if !interface.addresses.iter().any(|a| a.prefix.addr == IpAddr::V4(source)) => found.warnings.push((
                Place::Instance(i, "unicast_src_ip"),
                format!("{source} is not an address of {name}: adverts cannot leave from it (FAULT)"),
            )),
            None if interface.primary_ipv4(&vips).is_none() => found.warnings.push((
                Place::Instance(i, "interface"),
                format!("{name} has no IPv4 address to send adverts from: FAULT until it has one"),
            )),
            _ => {}
        }
        for (n, peer) in instance.unicast_peer.iter().enumerate() {
            if !interface.addresses.iter().any(|a| same_subnet(a.prefix, *peer)) {
                found.warnings.push((
                    Place::InstanceItem(i, "unicast_peer", n),
                    format!("{peer} is on no subnet of {name}: through a router its adverts arrive with TTL below 255 and are dropped"),
                ));
            }
        }
        let advertised = instance.advertised_vips().count();
        for (n, vip) in instance.virtual_ipaddress.iter().enumerate() {
            // Excluded VIPs come after the others: their place is in their own list.
            let place = if vip.excluded {
                Place::InstanceItem(i, "virtual_ipaddress_excluded", n - advertised)
            } else {
                Place::InstanceItem(i, "virtual_ipaddress", n)
            };
            let dev = vip.dev_or(name);
            let elsewhere;
            let on = if dev == name {
                &interface
            } else {
                match netlink.interface(dev).await {
                    Ok(found) => {
                        elsewhere = found;
                        &elsewhere
                    }
                    Err(e) => {
                        let effect = if vip.no_track {
                            "the VIP is not added while it is missing, nor when it appears, until the instance's next transition to MASTER (no_track: the instance is not put in FAULT)"
                        } else {
                            "the instance is in FAULT until it appears"
                        };
                        found.warnings.push((place, format!("{e}: {effect}")));
                        continue;
                    }
                }
            };
            if dev != name && !on.up {
                let effect = if vip.no_track {
                    "the VIP is unreachable until it is up, and an IPv6 one is removed by the kernel until the instance's next transition to MASTER (no_track: the instance is not put in FAULT)"
                } else {
                    "the instance is in FAULT until it is up"
                };
                found.warnings.push((place, format!("{dev} is down or has no carrier: {effect}")));
            }
            // A leftover of a crashed run carries vrrpd's label or the configured one, and the
            // start removes it; any other holder of the address is not vrrpd.
            let ours = |label: &str| link::is_vrrpd_label(dev, label) || vip.label.as_deref() == Some(label);
            let owned = on.addresses.iter().find(|a| a.prefix.addr == vip.addr() && !a.label.as_deref().is_some_and(ours));
            if owned.is_some() {
                found.errors.push((
                    place,
                    format!("{} is already an address of {dev}, not one vrrpd added: vrrpd would remove it at start and whenever it leaves MASTER", vip.addr()),
                ));
            }
        }
    }
    found
}

/// What a check asks beyond its kind: the port, the HTTP path and status, the TLS name. Never
/// the password.
/// The notify scripts of an instance or a sync group, one line each.
fn write_notify(out: &mut String, notify: &Notify) -> std::fmt::Result {
    for (kind, script) in [
        ("notify", &notify.any),
        ("notify_master", &notify.master),
        ("notify_backup", &notify.backup),
        ("notify_fault", &notify.fault),
        ("notify_stop", &notify.stop),
    ] {
        if let Some(script) = script {
            writeln!(out, "  {kind} {script}")?;
        }
    }
    Ok(())
}

fn check_target(check: &ha_common::config::HealthCheck) -> String {
    let mut said = String::new();
    if let Some(http) = &check.http {
        said.push_str(&format!(" GET {}", http.path));
        match http.expect_status {
            Some(status) => said.push_str(&format!(" expecting {status}")),
            None => said.push_str(" expecting 2xx/3xx"),
        }
        if let Some(user) = &http.user {
            said.push_str(&format!(" as {user}"));
        }
    }
    if let Some(port) = check.port {
        said.push_str(&format!(" on port {port}"));
    }
    if check.kind.uses_tls() {
        match &check.tls.ca_file {
            Some(ca) => said.push_str(&format!(", CA {}", ca.display())),
            None => said.push_str(", system CAs"),
        }
        if let Some(sni) = &check.tls.sni {
            said.push_str(&format!(", name {sni}"));
        }
    }
    said
}

/// A server's own check settings, as ` check interval 5s fall 4 port 15673` (empty without).
fn own_check(proxy: &ha_common::config::HealthCheck, server: &ha_common::config::Server) -> String {
    let own = proxy.for_server(server);
    let mut said = Vec::new();
    for (what, mine, theirs) in [
        ("interval", own.interval, proxy.interval),
        ("fastinter", own.fastinter, proxy.fastinter),
        ("downinter", own.downinter, proxy.downinter),
        ("timeout", own.timeout, proxy.timeout),
    ] {
        if mine != theirs {
            said.push(format!("{what} {}", fmt_duration(mine)));
        }
    }
    for (what, mine, theirs) in [("rise", own.rise, proxy.rise), ("fall", own.fall, proxy.fall)] {
        if mine != theirs {
            said.push(format!("{what} {mine}"));
        }
    }
    if own.target(server.address) != proxy.target(server.address) {
        said.push(format!("at {}", own.target(server.address)));
    }
    if said.is_empty() {
        String::new()
    } else {
        format!(" (check {})", said.join(" "))
    }
}

fn same_subnet(network: IpPrefix, address: Ipv4Addr) -> bool {
    let IpAddr::V4(net) = network.addr else { return false };
    let mask = if network.len == 0 { 0 } else { u32::MAX << (32 - u32::from(network.len.min(32))) };
    u32::from(net) & mask == u32::from(address) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_api_but_never_its_password() {
        let text = "[[proxy]]\nname = \"amqp\"\nbind = \"0.0.0.0:5672\"\nrabbitmq_api = { urls = [\"http://192.0.2.21:15672\"], user = \"fence\", password = \"hunter2\", fence_addresses = { \"192.0.2.12\" = [\"198.51.100.12\"] } }\n[[proxy.server]]\nname = \"r1\"\naddress = \"192.0.2.21:5672\"\n";
        let config = Config::parse(text, std::path::Path::new("a.toml")).unwrap().config;
        let out = summary(&config);
        assert!(out.contains("fences silent masters through http://192.0.2.21:15672 as fence"), "{out}");
        assert!(out.contains("with 192.0.2.12, also 198.51.100.12"), "{out}");
        assert!(!out.contains("hunter2"), "{out}");
    }

    #[test]
    fn subnets_are_compared_under_the_prefix() {
        let net = IpPrefix { addr: Ipv4Addr::new(192, 0, 2, 11).into(), len: 24 };
        assert!(same_subnet(net, Ipv4Addr::new(192, 0, 2, 12)));
        assert!(!same_subnet(net, Ipv4Addr::new(198, 51, 100, 12)));
        assert!(!same_subnet(IpPrefix { len: 32, ..net }, Ipv4Addr::new(192, 0, 2, 12)));
        assert!(same_subnet(IpPrefix { len: 0, ..net }, Ipv4Addr::new(203, 0, 113, 1)));
    }
}
