//! Injected faults: which request gets one (seeded dice), and what the client then sees.
//! A fault on a write lands before or after the write is applied (a coin toss from the
//! same dice): "after" is the in-doubt write — it happened, but the client cannot know.

use std::future::Future;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::Rng;

use super::config::{FaultKind, Faults};
use super::reply;

/// A fault chosen for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    pub kind: FaultKind,
    /// Apply the request's write first (only ever true for writes).
    pub after_write: bool,
}

/// How a request ends.
pub enum Outcome {
    Reply(Response),
    /// Close the connection without any response.
    Reset,
}

/// Rolls the dice for one resource request: one roll for "a fault or not", then the
/// kind and, for writes, before or after. The same seed and the same sequence of
/// requests give the same faults.
pub fn draw(dice: &mut StdRng, faults: &Faults, mutating: bool) -> Option<FaultPlan> {
    let roll: f64 = dice.random();
    if faults.kinds.is_empty() || roll >= faults.rate {
        return None;
    }
    let kind = faults.kinds[dice.random_range(0..faults.kinds.len())].clone();
    let after_write = mutating && dice.random_bool(0.5);
    Some(FaultPlan { kind, after_write })
}

/// Serves a request with `plan`'s fault; `handle` is the normal handling, run only when
/// the fault needs it (after a write, for a slow reply, or to truncate a read).
pub async fn inject<F>(plan: FaultPlan, mutating: bool, slow_for: Duration, handle: F) -> Outcome
where
    F: Future<Output = Response>,
{
    let runs_handler = plan.after_write || (!mutating && plan.kind == FaultKind::Truncated);
    match plan.kind {
        FaultKind::Slow if plan.after_write => {
            let response = handle.await;
            tokio::time::sleep(slow_for).await;
            Outcome::Reply(response)
        }
        FaultKind::Slow => {
            tokio::time::sleep(slow_for).await;
            Outcome::Reply(handle.await)
        }
        FaultKind::Truncated if runs_handler => Outcome::Reply(truncate(handle.await).await),
        FaultKind::Truncated => Outcome::Reply(truncate(placeholder()).await),
        kind => {
            if runs_handler {
                handle.await; // the write happens; its reply is lost
            }
            match kind {
                FaultKind::Reset => Outcome::Reset,
                _ => Outcome::Reply(error_status(kind)),
            }
        }
    }
}

/// The reply of a `Status5xx` fault; 503 says when to come back, as real gateways do.
fn error_status(kind: FaultKind) -> Response {
    let (status, code) = match kind {
        FaultKind::Status502 => (StatusCode::BAD_GATEWAY, "bad_gateway"),
        FaultKind::Status503 => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    };
    let mut response = reply::error(status, code, "injected fault");
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// What a write cut before it ran "answers", and what replaces an empty body: any JSON
/// will do, since the client only ever sees half of it.
const PLACEHOLDER: &str = r#"{"ok":true,"message":"this reply is cut short by the sandbox"}"#;

fn placeholder() -> Response {
    let mut response = Response::new(Body::from(PLACEHOLDER));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Keeps status and headers, cuts the body roughly in half (with a matching
/// Content-Length, so the HTTP exchange is clean and only the JSON is broken). An empty
/// body (a 204) becomes a 200 with half of the placeholder, so the cut stays visible.
async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let mut bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    if bytes.len() < 2 {
        bytes = Bytes::from_static(PLACEHOLDER.as_bytes());
        parts.status = StatusCode::OK;
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes.slice(..bytes.len() / 2)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let faults = Faults {
            rate: 0.5,
            ..Faults::default()
        };
        let run = |seed| {
            let mut dice = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|i| draw(&mut dice, &faults, i % 3 == 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert!(run(7).iter().any(Option::is_some));
        assert!(run(7).iter().any(Option::is_none));
    }

    #[test]
    fn reads_never_fault_after_a_write() {
        let faults = Faults {
            rate: 1.0,
            ..Faults::default()
        };
        let mut dice = StdRng::seed_from_u64(1);
        assert!((0..20).all(|_| draw(&mut dice, &faults, false).is_some_and(|p| !p.after_write)));
    }
}
