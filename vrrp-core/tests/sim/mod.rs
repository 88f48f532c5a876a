//! A LAN of VRRP routers on a virtual clock: every host runs real `Instance`s, adverts travel as
//! encoded IPv4 datagrams through the real receive path, and time only moves when the
//! simulator says so. Scenario tests assert states and the exact instants of transitions.

#![allow(dead_code)] // each test file uses a different part

pub mod pair;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vrrp_core::counters::DropCounters;
use vrrp_core::instance::{Action, Instance, InstanceConfig, State, Transition};
use vrrp_core::packet::{encode_ipv4, Advert, MULTICAST_GROUP, TTL};
use vrrp_core::receive::receive;

/// Seconds as an exact Duration (k/256 fractions are exact in f64).
pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

pub struct Host {
    pub name: &'static str,
    pub ip: Ipv4Addr,
    configs: Vec<InstanceConfig>,
    pub instances: Vec<Instance>,
    pub unattributed: DropCounters,
    pub running: bool,
    /// Stopped (SIGSTOP): no timer fires, packets wait in the socket until it runs again.
    pub frozen: bool,
    queued: Vec<Vec<u8>>,
    pub link_up: bool,
    /// Whether each instance's VIPs are on this host's interface.
    pub vips_held: Vec<bool>,
    /// (time since the LAN started, instance index, what happened)
    pub transitions: Vec<(Duration, usize, Transition)>,
    pub garps: Vec<(Duration, usize, u32)>,
    pub adverts_sent: Vec<(Duration, usize, Advert)>,
}

struct Delivery {
    at: Instant,
    to: usize,
    datagram: Vec<u8>,
}

pub struct Lan {
    pub start: Instant,
    pub now: Instant,
    pub hosts: Vec<Host>,
    /// One-way delay of every packet.
    pub latency: Duration,
    in_flight: Vec<Delivery>,
}

impl Default for Lan {
    fn default() -> Self {
        Self::new()
    }
}

impl Lan {
    pub fn new() -> Self {
        let start = Instant::now();
        Lan { start, now: start, hosts: Vec::new(), latency: Duration::ZERO, in_flight: Vec::new() }
    }

