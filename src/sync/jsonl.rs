//! A JSON-lines file as a target: an append-only log, one line per created or changed
//! record.
//!
//! Exports run to millions of records, so what a line's record looked like is not kept
//! in the sled store (one write per record would cost more than everything else put
//! together) but in an index file in the state directory: 16 bytes per line, the hash
//! of the record's id and of its fields, loaded into memory at the start of a run.
//!
//! Exactly once without an outbox: after a batch of lines and their index entries is
//! made durable, the store records both files' lengths; a run first cuts both back to
//! those lengths — lines written by a run that died before recording them are written
//! again, never twice.

use std::fs::{File, OpenOptions};
use std::hash::Hasher;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::line_index::LineIndex;
use super::mapper::Mapped;
use super::SyncError;
use crate::store::Store;

/// Bytes of one index entry: the id's hash and the fields' hash.
const ENTRY: usize = 16;

/// An open JSON-lines target: the file and its index.
#[derive(Debug)]
pub struct JsonlTarget {
    data: Appender,
    index: Appender,
    /// Id hash → fields hash of the record's last line.
    written: LineIndex,
    mark: String,
}

#[derive(Debug)]
struct Appender {
    path: PathBuf,
    file: File,
    length: u64,
}

impl Appender {
    fn open(path: &Path) -> Result<Appender, SyncError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(path, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(|e| io_error(path, e))?;
        let length = file.metadata().map_err(|e| io_error(path, e))?.len();
        Ok(Appender {
            path: path.to_path_buf(),
            file,
            length,
        })
    }

    /// Cuts the file back to `length`.
    fn cut(&mut self, length: u64) -> Result<(), SyncError> {
        self.file
            .set_len(length)
            .map_err(|e| io_error(&self.path, e))?;
        self.length = length;
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), SyncError> {
        self.file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io_error(&self.path, e))?;
        self.length += bytes.len() as u64;
        Ok(())
    }
}

fn io_error(path: &Path, error: std::io::Error) -> SyncError {
    SyncError::Source(format!("{}: {error}", path.display()))
}

impl JsonlTarget {
    /// Opens the target file `path` of stream `stream` with its index in `index_dir`,
    /// cutting off what was never committed — or, with `cut` false (a dry run), only
    /// reading the committed part of the index.
    pub fn open(
        path: &Path,
        index_dir: &Path,
        stream: &str,
        store: &dyn Store,
        cut: bool,
    ) -> Result<JsonlTarget, SyncError> {
        let mut data = Appender::open(path)?;
        let mut index = Appender::open(&index_dir.join(format!("{stream}.index")))?;
        let mark = format!("jsonl:{stream}");
        let committed = store.mark(&mark)?.and_then(|bytes| {
            let data = <[u8; 8]>::try_from(bytes.get(..8)?).ok()?;
            let index = <[u8; 8]>::try_from(bytes.get(8..16)?).ok()?;
            Some((u64::from_be_bytes(data), u64::from_be_bytes(index)))
        });
        let index_length = match committed {
            Some((data_length, _)) if data.length < data_length => {
                // Someone shortened or replaced the file: its index no longer
                // describes it. Start over: every record is written again.
                tracing::warn!(file = %path.display(), "the export file is shorter than runner left it; writing every record again");
                0
            }
            Some((data_length, index_length)) => {
                if cut && (data.length > data_length || index.length > index_length) {
                    tracing::warn!(file = %path.display(), "cutting lines an interrupted run wrote but never committed");
                    data.cut(data_length)?;
                }
                index_length
            }
            // Never committed: a file of someone else's is appended to; an index of
            // ours that was never committed is stale.
            None => 0,
        };
        if cut {
            index.cut(index_length)?;
        }
        let written = load_index(&index.path, index_length)?;
        Ok(JsonlTarget {
            data,
            index,
            written,
            mark,
        })
    }

    /// Whether the record's last line has these fields.
    pub fn unchanged(&self, source_id: &str, hash: &str) -> bool {
        self.written.get(id_hash(source_id)) == Some(fields_hash(hash))
    }

    /// Whether the record has a line already.
    pub fn known(&self, source_id: &str) -> bool {
        self.written.get(id_hash(source_id)).is_some()
    }

    /// Appends one line per record and its index entry, makes both durable, and
    /// returns the store mark that commits them.
    pub fn append(
        &mut self,
        lines: &[(String, Mapped, bool)],
    ) -> Result<(String, Vec<u8>), SyncError> {
        let mut text = Vec::with_capacity(lines.len() * 128);
        let mut entries = Vec::with_capacity(lines.len() * ENTRY);
        for (source_id, mapped, _) in lines {
            serde_json::to_writer(&mut text, &mapped.fields)
                .map_err(|e| SyncError::Source(e.to_string()))?;
            text.push(b'\n');
            let (id, fields) = (id_hash(source_id), fields_hash(&mapped.hash));
            entries.extend_from_slice(&id.to_be_bytes());
            entries.extend_from_slice(&fields.to_be_bytes());
            self.written.insert(id, fields);
        }
        // The data first: an index entry never describes a line that is not there.
        self.data.append(&text)?;
        self.index.append(&entries)?;
        let mut mark = self.data.length.to_be_bytes().to_vec();
        mark.extend_from_slice(&self.index.length.to_be_bytes());
        Ok((self.mark.clone(), mark))
    }
}

/// The first `length` bytes of the index, as id hash → fields hash. Read in pieces:
/// the entries are the only copy held.
fn load_index(path: &Path, length: u64) -> Result<LineIndex, SyncError> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file.take(length));
    let mut entries = Vec::with_capacity(length as usize / ENTRY);
    let mut entry = [0u8; ENTRY];
    loop {
        match reader.read_exact(&mut entry) {
            Ok(()) => {}
            // A torn last entry (never committed) is not an entry.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io_error(path, e)),
        }
        let (id, fields) = entry.split_at(8);
        // `split_at(8)` of 16 bytes gives two halves of 8.
        let id = u64::from_be_bytes(<[u8; 8]>::try_from(id).unwrap_or_default());
        let fields = u64::from_be_bytes(<[u8; 8]>::try_from(fields).unwrap_or_default());
        entries.push((id, fields));
    }
    Ok(LineIndex::from_entries(entries.into_iter()))
}

/// A stable 64-bit hash of a record id (FNV-1a: the index outlives the process, so
/// the hash must not be seeded per run as std's hasher is).
fn id_hash(id: &str) -> u64 {
    let mut hasher = Fnv1a::default();
    hasher.write(id.as_bytes());
    hasher.finish()
}

/// The first 64 bits of the fields' hash (hex), as stored in the index.
fn fields_hash(hex: &str) -> u64 {
    u64::from_str_radix(hex.get(..16).unwrap_or(hex), 16).unwrap_or_else(|_| {
        let mut hasher = Fnv1a::default();
        hasher.write(hex.as_bytes());
        hasher.finish()
    })
}

struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_hashes_are_stable_across_runs() {
        // Pinned: the index on disk depends on them (FNV-1a of the id's bytes).
        assert_eq!(id_hash("c_000001"), 0xc71f_d65a_5f3d_b2cc);
        assert_ne!(id_hash("c_000001"), id_hash("c_000002"));
        assert_eq!(fields_hash("0123456789abcdef0011"), 0x0123_4567_89ab_cdef);
    }
}
