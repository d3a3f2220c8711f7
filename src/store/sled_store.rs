//! [`Store`] on an embedded sled database: one directory per pipeline holding the
//! database (`db/`) and, unless `RUNNER_MASTER_KEY` is set, the master key file.
//!
//! Everything a sync changes together lives in one tree, `state`, under typed key
//! prefixes — `R` synced records (target id + base), `T` target ids back to source ids,
//! `O` outbox items, `D` dead letters, `W` records waiting for a reference, `M` marks —
//! each followed by `<stream>\0<id>`. A completion (outbox item gone, mapping both ways,
//! base, dead letter) is then one atomic sled batch on that tree, cheaper than a
//! transaction across trees and just as all-or-nothing; a stream can be scanned or
//! reset by prefix. Watermarks, checkpoints, runs and tokens have trees of their own.
//! Values are JSON.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use sled::{Batch, Db, Tree};

use super::crypto::MasterKey;
use super::{
    now_text, side_record_id, side_stream, Base, Checkpoint, Completion, Conflict, DeadLetter,
    Intent, Outcome, RunRecord, RunStatus, Store, StoreError, StoreResult, Synced, Watermark,
    FORMAT_VERSION,
};
use crate::config::stream::Side;

const FORMAT_KEY: &[u8] = b"format_version";
const RUN_COUNTER_KEY: &[u8] = b"last_run_id";
const CONFLICT_COUNTER_KEY: &[u8] = b"last_conflict";
/// sled's page cache; the default (1 GiB) would dwarf everything else runner holds.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// The kinds of entries of the `state` tree, by key prefix.
#[derive(Clone, Copy)]
enum Kind {
    Synced = b'R' as isize,
    TargetIndex = b'T' as isize,
    Outbox = b'O' as isize,
    Dead = b'D' as isize,
    Waiting = b'W' as isize,
    Conflict = b'C' as isize,
}

/// The sled-backed store of one pipeline.
#[derive(Debug)]
pub struct SledStore {
    path: PathBuf,
    db: Db,
    meta: Tree,
    state: Tree,
    watermarks: Tree,
    checkpoints: Tree,
    runs: Tree,
    tokens: Tree,
    key: MasterKey,
}

fn key(kind: Kind, stream: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + id.len() + 2);
    key.push(kind as u8);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

fn prefix(kind: Kind, stream: &str) -> Vec<u8> {
    key(kind, stream, "")
}

fn mark_key(name: &str) -> Vec<u8> {
    format!("M{name}").into_bytes()
}

