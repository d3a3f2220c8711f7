//! One run of a one-way stream:
//!
//! 1. resolve what an earlier run left in the outbox (in-doubt creates first of all);
//! 2. read the source from the watermark (or a checkpoint), batch by batch, and per
//!    record decide: nothing (hash equals the base), create, update, link an existing
//!    target record (`match_on`), wait for a reference, or dead-letter;
//! 3. record the batch's intents durably, send them concurrently, commit their
//!    completions in groups;
//! 4. when the listing completed: move the watermark, and (after `--full`) delete what
//!    the source no longer has, unless that would be a mass delete.

mod deletes;
mod read;
mod records;
mod write;

pub(in crate::sync) use write::{write, Sent};

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::{Map, Value};

use super::decide::{dead_letter, exchange, intent_key, Decision};
use super::jsonl::JsonlTarget;
use super::mapper::{hash, MapError, Mapped, Mapper};
use super::plan::StreamPlan;
use super::source::{Batch, Source};
use super::target::{Found, HttpTarget, Written};
use super::watermark;
use super::{RunOptions, StreamProgress, SyncError};
use crate::config::stream::{DeleteMode, FilterSemantics, OneWayStreamConfig};
use crate::jsonpath::CompiledPath;
use crate::store::{
    now_text, Base, Checkpoint, Completion, Intent, Operation, Outcome, Store, StreamCounts,
    Watermark,
};
use crate::template::to_value;
use crate::vars::Vars;

/// Rounds of "look up, then create" for an in-doubt create before giving up on it.
const IN_DOUBT_ROUNDS: u32 = 3;

/// Where a stream's records go.
#[derive(Debug)]
pub enum Target {
    Http(Box<HttpTarget>),
    /// A JSON-lines file and the state directory its index lives in.
    Jsonl {
        path: std::path::PathBuf,
        index_dir: std::path::PathBuf,
    },
}

/// Everything one stream run needs.
pub struct StreamRun<'a> {
    pub name: String,
    pub config: &'a OneWayStreamConfig,
    pub store: Arc<dyn Store>,
    pub vars: Vars,
    pub source: Source,
    pub target: Target,
    pub mapper: Mapper,
    pub options: RunOptions,
    pub now: String,
    pub progress: StreamProgress,
    pub counts: StreamCounts,
    /// What a dry run (`runner plan`) would have done.
    pub plan: StreamPlan,
    id_path: CompiledPath,
    updated_at: Option<CompiledPath>,
    tombstone: Option<CompiledPath>,
    jsonl: Option<JsonlTarget>,
    /// Source ids seen by a `--full` listing (hashed), for deletes.
    seen: HashSet<u64>,
    /// Records waiting for a reference, by source id.
    waiting: HashSet<String>,
    /// Deletes found while reading (tombstones), applied when the listing completed.
    tombstoned: Vec<(String, Value)>,
    /// In-doubt creates left in the outbox for the next run.
    unresolved: u64,
    /// When this run started: writes of an earlier run were all sent before it.
    started: Instant,
    /// The records were handed over to send again (`dead-letters retry`).
    retrying: bool,
    /// Source ids whose write is still pending in the outbox after recovery.
    pending: HashSet<String>,
    /// Dead letters by source id: the record as refused, and whether the write is in
    /// doubt. A record unchanged since it was refused is not sent again; one whose
    /// create is in doubt is not sent again at all until a person retries or discards it.
    refused: HashMap<String, (Value, bool)>,
}

