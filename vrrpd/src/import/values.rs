//! Values made acceptable to `vrrpd check` before they are written: a name, number or
//! duration outside what vrrpd accepts is brought within it (or left out), and a note says so.
//! The bounds are ha-common's (config/validate.rs), repeated here because the import must
//! write a file that loads, not one that fails with the operator's values.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::{NoteKind, Notes};

/// A name goes into logs, CSV and metrics labels: 1 to 64 of these characters.
const NAME_MAX: usize = 64;

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// `text` as a vrrpd name: other characters become `_`, and it is cut at 64.
pub fn clean_name(text: &str) -> String {
    let mut cleaned: String = text.chars().map(|c| if name_char(c) { c } else { '_' }).collect();
    cleaned.truncate(NAME_MAX);
    if cleaned.is_empty() {
        cleaned.push_str("unnamed");
    }
    cleaned
}

/// [`clean_name`], noted when it is not the name as written.
pub fn name(text: &str, line: usize, what: &str, notes: &mut Notes) -> String {
    let cleaned = clean_name(text);
    if cleaned != text {
        notes.add(
            line,
            NoteKind::Changed,
            format!(
                "{what} {text:?} is written {cleaned:?}: a vrrpd name is 1 to {NAME_MAX} letters, digits, '_', '.', ':' or '-'"
            ),
        );
    }
    cleaned
}

/// A whole number within `range`: one outside is clamped, one that is not a number left out.
pub fn integer(text: &str, range: RangeInclusive<i64>, line: usize, what: &str, notes: &mut Notes) -> Option<i64> {
    let Ok(value) = text.trim().parse::<i64>() else {
        notes.add(line, NoteKind::Dropped, format!("{what} {text:?} is not a whole number: left out"));
        return None;
    };
    let clamped = value.clamp(*range.start(), *range.end());
    if clamped != value {
        notes.add(
            line,
            NoteKind::Changed,
            format!("{what} {value} is outside what vrrpd accepts ({}..={}): written {clamped}", range.start(), range.end()),
        );
    }
    Some(clamped)
}

/// How long a vrrpd duration may be, and whether zero means something.
#[derive(Clone, Copy)]
pub struct Bound {
    longest: Duration,
    said: &'static str,
    zero: bool,
}

const HOUR: u64 = 3600;
/// Connect, queue and check timeouts, script timeouts.
pub const TIMEOUT: Bound = Bound { longest: Duration::from_secs(24 * HOUR), said: "24h", zero: false };
/// Check and script intervals, the stats page's refresh.
pub const INTERVAL: Bound = TIMEOUT;
/// A session's idle timeout.
pub const IDLE: Bound = Bound { longest: Duration::from_secs(30 * 24 * HOUR), said: "720h", zero: false };
/// Gratuitous ARP delays, where zero means none.
pub const DELAY: Bound = Bound { longest: Duration::from_secs(24 * HOUR), said: "24h", zero: true };
/// vrrpd's limit for garp_interval.
pub const GARP_INTERVAL: Bound = Bound { longest: Duration::from_secs(1), said: "1s", zero: true };
/// keepalived's own limit for preempt_delay.
pub const PREEMPT_DELAY: Bound = Bound { longest: Duration::from_secs(1000), said: "1000s", zero: true };

/// A duration written in vrrpd's syntax (`"5000ms"`, `"2s"`), kept as written when within
/// `bound`. Zero where vrrpd needs a limit (HAProxy's "no timeout") becomes the longest.
pub fn duration(text: &str, bound: Bound, line: usize, what: &str, notes: &mut Notes) -> Option<String> {
    let Ok(value) = ha_common::duration::parse(text) else {
        notes.add(
            line,
            NoteKind::Dropped,
            format!("{what} {text:?} is not a duration vrrpd reads: left out (its default applies)"),
        );
        return None;
    };
    if value.is_zero() && !bound.zero {
        notes.add(
            line,
            NoteKind::Changed,
            format!("{what} 0 (no limit) has no vrrpd equivalent: written {}, the longest vrrpd accepts", bound.said),
        );
        return Some(bound.said.to_owned());
    }
    if value > bound.longest {
        notes.add(
            line,
            NoteKind::Changed,
            format!("{what} {text} is longer than vrrpd accepts: written {}, the longest", bound.said),
        );
        return Some(bound.said.to_owned());
    }
    Some(text.trim().to_owned())
}

/// keepalived's seconds (`5`, `0.5`) in vrrpd's syntax (`"5s"`, `"500ms"`); anything else
/// unchanged, for [`duration`] to refuse with a note.
pub fn seconds(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii_digit()) && !text.is_empty() {
        return format!("{text}s");
    }
    match text.parse::<f64>() {
        Ok(secs) if (0.0..1e9).contains(&secs) => format!("{}ms", (secs * 1000.0).round() as u64),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_name_outside_the_character_set_is_rewritten_and_noted() {
        let mut notes = Notes::new(Path::new("k.conf"));
        assert_eq!(name("VI 1/é", 3, "vrrp_instance", &mut notes), "VI_1__");
        assert_eq!(name("VI_1", 4, "vrrp_instance", &mut notes), "VI_1");
        assert_eq!(notes.notes.len(), 1);
        assert_eq!(notes.notes[0].line, 3);
    }

    #[test]
    fn durations_beyond_the_bounds_are_clamped() {
        let mut notes = Notes::new(Path::new("h.cfg"));
        assert_eq!(duration("48h", TIMEOUT, 1, "timeout connect", &mut notes).as_deref(), Some("24h"));
        assert_eq!(duration("0ms", TIMEOUT, 2, "timeout connect", &mut notes).as_deref(), Some("24h"));
        assert_eq!(duration("0s", DELAY, 3, "garp_master_delay", &mut notes).as_deref(), Some("0s"));
        assert_eq!(duration("5000ms", TIMEOUT, 4, "timeout connect", &mut notes).as_deref(), Some("5000ms"));
        assert_eq!(duration("fast", TIMEOUT, 5, "timeout connect", &mut notes), None);
        let lines: Vec<usize> = notes.notes.iter().map(|n| n.line).collect();
        assert_eq!(lines, [1, 2, 5]);
    }

    #[test]
    fn keepalived_seconds() {
        assert_eq!(seconds("5"), "5s");
        assert_eq!(seconds("0.5"), "500ms");
        assert_eq!(seconds("x"), "x");
    }
}
