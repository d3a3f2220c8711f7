//! `runner dead-letters FILE list|retry|discard`: records that could not be written,
//! with the request and response that failed, so a person can fix the cause.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{pipeline_and_store, stdout, when, write_json, Done};
use crate::cli::{load, OutputFormat};
use crate::exit::Exit;
use crate::store::{DeadLetter, Exchange, Store};
use crate::words::count;

/// How much of a request or response body `list` shows; `--format json` has it all.
const EXCERPT_CHARS: usize = 300;

#[derive(Debug, Args)]
pub struct DeadLettersArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(subcommand)]
    pub action: DeadLetterAction,
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// List dead letters: reason, attempts, and the request and response that failed.
    List {
        /// Only this stream's dead letters.
        #[arg(long)]
        stream: Option<String>,
        /// Report format (json has the full bodies and source records).
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
    /// Send dead letters again (all, or the one with this id).
    Retry {
        /// Id of the dead letter: `stream/source_id`, as `list` shows it.
        id: Option<String>,
    },
    /// Drop dead letters: the one with this id, or all of them (with --yes).
    Discard {
        /// Id of the dead letter: `stream/source_id`, as `list` shows it. Without it,
        /// all dead letters are discarded.
        id: Option<String>,
        /// Discard all dead letters of this stream only.
        #[arg(long, conflicts_with = "id")]
        stream: Option<String>,
        /// Confirm discarding all: without it, runner lists what would go and changes
        /// nothing.
        #[arg(long)]
        yes: bool,
    },
}

pub(super) fn run(args: &DeadLettersArgs) -> Done {
    let file = &args.file;
    match &args.action {
        DeadLetterAction::List { stream, format } => list(file, stream.as_deref(), *format),
        DeadLetterAction::Retry { id } => retry(file, id.as_deref()),
        DeadLetterAction::Discard { id: Some(id), .. } => discard_one(file, id),
        DeadLetterAction::Discard {
            id: None,
            stream,
            yes,
        } => discard_all(file, stream.as_deref(), *yes),
    }
}

/// A dead letter in `--format json`: the stored letter and the id commands take.
#[derive(Serialize)]
struct LetterView<'a> {
    id: String,
    #[serde(flatten)]
    letter: &'a DeadLetter,
}

fn list(file: &Path, stream: Option<&str>, format: OutputFormat) -> Done {
    let letters = load_letters(file, stream)?;
    let mut out = stdout();
    match format {
        OutputFormat::Json => {
            let views: Vec<LetterView> = letters
                .iter()
                .map(|letter| LetterView {
                    id: letter.id(),
                    letter,
                })
                .collect();
            write_json(&mut out, &views)?;
        }
        OutputFormat::Text if letters.is_empty() => writeln!(out, "no dead letters")?,
        OutputFormat::Text => {
            for letter in &letters {
                write_letter(&mut out, letter)?;
                writeln!(out)?;
            }
            let file = file.display();
            writeln!(
                out,
                "{}. Once the cause is fixed: `runner dead-letters {file} retry [ID]`; \
                 to drop one: `runner dead-letters {file} discard ID`",
                count(letters.len() as u64, "dead letter", "dead letters")
            )?;
        }
    }
    out.flush()?;
    Ok(Exit::Success)
}

/// The dead letters of the pipeline in `file` (of one stream, if given).
fn load_letters(file: &Path, stream: Option<&str>) -> Result<Vec<DeadLetter>, super::Stop> {
    let (pipeline, store) = pipeline_and_store(file)?;
    load::stream(&pipeline, stream)?;
    Ok(match store {
        Some(store) => store.dead_letters(stream)?,
        None => Vec::new(),
    })
}

fn write_letter(out: &mut impl Write, letter: &DeadLetter) -> io::Result<()> {
    writeln!(out, "{} (stream {})", letter.id(), letter.stream)?;
    writeln!(out, "  reason:    {}", excerpt(&letter.reason))?;
    writeln!(
        out,
        "  attempts:  {} (first {}, last {})",
        letter.attempts,
        when(&letter.first_at),
        when(&letter.last_at)
    )?;
    if letter.in_doubt {
        writeln!(
            out,
            "  in doubt — check the target: the write may have been applied"
        )?;
    }
    if let Some(exchange) = &letter.exchange {
        write_exchange(out, exchange)?;
    }
    Ok(())
}

