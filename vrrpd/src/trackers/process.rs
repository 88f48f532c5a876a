//! `vrrp_track_process`: counts the running processes that match, by scanning /proc (no fork,
//! no pgrep). One scan serves every process tracker: each `/proc/PID/stat` is read (the name and
//! the state in one small read; zombies do not count, as in keepalived), and
//! `/proc/PID/cmdline` only when some tracker matches on the command line.
//!
//! keepalived follows process events through the kernel's proc connector; a scan every
//! [`SCAN_INTERVAL`] is simpler and bounded (about 1 ms per 100 processes, on a blocking
//! thread, never on the VRRP loop), and it also sees a process changing its command line,
//! which the connector does not report. Entries vanishing mid-scan are skipped; every read is
//! bounded in size.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use ha_common::config::{ParamMatch, TrackProcess};

/// How often /proc is scanned (and how late a quorum change may be seen).
pub const SCAN_INTERVAL: Duration = Duration::from_millis(500);
/// `pid (comm) S`: the pid, a name of at most 15 bytes, the state; the rest is not read.
const STAT_PREFIX: usize = 64;
/// Command lines are read up to this size; a longer one is matched on its start.
const CMDLINE_MAX: usize = 32 * 1024;
/// The kernel keeps this much of a process name (TASK_COMM_LEN - 1).
const COMM_MAX: usize = 15;

/// One running process as a scan saw it.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessInfo {
    pub comm: Vec<u8>,
    /// The arguments, `argv[0]` first; empty when not read or for kernel threads.
    pub args: Vec<Vec<u8>>,
}

/// Whether a tracker needs the command line rather than the process name.
pub fn needs_cmdline(tracker: &TrackProcess) -> bool {
    tracker.full_command || tracker.param_match.is_some()
}

/// Whether `process` is one `tracker` counts.
pub fn matches(tracker: &TrackProcess, process: &ProcessInfo) -> bool {
    if !needs_cmdline(tracker) {
        let name = tracker.process.as_bytes();
        return process.comm == name[..name.len().min(COMM_MAX)];
    }
    let Some((program, args)) = process.args.split_first() else { return false };
    if program.as_slice() != tracker.process.as_bytes() {
        return false;
    }
    let params = &tracker.params;
    match tracker.param_match {
        // full_command without parameters: the program alone decides.
        None => true,
        Some(ParamMatch::Exact) => args.len() == params.len() && args.iter().zip(params).all(|(a, p)| a == p.as_bytes()),
        Some(ParamMatch::Partial) => args.len() >= params.len() && args.iter().zip(params).all(|(a, p)| a == p.as_bytes()),
        Some(ParamMatch::Initial) => {
            let Some((last, firsts)) = params.split_last() else { return true };
            args.len() >= params.len()
                && args.iter().zip(firsts).all(|(a, p)| a == p.as_bytes())
                && args[firsts.len()].starts_with(last.as_bytes())
        }
    }
}

/// Parses the start of `/proc/PID/stat`: the name (between the first '(' and the last ')',
/// since a name may hold either) and the state letter after it.
fn parse_stat(stat: &[u8]) -> Option<(&[u8], u8)> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let comm = stat.get(open + 1..close)?;
    let state = *stat.get(close + 2)?;
    Some((comm, state))
}

/// Reads at most `limit` bytes of a file; `None` when it cannot be opened or read (the process
/// exited meanwhile, most often).
fn read_bounded(path: &Path, limit: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(limit.min(4096));
    File::open(path).ok()?.take(limit as u64).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// Reads one process's name, state and (when `cmdline`) arguments; `None` for a process that
/// is gone or is a zombie.
fn read_process(dir: &Path, cmdline: bool) -> Option<ProcessInfo> {
    let stat = read_bounded(&dir.join("stat"), STAT_PREFIX)?;
    let (comm, state) = parse_stat(&stat)?;
    if matches!(state, b'Z' | b'X' | b'x') {
        return None;
    }
    let mut info = ProcessInfo { comm: comm.to_vec(), args: Vec::new() };
    if cmdline {
        let raw = read_bounded(&dir.join("cmdline"), CMDLINE_MAX)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(&raw);
        if !raw.is_empty() {
            info.args = raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
        }
    }
    Some(info)
}

/// Counts, for each tracker, the running processes under `proc_root` that match it.
pub fn scan(proc_root: &Path, trackers: &[TrackProcess]) -> std::io::Result<Vec<u32>> {
    let cmdline = trackers.iter().any(needs_cmdline);
    let mut counts = vec![0u32; trackers.len()];
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if !is_pid(&name) {
            continue;
        }
        let Some(process) = read_process(&entry.path(), cmdline) else { continue };
        for (count, tracker) in counts.iter_mut().zip(trackers) {
            if matches(tracker, &process) {
                *count = count.saturating_add(1);
            }
        }
    }
    Ok(counts)
}

