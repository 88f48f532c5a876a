//! Every tracked object's status in one watched map: track scripts (their runners live here),
//! interfaces (the link monitor), and proxies (the balancer's availability). Sources write into
//! the map; each VRRP driver watches it and brings its instances' trackers in line. A map holds
//! the latest state, so a driver started or reloaded later reads what is known, and a burst of
//! changes costs a driver one wake-up, not one per event.
//!
//! Only objects some instance uses are in the map: the link monitor's news about any other
//! interface is dropped on arrival, so nothing grows with the host's interface churn.

use std::collections::{BTreeSet, HashMap};

use futures_util::StreamExt;
use ha_common::config::VrrpScript;
use ha_common::rise_fall::RiseFall;
use proxy::Balancer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};
use vrrp_core::track::TrackerKind;

use crate::hooks::script::Script;
use crate::vrrp::net::link::{self, LinkEvent, Netlink};
use crate::vrrp::net::NetError;

/// A tracked object: its kind and name.
pub type TrackerKey = (TrackerKind, String);

/// The last known status (up or not) of every tracked object in use.
pub type TrackerStatus = HashMap<TrackerKey, bool>;

/// What a configuration tracks.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Interfaces VRRP runs on and `track_interface` names.
    pub interfaces: BTreeSet<String>,
    /// Track scripts, parsed and checked.
    pub scripts: Vec<(VrrpScript, Script)>,
    /// `track_proxy` names.
    pub proxies: BTreeSet<String>,
}

struct ScriptRunner {
    config: VrrpScript,
    stop: CancellationToken,
}

/// The sources of tracker status and the map they write to.
pub struct Trackers {
    status: watch::Sender<TrackerStatus>,
    scripts: HashMap<String, ScriptRunner>,
    proxy_watchers: CancellationToken,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Trackers {
    /// Sources are spawned on `tasks` and stop with `cancel`.
    pub fn new(tasks: TaskTracker, cancel: CancellationToken) -> Self {
        Trackers {
            status: watch::channel(TrackerStatus::new()).0,
            scripts: HashMap::new(),
            proxy_watchers: cancel.child_token(),
            tasks,
            cancel,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<TrackerStatus> {
        self.status.subscribe()
    }

    /// Starts following kernel link changes. When the kernel had to drop notifications (the
    /// socket's buffer overran under a flood of link changes), every tracked interface is read
    /// again, so none stays at a state it left.
    pub fn start_link_monitor(&self, netlink: Netlink) -> Result<(), NetError> {
        let mut stream = Box::pin(link::link_events()?);
        let status = self.status.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            loop {
                let event = tokio::select! {
                    () = cancel.cancelled() => return,
                    event = stream.next() => event,
                };
                match event {
                    Some(LinkEvent::Changed { name, up }) => set(&status, (TrackerKind::Interface, name), up),
                    Some(LinkEvent::Overrun) => resync_links(&status, &netlink).await,
                    None => break,
                }
            }
            error!("link monitor stopped: link changes are no longer seen");
        });
        Ok(())
    }

    /// Tracks exactly what `wanted` names: reads the interfaces' link state, starts, keeps or
    /// restarts script runners, and watches the proxies. A script whose definition changed
    /// restarts from the status it had, so a failing check stays failing until it passes `rise`
    /// times. Objects no longer wanted are forgotten.
    pub async fn apply(&mut self, wanted: Wanted, netlink: &Netlink, balancer: Option<&Balancer>) {
        let mut links = Vec::new();
        for name in &wanted.interfaces {
            let up = match netlink.interface(name).await {
                Ok(interface) => interface.up,
                Err(e) => {
                    warn!(interface = %name, error = %e, "tracked interface is down until it appears");
                    false
                }
            };
            links.push((name.clone(), up));
        }
        // From here on nothing awaits: no source can report between reading the map and
        // replacing it, and every source starts after its key is in the map.
        let current = self.status.borrow().clone();
        let mut next: TrackerStatus = links.into_iter().map(|(name, up)| ((TrackerKind::Interface, name), up)).collect();
        self.scripts.retain(|name, runner| {
            let keep = wanted.scripts.iter().any(|(config, _)| &config.name == name && *config == runner.config);
            if !keep {
                runner.stop.cancel();
            }
            keep
        });
        let mut start = Vec::new();
        for (config, script) in wanted.scripts {
            let key = (TrackerKind::Script, config.name.clone());
            let up = current.get(&key).copied().unwrap_or(true);
            next.insert(key, up);
            if !self.scripts.contains_key(&config.name) {
                start.push((config, script, up));
            }
        }
        // Proxy watchers are cheap: restart them all, so a proxy a reload replaced is followed.
        self.proxy_watchers.cancel();
        self.proxy_watchers = self.cancel.child_token();
        let mut watch = Vec::new();
        for name in wanted.proxies {
            let Some(mut availability) = balancer.and_then(|b| b.availability(&name)) else {
                next.insert((TrackerKind::Proxy, name), false);
                continue;
            };
            next.insert((TrackerKind::Proxy, name.clone()), *availability.borrow_and_update());
            watch.push((name, availability));
        }
        self.status.send_if_modified(|status| std::mem::replace(status, next) != *status);

        for (config, script, up) in start {
            let stop = self.cancel.child_token();
            self.tasks.spawn(run_script(config.clone(), script, up, self.status.clone(), stop.clone()));
            self.scripts.insert(config.name.clone(), ScriptRunner { config, stop });
        }
        for (name, availability) in watch {
            self.tasks.spawn(watch_proxy(name, availability, self.status.clone(), self.proxy_watchers.clone()));
        }
    }
}

/// Follows one proxy's availability (listener bound, a server usable).
async fn watch_proxy(
    name: String,
    mut availability: watch::Receiver<bool>,
    status: watch::Sender<TrackerStatus>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = availability.changed() => if changed.is_err() { return },
        }
        let up = *availability.borrow_and_update();
        info!(proxy = %name, available = up, "proxy availability changed");
        set(&status, (TrackerKind::Proxy, name.clone()), up);
    }
}

