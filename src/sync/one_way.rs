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

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::{Map, Value};

use super::decide::{dead_letter, exchange, intent_key, Decision};
use super::jsonl::JsonlFile;
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

/// Completions committed together (one transaction, one flush).
const COMMIT_EVERY: usize = 128;
/// Rounds of "look up, then create" for an in-doubt create before giving up on it.
const IN_DOUBT_ROUNDS: u32 = 3;

/// Where a stream's records go.
#[derive(Debug)]
pub enum Target {
    Http(Box<HttpTarget>),
    Jsonl(std::path::PathBuf),
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
    jsonl: Option<JsonlFile>,
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
        if let (Target::Jsonl(path), false) = (&self.target, self.dry()) {
            self.jsonl = Some(JsonlFile::open(path, &self.name, self.store.as_ref())?);
        }
        self.recover().await?;
        match records {
            Some(records) => self.process(records, false).await?,
            None => {
                self.retry_waiting().await?;
                if self.read_source().await? {
                    self.apply_deletes().await?;
                }
            }
        }
        if self.unresolved > 0 {
            return Err(SyncError::InDoubt {
                stream: self.name.clone(),
                count: self.unresolved,
            });
        }
        Ok(())
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
        self.execute(pending, true).await
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

    /// Reads the source from the watermark; true when the listing completed.
    async fn read_source(&mut self) -> Result<bool, SyncError> {
        let stored = self.store.watermark(&self.name)?;
        let incremental = self.config.source.incremental.clone().unwrap_or_default();
        let (from, resume, mut max_updated_at) = if self.options.full {
            if !self.dry() {
                self.store.set_checkpoint(&self.name, None)?;
            }
            (String::new(), None, None)
        } else {
            let from = stored
                .as_ref()
                .map(|w| watermark::with_overlap(&w.value, incremental.overlap.get()))
                .unwrap_or_default();
            match self.store.checkpoint(&self.name)? {
                Some(checkpoint) => {
                    tracing::info!(stream = %self.name, pages = checkpoint.pages, "resuming an interrupted listing");
                    let resume = crate::http::Resume {
                        target: checkpoint.target,
                        query: checkpoint.query,
                        pages: checkpoint.pages,
                        records: checkpoint.records,
                    };
                    (from, Some(resume), checkpoint.max_updated_at)
                }
                None => (from, None, None),
            }
        };
        let ignore_before = match (incremental.filter, &stored) {
            (FilterSemantics::Ignored, Some(w)) if !self.options.full => {
                Some(watermark::with_overlap(&w.value, incremental.overlap.get()))
            }
            _ => None,
        };
        let mut batches = self.source.batches(&self.vars, &from, &self.now, resume)?;
        while let Some(batch) = batches.next().await {
            let Batch {
                records,
                resume,
                broken,
                total,
            } = match batch {
                Ok(batch) => batch,
                Err(SyncError::Http(crate::http::HttpError::RetryAfterTooLong {
                    system,
                    wait,
                    max_wait,
                })) => {
                    self.counts.error = Some(format!(
                        "paused: {system} asked to wait {}s (more than max_wait {}s); the next run resumes here",
                        wait.as_secs(),
                        max_wait.as_secs()
                    ));
                    return Ok(false);
                }
                Err(error) => return Err(error),
            };
            if let Some(total) = total {
                self.progress.total(total);
            }
            for line in broken {
                let id = format!("line-{}", line.line);
                let reason = format!("line {} of the source file is {}", line.line, line.reason);
                self.counts.dead_lettered += 1;
                if self.dry() {
                    self.plan.dead_letters.push((id, reason));
                    continue;
                }
                let letter = dead_letter(&self.name, &id, reason, None, Value::String(line.text));
                self.store.complete(&[completion(
                    &self.name,
                    &id,
                    None,
                    Outcome::DeadLettered(letter),
                )])?;
            }
            for record in &records {
                if let Some(at) = self
                    .updated_at
                    .as_ref()
                    .and_then(|p| p.first(record))
                    .and_then(watermark::text)
                {
                    max_updated_at = watermark::later(max_updated_at, &at);
                }
            }
            let records = match &ignore_before {
                Some(before) => self.drop_older(records, before),
                None => records,
            };
            self.process(records, true).await?;
            if !self.options.full && !self.dry() {
                let checkpoint = resume.map(|r| Checkpoint {
                    target: r.target,
                    query: r.query,
                    pages: r.pages,
                    records: r.records,
                    max_updated_at: max_updated_at.clone(),
                });
                self.store.set_checkpoint(&self.name, checkpoint.as_ref())?;
            }
        }
        if self.dry() {
            return Ok(true);
        }
        self.store.set_checkpoint(&self.name, None)?;
        if let Some(max) = max_updated_at {
            let newer = stored
                .as_ref()
                .is_none_or(|w| watermark::compare(&max, &w.value).is_gt());
            if newer {
                self.store
                    .set_watermark(&self.name, &Watermark { value: max })?;
            }
        }
        Ok(true)
    }

