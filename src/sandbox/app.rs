//! One fake API's state behind a cheap handle: records, tokens, limiter, fault dice,
//! scripted replies and counters. Tests drive it directly (seed data, switch faults on,
//! expire tokens) while clients reach the same state over HTTP.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use serde_json::{Map, Value};

use super::auth::Tokens;
use super::config::{AppConfig, AuthMode, FaultKind, Faults, FilterMode, PageStyle, RateLimit};
use super::fake::{fake_fields, RecordKind};
use super::journal::Journal;
use super::listing::{Source, Synthetic};
use super::lock;
use super::ratelimit::Bucket;
use super::store::{Record, Store};

/// A reply to hand out instead of normal handling (see [`App::script`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// Exactly this response.
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// This fault, before any write happens.
    Fault(FaultKind),
    /// This fault after the request's write was applied: the in-doubt write, on demand.
    FaultAfterWrite(FaultKind),
    /// Normal handling: lets a script reach the Nth request ("pass, pass, 429").
    Pass,
}

/// What an app did, by kind of event. Counts HTTP traffic only: the direct methods of
/// [`App`] (insert, update, ...) are not counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Every request to the app, token endpoint included.
    pub requests: u64,
    pub token_requests: u64,
    /// Token requests with the refresh grant, successful or not.
    pub refreshes: u64,
    pub creates: u64,
    pub updates: u64,
    pub deletes: u64,
    pub unauthorized: u64,
    pub rate_limited: u64,
    /// Injected faults, random and scripted.
    pub faults: u64,
    pub idempotent_replays: u64,
}

/// Which of the two apps, with what never changes about it.
#[derive(Debug, Clone, Copy)]
pub struct Mount {
    /// "crm" / "billing": the URL prefix and the journal's app name.
    pub name: &'static str,
    /// "contacts" / "customers".
    pub resource: &'static str,
    /// "c_" / "cus_".
    pub id_prefix: &'static str,
    pub kind: RecordKind,
}

pub const CRM: Mount = Mount {
    name: "crm",
    resource: "contacts",
    id_prefix: "c_",
    kind: RecordKind::Contact,
};
pub const BILLING: Mount = Mount {
    name: "billing",
    resource: "customers",
    id_prefix: "cus_",
    kind: RecordKind::Customer,
};

/// A cheap handle (an `Arc`) to one API's state.
#[derive(Clone)]
pub struct App {
    pub(super) state: Arc<AppState>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("base_url", &self.base_url())
            .field("resource", &self.resource())
            .finish_non_exhaustive()
    }
}

pub(super) struct AppState {
    pub mount: Mount,
    /// "http://127.0.0.1:PORT".
    pub origin: String,
    pub seed: u64,
    pub settings: Mutex<Settings>,
    pub data: Mutex<Data>,
    pub tokens: Mutex<Tokens>,
    pub limiter: Mutex<Option<Bucket>>,
    /// One seeded RNG per app: sequential requests draw the same faults every run.
    pub dice: Mutex<StdRng>,
    pub script: Mutex<VecDeque<Scripted>>,
    pub stats: Mutex<Stats>,
    pub journal: Arc<Journal>,
}

/// The part of the configuration that can change at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: AppConfig,
    pub repeat_cursor: bool,
}

pub(super) struct Data {
    pub store: Store,
    pub synthetic: Option<Synthetic>,
    /// Idempotency-Key → the first request's fingerprint and reply.
    pub idempotency: HashMap<String, SavedReply>,
    /// How many records `seed` made so far, so the next call continues the sequence.
    pub seeded: u64,
}

impl Data {
    /// What listings read: synthetic records in benchmark mode, else the store.
    pub fn source(&self) -> Source<'_> {
        match &self.synthetic {
            Some(synthetic) => Source::Synthetic(synthetic),
            None => Source::Stored(&self.store),
        }
    }
}

/// A create's reply kept under its Idempotency-Key.
pub(super) struct SavedReply {
    pub fingerprint: Value,
    pub status: u16,
    pub body: Value,
}

impl App {
    pub(super) fn new(
        mount: Mount,
        config: AppConfig,
        origin: String,
        seed: u64,
        journal: Arc<Journal>,
    ) -> App {
        let initial_refresh = match &config.auth {
            AuthMode::OAuth2 { refresh_token, .. } => Some(refresh_token.clone()),
            _ => None,
        };
        // Each app gets its own stream of dice, still fixed by the sandbox seed.
        let dice_seed = seed ^ fnv1a(mount.name);
        let state = AppState {
            mount,
            origin,
            seed,
            limiter: Mutex::new(config.rate_limit.clone().map(Bucket::new)),
            settings: Mutex::new(Settings {
                config,
                repeat_cursor: false,
            }),
            data: Mutex::new(Data {
                store: Store::new(mount.id_prefix),
                synthetic: None,
                idempotency: HashMap::new(),
                seeded: 0,
            }),
            tokens: Mutex::new(Tokens::new(mount.name, initial_refresh)),
            dice: Mutex::new(StdRng::seed_from_u64(dice_seed)),
            script: Mutex::new(VecDeque::new()),
            stats: Mutex::new(Stats::default()),
            journal,
        };
        App {
            state: Arc::new(state),
        }
    }

    /// e.g. "http://127.0.0.1:PORT/crm".
    pub fn base_url(&self) -> String {
        format!("{}/{}", self.state.origin, self.state.mount.name)
    }

