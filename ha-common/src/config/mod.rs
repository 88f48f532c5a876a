//! Configuration in two stages: [`raw`] mirrors the TOML file with serde (unknown keys refused),
//! [`validate`] turns it into the typed [`Config`] or a list of located problems.

mod error;
mod model;
mod raw;
mod validate;

use std::path::Path;

pub use error::{ConfigError, Diagnostic};
pub use model::*;

/// A valid configuration and what in it deserves a second look.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text, path)
    }

    /// Validates configuration text; `path` only names the file in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Loaded, ConfigError> {
        let raw = parse_raw(text, path)?;
        let mut validator = validate::Validator::new(path, text);
        let config = validator.config(&raw);
        if validator.problems.is_empty() {
            Ok(Loaded { config, warnings: validator.warnings })
        } else {
            Err(ConfigError::Invalid { problems: validator.problems })
        }
    }

    pub fn instance(&self, name: &str) -> Option<&VrrpInstance> {
        self.instances.iter().find(|i| i.name == name)
    }

    pub fn script(&self, name: &str) -> Option<&VrrpScript> {
        self.scripts.iter().find(|s| s.name == name)
    }

    pub fn proxy(&self, name: &str) -> Option<&Proxy> {
        self.proxies.iter().find(|p| p.name == name)
    }
}

fn parse_raw(text: &str, path: &Path) -> Result<raw::RawConfig, ConfigError> {
    let located = |error: &toml::de::Error, key: String| {
        let span = error.span().unwrap_or(0..0);
        ConfigError::Invalid { problems: vec![Diagnostic::new(path, text, span, key, error.message().to_owned())] }
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| located(&e, String::new()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        // serde_path_to_error sees through toml::Spanned's private wrapper field; hide it.
        let key =
            e.path().to_string().replace(".$__serde_spanned_private_value", "").replace("$__serde_spanned_private_value", "");
        let key = if key == "." { String::new() } else { key };
        located(e.inner(), key)
    })
}

#[cfg(test)]
mod tests;
