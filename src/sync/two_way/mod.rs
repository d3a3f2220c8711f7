//! One run of a two-way stream: both sides are read and written, and every shared field
//! has a rule (an owner, or last-write-wins) that decides who wins.
//!
//! 1. resolve what an earlier run left in the outbox, exactly as one-way does;
//! 2. read side b's changes since its watermark into memory;
//! 3. read side a's changes batch by batch; each record is paired with its b record
//!    (the mapping table, or `match_on` on first contact) and the pair is merged field
//!    by field against its base ([`merge`]); the writes to either side go through the
//!    outbox, with the conflicts that decided them;
//! 4. merge the b changes no a change claimed (a read as its base);
//! 5. when both listings completed: deletes per side, then each side's watermark moves.
//!
//! A pair is stored under its a id: the target id is its b id, and the base holds the
//! values each side had when the runner last synced it ({"a": {...}, "b": {...}}).
//! That per-side base is what makes the merge three-way and what recognises the
//! runner's own writes when they come back on the next read (no echo): the value read
//! is the value the runner left there.

mod deletes;
pub mod merge;
mod pairs;
mod side;
mod write;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use indexmap::IndexMap;
use serde_json::{json, Value};

use self::merge::{FieldRule, SideValues};

use super::decide::dead_letter;
use super::mapper::hash;
use super::plan::StreamPlan;
use super::source::Batch;
use super::watermark::{self, Latest};
use super::{RunOptions, StreamProgress, SyncError};
use crate::config::stream::{FilterSemantics, Side, TwoWayStreamConfig};
use crate::http::HttpError;
use crate::store::{
    side_record_id, side_stream, Completion, DeadLetter, Outcome, Store, StreamCounts, Watermark,
};
use crate::vars::Vars;

pub use side::{side_config, SideSpec};

/// Pairs decided (and their writes sent) together.
const PAIRS_PER_GROUP: usize = 256;

/// A record as read on one side.
#[derive(Debug, Clone)]
pub struct Read {
    pub id: String,
    pub record: Value,
    pub values: SideValues,
}

/// Everything one two-way stream run needs.
pub struct TwoWayRun<'a> {
    name: String,
    config: &'a TwoWayStreamConfig,
    store: Arc<dyn Store>,
    vars: Vars,
    a: SideSpec,
    b: SideSpec,
    rules: Vec<FieldRule>,
    clock_skew: Duration,
    options: RunOptions,
    now: String,
    /// The run this is part of, for the conflict log.
    run_id: u64,
    progress: StreamProgress,
    counts: StreamCounts,
    plan: StreamPlan,
    /// Side record ids (`a:<id>`, `b:<id>`) with a write still pending in the outbox.
    pending: HashSet<String>,
    /// Ids a `--full` listing saw, per side, for deletes.
    seen_a: HashSet<String>,
    seen_b: HashSet<String>,
    /// Records read as deleted (tombstones), handled once both listings completed.
    tombstoned: Vec<(Side, String)>,
    /// Ids linked to a partner in this run, so one record is not linked twice.
    claimed: HashSet<String>,
    /// When this run started: writes of an earlier run were all sent before it.
    started: Instant,
    /// In-doubt creates left in the outbox for the next run.
    unresolved: u64,
}

/// b's changes of this run, by id, with an index of their `match_on` values.
#[derive(Debug, Default)]
struct Changes {
    by_id: IndexMap<String, Read>,
    by_match: HashMap<String, String>,
}

impl Changes {
    fn take(&mut self, id: &str) -> Option<Read> {
        self.by_id.shift_remove(id)
    }

    fn take_match(&mut self, key: &str) -> Option<Read> {
        let id = self.by_match.remove(key)?;
        self.take(&id)
    }
}

