//! An HTTP target: the write requests of intents, finding existing records (first
//! contact through `match_on`, in-doubt creates through `match_on` or `external_id`),
//! and turning answers into completions.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::SyncError;
use crate::config::request::{ReadConfig, WriteRequestConfig};
use crate::config::stream::WritesConfig;
use crate::http::client::Safety;
use crate::http::{pages, HttpError, HttpSystem, Listing, Request};
use crate::jsonpath::CompiledPath;
use crate::store::{Intent, Operation};
use crate::template::to_value;
use crate::vars::Vars;

/// What a target side is: its system, requests and the ways to find records on it.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub system: Arc<HttpSystem>,
    pub read: Option<ReadConfig>,
    pub id: Option<CompiledPath>,
    pub match_on: Vec<String>,
    pub writes: WritesConfig,
    /// Writes sent at once (the system's `max_in_flight`).
    pub max_in_flight: usize,
}

/// A record found on the target.
#[derive(Debug, Clone)]
pub struct Found {
    pub target_id: String,
    pub record: Value,
}

/// An HTTP target of one stream.
#[derive(Debug)]
pub struct HttpTarget {
    spec: TargetSpec,
    vars: Vars,
    create_id: Option<CompiledPath>,
    /// The target listing indexed by match values, built on first need (only when
    /// there is a `read` but no `lookup`).
    index: Mutex<Option<Index>>,
}

#[derive(Debug, Default)]
struct Index {
    by_values: HashMap<String, Found>,
}

/// The answer to a write.
#[derive(Debug)]
pub enum Written {
    /// Done; for a create, the new record's id.
    Done { target_id: Option<String> },
    /// The target no longer has the record (update or delete met a 404).
    Gone,
    /// The target refused the write for good.
    Refused {
        status: u16,
        body: String,
        url: String,
    },
    /// No answer came back for a write that may have been applied.
    InDoubt { reason: String },
}

impl HttpTarget {
    pub fn new(spec: TargetSpec, vars: Vars) -> Result<HttpTarget, SyncError> {
        let create_id = spec
            .writes
            .create
            .as_ref()
            .and_then(|c| c.id.as_ref())
            .map(|p| CompiledPath::compile(p.as_str()))
            .transpose()
            .map_err(SyncError::Setup)?;
        Ok(HttpTarget {
            spec,
            vars,
            create_id,
            index: Mutex::new(None),
        })
    }

    pub fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    /// Whether sending the same create twice is harmless: the target honours the
    /// idempotency key, or the runner chooses the id (a PUT).
    pub fn create_is_idempotent(&self) -> bool {
        self.spec.writes.idempotency_header.is_some()
            || self
                .spec
                .writes
                .create
                .as_ref()
                .is_some_and(|c| c.assign_id.is_some())
    }

    /// The fields that identify a record when an in-doubt create must be found:
    /// `match_on`, else `external_id`.
    pub fn identity_fields(&self) -> Vec<String> {
        if !self.spec.match_on.is_empty() {
            self.spec.match_on.clone()
        } else {
            self.spec.writes.external_id.iter().cloned().collect()
        }
    }

    /// How long to wait before looking up an in-doubt create: a request our side gave
    /// up on may still be running on the server, and a lookup that comes before it
    /// finishes would find nothing and lead to a duplicate. Twice the request timeout
    /// gives it the time the runner itself would have given an answer, and more.
    pub fn settle_wait(&self) -> std::time::Duration {
        self.spec.system.request_timeout() * 2
    }

    /// Whether records can be looked up on this target at all.
    pub fn can_find(&self) -> bool {
        !self.identity_fields().is_empty()
            && (self.spec.writes.lookup.is_some() || self.spec.read.is_some())
    }

    /// The config of the request an operation sends.
    fn request_config(&self, op: Operation) -> Option<&WriteRequestConfig> {
        match op {
            Operation::Create => self.spec.writes.create.as_ref(),
            Operation::Update | Operation::SoftDelete => self.spec.writes.update.as_ref(),
            Operation::Delete => self.spec.writes.delete.as_ref(),
        }
    }

