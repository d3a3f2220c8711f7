//! The pipeline language: the model a pipeline file deserializes into, its JSON schema,
//! and the checks `runner validate` runs.
//!
//! Checking a file goes: YAML syntax (serde_yaml) -> JSON schema (every violation,
//! explained) -> semantic checks on each part that passed -> typed model. Every
//! problem becomes an [`Issue`] at a document path; only at the end are issues placed
//! at `file:line:col` through a position-keeping parse of the same text
//! ([`yaml_tree`]). Nothing here touches the network or needs a secret.

pub mod diagnostic;
pub mod model;
pub mod request;
pub mod schema;
mod schema_check;
mod semantic;
pub mod stream;
pub mod system;
pub mod values;
pub mod yaml_tree;

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use diagnostic::{Diagnostic, Issue, Severity};
pub use model::{PipelineConfig, StateConfig};
pub use request::{HttpMethod, PaginateConfig, PaginationStyle, ReadConfig, WriteRequestConfig};
pub use stream::{
    DeleteMode, FieldConfig, OneWayStreamConfig, SourceConfig, StreamConfig, TargetConfig,
    TwoWayStreamConfig,
};
pub use system::{AuthConfig, HttpSystemConfig, SystemConfig};
pub use values::{HumanDuration, JsonPath, Percent, Template};

use yaml_tree::{Anchor, Span, YamlTree};

/// The outcome of checking one pipeline file.
#[derive(Debug)]
pub struct Checked {
    /// The file as named on the command line.
    pub file: String,
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// The pipeline, when there is no error.
    pub pipeline: Option<PipelineConfig>,
}

impl Checked {
    pub fn errors(&self) -> usize {
        self.count(Severity::Error)
    }

    pub fn warnings(&self) -> usize {
        self.count(Severity::Warning)
    }

    fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }
}

/// Reads and checks the pipeline file at `path`.
pub fn check_file(path: &Path) -> Checked {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => check_source(&file, &text),
        Err(e) => Checked {
            diagnostics: vec![Diagnostic::new(
                &file,
                "",
                Span {
                    line: 1,
                    column: 1,
                    width: 1,
                },
                Severity::Error,
                format!("cannot read the pipeline file: {e}"),
                None,
            )],
            file,
            pipeline: None,
        },
    }
}

/// Checks pipeline text; `file` names it in diagnostics.
pub fn check_source(file: &str, text: &str) -> Checked {
    let done = |diagnostics, pipeline| Checked {
        file: file.to_string(),
        diagnostics,
        pipeline,
    };
    let tree = YamlTree::parse(text);
    let duplicates = duplicate_keys(file, text, &tree);
    if !duplicates.is_empty() {
        return done(duplicates, None);
    }
    let yaml: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(yaml) => yaml,
        Err(e) => return done(vec![syntax_error(file, text, &e)], None),
    };
    if yaml.is_null() {
        let empty = Issue::error(&[], Anchor::Value, "the file holds no pipeline").with_hint(
            "a pipeline is a mapping with `version: 1`, `name`, `systems` and `streams`",
        );
        return done(vec![empty.locate(file, text, &tree)], None);
    }
    let mut issues = Vec::new();
    let document = yaml_to_json(&yaml, &mut Vec::new(), &mut issues);
    if issues.is_empty() {
        let schema = schema_check::check(&document);
        // Semantic checks read the document without the unknown keys (a typo of a
        // missing key is read as the key it meant), so that a typo in one key does
        // not hide the other problems of its part.
        let mut readable = document.clone();
        for (key, meant) in &schema.unknown_keys {
            repair(&mut readable, key, meant.as_deref());
        }
        let blocking: Vec<&Issue> = schema
            .issues
            .iter()
            .filter(|i| !schema.unknown_keys.iter().any(|(key, _)| key == &i.path))
            .collect();
        let parts = parts(&readable, &blocking);
        issues.extend(schema.issues);
        issues.extend(semantic::check(&parts));
    }
    let has_errors = issues.iter().any(|i| i.severity == Severity::Error);
    let pipeline = if has_errors {
        None
    } else {
        match part::<PipelineConfig>(&document, &[]) {
            Ok(pipeline) => Some(pipeline),
            Err(issue) => {
                issues.push(issue);
                None
            }
        }
    };
    let mut diagnostics: Vec<Diagnostic> = issues
        .into_iter()
        .map(|issue| issue.locate(file, text, &tree))
        .collect();
    diagnostics.sort_by(|a, b| {
        (a.line, a.column, a.severity, &a.message).cmp(&(b.line, b.column, b.severity, &b.message))
    });
    diagnostics.dedup();
    done(diagnostics, pipeline)
}

