//! Sandbox SaaS APIs (a CRM-like and a billing-like API) on loopback, for `runner demo`,
//! the tests and the benchmarks.
//!
//! Not a mock: a real HTTP server on 127.0.0.1 that clients reach over TCP, with the
//! unhappy paths of real APIs on demand — expiring OAuth2 tokens with rotating refresh
//! tokens, rate limits with `Retry-After`, five paging styles and their classic bugs,
//! idempotency keys, and faults (5xx, slow replies, reset connections, truncated
//! bodies) that may land before or after a write.
//!
//! ```no_run
//! use runner::sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default())?;
//! sandbox.crm().seed(10);
//! println!("{}/{}", sandbox.crm().base_url(), sandbox.crm().resource());
//! # anyhow::Ok(())
//! ```
//!
//! Modules:
//! - `config`: what can be configured; [`App`] changes most of it at run time.
//! - `app`: one API's state; `store`, `listing`, `fake`: its records.
//! - `routes`: the HTTP surface; `pipeline`: what wraps every request (journal,
//!   scripted replies, rate limit, auth, faults); `auth`, `oauth`, `ratelimit`,
//!   `faults`, `paging`, `query`: one concern each.
//! - `server`: the accept loop on its own thread; `journal`: what was received.

mod app;
mod auth;
mod clock;
mod config;
mod fake;
mod faults;
mod journal;
mod listing;
mod oauth;
mod paging;
mod pipeline;
mod query;
mod ratelimit;
mod reply;
mod routes;
mod server;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::Context;

pub use app::{App, Scripted, Stats};
pub use config::{
    AppConfig, AuthMode, FaultKind, Faults, FilterMode, PageStyle, RateLimit, RetryAfterStyle,
    SandboxConfig, BILLING_API_KEY, CRM_CLIENT_ID, CRM_CLIENT_SECRET, CRM_REFRESH_TOKEN,
};
pub use journal::JournalEntry;

use journal::Journal;
use server::ServerHandle;

/// A running sandbox: both apps on one loopback port. Stops on `shutdown` or drop.
pub struct Sandbox {
    addr: SocketAddr,
    crm: App,
    billing: App,
    journal: Arc<Journal>,
    server: ServerHandle,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts the server on its own thread with its own multi-thread tokio runtime (so
    /// client tests may pause their tokio clock without freezing the server). Binds
    /// 127.0.0.1:`config.port` (0 = ephemeral). Returns once listening.
    pub fn start(config: SandboxConfig) -> anyhow::Result<Sandbox> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", config.port))
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", config.port))?;
        let addr = listener
            .local_addr()
            .context("cannot read the sandbox's address")?;
        let origin = format!("http://{addr}");
        let journal = Arc::new(Journal::new());
        let crm = App::new(
            app::CRM,
            config.crm,
            origin.clone(),
            config.seed,
            journal.clone(),
        );
        let billing = App::new(
            app::BILLING,
            config.billing,
            origin,
            config.seed,
            journal.clone(),
        );
        let router = routes::router(crm.clone(), billing.clone(), journal.clone());
        let server = server::spawn(listener, router)?;
        Ok(Sandbox {
            addr,
            crm,
            billing,
            journal,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// "http://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The CRM-like API at `/crm`, resource `contacts`.
    pub fn crm(&self) -> &App {
        &self.crm
    }

    /// The billing-like API at `/billing`, resource `customers`.
    pub fn billing(&self) -> &App {
        &self.billing
    }

    /// Every request to either app, in arrival order (the latest 100,000; a request
    /// still in flight shows status 0).
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.journal.entries()
    }

    pub fn clear_journal(&self) {
        self.journal.clear();
    }

    /// Stops the server: in-flight requests get a moment, then are dropped. Bounded.
    pub fn shutdown(mut self) {
        self.server.stop();
    }
}

/// Locks a mutex even if a panicking thread poisoned it: the sandbox's state stays
/// usable (every critical section leaves it consistent or only counters behind).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