/// Reads every tracked interface's link state from the kernel again.
async fn resync_links(status: &watch::Sender<TrackerStatus>, netlink: &Netlink) {
    let tracked: Vec<String> =
        status.borrow().keys().filter(|(kind, _)| *kind == TrackerKind::Interface).map(|(_, name)| name.clone()).collect();
    warn!(interfaces = tracked.len(), "link notifications were lost (netlink overrun): reading every tracked interface again");
    for name in tracked {
        let up = netlink.interface(&name).await.is_ok_and(|interface| interface.up);
        set(status, (TrackerKind::Interface, name), up);
    }
}

/// Records a tracked object's status; objects nobody tracks are ignored, and only a change
/// wakes the drivers.
fn set(status: &watch::Sender<TrackerStatus>, key: TrackerKey, up: bool) {
    status.send_if_modified(|map| match map.get_mut(&key) {
        Some(current) if *current != up => {
            *current = up;
            true
        }
        _ => false,
    });
}

/// Runs a track script every `interval`, debounced by rise/fall, starting from `initial`. The
/// first run is immediate, so a failing check is known before the first election ends.
async fn run_script(
    config: VrrpScript,
    script: Script,
    initial: bool,
    status: watch::Sender<TrackerStatus>,
    stop: CancellationToken,
) {
    let mut health = RiseFall::new(config.rise, config.fall, initial);
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = async { ticker.tick().await; script.run(&[], config.timeout).await } => outcome,
        };
        if let Some(up) = health.record(outcome.is_success()) {
            info!(script = %config.name, up, ?outcome, "track script changed state");
            set(&status, (TrackerKind::Script, config.name.clone()), up);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untracked_objects_are_ignored_and_only_changes_notify() {
        let (sender, mut receiver) = watch::channel(TrackerStatus::from([((TrackerKind::Interface, "eth0".into()), true)]));
        receiver.borrow_and_update();
        set(&sender, (TrackerKind::Interface, "veth42".into()), false);
        assert!(!receiver.has_changed().unwrap(), "an interface nobody tracks");
        set(&sender, (TrackerKind::Interface, "eth0".into()), true);
        assert!(!receiver.has_changed().unwrap(), "no change");
        set(&sender, (TrackerKind::Interface, "eth0".into()), false);
        assert!(receiver.has_changed().unwrap());
        assert_eq!(receiver.borrow_and_update().len(), 1);
    }
}
