//! Checks a document against the JSON schema and explains every violation in the
//! pipeline's own terms: the unknown key with a "did you mean", the missing key, the
//! wrong type, the value that is not one of the allowed ones.
//!
//! jsonschema reports a failed `oneOf`/`anyOf` (a tagged enum, an untagged stream) at
//! the parent with the errors of every alternative. Only one alternative is what the
//! author meant: the one whose discriminator (`type`, `style`, `sync`, ...) matches.
//! That one is explained; if none matches, the discriminator itself is the error.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use serde_json::Value;

use super::diagnostic::{did_you_mean, display_path, one_of, Issue};
use super::schema::{pipeline_schema, schema_at};
use super::values::{duration_pattern, PERCENT_PATTERN};
use super::yaml_tree::Anchor;

fn validator() -> &'static Validator {
    static VALIDATOR: OnceLock<Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        // The schema is generated from our own types; a failure here is a bug in the
        // model, caught by the schema tests, never a user error.
        jsonschema::validator_for(pipeline_schema()).expect("generated schema is valid")
    })
}

/// The schema violations of a document.
pub struct SchemaReport {
    /// Every violation, explained.
    pub issues: Vec<Issue>,
    /// Keys the schema does not know, each with the required key it is a typo of,
    /// if any. Dropping them (or renaming the typos) leaves a document the semantic
    /// checks can still read, so a typo in a key does not hide the other problems of
    /// its stream.
    pub unknown_keys: Vec<(Vec<String>, Option<String>)>,
}

/// Checks `document` against the schema.
pub fn check(document: &Value) -> SchemaReport {
    let mut found = Vec::new();
    for error in validator().iter_errors(document) {
        explain(&error, &mut found);
    }
    let unknown_keys = found
        .iter()
        .filter(|f| f.unknown_key)
        .map(|f| {
            let parent = &f.issue.path[..f.issue.path.len() - 1];
            let typo_of_missing = found
                .iter()
                .any(|m| m.missing.is_some() && m.missing == f.suggested && m.issue.path == parent);
            (
                f.issue.path.clone(),
                f.suggested.clone().filter(|_| typo_of_missing),
            )
        })
        .collect();
    SchemaReport {
        issues: tidy(found),
        unknown_keys,
    }
}

/// An issue plus what it knows about typos, so that an unknown key which is the typo
/// of a missing required key is reported once, not twice.
struct Found {
    issue: Issue,
    /// For an unknown key: the key it probably meant.
    suggested: Option<String>,
    /// For a missing key: its name.
    missing: Option<String>,
    /// The issue is a key the schema does not know.
    unknown_key: bool,
}

fn found(issue: Issue) -> Found {
    Found {
        issue,
        suggested: None,
        missing: None,
        unknown_key: false,
    }
}

fn tidy(found: Vec<Found>) -> Vec<Issue> {
    let typo_of = |f: &Found| {
        found.iter().any(|other| {
            other.suggested.is_some()
                && other.suggested == f.missing
                && other.issue.path[..other.issue.path.len() - 1] == f.issue.path[..]
        })
    };
    let mut issues: Vec<Issue> = Vec::new();
    for f in &found {
        if f.missing.is_some() && typo_of(f) {
            continue;
        }
        if !issues.contains(&f.issue) {
            issues.push(f.issue.clone());
        }
    }
    issues
}

fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The schema location of an error's keyword's parent: `/$defs/X/properties` for an
/// error at `/$defs/X/properties/required`... minus the keyword.
fn keyword_parent(error: &ValidationError) -> String {
    let path = error.schema_path().as_str();
    match path.rfind('/') {
        Some(i) => path[..i].to_string(),
        None => String::new(),
    }
}

/// Whether the schema that raised `error` is the one for durations.
fn is_duration(error: &ValidationError) -> bool {
    schema_at(&keyword_parent(error))
        .and_then(|s| s.get("pattern"))
        .and_then(Value::as_str)
        .is_some_and(|p| p == duration_pattern())
}

/// How a value's place is named in a message.
fn named(path: &[String]) -> String {
    if path.is_empty() {
        "the pipeline".to_string()
    } else {
        format!("`{}`", display_path(path))
    }
}

fn where_(path: &[String]) -> String {
    if path.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in `{}`", display_path(path))
    }
}

