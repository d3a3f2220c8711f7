//! Streams: what is kept in sync between two systems, and by which rules.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::request::{ReadConfig, WriteRequestConfig};
use super::values::{HumanDuration, JsonPath, Percent, ScheduleSpec, Template};

/// A stream: one-way (a source of truth mirrored into a target) or two-way (two sides
/// with a rule for every shared field).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum StreamConfig {
    /// `sync: two_way`: both sides are read and written.
    TwoWay(Box<TwoWayStreamConfig>),
    /// The default: the target mirrors `source_of_truth` for every mapped field.
    OneWay(Box<OneWayStreamConfig>),
}

impl StreamConfig {
    pub fn settings(&self) -> &StreamSettings {
        match self {
            StreamConfig::OneWay(s) => &s.settings,
            StreamConfig::TwoWay(s) => &s.settings,
        }
    }
}

/// Marks a stream as one-way (the default, may be omitted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OneWayMode {
    OneWay,
}

/// Marks a stream as two-way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TwoWayMode {
    TwoWay,
}

/// A one-way stream: `source_of_truth` is read, the target is written, never the other
/// way round.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct OneWayStreamConfig {
    /// `one_way` (the default).
    #[serde(default)]
    pub sync: Option<OneWayMode>,
    /// The system that owns every mapped field; it must be the source system. Stated
    /// explicitly so nobody has to guess which side wins.
    pub source_of_truth: String,
    /// Where records come from.
    pub source: SourceConfig,
    /// Where records go.
    pub target: TargetConfig,
    /// Target fields and where their values come from (target field <- source value).
    pub fields: IndexMap<String, FieldConfig>,
    /// Webhook that pushes source changes to `runner serve`.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(flatten)]
    pub settings: StreamSettings,
}

/// Settings every stream has, one-way or two-way.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct StreamSettings {
    /// What a deleted source record does to the target.
    #[serde(default)]
    pub deletes: DeleteMode,
    /// Largest share of a stream's mapped records one run may delete before it stops
    /// and asks for `--allow-mass-delete`.
    #[serde(default = "default_max_delete_fraction")]
    pub max_delete_fraction: Percent,
    /// When `runner serve` pulls and reconciles this stream.
    #[serde(default)]
    pub schedule: Option<ScheduleConfig>,
    /// Reconciliation: compare both sides in full.
    #[serde(default)]
    pub reconcile: Option<ReconcileConfig>,
    /// Where to report repeated failures and drift.
    #[serde(default)]
    pub alerts: Option<AlertsConfig>,
}

fn default_max_delete_fraction() -> Percent {
    Percent::from_fraction(0.10)
}

/// What a deleted record does to the other side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeleteMode {
    /// Nothing: the other side keeps its record.
    #[default]
    Ignore,
    /// The other side's record is updated with the `soft_delete` fields.
    Soft,
    /// The other side's record is deleted (`delete` request) and unmapped.
    Hard,
}

/// The side records are read from.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name of a system under `systems`.
    pub system: String,
    /// How to list records (required for `http` systems).
    #[serde(default)]
    pub read: Option<ReadConfig>,
    /// Where a record's id is, e.g. "$.id".
    pub id: JsonPath,
    /// Where a record's last-modified time (or version) is, e.g. "$.updated_at". It
    /// becomes the watermark for incremental runs; the runner's own clock never does.
    #[serde(default)]
    pub updated_at: Option<JsonPath>,
    /// How the API treats the incremental filter.
    #[serde(default)]
    pub incremental: Option<IncrementalConfig>,
    /// A record whose value at this path is true counts as deleted, e.g. "$.archived".
    #[serde(default)]
    pub tombstone: Option<JsonPath>,
    /// Read this stream per parent record (child resources such as
    /// "/customers/{{ parent.id }}/invoices").
    #[serde(default)]
    pub parent: Option<ParentConfig>,
}

/// How an API's `updated_since`-style filter behaves.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementalConfig {
    /// Whether the filter includes the watermark itself (`updated_gte`), excludes it
    /// (`updated_gt`), or is silently ignored by the API (then the runner filters).
    #[serde(default)]
    pub filter: FilterSemantics,
    /// Read again this far behind the watermark, for clock skew and records sharing
    /// a timestamp. Records seen before are deduplicated by id and content.
    #[serde(default = "default_overlap")]
    pub overlap: HumanDuration,
}