    /// "contacts" / "customers".
    pub fn resource(&self) -> &str {
        self.state.mount.resource
    }

    /// Stores a record; the server assigns `id` (unless the record has one) and
    /// `updated_at`. A non-object value is stored as an empty record. Returns the id.
    pub fn insert(&self, record: Value) -> String {
        let created = self.data().store.create(object_or_empty(record));
        id_of(&created)
    }

    /// Merges the fields of `patch` and bumps `updated_at`; false if there is no such
    /// record or `patch` is not an object.
    pub fn update(&self, id: &str, patch: Value) -> bool {
        match patch {
            Value::Object(patch) => self.data().store.merge(id, patch).is_some(),
            _ => false,
        }
    }

    pub fn delete(&self, id: &str) -> bool {
        self.data().store.delete(id)
    }

    pub fn get(&self, id: &str) -> Option<Value> {
        self.data().store.get(id).cloned().map(Value::Object)
    }

    /// Stored records sorted by (updated_at, id).
    pub fn records(&self) -> Vec<Value> {
        let data = self.data();
        data.store
            .after(None)
            .map(|(_, r)| Value::Object(r.clone()))
            .collect()
    }

    /// Stored records (synthetic ones are not stored).
    pub fn len(&self) -> usize {
        self.data().store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `n` deterministic fake records (from the sandbox seed); a later call
    /// continues the sequence. Returns their ids.
    pub fn seed(&self, n: usize) -> Vec<String> {
        let mut data = self.data();
        let first = data.seeded + 1;
        data.seeded += n as u64;
        (first..first + n as u64)
            .map(|index| {
                let fields = fake_fields(self.state.mount.kind, self.state.seed, index);
                id_of(&data.store.create(fields))
            })
            .collect()
    }

    /// Benchmark mode: listings serve `n` records generated from their index
    /// (`updated_at` = 2026-01-01T00:00:00Z + index ms), nothing stored. Reading one by
    /// id works too; writes go to the (unlisted) store.
    pub fn set_synthetic(&self, n: usize) {
        self.data().synthetic = Some(Synthetic {
            count: n as u64,
            kind: self.state.mount.kind,
            seed: self.state.seed,
            id_prefix: self.state.mount.id_prefix,
        });
    }

    pub fn set_faults(&self, faults: Faults) {
        self.settings().config.faults = faults;
    }

    /// Sets (or removes) the limit; the bucket starts full.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        *lock(&self.state.limiter) = limit.clone().map(Bucket::new);
        self.settings().config.rate_limit = limit;
    }

    pub fn set_idempotency(&self, on: bool) {
        self.settings().config.idempotency = on;
    }

    pub fn set_pagination(&self, style: PageStyle) {
        self.settings().config.pagination = style;
    }

    pub fn set_updated_filter(&self, mode: FilterMode) {
        self.settings().config.updated_filter = mode;
    }

    pub fn set_repeat_last_page(&self, on: bool) {
        self.settings().config.repeat_last_page = on;
    }

    /// The buggy API: the next cursor / next URL never advances.
    pub fn set_repeat_cursor(&self, on: bool) {
        self.settings().repeat_cursor = on;
    }

    /// Makes this app's clock run `offset_ms` ahead of the wall clock (negative:
    /// behind) for the `updated_at` of later writes: two systems whose clocks disagree.
    pub fn set_clock_offset(&self, offset_ms: i64) {
        self.data().store.set_clock_offset(offset_ms);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.settings().config.latency = latency;
    }

    /// The next requests to this app (resource and token endpoint alike), in order, get
    /// these replies instead of normal handling (no rate limit, auth or random fault).
    pub fn script(&self, responses: Vec<Scripted>) {
        lock(&self.state.script).extend(responses);
    }

    /// Every access token issued so far stops working now.
    pub fn expire_access_tokens(&self) {
        lock(&self.state.tokens).expire_access();
    }

    /// No refresh token works from now on (invalid_grant): the client must be
    /// reconnected.
    /// Lets a refresh token replaced by a rotation keep working for `interval` (a
    /// "reuse interval", as many providers have), so a client that died before saving
    /// the new token can recover. Zero — the default — is strict rotation.
    pub fn set_refresh_reuse_interval(&self, interval: Duration) {
        lock(&self.state.tokens).set_reuse_interval(interval);
    }

    pub fn revoke_refresh_tokens(&self) {
        lock(&self.state.tokens).revoke_refresh();
    }

    /// The one valid refresh token, after rotations.
    pub fn current_refresh_token(&self) -> Option<String> {
        lock(&self.state.tokens).current_refresh()
    }

    pub fn stats(&self) -> Stats {
        lock(&self.state.stats).clone()
    }

    pub(super) fn name(&self) -> &'static str {
        self.state.mount.name
    }

    pub(super) fn data(&self) -> MutexGuard<'_, Data> {
        lock(&self.state.data)
    }

    pub(super) fn settings(&self) -> MutexGuard<'_, Settings> {
        lock(&self.state.settings)
    }

    /// Bumps counters.
    pub(super) fn count(&self, bump: impl FnOnce(&mut Stats)) {
        bump(&mut lock(&self.state.stats));
    }
}

/// FNV-1a: a stable hash of the app name, to give each app its own dice.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn object_or_empty(value: Value) -> Record {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The id of a stored record (always a string: the store sets it).
pub(super) fn id_of(record: &Record) -> String {
    record
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
