//! `runner history FILE`: recent runs, newest first, with each stream's counts and
//! the errors that stopped anything.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::conflicts::describe;
use super::{
    human_duration, pipeline_and_store, run_duration_ms, shown_status, stdout, when, write_json,
    Done,
};
use crate::cli::OutputFormat;
use crate::exit::Exit;
use crate::store::{Conflict, RunRecord, Store, StreamCounts};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Report format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// A run as reported: the stored record (with the status this command can vouch for)
/// and how long it took.
#[derive(Serialize)]
struct RunView {
    #[serde(flatten)]
    run: RunRecord,
    duration_ms: Option<u64>,
    /// Two-way conflicts this run settled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conflicts: Vec<Conflict>,
}

/// Conflicts listed under a run in the text view; `runner conflicts` has them all.
const CONFLICTS_SHOWN: usize = 5;

pub(super) fn run(args: &HistoryArgs) -> Done {
    let (_, store) = pipeline_and_store(&args.file)?;
    let (runs, mut conflicts) = match &store {
        Some(store) => (store.runs(args.limit)?, store.conflicts(None, usize::MAX)?),
        None => (Vec::new(), Vec::new()),
    };
    let runs: Vec<RunView> = runs
        .into_iter()
        .map(|mut run| {
            run.status = shown_status(&run);
            let (of_run, rest) = conflicts.drain(..).partition(|c| c.run == run.id);
            conflicts = rest;
            RunView {
                duration_ms: run_duration_ms(&run),
                conflicts: of_run,
                run,
            }
        })
        .collect();
    let mut out = stdout();
    match args.format {
        OutputFormat::Text if runs.is_empty() => writeln!(out, "no runs yet")?,
        OutputFormat::Text => write_text(&mut out, &runs)?,
        OutputFormat::Json => write_json(&mut out, &runs)?,
    }
    out.flush()?;
    Ok(Exit::Success)
}

fn write_text(out: &mut impl Write, runs: &[RunView]) -> io::Result<()> {
    for (
        i,
        RunView {
            run,
            duration_ms,
            conflicts,
        },
    ) in runs.iter().enumerate()
    {
        if i > 0 {
            writeln!(out)?;
        }
        let took = duration_ms.map_or("did not finish".to_string(), |ms| {
            format!("took {}", human_duration(ms))
        });
        writeln!(
            out,
            "#{}  {}  {}  started {}, {took}",
            run.id,
            run.command,
            run.status.as_str(),
            when(&run.started_at)
        )?;
        for counts in &run.streams {
            writeln!(out, "    {}: {}", counts.stream, counts_text(counts))?;
            if let Some(error) = &counts.error {
                writeln!(out, "    {}: stopped early: {error}", counts.stream)?;
            }
        }
        for conflict in conflicts.iter().take(CONFLICTS_SHOWN) {
            writeln!(
                out,
                "    {}: a {} ↔ b {}: {}",
                conflict.stream,
                conflict.a_id,
                conflict.b_id,
                describe(conflict)
            )?;
        }
        if conflicts.len() > CONFLICTS_SHOWN {
            writeln!(
                out,
                "    ... and {} more conflicts: `runner conflicts FILE`",
                conflicts.len() - CONFLICTS_SHOWN
            )?;
        }
        for error in &run.errors {
            writeln!(out, "    error: {error}")?;
        }
    }
    Ok(())
}

/// `read 10, created 2, ...`; the rarer counts only when there were any.
fn counts_text(counts: &StreamCounts) -> String {
    let mut parts = vec![
        format!("read {}", counts.read),
        format!("created {}", counts.created),
        format!("updated {}", counts.updated),
        format!("unchanged {}", counts.unchanged),
        format!("deleted {}", counts.deleted),
        format!("dead-lettered {}", counts.dead_lettered),
    ];
    let rare = [
        ("linked", counts.linked),
        ("deferred", counts.deferred),
        ("recovered", counts.recovered),
        ("conflicts", counts.conflicts),
        ("rejected changes", counts.rejected),
    ];
    for (name, n) in rare {
        if n > 0 {
            parts.push(format!("{name} {n}"));
        }
    }
    parts.join(", ")
}
