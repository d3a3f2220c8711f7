//! Using runner as a library: check a pipeline file and walk its streams.
//!
//! `cargo run --example check_pipeline -- pipelines/crm-to-billing.yaml`

use std::path::PathBuf;
use std::process::ExitCode;

use runner::config::{check_file, StreamConfig};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: check_pipeline FILE");
        return ExitCode::from(2);
    };
    let checked = check_file(&path);
    for diagnostic in &checked.diagnostics {
        eprintln!("{}", diagnostic.render());
    }
    let Some(pipeline) = checked.pipeline else {
        return ExitCode::from(2);
    };
    for (name, stream) in &pipeline.streams {
        match stream {
            StreamConfig::OneWay(s) => println!(
                "{name}: one-way {} -> {}, {} fields",
                s.source.system,
                s.target.system,
                s.fields.len()
            ),
            StreamConfig::TwoWay(s) => println!(
                "{name}: two-way {} <-> {}, {} fields",
                s.sides.a.read.system,
                s.sides.b.read.system,
                s.fields.len()
            ),
        }
    }
    ExitCode::SUCCESS
}
