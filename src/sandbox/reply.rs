//! Building JSON responses, in one place so every reply of the sandbox looks alike.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

/// `status` with `body` as JSON.
pub fn json(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error reply: `{"error": code, "message": message}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, &json!({"error": code, "message": message}))
}

/// A status given as a number (scripted replies), 500 if it is not a valid one.
pub fn status_from(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
