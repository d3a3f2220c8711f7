//! The sync interpreter: runs a pipeline's streams against its systems and store.
//!
//! - [`engine`]: one run of a pipeline — systems built, streams ordered by their
//!   references, each stream run, the run recorded, the exit code decided.
//! - [`one_way`]: one run of a one-way stream (recover → read → decide → outbox →
//!   write → commit → watermark → deletes).
//! - [`two_way`]: one run of a two-way stream (recover → read b → read a and merge
//!   each pair against its base → outbox → write either side → deletes → watermarks).
//! - [`source`]: reading a source batch by batch; [`target`]: an HTTP target's
//!   requests and lookups; [`jsonl`]: a JSON-lines target.
//! - [`mapper`]: source record → target fields and their hash; [`decide`]: decisions,
//!   intent keys, dead letters; [`watermark`]: comparing the source's timestamps.
//! - [`plan`]: the same decisions without writing anything (`runner plan`).
//! - [`progress`] and [`report`]: what a person sees during and after a run.

pub mod decide;
pub mod engine;
mod group_commit;
pub mod jsonl;
mod line_index;
pub mod mapper;
pub mod one_way;
pub mod plan;
pub mod progress;
pub mod report;
pub mod source;
pub mod target;
pub mod two_way;
pub mod watermark;

use thiserror::Error;

pub use engine::{Engine, RunReport};
pub use progress::{Progress, StreamProgress};

use crate::exit::Exit;
use crate::http::HttpError;
use crate::store::StoreError;

/// How a run goes.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Read every source in full (and detect deletes) instead of incrementally.
    pub full: bool,
    /// Let a run delete more than a stream's `max_delete_fraction`.
    pub allow_mass_delete: bool,
    /// Only this stream.
    pub stream: Option<String>,
    /// Decide, but write nothing anywhere (`runner plan`).
    pub dry_run: bool,
}

/// Why a stream stopped early.
#[derive(Debug, Error)]
pub enum SyncError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Source(String),
    #[error("{0}")]
    Setup(String),
    #[error("stream `{stream}` would delete {deletes} of its {mapped} records, more than max_delete_fraction {limit}: nothing was deleted; if that is right, run again with --allow-mass-delete")]
    MassDelete {
        stream: String,
        deletes: u64,
        mapped: u64,
        limit: String,
    },
    #[error("{count} creates of stream `{stream}` are still in doubt after lookups; they stay in the outbox and the next run resolves them")]
    InDoubt { stream: String, count: u64 },
}

impl SyncError {
    /// The end of a stream's run: fine, unless `unresolved` creates are still in doubt
    /// (they stay in the outbox for the next run).
    pub(in crate::sync) fn unless_in_doubt(stream: &str, unresolved: u64) -> Result<(), SyncError> {
        match unresolved {
            0 => Ok(()),
            count => Err(SyncError::InDoubt {
                stream: stream.to_string(),
                count,
            }),
        }
    }

    /// The system to reconnect, if that is what stopped the stream.
    pub fn reconnect(&self) -> Option<&str> {
        match self {
            SyncError::Http(HttpError::ReconnectRequired { system, .. }) => Some(system),
            _ => None,
        }
    }

    pub fn exit(&self) -> Exit {
        if self.reconnect().is_some() {
            Exit::Reconnect
        } else {
            Exit::Failed
        }
    }
}
