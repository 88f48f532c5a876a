//! Every tracked object's status in one watched map: track scripts (their runners live here),
//! interfaces (the link monitor), proxies (the balancer's availability), processes
//! ([`process`]: a /proc scan) and files ([`file`]: a number). Sources write into
//! the map; each VRRP driver watches it and brings its instances' trackers in line. A map holds
//! the latest state, so a driver started or reloaded later reads what is known, and a burst of
//! changes costs a driver one wake-up, not one per event.
//!
//! Only objects some instance uses are in the map: the link monitor's news about any other
//! interface is dropped on arrival, so nothing grows with the host's interface churn.

pub mod file;
pub mod process;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt;
use ha_common::config::{TrackFile, TrackProcess, VrrpScript};
use ha_common::rise_fall::RiseFall;
use proxy::Balancer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};
use vrrp_core::track::{Reading, TrackerKind};

use crate::hooks::script::Script;
use crate::vrrp::net::link::{self, LinkEvent, Netlink};
use crate::vrrp::net::NetError;

/// A tracked object: its kind and name.
pub type TrackerKey = (TrackerKind, String);

/// The last known reading (up or not, or a file's number) of every tracked object in use.
pub type TrackerStatus = HashMap<TrackerKey, Reading>;

/// What a configuration tracks.
#[derive(Debug, Default)]
pub struct Wanted {
    /// Interfaces VRRP runs on and `track_interface` names.
    pub interfaces: BTreeSet<String>,
    /// Track scripts, parsed and checked.
    pub scripts: Vec<(VrrpScript, Script)>,
    /// `track_proxy` names.
    pub proxies: BTreeSet<String>,
    /// Process trackers some instance uses.
    pub processes: Vec<TrackProcess>,
    /// File trackers some instance uses, checked and initialised.
    pub files: Vec<TrackFile>,
    /// Instances in a sync group: their drivers report whether each is in FAULT by its own
    /// trackers.
    pub sync_members: BTreeSet<String>,
}

/// The link states the monitor hears while `apply` reads the links, laid over those reads so
/// a change between a read and the new map taking effect is not lost; and the interfaces being
/// read, which a netlink overrun meanwhile reads again (the map may not hold them yet).
#[derive(Default)]
struct LinksDuringApply {
    /// `None` outside `apply`.
    heard: Option<HashMap<String, bool>>,
    reading: BTreeSet<String>,
}

impl LinksDuringApply {
    fn record(&mut self, name: &str, up: bool) {
        if let Some(heard) = self.heard.as_mut().filter(|_| self.reading.contains(name)) {
            heard.insert(name.to_owned(), up);
        }
    }
}

