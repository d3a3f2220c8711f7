//! Rate limits, scripted replies, each fault kind as a client sees it, in-doubt writes,
//! and the determinism of seeded faults.

use std::time::{Duration, SystemTime};

use reqwest::{Client, StatusCode};
use runner::sandbox::{
    AuthMode, FaultKind, Faults, RateLimit, RetryAfterStyle, Sandbox, SandboxConfig, Scripted,
    BILLING_API_KEY, CRM_CLIENT_ID, CRM_CLIENT_SECRET,
};
use serde_json::{json, Value};

use super::{collection, get, header, open_sandbox, send};

#[tokio::test]
async fn an_empty_bucket_gives_429_with_retry_after_before_auth() {
    let sandbox = Sandbox::start(SandboxConfig::default()).expect("the sandbox starts");
    let client = Client::new();
    let url = collection(sandbox.billing());
    let limit = |retry_after| RateLimit {
        per_second: 0.5,
        burst: 2,
        retry_after,
    };
    sandbox
        .billing()
        .set_rate_limit(Some(limit(RetryAfterStyle::Seconds)));
    let authed = || client.get(&url).header("X-Api-Key", BILLING_API_KEY);
    let first = send(authed()).await;
    assert_eq!(
        (first.status, header(&first, "x-ratelimit-remaining")),
        (StatusCode::OK, Some("1"))
    );
    let second = send(authed()).await;
    assert_eq!(header(&second, "x-ratelimit-remaining"), Some("0"));
    let limited = get(&client, &url).await; // no key: the limit answers first
    assert_eq!(limited.status, 429);
    assert_eq!(header(&limited, "retry-after"), Some("2"));
    assert_eq!(header(&limited, "x-ratelimit-remaining"), Some("0"));

    sandbox
        .billing()
        .set_rate_limit(Some(limit(RetryAfterStyle::HttpDate)));
    send(authed()).await;
    send(authed()).await;
    let limited = send(authed()).await;
    let date = header(&limited, "retry-after").unwrap_or_default();
    let when = httpdate::parse_http_date(date).unwrap_or_else(|e| panic!("{date}: {e}"));
    assert!(when > SystemTime::now(), "{date} is not in the future");

    sandbox.billing().set_rate_limit(None);
    let free = send(authed()).await;
    assert!(header(&free, "x-ratelimit-remaining").is_some());
    let stats = sandbox.billing().stats();
    assert_eq!((stats.rate_limited, stats.unauthorized), (2, 0));
}

#[tokio::test]
async fn scripted_replies_come_first_in_order_then_normal_handling() {
    let sandbox = Sandbox::start(SandboxConfig::default()).expect("the sandbox starts");
    let client = Client::new();
    sandbox.crm().script(vec![
        Scripted::Status {
            status: 400,
            headers: vec![("X-Why".into(), "scripted".into())],
            body: r#"{"error":"invalid_grant"}"#.into(),
        },
        Scripted::Fault(FaultKind::Status503),
    ]);
    let token_url = format!("{}/oauth/token", sandbox.crm().base_url());
    let token = || {
        let body = format!("grant_type=client_credentials&client_id={CRM_CLIENT_ID}&client_secret={CRM_CLIENT_SECRET}");
        client.post(&token_url).body(body)
    };
    let scripted = send(token()).await;
    assert_eq!(
        (scripted.status, header(&scripted, "x-why")),
        (StatusCode::BAD_REQUEST, Some("scripted"))
    );
    assert_eq!(scripted.body["error"], "invalid_grant");
    let unavailable = send(token()).await;
    assert_eq!(
        (unavailable.status, header(&unavailable, "retry-after")),
        (StatusCode::SERVICE_UNAVAILABLE, Some("1"))
    );
    assert_eq!(send(token()).await.status, 200);
    let journal = sandbox.journal();
    let statuses: Vec<u16> = journal.iter().map(|e| e.status).collect();
    assert_eq!(statuses, [400, 503, 200]);
    assert_eq!(journal[1].fault, Some(FaultKind::Status503));
}

