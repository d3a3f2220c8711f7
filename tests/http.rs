//! The HTTP layer against the sandbox APIs over real loopback HTTP: auth and refresh,
//! pagination, retries and backoff, rate limits, redaction.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use runner::config::request::ReadConfig;
use runner::config::system::HttpSystemConfig;
use runner::http::client::Safety;
use runner::http::{
    pages, ClientContext, HttpError, HttpSystem, Listing, MemoryTokenStore, Redactor, Request,
    TokenStore, Waiter,
};
use runner::sandbox::{self, FaultKind, Faults, PageStyle, Sandbox, SandboxConfig, Scripted};
use runner::vars::Vars;
use serde_json::{json, Value};

/// Variables the test pipelines use: the sandbox URLs and credentials.
fn vars(sandbox: &Sandbox, redactor: &Redactor) -> Vars {
    let env: BTreeMap<String, String> = [
        ("CRM_URL", sandbox.crm().base_url()),
        ("BILLING_URL", sandbox.billing().base_url()),
        ("CRM_CLIENT_ID", sandbox::CRM_CLIENT_ID.to_string()),
        ("CRM_CLIENT_SECRET", sandbox::CRM_CLIENT_SECRET.to_string()),
        ("CRM_REFRESH_TOKEN", sandbox::CRM_REFRESH_TOKEN.to_string()),
        ("BILLING_API_KEY", sandbox::BILLING_API_KEY.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Vars::with_env(env, redactor.clone())
}

const CRM: &str = r#"
base_url: "{{ env.CRM_URL }}"
auth:
  type: oauth2
  grant: refresh_token
  token_url: "{{ env.CRM_URL }}/oauth/token"
  client_id: "{{ secret.CRM_CLIENT_ID }}"
  client_secret: "{{ secret.CRM_CLIENT_SECRET }}"
  refresh_token: "{{ secret.CRM_REFRESH_TOKEN }}"
limits: { max_in_flight: 8 }
retry: { max_attempts: 10, initial_backoff: 10ms, max_backoff: 100ms }
timeouts: { request: 2s }
"#;

const BILLING: &str = r#"
base_url: "{{ env.BILLING_URL }}"
auth: { type: api_key, name: X-Api-Key, value: "{{ secret.BILLING_API_KEY }}" }
retry: { max_attempts: 5, initial_backoff: 10ms, max_backoff: 100ms }
"#;

struct Client {
    system: Arc<HttpSystem>,
    waits: Arc<Mutex<Vec<Duration>>>,
    redactor: Redactor,
}

/// A client for a system of the sandbox; waits between attempts are recorded, not slept.
fn client(sandbox: &Sandbox, name: &str, yaml: &str, tokens: Arc<dyn TokenStore>) -> Client {
    let config: HttpSystemConfig = serde_yaml::from_str(yaml).expect("test system config");
    let redactor = Redactor::new();
    let waits = Arc::new(Mutex::new(Vec::new()));
    let context = ClientContext {
        vars: vars(sandbox, &redactor),
        tokens,
        waiter: Waiter::Record(Arc::clone(&waits)),
    };
    let system = HttpSystem::from_config(name, &config, &context).expect("client builds");
    Client {
        system: Arc::new(system),
        waits,
        redactor,
    }
}

fn crm(sandbox: &Sandbox) -> Client {
    client(sandbox, "crm", CRM, Arc::new(MemoryTokenStore::default()))
}

fn read(yaml: &str) -> ReadConfig {
    serde_yaml::from_str(yaml).expect("test read config")
}

/// Every record of a listing, in order.
async fn pull(client: &Client, read_config: &ReadConfig) -> Result<Vec<Value>, HttpError> {
    let listing = Listing::new(read_config, &vars_for(client), &[])?;
    let mut stream = Box::pin(pages(Arc::clone(&client.system), listing));
    let mut records = Vec::new();
    while let Some(page) = stream.next().await {
        records.extend(page?.records);
    }
    Ok(records)
}

fn vars_for(client: &Client) -> Vars {
    Vars::with_env(BTreeMap::new(), client.redactor.clone())
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn assert_exactly_once(records: &[Value], expected: &[String]) {
    let got = ids(records);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a record came twice");
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(got_sorted, expected);
}

const CURSOR_READ: &str = r#"
path: /contacts
params: { limit: 10 }
records: "$.data[*]"
paginate: { style: cursor, cursor: "$.next_cursor", param: cursor }
"#;

fn read_for(style: PageStyle) -> ReadConfig {
    read(match style {
        PageStyle::Cursor => CURSOR_READ,
        PageStyle::Offset => {
            r#"{ path: /contacts, records: "$.data[*]", paginate: { style: offset, param: offset, size_param: limit, size: 10, total_records: "$.total" } }"#
        }
        PageStyle::Page => {
            r#"{ path: /contacts, records: "$.data[*]", paginate: { style: page, param: page, size_param: per_page, size: 10, total_pages: "$.total_pages" } }"#
        }
        PageStyle::LinkHeader => {
            r#"{ path: /contacts, params: { per_page: 10 }, records: "$.data[*]", paginate: { style: link_header } }"#
        }
        PageStyle::NextUrl => {
            r#"{ path: /contacts, params: { per_page: 10 }, records: "$.data[*]", paginate: { style: next_url, next: "$.next", has_more: "$.has_more" } }"#
        }
    })
}

#[tokio::test]
async fn every_pagination_style_returns_every_record_exactly_once() {
    for style in [
        PageStyle::Cursor,
        PageStyle::Offset,
        PageStyle::Page,
        PageStyle::LinkHeader,
        PageStyle::NextUrl,
    ] {
        for count in [0, 1, 10, 37] {
            let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
            sandbox.crm().set_pagination(style.clone());
            let expected = sandbox.crm().seed(count);
            let client = crm(&sandbox);
            let records = pull(&client, &read_for(style.clone()))
                .await
                .unwrap_or_else(|e| panic!("{style:?} with {count} records: {e}"));
            assert_exactly_once(&records, &expected);
            // No request past what was needed: pages plus the token fetch, no retries.
            let listing_requests = sandbox
                .journal()
                .iter()
                .filter(|e| e.path.ends_with("/contacts"))
                .count();
            assert!(
                listing_requests <= count / 10 + 2,
                "{style:?}/{count}: {listing_requests} requests"
            );
            assert!(client.waits.lock().unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn a_token_expiring_mid_pagination_is_invisible_and_costs_one_refresh() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let expected = sandbox.crm().seed(45);
    let client = crm(&sandbox);
    let listing = Listing::new(&read(CURSOR_READ), &vars_for(&client), &[]).unwrap();
    let mut stream = Box::pin(pages(Arc::clone(&client.system), listing));
    let mut records = stream.next().await.unwrap().unwrap().records;
    records.extend(stream.next().await.unwrap().unwrap().records);
    sandbox.crm().expire_access_tokens();
    while let Some(page) = stream.next().await {
        records.extend(page.unwrap().records);
    }
    assert_exactly_once(&records, &expected);
    // The first token, then exactly one refresh after the 401.
    assert_eq!(client.system.token_requests(), 2);
    assert_eq!(sandbox.crm().stats().unauthorized, 1);
    assert_eq!(
        sandbox
            .journal()
            .iter()
            .filter(|e| e.path.ends_with("/oauth/token"))
            .count(),
        2
    );
}

#[tokio::test]
async fn eight_concurrent_401s_cause_a_single_refresh() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let ids = sandbox.crm().seed(8);
    let client = crm(&sandbox);
    client
        .system
        .send(&Request::get("/contacts"))
        .await
        .unwrap();
    sandbox.crm().expire_access_tokens();
    let requests = ids.iter().map(|id| {
        let system = Arc::clone(&client.system);
        let id = id.clone();
        tokio::spawn(async move { system.send(&Request::get(format!("/contacts/{id}"))).await })
    });
    for result in futures_util::future::join_all(requests).await {
        assert_eq!(result.unwrap().unwrap().status, 200);
    }
    assert_eq!(
        client.system.token_requests(),
        2,
        "one first token, one refresh"
    );
    assert_eq!(
        sandbox.crm().stats().unauthorized,
        8,
        "all eight met the expired token"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_asks_for_a_reconnect() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    sandbox.crm().seed(1);
    let client = crm(&sandbox);
    client
        .system
        .send(&Request::get("/contacts"))
        .await
        .unwrap();
    sandbox.crm().revoke_refresh_tokens();
    sandbox.crm().expire_access_tokens();
    let error = client
        .system
        .send(&Request::get("/contacts"))
        .await
        .unwrap_err();
    assert!(error.is_reconnect(), "{error}");
    assert!(error.to_string().starts_with("reconnect crm: "), "{error}");
    assert!(error.to_string().contains("invalid_grant"), "{error}");
    // One refresh attempt, not a storm.
    assert_eq!(client.system.token_requests(), 2);
}

/// A token store that notes how many requests the sandbox had seen when a token was
/// saved, to prove it was saved before being used.
struct WitnessStore {
    inner: MemoryTokenStore,
    journal_len: Arc<dyn Fn() -> usize + Send + Sync>,
    saves: Mutex<Vec<(String, usize)>>,
}

#[async_trait]
impl TokenStore for WitnessStore {
    async fn load_refresh_token(&self, system: &str) -> anyhow::Result<Option<String>> {
        self.inner.load_refresh_token(system).await
    }

    async fn save_refresh_token(&self, system: &str, token: &str) -> anyhow::Result<()> {
        self.saves
            .lock()
            .unwrap()
            .push((token.to_string(), (self.journal_len)()));
        self.inner.save_refresh_token(system, token).await
    }
}

impl std::fmt::Debug for WitnessStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WitnessStore")
    }
}

#[tokio::test]
async fn rotated_refresh_tokens_are_saved_before_they_are_used() {
    let sandbox = Arc::new(Sandbox::start(SandboxConfig::default()).unwrap());
    sandbox.crm().seed(3);
    let witness = Arc::clone(&sandbox);
    let store = Arc::new(WitnessStore {
        inner: MemoryTokenStore::default(),
        journal_len: Arc::new(move || witness.journal().len()),
        saves: Mutex::new(Vec::new()),
    });
    let client = client(&sandbox, "crm", CRM, store.clone());
    client
        .system
        .send(&Request::get("/contacts"))
        .await
        .unwrap();

    let saves = store.saves.lock().unwrap().clone();
    assert_eq!(saves.len(), 1);
    let (saved, seen_at_save) = &saves[0];
    assert_eq!(Some(saved.clone()), sandbox.crm().current_refresh_token());
    // At the save the sandbox had seen only the token request, not the GET.
    assert_eq!(*seen_at_save, 1);

    // A new run starts from the saved (rotated) token: the configured one is spent.
    let next_run = self::client(&sandbox, "crm", CRM, store.clone());
    next_run
        .system
        .send(&Request::get("/contacts"))
        .await
        .unwrap();
    let fresh_store = self::client(&sandbox, "crm", CRM, Arc::new(MemoryTokenStore::default()));
    let error = fresh_store
        .system
        .send(&Request::get("/contacts"))
        .await
        .unwrap_err();
    assert!(
        error.is_reconnect(),
        "the spent token still worked: {error}"
    );
}

#[tokio::test]
async fn a_429_waits_exactly_what_retry_after_asks() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    sandbox.billing().seed(1);
    let client = client(
        &sandbox,
        "billing",
        BILLING,
        Arc::new(MemoryTokenStore::default()),
    );
    sandbox.billing().script(vec![Scripted::Status {
        status: 429,
        headers: vec![("Retry-After".into(), "2".into())],
        body: "{}".into(),
    }]);
    let response = client
        .system
        .send(&Request::get("/customers"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(*client.waits.lock().unwrap(), vec![Duration::from_secs(2)]);
    assert_eq!(
        client
            .system
            .counters()
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(4));
    sandbox.billing().script(vec![Scripted::Status {
        status: 429,
        headers: vec![("Retry-After".into(), date)],
        body: "{}".into(),
    }]);
    client.waits.lock().unwrap().clear();
    client
        .system
        .send(&Request::get("/customers"))
        .await
        .unwrap();
    let waited = client.waits.lock().unwrap()[0];
    assert!(
        waited > Duration::from_secs(2) && waited <= Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_429_really_pauses_the_client_before_the_retry() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let config: HttpSystemConfig = serde_yaml::from_str(BILLING).unwrap();
    let redactor = Redactor::new();
    let context = ClientContext {
        vars: vars(&sandbox, &redactor),
        tokens: Arc::new(MemoryTokenStore::default()),
        waiter: Waiter::Sleep,
    };
    let system = HttpSystem::from_config("billing", &config, &context).unwrap();
    sandbox.billing().script(vec![Scripted::Status {
        status: 429,
        headers: vec![("Retry-After".into(), "1".into())],
        body: "{}".into(),
    }]);
    system.send(&Request::get("/customers")).await.unwrap();
    let journal = sandbox.journal();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[0].status, 429);
    // A lower bound only: the retry cannot come before the asked-for second.
    assert!(journal[1].at - journal[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_retry_after_longer_than_max_wait_stops_cleanly() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let client = client(
        &sandbox,
        "billing",
        BILLING,
        Arc::new(MemoryTokenStore::default()),
    );
    sandbox.billing().script(vec![Scripted::Status {
        status: 429,
        headers: vec![("Retry-After".into(), "3600".into())],
        body: "{}".into(),
    }]);
    let error = client
        .system
        .send(&Request::get("/customers"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, HttpError::RetryAfterTooLong { .. }),
        "{error}"
    );
    assert!(client.waits.lock().unwrap().is_empty(), "it waited anyway");
    assert_eq!(sandbox.journal().len(), 1);
}

#[tokio::test]
async fn a_repeating_cursor_stops_with_an_error_naming_the_page() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    sandbox.crm().seed(50);
    sandbox.crm().set_repeat_cursor(true);
    let client = crm(&sandbox);
    let error = pull(&client, &read(CURSOR_READ)).await.unwrap_err();
    match &error {
        HttpError::PaginationLoop { page, reason, .. } => {
            assert_eq!(*page, 2, "{error}");
            assert!(reason.contains("cursor"), "{error}");
        }
        other => panic!("expected a pagination loop, got {other}"),
    }
    let requests = sandbox
        .journal()
        .iter()
        .filter(|e| e.path.ends_with("/contacts"))
        .count();
    assert_eq!(requests, 2, "it kept asking");
}

#[tokio::test]
async fn a_repeated_next_url_is_a_loop_too() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    sandbox.crm().seed(50);
    sandbox.crm().set_pagination(PageStyle::NextUrl);
    sandbox.crm().set_repeat_cursor(true);
    let client = crm(&sandbox);
    let error = pull(&client, &read_for(PageStyle::NextUrl))
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::PaginationLoop { .. }), "{error}");
}

#[tokio::test]
async fn an_api_repeating_its_last_page_needs_has_more_or_it_is_a_loop() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let expected = sandbox.crm().seed(25);
    sandbox.crm().set_pagination(PageStyle::Page);
    sandbox.crm().set_repeat_last_page(true);
    let client = crm(&sandbox);
    // Without a stop rule the runner asks past the end, gets the last page again, and
    // recognises the loop instead of reading it forever.
    let no_stop = read(
        r#"{ path: /contacts, records: "$.data[*]", paginate: { style: page, param: page, size_param: per_page, size: 10 } }"#,
    );
    let error = pull(&client, &no_stop).await.unwrap_err();
    assert!(
        matches!(&error, HttpError::PaginationLoop { page: 4, reason, .. } if reason.contains("identical")),
        "{error}"
    );
    // With the API's total the listing ends where it should.
    let records = pull(&client, &read_for(PageStyle::Page)).await.unwrap();
    assert_exactly_once(&records, &expected);
}

#[tokio::test]
async fn max_pages_caps_a_listing() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    sandbox.crm().seed(100);
    let client = crm(&sandbox);
    let capped = read(
        r#"{ path: /contacts, params: { limit: 10 }, records: "$.data[*]", paginate: { style: cursor, cursor: "$.next_cursor", param: cursor, max_pages: 3 } }"#,
    );
    assert_eq!(pull(&client, &capped).await.unwrap().len(), 30);
}

#[tokio::test]
async fn twenty_percent_faults_still_return_every_record_exactly_once() {
    for style in [PageStyle::Cursor, PageStyle::Page] {
        let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
        let expected = sandbox.crm().seed(300);
        sandbox.crm().set_pagination(style.clone());
        sandbox.crm().set_faults(Faults {
            rate: 0.2,
            kinds: vec![
                FaultKind::Status500,
                FaultKind::Status502,
                FaultKind::Status503,
                FaultKind::Slow,
                FaultKind::Reset,
                FaultKind::Truncated,
            ],
            slow_for: Duration::from_millis(600),
        });
        let slow_timeout = CRM.replace("timeouts: { request: 2s }", "timeouts: { request: 300ms }");
        let client = client(
            &sandbox,
            "crm",
            &slow_timeout,
            Arc::new(MemoryTokenStore::default()),
        );
        let records = pull(&client, &read_for(style.clone())).await.unwrap();
        assert_exactly_once(&records, &expected);
        assert!(sandbox.crm().stats().faults > 0, "no fault was injected");
        assert!(
            !client.waits.lock().unwrap().is_empty(),
            "nothing was retried"
        );
    }
}

#[tokio::test]
async fn the_limiter_keeps_under_the_rate() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    sandbox.billing().seed(1);
    let limited = BILLING.to_string() + "limits: { requests_per_second: 20, max_in_flight: 8 }\n";
    let client = client(
        &sandbox,
        "billing",
        &limited,
        Arc::new(MemoryTokenStore::default()),
    );
    let requests = (0..50).map(|_| {
        let system = Arc::clone(&client.system);
        tokio::spawn(async move { system.send(&Request::get("/customers")).await })
    });
    for result in futures_util::future::join_all(requests).await {
        result.unwrap().unwrap();
    }
    let arrivals: Vec<Duration> = sandbox.journal().iter().map(|e| e.at).collect();
    assert_eq!(arrivals.len(), 50);
    // In any one-second window the server saw at most the rate (plus the request that
    // opens the next window exactly on its edge).
    for (i, start) in arrivals.iter().enumerate() {
        let in_window = arrivals[i..]
            .iter()
            .take_while(|t| **t < *start + Duration::from_secs(1))
            .count();
        assert!(
            in_window <= 21,
            "{in_window} requests within a second from {start:?}"
        );
    }
}