/// The id part of a `state` key (after the stream and its `\0`).
fn id_of(key: &[u8]) -> String {
    let id = key
        .iter()
        .position(|b| *b == 0)
        .map_or(key, |i| &key[i + 1..]);
    String::from_utf8_lossy(id).into_owned()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Our stored types are plain data (strings, numbers, JSON values); serializing them
    // cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// How a synced record is stored, compactly: a synced record is written for every
/// record of every stream, so its size is what the store's write cost and memory
/// follow. One flag byte (deleted; target id same as source id; hash as text), the
/// target id unless it is the source id, the hash (16 bytes when it is our hex hash),
/// then the fields as JSON (nothing when null).
mod entry {
    use super::{Base, StoreError, StoreResult, Synced};
    use serde_json::Value;

    const DELETED: u8 = 1;
    const SAME_ID: u8 = 2;
    const TEXT_HASH: u8 = 4;

    pub fn encode(source_id: &str, synced: &Synced) -> Vec<u8> {
        let binary_hash = hex_to_bytes(&synced.base.hash);
        let mut flags = 0;
        if synced.base.deleted {
            flags |= DELETED;
        }
        if synced.target_id == source_id {
            flags |= SAME_ID;
        }
        if binary_hash.is_none() {
            flags |= TEXT_HASH;
        }
        let mut out = Vec::with_capacity(48);
        out.push(flags);
        if flags & SAME_ID == 0 {
            push_text(&mut out, &synced.target_id);
        }
        match binary_hash {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => push_text(&mut out, &synced.base.hash),
        }
        if !synced.base.fields.is_null() {
            // Plain JSON values serialize without failing.
            out.extend(serde_json::to_vec(&synced.base.fields).unwrap_or_default());
        }
        out
    }

    pub fn decode(source_id: &str, bytes: &[u8]) -> StoreResult<Synced> {
        let corrupt = || StoreError::Corrupt {
            what: "synced record",
            detail: "truncated".into(),
        };
        let (&flags, mut rest) = bytes.split_first().ok_or_else(corrupt)?;
        let target_id = if flags & SAME_ID != 0 {
            source_id.to_string()
        } else {
            take_text(&mut rest).ok_or_else(corrupt)?
        };
        let hash = if flags & TEXT_HASH != 0 {
            take_text(&mut rest).ok_or_else(corrupt)?
        } else {
            let (hash, after) = rest.split_at_checked(16).ok_or_else(corrupt)?;
            rest = after;
            hash.iter().map(|b| format!("{b:02x}")).collect()
        };
        let fields = if rest.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(rest).map_err(|e| StoreError::Corrupt {
                what: "synced record",
                detail: e.to_string(),
            })?
        };
        Ok(Synced {
            target_id,
            base: Base {
                hash,
                fields,
                deleted: flags & DELETED != 0,
            },
        })
    }

    /// Whether the entry says the target id is the source id (no reverse index).
    pub fn same_id(bytes: &[u8]) -> bool {
        bytes.first().is_some_and(|flags| flags & SAME_ID != 0)
    }

    fn push_text(out: &mut Vec<u8>, text: &str) {
        let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&text.as_bytes()[..usize::from(len)]);
    }

    fn take_text(rest: &mut &[u8]) -> Option<String> {
        let (len, after) = rest.split_at_checked(2)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (text, after) = after.split_at_checked(len)?;
        *rest = after;
        Some(String::from_utf8_lossy(text).into_owned())
    }

    fn hex_to_bytes(hex: &str) -> Option<[u8; 16]> {
        if hex.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(bytes)
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. Refuses a store another process holds,
    /// and one written in a format this runner does not read.
    pub fn open(dir: &Path) -> StoreResult<SledStore> {
        std::fs::create_dir_all(dir)?;
        let shown = dir.display().to_string();
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(CACHE_BYTES)
            // No background flusher: every write that must be durable is flushed
            // explicitly, and without the thread a closed store releases its lock at
            // once.
            .flush_every_ms(None)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    StoreError::Locked {
                        path: shown.clone(),
                        detail: io.to_string(),
                    }
                }
                other => StoreError::Sled(other),
            })?;
        let key = MasterKey::load(&dir.join("master.key"))?;
        let store = SledStore {
            path: dir.to_path_buf(),
            meta: db.open_tree("meta")?,
            state: db.open_tree("state")?,
            watermarks: db.open_tree("watermarks")?,
            checkpoints: db.open_tree("checkpoints")?,
            runs: db.open_tree("runs")?,
            tokens: db.open_tree("tokens")?,
            db,
            key,
        };
        store.check_format()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_format(&self) -> StoreResult<()> {
        let shown = self.path.display().to_string();
        match self.meta.get(FORMAT_KEY)? {
            None => {
                self.meta.insert(FORMAT_KEY, encode(&FORMAT_VERSION))?;
                self.db.flush()?;
                Ok(())
            }
            Some(bytes) => {
                let found: u32 = decode("format version", &bytes)?;
                if found == FORMAT_VERSION {
                    Ok(())
                } else if found > FORMAT_VERSION {
                    Err(StoreError::TooNew { path: shown, found })
                } else {
                    Err(StoreError::Unsupported { path: shown, found })
                }
            }
        }
    }

    fn get<T: DeserializeOwned>(
        &self,
        tree: &Tree,
        what: &'static str,
        key: &[u8],
    ) -> StoreResult<Option<T>> {
        tree.get(key)?.map(|bytes| decode(what, &bytes)).transpose()
    }

    fn scan<T: DeserializeOwned>(
        &self,
        kind: Kind,
        what: &'static str,
        stream: &str,
    ) -> StoreResult<Vec<(String, T)>> {
        self.state
            .scan_prefix(prefix(kind, stream))
            .map(|entry| {
                let (k, v) = entry?;
                Ok((id_of(&k), decode(what, &v)?))
            })
            .collect()
    }

    fn count(&self, kind: Kind, stream: &str) -> StoreResult<u64> {
        let mut count = 0;
        for entry in self.state.scan_prefix(prefix(kind, stream)).keys() {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Takes the next `count` numbers of the counter `name`; returns the first.
    /// Numbers are never handed out twice, even across a crash (a crash may skip some).
    fn take_numbers(&self, name: &[u8], count: u64) -> StoreResult<u64> {
        let last = self
            .meta
            .update_and_fetch(name, |old| {
                let last = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Some((last + count).to_be_bytes().to_vec())
            })?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(count, u64::from_be_bytes);
        Ok(last + 1 - count)
    }

    /// A synced record as this batch leaves it: `pending` holds the entries the batch
    /// already changed (a two-way pair may get two completions in one batch).
    fn synced_in_batch(
        &self,
        pending: &HashMap<Vec<u8>, Option<Synced>>,
        stream: &str,
        source_id: &str,
    ) -> StoreResult<Option<Synced>> {
        match pending.get(&key(Kind::Synced, stream, source_id)) {
            Some(entry) => Ok(entry.clone()),
            None => self.synced(stream, source_id),
        }
    }

    /// Adds one completion's writes to `batch`; `pending` tracks the synced records the
    /// batch changed.
    fn complete_into(
        &self,
        batch: &mut Batch,
        pending: &mut HashMap<Vec<u8>, Option<Synced>>,
        done: &Completion,
    ) -> StoreResult<()> {
        let synced_key = key(Kind::Synced, &done.stream, &done.source_id);
        let dead_key = key(Kind::Dead, &done.stream, &done.source_id);
        if let Some(intent_key) = &done.intent_key {
            batch.remove(key(Kind::Outbox, &done.stream, intent_key));
        }
        match &done.outcome {
            Outcome::Synced { target_id, base } => {
                let same_id = target_id == &done.source_id;
                // A record linked to another target record than before leaves the old
                // one unindexed. Writes keep the target they were decided with (a
                // create had none, an update has the same), so only completions
                // without an outbox item (links) need to look.
                if done.intent_key.is_none() && !same_id {
                    let previous = self.synced(&done.stream, &done.source_id)?;
                    if let Some(old) = previous.filter(|old| &old.target_id != target_id) {
                        batch.remove(key(Kind::TargetIndex, &done.stream, &old.target_id));
                    }
                }
                let synced = Synced {
                    target_id: target_id.clone(),
                    base: base.clone(),
                };
                batch.insert(synced_key.clone(), entry::encode(&done.source_id, &synced));
                pending.insert(synced_key, Some(synced));
                if !same_id {
                    batch.insert(
                        key(Kind::TargetIndex, &done.stream, target_id),
                        done.source_id.as_bytes(),
                    );
                }
                if done.may_have_dead_letter {
                    batch.remove(dead_key);
                }
            }
            Outcome::Unmapped => {
                if let Some(old) = self.synced_in_batch(pending, &done.stream, &done.source_id)? {
                    batch.remove(key(Kind::TargetIndex, &done.stream, &old.target_id));
                }
                batch.remove(synced_key.clone());
                pending.insert(synced_key, None);
                batch.remove(dead_key);
            }
            Outcome::Paired {
                b_id,
                a,
                b,
                deleted,
            } => {
                let previous = self.synced_in_batch(pending, &done.stream, &done.source_id)?;
                let mut sides = previous
                    .as_ref()
                    .and_then(|p| p.base.fields.as_object().cloned())
                    .unwrap_or_default();
                for (name, values) in [("a", a), ("b", b)] {
                    if let Some(values) = values {
                        sides.insert(name.to_string(), values.clone());
                    }
                }
                if let Some(old) = previous.filter(|old| &old.target_id != b_id) {
                    batch.remove(key(Kind::TargetIndex, &done.stream, &old.target_id));
                }
                let fields = Value::Object(sides);
                let synced = Synced {
                    target_id: b_id.clone(),
                    base: Base {
                        hash: crate::sync::mapper::hash(&fields),
                        fields,
                        deleted: *deleted,
                    },
                };
                batch.insert(synced_key.clone(), entry::encode(&done.source_id, &synced));
                pending.insert(synced_key, Some(synced));
                batch.insert(
                    key(Kind::TargetIndex, &done.stream, b_id),
                    done.source_id.as_bytes(),
                );
                if done.may_have_dead_letter {
                    // Two-way dead letters are named by side: the pair is through now.
                    for id in [
                        side_record_id(Side::A, &done.source_id),
                        side_record_id(Side::B, b_id),
                    ] {
                        batch.remove(key(Kind::Dead, &done.stream, &id));
                    }
                }
            }
            Outcome::DeadLettered(letter) => {
                // A record refused again keeps its history.
                let letter = match self.dead_letter(&done.stream, &done.source_id)? {
                    Some(old) => DeadLetter {
                        attempts: old.attempts + 1,
                        first_at: old.first_at,
                        ..letter.as_ref().clone()
                    },
                    None => letter.as_ref().clone(),
                };
                batch.insert(dead_key, encode(&letter));
            }
        }
        Ok(())
    }
}

impl Store for SledStore {
    fn watermark(&self, stream: &str) -> StoreResult<Option<Watermark>> {
        self.get(&self.watermarks, "watermark", stream.as_bytes())
    }

    fn set_watermark(&self, stream: &str, watermark: &Watermark) -> StoreResult<()> {
        self.watermarks
            .insert(stream.as_bytes(), encode(watermark))?;
        self.flush()
    }

    fn checkpoint(&self, stream: &str) -> StoreResult<Option<Checkpoint>> {
        self.get(&self.checkpoints, "checkpoint", stream.as_bytes())
    }

    fn set_checkpoint(&self, stream: &str, checkpoint: Option<&Checkpoint>) -> StoreResult<()> {
        match checkpoint {
            Some(checkpoint) => self
                .checkpoints
                .insert(stream.as_bytes(), encode(checkpoint))?,
            None => self.checkpoints.remove(stream.as_bytes())?,
        };
        // No flush of its own: the next one carries it (sled keeps writes in order).
        Ok(())
    }

    fn synced(&self, stream: &str, source_id: &str) -> StoreResult<Option<Synced>> {
        self.state
            .get(key(Kind::Synced, stream, source_id))?
            .map(|bytes| entry::decode(source_id, &bytes))
            .transpose()
    }

    fn source_id(&self, stream: &str, target_id: &str) -> StoreResult<Option<String>> {
        if let Some(source_id) = self.state.get(key(Kind::TargetIndex, stream, target_id))? {
            return Ok(Some(String::from_utf8_lossy(&source_id).into_owned()));
        }
        // A record whose target id is its source id has no index entry.
        let same = self
            .state
            .get(key(Kind::Synced, stream, target_id))?
            .is_some_and(|bytes| entry::same_id(&bytes));
        Ok(same.then(|| target_id.to_string()))
    }

    fn mappings(&self, stream: &str) -> StoreResult<Vec<(String, String)>> {
        self.state
            .scan_prefix(prefix(Kind::Synced, stream))
            .map(|item| {
                let (k, v) = item?;
                let source_id = id_of(&k);
                let synced = entry::decode(&source_id, &v)?;
                Ok((source_id, synced.target_id))
            })
            .collect()
    }

    fn mapped_count(&self, stream: &str) -> StoreResult<u64> {
        self.count(Kind::Synced, stream)
    }

    fn record_decisions(&self, intents: &[Intent], conflicts: &[Conflict]) -> StoreResult<()> {
        if intents.is_empty() && conflicts.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        for intent in intents {
            batch.insert(
                key(Kind::Outbox, &intent.stream, &intent.key),
                encode(intent),
            );
        }
        let first = if conflicts.is_empty() {
            0
        } else {
            self.take_numbers(CONFLICT_COUNTER_KEY, conflicts.len() as u64)?
        };
        for (i, conflict) in conflicts.iter().enumerate() {
            let number = first + i as u64;
            batch.insert(
                key(Kind::Conflict, &conflict.stream, &format!("{number:020}")),
                encode(conflict),
            );
        }
        self.state.apply_batch(batch)?;
        self.flush()
    }

    fn pending_intents(&self, stream: &str) -> StoreResult<Vec<Intent>> {
        let mut intents: Vec<Intent> = self
            .scan::<Intent>(Kind::Outbox, "outbox item", stream)?
            .into_iter()
            .map(|(_, intent)| intent)
            .collect();
        intents.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        Ok(intents)
    }

    fn pending_count(&self, stream: &str) -> StoreResult<u64> {
        self.count(Kind::Outbox, stream)
    }

    fn mark(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.state.get(mark_key(name))?.map(|v| v.to_vec()))
    }

    fn complete_with_marks(
        &self,
        completions: &[Completion],
        marks: &[(String, Vec<u8>)],
    ) -> StoreResult<()> {
        if completions.is_empty() && marks.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        let mut pending = HashMap::new();
        for done in completions {
            self.complete_into(&mut batch, &mut pending, done)?;
        }
        for (name, value) in marks {
            batch.insert(mark_key(name), value.as_slice());
        }
        // One atomic batch: after a crash either all of it is there or none.
        self.state.apply_batch(batch)?;
        self.flush()
    }

    fn dead_letters(&self, stream: Option<&str>) -> StoreResult<Vec<DeadLetter>> {
        let entries = match stream {
            Some(stream) => self.state.scan_prefix(prefix(Kind::Dead, stream)),
            None => self.state.scan_prefix([Kind::Dead as u8]),
        };
        entries
            .values()
            .map(|v| decode("dead letter", &v?))
            .collect()
    }

    fn dead_letter(&self, stream: &str, source_id: &str) -> StoreResult<Option<DeadLetter>> {
        self.get(
            &self.state,
            "dead letter",
            &key(Kind::Dead, stream, source_id),
        )
    }

    fn remove_dead_letter(&self, stream: &str, source_id: &str) -> StoreResult<bool> {
        let removed = self
            .state
            .remove(key(Kind::Dead, stream, source_id))?
            .is_some();
        self.flush()?;
        Ok(removed)
    }

    fn defer(&self, stream: &str, source_id: &str, record: &Value) -> StoreResult<()> {
        self.state
            .insert(key(Kind::Waiting, stream, source_id), encode(record))?;
        self.flush()
    }

    fn deferred(&self, stream: &str) -> StoreResult<Vec<(String, Value)>> {
        self.scan(Kind::Waiting, "waiting record", stream)
    }

    fn undefer(&self, stream: &str, source_id: &str) -> StoreResult<()> {
        self.state.remove(key(Kind::Waiting, stream, source_id))?;
        Ok(())
    }

    fn start_run(&self, command: &str) -> StoreResult<RunRecord> {
        // A run still marked running belongs to a process that died: this store is
        // locked to one process, and that process is us.
        for entry in self.runs.iter() {
            let (k, v) = entry?;
            let mut run: RunRecord = decode("run", &v)?;
            if run.status == RunStatus::Running {
                run.status = RunStatus::Crashed;
                run.errors
                    .push("the process stopped before the run finished".into());
                self.runs.insert(k, encode(&run))?;
            }
        }
        let id = self.take_numbers(RUN_COUNTER_KEY, 1)?;
        let run = RunRecord {
            id,
            started_at: now_text(),
            ended_at: None,
            status: RunStatus::Running,
            command: command.to_string(),
            streams: Vec::new(),
            errors: Vec::new(),
        };
        self.runs.insert(id.to_be_bytes(), encode(&run))?;
        self.flush()?;
        Ok(run)
    }

    fn finish_run(&self, run: &RunRecord) -> StoreResult<()> {
        self.runs.insert(run.id.to_be_bytes(), encode(run))?;
        self.flush()
    }

    fn runs(&self, limit: usize) -> StoreResult<Vec<RunRecord>> {
        self.runs
            .iter()
            .values()
            .rev()
            .take(limit)
            .map(|v| decode("run", &v?))
            .collect()
    }

    fn reset_stream(&self, stream: &str) -> StoreResult<()> {
        let sides = [side_stream(stream, Side::A), side_stream(stream, Side::B)];
        for name in [stream, &sides[0], &sides[1]] {
            self.watermarks.remove(name.as_bytes())?;
            self.checkpoints.remove(name.as_bytes())?;
        }
        let mut batch = Batch::default();
        for kind in [
            Kind::Synced,
            Kind::TargetIndex,
            Kind::Outbox,
            Kind::Dead,
            Kind::Waiting,
            Kind::Conflict,
        ] {
            for k in self.state.scan_prefix(prefix(kind, stream)).keys() {
                batch.remove(k?);
            }
        }
        self.state.apply_batch(batch)?;
        self.flush()
    }

    fn conflicts(&self, stream: Option<&str>, limit: usize) -> StoreResult<Vec<Conflict>> {
        let entries = match stream {
            Some(stream) => self.state.scan_prefix(prefix(Kind::Conflict, stream)),
            None => self.state.scan_prefix([Kind::Conflict as u8]),
        };
        // Keys sort by stream, then by the sequence number the conflict was recorded
        // with; across streams, newest first means by run, time, then that number.
        let mut numbered: Vec<(String, Conflict)> = entries
            .map(|entry| {
                let (k, v) = entry?;
                Ok((id_of(&k), decode("conflict", &v)?))
            })
            .collect::<StoreResult<_>>()?;
        numbered.sort_by(|(n1, c1), (n2, c2)| (c2.run, &c2.at, n2).cmp(&(c1.run, &c1.at, n1)));
        Ok(numbered
            .into_iter()
            .take(limit)
            .map(|(_, conflict)| conflict)
            .collect())
    }

    fn load_token(&self, system: &str) -> StoreResult<Option<String>> {
        match self.tokens.get(system.as_bytes())? {
            None => Ok(None),
            Some(sealed) => {
                let plain = self.key.open(&sealed)?;
                String::from_utf8(plain)
                    .map(Some)
                    .map_err(|_| StoreError::Corrupt {
                        what: "token",
                        detail: "not text".into(),
                    })
            }
        }
    }

    fn save_token(&self, system: &str, token: &str) -> StoreResult<()> {
        let sealed = self.key.seal(token.as_bytes())?;
        self.tokens.insert(system.as_bytes(), sealed)?;
        self.flush()
    }
}

