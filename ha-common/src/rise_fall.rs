//! Rise/fall debouncing, shared by VRRP track scripts and the balancer's health checks: a
//! status flips to up after `rise` consecutive successes and to down after `fall` consecutive
//! failures (keepalived's and HAProxy's meaning).

/// A debounced up/down status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    up: bool,
    streak: u32,
}

impl RiseFall {
    pub fn new(rise: u32, fall: u32, initially_up: bool) -> Self {
        RiseFall { rise: rise.max(1), fall: fall.max(1), up: initially_up, streak: 0 }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Records one result; returns the new status when it changed.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        if success == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if success { self.rise } else { self.fall };
        if self.streak >= needed {
            self.up = success;
            self.streak = 0;
            Some(success)
        } else {
            None
        }
    }

    /// Results in a row that disagree with the current status (a server "going down" or
    /// "going up").
    pub fn streak(&self) -> u32 {
        self.streak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let mut rf = RiseFall::new(2, 3, true);
        assert_eq!(rf.record(false), None);
        assert_eq!(rf.record(false), None);
        assert_eq!(rf.streak(), 2);
        assert_eq!(rf.record(true), None, "a success breaks the failure streak");
        assert_eq!(rf.streak(), 0);
        assert_eq!(rf.record(false), None);
        assert_eq!(rf.record(false), None);
        assert_eq!(rf.record(false), Some(false));
        assert_eq!(rf.record(true), None);
        assert_eq!(rf.record(true), Some(true));
        assert!(rf.is_up());
    }
}
