//! The state of each `vrrp_sync_group` as a whole, for its notify scripts. Its members may run
//! in different drivers (one per interface), so each driver reports its members' transitions
//! here and runs the group's scripts when the group's state changes, as keepalived does:
//! MASTER once every member is MASTER, FAULT as soon as one is, BACKUP otherwise, STOP once
//! every member has stopped. A group goes through each state once, however many members move.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tracing::info;
use vrrp_core::instance::State;

use crate::hooks::notify::{state_word, NotifyScripts};

/// One group: its members' last states and its own.
struct Group {
    name: String,
    members: Vec<(String, Option<State>)>,
    state: Option<State>,
    scripts: Arc<NotifyScripts>,
}

impl Group {
    /// What the members' states make of the group; `None` while that is not decided (no
    /// member has started yet, or some but not all have stopped).
    fn derived(&self) -> Option<State> {
        let states: Vec<Option<State>> = self.members.iter().map(|(_, s)| *s).collect();
        if states.contains(&Some(State::Fault)) {
            return Some(State::Fault);
        }
        if states.iter().all(|s| *s == Some(State::Master)) {
            return Some(State::Master);
        }
        if states.iter().all(|s| *s == Some(State::Initialize)) {
            return Some(State::Initialize);
        }
        if states.iter().any(|s| s.is_none() || *s == Some(State::Initialize)) {
            // Starting or stopping member by member: the group waits for the rest.
            return None;
        }
        Some(State::Backup)
    }
}

/// A group's state change to notify.
#[derive(Debug, PartialEq)]
pub struct GroupChange {
    pub group: String,
    pub from: Option<State>,
    pub to: State,
    pub scripts: Arc<NotifyScripts>,
}

#[derive(Default)]
struct Inner {
    groups: Vec<Group>,
    /// Every instance's last state, group member or not: an instance a reload puts in a group
    /// keeps its state there (a reload changes no kept instance's state).
    last: HashMap<String, State>,
}

/// Every group's state, shared by the drivers. The drivers run on one thread and nothing
/// awaits between a member's report and the group's notify job, so group jobs are queued in
/// the order the group changed; the lock keeps that true if that ever changes.
#[derive(Clone, Default)]
pub struct SyncGroups {
    inner: Arc<Mutex<Inner>>,
}

impl SyncGroups {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each update is whole before the lock is let go; a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the groups (at start and at each reload). Members keep the states last reported
    /// (a kept instance does not move at a reload); a kept group keeps its state, and a new or
    /// changed one takes what its members make of it without running a script: a reload runs
    /// scripts only for what moves after it.
    pub fn configure(&self, groups: Vec<(String, Vec<String>, Arc<NotifyScripts>)>) {
        let mut inner = self.lock();
        let Inner { groups: current, last } = &mut *inner;
        let mut old: HashMap<String, Group> = current.drain(..).map(|g| (g.name.clone(), g)).collect();
        for (name, members, scripts) in groups {
            let members: Vec<(String, Option<State>)> = members
                .into_iter()
                .map(|m| {
                    let state = last.get(&m).copied();
                    (m, state)
                })
                .collect();
            let mut group = Group { name, members, state: None, scripts };
            group.state = match old.remove(&group.name) {
                Some(kept) if kept.members == group.members => kept.state,
                _ => group.derived(),
            };
            current.push(group);
        }
    }

    /// Records a member's transition; returns the group's change when there is one.
    pub fn member_moved(&self, instance: &str, to: State) -> Option<GroupChange> {
        let mut inner = self.lock();
        inner.last.insert(instance.to_owned(), to);
        let group = inner.groups.iter_mut().find(|g| g.members.iter().any(|(m, _)| m == instance))?;
        for (member, state) in &mut group.members {
            if member == instance {
                *state = Some(to);
            }
        }
        let now = group.derived()?;
        if group.state == Some(now) {
            return None;
        }
        let from = group.state.replace(now);
        info!(group = %group.name, from = from.map_or("none", state_word), to = state_word(now), "sync group state change");
        Some(GroupChange { group: group.name.clone(), from, to: now, scripts: Arc::clone(&group.scripts) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> SyncGroups {
        let groups = SyncGroups::default();
        groups.configure(vec![("G1".into(), vec!["VI_1".into(), "VI_2".into()], Arc::default())]);
        groups
    }

    fn moved(groups: &SyncGroups, instance: &str, to: State) -> Option<State> {
        groups.member_moved(instance, to).map(|c| c.to)
    }

    #[test]
    fn a_group_changes_once_per_state_whatever_its_members_do() {
        let g = groups();
        assert_eq!(moved(&g, "VI_1", State::Backup), None, "VI_2 has not started: undecided");
        assert_eq!(moved(&g, "VI_2", State::Backup), Some(State::Backup));
        assert_eq!(moved(&g, "VI_1", State::Master), None, "half master is still BACKUP");
        assert_eq!(moved(&g, "VI_2", State::Master), Some(State::Master));
        assert_eq!(moved(&g, "VI_1", State::Fault), Some(State::Fault));
        assert_eq!(moved(&g, "VI_2", State::Fault), None, "already FAULT");
        assert_eq!(moved(&g, "VI_1", State::Backup), None, "VI_2 still in FAULT");
        assert_eq!(moved(&g, "VI_2", State::Backup), Some(State::Backup));
        assert_eq!(moved(&g, "VI_1", State::Initialize), None, "stopping member by member");
        assert_eq!(moved(&g, "VI_2", State::Initialize), Some(State::Initialize));
        assert_eq!(moved(&g, "VI_3", State::Master), None, "not a member of any group");
    }

    #[test]
    fn a_reload_keeps_an_unchanged_group_and_restarts_a_changed_one() {
        let g = groups();
        moved(&g, "VI_1", State::Master);
        assert_eq!(moved(&g, "VI_2", State::Master), Some(State::Master));
        g.configure(vec![("G1".into(), vec!["VI_1".into(), "VI_2".into()], Arc::default())]);
        assert_eq!(moved(&g, "VI_2", State::Master), None, "kept: still MASTER, nothing to run");
        g.configure(vec![("G1".into(), vec!["VI_1".into(), "VI_3".into()], Arc::default())]);
        assert_eq!(moved(&g, "VI_3", State::Backup), Some(State::Backup), "VI_1 kept its MASTER; VI_3 new");
        assert_eq!(moved(&g, "VI_3", State::Master), Some(State::Master));
        g.configure(vec![("G2".into(), vec!["VI_1".into(), "VI_3".into()], Arc::default())]);
        assert_eq!(moved(&g, "VI_3", State::Master), None, "a renamed group starts from its members' states");
        assert_eq!(moved(&g, "VI_1", State::Backup), Some(State::Backup));
        // An instance outside every group, put in one by a reload, brings its state along.
        assert_eq!(moved(&g, "VI_9", State::Master), None);
        g.configure(vec![("G3".into(), vec!["VI_9".into(), "VI_3".into()], Arc::default())]);
        assert_eq!(moved(&g, "VI_3", State::Fault), Some(State::Fault));
        assert_eq!(moved(&g, "VI_3", State::Master), Some(State::Master), "VI_9 was MASTER all along");
    }
}