#[tokio::test]
async fn a_create_that_may_have_arrived_is_not_sent_again() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let client = client(
        &sandbox,
        "billing",
        BILLING,
        Arc::new(MemoryTokenStore::default()),
    );
    let create = Request {
        method: reqwest::Method::POST,
        body: Some(json!({"email": "ada@example.com", "name": "Ada"})),
        safety: Safety::NotIdempotent,
        ..Request::get("/customers")
    };
    for fault in [
        FaultKind::Reset,
        FaultKind::Truncated,
        FaultKind::Status500,
        FaultKind::Status503,
    ] {
        sandbox.clear_journal();
        sandbox
            .billing()
            .script(vec![Scripted::Fault(fault.clone())]);
        let error = client.system.send(&create).await.unwrap_err();
        assert!(
            matches!(error, HttpError::InDoubt { .. }),
            "{fault:?}: {error}"
        );
        assert_eq!(
            sandbox.journal().len(),
            1,
            "{fault:?}: the create was sent again"
        );
    }
    // With an idempotency key the same create is retried, and the target makes one.
    sandbox.clear_journal();
    let before = sandbox.billing().len();
    sandbox
        .billing()
        .script(vec![Scripted::Fault(FaultKind::Reset)]);
    let keyed = Request {
        headers: vec![("Idempotency-Key".into(), "intent-1".into())],
        safety: Safety::Idempotent,
        ..create
    };
    let response = client.system.send(&keyed).await.unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(sandbox.journal().len(), 2);
    assert_eq!(sandbox.billing().len(), before + 1);
}

