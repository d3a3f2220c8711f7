//! One system's HTTP client: every request goes through its limiter, its auth (with
//! one refresh on a 401), and its retry policy, and is logged without secrets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use super::auth::{Auth, Credentials};
use super::error::HttpError;
use super::limit::Limiter;
use super::oauth2::{OAuth2Session, OAuth2Settings, TokenStore};
use super::redact::Redactor;
use super::retry::{may_have_arrived, retry_after, verdict, RetryPolicy, Verdict, Waiter};
use crate::config::system::{ApiKeyLocation, AuthConfig, HttpSystemConfig};
use crate::vars::Vars;

/// Whether a request may be sent again without risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// Reads, PUT/PATCH/DELETE, and creates carrying an idempotency key the target
    /// honours: sending twice has the effect of sending once.
    Idempotent,
    /// A create without an honoured idempotency key: once it may have reached the
    /// server it is never sent again; a lost answer becomes [`HttpError::InDoubt`].
    NotIdempotent,
}

/// A request to a system.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// A path joined to the system's base URL, or an absolute URL (a next-page link).
    pub target: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    pub safety: Safety,
}

impl Request {
    pub fn get(target: impl Into<String>) -> Request {
        Request {
            method: Method::GET,
            target: target.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            safety: Safety::Idempotent,
        }
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The URL the request went to, redacted, for messages.
    pub url: String,
    /// The parsed body; `Null` for an empty body.
    pub body: Value,
}

/// Counters of one system's traffic, for run reports.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub unauthorized: AtomicU64,
}

/// What a system client needs beyond its config.
#[derive(Debug, Clone)]
pub struct ClientContext {
    pub vars: Vars,
    pub tokens: Arc<dyn TokenStore>,
    pub waiter: Waiter,
}

/// A client for one HTTP system.
#[derive(Debug)]
pub struct HttpSystem {
    name: String,
    base_url: String,
    http: reqwest::Client,
    headers: HeaderMap,
    auth: Auth,
    limiter: Limiter,
    policy: RetryPolicy,
    waiter: Waiter,
    redactor: Redactor,
    counters: Counters,
    request_timeout: std::time::Duration,
}