fn lock(links: &Mutex<LinksDuringApply>) -> std::sync::MutexGuard<'_, LinksDuringApply> {
    links.lock().unwrap_or_else(|p| p.into_inner())
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
    /// The process scanner's trackers and its stop.
    processes: (Vec<TrackProcess>, CancellationToken),
    files: HashMap<String, (TrackFile, CancellationToken)>,
    /// What the link monitor and `apply` share (see [`LinksDuringApply`]).
    links_heard: Arc<Mutex<LinksDuringApply>>,
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
            processes: (Vec::new(), cancel.child_token()),
            files: HashMap::new(),
            links_heard: Arc::default(),
            tasks,
            cancel,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<TrackerStatus> {
        self.status.subscribe()
    }

    /// Where drivers report their sync group members' own FAULT ([`report_sync_member`]).
    pub fn reporter(&self) -> watch::Sender<TrackerStatus> {
        self.status.clone()
    }

    /// Starts following kernel link changes. When the kernel had to drop notifications (the
    /// socket's buffer overran under a flood of link changes), every tracked interface is read
    /// again, so none stays at a state it left.
    pub fn start_link_monitor(&self, netlink: Netlink) -> Result<(), NetError> {
        let mut stream = Box::pin(link::link_events()?);
        let status = self.status.clone();
        let cancel = self.cancel.clone();
        let heard = Arc::clone(&self.links_heard);
        self.tasks.spawn(async move {
            loop {
                let event = tokio::select! {
                    () = cancel.cancelled() => return,
                    event = stream.next() => event,
                };
                match event {
                    Some(LinkEvent::Changed { name, up }) => {
                        lock(&heard).record(&name, up);
                        set(&status, (TrackerKind::Interface, name), Reading::Up(up));
                    }
                    Some(LinkEvent::Overrun) => resync_links(&status, &netlink, &heard).await,
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
        *lock(&self.links_heard) = LinksDuringApply { heard: Some(HashMap::new()), reading: wanted.interfaces.clone() };
        let mut links = Vec::new();
        for name in &wanted.interfaces {
            // What was heard of it before this read is older than the read.
            lock(&self.links_heard).heard.as_mut().map(|heard| heard.remove(name));
            let up = match netlink.interface(name).await {
                Ok(interface) => interface.up,
                Err(e) => {
                    warn!(interface = %name, error = %e, "tracked interface is down until it appears");
                    false
                }
            };
            links.push((name.clone(), up));
        }
        let scanned = if wanted.processes == self.processes.0 || wanted.processes.is_empty() {
            None
        } else {
            Some(scan_processes(wanted.processes.clone()).await)
        };
        let mut file_readings = Vec::new();
        for f in &wanted.files {
            if !self.files.get(&f.name).is_some_and(|(running, _)| running == f) {
                let init = f.clone();
                match tokio::task::spawn_blocking(move || file::initialise(&init)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!(error = %e, "init_file failed"),
                    Err(e) => warn!(file = %f.name, error = %e, "init_file failed"),
                }
                file_readings.push(read_file(f).await);
            }
        }
        // From here on nothing awaits: no source can report between reading the map and
        // replacing it, and every source starts after its key is in the map. A link change
        // heard since the reads above is newer than what they returned.
        let heard = std::mem::take(&mut *lock(&self.links_heard)).heard.unwrap_or_default();
        let current = self.status.borrow().clone();
        let mut next: TrackerStatus = links
            .into_iter()
            .map(|(name, up)| {
                let up = heard.get(&name).copied().unwrap_or(up);
                ((TrackerKind::Interface, name), Reading::Up(up))
            })
            .collect();
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
            let up = current.get(&key).is_none_or(|r| *r != Reading::Up(false));
            next.insert(key, Reading::Up(up));
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
                next.insert((TrackerKind::Proxy, name), Reading::Up(false));
                continue;
            };
            next.insert((TrackerKind::Proxy, name.clone()), Reading::Up(*availability.borrow_and_update()));
            watch.push((name, availability));
        }
        // Sync group members: what their drivers last reported (up until they do).
        for name in wanted.sync_members {
            let key = (TrackerKind::SyncPeer, name);
            let reading = current.get(&key).copied().unwrap_or(Reading::Up(true));
            next.insert(key, reading);
        }
        // Processes: one scanner for all, restarted from a fresh scan when the set changed.
        let mut scanner = None;
        match scanned {
            Some(counts) => {
                self.processes.1.cancel();
                let stop = self.cancel.child_token();
                let states: Vec<bool> = wanted.processes.iter().zip(&counts).map(|(p, &n)| process::quorum(p, n)).collect();
                for (p, up) in wanted.processes.iter().zip(&states) {
                    next.insert((TrackerKind::Process, p.name.clone()), Reading::Up(*up));
                }
                self.processes = (wanted.processes.clone(), stop.clone());
                scanner = Some((wanted.processes, states, stop));
            }
            None if wanted.processes.is_empty() => {
                self.processes.1.cancel();
                self.processes.0.clear();
            }
            None => {
                for p in &wanted.processes {
                    let key = (TrackerKind::Process, p.name.clone());
                    let reading = current.get(&key).copied().unwrap_or(Reading::Up(false));
                    next.insert(key, reading);
                }
            }
        }
        // Files: a poller each; one whose definition changed starts over from a fresh read.
        self.files.retain(|name, (running, stop)| {
            let keep = wanted.files.iter().any(|f| &f.name == name && f == running);
            if !keep {
                stop.cancel();
            }
            keep
        });
        let mut pollers = Vec::new();
        for f in wanted.files {
            let key = (TrackerKind::File, f.name.clone());
            if self.files.contains_key(&f.name) {
                next.insert(key.clone(), current.get(&key).copied().unwrap_or(Reading::Value(0)));
                continue;
            }
            let Some(pos) = file_readings.iter().position(|(name, _, _)| *name == f.name) else { continue };
            let (_, stamp, value) = file_readings.swap_remove(pos);
            next.insert(key, Reading::Value(value));
            let stop = self.cancel.child_token();
            self.files.insert(f.name.clone(), (f.clone(), stop.clone()));
            pollers.push((f, stamp, value, stop));
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
        if let Some((processes, states, stop)) = scanner {
            self.tasks.spawn(run_process_scanner(processes, states, self.status.clone(), stop));
        }
        for (f, stamp, value, stop) in pollers {
            self.tasks.spawn(poll_file(f, stamp, value, self.status.clone(), stop));
        }
    }
}

/// One scan of /proc on a blocking thread; a failed scan (no /proc) counts nothing.
async fn scan_processes(processes: Vec<TrackProcess>) -> Vec<u32> {
    let count = processes.len();
    let started = Instant::now();
    let scanned = tokio::task::spawn_blocking(move || process::scan(Path::new("/proc"), &processes)).await;
    let took = started.elapsed();
    if took > process::SCAN_INTERVAL / 2 {
        warn!(took_ms = took.as_millis() as u64, "scanning /proc for tracked processes is slow");
    }
    match scanned {
        Ok(Ok(counts)) => counts,
        Ok(Err(e)) => {
            error!(error = %e, "cannot read /proc: tracked processes count as not running");
            vec![0; count]
        }
        Err(e) => {
            error!(error = %e, "the /proc scan failed: tracked processes count as not running");
            vec![0; count]
        }
    }
}

/// Scans /proc every [`process::SCAN_INTERVAL`] (sooner when a delayed change falls due) and
/// reports each tracker's quorum, after its `fork_delay` or `terminate_delay`.
async fn run_process_scanner(
    processes: Vec<TrackProcess>,
    states: Vec<bool>,
    status: watch::Sender<TrackerStatus>,
    stop: CancellationToken,
) {
    let mut delayed: Vec<process::Delayed> = states.into_iter().map(process::Delayed::new).collect();
    loop {
        let due = processes
            .iter()
            .zip(&delayed)
            .filter_map(|(p, d)| d.due(p.fork_delay, p.terminate_delay))
            .min()
            .map_or(process::SCAN_INTERVAL, |at| at.saturating_duration_since(Instant::now()).min(process::SCAN_INTERVAL));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(due) => {}
        }
        let counts = tokio::select! {
            () = stop.cancelled() => return,
            counts = scan_processes(processes.clone()) => counts,
        };
        let now = Instant::now();
        for ((p, d), count) in processes.iter().zip(&mut delayed).zip(counts) {
            if let Some(up) = d.observe(now, process::quorum(p, count), p.fork_delay, p.terminate_delay) {
                info!(process = %p.name, running = count, quorum = p.quorum, up, "tracked process quorum {}", if up { "gained" } else { "lost" });
                set(&status, (TrackerKind::Process, p.name.clone()), Reading::Up(up));
            }
        }
    }
}

/// Reads a tracked file on a blocking thread: its name, version and value (0 when missing,
/// unreadable or not a number, said in the log).
async fn read_file(f: &TrackFile) -> (String, file::Stamp, i64) {
    let path = f.path.clone();
    let read = tokio::task::spawn_blocking(move || (file::stamp(&path), file::read(&path))).await;
    let (stamp, reading) = match read {
        Ok(read) => read,
        Err(e) => (file::Stamp::default(), file::FileReading::Unreadable(e.to_string())),
    };
    match &reading {
        file::FileReading::Value(_) => {}
        file::FileReading::Missing => info!(file = %f.name, path = %f.path.display(), "tracked file is missing: its value is 0"),
        file::FileReading::Garbage(text) => {
            warn!(file = %f.name, path = %f.path.display(), content = %text, "tracked file does not hold a number: its value is 0")
        }
        file::FileReading::Unreadable(e) => {
            warn!(file = %f.name, path = %f.path.display(), error = %e, "tracked file cannot be read: its value is 0")
        }
    }
    (f.name.clone(), stamp, reading.value())
}

/// Reads the file again whenever its metadata changes.
async fn poll_file(
    f: TrackFile,
    mut stamp: file::Stamp,
    mut value: i64,
    status: watch::Sender<TrackerStatus>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(file::POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let path = f.path.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || file::stamp(&path)).await else { continue };
        if now == stamp {
            continue;
        }
        let (_, read_stamp, read_value) = read_file(&f).await;
        stamp = read_stamp;
        if read_value != value {
            info!(file = %f.name, value = read_value, was = value, "tracked file changed");
            value = read_value;
            set(&status, (TrackerKind::File, f.name.clone()), Reading::Value(value));
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
        set(&status, (TrackerKind::Proxy, name.clone()), Reading::Up(up));
    }
}

/// Reads every tracked interface's link state from the kernel again: those in the map, and
/// those an `apply` under way is reading (whose reads may predate what the overrun lost).
async fn resync_links(status: &watch::Sender<TrackerStatus>, netlink: &Netlink, during_apply: &Mutex<LinksDuringApply>) {
    let mut tracked: BTreeSet<String> =
        status.borrow().keys().filter(|(kind, _)| *kind == TrackerKind::Interface).map(|(_, name)| name.clone()).collect();
    tracked.extend(lock(during_apply).reading.iter().cloned());
    warn!(interfaces = tracked.len(), "link notifications were lost (netlink overrun): reading every tracked interface again");
    for name in tracked {
        let up = netlink.interface(&name).await.is_ok_and(|interface| interface.up);
        lock(during_apply).record(&name, up);
        set(status, (TrackerKind::Interface, name), Reading::Up(up));
    }
}

/// A driver's report on a sync group member: `in_own_fault` is whether its own trackers hold
/// it in FAULT (a peer's FAULT is not passed back). Never blocks: a driver that stops
/// reporting leaves its last report, and no driver waits on another.
pub fn report_sync_member(status: &watch::Sender<TrackerStatus>, instance: &str, in_own_fault: bool) {
    set(status, (TrackerKind::SyncPeer, instance.to_owned()), Reading::Up(!in_own_fault));
}

/// Records a tracked object's status; objects nobody tracks are ignored, and only a change
/// wakes the drivers.
fn set(status: &watch::Sender<TrackerStatus>, key: TrackerKey, reading: Reading) {
    status.send_if_modified(|map| match map.get_mut(&key) {
        Some(current) if *current != reading => {
            *current = reading;
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
            set(&status, (TrackerKind::Script, config.name.clone()), Reading::Up(up));
        }
    }
}

#[cfg(test)]
mod tests {
    /// While `apply` reads the links, what the monitor hears of those links (and only those)
    /// is kept for it; outside `apply` nothing is kept.
    #[test]
    fn link_changes_heard_during_apply_are_kept_for_the_links_it_reads() {
        let mut links = super::LinksDuringApply::default();
        links.record("eth1", false);
        assert!(links.heard.is_none());
        links = super::LinksDuringApply { heard: Some(Default::default()), reading: ["eth1".to_owned()].into() };
        links.record("eth1", false);
        links.record("veth-other", true);
        assert_eq!(links.heard.as_ref().map(|h| h.get("eth1").copied()), Some(Some(false)));
        assert_eq!(links.heard.as_ref().map(|h| h.len()), Some(1));
    }

    use super::*;

    #[test]
    fn untracked_objects_are_ignored_and_only_changes_notify() {
        let (sender, mut receiver) =
            watch::channel(TrackerStatus::from([((TrackerKind::Interface, "eth0".into()), Reading::Up(true))]));
        receiver.borrow_and_update();
        set(&sender, (TrackerKind::Interface, "veth42".into()), Reading::Up(false));
        assert!(!receiver.has_changed().unwrap(), "an interface nobody tracks");
        set(&sender, (TrackerKind::Interface, "eth0".into()), Reading::Up(true));
        assert!(!receiver.has_changed().unwrap(), "no change");
        set(&sender, (TrackerKind::Interface, "eth0".into()), Reading::Up(false));
        assert!(receiver.has_changed().unwrap());
        assert_eq!(receiver.borrow_and_update().len(), 1);
    }
}
