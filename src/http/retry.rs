//! When to retry, and how long to wait: the one place that classifies responses and
//! transport failures, and computes backoff.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::config::system::RetryConfig;

/// What a response status means for the request that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx/3xx: done.
    Success,
    /// 401: the credentials may have expired; refresh once and retry.
    Unauthorized,
    /// 429 or 503: the system is asking us to slow down; honour `Retry-After`.
    Throttled,
    /// 408, 5xx: a passing failure; back off and retry.
    Transient,
    /// Any other 4xx: the request itself is wrong; do not retry.
    Permanent,
}

pub fn verdict(status: StatusCode) -> Verdict {
    match status.as_u16() {
        401 => Verdict::Unauthorized,
        429 | 503 => Verdict::Throttled,
        408 | 500..=599 => Verdict::Transient,
        400..=499 => Verdict::Permanent,
        _ => Verdict::Success,
    }
}

/// Whether a failed request may have reached the server (and been applied). Only a
/// failure to connect proves it did not.
pub fn may_have_arrived(error: &reqwest::Error) -> bool {
    !error.is_connect()
}

/// Backoff settings of one system.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_wait: Duration,
}

impl From<&RetryConfig> for RetryPolicy {
    fn from(config: &RetryConfig) -> RetryPolicy {
        RetryPolicy {
            max_attempts: config.max_attempts.max(1),
            initial_backoff: config.initial_backoff.get(),
            max_backoff: config.max_backoff.get(),
            max_wait: config.max_wait.get(),
        }
    }
}

impl RetryPolicy {
    /// Wait before attempt `attempt + 1` after a transient failure of attempt
    /// `attempt` (1-based): "full jitter", a random time up to the exponential
    /// ceiling, so that many clients failing together do not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let millis = ceiling.as_millis().min(u128::from(u64::MAX)) as u64;
        if millis == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    /// The exponential ceiling of [`RetryPolicy::backoff`]: initial × 2^(attempt−1),
    /// capped at `max_backoff`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// How the client waits between attempts: on tokio's clock, or — for tests — by
/// recording the wait and going on at once, so a test can check exactly what was
/// waited for without sleeping through it (a paused tokio clock does not mix with real
/// sockets: it jumps to the next timer whenever the client waits on the network).
#[derive(Debug, Clone, Default)]
pub enum Waiter {
    #[default]
    Sleep,
    Record(Arc<Mutex<Vec<Duration>>>),
}

impl Waiter {
    pub async fn wait(&self, duration: Duration) {
        match self {
            Waiter::Sleep => tokio::time::sleep(duration).await,
            Waiter::Record(waits) => waits
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(duration),
        }
    }
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP-date (RFC 9110
/// §10.2.3). A date in the past means "now".
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(60),
            max_wait: Duration::from_secs(300),
        }
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(verdict(StatusCode::OK), Verdict::Success);
        assert_eq!(verdict(StatusCode::UNAUTHORIZED), Verdict::Unauthorized);
        assert_eq!(verdict(StatusCode::TOO_MANY_REQUESTS), Verdict::Throttled);
        assert_eq!(verdict(StatusCode::SERVICE_UNAVAILABLE), Verdict::Throttled);
        assert_eq!(verdict(StatusCode::BAD_GATEWAY), Verdict::Transient);
        assert_eq!(verdict(StatusCode::REQUEST_TIMEOUT), Verdict::Transient);
        assert_eq!(
            verdict(StatusCode::UNPROCESSABLE_ENTITY),
            Verdict::Permanent
        );
        assert_eq!(verdict(StatusCode::NOT_FOUND), Verdict::Permanent);
    }

    #[test]
    fn backoff_grows_exponentially_under_a_cap_with_full_jitter() {
        let p = policy();
        assert_eq!(p.ceiling(1), Duration::from_millis(250));
        assert_eq!(p.ceiling(2), Duration::from_millis(500));
        assert_eq!(p.ceiling(5), Duration::from_secs(4));
        assert_eq!(p.ceiling(20), Duration::from_secs(60));
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(60));
        for attempt in 1..10 {
            for _ in 0..50 {
                assert!(p.backoff(attempt) <= p.ceiling(attempt));
            }
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));

        let later = SystemTime::now() + Duration::from_secs(30);
        let date = httpdate::fmt_http_date(later);
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(27) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );

        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));

        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