impl<'a> StreamRun<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        config: &'a OneWayStreamConfig,
        store: Arc<dyn Store>,
        vars: Vars,
        source: Source,
        target: Target,
        mapper: Mapper,
        options: RunOptions,
        now: String,
        progress: StreamProgress,
    ) -> Result<StreamRun<'a>, SyncError> {
        let path = |p: &crate::config::JsonPath| {
            CompiledPath::compile(p.as_str()).map_err(SyncError::Setup)
        };
        Ok(StreamRun {
            name: name.to_string(),
            id_path: path(&config.source.id)?,
            updated_at: config.source.updated_at.as_ref().map(path).transpose()?,
            tombstone: config.source.tombstone.as_ref().map(path).transpose()?,
            config,
            store,
            vars,
            source,
            target,
            mapper,
            options,
            now,
            progress,
            counts: StreamCounts {
                stream: name.to_string(),
                ..StreamCounts::default()
            },
            plan: StreamPlan {
                stream: name.to_string(),
                ..StreamPlan::default()
            },
            jsonl: None,
            seen: HashSet::new(),
            waiting: HashSet::new(),
            tombstoned: Vec::new(),
            unresolved: 0,
            started: Instant::now(),
            retrying: false,
            pending: HashSet::new(),
            refused: HashMap::new(),
        })
    }

    /// Runs the stream; the counts say what happened, the error why it stopped early.
    pub async fn run(self) -> (StreamCounts, Option<SyncError>) {
        let (counts, _, error) = self.run_with_plan(None).await;
        (counts, error)
    }

    /// Runs the stream over its source — or, given `records`, over those records only
    /// (dead letters sent again) — also returning what a dry run planned.
    pub async fn run_with_plan(
        mut self,
        records: Option<Vec<Value>>,
    ) -> (StreamCounts, StreamPlan, Option<SyncError>) {
        let started = Instant::now();
        let result = self.steps(records).await;
        self.counts.duration_ms = started.elapsed().as_millis() as u64;
        if let Err(error) = &result {
            self.counts.error = Some(error.to_string());
            self.plan.error = Some(error.to_string());
        }
        (self.counts, self.plan, result.err())
    }

    fn dry(&self) -> bool {
        self.options.dry_run
    }

    async fn steps(&mut self, records: Option<Vec<Value>>) -> Result<(), SyncError> {
        if let Target::Jsonl { path, index_dir } = &self.target {
            // A dry run reads the index without cutting anything.
            let cut = !self.dry();
            self.jsonl = Some(JsonlTarget::open(
                path,
                index_dir,
                &self.name,
                self.store.as_ref(),
                cut,
            )?);
        }
        self.recover().await?;
        self.refused = self
            .store
            .dead_letters(Some(&self.name))?
            .into_iter()
            .map(|letter| (letter.source_id, (letter.record, letter.in_doubt)))
            .collect();
        match records {
            Some(records) => {
                self.retrying = true;
                self.process(records, false).await?
            }
            None => {
                self.retry_waiting().await?;
                if self.read_source().await? {
                    self.apply_deletes().await?;
                }
            }
        }
        SyncError::unless_in_doubt(&self.name, self.unresolved)
    }

    /// Resolves the outbox items an earlier run left behind, before anything new.
    async fn recover(&mut self) -> Result<(), SyncError> {
        let pending = self.store.pending_intents(&self.name)?;
        if pending.is_empty() {
            return Ok(());
        }
        if self.dry() {
            self.plan.pending = pending.len() as u64;
            return Ok(());
        }
        tracing::info!(stream = %self.name, pending = pending.len(), "resolving writes left by an earlier run");
        self.counts.recovered += pending.len() as u64;
        self.execute(pending, true).await?;
        // What recovery could not settle stays pending: not decided on again this run.
        self.pending = self
            .store
            .pending_intents(&self.name)?
            .into_iter()
            .map(|intent| intent.source_id)
            .collect();
        Ok(())
    }

    async fn retry_waiting(&mut self) -> Result<(), SyncError> {
        let waiting = self.store.deferred(&self.name)?;
        if waiting.is_empty() {
            return Ok(());
        }
        self.waiting = waiting.iter().map(|(id, _)| id.clone()).collect();
        let records = waiting.into_iter().map(|(_, record)| record).collect();
        self.process(records, false).await
    }

    fn count(&mut self, done: &Completion, op: Option<Operation>) {
        count(&mut self.counts, done, op);
    }
}

/// Counts a completion in the stream's totals.
pub(in crate::sync) fn count(counts: &mut StreamCounts, done: &Completion, op: Option<Operation>) {
    match (&done.outcome, op) {
        (Outcome::DeadLettered(_), _) => counts.dead_lettered += 1,
        (Outcome::Unmapped, _) | (_, Some(Operation::Delete | Operation::SoftDelete)) => {
            counts.deleted += 1
        }
        (Outcome::Synced { .. } | Outcome::Paired { .. }, Some(Operation::Create)) => {
            counts.created += 1
        }
        (Outcome::Synced { .. } | Outcome::Paired { .. }, Some(Operation::Update)) => {
            counts.updated += 1
        }
        (Outcome::Synced { .. } | Outcome::Paired { .. }, None) => {}
    }
}

/// The base a found target record holds: its values of the mapped fields.
fn base_of(record: &Value, fields: &Value) -> Base {
    let names = fields
        .as_object()
        .map(|f| f.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let values: Map<String, Value> = names
        .into_iter()
        .map(|name| {
            let value = record.get(&name).cloned().unwrap_or(Value::Null);
            (name, value)
        })
        .collect();
    let values = Value::Object(values);
    Base {
        hash: hash(&values),
        fields: values,
        deleted: false,
    }
}

fn completion(
    stream: &str,
    source_id: &str,
    intent_key: Option<String>,
    outcome: Outcome,
) -> Completion {
    Completion::new(stream, source_id, intent_key, outcome)
}

fn hashed(id: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}