    /// For APIs that ignore the incremental filter: drops records from before it.
    fn drop_older(&mut self, records: Vec<Value>, before: &str) -> Vec<Value> {
        records
            .into_iter()
            .filter(|record| {
                let at = self
                    .updated_at
                    .as_ref()
                    .and_then(|p| p.first(record))
                    .and_then(watermark::text);
                let keep = at.is_none_or(|at| watermark::compare(&at, before).is_ge());
                if !keep {
                    self.counts.read += 1;
                    self.counts.unchanged += 1;
                }
                keep
            })
            .collect()
    }

    /// Decides, records and sends the writes of a batch of source records.
    async fn process(&mut self, records: Vec<Value>, listed: bool) -> Result<(), SyncError> {
        let mut decisions = Vec::with_capacity(records.len());
        let mut first_contacts = Vec::new();
        for record in records {
            self.counts.read += 1;
            self.progress.read(1);
            match self.decide(record, listed)? {
                Decision::Match {
                    source_id,
                    mapped,
                    record,
                } => first_contacts.push((source_id, mapped, record)),
                decision => decisions.push(decision),
            }
        }
        decisions.extend(self.first_contacts(first_contacts).await?);
        if self.dry() {
            for decision in decisions {
                let base = match &decision {
                    Decision::Write(intent) => self.store.base(&self.name, &intent.source_id)?,
                    _ => None,
                };
                self.plan.note(decision, base.as_ref());
            }
            return Ok(());
        }
        let mut intents = Vec::new();
        let mut settled = Vec::new();
        let mut lines = Vec::new();
        for decision in decisions {
            match decision {
                Decision::Unchanged => self.counts.unchanged += 1,
                Decision::Skip | Decision::Match { .. } => {}
                Decision::Wait { source_id, record } => {
                    self.store.defer(&self.name, &source_id, &record)?;
                    self.counts.deferred += 1;
                }
                Decision::Settle(done) => {
                    self.count(&done, None);
                    settled.push(done);
                }
                Decision::Write(intent) => intents.push(intent),
                Decision::Line(source_id, mapped) => lines.push((source_id, mapped)),
            }
        }
        self.store.complete(&settled)?;
        if !lines.is_empty() {
            self.write_lines(lines)?;
        }
        self.store.record_intents(&intents)?;
        self.execute(intents, false).await
    }

