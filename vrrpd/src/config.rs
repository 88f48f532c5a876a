//! Loading a configuration file: the one path `vrrpd check`, the daemon's start and every reload
//! take, so all three see the same file the same way.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ha_common::config::{Config, ConfigError, InitialState, DEFAULT_CONTROL_SOCKET};

/// What the command line overrides in every instance (`--state`, `--priority`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub state: Option<InitialState>,
    pub priority: Option<u8>,
}

impl Overrides {
    fn apply(&self, config: &mut Config) {
        for instance in &mut config.instances {
            if let Some(state) = self.state {
                instance.initial_state = state;
            }
            if let Some(priority) = self.priority {
                instance.priority = priority;
            }
        }
    }
}

/// A configuration ready to run, with what validation had to say about it short of an error.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Reads, validates and applies the overrides. A file that leaves `control_socket` at its
/// default gets the one of the network namespace vrrpd runs in ([`default_control_socket`]).
pub fn load(path: &Path, overrides: &Overrides) -> Result<Loaded, ConfigError> {
    finish(Config::load(path)?, overrides)
}

/// [`load`] for a file meant for another machine (`vrrpd check --offline`): the files it names
/// are not read.
pub fn load_offline(path: &Path, overrides: &Overrides) -> Result<Loaded, ConfigError> {
    finish(Config::load_offline(path)?, overrides)
}

fn finish(loaded: ha_common::config::Loaded, overrides: &Overrides) -> Result<Loaded, ConfigError> {
    let mut config = loaded.config;
    overrides.apply(&mut config);
    if config.global.control_socket == Path::new(DEFAULT_CONTROL_SOCKET) {
        config.global.control_socket = default_control_socket();
    }
    Ok(Loaded { config, warnings: loaded.warnings.iter().map(ToString::to_string).collect() })
}

/// The control socket when the file names none: `/run/vrrpd/vrrpd.sock`, or in a named network
/// namespace (`ip netns add NAME`) `/run/vrrpd/netns-NAME.sock`. Two vrrpd in two namespaces of
/// one host (a failover drill) then each have their own, and `ip netns exec NAME vrrpd ctl`
/// reaches the daemon of NAME.
pub fn default_control_socket() -> PathBuf {
    match network_namespace_name() {
        Some(name) => Path::new(DEFAULT_CONTROL_SOCKET).with_file_name(format!("netns-{name}.sock")),
        None => PathBuf::from(DEFAULT_CONTROL_SOCKET),
    }
}

/// The name `ip netns` knows this process's network namespace by: the entry of `/run/netns`
/// that is the same namespace as `/proc/self/ns/net` (same device and inode).
fn network_namespace_name() -> Option<String> {
    let own = std::fs::metadata("/proc/self/ns/net").ok()?;
    std::fs::read_dir("/run/netns").ok()?.flatten().find_map(|entry| {
        let meta = std::fs::metadata(entry.path()).ok()?;
        (meta.dev() == own.dev() && meta.ino() == own.ino()).then(|| entry.file_name().to_string_lossy().into_owned())
    })
}
