//! `runner validate FILE...`: every problem of every file, in one pass.

use serde::Serialize;

use super::{OutputFormat, ValidateArgs};
use crate::config::{check_file, Checked, Diagnostic, StreamConfig};
use crate::exit::Exit;
use crate::words::count;

/// One file's result in `--format json`.
#[derive(Serialize)]
struct FileReport<'a> {
    file: &'a str,
    valid: bool,
    errors: usize,
    warnings: usize,
    diagnostics: &'a [Diagnostic],
}

pub fn run(args: &ValidateArgs) -> Exit {
    let results: Vec<Checked> = args.files.iter().map(|f| check_file(f)).collect();
    match args.format {
        OutputFormat::Text => {
            for checked in &results {
                for diagnostic in &checked.diagnostics {
                    println!("{}", diagnostic.render());
                }
                println!("{}", summary(checked));
            }
        }
        OutputFormat::Json => {
            let reports: Vec<FileReport> = results
                .iter()
                .map(|c| FileReport {
                    file: &c.file,
                    valid: c.errors() == 0,
                    errors: c.errors(),
                    warnings: c.warnings(),
                    diagnostics: &c.diagnostics,
                })
                .collect();
            match serde_json::to_string_pretty(&reports) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    eprintln!("runner validate: cannot write the report: {e}");
                    return Exit::Failed;
                }
            }
        }
    }
    if results.iter().any(|c| c.errors() > 0) {
        Exit::Invalid
    } else {
        Exit::Success
    }
}

/// One line per file: valid with what it holds, or how many problems it has.
fn summary(checked: &Checked) -> String {
    let warnings = match checked.warnings() {
        0 => String::new(),
        1 => ", 1 warning".to_string(),
        n => format!(", {n} warnings"),
    };
    match &checked.pipeline {
        Some(pipeline) => {
            let two_way = pipeline
                .streams
                .values()
                .filter(|s| matches!(s, StreamConfig::TwoWay(_)))
                .count();
            let streams = pipeline.streams.len();
            format!(
                "{}: valid — pipeline `{}`, {}, {}{}{warnings}",
                checked.file,
                pipeline.name,
                count(pipeline.systems.len() as u64, "system", "systems"),
                count(streams as u64, "stream", "streams"),
                if two_way > 0 {
                    format!(" ({two_way} two-way)")
                } else {
                    String::new()
                },
            )
        }
        None => format!(
            "{}: invalid — {}{warnings}",
            checked.file,
            count(checked.errors() as u64, "error", "errors")
        ),
    }
}
