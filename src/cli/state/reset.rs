//! `runner state reset FILE --stream S --yes`: forget a stream's state so its next run
//! starts from scratch. Says exactly what goes, and changes nothing without `--yes`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{pipeline_and_store, stdout, Done, StreamState};
use crate::cli::load;
use crate::config::StreamConfig;
use crate::exit::Exit;
use crate::store::Store;
use crate::words::count;

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub action: StateAction,
}

#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Forget a stream's state (watermark, mappings, bases, outbox, dead letters), so
    /// its next run reads everything and links records again.
    Reset {
        /// The pipeline file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The stream to reset.
        #[arg(long)]
        stream: String,
        /// Confirm: without it, runner says what would be forgotten and changes
        /// nothing.
        #[arg(long)]
        yes: bool,
    },
}

pub(super) fn run(args: &StateArgs) -> Done {
    match &args.action {
        StateAction::Reset { file, stream, yes } => reset(file, stream, *yes),
    }
}

fn reset(file: &Path, stream: &str, yes: bool) -> Done {
    let (pipeline, store) = pipeline_and_store(file)?;
    load::stream(&pipeline, Some(stream))?;
    let mut out = stdout();
    let Some(store) = store else {
        writeln!(out, "stream `{stream}` has no state yet: nothing to reset")?;
        out.flush()?;
        return Ok(Exit::Success);
    };
    let forgotten = forgotten(&StreamState::read(Some(store.as_ref()), stream)?);
    if yes {
        store.reset_stream(stream)?;
        writeln!(out, "reset stream `{stream}`; forgot:")?;
    } else {
        writeln!(out, "resetting stream `{stream}` would forget:")?;
    }
    for line in &forgotten {
        writeln!(out, "  {line}")?;
    }
    if yes {
        writeln!(
            out,
            "Its next run reads the source in full and links target records again."
        )?;
    } else {
        writeln!(
            out,
            "Its next run would read the source in full and link target records again."
        )?;
    }
    if pipeline
        .streams
        .get(stream)
        .is_some_and(|s| !links_existing(s))
    {
        writeln!(
            out,
            "Careful: the stream has no `match_on`, so records already in the target are \
             not linked again and may be created twice."
        )?;
    }
    out.flush()?;
    if yes {
        Ok(Exit::Success)
    } else {
        eprintln!("runner: resetting needs --yes; nothing was changed");
        Ok(Exit::Invalid)
    }
}

/// What a reset forgets, one line each.
fn forgotten(state: &StreamState) -> Vec<String> {
    let mut lines = vec![
        match &state.watermark {
            Some(watermark) => format!("watermark {watermark}"),
            None => "no watermark (never synced)".to_string(),
        },
        count(
            state.mapped,
            "mapping and its base",
            "mappings and their bases",
        ),
        count(state.pending, "pending write", "pending writes"),
        count(state.dead_letters, "dead letter", "dead letters"),
        count(
            state.deferred,
            "record waiting for a reference",
            "records waiting for a reference",
        ),
    ];
    if let Some(checkpoint) = &state.checkpoint {
        lines.push(format!(
            "a paging checkpoint after {}",
            count(checkpoint.pages, "page", "pages")
        ));
    }
    lines
}

/// Whether the stream links records that already exist on the other side, which is
/// what keeps a reset from creating them a second time.
fn links_existing(stream: &StreamConfig) -> bool {
    match stream {
        StreamConfig::OneWay(s) => !s.target.match_on.is_empty(),
        StreamConfig::TwoWay(s) => !s.match_on.is_empty(),
    }
}
