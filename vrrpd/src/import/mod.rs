//! `vrrpd import --keepalived FILE [--haproxy FILE]`: the vrrpd configuration equivalent to a
//! keepalived.conf and a haproxy.cfg, with every keyword that cannot be carried over named
//! with its file and line, never silently dropped.
//!
//! Three rooms: `keepalived.rs` and `haproxy.rs` (with `frontends.rs`) read the files as
//! written; `proxies.rs` (with `consensus.rs` for per-server settings) and `instances.rs` (with
//! `watchers.rs` for scripts that watch HAProxy) decide what each becomes and note every
//! difference; `emit.rs` writes the decided configuration, deciding nothing. `values.rs` keeps
//! names, numbers and durations within what `vrrpd check` accepts.

mod consensus;
mod emit;
mod frontends;
mod haproxy;
mod instances;
mod keepalived;
mod proxies;
mod tracked;
mod values;
mod vips;
mod watchers;

use std::fmt;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Something the operator should read: a keyword left behind, or a value changed on purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub file: PathBuf,
    pub line: usize,
    pub kind: NoteKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteKind {
    /// Not carried over.
    Dropped,
    /// Carried over with a different value, and why.
    Changed,
    /// Would hurt AMQP clients as written.
    Warning,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = match self.kind {
            NoteKind::Dropped => "not carried over",
            NoteKind::Changed => "changed",
            NoteKind::Warning => "warning",
        };
        write!(f, "{}:{}: {kind}: {}", self.file.display(), self.line, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, message: String },
}

/// The result: the TOML text and the notes for stderr.
pub struct Imported {
    pub toml: String,
    pub notes: Vec<Note>,
}

/// A value as written in a source file, and its line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Written {
    pub text: String,
    pub line: usize,
}

/// Collects notes against one source file.
pub(crate) struct Notes<'a> {
    file: &'a Path,
    pub notes: Vec<Note>,
}

impl<'a> Notes<'a> {
    pub fn new(file: &'a Path) -> Self {
        Notes { file, notes: Vec::new() }
    }

    /// Adds a note; the same note again (a `defaults` line inherited by several proxies) is
    /// said once.
    pub fn add(&mut self, line: usize, kind: NoteKind, message: impl Into<String>) {
        let note = Note { file: self.file.to_owned(), line, kind, message: message.into() };
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// The notes in the order of the file's lines (stable: a line's notes keep their order).
    fn in_line_order(mut self) -> Vec<Note> {
        self.notes.sort_by_key(|n| n.line);
        self.notes
    }
}

/// What the import may learn from the host it runs on: server names to addresses, and the
/// text of the scripts keepalived runs. The fuzzer's import asks the host nothing.
#[derive(Clone, Copy)]
pub(crate) struct Lookups {
    /// A server's `host:port` to an address vrrpd can use.
    pub resolve: fn(&str) -> Option<SocketAddr>,
    /// A script's text, when the path names a readable regular file.
    pub read_script: fn(&Path) -> Option<String>,
}

impl Lookups {
    /// On the host being migrated: DNS and /etc/hosts, and the scripts on disk.
    const HOST: Lookups = Lookups { resolve: resolve_names, read_script: read_small_file };
    /// Only `IP:port` literals, and no file read (for callers that must not touch the host).
    const NONE: Lookups = Lookups { resolve: literal_only, read_script: |_| None };
}

/// `host:port` to an IP address and port, resolving host names now (DNS, /etc/hosts).
fn resolve_names(address: &str) -> Option<SocketAddr> {
    address.parse().ok().or_else(|| address.to_socket_addrs().ok()?.find(SocketAddr::is_ipv4))
}

fn literal_only(address: &str) -> Option<SocketAddr> {
    address.parse().ok()
}

/// Scripts are small: reading stops at 64 KiB, and only regular files are opened (a path
/// naming a FIFO or a device must not hang the import).
fn read_small_file(path: &Path) -> Option<String> {
    const LIMIT: u64 = 64 * 1024;
    if !path.is_absolute() || !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.take(LIMIT).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Imports configuration files, resolving server host names and reading tracked scripts.
pub fn import(keepalived: Option<&Path>, haproxy: Option<&Path>) -> Result<Imported, ImportError> {
    let read = |path: &Path| std::fs::read_to_string(path).map_err(|source| ImportError::Read { path: path.to_owned(), source });
    let keepalived_text = keepalived.map(read).transpose()?;
    let haproxy_text = haproxy.map(read).transpose()?;
    let sources = (keepalived.zip(keepalived_text.as_deref()), haproxy.zip(haproxy_text.as_deref()));
    convert(sources.0, sources.1, Lookups::HOST)
}

/// Imports configuration text without asking the host anything (servers must be `IP:port`,
/// scripts are judged by their name and command line only).
pub fn import_text(keepalived: Option<&str>, haproxy: Option<&str>) -> Result<Imported, ImportError> {
    convert(keepalived.map(|t| (Path::new("keepalived.conf"), t)), haproxy.map(|t| (Path::new("haproxy.cfg"), t)), Lookups::NONE)
}

fn convert(keepalived: Option<(&Path, &str)>, haproxy: Option<(&Path, &str)>, lookups: Lookups) -> Result<Imported, ImportError> {
    // Both files are read first: the instances track the proxies, and a script is recognised
    // as an HAProxy watcher by the ports HAProxy listens on.
    let mut keepalived_notes = keepalived.map(|(path, _)| Notes::new(path));
    let parsed_keepalived = match (keepalived, keepalived_notes.as_mut()) {
        (Some((path, text)), Some(notes)) => Some(keepalived::convert(text, path, notes)?),
        _ => None,
    };
    let mut haproxy_notes = haproxy.map(|(path, _)| Notes::new(path));
    let balancer = match (haproxy, haproxy_notes.as_mut()) {
        (Some((_, text)), Some(notes)) => {
            let parsed = haproxy::convert(text, notes);
            Some(proxies::decide(&parsed, lookups, notes))
        }
        _ => None,
    };
    let vrrp = match (&parsed_keepalived, keepalived_notes.as_mut()) {
        (Some(parsed), Some(notes)) => Some(instances::decide(parsed, balancer.as_ref(), lookups, notes)),
        _ => None,
    };
    let sources = emit::Sources {
        keepalived: keepalived.map(|(p, _)| p.display().to_string()).unwrap_or_default(),
        haproxy: haproxy.map(|(p, _)| p.display().to_string()).unwrap_or_default(),
    };
    let toml = emit::toml(vrrp.as_ref(), balancer.as_ref(), &sources);
    let notes = keepalived_notes.into_iter().chain(haproxy_notes).flat_map(Notes::in_line_order).collect();
    Ok(Imported { toml, notes })
}
