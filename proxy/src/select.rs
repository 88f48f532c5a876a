//! Choosing a server for a new session: among UP servers with weight and a free slot, primaries
//! first and backups only when no primary is UP (the first usable one, or all of them with
//! `allbackups`), by `leastconn`, `roundrobin` or `first`. Weights are effective weights: a
//! server in its `slowstart` ramp counts for less.
//! Selection reads a snapshot of each server; it never decides health.

use std::sync::Mutex;

use ha_common::config::Balance;

/// What selection needs to know of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Passed the health checks (or is not checked).
    pub up: bool,
    /// Takes new sessions (not drained or in maintenance by the operator).
    pub ready: bool,
    pub backup: bool,
    /// The effective weight, in any unit shared by all candidates (see
    /// [`crate::server::WEIGHT_SCALE`]); 0 takes nothing.
    pub weight: u32,
    pub current: u32,
    pub maxconn: Option<u32>,
}

impl Candidate {
    fn usable(&self) -> bool {
        self.up && self.ready && self.weight > 0
    }

    fn has_slot(&self) -> bool {
        self.maxconn.is_none_or(|max| self.current < max)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Server(usize),
    /// Servers are usable but all at their maxconn: the session may queue.
    Full,
    /// No usable server at all.
    Unavailable,
}

/// Selection state of one proxy (the round-robin position).
pub struct Selector {
    algorithm: Balance,
    /// With no primary usable, use every usable backup, not only the first.
    all_backups: bool,
    /// Smooth weighted round robin: each server's running credit.
    credits: Mutex<Vec<i64>>,
}

impl Selector {
    pub fn new(algorithm: Balance, servers: usize) -> Self {
        Selector { algorithm, all_backups: false, credits: Mutex::new(vec![0; servers]) }
    }

    /// HAProxy's `option allbackups`: with no primary usable, spread over every usable backup.
    pub fn with_all_backups(mut self, all_backups: bool) -> Self {
        self.all_backups = all_backups;
        self
    }

    /// Chooses among `servers`, skipping the indices in `exclude` (servers a retry already
    /// failed on).
    pub fn choose(&self, servers: &[Candidate], exclude: &[usize]) -> Choice {
        let eligible = |backup: bool| -> Vec<usize> {
            (0..servers.len()).filter(|&i| servers[i].usable() && servers[i].backup == backup && !exclude.contains(&i)).collect()
        };
        let mut pool = eligible(false);
        if pool.is_empty() {
            pool = eligible(true);
            // As HAProxy: the first backup in configuration order takes everything, unless
            // `allbackups` spreads the load over them all.
            if !self.all_backups {
                pool.truncate(1);
            }
        }
        if pool.is_empty() {
            return Choice::Unavailable;
        }
        let free: Vec<usize> = pool.into_iter().filter(|&i| servers[i].has_slot()).collect();
        if free.is_empty() {
            return Choice::Full;
        }
        Choice::Server(match self.algorithm {
            Balance::First => free[0],
            Balance::LeastConn => self.least_connections(servers, &free),
            Balance::RoundRobin => self.round_robin(servers, &free),
        })
    }

    /// Fewest sessions per unit of weight; ties go round robin, so equal servers share the
    /// sessions of a reconnect storm instead of the first one taking them all.
    fn least_connections(&self, servers: &[Candidate], free: &[usize]) -> usize {
        let load = |i: usize| (u64::from(servers[i].current) + 1, u64::from(servers[i].weight));
        let best = free.iter().copied().min_by(|&a, &b| {
            let ((ca, wa), (cb, wb)) = (load(a), load(b));
            (ca * wb).cmp(&(cb * wa))
        });
        let best = best.unwrap_or(free[0]);
        let ties: Vec<usize> = free
            .iter()
            .copied()
            .filter(|&i| {
                let ((ci, wi), (cb, wb)) = (load(i), load(best));
                ci * wb == cb * wi
            })
            .collect();
        if ties.len() > 1 {
            self.round_robin(servers, &ties)
        } else {
            best
        }
    }

