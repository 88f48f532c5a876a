//! keepalived.conf: a tree of `keyword args {` blocks. What vrrpd has an equivalent for is
//! carried over; everything else is noted with its line.

use std::path::Path;

use super::{ImportError, NoteKind, Notes};

/// One statement: its words, the line it starts on, and its block if it opens one.
#[derive(Debug)]
pub struct Node {
    pub words: Vec<String>,
    pub line: usize,
    pub block: Option<Vec<Node>>,
}

impl Node {
    fn key(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    /// The words after the keyword, joined (empty for a statement without arguments, or for a
    /// block opened with a bare `{`).
    fn rest(&self) -> String {
        self.words.get(1..).unwrap_or_default().join(" ")
    }

    fn children(&self) -> &[Node] {
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
    pub script: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub weight: Option<i64>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub user: Option<String>,
}

#[derive(Debug, Default)]
pub struct Instance {
    pub name: String,
    pub line: usize,
    pub state: Option<String>,
    pub interface: Option<String>,
    pub vrid: Option<String>,
    pub priority: Option<String>,
    pub advert_int: Option<String>,
    pub nopreempt: bool,
    pub preempt_delay: Option<String>,
    pub auth: Option<(String, Option<String>)>,
    pub vips: Vec<String>,
    pub track_script: Vec<(String, Option<i64>)>,
    pub track_interface: Vec<(String, Option<i64>)>,
    pub notify: Vec<(&'static str, String)>,
    pub unicast_src_ip: Option<String>,
    pub unicast_peer: Vec<String>,
    pub garp: Vec<(&'static str, String)>,
}

#[derive(Debug, Default)]
pub struct Keepalived {
    pub router_id: Option<String>,
    pub script_user: Option<String>,
    pub enable_script_security: bool,
    pub scripts: Vec<Script>,
    pub instances: Vec<Instance>,
}

pub fn convert(text: &str, path: &Path, notes: &mut Notes) -> Result<Keepalived, ImportError> {
    let mut out = Keepalived::default();
    for node in parse(text, path)? {
        match node.key() {
            "global_defs" => global(&node, &mut out, notes),
            "vrrp_script" => out.scripts.push(script(&node, notes)),
            "vrrp_instance" => out.instances.push(instance(&node, notes)),
            "virtual_server" | "virtual_server_group" => notes.add(
                node.line,
                NoteKind::Dropped,
                format!("`{}` (LVS load balancing): vrrpd balances with its own [[proxy]] instead", node.words.join(" ")),
            ),
            other => notes.add(node.line, NoteKind::Dropped, format!("`{other}` has no vrrpd equivalent")),
        }
    }
    Ok(out)
}

fn global(node: &Node, out: &mut Keepalived, notes: &mut Notes) {
    for item in node.children() {
        match (item.key(), item.arg(1)) {
            ("router_id", Some(id)) => out.router_id = Some(id.to_owned()),
            ("script_user", Some(user)) => out.script_user = Some(user.to_owned()),
            ("enable_script_security", _) => out.enable_script_security = true,
            (key, _) => notes.add(item.line, NoteKind::Dropped, format!("global_defs `{key}`")),
        }
    }
}

fn script(node: &Node, notes: &mut Notes) -> Script {
    let mut s = Script { name: node.arg(1).unwrap_or("unnamed").to_owned(), ..Script::default() };
    for item in node.children() {
        let value = item.rest();
        let number = |notes: &mut Notes| match value.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                notes.add(
                    item.line,
                    NoteKind::Dropped,
                    format!("vrrp_script {} `{}`: {value:?} is not a number", s.name, item.key()),
                );
                None
            }
        };
        match item.key() {
            "script" => s.script = Some(value),
            "interval" => s.interval = Some(value),
            "timeout" => s.timeout = Some(value),
            "weight" => s.weight = number(notes),
            "rise" => s.rise = number(notes),
            "fall" => s.fall = number(notes),
            "user" => s.user = item.arg(1).map(str::to_owned),
            key => notes.add(item.line, NoteKind::Dropped, format!("vrrp_script {} `{key}`", s.name)),
        }
    }
    s
}

fn instance(node: &Node, notes: &mut Notes) -> Instance {
    let mut i = Instance { name: node.arg(1).unwrap_or("VI_1").to_owned(), line: node.line, ..Instance::default() };
    for item in node.children() {
        let one = item.arg(1).map(str::to_owned);
        match item.key() {
            "state" => i.state = one,
            "interface" => i.interface = one,
            "virtual_router_id" => i.vrid = one,
            "priority" => i.priority = one,
            "advert_int" => i.advert_int = one,
            "nopreempt" => i.nopreempt = true,
            "preempt_delay" => i.preempt_delay = one,
            "authentication" => {
                let mut auth_type = None;
                let mut pass = None;
                for a in item.children() {
                    match a.key() {
                        "auth_type" => auth_type = a.arg(1).map(str::to_owned),
                        "auth_pass" => pass = a.arg(1).map(str::to_owned),
                        key => notes.add(a.line, NoteKind::Dropped, format!("authentication `{key}`")),
                    }
                }
                if let Some(t) = auth_type {
                    i.auth = Some((t, pass));
                }
            }
            "virtual_ipaddress" => {
                for v in item.children() {
                    i.vips.push(v.key().to_owned());
                    if v.words.len() > 1 {
                        notes.add(
                            v.line,
                            NoteKind::Dropped,
                            format!("VIP options `{}`: vrrpd adds VIPs to the instance's interface with its own label", v.rest()),
                        );
                    }
                }
            }
            "track_script" | "track_interface" => {
                for t in item.children() {
                    let weight = match (t.arg(1), t.arg(2)) {
                        (Some("weight"), Some(w)) => w.parse().ok(),
                        _ => None,
                    };
                    let list = if item.key() == "track_script" { &mut i.track_script } else { &mut i.track_interface };
                    list.push((t.key().to_owned(), weight));
                }
            }
            key @ ("notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop") => {
                let field = match key {
                    "notify" => "notify",
                    "notify_master" => "notify_master",
                    "notify_backup" => "notify_backup",
                    "notify_fault" => "notify_fault",
                    _ => "notify_stop",
                };
                i.notify.push((field, item.rest()));
            }
            "unicast_src_ip" => i.unicast_src_ip = one,
            "unicast_peer" => i.unicast_peer.extend(item.children().iter().map(|p| p.key().to_owned())),
            key @ ("garp_master_delay" | "garp_master_repeat" | "garp_master_refresh" | "garp_master_refresh_repeat") => {
                let field = match key {
                    "garp_master_delay" => "garp_master_delay",
                    "garp_master_repeat" => "garp_master_repeat",
                    "garp_master_refresh" => "garp_master_refresh",
                    _ => "garp_master_refresh_repeat",
                };
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