fn write_exchange(out: &mut impl Write, exchange: &Exchange) -> io::Result<()> {
    let mut request = format!("{} {}", exchange.method, exchange.url);
    if !exchange.body.is_null() {
        request.push(' ');
        request.push_str(&excerpt(&exchange.body.to_string()));
    }
    writeln!(out, "  request:   {request}")?;
    let response = match (exchange.status, &exchange.response) {
        (None, None) => "none (no answer)".to_string(),
        (Some(status), None) => status.to_string(),
        (None, Some(body)) => excerpt(body),
        (Some(status), Some(body)) => format!("{status} {}", excerpt(body)),
    };
    writeln!(out, "  response:  {response}")
}

/// A body on one line, cut at [`EXCERPT_CHARS`]: whitespace runs (newlines of pretty
/// JSON or HTML) become one space, so each field stays one line.
fn excerpt(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Sends dead letters again through their streams (the pipeline as it is now): those
/// that go through are gone, those that fail again get a fresh letter.
fn retry(file: &Path, id: Option<&str>) -> Done {
    let engine = crate::cli::apply::engine(file, None)?;
    let mut letters = engine.store().dead_letters(None)?;
    if let Some(id) = id {
        letters.retain(|letter| letter.id() == id);
        if letters.is_empty() {
            eprintln!(
                "runner: there is no dead letter `{id}` (ids are `stream/source_id`; \
                 `runner dead-letters {} list` shows them)",
                file.display()
            );
            return Ok(Exit::Invalid);
        }
    }
    let (sendable, stuck): (Vec<DeadLetter>, Vec<DeadLetter>) =
        letters.into_iter().partition(|l| l.record.is_object());
    for letter in &stuck {
        println!(
            "{}: no source record kept (a broken line of a file?); fix the source and the next run reads it again",
            letter.id()
        );
    }
    if sendable.is_empty() {
        println!("no dead letters to retry");
        return Ok(Exit::Success);
    }
    let count = sendable.len();
    let runtime = crate::cli::apply::runtime()?;
    let progress = crate::sync::Progress::on_terminal();
    let report = match runtime.block_on(engine.retry_dead_letters(sendable, &progress)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("runner dead-letters retry: {error}");
            return Ok(error.exit());
        }
    };
    print!(
        "{}",
        crate::sync::report::summary(&report, &file.display().to_string())
    );
    let left = engine.store().dead_letters(None)?.len();
    println!("retried {count}; {left} dead letters left");
    Ok(report.exit)
}

fn discard_one(file: &Path, id: &str) -> Done {
    let (_, store) = pipeline_and_store(file)?;
    // Stream names hold no `/`, so the first one ends the stream; source ids may hold
    // more.
    let removed = match (store, id.split_once('/')) {
        (Some(store), Some((stream, source_id))) => store.remove_dead_letter(stream, source_id)?,
        _ => false,
    };
    if !removed {
        eprintln!(
            "runner: there is no dead letter `{id}` (ids are `stream/source_id`; \
             `runner dead-letters {} list` shows them)",
            file.display()
        );
        return Ok(Exit::Invalid);
    }
    println!("discarded {id}");
    Ok(Exit::Success)
}

fn discard_all(file: &Path, stream: Option<&str>, yes: bool) -> Done {
    let (pipeline, store) = pipeline_and_store(file)?;
    load::stream(&pipeline, stream)?;
    let letters = match &store {
        Some(store) => store.dead_letters(stream)?,
        None => Vec::new(),
    };
    let mut out = stdout();
    let (Some(store), false) = (store, letters.is_empty()) else {
        writeln!(out, "no dead letters to discard")?;
        out.flush()?;
        return Ok(Exit::Success);
    };
    let total = count(letters.len() as u64, "dead letter", "dead letters");
    if !yes {
        writeln!(out, "would discard {total}:")?;
        for letter in &letters {
            writeln!(out, "  {}  {}", letter.id(), excerpt(&letter.reason))?;
        }
        out.flush()?;
        eprintln!("runner: discarding all of them needs --yes; nothing was changed");
        return Ok(Exit::Invalid);
    }
    for letter in &letters {
        store.remove_dead_letter(&letter.stream, &letter.source_id)?;
        writeln!(out, "discarded {}", letter.id())?;
    }
    writeln!(out, "discarded {total}")?;
    out.flush()?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_one_line_and_cut_at_a_char_boundary() {
        assert_eq!(
            excerpt("{\n  \"error\": \"bad\"\n}"),
            "{ \"error\": \"bad\" }"
        );
        let long = "é".repeat(EXCERPT_CHARS + 5);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
