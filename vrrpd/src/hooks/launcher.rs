//! Running scripts as `script_user` without vrrpd holding the right to change users.
//!
//! Switching users needs CAP_SETUID and CAP_SETGID, which are as good as root. When a script
//! must run as another user and vrrpd is not root (under the shipped unit, or after dropping
//! to `[global] user`), vrrpd forks at start, before any thread exists, and splits: the child,
//! the launcher, keeps those two capabilities and nothing else; vrrpd keeps everything else and
//! gives those two up for good. The launcher only starts scripts, only as the users configured
//! at start (never root), each confined as [`super::spawn`] confines them, and dies with vrrpd.
//! They talk over a socketpair: one datagram per request, one per answer.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram as StdDatagram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use caps::{CapSet, Capability, CapsHashSet};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use tokio::net::UnixDatagram;
use tokio::sync::{oneshot, OnceCell};
use tracing::{error, info};

use super::script::Outcome;
use super::spawn::{self, Invocation};

/// What the launcher keeps, and vrrpd gives up.
pub const SWITCH_USERS: [Capability; 2] = [Capability::CAP_SETUID, Capability::CAP_SETGID];
/// A request or answer never comes near this.
const DATAGRAM: usize = 64 * 1024;
/// Beyond a script's own timeout, how long vrrpd waits for the launcher's answer.
const ANSWER_GRACE: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
struct Request {
    id: u64,
    invocation: Invocation,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    id: u64,
    outcome: Outcome,
}

#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    #[error("cannot start the script launcher: vrrpd already runs {0} threads (it must fork before any)")]
    Threads(usize),
    #[error("cannot start the script launcher: {what}: {source}")]
    Io { what: &'static str, source: io::Error },
    #[error("cannot start the script launcher: {what}: {reason}")]
    Capabilities { what: &'static str, reason: String },
}

/// vrrpd's side: sends requests, matches answers.
pub struct Launcher {
    socket: StdDatagram,
    /// uid -> the primary gid it runs with.
    users: BTreeMap<u32, u32>,
    next_id: AtomicU64,
    connection: OnceCell<Connection>,
}

struct Connection {
    socket: Arc<UnixDatagram>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Outcome>>>>,
}

static LAUNCHER: OnceLock<Launcher> = OnceLock::new();

/// The launcher, when vrrpd started one.
pub fn get() -> Option<&'static Launcher> {
    LAUNCHER.get()
}

/// Whether this process can switch to `uid` for a script: as root, or through the launcher.
pub fn can_run_as(uid: u32) -> bool {
    let me = nix::unistd::geteuid();
    me.is_root() || me.as_raw() == uid || get().is_some_and(|l| l.users.contains_key(&uid))
}

/// Whether this process holds what switching users takes (CAP_SETUID and CAP_SETGID).
pub fn holds_switch_capabilities() -> bool {
    caps::read(None, CapSet::Permitted).is_ok_and(|set| SWITCH_USERS.iter().all(|c| set.contains(c)))
}

/// Splits off the launcher for scripts that run as `users` (other than this process's own,
/// never root). Call from `main` while no other thread exists. Afterwards this process holds
/// neither CAP_SETUID nor CAP_SETGID, whether or not a launcher was needed.
pub fn split(users: BTreeMap<u32, u32>) -> Result<(), LauncherError> {
    let me = nix::unistd::geteuid().as_raw();
    let users: BTreeMap<u32, u32> = users.into_iter().filter(|&(uid, gid)| uid != 0 && gid != 0 && uid != me).collect();
    if users.is_empty() || !holds_switch_capabilities() {
        return give_up_switching();
    }
    let threads = std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(usize::MAX);
    if threads != 1 {
        return Err(LauncherError::Threads(threads));
    }
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| LauncherError::Io { what: "socketpair", source: e.into() })?;
    // SAFETY: this process has one thread (checked above), so the child starts from a
    // consistent state; it runs only the launcher and exits without returning here.
    #[allow(unsafe_code)]
    match unsafe { nix::unistd::fork() }.map_err(|e| LauncherError::Io { what: "fork", source: e.into() })? {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            let code = match serve(theirs, &users) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("vrrpd launcher: {e}");
                    1
                }
            };
            std::process::exit(code);
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(theirs);
            give_up_switching()?;
            info!(pid = child.as_raw(), users = ?users, "script launcher started: vrrpd no longer holds CAP_SETUID/CAP_SETGID");
            let socket = StdDatagram::from(ours);
            let launcher = Launcher { socket, users, next_id: AtomicU64::new(0), connection: OnceCell::new() };
            let _ = LAUNCHER.set(launcher);
            Ok(())
        }
    }
}

/// Drops CAP_SETUID and CAP_SETGID from every set of this process, for good.
fn give_up_switching() -> Result<(), LauncherError> {
    let fail = |what| move |e: caps::errors::CapsError| LauncherError::Capabilities { what, reason: e.to_string() };
    for capability in SWITCH_USERS {
        caps::drop(None, CapSet::Ambient, capability).map_err(fail("drop from the ambient set"))?;
        caps::drop(None, CapSet::Effective, capability).map_err(fail("drop from the effective set"))?;
        caps::drop(None, CapSet::Permitted, capability).map_err(fail("drop from the permitted set"))?;
        caps::drop(None, CapSet::Inheritable, capability).map_err(fail("drop from the inheritable set"))?;
    }
    Ok(())
}

