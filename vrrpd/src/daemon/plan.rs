//! What a configuration asks to run, parsed and checked before anything changes: a bad reload
//! is refused here and the running configuration stays.

use std::collections::BTreeMap;
use std::sync::Arc;

use ha_common::config::{Config, Notify};
use tracing::warn;

use crate::hooks::notify::NotifyScripts;
use crate::hooks::script::{Script, ScriptError};
use crate::trackers::file::{self, TrackFileError};
use crate::trackers::Wanted;
use crate::vrrp::driver::{DriverSpec, InstanceSpec};

/// Why a configuration cannot run on this host.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error(transparent)]
    TrackFile(#[from] TrackFileError),
}

pub struct Plan {
    /// The instances of each interface.
    pub drivers: BTreeMap<String, DriverSpec>,
    pub trackers: Wanted,
    /// Each sync group: its name, members and notify scripts.
    pub groups: Vec<(String, Vec<String>, Arc<NotifyScripts>)>,
}

/// Parses every script (refusing unsafe ones unless `enable_script_security = false`) and
/// groups the instances by interface.
pub fn plan(config: &Config) -> Result<Plan, Vec<PlanError>> {
    let mut problems = Vec::new();
    let security = config.global.enable_script_security;
    let mut parse = |text: &str, user: Option<&str>| match Script::parse(text, user) {
        Ok(script) => match script.check_security() {
            Ok(()) => Some(script),
            Err(e @ ScriptError::Unsafe { .. }) if !security => {
                warn!(error = %e, "running it anyway: enable_script_security = false");
                Some(script)
            }
            Err(e) => {
                problems.push(e.into());
                None
            }
        },
        Err(e) => {
            problems.push(e.into());
            None
        }
    };
    let default_user = config.global.script_user.as_deref();
    let mut trackers = Wanted::default();
    for s in &config.scripts {
        if let Some(script) = parse(&s.script, s.user.as_deref().or(default_user)) {
            trackers.scripts.push((s.clone(), script));
        }
    }
    let mut notify_scripts = |n: &Notify| {
        let mut notify_script = |text: &Option<String>| text.as_deref().and_then(|t| parse(t, default_user));
        NotifyScripts {
            any: notify_script(&n.any),
            master: notify_script(&n.master),
            backup: notify_script(&n.backup),
            fault: notify_script(&n.fault),
            stop: notify_script(&n.stop),
        }
    };
    let groups =
        config.sync_groups.iter().map(|g| (g.name.clone(), g.members.clone(), Arc::new(notify_scripts(&g.notify)))).collect();
    let mut drivers: BTreeMap<String, DriverSpec> = BTreeMap::new();
    for instance in &config.instances {
        let notify = notify_scripts(&instance.notify);
        trackers.interfaces.insert(instance.interface.clone());
        trackers.interfaces.extend(instance.track_interface.iter().map(|t| t.name.clone()));
        // The interfaces VIPs go on (keepalived tracks them too).
        trackers.interfaces.extend(instance.virtual_ipaddress.iter().filter_map(|v| v.dev.clone()));
        trackers.proxies.extend(instance.track_proxy.iter().map(|t| t.name.clone()));
        if !instance.sync_peers.is_empty() {
            trackers.sync_members.insert(instance.name.clone());
            trackers.sync_members.extend(instance.sync_peers.iter().cloned());
        }
        for t in &instance.track_process {
            if let Some(p) = config.track_processes.iter().find(|p| p.name == t.name && !trackers.processes.contains(p)) {
                trackers.processes.push(p.clone());
            }
        }
        drivers
            .entry(instance.interface.clone())
            .or_insert_with(|| DriverSpec { interface: instance.interface.clone(), instances: Vec::new(), guests: Vec::new() })
            .instances
            .push(Arc::new(InstanceSpec { config: instance.clone(), notify: Arc::new(notify) }));
    }
    for (interface, spec) in &mut drivers {
        spec.guests = config
            .instances
            .iter()
            .filter(|i| i.interface != *interface)
            .flat_map(|i| i.virtual_ipaddress.iter().filter(|v| v.dev.as_deref() == Some(interface.as_str())).map(|v| v.prefix))
            .collect();
    }
    for f in &config.track_files {
        if !config.instances.iter().any(|i| i.track_file.iter().any(|t| t.name == f.name)) {
            continue;
        }
        match file::check_security(f) {
            Ok(()) => trackers.files.push(f.clone()),
            Err(e) => problems.push(e.into()),
        }
    }
    if problems.is_empty() {
        Ok(Plan { drivers, trackers, groups })
    } else {
        Err(problems)
    }
}

/// What a reload cannot change in a running daemon: the identity and the sockets set up at
/// start. Everything else (instances, scripts, script users and security, proxies and servers)
/// applies at once.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.global, &new.global);
    [
        ("global.router_id", o.router_id != n.router_id),
        ("global.user", o.user != n.user),
        ("global.control_socket", o.control_socket != n.control_socket),
        ("global.maxconn", o.maxconn != n.maxconn),
        ("global.hard_stop_after", o.hard_stop_after != n.hard_stop_after),
        ("[stats]", old.stats != new.stats),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A sync group's notify scripts run as root like an instance's: the same refusal when
    /// others could modify them, and the same opt-out.
    #[test]
    fn a_sync_group_notify_script_others_can_modify_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("a_sync_group_notify_script_others_can_modify_is_refused: SKIPPED, needs root");
            return;
        }
        // A root-owned directory, so that only the file's mode decides.
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = |name: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path.display().to_string()
        };
        let (safe, open) = (script("safe.sh", 0o755), script("open.sh", 0o757));
        let config = |security: bool, group_script: &str| {
            let text = format!(
                "[global]\nrouter_id = \"a\"\nenable_script_security = {security}\n\
                 [[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\n\
                 virtual_ipaddress = [\"192.0.2.100/24\"]\nnotify = \"{safe}\"\n\
                 [[vrrp_sync_group]]\nname = \"G1\"\ngroup = [\"VI_1\"]\nnotify_master = \"{group_script}\"\n"
            );
            Config::parse(&text, std::path::Path::new("a.toml")).unwrap().config
        };
        assert!(plan(&config(true, &safe)).is_ok());
        let problems = plan(&config(true, &open)).err().expect("refused");
        let said: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(said.len() == 1 && said[0].contains("open.sh"), "{said:?}");
        let planned = plan(&config(false, &open)).expect("enable_script_security = false runs it anyway");
        assert!(planned.groups[0].2.master.is_some());
    }

    #[test]
    fn a_reload_names_what_waits_for_a_restart() {
        let text = "[global]\nrouter_id = \"a\"\n[[vrrp_instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvirtual_router_id = 51\nvirtual_ipaddress = [\"192.0.2.100/24\"]\n";
        let old = Config::parse(text, std::path::Path::new("a.toml")).unwrap().config;
        let stats = format!("{text}[stats]\nlisten = \"127.0.0.1:8100\"\n");
        let new = Config::parse(&stats, std::path::Path::new("a.toml")).unwrap().config;
        assert_eq!(needs_restart(&old, &new), vec!["[stats]"]);
        assert!(needs_restart(&old, &old).is_empty());
    }
}
