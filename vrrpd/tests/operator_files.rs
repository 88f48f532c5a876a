//! The files an operator installs beside the binary: the man page and shell completions that
//! `vrrpd generate` renders from the command line, and the Prometheus alerts and Grafana
//! dashboard in conf/, checked against the metrics vrrpd actually serves.

#![allow(clippy::unwrap_used)] // a test fails by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::CommandFactory;

const RULES: &str = "conf/prometheus-vrrpd-rules.yml";
const RULE_TESTS: &str = "conf/prometheus-vrrpd-rules.test.yml";
const DASHBOARD: &str = "conf/grafana-vrrpd.json";

fn vrrpd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vrrpd")).args(args).output().expect("run vrrpd")
}

fn stdout_of(args: &[&str]) -> String {
    let out = vrrpd(args);
    assert!(out.status.success(), "vrrpd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn program(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|path| path.is_file())
}

/// promtool, from Debian's `prometheus` package (scripts/install-test-deps.sh installs it). When
/// it is missing the test is skipped, unless `VRRPD_REQUIRE_NETNS=1` (CI) says every test runs.
fn promtool(test: &str) -> Option<PathBuf> {
    let found = program("promtool");
    if found.is_none() {
        let message = format!("{test}: SKIPPED, needs promtool (Debian package prometheus; scripts/install-test-deps.sh)");
        if std::env::var_os("VRRPD_REQUIRE_NETNS").is_some_and(|v| v == "1") {
            panic!("{message}; VRRPD_REQUIRE_NETNS=1 requires it to run");
        }
        eprintln!("{message}");
    }
    found
}

fn run_promtool(promtool: &Path, args: &[&str], dir: &Path) -> String {
    let out = Command::new(promtool).args(args).current_dir(dir).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

// ---- What /metrics serves ----

/// Every metric `/metrics` serves, with its type: an empty snapshot still declares them all.
fn served_metrics() -> BTreeMap<String, String> {
    let snapshot = vrrpd::stats::StatusBoard::new("proxy-a").snapshot(None);
    let text = vrrpd::stats::render::prometheus(&snapshot);
    let metrics: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').unwrap();
            (name.to_owned(), kind.to_owned())
        })
        .collect();
    assert!(metrics.contains_key("vrrpd_instance_master"), "{text}");
    metrics
}

/// The label names render.rs writes (`name=\"...\"` in its format strings), and those Prometheus
/// adds: `job`, `instance` for the target, and `exported_instance` for vrrpd's own `instance`.
fn stored_labels() -> BTreeSet<String> {
    let source = read("vrrpd/src/stats/render.rs");
    let body = &source[source.find("pub fn prometheus").unwrap()..];
    let body = &body[..body.find("\n}\n").unwrap()];
    let mut labels = BTreeSet::new();
    for (at, _) in body.match_indices("=\\\"") {
        let name: String = body[..at].chars().rev().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        labels.insert(name.chars().rev().collect::<String>());
    }
    assert!(labels.contains("vrid") && labels.contains("reason") && labels.contains("server"), "{labels:?}");
    if labels.contains("instance") {
        labels.insert("exported_instance".to_owned());
    }
    labels.extend(["job".to_owned(), "instance".to_owned()]);
    labels
}

// ---- A small PromQL reader: enough to name the metrics and labels an expression uses ----

#[derive(Debug, Default)]
struct Uses {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
    /// Metrics under rate() or increase(): they must be counters.
    rated: BTreeSet<String>,
}

