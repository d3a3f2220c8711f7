//! `runner mappings FILE`: which target record each source record is synced to, all of
//! them or the one of an id.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::{pipeline_and_store, stdout, Done, Stop};
use crate::cli::{load, OutputFormat};
use crate::config::PipelineConfig;
use crate::exit::Exit;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct MappingsArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only this stream (needed with --source-id or --target-id when the pipeline has
    /// several).
    #[arg(long)]
    pub stream: Option<String>,
    /// Show the mapping of this source id (exit 1 if it is not mapped).
    #[arg(long, conflicts_with = "target_id")]
    pub source_id: Option<String>,
    /// Show the mapping of this target id (exit 1 if it is not mapped).
    #[arg(long)]
    pub target_id: Option<String>,
    /// Report format (json: one object per line, one line per mapping).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// One mapping in `--format json`.
#[derive(Serialize)]
struct Mapping<'a> {
    stream: &'a str,
    source_id: &'a str,
    target_id: &'a str,
}

/// Which side an id given on the command line is from.
#[derive(Clone, Copy)]
enum Side {
    Source,
    Target,
}

pub(super) fn run(args: &MappingsArgs) -> Done {
    let (pipeline, store) = pipeline_and_store(&args.file)?;
    let stream = load::stream(&pipeline, args.stream.as_deref())?;
    let store = store.as_deref().map(|s| s as &dyn Store);
    let wanted = match (&args.source_id, &args.target_id) {
        (Some(id), _) => Some((Side::Source, id.as_str())),
        (None, Some(id)) => Some((Side::Target, id.as_str())),
        (None, None) => None,
    };
    match wanted {
        Some((side, id)) => {
            let stream = match stream {
                Some(stream) => stream,
                None => only_stream(&pipeline)?,
            };
            lookup(store, stream, side, id, args.format)
        }
        None => list(&pipeline, store, stream, args.format),
    }
}

/// The stream a lookup means when none is named: the pipeline's only one.
fn only_stream(pipeline: &PipelineConfig) -> Result<&str, Stop> {
    let mut names = pipeline.streams.keys();
    match (names.next(), names.next()) {
        (Some(only), None) => Ok(only),
        _ => {
            let names: Vec<&str> = pipeline.streams.keys().map(String::as_str).collect();
            eprintln!(
                "runner: name the stream with --stream: pipeline `{}` has streams {}",
                pipeline.name,
                names.join(", ")
            );
            Err(Exit::Invalid.into())
        }
    }
}

fn lookup(
    store: Option<&dyn Store>,
    stream: &str,
    side: Side,
    id: &str,
    format: OutputFormat,
) -> Done {
    let other = match (store, side) {
        (Some(store), Side::Source) => store.target_id(stream, id)?,
        (Some(store), Side::Target) => store.source_id(stream, id)?,
        (None, _) => None,
    };
    let Some(other) = other else {
        let which = match side {
            Side::Source => "source",
            Side::Target => "target",
        };
        eprintln!("runner: {which} id `{id}` is not mapped in stream `{stream}`");
        return Ok(Exit::Failed);
    };
    let (source_id, target_id) = match side {
        Side::Source => (id, other.as_str()),
        Side::Target => (other.as_str(), id),
    };
    let mut out = stdout();
    write_mapping(
        &mut out,
        format,
        stream.len(),
        &Mapping {
            stream,
            source_id,
            target_id,
        },
    )?;
    out.flush()?;
    Ok(Exit::Success)
}

/// Every mapping of one stream or all, printed as it is read.
fn list(
    pipeline: &PipelineConfig,
    store: Option<&dyn Store>,
    stream: Option<&str>,
    format: OutputFormat,
) -> Done {
    let streams: Vec<&str> = match stream {
        Some(stream) => vec![stream],
        None => pipeline.streams.keys().map(String::as_str).collect(),
    };
    let width = streams.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let mut out = stdout();
    let mut printed = false;
    if let Some(store) = store {
        for stream in streams {
            for (source_id, target_id) in store.mappings(stream)? {
                let mapping = Mapping {
                    stream,
                    source_id: &source_id,
                    target_id: &target_id,
                };
                write_mapping(&mut out, format, width, &mapping)?;
                printed = true;
            }
        }
    }
    if !printed && format == OutputFormat::Text {
        writeln!(out, "no mappings yet")?;
    }
    out.flush()?;
    Ok(Exit::Success)
}

/// `stream  source_id → target_id`, or one line of JSON.
fn write_mapping(
    out: &mut impl Write,
    format: OutputFormat,
    stream_width: usize,
    mapping: &Mapping,
) -> Result<(), Stop> {
    match format {
        OutputFormat::Text => writeln!(
            out,
            "{:<stream_width$}  {} → {}",
            mapping.stream, mapping.source_id, mapping.target_id
        )?,
        OutputFormat::Json => {
            serde_json::to_writer(&mut *out, mapping)?;
            writeln!(out)?;
        }
    }
    Ok(())
}
