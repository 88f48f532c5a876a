//! Tracked objects and what they do to an instance: keepalived's weights and FAULT.
//!
//! Effective priority = configured priority + the weights that apply, clamped to 1..=254
//! (a negative weight applies while its object is down, a positive one while it is up); an
//! owner (255) ignores weights. A weight-0 object that is down puts the instance in FAULT.
//! `reverse` turns the adjustment around (keepalived's `reverse`): a positive weight is then
//! subtracted while up, a negative one added while down, and weight 0 means FAULT while *up*.
//!
//! A tracked file (keepalived's `track_file`) reports a number rather than up or down: with
//! weight 0 a non-zero value means FAULT; otherwise value x weight is added to the priority,
//! and a result below -253 means FAULT.

/// What kind of object a tracker watches; the driver feeds its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackerKind {
    Script,
    Proxy,
    Interface,
    /// `vrrp_track_process`: enough matching processes running (quorum).
    Process,
    /// `vrrp_track_file`: the number a file holds.
    File,
    /// Another member of the instance's sync group: down while it is in FAULT by its own
    /// trackers.
    SyncPeer,
}

impl TrackerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerKind::Script => "script",
            TrackerKind::Proxy => "proxy",
            TrackerKind::Interface => "interface",
            TrackerKind::Process => "process",
            TrackerKind::File => "file",
            TrackerKind::SyncPeer => "sync_peer",
        }
    }
}

/// What a source last reported about a tracked object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// Up or down (interfaces, scripts, proxies, processes).
    Up(bool),
    /// A number (files).
    Value(i64),
}

/// Below this, a file's value times its weight means FAULT (keepalived's limit).
const FILE_FAULT_BELOW: i64 = -253;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracker {
    pub kind: TrackerKind,
    pub name: String,
    pub weight: i32,
    /// Whether the object is up; for a file, whether it holds the instance out of FAULT.
    pub up: bool,
    /// The adjustment turned around (keepalived's `reverse`).
    pub reverse: bool,
    /// The last number a file held (0 for other kinds).
    pub value: i64,
}

impl Tracker {
    pub fn new(kind: TrackerKind, name: impl Into<String>, weight: i32) -> Self {
        Tracker { kind, name: name.into(), weight, up: true, reverse: false, value: 0 }
    }

    /// Sets the last reading; returns whether anything changed.
    pub fn apply_reading(&mut self, reading: Reading) -> bool {
        let before = (self.up, self.value);
        match reading {
            Reading::Up(up) => self.up = up,
            Reading::Value(value) => {
                self.value = value;
                self.up = !self.file_faulted();
            }
        }
        before != (self.up, self.value)
    }

    /// value x weight (turned around with `reverse`), saturating.
    fn file_product(&self) -> i64 {
        let product = self.value.saturating_mul(i64::from(self.weight));
        if self.reverse {
            product.saturating_neg()
        } else {
            product
        }
    }

    fn file_faulted(&self) -> bool {
        if self.weight == 0 {
            (self.value != 0) != self.reverse
        } else {
            self.file_product() < FILE_FAULT_BELOW
        }
    }

    /// The tracker's contribution to the priority now.
    fn adjustment(&self) -> i32 {
        if self.kind == TrackerKind::File {
            return if self.file_faulted() || self.weight == 0 { 0 } else { self.file_product().clamp(-253, 254) as i32 };
        }
        let applies = match (self.weight, self.up) {
            (w, true) if w > 0 => w,
            (w, false) if w < 0 => w,
            _ => 0,
        };
        if self.reverse {
            -applies
        } else {
            applies
        }
    }

    fn faulted(&self) -> bool {
        match self.kind {
            TrackerKind::File => self.file_faulted(),
            _ => self.weight == 0 && self.up == self.reverse,
        }
    }
}

/// An instance's trackers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trackers(Vec<Tracker>);