fn is_pid(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit)
}

/// Whether `count` processes are a quorum for `tracker`.
pub fn quorum(tracker: &TrackProcess, count: u32) -> bool {
    count >= tracker.quorum && tracker.quorum_max.is_none_or(|max| count <= max)
}

/// A tracker's status with `fork_delay` and `terminate_delay`: a change is taken only once it
/// has held for its delay.
#[derive(Debug)]
pub struct Delayed {
    pub up: bool,
    pending: Option<(bool, Instant)>,
}

impl Delayed {
    pub fn new(up: bool) -> Self {
        Delayed { up, pending: None }
    }

    /// Records what a scan saw; returns the new status when it changes.
    pub fn observe(&mut self, now: Instant, seen: bool, fork_delay: Duration, terminate_delay: Duration) -> Option<bool> {
        if seen == self.up {
            self.pending = None;
            return None;
        }
        let delay = if seen { fork_delay } else { terminate_delay };
        let since = match self.pending {
            Some((pending, since)) if pending == seen => since,
            _ => {
                self.pending = Some((seen, now));
                now
            }
        };
        if now.saturating_duration_since(since) >= delay {
            self.up = seen;
            self.pending = None;
            return Some(seen);
        }
        None
    }

    /// When a pending change may be taken, to scan again then.
    pub fn due(&self, fork_delay: Duration, terminate_delay: Duration) -> Option<Instant> {
        self.pending.map(|(seen, since)| since + if seen { fork_delay } else { terminate_delay })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(process: &str, params: &[&str], param_match: Option<ParamMatch>) -> TrackProcess {
        TrackProcess {
            name: "t".into(),
            process: process.into(),
            params: params.iter().map(|p| p.to_string()).collect(),
            param_match,
            full_command: false,
            weight: 0,
            reverse: false,
            quorum: 1,
            quorum_max: None,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
        }
    }

    fn process(comm: &str, args: &[&str]) -> ProcessInfo {
        ProcessInfo { comm: comm.into(), args: args.iter().map(|a| a.as_bytes().to_vec()).collect() }
    }

    #[test]
    fn the_name_matches_exactly_not_as_a_pattern() {
        let t = tracker("ssh", &[], None);
        assert!(matches(&t, &process("ssh", &[])));
        assert!(!matches(&t, &process("sshd", &[])), "pgrep ssh would match sshd; keepalived does not");
    }

    #[test]
    fn a_long_name_matches_the_kernels_15_bytes() {
        let t = tracker("rabbitmq-server-long", &[], None);
        assert!(matches(&t, &process("rabbitmq-server", &[])));
    }

    #[test]
    fn param_match_exact_partial_initial() {
        let p = process("haproxy", &["/usr/sbin/haproxy", "-f", "/etc/haproxy.cfg", "-D"]);
        let exact = tracker("/usr/sbin/haproxy", &["-f", "/etc/haproxy.cfg"], Some(ParamMatch::Exact));
        assert!(!matches(&exact, &p), "one argument too many");
        assert!(matches(&exact, &process("haproxy", &["/usr/sbin/haproxy", "-f", "/etc/haproxy.cfg"])));
        let partial = tracker("/usr/sbin/haproxy", &["-f", "/etc/haproxy.cfg"], Some(ParamMatch::Partial));
        assert!(matches(&partial, &p));
        let initial = tracker("/usr/sbin/haproxy", &["-f", "/etc/hap"], Some(ParamMatch::Initial));
        assert!(matches(&initial, &p));
        let wrong = tracker("/usr/sbin/haproxy", &["-x"], Some(ParamMatch::Partial));
        assert!(!matches(&wrong, &p));
        let no_args = tracker("/usr/sbin/haproxy", &[], Some(ParamMatch::Exact));
        assert!(!matches(&no_args, &p), "param_match without params: no arguments allowed");
        assert!(matches(&no_args, &process("haproxy", &["/usr/sbin/haproxy"])));
    }

    #[test]
    fn kernel_threads_have_no_command_line_to_match() {
        let t = tracker("kthreadd", &[], Some(ParamMatch::Exact));
        assert!(!matches(&t, &process("kthreadd", &[])));
    }

    #[test]
    fn stat_names_may_hold_parentheses_and_spaces() {
        assert_eq!(parse_stat(b"42 (a) b (c)) S 1 2"), Some((&b"a) b (c)"[..], b'S')));
        assert_eq!(parse_stat(b"42 (x) Z 1"), Some((&b"x"[..], b'Z')));
        assert_eq!(parse_stat(b"garbage"), None);
        assert_eq!(parse_stat(b"42 (x)"), None, "cut short");
    }

    #[test]
    fn quorum_and_quorum_max() {
        let mut t = tracker("x", &[], None);
        t.quorum = 2;
        t.quorum_max = Some(3);
        assert!(!quorum(&t, 1));
        assert!(quorum(&t, 2) && quorum(&t, 3));
        assert!(!quorum(&t, 4));
        t.quorum = 0;
        t.quorum_max = Some(0);
        assert!(quorum(&t, 0) && !quorum(&t, 1), "quorum_max 0: up only while none runs");
    }

    #[test]
    fn delays_hold_a_change_until_it_has_lasted() {
        let start = Instant::now();
        let (fork, terminate) = (Duration::from_secs(1), Duration::from_secs(2));
        let mut d = Delayed::new(true);
        assert_eq!(d.observe(start, false, fork, terminate), None);
        assert_eq!(d.due(fork, terminate), Some(start + terminate));
        assert_eq!(d.observe(start + Duration::from_secs(1), true, fork, terminate), None, "came back: bounce ignored");
        assert_eq!(d.observe(start + Duration::from_secs(2), false, fork, terminate), None, "a new loss starts over");
        assert_eq!(d.observe(start + Duration::from_secs(4), false, fork, terminate), Some(false));
        assert_eq!(d.observe(start + Duration::from_secs(5), true, Duration::ZERO, terminate), Some(true), "no delay: at once");
    }

    #[test]
    fn scans_this_hosts_proc_and_finds_itself_not_zombies() {
        let me = std::fs::read_to_string("/proc/self/comm").unwrap();
        let mut t = tracker(me.trim(), &[], None);
        let counts = scan(Path::new("/proc"), std::slice::from_ref(&t)).unwrap();
        assert!(counts[0] >= 1, "this test's own process: {counts:?}");
        t.process = "no-such-process-name".into();
        assert_eq!(scan(Path::new("/proc"), &[t]).unwrap(), vec![0]);
    }

    fn fake_process(root: &Path, pid: u32, comm: &str, cmdline: &str) {
        let dir = root.join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stat"), format!("{pid} ({comm}) S 1 1 1")).unwrap();
        std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    }

    #[test]
    fn a_command_line_that_changes_is_seen_at_the_next_scan() {
        let dir = tempfile::tempdir().unwrap();
        fake_process(dir.path(), 7, "worker", "worker\0--role\0primary\0");
        let t = tracker("worker", &["--role", "primary"], Some(ParamMatch::Exact));
        assert_eq!(scan(dir.path(), std::slice::from_ref(&t)).unwrap(), vec![1]);
        // As systemd or nginx do: the process rewrites its argv.
        fake_process(dir.path(), 7, "worker", "worker\0--role\0standby\0");
        assert_eq!(scan(dir.path(), &[t]).unwrap(), vec![0]);
    }

    #[test]
    fn many_processes_scan_in_bounded_time() {
        let dir = tempfile::tempdir().unwrap();
        for pid in 1..=3000 {
            fake_process(dir.path(), pid, if pid % 100 == 0 { "haproxy" } else { "other" }, "x\0");
        }
        let trackers = [tracker("haproxy", &[], None), tracker("x", &[], Some(ParamMatch::Exact))];
        let started = Instant::now();
        let counts = scan(dir.path(), &trackers).unwrap();
        let took = started.elapsed();
        println!("3000 processes, name and command line: {took:?}");
        assert_eq!(counts, vec![30, 3000]);
        assert!(took < Duration::from_secs(2), "{took:?}");
        let started = Instant::now();
        scan(Path::new("/proc"), &trackers[..1]).unwrap();
        println!("this host's /proc, names only: {:?}", started.elapsed());
    }

    #[test]
    fn odd_proc_entries_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        for (pid, stat, cmdline) in [
            ("1", "1 (haproxy) S 0", "haproxy\0-f\0x\0"),
            ("2", "2 (haproxy) Z 0", ""),
            ("3", "truncated", ""),
            ("4", "4 (haproxy) R 0", "haproxy\0-f\0x\0"),
        ] {
            std::fs::create_dir(dir.path().join(pid)).unwrap();
            std::fs::write(dir.path().join(pid).join("stat"), stat).unwrap();
            std::fs::write(dir.path().join(pid).join("cmdline"), cmdline).unwrap();
        }
        std::fs::create_dir(dir.path().join("5")).unwrap(); // gone: no files in it
        std::fs::create_dir(dir.path().join("self")).unwrap();
        let by_name = tracker("haproxy", &[], None);
        let by_args = tracker("haproxy", &["-f", "x"], Some(ParamMatch::Exact));
        assert_eq!(scan(dir.path(), &[by_name, by_args]).unwrap(), vec![2, 2]);
    }
}
