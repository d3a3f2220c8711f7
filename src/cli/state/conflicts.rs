//! `runner conflicts FILE`: the conflict log of two-way streams, newest first — every
//! field changed on both sides since the last sync, and every change rejected because
//! the other side owns the field, with both values and the rule that decided.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;

use super::{pipeline_and_store, stdout, when, write_json, Done};
use crate::cli::{load, OutputFormat};
use crate::config::stream::Side;
use crate::exit::Exit;
use crate::store::{Conflict, Store};

#[derive(Debug, Args)]
pub struct ConflictsArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// How many conflicts to show.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Report format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

pub(super) fn run(args: &ConflictsArgs) -> Done {
    let (pipeline, store) = pipeline_and_store(&args.file)?;
    if let Some(stream) = &args.stream {
        load::stream(&pipeline, Some(stream))?;
    }
    let conflicts = match &store {
        Some(store) => store.conflicts(args.stream.as_deref(), args.limit)?,
        None => Vec::new(),
    };
    let mut out = stdout();
    match args.format {
        OutputFormat::Text if conflicts.is_empty() => writeln!(out, "no conflicts")?,
        OutputFormat::Text => write_text(&mut out, &conflicts)?,
        OutputFormat::Json => write_json(&mut out, &conflicts)?,
    }
    out.flush()?;
    Ok(Exit::Success)
}

fn write_text(out: &mut impl Write, conflicts: &[Conflict]) -> io::Result<()> {
    for conflict in conflicts {
        writeln!(
            out,
            "{}  run #{}  {}  a {} ↔ b {}",
            when(&conflict.at),
            conflict.run,
            conflict.stream,
            conflict.a_id,
            conflict.b_id
        )?;
        writeln!(out, "    {}", describe(conflict))?;
    }
    Ok(())
}

/// One conflict in a line: what each side did to the field and who won by which rule.
pub(super) fn describe(conflict: &Conflict) -> String {
    let clash = &conflict.clash;
    let winner = clash.winner.as_str();
    let loser = clash.winner.other().as_str();
    let (won, lost, lost_was) = match clash.winner {
        Side::A => (&clash.a, &clash.b, &clash.base_b),
        Side::B => (&clash.b, &clash.a, &clash.base_a),
    };
    if clash.rejected {
        return format!(
            "{}: rejected change on {loser} ({lost_was} → {lost}): {winner} owns it, put back to {won} [{}]",
            clash.field, clash.rule
        );
    }
    // The times last-write-wins compared, so the decision can be checked.
    let times = match (&clash.a_updated_at, &clash.b_updated_at) {
        (Some(a), Some(b)) => format!("; a updated {a}, b updated {b}"),
        _ => String::new(),
    };
    format!(
        "{}: changed on both sides (a {} → {}, b {} → {}): {winner} wins with {won} [{}{times}]",
        clash.field, clash.base_a, clash.a, clash.base_b, clash.b, clash.rule
    )
}
