//! keepalived scripts that watch HAProxy (`chk_haproxy` and its kin). Under vrrpd there is no
//! haproxy process to watch, the unit's sandbox makes `ps` and `killall` fail (with weight 0,
//! a FAULT), and a script that restarts haproxy or stops keepalived must not run at all; the
//! balancer's health is tracked without a script (`track_proxy`). A watcher is recognised by
//! its name, its command line, or what its file does when the file can be read here.

use std::path::Path;

use super::keepalived::Script;

pub enum Verdict {
    /// Watches HAProxy; the words say how it was recognised.
    Haproxy(String),
    /// Not recognised by name or command, and its file could not be read to tell.
    Unread(String),
    Other,
}

/// Where HAProxy listens: a script probing one of these ports on a local address watches it.
pub struct Listening {
    pub ports: Vec<u16>,
    /// Addresses that are this host's: HAProxy's binds and the VIPs.
    pub hosts: Vec<String>,
}

/// Interpreters whose next word is the script file.
const INTERPRETERS: &[&str] = &["sh", "bash", "dash", "ksh", "zsh", "python", "python3", "perl"];

fn program_file(command: &str) -> Option<&str> {
    let mut words = command.split_whitespace();
    let first = words.next()?;
    let base = first.rsplit('/').next().unwrap_or(first);
    let file = if INTERPRETERS.contains(&base) { words.find(|w| !w.starts_with('-'))? } else { first };
    file.starts_with('/').then_some(file)
}

/// The code of a shell line, without its comment.
fn code(line: &str) -> &str {
    let line = line.trim();
    if line.starts_with('#') {
        return "";
    }
    match line.find(" #") {
        Some(i) => line[..i].trim_end(),
        None => line,
    }
}

/// A port of HAProxy's that the line probes on this host (`nc -z localhost 8100`,
/// `/dev/tcp/127.0.0.1/5672`, `curl http://127.0.0.1:8100/`, `ss -lnt | grep :5672`).
fn probed_port(line: &str, listening: &Listening) -> Option<u16> {
    let tokens: Vec<&str> =
        line.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))).filter(|t| !t.is_empty()).collect();
    let has = |words: &[&str]| tokens.iter().any(|t| words.contains(t));
    let listing = has(&["ss", "netstat", "lsof"]);
    let connecting = has(&["nc", "ncat", "netcat", "curl", "wget", "telnet", "socat"]) || line.contains("/dev/tcp/");
    let local = tokens
        .iter()
        .any(|t| *t == "localhost" || t.starts_with("127.") || *t == "0.0.0.0" || listening.hosts.iter().any(|h| h == t));
    if !(listing || connecting && local) {
        return None;
    }
    tokens.iter().filter_map(|t| t.parse::<u16>().ok()).find(|p| listening.ports.contains(p))
}

/// Why `line` watches HAProxy, if it does.
fn watching(line: &str, listening: &Listening) -> Option<String> {
    if line.to_ascii_lowercase().contains("haproxy") {
        return Some(format!("`{line}`"));
    }
    probed_port(line, listening).map(|port| format!("`{line}`, a probe of port {port} where HAProxy listens"))
}

fn stops_keepalived(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    line.contains("keepalived") && (line.contains("kill") || line.contains("stop"))
}

pub fn classify(script: &Script, listening: &Listening, read: fn(&Path) -> Option<String>) -> Verdict {
    let mut reasons = Vec::new();
    if script.name.to_ascii_lowercase().contains("haproxy") {
        reasons.push(format!("its name, {}", script.name));
    }
    let command = script.script.as_deref().unwrap_or_default();
    if let Some(why) = watching(command, listening) {
        reasons.push(format!("its command {why}"));
    }
    let file = program_file(command);
    match file.and_then(|f| read(Path::new(f)).map(|text| (f, text))) {
        Some((path, text)) => {
            let lines: Vec<&str> = text.lines().map(code).filter(|l| !l.is_empty()).collect();
            if let Some(why) = lines.iter().find_map(|l| watching(l, listening)) {
                reasons.push(format!("{path} runs {why}"));
                if lines.iter().any(|l| stops_keepalived(l)) {
                    reasons.push(format!("{path} stops keepalived when HAProxy is down"));
                }
            }
        }
        None if reasons.is_empty() => {
            if let Some(path) = file {
                return Verdict::Unread(path.to_owned());
            }
        }
        None => {}
    }
    if reasons.is_empty() {
        Verdict::Other
    } else {
        Verdict::Haproxy(reasons.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> Listening {
        Listening { ports: vec![5670, 8100], hosts: vec!["192.0.2.100".into()] }
    }

    fn script(name: &str, command: &str) -> Script {
        Script { name: name.into(), script: Some(command.into()), ..Script::default() }
    }

    #[test]
    fn watchers_are_recognised_by_name_command_and_content() {
        let none = |_: &Path| None;
        assert!(matches!(classify(&script("chk_haproxy", "/etc/keepalived/chk.sh"), &listening(), none), Verdict::Haproxy(_)));
        assert!(matches!(classify(&script("chk", "killall -0 haproxy"), &listening(), none), Verdict::Haproxy(_)));
        assert!(matches!(classify(&script("chk", "/usr/bin/nc -z 127.0.0.1 5670"), &listening(), none), Verdict::Haproxy(_)));
        assert!(matches!(classify(&script("chk", "/usr/bin/nc -z 192.0.2.21 5672"), &listening(), none), Verdict::Unread(_)));
        assert!(matches!(classify(&script("chk", "rabbitmq-diagnostics -q ping"), &listening(), none), Verdict::Other));
        let probe = |_: &Path| Some("#!/bin/bash\n# watches haproxy\nnc -zv localhost 8100\n".to_owned());
        match classify(&script("chk_proxy", "/bin/bash /opt/check-proxy.sh"), &listening(), probe) {
            Verdict::Haproxy(why) => assert!(why.contains("port 8100"), "{why}"),
            _ => panic!("not recognised"),
        }
        let rabbit = |_: &Path| Some("#!/bin/sh\n# not haproxy\nrabbitmq-diagnostics -q check_running\n".to_owned());
        assert!(matches!(classify(&script("chk_rabbit", "/opt/chk.sh"), &listening(), rabbit), Verdict::Other));
    }
}