const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "inf", "nan"];
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn promql_uses(expr: &str, uses: &mut Uses) {
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut in_selector = false;
    let mut in_label_list = false;
    let mut in_range = false;
    let mut rating = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            '{' => in_selector = true,
            '}' => in_selector = false,
            '[' => in_range = true,
            ']' => in_range = false,
            ')' => in_label_list = false,
            '$' => {
                // A Grafana variable ($job, $__rate_interval): not PromQL's.
                i += 1;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                continue;
            }
            _ if c.is_ascii_digit() => {
                while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
                continue;
            }
            _ if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
                if in_range {
                } else if in_selector || in_label_list {
                    uses.labels.insert(word);
                } else if LABEL_LISTS.contains(&word.as_str()) {
                    in_label_list = next == Some('(');
                } else if next == Some('(') || AGGREGATIONS.contains(&word.as_str()) {
                    rating = matches!(word.as_str(), "rate" | "irate" | "increase");
                } else if !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                    if rating {
                        uses.rated.insert(word.clone());
                        rating = false;
                    }
                    uses.metrics.insert(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

/// `$labels.name` in an alert's annotations.
fn annotation_labels(text: &str, uses: &mut Uses) {
    for (at, _) in text.match_indices("$labels.") {
        let name: String = text[at + "$labels.".len()..].chars().take_while(|c| is_ident(*c)).collect();
        uses.labels.insert(name);
    }
}

/// `{{name}}` in a Grafana legend.
fn legend_labels(legend: &str, uses: &mut Uses) {
    for piece in legend.split("{{").skip(1) {
        let name = piece.split("}}").next().unwrap_or_default().trim();
        assert!(!name.is_empty() && name.chars().all(is_ident), "legend {legend:?}");
        uses.labels.insert(name.to_owned());
    }
}

/// The `expr:` of every rule, and the whole file for its annotation templates.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else { continue };
        let rest = rest.trim();
        if rest == "|" || rest == ">" || rest.starts_with("|-") || rest.starts_with(">-") {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            exprs.push(block.join(" "));
        } else {
            let quoted = ['\'', '"'].into_iter().find(|q| rest.len() > 1 && rest.starts_with(*q) && rest.ends_with(*q));
            exprs.push(quoted.map_or(rest, |_| &rest[1..rest.len() - 1]).to_owned());
        }
    }
    exprs
}

struct DashboardQueries {
    exprs: Vec<String>,
    legends: Vec<String>,
}

fn dashboard_queries(dashboard: &serde_json::Value) -> DashboardQueries {
    fn walk(value: &serde_json::Value, found: &mut DashboardQueries) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => found.exprs.push(expr.clone()),
                        ("legendFormat", serde_json::Value::String(legend)) => found.legends.push(legend.clone()),
                        _ => walk(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = DashboardQueries { exprs: Vec::new(), legends: Vec::new() };
    walk(&dashboard["panels"], &mut found);
    // The variables' `label_values(SELECTOR, LABEL)`: the selector is PromQL, the label a label.
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] == "query" {
            let query = variable["query"]["query"].as_str().or(variable["query"].as_str()).unwrap();
            let inner = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')).unwrap();
            let (selector, label) = inner.rsplit_once(',').unwrap();
            found.exprs.push(selector.trim().to_owned());
            found.legends.push(format!("{{{{{}}}}}", label.trim()));
        }
    }
    found
}

/// The metrics and labels a file uses all exist, and what it rates is a counter.
fn assert_served(file: &str, uses: &Uses) {
    let served = served_metrics();
    let labels = stored_labels();
    for metric in &uses.metrics {
        // `up` is Prometheus's own, one per scrape target.
        assert!(
            metric == "up" || served.contains_key(metric),
            "{file}: {metric} is not a metric vrrpd serves: {:?}",
            served.keys()
        );
    }
    for metric in &uses.rated {
        assert_eq!(served.get(metric).map(String::as_str), Some("counter"), "{file}: rate()/increase() of {metric}");
    }
    for label in &uses.labels {
        assert!(labels.contains(label), "{file}: no series carries the label {label:?}: {labels:?}");
    }
}

#[test]
fn the_promql_reader_names_metrics_and_labels() {
    let mut uses = Uses::default();
    promql_uses(
        r#"sum by (job, vrid) (rate(vrrpd_adverts_dropped_total{reason!="unknown_vrid", job="$job"}[$__rate_interval])) > 0 and on(instance) up == 1"#,
        &mut uses,
    );
    assert_eq!(uses.metrics, ["up", "vrrpd_adverts_dropped_total"].map(String::from).into());
    assert_eq!(uses.labels, ["instance", "job", "reason", "vrid"].map(String::from).into());
    assert_eq!(uses.rated, ["vrrpd_adverts_dropped_total"].map(String::from).into());
}

