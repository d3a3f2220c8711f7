//! Mapping a source record to the target's fields: `from` paths, templates (compiled
//! once per stream, strict about undefined names), defaults and type conversion — and
//! the hash of the result, which decides whether a write is needed at all.

use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use minijinja::{Environment, Error as TemplateError, ErrorKind};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::stream::{FieldConfig, FieldType};
use crate::jsonpath::CompiledPath;
use crate::store::Store;
use crate::template::{environment, to_value};

/// A record's target fields and their hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub fields: Value,
    pub hash: String,
}

/// Why a record could not be mapped.
#[derive(Debug, Clone, PartialEq)]
pub enum MapError {
    /// A `ref()` names a record the other stream has not mapped yet: try next run.
    Waiting { stream: String, id: String },
    /// The record cannot be mapped as it is: dead-letter it.
    Invalid(String),
}

enum Source {
    Path(CompiledPath),
    Template(String),
    Constant,
}

struct Field {
    name: String,
    source: Source,
    default: Option<Value>,
    value_type: Option<FieldType>,
}

/// The compiled field mapping of one stream.
pub struct Mapper {
    fields: Vec<Field>,
    templates: Environment<'static>,
    /// The parts of `record` the templates read (`record.a.b`), or `None` when a
    /// template uses the record as a whole. Only those parts are handed to the template
    /// engine, instead of converting every record in full.
    record_paths: Option<Vec<Vec<String>>>,
    /// Whether any field is a template at all.
    has_templates: bool,
    /// A `ref()` that found nothing, noted by the template function for the caller.
    missing_ref: Arc<Mutex<Option<(String, String)>>>,
}

impl std::fmt::Debug for Mapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapper")
            .field("fields", &self.fields.len())
            .finish()
    }
}

impl Mapper {
    /// Compiles `fields`. `refs` resolves `ref('stream', id)` to the target id the
    /// other stream mapped; `env` is what `{{ env.X }}` reads.
    pub fn new(
        fields: &IndexMap<String, FieldConfig>,
        refs: Arc<dyn Store>,
        env: Value,
    ) -> Result<Mapper, String> {
        let mut templates = environment();
        let missing_ref = Arc::new(Mutex::new(None));
        let noted = Arc::clone(&missing_ref);
        templates.add_function(
            "ref",
            move |stream: String, id: minijinja::Value| -> Result<String, TemplateError> {
                let id = id.to_string();
                match refs.target_id(&stream, &id) {
                    Ok(Some(target)) => Ok(target),
                    Ok(None) => {
                        *noted.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some((stream.clone(), id.clone()));
                        Err(TemplateError::new(
                            ErrorKind::InvalidOperation,
                            format!("`{stream}` has not mapped `{id}` yet"),
                        ))
                    }
                    Err(e) => Err(TemplateError::new(
                        ErrorKind::InvalidOperation,
                        e.to_string(),
                    )),
                }
            },
        );
        templates.add_global("env", to_value(env));
        let mut compiled = Vec::new();
        let mut record_paths = Some(Vec::new());
        for (name, field) in fields {
            let source = match (&field.from, &field.template) {
                (Some(path), _) => Source::Path(CompiledPath::compile(path.as_str())?),
                (None, Some(template)) => {
                    templates
                        .add_template_owned(name.clone(), template.as_str().to_string())
                        .map_err(|e| format!("field `{name}`: {e}"))?;
                    note_record_paths(template.as_str(), &mut record_paths);
                    Source::Template(name.clone())
                }
                (None, None) => Source::Constant,
            };
            compiled.push(Field {
                name: name.clone(),
                source,
                default: field.default.clone(),
                value_type: field.value_type,
            });
        }
        Ok(Mapper {
            has_templates: compiled
                .iter()
                .any(|f| matches!(f.source, Source::Template(_))),
            fields: compiled,
            templates,
            record_paths,
            missing_ref,
        })
    }

