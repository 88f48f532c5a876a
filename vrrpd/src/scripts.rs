//! Running operator scripts: track scripts (exit status is health) and notify scripts. A script
//! runs as its configured user, is killed with its whole process group when it outlives its
//! timeout, and, when it would run as root, is refused if a non-root user could modify it
//! (keepalived's `enable_script_security`).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Pid, User};

/// A command line ready to run: program, arguments, and who runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The command line as configured, for logs.
    pub text: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Run as this user; `None` runs as the daemon's own user.
    pub user: Option<ScriptUser>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptError {
    #[error("script {0:?} is empty or its quoting is unbalanced")]
    Parse(String),
    #[error("script {script:?}: program {program:?} is not an executable file")]
    NotExecutable { script: String, program: String },
    #[error("script {script:?}: user {user:?} does not exist")]
    NoUser { script: String, user: String },
    #[error(
        "script {script:?} would run as root but {path} is writable by a non-root user; fix the \
         permissions, set script_user, or set enable_script_security = false"
    )]
    Unsafe { script: String, path: String },
    #[error(
        "script {script:?} is to run as {user}, but vrrpd runs as uid {uid} without the right to switch \
         users; drop script_user (scripts then run as vrrpd's user) or run vrrpd as root"
    )]
    CannotSwitchUser { script: String, user: String, uid: u32 },
}

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failed(Option<i32>),
    TimedOut,
    SpawnFailed(String),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        *self == Outcome::Success
    }
}

impl Script {
    /// Parses a command line (shell-like quoting, no shell) and resolves the program and user.
    pub fn parse(text: &str, user: Option<&str>) -> Result<Self, ScriptError> {
        let mut words = shlex::split(text).filter(|w| !w.is_empty()).ok_or_else(|| ScriptError::Parse(text.to_owned()))?;
        if words.is_empty() {
            return Err(ScriptError::Parse(text.to_owned()));
        }
        let program_word = words.remove(0);
        let program = resolve_program(&program_word)
            .ok_or_else(|| ScriptError::NotExecutable { script: text.to_owned(), program: program_word.clone() })?;
        let user = match user {
            Some(name) => {
                let found = User::from_name(name).ok().flatten();
                let found = found.ok_or_else(|| ScriptError::NoUser { script: text.to_owned(), user: name.to_owned() })?;
                Some(ScriptUser { name: name.to_owned(), uid: found.uid.as_raw(), gid: found.gid.as_raw() })
            }
            None => None,
        };
        Ok(Script { text: text.to_owned(), program, args: words, user })
    }

    /// Whether this script would run with root's privileges.
    pub fn runs_as_root(&self) -> bool {
        match &self.user {
            Some(user) => user.uid == 0,
            None => nix::unistd::geteuid().is_root(),
        }
    }

    /// keepalived's rule: a script run as root must not be modifiable by anyone else. Returns
    /// the first path that a non-root user could change. A daemon that is not root cannot run
    /// scripts as somebody else at all.
    pub fn check_security(&self) -> Result<(), ScriptError> {
        let me = nix::unistd::geteuid();
        if let Some(user) = &self.user {
            if !me.is_root() && user.uid != me.as_raw() {
                return Err(ScriptError::CannotSwitchUser {
                    script: self.text.clone(),
                    user: user.name.clone(),
                    uid: me.as_raw(),
                });
            }
        }
        if !self.runs_as_root() {
            return Ok(());
        }
        match writable_by_non_root(&self.program) {
            Some(path) => Err(ScriptError::Unsafe { script: self.text.clone(), path: path.display().to_string() }),
            None => Ok(()),
        }
    }

    /// Runs the script with `extra_args` appended; kills its process group after `timeout`.
    pub async fn run(&self, extra_args: &[&str], timeout: Duration) -> Outcome {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .process_group(0)
            .kill_on_drop(true);
        if let Some(user) = &self.user {
            command.uid(user.uid).gid(user.gid);
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return Outcome::SpawnFailed(e.to_string()),
        };
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Outcome::Success,
            Ok(Ok(status)) => Outcome::Failed(status.code()),
            Ok(Err(e)) => Outcome::SpawnFailed(e.to_string()),
            Err(_elapsed) => {
                // The script's own children go too: it leads its process group.
                if let Some(pid) = child.id() {
                    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                }
                let _ = child.kill().await;
                Outcome::TimedOut
            }
        }
    }
}

