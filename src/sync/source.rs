//! Reading a stream's source, batch by batch: an HTTP listing (incremental from the
//! watermark, resumable from a checkpoint, per parent record for child resources) or a
//! JSON-lines file. One batch is in memory at a time.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use super::SyncError;
use crate::config::request::ReadConfig;
use crate::http::{pages, HttpSystem, Listing, Resume};
use crate::template::to_value;
use crate::vars::Vars;

/// Records of a JSON-lines file read per batch.
const LINES_PER_BATCH: usize = 1000;

/// Where a stream's records come from.
#[derive(Debug, Clone)]
pub enum Source {
    Http {
        system: Arc<HttpSystem>,
        read: Box<ReadConfig>,
        parent: Option<Box<ReadConfig>>,
    },
    Jsonl {
        path: PathBuf,
    },
}

/// A line of a JSON-lines source that is not a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenLine {
    pub line: u64,
    pub reason: String,
    pub text: String,
}

/// Records read together, and where the listing stands after them.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Value>,
    /// Where to resume after this batch (HTTP listings without a parent).
    pub resume: Option<Resume>,
    pub broken: Vec<BrokenLine>,
    /// The source's total number of records, when it says.
    pub total: Option<u64>,
}

impl Source {
    /// Reads the source. `watermark` is rendered into `{{ watermark }}` (empty on a
    /// first run, so an `updated_since` parameter is left out); `resume` continues an
    /// interrupted listing.
    pub fn batches(
        &self,
        vars: &Vars,
        watermark: &str,
        now: &str,
        resume: Option<Resume>,
    ) -> Result<BoxStream<'static, Result<Batch, SyncError>>, SyncError> {
        let context = vec![("watermark", to_value(watermark)), ("now", to_value(now))];
        match self {
            Source::Http {
                system,
                read,
                parent: None,
            } => {
                let mut listing = Listing::new(read, vars, &context)?;
                if let Some(resume) = &resume {
                    listing = listing.resume(resume);
                }
                Ok(pages(Arc::clone(system), listing)
                    .map(|page| {
                        let page = page?;
                        Ok(Batch {
                            records: page.records,
                            resume: page.next,
                            broken: Vec::new(),
                            total: page.total,
                        })
                    })
                    .boxed())
            }
            Source::Http {
                system,
                read,
                parent: Some(parent),
            } => Ok(children(
                Arc::clone(system),
                read.as_ref().clone(),
                parent.as_ref().clone(),
                vars.clone(),
                context,
            )),
            Source::Jsonl { path } => Ok(jsonl_lines(path.clone())),
        }
    }
}

/// Reads ahead: up to `ahead` batches are fetched while the current one is being
/// processed, so the source's latency overlaps the runner's work instead of adding to
/// it. Memory stays bounded by `ahead` batches.
pub fn read_ahead(
    batches: BoxStream<'static, Result<Batch, SyncError>>,
    ahead: usize,
) -> BoxStream<'static, Result<Batch, SyncError>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(ahead.max(1));
    tokio::spawn(async move {
        let mut batches = batches;
        while let Some(batch) = batches.next().await {
            let failed = batch.is_err();
            // A closed channel means the reader stopped: so do we.
            if sender.send(batch).await.is_err() || failed {
                break;
            }
        }
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|batch| (batch, receiver))
    })
    .boxed()
}

/// Child resources: the parent listing, then the child listing of each parent.
fn children(
    system: Arc<HttpSystem>,
    read: ReadConfig,
    parent: ReadConfig,
    vars: Vars,
    context: Vec<(&'static str, minijinja::Value)>,
) -> BoxStream<'static, Result<Batch, SyncError>> {
    async_stream::try_stream! {
        let parents = Listing::new(&parent, &vars, &context)?;
        let mut parent_pages = pages(Arc::clone(&system), parents);
        while let Some(page) = parent_pages.next().await {
            for record in page?.records {
                let mut child_context = context.clone();
                child_context.push(("parent", to_value(&record)));
                let listing = Listing::new(&read, &vars, &child_context)?;
                let mut child_pages = pages(Arc::clone(&system), listing);
                while let Some(child) = child_pages.next().await {
                    yield Batch { records: child?.records, ..Batch::default() };
                }
            }
        }
    }
    .boxed()
}

/// A JSON-lines file, a batch of lines at a time; lines that are not JSON objects come
/// back as broken lines instead of stopping the read.
fn jsonl_lines(path: PathBuf) -> BoxStream<'static, Result<Batch, SyncError>> {
    async_stream::try_stream! {
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| SyncError::Source(format!("cannot read {}: {e}", path.display())))?;
        let mut lines = tokio::io::BufReader::new(file).lines();
        let mut batch = Batch::default();
        let mut number = 0u64;
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| SyncError::Source(format!("cannot read {}: {e}", path.display())))?
        {
            number += 1;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(record @ Value::Object(_)) => batch.records.push(record),
                Ok(_) => batch.broken.push(BrokenLine { line: number, reason: "not a JSON object".into(), text: line }),
                Err(e) => batch.broken.push(BrokenLine { line: number, reason: format!("not valid JSON: {e}"), text: line }),
            }
            if batch.records.len() + batch.broken.len() >= LINES_PER_BATCH {
                yield std::mem::take(&mut batch);
            }
        }
        if !batch.records.is_empty() || !batch.broken.is_empty() {
            yield batch;
        }
    }
    .boxed()
}