fn explain(error: &ValidationError, out: &mut Vec<Found>) {
    let path = segments(error.instance_path().as_str());
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let allowed: Vec<&str> = schema_at(&keyword_parent(error))
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .map(|props| props.keys().map(String::as_str).collect())
                .unwrap_or_default();
            for key in unexpected {
                let mut key_path = path.clone();
                key_path.push(key.clone());
                let suggestion = did_you_mean(key, allowed.iter().copied());
                let hint = match suggestion {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("expected one of: {}", one_of(&allowed)),
                };
                out.push(Found {
                    issue: Issue::error(
                        &key_path,
                        Anchor::Key,
                        format!("unknown key `{key}` {}", where_(&path)),
                    )
                    .with_hint(hint),
                    suggested: suggestion.map(String::from),
                    missing: None,
                    unknown_key: true,
                });
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default().to_string();
            let mut issue = Issue::error(
                &path,
                Anchor::Key,
                format!("missing required key `{name}` {}", where_(&path)),
            );
            if let Some(description) = property_description(error, &name) {
                issue = issue.with_hint(format!("`{name}`: {description}"));
            }
            out.push(Found {
                missing: Some(name),
                ..found(issue)
            });
        }
        ValidationErrorKind::Type { .. } if is_duration(error) => {
            out.push(found(
                Issue::error(
                    &path,
                    Anchor::Value,
                    format!("`{}` is not a duration", error.instance()),
                )
                .with_hint("a duration needs a unit, e.g. 250ms, 30s or 15m"),
            ));
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => type_noun(*t).to_string(),
                TypeKind::Multiple(set) => join_or(set.iter().map(type_noun).collect()),
            };
            out.push(found(Issue::error(
                &path,
                Anchor::Value,
                format!(
                    "{} should be {expected}, found {}",
                    named(&path),
                    describe(error.instance())
                ),
            )));
        }
        ValidationErrorKind::Constant { expected_value } => {
            out.push(found(not_one_of(
                &path,
                error.instance(),
                &[expected_value.as_ref().clone()],
            )));
        }
        ValidationErrorKind::Enum { options } => {
            let options = options.as_array().cloned().unwrap_or_default();
            out.push(found(not_one_of(&path, error.instance(), &options)));
        }
        ValidationErrorKind::Pattern { pattern } => {
            out.push(found(pattern_issue(&path, error.instance(), pattern)));
        }
        ValidationErrorKind::Minimum { .. }
        | ValidationErrorKind::Maximum { .. }
        | ValidationErrorKind::ExclusiveMinimum { .. }
        | ValidationErrorKind::ExclusiveMaximum { .. }
            if path == ["version"] =>
        {
            out.push(found(
                Issue::error(
                    &path,
                    Anchor::Value,
                    format!("unsupported pipeline version {}", error.instance()),
                )
                .with_hint("this runner reads version 1"),
            ));
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            explain_alternatives(&path, context, out);
        }
        _ => {
            out.push(found(Issue::error(
                &path,
                Anchor::Value,
                format!("{}: {error}", named(&path)),
            )));
        }
    }
}

/// Why an alternative of a `oneOf`/`anyOf` is clearly not the one the author meant.
enum Mismatch {
    /// The value (or its discriminator child) is not this alternative's constant.
    Value {
        path: Vec<String>,
        expected: Vec<Value>,
        actual: Value,
    },
    /// The alternative needs a discriminator key that is absent.
    MissingTag { key: String, expected: Vec<Value> },
    /// The value is not of this alternative's type.
    Type(Vec<JsonType>),
}

fn mismatch(error: &ValidationError, at: &[String]) -> Option<Mismatch> {
    let path = segments(error.instance_path().as_str());
    let at_or_child = path.starts_with(at) && path.len() <= at.len() + 1;
    match error.kind() {
        ValidationErrorKind::Constant { expected_value } if at_or_child => Some(Mismatch::Value {
            path,
            expected: vec![expected_value.as_ref().clone()],
            actual: error.instance().as_ref().clone(),
        }),
        ValidationErrorKind::Enum { options } if at_or_child => Some(Mismatch::Value {
            path,
            expected: options.as_array().cloned().unwrap_or_default(),
            actual: error.instance().as_ref().clone(),
        }),
        ValidationErrorKind::Type { kind } if path == at => Some(Mismatch::Type(match kind {
            TypeKind::Single(t) => vec![*t],
            TypeKind::Multiple(set) => set.iter().collect(),
        })),
        ValidationErrorKind::Required { property } if path == at => {
            let key = property.as_str()?.to_string();
            let tag = schema_at(&format!("{}/properties/{key}", keyword_parent(error)))?;
            let expected = constants(tag);
            (!expected.is_empty()).then_some(Mismatch::MissingTag { key, expected })
        }
        // A nested choice (an enum of documented constants) that no branch satisfies.
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context }
            if path == at =>
        {
            let inner: Vec<Mismatch> = context
                .iter()
                .filter_map(|branch| branch.iter().find_map(|e| mismatch(e, at)))
                .collect();
            (inner.len() == context.len()).then(|| merge_mismatches(inner))?
        }
        _ => None,
    }
}

