//! What happens to every request of an app before (and after) its route handler, in
//! the order a real API stack does it:
//!
//! journal (arrival) → latency → scripted reply? → token endpoint? → rate limit → auth
//! → random fault → handler → `X-RateLimit-Remaining` → journal (status, fault).
//!
//! The work runs in its own task, so a client that hangs up (say, on a Slow fault)
//! does not cancel a write half-way: the server finishes it, as real servers do.

use axum::body::{to_bytes, Body};
use axum::extract::{OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;

use super::app::{App, Scripted};
use super::auth;
use super::config::FaultKind;
use super::faults::{draw, inject, FaultPlan, Outcome};
use super::journal::Arrival;
use super::lock;
use super::oauth::is_refresh_grant;
use super::ratelimit::{Admission, UNLIMITED_REMAINING};
use super::reply;
use super::server::ConnectionKill;

/// Request bodies are read whole (for the journal); larger ones are refused.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The axum middleware of each app.
pub async fn pipeline(State(app): State<App>, request: Request, next: Next) -> Response {
    let kill = request.extensions().get::<ConnectionKill>().cloned();
    match tokio::spawn(process(app, request, next)).await {
        Ok(Some(response)) => response,
        Ok(None) => reset(kill).await,
        Err(_) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the sandbox handler failed",
        ),
    }
}

/// Drops the connection without a response: the handler never returns, the connection
/// task sees the signal and closes the socket.
async fn reset(kill: Option<ConnectionKill>) -> Response {
    match kill {
        Some(kill) => {
            kill.fire();
            std::future::pending().await
        }
        None => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reset_unavailable",
            "this connection cannot be reset",
        ),
    }
}

/// How steering a request ended, for the journal and the rate-limit header.
struct Handled {
    outcome: Outcome,
    fault: Option<FaultKind>,
    remaining: Option<u64>,
}

impl Handled {
    fn reply(response: Response) -> Handled {
        Handled {
            outcome: Outcome::Reply(response),
            fault: None,
            remaining: None,
        }
    }
}

/// Journals the request, steers it, journals the end. `None`: reset the connection.
async fn process(app: App, request: Request, next: Next) -> Option<Response> {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY_BYTES).await else {
        return Some(reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "body over 16 MiB",
        ));
    };
    let seq = app.state.journal.arrive(arrival(&app, &parts, &body));
    let token_endpoint = parts.uri.path() == "/oauth/token";
    app.count(|s| {
        s.requests += 1;
        if token_endpoint {
            s.token_requests += 1;
            s.refreshes += u64::from(is_refresh_grant(&body));
        }
    });
    let latency = app.settings().config.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let request = Request::from_parts(parts, Body::from(body));
    let handled = steer(&app, request, next, token_endpoint).await;
    match handled.outcome {
        Outcome::Reply(mut response) => {
            let remaining = handled.remaining.unwrap_or_else(|| peek_remaining(&app));
            response
                .headers_mut()
                .entry("x-ratelimit-remaining")
                .or_insert_with(|| HeaderValue::from(remaining));
            app.state
                .journal
                .finish(seq, response.status().as_u16(), handled.fault);
            Some(response)
        }
        Outcome::Reset => {
            app.state.journal.finish(seq, 0, handled.fault);
            None
        }
    }
}

fn arrival(app: &App, parts: &Parts, body: &Bytes) -> Arrival {
    // The nested router strips "/crm"; the journal shows the path as sent.
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |original| &original.0);
    Arrival {
        app: app.name().to_string(),
        method: parts.method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

async fn steer(app: &App, request: Request, next: Next, token_endpoint: bool) -> Handled {
    let scripted = lock(&app.state.script).pop_front();
    match scripted {
        None | Some(Scripted::Pass) => {}
        Some(scripted) => return play(app, scripted, request, next).await,
    }
    if token_endpoint {
        return Handled::reply(next.run(request).await);
    }
    let admission = lock(&app.state.limiter)
        .as_mut()
        .map(|bucket| bucket.admit());
    let remaining = match admission {
        Some(Admission::Limited { retry_after }) => {
            app.count(|s| s.rate_limited += 1);
            return Handled::reply(too_many_requests(&retry_after));
        }
        Some(Admission::Allowed { remaining }) => Some(remaining),
        None => None,
    };
    if let Err(challenge) = check_auth(app, &request) {
        app.count(|s| s.unauthorized += 1);
        return Handled {
            remaining,
            ..Handled::reply(unauthorized(&challenge))
        };
    }
    let mutating = is_write(request.method());
    let faults = app.settings().config.faults.clone();
    let plan = draw(&mut lock(&app.state.dice), &faults, mutating);
    let Some(plan) = plan else {
        return Handled {
            remaining,
            ..Handled::reply(next.run(request).await)
        };
    };
    app.count(|s| s.faults += 1);
    let kind = plan.kind.clone();
    Handled {
        outcome: inject(plan, mutating, faults.slow_for, next.run(request)).await,
        fault: Some(kind),
        remaining,
    }
}

/// A scripted reply instead of normal handling.
async fn play(app: &App, scripted: Scripted, request: Request, next: Next) -> Handled {
    let mutating = is_write(request.method());
    let (kind, after_write) = match scripted {
        Scripted::Status {
            status,
            headers,
            body,
        } => return Handled::reply(scripted_status(status, &headers, body)),
        Scripted::Fault(kind) => (kind, false),
        Scripted::FaultAfterWrite(kind) => (kind, mutating),
        // `steer` handles a pass before it gets here; normal handling all the same.
        Scripted::Pass => return Handled::reply(next.run(request).await),
    };
    app.count(|s| s.faults += 1);
    let slow_for = app.settings().config.faults.slow_for;
    let plan = FaultPlan {
        kind: kind.clone(),
        after_write,
    };
    Handled {
        outcome: inject(plan, mutating, slow_for, next.run(request)).await,
        fault: Some(kind),
        remaining: None,
    }
}

fn scripted_status(status: u16, headers: &[(String, String)], body: String) -> Response {
    let looks_like_json = serde_json::from_str::<serde_json::Value>(&body).is_ok();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = reply::status_from(status);
    let content_type = if looks_like_json {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in headers {
        match (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().insert(name, value);
            }
            _ => tracing::warn!(%name, "scripted header is not a valid HTTP header; left out"),
        }
    }
    response
}

fn check_auth(app: &App, request: &Request) -> Result<(), auth::Challenge> {
    let mode = app.settings().config.auth.clone();
    let tokens = lock(&app.state.tokens);
    auth::check(&mode, request.headers(), request.uri().query(), &tokens)
}

fn is_write(method: &Method) -> bool {
    [Method::POST, Method::PATCH, Method::PUT, Method::DELETE].contains(method)
}

fn peek_remaining(app: &App) -> u64 {
    lock(&app.state.limiter)
        .as_mut()
        .map_or(UNLIMITED_REMAINING, |bucket| bucket.peek_remaining())
}

fn too_many_requests(retry_after: &str) -> Response {
    let mut response = reply::error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow down");
    if let Ok(value) = HeaderValue::from_str(retry_after) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn unauthorized(challenge: &str) -> Response {
    let mut response = reply::json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({"error": "unauthorized"}),
    );
    if let Ok(value) = HeaderValue::from_str(challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