    /// Renders the path of an operation for an intent.
    pub fn render_path(
        &self,
        op: Operation,
        context: &[(&str, minijinja::Value)],
    ) -> Result<String, String> {
        let config = self
            .request_config(op)
            .ok_or_else(|| format!("the target has no `{}` request", op_key(op)))?;
        self.vars.render(config.path.as_str(), context, false)
    }

    /// The id the runner assigns to a created record (`assign_id`), if it does.
    pub fn assigned_id(
        &self,
        context: &[(&str, minijinja::Value)],
    ) -> Result<Option<String>, String> {
        match self
            .spec
            .writes
            .create
            .as_ref()
            .and_then(|c| c.assign_id.as_ref())
        {
            Some(template) => self
                .vars
                .render(template.as_str(), context, false)
                .map(Some),
            None => Ok(None),
        }
    }

    /// The request an intent sends.
    pub fn request(&self, intent: &Intent) -> Result<Request, SyncError> {
        let config = self.request_config(intent.op).ok_or_else(|| {
            SyncError::Setup(format!("the target has no `{}` request", op_key(intent.op)))
        })?;
        let method = Method::from_bytes(config.method.as_str().as_bytes())
            .map_err(|e| SyncError::Setup(e.to_string()))?;
        let body = match intent.op {
            Operation::Delete => None,
            Operation::SoftDelete => {
                Some(envelope(config, Value::Object(self.soft_delete_fields())))
            }
            Operation::Create | Operation::Update => Some(envelope(config, intent.fields.clone())),
        };
        let mut headers = Vec::new();
        for (name, template) in &config.headers {
            let value = self
                .vars
                .render(template.as_str(), &[], true)
                .map_err(SyncError::Setup)?;
            headers.push((name.clone(), value));
        }
        if let Some(header) = &self.spec.writes.idempotency_header {
            headers.push((header.clone(), intent.key.clone()));
        }
        let safety = match intent.op {
            Operation::Create if !self.create_is_idempotent() => Safety::NotIdempotent,
            _ => Safety::Idempotent,
        };
        Ok(Request {
            method,
            target: intent.path.clone(),
            query: Vec::new(),
            headers,
            body,
            safety,
        })
    }

