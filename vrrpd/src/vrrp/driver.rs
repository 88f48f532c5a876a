//! The VRRP driver of one interface: owns the instances configured on it, their sockets, and
//! carries out what they decide (adverts, VIPs, gratuitous ARP, notify). One task per
//! interface, all on the VRRP runtime, which nothing else shares.
//!
//! Giving up a VIP is asynchronous: the driver announces the release, keeps receiving and
//! sending adverts for every instance, and removes the address when the balancer says the
//! sessions accepted on it are gone (each wait bounded: [`vip::release`]).
//!
//! The interface may be missing or without an address at start, or be deleted and created
//! again: the instances are in FAULT while the driver has no [`Port`] on it, and the driver
//! tries again every [`TICK`].

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use ha_common::config::{IpPrefix, Vip, VrrpInstance};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};
use vrrp_core::counters::{DropCounters, DropReason};
use vrrp_core::instance::{Action, Instance, InstanceConfig, Reason, State};
use vrrp_core::packet::{MULTICAST_GROUP, MULTICAST_GROUP_V6};
use vrrp_core::receive::{receive, receive_message, Dropped, Received};
use vrrp_core::track::{Reading, Tracker, TrackerKind};

use super::announce::Announcer;
use super::convert;
use super::group::SyncGroups;
use super::net::link::Netlink;
use super::placement;
use super::port::{Port, PortTrouble};
use super::vip::{self, Released, VipEvent, VipEvents};
use crate::hooks::notify::{state_word, Notifier, NotifyScripts};
use crate::stats::events::EventKind;
use crate::stats::{InstanceVips, StatusBoard};
use crate::trackers::TrackerStatus;

/// What every driver shares with the rest of the daemon.
#[derive(Clone)]
pub struct DriverContext {
    pub netlink: Netlink,
    pub notifier: Notifier,
    pub board: StatusBoard,
    /// Where VIP claims and releases go; `None` when no balancer serves sessions.
    pub vip_events: Option<VipEvents>,
    pub trackers: watch::Receiver<TrackerStatus>,
    /// Where this driver reports its sync group members' own FAULT.
    pub sync_reports: watch::Sender<TrackerStatus>,
    /// The sync groups' states as a whole, for their notify scripts.
    pub groups: SyncGroups,
}

/// What one instance runs: its validated configuration and its notify scripts.
#[derive(Debug, PartialEq)]
pub struct InstanceSpec {
    pub config: VrrpInstance,
    pub notify: Arc<NotifyScripts>,
}

/// The instances of one interface.
#[derive(Debug)]
pub struct DriverSpec {
    pub interface: String,
    pub instances: Vec<Arc<InstanceSpec>>,
    /// VIPs that instances of other interfaces put on this one (`dev`): the start's clean-up of
    /// addresses with a vrrpd label leaves them to their own driver.
    pub guests: Vec<IpPrefix>,
}

pub enum DriverCommand {
    /// Replace the instance set: unchanged instances keep their state.
    Reload(DriverSpec),
    /// Resign (priority 0), drop the VIPs, and end the task.
    Shutdown { done: oneshot::Sender<()> },
    /// The operator's `resign` (`true`) or `resume` (`false`) of one instance.
    Resign {
        instance: String,
        resign: bool,
        /// What changed, or `None` when no instance has that name.
        reply: oneshot::Sender<Option<String>>,
    },
}

/// Adverts are at most 20 + 16 + 4 x 255 bytes; anything longer is cut here and then fails the
/// length check.
const RECEIVE_BUFFER: usize = 2048;
/// Longest time the status board lags behind counters that change without a state change.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(200);
/// At most one log line per drop reason per interface in this interval.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The loop wakes at least this often: to retry a missing interface, and to show it is alive
/// (the systemd watchdog is pinged only while every driver keeps beating).
pub const TICK: Duration = Duration::from_secs(1);
/// A port's interface index is looked up again every this many ticks.
const INDEX_CHECK_TICKS: u32 = 5;

/// A VIP release under way: the addresses go once its sessions are (or `None`: the wait ran out).
type PendingRelease = Pin<Box<dyn Future<Output = ReleaseDone> + Send + Sync>>;

/// A VIP release whose wait is over, and how far it got.
struct ReleaseDone {
    instance: String,
    vips: Vec<Vip>,
    outcome: Released,
}

pub struct Driver {
    /// The interface's name; `port` is the hold on it while it is usable.
    name: String,
    port: Option<Port>,
    trouble: PortTrouble,
    /// The own interface's link state as last seen in the tracker map.
    link_up: bool,
    context: DriverContext,
    specs: Vec<Arc<InstanceSpec>>,
    instances: Vec<Instance>,
    unattributed: DropCounters,
    releases: FuturesUnordered<PendingRelease>,
    published_at: Instant,
    drop_log: HashMap<DropReason, (Instant, u64)>,
    /// Announces new masters' VIPs, pacing gratuitous ARPs when `garp_interval` is set.
    announcer: Announcer,
}

