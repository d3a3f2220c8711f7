//! OAuth2 sessions: access tokens fetched on demand, refreshed once when a request
//! meets a 401 — once per system however many requests meet it at the same time — and
//! rotating refresh tokens handed to a [`TokenStore`] before the access token they came
//! with is used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::time::Instant;

use super::error::HttpError;
use super::redact::Redactor;
use super::retry::{retry_after, verdict, RetryPolicy, Verdict, Waiter};
use crate::config::system::{ClientAuthMethod, OAuth2Grant};

/// Where rotated refresh tokens are kept between runs. The state store implements it
/// (encrypted); [`MemoryTokenStore`] serves tests and one-off runs.
#[async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// The newest refresh token of `system`, if one was saved.
    async fn load_refresh_token(&self, system: &str) -> anyhow::Result<Option<String>>;
    /// Saves a rotated refresh token; it must be durable when this returns.
    async fn save_refresh_token(&self, system: &str, token: &str) -> anyhow::Result<()>;
}

/// Refresh tokens in memory.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<HashMap<String, String>>,
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load_refresh_token(&self, system: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(system)
            .cloned())
    }

    async fn save_refresh_token(&self, system: &str, token: &str) -> anyhow::Result<()> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(system.to_string(), token.to_string());
        Ok(())
    }
}

/// Everything an OAuth2 session needs, resolved (secrets rendered).
#[derive(Debug, Clone)]
pub struct OAuth2Settings {
    pub system: String,
    pub grant: OAuth2Grant,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: Option<String>,
    pub scopes: Vec<String>,
    pub client_auth: ClientAuthMethod,
}

/// A current access token and the generation it belongs to: a request that got a 401
/// with generation `g` asks for a refresh only if the token is still `g`.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub value: String,
    pub generation: u64,
    expires_at: Option<Instant>,
}

impl AccessToken {
    /// Refresh a little before expiry rather than send a request that will fail.
    fn is_fresh(&self) -> bool {
        self.expires_at.is_none_or(|at| Instant::now() < at)
    }
}

/// One system's OAuth2 session.
#[derive(Debug)]
pub struct OAuth2Session {
    settings: OAuth2Settings,
    http: reqwest::Client,
    policy: RetryPolicy,
    waiter: Waiter,
    store: Arc<dyn TokenStore>,
    redactor: Redactor,
    /// The lock is held while a token is fetched, which makes refreshes single-flight:
    /// whoever comes while one is under way waits for it and uses its result.
    current: tokio::sync::Mutex<Option<AccessToken>>,
    generation: AtomicU64,
    token_requests: AtomicU64,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

impl OAuth2Session {
    pub fn new(
        settings: OAuth2Settings,
        http: reqwest::Client,
        policy: RetryPolicy,
        waiter: Waiter,
        store: Arc<dyn TokenStore>,
        redactor: Redactor,
    ) -> OAuth2Session {
        redactor.add(&settings.client_secret);
        if let Some(token) = &settings.refresh_token {
            redactor.add(token);
        }
        OAuth2Session {
            settings,
            http,
            policy,
            waiter,
            store,
            redactor,
            current: tokio::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            token_requests: AtomicU64::new(0),
        }
    }

