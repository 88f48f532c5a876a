//! Notify scripts, keepalived style: on each transition the state's own script
//! (`notify_master`, `notify_backup`, `notify_fault`, `notify_stop`) runs as configured, then
//! `notify` runs with `INSTANCE <name> <STATE> <priority>` appended. One queue for the whole
//! daemon runs them one at a time, so they are delivered in order, and the protocol never
//! waits for them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
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
    instance: String,
    state: State,
    priority: u8,
    scripts: Arc<NotifyScripts>,
}

#[derive(Clone)]
pub struct Notifier {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Notifier {
    /// Starts the queue on `tasks`; it ends once every `Notifier` is dropped and the queue is
    /// empty, so a stopping daemon that waits on `tasks` delivers what is pending.
    pub fn spawn(tasks: &TaskTracker) -> Notifier {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        tasks.spawn(async move {
            while let Some(job) = queue.recv().await {
                run_job(&job).await;
            }
        });
        Notifier { jobs }
    }

    pub fn notify(&self, instance: &str, state: State, priority: u8, scripts: &Arc<NotifyScripts>) {
        if scripts.is_empty() {
            return;
        }
        let job = Job { instance: instance.to_owned(), state, priority, scripts: Arc::clone(scripts) };
        if self.jobs.send(job).is_err() {
            warn!(instance, state = %state, "notify queue is closed; script not run");
        }
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
        let args = ["INSTANCE", job.instance.as_str(), state_word(job.state), priority.as_str()];
        report(job, script, script.run(&args, NOTIFY_TIMEOUT).await);
    }
}

fn report(job: &Job, script: &Script, outcome: Outcome) {
    if outcome.is_success() {
        debug!(instance = %job.instance, state = state_word(job.state), script = %script.text, "notify script ran");
    } else {
        warn!(instance = %job.instance, state = state_word(job.state), script = %script.text, ?outcome, "notify script failed");
    }
}