fn default_overlap() -> HumanDuration {
    HumanDuration::from_secs(1)
}

impl Default for IncrementalConfig {
    fn default() -> Self {
        IncrementalConfig {
            filter: FilterSemantics::default(),
            overlap: default_overlap(),
        }
    }
}

/// How an API treats its incremental filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilterSemantics {
    /// Records at the watermark are returned again (`updated_gte`).
    #[default]
    Inclusive,
    /// Only records after the watermark are returned (`updated_gt`).
    Exclusive,
    /// The API ignores the filter and returns everything; the runner drops records at
    /// or before the watermark itself.
    Ignored,
}

/// Parent records a child stream is read under.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentConfig {
    /// How to list the parent records; each is `parent` in the child's read templates.
    pub read: ReadConfig,
}

/// The side records are written to.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TargetConfig {
    /// Name of a system under `systems`.
    pub system: String,
    /// How to list the target's records: for matching on first sync, reconciliation
    /// and complete-listing checks.
    #[serde(default)]
    pub read: Option<ReadConfig>,
    /// Where a target record's id is, e.g. "$.id".
    #[serde(default)]
    pub id: Option<JsonPath>,
    /// Target fields that link a new source record to a target record that already
    /// exists (first contact only; the mapping table decides ever after).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_on: Vec<String>,
    #[serde(flatten)]
    pub writes: WritesConfig,
}

/// How records are written to a system, and how an in-doubt create is resolved.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct WritesConfig {
    /// Request that creates a record.
    #[serde(default)]
    pub create: Option<WriteRequestConfig>,
    /// Request that updates a record; `{{ target_id }}` is its id.
    #[serde(default)]
    pub update: Option<WriteRequestConfig>,
    /// Request that deletes a record (`deletes: hard`).
    #[serde(default)]
    pub delete: Option<WriteRequestConfig>,
    /// Header that carries the runner's deterministic key on every write, for targets
    /// that honour idempotency keys (same key -> same result, no second record).
    #[serde(default)]
    pub idempotency_header: Option<String>,
    /// A target field that stores the source id (e.g. `crm_id`), so an in-doubt create
    /// can be found again by `lookup`.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Finds target records by field values, for `match_on` and in-doubt creates. The
    /// templates see `match.<field>`, e.g. `params: { email: "{{ match.email }}" }`.
    #[serde(default)]
    pub lookup: Option<ReadConfig>,
    /// Fields set on the record when its counterpart is deleted (`deletes: soft`),
    /// e.g. `{ archived: true }`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub soft_delete: IndexMap<String, serde_json::Value>,
}

/// Where a target field's value comes from: `from` a source path, a `template`, or
/// a constant `default`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// Path in the source record, e.g. "$.email".
    #[serde(default)]
    pub from: Option<JsonPath>,
    /// A template over `record` (and `ref()`, `env`, `now`), e.g.
    /// "{{ record.first_name }} {{ record.last_name }}".
    #[serde(default)]
    pub template: Option<Template>,
    /// Value used when `from` finds nothing or null; alone, a constant.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// Convert the value to this type (templates render text).
    #[serde(default, rename = "type")]
    pub value_type: Option<FieldType>,
}

/// The JSON type a mapped value is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Number,
    Integer,
    Boolean,
}

/// A two-way stream: both sides are read and written, and every field says who wins.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TwoWayStreamConfig {
    /// `two_way`.
    pub sync: TwoWayMode,
    /// The two systems, named `a` and `b`.
    pub sides: SidesConfig,
    /// Shared fields: where each lives on either side and its rule (`owner` or
    /// `conflict`).
    pub fields: IndexMap<String, TwoWayFieldConfig>,
    /// Fields that link records existing on both sides on first contact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_on: Vec<String>,
    /// Largest clock difference between the two systems that last-write-wins tolerates:
    /// edits closer together than this are decided by the tie rule.
    #[serde(default)]
    pub clock_skew: Option<HumanDuration>,
    #[serde(flatten)]
    pub settings: StreamSettings,
}

