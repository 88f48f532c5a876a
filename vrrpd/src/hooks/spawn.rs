//! Starting one script process: no capability, no inherited descriptor, a clean environment,
//! its own process group, killed with the group at its timeout or when the caller drops it.
//! Used by vrrpd itself and by its launcher (see [`super::launcher`]).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::script::Outcome;

/// One run of a script, as resolved and checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    pub program: PathBuf,
    pub arg0: PathBuf,
    pub args: Vec<String>,
    /// (uid, gid) to run as; `None` keeps the caller's.
    pub user: Option<(u32, u32)>,
    pub timeout: Duration,
}

pub async fn run(invocation: Invocation) -> Outcome {
    let mut command = tokio::process::Command::new(&invocation.program);
    command
        .arg0(&invocation.arg0)
        .args(&invocation.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .process_group(0)
        .kill_on_drop(true);
    if let Some((uid, gid)) = invocation.user {
        command.uid(uid).gid(gid);
    }
    confine::without_privileges(&mut command);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::SpawnFailed(e.to_string()),
    };
    // A run that times out, or that its caller drops (a reload, a shutdown), takes the
    // script's process group with it: the script leads it, its children are in it. A script
    // that exits by itself keeps what it started in the background, as with keepalived.
    let mut group = ProcessGroup(child.id().map(|pid| Pid::from_raw(pid as i32)));
    let outcome = match tokio::time::timeout(invocation.timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Outcome::Success,
        Ok(Ok(status)) => Outcome::Failed(status.code()),
        Ok(Err(e)) => Outcome::SpawnFailed(e.to_string()),
        Err(_elapsed) => return Outcome::TimedOut,
    };
    group.disarm();
    outcome
}

/// Kills a process group when dropped; harmless once the group is gone.
struct ProcessGroup(Option<Pid>);

impl ProcessGroup {
    /// The script ended by itself: what it left in the background stays.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// What the child does between fork and exec.
mod confine {
    use std::io;

    /// No capability survives the exec, none can be regained, and only stdin/stdout/stderr
    /// are inherited. Run after the uid/gid switch (std applies it before these closures).
    #[allow(unsafe_code)]
    pub fn without_privileges(command: &mut tokio::process::Command) {
        // SAFETY: the closure runs in the forked child before exec. It only makes raw system
        // calls (prctl, capget/capset, close_range), which are async-signal-safe, on stack
        // data, and allocates nothing.
        unsafe {
            command.pre_exec(|| {
                // Ambient capabilities would pass to the program as they are (the unit's
                // AmbientCapabilities= gives vrrpd three); clear them, on kernels that have them.
                let cleared = libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
                if cleared != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
                    return Err(io::Error::last_os_error());
                }
                clear_inheritable()?;
                // Neither setuid bits nor file capabilities can raise anything from here on.
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Descriptors vrrpd opened without CLOEXEC (sockets a library made) stay behind.
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
                Ok(())
            });
        }
    }

    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }

    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

    /// Empties the inheritable set, keeping the rest (capget, then capset).
    #[allow(unsafe_code)]
    fn clear_inheritable() -> io::Result<()> {
        let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
        let mut data = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
        // SAFETY: header and data are the layouts capget/capset take for version 3 (two data
        // words), alive for the duration of the calls.
        unsafe {
            if libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            for word in &mut data {
                word.inheritable = 0;
            }
            if libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