    /// Smooth weighted round robin (as nginx): every pick adds each server's weight to its
    /// credit and takes the total from the winner, which spreads picks evenly in proportion.
    fn round_robin(&self, servers: &[Candidate], free: &[usize]) -> usize {
        let mut credits = self.credits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if credits.len() != servers.len() {
            credits.resize(servers.len(), 0);
        }
        let total: i64 = free.iter().map(|&i| i64::from(servers[i].weight)).sum();
        for &i in free {
            credits[i] += i64::from(servers[i].weight);
        }
        let winner = free.iter().copied().max_by_key(|&i| (credits[i], std::cmp::Reverse(i))).unwrap_or(free[0]);
        credits[winner] -= total;
        winner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(current: u32) -> Candidate {
        Candidate { up: true, ready: true, backup: false, weight: 1, current, maxconn: None }
    }

    fn picks(selector: &Selector, servers: &[Candidate], n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| match selector.choose(servers, &[]) {
                Choice::Server(i) => i,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn leastconn_picks_the_least_loaded() {
        let s = Selector::new(Balance::LeastConn, 3);
        assert_eq!(s.choose(&[server(5), server(2), server(9)], &[]), Choice::Server(1));
    }

    #[test]
    fn leastconn_weighs_by_weight() {
        let s = Selector::new(Balance::LeastConn, 2);
        // 4 sessions on weight 3 is lighter than 2 on weight 1.
        let heavy = Candidate { weight: 3, ..server(4) };
        assert_eq!(s.choose(&[server(2), heavy], &[]), Choice::Server(1));
    }

    #[test]
    fn leastconn_spreads_ties() {
        let s = Selector::new(Balance::LeastConn, 3);
        let servers = [server(0), server(0), server(0)];
        let mut seen = picks(&s, &servers, 3);
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2]);
    }

    #[test]
    fn roundrobin_follows_weights_smoothly() {
        let s = Selector::new(Balance::RoundRobin, 3);
        let servers = [Candidate { weight: 3, ..server(0) }, server(0), server(0)];
        let p = picks(&s, &servers, 10);
        assert_eq!(p.iter().filter(|&&i| i == 0).count(), 6, "{p:?}");
        assert!(p.windows(2).all(|w| !(w[0] == 1 && w[1] == 1)), "{p:?}");
    }

    #[test]
    fn first_fills_servers_in_order() {
        let s = Selector::new(Balance::First, 2);
        let servers = [Candidate { maxconn: Some(2), ..server(2) }, server(0)];
        assert_eq!(s.choose(&servers, &[]), Choice::Server(1));
        let servers = [Candidate { maxconn: Some(2), ..server(1) }, server(0)];
        assert_eq!(s.choose(&servers, &[]), Choice::Server(0));
    }

    #[test]
    fn backups_serve_only_when_no_primary_is_up() {
        let s = Selector::new(Balance::LeastConn, 2);
        let backup = Candidate { backup: true, ..server(0) };
        assert_eq!(s.choose(&[server(100), backup], &[]), Choice::Server(0));
        let down = Candidate { up: false, ..server(0) };
        assert_eq!(s.choose(&[down, backup], &[]), Choice::Server(1));
    }

    #[test]
    fn only_the_first_usable_backup_serves_unless_allbackups() {
        let down = Candidate { up: false, ..server(0) };
        let backup = Candidate { backup: true, ..server(0) };
        let backup_down = Candidate { up: false, ..backup };
        let servers = [down, backup_down, backup, backup];
        let first = Selector::new(Balance::RoundRobin, 4);
        assert_eq!(picks(&first, &servers, 4), vec![2, 2, 2, 2], "the first UP backup takes everything");
        let all = Selector::new(Balance::RoundRobin, 4).with_all_backups(true);
        let mut spread = picks(&all, &servers, 4);
        spread.sort_unstable();
        assert_eq!(spread, vec![2, 2, 3, 3], "allbackups: every UP backup shares");
        let primary_up = [server(50), backup, backup];
        assert_eq!(all.choose(&primary_up, &[]), Choice::Server(0), "backups still wait for every primary to be down");
    }

    #[test]
    fn leastconn_sends_a_ramping_server_its_share_of_the_effective_weight() {
        // Two servers at full weight (16 each, WEIGHT_SCALE) with 10 sessions, one fresh server
        // a quarter into its slowstart (weight 4): it takes a session only while it holds
        // fewer than a quarter of what the others hold.
        let s = Selector::new(Balance::LeastConn, 3);
        let full = Candidate { weight: 16, ..server(10) };
        let ramping = |current| Candidate { weight: 4, ..server(current) };
        assert_eq!(s.choose(&[full, full, ramping(0)], &[]), Choice::Server(2));
        assert_eq!(s.choose(&[full, full, ramping(1)], &[]), Choice::Server(2), "2/4 < 11/16");
        assert_ne!(s.choose(&[full, full, ramping(2)], &[]), Choice::Server(2), "3/4 > 11/16");
    }

    #[test]
    fn a_full_primary_set_queues_rather_than_spilling_to_backups() {
        let s = Selector::new(Balance::LeastConn, 2);
        let full = Candidate { maxconn: Some(1), ..server(1) };
        let backup = Candidate { backup: true, ..server(0) };
        assert_eq!(s.choose(&[full, backup], &[]), Choice::Full);
    }

    #[test]
    fn drained_weight_zero_and_excluded_servers_take_nothing() {
        let s = Selector::new(Balance::RoundRobin, 3);
        let servers = [Candidate { ready: false, ..server(0) }, Candidate { weight: 0, ..server(0) }, server(0)];
        assert_eq!(picks(&s, &servers, 3), vec![2, 2, 2]);
        assert_eq!(s.choose(&servers, &[2]), Choice::Unavailable);
    }
}
