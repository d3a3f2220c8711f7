//! The journal and stats, shutdown, and the `runner sandbox` command.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use reqwest::Client;
use runner::sandbox::{
    AppConfig, AuthMode, FaultKind, Faults, PageStyle, BILLING_API_KEY, CRM_CLIENT_ID,
    CRM_CLIENT_SECRET, CRM_REFRESH_TOKEN,
};
use serde_json::{json, Value};

use super::{collection, get, open_sandbox, records, send};
use crate::support::runner;

#[tokio::test]
async fn the_journal_keeps_what_was_received() {
    let sandbox = open_sandbox();
    let client = Client::new();
    let base = collection(sandbox.billing());
    let body = json!({"email": "j@example.com"});
    let request = client
        .post(format!("{base}?dry=no"))
        .header("Idempotency-Key", "intent-7")
        .json(&body);
    send(request).await;
    let journal = sandbox.journal();
    assert_eq!(journal.len(), 1);
    let entry = &journal[0];
    assert_eq!(
        (entry.app.as_str(), entry.method.as_str()),
        ("billing", "POST")
    );
    assert_eq!(entry.path, "/billing/customers");
    assert_eq!(entry.query.as_deref(), Some("dry=no"));
    assert!(entry
        .headers
        .contains(&("idempotency-key".to_string(), "intent-7".to_string())));
    assert_eq!(serde_json::from_str::<Value>(&entry.body).ok(), Some(body));
    assert_eq!((entry.status, entry.fault.clone()), (201, None));

    let over_http = get(&client, &format!("{}/_sandbox/journal", sandbox.url())).await;
    assert_eq!(over_http.body[0]["headers"]["idempotency-key"], "intent-7");
    let stats = get(&client, &format!("{}/_sandbox/stats", sandbox.url())).await;
    assert_eq!(stats.body["billing"]["creates"], 1);
    sandbox.clear_journal();
    assert!(sandbox.journal().is_empty());
}

#[test]
fn shutdown_returns_even_with_a_slow_request_in_flight() {
    let sandbox = open_sandbox();
    sandbox.crm().set_faults(Faults {
        rate: 1.0,
        kinds: vec![FaultKind::Slow],
        slow_for: Duration::from_secs(60),
    });
    let url = collection(sandbox.crm());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // The slow request is in flight once the journal shows it.
    let in_flight = std::thread::spawn(move || {
        runtime.block_on(async { Client::new().get(url).send().await.is_ok() })
    });
    while sandbox.journal().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        sandbox.shutdown();
        let _ = done.send(());
    });
    stopped
        .recv_timeout(Duration::from_secs(10))
        .expect("shutdown returns (it hung)");
    assert!(
        !in_flight.join().unwrap_or(true),
        "the slow request was cut off, not answered"
    );
}

#[test]
fn runner_sandbox_serves_until_interrupted() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut child = runner(dir.path())
        .args([
            "sandbox",
            "--contacts",
            "3",
            "--customers",
            "2",
            "--seed",
            "7",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("runner starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut banner = String::new();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("runner prints a listening line")
            .expect("utf-8");
        banner.push_str(&line);
        banner.push('\n');
        if let Some(rest) = line.strip_prefix("listening on ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
    };
    for needle in [
        CRM_CLIENT_ID,
        CRM_CLIENT_SECRET,
        CRM_REFRESH_TOKEN,
        BILLING_API_KEY,
        "/crm/contacts",
        "/billing/customers",
    ] {
        assert!(banner.contains(needle), "{needle} missing from:\n{banner}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let listed = runtime.block_on(async {
        let reply = send(
            Client::new()
                .get(format!("{url}/billing/customers"))
                .header("X-Api-Key", BILLING_API_KEY),
        )
        .await;
        records(&reply.body, "items").len()
    });
    assert_eq!(listed, 2);
    let pid = child.id().to_string();
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status();
    assert!(interrupted.is_ok_and(|s| s.success()));
    let status = child.wait().expect("runner exits");
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean stop");
}

#[test]
fn runner_sandbox_help_lists_its_options() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = runner(dir.path())
        .args(["sandbox", "--help"])
        .output()
        .expect("runner starts");
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--port",
        "--seed",
        "--contacts",
        "--customers",
        "--synthetic-contacts",
        "--fault-rate",
        "--rate-limit",
    ] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
    let bad = runner(dir.path())
        .args(["sandbox", "--fault-rate", "2"])
        .output()
        .expect("runner starts");
    assert_eq!(bad.status.code(), Some(2));
}

/// The default configs are what the docs promise.
#[test]
fn default_configs_match_the_documented_apps() {
    let crm = AppConfig::crm();
    assert!(matches!(crm.auth, AuthMode::OAuth2 { .. }));
    assert_eq!(
        (crm.pagination, crm.records_key.as_str()),
        (PageStyle::Cursor, "data")
    );
    let billing = AppConfig::billing();
    assert_eq!(
        (billing.pagination, billing.records_key.as_str()),
        (PageStyle::Page, "items")
    );
    assert_eq!(
        (billing.default_page_size, billing.max_page_size),
        (100, 1000)
    );
}