impl<'a> TwoWayRun<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        config: &'a TwoWayStreamConfig,
        store: Arc<dyn Store>,
        vars: Vars,
        a: SideSpec,
        b: SideSpec,
        options: RunOptions,
        now: String,
        run_id: u64,
        progress: StreamProgress,
    ) -> TwoWayRun<'a> {
        let rules = config
            .fields
            .iter()
            .map(|(name, field)| FieldRule {
                name: name.clone(),
                owner: field.owner,
                conflict: field.conflict,
            })
            .collect();
        TwoWayRun {
            name: name.to_string(),
            config,
            store,
            vars,
            a,
            b,
            rules,
            clock_skew: config.clock_skew.map_or(Duration::ZERO, |s| s.get()),
            options,
            now,
            run_id,
            progress,
            counts: StreamCounts {
                stream: name.to_string(),
                ..StreamCounts::default()
            },
            plan: StreamPlan {
                stream: name.to_string(),
                ..StreamPlan::default()
            },
            pending: HashSet::new(),
            seen_a: HashSet::new(),
            seen_b: HashSet::new(),
            tombstoned: Vec::new(),
            claimed: HashSet::new(),
            started: Instant::now(),
            unresolved: 0,
        }
    }

    /// Runs the stream over both sides — or, given `letters`, over the records those
    /// dead letters hold — returning the counts, what a dry run planned, and why it
    /// stopped early.
    pub async fn run(
        mut self,
        letters: Option<Vec<DeadLetter>>,
    ) -> (StreamCounts, StreamPlan, Option<SyncError>) {
        let started = Instant::now();
        let result = self.steps(letters).await;
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

    fn side(&self, side: Side) -> &SideSpec {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    async fn steps(&mut self, letters: Option<Vec<DeadLetter>>) -> Result<(), SyncError> {
        self.recover().await?;
        match letters {
            Some(letters) => self.retry(letters).await?,
            None => self.sync().await?,
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
        } else {
            tracing::info!(stream = %self.name, pending = pending.len(), "resolving writes left by an earlier run");
            self.counts.recovered += pending.len() as u64;
            self.execute(pending, true).await?;
        }
        // What is still pending is not decided on again this run: its pair waits.
        for intent in self.store.pending_intents(&self.name)? {
            if let Some(write) = &intent.two_way {
                for (side, id) in [(Side::A, &write.a_id), (Side::B, &write.b_id)] {
                    if let Some(id) = id {
                        self.pending.insert(side_record_id(side, id));
                    }
                }
            }
        }
        Ok(())
    }

    /// The normal run: b's changes, a's changes merged batch by batch, the rest of b,
    /// then deletes and watermarks once both listings are complete.
    async fn sync(&mut self) -> Result<(), SyncError> {
        let Some((records, latest_b)) = self.read_all(Side::B).await? else {
            // b could not be read to the end: merging a now could overwrite b changes
            // this run did not see. Nothing is decided; the next run starts again.
            return Ok(());
        };
        let mut changes = self.changes(records)?;
        let Some(latest_a) = self.merge_a(&mut changes).await? else {
            return Ok(());
        };
        let rest: Vec<Read> = std::mem::take(&mut changes.by_id).into_values().collect();
        for group in rest.chunks(PAIRS_PER_GROUP) {
            self.merge_b(group.to_vec()).await?;
        }
        self.apply_deletes().await?;
        if !self.dry() {
            for (side, latest) in [(Side::A, latest_a), (Side::B, latest_b)] {
                self.move_watermark(side, latest)?;
            }
        }
        Ok(())
    }

    /// Sends dead letters again: the records they hold go through the merge as if
    /// read now (watermarks do not move, nothing is deleted).
    async fn retry(&mut self, letters: Vec<DeadLetter>) -> Result<(), SyncError> {
        let (mut records_a, mut records_b) = (Vec::new(), Vec::new());
        for letter in letters {
            if let Some(record) = letter.record.get("a").filter(|r| r.is_object()) {
                records_a.push(record.clone());
            }
            if let Some(record) = letter.record.get("b").filter(|r| r.is_object()) {
                records_b.push(record.clone());
            }
        }
        let mut changes = self.changes(records_b)?;
        let reads = self.reads(Side::A, records_a)?;
        self.merge_a_batch(reads, &mut changes).await?;
        let rest: Vec<Read> = std::mem::take(&mut changes.by_id).into_values().collect();
        self.merge_b(rest).await
    }

    /// Reads one side's changes since its watermark in full; `None` if the listing
    /// paused (a Retry-After longer than the system's `max_wait`).
    async fn read_all(&mut self, side: Side) -> Result<Option<(Vec<Value>, Latest)>, SyncError> {
        let (mut batches, ignore_before) = self.listing(side)?;
        let mut latest = Latest::from(None);
        let mut all = Vec::new();
        while let Some(batch) = batches.next().await {
            let Some(records) =
                self.received(side, batch, &mut latest, ignore_before.as_deref())?
            else {
                return Ok(None);
            };
            all.extend(records);
        }
        Ok(Some((all, latest)))
    }

    /// Reads side a's changes batch by batch, merging each with b's; the highest
    /// `updated_at` read, or `None` if the listing paused.
    async fn merge_a(&mut self, changes: &mut Changes) -> Result<Option<Latest>, SyncError> {
        let (mut batches, ignore_before) = self.listing(Side::A)?;
        let mut latest = Latest::from(None);
        while let Some(batch) = batches.next().await {
            let Some(records) =
                self.received(Side::A, batch, &mut latest, ignore_before.as_deref())?
            else {
                return Ok(None);
            };
            let reads = self.reads(Side::A, records)?;
            self.merge_a_batch(reads, changes).await?;
        }
        Ok(Some(latest))
    }

    /// Opens a side's listing from its watermark (less the overlap), or from the
    /// start with `--full`; also says before which `updated_at` records are dropped,
    /// for APIs that ignore the filter.
    #[allow(clippy::type_complexity)]
    fn listing(
        &self,
        side: Side,
    ) -> Result<
        (
            futures_util::stream::BoxStream<'static, Result<Batch, SyncError>>,
            Option<String>,
        ),
        SyncError,
    > {
        let spec = self.side(side);
        let stored = self.store.watermark(&side_stream(&self.name, side))?;
        let overlap = spec.incremental.overlap.get();
        let from = match (&stored, self.options.full) {
            (Some(w), false) => watermark::with_overlap(&w.value, overlap),
            _ => String::new(),
        };
        let ignore_before = (spec.incremental.filter == FilterSemantics::Ignored
            && !from.is_empty())
        .then(|| from.clone());
        let batches = spec.source.batches(&self.vars, &from, &self.now, None)?;
        Ok((super::source::read_ahead(batches, 2), ignore_before))
    }

    /// Takes a batch of a listing: counts it, offers its times to the watermark, drops
    /// what an ignored filter let through. `None`: the listing paused.
    fn received(
        &mut self,
        side: Side,
        batch: Result<Batch, SyncError>,
        latest: &mut Latest,
        ignore_before: Option<&str>,
    ) -> Result<Option<Vec<Value>>, SyncError> {
        let batch = match batch {
            Ok(batch) => batch,
            Err(SyncError::Http(HttpError::RetryAfterTooLong {
                system,
                wait,
                max_wait,
            })) => {
                self.counts.error = Some(format!(
                    "paused: {system} asked to wait {}s (more than max_wait {}s); nothing was merged after that, the next run reads again",
                    wait.as_secs(),
                    max_wait.as_secs()
                ));
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let spec = self.side(side);
        let mut records = Vec::with_capacity(batch.records.len());
        for record in batch.records {
            let at = spec.updated_at(&record);
            if let Some(at) = &at {
                latest.offer(at);
            }
            let older = match (ignore_before, &at) {
                (Some(before), Some(at)) => watermark::compare(at, before).is_lt(),
                _ => false,
            };
            if !older {
                records.push(record);
            }
        }
        self.counts.read += records.len() as u64;
        self.progress.read(records.len() as u64);
        Ok(Some(records))
    }

    /// Records as read on a side: dead letters for those without an id, tombstones
    /// set aside for the deletes, `--full` listings remembered.
    fn reads(&mut self, side: Side, records: Vec<Value>) -> Result<Vec<Read>, SyncError> {
        let mut reads = Vec::with_capacity(records.len());
        let mut refused = Vec::new();
        for record in records {
            let spec = self.side(side);
            let Some(id) = spec.id(&record) else {
                let reason = format!(
                    "the side {} record has no id at {}",
                    side.as_str(),
                    spec.id_path()
                );
                let id = side_record_id(side, &format!("no-id-{}", &hash(&record)[..12]));
                self.counts.dead_lettered += 1;
                let letter = dead_letter(&self.name, &id, reason, None, labelled(side, &record));
                refused.push(Completion::new(
                    &self.name,
                    &id,
                    None,
                    Outcome::DeadLettered(letter),
                ));
                continue;
            };
            let tombstone = spec.is_tombstone(&record);
            let values = spec.values(&record);
            if self.options.full {
                match side {
                    Side::A => self.seen_a.insert(id.clone()),
                    Side::B => self.seen_b.insert(id.clone()),
                };
            }
            if tombstone {
                self.tombstoned.push((side, id));
                continue;
            }
            reads.push(Read { id, record, values });
        }
        if self.dry() {
            for done in refused {
                if let Outcome::DeadLettered(letter) = done.outcome {
                    self.plan.dead_letters.push((done.source_id, letter.reason));
                }
            }
        } else {
            self.store.complete(&refused)?;
        }
        Ok(reads)
    }

    /// b's records of this run, indexed for pairing.
    fn changes(&mut self, records: Vec<Value>) -> Result<Changes, SyncError> {
        let mut changes = Changes::default();
        let names: Vec<String> = self.config.match_on.clone();
        for read in self.reads(Side::B, records)? {
            if !names.is_empty() {
                if let Some(key) = side::match_key(&read.values.values, &names) {
                    changes.by_match.insert(key, read.id.clone());
                }
            }
            // A record listed twice (it changed during the listing): the later wins.
            changes.by_id.insert(read.id.clone(), read);
        }
        Ok(changes)
    }

    fn move_watermark(&self, side: Side, latest: Latest) -> Result<(), SyncError> {
        let Some(max) = latest.value() else {
            return Ok(());
        };
        let key = side_stream(&self.name, side);
        let stored = self.store.watermark(&key)?;
        if stored
            .as_ref()
            .is_none_or(|w| watermark::compare(max, &w.value).is_gt())
        {
            self.store.set_watermark(
                &key,
                &Watermark {
                    value: max.to_string(),
                },
            )?;
        }
        Ok(())
    }
}

/// A record kept with a dead letter, labelled by its side, so `dead-letters retry`
/// knows where it came from.
fn labelled(side: Side, record: &Value) -> Value {
    match side {
        Side::A => json!({ "a": record, "b": null }),
        Side::B => json!({ "a": null, "b": record }),
    }
}
