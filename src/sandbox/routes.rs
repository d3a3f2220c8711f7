//! The HTTP surface: each app's resource and token routes (behind its pipeline), plus
//! `/_sandbox/journal` and `/_sandbox/stats` for people poking at a running sandbox.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::app::{App, SavedReply};
use super::config::AuthMode;
use super::journal::Journal;
use super::listing::Source;
use super::lock;
use super::oauth::token_endpoint;
use super::paging::{page, PageRequest};
use super::pipeline::pipeline;
use super::query::ListQuery;
use super::reply;
use super::store::Record;

/// The whole server: both apps under their prefixes and the sandbox's own endpoints.
pub fn router(crm: App, billing: App, journal: Arc<Journal>) -> Router {
    let inspect = Router::new()
        .route("/_sandbox/journal", get(journal_endpoint))
        .route("/_sandbox/stats", get(stats_endpoint))
        .with_state((crm.clone(), billing.clone(), journal));
    Router::new()
        .nest(&format!("/{}", crm.name()), app_router(crm))
        .nest(&format!("/{}", billing.name()), app_router(billing))
        .merge(inspect)
        .fallback(not_found)
}

/// One app: `/oauth/token`, `/{resource}` and `/{resource}/{id}`, all behind the
/// app's pipeline (unknown paths too, so they are journaled and authenticated).
fn app_router(app: App) -> Router {
    let collection = format!("/{}", app.resource());
    let item = format!("/{}/{{id}}", app.resource());
    Router::new()
        .route("/oauth/token", post(token))
        .route(&collection, get(list).post(create))
        .route(&item, get(read).patch(patch).put(put).delete(delete))
        .fallback(not_found)
        .layer(from_fn_with_state(app.clone(), pipeline))
        .with_state(app)
}

async fn not_found(uri: OriginalUri) -> Response {
    let message = format!("nothing at {}", uri.0.path());
    reply::error(StatusCode::NOT_FOUND, "not_found", &message)
}

