//! A server's health as HAProxy keeps it: UP or DOWN after `rise`/`fall` consecutive check
//! results, the interval that applies in each phase (`inter`, `fastinter` while changing state,
//! `downinter` while DOWN), and what the stats page shows (last check, last change, downtime).
//! [`probe`] runs the checks; [`amqp`] reads a broker's greeting.

pub mod amqp;
pub mod probe;

use std::fmt;
use std::time::{Duration, Instant};

use ha_common::config::HealthCheck;
use ha_common::rise_fall::RiseFall;

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    pub ok: bool,
    /// What happened, for the stats page ("Connection.Start 0-9", "connection refused", ...).
    pub detail: String,
    pub duration: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Up,
    Down,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Status::Up => "UP",
            Status::Down => "DOWN",
        })
    }
}

#[derive(Clone, Debug)]
pub struct Health {
    check: HealthCheck,
    state: RiseFall,
    last_change: Instant,
    down_since: Option<Instant>,
    downtime: Duration,
    last_result: Option<CheckResult>,
    checks: u64,
    failed_checks: u64,
}

impl Health {
    /// A server starts UP, as in HAProxy: `fall` failed checks take it DOWN.
    pub fn new(check: HealthCheck, now: Instant) -> Self {
        Health {
            state: RiseFall::new(check.rise, check.fall, true),
            check,
            last_change: now,
            down_since: None,
            downtime: Duration::ZERO,
            last_result: None,
            checks: 0,
            failed_checks: 0,
        }
    }

    pub fn status(&self) -> Status {
        if self.state.is_up() {
            Status::Up
        } else {
            Status::Down
        }
    }

    /// Records a result; returns the new status when it changed.
    pub fn record(&mut self, now: Instant, result: CheckResult) -> Option<Status> {
        self.checks += 1;
        if !result.ok {
            self.failed_checks += 1;
        }
        let changed = self.state.record(result.ok);
        self.last_result = Some(result);
        let up = changed?;
        self.last_change = now;
        if up {
            if let Some(since) = self.down_since.take() {
                self.downtime += now - since;
            }
        } else {
            self.down_since = Some(now);
        }
        Some(self.status())
    }

    /// Takes a reload's check settings. The status stays, and so does a streak towards
    /// changing it, cut to one short of the new threshold: the next result decides.
    pub fn reconfigure(&mut self, check: HealthCheck) {
        if check == self.check {
            return;
        }
        let up = self.state.is_up();
        let needed = if up { check.fall } else { check.rise };
        let mut state = RiseFall::new(check.rise, check.fall, up);
        for _ in 0..self.state.streak().min(needed.saturating_sub(1)) {
            state.record(!up);
        }
        self.state = state;
        self.check = check;
    }

    /// When to check next: `inter` while steadily UP, `fastinter` while changing state,
    /// `downinter` while steadily DOWN.
    pub fn next_interval(&self) -> Duration {
        match (self.status(), self.state.streak()) {
            (_, streak) if streak > 0 => self.check.fastinter,
            (Status::Up, _) => self.check.interval,
            (Status::Down, _) => self.check.downinter,
        }
    }

    /// "UP 1/3" style: the status, and how far it is towards changing.
    pub fn describe(&self) -> String {
        match (self.status(), self.state.streak()) {
            (Status::Up, 0) | (Status::Down, 0) => self.status().to_string(),
            (Status::Up, n) => format!("UP, going down {n}/{}", self.check.fall),
            (Status::Down, n) => format!("DOWN, going up {n}/{}", self.check.rise),
        }
    }

    /// The settings checks run with now.
    pub fn check(&self) -> &HealthCheck {
        &self.check
    }

    pub fn last_change(&self) -> Instant {
        self.last_change
    }

    /// Time spent DOWN so far, the current stretch included.
    pub fn downtime(&self, now: Instant) -> Duration {
        self.downtime + self.down_since.map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }

    pub fn last_result(&self) -> Option<&CheckResult> {
        self.last_result.as_ref()
    }

    /// Checks run and checks failed.
    pub fn counts(&self) -> (u64, u64) {
        (self.checks, self.failed_checks)
    }
}

#[cfg(test)]
mod tests {
    use ha_common::config::CheckKind;

    use super::*;

    fn check() -> HealthCheck {
        HealthCheck {
            kind: CheckKind::Tcp,
            interval: Duration::from_secs(2),
            fastinter: Duration::from_millis(500),
            downinter: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            ..HealthCheck::default()
        }
    }

    fn result(ok: bool) -> CheckResult {
        CheckResult { ok, detail: String::new(), duration: Duration::from_millis(1) }
    }

    #[test]
    fn fall_failures_take_a_server_down_and_rise_successes_bring_it_back() {
        let t0 = Instant::now();
        let mut h = Health::new(check(), t0);
        assert_eq!(h.status(), Status::Up);
        assert_eq!(h.record(t0, result(false)), None);
        assert_eq!(h.describe(), "UP, going down 1/3");
        assert_eq!(h.record(t0, result(false)), None);
        let down_at = t0 + Duration::from_secs(4);
        assert_eq!(h.record(down_at, result(false)), Some(Status::Down));
        assert_eq!(h.last_change(), down_at);
        assert_eq!(h.record(down_at, result(true)), None);
        assert_eq!(h.describe(), "DOWN, going up 1/2");
        let up_at = down_at + Duration::from_secs(10);
        assert_eq!(h.record(up_at, result(true)), Some(Status::Up));
        assert_eq!(h.downtime(up_at + Duration::from_secs(100)), Duration::from_secs(10));
        assert_eq!(h.counts(), (5, 3));
    }

    #[test]
    fn intervals_follow_inter_fastinter_downinter() {
        let t0 = Instant::now();
        let mut h = Health::new(check(), t0);
        assert_eq!(h.next_interval(), Duration::from_secs(2), "steady UP: inter");
        h.record(t0, result(false));
        assert_eq!(h.next_interval(), Duration::from_millis(500), "going down: fastinter");
        h.record(t0, result(false));
        h.record(t0, result(false));
        assert_eq!(h.next_interval(), Duration::from_secs(5), "steady DOWN: downinter");
        h.record(t0, result(true));
        assert_eq!(h.next_interval(), Duration::from_millis(500), "going up: fastinter");
    }

    #[test]
    fn new_check_settings_keep_the_status_and_what_the_streak_can_keep() {
        let t0 = Instant::now();
        let mut h = Health::new(check(), t0);
        h.record(t0, result(false));
        h.record(t0, result(false));
        h.reconfigure(HealthCheck { fall: 10, interval: Duration::from_secs(60), ..check() });
        assert_eq!(h.describe(), "UP, going down 2/10");
        h.reconfigure(HealthCheck { fall: 2, interval: Duration::from_secs(60), fastinter: Duration::from_secs(7), ..check() });
        assert_eq!(h.describe(), "UP, going down 1/2", "one short of the new fall");
        assert_eq!(h.next_interval(), Duration::from_secs(7));
        assert_eq!(h.record(t0, result(false)), Some(Status::Down));
        assert_eq!(h.next_interval(), Duration::from_secs(5), "downinter");
    }

    #[test]
    fn downtime_counts_the_current_stretch() {
        let t0 = Instant::now();
        let mut h = Health::new(HealthCheck { fall: 1, ..check() }, t0);
        h.record(t0, result(false));
        assert_eq!(h.downtime(t0 + Duration::from_secs(7)), Duration::from_secs(7));
    }
}
