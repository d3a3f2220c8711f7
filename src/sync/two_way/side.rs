//! One side of a two-way stream: read like a source, written like a target. Knows
//! where the record's id, `updated_at`, tombstone and each shared field are, and turns
//! field values into a request body.

use serde_json::{Map, Value};

use super::merge::SideValues;
use crate::config::stream::{IncrementalConfig, Side, SideConfig, TwoWayStreamConfig};
use crate::jsonpath::CompiledPath;
use crate::sync::source::Source;
use crate::sync::target::{id_text, HttpTarget, TargetSpec};
use crate::sync::{watermark, SyncError};
use crate::vars::Vars;

/// A side, compiled.
#[derive(Debug)]
pub struct SideSpec {
    pub side: Side,
    pub source: Source,
    pub target: HttpTarget,
    pub incremental: IncrementalConfig,
    id: CompiledPath,
    updated_at: Option<CompiledPath>,
    tombstone: Option<CompiledPath>,
    /// Shared field name → where it is on this side.
    fields: Vec<(String, CompiledPath)>,
    /// `match_on`: shared field name → the top-level field of this side's records.
    match_on: Vec<(String, String)>,
}

impl SideSpec {
    /// `target` is the side's writing half; its `match_on` is filled in here (this
    /// side's names of the stream's `match_on` fields), for first contacts and
    /// in-doubt creates.
    pub fn new(
        side: Side,
        stream: &TwoWayStreamConfig,
        source: Source,
        mut target: TargetSpec,
        vars: Vars,
    ) -> Result<SideSpec, SyncError> {
        let config = side_config(stream, side);
        let compile = |p: &str| CompiledPath::compile(p).map_err(SyncError::Setup);
        let mut fields = Vec::new();
        for (name, field) in &stream.fields {
            let path = match side {
                Side::A => &field.a,
                Side::B => &field.b,
            };
            fields.push((name.clone(), compile(path.as_str())?));
        }
        let mut match_on = Vec::new();
        for name in &stream.match_on {
            let key = fields
                .iter()
                .find(|(field, _)| field == name)
                .and_then(|(_, path)| top_level_name(path.as_str()))
                .ok_or_else(|| {
                    SyncError::Setup(format!(
                        "match_on `{name}` needs a shared field with a plain `$.name` path on side {}",
                        side.as_str()
                    ))
                })?;
            match_on.push((name.clone(), key));
        }
        target.match_on = match_on.iter().map(|(_, key)| key.clone()).collect();
        Ok(SideSpec {
            side,
            source,
            target: HttpTarget::new(target, vars)?,
            incremental: config.read.incremental.clone().unwrap_or_default(),
            id: compile(config.read.id.as_str())?,
            updated_at: config
                .read
                .updated_at
                .as_ref()
                .map(|p| compile(p.as_str()))
                .transpose()?,
            tombstone: config
                .read
                .tombstone
                .as_ref()
                .map(|p| compile(p.as_str()))
                .transpose()?,
            fields,
            match_on,
        })
    }

    pub fn id(&self, record: &Value) -> Option<String> {
        self.id.first(record).and_then(id_text)
    }

    pub fn id_path(&self) -> &str {
        self.id.as_str()
    }

    pub fn updated_at(&self, record: &Value) -> Option<String> {
        self.updated_at
            .as_ref()
            .and_then(|p| p.first(record))
            .and_then(watermark::text)
    }

    pub fn is_tombstone(&self, record: &Value) -> bool {
        self.tombstone.as_ref().and_then(|p| p.first(record)) == Some(&Value::Bool(true))
    }

    /// The shared fields of a record (missing ones are null) and its `updated_at`.
    pub fn values(&self, record: &Value) -> SideValues {
        let values = self
            .fields
            .iter()
            .map(|(name, path)| {
                let value = path.first(record).cloned().unwrap_or(Value::Null);
                (name.clone(), value)
            })
            .collect();
        SideValues {
            values,
            updated_at: self.updated_at(record),
        }
    }

    /// A request body that sets these shared fields at this side's paths.
    pub fn body<'v>(&self, values: impl IntoIterator<Item = (&'v str, &'v Value)>) -> Value {
        let mut body = Value::Object(Map::new());
        for (name, value) in values {
            if let Some((_, path)) = self.fields.iter().find(|(field, _)| field == name) {
                if !path.set(&mut body, value.clone()) {
                    tracing::warn!(
                        field = name,
                        path = path.as_str(),
                        "only plain paths can be written; field left out"
                    );
                }
            }
        }
        body
    }

    /// Whether records can be matched on this side on first contact.
    pub fn can_match(&self) -> bool {
        !self.match_on.is_empty() && self.target.can_find()
    }

    /// The `match_on` values of a record's shared fields, keyed by this side's field
    /// names (what [`HttpTarget::find`] compares); `None` if one is missing.
    pub fn match_values(&self, shared: &Map<String, Value>) -> Option<Map<String, Value>> {
        let mut values = Map::new();
        for (name, key) in &self.match_on {
            match shared.get(name) {
                Some(value) if !value.is_null() => values.insert(key.clone(), value.clone()),
                _ => return None,
            };
        }
        Some(values)
    }

    /// This side's names of the `match_on` fields.
    pub fn match_fields(&self) -> Vec<String> {
        self.match_on.iter().map(|(_, key)| key.clone()).collect()
    }
}

/// The config of one side.
pub fn side_config(stream: &TwoWayStreamConfig, side: Side) -> &SideConfig {
    match side {
        Side::A => &stream.sides.a,
        Side::B => &stream.sides.b,
    }
}

/// `$.email` → `email`; `None` for anything deeper.
fn top_level_name(path: &str) -> Option<String> {
    let name = path.strip_prefix("$.")?;
    (!name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .then(|| name.to_string())
}

/// A key of `match_on` values, to find a record read on the other side.
pub fn match_key(shared: &Map<String, Value>, names: &[String]) -> Option<String> {
    let values: Option<Vec<&Value>> = names
        .iter()
        .map(|n| shared.get(n).filter(|v| !v.is_null()))
        .collect();
    values.map(|v| serde_json::to_string(&v).unwrap_or_default())
}
