//! Deletes: what the source no longer has, under the mass-delete guard.

use super::*;

impl StreamRun<'_> {
    /// `--full` listing, mapped records it did not list — unless that is more than
    /// `max_delete_fraction` of the stream and `--allow-mass-delete` was not given.
    pub(super) async fn apply_deletes(&mut self) -> Result<(), SyncError> {
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
}
