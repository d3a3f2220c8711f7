//! Sending intents and settling their answers: concurrent writes with group commits,
//! JSON-lines appends, and the resolution of in-doubt creates.

use super::*;
use crate::sync::group_commit::GroupCommit;

impl StreamRun<'_> {
    /// Sends intents concurrently (up to the target's `max_in_flight`, under its
    /// limiter) and commits their completions in groups. `recovering` marks intents of
    /// an earlier run: a create among them is in doubt until resolved.
    pub(super) async fn execute(
        &mut self,
        intents: Vec<Intent>,
        recovering: bool,
    ) -> Result<(), SyncError> {
        if intents.is_empty() {
            return Ok(());
        }
        let Target::Http(target) = &self.target else {
            return Ok(());
        };
        let (counts, progress, started, refused) = (
            &mut self.counts,
            &mut self.progress,
            self.started,
            &self.refused,
        );
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
        let mut commits = GroupCommit::new(Arc::clone(&store));
        let mut stop = None;
        let mut unresolved = 0u64;
        let mut still_pending = Vec::new();
        while let Some(result) = results.next().await {
            match result {
                Ok(Sent {
                    done: None,
                    source_id,
                    ..
                }) => {
                    unresolved += 1;
                    still_pending.push(source_id);
                }
                Ok(Sent {
                    done: Some(mut done),
                    op,
                    ..
                }) => {
                    done.may_have_dead_letter = refused.contains_key(&done.source_id);
                    count(counts, &done, Some(op));
                    progress.written(1);
                    commits.push(done).await?;
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
        commits.finish().await?;
        if let Some(error) = stop {
            return Err(error);
        }
        self.unresolved += unresolved;
        self.pending.extend(still_pending);
        Ok(())
    }

    /// Appends changed records to a JSON-lines target and commits them with the file's
    /// new length, in one transaction.
    /// `lines` are (source id, fields, whether an earlier line had the record).
    pub(super) fn write_lines(
        &mut self,
        lines: Vec<(String, Mapped, bool)>,
    ) -> Result<(), SyncError> {
        let Some(file) = self.jsonl.as_mut() else {
            return Ok(());
        };
        let mark = file.append(&lines)?;
        self.store.complete_with_marks(&[], &[mark])?;
        for (source_id, _, known) in &lines {
            if *known {
                self.counts.updated += 1;
            } else {
                self.counts.created += 1;
            }
            // A record that was refused before is through now.
            if self.refused.remove(source_id).is_some() {
                self.store.remove_dead_letter(&self.name, source_id)?;
            }
        }
        self.progress.written(lines.len() as u64);
        Ok(())
    }
}

/// What became of one intent: its completion — `None` when it stays in the outbox.
pub(in crate::sync) struct Sent {
    pub done: Option<Completion>,
    pub op: Operation,
    pub source_id: String,
}

/// Sends one intent and turns the answer into its completion. Errors stop the stream
/// (the intent stays in the outbox): reconnect, retries exhausted, store failures.
/// `recovering_since` is the start of this run when the intent was left by an
/// earlier one: whatever that run sent, it sent before this moment.
pub(in crate::sync) async fn write(
    target: &HttpTarget,
    stream: &str,
    intent: Intent,
    recovering_since: Option<Instant>,
    deletes: DeleteMode,
) -> Result<Sent, SyncError> {
    let op = intent.op;
    let source_id = intent.source_id.clone();
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
    Ok(Sent {
        done,
        op,
        source_id,
    })
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

fn delete_mode_name(mode: DeleteMode) -> &'static str {
    match mode {
        DeleteMode::Ignore => "ignore",
        DeleteMode::Soft => "soft",
        DeleteMode::Hard => "hard",
    }
}
