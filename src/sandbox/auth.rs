//! Authentication of resource requests, one check per `AuthMode`. A failure names the
//! scheme in `WWW-Authenticate` (RFC 9110) so a client can tell "wrong credentials"
//! from "token expired" (`error="invalid_token"`, RFC 6750).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::config::AuthMode;

/// The `WWW-Authenticate` value of a 401.
pub type Challenge = String;

/// Checks one resource request against the app's auth mode.
pub fn check(
    mode: &AuthMode,
    headers: &HeaderMap,
    query: Option<&str>,
    tokens: &Tokens,
) -> Result<(), Challenge> {
    match mode {
        AuthMode::None => Ok(()),
        AuthMode::ApiKey { header, key } => {
            let sent = headers.get(header.as_str()).and_then(|v| v.to_str().ok());
            accept_if(sent == Some(key.as_str()), || {
                format!("ApiKey realm=\"sandbox\", header=\"{header}\"")
            })
        }
        AuthMode::ApiKeyQuery { param, key } => {
            let sent = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .any(|(name, value)| name == param.as_str() && value == key.as_str());
            accept_if(sent, || {
                format!("ApiKey realm=\"sandbox\", param=\"{param}\"")
            })
        }
        AuthMode::Bearer { token } => {
            let sent = bearer(headers);
            accept_if(sent == Some(token.as_str()), || {
                bearer_challenge(sent.is_some())
            })
        }
        AuthMode::Basic { username, password } => {
            let ok = basic(headers).is_some_and(|(u, p)| u == *username && p == *password);
            accept_if(ok, || "Basic realm=\"sandbox\"".to_string())
        }
        AuthMode::OAuth2 { .. } => {
            let sent = bearer(headers);
            let ok = sent.is_some_and(|token| tokens.is_valid_access(token));
            accept_if(ok, || bearer_challenge(sent.is_some()))
        }
    }
}

fn accept_if(ok: bool, challenge: impl FnOnce() -> Challenge) -> Result<(), Challenge> {
    if ok {
        Ok(())
    } else {
        Err(challenge())
    }
}

/// RFC 6750: a token that was sent but is not (or no longer) valid is `invalid_token`.
fn bearer_challenge(token_sent: bool) -> Challenge {
    if token_sent {
        "Bearer realm=\"sandbox\", error=\"invalid_token\"".to_string()
    } else {
        "Bearer realm=\"sandbox\"".to_string()
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The (user, password) of `Authorization: Basic <base64>`.
pub fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// OAuth2 state of one app: issued access tokens and the one valid refresh token.
#[derive(Debug)]
pub struct Tokens {
    /// Access token → when it stops working.
    access: HashMap<String, Instant>,
    /// The only refresh token that works; rotated on every refresh grant.
    refresh: Option<String>,
    /// Prefix of rotated refresh tokens ("crm-refresh-").
    refresh_prefix: String,
    rotations: u64,
    /// The token the last rotation replaced, and when. Within `reuse_interval` of the
    /// rotation it still works and gets the same new token back — the "reuse interval"
    /// real providers offer, so a client that died before saving the new token can
    /// recover. Zero (the default) is strict rotation.
    replaced: Option<(String, Instant)>,
    reuse_interval: Duration,
}

impl Tokens {
    pub fn new(app: &str, initial_refresh: Option<String>) -> Tokens {
        Tokens {
            access: HashMap::new(),
            refresh: initial_refresh,
            refresh_prefix: format!("{app}-refresh-"),
            rotations: 0,
            replaced: None,
            reuse_interval: Duration::ZERO,
        }
    }

    /// How long a replaced refresh token keeps working (see `replaced`).
    pub fn set_reuse_interval(&mut self, interval: Duration) {
        self.reuse_interval = interval;
    }

    pub fn is_valid_access(&self, token: &str) -> bool {
        self.access
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires)
    }

    /// A new random opaque access token valid for `ttl`.
    pub fn issue_access(&mut self, ttl: Duration) -> String {
        let now = Instant::now();
        self.access.retain(|_, expires| *expires > now); // keep the map small
        let token = format!("at_{:032x}", rand::random::<u128>());
        self.access.insert(token.clone(), now + ttl);
        token
    }

    /// Exchanges the current refresh token for a new one; `None` (invalid_grant) for
    /// any other token — unknown, already used, or revoked.
    pub fn rotate_refresh(&mut self, presented: &str) -> Option<String> {
        if self.refresh.as_deref() != Some(presented) {
            let reusable = self
                .replaced
                .as_ref()
                .is_some_and(|(old, at)| old == presented && at.elapsed() < self.reuse_interval);
            return if reusable { self.refresh.clone() } else { None };
        }
        self.rotations += 1;
        let next = format!("{}{}", self.refresh_prefix, self.rotations);
        self.replaced = Some((presented.to_string(), Instant::now()));
        self.refresh = Some(next.clone());
        Some(next)
    }

    pub fn current_refresh(&self) -> Option<String> {
        self.refresh.clone()
    }

    pub fn expire_access(&mut self) {
        self.access.clear();
    }

    pub fn revoke_refresh(&mut self) {
        self.refresh = None;
        self.replaced = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_rotate_once() {
        let mut tokens = Tokens::new("crm", Some("crm-refresh-0".into()));
        let next = tokens.rotate_refresh("crm-refresh-0");
        assert_eq!(next.as_deref(), Some("crm-refresh-1"));
        assert_eq!(tokens.rotate_refresh("crm-refresh-0"), None);
        tokens.revoke_refresh();
        assert_eq!(tokens.rotate_refresh("crm-refresh-1"), None);
    }

    #[test]
    fn a_replaced_refresh_token_works_within_the_reuse_interval() {
        let mut tokens = Tokens::new("crm", Some("crm-refresh-0".into()));
        tokens.set_reuse_interval(Duration::from_secs(60));
        let next = tokens.rotate_refresh("crm-refresh-0");
        assert_eq!(
            tokens.rotate_refresh("crm-refresh-0"),
            next,
            "the lost reply is given again"
        );
        assert_eq!(
            tokens.rotate_refresh("crm-refresh-1").as_deref(),
            Some("crm-refresh-2")
        );
        assert_eq!(
            tokens.rotate_refresh("crm-refresh-0"),
            None,
            "only the last replaced one"
        );
    }

    #[test]
    fn access_tokens_expire_on_demand() {
        let mut tokens = Tokens::new("crm", None);
        let token = tokens.issue_access(Duration::from_secs(60));
        assert!(tokens.is_valid_access(&token));
        tokens.expire_access();
        assert!(!tokens.is_valid_access(&token));
    }
}
