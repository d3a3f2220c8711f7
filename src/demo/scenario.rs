//! The world the demo runs in: the sandbox CRM and billing APIs with the unhappy paths
//! switched on, seeded so that every path is taken at least once.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::sandbox::{
    self, AppConfig, AuthMode, FaultKind, Faults, RateLimit, RetryAfterStyle, Sandbox,
    SandboxConfig,
};

/// CRM access tokens live this long: several expire during every run.
pub const ACCESS_TTL: Duration = Duration::from_secs(2);
/// How long a rotated refresh token keeps working. Real providers allow a grace
/// period like this, so that a client killed between the rotation and saving the new
/// token (the crash step may land there) can still reconnect.
pub const REFRESH_REUSE: Duration = Duration::from_secs(60);
/// Billing's rate limit. The demo pipeline asks for a little more than this, so the
/// runner meets 429s and slows down, as against a real API whose limit it guessed.
pub const BILLING_PER_SECOND: f64 = 300.0;
pub const BILLING_BURST: u32 = 10;
/// Share of billing requests answered with a 500, 502 or 503.
pub const FAULT_RATE: f64 = 0.05;
/// Added to every billing response: widens the window in which the crash step finds
/// creates in flight.
pub const BILLING_LATENCY: Duration = Duration::from_millis(2);
/// Share of the contacts that already exist in billing (same email), to be linked.
const EXISTING_EVERY: usize = 10;
/// Fixes the fake names and the fault dice, so two demos look alike.
const SEED: u64 = 2026;

/// How big the demo is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// CRM contacts with a usable email (the refused ones come on top).
    pub contacts: usize,
}

impl Size {
    /// `--fast`: done in seconds.
    pub const FAST: Size = Size { contacts: 1_200 };
    /// The default: enough records for the runs to take a while.
    pub const FULL: Size = Size { contacts: 3_000 };
}

/// The running sandbox and what was seeded into it.
pub struct Scenario {
    pub sandbox: Sandbox,
    /// Every CRM contact, the refused ones included.
    pub contacts: usize,
    /// Ids of the billing customers that existed before the first run.
    pub existing: Vec<String>,
    /// Ids of the CRM contacts billing refuses (no email, or a blank one).
    pub refused: Vec<String>,
}

impl Scenario {
    /// Starts the sandbox and seeds it.
    pub fn start(size: Size) -> anyhow::Result<Scenario> {
        let sandbox = start_sandbox()?;
        let (refused, existing) = seed(&sandbox, size.contacts);
        Ok(Scenario {
            contacts: sandbox.crm().len(),
            sandbox,
            existing,
            refused,
        })
    }

    /// What `runner apply` needs to reach the sandbox: URLs and credentials (sandbox
    /// credentials, fine to pass around).
    pub fn env(&self) -> Vec<(String, String)> {
        sandbox_env(&self.sandbox)
    }

    /// Customers the runs must create: contacts neither refused nor already in billing.
    pub fn expected_creates(&self) -> usize {
        self.contacts - self.refused.len() - self.existing.len()
    }

    pub fn refused_ids(&self) -> HashSet<String> {
        self.refused.iter().cloned().collect()
    }

    /// One line per app: what is switched on.
    pub fn describe(&self) -> [String; 2] {
        [
            format!(
                "crm      OAuth2: access tokens expire after {} s; refresh tokens rotate (a replaced one works {} s more, as with real providers)",
                ACCESS_TTL.as_secs(),
                REFRESH_REUSE.as_secs()
            ),
            format!(
                "billing  rate limit {BILLING_PER_SECOND} requests/s (429 + Retry-After), {:.0}% of requests fail with 500/502/503",
                FAULT_RATE * 100.0
            ),
        ]
    }
}

/// What `runner apply` needs to reach `sandbox`: URLs and credentials (sandbox
/// credentials, fine to pass around).
pub fn sandbox_env(sandbox: &Sandbox) -> Vec<(String, String)> {
    [
        ("CRM_URL", sandbox.crm().base_url()),
        ("BILLING_URL", sandbox.billing().base_url()),
        ("CRM_CLIENT_ID", sandbox::CRM_CLIENT_ID.to_string()),
        ("CRM_CLIENT_SECRET", sandbox::CRM_CLIENT_SECRET.to_string()),
        ("CRM_REFRESH_TOKEN", sandbox::CRM_REFRESH_TOKEN.to_string()),
        ("BILLING_API_KEY", sandbox::BILLING_API_KEY.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}

/// A sandbox with the unhappy paths on, the refresh tokens' grace period set.
pub fn start_sandbox() -> anyhow::Result<Sandbox> {
    let sandbox = Sandbox::start(config())?;
    sandbox.crm().set_refresh_reuse_interval(REFRESH_REUSE);
    Ok(sandbox)
}

/// The sandbox with the unhappy paths on; `runner sandbox` defaults otherwise.
fn config() -> SandboxConfig {
    let crm = AppConfig {
        auth: AuthMode::OAuth2 {
            client_id: sandbox::CRM_CLIENT_ID.to_string(),
            client_secret: sandbox::CRM_CLIENT_SECRET.to_string(),
            access_ttl: ACCESS_TTL,
            refresh_token: sandbox::CRM_REFRESH_TOKEN.to_string(),
        },
        ..AppConfig::crm()
    };
    let billing = AppConfig {
        rate_limit: Some(RateLimit {
            per_second: BILLING_PER_SECOND,
            burst: BILLING_BURST,
            retry_after: RetryAfterStyle::Seconds,
        }),
        faults: Faults {
            rate: FAULT_RATE,
            kinds: vec![
                FaultKind::Status500,
                FaultKind::Status502,
                FaultKind::Status503,
            ],
            ..Faults::default()
        },
        latency: BILLING_LATENCY,
        ..AppConfig::billing()
    };
    SandboxConfig {
        seed: SEED,
        crm,
        billing,
        ..SandboxConfig::default()
    }
}

/// Seeds `contacts` good contacts with two refused ones among them (at a third and two
/// thirds, so they are read mid-run), and gives every tenth good contact a billing
/// customer with the same email. Returns (refused contact ids, existing customer ids).
fn seed(sandbox: &Sandbox, contacts: usize) -> (Vec<String>, Vec<String>) {
    let crm = sandbox.crm();
    let third = contacts / 3;
    crm.seed(third);
    let no_email = crm.insert(json!({
        "first_name": "Nobody", "last_name": "Withoutmail", "company": "Cobol & Co",
    }));
    crm.seed(third);
    let blank_email = crm.insert(json!({
        "first_name": "Blank", "last_name": "Address", "email": "  ",
    }));
    crm.seed(contacts - 2 * third);
    let refused = vec![no_email, blank_email];
    let existing = crm
        .records()
        .iter()
        .filter(|contact| !is_refused(contact, &refused))
        .step_by(EXISTING_EVERY)
        .map(|contact| sandbox.billing().insert(legacy_customer(contact)))
        .collect();
    (refused, existing)
}

fn is_refused(contact: &Value, refused: &[String]) -> bool {
    contact["id"]
        .as_str()
        .is_some_and(|id| refused.iter().any(|r| r == id))
}

/// A customer someone entered in billing by hand, before any sync: the same email, an
/// older spelling of the name, and a billing-only field the sync must leave alone.
fn legacy_customer(contact: &Value) -> Value {
    let last = contact["last_name"].as_str().unwrap_or_default();
    json!({
        "email": contact["email"],
        "name": format!("{} (entered by hand)", last.to_uppercase()),
        "plan": "team",
    })
}
