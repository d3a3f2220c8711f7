//! Keeps secrets out of every log line and error.
//!
//! Every secret value the runner resolves or receives (API keys, passwords, access and
//! refresh tokens) is registered here, and every text that may be shown — URLs,
//! response bodies, error messages — goes through [`Redactor::redact`] first. Query
//! parameters whose names say they carry credentials are masked even when their value
//! was never registered.

use std::sync::{Arc, RwLock};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Query parameter names whose values are credentials.
const SECRET_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "key",
    "token",
    "access_token",
    "refresh_token",
    "client_secret",
    "secret",
    "password",
    "signature",
    "sig",
];

/// A shared set of secret values. Cloning shares the set.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Registers a secret value. Very short values are ignored: masking every "a" in a
    /// log line would hide everything and protect nothing.
    pub fn add(&self, secret: &str) {
        if secret.chars().count() < 4 {
            return;
        }
        let mut secrets = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        if !secrets.iter().any(|s| s == secret) {
            secrets.push(secret.to_string());
            // Longest first, so a secret containing another is masked whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every registered secret replaced by [`REDACTED`], and the values of
    /// credential-like query parameters masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self
            .secrets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        mask_secret_params(&out)
    }
}

/// Masks `name=value` pairs whose name is a credential, wherever they appear in a
/// text (URLs in messages included).
fn mask_secret_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let name_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let name = &before[name_start..];
        out.push_str(before);
        out.push('=');
        let value = &after[1..];
        let value_end = value
            .find(['&', ' ', '"', '\'', '#'])
            .unwrap_or(value.len());
        let is_secret = SECRET_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p));
        if is_secret && value_end > 0 {
            out.push_str(REDACTED);
        } else {
            out.push_str(&value[..value_end]);
        }
        rest = &value[value_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_masked_everywhere() {
        let redactor = Redactor::new();
        redactor.add("s3cr3t-key");
        assert_eq!(
            redactor.redact("GET /x failed: bad key s3cr3t-key (s3cr3t-key)"),
            "GET /x failed: bad key [redacted] ([redacted])"
        );
    }

    #[test]
    fn credential_query_params_are_masked_even_unregistered() {
        let redactor = Redactor::new();
        assert_eq!(
            redactor.redact("http://h/orders?limit=5&api_key=abc123&page=2"),
            "http://h/orders?limit=5&api_key=[redacted]&page=2"
        );
        assert_eq!(redactor.redact("a=b c=d"), "a=b c=d");
    }

    #[test]
    fn a_secret_containing_another_is_masked_whole() {
        let redactor = Redactor::new();
        redactor.add("abcd");
        redactor.add("xxabcdxx");
        assert_eq!(redactor.redact("xxabcdxx"), "[redacted]");
    }

    #[test]
    fn clones_share_the_set() {
        let redactor = Redactor::new();
        let clone = redactor.clone();
        clone.add("token-value");
        assert_eq!(redactor.redact("token-value"), "[redacted]");
    }
}
