//! Talking to HTTP systems: auth (with single-flight OAuth2 refresh), pagination,
//! retries with backoff, rate and concurrency limits, and redaction of secrets.
//!
//! - [`client`]: [`HttpSystem`], one system's client; every request goes through it.
//! - [`auth`] and [`oauth2`]: credentials, token refresh, the [`TokenStore`] seam.
//! - [`retry`]: what is retryable and how long to wait.
//! - [`limit`]: requests per second and in flight, slowing down after 429s.
//! - [`paginate`]: a listing as a stream of pages, for every pagination style.
//! - [`redact`]: secrets out of every log line and error.
//! - [`error`]: [`HttpError`], sorted by what the caller should do.

pub mod auth;
pub mod client;
pub mod error;
pub mod limit;
pub mod oauth2;
pub mod paginate;
pub mod redact;
pub mod retry;

pub use client::{ClientContext, HttpSystem, Request, Response, Safety};
pub use error::HttpError;
pub use oauth2::{MemoryTokenStore, TokenStore};
pub use paginate::{pages, Listing, Page, Resume};
pub use redact::Redactor;
pub use retry::Waiter;
