//! keepalived.conf: a tree of `keyword args {` blocks. What vrrpd has an equivalent for is
//! carried over; everything else is noted with its line.

use std::path::Path;

use super::tracked::{self, Section};
use super::vips::VipWritten;
use super::{ImportError, NoteKind, Notes, Written};

/// One statement: its words, the line it starts on, and its block if it opens one.
#[derive(Debug)]
pub struct Node {
    pub words: Vec<String>,
    pub line: usize,
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub(super) fn key(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    pub(super) fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    /// The words after the keyword, joined (empty for a statement without arguments, or for a
    /// block opened with a bare `{`).
    fn rest(&self) -> String {
        self.words.get(1..).unwrap_or_default().join(" ")
    }

    pub(super) fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Words of each line, `{` and `}` split off, comments (`#`, `!`) and quotes handled.
fn tokenize(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut words = Vec::new();
        let mut chars = line.chars().peekable();
        let mut word = String::new();
        let flush = |word: &mut String, words: &mut Vec<String>| {
            if !word.is_empty() {
                words.push(std::mem::take(word));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    for q in chars.by_ref() {
                        if q == '"' {
                            break;
                        }
                        word.push(q);
                    }
                    words.push(std::mem::take(&mut word));
                }
                '#' | '!' if word.is_empty() => break,
                '{' | '}' => {
                    flush(&mut word, &mut words);
                    words.push(c.to_string());
                }
                c if c.is_whitespace() => flush(&mut word, &mut words),
                c => word.push(c),
            }
        }
        flush(&mut word, &mut words);
        if !words.is_empty() {
            lines.push((n + 1, words));
        }
    }
    lines
}

/// A block being read: its statements so far, and the header that opened it (none for the top).
#[derive(Default)]
struct Frame {
    nodes: Vec<Node>,
    header: Option<(Vec<String>, usize)>,
}

pub fn parse(text: &str, path: &Path) -> Result<Vec<Node>, ImportError> {
    let unbalanced = |line| ImportError::Syntax { path: path.to_owned(), line, message: "`}` closes no block".into() };
    let mut stack = vec![Frame::default()];
    for (line, words) in tokenize(text) {
        let mut current: Vec<String> = Vec::new();
        for word in words {
            match word.as_str() {
                "{" => stack.push(Frame { nodes: Vec::new(), header: Some((std::mem::take(&mut current), line)) }),
                "}" => {
                    if !current.is_empty() {
                        if let Some(frame) = stack.last_mut() {
                            frame.nodes.push(Node { words: std::mem::take(&mut current), line, block: None });
                        }
                    }
                    let frame = stack.pop().ok_or_else(|| unbalanced(line))?;
                    let (words, start) = frame.header.ok_or_else(|| unbalanced(line))?;
                    let parent = stack.last_mut().ok_or_else(|| unbalanced(line))?;
                    parent.nodes.push(Node { words, line: start, block: Some(frame.nodes) });
                }
                _ => current.push(word),
            }
        }
        if !current.is_empty() {
            if let Some(frame) = stack.last_mut() {
                frame.nodes.push(Node { words: current, line, block: None });
            }
        }
    }
    if stack.len() != 1 {
        let line = stack.last().and_then(|f| f.header.as_ref().map(|(_, l)| *l)).unwrap_or(0);
        return Err(ImportError::Syntax { path: path.to_owned(), line, message: "block opened here is never closed".into() });
    }
    Ok(stack.pop().map(|f| f.nodes).unwrap_or_default())
}

#[derive(Debug, Default)]
pub struct Script {
    pub name: String,
    pub line: usize,
    pub script: Option<String>,
    pub interval: Option<Written>,
    pub timeout: Option<Written>,
    pub weight: Option<Written>,
    pub rise: Option<Written>,
    pub fall: Option<Written>,
    pub user: Option<String>,
}

/// A `track_script`, `track_interface`, `track_process` or `track_file` entry:
/// `NAME [weight N [reverse]]`.
#[derive(Debug)]
pub struct Track {
    pub name: String,
    pub weight: Option<String>,
    pub reverse: bool,
    pub line: usize,
}

#[derive(Debug)]
pub struct Auth {
    pub kind: Written,
    pub pass: Option<Written>,
}