impl Trackers {
    pub fn new(trackers: Vec<Tracker>) -> Self {
        Trackers(trackers)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tracker> {
        self.0.iter()
    }

    pub fn find(&self, kind: TrackerKind, name: &str) -> Option<usize> {
        self.0.iter().position(|t| t.kind == kind && t.name == name)
    }

    /// Sets a tracker's status; returns whether it changed. Unknown indices change nothing.
    pub fn set(&mut self, index: usize, up: bool) -> bool {
        self.apply(index, Reading::Up(up))
    }

    /// Sets a tracker's last reading; returns whether it changed. Unknown indices change nothing.
    pub fn apply(&mut self, index: usize, reading: Reading) -> bool {
        self.0.get_mut(index).is_some_and(|t| t.apply_reading(reading))
    }

    pub fn effective_priority(&self, configured: u8) -> u8 {
        if configured == 255 {
            return 255;
        }
        let sum: i32 = self.0.iter().map(Tracker::adjustment).sum();
        (i32::from(configured) + sum).clamp(1, 254) as u8
    }

    /// The trackers holding the instance in FAULT.
    pub fn faults(&self) -> impl Iterator<Item = &Tracker> {
        self.0.iter().filter(|t| t.faulted())
    }

    pub fn in_fault(&self) -> bool {
        self.faults().next().is_some()
    }

    /// In FAULT by the instance's own trackers, not by a sync group peer's: what a sync group
    /// passes on to the other members (a peer's FAULT is not passed back).
    pub fn in_own_fault(&self) -> bool {
        self.faults().any(|t| t.kind != TrackerKind::SyncPeer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trackers(list: &[(i32, bool)]) -> Trackers {
        Trackers::new(list.iter().map(|&(w, up)| Tracker { up, ..Tracker::new(TrackerKind::Script, "s", w) }).collect())
    }

    #[test]
    fn negative_weight_applies_while_down() {
        assert_eq!(trackers(&[(-20, true)]).effective_priority(101), 101);
        assert_eq!(trackers(&[(-20, false)]).effective_priority(101), 81);
    }

    #[test]
    fn positive_weight_applies_while_up() {
        assert_eq!(trackers(&[(2, true)]).effective_priority(100), 102);
        assert_eq!(trackers(&[(2, false)]).effective_priority(100), 100);
    }

    #[test]
    fn weights_add_up() {
        assert_eq!(trackers(&[(-20, false), (-30, false), (5, true)]).effective_priority(100), 55);
    }

    #[test]
    fn effective_priority_is_clamped_to_1_through_254() {
        assert_eq!(trackers(&[(100, true)]).effective_priority(200), 254);
        assert_eq!(trackers(&[(-253, false)]).effective_priority(10), 1);
    }

    #[test]
    fn owner_ignores_weights() {
        assert_eq!(trackers(&[(-100, false)]).effective_priority(255), 255);
    }

    fn reversed(list: &[(i32, bool)]) -> Trackers {
        Trackers::new(
            list.iter().map(|&(w, up)| Tracker { up, reverse: true, ..Tracker::new(TrackerKind::Process, "p", w) }).collect(),
        )
    }

    fn file(weight: i32, reverse: bool, value: i64) -> Trackers {
        let mut tracker = Tracker { reverse, ..Tracker::new(TrackerKind::File, "f", weight) };
        tracker.apply_reading(Reading::Value(value));
        Trackers::new(vec![tracker])
    }

    #[test]
    fn reverse_turns_the_adjustment_around() {
        assert_eq!(reversed(&[(10, true)]).effective_priority(100), 90, "positive weight subtracted while up");
        assert_eq!(reversed(&[(10, false)]).effective_priority(100), 100);
        assert_eq!(reversed(&[(-10, false)]).effective_priority(100), 110, "negative weight added while down");
        assert_eq!(reversed(&[(-10, true)]).effective_priority(100), 100);
    }

    #[test]
    fn reversed_weight_zero_is_fault_while_up() {
        assert!(reversed(&[(0, true)]).in_fault());
        assert!(!reversed(&[(0, false)]).in_fault());
    }

    #[test]
    fn file_value_times_weight_is_added() {
        assert_eq!(file(2, false, 5).effective_priority(100), 110);
        assert_eq!(file(2, false, -5).effective_priority(100), 90);
        assert_eq!(file(2, true, 5).effective_priority(100), 90, "reverse");
        assert_eq!(file(1, false, 0).effective_priority(100), 100);
        assert_eq!(file(1, false, 300).effective_priority(100), 254, "clamped");
    }

    #[test]
    fn file_with_weight_zero_faults_on_any_non_zero_value() {
        assert!(!file(0, false, 0).in_fault());
        assert!(file(0, false, 1).in_fault());
        assert!(file(0, false, -7).in_fault());
        assert!(file(0, true, 0).in_fault(), "reverse: zero is the failure");
    }

    #[test]
    fn file_product_below_minus_253_is_fault() {
        assert!(!file(1, false, -253).in_fault());
        assert!(file(1, false, -254).in_fault());
        assert!(file(254, false, i64::MIN).in_fault(), "saturates instead of overflowing");
        assert!(!file(254, false, i64::MAX).in_fault());
    }

    #[test]
    fn weight_zero_down_is_fault() {
        assert!(!trackers(&[(0, true), (-20, false)]).in_fault());
        assert!(trackers(&[(0, false)]).in_fault());
    }
}
