//! Which source lines the import left without a note. A line is explained when its directive
//! is one the importer carries as written (listed here, independently of the importer), when a
//! note names its line, or when a note says the section or block it belongs to was not carried
//! over. Every other line is returned, to fail the test.

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Keepalived,
    Haproxy,
}

/// Lines of `file` named by a note, with whether the note says "not carried over".
fn noted(notes: &str, file: &str) -> Vec<(usize, bool)> {
    notes
        .lines()
        .filter_map(|l| l.strip_prefix(file)?.strip_prefix(':'))
        .filter_map(|rest| {
            let (line, rest) = rest.split_once(':')?;
            Some((line.parse().ok()?, rest.trim_start().starts_with("not carried over")))
        })
        .collect()
}

/// Returns (line number, text) of every line left behind without a note.
pub fn unexplained_lines(text: &str, format: Format, notes: &str, file: &str) -> Vec<(usize, String)> {
    let noted = noted(notes, file);
    let has_note = |line: usize| noted.iter().any(|(l, _)| *l == line);
    let dropped = |line: usize| noted.iter().any(|(l, d)| *l == line && *d);
    match format {
        Format::Haproxy => haproxy(text, has_note, dropped),
        Format::Keepalived => keepalived(text, has_note, dropped),
    }
}

const SECTIONS: &[&str] = &["global", "defaults", "listen", "frontend", "backend"];

fn server_options_understood(options: &[&str]) -> bool {
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            "check" | "no-check" | "backup" | "send-proxy" | "send-proxy-v2" | "check-ssl" => i += 1,
            "inter" | "fastinter" | "downinter" | "rise" | "fall" | "weight" | "maxconn" | "slowstart" => i += 2,
            "port" | "addr" | "ca-file" | "check-sni" | "verify" => i += 2,
            "on-marked-down" if options.get(i + 1) == Some(&"shutdown-sessions") => i += 2,
            _ => return false,
        }
    }
    true
}

fn haproxy_understood(words: &[&str], in_global: bool) -> bool {
    match words {
        ["maxconn", _] => true,
        _ if in_global => false,
        ["mode", "tcp" | "http"]
        | ["balance", "roundrobin" | "leastconn" | "first" | "static-rr"]
        | ["timeout", "connect" | "client" | "server" | "queue" | "check" | "tunnel", _]
        | ["retries", _]
        | ["option", "redispatch"]
        | ["option", "httpchk"]
        | ["option", "httpchk", _]
        | ["option", "httpchk", "GET", _]
        | ["http-check", "expect", "status", _]
        | ["no", "option", "redispatch"]
        | ["option", "allbackups"]
        | ["no", "option", "allbackups"]
        | ["bind", _]
        | ["bind", _, "accept-proxy"]
        | ["default_backend" | "use_backend", _]
        | ["stats", "enable"]
        | ["stats", "refresh", _]
        | ["stats", "auth", _] => true,
        ["server", _, _, options @ ..] | ["default-server", options @ ..] => server_options_understood(options),
        _ => false,
    }
}

fn haproxy(text: &str, has_note: impl Fn(usize) -> bool, dropped: impl Fn(usize) -> bool) -> Vec<(usize, String)> {
    let mut left = Vec::new();
    let (mut in_global, mut section_dropped) = (false, false);
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let words: Vec<&str> = raw.split('#').next().unwrap_or("").split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        let header = SECTIONS.contains(first) || !raw.starts_with(char::is_whitespace);
        if header {
            in_global = *first == "global";
            section_dropped = dropped(line);
            let known = SECTIONS.contains(first) && words.len() <= if *first == "listen" { 3 } else { 2 };
            if !known && !has_note(line) {
                left.push((line, raw.to_owned()));
            }
            continue;
        }
        if !section_dropped && !haproxy_understood(&words, in_global) && !has_note(line) {
            left.push((line, raw.to_owned()));
        }
    }
    left
}