fn resolve_program(word: &str) -> Option<PathBuf> {
    let is_executable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0);
    if word.contains('/') {
        let path = PathBuf::from(word);
        return is_executable(&path).then_some(path);
    }
    ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(word))
        .find(|p| is_executable(p))
}

/// The first of `path` and its ancestors that a non-root user could modify: owned by someone
/// else, group-writable by a non-root group, or world-writable (a sticky directory such as
/// /tmp excepted: others cannot replace root's entries in it).
fn writable_by_non_root(path: &Path) -> Option<PathBuf> {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mut current = Some(path.as_path());
    while let Some(p) = current {
        let Ok(meta) = p.metadata() else { return Some(p.to_owned()) };
        let mode = meta.mode();
        let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
        let unsafe_here = meta.uid() != 0 || (mode & 0o020 != 0 && meta.gid() != 0) || (mode & 0o002 != 0 && !sticky_dir);
        if unsafe_here {
            return Some(p.to_owned());
        }
        current = p.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    use super::*;

    fn script_file(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn parses_quoting_and_finds_programs_on_the_path() {
        let s = Script::parse("test -e '/etc/a file'", None).unwrap();
        assert!(s.program.ends_with("test"));
        assert_eq!(s.args, vec!["-e", "/etc/a file"]);
        assert!(matches!(Script::parse("", None), Err(ScriptError::Parse(_))));
        assert!(matches!(Script::parse("'unbalanced", None), Err(ScriptError::Parse(_))));
        assert!(matches!(Script::parse("/nonexistent/check", None), Err(ScriptError::NotExecutable { .. })));
        assert!(matches!(Script::parse("true", Some("no-such-user-here")), Err(ScriptError::NoUser { .. })));
    }

    #[tokio::test]
    async fn exit_status_is_the_outcome() {
        assert_eq!(Script::parse("true", None).unwrap().run(&[], Duration::from_secs(5)).await, Outcome::Success);
        assert_eq!(Script::parse("false", None).unwrap().run(&[], Duration::from_secs(5)).await, Outcome::Failed(Some(1)));
    }

    #[tokio::test]
    async fn extra_arguments_are_appended() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("args");
        let script = script_file(dir.path(), "notify.sh", &format!("echo \"$@\" > {}", out.display()), 0o755);
        let s = Script::parse(&format!("{} first", script.display()), None).unwrap();
        assert!(s.run(&["INSTANCE", "VI_1", "MASTER", "101"], Duration::from_secs(5)).await.is_success());
        assert_eq!(std::fs::read_to_string(out).unwrap(), "first INSTANCE VI_1 MASTER 101\n");
    }

    #[tokio::test]
    async fn a_hung_script_is_killed_with_its_children_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let script = script_file(dir.path(), "hang.sh", &format!("sleep 60 & echo $! > {}; wait", pidfile.display()), 0o755);
        let s = Script::parse(script.to_str().unwrap(), None).unwrap();
        let started = Instant::now();
        assert_eq!(s.run(&[], Duration::from_millis(300)).await, Outcome::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        let child: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        // The grandchild got SIGKILL with the group; give the kernel a moment to reap it.
        let mut gone = false;
        for _ in 0..50 {
            let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            if state.is_empty() || state.split_whitespace().nth(2) == Some("Z") {
                gone = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(gone, "the script's child outlived the timeout");
    }

    #[test]
    fn security_refuses_root_scripts_others_can_modify() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("security_refuses_root_scripts_others_can_modify: SKIPPED, needs root");
            return;
        }
        // A root-owned directory, so that only the file's mode decides.
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let safe = script_file(dir.path(), "safe.sh", "exit 0", 0o755);
        assert_eq!(Script::parse(safe.to_str().unwrap(), None).unwrap().check_security(), Ok(()));
        let world_writable = script_file(dir.path(), "open.sh", "exit 0", 0o757);
        let err = Script::parse(world_writable.to_str().unwrap(), None).unwrap().check_security().unwrap_err();
        assert!(matches!(err, ScriptError::Unsafe { ref path, .. } if path.ends_with("open.sh")), "{err}");
        let nobody = User::from_name("nobody").unwrap().unwrap();
        nix::unistd::chown(&safe, Some(nobody.uid), None).unwrap();
        assert!(Script::parse(safe.to_str().unwrap(), None).unwrap().check_security().is_err(), "owned by nobody");
        // Run as an unprivileged user, the same script is not a root risk.
        assert_eq!(Script::parse(safe.to_str().unwrap(), Some("nobody")).unwrap().check_security(), Ok(()));
    }
}