    /// How many token requests this session made (the first fetch included).
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// A usable access token, fetching one if there is none or it expired.
    pub async fn token(&self) -> Result<AccessToken, HttpError> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|t| t.is_fresh()) {
            return Ok(token.clone());
        }
        let token = self.fetch().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// A request with token generation `stale` got a 401: fetch a new token, unless
    /// another request already did since.
    pub async fn refresh(&self, stale: u64) -> Result<(), HttpError> {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|t| t.generation != stale) {
            return Ok(());
        }
        *current = Some(self.fetch().await?);
        Ok(())
    }

    /// Asks the token endpoint for a new access token, retrying passing failures.
    async fn fetch(&self) -> Result<AccessToken, HttpError> {
        let form = self.form().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.token_requests.fetch_add(1, Ordering::Relaxed);
            let mut request = self.http.post(&self.settings.token_url).form(&form);
            if self.settings.client_auth == ClientAuthMethod::Basic {
                request = request
                    .basic_auth(&self.settings.client_id, Some(&self.settings.client_secret));
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let body = response.bytes().await.unwrap_or_default();
                    match verdict(status) {
                        Verdict::Success => return self.accept(&body).await,
                        Verdict::Throttled | Verdict::Transient => {
                            let wait = retry_after(&headers)
                                .unwrap_or_else(|| self.policy.backoff(attempt));
                            (format!("token endpoint answered {status}"), wait)
                        }
                        // 400 invalid_grant, 401 invalid_client, ...: a person must act.
                        Verdict::Unauthorized | Verdict::Permanent => {
                            return Err(self.reconnect(&format!(
                                "the token endpoint refused the {} ({status}: {})",
                                self.grant_name(),
                                self.redactor.redact(String::from_utf8_lossy(&body).trim())
                            )))
                        }
                    }
                }
                Err(e) => (
                    format!(
                        "token endpoint unreachable: {}",
                        self.redactor.redact(&e.to_string())
                    ),
                    self.policy.backoff(attempt),
                ),
            };
            let (reason, wait) = failure;
            if attempt >= self.policy.max_attempts {
                return Err(HttpError::RetriesExhausted {
                    method: "POST".into(),
                    url: self.redactor.redact(&self.settings.token_url),
                    attempts: attempt,
                    last: reason,
                });
            }
            tracing::warn!(system = %self.settings.system, %reason, wait_ms = wait.as_millis() as u64, "retrying token request");
            self.waiter.wait(wait).await;
        }
    }

    /// The form of a token request. The refresh token is the newest saved one, else
    /// the configured one.
    async fn form(&self) -> Result<Vec<(&'static str, String)>, HttpError> {
        let mut form = Vec::new();
        match self.settings.grant {
            OAuth2Grant::ClientCredentials => {
                form.push(("grant_type", "client_credentials".to_string()))
            }
            OAuth2Grant::RefreshToken => {
                let saved = self
                    .store
                    .load_refresh_token(&self.settings.system)
                    .await
                    .map_err(|e| {
                        HttpError::Setup(format!(
                            "cannot read the saved refresh token of {}: {e}",
                            self.settings.system
                        ))
                    })?;
                let token = saved
                    .or_else(|| self.settings.refresh_token.clone())
                    .ok_or_else(|| self.reconnect("no refresh token is configured or saved"))?;
                self.redactor.add(&token);
                form.push(("grant_type", "refresh_token".to_string()));
                form.push(("refresh_token", token));
            }
        }
        if self.settings.client_auth == ClientAuthMethod::Body {
            form.push(("client_id", self.settings.client_id.clone()));
            form.push(("client_secret", self.settings.client_secret.clone()));
        }
        if !self.settings.scopes.is_empty() {
            form.push(("scope", self.settings.scopes.join(" ")));
        }
        Ok(form)
    }

    /// Takes a successful token reply: a rotated refresh token is saved before the
    /// access token is handed out, so a crash right after cannot lose it.
    async fn accept(&self, body: &[u8]) -> Result<AccessToken, HttpError> {
        let reply: TokenReply =
            serde_json::from_slice(body).map_err(|e| HttpError::InvalidResponse {
                url: self.redactor.redact(&self.settings.token_url),
                reason: format!("the token reply is not what OAuth2 specifies: {e}"),
            })?;
        self.redactor.add(&reply.access_token);
        if let Some(rotated) = &reply.refresh_token {
            self.redactor.add(rotated);
            if self.settings.grant == OAuth2Grant::RefreshToken {
                self.store
                    .save_refresh_token(&self.settings.system, rotated)
                    .await
                    .map_err(|e| {
                        HttpError::Setup(format!(
                            "cannot save the rotated refresh token of {}: {e}",
                            self.settings.system
                        ))
                    })?;
            }
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(system = %self.settings.system, generation, "got a new access token");
        Ok(AccessToken {
            value: reply.access_token,
            generation,
            expires_at: reply.expires_in.map(|secs| {
                // Renew a little early: a tenth of the lifetime, at most 30 s.
                let lifetime = Duration::from_secs(secs);
                Instant::now() + lifetime - (lifetime / 10).min(Duration::from_secs(30))
            }),
        })
    }

    fn grant_name(&self) -> &'static str {
        match self.settings.grant {
            OAuth2Grant::RefreshToken => "refresh token",
            OAuth2Grant::ClientCredentials => "client credentials",
        }
    }

    fn reconnect(&self, reason: &str) -> HttpError {
        HttpError::ReconnectRequired {
            system: self.settings.system.clone(),
            reason: reason.to_string(),
        }
    }
}