    /// What to do with one source record, as far as the store can tell; a record the
    /// target never saw from us comes back as [`Decision::Match`].
    fn decide(&mut self, record: Value, listed: bool) -> Result<Decision, SyncError> {
        let Some(source_id) = self.id_path.first(&record).and_then(super::target::id_text) else {
            let reason = format!("the record has no id at {}", self.id_path.as_str());
            let id = format!("no-id-{}", &hash(&record)[..12]);
            return Ok(Decision::Settle(completion(
                &self.name,
                &id,
                None,
                Outcome::DeadLettered(dead_letter(&self.name, &id, reason, None, record)),
            )));
        };
        if self.options.full && listed {
            self.seen.insert(hashed(&source_id));
        }
        if self.waiting.remove(&source_id) && !self.dry() {
            self.store.undefer(&self.name, &source_id)?;
        }
        if self.tombstone.as_ref().and_then(|p| p.first(&record)) == Some(&Value::Bool(true)) {
            self.tombstoned.push((source_id, record));
            return Ok(Decision::Skip);
        }
        let mapped = match self.mapper.map(&record, &self.now) {
            Ok(mapped) => mapped,
            Err(MapError::Waiting { stream, id }) => {
                tracing::debug!(stream = %self.name, %source_id, waits_for = %stream, %id, "waiting for a reference");
                return Ok(Decision::Wait { source_id, record });
            }
            Err(MapError::Invalid(reason)) => {
                let letter = dead_letter(&self.name, &source_id, reason, None, record);
                return Ok(Decision::Settle(completion(
                    &self.name,
                    &source_id,
                    None,
                    Outcome::DeadLettered(letter),
                )));
            }
        };
        let base = self.store.base(&self.name, &source_id)?;
        if base
            .as_ref()
            .is_some_and(|b| b.hash == mapped.hash && !b.deleted)
        {
            return Ok(Decision::Unchanged);
        }
        if self.store.intent_for(&self.name, &source_id)?.is_some() {
            // Resolved by recovery before any new write; nothing more this run.
            return Ok(Decision::Skip);
        }
        if matches!(self.target, Target::Jsonl(_)) {
            return Ok(Decision::Line(source_id, mapped));
        }
        let base_hash = base.map(|b| b.hash);
        match self.store.target_id(&self.name, &source_id)? {
            Some(target_id) => Ok(Decision::Write(self.intent(
                Operation::Update,
                &source_id,
                Some(target_id),
                mapped,
                record,
                base_hash.as_deref(),
            )?)),
            None => Ok(Decision::Match {
                source_id,
                mapped,
                record,
            }),
        }
    }

    /// Records the target has never seen from us: each is linked to an existing target
    /// record (`match_on`, looked up concurrently) or created.
    async fn first_contacts(
        &mut self,
        records: Vec<(String, Mapped, Value)>,
    ) -> Result<Vec<Decision>, SyncError> {
        let Target::Http(target) = &self.target else {
            return Ok(records
                .into_iter()
                .map(|(id, mapped, _)| Decision::Line(id, mapped))
                .collect());
        };
        let match_on = target.spec().match_on.clone();
        let found: Vec<Option<Found>> = if !match_on.is_empty() && target.can_find() {
            stream::iter(&records)
                .map(|(_, mapped, _)| {
                    let values = mapped.fields.as_object().cloned().unwrap_or_default();
                    let match_on = &match_on;
                    async move { target.find(match_on, &values, false).await }
                })
                .buffered(target.spec().max_in_flight)
                .try_collect()
                .await?
        } else {
            vec![None; records.len()]
        };
        let mut claimed = HashSet::new();
        let mut decisions = Vec::with_capacity(records.len());
        for ((source_id, mapped, record), found) in records.into_iter().zip(found) {
            let decision = match found {
                Some(found) => {
                    self.link(source_id, mapped, record, found, &match_on, &mut claimed)?
                }
                None => Decision::Write(self.intent(
                    Operation::Create,
                    &source_id,
                    None,
                    mapped,
                    record,
                    None,
                )?),
            };
            decisions.push(decision);
        }
        Ok(decisions)
    }

