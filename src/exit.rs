//! Exit codes: part of runner's interface, for scripts and schedulers.

use std::process::ExitCode;

/// How a `runner` command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything done.
    Success = 0,
    /// The run failed (or the command could not do its work).
    Failed = 1,
    /// The pipeline or the arguments are invalid.
    Invalid = 2,
    /// A system needs to be reconnected: its credentials were revoked.
    Reconnect = 3,
    /// The run finished, but some records are in the dead-letter queue.
    DeadLettered = 4,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}
