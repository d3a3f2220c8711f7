//! The state commands: `status`, `history`, `dead-letters`, `mappings`, `conflicts`,
//! `state reset`.
//! They read (and, for `discard` and `reset`, change) a pipeline's state store; one
//! file per command, and here what they share: opening the store without creating
//! one, the counts of a stream, time and text formatting, and how a command stops.

mod conflicts;
mod dead_letters;
mod history;
mod mappings;
mod reset;
mod status;

use std::io::{self, BufWriter, StdoutLock, Write};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

pub use conflicts::ConflictsArgs;
pub use dead_letters::DeadLettersArgs;
pub use history::HistoryArgs;
pub use mappings::MappingsArgs;
pub use reset::StateArgs;
pub use status::StatusArgs;

use super::load;
use crate::config::stream::Side;
use crate::config::{PipelineConfig, StreamConfig};
use crate::exit::Exit;
use crate::store::{
    side_stream, state_dir, Checkpoint, RunRecord, RunStatus, SledStore, Store, StoreError,
};

pub fn status(args: &StatusArgs) -> Exit {
    conclude(status::run(args))
}

pub fn history(args: &HistoryArgs) -> Exit {
    conclude(history::run(args))
}

pub fn dead_letters(args: &DeadLettersArgs) -> Exit {
    conclude(dead_letters::run(args))
}

pub fn conflicts(args: &ConflictsArgs) -> Exit {
    conclude(conflicts::run(args))
}

pub fn mappings(args: &MappingsArgs) -> Exit {
    conclude(mappings::run(args))
}

pub fn state(args: &StateArgs) -> Exit {
    conclude(reset::run(args))
}

/// Why a state command stopped before its work was done.
enum Stop {
    /// Already explained on stderr.
    Exit(Exit),
    Store(StoreError),
    Output(io::Error),
}

impl From<Exit> for Stop {
    fn from(exit: Exit) -> Stop {
        Stop::Exit(exit)
    }
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Stop {
        Stop::Store(error)
    }
}

impl From<io::Error> for Stop {
    fn from(error: io::Error) -> Stop {
        Stop::Output(error)
    }
}

impl From<serde_json::Error> for Stop {
    fn from(error: serde_json::Error) -> Stop {
        Stop::Output(error.into())
    }
}

type Done = Result<Exit, Stop>;

fn conclude(done: Done) -> Exit {
    match done {
        Ok(exit) | Err(Stop::Exit(exit)) => exit,
        Err(Stop::Store(error)) => {
            eprintln!("runner: {error}");
            Exit::Failed
        }
        // `runner mappings FILE | head` closes the pipe early: the reader has what it
        // wanted, which is no failure.
        Err(Stop::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => Exit::Success,
        Err(Stop::Output(error)) => {
            eprintln!("runner: cannot write the report: {error}");
            Exit::Failed
        }
    }
}

/// Buffered stdout: `mappings` may print millions of lines. Callers flush at the end,
/// so that a write error is reported rather than lost in a drop.
fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::new(io::stdout().lock())
}

/// Writes `value` as pretty JSON and a newline.
fn write_json(out: &mut impl Write, value: &impl Serialize) -> Result<(), Stop> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// The pipeline in `file` and its store, if it has one. A read of a pipeline that never
/// ran must not leave a store (and a master key) behind, so a missing state directory
/// means "no state" rather than "create one".
fn pipeline_and_store(file: &Path) -> Result<(PipelineConfig, Option<Arc<SledStore>>), Stop> {
    let pipeline = load::pipeline(file)?;
    let store = if state_dir(&pipeline, file).exists() {
        Some(load::store(&pipeline, file)?)
    } else {
        None
    };
    Ok((pipeline, store))
}

/// What the store holds for one stream.
#[derive(Debug, Default, Serialize)]
struct StreamState {
    /// `None`: the stream was never synced. A two-way stream has one per side:
    /// "a <watermark>, b <watermark>".
    watermark: Option<String>,
    mapped: u64,
    /// Outbox items of a run that stopped before it knew their outcome.
    pending: u64,
    dead_letters: u64,
    /// Records waiting for a reference to another stream.
    deferred: u64,
    /// Where an interrupted listing resumes.
    checkpoint: Option<Checkpoint>,
    /// Two-way: fields settled by their rule so far (conflicts and rejected changes).
    conflicts: u64,
}

