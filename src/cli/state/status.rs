//! `runner status FILE`: a row per stream with what the store holds for it, then a
//! line for each thing that needs a person's attention.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::{
    pipeline_and_store, shown_status, stdout, when, write_json, Done, StreamKind, StreamState,
};
use crate::cli::OutputFormat;
use crate::exit::Exit;
use crate::store::{state_dir, RunRecord, RunStatus, Store, StoreError};
use crate::words::count;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Report format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// The report; the text table and `--format json` are two views of it.
#[derive(Serialize)]
struct Report<'a> {
    pipeline: &'a str,
    state_dir: String,
    /// False until the first run creates the store.
    has_state: bool,
    streams: Vec<StreamRow<'a>>,
    last_run: Option<RunRecord>,
    hints: Vec<String>,
}

#[derive(Serialize)]
struct StreamRow<'a> {
    stream: &'a str,
    #[serde(flatten)]
    kind: StreamKind<'a>,
    #[serde(flatten)]
    state: StreamState,
}

pub(super) fn run(args: &StatusArgs) -> Done {
    let (pipeline, store) = pipeline_and_store(&args.file)?;
    let store = store.as_deref().map(|s| s as &dyn Store);
    let mut streams = Vec::with_capacity(pipeline.streams.len());
    for (name, config) in &pipeline.streams {
        streams.push(StreamRow {
            stream: name,
            kind: StreamKind::of(config),
            state: StreamState::read(store, name)?,
        });
    }
    let (last_run, unreadable_run) = match store.map(|store| store.runs(1)) {
        None => (None, None),
        Some(Ok(runs)) => (runs.into_iter().next(), None),
        // Status is what people run when something is wrong: a damaged run record
        // must not hide the state of every stream.
        Some(Err(error @ StoreError::Corrupt { .. })) => (None, Some(error.to_string())),
        Some(Err(error)) => return Err(error.into()),
    };
    let last_run = last_run.map(|mut run| {
        run.status = shown_status(&run);
        run
    });
    let mut hints = hints(&args.file, &streams, last_run.as_ref());
    hints.extend(unreadable_run.map(|error| format!("the last run cannot be shown: {error}")));
    let report = Report {
        pipeline: &pipeline.name,
        state_dir: state_dir(&pipeline, &args.file).display().to_string(),
        has_state: store.is_some(),
        hints,
        streams,
        last_run,
    };
    let mut out = stdout();
    match args.format {
        OutputFormat::Text => write_text(&mut out, &report)?,
        OutputFormat::Json => write_json(&mut out, &report)?,
    }
    out.flush()?;
    Ok(Exit::Success)
}

/// What needs attention, each with the command that deals with it.
fn hints(file: &Path, rows: &[StreamRow], last_run: Option<&RunRecord>) -> Vec<String> {
    let file = file.display();
    let mut hints: Vec<String> = last_run
        .and_then(|run| run_hint(run, &file))
        .into_iter()
        .collect();
    for StreamRow { stream, state, .. } in rows {
        if state.pending > 0 {
            hints.push(format!(
                "{stream}: {} from an interrupted run: the next `runner apply {file}` resolves them",
                count(state.pending, "write pending", "writes pending")
            ));
        }
        if state.dead_letters > 0 {
            hints.push(format!(
                "{stream}: {}: `runner dead-letters {file} list`",
                count(state.dead_letters, "dead letter", "dead letters")
            ));
        }
        if state.deferred > 0 {
            hints.push(format!(
                "{stream}: {} waiting for a reference to another stream: written once it is mapped",
                count(state.deferred, "record", "records")
            ));
        }
        if state.conflicts > 0 {
            hints.push(format!(
                "{stream}: {} settled by their rule so far: `runner conflicts {file}`",
                count(state.conflicts, "conflict", "conflicts")
            ));
        }
        if let Some(checkpoint) = &state.checkpoint {
            hints.push(format!(
                "{stream}: a listing stopped after {} ({}): the next run resumes there",
                count(checkpoint.pages, "page", "pages"),
                count(checkpoint.records, "record", "records")
            ));
        }
        let stopped = last_run
            .into_iter()
            .flat_map(|run| &run.streams)
            .find(|counts| counts.stream == *stream)
            .and_then(|counts| counts.error.as_deref());
        if let Some(error) = stopped {
            hints.push(format!("{stream}: stopped early in the last run: {error}"));
        }
    }
    hints
}

fn run_hint(run: &RunRecord, file: &impl std::fmt::Display) -> Option<String> {
    let id = run.id;
    match run.status {
        RunStatus::Crashed => Some(format!(
            "last run #{id} crashed: the next `runner apply {file}` picks up where it stopped"
        )),
        RunStatus::Failed => Some(format!(
            "last run #{id} failed: `runner history {file}` shows why"
        )),
        RunStatus::Reconnect => Some(format!(
            "last run #{id} stopped: a system must be reconnected (`runner history {file}` names it)"
        )),
        RunStatus::Running | RunStatus::Succeeded | RunStatus::DeadLettered => None,
    }
}

fn write_text(out: &mut impl Write, report: &Report) -> io::Result<()> {
    if report.has_state {
        writeln!(
            out,
            "pipeline `{}` — state in {}",
            report.pipeline, report.state_dir
        )?;
    } else {
        writeln!(
            out,
            "pipeline `{}` — never run: no state yet (it will live in {})",
            report.pipeline, report.state_dir
        )?;
    }
    writeln!(out)?;
    let last_run = report.last_run.as_ref().map_or("—".to_string(), |run| {
        let time = match &run.ended_at {
            Some(ended) => format!("ended {}", when(ended)),
            None => format!("started {}", when(&run.started_at)),
        };
        format!("#{} {}, {time}", run.id, run.status.as_str())
    });
    let rows: Vec<Vec<String>> = report
        .streams
        .iter()
        .map(|row| {
            let state = &row.state;
            vec![
                row.stream.to_string(),
                row.kind.to_string(),
                state.watermark.clone().unwrap_or_else(|| "—".into()),
                state.mapped.to_string(),
                state.pending.to_string(),
                state.dead_letters.to_string(),
                state.deferred.to_string(),
                last_run.clone(),
            ]
        })
        .collect();
    write_table(out, &rows)?;
    if !report.hints.is_empty() {
        writeln!(out)?;
        for hint in &report.hints {
            writeln!(out, "{hint}")?;
        }
    }
    Ok(())
}

const HEADER: [&str; 8] = [
    "STREAM",
    "KIND",
    "WATERMARK",
    "MAPPED",
    "PENDING",
    "DEAD LETTERS",
    "DEFERRED",
    "LAST RUN",
];
/// The count columns, aligned right so digits line up.
const NUMERIC: [bool; 8] = [false, false, false, true, true, true, true, false];

/// Columns padded to their widest cell, counted in chars (cells hold `→` and `—`).
fn write_table(out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if i > 0 {
                line.push_str("  ");
            }
            if NUMERIC[i] {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
