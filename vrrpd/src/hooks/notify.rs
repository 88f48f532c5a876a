//! Notify scripts, keepalived style: on each transition the state's own script
//! (`notify_master`, `notify_backup`, `notify_fault`, `notify_stop`) runs as configured, then
//! `notify` runs with `INSTANCE <name> <STATE> <priority>` appended (a `vrrp_sync_group`'s,
//! with `GROUP <name> <STATE> 0`, when the group as a whole changes state). One queue for the whole
//! daemon runs them one at a time, so they are delivered in order, and the protocol never
//! waits for them.
//!
//! The queue holds at most one waiting job per instance: a transition that arrives while an
//! older one of the same instance still waits replaces it (the older is stale: the instance
//! has left that state), and is counted. Jobs are never reordered: what runs, runs in the order
//! its transitions happened, and the last state of every instance is always delivered.
//! keepalived forks every notify script at once instead, in no guaranteed order; a flapping
//! instance there runs every stale script too.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::hooks::script::{Outcome, Script};
use vrrp_core::instance::State;

/// A notify script that outlives this is killed, so one stuck script cannot hold the queue.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// An instance's notify scripts, parsed and checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifyScripts {
    pub any: Option<Script>,
    pub master: Option<Script>,
    pub backup: Option<Script>,
    pub fault: Option<Script>,
    pub stop: Option<Script>,
}

impl NotifyScripts {
    pub fn is_empty(&self) -> bool {
        *self == NotifyScripts::default()
    }
}

/// The word keepalived passes for a state: leaving for Initialize is STOP.
pub fn state_word(state: State) -> &'static str {
    match state {
        State::Initialize => "STOP",
        other => other.as_str(),
    }
}

struct Job {
    /// `INSTANCE` or `GROUP`: what `instance` names.
    kind: &'static str,
    instance: String,
    state: State,
    priority: u8,
    scripts: Arc<NotifyScripts>,
}

#[derive(Default)]
struct Queue {
    waiting: Mutex<VecDeque<Job>>,
    wake: Notify,
    /// Jobs replaced by a newer transition of the same instance before they ran.
    coalesced: AtomicU64,
}

#[derive(Clone)]
pub struct Notifier {
    queue: Arc<Queue>,
    /// The worker ends once every notifier is gone (this channel closes) and nothing waits.
    _alive: mpsc::Sender<()>,
}

impl Notifier {
    /// Starts the queue on `tasks`; it ends once every `Notifier` is dropped and the queue is
    /// empty, so a stopping daemon that waits on `tasks` delivers what is pending.
    pub fn spawn(tasks: &TaskTracker) -> Notifier {
        let queue = Arc::new(Queue::default());
        let (alive, mut gone) = mpsc::channel::<()>(1);
        let worker = Arc::clone(&queue);
        tasks.spawn(async move {
            let mut closing = false;
            loop {
                let next = worker.lock().pop_front();
                match next {
                    Some(job) => run_job(&job).await,
                    None if closing => return,
                    None => tokio::select! {
                        () = worker.wake.notified() => {}
                        _ = gone.recv() => closing = true,
                    },
                }
            }
        });
        Notifier { queue, _alive: alive }
    }

    pub fn notify(&self, instance: &str, state: State, priority: u8, scripts: &Arc<NotifyScripts>) {
        self.enqueue("INSTANCE", instance, state, priority, scripts);
    }

    /// A sync group's transition: its scripts, `notify` with `GROUP <name> <STATE> 0`.
    pub fn notify_group(&self, group: &str, state: State, scripts: &Arc<NotifyScripts>) {
        self.enqueue("GROUP", group, state, 0, scripts);
    }

    fn enqueue(&self, kind: &'static str, instance: &str, state: State, priority: u8, scripts: &Arc<NotifyScripts>) {
        if scripts.is_empty() {
            return;
        }
        let job = Job { kind, instance: instance.to_owned(), state, priority, scripts: Arc::clone(scripts) };
        let mut waiting = self.queue.lock();
        if let Some(stale) = waiting.iter().position(|j| j.kind == kind && j.instance == instance) {
            let replaced = waiting.remove(stale).map(|j| j.state);
            let total = self.queue.coalesced.fetch_add(1, Relaxed) + 1;
            debug!(instance, stale = ?replaced, now = %state, coalesced_total = total, "a waiting notify job was replaced by a newer transition");
        }
        waiting.push_back(job);
        drop(waiting);
        self.queue.wake.notify_one();
    }

    /// How many waiting jobs newer transitions replaced.
    pub fn coalesced(&self) -> u64 {
        self.queue.coalesced.load(Relaxed)
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn run_job(job: &Job) {
    let specific = match job.state {
        State::Master => &job.scripts.master,
        State::Backup => &job.scripts.backup,
        State::Fault => &job.scripts.fault,
        State::Initialize => &job.scripts.stop,
    };
    if let Some(script) = specific {
        report(job, script, script.run(&[], NOTIFY_TIMEOUT).await);
    }
    if let Some(script) = &job.scripts.any {
        let priority = job.priority.to_string();
        let args = [job.kind, job.instance.as_str(), state_word(job.state), priority.as_str()];
        report(job, script, script.run(&args, NOTIFY_TIMEOUT).await);
    }
}

fn report(job: &Job, script: &Script, outcome: Outcome) {
    if outcome.is_success() {
        debug!(kind = job.kind, instance = %job.instance, state = state_word(job.state), script = %script.text, "notify script ran");
    } else {
        warn!(kind = job.kind, instance = %job.instance, state = state_word(job.state), script = %script.text, ?outcome, "notify script failed");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn a_flapping_instance_leaves_one_waiting_job_and_order_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let script = dir.path().join("notify.sh");
        std::fs::write(&script, format!("#!/bin/sh\nsleep 0.3\necho \"$2 $3\" >> {}\n", log.display())).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let scripts = Arc::new(NotifyScripts {
            any: Some(Script::parse(script.to_str().unwrap(), None).unwrap()),
            ..NotifyScripts::default()
        });
        let tasks = TaskTracker::new();
        let notifier = Notifier::spawn(&tasks);
        notifier.notify("VI_1", State::Master, 101, &scripts);
        tokio::time::sleep(Duration::from_millis(50)).await; // VI_1 MASTER is running now
        for state in [State::Backup, State::Master, State::Fault] {
            notifier.notify("VI_1", state, 101, &scripts);
        }
        notifier.notify("VI_2", State::Backup, 100, &scripts);
        notifier.notify("VI_1", State::Backup, 101, &scripts);
        assert_eq!(notifier.coalesced(), 3);
        drop(notifier);
        tasks.close();
        tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await.unwrap();
        let ran = std::fs::read_to_string(&log).unwrap();
        assert_eq!(ran, "VI_1 MASTER\nVI_2 BACKUP\nVI_1 BACKUP\n", "stale VI_1 jobs dropped, order kept, last state delivered");
    }
}