#[derive(Debug, Default)]
pub struct Instance {
    pub name: String,
    pub line: usize,
    pub state: Option<Written>,
    pub interface: Option<Written>,
    pub vrid: Option<Written>,
    pub priority: Option<Written>,
    pub advert_int: Option<Written>,
    /// keepalived's per-instance `version` (2 or 3).
    pub version: Option<Written>,
    pub nopreempt: bool,
    pub preempt_delay: Option<Written>,
    pub auth: Option<Auth>,
    pub vips: Vec<VipWritten>,
    pub vips_excluded: Vec<VipWritten>,
    pub track_script: Vec<Track>,
    pub track_interface: Vec<Track>,
    pub track_process: Vec<Track>,
    pub track_file: Vec<Track>,
    pub notify: Vec<(&'static str, Written)>,
    pub unicast_src_ip: Option<Written>,
    /// keepalived's other name for the advert source address.
    pub mcast_src_ip: Option<Written>,
    pub unicast_peer: Vec<Written>,
    pub garp: Vec<(&'static str, Written)>,
}

#[derive(Debug, Default)]
pub struct Keepalived {
    pub router_id: Option<Written>,
    pub script_user: Option<Written>,
    pub enable_script_security: bool,
    /// `global_defs { vrrp_version }`: every instance's default.
    pub vrrp_version: Option<Written>,
    /// `vrrp_garp_interval`, seconds.
    pub garp_interval: Option<Written>,
    pub scripts: Vec<Script>,
    pub instances: Vec<Instance>,
    pub track_processes: Vec<Section>,
    pub track_files: Vec<Section>,
    /// Read once the instances are known ([`sync_groups`]).
    pub sync_group_nodes: Vec<Node>,
}

pub fn convert(text: &str, path: &Path, notes: &mut Notes) -> Result<Keepalived, ImportError> {
    let mut out = Keepalived::default();
    for node in parse(text, path)? {
        match node.key() {
            "global_defs" => global(&node, &mut out, notes),
            "vrrp_script" => out.scripts.push(script(&node, notes)),
            "vrrp_instance" => out.instances.push(instance(&node, notes)),
            "vrrp_sync_group" => out.sync_group_nodes.push(node),
            "vrrp_track_process" => out.track_processes.push(tracked::track_process(&node, notes)),
            "track_file" | "vrrp_track_file" => out.track_files.push(tracked::track_file(&node, notes)),
            "virtual_server" | "virtual_server_group" => notes.add(
                node.line,
                NoteKind::Dropped,
                format!("`{}` (LVS load balancing): vrrpd balances with its own [[proxy]] instead", node.words.join(" ")),
            ),
            "include" => notes.add(
                node.line,
                NoteKind::Dropped,
                format!("`{}`: the included files are not read; import what they hold from a single file", node.words.join(" ")),
            ),
            other => notes.add(node.line, NoteKind::Dropped, format!("`{other}` has no vrrpd equivalent")),
        }
    }
    Ok(out)
}

fn written(node: &Node, i: usize) -> Option<Written> {
    node.arg(i).map(|text| Written { text: text.to_owned(), line: node.line })
}

/// The words of a statement past `used`, noted as not carried over.
pub(super) fn note_extra(node: &Node, used: usize, what: &str, notes: &mut Notes) {
    if node.words.get(used..) == Some(&["reverse".to_owned()][..]) {
        // keepalived 2.1: the weight applies in the other direction (while succeeding if negative).
        notes.add(
            node.line,
            NoteKind::Warning,
            format!("{what} `reverse`: vrrpd has no reverse: the weight is written as is and applies the other way round (invert the script's exit status to keep the meaning)"),
        );
        return;
    }
    if let Some(extra) = node.words.get(used..).filter(|rest| !rest.is_empty()) {
        notes.add(node.line, NoteKind::Dropped, format!("{what}: `{}` is not carried over", extra.join(" ")));
    }
}

fn global(node: &Node, out: &mut Keepalived, notes: &mut Notes) {
    for item in node.children() {
        match (item.key(), item.arg(1)) {
            ("router_id", Some(_)) => out.router_id = written(item, 1),
            ("script_user", Some(_)) => {
                out.script_user = written(item, 1);
                note_extra(item, 2, "script_user's group (vrrpd runs scripts with the user's own group)", notes);
            }
            ("enable_script_security", _) => out.enable_script_security = true,
            ("vrrp_version", Some(_)) => out.vrrp_version = written(item, 1),
            ("vrrp_garp_interval", Some(_)) => out.garp_interval = written(item, 1),
            (key, _) => notes.add(item.line, NoteKind::Dropped, format!("global_defs `{key}`")),
        }
    }
}

fn script(node: &Node, notes: &mut Notes) -> Script {
    let mut s = Script { name: node.arg(1).unwrap_or("unnamed").to_owned(), line: node.line, ..Script::default() };
    for item in node.children() {
        let one = written(item, 1);
        match item.key() {
            "script" => s.script = Some(item.rest()),
            "interval" => s.interval = one,
            "timeout" => s.timeout = one,
            "weight" => {
                s.weight = one;
                note_extra(item, 2, &format!("vrrp_script {} weight", s.name), notes);
            }
            "rise" => s.rise = one,
            "fall" => s.fall = one,
            "user" => {
                s.user = item.arg(1).map(str::to_owned);
                note_extra(item, 2, &format!("vrrp_script {} user's group", s.name), notes);
            }
            key => notes.add(item.line, NoteKind::Dropped, format!("vrrp_script {} `{key}`", s.name)),
        }
    }
    s
}

/// Entries of `track_script { ... }`, `track_interface { ... }` and the like.
pub fn tracks(block: &Node, notes: &mut Notes) -> Vec<Track> {
    let mut list = Vec::new();
    for t in block.children() {
        let weight = match (t.arg(1), t.arg(2)) {
            (Some("weight"), Some(w)) => Some(w.to_owned()),
            _ => None,
        };
        let mut used = if weight.is_some() { 3 } else { 1 };
        let reverse = weight.is_some() && t.arg(3) == Some("reverse");
        if reverse || (weight.is_some() && matches!(t.arg(3), Some("noreverse" | "no_reverse"))) {
            used += 1;
        }
        note_extra(t, used, &format!("{} {}", block.key(), t.key()), notes);
        list.push(Track { name: t.key().to_owned(), weight, reverse, line: t.line });
    }
    list
}

fn instance(node: &Node, notes: &mut Notes) -> Instance {
    let mut i = Instance { name: node.arg(1).unwrap_or("VI_1").to_owned(), line: node.line, ..Instance::default() };
    for item in node.children() {
        let one = written(item, 1);
        match item.key() {
            "state" => i.state = one,
            "interface" => i.interface = one,
            "virtual_router_id" => i.vrid = one,
            "priority" => i.priority = one,
            "advert_int" => i.advert_int = one,
            "version" => i.version = one,
            "nopreempt" => i.nopreempt = true,
            "preempt_delay" => i.preempt_delay = one,
            "authentication" => {
                let mut kind = None;
                let mut pass = None;
                for a in item.children() {
                    match a.key() {
                        "auth_type" => kind = written(a, 1),
                        "auth_pass" => pass = written(a, 1),
                        key => notes.add(a.line, NoteKind::Dropped, format!("authentication `{key}`")),
                    }
                }
                match kind {
                    Some(kind) => i.auth = Some(Auth { kind, pass }),
                    None => notes.add(item.line, NoteKind::Dropped, "authentication without auth_type".to_owned()),
                }
            }
            key @ ("virtual_ipaddress" | "virtual_ipaddress_excluded") => {
                let list = if key == "virtual_ipaddress" { &mut i.vips } else { &mut i.vips_excluded };
                for v in item.children() {
                    let address = Written { text: v.key().to_owned(), line: v.line };
                    list.push(VipWritten { address, options: v.words.get(1..).unwrap_or_default().to_vec() });
                }
            }
            "track_script" => i.track_script.extend(tracks(item, notes)),
            "track_interface" => i.track_interface.extend(tracks(item, notes)),
            "track_process" => i.track_process.extend(tracks(item, notes)),
            "track_file" => i.track_file.extend(tracks(item, notes)),
            key @ ("notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop") => {
                let field = match key {
                    "notify" => "notify",
                    "notify_master" => "notify_master",
                    "notify_backup" => "notify_backup",
                    "notify_fault" => "notify_fault",
                    _ => "notify_stop",
                };
                // A key given twice: keepalived keeps the last.
                i.notify.retain(|(k, _)| *k != field);
                if let Some(script) = one {
                    i.notify.push((field, script));
                }
                // keepalived reads `notify_master SCRIPT [USER [GROUP]]`.
                note_extra(item, 2, &format!("{key}'s user (vrrpd runs notify scripts as script_user)"), notes);
            }
            "unicast_src_ip" => i.unicast_src_ip = one,
            "mcast_src_ip" => i.mcast_src_ip = one,
            "unicast_peer" => {
                for p in item.children() {
                    i.unicast_peer.push(Written { text: p.key().to_owned(), line: p.line });
                    note_extra(p, 1, &format!("unicast_peer {}", p.key()), notes);
                }
            }
            key @ ("garp_master_delay" | "garp_master_repeat" | "garp_master_refresh" | "garp_master_refresh_repeat") => {
                let field = match key {
                    "garp_master_delay" => "garp_master_delay",
                    "garp_master_repeat" => "garp_master_repeat",
                    "garp_master_refresh" => "garp_master_refresh",
                    _ => "garp_master_refresh_repeat",
                };
                i.garp.retain(|(k, _)| *k != field);
                if let Some(v) = one {
                    i.garp.push((field, v));
                }
            }
            key => notes.add(item.line, NoteKind::Dropped, format!("vrrp_instance {} `{key}`", i.name)),
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the import_keepalived fuzzer: a block opened by a bare `{` has no keyword.
    #[test]
    fn a_block_without_a_keyword_is_noted_not_a_panic() {
        let text = "vrrp_script chk {\n{\n}\n}\nvrrp_instance VI_1 {\n{\nx\n}\nnotify\n}\n{\n}\n";
        let path = Path::new("keepalived.conf");
        let mut notes = Notes::new(path);
        let parsed = convert(text, path, &mut notes).unwrap();
        assert_eq!(parsed.instances.len(), 1);
        assert!(!notes.notes.is_empty());
    }
}
