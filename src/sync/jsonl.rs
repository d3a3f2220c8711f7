//! A JSON-lines file as a target: an append-only log, one line per created or changed
//! record. Exactly once without an outbox: the store remembers (in the same
//! transaction as the records' bases) how long the file was when lines were last
//! committed, and a run first cuts the file back to that length — lines written by a
//! run that died before committing them are written again, never twice.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::SyncError;
use crate::store::Store;

/// An open JSON-lines target.
#[derive(Debug)]
pub struct JsonlFile {
    path: PathBuf,
    file: File,
    length: u64,
    mark: String,
}

impl JsonlFile {
    /// Opens `path` for stream `stream`, cutting off what was never committed.
    pub fn open(path: &Path, stream: &str, store: &dyn Store) -> Result<JsonlFile, SyncError> {
        let io = |e: std::io::Error| SyncError::Source(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mark = format!("jsonl_length:{stream}");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(io)?;
        let on_disk = file.metadata().map_err(io)?.len();
        let committed = store
            .mark(&mark)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map(u64::from_be_bytes);
        let length = match committed {
            Some(committed) if committed < on_disk => {
                tracing::warn!(file = %path.display(), committed, on_disk, "cutting uncommitted lines left by an interrupted run");
                file.set_len(committed).map_err(io)?;
                committed
            }
            _ => on_disk,
        };
        Ok(JsonlFile {
            path: path.to_path_buf(),
            file,
            length,
            mark,
        })
    }

    /// Appends one line per value and makes them durable. Returns the store mark that
    /// commits them: commit it with the records' completions.
    pub fn append(&mut self, values: &[Value]) -> Result<(String, Vec<u8>), SyncError> {
        let mut buffer = Vec::with_capacity(values.len() * 128);
        for value in values {
            serde_json::to_writer(&mut buffer, value)
                .map_err(|e| SyncError::Source(e.to_string()))?;
            buffer.push(b'\n');
        }
        let io = |e: std::io::Error| SyncError::Source(format!("{}: {e}", self.path.display()));
        self.file.write_all(&buffer).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.length += buffer.len() as u64;
        Ok((self.mark.clone(), self.length.to_be_bytes().to_vec()))
    }
}
