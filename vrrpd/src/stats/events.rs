//! The timeline: the last events of both halves with their time (state changes with their
//! reason and priorities, tracked objects, servers going UP or DOWN with the check that decided
//! it, VIP releases, reloads and their outcome, dropped adverts), for the stats page,
//! `/stats.json` under `events` and `vrrpd ctl events`. Bounded: the oldest go first, so what
//! happened at 03:12 is on the page in the morning without grepping the journal.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

/// Events kept.
pub const CAPACITY: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An instance changed state.
    State,
    /// A tracked object changed, and what it did to the priority.
    Tracker,
    /// A server went UP or DOWN.
    Server,
    /// Sessions closed on VIPs given up, and the VIPs removed.
    Vip,
    /// A reload and its outcome.
    Reload,
    /// Adverts dropped (rate-limited, as the log).
    Drop,
    /// Broker connections of a silent master (or of this host's previous run) closed.
    Fence,
    /// A rebalance started or ended, and the sessions it closed.
    Rebalance,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::State => "state",
            EventKind::Tracker => "tracker",
            EventKind::Server => "server",
            EventKind::Vip => "vip",
            EventKind::Reload => "reload",
            EventKind::Drop => "drop",
            EventKind::Fence => "fence",
            EventKind::Rebalance => "rebalance",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub kind: EventKind,
    /// What it is about: an instance, `proxy/server`, an interface.
    pub subject: String,
    pub message: String,
}

#[derive(Default)]
pub struct EventLog {
    events: Mutex<VecDeque<Event>>,
}

impl EventLog {
    pub fn record(&self, kind: EventKind, subject: impl Into<String>, message: impl Into<String>) {
        let time = ha_common::duration::rfc3339_millis(SystemTime::now());
        let event = Event { time, kind, subject: subject.into(), message: message.into() };
        let mut events = self.lock();
        if events.len() == CAPACITY {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// The last `n` events, oldest first.
    pub fn recent(&self, n: usize) -> Vec<Event> {
        let events = self.lock();
        events.iter().skip(events.len().saturating_sub(n)).cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_last_events_in_order() {
        let log = EventLog::default();
        for n in 0..CAPACITY + 10 {
            log.record(EventKind::State, "VI_1", format!("event {n}"));
        }
        let all = log.recent(usize::MAX);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].message, "event 10", "the oldest went first");
        assert_eq!(log.recent(2).iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["event 508", "event 509"]);
        assert!(all[0].time.ends_with('Z') && all[0].time.contains('T'), "{}", all[0].time);
    }
}