    /// Links a record to the target record that matched it, unless that one belongs to
    /// another source record already.
    fn link(
        &mut self,
        source_id: String,
        mapped: Mapped,
        record: Value,
        found: Found,
        match_on: &[String],
        claimed: &mut HashSet<String>,
    ) -> Result<Decision, SyncError> {
        let linked_to = self.store.source_id(&self.name, &found.target_id)?;
        if linked_to.as_deref().is_some_and(|other| other != source_id)
            || !claimed.insert(found.target_id.clone())
        {
            let reason = format!(
                "matches target record {} on {}, which is already linked to another source record",
                found.target_id,
                match_on.join(", ")
            );
            let letter = dead_letter(&self.name, &source_id, reason, None, record);
            return Ok(Decision::Settle(completion(
                &self.name,
                &source_id,
                None,
                Outcome::DeadLettered(letter),
            )));
        }
        self.counts.linked += 1;
        let current = base_of(&found.record, &mapped.fields);
        if current.hash == mapped.hash {
            let done = completion(
                &self.name,
                &source_id,
                None,
                Outcome::Synced {
                    target_id: found.target_id,
                    base: current,
                },
            );
            return Ok(Decision::Settle(done));
        }
        let intent = self.intent(
            Operation::Update,
            &source_id,
            Some(found.target_id),
            mapped,
            record,
            Some(&current.hash),
        )?;
        Ok(Decision::Write(intent))
    }

    /// An intended write, with its request path rendered now.
    fn intent(
        &self,
        op: Operation,
        source_id: &str,
        target_id: Option<String>,
        mapped: Mapped,
        record: Value,
        base_hash: Option<&str>,
    ) -> Result<Intent, SyncError> {
        let Target::Http(target) = &self.target else {
            return Err(SyncError::Setup(
                "a JSON-lines target takes no write requests".into(),
            ));
        };
        let mut context = vec![
            ("record", to_value(&record)),
            ("fields", to_value(&mapped.fields)),
            ("source_id", to_value(source_id)),
            ("now", to_value(&self.now)),
        ];
        let target_id = match (op, target_id) {
            (Operation::Create, _) => target.assigned_id(&context).map_err(SyncError::Setup)?,
            (_, id) => id,
        };
        if let Some(id) = &target_id {
            context.push(("target_id", to_value(id)));
        }
        let path = target.render_path(op, &context).map_err(SyncError::Setup)?;
        Ok(Intent {
            key: intent_key(&self.name, source_id, op, &mapped.hash, base_hash),
            stream: self.name.clone(),
            source_id: source_id.to_string(),
            op,
            target_id,
            path,
            fields: mapped.fields,
            hash: mapped.hash,
            record,
            created_at: now_text(),
        })
    }

    /// Sends intents concurrently (up to the target's `max_in_flight`, under its
    /// limiter) and commits their completions in groups. `recovering` marks intents of
    /// an earlier run: a create among them is in doubt until resolved.
    async fn execute(&mut self, intents: Vec<Intent>, recovering: bool) -> Result<(), SyncError> {
        if intents.is_empty() {
            return Ok(());
        }
        let Target::Http(target) = &self.target else {
            return Ok(());
        };
        let (counts, progress, started) = (&mut self.counts, &mut self.progress, self.started);
        let concurrency = target.spec().max_in_flight;
        let store = Arc::clone(&self.store);
        let name = self.name.clone();
        let deletes = self.config.settings.deletes;
        let mut results = stream::iter(intents)
            .map(|intent| {
                write(
                    target,
                    &name,
                    intent,
                    recovering.then_some(started),
                    deletes,
                )
            })
            .buffer_unordered(concurrency);
        let mut batch: Vec<Completion> = Vec::with_capacity(COMMIT_EVERY);
        let mut stop = None;
        let mut unresolved = 0u64;
        while let Some(result) = results.next().await {
            match result {
                Ok((None, _)) => unresolved += 1,
                Ok((Some(done), op)) => {
                    count(counts, &done, Some(op));
                    progress.written(1);
                    batch.push(done);
                    if batch.len() >= COMMIT_EVERY {
                        store.complete(&batch)?;
                        batch.clear();
                    }
                }
                Err(error) => {
                    // Stop sending; what is in flight is dropped and stays in the
                    // outbox for the next run to resolve.
                    stop = Some(error);
                    break;
                }
            }
        }
        drop(results);
        store.complete(&batch)?;
        if let Some(error) = stop {
            return Err(error);
        }
        self.unresolved += unresolved;
        Ok(())
    }

