//! Loading a configuration file: the one path `vrrpd check`, the daemon's start and every reload
//! take, so all three see the same file the same way.

use std::path::Path;

use ha_common::config::{Config, ConfigError, InitialState};

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

/// Reads, validates and applies the overrides.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Loaded, ConfigError> {
    let loaded = Config::load(path)?;
    let mut config = loaded.config;
    overrides.apply(&mut config);
    Ok(Loaded { config, warnings: loaded.warnings.iter().map(ToString::to_string).collect() })
}
