//! How a sandbox and each of its two APIs behave: auth, paging, filters, limits and
//! faults. Plain data with defaults that mimic a typical CRM and billing system; every
//! knob exists so a test can switch on one unhappy path at a time.

use std::time::Duration;

/// OAuth2 client id of the CRM app (sandbox credential, fine to print).
pub const CRM_CLIENT_ID: &str = "runner-sandbox";
/// OAuth2 client secret of the CRM app.
pub const CRM_CLIENT_SECRET: &str = "crm-client-secret";
/// The CRM's initial refresh token; it rotates on every refresh grant.
pub const CRM_REFRESH_TOKEN: &str = "crm-refresh-0";
/// The billing app's API key, sent in the `X-Api-Key` header.
pub const BILLING_API_KEY: &str = "billing-api-key";

/// The whole sandbox: where it listens, the seed of everything random, and its two apps.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Seeds fake records and the fault RNGs, so a run can be replayed exactly.
    pub seed: u64,
    /// The CRM-like API, mounted at `/crm` (resource `contacts`).
    pub crm: AppConfig,
    /// The billing-like API, mounted at `/billing` (resource `customers`).
    pub billing: AppConfig,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            port: 0,
            seed: 42,
            crm: AppConfig::crm(),
            billing: AppConfig::billing(),
        }
    }
}

/// One API's behaviour. Most of it can also be changed at run time through `App`.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub auth: AuthMode,
    pub pagination: PageStyle,
    /// JSON key holding the page's records: "data" (crm) / "items" (billing).
    pub records_key: String,
    /// Page size when the client sends no `limit`/`per_page`.
    pub default_page_size: usize,
    /// Larger page sizes are silently capped, as real APIs do.
    pub max_page_size: usize,
    /// How `updated_since` is applied.
    pub updated_filter: FilterMode,
    /// Honour `Idempotency-Key` on POST creates.
    pub idempotency: bool,
    pub rate_limit: Option<RateLimit>,
    pub faults: Faults,
    /// Added to every response.
    pub latency: Duration,
    /// Asked past the end, page-number styles return the last page again instead of an
    /// empty one (a real bug that makes naive clients loop).
    pub repeat_last_page: bool,
}

impl AppConfig {
    /// A CRM: OAuth2 with rotating refresh tokens, cursor paging, records under "data".
    pub fn crm() -> AppConfig {
        AppConfig {
            auth: AuthMode::OAuth2 {
                client_id: CRM_CLIENT_ID.to_string(),
                client_secret: CRM_CLIENT_SECRET.to_string(),
                access_ttl: Duration::from_secs(3600),
                refresh_token: CRM_REFRESH_TOKEN.to_string(),
            },
            pagination: PageStyle::Cursor,
            records_key: "data".to_string(),
            ..AppConfig::base()
        }
    }

    /// A billing system: API key header, numbered pages, records under "items".
    pub fn billing() -> AppConfig {
        AppConfig {
            auth: AuthMode::ApiKey {
                header: "X-Api-Key".to_string(),
                key: BILLING_API_KEY.to_string(),
            },
            pagination: PageStyle::Page,
            records_key: "items".to_string(),
            ..AppConfig::base()
        }
    }

    /// What both apps share.
    fn base() -> AppConfig {
        AppConfig {
            auth: AuthMode::None,
            pagination: PageStyle::Cursor,
            records_key: "data".to_string(),
            default_page_size: 100,
            max_page_size: 1000,
            updated_filter: FilterMode::Inclusive,
            idempotency: true,
            rate_limit: None,
            faults: Faults::default(),
            latency: Duration::ZERO,
            repeat_last_page: false,
        }
    }
}

impl Default for AppConfig {
    /// The CRM's configuration.
    fn default() -> AppConfig {
        AppConfig::crm()
    }
}

/// How resource requests must authenticate.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthMode {
    None,
    /// A key in a request header.
    ApiKey {
        header: String,
        key: String,
    },
    /// A key in a query parameter (which then is no record filter).
    ApiKeyQuery {
        param: String,
        key: String,
    },
    /// A fixed `Authorization: Bearer` token.
    Bearer {
        token: String,
    },
    Basic {
        username: String,
        password: String,
    },
    /// Access tokens from `P/oauth/token` (client credentials or a rotating refresh
    /// token), valid for `access_ttl`.
    OAuth2 {
        client_id: String,
        client_secret: String,
        access_ttl: Duration,
        /// The initial refresh token.
        refresh_token: String,
    },
}

/// How listings are paged (see the module docs of `paging` for the bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStyle {
    /// `?cursor=&limit=`; stable under concurrent changes.
    Cursor,
    /// `?offset=&limit=`; positional, pages shift when records change.
    Offset,
    /// `?page=&per_page=` with totals in the body.
    Page,
    /// `?page=&per_page=` with an absolute `Link: <..>; rel="next"` header.
    LinkHeader,
    /// `?page=&per_page=` with a relative `next` URL in the body.
    NextUrl,
}

/// How `updated_since` is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterMode {
    /// `updated_at >= since`.
    Inclusive,
    /// `updated_at > since`: a record written in the same millisecond as the
    /// watermark is missed by a client that does not overlap.
    Exclusive,
    /// The filter is silently ignored: every listing is a full listing.
    Ignored,
}

/// A token bucket per app: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
    pub retry_after: RetryAfterStyle,
}

/// The two forms of `Retry-After` (RFC 9110).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfterStyle {
    /// Whole seconds, rounded up, at least 1.
    Seconds,
    /// An IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
    HttpDate,
}

/// Random faults on resource requests (never on the token endpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Probability of a fault per request, 0.0..=1.0.
    pub rate: f64,
    /// Kinds to pick from, uniformly.
    pub kinds: Vec<FaultKind>,
    /// How long a `Slow` fault holds the response.
    pub slow_for: Duration,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            rate: 0.0,
            kinds: FaultKind::ALL.to_vec(),
            slow_for: Duration::from_secs(5),
        }
    }
}

/// What can go wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FaultKind {
    Status500,
    Status502,
    /// Carries `Retry-After: 1`.
    Status503,
    /// The response is held back for `Faults::slow_for`.
    Slow,
    /// The TCP connection is closed without any response.
    Reset,
    /// The status and headers arrive, the JSON body is cut roughly in half.
    Truncated,
}

impl FaultKind {
    /// Every kind, the default of `Faults::kinds`.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Status500,
        FaultKind::Status502,
        FaultKind::Status503,
        FaultKind::Slow,
        FaultKind::Reset,
        FaultKind::Truncated,
    ];

    /// A short stable name, for the journal endpoint and logs.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Status500 => "status_500",
            FaultKind::Status502 => "status_502",
            FaultKind::Status503 => "status_503",
            FaultKind::Slow => "slow",
            FaultKind::Reset => "reset",
            FaultKind::Truncated => "truncated",
        }
    }
}
