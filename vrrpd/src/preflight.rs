//! `vrrpd check`: validate a configuration and say, in plain words, what it would run.

use std::fmt::Write;
use std::net::Ipv4Addr;

use ha_common::config::{Authentication, Config};
use ha_common::duration::format as fmt_duration;

use vrrp_core::instance::Instance;

use crate::vrrp::convert;

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
        let timers = Instance::new(convert::instance_config(vi, Ipv4Addr::UNSPECIFIED, Vec::new()));
        writeln!(out)?;
        writeln!(out, "vrrp_instance {}", vi.name)?;
        writeln!(
            out,
            "  interface {}, VRID {}, priority {}{}, advert_int {}, starts {}, {}",
            vi.interface,
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