#[tokio::test]
async fn a_refused_request_is_permanent_and_keeps_the_answer() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let client = client(
        &sandbox,
        "billing",
        BILLING,
        Arc::new(MemoryTokenStore::default()),
    );
    let create = Request {
        method: reqwest::Method::POST,
        body: Some(json!({"name": "no email"})),
        ..Request::get("/customers")
    };
    match client.system.send(&create).await.unwrap_err() {
        HttpError::Permanent {
            status,
            body,
            method,
            ..
        } => {
            assert_eq!((status, method.as_str()), (422, "POST"));
            assert!(body.contains("email"), "{body}");
        }
        other => panic!("expected a permanent error, got {other}"),
    }
    assert_eq!(sandbox.journal().len(), 1, "a 422 was retried");
}

#[tokio::test]
async fn a_refused_api_key_asks_for_a_reconnect() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let wrong = BILLING.replace("{{ secret.BILLING_API_KEY }}", "not-the-key");
    let client = client(
        &sandbox,
        "billing",
        &wrong,
        Arc::new(MemoryTokenStore::default()),
    );
    let error = client
        .system
        .send(&Request::get("/customers"))
        .await
        .unwrap_err();
    assert!(error.is_reconnect(), "{error}");
    assert_eq!(sandbox.journal().len(), 1);
}

