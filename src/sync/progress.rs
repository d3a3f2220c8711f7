//! Progress of a run on a terminal: one line per stream with records read and
//! written, the rate, and — when the source says how many records it has — a bar
//! with an ETA. Nothing is drawn when stderr is not a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::store::StreamCounts;

/// The progress display of a run.
#[derive(Debug, Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Drawn on stderr when it is a terminal.
    pub fn on_terminal() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress {
                multi: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            }
        } else {
            Progress::hidden()
        }
    }

    pub fn hidden() -> Progress {
        Progress { multi: None }
    }

    /// The line of one stream.
    pub fn stream(&self, name: &str) -> StreamProgress {
        let bar = match &self.multi {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(spinner_style());
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            }
            None => ProgressBar::hidden(),
        };
        StreamProgress { bar, written: 0 }
    }

    /// Ends a stream's line with its outcome.
    pub fn finish_stream(&self, counts: &StreamCounts) {
        if let Some(multi) = &self.multi {
            let _ = multi.println(format!(
                "{}: {} read, {} written{}",
                counts.stream,
                counts.read,
                counts.created + counts.updated + counts.deleted,
                counts
                    .error
                    .as_ref()
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default()
            ));
        }
    }
}

/// One stream's progress line.
#[derive(Debug)]
pub struct StreamProgress {
    bar: ProgressBar,
    written: u64,
}

impl StreamProgress {
    pub fn read(&mut self, records: u64) {
        self.bar.inc(records);
    }

    pub fn written(&mut self, records: u64) {
        self.written += records;
        self.bar.set_message(format!("{} written", self.written));
    }

    /// The source announced its size: show a bar with an ETA.
    pub fn total(&mut self, records: u64) {
        if self.bar.length() != Some(records) {
            self.bar.set_length(records);
            self.bar.set_style(bar_style());
        }
    }
}

impl Drop for StreamProgress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix}: {pos} read, {msg} ({per_sec}) {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix}: [{bar:30}] {pos}/{len} read, {msg} ({per_sec}, ETA {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}
