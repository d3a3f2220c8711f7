//! Pull benchmark: reads N records (default 1,000,000) at 1,000 per page from the
//! sandbox CRM through runner's HTTP layer (auth, limiter, retry, pagination stream),
//! next to a bare reqwest + serde_json loop over the same server — the limit.
//!
//! `cargo bench --bench pull [-- --records N]`
//!
//! Each loop runs in its own child process, so its peak resident memory (VmHWM) is its
//! own and not the server's or the other loop's. The sandbox serves synthetic records
//! (generated from their index), so the server holds nothing either.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use runner::config::request::ReadConfig;
use runner::config::system::HttpSystemConfig;
use runner::http::{pages, ClientContext, HttpSystem, Listing, MemoryTokenStore, Redactor, Waiter};
use runner::sandbox::{self, Sandbox, SandboxConfig};
use runner::vars::Vars;

mod common;

use common::PAGE;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let (kind, url) = (&args[i + 1], &args[i + 2]);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let started = Instant::now();
        let count = runtime.block_on(async {
            match kind.as_str() {
                "bare" => common::bare_pull(url).await,
                _ => runner_loop(url).await,
            }
        });
        let seconds = started.elapsed().as_secs_f64();
        println!("{count} {seconds} {}", common::peak_rss_kib());
        return;
    }
    let records: usize = args
        .iter()
        .position(|a| a == "--records")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);

    println!(
        "pull benchmark: {records} records, {PAGE} per page, cursor paging, sandbox on loopback"
    );
    println!(
        "{:<36} {:>10} {:>9} {:>11} {:>10}",
        "loop", "records", "seconds", "records/s", "peak RSS"
    );
    let bare = measure("bare", records);
    let runner = measure("runner", records);
    let small = measure("runner", records / 10);
    print_row("bare reqwest + serde_json", &bare, None);
    print_row("runner http layer", &runner, Some(&bare));
    print_row(
        &format!("runner http layer, {} records", records / 10),
        &small,
        None,
    );
    println!(
        "runner / bare throughput: {:.2}x; runner peak RSS {} MiB at {} records vs {} MiB at {}",
        runner.rate() / bare.rate(),
        runner.peak_kib / 1024,
        runner.records,
        small.peak_kib / 1024,
        small.records
    );
}

struct Measurement {
    records: u64,
    seconds: f64,
    peak_kib: u64,
}

impl Measurement {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

fn print_row(name: &str, m: &Measurement, baseline: Option<&Measurement>) {
    let ratio = baseline
        .map(|b| format!("  ({:.2}x)", m.rate() / b.rate()))
        .unwrap_or_default();
    println!(
        "{:<36} {:>10} {:>9.2} {:>11.0} {:>7} MiB{ratio}",
        name,
        m.records,
        m.seconds,
        m.rate(),
        m.peak_kib / 1024
    );
}

/// Runs one loop in a child process against a fresh sandbox serving `records`.
fn measure(kind: &str, records: usize) -> Measurement {
    let sandbox = Sandbox::start(SandboxConfig::default()).expect("sandbox starts");
    sandbox.crm().set_synthetic(records);
    let output = Command::new(std::env::current_exe().expect("own path"))
        .args(["--child", kind, &sandbox.crm().base_url()])
        .output()
        .expect("child runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert!(
        output.status.success() && fields.len() == 3,
        "child failed: {text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let measurement = Measurement {
        records: fields[0].parse().expect("count"),
        seconds: fields[1].parse().expect("seconds"),
        peak_kib: fields[2].parse().expect("rss"),
    };
    assert_eq!(
        measurement.records as usize, records,
        "{kind} loop lost records"
    );
    measurement
}

/// runner's HTTP layer: OAuth2, limiter, retry policy, pagination stream.
async fn runner_loop(crm_url: &str) -> u64 {
    let env: BTreeMap<String, String> = [
        ("CRM_URL", crm_url),
        ("CRM_CLIENT_ID", sandbox::CRM_CLIENT_ID),
        ("CRM_CLIENT_SECRET", sandbox::CRM_CLIENT_SECRET),
        ("CRM_REFRESH_TOKEN", sandbox::CRM_REFRESH_TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let redactor = Redactor::new();
    let context = ClientContext {
        vars: Vars::with_env(env, redactor.clone()),
        tokens: Arc::new(MemoryTokenStore::default()),
        waiter: Waiter::Sleep,
    };
    let config: HttpSystemConfig = serde_yaml::from_str(
        r#"
base_url: "{{ env.CRM_URL }}"
auth:
  type: oauth2
  grant: refresh_token
  token_url: "{{ env.CRM_URL }}/oauth/token"
  client_id: "{{ secret.CRM_CLIENT_ID }}"
  client_secret: "{{ secret.CRM_CLIENT_SECRET }}"
  refresh_token: "{{ secret.CRM_REFRESH_TOKEN }}"
"#,
    )
    .expect("config");
    let read: ReadConfig = serde_yaml::from_str(
        r#"{ path: /contacts, params: { limit: 1000 }, records: "$.data[*]", paginate: { style: cursor, cursor: "$.next_cursor", param: cursor } }"#,
    )
    .expect("read");
    let system = Arc::new(HttpSystem::from_config("crm", &config, &context).expect("client"));
    let listing =
        Listing::new(&read, &Vars::with_env(BTreeMap::new(), redactor), &[]).expect("listing");
    let mut stream = Box::pin(pages(system, listing));
    let mut count = 0u64;
    while let Some(page) = stream.next().await {
        for record in page.expect("page").records {
            count += u64::from(record.get("id").is_some());
        }
    }
    count
}
