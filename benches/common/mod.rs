//! What the benchmarks share: the bare pull loop they measure runner against, and
//! reading a process's peak memory. Included by each bench with `mod common;`.

#![allow(dead_code)]

use runner::sandbox;
use serde_json::Value;

/// Records per page of the pull loops.
pub const PAGE: usize = 1000;

/// The limit: a token, then GET pages and parse them, nothing else.
pub async fn bare_pull(crm_url: &str) -> u64 {
    let client = reqwest::Client::new();
    let token: Value = client
        .post(format!("{crm_url}/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", sandbox::CRM_REFRESH_TOKEN),
            ("client_id", sandbox::CRM_CLIENT_ID),
            ("client_secret", sandbox::CRM_CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    let bearer = format!(
        "Bearer {}",
        token["access_token"].as_str().expect("access token")
    );
    let mut cursor: Option<String> = None;
    let mut count = 0u64;
    loop {
        let mut request = client
            .get(format!("{crm_url}/contacts"))
            .header("Authorization", &bearer)
            .query(&[("limit", PAGE.to_string())]);
        if let Some(c) = &cursor {
            request = request.query(&[("cursor", c)]);
        }
        let bytes = request
            .send()
            .await
            .expect("page")
            .bytes()
            .await
            .expect("body");
        let mut page: Value = serde_json::from_slice(&bytes).expect("json");
        if let Some(Value::Array(records)) = page.get_mut("data").map(std::mem::take) {
            for record in records {
                count += u64::from(record.get("id").is_some());
            }
        }
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => cursor = Some(next.to_string()),
            _ => return count,
        }
    }
}

/// Peak resident set size of this process, in KiB (Linux).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}
