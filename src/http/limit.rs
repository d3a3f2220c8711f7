//! The per-system limiter: at most `max_in_flight` requests at once, spaced so the
//! system sees no more than `requests_per_second`, slowing down when the system says
//! 429 and recovering gradually as requests succeed again.
//!
//! Pacing hands out evenly spaced start slots instead of allowing bursts: a system
//! that counts requests per second never sees more than the rate in any window.
//! Time is tokio's, so tests can run it on a paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::system::LimitsConfig;

/// How much slower than the configured rate the limiter may go after 429s.
const MAX_SLOWDOWN: f64 = 64.0;
/// Each success takes this share off the slowdown (multiplicative recovery).
const RECOVERY: f64 = 0.95;

/// Limits one system's requests. Cloning shares the limits.
#[derive(Debug, Clone)]
pub struct Limiter {
    in_flight: Arc<Semaphore>,
    pacing: Arc<Mutex<Pacing>>,
}

#[derive(Debug)]
struct Pacing {
    /// Time between request starts at full speed; zero when there is no rate limit.
    interval: Duration,
    /// Current slowdown factor, ≥ 1.
    slowdown: f64,
    /// The earliest start of the next request.
    next_slot: Option<Instant>,
    /// Until when further 429s belong to the same episode and do not slow down again:
    /// requests in flight when the limit hit all come back 429 together.
    calm_until: Option<Instant>,
}

/// Permission to send one request; dropping it frees the in-flight slot.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
}

impl Limiter {
    pub fn new(limits: &LimitsConfig) -> Limiter {
        let interval = match limits.requests_per_second {
            Some(rps) if rps > 0.0 => Duration::from_secs_f64(1.0 / rps),
            _ => Duration::ZERO,
        };
        Limiter {
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1) as usize)),
            pacing: Arc::new(Mutex::new(Pacing {
                interval,
                slowdown: 1.0,
                next_slot: None,
                calm_until: None,
            })),
        }
    }

    /// Waits for an in-flight slot and the next start slot.
    pub async fn acquire(&self) -> Permit {
        let slot = match Arc::clone(&self.in_flight).acquire_owned().await {
            Ok(slot) => slot,
            // The semaphore is never closed; if it were, waiting would be wrong.
            Err(_) => unreachable!("the limiter's semaphore is never closed"),
        };
        let start = self.reserve_start();
        if let Some(start) = start {
            tokio::time::sleep_until(start).await;
        }
        Permit { _slot: slot }
    }

    /// Books the next start slot, if the system is paced.
    fn reserve_start(&self) -> Option<Instant> {
        let mut pacing = self.pacing.lock().unwrap_or_else(|e| e.into_inner());
        if pacing.interval.is_zero() {
            return None;
        }
        let now = Instant::now();
        let start = pacing.next_slot.map_or(now, |slot| slot.max(now));
        let spacing = pacing.interval.mul_f64(pacing.slowdown);
        pacing.next_slot = Some(start + spacing);
        Some(start)
    }

    /// The system answered 429, asking to wait `retry_after`: halve the pace (up to
    /// [`MAX_SLOWDOWN`]) — once per episode: the 429s of requests that were already in
    /// flight (within `retry_after`, at least a second) do not halve it again.
    pub fn on_rate_limited(&self, retry_after: Option<Duration>) {
        let mut pacing = self.pacing.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if pacing.calm_until.is_some_and(|until| now < until) {
            return;
        }
        pacing.calm_until = Some(now + retry_after.unwrap_or_default().max(Duration::from_secs(1)));
        pacing.slowdown = (pacing.slowdown * 2.0).min(MAX_SLOWDOWN);
    }

    /// A request succeeded: recover a little of the pace.
    pub fn on_success(&self) {
        let mut pacing = self.pacing.lock().unwrap_or_else(|e| e.into_inner());
        pacing.slowdown = (pacing.slowdown * RECOVERY).max(1.0);
    }

    /// Current slowdown factor (1 = full configured speed).
    pub fn slowdown(&self) -> f64 {
        self.pacing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slowdown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rps: Option<f64>, max_in_flight: u32) -> LimitsConfig {
        LimitsConfig {
            requests_per_second: rps,
            max_in_flight,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_to_the_rate() {
        let limiter = Limiter::new(&limits(Some(10.0), 100));
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..21 {
            let _permit = limiter.acquire().await;
            starts.push(start.elapsed());
        }
        assert_eq!(starts[0], Duration::ZERO);
        assert_eq!(starts[10], Duration::from_secs(1));
        assert_eq!(starts[20], Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_slows_down_and_successes_recover() {
        let limiter = Limiter::new(&limits(Some(10.0), 100));
        limiter.on_rate_limited(None);
        // The 429s of the other requests of the same burst do not compound.
        limiter.on_rate_limited(None);
        limiter.on_rate_limited(None);
        assert_eq!(limiter.slowdown(), 2.0);
        let start = Instant::now();
        let _a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        for _ in 0..100 {
            limiter.on_success();
        }
        assert_eq!(limiter.slowdown(), 1.0);
        // A later episode slows down again.
        tokio::time::advance(Duration::from_secs(2)).await;
        limiter.on_rate_limited(Some(Duration::from_secs(1)));
        assert_eq!(limiter.slowdown(), 2.0);
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_requests_are_capped() {
        let limiter = Limiter::new(&limits(None, 2));
        let a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        let third = tokio::time::timeout(Duration::from_secs(1), limiter.acquire()).await;
        assert!(
            third.is_err(),
            "a third request started while two were in flight"
        );
        drop(a);
        let third = tokio::time::timeout(Duration::from_secs(1), limiter.acquire()).await;
        assert!(third.is_ok());
    }
}
