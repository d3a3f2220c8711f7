//! `POST P/oauth/token` (RFC 6749): client credentials and refresh grants, with refresh
//! token rotation — the old token dies the moment a new one is issued, so a client that
//! loses the reply (or refreshes twice concurrently) is locked out, as in real life.

use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::auth::{basic, Tokens};
use super::config::AuthMode;

/// The endpoint's answer: status, JSON body, and a `WWW-Authenticate` for 401s.
pub struct TokenReply {
    pub status: StatusCode,
    pub body: Value,
    pub challenge: Option<String>,
}

impl TokenReply {
    fn error(status: StatusCode, error: &str, description: &str) -> TokenReply {
        TokenReply {
            status,
            body: json!({"error": error, "error_description": description}),
            challenge: (status == StatusCode::UNAUTHORIZED)
                .then(|| "Basic realm=\"sandbox\"".to_string()),
        }
    }
}

/// Whether a token request body asks for the refresh grant (counted in stats even when
/// the request is scripted or fails).
pub fn is_refresh_grant(body: &[u8]) -> bool {
    url::form_urlencoded::parse(body).any(|(k, v)| k == "grant_type" && v == "refresh_token")
}

/// Handles one token request for an app with `auth`; 404 unless it is OAuth2.
pub fn token_endpoint(
    auth: &AuthMode,
    tokens: &mut Tokens,
    headers: &HeaderMap,
    body: &[u8],
) -> TokenReply {
    let AuthMode::OAuth2 {
        client_id,
        client_secret,
        access_ttl,
        ..
    } = auth
    else {
        return TokenReply {
            status: StatusCode::NOT_FOUND,
            body: json!({"error": "not_found", "message": "this app does not use OAuth2"}),
            challenge: None,
        };
    };
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (sent_id, sent_secret) = match basic(headers) {
        Some(credentials) => (Some(credentials.0), Some(credentials.1)),
        None => (field("client_id"), field("client_secret")),
    };
    if sent_id.as_ref() != Some(client_id) || sent_secret.as_ref() != Some(client_secret) {
        return TokenReply::error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong client secret",
        );
    }
    let refresh_token = match field("grant_type").as_deref() {
        Some("client_credentials") => None,
        Some("refresh_token") => match field("refresh_token") {
            None => {
                return TokenReply::error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is missing",
                );
            }
            Some(presented) => match tokens.rotate_refresh(&presented) {
                Some(next) => Some(next),
                None => {
                    return TokenReply::error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "the refresh token is unknown, already used, or revoked",
                    );
                }
            },
        },
        Some(_) => {
            return TokenReply::error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "use client_credentials or refresh_token",
            );
        }
        None => {
            return TokenReply::error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            )
        }
    };
    let access_token = tokens.issue_access(*access_ttl);
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": access_ttl.as_secs(),
    });
    if let Some(refresh) = refresh_token {
        body["refresh_token"] = Value::String(refresh);
    }
    TokenReply {
        status: StatusCode::OK,
        body,
        challenge: None,
    }
}