// ---- Prometheus rules ----

#[test]
fn the_alert_rules_pass_promtool_check() {
    let Some(promtool) = promtool("the_alert_rules_pass_promtool_check") else { return };
    let out = run_promtool(&promtool, &["check", "rules", RULES], &repo_root());
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_alert_unit_tests_fire_for_a_vip_on_two_hosts_and_on_none() {
    let tests = read(RULE_TESTS);
    for alert in ["alertname: VrrpdVipOnTwoHosts", "alertname: VrrpdVipOnNoHost"] {
        assert!(tests.contains(alert), "{RULE_TESTS} tests {alert}");
    }
    let Some(promtool) = promtool("the_alert_unit_tests_fire_for_a_vip_on_two_hosts_and_on_none") else { return };
    let out = run_promtool(&promtool, &["test", "rules", RULE_TESTS], &repo_root());
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_alert_rules_use_only_metrics_and_labels_vrrpd_serves() {
    let yaml = read(RULES);
    let exprs = rule_exprs(&yaml);
    assert!(exprs.len() >= 8, "{exprs:?}");
    let mut uses = Uses::default();
    for expr in &exprs {
        promql_uses(expr, &mut uses);
    }
    annotation_labels(&yaml, &mut uses);
    for metric in ["vrrpd_instance_master", "vrrpd_adverts_dropped_total", "vrrpd_server_up", "up"] {
        assert!(uses.metrics.contains(metric), "the rules watch {metric}: {:?}", uses.metrics);
    }
    assert_served(RULES, &uses);
}

// ---- Grafana dashboard ----

#[test]
fn the_dashboard_is_an_importable_dashboard_with_panels() {
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).expect("valid JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string(), "title and uid");
    assert!(dashboard["schemaVersion"].is_u64());
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut queried = 0;
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64().expect("panel id")), "unique id: {panel}");
        assert!(panel["gridPos"]["w"].is_u64() && panel["gridPos"]["h"].is_u64(), "gridPos: {panel}");
        if panel["type"] != "row" {
            let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("targets: {}", panel["title"]));
            assert!(targets.iter().all(|t| t["expr"].is_string() && t["refId"].is_string()), "{}", panel["title"]);
            queried += 1;
        }
    }
    assert!(queried >= 10, "{queried} panels with queries");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for title in ["VRRP state per instance and host", "Effective priority", "Proxy availability", "Servers UP / DOWN"] {
        assert!(titles.contains(&title), "{title}: {titles:?}");
    }
}

#[test]
fn the_dashboard_uses_only_metrics_and_labels_vrrpd_serves() {
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    let queries = dashboard_queries(&dashboard);
    let mut uses = Uses::default();
    for expr in &queries.exprs {
        promql_uses(expr, &mut uses);
    }
    for legend in &queries.legends {
        legend_labels(legend, &mut uses);
    }
    assert_served(DASHBOARD, &uses);
    for metric in [
        "vrrpd_instance_state",
        "vrrpd_instance_priority",
        "vrrpd_adverts_sent_total",
        "vrrpd_adverts_received_total",
        "vrrpd_adverts_dropped_total",
        "vrrpd_proxy_available",
        "vrrpd_proxy_sessions",
        "vrrpd_proxy_queue",
        "vrrpd_server_up",
        "vrrpd_proxy_bytes_in_total",
        "vrrpd_proxy_session_panics_total",
    ] {
        assert!(uses.metrics.contains(metric), "the dashboard shows {metric}: {:?}", uses.metrics);
    }
}

