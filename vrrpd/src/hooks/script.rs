//! Running operator scripts: track scripts (exit status is health) and notify scripts. A script
//! runs as its configured user with no capability at all (nor any way to gain one), no
//! inherited descriptor and a clean environment; it is killed with its whole process group when
//! it outlives its timeout. When it would run with vrrpd's privileges (as root, or as vrrpd's
//! own user while vrrpd holds capabilities), it is refused if anyone but root could modify the
//! program, a directory on its path, a symlink's target, or a file its arguments name
//! (keepalived's `enable_script_security`, applied whenever it matters).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::User;
use serde::{Deserialize, Serialize};

use ha_common::file_safety::modifiable_by_others;

use super::launcher;
use super::spawn::{self, Invocation};

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
         users: give it CAP_SETUID and CAP_SETGID (the shipped unit does; vrrpd hands them to its script \
         launcher at start and drops them), or drop script_user (scripts then run as vrrpd's user)"
    )]
    CannotSwitchUser { script: String, user: String, uid: u32 },
}

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

    /// Whether this script would run with vrrpd's privileges: as root, or as vrrpd's own user
    /// while vrrpd holds capabilities (a script of the same user could drive vrrpd's control
    /// socket or its files).
    pub fn runs_privileged(&self) -> bool {
        let me = nix::unistd::geteuid();
        match &self.user {
            Some(user) if user.uid == 0 => true,
            Some(user) if user.uid != me.as_raw() => false,
            _ => me.is_root() || holds_capabilities(),
        }
    }

    /// keepalived's rule, wherever it matters: a script that runs privileged must not be
    /// modifiable by anyone but root. Returns the first path that someone else could change:
    /// the program, any directory on the way to it, any symlink's target, or a file named in
    /// its arguments (`/bin/sh /home/ops/check.sh`). A daemon that is not root cannot run
    /// scripts as somebody else at all.
    pub fn check_security(&self) -> Result<(), ScriptError> {
        let me = nix::unistd::geteuid();
        if let Some(user) = &self.user {
            if !launcher::can_run_as(user.uid) {
                return Err(ScriptError::CannotSwitchUser {
                    script: self.text.clone(),
                    user: user.name.clone(),
                    uid: me.as_raw(),
                });
            }
        }
        if !self.runs_privileged() {
            return Ok(());
        }
        let named_files = self.args.iter().map(PathBuf::from).filter(|a| a.is_absolute() && a.exists());
        for path in std::iter::once(self.program.clone()).chain(named_files) {
            if let Some(unsafe_path) = modifiable_by_others(&path) {
                return Err(ScriptError::Unsafe { script: self.text.clone(), path: unsafe_path.display().to_string() });
            }
        }
        Ok(())
    }

    /// Runs the script with `extra_args` appended; kills its process group after `timeout`.
    /// A script for another user goes through the launcher when vrrpd cannot switch users
    /// itself.
    pub async fn run(&self, extra_args: &[&str], timeout: Duration) -> Outcome {
        let invocation = Invocation {
            // The program that was checked, symlinks resolved, is what runs; argv[0] stays as
            // written.
            program: self.program.canonicalize().unwrap_or_else(|_| self.program.clone()),
            arg0: self.program.clone(),
            args: self.args.iter().cloned().chain(extra_args.iter().map(|a| (*a).to_owned())).collect(),
            user: self.user.as_ref().map(|u| (u.uid, u.gid)),
            timeout,
        };
        match (&self.user, launcher::get()) {
            (Some(user), Some(launcher)) if user.uid != nix::unistd::geteuid().as_raw() && !nix::unistd::geteuid().is_root() => {
                launcher.run(invocation).await
            }
            _ => spawn::run(invocation).await,
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

/// Whether this process holds any capability (permitted or ambient).
fn holds_capabilities() -> bool {
    use caps::CapSet;
    [CapSet::Permitted, CapSet::Ambient].into_iter().any(|set| caps::read(None, set).is_ok_and(|c| !c.is_empty()))
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

    /// A directory only root can write to, and one anybody can.
    fn safe_and_open_dirs() -> (tempfile::TempDir, tempfile::TempDir) {
        let safe = tempfile::tempdir_in("/var/tmp").unwrap();
        std::fs::set_permissions(safe.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let open = tempfile::tempdir_in("/var/tmp").unwrap();
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        (safe, open)
    }

    #[test]
    fn security_follows_symlinks_to_what_actually_runs() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("security_follows_symlinks_to_what_actually_runs: SKIPPED, needs root");
            return;
        }
        let (safe, open) = safe_and_open_dirs();
        // A safe link to a file anybody can replace.
        let writable_target = script_file(open.path(), "real.sh", "exit 0", 0o755);
        let link = safe.path().join("check.sh");
        std::os::unix::fs::symlink(&writable_target, &link).unwrap();
        let err = Script::parse(link.to_str().unwrap(), None).unwrap().check_security().unwrap_err();
        assert!(matches!(&err, ScriptError::Unsafe { path, .. } if Path::new(path) == open.path()), "{err}");
        // A safe file behind a link anybody can replace.
        let safe_target = script_file(safe.path(), "safe.sh", "exit 0", 0o755);
        let swappable = open.path().join("check.sh");
        std::os::unix::fs::symlink(&safe_target, &swappable).unwrap();
        let err = Script::parse(swappable.to_str().unwrap(), None).unwrap().check_security().unwrap_err();
        assert!(matches!(&err, ScriptError::Unsafe { path, .. } if Path::new(path) == open.path()), "{err}");
    }

    #[test]
    fn security_checks_files_an_interpreter_is_given() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("security_checks_files_an_interpreter_is_given: SKIPPED, needs root");
            return;
        }
        let (safe, open) = safe_and_open_dirs();
        let ok = script_file(safe.path(), "ok.sh", "exit 0", 0o644);
        assert_eq!(Script::parse(&format!("/bin/sh {}", ok.display()), None).unwrap().check_security(), Ok(()));
        let writable = script_file(open.path(), "check.sh", "exit 0", 0o644);
        let err = Script::parse(&format!("/bin/sh {}", writable.display()), None).unwrap().check_security().unwrap_err();
        assert!(matches!(&err, ScriptError::Unsafe { path, .. } if Path::new(path) == open.path()), "{err}");
    }

    #[tokio::test]
    async fn a_script_can_gain_no_privilege_and_inherits_no_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("status");
        // A descriptor opened without CLOEXEC must not reach the script.
        let leaked = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDONLY, nix::sys::stat::Mode::empty()).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
        let body =
            format!("grep -E '^(CapInh|CapAmb|NoNewPrivs)' /proc/self/status > {0}; ls /proc/self/fd >> {0}", out.display());
        let script = script_file(dir.path(), "status.sh", &body, 0o755);
        assert!(Script::parse(script.to_str().unwrap(), None).unwrap().run(&[], Duration::from_secs(5)).await.is_success());
        let status = std::fs::read_to_string(&out).unwrap();
        assert!(status.contains("CapInh:\t0000000000000000"), "{status}");
        assert!(status.contains("CapAmb:\t0000000000000000"), "{status}");
        assert!(status.contains("NoNewPrivs:\t1"), "{status}");
        let fds: Vec<&str> = status.lines().filter(|l| l.chars().all(|c| c.is_ascii_digit())).collect();
        assert!(!fds.contains(&fd.to_string().as_str()), "descriptor {fd} leaked into the script: {fds:?}");
    }
}