    pub fn soft_delete_fields(&self) -> Map<String, Value> {
        self.spec
            .writes
            .soft_delete
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Sends an intent's request and says what became of it.
    pub async fn send(&self, intent: &Intent) -> Result<Written, SyncError> {
        let request = self.request(intent)?;
        match self.spec.system.send(&request).await {
            Ok(response) => {
                let target_id = match intent.op {
                    Operation::Create => match intent
                        .target_id
                        .clone()
                        .or_else(|| self.created_id(&response.body))
                    {
                        Some(id) => Some(id),
                        None => {
                            let path = self.create_id.as_ref().map_or("`id`", |p| p.as_str());
                            return Ok(Written::InDoubt {
                                reason: format!(
                                    "the create succeeded but its answer has no id at {path}"
                                ),
                            });
                        }
                    },
                    _ => intent.target_id.clone(),
                };
                Ok(Written::Done { target_id })
            }
            Err(HttpError::Permanent { status: 404, .. }) if intent.op != Operation::Create => {
                Ok(Written::Gone)
            }
            Err(HttpError::Permanent {
                status, body, url, ..
            }) => Ok(Written::Refused { status, body, url }),
            Err(HttpError::InDoubt { reason, .. }) => Ok(Written::InDoubt { reason }),
            Err(other) => Err(other.into()),
        }
    }

    fn created_id(&self, body: &Value) -> Option<String> {
        self.create_id.as_ref()?.first(body).and_then(id_text)
    }

    /// The id of a target record (`target.id`).
    pub fn record_id(&self, record: &Value) -> Option<String> {
        self.spec.id.as_ref()?.first(record).and_then(id_text)
    }

    /// Finds the target record whose `fields` equal `values`. `fresh` asks for an
    /// answer that includes writes made since the listing was last read (in-doubt
    /// creates); a lookup request is always fresh.
    pub async fn find(
        &self,
        fields: &[String],
        values: &Map<String, Value>,
        fresh: bool,
    ) -> Result<Option<Found>, SyncError> {
        let wanted: Vec<(&String, &Value)> = fields
            .iter()
            .map(|f| (f, values.get(f).unwrap_or(&Value::Null)))
            .collect();
        if wanted.iter().any(|(_, v)| v.is_null()) {
            // A record without its identifying values cannot be matched.
            return Ok(None);
        }
        if let Some(lookup) = &self.spec.writes.lookup {
            return self.lookup(lookup, &wanted).await;
        }
        let mut index = self.index.lock().await;
        if index.is_none() || fresh {
            *index = Some(self.build_index(fields).await?);
        }
        Ok(index
            .as_ref()
            .and_then(|i| i.by_values.get(&index_key(&wanted)).cloned()))
    }

    async fn lookup(
        &self,
        lookup: &ReadConfig,
        wanted: &[(&String, &Value)],
    ) -> Result<Option<Found>, SyncError> {
        let criteria: Map<String, Value> = wanted
            .iter()
            .map(|(f, v)| ((*f).clone(), (*v).clone()))
            .collect();
        let listing = Listing::new(lookup, &self.vars, &[("match", to_value(&criteria))])?;
        let mut stream = pages(Arc::clone(&self.spec.system), listing);
        while let Some(page) = stream.next().await {
            for record in page?.records {
                // APIs that ignore an unknown filter return everything: check.
                if wanted
                    .iter()
                    .all(|(f, v)| record.get(f.as_str()) == Some(*v))
                {
                    if let Some(target_id) = self.record_id(&record) {
                        return Ok(Some(Found { target_id, record }));
                    }
                }
            }
        }
        Ok(None)
    }

    async fn build_index(&self, fields: &[String]) -> Result<Index, SyncError> {
        let read = self.spec.read.as_ref().ok_or_else(|| {
            SyncError::Setup("finding target records needs `lookup` or `read`".into())
        })?;
        let listing = Listing::new(
            read,
            &self.vars,
            &[("watermark", to_value("")), ("now", to_value(""))],
        )?;
        let mut stream = pages(Arc::clone(&self.spec.system), listing);
        let mut index = Index::default();
        while let Some(page) = stream.next().await {
            for record in page?.records {
                let Some(target_id) = self.record_id(&record) else {
                    continue;
                };
                let values: Vec<(&String, &Value)> = fields
                    .iter()
                    .map(|f| (f, record.get(f.as_str()).unwrap_or(&Value::Null)))
                    .collect();
                if values.iter().any(|(_, v)| v.is_null()) {
                    continue;
                }
                let key = index_key(&values);
                index.by_values.entry(key).or_insert(Found {
                    target_id,
                    record: record.clone(),
                });
            }
        }
        Ok(index)
    }
}

fn envelope(config: &WriteRequestConfig, fields: Value) -> Value {
    match &config.envelope {
        Some(key) => {
            let mut wrapped = Map::new();
            wrapped.insert(key.clone(), fields);
            Value::Object(wrapped)
        }
        None => fields,
    }
}

fn index_key(values: &[(&String, &Value)]) -> String {
    let list: Vec<&Value> = values.iter().map(|(_, v)| *v).collect();
    serde_json::to_string(&list).unwrap_or_default()
}

/// An id as text: ids may come as strings or numbers.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn op_key(op: Operation) -> &'static str {
    match op {
        Operation::Create => "create",
        Operation::Update | Operation::SoftDelete => "update",
        Operation::Delete => "delete",
    }
}
