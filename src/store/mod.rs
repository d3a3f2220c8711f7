//! The state store: everything a pipeline must remember between runs, and across a
//! crash in the middle of one.
//!
//! Per stream: the watermark and paging checkpoint, the id mapping (both directions),
//! the base (last synced field values and their hash), the outbox of intended writes,
//! dead letters, and records waiting for a reference. Per pipeline: run records and
//! OAuth refresh tokens (encrypted).
//!
//! [`Store`] is what the sync engine needs; [`SledStore`] implements it on an embedded
//! sled database. Writes that must stay consistent with each other — an outbox item
//! done, its mapping, its base — are one transaction, and a batch of them is flushed to
//! disk before it counts as done.

mod crypto;
mod sled_store;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

pub use crypto::MasterKey;
pub use sled_store::SledStore;

use crate::config::stream::Side;
use crate::config::PipelineConfig;

/// The layout version this runner writes. A store with another version is refused
/// (or migrated, once there is an older layout to migrate from).
pub const FORMAT_VERSION: u32 = 2;

/// A state store failure.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the state store at {path} is in use by another runner (or a crashed one still holds its lock): {detail}")]
    Locked { path: String, detail: String },
    #[error("the state store at {path} was written by a newer runner (format {found}); this runner reads format {FORMAT_VERSION}: upgrade runner")]
    TooNew { path: String, found: u32 },
    #[error("the state store at {path} has format {found}, which this runner cannot read (it reads format {FORMAT_VERSION})")]
    Unsupported { path: String, found: u32 },
    #[error("the master key cannot be used: {0}")]
    Key(String),
    #[error("a stored {what} is damaged: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    #[error("state store: {0}")]
    Io(#[from] std::io::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Where a stream's source is synced up to: the source's own `updated_at` (never the
/// runner's clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub value: String,
}

/// Where an interrupted listing resumes: the next request and what was read before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub target: String,
    pub query: Vec<(String, String)>,
    pub pages: u64,
    pub records: u64,
    /// The highest `updated_at` of the pages before, for the watermark at the end.
    pub max_updated_at: Option<String>,
}

/// The last synced state of a record: the mapped fields and their hash. A JSON-lines
/// target keeps only the hash (`fields` is null): the file holds the values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Base {
    pub hash: String,
    pub fields: Value,
    /// The target record was deleted or soft-deleted after its source was.
    #[serde(default)]
    pub deleted: bool,
}

/// A record's mapping and base, as one read.
#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    pub target_id: String,
    pub base: Base,
}

/// What an intended write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Update,
    Delete,
    SoftDelete,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::SoftDelete => "soft delete",
        }
    }
}

/// A write recorded durably before it is sent. Its `key` is deterministic (stream,
/// source id, operation, content), so the same intended write always carries the same
/// idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub key: String,
    pub stream: String,
    pub source_id: String,
    pub op: Operation,
    /// The target record (updates and deletes), or the id the runner assigned.
    pub target_id: Option<String>,
    /// The request path, rendered when the intent was made.
    pub path: String,
    /// The mapped fields (the body before any envelope).
    pub fields: Value,
    pub hash: String,
    /// The source record, for dead letters and retries. Not stored with the outbox
    /// item — it would double what every write costs the store — so an intent an
    /// earlier run left behind comes back without it (null).
    #[serde(default, skip_serializing)]
    pub record: Value,
    /// When the intent was recorded (RFC 3339), for people.
    pub created_at: String,
    /// For a two-way stream: which side the write goes to and what the pair looks like
    /// once it is done. `None` for one-way streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_way: Option<Box<TwoWayWrite>>,
}

/// What a two-way write needs to settle its pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoWayWrite {
    /// The side written to.
    pub side: Side,
    /// The pair's ids known when the write was decided (a create knows one).
    pub a_id: Option<String>,
    pub b_id: Option<String>,
    /// The written side's field values once the write is done: its next base.
    pub after: Value,
    /// The other side's values as read in the same run, if it was read: its base too.
    pub other: Option<Value>,
}

/// A request or response kept with a dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    pub body: Value,
    pub status: Option<u16>,
    pub response: Option<String>,
}

/// A record that could not be synced, with why, so a person can fix the cause and
/// retry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub stream: String,
    pub source_id: String,
    pub reason: String,
    /// The write may have been applied: check the target before retrying.
    pub in_doubt: bool,
    pub exchange: Option<Exchange>,
    pub attempts: u32,
    pub first_at: String,
    pub last_at: String,
    /// The source record as read.
    pub record: Value,
}

