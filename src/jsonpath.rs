//! JSONPath expressions, compiled once and evaluated per page or per record.
//!
//! Most paths in pipelines are plain (`$.data[*]`, `$.id`, `$.address.city`); those
//! are walked directly, which is much cheaper than the general evaluator, lets a page's
//! records be moved out of the body instead of copied, and lets a value be written
//! back (two-way sync). Anything else (filters, slices, recursive descent) goes to
//! jsonpath-rust.

use jsonpath_rust::parser::model::JpQuery;
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;

/// A compiled JSONPath.
#[derive(Debug, Clone)]
pub struct CompiledPath {
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Names, indexes and at most one trailing `[*]`.
    Plain(Vec<Step>),
    General(Box<JpQuery>),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

impl CompiledPath {
    /// Compiles `source`; the error says why it does not parse.
    pub fn compile(source: &str) -> Result<CompiledPath, String> {
        let query =
            parse_json_path(source).map_err(|e| format!("invalid JSONPath `{source}`: {e}"))?;
        let kind = match plain_steps(source) {
            Some(steps) => Kind::Plain(steps),
            None => Kind::General(Box::new(query)),
        };
        Ok(CompiledPath {
            source: source.to_string(),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Every value the path selects in `value`.
    pub fn select<'a>(&self, value: &'a Value) -> Vec<&'a Value> {
        match &self.kind {
            Kind::Plain(steps) => {
                let mut found = Vec::new();
                walk(value, steps, &mut found);
                found
            }
            Kind::General(query) => js_path_process(query, value)
                .map(|refs| refs.into_iter().map(|r| r.val()).collect())
                .unwrap_or_default(),
        }
    }

    /// The first value the path selects, if any.
    pub fn first<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        match &self.kind {
            Kind::Plain(steps) if !steps.contains(&Step::All) => {
                steps.iter().try_fold(value, |node, step| match step {
                    Step::Key(key) => node.get(key),
                    Step::Index(i) => node.get(*i),
                    Step::All => None,
                })
            }
            _ => self.select(value).into_iter().next(),
        }
    }

    /// Moves the selected values out of `value` (a page body), avoiding a copy of
    /// every record. Values selected by a general path are copied.
    pub fn take(&self, value: &mut Value) -> Vec<Value> {
        let Kind::Plain(steps) = &self.kind else {
            return self.select(value).into_iter().cloned().collect();
        };
        let Some((last, parents)) = steps.split_last() else {
            return vec![std::mem::take(value)];
        };
        let mut node = value;
        for step in parents {
            let next = match step {
                Step::Key(key) => node.get_mut(key),
                Step::Index(i) => node.get_mut(*i),
                Step::All => None,
            };
            match next {
                Some(next) => node = next,
                None => return Vec::new(),
            }
        }
        match last {
            Step::All => match node {
                Value::Array(items) => std::mem::take(items),
                Value::Object(map) => std::mem::take(map).into_iter().map(|(_, v)| v).collect(),
                _ => Vec::new(),
            },
            Step::Key(key) => node.get_mut(key).map(std::mem::take).into_iter().collect(),
            Step::Index(i) => node.get_mut(*i).map(std::mem::take).into_iter().collect(),
        }
    }

    /// Whether the array or object a `...[*]` path fans out over exists in `value`,
    /// telling "no records" apart from "not the response we expected". Paths that do
    /// not end in `[*]` are only checked for a match.
    pub fn container_exists(&self, value: &Value) -> bool {
        match &self.kind {
            Kind::Plain(steps) if steps.last() == Some(&Step::All) => {
                let parent = &steps[..steps.len() - 1];
                let mut found = Vec::new();
                walk(value, parent, &mut found);
                found.iter().any(|v| v.is_array() || v.is_object())
            }
            _ => !self.select(value).is_empty(),
        }
    }