/// The store also keeps rotated OAuth refresh tokens, encrypted.
#[async_trait::async_trait]
impl crate::http::TokenStore for SledStore {
    async fn load_refresh_token(&self, system: &str) -> anyhow::Result<Option<String>> {
        Ok(self.load_token(system)?)
    }

    async fn save_refresh_token(&self, system: &str, token: &str) -> anyhow::Result<()> {
        Ok(self.save_token(system, token)?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::{Clash, Exchange, Operation};

    /// Opens a store this process just closed. sled releases its file lock from a
    /// background thread shortly after the last handle drops; another process never
    /// sees this, a test reopening in-process can.
    fn reopen(dir: &Path) -> StoreResult<SledStore> {
        for _ in 0..100 {
            match SledStore::open(dir) {
                Err(StoreError::Locked { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other,
            }
        }
        SledStore::open(dir)
    }

    fn intent(source_id: &str, key: &str) -> Intent {
        Intent {
            key: key.into(),
            stream: "contacts".into(),
            source_id: source_id.into(),
            op: Operation::Create,
            target_id: None,
            path: "/customers".into(),
            fields: json!({"email": "a@b"}),
            hash: "h1".into(),
            record: json!({"id": source_id}),
            created_at: now_text(),
            two_way: None,
        }
    }

    fn base() -> Base {
        Base {
            hash: "h1".into(),
            fields: json!({"email": "a@b"}),
            deleted: false,
        }
    }

    #[test]
    fn a_completed_intent_leaves_the_outbox_with_its_mapping_and_base() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .record_intents(&[intent("c1", "k1"), intent("c2", "k2")])
            .unwrap();
        assert_eq!(store.pending_count("contacts").unwrap(), 2);

        store
            .complete(&[Completion {
                stream: "contacts".into(),
                source_id: "c1".into(),
                intent_key: Some("k1".into()),
                outcome: Outcome::Synced {
                    target_id: "t1".into(),
                    base: base(),
                },
                may_have_dead_letter: true,
            }])
            .unwrap();
        assert_eq!(store.pending_count("contacts").unwrap(), 1);
        assert_eq!(store.pending_intents("contacts").unwrap()[0].key, "k2");
        assert_eq!(
            store.target_id("contacts", "c1").unwrap().as_deref(),
            Some("t1")
        );
        assert_eq!(
            store.source_id("contacts", "t1").unwrap().as_deref(),
            Some("c1")
        );
        assert_eq!(store.base("contacts", "c1").unwrap(), Some(base()));
        assert_eq!(store.mapped_count("contacts").unwrap(), 1);
    }

    fn conflict(stream: &str, field: &str, run: u64) -> Conflict {
        Conflict {
            stream: stream.into(),
            a_id: "a1".into(),
            b_id: "b1".into(),
            clash: Clash {
                field: field.into(),
                a: json!("from a"),
                b: json!("from b"),
                base_a: json!("before"),
                base_b: json!("before"),
                winner: Side::A,
                rule: "last_write_wins (a newer)".into(),
                rejected: false,
                a_updated_at: Some("2026-12-04T09:59:58Z".into()),
                b_updated_at: Some("2026-12-04T09:59:50Z".into()),
            },
            run,
            at: "2026-12-04T10:00:00Z".into(),
        }
    }

    #[test]
    fn conflicts_are_recorded_with_their_writes_and_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store
            .record_decisions(
                &[intent("c1", "k1")],
                &[
                    conflict("contacts", "email", 1),
                    conflict("contacts", "plan", 1),
                ],
            )
            .unwrap();
        store
            .record_decisions(&[], &[conflict("deals", "stage", 2)])
            .unwrap();
        assert_eq!(store.pending_count("contacts").unwrap(), 1);

        let fields = |list: Vec<Conflict>| -> Vec<String> {
            list.into_iter().map(|c| c.clash.field).collect()
        };
        // Same run and time: the one recorded later comes first.
        assert_eq!(
            fields(store.conflicts(None, 10).unwrap()),
            ["stage", "plan", "email"]
        );
        assert_eq!(
            fields(store.conflicts(Some("contacts"), 10).unwrap()),
            ["plan", "email"]
        );
        assert_eq!(fields(store.conflicts(None, 1).unwrap()), ["stage"]);
        assert!(store.conflicts(Some("orders"), 10).unwrap().is_empty());
    }

    fn paired(a: Option<Value>, b: Option<Value>) -> Completion {
        Completion::new(
            "contacts",
            "a1",
            None,
            Outcome::Paired {
                b_id: "b1".into(),
                a,
                b,
                deleted: false,
            },
        )
    }

    #[test]
    fn a_pair_keeps_one_base_per_side_even_when_both_complete_in_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        // A write to b and the read of a settle the same pair in one transaction.
        store
            .complete(&[
                paired(None, Some(json!({"email": "x@b"}))),
                paired(Some(json!({"email": "x@a"})), None),
            ])
            .unwrap();
        let base = store.base("contacts", "a1").unwrap().unwrap();
        assert_eq!(
            base.fields,
            json!({"a": {"email": "x@a"}, "b": {"email": "x@b"}})
        );
        assert_eq!(
            store.source_id("contacts", "b1").unwrap().as_deref(),
            Some("a1")
        );

        // A later write to one side leaves the other side's base alone.
        store
            .complete(&[paired(None, Some(json!({"email": "y@b"})))])
            .unwrap();
        let base = store.base("contacts", "a1").unwrap().unwrap();
        assert_eq!(
            base.fields,
            json!({"a": {"email": "x@a"}, "b": {"email": "y@b"}})
        );
        assert_eq!(base.hash, crate::sync::mapper::hash(&base.fields));
    }

    #[test]
    fn resetting_a_stream_clears_both_sides_watermarks_and_its_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mark = Watermark {
            value: "2026-12-04T10:00:00Z".into(),
        };
        for side in [Side::A, Side::B] {
            store
                .set_watermark(&side_stream("contacts", side), &mark)
                .unwrap();
            store
                .set_watermark(&side_stream("deals", side), &mark)
                .unwrap();
        }
        store
            .record_decisions(
                &[],
                &[
                    conflict("contacts", "email", 1),
                    conflict("deals", "stage", 1),
                ],
            )
            .unwrap();
        store
            .complete(&[paired(Some(json!({})), Some(json!({})))])
            .unwrap();

        store.reset_stream("contacts").unwrap();
        for side in [Side::A, Side::B] {
            assert_eq!(
                store.watermark(&side_stream("contacts", side)).unwrap(),
                None
            );
            assert_eq!(
                store.watermark(&side_stream("deals", side)).unwrap(),
                Some(mark.clone())
            );
        }
        assert!(store.conflicts(Some("contacts"), 10).unwrap().is_empty());
        assert_eq!(store.conflicts(Some("deals"), 10).unwrap().len(), 1);
        assert_eq!(store.base("contacts", "a1").unwrap(), None);
        assert_eq!(store.source_id("contacts", "b1").unwrap(), None);
    }

