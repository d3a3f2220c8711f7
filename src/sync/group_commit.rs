//! Completions committed in groups: one store transaction and one flush per
//! `COMMIT_EVERY` writes instead of per write. A group is committed on a blocking
//! thread while the next writes go on; one group at a time, in order, so a crash loses
//! at most the answers of the groups not yet committed — and those writes are still
//! in the outbox, which the next run resolves.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::SyncError;
use crate::store::{Completion, Store, StoreError};

/// Completions committed together (one transaction, one flush).
const COMMIT_EVERY: usize = 128;

pub(in crate::sync) struct GroupCommit {
    store: Arc<dyn Store>,
    batch: Vec<Completion>,
    committing: Option<JoinHandle<Result<(), StoreError>>>,
}

impl GroupCommit {
    pub fn new(store: Arc<dyn Store>) -> GroupCommit {
        GroupCommit {
            store,
            batch: Vec::with_capacity(COMMIT_EVERY),
            committing: None,
        }
    }

    /// Adds a completion; a full group starts committing once the previous one is done.
    pub async fn push(&mut self, done: Completion) -> Result<(), SyncError> {
        self.batch.push(done);
        if self.batch.len() >= COMMIT_EVERY {
            self.wait().await?;
            let group = std::mem::replace(&mut self.batch, Vec::with_capacity(COMMIT_EVERY));
            let store = Arc::clone(&self.store);
            self.committing = Some(tokio::task::spawn_blocking(move || store.complete(&group)));
        }
        Ok(())
    }

    /// Commits what is left, after the group in flight.
    pub async fn finish(mut self) -> Result<(), SyncError> {
        self.wait().await?;
        Ok(self.store.complete(&self.batch)?)
    }

    async fn wait(&mut self) -> Result<(), SyncError> {
        match self.committing.take() {
            None => Ok(()),
            Some(handle) => match handle.await {
                Ok(result) => Ok(result?),
                Err(e) => Err(SyncError::Setup(format!("a group commit stopped: {e}"))),
            },
        }
    }
}
