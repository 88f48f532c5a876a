//! What is wrong with a configuration file, said as `file:line:column: key: what is wrong`,
//! followed by the offending line with a caret under the value.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong (or worth a warning) in a configuration file, located in its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Dotted path of the key, e.g. `vrrp_instance[0].virtual_router_id`.
    pub key: String,
    pub message: String,
    source_line: String,
    underline: usize,
}

impl Diagnostic {
    pub(crate) fn new(file: &Path, source: &str, span: Range<usize>, key: String, message: String) -> Self {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let end = floor_char_boundary(source, span.end.clamp(start, source.len()));
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..].find('\n').map_or(source.len(), |i| start + i);
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let underline = source[start..end.min(line_end)].chars().count().max(1);
        Diagnostic {
            file: file.to_owned(),
            line,
            column,
            key,
            message,
            source_line: hide_passwords(source[line_start..line_end].trim_end()),
            underline,
        }
    }
}

/// Keys whose values a message never shows, even as the source line under it.
const SECRET_KEYS: &[&str] = &["password", "auth_pass"];

/// `line` with the quoted value of every secret key starred out, character for character
/// (the caret under the line stays where it was).
fn hide_passwords(line: &str) -> String {
    let mut out: Vec<char> = line.chars().collect();
    let chars = out.clone();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..].iter().collect();
        let key = SECRET_KEYS
            .iter()
            .find(|k| rest.starts_with(*k) && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')));
        let Some(key) = key else {
            i += 1;
            continue;
        };
        let mut j = i + key.chars().count();
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        if chars.get(j) != Some(&'=') {
            i += 1;
            continue;
        }
        j += 1;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let Some(&quote) = chars.get(j).filter(|c| matches!(c, '"' | '\'')) else {
            i = j;
            continue;
        };
        j += 1;
        while j < chars.len() && chars[j] != quote {
            // An escaped quote does not end a basic string.
            if chars[j] == '\\' && quote == '"' {
                out[j] = '*';
                j += 1;
                if j >= chars.len() {
                    break;
                }
            }
            out[j] = '*';
            j += 1;
        }
        i = j + 1;
    }
    out.into_iter().collect()
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if !self.source_line.is_empty() {
            let pad = self.source_line.chars().take(self.column - 1).map(|c| if c == '\t' { '\t' } else { ' ' });
            write!(f, "\n    {}\n    {}{}", self.source_line, pad.collect::<String>(), "^".repeat(self.underline))?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the configuration: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}", render(problems))]
    Invalid { problems: Vec<Diagnostic> },
}

impl ConfigError {
    /// The located problems; empty when the file could not be read at all.
    pub fn problems(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems } => problems,
        }
    }
}

fn render(problems: &[Diagnostic]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_line_and_column_and_underlines_the_value() {
        let source = "[global]\nrouter_id = \"a\"\n\n[[vrrp_instance]]\nvirtual_router_id = 300\n";
        let start = source.find("300").unwrap();
        let d = Diagnostic::new(
            Path::new("x.toml"),
            source,
            start..start + 3,
            "vrrp_instance[0].virtual_router_id".into(),
            "too big".into(),
        );
        assert_eq!((d.line, d.column), (5, 21));
        assert_eq!(
            d.to_string(),
            "x.toml:5:21: vrrp_instance[0].virtual_router_id: too big\n    virtual_router_id = 300\n                        ^^^"
        );
    }

    #[test]
    fn survives_spans_past_the_end_and_inside_characters() {
        let source = "name = \"é\"";
        let d = Diagnostic::new(Path::new("x.toml"), source, 9..400, String::new(), "m".into());
        assert_eq!(d.line, 1);
        let _ = d.to_string();
    }
}
