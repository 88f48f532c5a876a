//! The VRRP driver of one interface: owns the instances configured on it, their sockets, and
//! carries out what they decide (adverts, VIPs, gratuitous ARP, notify). One task per
//! interface, all on the VRRP runtime, which nothing else shares.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ha_common::config::{Ipv4Prefix, VrrpInstance};
use proxy::Balancer;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::counters::{DropCounters, DropReason};
use crate::instance::{Action, Instance, InstanceConfig, State};
use crate::net::arp::GarpSender;
use crate::net::link::{Interface, Netlink};
use crate::net::socket::AdvertSocket;
use crate::net::NetError;
use crate::notify::{Notifier, NotifyScripts};
use crate::packet::MULTICAST_GROUP;
use crate::receive::{receive, Dropped};
use crate::status::StatusBoard;
use crate::track::{Tracker, TrackerKind};

/// Last known status of each tracked object, for instances created after it was learned.
pub type TrackerStatus = HashMap<(TrackerKind, String), bool>;

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
}

pub enum DriverCommand {
    Tracker {
        kind: TrackerKind,
        name: String,
        up: bool,
    },
    /// Replace the instance set: unchanged instances keep their state.
    Reload {
        spec: DriverSpec,
        status: TrackerStatus,
    },
    /// Resign (priority 0), drop the VIPs, and end the task.
    Shutdown {
        done: oneshot::Sender<()>,
    },
    /// The operator's `resign` (`true`) or `resume` (`false`) of one instance.
    Resign {
        instance: String,
        resign: bool,
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// Adverts are at most 20 + 16 + 4 x 255 bytes; anything longer is cut here and then fails the
/// length check.
const RECEIVE_BUFFER: usize = 2048;
/// Longest time the status board lags behind counters that change without a state change.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(200);
/// How long giving up a VIP waits for its sessions to close before removing the address.
const VIP_RELEASE_WAIT: Duration = Duration::from_millis(200);
/// At most one log line per drop reason per interface in this interval.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

pub struct Driver {
    interface: Interface,
    netlink: Netlink,
    socket: AdvertSocket,
    garp: GarpSender,
    source: Ipv4Addr,
    specs: Vec<Arc<InstanceSpec>>,
    instances: Vec<Instance>,
    unattributed: DropCounters,
    notifier: Notifier,
    /// Closes the sessions accepted on VIPs this host gives up.
    balancer: Option<Arc<Balancer>>,
    board: StatusBoard,
    published_at: Instant,
    drop_log: HashMap<DropReason, (Instant, u64)>,
}

impl Driver {
    /// Looks the interface up, removes VIPs a crashed run left behind, opens the sockets and
    /// starts every instance.
    pub async fn start(
        spec: DriverSpec,
        netlink: Netlink,
        notifier: Notifier,
        balancer: Option<Arc<Balancer>>,
        board: StatusBoard,
        status: &TrackerStatus,
    ) -> Result<Self, NetError> {
        let interface = netlink.interface(&spec.interface).await?;
        let vips: Vec<Ipv4Prefix> = spec.instances.iter().flat_map(|s| s.config.virtual_ipaddress.iter().copied()).collect();
        for stale in netlink.remove_stale_vips(&interface, &vips).await? {
            info!(interface = %interface.name, vip = %stale, "removed a VIP left by an earlier run");
        }
        let vip_addrs: Vec<Ipv4Addr> = vips.iter().map(|v| v.addr).collect();
        let source = spec
            .instances
            .iter()
            .find_map(|s| s.config.unicast_src_ip)
            .or_else(|| interface.primary_ipv4(&vip_addrs))
            .ok_or_else(|| NetError::NoIpv4Address(interface.name.clone()))?;
        let socket = AdvertSocket::open(&interface, source)?;
        let garp = GarpSender::open(&interface)?;
        info!(interface = %interface.name, %source, up = interface.up, instances = spec.instances.len(), "interface ready");
        let mut driver = Driver {
            interface,
            netlink,
            socket,
            garp,
            source,
            specs: Vec::new(),
            instances: Vec::new(),
            unattributed: DropCounters::default(),
            notifier,
            balancer,
            board,
            published_at: Instant::now(),
            drop_log: HashMap::new(),
        };
        for spec in spec.instances {
            driver.add_instance(spec, status);
        }
        driver.execute_actions().await;
        driver.publish();
        Ok(driver)
    }

    /// Tells the status board where every instance stands.
    fn publish(&mut self) {
        self.published_at = Instant::now();
        let vips: Vec<Vec<String>> =
            self.specs.iter().map(|s| s.config.virtual_ipaddress.iter().map(ToString::to_string).collect()).collect();
        self.board.publish(&self.interface.name, &self.instances, &vips, &self.unattributed);
    }

    fn resign(&mut self, name: &str, resign: bool) -> Result<String, String> {
        let now = Instant::now();
        let instance =
            self.instances.iter_mut().find(|i| i.name() == name).ok_or_else(|| format!("no instance named {name:?}"))?;
        let changed = if resign { instance.resign(now) } else { instance.resume(now) };
        let verb = if resign { "resigned" } else { "resumed" };
        info!(instance = name, changed, state = %instance.state(), "{verb} by operator");
        Ok(match (resign, changed) {
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
        let known = |kind, name: &str| status.get(&(kind, name.to_owned())).copied().unwrap_or(true);
        // The instance's own interface is always tracked: no carrier, no VRRP (FAULT).
        let mut trackers =
            vec![Tracker { up: self.interface.up, ..Tracker::new(TrackerKind::Interface, &self.interface.name, 0) }];
        for (kind, tracks) in [
            (TrackerKind::Interface, &config.track_interface),
            (TrackerKind::Script, &config.track_script),
            (TrackerKind::Proxy, &config.track_proxy),
        ] {
            trackers.extend(tracks.iter().map(|t| Tracker { up: known(kind, &t.name), ..Tracker::new(kind, &t.name, t.weight) }));
        }
        InstanceConfig::from_config(config, config.unicast_src_ip.unwrap_or(self.source), trackers)
    }

    fn add_instance(&mut self, spec: Arc<InstanceSpec>, status: &TrackerStatus) {
        let mut instance = Instance::new(self.instance_config(&spec, status));
        instance.startup(Instant::now());
        info!(
            instance = %spec.config.name, vrid = spec.config.vrid, interface = %self.interface.name,
            priority = instance.priority(), state = %instance.state(), "instance started"
        );
        self.specs.push(spec);
        self.instances.push(instance);
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<DriverCommand>) {
        let mut buf = vec![0u8; RECEIVE_BUFFER];
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
                    Some(DriverCommand::Tracker { kind, name, up }) => self.set_tracker(kind, &name, up),
                    Some(DriverCommand::Reload { spec, status }) => self.reload(spec, &status).await,
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
                () = timer => {
                    let now = Instant::now();
                    for instance in &mut self.instances {
                        if instance.poll_timeout().is_some_and(|at| at <= now) {
                            instance.handle_timeout(now);
                        }
                    }
                }
                received = self.socket.recv(&mut buf) => match received {
                    Ok(len) => {
                        let now = Instant::now();
                        match receive(now, &buf[..len], &mut self.instances, &mut self.unattributed) {
                            Ok(_) => accepted = true,
                            Err(dropped) => self.log_drop(now, dropped),
                        }
                    }
                    Err(e) => {
                        error!(interface = %self.interface.name, error = %e, "receiving adverts failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
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

    fn set_tracker(&mut self, kind: TrackerKind, name: &str, up: bool) {
        let now = Instant::now();
        for instance in &mut self.instances {
            if let Some(index) = instance.trackers().find(kind, name) {
                let before = instance.priority();
                instance.set_tracker(now, index, up);
                info!(
                    instance = %instance.name(), tracker = %format!("{} {name}", kind.as_str()), up,
                    priority = instance.priority(), was = before, state = %instance.state(), "tracked object changed"
                );
            }
        }
    }

    /// Unchanged instances keep running untouched; changed and removed ones are shut down (so
    /// they resign and release their VIPs) before new ones start.
    /// Instances that keep their name and VRID are reconfigured in place, keeping their state
    /// (a MASTER stays MASTER; VIPs added or removed one by one); removed ones are shut down
    /// (so they resign and release their VIPs) before new ones start.
    async fn reload(&mut self, spec: DriverSpec, status: &TrackerStatus) {
        let now = Instant::now();
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
            instance.reconfigure(now, self.instance_config(new, status));
            info!(instance = %new.config.name, state = %instance.state(), priority = instance.priority(), "instance reconfigured in place");
        }
        (self.specs, self.instances) = next.into_iter().map(|(new, _, instance)| (new, instance)).unzip();
        for new in added {
            self.add_instance(new, status);
        }
    }

    /// A master's VIPs after a reload: sessions on removed VIPs are released first, then the
    /// addresses go; new ones are added (the core re-announces them).
    async fn change_vips(&self, old: &VrrpInstance, new: &VrrpInstance) {
        let removed: Vec<Ipv4Prefix> =
            old.virtual_ipaddress.iter().filter(|v| !new.virtual_ipaddress.contains(v)).copied().collect();
        let added: Vec<Ipv4Prefix> =
            new.virtual_ipaddress.iter().filter(|v| !old.virtual_ipaddress.contains(v)).copied().collect();
        if let Some(balancer) = &self.balancer {
            let gone: Vec<IpAddr> = removed.iter().map(|v| IpAddr::V4(v.addr)).collect();
            balancer.release_addresses(&gone, VIP_RELEASE_WAIT).await;
            balancer.claim_addresses(&added.iter().map(|v| IpAddr::V4(v.addr)).collect::<Vec<_>>());
        }
        for vip in removed {
            match self.netlink.remove_vip(&self.interface, vip).await {
                Ok(()) => info!(instance = %new.name, %vip, "VIP removed by reload"),
                Err(e) => error!(instance = %new.name, %vip, error = %e, "removing the VIP failed"),
            }
        }
        for vip in added {
            match self.netlink.add_vip(&self.interface, new.vrid, vip).await {
                Ok(()) => info!(instance = %new.name, %vip, "VIP added by reload"),
                Err(e) => error!(instance = %new.name, %vip, error = %e, "adding the VIP failed"),
            }
        }
    }

    async fn shutdown(&mut self) {
        let now = Instant::now();
        for instance in &mut self.instances {
            instance.shutdown(now);
        }
        self.execute_actions().await;
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
                let message = advert.encode();
                let single = [MULTICAST_GROUP];
                let destinations = if config.unicast_peer.is_empty() { &single[..] } else { &config.unicast_peer[..] };
                for &destination in destinations {
                    if let Err(e) = self.socket.send(&message, destination) {
                        warn!(instance = %config.name, %destination, error = %e, "sending an advert failed");
                    }
                }
            }
            Action::AddVips => {
                if let Some(balancer) = &self.balancer {
                    balancer.claim_addresses(&vip_addresses(config));
                }
                for &vip in &config.virtual_ipaddress {
                    match self.netlink.add_vip(&self.interface, config.vrid, vip).await {
                        Ok(()) => info!(instance = %config.name, %vip, interface = %self.interface.name, "VIP added"),
                        Err(e) => error!(instance = %config.name, %vip, error = %e, "adding the VIP failed"),
                    }
                }
            }
            Action::RemoveVips => {
                self.release_vip_sessions(config).await;
                for &vip in &config.virtual_ipaddress {
                    match self.netlink.remove_vip(&self.interface, vip).await {
                        Ok(()) => info!(instance = %config.name, %vip, interface = %self.interface.name, "VIP removed"),
                        Err(e) => error!(instance = %config.name, %vip, error = %e, "removing the VIP failed"),
                    }
                }
            }
            Action::GratuitousArp { count } => {
                let vips: Vec<Ipv4Addr> = config.virtual_ipaddress.iter().map(|v| v.addr).collect();
                match self.garp.send(&vips, count) {
                    Ok(()) => debug!(instance = %config.name, count, "gratuitous ARP sent"),
                    Err(e) => warn!(instance = %config.name, error = %e, "sending gratuitous ARP failed"),
                }
            }
            Action::Transition(t) => {
                let master = t.master.map(|m| m.to_string()).unwrap_or_default();
                info!(
                    instance = %config.name, vrid = config.vrid, from = %t.from, to = %t.to,
                    priority = t.priority, reason = %t.reason, master, "state change"
                );
                if t.to != t.from || t.to == State::Initialize {
                    self.notifier.notify(&config.name, t.to, t.priority, &spec.notify);
                }
            }
        }
    }

    /// Before the VIPs go: the clients of sessions accepted on them are moving to the new
    /// master, and their broker connections here must close now, or the broker holds their
    /// unacknowledged messages until the heartbeat expires. The FINs can only leave while this
    /// host still holds the VIPs, hence the bounded wait.
    async fn release_vip_sessions(&self, config: &VrrpInstance) {
        let Some(balancer) = &self.balancer else { return };
        let closed = balancer.release_addresses(&vip_addresses(config), VIP_RELEASE_WAIT).await;
        if closed > 0 {
            info!(instance = %config.name, closed, "closed the sessions accepted on the VIPs given up");
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
            interface = %self.interface.name, reason = %dropped.reason, %source, %instance,
            suppressed_since_last = *suppressed, "advert dropped"
        );
        *last = now;
        *suppressed = 0;
    }
}

fn vip_addresses(config: &VrrpInstance) -> Vec<IpAddr> {
    config.virtual_ipaddress.iter().map(|v| IpAddr::V4(v.addr)).collect()
}