impl Driver {
    /// Opens the interface (removing VIPs a crashed run left behind) and starts every
    /// instance: in FAULT when the interface is missing or has no IPv4 address.
    pub async fn start(spec: DriverSpec, context: DriverContext) -> Self {
        let mut driver = Driver {
            name: spec.interface.clone(),
            port: None,
            trouble: PortTrouble::default(),
            link_up: false,
            context,
            specs: Vec::new(),
            instances: Vec::new(),
            unattributed: DropCounters::default(),
            releases: FuturesUnordered::new(),
            published_at: Instant::now(),
            drop_log: HashMap::new(),
            announcer: Announcer::default(),
        };
        let unicast_src_ip = spec.instances.iter().find_map(|s| s.config.unicast_src_ip);
        let vips: Vec<Vip> = spec.instances.iter().flat_map(|s| s.config.virtual_ipaddress.iter().cloned()).collect();
        let prefixes: Vec<IpPrefix> = vips.iter().map(|v| v.prefix).collect();
        let own: Vec<IpPrefix> = vips.iter().filter(|v| placement::on_own(v, &driver.name)).map(|v| v.prefix).collect();
        let ipv6 = placement::ipv6_side(&driver.name, spec.instances.iter().map(|s| &s.config));
        match Port::open(&driver.context.netlink, &driver.name, unicast_src_ip, &prefixes, ipv6).await {
            Ok(port) => {
                match driver.context.netlink.remove_stale_vips(&port.interface, &own, Some(&spec.guests)).await {
                    Ok(removed) => removed
                        .iter()
                        .for_each(|vip| info!(interface = %driver.name, %vip, "removed a VIP left by an earlier run")),
                    Err(e) => warn!(interface = %driver.name, error = %e, "could not look for VIPs an earlier run left"),
                }
                driver.port = Some(port);
            }
            Err(e) => driver.trouble.report(&driver.name, &e),
        }
        placement::remove_stale_elsewhere(&driver.context.netlink, &driver.name, &vips).await;
        let status = driver.context.trackers.borrow_and_update().clone();
        driver.link_up = status.get(&(TrackerKind::Interface, driver.name.clone())) != Some(&Reading::Up(false));
        for spec in spec.instances {
            driver.add_instance(spec, &status);
        }
        driver.execute_actions().await;
        driver.publish();
        driver
    }

    /// Opens the port when there is none, or anew when the interface was created again (a new
    /// index) or `reopen` says its socket failed; then brings the instances in line (their
    /// source address, FAULT or not).
    async fn reattach(&mut self, reopen: bool) {
        let index = self.port.as_ref().map(|p| p.interface.index);
        let unicast_src_ip = self.specs.iter().find_map(|s| s.config.unicast_src_ip);
        let vips: Vec<IpPrefix> = self.specs.iter().flat_map(|s| s.config.virtual_ipaddress.iter().map(|v| v.prefix)).collect();
        if let Some(port) = self.port.as_ref().filter(|_| !reopen) {
            match self.context.netlink.interface(&self.name).await {
                Ok(now) if now.index == port.interface.index => return,
                Ok(now) => {
                    info!(interface = %self.name, was = port.interface.index, now = now.index, "interface was created again")
                }
                Err(_) => {}
            }
        }
        let ipv6 = placement::ipv6_side(&self.name, self.specs.iter().map(|s| &s.config));
        let opened = match Port::open(&self.context.netlink, &self.name, unicast_src_ip, &vips, ipv6).await {
            Ok(port) => {
                self.trouble.clear();
                Some(port)
            }
            Err(e) => {
                self.trouble.report(&self.name, &e);
                None
            }
        };
        if opened.is_none() && index.is_none() {
            return;
        }
        self.port = opened;
        let now = Instant::now();
        let status = self.context.trackers.borrow().clone();
        for i in 0..self.instances.len() {
            let config = self.instance_config(&self.specs[i], &status);
            self.instances[i].reconfigure(now, config);
        }
        self.sync_trackers(&status);
    }

    /// Tells the status board where every instance stands.
    fn publish(&mut self) {
        self.report_sync_members();
        self.published_at = Instant::now();
        // The addresses alone: the status table and its JSON stay as they were (`vrrpd check`
        // shows each VIP's dev, scope and label).
        let text = |vips: &mut dyn Iterator<Item = &Vip>| vips.map(|v| v.prefix.to_string()).collect::<Vec<_>>();
        let vips: Vec<InstanceVips> = self
            .specs
            .iter()
            .map(|s| {
                let all = &s.config.virtual_ipaddress;
                (text(&mut all.iter().filter(|v| !v.excluded)), text(&mut all.iter().filter(|v| v.excluded)))
            })
            .collect();
        self.context.board.publish(&self.name, &self.instances, &vips, &self.unattributed);
        self.context.board.beat(&self.name);
    }