    /// The record as the templates see it: only the parts they read.
    fn template_record(&self, record: &Value) -> minijinja::Value {
        let Some(paths) = &self.record_paths else {
            return to_value(record);
        };
        let mut sparse = Value::Object(Map::new());
        for path in paths {
            let found = path.iter().try_fold(record, |node, key| node.get(key));
            if let Some(value) = found {
                let mut slot = &mut sparse;
                for key in path {
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    let Value::Object(map) = slot else { break };
                    slot = map.entry(key.clone()).or_insert(Value::Null);
                }
                *slot = value.clone();
            }
        }
        to_value(&sparse)
    }

    /// Maps `record`. `now` is the run's start time, the same for every record, so a
    /// template using it does not make every record look changed within a run.
    pub fn map(&self, record: &Value, now: &str) -> Result<Mapped, MapError> {
        let mut fields = Map::with_capacity(self.fields.len());
        let context = if self.has_templates {
            minijinja::context! { record => self.template_record(record), now => now }
        } else {
            minijinja::Value::UNDEFINED
        };
        for field in &self.fields {
            let value = match &field.source {
                Source::Path(path) => path.first(record).cloned().unwrap_or(Value::Null),
                Source::Template(name) => Value::String(self.render(name, &context)?),
                Source::Constant => Value::Null,
            };
            let value = match (value, &field.default) {
                (Value::Null, Some(default)) => default.clone(),
                (value, _) => value,
            };
            let value = match field.value_type {
                Some(kind) => convert(value, kind)
                    .map_err(|e| MapError::Invalid(format!("field `{}`: {e}", field.name)))?,
                None => value,
            };
            fields.insert(field.name.clone(), value);
        }
        let fields = Value::Object(fields);
        Ok(Mapped {
            hash: hash(&fields),
            fields,
        })
    }

    fn render(&self, name: &str, context: &minijinja::Value) -> Result<String, MapError> {
        *self.missing_ref.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let template = self
            .templates
            .get_template(name)
            .map_err(|e| MapError::Invalid(format!("field `{name}`: {e}")))?;
        template.render(context).map_err(|e| {
            match self
                .missing_ref
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                Some((stream, id)) => MapError::Waiting { stream, id },
                None => MapError::Invalid(format!(
                    "field `{name}`: {}",
                    e.detail()
                        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()))
                )),
            }
        })
    }
}

/// Adds the record paths a template reads to `paths`; a use of the whole record (or
/// a template that does not parse) turns the list into `None`: convert it all.
fn note_record_paths(template: &str, paths: &mut Option<Vec<Vec<String>>>) {
    let Some(list) = paths.as_mut() else { return };
    let Ok(names) = crate::template::analyze(template) else {
        *paths = None;
        return;
    };
    if !names.roots.contains("record") {
        return;
    }
    let used: Vec<Vec<String>> = names
        .dotted
        .iter()
        .filter_map(|d| d.strip_prefix("record."))
        .map(|rest| rest.split('.').map(str::to_string).collect())
        .collect();
    if used.is_empty() || names.dotted.contains("record") {
        *paths = None;
    } else {
        list.extend(used);
    }
}

/// The hash of mapped fields: SHA-256 of their JSON (keys in pipeline order), hex.
/// Stable across runs and versions, since it is compared with stored bases.
pub fn hash(fields: &Value) -> String {
    let bytes = serde_json::to_vec(fields).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    hex(&digest[..16])
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    out
}

fn convert(value: Value, kind: FieldType) -> Result<Value, String> {
    if value.is_null() {
        return Ok(value);
    }
    let text = match &value {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    };
    let bad = || format!("`{text}` is not {}", type_name(kind));
    Ok(match kind {
        FieldType::String => Value::String(match value {
            Value::String(s) => s,
            other => other.to_string(),
        }),
        FieldType::Integer => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => match text.parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
                _ => return Err(bad()),
            },
        },
        FieldType::Number => {
            let n: f64 = text.parse().map_err(|_| bad())?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(bad)?
        }
        FieldType::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Value::Bool(true),
            "false" | "0" | "no" | "" => Value::Bool(false),
            _ => return Err(bad()),
        },
    })
}