    /// Appends changed records to a JSON-lines target and commits them with the file's
    /// new length, in one transaction.
    fn write_lines(&mut self, lines: Vec<(String, Mapped)>) -> Result<(), SyncError> {
        let Some(file) = self.jsonl.as_mut() else {
            return Ok(());
        };
        let values: Vec<Value> = lines.iter().map(|(_, m)| m.fields.clone()).collect();
        let mark = file.append(&values)?;
        let completions: Vec<Completion> = lines
            .into_iter()
            .map(|(source_id, mapped)| {
                // The file holds the values; the base keeps their hash.
                let base = Base {
                    hash: mapped.hash,
                    fields: Value::Null,
                    deleted: false,
                };
                completion(
                    &self.name,
                    &source_id,
                    None,
                    Outcome::Synced {
                        target_id: source_id.clone(),
                        base,
                    },
                )
            })
            .collect();
        for done in &completions {
            self.count(done, Some(Operation::Create));
        }
        self.progress.written(completions.len() as u64);
        self.store.complete_with_marks(&completions, &[mark])?;
        Ok(())
    }

    /// Deletes what the source no longer has: tombstoned records, and after a complete
    /// `--full` listing, mapped records it did not list — unless that is more than
    /// `max_delete_fraction` of the stream and `--allow-mass-delete` was not given.
    async fn apply_deletes(&mut self) -> Result<(), SyncError> {
        let mode = self.config.settings.deletes;
        if mode == DeleteMode::Ignore {
            return Ok(());
        }
        let mut gone: Vec<(String, String, Value)> = Vec::new();
        for (source_id, record) in std::mem::take(&mut self.tombstoned) {
            if let Some(target_id) = self.store.target_id(&self.name, &source_id)? {
                gone.push((source_id, target_id, record));
            }
        }
        if self.options.full {
            for (source_id, target_id) in self.store.mappings(&self.name)? {
                if !self.seen.contains(&hashed(&source_id)) {
                    gone.push((source_id, target_id, Value::Null));
                }
            }
        }
        let mut deletes = Vec::new();
        for (source_id, target_id, record) in gone {
            let base = self.store.base(&self.name, &source_id)?;
            if base.as_ref().is_some_and(|b| b.deleted) {
                continue;
            }
            deletes.push((source_id, target_id, record, base));
        }
        if deletes.is_empty() {
            return Ok(());
        }
        let mapped = self.store.mapped_count(&self.name)?.max(1);
        let share = deletes.len() as f64 / mapped as f64;
        let limit = self.config.settings.max_delete_fraction;
        let mass_delete = share > limit.fraction() && !self.options.allow_mass_delete;
        if mass_delete && !self.dry() {
            return Err(SyncError::MassDelete {
                stream: self.name.clone(),
                deletes: deletes.len() as u64,
                mapped,
                limit: limit.to_string(),
            });
        }
        let op = if mode == DeleteMode::Hard {
            Operation::Delete
        } else {
            Operation::SoftDelete
        };
        let mut intents = Vec::new();
        for (source_id, target_id, record, base) in deletes {
            let fields = match op {
                Operation::SoftDelete => base
                    .as_ref()
                    .map(|b| b.fields.clone())
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            };
            let mapped = Mapped {
                hash: hash(&Value::String(format!(
                    "deleted:{}",
                    base.as_ref().map_or("", |b| b.hash.as_str())
                ))),
                fields,
            };
            let intent = self.intent(
                op,
                &source_id,
                Some(target_id),
                mapped,
                record,
                base.as_ref().map(|b| b.hash.as_str()),
            )?;
            if self.dry() {
                self.plan.write(&intent, base.as_ref());
            }
            intents.push(intent);
        }
        if self.dry() {
            if mass_delete {
                self.plan.error = Some(format!(
                    "apply would stop here: {} deletes of {mapped} records is more than max_delete_fraction {limit} (--allow-mass-delete)",
                    intents.len()
                ));
            }
            return Ok(());
        }
        self.store.record_intents(&intents)?;
        self.execute(intents, false).await
    }

