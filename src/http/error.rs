//! What can go wrong talking to a system, sorted by what the caller should do about it.
//! Every text in here is already redacted when the error is built.

use std::time::Duration;

use thiserror::Error;

/// A request that failed for good (after retries, where retrying made sense).
#[derive(Debug, Clone, Error)]
pub enum HttpError {
    /// The system's credentials no longer work (refresh token revoked or expired,
    /// client disabled). Retrying is pointless: a person must reconnect the system.
    #[error("reconnect {system}: {reason}")]
    ReconnectRequired { system: String, reason: String },

    /// The system refused the request (a 4xx other than 401/408/429). The request is
    /// wrong, or the record is; sending it again will not help.
    #[error("{method} {url} was refused with {status}: {body}")]
    Permanent {
        method: String,
        url: String,
        status: u16,
        body: String,
    },

    /// A create (or other unsafe request) may have been applied, but no answer came
    /// back: sending it again could duplicate it. The caller must find out first.
    #[error("{method} {url} may or may not have been applied: {reason}")]
    InDoubt {
        method: String,
        url: String,
        reason: String,
    },

    /// Retryable failures (5xx, timeouts, resets, 429s) went on for every attempt.
    #[error("{method} {url} still failing after {attempts} attempts: {last}")]
    RetriesExhausted {
        method: String,
        url: String,
        attempts: u32,
        last: String,
    },

    /// The system asked to wait longer than `max_wait`. The stream stops cleanly with
    /// its state saved, to resume on the next run.
    #[error("{system} asked to wait {}s (Retry-After), longer than max_wait {}s: stopping to resume on the next run", wait.as_secs(), max_wait.as_secs())]
    RetryAfterTooLong {
        system: String,
        wait: Duration,
        max_wait: Duration,
    },

    /// The response body could not be used (not JSON, or not the expected shape).
    #[error("{url}: unusable response: {reason}")]
    InvalidResponse { url: String, reason: String },

    /// Pagination went round in a circle: the same cursor or URL again, or the same
    /// page twice.
    #[error("pagination loop at page {page} of {url}: {reason}")]
    PaginationLoop {
        page: u64,
        url: String,
        reason: String,
    },

    /// The request could not be built (bad URL, template error, missing secret).
    #[error("{0}")]
    Setup(String),
}

impl HttpError {
    /// The system must be reconnected by a person (exit code 3).
    pub fn is_reconnect(&self) -> bool {
        matches!(self, HttpError::ReconnectRequired { .. })
    }
}