impl DeadLetter {
    /// The id people use in `runner dead-letters retry|discard ID`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.stream, self.source_id)
    }
}

/// What became of a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The target record `target_id` now holds `base`.
    Synced { target_id: String, base: Base },
    /// The target record was deleted: the mapping and base go.
    Unmapped,
    /// The record could not be synced.
    DeadLettered(Box<DeadLetter>),
    /// A two-way pair (`source_id` is its a id) is linked to `b_id`; the sides given
    /// get a new base (field values), the others keep theirs. `deleted`: one side was
    /// deleted and the other soft-deleted; the pair is not merged any more.
    Paired {
        b_id: String,
        a: Option<Value>,
        b: Option<Value>,
        deleted: bool,
    },
}

/// The end of a record's write, committed with its outbox item in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub stream: String,
    pub source_id: String,
    /// The outbox item this completes, if the outcome came from a write.
    pub intent_key: Option<String>,
    pub outcome: Outcome,
    /// The record may have a dead letter that a success clears. False when the caller
    /// knows it has none, which saves a lookup per record on bulk writes.
    pub may_have_dead_letter: bool,
}

impl Completion {
    pub fn new(
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
            may_have_dead_letter: true,
        }
    }
}

/// One field of a two-way pair that both sides changed, or that the side not owning
/// it changed: how the merge settled it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clash {
    pub field: String,
    /// The values each side had, and had at the last sync.
    pub a: Value,
    pub b: Value,
    pub base_a: Value,
    pub base_b: Value,
    pub winner: Side,
    /// The rule that decided: `owner a`, `last_write_wins (b newer)`, ...
    pub rule: String,
    /// A change on the side that does not own the field, put back.
    pub rejected: bool,
    /// For a field changed on both sides, each record's `updated_at` as read: what
    /// last-write-wins compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b_updated_at: Option<String>,
}

/// A clash as the conflict log keeps it: which pair, which run, when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub stream: String,
    pub a_id: String,
    pub b_id: String,
    #[serde(flatten)]
    pub clash: Clash,
    /// The run that settled it.
    pub run: u64,
    pub at: String,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    /// Finished, but some records were dead-lettered.
    DeadLettered,
    Failed,
    /// A system must be reconnected.
    Reconnect,
    /// The process died during the run (found so by the next run).
    Crashed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::DeadLettered => "dead letters",
            RunStatus::Failed => "failed",
            RunStatus::Reconnect => "reconnect",
            RunStatus::Crashed => "crashed",
        }
    }
}

/// What one stream did in a run. Counters added later read as zero from older runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamCounts {
    pub stream: String,
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Records linked to an existing target record on first contact (`match_on`).
    pub linked: u64,
    pub deleted: u64,
    pub dead_lettered: u64,
    /// Records waiting for a reference to another stream.
    pub deferred: u64,
    /// Outbox items of an earlier run resolved in this one.
    pub recovered: u64,
    /// Fields changed on both sides (two-way), settled by their rule.
    pub conflicts: u64,
    /// Changes to a field on the side that does not own it, put back (two-way).
    pub rejected: u64,
    pub duration_ms: u64,
    /// Why the stream stopped early, if it did.
    pub error: Option<String>,
}

/// One run of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: u64,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub status: RunStatus,
    /// `apply`, `apply --full`, `dead-letters retry`, ...
    pub command: String,
    pub streams: Vec<StreamCounts>,
    pub errors: Vec<String>,
}

/// What the sync engine needs from a state store.
pub trait Store: Send + Sync + std::fmt::Debug {
    fn watermark(&self, stream: &str) -> StoreResult<Option<Watermark>>;
    fn set_watermark(&self, stream: &str, watermark: &Watermark) -> StoreResult<()>;

    fn checkpoint(&self, stream: &str) -> StoreResult<Option<Checkpoint>>;
    /// Saves (or with `None` clears) the checkpoint. Durable with the next write that
    /// is: a checkpoint is saved after everything it covers is durable, so losing it
    /// to a crash only moves the resume point back (re-read records cost nothing),
    /// and a flush per page would cost as much as the page's own commit.
    fn set_checkpoint(&self, stream: &str, checkpoint: Option<&Checkpoint>) -> StoreResult<()>;

    /// A record's target id and base, if it was synced.
    fn synced(&self, stream: &str, source_id: &str) -> StoreResult<Option<Synced>>;
    fn target_id(&self, stream: &str, source_id: &str) -> StoreResult<Option<String>> {
        Ok(self.synced(stream, source_id)?.map(|s| s.target_id))
    }
    fn source_id(&self, stream: &str, target_id: &str) -> StoreResult<Option<String>>;
    /// Every (source id, target id) of a stream.
    fn mappings(&self, stream: &str) -> StoreResult<Vec<(String, String)>>;
    fn mapped_count(&self, stream: &str) -> StoreResult<u64>;

