//! Pairing records across the sides and deciding what each pair needs: nothing, a
//! base refresh, writes to one side or both (with the conflicts that decided them), or
//! a create on the side that lacks the record.

use futures_util::{stream, StreamExt, TryStreamExt};
use serde_json::{Map, Value};

use super::merge::{merge, Merged, Reason, Write};
use super::*;
use crate::store::{Conflict, Intent, Operation, Synced, TwoWayWrite};
use crate::sync::decide::intent_key;
use crate::sync::plan::{FieldChange, PlannedWrite};
use crate::sync::target::Found;
use crate::template::to_value;

/// Two records that belong together (either may be unknown yet), and their stored
/// pair if they have one.
#[derive(Debug)]
pub(super) struct Pair {
    pub a: Option<Read>,
    pub b: Option<Read>,
    pub a_id: Option<String>,
    pub b_id: Option<String>,
    pub synced: Option<Synced>,
}

impl Pair {
    fn first_contact(a: Option<Read>, b: Option<Read>) -> Pair {
        Pair {
            a_id: a.as_ref().map(|r| r.id.clone()),
            b_id: b.as_ref().map(|r| r.id.clone()),
            a,
            b,
            synced: None,
        }
    }

    /// How the outbox and dead letters name the pair: by its a id once it has one.
    pub fn id(&self) -> String {
        match (&self.a_id, &self.b_id) {
            (Some(a), _) => side_record_id(Side::A, a),
            (None, Some(b)) => side_record_id(Side::B, b),
            (None, None) => String::new(),
        }
    }

    /// Both records as read, labelled, for dead letters and retries.
    fn records(&self) -> Value {
        let record = |r: &Option<Read>| r.as_ref().map_or(Value::Null, |r| r.record.clone());
        json!({ "a": record(&self.a), "b": record(&self.b) })
    }

    pub fn id_of(&self, side: Side) -> Option<&String> {
        match side {
            Side::A => self.a_id.as_ref(),
            Side::B => self.b_id.as_ref(),
        }
    }

    fn read(&self, side: Side) -> Option<&Read> {
        match side {
            Side::A => self.a.as_ref(),
            Side::B => self.b.as_ref(),
        }
    }
}

/// What a group of pairs needs from the store and the systems.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    pub intents: Vec<Intent>,
    pub settled: Vec<Completion>,
    pub conflicts: Vec<Conflict>,
}

