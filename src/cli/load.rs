//! Loading what a command works on: the pipeline (validated) and its state store.

use std::path::Path;
use std::sync::Arc;

use crate::config::{check_file, PipelineConfig};
use crate::exit::Exit;
use crate::store::{state_dir, SledStore};

/// The pipeline in `file`, or — after printing every problem — exit 2.
pub fn pipeline(file: &Path) -> Result<PipelineConfig, Exit> {
    let checked = check_file(file);
    for diagnostic in &checked.diagnostics {
        eprintln!("{}", diagnostic.render());
    }
    checked.pipeline.ok_or_else(|| {
        eprintln!(
            "{}: invalid — fix the errors above (`runner validate` lists them)",
            file.display()
        );
        Exit::Invalid
    })
}

/// The state store of `pipeline`, or — after saying why — exit 1.
pub fn store(pipeline: &PipelineConfig, file: &Path) -> Result<Arc<SledStore>, Exit> {
    let dir = state_dir(pipeline, file);
    SledStore::open(&dir).map(Arc::new).map_err(|e| {
        eprintln!("runner: {e}");
        Exit::Failed
    })
}

/// A stream named on the command line, checked against the pipeline.
pub fn stream<'a>(
    pipeline: &PipelineConfig,
    stream: Option<&'a str>,
) -> Result<Option<&'a str>, Exit> {
    match stream {
        Some(name) if !pipeline.streams.contains_key(name) => {
            let names: Vec<&str> = pipeline.streams.keys().map(String::as_str).collect();
            eprintln!(
                "runner: pipeline `{}` has no stream `{name}` (streams: {})",
                pipeline.name,
                names.join(", ")
            );
            Err(Exit::Invalid)
        }
        other => Ok(other),
    }
}