    fn base(&self, stream: &str, source_id: &str) -> StoreResult<Option<Base>> {
        Ok(self.synced(stream, source_id)?.map(|s| s.base))
    }

    /// Records intended writes, durably, before any of them is sent.
    fn record_intents(&self, intents: &[Intent]) -> StoreResult<()> {
        self.record_decisions(intents, &[])
    }
    /// Outbox items of a stream not yet completed, oldest first.
    fn pending_intents(&self, stream: &str) -> StoreResult<Vec<Intent>>;
    fn pending_count(&self, stream: &str) -> StoreResult<u64>;

    /// Commits completions (outbox item done + mapping + base, or dead letter) in one
    /// atomic write, and flushes.
    fn complete(&self, completions: &[Completion]) -> StoreResult<()> {
        self.complete_with_marks(completions, &[])
    }
    /// [`Store::complete`], writing `marks` (named values, such as how far a JSON-lines
    /// target file is committed) in the same transaction.
    fn complete_with_marks(
        &self,
        completions: &[Completion],
        marks: &[(String, Vec<u8>)],
    ) -> StoreResult<()>;
    /// A value written by [`Store::complete_with_marks`].
    fn mark(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;

    fn dead_letters(&self, stream: Option<&str>) -> StoreResult<Vec<DeadLetter>>;
    fn dead_letter(&self, stream: &str, source_id: &str) -> StoreResult<Option<DeadLetter>>;
    fn remove_dead_letter(&self, stream: &str, source_id: &str) -> StoreResult<bool>;

    /// Source records waiting for a reference to be mapped (`ref()`).
    fn defer(&self, stream: &str, source_id: &str, record: &Value) -> StoreResult<()>;
    fn deferred(&self, stream: &str) -> StoreResult<Vec<(String, Value)>>;
    fn undefer(&self, stream: &str, source_id: &str) -> StoreResult<()>;

    /// Starts a run record; marks runs left `running` by a dead process as crashed.
    fn start_run(&self, command: &str) -> StoreResult<RunRecord>;
    fn finish_run(&self, run: &RunRecord) -> StoreResult<()>;
    /// The most recent runs, newest first.
    fn runs(&self, limit: usize) -> StoreResult<Vec<RunRecord>>;

    /// Forgets everything about a stream (watermark, mapping, bases, outbox, dead
    /// letters): its next run starts from scratch.
    fn reset_stream(&self, stream: &str) -> StoreResult<()>;

    /// Records intended writes and the conflicts that decided them in one atomic
    /// write, durably, before any of the writes is sent: a conflict is logged exactly
    /// when its resolution is on its way.
    fn record_decisions(&self, intents: &[Intent], conflicts: &[Conflict]) -> StoreResult<()>;
    /// The newest conflicts (of one stream), newest first.
    fn conflicts(&self, stream: Option<&str>, limit: usize) -> StoreResult<Vec<Conflict>>;

    fn load_token(&self, system: &str) -> StoreResult<Option<String>>;
    /// Saves a token encrypted, durably.
    fn save_token(&self, system: &str, token: &str) -> StoreResult<()>;
}

/// The key of one side's watermark of a two-way stream: `<stream>/a`, `<stream>/b`.
pub fn side_stream(stream: &str, side: Side) -> String {
    format!("{stream}/{}", side.as_str())
}

/// How a two-way stream names a record in its outbox and dead letters: `a:<id>` or
/// `b:<id>` (a pair by its a id once it has one).
pub fn side_record_id(side: Side, id: &str) -> String {
    format!("{}:{id}", side.as_str())
}

/// The directory of a pipeline's state: `state.path` (relative to the pipeline file),
/// else `.runner/<name>` beside the pipeline file.
pub fn state_dir(pipeline: &PipelineConfig, pipeline_file: &Path) -> PathBuf {
    let base = pipeline_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    match pipeline.state.as_ref().and_then(|s| s.path.as_ref()) {
        Some(path) if path.is_absolute() => path.clone(),
        Some(path) => base.join(path),
        None => base.join(".runner").join(&pipeline.name),
    }
}

/// The current time as RFC 3339, for the records people read (never for sync
/// decisions: those use the systems' own timestamps).
pub fn now_text() -> String {
    jiff::Timestamp::now().to_string()
}