    fn count(&mut self, done: &Completion, op: Option<Operation>) {
        count(&mut self.counts, done, op);
    }
}

/// Counts a completion in the stream's totals.
fn count(counts: &mut StreamCounts, done: &Completion, op: Option<Operation>) {
    match (&done.outcome, op) {
        (Outcome::DeadLettered(_), _) => counts.dead_lettered += 1,
        (Outcome::Unmapped, _) | (_, Some(Operation::Delete | Operation::SoftDelete)) => {
            counts.deleted += 1
        }
        (Outcome::Synced { .. }, Some(Operation::Create)) => counts.created += 1,
        (Outcome::Synced { .. }, Some(Operation::Update)) => counts.updated += 1,
        (Outcome::Synced { .. }, None) => {}
    }
}

/// Sends one intent and turns the answer into its completion. Errors stop the stream
/// (the intent stays in the outbox): reconnect, retries exhausted, store failures.
/// `recovering_since` is the start of this run when the intent was left by an
/// earlier one: whatever that run sent, it sent before this moment.
async fn write(
    target: &HttpTarget,
    stream: &str,
    intent: Intent,
    recovering_since: Option<Instant>,
    deletes: DeleteMode,
) -> Result<(Option<Completion>, Operation), SyncError> {
    let op = intent.op;
    let done = if let (Some(since), Operation::Create, false) =
        (recovering_since, op, target.create_is_idempotent())
    {
        // It may have arrived before the crash: find out before sending again.
        let reason = "the run that sent it stopped before recording the answer".to_string();
        resolve_in_doubt(target, stream, intent, reason, since).await?
    } else {
        let written = target.send(&intent).await?;
        settle(target, stream, intent, written, deletes).await?
    };
    Ok((done, op))
}

/// What a write's answer means for its record; `None` leaves the intent in the outbox
/// (an in-doubt create that can still be found later).
async fn settle(
    target: &HttpTarget,
    stream: &str,
    intent: Intent,
    written: Written,
    deletes: DeleteMode,
) -> Result<Option<Completion>, SyncError> {
    let key = Some(intent.key.clone());
    let outcome = match written {
        Written::Done { target_id } => match (intent.op, target_id) {
            (Operation::Delete, _) => Outcome::Unmapped,
            (Operation::SoftDelete, Some(target_id)) => {
                let base = Base {
                    hash: intent.hash.clone(),
                    fields: intent.fields.clone(),
                    deleted: true,
                };
                Outcome::Synced { target_id, base }
            }
            (_, Some(target_id)) => Outcome::Synced {
                target_id,
                base: Base {
                    hash: intent.hash.clone(),
                    fields: intent.fields.clone(),
                    deleted: false,
                },
            },
            (_, None) => Outcome::DeadLettered(dead_letter(
                stream,
                &intent.source_id,
                "the write succeeded but no target id is known".into(),
                None,
                intent.record.clone(),
            )),
        },
        Written::Gone => match intent.op {
            Operation::Delete | Operation::SoftDelete => Outcome::Unmapped,
            _ => {
                let reason = format!(
                    "target record {} no longer exists; with `deletes: {}` runner does not recreate it: `runner state reset` or remove the mapping to create it again",
                    intent.target_id.as_deref().unwrap_or("?"),
                    delete_mode_name(deletes)
                );
                Outcome::DeadLettered(dead_letter(
                    stream,
                    &intent.source_id,
                    reason,
                    None,
                    intent.record.clone(),
                ))
            }
        },
        Written::Refused { status, body, url } => {
            let request = target.request(&intent)?;
            let letter = dead_letter(
                stream,
                &intent.source_id,
                format!(
                    "the target refused the {} with {status}",
                    intent.op.as_str()
                ),
                Some(exchange(&request, &url, Some(status), Some(body))),
                intent.record.clone(),
            );
            Outcome::DeadLettered(letter)
        }
        Written::InDoubt { reason } => {
            return resolve_in_doubt(target, stream, intent, reason, Instant::now()).await
        }
    };
    Ok(Some(completion(stream, &intent.source_id, key, outcome)))
}