fn merge_mismatches(mismatches: Vec<Mismatch>) -> Option<Mismatch> {
    let mut merged: Option<Mismatch> = None;
    for m in mismatches {
        merged = Some(match (merged, m) {
            (None, m) => m,
            (
                Some(Mismatch::Value {
                    path,
                    mut expected,
                    actual,
                }),
                Mismatch::Value { expected: more, .. },
            ) => {
                expected.extend(more);
                Mismatch::Value {
                    path,
                    expected,
                    actual,
                }
            }
            (Some(Mismatch::Type(mut types)), Mismatch::Type(more)) => {
                types.extend(more);
                Mismatch::Type(types)
            }
            // Mixed reasons: the value mismatch is the most specific to report.
            (
                Some(Mismatch::Value {
                    path,
                    expected,
                    actual,
                }),
                _,
            )
            | (
                _,
                Mismatch::Value {
                    path,
                    expected,
                    actual,
                },
            ) => Mismatch::Value {
                path,
                expected,
                actual,
            },
            (Some(first), _) => first,
        });
    }
    merged
}

/// The constants a discriminator schema allows (`const` or a one-value `enum`).
fn constants(schema: &Value) -> Vec<Value> {
    if let Some(c) = schema.get("const") {
        return vec![c.clone()];
    }
    schema
        .get("enum")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn explain_alternatives(
    path: &[String],
    context: &[Vec<ValidationError<'static>>],
    out: &mut Vec<Found>,
) {
    // Keys of the value that an alternative does not know: the fewer, the likelier it
    // is the alternative the author meant.
    let unknown_keys = |branch: &[ValidationError]| -> usize {
        branch
            .iter()
            .filter(|e| segments(e.instance_path().as_str()) == path)
            .map(|e| match e.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => unexpected.len(),
                _ => 0,
            })
            .sum()
    };
    let mut candidates: Vec<&Vec<ValidationError>> = Vec::new();
    let mut untagged: Vec<(&Vec<ValidationError>, String, Vec<Value>)> = Vec::new();
    let mut mismatches = Vec::new();
    for branch in context {
        match branch.iter().find_map(|e| mismatch(e, path)) {
            None => candidates.push(branch),
            Some(Mismatch::MissingTag { key, expected }) if unknown_keys(branch) == 0 => {
                untagged.push((branch, key.clone(), expected.clone()));
                mismatches.push(Mismatch::MissingTag { key, expected });
            }
            Some(m) => mismatches.push(m),
        }
    }
    // The alternative the author meant: the discriminator fits; of several, the one
    // with the fewest complaints.
    let best = candidates.into_iter().min_by_key(|branch| branch.len());
    let best_knows_all_keys = best.is_some_and(|b| unknown_keys(b) == 0);
    if let Some(best) = best {
        if best_knows_all_keys || untagged.is_empty() {
            for error in best {
                explain(error, out);
            }
            return;
        }
    }
    // An alternative that knows every key and only lacks its tag (a two-way stream
    // without `sync: two_way`): say so, and explain the rest of it.
    if let Some((branch, key, expected)) = untagged.into_iter().next() {
        let values = texts(&expected);
        let mut issue = Issue::error(
            path,
            Anchor::Key,
            format!("missing required key `{key}` {}", where_(path)),
        );
        if let [only] = values.as_slice() {
            issue = issue.with_hint(format!("add `{key}: {only}`"));
        } else {
            issue = issue.with_hint(format!("`{key}` is one of: {}", one_of(&values)));
        }
        out.push(Found {
            missing: Some(key.clone()),
            ..found(issue)
        });
        for error in branch {
            let is_tag = matches!(error.kind(), ValidationErrorKind::Required { property } if property.as_str() == Some(key.as_str()));
            if !is_tag {
                explain(error, out);
            }
        }
        return;
    }
    let issue = match merge_mismatches(mismatches) {
        Some(Mismatch::Value {
            path: at,
            expected,
            actual,
        }) => not_one_of(&at, &actual, &expected),
        Some(Mismatch::MissingTag { key, .. }) => {
            // Every alternative needs the tag: list all the values it may take.
            let expected: Vec<Value> = context
                .iter()
                .flat_map(|branch| branch.iter())
                .filter_map(|e| match mismatch(e, path) {
                    Some(Mismatch::MissingTag { expected, .. }) => Some(expected),
                    _ => None,
                })
                .flatten()
                .collect();
            Issue::error(
                path,
                Anchor::Key,
                format!("missing required key `{key}` {}", where_(path)),
            )
            .with_hint(format!("`{key}` is one of: {}", one_of(&texts(&expected))))
        }
        Some(Mismatch::Type(types)) => {
            let mut nouns: Vec<&str> = types.into_iter().map(type_noun).collect();
            nouns.dedup();
            let found = context
                .iter()
                .flatten()
                .next()
                .map(|e| describe(e.instance()))
                .unwrap_or_else(|| "another kind of value".into());
            Issue::error(
                path,
                Anchor::Value,
                format!(
                    "{} should be {}, found {found}",
                    named(path),
                    join_or(nouns)
                ),
            )
        }
        None => Issue::error(
            path,
            Anchor::Value,
            format!("{} is not valid here", named(path)),
        ),
    };
    out.push(found(issue));
}

fn texts(values: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for v in values {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !texts.contains(&text) {
            texts.push(text);
        }
    }
    texts
}

fn not_one_of(path: &[String], actual: &Value, expected: &[Value]) -> Issue {
    let expected = texts(expected);
    let name = path.last().map(String::as_str).unwrap_or("value");
    let actual_text = match actual {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let message = format!("`{actual_text}` is not a valid `{name}`");
    let hint = match did_you_mean(&actual_text, expected.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("expected {}", one_of(&expected)),
    };
    Issue::error(path, Anchor::Value, message).with_hint(hint)
}

fn pattern_issue(path: &[String], instance: &Value, pattern: &str) -> Issue {
    let text = instance.as_str().unwrap_or_default();
    let field = display_path(path);
    if pattern == duration_pattern() {
        Issue::error(path, Anchor::Value, format!("`{text}` is not a duration"))
            .with_hint("write a duration such as 250ms, 30s, 15m or 1h 30m")
    } else if pattern == PERCENT_PATTERN {
        Issue::error(path, Anchor::Value, format!("`{text}` is not a percentage"))
            .with_hint("write a percentage such as 1% or 0.5%")
    } else if pattern == "^\\$" {
        Issue::error(path, Anchor::Value, format!("`{text}` is not a JSONPath"))
            .with_hint("a JSONPath starts at the document root `$`, e.g. \"$.data[*]\"")
    } else if path == ["name"] {
        Issue::error(
            path,
            Anchor::Value,
            format!("`{text}` is not a valid pipeline name"),
        )
        .with_hint("use lowercase letters, digits, `-` and `_`")
    } else {
        Issue::error(
            path,
            Anchor::Value,
            format!("`{field}` does not match the pattern `{pattern}`"),
        )
    }
}

/// The schema description of `property` where `error` was raised, as a hint about
/// what a missing key is for.
fn property_description(error: &ValidationError, property: &str) -> Option<String> {
    let schema = schema_at(&format!("{}/properties/{property}", keyword_parent(error)))?;
    let text = schema.get("description")?.as_str()?;
    // The first sentence is enough for a hint.
    let first = text
        .split(". ")
        .next()
        .unwrap_or(text)
        .trim_end_matches('.');
    Some(first.replace('\n', " "))
}

fn type_noun(t: JsonType) -> &'static str {
    match t {
        JsonType::Null => "null",
        JsonType::Boolean => "true or false",
        JsonType::Integer => "a whole number",
        JsonType::Number => "a number",
        JsonType::String => "a string",
        JsonType::Array => "a list",
        JsonType::Object => "a mapping",
    }
}

fn join_or(mut nouns: Vec<&str>) -> String {
    match nouns.pop() {
        None => String::new(),
        Some(last) if nouns.is_empty() => last.to_string(),
        Some(last) => format!("{} or {last}", nouns.join(", ")),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (an empty value)".to_string(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string \"{s}\""),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}
