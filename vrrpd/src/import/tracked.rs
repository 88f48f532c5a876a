//! keepalived's `vrrp_track_process`, `track_file` (`vrrp_track_file`) and `vrrp_sync_group`
//! blocks: read from the tree, then written as vrrpd's sections. Values vrrpd reads the same
//! way are carried over as written; the rest is noted.

use std::fmt::Write as _;

use super::keepalived::{Node, Track};
use super::values;
use super::{NoteKind, Notes};

/// A TOML string.
fn q(text: &str) -> String {
    ::toml::Value::String(text.to_owned()).to_string()
}

/// keepalived's range for a process or file tracker's weight.
const WEIGHT: std::ops::RangeInclusive<i64> = -254..=254;

/// One section of TOML, with where it came from.
#[derive(Debug)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub text: String,
}

/// `weight N [reverse|noreverse]`: the weight and whether it is reversed.
fn weight(item: &Node, what: &str, notes: &mut Notes) -> (Option<i64>, bool) {
    let value = item.arg(1).and_then(|w| values::integer(w, WEIGHT, item.line, &format!("{what} weight"), notes));
    let reverse = item.arg(2) == Some("reverse");
    if let Some(extra) = item.words.get(if item.arg(2).is_some() { 3 } else { 2 }..).filter(|rest| !rest.is_empty()) {
        notes.add(item.line, NoteKind::Dropped, format!("{what} weight: `{}` is not carried over", extra.join(" ")));
    }
    (value, reverse)
}

/// A keepalived delay in seconds as a vrrpd duration.
fn delay(item: &Node, what: &str, notes: &mut Notes) -> Option<String> {
    let text = values::seconds(item.arg(1)?);
    values::duration(&text, values::DELAY, item.line, what, notes)
}

pub fn track_process(node: &Node, notes: &mut Notes) -> Section {
    let name = values::name(node.arg(1).unwrap_or("unnamed"), node.line, "vrrp_track_process", notes);
    let what = format!("vrrp_track_process {name}");
    let mut out = format!("[[vrrp_track_process]]\nname = {}\n", q(&name));
    for item in node.children() {
        match item.key() {
            "process" => {
                if let Some(process) = item.arg(1) {
                    let _ = writeln!(out, "process = {}", q(process));
                }
                let params: Vec<String> = item.words.iter().skip(2).map(|p| q(p)).collect();
                if !params.is_empty() {
                    let _ = writeln!(out, "params = [{}]", params.join(", "));
                }
            }
            "param_match" => match item.arg(1) {
                Some(m @ ("initial" | "partial")) => {
                    let _ = writeln!(out, "param_match = {}", q(m));
                }
                None => out.push_str("param_match = \"exact\"\n"),
                Some(other) => notes.add(item.line, NoteKind::Dropped, format!("{what} param_match {other:?}: not carried over")),
            },
            "weight" => {
                let (w, reverse) = weight(item, &what, notes);
                if let Some(w) = w {
                    let _ = writeln!(out, "weight = {w}");
                }
                if reverse {
                    out.push_str("reverse = true\n");
                }
            }
            key @ ("quorum" | "quorum_max") => {
                if let Some(n) =
                    item.arg(1).and_then(|n| values::integer(n, 0..=65535, item.line, &format!("{what} {key}"), notes))
                {
                    let _ = writeln!(out, "{key} = {n}");
                }
            }
            key @ ("delay" | "fork_delay" | "terminate_delay") => {
                if let Some(d) = delay(item, &format!("{what} {key}"), notes) {
                    let _ = writeln!(out, "{key} = {}", q(&d));
                }
            }
            "full_command" => out.push_str("full_command = true\n"),
            key => notes.add(item.line, NoteKind::Dropped, format!("{what} `{key}`")),
        }
    }
    Section { name, line: node.line, text: out }
}