    #[test]
    fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.record_intents(&[intent("c1", "k1")]).unwrap();
            store
                .set_watermark(
                    "contacts",
                    &Watermark {
                        value: "2026-01-01T00:00:00Z".into(),
                    },
                )
                .unwrap();
            store.save_token("crm", "refresh-abc").unwrap();
        }
        let store = reopen(dir.path()).unwrap();
        assert_eq!(store.pending_intents("contacts").unwrap().len(), 1);
        assert_eq!(
            store.watermark("contacts").unwrap().unwrap().value,
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            store.load_token("crm").unwrap().as_deref(),
            Some("refresh-abc")
        );
    }

    #[test]
    fn a_second_process_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        let error = SledStore::open(dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("in use by another runner"),
            "{error}"
        );
    }

    #[test]
    fn a_store_from_a_newer_runner_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store
                .meta
                .insert(FORMAT_KEY, encode(&(FORMAT_VERSION + 1)))
                .unwrap();
            store.flush().unwrap();
        }
        let error = reopen(dir.path()).unwrap_err();
        assert!(
            error.to_string().contains("written by a newer runner"),
            "{error}"
        );
    }

    #[test]
    fn dead_letters_and_unmapping() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let letter = DeadLetter {
            stream: "contacts".into(),
            source_id: "c9".into(),
            reason: "422".into(),
            in_doubt: false,
            exchange: Some(Exchange {
                method: "POST".into(),
                url: "http://x/customers".into(),
                body: json!({}),
                status: Some(422),
                response: Some("{\"error\":\"email\"}".into()),
            }),
            attempts: 1,
            first_at: now_text(),
            last_at: now_text(),
            record: json!({"id": "c9"}),
        };
        store
            .complete(&[Completion {
                stream: "contacts".into(),
                source_id: "c9".into(),
                intent_key: None,
                outcome: Outcome::DeadLettered(Box::new(letter.clone())),
                may_have_dead_letter: true,
            }])
            .unwrap();
        assert_eq!(
            store.dead_letters(Some("contacts")).unwrap(),
            vec![letter.clone()]
        );
        assert_eq!(letter.id(), "contacts/c9");
        // A later success clears the dead letter.
        store
            .complete(&[Completion {
                stream: "contacts".into(),
                source_id: "c9".into(),
                intent_key: None,
                outcome: Outcome::Synced {
                    target_id: "t9".into(),
                    base: base(),
                },
                may_have_dead_letter: true,
            }])
            .unwrap();
        assert!(store.dead_letters(None).unwrap().is_empty());
        store
            .complete(&[Completion {
                stream: "contacts".into(),
                source_id: "c9".into(),
                intent_key: None,
                outcome: Outcome::Unmapped,
                may_have_dead_letter: true,
            }])
            .unwrap();
        assert_eq!(store.target_id("contacts", "c9").unwrap(), None);
        assert_eq!(store.source_id("contacts", "t9").unwrap(), None);
    }

    #[test]
    fn runs_left_running_are_marked_crashed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let first = store.start_run("apply").unwrap();
        let second = store.start_run("apply").unwrap();
        assert_eq!(second.id, first.id + 1);
        let runs = store.runs(10).unwrap();
        assert_eq!(runs[0].id, second.id);
        assert_eq!(runs[1].status, RunStatus::Crashed);
    }

    #[test]
    fn tokens_are_not_stored_in_clear_text() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store
                .save_token("crm", "very-secret-refresh-token")
                .unwrap();
        }
        for entry in walk(dir.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !bytes.windows(11).any(|w| w == b"very-secret"),
                "{} holds the token in clear text",
                entry.display()
            );
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
        files
    }
}
