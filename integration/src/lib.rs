//! Helpers shared by the tests in `tests/`, which run the real vrrpd binary against real peers
//! (keepalived, tcpdump, later RabbitMQ) inside network namespaces the tests create.
//!
//! They need root (network namespaces, raw sockets). Without it each test says so on stderr
//! and returns; `scripts/test.sh` sets `VRRPD_REQUIRE_NETNS=1` so that in CI a missing
//! prerequisite fails the test instead of skipping it.

pub mod confirms;
pub mod lab;
pub mod netns;
pub mod rabbit;
pub mod scenario;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("integration/ sits in the repository").to_owned()
}

/// True when the namespace tests can run here. Otherwise prints why and returns false, or
/// panics when `VRRPD_REQUIRE_NETNS=1` says they must run.
pub fn netns_available(test: &str, programs: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root (network namespaces and raw sockets)".to_owned());
    }
    for program in programs {
        if !program_exists(program) {
            missing.push(format!("{program} (scripts/install-test-deps.sh installs it)"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let message = format!("{test}: SKIPPED, needs {}", missing.join(", "));
    if std::env::var_os("VRRPD_REQUIRE_NETNS").is_some_and(|v| v == "1") {
        panic!("{message}; VRRPD_REQUIRE_NETNS=1 requires it to run");
    }
    eprintln!("{message}");
    false
}

fn program_exists(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths).chain(["/usr/sbin".into(), "/sbin".into()]).any(|dir| dir.join(program).is_file())
        })
        .unwrap_or(false)
}

/// Runs a script from `scripts/` and returns its stdout; panics with its stderr on failure.
pub fn run_script(name: &str, args: &[&str]) -> String {
    run_script_env(name, args, &[])
}

/// [`run_script`] with extra environment variables.
pub fn run_script_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let path = repo_root().join("scripts").join(name);
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
    assert!(out.status.success(), "{} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("script output is text")
}

/// Decodes a hex string into bytes.
pub fn hex(text: &str) -> Vec<u8> {
    let text = text.trim();
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits")).collect()
}