async fn token(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = app.settings().config.auth.clone();
    let token_reply = token_endpoint(&auth, &mut lock(&app.state.tokens), &headers, &body);
    let mut response = reply::json(token_reply.status, &token_reply.body);
    // RFC 6749 §5.1: token replies must not be cached.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = token_reply
        .challenge
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

async fn list(
    State(app): State<App>,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> Response {
    let settings = app.settings().clone();
    let config = &settings.config;
    let secret_param = match &config.auth {
        AuthMode::ApiKeyQuery { param, .. } => Some(param.as_str()),
        _ => None,
    };
    let build = |source: &Source| {
        let query = ListQuery::parse(raw.as_deref(), config, secret_param, source)?;
        let request = PageRequest {
            style: config.pagination.clone(),
            records_key: &config.records_key,
            repeat_last_page: config.repeat_last_page,
            repeat_cursor: settings.repeat_cursor,
            origin: &app.state.origin,
            path: uri.path(),
            query: &query,
        };
        page(&request, source)
    };
    let data = app.data();
    let built = match data.synthetic.clone() {
        // Synthetic records need no lock: concurrent benchmark pages build in parallel.
        Some(synthetic) => {
            drop(data);
            build(&Source::Synthetic(&synthetic))
        }
        None => build(&data.source()),
    };
    match built {
        Ok(page) => {
            let mut response = reply::json(StatusCode::OK, &page.body);
            if let Some(link) = page.link.and_then(|l| HeaderValue::from_str(&l).ok()) {
                response.headers_mut().insert(header::LINK, link);
            }
            response
        }
        Err(message) => reply::error(StatusCode::BAD_REQUEST, "invalid_query", &message),
    }
}

async fn read(State(app): State<App>, Path(id): Path<String>) -> Response {
    let data = app.data();
    let found = match &data.synthetic {
        Some(synthetic) => synthetic.get(&id).or_else(|| data.store.get(&id).cloned()),
        None => data.store.get(&id).cloned(),
    };
    match found {
        Some(record) => reply::json(StatusCode::OK, &Value::Object(record)),
        None => missing(&app, &id),
    }
}

/// POST: creates a record, honouring `Idempotency-Key` when the app does.
async fn create(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let idempotency_key = app
        .settings()
        .config
        .idempotency
        .then(|| {
            headers
                .get("idempotency-key")?
                .to_str()
                .ok()
                .map(str::to_string)
        })
        .flatten();
    let mut data = app.data();
    let fingerprint = fingerprint(&body);
    if let Some(saved) = idempotency_key
        .as_ref()
        .and_then(|k| data.idempotency.get(k))
    {
        if saved.fingerprint != fingerprint {
            let message = "this Idempotency-Key was used with a different body";
            return reply::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            );
        }
        app.count(|s| s.idempotent_replays += 1);
        let mut response = reply::json(reply::status_from(saved.status), &saved.body);
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return response;
    }
    let (status, reply_body) = match parse_record(&body).and_then(require_email) {
        Ok(fields) => {
            app.count(|s| s.creates += 1);
            (
                StatusCode::CREATED,
                Value::Object(data.store.create_fresh(fields)),
            )
        }
        Err(rejection) => rejection,
    };
    if let Some(key) = idempotency_key {
        let saved = SavedReply {
            fingerprint,
            status: status.as_u16(),
            body: reply_body.clone(),
        };
        data.idempotency.insert(key, saved);
    }
    reply::json(status, &reply_body)
}

async fn patch(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Response {
    let fields = match parse_record(&body) {
        Ok(fields) => fields,
        Err((status, body)) => return reply::json(status, &body),
    };
    let merged = app.data().store.merge(&id, fields);
    match merged {
        Some(record) => {
            app.count(|s| s.updates += 1);
            reply::json(StatusCode::OK, &Value::Object(record))
        }
        None => missing(&app, &id),
    }
}

/// PUT: replaces the record, or creates it under the client's id.
async fn put(State(app): State<App>, Path(id): Path<String>, body: Bytes) -> Response {
    let fields = match parse_record(&body).and_then(require_email) {
        Ok(fields) => fields,
        Err((status, body)) => return reply::json(status, &body),
    };
    let (created, record) = app.data().store.replace(&id, fields);
    if created {
        app.count(|s| s.creates += 1);
    } else {
        app.count(|s| s.updates += 1);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    reply::json(status, &Value::Object(record))
}

async fn delete(State(app): State<App>, Path(id): Path<String>) -> Response {
    let deleted = app.data().store.delete(&id);
    if !deleted {
        return missing(&app, &id);
    }
    app.count(|s| s.deletes += 1);
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn missing(app: &App, id: &str) -> Response {
    let message = format!("no {} with id {id:?}", app.resource());
    reply::error(StatusCode::NOT_FOUND, "not_found", &message)
}

/// A rejected body: the status and the JSON error to send.
type Rejection = (StatusCode, Value);

fn parse_record(body: &[u8]) -> Result<Record, Rejection> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(bad_body("the body must be a JSON object")),
        Err(e) => Err(bad_body(&format!("the body is not valid JSON: {e}"))),
    }
}

fn bad_body(message: &str) -> Rejection {
    (
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_body", "message": message}),
    )
}

/// Both apps require an email: a realistic validation error for dead-letter tests.
fn require_email(fields: Record) -> Result<Record, Rejection> {
    match fields.get("email") {
        Some(Value::String(email)) if !email.trim().is_empty() => Ok(fields),
        _ => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": "validation_failed", "field": "email", "message": "email is required"}),
        )),
    }
}

/// What makes two creates "the same request" for idempotency: the parsed JSON (so key
/// order and spacing do not matter), or the raw text when it is not JSON.
fn fingerprint(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

type Inspect = (App, App, Arc<Journal>);

async fn journal_endpoint(State((_, _, journal)): State<Inspect>) -> Response {
    let entries: Vec<Value> = journal.entries().iter().map(|e| e.to_json()).collect();
    reply::json(StatusCode::OK, &Value::Array(entries))
}

async fn stats_endpoint(State((crm, billing, _)): State<Inspect>) -> Response {
    let stats = json!({ crm.name(): crm.stats(), billing.name(): billing.stats() });
    reply::json(StatusCode::OK, &stats)
}