pub fn track_file(node: &Node, notes: &mut Notes) -> Section {
    let name = values::name(node.arg(1).unwrap_or("unnamed"), node.line, "track_file", notes);
    let what = format!("track_file {name}");
    let mut out = format!("[[vrrp_track_file]]\nname = {}\n", q(&name));
    if node.key() == "vrrp_track_file" {
        notes.add(node.line, NoteKind::Changed, "`vrrp_track_file` is keepalived's old name for track_file".to_owned());
    }
    for item in node.children() {
        match item.key() {
            "file" => {
                if let Some(file) = item.arg(1) {
                    let _ = writeln!(out, "file = {}", q(file));
                }
            }
            "weight" => {
                let (w, reverse) = weight(item, &what, notes);
                if let Some(w) = w {
                    let _ = writeln!(out, "weight = {w}");
                }
                if reverse {
                    out.push_str("reverse = true\n");
                }
            }
            "init_file" => {
                let value = item.arg(1).filter(|v| *v != "overwrite").unwrap_or("0");
                if let Some(v) = values::integer(value, i64::MIN..=i64::MAX, item.line, &format!("{what} init_file"), notes) {
                    let _ = writeln!(out, "init_file = {v}");
                }
                if item.words.iter().any(|w| w == "overwrite") {
                    out.push_str("init_file_overwrite = true\n");
                }
            }
            key => notes.add(item.line, NoteKind::Dropped, format!("{what} `{key}`")),
        }
    }
    notes.add(
        node.line,
        NoteKind::Changed,
        format!("{what}: vrrpd refuses to start if a non-root user could write the file (allow_unsafe = true to accept it)"),
    );
    Section { name, line: node.line, text: out }
}

/// `track_process { NAME [weight N] [reverse] }` (and the other lists): as vrrpd's inline
/// tables.
pub fn track_list(list: &[Track]) -> String {
    list.iter()
        .map(|t| {
            let mut entry = format!("{{ name = {}", q(&values::clean_name(&t.name)));
            if let Some(w) = t.weight.as_deref().and_then(|w| w.parse::<i64>().ok()) {
                let _ = write!(entry, ", weight = {}", w.clamp(-253, 253));
            }
            if t.reverse {
                entry.push_str(", reverse = true");
            }
            entry + " }"
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `vrrp_sync_group NAME { group { ... } track_* { ... } }`; `known` says which instances
/// were imported (a group naming others would not pass `vrrpd check`).
pub fn sync_group(node: &Node, known: &dyn Fn(&str) -> bool, notes: &mut Notes) -> Section {
    let name = values::name(node.arg(1).unwrap_or("unnamed"), node.line, "vrrp_sync_group", notes);
    let what = format!("vrrp_sync_group {name}");
    let mut out = format!("[[vrrp_sync_group]]\nname = {}\n", q(&name));
    let mut scripts: Vec<(&str, String)> = Vec::new();
    for item in node.children() {
        match item.key() {
            "group" => {
                let mut members = Vec::new();
                for m in item.children() {
                    if known(m.key()) {
                        members.push(q(&values::clean_name(m.key())));
                    } else {
                        notes.add(m.line, NoteKind::Dropped, format!("{what}: {} is not an imported vrrp_instance", m.key()));
                    }
                }
                let _ = writeln!(out, "group = [{}]", members.join(", "));
            }
            key @ ("track_script" | "track_interface" | "track_process" | "track_file") => {
                let list = super::keepalived::tracks(item, notes);
                let _ = writeln!(out, "{key} = [{}]", track_list(&list));
            }
            "sync_group_tracking_weight" => out.push_str("sync_group_tracking_weight = true\n"),
            key @ ("notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop") => {
                // keepalived keeps the last of a key given twice; TOML refuses a repeated key.
                scripts.retain(|(k, _)| *k != key);
                if let Some(script) = item.arg(1) {
                    scripts.push((key, script.to_owned()));
                }
                // keepalived reads `notify_master SCRIPT [USER [GROUP]]`.
                super::keepalived::note_extra(
                    item,
                    2,
                    &format!("{what} {key}'s user (vrrpd runs notify scripts as script_user)"),
                    notes,
                );
            }
            key => notes.add(item.line, NoteKind::Dropped, format!("{what} `{key}` is not carried over")),
        }
    }
    for (key, script) in &scripts {
        let _ = writeln!(out, "{key} = {}", q(script));
    }
    notes.add(
        node.line,
        NoteKind::Changed,
        format!("{what}: a member in FAULT puts the others in FAULT; BACKUP and MASTER follow from the members' equal priorities (weights inside a group are 0, as in keepalived)"),
    );
    Section { name, line: node.line, text: out }
}
