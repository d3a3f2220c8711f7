//! Sending a two-way stream's intents to the side each goes to — through the one-way
//! writer, so in-doubt creates, dead letters and retries behave exactly alike — and
//! turning each answer into the pair's completion.

use futures_util::stream;

use super::*;
use crate::store::{Intent, TwoWayWrite};
use crate::sync::group_commit::GroupCommit;
use crate::sync::one_way::{count, write, Sent};

impl TwoWayRun<'_> {
    /// Sends intents concurrently (each side up to its `max_in_flight`, under its
    /// limiter) and commits their completions in groups. `recovering` marks intents
    /// of an earlier run: a create among them is in doubt until resolved.
    pub(super) async fn execute(
        &mut self,
        intents: Vec<Intent>,
        recovering: bool,
    ) -> Result<(), SyncError> {
        if intents.is_empty() {
            return Ok(());
        }
        let since = recovering.then_some(self.started);
        let deletes = self.config.settings.deletes;
        let concurrency = self.a.target.spec().max_in_flight + self.b.target.spec().max_in_flight;
        let (a, b, name) = (&self.a.target, &self.b.target, self.name.as_str());
        let mut results = stream::iter(intents)
            .map(|intent| async move {
                let Some(pair) = intent.two_way.as_deref().cloned() else {
                    return Err(SyncError::Setup(format!(
                        "outbox item {} of two-way stream `{name}` does not say which side it goes to",
                        intent.key
                    )));
                };
                let target = match pair.side {
                    Side::A => a,
                    Side::B => b,
                };
                let sent = write(target, name, intent, since, deletes).await?;
                Ok((sent, pair))
            })
            .buffer_unordered(concurrency.max(1));
        let mut commits = GroupCommit::new(Arc::clone(&self.store));
        let mut stop = None;
        let mut still_pending = Vec::new();
        while let Some(result) = results.next().await {
            match result {
                Ok((Sent { done: None, .. }, pair)) => still_pending.push(pair),
                Ok((
                    Sent {
                        done: Some(done),
                        op,
                        ..
                    },
                    pair,
                )) => {
                    let done = completion(done, pair);
                    count(&mut self.counts, &done, Some(op));
                    self.progress.written(1);
                    commits.push(done).await?;
                }
                Err(error) => {
                    // Stop sending; what is in flight stays in the outbox for the next
                    // run to resolve.
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
        self.unresolved += still_pending.len() as u64;
        for pair in still_pending {
            for (side, id) in [(Side::A, pair.a_id), (Side::B, pair.b_id)] {
                if let Some(id) = id {
                    self.pending.insert(side_record_id(side, &id));
                }
            }
        }
        Ok(())
    }
}

/// A one-way completion, made the pair's: a write that went through becomes the pair
/// (under its a id) with the written side's new base — and the other side's, when this
/// decision wrote nothing there; a delete unmaps the pair.
fn completion(done: Completion, write: TwoWayWrite) -> Completion {
    let TwoWayWrite {
        side,
        a_id,
        b_id,
        after,
        other,
    } = write;
    match done.outcome {
        Outcome::Synced { target_id, base } => {
            let (a_id, b_id) = match side {
                Side::A => (Some(target_id), b_id),
                Side::B => (a_id, Some(target_id)),
            };
            let (Some(a_id), Some(b_id)) = (a_id, b_id) else {
                // A write decided for a pair always knows the id of the side it does
                // not write; an outbox item without it is damaged.
                let letter = dead_letter(
                    &done.stream,
                    &done.source_id,
                    "the outbox item lost the id of the other side".into(),
                    None,
                    Value::Null,
                );
                return Completion {
                    outcome: Outcome::DeadLettered(letter),
                    ..done
                };
            };
            let (a, b) = match side {
                Side::A => (Some(after), other),
                Side::B => (other, Some(after)),
            };
            Completion {
                source_id: a_id,
                outcome: Outcome::Paired {
                    b_id,
                    a,
                    b,
                    deleted: base.deleted,
                },
                ..done
            }
        }
        Outcome::Unmapped => Completion {
            source_id: a_id.unwrap_or(done.source_id.clone()),
            ..done
        },
        _ => done,
    }
}
