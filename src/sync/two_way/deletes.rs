//! Deletes on either side: a record deleted on one side (a tombstone, or missing from
//! a `--full` listing) follows the stream's `deletes` rule on the other — soft-deleted
//! there, deleted there, or left alone — under the mass-delete guard.

use super::pairs::Pair;
use super::*;
use crate::config::stream::DeleteMode;
use crate::store::{Base, Operation, TwoWayWrite};
use crate::sync::plan::PlannedWrite;

/// A pair one side of which is gone.
struct Gone {
    /// The side the record was deleted on.
    side: Side,
    a_id: String,
    b_id: String,
    base: Base,
}

impl TwoWayRun<'_> {
    pub(super) async fn apply_deletes(&mut self) -> Result<(), SyncError> {
        let mode = self.config.settings.deletes;
        let gone = self.gone()?;
        if mode == DeleteMode::Ignore || gone.is_empty() {
            return Ok(());
        }
        let mapped = self.store.mapped_count(&self.name)?.max(1);
        let share = gone.len() as f64 / mapped as f64;
        let limit = self.config.settings.max_delete_fraction;
        if share > limit.fraction() && !self.options.allow_mass_delete {
            let error = SyncError::MassDelete {
                stream: self.name.clone(),
                deletes: gone.len() as u64,
                mapped,
                limit: limit.to_string(),
            };
            if self.dry() {
                self.plan.error = Some(format!("apply would stop here: {error}"));
                return Ok(());
            }
            return Err(error);
        }
        let op = match mode {
            DeleteMode::Hard => Operation::Delete,
            _ => Operation::SoftDelete,
        };
        let mut intents = Vec::with_capacity(gone.len());
        for Gone {
            side,
            a_id,
            b_id,
            base,
        } in gone
        {
            let to = side.other();
            let kept = base.fields.get(to.as_str()).cloned().unwrap_or(Value::Null);
            let pair = Pair {
                a: None,
                b: None,
                a_id: Some(a_id.clone()),
                b_id: Some(b_id.clone()),
                synced: None,
            };
            let target_id = match to {
                Side::A => a_id,
                Side::B => b_id,
            };
            let write = TwoWayWrite {
                side: to,
                a_id: pair.a_id.clone(),
                b_id: pair.b_id.clone(),
                after: kept.clone(),
                other: None,
            };
            let body = match op {
                Operation::SoftDelete => kept,
                _ => Value::Null,
            };
            let intent = self.intent(op, &pair, Some(target_id), body, write, Some(&base.hash))?;
            if self.dry() {
                self.plan.deletes.push(PlannedWrite {
                    source_id: side_record_id(side, pair.id_of(side).map_or("", String::as_str)),
                    target_id: intent.target_id.clone(),
                    path: intent.path.clone(),
                    changes: Vec::new(),
                    direction: Some(format!("{} → {}", side.as_str(), to.as_str())),
                });
            }
            intents.push(intent);
        }
        if self.dry() {
            return Ok(());
        }
        self.store.record_intents(&intents)?;
        self.execute(intents, false).await
    }

    /// Pairs with a side deleted this run (pairs already settled as deleted left out).
    fn gone(&mut self) -> Result<Vec<Gone>, SyncError> {
        let mut found: IndexMap<String, Gone> = IndexMap::new();
        for (side, id) in std::mem::take(&mut self.tombstoned) {
            let a_id = match side {
                Side::A => Some(id),
                Side::B => self.store.source_id(&self.name, &id)?,
            };
            if let Some(a_id) = a_id {
                found.extend(self.pair_gone(side, a_id)?.map(|g| (g.a_id.clone(), g)));
            }
        }
        if self.options.full {
            for (a_id, b_id) in self.store.mappings(&self.name)? {
                let side = match (self.seen_a.contains(&a_id), self.seen_b.contains(&b_id)) {
                    (true, true) => continue,
                    (false, _) => Side::A,
                    (true, false) => Side::B,
                };
                if !found.contains_key(&a_id) {
                    found.extend(self.pair_gone(side, a_id)?.map(|g| (g.a_id.clone(), g)));
                }
            }
        }
        Ok(found.into_values().filter(|g| !g.base.deleted).collect())
    }

    /// The pair of `a_id`, gone on `side`, as last synced (none if it is not paired).
    fn pair_gone(&self, side: Side, a_id: String) -> Result<Option<Gone>, SyncError> {
        Ok(self.store.synced(&self.name, &a_id)?.map(|synced| Gone {
            side,
            a_id,
            b_id: synced.target_id,
            base: synced.base,
        }))
    }
}
