//! Logging setup for the daemon and its tools: human lines or JSON, level from the command line
//! or `VRRPD_LOG`, no timestamps when journald already adds them.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Environment variable holding a level or a `tracing` filter (`info,vrrpd=debug`).
pub const LOG_ENV: &str = "VRRPD_LOG";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{text:?} is not a log format: use text or json")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("invalid log level {filter:?}: {source}")]
    Filter { filter: String, source: tracing_subscriber::filter::ParseError },
    #[error("a logger is already installed")]
    AlreadySet,
}

/// Installs the global subscriber. `level` (from `--log-level`) wins over `VRRPD_LOG`; the
/// default is `info`. Logs go to stderr.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<(), LoggingError> {
    let filter_text = level.map(str::to_owned).or_else(|| std::env::var(LOG_ENV).ok()).unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter_text).map_err(|source| LoggingError::Filter { filter: filter_text, source })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // journald stamps every line itself; a second timestamp only costs width.
        LogFormat::Text if under_journald() => builder.without_time().with_ansi(false).try_init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
    result.map_err(|_| LoggingError::AlreadySet)
}

/// systemd sets `JOURNAL_STREAM` for a unit whose stderr goes to the journal.
fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}