impl TwoWayRun<'_> {
    /// Merges a batch of side a records with their b records (taken out of
    /// `changes`), finding a partner on b for records seen for the first time.
    pub(super) async fn merge_a_batch(
        &mut self,
        reads: Vec<Read>,
        changes: &mut Changes,
    ) -> Result<(), SyncError> {
        let mut pairs = Vec::with_capacity(reads.len());
        let mut strangers = Vec::new();
        for read in reads {
            if self.pending.contains(&side_record_id(Side::A, &read.id)) {
                continue;
            }
            if let Some(synced) = self.store.synced(&self.name, &read.id)? {
                pairs.push(Pair {
                    a_id: Some(read.id.clone()),
                    b_id: Some(synced.target_id.clone()),
                    b: changes.take(&synced.target_id),
                    a: Some(read),
                    synced: Some(synced),
                });
                continue;
            }
            let key = side::match_key(&read.values.values, &self.config.match_on);
            match key.and_then(|key| changes.take_match(&key)) {
                Some(b) if self.unpaired(Side::B, &b.id)? => {
                    self.claim(Side::B, &b.id);
                    pairs.push(Pair::first_contact(Some(read), Some(b)));
                }
                Some(b) => {
                    // Paired with another a record already: it is merged on its own.
                    changes.by_id.insert(b.id.clone(), b);
                    strangers.push(read);
                }
                None => strangers.push(read),
            }
        }
        pairs.extend(self.partners(Side::B, strangers).await?);
        self.decide_and_send(pairs).await
    }

    /// Merges side b records no a record of this run claimed.
    pub(super) async fn merge_b(&mut self, reads: Vec<Read>) -> Result<(), SyncError> {
        let mut pairs = Vec::with_capacity(reads.len());
        let mut strangers = Vec::new();
        for read in reads {
            if self.pending.contains(&side_record_id(Side::B, &read.id)) {
                continue;
            }
            match self.store.source_id(&self.name, &read.id)? {
                Some(a_id) => {
                    let synced = self.store.synced(&self.name, &a_id)?;
                    pairs.push(Pair {
                        a: None,
                        a_id: Some(a_id),
                        b_id: Some(read.id.clone()),
                        b: Some(read),
                        synced,
                    });
                }
                None => strangers.push(read),
            }
        }
        pairs.extend(self.partners(Side::A, strangers).await?);
        self.decide_and_send(pairs).await
    }

    /// Records seen for the first time, each with the record on `on` it matches
    /// (`match_on`, looked up concurrently) — or alone, to be created there.
    async fn partners(&mut self, on: Side, strangers: Vec<Read>) -> Result<Vec<Pair>, SyncError> {
        let spec = self.side(on);
        let mut found: Vec<Option<Found>> = vec![None; strangers.len()];
        if spec.can_match() && !strangers.is_empty() {
            let fields = spec.match_fields();
            let answers: Vec<(usize, Option<Found>)> = stream::iter(strangers.iter().enumerate())
                .filter_map(|(i, read)| {
                    let values = spec.match_values(&read.values.values);
                    async move { values.map(|v| (i, v)) }
                })
                .map(|(i, values)| {
                    let fields = &fields;
                    async move {
                        let found = spec.target.find(fields, &values, false).await?;
                        Ok::<_, SyncError>((i, found))
                    }
                })
                .buffer_unordered(spec.target.spec().max_in_flight)
                .try_collect()
                .await?;
            for (i, answer) in answers {
                found[i] = answer;
            }
        }
        let mut pairs = Vec::with_capacity(strangers.len());
        for (read, found) in strangers.into_iter().zip(found) {
            let partner = match found {
                Some(found) if self.unpaired(on, &found.target_id)? => {
                    self.claim(on, &found.target_id);
                    Some(Read {
                        values: self.side(on).values(&found.record),
                        id: found.target_id,
                        record: found.record,
                    })
                }
                Some(found) => {
                    tracing::warn!(stream = %self.name, id = %read.id, matched = %found.target_id, "matches a record that is paired with another; creating a new one instead is refused");
                    self.refuse(on.other(), read, format!(
                        "matches side {} record {} on {}, which is already paired with another record",
                        on.as_str(),
                        found.target_id,
                        self.config.match_on.join(", ")
                    ))?;
                    continue;
                }
                None => None,
            };
            pairs.push(match on {
                Side::B => Pair::first_contact(Some(read), partner),
                Side::A => Pair::first_contact(partner, Some(read)),
            });
        }
        Ok(pairs)
    }

    /// Whether a record on `side` has no partner yet (in the store or this run).
    fn unpaired(&self, side: Side, id: &str) -> Result<bool, SyncError> {
        if self.claimed.contains(&side_record_id(side, id)) {
            return Ok(false);
        }
        Ok(match side {
            Side::A => self.store.synced(&self.name, id)?.is_none(),
            Side::B => self.store.source_id(&self.name, id)?.is_none(),
        })
    }

    fn claim(&mut self, side: Side, id: &str) {
        self.claimed.insert(side_record_id(side, id));
    }

    /// Dead-letters a record that cannot be paired.
    fn refuse(&mut self, side: Side, read: Read, reason: String) -> Result<(), SyncError> {
        let id = side_record_id(side, &read.id);
        self.counts.dead_lettered += 1;
        if self.dry() {
            self.plan.dead_letters.push((id, reason));
            return Ok(());
        }
        let letter = dead_letter(&self.name, &id, reason, None, labelled(side, &read.record));
        self.store.complete(&[Completion::new(
            &self.name,
            &id,
            None,
            Outcome::DeadLettered(letter),
        )])?;
        Ok(())
    }

    /// Decides every pair, then records and sends the writes (or, in a dry run, notes
    /// them in the plan).
    pub(super) async fn decide_and_send(&mut self, pairs: Vec<Pair>) -> Result<(), SyncError> {
        let mut out = Outgoing::default();
        for pair in pairs {
            self.decide(pair, &mut out)?;
        }
        if self.dry() {
            self.plan.conflicts.extend(out.conflicts);
            return Ok(());
        }
        self.store.complete(&out.settled)?;
        self.store.record_decisions(&out.intents, &out.conflicts)?;
        self.execute(out.intents, false).await
    }

    /// What one pair needs.
    fn decide(&mut self, pair: Pair, out: &mut Outgoing) -> Result<(), SyncError> {
        if pair.synced.as_ref().is_some_and(|s| s.base.deleted) {
            // One side was deleted and the other soft-deleted: nothing more to sync.
            self.unchanged();
            return Ok(());
        }
        if pair.synced.is_none() {
            match (&pair.a, &pair.b) {
                (Some(_), None) => return self.create(Side::B, pair, out),
                (None, Some(_)) => return self.create(Side::A, pair, out),
                _ => {}
            }
        }
        let (base_a, base_b) = bases(pair.synced.as_ref());
        let values = |r: &Option<Read>| r.as_ref().map(|r| r.values.clone());
        let (now_a, now_b) = (values(&pair.a), values(&pair.b));
        let merged = merge(
            &self.rules,
            now_a.as_ref(),
            now_b.as_ref(),
            &base_a,
            &base_b,
            self.clock_skew,
        );
        let (Some(a_id), Some(b_id)) = (pair.a_id.clone(), pair.b_id.clone()) else {
            return Ok(());
        };
        self.log_clashes(&merged, &a_id, &b_id, out);
        let first_contact = pair.synced.is_none();
        if first_contact {
            self.counts.linked += 1;
        }
        if !merged.writes() {
            if first_contact || merged.after_a != base_a || merged.after_b != base_b {
                // Nothing to write, but the base moves to what the sides hold now.
                if first_contact && self.dry() {
                    self.plan.links.push((a_id.clone(), b_id.clone()));
                }
                out.settled.push(Completion::new(
                    &self.name,
                    &a_id,
                    None,
                    Outcome::Paired {
                        b_id,
                        a: Some(Value::Object(merged.after_a)),
                        b: Some(Value::Object(merged.after_b)),
                        deleted: false,
                    },
                ));
            }
            if !first_contact {
                self.unchanged();
            }
            return Ok(());
        }
        let base_hash = pair.synced.as_ref().map(|s| s.base.hash.clone());
        for side in [Side::A, Side::B] {
            let (writes, after, other_writes, other_after) = match side {
                Side::A => (&merged.to_a, &merged.after_a, &merged.to_b, &merged.after_b),
                Side::B => (&merged.to_b, &merged.after_b, &merged.to_a, &merged.after_a),
            };
            if writes.is_empty() {
                continue;
            }
            let body = self
                .side(side)
                .body(writes.iter().map(|w| (w.field.as_str(), &w.value)));
            let target_id = pair.id_of(side).cloned();
            let write = TwoWayWrite {
                side,
                a_id: Some(a_id.clone()),
                b_id: Some(b_id.clone()),
                after: Value::Object(after.clone()),
                // The other side's base moves with this write only if it gets no
                // write of its own (which then brings its own).
                other: other_writes
                    .is_empty()
                    .then(|| Value::Object(other_after.clone())),
            };
            let intent = self.intent(
                Operation::Update,
                &pair,
                target_id,
                body,
                write,
                base_hash.as_deref(),
            )?;
            if self.dry() {
                let before = pair.read(side).map_or_else(
                    || match side {
                        Side::A => base_a.clone(),
                        Side::B => base_b.clone(),
                    },
                    |r| r.values.values.clone(),
                );
                self.plan_write(&intent, &pair, side, writes, &before);
            }
            out.intents.push(intent);
        }
        Ok(())
    }

    /// A record only one side has: create it on `on`, with every shared field.
    fn create(&mut self, on: Side, pair: Pair, out: &mut Outgoing) -> Result<(), SyncError> {
        let Some(from) = pair.read(on.other()).cloned() else {
            return Ok(());
        };
        if side_config(self.config, on).writes.create.is_none() {
            return self.refuse(
                on.other(),
                from,
                format!(
                    "side {} has no `create` request, so a record new on side {} cannot be created there",
                    on.as_str(),
                    on.other().as_str()
                ),
            );
        }
        let values = &from.values.values;
        let mut body = self.side(on).body(
            values
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.as_str(), v)),
        );
        if let (Some(field), Value::Object(fields)) =
            (&side_config(self.config, on).writes.external_id, &mut body)
        {
            // Where the other side's id is kept, to find an in-doubt create again.
            fields.insert(field.clone(), Value::String(from.id.clone()));
        }
        let write = TwoWayWrite {
            side: on,
            a_id: pair.a_id.clone(),
            b_id: pair.b_id.clone(),
            after: Value::Object(values.clone()),
            other: Some(Value::Object(values.clone())),
        };
        let intent = self.intent(Operation::Create, &pair, None, body, write, None)?;
        if self.dry() {
            let writes: Vec<Write> = values
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(field, value)| Write {
                    field: field.clone(),
                    value: value.clone(),
                    reason: Reason::New,
                    rule: format!("new on {}", on.other().as_str()),
                })
                .collect();
            self.plan_write(&intent, &pair, on, &writes, &Map::new());
        }
        out.intents.push(intent);
        Ok(())
    }

    /// An intended write to a side, its request path rendered now.
    pub(super) fn intent(
        &self,
        op: Operation,
        pair: &Pair,
        target_id: Option<String>,
        body: Value,
        write: TwoWayWrite,
        base_hash: Option<&str>,
    ) -> Result<Intent, SyncError> {
        let target = &self.side(write.side).target;
        let pair_id = pair.id();
        let record = pair.records();
        let mut context = vec![
            ("record", to_value(&record)),
            ("fields", to_value(&body)),
            ("source_id", to_value(&pair_id)),
            ("now", to_value(&self.now)),
        ];
        let target_id = match op {
            Operation::Create => target.assigned_id(&context).map_err(SyncError::Setup)?,
            _ => target_id,
        };
        if let Some(id) = &target_id {
            context.push(("target_id", to_value(id)));
        }
        let path = target.render_path(op, &context).map_err(SyncError::Setup)?;
        let body_hash = hash(&body);
        // One key per pair, side, operation and content: the writes to a and to b of
        // the same decision differ.
        let keyed = format!("{pair_id}>{}", write.side.as_str());
        Ok(Intent {
            key: intent_key(&self.name, &keyed, op, &body_hash, base_hash),
            stream: self.name.clone(),
            source_id: pair_id,
            op,
            target_id,
            path,
            fields: body,
            hash: body_hash,
            record,
            created_at: crate::store::now_text(),
            two_way: Some(Box::new(write)),
        })
    }

    /// Logs each clash, counts it and adds it to the conflict log.
    fn log_clashes(&mut self, merged: &Merged, a_id: &str, b_id: &str, out: &mut Outgoing) {
        for clash in &merged.clashes {
            if clash.rejected {
                self.counts.rejected += 1;
                tracing::info!(stream = %self.name, a_id, b_id, field = %clash.field, winner = clash.winner.as_str(), rule = %clash.rule, "rejected change: edited on the side that does not own the field, put back");
            } else {
                self.counts.conflicts += 1;
                tracing::info!(stream = %self.name, a_id, b_id, field = %clash.field, winner = clash.winner.as_str(), rule = %clash.rule, "conflict settled");
            }
            out.conflicts.push(Conflict {
                stream: self.name.clone(),
                a_id: a_id.to_string(),
                b_id: b_id.to_string(),
                clash: clash.clone(),
                run: self.run_id,
                at: self.now.clone(),
            });
        }
    }

    fn unchanged(&mut self) {
        self.counts.unchanged += 1;
        if self.dry() {
            self.plan.unchanged += 1;
        }
    }

    /// Notes a write in the plan, with its direction and each field's rule.
    fn plan_write(
        &mut self,
        intent: &Intent,
        pair: &Pair,
        to: Side,
        writes: &[Write],
        before: &Map<String, Value>,
    ) {
        let from = to.other();
        let planned = PlannedWrite {
            source_id: pair
                .id_of(from)
                .map(|id| side_record_id(from, id))
                .unwrap_or_else(|| pair.id()),
            target_id: intent.target_id.clone(),
            path: intent.path.clone(),
            changes: writes
                .iter()
                .map(|w| FieldChange {
                    field: w.field.clone(),
                    before: before.get(&w.field).cloned().unwrap_or(Value::Null),
                    after: w.value.clone(),
                    rule: Some(describe(w)),
                })
                .collect(),
            direction: Some(format!("{} → {}", from.as_str(), to.as_str())),
        };
        match intent.op {
            Operation::Create => self.plan.creates.push(planned),
            Operation::Update => self.plan.updates.push(planned),
            Operation::Delete | Operation::SoftDelete => self.plan.deletes.push(planned),
        }
    }
}

/// Why a value is written, for people.
fn describe(write: &Write) -> String {
    match write.reason {
        Reason::Changed => write.rule.clone(),
        Reason::Rejected => format!("reverted: {}", write.rule),
        Reason::Conflict => format!("conflict: {}", write.rule),
        Reason::New => write.rule.clone(),
    }
}

/// Each side's base of a stored pair (empty before the first sync).
fn bases(synced: Option<&Synced>) -> (Map<String, Value>, Map<String, Value>) {
    let side = |name: &str| {
        synced
            .and_then(|s| s.base.fields.get(name))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    (side("a"), side("b"))
}
