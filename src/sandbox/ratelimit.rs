//! A token bucket per app, the way most SaaS APIs limit: a burst allowance refilled at
//! a steady rate, `X-RateLimit-Remaining` on every response, `Retry-After` on a 429.

use std::time::{Duration, Instant, SystemTime};

use super::config::{RateLimit, RetryAfterStyle};

/// What `X-RateLimit-Remaining` says when the app has no limit: a large number, since
/// clients that read the header expect one.
pub const UNLIMITED_REMAINING: u64 = 1_000_000;

#[derive(Debug)]
pub struct Bucket {
    limit: RateLimit,
    tokens: f64,
    refilled_at: Instant,
}

/// The bucket's answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Go ahead; this many requests are left right now.
    Allowed { remaining: u64 },
    /// 429: try again after this `Retry-After` value.
    Limited { retry_after: String },
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Bucket {
        Bucket {
            tokens: f64::from(limit.burst),
            limit,
            refilled_at: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn admit(&mut self) -> Admission {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Admission::Allowed {
                remaining: self.remaining(),
            };
        }
        let wait = self.seconds_until_next_token();
        let retry_after = match self.limit.retry_after {
            RetryAfterStyle::Seconds => wait.to_string(),
            RetryAfterStyle::HttpDate => {
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(wait))
            }
        };
        Admission::Limited { retry_after }
    }

    /// Whole requests left, without taking one (for responses that are not limited).
    pub fn peek_remaining(&mut self) -> u64 {
        self.refill();
        self.remaining()
    }

    fn remaining(&self) -> u64 {
        // tokens is within 0..=burst (a u32), so the cast cannot overflow.
        self.tokens.floor().max(0.0) as u64
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        let capacity = f64::from(self.limit.burst);
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(capacity);
        self.refilled_at = now;
    }

    /// Rounded up and at least 1: a client that waits this long will get through.
    fn seconds_until_next_token(&self) -> u64 {
        if self.limit.per_second <= 0.0 {
            return 60; // a limit that never refills: send clients away for a while
        }
        let wait = ((1.0 - self.tokens) / self.limit.per_second).ceil();
        // wait is positive and finite here; clamp keeps the cast in range.
        wait.clamp(1.0, 86_400.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_429_with_seconds() {
        let mut bucket = Bucket::new(RateLimit {
            per_second: 0.5,
            burst: 2,
            retry_after: RetryAfterStyle::Seconds,
        });
        assert_eq!(bucket.admit(), Admission::Allowed { remaining: 1 });
        assert_eq!(bucket.admit(), Admission::Allowed { remaining: 0 });
        match bucket.admit() {
            Admission::Limited { retry_after } => assert_eq!(retry_after, "2"),
            other => panic!("expected a 429, got {other:?}"),
        }
    }
}