fn type_name(kind: FieldType) -> &'static str {
    match kind {
        FieldType::String => "text",
        FieldType::Number => "a number",
        FieldType::Integer => "a whole number",
        FieldType::Boolean => "true or false",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::stream::FieldConfig;
    use crate::store::SledStore;
    use serde_json::json;

    fn fields(yaml: &str) -> IndexMap<String, FieldConfig> {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        (dir, Arc::new(store))
    }

    #[test]
    fn fields_come_from_paths_templates_and_defaults() {
        let (_dir, store) = store();
        let mapper = Mapper::new(
            &fields(
                r#"
email: { from: "$.email" }
name: { template: "{{ record.first }} {{ record.last }}" }
plan: { from: "$.tier", default: free }
total: { from: "$.total", type: number }
channel: { default: web }
"#,
            ),
            store,
            json!({}),
        )
        .unwrap();
        let mapped = mapper
            .map(
                &json!({"email": "a@b", "first": "Ada", "last": "L", "total": "12.5"}),
                "2026-01-01T00:00:00Z",
            )
            .unwrap();
        assert_eq!(
            mapped.fields,
            json!({"email": "a@b", "name": "Ada L", "plan": "free", "total": 12.5, "channel": "web"})
        );
        assert_eq!(mapped.hash.len(), 32);
        let again = mapper
            .map(
                &json!({"email": "a@b", "first": "Ada", "last": "L", "total": "12.5"}),
                "2026-01-01T00:00:00Z",
            )
            .unwrap();
        assert_eq!(again.hash, mapped.hash, "the hash is stable");
    }

    #[test]
    fn templates_get_only_the_parts_of_the_record_they_read() {
        let mut paths = Some(Vec::new());
        note_record_paths("{{ record.first }} {{ record.address.city }}", &mut paths);
        assert_eq!(
            paths,
            Some(vec![
                vec!["address".to_string(), "city".to_string()],
                vec!["first".to_string()]
            ])
        );
        note_record_paths("{{ record['first'] }}", &mut paths);
        assert_eq!(paths, None, "an indexed record is converted in full");
        let mut paths = Some(Vec::new());
        note_record_paths("{{ record | tojson }}", &mut paths);
        assert_eq!(paths, None);
    }

    #[test]
    fn a_record_that_cannot_be_mapped_says_why() {
        let (_dir, store) = store();
        let mapper = Mapper::new(
            &fields(
                r#"{ n: { from: "$.n", type: integer }, t: { template: "{{ record.a.b }}" } }"#,
            ),
            store,
            json!({}),
        )
        .unwrap();
        let error = mapper
            .map(&json!({"n": "seven", "a": {"b": 1}}), "now")
            .unwrap_err();
        assert_eq!(
            error,
            MapError::Invalid("field `n`: `seven` is not a whole number".into())
        );
        let error = mapper.map(&json!({"n": 7}), "now").unwrap_err();
        assert!(
            matches!(error, MapError::Invalid(ref m) if m.contains("undefined")),
            "{error:?}"
        );
    }

    #[test]
    fn a_reference_not_mapped_yet_waits() {
        let (_dir, store) = store();
        store
            .complete(&[crate::store::Completion {
                stream: "accounts".into(),
                source_id: "a1".into(),
                intent_key: None,
                outcome: crate::store::Outcome::Synced {
                    target_id: "cus_1".into(),
                    base: crate::store::Base {
                        hash: "h".into(),
                        fields: json!({}),
                        deleted: false,
                    },
                },
                may_have_dead_letter: true,
            }])
            .unwrap();
        let mapper = Mapper::new(
            &fields(r#"{ customer: { template: "{{ ref('accounts', record.account) }}" } }"#),
            store,
            json!({}),
        )
        .unwrap();
        assert_eq!(
            mapper.map(&json!({"account": "a1"}), "now").unwrap().fields,
            json!({"customer": "cus_1"})
        );
        assert_eq!(
            mapper.map(&json!({"account": "a2"}), "now").unwrap_err(),
            MapError::Waiting {
                stream: "accounts".into(),
                id: "a2".into()
            }
        );
    }
}
