//! Statistics, in one room: the drivers publish each instance's state on the [`StatusBoard`]
//! after every event; the balancer is read live; a [`Snapshot`] joins both. [`render`] turns a
//! snapshot into HTML, CSV, Prometheus text and the `vrrpd ctl status` table; [`http`] serves
//! them.

pub mod events;
pub mod http;
pub mod render;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxy::snapshot::ProxySnapshot;
use proxy::Balancer;
use serde::Serialize;

use self::events::{Event, EventKind, EventLog};

/// Events a snapshot carries (the page and `/stats.json`); `vrrpd ctl events` shows them all.
pub const SNAPSHOT_EVENTS: usize = 100;

use vrrp_core::counters::DropCounters;
use vrrp_core::instance::Instance;

#[derive(Clone, Debug, Serialize)]
pub struct TrackerSnapshot {
    pub kind: String,
    pub name: String,
    pub weight: i32,
    pub up: bool,
    /// keepalived's `reverse`: the adjustment turned around.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reverse: bool,
    /// A tracked file's number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct InstanceSnapshot {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 2 or 3.
    pub vrrp_version: u8,
    /// The configured Advertisement_Interval, in milliseconds (VRRPv3 goes below a second).
    pub advert_int_ms: u64,
    /// The interval of the master this instance follows (learned from its adverts with
    /// VRRPv3), in milliseconds; its Master_Down_Interval is three of these and a skew.
    pub master_adver_interval_ms: u64,
    /// MASTER, BACKUP, FAULT or INIT.
    pub state: String,
    pub resigned: bool,
    pub priority: u8,
    pub effective_priority: u8,
    /// The current master's address, when known.
    pub master: Option<String>,
    /// The VIPs its adverts list.
    pub vips: Vec<String>,
    /// Those of `virtual_ipaddress_excluded`: added and moved with the others, never in adverts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vips_excluded: Vec<String>,
    pub since_last_transition_s: Option<u64>,
    pub transitions: u64,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Dropped adverts by reason (RFC 3768 section 7.1 checks).
    pub dropped: BTreeMap<String, u64>,
    pub trackers: Vec<TrackerSnapshot>,
}

/// An instance's advertised VIPs, then those excluded from its adverts, as text.
pub type InstanceVips = (Vec<String>, Vec<String>);

#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub router_id: String,
    pub version: &'static str,
    pub uptime_s: u64,
    pub instances: Vec<InstanceSnapshot>,
    /// Packets dropped before they could be matched to an instance, by interface and reason.
    pub interface_drops: BTreeMap<String, BTreeMap<String, u64>>,
    pub proxies: Vec<ProxySnapshot>,
    /// What the operator should fix (running as root without a user, ...).
    pub warnings: Vec<String>,
    /// The timeline's last events, oldest first.
    pub events: Vec<Event>,
}

struct Entry {
    snapshot: InstanceSnapshot,
    last_transition: Option<Instant>,
}