    fn resign(&mut self, name: &str, resign: bool) -> Option<String> {
        let now = Instant::now();
        let instance = self.instances.iter_mut().find(|i| i.name() == name)?;
        let changed = if resign { instance.resign(now) } else { instance.resume(now) };
        let verb = if resign { "resigned" } else { "resumed" };
        info!(instance = name, changed, state = %instance.state(), "{verb} by operator");
        Some(match (resign, changed) {
            (true, true) => format!("{name}: resigned; state {}; stays BACKUP until `resume {name}`", instance.state()),
            (true, false) => format!("{name}: already resigned"),
            (false, true) => format!("{name}: resumed; takes part in elections again"),
            (false, false) => format!("{name}: was not resigned"),
        })
    }

    /// What the core needs for `spec`: its trackers (own interface first) with their last
    /// known status.
    fn instance_config(&self, spec: &InstanceSpec, status: &TrackerStatus) -> InstanceConfig {
        let config = &spec.config;
        let known = |kind, name: &str| status.get(&(kind, name.to_owned())).copied().unwrap_or(Reading::Up(true));
        // The instance's own interface is always tracked: no carrier (or no usable interface at
        // all), no VRRP (FAULT).
        let own = &self.name;
        let up = self.port.is_some() && known(TrackerKind::Interface, own) != Reading::Up(false);
        let mut trackers = vec![Tracker { up, ..Tracker::new(TrackerKind::Interface, own, 0) }];
        for (kind, tracks) in [
            (TrackerKind::Interface, &config.track_interface),
            (TrackerKind::Script, &config.track_script),
            (TrackerKind::Proxy, &config.track_proxy),
            (TrackerKind::Process, &config.track_process),
            (TrackerKind::File, &config.track_file),
        ] {
            trackers.extend(tracks.iter().map(|t| {
                let mut tracker = Tracker { reverse: t.reverse, ..Tracker::new(kind, &t.name, t.weight) };
                let reading = match (kind, known(kind, &t.name)) {
                    (TrackerKind::File, Reading::Up(_)) => Reading::Value(0),
                    (_, reading) => reading,
                };
                tracker.apply_reading(reading);
                tracker
            }));
        }
        // keepalived tracks the interfaces its VIPs go on: one down or missing, FAULT (unless
        // `track_interface` names it with a weight, which then decides, or every VIP there says
        // `no_track`).
        for dev in placement::elsewhere(config.virtual_ipaddress.iter().filter(|v| !v.no_track), own).into_keys() {
            if !config.track_interface.iter().any(|t| t.name == dev) {
                let up = known(TrackerKind::Interface, dev) != Reading::Up(false);
                trackers.push(Tracker { up, ..Tracker::new(TrackerKind::Interface, dev, 0) });
            }
        }
        // Sync group peers: FAULT while one of them is in FAULT by its own trackers.
        trackers.extend(config.sync_peers.iter().map(|peer| Tracker {
            up: known(TrackerKind::SyncPeer, peer) != Reading::Up(false),
            ..Tracker::new(TrackerKind::SyncPeer, peer, 0)
        }));
        let source: IpAddr = if config.is_ipv6() {
            // RFC 5798 section 5.1.2.1: IPv6 adverts leave from the link-local address.
            self.port.as_ref().and_then(|p| p.v6.as_ref()).map_or(Ipv6Addr::UNSPECIFIED, |p| p.link_local).into()
        } else {
            config.unicast_src_ip.unwrap_or(self.port.as_ref().map_or(Ipv4Addr::UNSPECIFIED, |p| p.source)).into()
        };
        convert::instance_config(config, source, trackers)
    }