/// Grafana's variables replaced by values, every query of the dashboard goes through
/// Prometheus's own parser as a recording rule.
#[test]
fn the_dashboard_queries_parse_as_promql() {
    let dashboard: serde_json::Value = serde_json::from_str(&read(DASHBOARD)).unwrap();
    let queries = dashboard_queries(&dashboard);
    let Some(promtool) = promtool("the_dashboard_queries_parse_as_promql") else { return };
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, expr) in queries.exprs.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "6h")
            .replace("$job", "vrrpd")
            .replace("$host", ".*")
            .replace("$proxy", ".*")
            .replace("$maxconn", "10000");
        assert!(!expr.contains('$'), "a variable the test does not know: {expr}");
        rules.push_str(&format!("      - record: dashboard:query_{n}\n        expr: '{}'\n", expr.replace('\'', "''")));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.yml"), rules).unwrap();
    let out = run_promtool(&promtool, &["check", "rules", "dashboard.yml"], dir.path());
    assert!(out.contains("SUCCESS"), "{out}");
}

// ---- Man page and completions ----

#[test]
fn the_man_page_is_roff_and_documents_every_command_files_and_signals() {
    let page = stdout_of(&["generate", "man"]);
    assert!(page.starts_with('.'), "roff: {}", &page[..80.min(page.len())]);
    let title = page.lines().find(|l| l.starts_with(".TH ")).expect(".TH");
    assert!(title.starts_with(".TH VRRPD 8 "), "{title}");
    let first_section = page.find(".SH ").unwrap();
    assert!(page.find(".TH ").unwrap() < first_section, "the header comes first");
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "FILES", "SIGNALS", "EXIT STATUS", "SEE ALSO"] {
        assert!(page.contains(&format!(".SH {section}\n")) || page.contains(&format!(".SH \"{section}\"\n")), "{section}");
    }
    let cli = vrrpd::cli::Cli::command();
    for command in cli.get_subcommands() {
        let heading = format!("vrrpd {}", command.get_name());
        let listed = page.contains(&format!(".SS \"{heading}\"")) || page.contains(&format!(".SS {heading}"));
        assert_eq!(listed, !command.is_hide_set(), "{heading} in the man page:\n{page}");
    }
    let plain = page.replace("\\-", "-");
    for text in [
        vrrpd::cli::DEFAULT_CONFIG,
        ha_common::config::DEFAULT_CONTROL_SOCKET,
        "TERM, INT",
        "HUP",
        "--offline",
        "--keepalived",
        "resign INSTANCE",
        "keepalived",
        "haproxy",
    ] {
        assert!(plain.contains(text), "{text} in the man page");
    }
    if let Some(groff) = program("groff") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrpd.8");
        std::fs::write(&path, &page).unwrap();
        let out = Command::new(groff).args(["-man", "-ww", "-z"]).arg(&path).output().unwrap();
        assert!(out.status.success() && out.stderr.is_empty(), "groff: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn the_completions_know_every_command() {
    let bash = stdout_of(&["generate", "completions", "bash"]);
    for command in ["check", "ctl", "import", "--config", "--offline"] {
        assert!(bash.contains(command), "{command} in the bash completion");
    }
    assert!(bash.contains("complete -F _vrrpd") || bash.contains("-F _vrrpd"), "registers itself for vrrpd");
    if let Some(bash_program) = program("bash") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrrpd");
        std::fs::write(&path, &bash).unwrap();
        let out = Command::new(bash_program).arg("-n").arg(&path).output().unwrap();
        assert!(out.status.success(), "bash -n: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(stdout_of(&["generate", "completions", "zsh"]).starts_with("#compdef vrrpd"));
    let fish = stdout_of(&["generate", "completions", "fish"]);
    assert!(fish.contains("complete -c vrrpd") && fish.contains("ctl"), "{fish}");
    let unknown = vrrpd(&["generate", "completions", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
}

#[test]
fn help_names_the_files_and_signals_and_hides_generate() {
    let help = stdout_of(&["--help"]);
    for text in [vrrpd::cli::DEFAULT_CONFIG, ha_common::config::DEFAULT_CONTROL_SOCKET, "SIGNALS", "HUP"] {
        assert!(help.contains(text), "{text} in --help:\n{help}");
    }
    assert!(!help.contains("generate"), "generate is for packaging, not listed:\n{help}");
}