#[tokio::test]
async fn each_fault_kind_is_what_a_client_sees() {
    let sandbox = open_sandbox();
    sandbox.crm().seed(20);
    sandbox.crm().set_faults(Faults {
        slow_for: Duration::from_secs(2),
        ..Faults::default()
    });
    let client = Client::new();
    let url = format!("{}?limit=20", collection(sandbox.crm()));
    let script = |kind: FaultKind| sandbox.crm().script(vec![Scripted::Fault(kind)]);

    for (kind, status) in [(FaultKind::Status500, 500), (FaultKind::Status502, 502)] {
        script(kind);
        assert_eq!(get(&client, &url).await.status.as_u16(), status);
    }
    script(FaultKind::Status503);
    assert_eq!(header(&get(&client, &url).await, "retry-after"), Some("1"));

    script(FaultKind::Reset);
    let reset = client.get(&url).send().await;
    assert!(
        reset.is_err(),
        "a reset connection gives no response: {reset:?}"
    );

    script(FaultKind::Truncated);
    let truncated = client
        .get(&url)
        .send()
        .await
        .expect("truncated replies arrive");
    assert_eq!(truncated.status(), 200);
    let text = truncated.text().await.expect("the cut body arrives whole");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    script(FaultKind::Slow);
    let impatient = Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("a client");
    let slow = impatient.get(&url).send().await;
    assert!(slow.is_err_and(|e| e.is_timeout()));

    let journal = sandbox.journal();
    let reset_entry = journal.iter().find(|e| e.fault == Some(FaultKind::Reset));
    assert_eq!(reset_entry.map(|e| e.status), Some(0));
    assert_eq!(sandbox.crm().stats().faults, 6);
}

#[tokio::test]
async fn random_faults_on_writes_land_before_or_after_the_write() {
    let sandbox = open_sandbox();
    sandbox.billing().set_faults(Faults {
        rate: 1.0,
        kinds: vec![FaultKind::Status500],
        ..Faults::default()
    });
    let client = Client::new();
    let base = collection(sandbox.billing());
    for i in 0..20 {
        let body = json!({"email": format!("w{i}@example.com")});
        assert_eq!(send(client.post(&base).json(&body)).await.status, 500);
    }
    let written = sandbox.billing().len();
    assert!(
        written > 0 && written < 20,
        "{written} of 20 in-doubt writes happened"
    );
    assert_eq!(sandbox.billing().stats().faults, 20);
    assert!(sandbox
        .journal()
        .iter()
        .all(|e| e.fault == Some(FaultKind::Status500)));

    // On demand: the write happens, the reply is lost.
    sandbox.billing().set_faults(Faults::default());
    sandbox
        .billing()
        .script(vec![Scripted::FaultAfterWrite(FaultKind::Reset)]);
    let lost = client
        .post(&base)
        .json(&json!({"email": "lost@example.com"}))
        .send()
        .await;
    assert!(lost.is_err());
    let emails: Vec<Value> = sandbox
        .billing()
        .records()
        .iter()
        .map(|r| r["email"].clone())
        .collect();
    assert!(emails.contains(&json!("lost@example.com")));
}

#[tokio::test]
async fn the_same_seed_and_requests_inject_the_same_faults() {
    async fn faults_seen(seed: u64) -> Vec<(u16, Option<FaultKind>)> {
        let mut config = SandboxConfig {
            seed,
            ..SandboxConfig::default()
        };
        config.crm.auth = AuthMode::None;
        config.crm.faults = Faults {
            rate: 0.5,
            kinds: vec![
                FaultKind::Status500,
                FaultKind::Status503,
                FaultKind::Reset,
                FaultKind::Truncated,
            ],
            ..Faults::default()
        };
        let sandbox = Sandbox::start(config).expect("the sandbox starts");
        sandbox.crm().seed(3);
        let client = Client::new();
        let url = collection(sandbox.crm());
        for _ in 0..30 {
            if let Ok(response) = client.get(&url).send().await {
                let _ = response.bytes().await;
            }
        }
        sandbox
            .journal()
            .into_iter()
            .map(|e| (e.status, e.fault))
            .collect()
    }
    let first = faults_seen(7).await;
    assert_eq!(first, faults_seen(7).await);
    assert!(first.iter().any(|(_, f)| f.is_some()) && first.iter().any(|(_, f)| f.is_none()));
    assert_ne!(first, faults_seen(8).await);
}