#[derive(Default)]
struct Board {
    instances: BTreeMap<String, Entry>,
    interface_drops: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Shared between the drivers (writers) and the stats and control servers (readers).
#[derive(Clone)]
pub struct StatusBoard {
    board: Arc<Mutex<Board>>,
    router_id: String,
    started: Instant,
    warnings: Arc<Mutex<Vec<String>>>,
    /// When each VRRP driver's loop last ran, by interface.
    beats: Arc<Mutex<HashMap<String, Instant>>>,
    events: Arc<EventLog>,
}

fn drops(counters: &DropCounters) -> BTreeMap<String, u64> {
    counters.iter().map(|(reason, n)| (reason.as_str().to_owned(), n)).collect()
}

impl StatusBoard {
    pub fn new(router_id: &str) -> Self {
        StatusBoard {
            board: Arc::default(),
            router_id: router_id.to_owned(),
            started: Instant::now(),
            warnings: Arc::default(),
            beats: Arc::default(),
            events: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the current state of an interface's instances; `vips` holds each one's
    /// advertised VIPs and its excluded ones.
    pub fn publish(&self, interface: &str, instances: &[Instance], vips: &[InstanceVips], unattributed: &DropCounters) {
        let mut board = self.lock();
        for (instance, (vips, vips_excluded)) in instances.iter().zip(vips) {
            let stats = instance.stats();
            let snapshot = InstanceSnapshot {
                name: instance.name().to_owned(),
                interface: interface.to_owned(),
                vrid: instance.vrid(),
                vrrp_version: instance.config().version.number(),
                advert_int_ms: u64::try_from(instance.advert_interval().as_millis()).unwrap_or(u64::MAX),
                master_adver_interval_ms: u64::try_from(instance.master_adver_interval().as_millis()).unwrap_or(u64::MAX),
                state: instance.state().to_string(),
                resigned: instance.is_resigned(),
                priority: instance.config().priority,
                effective_priority: instance.priority(),
                master: instance.master().map(|m| m.address.to_string()),
                vips: vips.clone(),
                vips_excluded: vips_excluded.clone(),
                since_last_transition_s: None,
                transitions: stats.transitions,
                adverts_sent: stats.adverts_sent,
                adverts_received: stats.adverts_received,
                dropped: drops(&stats.drops),
                trackers: instance
                    .trackers()
                    .iter()
                    .map(|t| TrackerSnapshot {
                        kind: t.kind.as_str().to_owned(),
                        name: t.name.clone(),
                        weight: t.weight,
                        up: t.up,
                        reverse: t.reverse,
                        value: (t.kind == vrrp_core::track::TrackerKind::File).then_some(t.value),
                    })
                    .collect(),
            };
            board.instances.insert(snapshot.name.clone(), Entry { snapshot, last_transition: instance.last_transition() });
        }
        board.interface_drops.insert(interface.to_owned(), drops(unattributed));
    }

    /// Adds an event to the timeline.
    pub fn record(&self, kind: EventKind, subject: impl Into<String>, message: impl Into<String>) {
        self.events.record(kind, subject, message);
    }

    /// The timeline's last `n` events, oldest first.
    pub fn events(&self, n: usize) -> Vec<Event> {
        self.events.recent(n)
    }

    /// The driver of `interface` is alive.
    pub fn beat(&self, interface: &str) {
        let mut beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        match beats.get_mut(interface) {
            Some(at) => *at = Instant::now(),
            None => {
                beats.insert(interface.to_owned(), Instant::now());
            }
        }
    }

    /// Drivers that have not run for `longer_than`, with how long.
    pub fn stalled(&self, longer_than: Duration) -> Vec<(String, Duration)> {
        let beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        beats.iter().map(|(name, at)| (name.clone(), at.elapsed())).filter(|(_, age)| *age > longer_than).collect()
    }

    /// Forgets the drivers of interfaces no longer in use.
    pub fn retain_drivers(&self, interfaces: &[String]) {
        self.beats.lock().unwrap_or_else(|p| p.into_inner()).retain(|name, _| interfaces.contains(name));
    }

    /// Shows `warning` on every snapshot from now on.
    pub fn warn(&self, warning: &str) {
        self.warnings.lock().unwrap_or_else(|p| p.into_inner()).push(warning.to_owned());
    }

    /// Forgets instances that no longer run (removed by a reload).
    pub fn retain(&self, names: &[String]) {
        self.lock().instances.retain(|name, _| names.contains(name));
    }

    pub fn snapshot(&self, balancer: Option<&Balancer>) -> Snapshot {
        let now = Instant::now();
        let board = self.lock();
        let instances = board
            .instances
            .values()
            .map(|e| InstanceSnapshot {
                since_last_transition_s: e.last_transition.map(|t| now.saturating_duration_since(t).as_secs()),
                ..e.snapshot.clone()
            })
            .collect();
        Snapshot {
            router_id: self.router_id.clone(),
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: now.duration_since(self.started).as_secs(),
            instances,
            interface_drops: board.interface_drops.clone(),
            proxies: balancer.map(Balancer::snapshot).unwrap_or_default(),
            warnings: self.warnings.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            events: self.events.recent(SNAPSHOT_EVENTS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_that_stops_beating_is_stalled_and_a_removed_one_is_forgotten() {
        let board = StatusBoard::new("a");
        board.beat("eth0");
        board.beat("eth1");
        assert!(board.stalled(Duration::from_secs(60)).is_empty());
        std::thread::sleep(Duration::from_millis(20));
        board.beat("eth1");
        let stalled: Vec<String> = board.stalled(Duration::from_millis(10)).into_iter().map(|(name, _)| name).collect();
        assert_eq!(stalled, vec!["eth0"]);
        board.retain_drivers(&["eth1".to_owned()]);
        assert!(board.stalled(Duration::from_millis(10)).is_empty());
    }

    #[test]
    fn a_vrrpv3_instance_shows_its_sub_second_intervals() {
        use std::net::Ipv4Addr;
        use vrrp_core::instance::{InstanceConfig, Version};

        let board = StatusBoard::new("a");
        let config = InstanceConfig {
            version: Version::V3,
            advert_interval: Duration::from_millis(100),
            ..InstanceConfig::new("VI_1", 51, Ipv4Addr::new(192, 0, 2, 11), [Ipv4Addr::new(192, 0, 2, 100)])
        };
        board.publish("eth0", &[Instance::new(config)], &[(vec!["192.0.2.100/24".into()], Vec::new())], &DropCounters::default());
        let snapshot = board.snapshot(None);
        let vi = &snapshot.instances[0];
        assert_eq!((vi.vrrp_version, vi.advert_int_ms, vi.master_adver_interval_ms), (3, 100, 100));
    }

    /// The page, its JSON and `vrrpd ctl status` tell the VIPs an advert lists from those it
    /// leaves out (`virtual_ipaddress_excluded`): a peer that drops adverts for their address
    /// list is then explained by what the page shows.
    #[test]
    fn excluded_vips_are_shown_apart_from_the_advertised_ones() {
        use std::net::Ipv4Addr;
        use vrrp_core::instance::InstanceConfig;

        let board = StatusBoard::new("a");
        let config = InstanceConfig::new("VI_1", 51, Ipv4Addr::new(192, 0, 2, 11), [Ipv4Addr::new(192, 0, 2, 100)]);
        let vips = (vec!["192.0.2.100/24".to_owned()], vec!["2001:db8::100/64".to_owned()]);
        board.publish("eth0", &[Instance::new(config)], &[vips], &DropCounters::default());
        let snapshot = board.snapshot(None);
        let json = serde_json::to_value(&snapshot).unwrap_or_default();
        assert_eq!(json["instances"][0]["vips"], serde_json::json!(["192.0.2.100/24"]));
        assert_eq!(json["instances"][0]["vips_excluded"], serde_json::json!(["2001:db8::100/64"]));
        let page = render::html(&snapshot, Duration::from_secs(5));
        assert!(page.contains("not in adverts: 2001:db8::100/64"), "{page}");
        let text = render::text(&snapshot);
        assert!(text.contains("192.0.2.100/24 (+2001:db8::100/64 not in adverts)"), "{text}");
    }
}
