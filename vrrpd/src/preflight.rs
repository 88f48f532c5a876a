//! `vrrpd check`: validate a configuration, say in plain words what it would run, and look at
//! the host as the start would (interfaces, addresses, users).

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

use ha_common::config::{Authentication, Config, IpPrefix, Place};
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
        let vips: Vec<_> = vi.virtual_ipaddress.iter().map(ToString::to_string).collect();
        writeln!(out, "  VIPs {}", vips.join(", "))?;
        writeln!(out, "  Skew_Time {:?}, Master_Down_Interval {:?}", timers.skew_time(), timers.master_down_interval())?;
        for (kind, tracks) in
            [("track_script", &vi.track_script), ("track_proxy", &vi.track_proxy), ("track_interface", &vi.track_interface)]
        {
            for t in tracks {
                let effect = match t.weight {
                    0 => "FAULT while down".to_owned(),
                    w if w < 0 => format!("priority {w} while down"),
                    w => format!("priority +{w} while up"),
                };
                writeln!(out, "  {kind} {} ({effect})", t.name)?;
            }
        }
        for (kind, script) in [
            ("notify", &vi.notify.any),
            ("notify_master", &vi.notify.master),
            ("notify_backup", &vi.notify.backup),
            ("notify_fault", &vi.notify.fault),
            ("notify_stop", &vi.notify.stop),
        ] {
            if let Some(script) = script {
                writeln!(out, "  {kind} {script}")?;
            }
        }
        if !vi.unicast_peer.is_empty() {
            let peers: Vec<_> = vi.unicast_peer.iter().map(ToString::to_string).collect();
            writeln!(out, "  unicast peers {}", peers.join(", "))?;
        }
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
            "proxy {} on {}: balance {}, check {} every {} (timeout {}, rise {}, fall {})",
            p.name,
            p.bind,
            p.balance,
            p.check.kind,
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
        for s in &p.servers {
            writeln!(
                out,
                "  server {} {} weight {}{}{}",
                s.name,
                s.address,
                s.weight,
                if s.backup { " backup" } else { "" },
                if s.check { "" } else { " (not checked)" }
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
        let vips: Vec<IpAddr> = instance.virtual_ipaddress.iter().map(|v| v.addr).collect();
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
        for (n, vip) in instance.virtual_ipaddress.iter().enumerate() {
            let owned = interface
                .addresses
                .iter()
                .find(|a| a.prefix.addr == vip.addr && !a.label.as_deref().is_some_and(|l| link::is_vrrpd_label(name, l)));
            if owned.is_some() {
                found.errors.push((
                    Place::InstanceItem(i, "virtual_ipaddress", n),
                    format!("{} is already an address of {name}, not one vrrpd added: vrrpd would remove it at start and whenever it leaves MASTER", vip.addr),
                ));
            }
        }
    }
    found
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
    fn subnets_are_compared_under_the_prefix() {
        let net = IpPrefix { addr: Ipv4Addr::new(192, 0, 2, 11).into(), len: 24 };
        assert!(same_subnet(net, Ipv4Addr::new(192, 0, 2, 12)));
        assert!(!same_subnet(net, Ipv4Addr::new(198, 51, 100, 12)));
        assert!(!same_subnet(IpPrefix { len: 32, ..net }, Ipv4Addr::new(192, 0, 2, 12)));
        assert!(same_subnet(IpPrefix { len: 0, ..net }, Ipv4Addr::new(203, 0, 113, 1)));
    }
}