impl HttpSystem {
    /// Builds the client of system `name`, rendering its URL, headers and
    /// credentials (secrets are registered for redaction as they are read).
    pub fn from_config(
        name: &str,
        config: &HttpSystemConfig,
        context: &ClientContext,
    ) -> Result<HttpSystem, HttpError> {
        let vars = &context.vars;
        let setup =
            |what: &str, e: String| HttpError::Setup(format!("system `{name}`, {what}: {e}"));
        let base_url = vars
            .render(config.base_url.as_str(), &[], false)
            .map_err(|e| setup("base_url", e))?;
        reqwest::Url::parse(&base_url)
            .map_err(|e| setup("base_url", format!("`{base_url}` is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect.get())
            .timeout(config.timeouts.request.get())
            .pool_max_idle_per_host(config.limits.max_in_flight as usize)
            .user_agent(concat!("runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| setup("client", e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (header, template) in &config.headers {
            let value = vars
                .render(template.as_str(), &[], true)
                .map_err(|e| setup(&format!("header {header}"), e))?;
            let header_name = HeaderName::try_from(header.as_str())
                .map_err(|e| setup("headers", e.to_string()))?;
            let mut header_value = HeaderValue::from_str(&value)
                .map_err(|e| setup(&format!("header {header}"), e.to_string()))?;
            header_value.set_sensitive(template.as_str().contains("secret."));
            headers.insert(header_name, header_value);
        }
        let policy = RetryPolicy::from(&config.retry);
        let auth = match &config.auth {
            None => Auth::None,
            Some(auth) => build_auth(name, auth, vars, &http, &policy, context)?,
        };
        Ok(HttpSystem {
            name: name.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            http,
            headers,
            auth,
            limiter: Limiter::new(&config.limits),
            policy,
            waiter: context.waiter.clone(),
            redactor: vars.redactor().clone(),
            counters: Counters::default(),
            request_timeout: config.timeouts.request.get(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// How long one request may take (`timeouts.request`).
    pub fn request_timeout(&self) -> std::time::Duration {
        self.request_timeout
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Token requests made by this system's OAuth2 session, if it has one.
    pub fn token_requests(&self) -> u64 {
        match &self.auth {
            Auth::OAuth2(session) => session.token_requests(),
            _ => 0,
        }
    }

    /// The absolute URL of `target` with `query` added.
    pub fn url(&self, target: &str, query: &[(String, String)]) -> Result<reqwest::Url, HttpError> {
        let joined = if target.starts_with("http://") || target.starts_with("https://") {
            target.to_string()
        } else {
            // Joined by hand: `Url::join` would drop a base path such as `/crm`.
            format!("{}/{}", self.base_url, target.trim_start_matches('/'))
        };
        let mut url = reqwest::Url::parse(&joined).map_err(|e| {
            HttpError::Setup(format!(
                "`{}` is not a URL: {e}",
                self.redactor.redact(&joined)
            ))
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Sends `request`, retrying what can be retried, and returns the parsed answer.
    pub async fn send(&self, request: &Request) -> Result<Response, HttpError> {
        let url = self.url(&request.target, &request.query)?;
        let shown = self.redactor.redact(url.as_str());
        let method = request.method.as_str().to_string();
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let credentials = self.auth.credentials().await?;
            let started = Instant::now();
            let result = {
                let _permit = self.limiter.acquire().await;
                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                self.execute(request, &url, &credentials).await
            };
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let failure = match result {
                Err(e) => {
                    let reason = self.describe(&e);
                    tracing::debug!(system = %self.name, %method, url = %shown, attempt, elapsed_ms, error = %reason, "request failed");
                    if request.safety == Safety::NotIdempotent && may_have_arrived(&e) {
                        return Err(HttpError::InDoubt {
                            method,
                            url: shown,
                            reason,
                        });
                    }
                    Failure::Retry(reason, None)
                }
                Ok((status, headers, bytes)) => {
                    tracing::debug!(system = %self.name, %method, url = %shown, attempt, elapsed_ms, status = status.as_u16(), "request");
                    self.judge(
                        request,
                        status,
                        headers,
                        &bytes,
                        &mut refreshed,
                        &credentials,
                        &shown,
                    )
                    .await?
                }
            };
            let (reason, wait) = match failure {
                Failure::Done(response) => {
                    self.limiter.on_success();
                    return Ok(Response {
                        url: shown,
                        ..response
                    });
                }
                Failure::RetryNow => {
                    attempt -= 1;
                    continue;
                }
                Failure::Retry(reason, wait) => (reason, wait),
            };
            if attempt >= self.policy.max_attempts {
                return Err(HttpError::RetriesExhausted {
                    method,
                    url: shown,
                    attempts: attempt,
                    last: reason,
                });
            }
            let wait = wait.unwrap_or_else(|| self.policy.backoff(attempt));
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(system = %self.name, %method, url = %shown, attempt, wait_ms = wait.as_millis() as u64, %reason, "retrying");
            self.waiter.wait(wait).await;
        }
    }

    /// Decides what an answer means: done, retry (when), or a final error.
    #[allow(clippy::too_many_arguments)]
    async fn judge(
        &self,
        request: &Request,
        status: StatusCode,
        headers: HeaderMap,
        bytes: &[u8],
        refreshed: &mut bool,
        credentials: &Credentials,
        shown: &str,
    ) -> Result<Failure, HttpError> {
        let method = request.method.as_str().to_string();
        match verdict(status) {
            Verdict::Success => match parse_body(bytes) {
                Ok(body) => Ok(Failure::Done(Response {
                    status,
                    headers,
                    url: String::new(),
                    body,
                })),
                Err(reason) if request.safety == Safety::NotIdempotent => Err(HttpError::InDoubt {
                    method,
                    url: shown.to_string(),
                    reason: format!("{status} with {reason}"),
                }),
                Err(reason) => Ok(Failure::Retry(format!("{status} with {reason}"), None)),
            },
            Verdict::Unauthorized => {
                self.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
                if !*refreshed && self.auth.refresh(credentials).await? {
                    *refreshed = true;
                    return Ok(Failure::RetryNow);
                }
                Err(HttpError::ReconnectRequired {
                    system: self.name.clone(),
                    reason: format!(
                        "{method} {shown} was refused with 401: the credentials no longer work"
                    ),
                })
            }
            // A 503 may come after a create was applied (a proxy timing out on a slow
            // backend): for a create without an honoured key it is as unclear as a 500.
            // A 429 comes from the rate limiter, before any work.
            Verdict::Throttled
                if request.safety == Safety::NotIdempotent
                    && status != StatusCode::TOO_MANY_REQUESTS =>
            {
                Err(HttpError::InDoubt {
                    method,
                    url: shown.to_string(),
                    reason: format!("the server answered {status}: {}", self.excerpt(bytes)),
                })
            }
            Verdict::Throttled => {
                let wait = retry_after(&headers);
                if status == StatusCode::TOO_MANY_REQUESTS {
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    self.limiter.on_rate_limited(wait);
                }
                if let Some(wait) = wait.filter(|w| *w > self.policy.max_wait) {
                    return Err(HttpError::RetryAfterTooLong {
                        system: self.name.clone(),
                        wait,
                        max_wait: self.policy.max_wait,
                    });
                }
                Ok(Failure::Retry(format!("{status}"), wait))
            }
            Verdict::Transient if request.safety == Safety::NotIdempotent => {
                Err(HttpError::InDoubt {
                    method,
                    url: shown.to_string(),
                    reason: format!("the server answered {status}: {}", self.excerpt(bytes)),
                })
            }
            Verdict::Transient => Ok(Failure::Retry(
                format!("{status}: {}", self.excerpt(bytes)),
                None,
            )),
            Verdict::Permanent => Err(HttpError::Permanent {
                method,
                url: shown.to_string(),
                status: status.as_u16(),
                body: self.excerpt(bytes),
            }),
        }
    }

    async fn execute(
        &self,
        request: &Request,
        url: &reqwest::Url,
        credentials: &Credentials,
    ) -> Result<(StatusCode, HeaderMap, bytes::Bytes), reqwest::Error> {
        let mut url = url.clone();
        if let Some((name, value)) = &credentials.query {
            url.query_pairs_mut().append_pair(name, value);
        }
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .headers(self.headers.clone());
        if let Some((name, value)) = &credentials.header {
            builder = builder.header(name, value);
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = builder.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        Ok((status, headers, bytes))
    }

    /// A transport error for people: what happened, without secrets.
    fn describe(&self, error: &reqwest::Error) -> String {
        let kind = if error.is_timeout() {
            "timed out"
        } else if error.is_connect() {
            "could not connect"
        } else if error.is_body() || error.is_decode() {
            "the response was cut off"
        } else {
            "the connection failed"
        };
        let mut detail = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        format!("{kind} ({})", self.redactor.redact(&detail))
    }

    /// The start of a response body, redacted, for messages and dead letters.
    fn excerpt(&self, bytes: &[u8]) -> String {
        const MAX: usize = 2048;
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
        let mut text = self.redactor.redact(text.trim());
        if bytes.len() > MAX {
            text.push_str(" …");
        }
        text
    }
}

/// What the retry loop does next.
enum Failure {
    Done(Response),
    /// Retry at once without counting an attempt (after a token refresh).
    RetryNow,
    /// Retry after `wait` (or the backoff), for this reason.
    Retry(String, Option<std::time::Duration>),
}

fn parse_body(bytes: &[u8]) -> Result<Value, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes).map_err(|e| format!("a body that is not valid JSON ({e})"))
}

fn build_auth(
    name: &str,
    auth: &AuthConfig,
    vars: &Vars,
    http: &reqwest::Client,
    policy: &RetryPolicy,
    context: &ClientContext,
) -> Result<Auth, HttpError> {
    let credential = |what: &str, template: &crate::config::Template| {
        vars.render(template.as_str(), &[], true)
            .map_err(|e| HttpError::Setup(format!("system `{name}`, auth {what}: {e}")))
    };
    match auth {
        AuthConfig::ApiKey(key) => {
            let value = credential("value", &key.value)?;
            match key.location {
                ApiKeyLocation::Header => Auth::api_key_header(&key.name, &value),
                ApiKeyLocation::Query => Ok(Auth::Query(key.name.clone(), value)),
            }
        }
        AuthConfig::Bearer(bearer) => Auth::bearer(&credential("token", &bearer.token)?),
        AuthConfig::Basic(basic) => Auth::basic(
            &credential("username", &basic.username)?,
            &credential("password", &basic.password)?,
        ),
        AuthConfig::Oauth2(oauth) => {
            let settings = OAuth2Settings {
                system: name.to_string(),
                grant: oauth.grant,
                token_url: vars
                    .render(oauth.token_url.as_str(), &[], false)
                    .map_err(|e| {
                        HttpError::Setup(format!("system `{name}`, auth token_url: {e}"))
                    })?,
                client_id: credential("client_id", &oauth.client_id)?,
                client_secret: credential("client_secret", &oauth.client_secret)?,
                refresh_token: oauth
                    .refresh_token
                    .as_ref()
                    .map(|t| credential("refresh_token", t))
                    .transpose()?,
                scopes: oauth.scopes.clone(),
                client_auth: oauth.client_auth,
            };
            Ok(Auth::OAuth2(Arc::new(OAuth2Session::new(
                settings,
                http.clone(),
                policy.clone(),
                context.waiter.clone(),
                Arc::clone(&context.tokens),
                vars.redactor().clone(),
            ))))
        }
    }
}
