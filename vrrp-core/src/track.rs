//! Tracked objects and what they do to an instance: keepalived's weights and FAULT.
//!
//! Effective priority = configured priority + the weights that apply, clamped to 1..=254
//! (a negative weight applies while its object is down, a positive one while it is up); an
//! owner (255) ignores weights. A weight-0 object that is down puts the instance in FAULT.

/// What kind of object a tracker watches; the driver feeds its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackerKind {
    Script,
    Proxy,
    Interface,
}

impl TrackerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerKind::Script => "script",
            TrackerKind::Proxy => "proxy",
            TrackerKind::Interface => "interface",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracker {
    pub kind: TrackerKind,
    pub name: String,
    pub weight: i32,
    pub up: bool,
}

impl Tracker {
    pub fn new(kind: TrackerKind, name: impl Into<String>, weight: i32) -> Self {
        Tracker { kind, name: name.into(), weight, up: true }
    }

    /// The tracker's contribution to the priority now.
    fn adjustment(&self) -> i32 {
        match (self.weight, self.up) {
            (w, true) if w > 0 => w,
            (w, false) if w < 0 => w,
            _ => 0,
        }
    }

    fn faulted(&self) -> bool {
        self.weight == 0 && !self.up
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
        match self.0.get_mut(index) {
            Some(t) if t.up != up => {
                t.up = up;
                true
            }
            _ => false,
        }
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

    #[test]
    fn weight_zero_down_is_fault() {
        assert!(!trackers(&[(0, true), (-20, false)]).in_fault());
        assert!(trackers(&[(0, false)]).in_fault());
    }
}
