//! The `[[vrrp_track_process]]` and `[[vrrp_track_file]]` sections (keepalived's trackers of
//! processes and of a number in a file).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// A process's name as the kernel keeps it (`/proc/PID/comm`) is at most this long.
const COMM_MAX: usize = 15;
/// A delay before a process tracker changes state.
const PROCESS_DELAY: Bounds = Bounds { zero: true, longest: Duration::from_secs(3600), said: "1h", what: "the longest delay" };

impl Validator<'_> {
    pub(super) fn track_processes(&mut self, raw: &[S<RawTrackProcess>]) -> Vec<TrackProcess> {
        let mut names = HashSet::new();
        let mut processes = Vec::new();
        for (i, p) in raw.iter().enumerate() {
            let p = p.get_ref();
            let key = |field: &str| format!("vrrp_track_process[{i}].{field}");
            let name = self.name(&p.name, &key("name"));
            self.unique(&mut names, &p.name, &key("name"), "vrrp_track_process");
            let process = self.non_empty(&p.process, &key("process"));
            if process.contains('\0') {
                self.error(p.process.span(), &key("process"), "must not contain a NUL byte");
            }
            let params: Vec<String> =
                p.params.as_ref().map(|list| list.get_ref().iter().map(|w| w.get_ref().clone()).collect()).unwrap_or_default();
            let param_match = match &p.param_match {
                Some(m) => match m.get_ref().as_str() {
                    "exact" => Some(ParamMatch::Exact),
                    "partial" => Some(ParamMatch::Partial),
                    "initial" => Some(ParamMatch::Initial),
                    other => {
                        self.error(
                            m.span(),
                            &key("param_match"),
                            format!("{other:?} is not a param_match: write \"exact\", \"partial\" or \"initial\""),
                        );
                        None
                    }
                },
                None => p.params.is_some().then_some(ParamMatch::Exact),
            };
            let full_command = p.full_command.unwrap_or(false);
            if param_match.is_none() && !full_command && process.len() > COMM_MAX {
                self.warn(
                    p.process.span(),
                    &key("process"),
                    format!(
                        "is longer than the {COMM_MAX} bytes the kernel keeps of a process name: its first {COMM_MAX} \
                         bytes are matched (set full_command = true to match the command line)"
                    ),
                );
            }
            let quorum: u32 = self.opt_int(&p.quorum, &key("quorum"), 0..=65535, 1);
            let quorum_max: Option<u32> = p.quorum_max.as_ref().and_then(|q| self.int(q, &key("quorum_max"), 0..=65535));
            if let (Some(max), Some(written)) = (quorum_max, &p.quorum_max) {
                if max < quorum {
                    self.error(written.span(), &key("quorum_max"), format!("{max} is below quorum ({quorum}): never up"));
                }
            }
            let delay = self.duration(&p.delay, &key("delay"), PROCESS_DELAY, Duration::ZERO);
            processes.push(TrackProcess {
                name,
                process,
                params,
                param_match,
                full_command,
                weight: self.opt_int(&p.weight, &key("weight"), -254..=254, 1),
                reverse: p.reverse.unwrap_or(false),
                quorum,
                quorum_max,
                fork_delay: self.duration(&p.fork_delay, &key("fork_delay"), PROCESS_DELAY, delay),
                terminate_delay: self.duration(&p.terminate_delay, &key("terminate_delay"), PROCESS_DELAY, delay),
            });
        }
        processes
    }

    pub(super) fn track_files(&mut self, raw: &[S<RawTrackFile>]) -> Vec<TrackFile> {
        let mut names = HashSet::new();
        let mut files = Vec::new();
        for (i, f) in raw.iter().enumerate() {
            let f = f.get_ref();
            let key = |field: &str| format!("vrrp_track_file[{i}].{field}");
            let name = self.name(&f.name, &key("name"));
            self.unique(&mut names, &f.name, &key("name"), "vrrp_track_file");
            let path = PathBuf::from(self.non_empty(&f.file, &key("file")));
            if !path.as_os_str().is_empty() && !path.is_absolute() {
                self.error(f.file.span(), &key("file"), format!("{:?} is not an absolute path", f.file.get_ref()));
            }
            if f.init_file_overwrite.is_some() && f.init_file.is_none() {
                self.warn(f.file.span(), &key("init_file_overwrite"), "has no effect without init_file");
            }
            files.push(TrackFile {
                name,
                path,
                weight: self.opt_int(&f.weight, &key("weight"), -254..=254, 1),
                reverse: f.reverse.unwrap_or(false),
                init: f.init_file.as_ref().map(|v| (*v.get_ref(), f.init_file_overwrite.unwrap_or(false))),
                allow_unsafe: f.allow_unsafe.unwrap_or(false),
            });
        }
        files
    }
}