/// An in-doubt create: never sent again blindly. Resent as is when the target
/// honours its idempotency key (or the runner chose the id); else looked up by
/// `match_on` / `external_id` — found: linked; verifiably absent: created; no way
/// to tell: parked as a dead letter "in doubt — check the target". When lookups keep
/// failing to settle it, the intent stays in the outbox for the next run.
///
/// `sent_by` is when the create was sent at the latest: lookups wait until the
/// target's settle time has passed since then.
async fn resolve_in_doubt(
    target: &HttpTarget,
    stream: &str,
    intent: Intent,
    mut reason: String,
    sent_by: Instant,
) -> Result<Option<Completion>, SyncError> {
    let mut sent_by = sent_by;
    let key = Some(intent.key.clone());
    for _ in 0..IN_DOUBT_ROUNDS {
        if target.create_is_idempotent() {
            match target.send(&intent).await? {
                Written::InDoubt { reason: again } => reason = again,
                other => {
                    return Box::pin(settle(target, stream, intent, other, DeleteMode::Ignore))
                        .await
                }
            }
            continue;
        }
        if !target.can_find() {
            break;
        }
        tokio::time::sleep_until((sent_by + target.settle_wait()).into()).await;
        let values = intent.fields.as_object().cloned().unwrap_or_default();
        match target
            .find(&target.identity_fields(), &values, true)
            .await?
        {
            Some(found) => {
                tracing::info!(stream, source_id = %intent.source_id, target_id = %found.target_id, "in-doubt create found on the target");
                let base = base_of(&found.record, &intent.fields);
                let outcome = Outcome::Synced {
                    target_id: found.target_id,
                    base,
                };
                return Ok(Some(completion(stream, &intent.source_id, key, outcome)));
            }
            None => match target.send(&intent).await? {
                Written::InDoubt { reason: again } => {
                    reason = again;
                    sent_by = Instant::now();
                }
                other => {
                    return Box::pin(settle(target, stream, intent, other, DeleteMode::Ignore))
                        .await
                }
            },
        }
    }
    if target.can_find() || target.create_is_idempotent() {
        tracing::warn!(stream, source_id = %intent.source_id, %reason, "create still in doubt; the next run resolves it");
        return Ok(None);
    }
    let letter = Box::new(crate::store::DeadLetter {
        in_doubt: true,
        ..*dead_letter(
            stream,
            &intent.source_id,
            format!("in doubt — check the target: the create may or may not have been applied ({reason})"),
            target.request(&intent).ok().map(|r| exchange(&r, &intent.path, None, None)),
            intent.record.clone(),
        )
    });
    Ok(Some(completion(
        stream,
        &intent.source_id,
        key,
        Outcome::DeadLettered(letter),
    )))
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
    Completion {
        stream: stream.to_string(),
        source_id: source_id.to_string(),
        intent_key,
        outcome,
    }
}

fn hashed(id: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

fn delete_mode_name(mode: DeleteMode) -> &'static str {
    match mode {
        DeleteMode::Ignore => "ignore",
        DeleteMode::Soft => "soft",
        DeleteMode::Hard => "hard",
    }
}