/// The two sides of a two-way stream.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SidesConfig {
    pub a: SideConfig,
    pub b: SideConfig,
}

/// One side of a two-way stream: read like a source, written like a target.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SideConfig {
    #[serde(flatten)]
    pub read: SourceConfig,
    #[serde(flatten)]
    pub writes: WritesConfig,
    /// Webhook that pushes this side's changes to `runner serve`.
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// Names a side of a two-way stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    A,
    B,
}

impl Side {
    /// The side across.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// "a" or "b".
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

/// A shared field of a two-way stream.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoWayFieldConfig {
    /// Where the field is on side a, e.g. "$.email".
    pub a: JsonPath,
    /// Where the field is on side b, e.g. "$.email".
    pub b: JsonPath,
    /// The side that owns the field: its value wins, and a change on the other side is
    /// reverted.
    #[serde(default)]
    pub owner: Option<Side>,
    /// How a change on both sides since the last sync is settled, for a field without
    /// an owner.
    #[serde(default)]
    pub conflict: Option<ConflictRule>,
}

/// How a field changed on both sides is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictRule {
    /// The side whose record has the later `updated_at` wins.
    LastWriteWins,
}

/// A webhook that pushes changes to `runner serve`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// URL path `runner serve` listens on, e.g. "/hooks/crm/contacts". Unique per
    /// pipeline set.
    pub path: String,
    /// How deliveries are authenticated. Omit only on a trusted network.
    #[serde(default)]
    pub verify: Option<WebhookVerifyConfig>,
    /// Where the event's unique id is, for deduplication, e.g. "$.event_id".
    pub event_id: JsonPath,
    /// Where the changed record is in the event, e.g. "$.data".
    pub record: JsonPath,
    /// Where the event type is, e.g. "$.type".
    #[serde(default)]
    pub event_type: Option<JsonPath>,
    /// Event types that mean the record was deleted, e.g. ["contact.deleted"].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delete_events: Vec<String>,
}

/// How webhook deliveries are authenticated.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WebhookVerifyConfig {
    /// HMAC-SHA256 of the body (or of "<timestamp>.<body>" with `timestamp_header`),
    /// compared in constant time.
    HmacSha256(HmacVerifyConfig),
}

/// HMAC-SHA256 signature check.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacVerifyConfig {
    /// Header carrying the signature, e.g. "X-Signature".
    pub header: String,
    /// The shared secret, normally "{{ secret.NAME }}".
    pub secret: Template,
    /// Text before the signature in the header, e.g. "sha256=".
    #[serde(default)]
    pub prefix: Option<String>,
    /// How the signature is encoded.
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Header carrying the delivery time (Unix seconds); it is signed with the body,
    /// and deliveries older than `tolerance` are refused (replay protection).
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Largest age of a delivery.
    #[serde(default = "default_tolerance")]
    pub tolerance: HumanDuration,
}

fn default_tolerance() -> HumanDuration {
    HumanDuration::from_secs(300)
}

/// How a signature is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

/// When `runner serve` works on a stream.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Incremental pulls that catch what webhooks missed, e.g. "every 15m".
    #[serde(default)]
    pub pull: Option<ScheduleSpec>,
    /// Full reconciliations, e.g. "every 24h" or "0 3 * * *".
    #[serde(default)]
    pub reconcile: Option<ScheduleSpec>,
}

/// Reconciliation settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    /// Repair drift through the outbox, not only report it.
    #[serde(default)]
    pub heal: bool,
    /// Alert when the share of drifted records exceeds this, e.g. "1%".
    #[serde(default)]
    pub alert_over: Option<Percent>,
}

/// Where alerts go.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// URL an alert is POSTed to as JSON (a template; may hold a secret).
    pub webhook: Template,
    /// Alert after this many failed runs in a row.
    #[serde(default = "default_after_failed_runs")]
    #[schemars(range(min = 1))]
    pub after_failed_runs: u32,
}

fn default_after_failed_runs() -> u32 {
    3
}