    /// Time since the LAN started.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub fn add_host(&mut self, name: &'static str, ip: Ipv4Addr, configs: Vec<InstanceConfig>) -> usize {
        let n = configs.len();
        self.hosts.push(Host {
            name,
            ip,
            configs,
            instances: Vec::new(),
            unattributed: DropCounters::default(),
            running: false,
            frozen: false,
            queued: Vec::new(),
            link_up: true,
            vips_held: vec![false; n],
            transitions: Vec::new(),
            garps: Vec::new(),
            adverts_sent: Vec::new(),
        });
        self.hosts.len() - 1
    }

    /// Starts (or restarts) a host's daemon: fresh instances, startup event.
    pub fn start(&mut self, h: usize) {
        let now = self.now;
        let host = &mut self.hosts[h];
        host.instances = host.configs.iter().cloned().map(Instance::new).collect();
        host.running = true;
        for i in 0..host.instances.len() {
            host.instances[i].startup(now);
        }
        self.drain(h);
    }

    /// Graceful stop: the Shutdown event, then the daemon is gone.
    pub fn stop(&mut self, h: usize) {
        let now = self.now;
        for i in 0..self.hosts[h].instances.len() {
            self.hosts[h].instances[i].shutdown(now);
        }
        self.drain(h);
        self.hosts[h].running = false;
    }

    /// kill -9 or power loss: nothing more is sent, and the host's addresses are gone with it.
    pub fn crash(&mut self, h: usize) {
        self.hosts[h].running = false;
        self.hosts[h].vips_held.iter_mut().for_each(|held| *held = false);
    }

    /// SIGSTOP: the daemon stops running; what it had added stays.
    pub fn freeze(&mut self, h: usize) {
        self.hosts[h].frozen = true;
    }

    /// SIGCONT: the packets that waited in the socket are read, then the late timers fire (the
    /// order a real loop may well take: a late timer is not always seen first).
    pub fn thaw(&mut self, h: usize) {
        let now = self.now;
        self.hosts[h].frozen = false;
        for datagram in std::mem::take(&mut self.hosts[h].queued) {
            let host = &mut self.hosts[h];
            let _ = receive(now, &datagram, &mut host.instances, &mut host.unattributed);
            self.drain(h);
        }
        for i in 0..self.hosts[h].instances.len() {
            if self.hosts[h].instances[i].poll_timeout().is_some_and(|t| t <= now) {
                self.hosts[h].instances[i].handle_timeout(now);
            }
        }
        self.drain(h);
    }

    pub fn cut_link(&mut self, h: usize) {
        self.hosts[h].link_up = false;
    }

    pub fn heal_link(&mut self, h: usize) {
        self.hosts[h].link_up = true;
    }

    pub fn set_tracker(&mut self, h: usize, instance: usize, tracker: usize, up: bool) {
        let now = self.now;
        self.hosts[h].instances[instance].set_tracker(now, tracker, up);
        self.drain(h);
    }

    /// A reload that changed instance 0's configuration.
    pub fn reconfigure(&mut self, h: usize, config: InstanceConfig) {
        let now = self.now;
        self.hosts[h].configs[0] = config.clone();
        self.hosts[h].instances[0].reconfigure(now, config);
        self.drain(h);
    }

    pub fn resign(&mut self, h: usize) {
        let now = self.now;
        self.hosts[h].instances[0].resign(now);
        self.drain(h);
    }

    pub fn resume(&mut self, h: usize) {
        let now = self.now;
        self.hosts[h].instances[0].resume(now);
        self.drain(h);
    }

    /// Delivers a raw datagram to host `h` now, as if it came off the wire.
    pub fn inject(&mut self, h: usize, datagram: Vec<u8>) {
        self.in_flight.push(Delivery { at: self.now, to: h, datagram });
        self.run_until(self.now);
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs to `elapsed` seconds since the LAN started.
    pub fn run_to(&mut self, elapsed: f64) {
        self.run_until(self.start + secs(elapsed));
    }

    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_delivery = self.in_flight.iter().map(|d| d.at).min();
            let next_timer = self
                .hosts
                .iter()
                .filter(|h| h.running && !h.frozen)
                .flat_map(|h| h.instances.iter().filter_map(Instance::poll_timeout))
                .min();
            let Some(next) = next_delivery.into_iter().chain(next_timer).min().filter(|&t| t <= until) else { break };
            self.now = next;
            self.deliver_due();
            for h in 0..self.hosts.len() {
                if !self.hosts[h].running || self.hosts[h].frozen {
                    continue;
                }
                for i in 0..self.hosts[h].instances.len() {
                    if self.hosts[h].instances[i].poll_timeout().is_some_and(|t| t <= next) {
                        self.hosts[h].instances[i].handle_timeout(next);
                    }
                }
                self.drain(h);
            }
        }
        self.now = self.now.max(until);
    }

    fn deliver_due(&mut self) {
        while let Some(pos) = self.in_flight.iter().position(|d| d.at <= self.now) {
            let delivery = self.in_flight.remove(pos);
            let host = &mut self.hosts[delivery.to];
            if !host.running || !host.link_up {
                continue;
            }
            if host.frozen {
                host.queued.push(delivery.datagram);
                continue;
            }
            let _ = receive(self.now, &delivery.datagram, &mut host.instances, &mut host.unattributed);
            self.drain(delivery.to);
        }
    }

    fn drain(&mut self, h: usize) {
        let elapsed = self.elapsed();
        for i in 0..self.hosts[h].instances.len() {
            while let Some(action) = self.hosts[h].instances[i].poll_action() {
                let host = &mut self.hosts[h];
                match action {
                    Action::SendAdvert(advert) => {
                        let datagram =
                            encode_ipv4(host.ip, MULTICAST_GROUP, TTL, &advert.encode(host.ip.into(), MULTICAST_GROUP.into()));
                        host.adverts_sent.push((elapsed, i, advert));
                        if host.link_up {
                            let at = self.now + self.latency;
                            for to in (0..self.hosts.len()).filter(|&to| to != h) {
                                self.in_flight.push(Delivery { at, to, datagram: datagram.clone() });
                            }
                        }
                    }
                    Action::AddVips => host.vips_held[i] = true,
                    Action::RemoveVips => host.vips_held[i] = false,
                    Action::GratuitousArp { count } => host.garps.push((elapsed, i, count)),
                    Action::Transition(t) => host.transitions.push((elapsed, i, t)),
                }
            }
        }
    }

    pub fn state(&self, h: usize) -> State {
        self.hosts[h].instances[0].state()
    }

    /// Names of the hosts that hold instance `i`'s VIPs.
    pub fn vip_holders(&self, i: usize) -> Vec<&'static str> {
        self.hosts.iter().filter(|h| h.vips_held.get(i).copied().unwrap_or(false)).map(|h| h.name).collect()
    }

    /// When host `h`, instance 0, last entered `state`.
    pub fn entered(&self, h: usize, state: State) -> Option<Duration> {
        self.hosts[h].transitions.iter().rev().find(|(_, i, t)| *i == 0 && t.to == state).map(|(at, _, _)| *at)
    }

    /// Every transition of host `h`, instance 0, as (elapsed, new state).
    pub fn history(&self, h: usize) -> Vec<(Duration, State)> {
        self.hosts[h].transitions.iter().filter(|(_, i, _)| *i == 0).map(|(at, _, t)| (*at, t.to)).collect()
    }
}