/// keepalived words: `{` and `}` apart, quoted strings kept whole, comments (`#`, `!`) cut.
fn keepalived_words(raw: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                word.extend(chars.by_ref().take_while(|q| *q != '"'));
                words.push(std::mem::take(&mut word));
            }
            '#' | '!' if word.is_empty() => break,
            '{' | '}' | ' ' | '\t' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                if c == '{' || c == '}' {
                    words.push(c.to_string());
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn keepalived_understood(words: &[&str], parent: &str) -> bool {
    match parent {
        "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
            // The address, then the placement words vrrpd carries, each with its value.
            // `no_track` stands alone where a keyword belongs, as the importer reads it.
            let mut options = words.get(1..).unwrap_or_default().iter();
            while let Some(word) = options.next() {
                match *word {
                    "no_track" => {}
                    "dev" | "label" | "scope" | "brd" | "broadcast" if options.next().is_some() => {}
                    _ => return false,
                }
            }
            return true;
        }
        "unicast_peer" | "group" => return words.len() == 1,
        "track_script" | "track_interface" | "track_process" | "track_file" => {
            return matches!(words, [_] | [_, "weight", _] | [_, "weight", _, "reverse" | "noreverse" | "no_reverse"])
        }
        _ => {}
    }
    match words {
        ["global_defs"
        | "authentication"
        | "virtual_ipaddress"
        | "virtual_ipaddress_excluded"
        | "track_script"
        | "track_interface"
        | "unicast_peer"] => true,
        ["vrrp_script" | "vrrp_instance" | "vrrp_sync_group" | "vrrp_track_process" | "track_file" | "vrrp_track_file", _] => {
            true
        }
        ["group" | "track_process" | "track_file" | "full_command" | "sync_group_tracking_weight"] => true,
        ["vrrp_garp_interval", _] => true,
        ["quorum" | "quorum_max" | "delay" | "fork_delay" | "terminate_delay" | "file", _] => true,
        ["process" | "init_file", ..] => true,
        ["param_match"] | ["param_match", "initial" | "partial"] => true,
        ["weight", _, "reverse"] => true,
        ["router_id" | "script_user" | "user" | "weight" | "rise" | "fall" | "interval" | "timeout", _] => true,
        ["enable_script_security" | "nopreempt"] => true,
        ["state" | "interface" | "virtual_router_id" | "priority" | "preempt_delay" | "auth_type" | "auth_pass", _] => true,
        ["unicast_src_ip" | "garp_master_delay" | "garp_master_repeat" | "garp_master_refresh" | "garp_master_refresh_repeat", _] => {
            true
        }
        ["notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop", _] => true,
        ["advert_int", value] => value.parse::<u8>().is_ok_and(|v| v >= 1) || centiseconds(value),
        ["vrrp_version" | "version", "2" | "3"] => true,
        ["script", ..] => true,
        _ => false,
    }
}

fn keepalived(text: &str, has_note: impl Fn(usize) -> bool, dropped: impl Fn(usize) -> bool) -> Vec<(usize, String)> {
    let mut left = Vec::new();
    // Open blocks: their keyword, and whether they (or a block around them) were not carried over.
    let mut stack: Vec<(String, bool)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let words = keepalived_words(raw);
        let statement: Vec<&str> = words.iter().map(String::as_str).filter(|w| *w != "{" && *w != "}").collect();
        let covered = stack.last().is_some_and(|(_, d)| *d);
        if !statement.is_empty() && !covered {
            let parent = stack.last().map_or("", |(k, _)| k.as_str());
            if !keepalived_understood(&statement, parent) && !has_note(line) {
                left.push((line, raw.to_owned()));
            }
        }
        for w in &words {
            match w.as_str() {
                "{" => stack.push((statement.first().unwrap_or(&"").to_string(), covered || dropped(line))),
                "}" => {
                    stack.pop();
                }
                _ => {}
            }
        }
    }
    left
}

/// A VRRPv3 interval keepalived writes in seconds that is whole centiseconds (0.01 to 40.95).
fn centiseconds(value: &str) -> bool {
    value.parse::<f64>().is_ok_and(|s| (0.01..=40.95).contains(&s) && ((s * 100.0).round() - s * 100.0).abs() < 1e-9)
}
