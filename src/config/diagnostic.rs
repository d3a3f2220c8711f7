//! Problems found in a pipeline file, and how they are shown to a person or a script.
//!
//! Checks report an [`Issue`] against a path in the document (`streams/contacts/source`)
//! without knowing where that is in the file; [`Issue::locate`] turns it into a
//! [`Diagnostic`] with `file:line:col` once, in one place.

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::yaml_tree::{Anchor, Span, YamlTree};

/// How bad a problem is: errors make a pipeline invalid (exit 2), warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A problem at a path of the document, not yet placed in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    /// Keys and list indexes from the document root.
    pub path: Vec<String>,
    pub anchor: Anchor,
    /// Character offset and width inside the scalar at `path`, when the problem is a
    /// part of it (a template's bad token).
    pub offset: Option<(usize, usize)>,
    pub message: String,
    pub hint: Option<String>,
}

impl Issue {
    pub fn error(path: &[String], anchor: Anchor, message: impl Into<String>) -> Issue {
        Issue {
            severity: Severity::Error,
            path: path.to_vec(),
            anchor,
            offset: None,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(path: &[String], anchor: Anchor, message: impl Into<String>) -> Issue {
        Issue {
            severity: Severity::Warning,
            ..Issue::error(path, anchor, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Issue {
        self.hint = Some(hint.into());
        self
    }

    /// Points at `width` characters from `offset` inside the scalar at the path.
    pub fn at_offset(mut self, offset: usize, width: usize) -> Issue {
        self.offset = Some((offset, width));
        self
    }

    /// Places the issue in `file`, using the positions in `tree` and the text of
    /// `source` for the quoted line.
    pub fn locate(self, file: &str, source: &str, tree: &YamlTree) -> Diagnostic {
        let span = match self.offset {
            Some((offset, width)) => tree.locate_in_scalar(&self.path, offset, width),
            None => tree.locate(&self.path, self.anchor),
        };
        Diagnostic::new(file, source, span, self.severity, self.message, self.hint)
    }
}

/// A problem placed in a file: `file:line:col: error: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The offending line of the file, for the caret display.
    #[serde(skip)]
    pub source_line: String,
    /// How many characters the caret underlines.
    #[serde(skip)]
    pub width: usize,
}

impl Diagnostic {
    pub fn new(
        file: &str,
        source: &str,
        span: Span,
        severity: Severity,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        let source_line = source
            .lines()
            .nth(span.line.saturating_sub(1))
            .unwrap_or_default()
            .to_string();
        Diagnostic {
            file: file.to_string(),
            line: span.line,
            column: span.column,
            severity,
            message,
            hint,
            source_line,
            width: span.width,
        }
    }

    /// The diagnostic as a person reads it: the location line, the offending source
    /// line, and a caret under the offending text followed by the hint.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{}:{}:{}: {}: {}\n",
            self.file, self.line, self.column, self.severity, self.message
        );
        if !self.source_line.is_empty() {
            let gutter = self.line.to_string();
            let pad = " ".repeat(gutter.len());
            // Tabs keep their width so the caret lines up under them.
            let lead: String = self
                .source_line
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = writeln!(out, " {gutter} | {}", self.source_line);
            let _ = write!(out, " {pad} | {lead}{}", "^".repeat(self.width.max(1)));
            if let Some(hint) = &self.hint {
                let _ = write!(out, " {hint}");
            }
            out.push('\n');
        } else if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  = {hint}");
        }
        out
    }
}

/// The candidate closest to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word_lower, &c.to_lowercase()),
                c,
            )
        })
        .filter(|(distance, c)| {
            *distance <= (c.chars().count().max(word.chars().count()) / 3).max(1)
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// `a.b[0].c` for people, from a path of keys and indexes.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() {
            let _ = write!(out, "[{segment}]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// Joins names as "`a`, `b`, `c`".
pub fn list<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    quoted.join(", ")
}

/// Joins alternatives as "`a`, `b` or `c`".
pub fn one_of<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion() {
        let keys = ["source", "target", "fields", "deletes"];
        assert_eq!(did_you_mean("sourec", keys), Some("source"));
        assert_eq!(did_you_mean("feilds", keys), Some("fields"));
        assert_eq!(did_you_mean("colour", keys), None);
    }

    #[test]
    fn paths_read_like_yaml() {
        let path: Vec<String> = ["streams", "a", "match_on", "0"].map(String::from).to_vec();
        assert_eq!(display_path(&path), "streams.a.match_on[0]");
    }

    #[test]
    fn rendering_shows_the_line_and_a_caret() {
        let source = "name: x\nsystems:\n  crm:\n    tpye: http\n";
        let span = Span {
            line: 4,
            column: 5,
            width: 4,
        };
        let d = Diagnostic::new(
            "p.yaml",
            source,
            span,
            Severity::Error,
            "unknown key `tpye`".into(),
            Some("did you mean `type`?".into()),
        );
        assert_eq!(
            d.render(),
            "p.yaml:4:5: error: unknown key `tpye`\n 4 |     tpye: http\n   |     ^^^^ did you mean `type`?\n"
        );
    }
}
