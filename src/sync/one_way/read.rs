//! Reading the source: from the watermark (less the overlap) or a checkpoint, batch
//! by batch; the watermark moves only once the whole listing was read.

use super::*;

impl StreamRun<'_> {
    /// Reads the source from the watermark; true when the listing completed.
    pub(super) async fn read_source(&mut self) -> Result<bool, SyncError> {
        let stored = self.store.watermark(&self.name)?;
        let incremental = self.config.source.incremental.clone().unwrap_or_default();
        let (from, resume, max_updated_at) = if self.options.full {
            if !self.dry() {
                self.store.set_checkpoint(&self.name, None)?;
            }
            (String::new(), None, None)
        } else {
            let from = stored
                .as_ref()
                .map(|w| watermark::with_overlap(&w.value, incremental.overlap.get()))
                .unwrap_or_default();
            match self.store.checkpoint(&self.name)? {
                Some(checkpoint) => {
                    tracing::info!(stream = %self.name, pages = checkpoint.pages, "resuming an interrupted listing");
                    let resume = crate::http::Resume {
                        target: checkpoint.target,
                        query: checkpoint.query,
                        pages: checkpoint.pages,
                        records: checkpoint.records,
                    };
                    (from, Some(resume), checkpoint.max_updated_at)
                }
                None => (from, None, None),
            }
        };
        let ignore_before = match (incremental.filter, &stored) {
            (FilterSemantics::Ignored, Some(w)) if !self.options.full => {
                Some(watermark::with_overlap(&w.value, incremental.overlap.get()))
            }
            _ => None,
        };
        let mut latest = watermark::Latest::from(max_updated_at);
        let batches = self.source.batches(&self.vars, &from, &self.now, resume)?;
        let mut batches = crate::sync::source::read_ahead(batches, 2);
        while let Some(batch) = batches.next().await {
            let Batch {
                records,
                resume,
                broken,
                total,
            } = match batch {
                Ok(batch) => batch,
                Err(SyncError::Http(crate::http::HttpError::RetryAfterTooLong {
                    system,
                    wait,
                    max_wait,
                })) => {
                    self.counts.error = Some(format!(
                        "paused: {system} asked to wait {}s (more than max_wait {}s); the next run resumes here",
                        wait.as_secs(),
                        max_wait.as_secs()
                    ));
                    return Ok(false);
                }
                Err(error) => return Err(error),
            };
            if let Some(total) = total {
                self.progress.total(total);
            }
            for line in broken {
                let id = format!("line-{}", line.line);
                let reason = format!("line {} of the source file is {}", line.line, line.reason);
                self.counts.dead_lettered += 1;
                if self.dry() {
                    self.plan.dead_letters.push((id, reason));
                    continue;
                }
                let letter = dead_letter(&self.name, &id, reason, None, Value::String(line.text));
                self.store.complete(&[completion(
                    &self.name,
                    &id,
                    None,
                    Outcome::DeadLettered(letter),
                )])?;
            }
            if let Some(path) = &self.updated_at {
                for record in &records {
                    match path.first(record) {
                        Some(Value::String(at)) if !at.is_empty() => latest.offer(at),
                        Some(Value::Number(at)) => latest.offer(&at.to_string()),
                        _ => {}
                    }
                }
            }
            let records = match &ignore_before {
                Some(before) => self.drop_older(records, before),
                None => records,
            };
            self.process(records, true).await?;
            if !self.options.full && !self.dry() {
                let checkpoint = resume.map(|r| Checkpoint {
                    target: r.target,
                    query: r.query,
                    pages: r.pages,
                    records: r.records,
                    max_updated_at: latest.value().map(str::to_string),
                });
                self.store.set_checkpoint(&self.name, checkpoint.as_ref())?;
            }
        }
        if self.dry() {
            return Ok(true);
        }
        self.store.set_checkpoint(&self.name, None)?;
        if let Some(max) = latest.value().map(str::to_string) {
            let newer = stored
                .as_ref()
                .is_none_or(|w| watermark::compare(&max, &w.value).is_gt());
            if newer {
                self.store
                    .set_watermark(&self.name, &Watermark { value: max })?;
            }
        }
        Ok(true)
    }

    /// For APIs that ignore the incremental filter: drops records from before it.
    pub(super) fn drop_older(&mut self, records: Vec<Value>, before: &str) -> Vec<Value> {
        records
            .into_iter()
            .filter(|record| {
                let at = self
                    .updated_at
                    .as_ref()
                    .and_then(|p| p.first(record))
                    .and_then(watermark::text);
                let keep = at.is_none_or(|at| watermark::compare(&at, before).is_ge());
                if !keep {
                    self.counts.read += 1;
                    self.counts.unchanged += 1;
                }
                keep
            })
            .collect()
    }
}