    /// Writes `new` at the path in `value`, creating objects on the way. Only plain
    /// paths of names can be written; others return false.
    pub fn set(&self, value: &mut Value, new: Value) -> bool {
        let Kind::Plain(steps) = &self.kind else {
            return false;
        };
        if steps.iter().any(|s| !matches!(s, Step::Key(_))) || steps.is_empty() {
            return false;
        }
        let mut node = value;
        for step in steps {
            let Step::Key(key) = step else {
                return false;
            };
            if !node.is_object() {
                *node = Value::Object(serde_json::Map::new());
            }
            let Value::Object(map) = node else {
                return false;
            };
            node = map.entry(key.clone()).or_insert(Value::Null);
        }
        *node = new;
        true
    }
}

fn walk<'a>(value: &'a Value, steps: &[Step], found: &mut Vec<&'a Value>) {
    let Some((step, rest)) = steps.split_first() else {
        found.push(value);
        return;
    };
    match step {
        Step::Key(key) => {
            if let Some(next) = value.get(key) {
                walk(next, rest, found);
            }
        }
        Step::Index(i) => {
            if let Some(next) = value.get(*i) {
                walk(next, rest, found);
            }
        }
        Step::All => match value {
            Value::Array(items) => items.iter().for_each(|item| walk(item, rest, found)),
            Value::Object(map) => map.values().for_each(|item| walk(item, rest, found)),
            _ => {}
        },
    }
}

/// The steps of a plain path (`$.a.b[0]['c'][*]`), or `None` for anything richer.
fn plain_steps(source: &str) -> Option<Vec<Step>> {
    let mut rest = source.strip_prefix('$')?;
    let mut steps = Vec::new();
    let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[*]").or_else(|| rest.strip_prefix(".*")) {
            steps.push(Step::All);
            rest = after;
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if !is_name(&after[..end]) {
                return None;
            }
            steps.push(Step::Key(after[..end].to_string()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("['") {
            let end = after.find("']")?;
            let key = &after[..end];
            if key.contains(['\'', '\\']) {
                return None;
            }
            steps.push(Step::Key(key.to_string()));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            steps.push(Step::Index(after[..end].parse().ok()?));
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    // A wildcard in the middle fans out; the general evaluator handles that.
    let wildcards = steps.iter().filter(|s| **s == Step::All).count();
    match wildcards {
        0 => Some(steps),
        1 if steps.last() == Some(&Step::All) => Some(steps),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> CompiledPath {
        CompiledPath::compile(p).unwrap()
    }

    #[test]
    fn plain_and_general_paths_select_the_same() {
        let doc =
            json!({"data": [{"id": 1, "a": {"b": 2}}, {"id": 2, "a": {"b": 3}}], "next": null});
        for p in ["$.data[*]", "$.data[0].a.b", "$['data'][1]['id']", "$.next"] {
            let plain = path(p);
            assert!(matches!(plain.kind, Kind::Plain(_)), "{p} should be plain");
            let general: Vec<&Value> = jsonpath_rust::query::js_path_vals(p, &doc).unwrap();
            assert_eq!(plain.select(&doc), general, "{p}");
        }
        let filtered = path("$.data[?@.id > 1].id");
        assert!(matches!(filtered.kind, Kind::General(_)));
        assert_eq!(filtered.select(&doc), vec![&json!(2)]);
    }

    #[test]
    fn first_finds_a_single_value() {
        let doc = json!({"meta": {"next_cursor": "abc"}});
        assert_eq!(path("$.meta.next_cursor").first(&doc), Some(&json!("abc")));
        assert_eq!(path("$.meta.missing").first(&doc), None);
    }

    #[test]
    fn take_moves_records_out_of_a_page() {
        let mut page = json!({"items": [{"id": 1}, {"id": 2}], "total": 2});
        let records = path("$.items[*]").take(&mut page);
        assert_eq!(records, vec![json!({"id": 1}), json!({"id": 2})]);
        assert_eq!(page["total"], 2);
        let mut top = json!([{"id": 1}]);
        assert_eq!(path("$[*]").take(&mut top).len(), 1);
        assert!(path("$.missing[*]").take(&mut page).is_empty());
    }

    #[test]
    fn plain_name_paths_can_be_written() {
        let mut record = json!({"id": 1});
        assert!(path("$.address.city").set(&mut record, json!("Lyon")));
        assert_eq!(record, json!({"id": 1, "address": {"city": "Lyon"}}));
        assert!(!path("$.items[*]").set(&mut record, json!(1)));
    }
}
