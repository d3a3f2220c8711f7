//! Deciding what each source record needs: nothing, a create, an update, a link to
//! an existing target record, a wait for a reference, or a dead letter.

use super::*;

impl StreamRun<'_> {
    /// Decides, records and sends the writes of a batch of source records.
    pub(super) async fn process(
        &mut self,
        records: Vec<Value>,
        listed: bool,
    ) -> Result<(), SyncError> {
        let mut decisions = Vec::with_capacity(records.len());
        let mut first_contacts = Vec::new();
        self.counts.read += records.len() as u64;
        self.progress.read(records.len() as u64);
        for record in records {
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
                Decision::Line {
                    source_id,
                    mapped,
                    known,
                } => lines.push((source_id, mapped, known)),
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
    pub(super) fn decide(&mut self, record: Value, listed: bool) -> Result<Decision, SyncError> {
        let Some(source_id) = self
            .id_path
            .first(&record)
            .and_then(crate::sync::target::id_text)
        else {
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
        if let (Some((refused, in_doubt)), false) = (self.refused.get(&source_id), self.retrying) {
            // In doubt: it may exist on the target; a person decides. Refused and
            // unchanged since: it would be refused again. A change, or `dead-letters
            // retry`, sends it.
            if *in_doubt || refused == &record {
                return Ok(Decision::Skip);
            }
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
        if let Some(file) = &self.jsonl {
            if file.unchanged(&source_id, &mapped.hash) {
                return Ok(Decision::Unchanged);
            }
            let known = file.known(&source_id);
            return Ok(Decision::Line {
                source_id,
                mapped,
                known,
            });
        }
        let synced = self.store.synced(&self.name, &source_id)?;
        if synced
            .as_ref()
            .is_some_and(|s| s.base.hash == mapped.hash && !s.base.deleted)
        {
            return Ok(Decision::Unchanged);
        }
        if self.pending.contains(&source_id) {
            // A write of it is still in doubt in the outbox; the next run resolves it.
            return Ok(Decision::Skip);
        }
        match synced {
            Some(synced) => Ok(Decision::Write(self.intent(
                Operation::Update,
                &source_id,
                Some(synced.target_id),
                mapped,
                record,
                Some(&synced.base.hash),
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
    pub(super) async fn first_contacts(
        &mut self,
        records: Vec<(String, Mapped, Value)>,
    ) -> Result<Vec<Decision>, SyncError> {
        let Target::Http(target) = &self.target else {
            return Ok(records
                .into_iter()
                .map(|(source_id, mapped, _)| Decision::Line {
                    source_id,
                    mapped,
                    known: false,
                })
                .collect());
        };
        let match_on = target.spec().match_on.clone();
        let mut found: Vec<Option<Found>> = vec![None; records.len()];
        if !match_on.is_empty() && target.can_find() {
            // Unordered, so one lookup waiting out a Retry-After does not hold up the
            // others; each answer goes back to its record's place.
            let answers: Vec<(usize, Option<Found>)> = stream::iter(records.iter().enumerate())
                .map(|(i, (_, mapped, _))| {
                    let values = mapped.fields.as_object().cloned().unwrap_or_default();
                    let match_on = &match_on;
                    async move { target.find(match_on, &values, false).await.map(|f| (i, f)) }
                })
                .buffer_unordered(target.spec().max_in_flight)
                .try_collect()
                .await?;
            for (i, answer) in answers {
                found[i] = answer;
            }
        }
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
    pub(super) fn link(
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
    pub(super) fn intent(
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
            two_way: None,
        })
    }
}