/// Keys repeated in one mapping, at the repetition (YAML forbids them; which value
/// would win is anyone's guess).
fn duplicate_keys(file: &str, text: &str, tree: &YamlTree) -> Vec<Diagnostic> {
    tree.duplicate_keys()
        .into_iter()
        .map(|(at, key, first, again)| {
            let place = if at.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in `{}`", diagnostic::display_path(&at))
            };
            Diagnostic::new(
                file,
                text,
                again,
                Severity::Error,
                format!("duplicate key `{key}` {place}"),
                Some(format!("first defined at line {}", first.line)),
            )
        })
        .collect()
}

fn syntax_error(file: &str, text: &str, error: &serde_yaml::Error) -> Diagnostic {
    let message = error.to_string();
    // serde_yaml appends " at line L column C"; the position goes in front instead.
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    let (line, column) = error
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    Diagnostic::new(
        file,
        text,
        Span {
            line,
            column,
            width: 1,
        },
        Severity::Error,
        format!("invalid YAML: {message}"),
        None,
    )
}

/// Converts YAML to the JSON the schema is checked against. YAML allows what JSON
/// does not (tags, non-text keys); those are reported, not guessed at.
fn yaml_to_json(yaml: &serde_yaml::Value, at: &mut Vec<String>, issues: &mut Vec<Issue>) -> Value {
    use serde_yaml::Value as Yaml;
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                match n.as_f64().and_then(serde_json::Number::from_f64) {
                    Some(f) => Value::Number(f),
                    None => {
                        issues.push(Issue::error(
                            at,
                            Anchor::Value,
                            format!("`{n}` is not a number a pipeline can use"),
                        ));
                        Value::Null
                    }
                }
            }
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    at.push(i.to_string());
                    let value = yaml_to_json(item, at, issues);
                    at.pop();
                    value
                })
                .collect(),
        ),
        Yaml::Mapping(map) => {
            let mut object = serde_json::Map::new();
            for (key, value) in map {
                let key = match key {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    _ => {
                        issues.push(Issue::error(at, Anchor::Value, "keys must be plain text"));
                        continue;
                    }
                };
                at.push(key.clone());
                let value = yaml_to_json(value, at, issues);
                at.pop();
                object.insert(key, value);
            }
            Value::Object(object)
        }
        Yaml::Tagged(tagged) => {
            issues.push(
                Issue::error(
                    at,
                    Anchor::Value,
                    format!("YAML tags such as `{}` are not supported", tagged.tag),
                )
                .with_hint("remove the tag; a pipeline is plain YAML"),
            );
            Value::Null
        }
    }
}

/// Deserializes the parts of the document that the schema check passed, so the
/// semantic checks see every healthy part even when another part is broken.
fn parts(document: &Value, issues: &[&Issue]) -> semantic::Parts {
    // A part is healthy when no issue lies inside it; issues elsewhere (a missing
    // top-level key, a broken sibling) do not stop its checks.
    let healthy = |path: &[String]| !issues.iter().any(|i| i.path.starts_with(path));
    let mut parts = semantic::Parts::default();
    let state_path = vec!["state".to_string()];
    if let Some(state) = document.get("state") {
        if healthy(&state_path) {
            parts.state = part(state, &state_path).ok();
        }
    }
    for (section, entries) in [("systems", true), ("streams", false)] {
        let Some(Value::Object(map)) = document.get(section) else {
            continue;
        };
        for (name, value) in map {
            let path = vec![section.to_string(), name.clone()];
            let ok = healthy(&path);
            if entries {
                let system = if ok { part(value, &path).ok() } else { None };
                parts.systems.insert(name.clone(), system);
            } else {
                let stream = if ok { part(value, &path).ok() } else { None };
                parts.streams.insert(name.clone(), stream);
            }
        }
    }
    parts
}

/// Removes the key at `path` from `document`, or renames it to `meant`.
fn repair(document: &mut Value, path: &[String], meant: Option<&str>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = document;
    for segment in parents {
        node = match node {
            Value::Object(map) => match map.get_mut(segment) {
                Some(next) => next,
                None => return,
            },
            Value::Array(items) => {
                match segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(next) => next,
                    None => return,
                }
            }
            _ => return,
        };
    }
    if let Value::Object(map) = node {
        if let (Some(value), Some(meant)) = (map.shift_remove(last), meant) {
            map.insert(meant.to_string(), value);
        }
    }
}

/// Deserializes one part of the document. After the schema check this only fails on
/// a mismatch between schema and model, reported at the part.
fn part<T: DeserializeOwned>(value: &Value, at: &[String]) -> Result<T, Issue> {
    serde_json::from_value(value.clone()).map_err(|e| {
        Issue::error(
            at,
            Anchor::Value,
            format!("cannot read this part of the pipeline: {e}"),
        )
    })
}
