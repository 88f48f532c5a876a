//! `vrrp_track_file`: a number in a file, as keepalived reads it. The file is read when its
//! metadata changes, checked every [`POLL_INTERVAL`] (keepalived uses inotify; a poll of one
//! `stat` is as cheap and sees a file replaced in any way). At most [`READ_MAX`] bytes are
//! read; a missing file reads as 0 (keepalived's rule: a deleted file is 0), and so does
//! content that is not a number, with a warning.
//!
//! The file decides the failover of a daemon started as root: one that a non-root user could
//! write (or create, through its directory) is refused at start unless `allow_unsafe = true`.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ha_common::config::TrackFile;

/// How often the file's metadata is checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// keepalived reads 127 bytes; more is never a number.
const READ_MAX: u64 = 128;
/// keepalived's clamp of the value read.
const VALUE_LIMIT: i64 = 254;

/// What a read found.
#[derive(Debug, PartialEq, Eq)]
pub enum FileReading {
    Value(i64),
    /// No such file: 0.
    Missing,
    /// Not a number: 0.
    Garbage(String),
    /// Could not be read (permissions, a directory...): 0.
    Unreadable(String),
}

impl FileReading {
    pub fn value(&self) -> i64 {
        match self {
            FileReading::Value(v) => *v,
            _ => 0,
        }
    }
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Stamp(Option<(u64, u64, i64, SystemTime, i64)>);

pub fn stamp(path: &Path) -> Stamp {
    Stamp(
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.size() as i64, m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.ctime_nsec())),
    )
}

/// Reads the file's number.
pub fn read(path: &Path) -> FileReading {
    let mut text = Vec::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileReading::Missing,
        Err(e) => return FileReading::Unreadable(e.to_string()),
    };
    if let Err(e) = file.take(READ_MAX).read_to_end(&mut text) {
        return FileReading::Unreadable(e.to_string());
    }
    parse(&text)
}

/// A decimal integer (or `0x` hexadecimal) with an optional sign, surrounded by white space,
/// clamped to -254..=254.
fn parse(text: &[u8]) -> FileReading {
    let shown = || String::from_utf8_lossy(&text[..text.len().min(40)]).into_owned();
    let Ok(text) = std::str::from_utf8(text) else { return FileReading::Garbage(shown()) };
    let word = text.trim();
    if word.is_empty() {
        return FileReading::Value(0);
    }
    let (negative, digits) = match word.as_bytes()[0] {
        b'-' => (true, &word[1..]),
        b'+' => (false, &word[1..]),
        _ => (false, word),
    };
    let magnitude = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse::<u64>(),
    };
    match magnitude {
        Ok(m) => {
            let m = m.min(VALUE_LIMIT as u64) as i64;
            FileReading::Value(if negative { -m } else { m })
        }
        Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) => {
            FileReading::Value(if negative { -VALUE_LIMIT } else { VALUE_LIMIT })
        }
        Err(_) => FileReading::Garbage(shown()),
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrackFileError {
    #[error(
        "vrrp_track_file {name:?}: {path} could be written by a non-root user, who would then decide this \
         host's failover: fix the permissions, or set allow_unsafe = true"
    )]
    Unsafe { name: String, path: PathBuf },
    #[error("vrrp_track_file {name:?}: cannot write init_file to {path}: {error}")]
    Init { name: String, path: PathBuf, error: String },
}

/// Refuses a file that a non-root user could write, or create through its directory.
pub fn check_security(file: &TrackFile) -> Result<(), TrackFileError> {
    if file.allow_unsafe {
        return Ok(());
    }
    let unsafe_at = |path: PathBuf| Err(TrackFileError::Unsafe { name: file.name.clone(), path });
    if file.path.exists() {
        return ha_common::file_safety::modifiable_by_others(&file.path).map_or(Ok(()), unsafe_at);
    }
    // Missing: whoever can create it decides, and in a sticky directory (/tmp) anyone can.
    let dir = file.path.parent().unwrap_or(Path::new("/"));
    if let Some(bad) = ha_common::file_safety::modifiable_by_others(dir) {
        return unsafe_at(bad);
    }
    match std::fs::metadata(dir) {
        Ok(meta) if meta.mode() & 0o002 != 0 || (meta.mode() & 0o020 != 0 && meta.gid() != 0) => unsafe_at(dir.to_owned()),
        _ => Ok(()),
    }
}

/// keepalived's `init_file`: writes the value when the file is missing, or always with
/// `overwrite`. The file is created owner-writable only.
pub fn initialise(file: &TrackFile) -> Result<(), TrackFileError> {
    let Some((value, overwrite)) = file.init else { return Ok(()) };
    if file.path.exists() && !overwrite {
        return Ok(());
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let error =
        |e: std::io::Error| TrackFileError::Init { name: file.name.clone(), path: file.path.clone(), error: e.to_string() };
    let mut out =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&file.path).map_err(error)?;
    writeln!(out, "{value}").map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_keepalived_reads_them() {
        assert_eq!(parse(b"5\n"), FileReading::Value(5));
        assert_eq!(parse(b"  -12  "), FileReading::Value(-12));
        assert_eq!(parse(b"+3"), FileReading::Value(3));
        assert_eq!(parse(b"0x10"), FileReading::Value(16));
        assert_eq!(parse(b""), FileReading::Value(0), "an empty file is 0");
        assert_eq!(parse(b"100000"), FileReading::Value(254), "clamped");
        assert_eq!(parse(b"-99999999999999999999999"), FileReading::Value(-254), "clamped, no overflow");
    }

    #[test]
    fn garbage_reads_as_zero_and_says_so() {
        assert!(matches!(parse(b"up"), FileReading::Garbage(_)));
        assert!(matches!(parse(b"5 6"), FileReading::Garbage(_)));
        assert!(matches!(parse(&[0xff, 0xfe]), FileReading::Garbage(_)));
        assert_eq!(parse(b"up").value(), 0);
    }

    #[test]
    fn a_missing_file_is_zero_and_a_long_one_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&dir.path().join("none")), FileReading::Missing);
        let long = dir.path().join("long");
        std::fs::write(&long, "7".repeat(1 << 20)).unwrap();
        assert_eq!(read(&long), FileReading::Value(254), "only the first bytes are read");
        assert!(matches!(read(dir.path()), FileReading::Unreadable(_)), "a directory");
    }

    fn tracked(path: PathBuf) -> TrackFile {
        TrackFile { name: "f".into(), path, weight: 1, reverse: false, init: None, allow_unsafe: false }
    }

    #[test]
    fn a_file_others_can_write_is_refused_unless_allowed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prio");
        std::fs::write(&path, "1").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let mut file = tracked(path);
        assert!(matches!(check_security(&file), Err(TrackFileError::Unsafe { .. })));
        file.allow_unsafe = true;
        assert_eq!(check_security(&file), Ok(()));
        let open_dir = tracked(PathBuf::from("/tmp/vrrpd-no-such-track-file"));
        assert!(check_security(&open_dir).is_err(), "missing in /tmp: anyone could create it");
    }

    #[test]
    fn init_file_writes_only_a_missing_file_unless_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = tracked(dir.path().join("prio"));
        file.init = Some((3, false));
        initialise(&file).unwrap();
        assert_eq!(read(&file.path), FileReading::Value(3));
        std::fs::write(&file.path, "9").unwrap();
        initialise(&file).unwrap();
        assert_eq!(read(&file.path), FileReading::Value(9), "kept");
        file.init = Some((4, true));
        initialise(&file).unwrap();
        assert_eq!(read(&file.path), FileReading::Value(4), "overwritten");
    }
}