impl StreamState {
    fn read(store: Option<&dyn Store>, stream: &str) -> Result<StreamState, StoreError> {
        let Some(store) = store else {
            return Ok(StreamState::default());
        };
        let side = |side: Side| -> Result<Option<String>, StoreError> {
            Ok(store
                .watermark(&side_stream(stream, side))?
                .map(|w| w.value))
        };
        let watermark = match (store.watermark(stream)?, side(Side::A)?, side(Side::B)?) {
            (Some(w), _, _) => Some(w.value),
            (None, None, None) => None,
            (None, a, b) => Some(format!(
                "a {}, b {}",
                a.as_deref().unwrap_or("—"),
                b.as_deref().unwrap_or("—")
            )),
        };
        Ok(StreamState {
            watermark,
            conflicts: store.conflicts(Some(stream), usize::MAX)?.len() as u64,
            mapped: store.mapped_count(stream)?,
            pending: store.pending_count(stream)?,
            dead_letters: store.dead_letters(Some(stream))?.len() as u64,
            deferred: store.deferred(stream)?.len() as u64,
            checkpoint: store.checkpoint(stream)?,
        })
    }
}

/// Which way a stream syncs and between which systems.
#[derive(Debug, Serialize)]
struct StreamKind<'a> {
    sync: Direction,
    /// Source then target for one-way; sides a then b for two-way.
    systems: [&'a str; 2],
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum Direction {
    OneWay,
    TwoWay,
}

impl<'a> StreamKind<'a> {
    fn of(stream: &'a StreamConfig) -> StreamKind<'a> {
        match stream {
            StreamConfig::OneWay(s) => StreamKind {
                sync: Direction::OneWay,
                systems: [&s.source.system, &s.target.system],
            },
            StreamConfig::TwoWay(s) => StreamKind {
                sync: Direction::TwoWay,
                systems: [&s.sides.a.read.system, &s.sides.b.read.system],
            },
        }
    }
}

impl std::fmt::Display for StreamKind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b] = self.systems;
        match self.sync {
            Direction::OneWay => write!(f, "one-way {a} → {b}"),
            Direction::TwoWay => write!(f, "two-way {a} ↔ {b}"),
        }
    }
}

/// The status to show for a run. The store is locked to one process and this command
/// holds it, so a run still marked `running` belongs to a process that died: it
/// crashed (the next `start_run` records it so).
fn shown_status(run: &RunRecord) -> RunStatus {
    match run.status {
        RunStatus::Running => RunStatus::Crashed,
        other => other,
    }
}

/// An RFC 3339 time from the store, shortened to seconds; any other text as it is.
fn when(text: &str) -> String {
    match text.parse::<jiff::Timestamp>() {
        Ok(time) => format!("{time:.0}"),
        Err(_) => text.to_string(),
    }
}

/// How long a run took, if it ended and both times parse.
fn run_duration_ms(run: &RunRecord) -> Option<u64> {
    let started: jiff::Timestamp = run.started_at.parse().ok()?;
    let ended: jiff::Timestamp = run.ended_at.as_deref()?.parse().ok()?;
    u64::try_from(ended.duration_since(started).as_millis()).ok()
}

/// A duration for people: `350ms`, `4.2s`, `3m 07s`, `2h 05m`.
fn human_duration(ms: u64) -> String {
    let seconds = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{seconds}.{}s", ms % 1000 / 100),
        60_000..3_600_000 => format!("{}m {:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h {:02}m", seconds / 3600, seconds / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shortened_to_seconds_and_other_text_is_kept() {
        assert_eq!(
            when("2026-05-01T10:00:00.123456789Z"),
            "2026-05-01T10:00:00Z"
        );
        assert_eq!(when("last tuesday"), "last tuesday");
    }

    #[test]
    fn durations_read_naturally_at_every_scale() {
        assert_eq!(human_duration(350), "350ms");
        assert_eq!(human_duration(4_300), "4.3s");
        assert_eq!(human_duration(187_000), "3m 07s");
        assert_eq!(human_duration(7_500_000), "2h 05m");
    }
}
