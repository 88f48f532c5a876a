//! Durations as operators write them: `"500ms"`, `"2s"`, `"3h"`, `"1h 30m"`, or a bare integer
//! meaning seconds (keepalived's `interval 2`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// A duration read from the configuration file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl<'de> serde::Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = ConfigDuration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a duration such as "500ms", "2s" or "3h", or whole seconds"#)
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Self::Value, E> {
        u64::try_from(secs)
            .map(|secs| ConfigDuration(Duration::from_secs(secs)))
            .map_err(|_| E::custom(format!("{secs} is negative: a duration cannot be")))
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Self::Value, E> {
        Ok(ConfigDuration(Duration::from_secs(secs)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse(text).map(ConfigDuration).map_err(E::custom)
    }
}

/// Parses `"500ms"`, `"2s"`, `"3h"`, `"1h 30m"`; a bare number is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); write it as \"500ms\", \"2s\" or \"3h\""))
}

/// Formats a duration the way the configuration accepts it back.
pub fn format(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(duration).to_string()
}

/// `time` as RFC 3339 in UTC with milliseconds (`2026-11-21T03:12:05.123Z`), as timelines and
/// logs show it.
pub fn rfc3339_millis(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_units_operators_write() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("3h").unwrap(), Duration::from_secs(3 * 3600));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("5").unwrap(), Duration::from_secs(5));
    }

    #[test]
    fn rejects_nonsense_with_a_hint() {
        let err = parse("fast").unwrap_err();
        assert!(err.contains("\"fast\" is not a duration"), "{err}");
        assert!(parse("-2s").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn formats_back_to_accepted_text() {
        for d in [Duration::from_millis(500), Duration::from_secs(7200), Duration::ZERO] {
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
    }
}
