//! `runner sandbox`: the sandbox APIs as a long-running server for people.

use std::task::Poll;

use clap::Args;

use crate::exit::Exit;
use crate::sandbox::{
    RateLimit, RetryAfterStyle, Sandbox, SandboxConfig, BILLING_API_KEY, CRM_CLIENT_ID,
    CRM_CLIENT_SECRET, CRM_REFRESH_TOKEN,
};

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Seed of the fake records and of the fault dice: the same seed replays the same
    /// data and the same faults.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// How many fake contacts the CRM starts with.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub contacts: usize,
    /// How many fake customers the billing system starts with.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub customers: usize,
    /// Serve N synthetic CRM contacts computed on the fly, nothing stored (for
    /// benchmarks; replaces --contacts).
    #[arg(long, value_name = "N")]
    pub synthetic_contacts: Option<usize>,
    /// Share of resource requests that fail (5xx, slow, reset, truncated), 0 to 1,
    /// in both apps.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = parse_fraction)]
    pub fault_rate: f64,
    /// Requests per second each app allows (a burst of one second's worth); over it,
    /// 429 with Retry-After.
    #[arg(long, value_name = "RPS", value_parser = parse_rate)]
    pub rate_limit: Option<f64>,
}

pub fn run(args: &SandboxArgs) -> Exit {
    // A small runtime of our own, only to wait for Ctrl-C (the sandbox has its own).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("runner sandbox: cannot start a runtime: {e}");
            return Exit::Failed;
        }
    };
    let sandbox = match Sandbox::start(config(args)) {
        Ok(sandbox) => sandbox,
        Err(e) => {
            eprintln!("runner sandbox: {e:#}");
            return Exit::Failed;
        }
    };
    match args.synthetic_contacts {
        Some(n) => sandbox.crm().set_synthetic(n),
        None => {
            sandbox.crm().seed(args.contacts);
        }
    }
    sandbox.billing().seed(args.customers);
    let waited = runtime.block_on(async {
        let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
        // The first poll installs the handler; only then may a script that read
        // "listening on" interrupt us and expect a clean stop.
        if let Poll::Ready(result) = futures_util::poll!(ctrl_c.as_mut()) {
            return result;
        }
        print_banner(&sandbox, args);
        ctrl_c.await
    });
    sandbox.shutdown();
    match waited {
        Ok(()) => {
            println!("stopped");
            Exit::Success
        }
        Err(e) => {
            eprintln!("runner sandbox: cannot wait for Ctrl-C: {e}");
            Exit::Failed
        }
    }
}

fn config(args: &SandboxArgs) -> SandboxConfig {
    let mut config = SandboxConfig {
        port: args.port,
        seed: args.seed,
        ..SandboxConfig::default()
    };
    for app in [&mut config.crm, &mut config.billing] {
        app.faults.rate = args.fault_rate;
        app.rate_limit = args.rate_limit.map(|per_second| RateLimit {
            per_second,
            // One second's worth, at least one request.
            burst: per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32,
            retry_after: RetryAfterStyle::Seconds,
        });
    }
    config
}

fn print_banner(sandbox: &Sandbox, args: &SandboxArgs) {
    let crm = sandbox.crm();
    let billing = sandbox.billing();
    let contacts = args.synthetic_contacts.map_or_else(
        || format!("{} contacts", args.contacts),
        |n| format!("{n} synthetic contacts"),
    );
    println!(
        "CRM      {}/{}  ({contacts})",
        crm.base_url(),
        crm.resource()
    );
    println!("  auth: OAuth2, token URL {}/oauth/token", crm.base_url());
    println!("  client_id={CRM_CLIENT_ID} client_secret={CRM_CLIENT_SECRET}");
    println!("  refresh_token={CRM_REFRESH_TOKEN} (rotates on every refresh)");
    println!(
        "billing  {}/{}  ({} customers)",
        billing.base_url(),
        billing.resource(),
        args.customers
    );
    println!("  auth: header X-Api-Key: {BILLING_API_KEY}");
    if args.fault_rate > 0.0 {
        println!(
            "faults: {:.0}% of resource requests",
            args.fault_rate * 100.0
        );
    }
    if let Some(rps) = args.rate_limit {
        println!("rate limit: {rps} requests/s per app");
    }
    println!(
        "journal: {}/_sandbox/journal  stats: {}/_sandbox/stats",
        sandbox.url(),
        sandbox.url()
    );
    // The names the example pipelines in `pipelines/` use.
    println!("to run the example pipelines against it:");
    println!(
        "  export CRM_URL={} BILLING_URL={}",
        crm.base_url(),
        billing.base_url()
    );
    println!("  export CRM_CLIENT_ID={CRM_CLIENT_ID} CRM_CLIENT_SECRET={CRM_CLIENT_SECRET}");
    println!("  export CRM_REFRESH_TOKEN={CRM_REFRESH_TOKEN} BILLING_API_KEY={BILLING_API_KEY}");
    println!("listening on {}  (Ctrl-C to stop)", sandbox.url());
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("expected a number from 0 to 1, got {text:?}")),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rps) if rps > 0.0 && rps.is_finite() => Ok(rps),
        _ => Err(format!(
            "expected a positive number of requests per second, got {text:?}"
        )),
    }
}
