//! `vrrpd import --keepalived FILE [--haproxy FILE]`: the vrrpd configuration equivalent to a
//! keepalived.conf and a haproxy.cfg, with every keyword that cannot be carried over named
//! with its file and line, never silently dropped.

mod emit;
mod haproxy;
mod keepalived;

use std::fmt;
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

/// Collects notes against one source file.
pub(crate) struct Notes<'a> {
    file: &'a Path,
    pub notes: Vec<Note>,
}

impl<'a> Notes<'a> {
    pub fn new(file: &'a Path) -> Self {
        Notes { file, notes: Vec::new() }
    }

    pub fn add(&mut self, line: usize, kind: NoteKind, message: impl Into<String>) {
        self.notes.push(Note { file: self.file.to_owned(), line, kind, message: message.into() });
    }
}

/// Imports configuration files, resolving server host names.
pub fn import(keepalived: Option<&Path>, haproxy: Option<&Path>) -> Result<Imported, ImportError> {
    let read = |path: &Path| std::fs::read_to_string(path).map_err(|source| ImportError::Read { path: path.to_owned(), source });
    let keepalived_text = keepalived.map(read).transpose()?;
    let haproxy_text = haproxy.map(read).transpose()?;
    let sources = (keepalived.zip(keepalived_text.as_deref()), haproxy.zip(haproxy_text.as_deref()));
    convert(sources.0, sources.1, emit::resolve_names)
}

/// Imports configuration text without name lookups (servers must be `IP:port`).
pub fn import_text(keepalived: Option<&str>, haproxy: Option<&str>) -> Result<Imported, ImportError> {
    convert(
        keepalived.map(|t| (Path::new("keepalived.conf"), t)),
        haproxy.map(|t| (Path::new("haproxy.cfg"), t)),
        emit::literal_only,
    )
}

fn convert(
    keepalived: Option<(&Path, &str)>,
    haproxy: Option<(&Path, &str)>,
    resolve: emit::Resolve,
) -> Result<Imported, ImportError> {
    let mut notes = Vec::new();
    let vrrp = match keepalived {
        Some((path, text)) => {
            let mut n = Notes::new(path);
            let parsed = keepalived::convert(text, path, &mut n)?;
            emit::weight_notes(&parsed, &mut n);
            notes.append(&mut n.notes);
            Some(parsed)
        }
        None => None,
    };
    let balancer = match haproxy {
        Some((path, text)) => {
            let mut n = Notes::new(path);
            let parsed = haproxy::convert(text, &mut n);
            emit::conversion_notes(&parsed, &mut n, resolve);
            notes.append(&mut n.notes);
            Some(parsed)
        }
        None => None,
    };
    let toml = emit::toml(vrrp.as_ref(), balancer.as_ref(), keepalived.map(|(p, _)| p), haproxy.map(|(p, _)| p), resolve);
    Ok(Imported { toml, notes })
}