    fn add_instance(&mut self, spec: Arc<InstanceSpec>, status: &TrackerStatus) {
        let mut instance = Instance::new(self.instance_config(&spec, status));
        instance.startup(Instant::now());
        info!(
            instance = %spec.config.name, vrid = spec.config.vrid, interface = %self.name,
            priority = instance.priority(), state = %instance.state(), "instance started"
        );
        self.specs.push(spec);
        self.instances.push(instance);
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<DriverCommand>) {
        let mut buf = vec![0u8; RECEIVE_BUFFER];
        let mut buf6 = vec![0u8; RECEIVE_BUFFER];
        let mut tick = tokio::time::interval(TICK);
        let mut ticks: u32 = 0;
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut accepted = false;
            let deadline = self.instances.iter().filter_map(Instance::poll_timeout).min();
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(DriverCommand::Reload(spec)) => self.reload(spec).await,
                    Some(DriverCommand::Resign { instance, resign, reply }) => {
                        let _ = reply.send(self.resign(&instance, resign));
                    }
                    Some(DriverCommand::Shutdown { done }) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                changed = self.context.trackers.changed() => match changed {
                    Ok(()) => self.trackers_changed().await,
                    // The daemon is going away; the shutdown command follows.
                    Err(_) => std::future::pending::<()>().await,
                },
                _ = tick.tick() => {
                    // A raw socket on a deleted interface goes silent rather than failing, and
                    // a delete and re-create can reach the tracker map as no change at all:
                    // the interface's index is checked every few ticks (a netlink lookup),
                    // every tick while there is no port.
                    ticks = ticks.wrapping_add(1);
                    if self.port.is_none() || ticks % INDEX_CHECK_TICKS == 0 {
                        self.reattach(false).await;
                    }
                    self.context.board.beat(&self.name);
                }
                () = timer => {
                    let now = Instant::now();
                    for instance in &mut self.instances {
                        if instance.poll_timeout().is_some_and(|at| at <= now) {
                            instance.handle_timeout(now);
                        }
                    }
                }
                received = receive_on(self.port.as_ref(), &mut buf) => match received {
                    Ok(len) => {
                        let now = Instant::now();
                        match receive(now, &buf[..len], &mut self.instances, &mut self.unattributed) {
                            Ok(_) => accepted = true,
                            Err(dropped) => self.log_drop(now, dropped),
                        }
                    }
                    Err(e) => {
                        // The interface went away under the socket (ENODEV and the like): let
                        // the port go; the tick opens it again once the interface is back.
                        error!(interface = %self.name, error = %e, "receiving adverts failed; reopening the interface");
                        self.reattach(true).await;
                    }
                },
                received = receive_v6_on(self.port.as_ref(), &mut buf6) => match received {
                    Ok(r) => {
                        let now = Instant::now();
                        let message = Received {
                            source: r.source.into(),
                            destination: r.destination.into(),
                            ttl: r.hop_limit,
                            payload: &buf6[..r.len.min(buf6.len())],
                        };
                        match receive_message(now, message, &mut self.instances, &mut self.unattributed) {
                            Ok(_) => accepted = true,
                            Err(dropped) => self.log_drop(now, dropped),
                        }
                    }
                    Err(e) => {
                        error!(interface = %self.name, error = %e, "receiving IPv6 adverts failed; reopening the interface");
                        self.reattach(true).await;
                    }
                },
                Some(released) = self.releases.next(), if !self.releases.is_empty() => {
                    self.finish_release(released).await;
                }
            }
            // Counters of a flood of bad packets reach the stats page a few times a second,
            // not once per packet; accepted adverts (the master's, once a second) and anything
            // the instances did are published at once.
            let acted = self.execute_actions().await;
            if acted || accepted || self.published_at.elapsed() >= PUBLISH_INTERVAL {
                self.publish();
            }
        }
    }

    /// A change in the tracker map: the own interface coming up may be a new interface of the
    /// same name (deleted and created again), so the port is checked first.
    async fn trackers_changed(&mut self) {
        let status = self.context.trackers.borrow_and_update().clone();
        let link_up = status.get(&(TrackerKind::Interface, self.name.clone())) != Some(&Reading::Up(false));
        let came_up = link_up && !self.link_up;
        self.link_up = link_up;
        if came_up || self.port.is_none() {
            self.reattach(false).await;
        }
        self.sync_trackers(&status);
    }

    /// Brings every instance's trackers in line with the tracker map (and the port).
    fn sync_trackers(&mut self, status: &crate::trackers::TrackerStatus) {
        for ((kind, name), reading) in status {
            let reading = match reading {
                Reading::Up(up) => {
                    Reading::Up(*up && (*kind != TrackerKind::Interface || *name != self.name || self.port.is_some()))
                }
                value => *value,
            };
            self.set_tracker(*kind, name, reading);
        }
        if self.port.is_none() {
            self.set_tracker(TrackerKind::Interface, &self.name.clone(), Reading::Up(false));
        }
        self.report_sync_members();
    }

    /// Tells the other drivers whether each sync group member here is in FAULT by its own
    /// trackers (they hold their members in FAULT meanwhile).
    fn report_sync_members(&self) {
        for (spec, instance) in self.specs.iter().zip(&self.instances) {
            if !spec.config.sync_peers.is_empty() {
                let own_fault = instance.state() == State::Fault && instance.trackers().in_own_fault();
                crate::trackers::report_sync_member(&self.context.sync_reports, instance.name(), own_fault);
            }
        }
    }

    fn set_tracker(&mut self, kind: TrackerKind, name: &str, reading: Reading) {
        let now = Instant::now();
        for instance in &mut self.instances {
            let Some(index) = instance.trackers().find(kind, name) else { continue };
            let changes = instance.trackers().iter().nth(index).is_some_and(|tracker| match reading {
                Reading::Up(up) => tracker.up != up,
                Reading::Value(value) => tracker.value != value,
            });
            if changes {
                let before = instance.priority();
                instance.apply_tracker_reading(now, index, reading);
                let said = match reading {
                    Reading::Up(true) => "up".to_owned(),
                    Reading::Up(false) => "down".to_owned(),
                    Reading::Value(value) => format!("value {value}"),
                };
                info!(
                    instance = %instance.name(), tracker = %format!("{} {name}", kind.as_str()), reading = %said,
                    priority = instance.priority(), was = before, state = %instance.state(), "tracked object changed"
                );
                let message = format!(
                    "{} {name} {said}: priority {before} -> {}, {}",
                    kind.as_str(),
                    instance.priority(),
                    instance.state()
                );
                self.context.board.record(EventKind::Tracker, instance.name(), message);
            }
        }
    }

    /// Instances that keep their name and VRID are reconfigured in place, keeping their state
    /// (a MASTER stays MASTER; VIPs added or removed one by one); removed ones are shut down
    /// (so they resign and release their VIPs) before new ones start.
    async fn reload(&mut self, spec: DriverSpec) {
        let now = Instant::now();
        let status = self.context.trackers.borrow_and_update().clone();
        let mut old: Vec<(Arc<InstanceSpec>, Instance)> =
            std::mem::take(&mut self.specs).into_iter().zip(std::mem::take(&mut self.instances)).collect();
        let mut next: Vec<(Arc<InstanceSpec>, Arc<InstanceSpec>, Instance)> = Vec::new();
        let mut added = Vec::new();
        for new in spec.instances {
            let same_router = old.iter().position(|(o, _)| o.config.name == new.config.name && o.config.vrid == new.config.vrid);
            match same_router {
                Some(position) => {
                    let (previous, instance) = old.remove(position);
                    next.push((new, previous, instance));
                }
                None => added.push(new),
            }
        }
        for (old_spec, mut instance) in old {
            info!(instance = %old_spec.config.name, "instance removed by reload");
            instance.shutdown(now);
            while let Some(action) = instance.poll_action() {
                self.execute(&old_spec, action).await;
            }
        }
        for (new, previous, instance) in &mut next {
            if previous.config == new.config {
                continue;
            }
            if instance.state() == State::Master {
                self.change_vips(&previous.config, &new.config).await;
            }
            instance.reconfigure(now, self.instance_config(new, &status));
            info!(instance = %new.config.name, state = %instance.state(), priority = instance.priority(), "instance reconfigured in place");
        }
        (self.specs, self.instances) = next.into_iter().map(|(new, _, instance)| (new, instance)).unzip();
        for new in added {
            self.add_instance(new, &status);
        }
        // The map was read (and marked seen) above, after the reload replaced its readings (a
        // process tracker that now names another program, a proxy replaced): kept instances
        // must take them now, or they would wait for the next change.
        self.sync_trackers(&status);
        // An IPv6 VIP (of an IPv6 virtual router, or excluded from a VRRPv2 one's adverts) on a
        // port opened without IPv6 sockets: open it again, which also gives the instance its
        // link-local source address and the sender of its unsolicited NAs. A master added
        // such VIPs above with no sender to announce them: it announces them now.
        let ipv6 = placement::ipv6_side(&self.name, self.specs.iter().map(|s| &s.config));
        if self.port.as_ref().is_some_and(|p| p.lacks(ipv6)) {
            self.reattach(true).await;
            self.announce_ipv6_vips().await;
        }
    }

    /// Each master's IPv6 VIPs on this interface, announced once more (unsolicited NAs).
    async fn announce_ipv6_vips(&mut self) {
        let interval = self.garp_interval();
        for (spec, instance) in self.specs.iter().zip(&self.instances) {
            let ipv6: Vec<Vip> = spec
                .config
                .virtual_ipaddress
                .iter()
                .filter(|v| v.addr().is_ipv6() && placement::on_own(v, &self.name))
                .cloned()
                .collect();
            if instance.state() == State::Master && !ipv6.is_empty() {
                let (netlink, port) = (&self.context.netlink, self.port.as_ref());
                self.announcer
                    .announce(netlink, &self.name, port, &spec.config.name, &ipv6, spec.config.garp.master_repeat, interval)
                    .await;
            }
        }
    }

    /// A master's VIPs after a reload: removed ones are released (sessions first, then the
    /// addresses); new ones are added (the core re-announces them); kept addresses whose dev,
    /// label, scope or broadcast changed are removed from where they were and added anew at
    /// once (the address stays this host's: its sessions are not closed).
    async fn change_vips(&mut self, old: &VrrpInstance, new: &VrrpInstance) {
        let has = |list: &[Vip], vip: &Vip| list.iter().any(|v| v.addr() == vip.addr());
        let removed: Vec<Vip> = old.virtual_ipaddress.iter().filter(|v| !has(&new.virtual_ipaddress, v)).cloned().collect();
        let added: Vec<Vip> = new.virtual_ipaddress.iter().filter(|v| !has(&old.virtual_ipaddress, v)).cloned().collect();
        // Moving between virtual_ipaddress and virtual_ipaddress_excluded changes the adverts,
        // and no_track the FAULT rule, not where the address is.
        let placed = |v: &Vip| Vip { excluded: false, no_track: false, ..v.clone() };
        let moved: Vec<(&Vip, &Vip)> = old
            .virtual_ipaddress
            .iter()
            .filter_map(|o| new.virtual_ipaddress.iter().find(|n| n.addr() == o.addr() && placed(n) != placed(o)).map(|n| (o, n)))
            .collect();
        let advertised = |i: &VrrpInstance| {
            let mut addresses: Vec<IpAddr> = i.advertised_vips().map(Vip::addr).collect();
            addresses.sort_unstable();
            addresses
        };
        let advertised_changed = advertised(old) != advertised(new);
        if !removed.is_empty() {
            self.release(&new.name, removed);
        }
        for (from, to) in moved {
            self.remove_from_dev(from).await;
            self.claim(new, std::slice::from_ref(to)).await;
            let interval = self.garp_interval();
            let port = self.port.as_ref();
            self.announcer
                .announce(&self.context.netlink, &self.name, port, &new.name, std::slice::from_ref(to), 1, interval)
                .await;
        }
        if !added.is_empty() {
            self.claim(new, &added).await;
            // A change to the adverts' list makes the core announce every VIP; otherwise the
            // excluded VIPs added are announced here. IPv6 ones on a port without its NA
            // socket yet are announced once `reload` has opened it.
            let can_announce = |v: &Vip| v.addr().is_ipv4() || self.port.as_ref().is_none_or(|p| p.na.is_some());
            let excluded: Vec<Vip> = added.into_iter().filter(|v| v.excluded && can_announce(v)).collect();
            if !advertised_changed && !excluded.is_empty() {
                let (interval, port) = (self.garp_interval(), self.port.as_ref());
                self.announcer
                    .announce(&self.context.netlink, &self.name, port, &new.name, &excluded, new.garp.master_repeat, interval)
                    .await;
            }
        }
    }

    /// Resigns every instance and waits for the VIP releases to finish.
    async fn shutdown(&mut self) {
        let now = Instant::now();
        for instance in &mut self.instances {
            instance.shutdown(now);
        }
        self.execute_actions().await;
        while let Some(released) = self.releases.next().await {
            self.finish_release(released).await;
        }
    }

    /// Adds `vips`, each on its interface; sessions accepted on them are served again. A VIP
    /// whose interface is missing is not added: the instance is in FAULT by it meanwhile, or,
    /// with `no_track`, the VIP waits for the instance's next transition to MASTER (as in
    /// keepalived).
    async fn claim(&self, config: &VrrpInstance, vips: &[Vip]) {
        if let Some(events) = &self.context.vip_events {
            let _ = events.send(VipEvent::Claimed(addresses(vips)));
        }
        let Some(port) = &self.port else {
            return warn!(instance = %config.name, interface = %self.name, "no usable interface: VIPs not added");
        };
        for vip in vips {
            let dev = vip.dev_or(&self.name);
            let interface = match placement::interface_for(&self.context.netlink, &self.name, Some(&port.interface), vip).await {
                Ok(interface) => interface,
                Err(e) if vip.no_track => {
                    warn!(instance = %config.name, %vip, error = %e, "VIP not added: its interface is missing (no_track: added at the next transition to MASTER)");
                    continue;
                }
                Err(e) => {
                    error!(instance = %config.name, %vip, error = %e, "adding the VIP failed: its interface is missing");
                    continue;
                }
            };
            match self.context.netlink.add_vip(&interface, config.vrid, vip).await {
                Ok(()) => info!(instance = %config.name, %vip, interface = %dev, "VIP added"),
                Err(e) => error!(instance = %config.name, %vip, error = %e, "adding the VIP failed"),
            }
        }
    }

    /// Removes `vip` from its interface; without that interface there is nothing to remove:
    /// the address went with it.
    async fn remove_from_dev(&self, vip: &Vip) {
        let dev = vip.dev_or(&self.name);
        let port = self.port.as_ref().map(|p| &p.interface);
        let interface = match placement::interface_for(&self.context.netlink, &self.name, port, vip).await {
            Ok(interface) => interface,
            Err(e) => return debug!(%vip, error = %e, "no VIP to remove: its interface is missing"),
        };
        match self.context.netlink.remove_vip(&interface, vip.prefix).await {
            Ok(()) => info!(%vip, interface = %dev, "VIP removed"),
            Err(e) => error!(%vip, interface = %dev, error = %e, "removing the VIP failed"),
        }
    }

    /// Starts giving `vips` up. The clients of sessions accepted on them are moving to the new
    /// master, and their broker connections here must close now, or the broker holds their
    /// unacknowledged messages until the heartbeat expires. The FINs can only leave while this
    /// host still holds the VIPs: the balancer sends the clients theirs as it takes the
    /// release, and the addresses go when the sessions are gone, or when a wait runs out
    /// ([`vip::release`]); meanwhile the loop goes on.
    fn release(&mut self, instance: &str, vips: Vec<Vip>) {
        let events = self.context.vip_events.clone();
        let instance = instance.to_owned();
        self.releases.push(Box::pin(async move {
            let outcome = vip::release(events.as_ref(), addresses(&vips)).await;
            match outcome {
                Released::NoBalancer | Released::Closed(0) => {}
                Released::BalancerGone => warn!(%instance, "the balancer stopped before the sessions on the VIPs given up were closed"),
                Released::Closed(n) => info!(%instance, closed = n, "closed the sessions accepted on the VIPs given up"),
                Released::StillClosing => warn!(%instance, wait_ms = vip::RELEASE_DRAIN_WAIT.as_millis() as u64, "sessions on released VIPs still closing; removing the VIPs anyway"),
                Released::NotTaken => warn!(%instance, wait_ms = vip::RELEASE_TAKE_WAIT.as_millis() as u64, "the balancer did not take the release in time: removing the VIPs anyway, clients of their sessions may not have been told"),
            }
            ReleaseDone { instance, vips, outcome }
        }));
    }

    /// Removes the released addresses that no master instance holds now (one may have become
    /// master again while the sessions closed).
    async fn finish_release(&mut self, ReleaseDone { instance, vips, outcome }: ReleaseDone) {
        let sessions = match outcome {
            Released::NoBalancer => "no balancer on this host".to_owned(),
            Released::BalancerGone => "the balancer stopped before it answered".to_owned(),
            Released::Closed(n) => format!("{n} sessions accepted on them closed"),
            Released::StillClosing => {
                format!("sessions accepted on them still closing after {} ms", vip::RELEASE_DRAIN_WAIT.as_millis())
            }
            Released::NotTaken => {
                format!("the balancer had not taken the release after {} ms", vip::RELEASE_TAKE_WAIT.as_millis())
            }
        };
        let list: Vec<String> = vips.iter().map(ToString::to_string).collect();
        self.context.board.record(EventKind::Vip, instance, format!("VIPs {} released; {sessions}", list.join(", ")));
        let held: Vec<&Vip> = self
            .specs
            .iter()
            .zip(&self.instances)
            .filter(|(_, instance)| instance.state() == State::Master)
            .flat_map(|(spec, _)| spec.config.virtual_ipaddress.iter())
            .collect();
        let own = self.name.as_str();
        let gone: Vec<Vip> = vips.into_iter().filter(|v| !held.iter().any(|h| placement::same_place(h, v, own))).collect();
        for vip in &gone {
            self.remove_from_dev(vip).await;
        }
    }

    /// keepalived's garp_interval applies to an interface: the longest of its instances'.
    fn garp_interval(&self) -> Duration {
        self.specs.iter().map(|s| s.config.garp.interval).max().unwrap_or_default()
    }

    /// Carries out every pending action; returns whether there was any.
    async fn execute_actions(&mut self) -> bool {
        let mut any = false;
        for i in 0..self.instances.len() {
            while let Some(action) = self.instances[i].poll_action() {
                let spec = Arc::clone(&self.specs[i]);
                self.execute(&spec, action).await;
                any = true;
            }
        }
        any
    }

    async fn execute(&mut self, spec: &InstanceSpec, action: Action) {
        let config = &spec.config;
        match action {
            Action::SendAdvert(advert) => {
                // The socket is bound to the instance's source address, which VRRPv3's
                // checksum covers along with each destination.
                let Some(source) = self.instances.iter().find(|i| i.name() == config.name).map(|i| i.config().primary_ip) else {
                    return;
                };
                let Some(port) = &self.port else { return };
                if source.is_ipv6() {
                    let Some(v6) = &port.v6 else { return };
                    let message = advert.encode(source, MULTICAST_GROUP_V6.into());
                    if let Err(e) = v6.socket.send(&message, MULTICAST_GROUP_V6) {
                        warn!(instance = %config.name, destination = %MULTICAST_GROUP_V6, error = %e, "sending an advert failed");
                    }
                    return;
                }
                let single = [MULTICAST_GROUP];
                let destinations = if config.unicast_peer.is_empty() { &single[..] } else { &config.unicast_peer[..] };
                for &destination in destinations {
                    let message = advert.encode(source, destination.into());
                    if let Err(e) = port.socket.send(&message, destination) {
                        warn!(instance = %config.name, %destination, error = %e, "sending an advert failed");
                    }
                }
            }
            Action::AddVips => self.claim(config, &config.virtual_ipaddress).await,
            Action::RemoveVips => {
                self.announcer.withdraw(&config.name);
                self.release(&config.name, config.virtual_ipaddress.clone());
            }
            Action::GratuitousArp { count } => {
                // Without a port the instance is in FAULT and has added no VIP.
                if self.port.is_none() {
                    return;
                }
                let interval = self.garp_interval();
                let port = self.port.as_ref();
                self.announcer
                    .announce(&self.context.netlink, &self.name, port, &config.name, &config.virtual_ipaddress, count, interval)
                    .await;
            }
            Action::Transition(t) => {
                let master = t.master.map(|m| m.to_string()).unwrap_or_default();
                info!(
                    instance = %config.name, vrid = config.vrid, from = %t.from, to = %t.to,
                    priority = t.priority, reason = %t.reason, master, "state change"
                );
                let master = if master.is_empty() { String::new() } else { format!(", master {master}") };
                let message = format!("{} -> {}: {}; priority {}{master}", t.from, t.to, t.reason, t.priority);
                self.context.board.record(EventKind::State, config.name.as_str(), message);
                if t.to != t.from || t.to == State::Initialize {
                    self.context.notifier.notify(&config.name, t.to, t.priority, &spec.notify);
                    if let Some(change) = self.context.groups.member_moved(&config.name, t.to) {
                        let from = change.from.map_or("none", state_word);
                        let message = format!("sync group {} -> {}", from, state_word(change.to));
                        self.context.board.record(EventKind::State, change.group.as_str(), message);
                        self.context.notifier.notify_group(&change.group, change.to, &change.scripts);
                    }
                }
                if let (State::Master, Reason::MasterDown { silent: Some(master) }, Some(events)) =
                    (t.to, &t.reason, &self.context.vip_events)
                {
                    let addresses = addresses(&config.virtual_ipaddress);
                    let _ = events.send(VipEvent::TakenFromSilentMaster {
                        instance: config.name.clone(),
                        addresses,
                        master: *master,
                    });
                }
            }
        }
    }

    /// One line per reason per interval: a flood cannot fill the disk.
    fn log_drop(&mut self, now: Instant, dropped: Dropped) {
        let (last, suppressed) = self.drop_log.entry(dropped.reason).or_insert((now - DROP_LOG_INTERVAL, 0));
        if now.duration_since(*last) < DROP_LOG_INTERVAL {
            *suppressed += 1;
            return;
        }
        let instance = dropped.instance.map(|i| self.instances[i].name().to_owned()).unwrap_or_default();
        let source = dropped.source.map(|s| s.to_string()).unwrap_or_default();
        warn!(
            interface = %self.name, reason = %dropped.reason, %source, %instance,
            suppressed_since_last = *suppressed, "advert dropped"
        );
        let message = format!("advert from {source} dropped: {} ({} more since the last one shown)", dropped.reason, *suppressed);
        self.context.board.record(EventKind::Drop, self.name.as_str(), message);
        *last = now;
        *suppressed = 0;
    }
}

fn addresses(vips: &[Vip]) -> Vec<IpAddr> {
    vips.iter().map(Vip::addr).collect()
}

/// Receives on the port's socket; without a port, waits forever (the tick opens one).
async fn receive_on(port: Option<&Port>, buf: &mut [u8]) -> std::io::Result<usize> {
    match port {
        Some(port) => port.socket.recv(buf).await,
        None => std::future::pending().await,
    }
}

/// The next IPv6 advert, or never when the port has no IPv6 side.
async fn receive_v6_on(port: Option<&Port>, buf: &mut [u8]) -> std::io::Result<super::net::socket6::Received6> {
    match port.and_then(|p| p.v6.as_ref()) {
        Some(v6) => v6.socket.recv(buf).await,
        None => std::future::pending().await,
    }
}
