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
        Config::parse_with(text, path, true)
    }

    /// Reads and validates a configuration file for another machine (`vrrpd check --offline`):
    /// the files it names (a `password_file`, a `ca_file`) are not read here, only their paths
    /// checked; the machine that runs it reads them at its start.
    pub fn load_offline(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse_with(&text, path, false)
    }

    fn parse_with(text: &str, path: &Path, read_files: bool) -> Result<Loaded, ConfigError> {
        let raw = parse_raw(text, path)?;
        let mut validator = validate::Validator::new(path, text);
        validator.read_files = read_files;
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

/// Places in a valid file, for problems found outside it (on the host, by `vrrpd check`): each
/// is said as `file:line:column: key: message`, like a validation error.
pub struct Locator {
    raw: raw::RawConfig,
    path: std::path::PathBuf,
    text: String,
}

/// A key a host check can point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Global(&'static str),
    Instance(usize, &'static str),
    /// The n-th address of an instance's `virtual_ipaddress` or `unicast_peer` list.
    InstanceItem(usize, &'static str, usize),
    Script(usize, &'static str),
    Proxy(usize, &'static str),
}

impl Locator {
    pub fn load(path: &Path) -> Result<Locator, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Ok(Locator { raw: parse_raw(&text, path)?, path: path.to_owned(), text })
    }

    /// `message` located at `place` (the top of the file when the key is not written).
    pub fn at(&self, place: Place, message: impl Into<String>) -> Diagnostic {
        let (key, span) = self.span(place);
        Diagnostic::new(&self.path, &self.text, span.unwrap_or(0..0), key, message.into())
    }

    fn span(&self, place: Place) -> (String, Option<std::ops::Range<usize>>) {
        let raw = &self.raw;
        match place {
            Place::Global(field) => {
                let g = &raw.global;
                let span = match field {
                    "user" => g.user.as_ref().map(|v| v.span()),
                    "script_user" => g.script_user.as_ref().map(|v| v.span()),
                    "control_socket" => g.control_socket.as_ref().map(|v| v.span()),
                    _ => None,
                };
                (format!("global.{field}"), span)
            }
            Place::Instance(i, field) => {
                let instance = raw.vrrp_instance.get(i).map(|s| s.get_ref());
                let span = instance.and_then(|r| match field {
                    "interface" => Some(r.interface.span()),
                    "virtual_ipaddress" => Some(r.virtual_ipaddress.span()),
                    "unicast_src_ip" => r.unicast_src_ip.as_ref().map(|v| v.span()),
                    "name" => Some(r.name.span()),
                    _ => None,
                });
                (format!("vrrp_instance[{i}].{field}"), span.or_else(|| raw.vrrp_instance.get(i).map(|s| s.span())))
            }
            Place::InstanceItem(i, field, n) => {
                let instance = raw.vrrp_instance.get(i).map(|s| s.get_ref());
                let span = instance.and_then(|r| match field {
                    "virtual_ipaddress" => r.virtual_ipaddress.get_ref().get(n).map(|v| v.span()),
                    "virtual_ipaddress_excluded" => {
                        r.virtual_ipaddress_excluded.as_ref().and_then(|list| list.get_ref().get(n)).map(|v| v.span())
                    }
                    "unicast_peer" => r.unicast_peer.get(n).map(|v| v.span()),
                    _ => None,
                });
                (format!("vrrp_instance[{i}].{field}[{n}]"), span)
            }
            Place::Script(i, field) => {
                let script = raw.vrrp_script.get(i).map(|s| s.get_ref());
                let span = script.and_then(|r| match field {
                    "script" => Some(r.script.span()),
                    "user" => r.user.as_ref().map(|v| v.span()),
                    _ => Some(r.name.span()),
                });
                (format!("vrrp_script[{i}].{field}"), span)
            }
            Place::Proxy(i, field) => {
                let proxy = raw.proxy.get(i).map(|s| s.get_ref());
                let span = proxy.map(|r| match field {
                    "bind" => r.bind.span(),
                    _ => r.name.span(),
                });
                (format!("proxy[{i}].{field}"), span)
            }
        }
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