impl Launcher {
    /// Runs `invocation` through the launcher; a launcher that is gone or does not answer is a
    /// failed run, never a hang.
    pub async fn run(&self, invocation: Invocation) -> Outcome {
        let Some((uid, _)) = invocation.user else { return spawn::run(invocation).await };
        if !self.users.contains_key(&uid) {
            return Outcome::SpawnFailed(format!("uid {uid} was not a script user when vrrpd started: restart vrrpd"));
        }
        let connection = match self.connection.get_or_try_init(|| async { self.connect() }).await {
            Ok(connection) => connection,
            Err(e) => return Outcome::SpawnFailed(format!("script launcher: {e}")),
        };
        let id = self.next_id.fetch_add(1, Relaxed);
        let wait = invocation.timeout + ANSWER_GRACE;
        let Ok(request) = serde_json::to_vec(&Request { id, invocation }) else {
            return Outcome::SpawnFailed("script launcher: unencodable request".to_owned());
        };
        let (answer, answered) = oneshot::channel();
        lock(&connection.waiting).insert(id, answer);
        // Whatever happens next, the entry goes: answered, failed, timed out or dropped.
        let _forget = Forget { waiting: Arc::clone(&connection.waiting), id };
        // Sending too: a launcher that stopped reading must not hold this run (and the notify
        // queue behind it) forever.
        let exchange = async {
            connection.socket.send(&request).await.map_err(|e| Outcome::SpawnFailed(format!("script launcher: {e}")))?;
            answered.await.map_err(|_| Outcome::SpawnFailed("script launcher is gone".to_owned()))
        };
        match tokio::time::timeout(wait, exchange).await {
            Ok(Ok(outcome) | Err(outcome)) => outcome,
            Err(_) => Outcome::TimedOut,
        }
    }

    /// The async side of the socket and the task that hands answers to their requests; made on
    /// first use, on the runtime that uses it.
    fn connect(&self) -> io::Result<Connection> {
        let socket = self.socket.try_clone()?;
        socket.set_nonblocking(true)?;
        let socket = Arc::new(UnixDatagram::from_std(socket)?);
        let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Outcome>>>> = Arc::default();
        let (reader, table) = (Arc::clone(&socket), Arc::clone(&waiting));
        tokio::spawn(async move {
            let mut buf = vec![0u8; DATAGRAM];
            loop {
                match reader.recv(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let Ok(answer) = serde_json::from_slice::<Answer>(&buf[..n]) else { continue };
                        if let Some(waiter) = lock(&table).remove(&answer.id) {
                            let _ = waiter.send(answer.outcome);
                        }
                    }
                }
            }
            error!("the script launcher is gone: scripts for other users fail until vrrpd restarts");
            lock(&table).clear();
        });
        Ok(Connection { socket, waiting })
    }
}

struct Forget {
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Outcome>>>>,
    id: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        lock(&self.waiting).remove(&self.id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Exactly a configured user with its own primary group: a compromised vrrpd gets nothing
/// through the launcher that script_user does not have (not root, not another group).
fn allowed(users: &BTreeMap<u32, u32>, invocation: &Invocation) -> bool {
    invocation.user.is_some_and(|(uid, gid)| users.get(&uid) == Some(&gid))
}

/// The launcher process: keeps CAP_SETUID and CAP_SETGID only, dies with vrrpd, and runs
/// scripts for the allowed users until vrrpd closes its end.
fn serve(socket: OwnedFd, users: &BTreeMap<u32, u32>) -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(|e| format!("death signal: {e}"))?;
    if nix::unistd::getppid().as_raw() == 1 {
        return Err("vrrpd is already gone".to_owned());
    }
    let _ = nix::sys::prctl::set_name(c"vrrpd-launcher");
    let keep: CapsHashSet = SWITCH_USERS.into_iter().collect();
    caps::clear(None, CapSet::Ambient).map_err(|e| e.to_string())?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(|e| e.to_string())?;
    caps::set(None, CapSet::Effective, &keep).map_err(|e| e.to_string())?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| e.to_string())?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let socket = StdDatagram::from(socket);
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let socket = Arc::new(UnixDatagram::from_std(socket).map_err(|e| e.to_string())?);
        let mut buf = vec![0u8; DATAGRAM];
        loop {
            let n = match socket.recv(&mut buf).await {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => n,
            };
            let Ok(request) = serde_json::from_slice::<Request>(&buf[..n]) else { continue };
            let allowed = allowed(users, &request.invocation);
            let socket = Arc::clone(&socket);
            tokio::spawn(async move {
                let outcome = if allowed {
                    spawn::run(request.invocation).await
                } else {
                    Outcome::SpawnFailed("the launcher runs scripts only as the script users configured at start".to_owned())
                };
                if let Ok(answer) = serde_json::to_vec(&Answer { id: request.id, outcome }) {
                    let _ = socket.send(&answer).await;
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launcher_runs_only_configured_users_with_their_own_group() {
        let users = BTreeMap::from([(1000, 1000)]);
        let run_as = |user| Invocation {
            program: "/bin/true".into(),
            arg0: "/bin/true".into(),
            args: Vec::new(),
            user,
            timeout: Duration::from_secs(1),
        };
        assert!(allowed(&users, &run_as(Some((1000, 1000)))));
        assert!(!allowed(&users, &run_as(Some((1000, 27)))), "another group (sudo, docker, shadow...)");
        assert!(!allowed(&users, &run_as(Some((0, 0)))), "root");
        assert!(!allowed(&users, &run_as(Some((1001, 1001)))), "a user not configured at start");
        assert!(!allowed(&users, &run_as(None)), "the launcher's own identity");
    }
}
