//! Systems: the APIs and files a pipeline connects, with their auth and limits.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::values::{HumanDuration, Template};

/// A system a stream reads from or writes to.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SystemConfig {
    /// An HTTP API, e.g. a CRM or a billing system.
    Http(Box<HttpSystemConfig>),
    /// A local JSON-lines file (one JSON object per line), read as a source or written as
    /// a target: exports, backfills and audits.
    Jsonl(JsonlSystemConfig),
}

impl SystemConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            SystemConfig::Http(_) => "http",
            SystemConfig::Jsonl(_) => "jsonl",
        }
    }
}

/// An HTTP API.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSystemConfig {
    /// URL every request path is joined to, e.g. "{{ env.CRM_URL }}" or
    /// "https://api.example.com/v2".
    pub base_url: Template,
    /// How requests authenticate. Omit for an open API.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Headers sent with every request to this system (values are templates).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, Template>,
    /// How fast the runner may call this system.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// How failed requests are retried.
    #[serde(default)]
    pub retry: RetryConfig,
    /// How long the runner waits for this system.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
}

/// A local JSON-lines file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonlSystemConfig {
    /// Path of the file, relative to the pipeline file (a template: "{{ env.EXPORT_DIR }}/contacts.jsonl").
    pub path: Template,
}

/// How requests to a system authenticate.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthConfig {
    /// A static API key sent in a header or a query parameter.
    ApiKey(ApiKeyAuthConfig),
    /// A static bearer token: `Authorization: Bearer <token>`.
    Bearer(BearerAuthConfig),
    /// HTTP basic auth.
    Basic(BasicAuthConfig),
    /// OAuth2 with short-lived access tokens, refreshed by the runner.
    Oauth2(OAuth2AuthConfig),
}

/// Where an API key is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyLocation {
    /// In a request header.
    #[default]
    Header,
    /// In a query parameter (it is redacted from every log line and error).
    Query,
}

/// A static API key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyAuthConfig {
    /// Send the key in a header (default) or a query parameter.
    #[serde(default, rename = "in")]
    pub location: ApiKeyLocation,
    /// Name of the header or query parameter, e.g. "X-Api-Key".
    pub name: String,
    /// The key, normally "{{ secret.NAME }}".
    pub value: Template,
}

/// A static bearer token.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BearerAuthConfig {
    /// The token, normally "{{ secret.NAME }}".
    pub token: Template,
}

/// HTTP basic auth.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub username: Template,
    /// The password, normally "{{ secret.NAME }}".
    pub password: Template,
}

/// Which OAuth2 grant obtains access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuth2Grant {
    /// Exchange a (possibly rotating) refresh token for access tokens. Rotated refresh
    /// tokens are kept, encrypted, in the state store.
    RefreshToken,
    /// Exchange the client id and secret for access tokens (machine-to-machine).
    ClientCredentials,
}

/// How the client id and secret reach the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// As `client_id` and `client_secret` form fields (the default).
    #[default]
    Body,
    /// As HTTP basic auth on the token request.
    Basic,
}

/// OAuth2 client settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2AuthConfig {
    /// The grant used to get access tokens.
    pub grant: OAuth2Grant,
    /// Token endpoint URL, e.g. "{{ env.CRM_URL }}/oauth/token".
    pub token_url: Template,
    pub client_id: Template,
    pub client_secret: Template,
    /// The initial refresh token (grant `refresh_token`). Once the API rotates it, the
    /// runner uses the newest one from its state store.
    #[serde(default)]
    pub refresh_token: Option<Template>,
    /// Scopes to request, if the API wants them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// How the client credentials are sent to the token endpoint.
    #[serde(default)]
    pub client_auth: ClientAuthMethod,
}

/// Rate and concurrency limits for one system.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most requests per second to this system; omit for no limit. The limiter slows
    /// down after a 429 and recovers gradually.
    #[serde(default)]
    #[schemars(range(min = 0.001))]
    pub requests_per_second: Option<f64>,
    /// Most requests in flight at once.
    #[serde(default = "default_max_in_flight")]
    #[schemars(range(min = 1, max = 1024))]
    pub max_in_flight: u32,
}

fn default_max_in_flight() -> u32 {
    8
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            requests_per_second: None,
            max_in_flight: default_max_in_flight(),
        }
    }
}

/// Retry policy for one system. 429 and 503 honour `Retry-After`; other retryable
/// failures (5xx, timeouts, resets) back off exponentially with full jitter.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: u32,
    /// Backoff before the first retry; it doubles on each further one.
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: HumanDuration,
    /// Longest backoff between two attempts.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
    /// Longest `Retry-After` the runner waits out. A longer one stops the stream
    /// cleanly with its state saved, to resume on the next run.
    #[serde(default = "default_max_wait")]
    pub max_wait: HumanDuration,
}

fn default_max_attempts() -> u32 {
    8
}
fn default_initial_backoff() -> HumanDuration {
    HumanDuration::from_millis(250)
}
fn default_max_backoff() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_max_wait() -> HumanDuration {
    HumanDuration::from_secs(300)
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_max_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            max_wait: default_max_wait(),
        }
    }
}

/// Timeouts for one system.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// Time to establish a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect: HumanDuration,
    /// Time for a whole request, body included. A request that runs out is retried
    /// like a 5xx (or, for a create that may have arrived, resolved as in doubt).
    #[serde(default = "default_request_timeout")]
    pub request: HumanDuration,
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            connect: default_connect_timeout(),
            request: default_request_timeout(),
        }
    }
}
