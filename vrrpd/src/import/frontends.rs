//! A frontend joined with the backend that takes its connections, and the section that
//! becomes vrrpd's one stats page. HAProxy's conditional routing (`use_backend ... if ACL`)
//! has no vrrpd equivalent: it is noted, never guessed.

use std::collections::HashMap;

use super::haproxy::{Haproxy, Kind, Proxy, Settings, Stats};
use super::{NoteKind, Notes, Written};

/// The ACLs a `use_backend` condition names (`if is_tls !from_lan`), anonymous ones as written.
fn acl_names(condition: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut anonymous: Option<Vec<&str>> = None;
    for word in condition.split_whitespace() {
        match (word, anonymous.as_mut()) {
            ("}", Some(inner)) => names.push(format!("{{ {} }}", inner.join(" "))),
            (_, Some(inner)) => {
                inner.push(word);
                continue;
            }
            ("{", None) => {
                anonymous = Some(Vec::new());
                continue;
            }
            ("if" | "unless" | "or" | "||" | "!", None) => {}
            (name, None) => names.push(name.trim_start_matches('!').to_owned()),
        }
        anonymous = None;
    }
    names
}

/// A frontend becomes one proxy with the servers of the backend it sends every connection to:
/// its first unconditional `use_backend`, else its `default_backend`. Conditional routing has
/// no vrrpd equivalent and is noted, never guessed.
pub fn join(out: &mut Haproxy, notes: &mut Notes) {
    let backends: HashMap<String, Proxy> =
        out.proxies.iter().filter(|p| p.kind != Kind::Frontend).map(|p| (p.name.clone(), p.clone())).collect();
    let mut used = Vec::new();
    let mut routed: HashMap<String, usize> = HashMap::new();
    let mut joined = Vec::new();
    for mut proxy in std::mem::take(&mut out.proxies) {
        if proxy.kind != Kind::Frontend {
            joined.push(proxy);
            continue;
        }
        let unconditional =
            proxy.routes.iter().find(|r| r.condition.is_none()).map(|r| Written { text: r.backend.clone(), line: r.line });
        if let (Some(route), Some(default)) = (&unconditional, &proxy.default_backend) {
            notes.add(
                default.line,
                NoteKind::Dropped,
                format!(
                    "`default_backend {}` is never reached: `use_backend {}` at line {} takes every connection",
                    default.text, route.text, route.line
                ),
            );
        }
        let target = unconditional.or(proxy.default_backend.clone());
        let goes_to = match &target {
            Some(t) => format!("every connection goes to backend {}", t.text),
            None => format!("frontend {} has no default_backend and is not imported", proxy.name),
        };
        for route in proxy.routes.iter().filter(|r| r.condition.is_some()) {
            let condition = route.condition.as_deref().unwrap_or_default();
            notes.add(
                route.line,
                NoteKind::Dropped,
                format!(
                    "`use_backend {} {condition}`: routing on ACL {} cannot be carried over (vrrpd has no ACLs): {goes_to}",
                    route.backend,
                    acl_names(condition).join(", ")
                ),
            );
            routed.entry(route.backend.clone()).or_insert(route.line);
        }
        let Some(target) = target else {
            if proxy.routes.is_empty() {
                notes.add(proxy.line, NoteKind::Dropped, format!("frontend {} has no default_backend: not imported", proxy.name));
            }
            continue;
        };
        let Some(backend) = backends.get(&target.text) else {
            notes.add(
                target.line,
                NoteKind::Dropped,
                format!("frontend {}: backend {:?} is not defined: not imported", proxy.name, target.text),
            );
            continue;
        };
        // The client side is the frontend's; the server side is the backend's.
        let client = proxy.settings.clone();
        proxy.settings = Settings { timeout_client: client.timeout_client, maxconn: client.maxconn, ..backend.settings.clone() };
        proxy.servers = backend.servers.clone();
        proxy.disabled |= backend.disabled;
        used.push(target.text);
        joined.push(proxy);
    }
    out.proxies = joined;
    out.proxies.retain(|p| {
        if p.kind != Kind::Backend {
            return true;
        }
        if !used.contains(&p.name) {
            let message = match routed.get(&p.name) {
                Some(line) => format!(
                    "backend {} is reached only by the conditional `use_backend` at line {line}, which cannot be carried over: not imported",
                    p.name
                ),
                None => format!("backend {} is used by no frontend: not imported", p.name),
            };
            notes.add(p.line, NoteKind::Dropped, message);
        }
        false
    });
}

/// The first section with `stats` and no servers becomes `[stats]`.
pub fn extract_stats(out: &mut Haproxy, notes: &mut Notes) {
    out.proxies.retain(|p| {
        let Some(stats_line) = p.stats else { return true };
        if !p.servers.is_empty() {
            notes.add(
                stats_line,
                NoteKind::Dropped,
                format!("proxy {}: a stats page on a balancing proxy: vrrpd's [stats] has its own listener", p.name),
            );
            return true;
        }
        match (&out.stats, &p.bind) {
            (None, Some(bind)) => {
                out.stats = Some(Stats {
                    bind: bind.text.clone(),
                    line: p.line,
                    auth: p.stats_auth.clone(),
                    refresh: p.stats_refresh.clone(),
                });
            }
            _ => notes.add(p.line, NoteKind::Dropped, format!("stats section {}: vrrpd has one stats page", p.name)),
        }
        false
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_names_of_a_condition() {
        assert_eq!(acl_names("if is_tls !from_lan"), ["is_tls", "from_lan"]);
        assert_eq!(acl_names("if { dst_port 5671 } || is_tls"), ["{ dst_port 5671 }", "is_tls"]);
    }
}
