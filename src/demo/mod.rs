//! `runner demo`: a one-way sync against the sandbox APIs with the unhappy paths on —
//! expiring tokens, 429s, 5xx, records the target refuses, records that already exist
//! there, and a run killed half-way — then proof, read back from the state store and
//! from the target, that every record arrived exactly once. Then part two: a two-way
//! stream whose records people edit on both sides, and proof that both systems agree
//! by the rules, with nothing echoed back.
//!
//! - [`scenario`]: the sandbox with its faults switched on, and the seeded records.
//! - [`pipeline`]: the pipeline the demo writes and validates.
//! - [`runs`]: `runner apply` as child processes, one of them killed on purpose.
//! - [`check`]: billing read back and compared with the CRM, customer by customer.
//! - [`report`]: what the store and the target hold afterwards, and the verdict.
//! - [`two_way`]: part two — a two-way stream edited on both sides, and its check.
//!
//! The command line ([`crate::cli`]) strings these together and prints as it goes.

pub mod check;
pub mod pipeline;
pub mod report;
pub mod runs;
pub mod scenario;
pub mod two_way;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// The folder the demo writes its pipeline and state to: `dir` if given (it must be
/// new or empty — the sandbox starts empty, so old state would not match it), else a
/// new folder under the system's temp dir, which is kept for the person to look at.
pub fn work_dir(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let used = std::fs::read_dir(dir)
                .with_context(|| format!("cannot read {}", dir.display()))?
                .next()
                .is_some();
            if used {
                anyhow::bail!(
                    "{} is not empty: the demo starts from scratch, give it a new or empty folder",
                    dir.display()
                );
            }
            Ok(dir.to_path_buf())
        }
        None => new_temp_dir(),
    }
}

/// `runner-demo-<time>` under the temp dir; `create_dir` (not `_all`) so two demos
/// started at the same moment never share one.
fn new_temp_dir() -> anyhow::Result<PathBuf> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let base = std::env::temp_dir();
    for attempt in 0..100 {
        let dir = base.join(format!("runner-demo-{stamp}-{attempt}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    anyhow::bail!("cannot create a new folder under {}", base.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_used_folder_is_refused_and_an_empty_one_taken() {
        let dir = std::env::temp_dir().join(format!("runner-demo-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(work_dir(Some(&dir)).ok(), Some(dir.clone()));
        std::fs::write(dir.join("pipeline.yaml"), "old").ok();
        assert!(work_dir(Some(&dir)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