#[tokio::test]
async fn an_unreachable_system_is_retried_then_given_up() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let client = client(
        &sandbox,
        "billing",
        BILLING,
        Arc::new(MemoryTokenStore::default()),
    );
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let error = client
        .system
        .send(&Request::get(format!("http://{closed}/customers")))
        .await
        .unwrap_err();
    match error {
        HttpError::RetriesExhausted { attempts, last, .. } => {
            assert_eq!(attempts, 5);
            assert!(last.contains("could not connect"), "{last}");
        }
        other => panic!("expected retries exhausted, got {other}"),
    }
    assert_eq!(client.waits.lock().unwrap().len(), 4);
}

/// Captures log lines of this test's thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn secrets_never_reach_logs_or_errors() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(captured.clone())
        .finish();
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    sandbox.crm().seed(30);
    let mut config = SandboxConfig::default();
    config.billing.auth = sandbox::AuthMode::ApiKeyQuery {
        param: "api_key".into(),
        key: sandbox::BILLING_API_KEY.into(),
    };
    let query_key_sandbox = Sandbox::start(config).unwrap();
    let mut errors = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let crm = crm(&sandbox);
            sandbox.crm().set_faults(Faults {
                rate: 0.3,
                ..Faults::default()
            });
            let _ = pull(&crm, &read(CURSOR_READ)).await;
            sandbox.crm().expire_access_tokens();
            let _ = pull(&crm, &read(CURSOR_READ)).await;
            sandbox.crm().revoke_refresh_tokens();
            sandbox.crm().expire_access_tokens();
            errors.push(
                crm.system
                    .send(&Request::get("/contacts"))
                    .await
                    .unwrap_err()
                    .to_string(),
            );

            // An API key in the query string, on a request that fails for good.
            let in_query = BILLING.replace(
                "{ type: api_key, name: X-Api-Key,",
                "{ type: api_key, in: query, name: api_key,",
            );
            let billing = client(
                &query_key_sandbox,
                "billing",
                &in_query,
                Arc::new(MemoryTokenStore::default()),
            );
            // Resets: reqwest's own error text carries the full URL, key included.
            let failures = (0..5).map(|_| Scripted::Fault(FaultKind::Reset));
            query_key_sandbox.billing().script(failures.collect());
            errors.push(
                billing
                    .system
                    .send(&Request::get("/customers"))
                    .await
                    .unwrap_err()
                    .to_string(),
            );
        });
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("retrying"),
        "the test did not exercise retries:\n{logs}"
    );
    let mut secrets = vec![
        sandbox::CRM_CLIENT_SECRET.to_string(),
        sandbox::CRM_REFRESH_TOKEN.to_string(),
        sandbox::BILLING_API_KEY.to_string(),
    ];
    for entry in sandbox
        .journal()
        .into_iter()
        .chain(query_key_sandbox.journal())
    {
        for (name, value) in &entry.headers {
            if name.eq_ignore_ascii_case("authorization") {
                secrets.push(value.trim_start_matches("Bearer ").to_string());
            }
        }
        for field in entry.body.split('&') {
            if let Some(token) = field.strip_prefix("refresh_token=") {
                secrets.push(token.to_string());
            }
        }
    }
    assert!(secrets.len() > 4, "no tokens were used");
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the logs:\n{logs}"
        );
        for error in &errors {
            assert!(
                !error.contains(secret.as_str()),
                "a secret reached an error: {error}"
            );
        }
    }
    assert!(
        errors[1].contains("api_key=[redacted]"),
        "the test did not show a keyed URL: {}",
        errors[1]
    );
}
