//! Sync benchmarks (see BENCHMARKS.md): whole `runner apply` runs against the sandbox.
//!
//! - `create`: the initial one-way sync of N/10 CRM contacts (default 100,000) into
//!   billing, one POST per record at `max_in_flight: 16` (no `match_on`: the pure create
//!   path), next to a bare loop of 16 concurrent POSTs of the same bodies (reqwest, the
//!   API key, nothing else); and the same sync of N/100 for the memory check.
//! - `create-idem`: the same initial sync with an `Idempotency-Key` header.
//! - `incremental`: N mapped records (default 1,000,000; mappings and bases written
//!   through `Store::complete`, hashed by the stream's `Mapper`), 100 contacts changed,
//!   one run: the first run after that bulk load, and a steady-state run (100 other
//!   contacts changed); the same at N/10 for the memory check.
//! - `jsonl`: API → JSON-lines export of N synthetic records at 1,000 per page, next to
//!   the bare pull loop of `benches/pull.rs`; the same at N/10.
//!
//! ```text
//! cargo bench --bench sync                               # everything
//! cargo bench --bench sync -- --only create,jsonl        # some scenarios
//! cargo bench --bench sync -- --records 100000 --repeat 1   # smaller and once: quick
//! cargo bench --bench sync -- --log runner=debug         # runner children's logs in /tmp
//! cargo bench --bench sync -- --wrap "/usr/bin/perf record --call-graph dwarf -o /tmp/p.data --"
//! ```
//!
//! Every measured loop runs in its own child process, so its peak resident memory
//! (VmHWM) is its own and not the sandbox's: the sandbox runs in this (parent) process.
//! A runner child is the real command line — this binary re-executed with
//! `SYNC_BENCH_REPORT` set calls `runner::cli::main()` with `apply FILE`, exactly what
//! the `runner` binary's `main` does — and writes its peak RSS to that file on exit.
//! Its seconds are the parent's wall clock from spawn to exit (process start, pipeline
//! validation, store open, the run, the summary). Each figure is the median of
//! `--repeat` runs (default 3) with the highest peak RSS of them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use runner::config::stream::StreamConfig;
use runner::config::{check_source, PipelineConfig};
use runner::sandbox::{self, Sandbox, SandboxConfig};
use runner::store::{Base, Completion, Outcome, RunRecord, SledStore, Store, Watermark};
use runner::sync::mapper::Mapper;
use serde_json::{json, Value};

mod common;

/// The env var that makes this binary act as `runner` (value: the report file).
const REPORT_ENV: &str = "SYNC_BENCH_REPORT";
/// Records per listing page.
use common::PAGE;
/// Concurrent writes, as billing's `limits.max_in_flight`.
const IN_FLIGHT: usize = 16;
/// Contacts changed before the incremental run.
const CHANGED: usize = 100;
/// Completions per store transaction while building the mapped state.
const SETUP_BATCH: usize = 10_000;
const STREAM: &str = "contacts";

const SCENARIOS: [&str; 5] = ["create", "create-idem", "incremental", "jsonl", "two-way"];

/// Goals.
const CREATE_RATIO: f64 = 0.7;
const JSONL_RATIO: f64 = 0.8;
const INCREMENTAL_SECONDS: f64 = 1.0;
const RSS_MIB: u64 = 64;

fn main() -> ExitCode {
    if let Some(report) = std::env::var_os(REPORT_ENV) {
        // The child: `runner apply FILE`, in this process.
        let code = runner::cli::main();
        let _ = std::fs::write(report, common::peak_rss_kib().to_string());
        return code;
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        bare_child(&args[i + 1..]);
        return ExitCode::SUCCESS;
    }
    let options = Options::parse(&args);
    run(&options);
    ExitCode::SUCCESS
}

struct Options {
    only: Vec<String>,
    /// The large size (incremental and JSONL); creates use a tenth of it.
    records: usize,
    /// `RUNNER_LOG` for the runner children; their stderr is kept in /tmp.
    log: Option<String>,
    /// A command the runner children run under (`--wrap "/usr/bin/perf record -g --"`),
    /// for profiling; its output lands in the child's directory unless told otherwise.
    wrap: Option<String>,
    /// Runs per figure (the median is shown).
    repeat: usize,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let value = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
        };
        let mut only = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            if arg == "--only" {
                if let Some(names) = args.get(i + 1) {
                    only.extend(names.split(',').map(str::to_string));
                }
            }
        }
        for name in &only {
            assert!(
                SCENARIOS.contains(&name.as_str()),
                "unknown scenario `{name}`; scenarios: {}",
                SCENARIOS.join(", ")
            );
        }
        Options {
            only,
            records: value("--records")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1_000_000),
            log: value("--log").cloned(),
            wrap: value("--wrap").cloned(),
            repeat: value("--repeat").and_then(|n| n.parse().ok()).unwrap_or(3),
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == scenario)
    }
}

/// One line of the table.
struct Row {
    name: String,
    records: u64,
    seconds: f64,
    peak_kib: u64,
    /// Shown after the figures: the ratio or goal.
    note: String,
    /// Shown on the line below in the final table: timing splits, counts.
    detail: String,
    /// Whether records/s means anything for this row.
    rate: bool,
}

impl Row {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

/// A goal and whether it was met, for the summary.
struct Verdict {
    goal: String,
    figure: String,
    met: bool,
}

fn run(options: &Options) {
    let large = options.records;
    let small = (large / 10).max(1);
    let creates = small;
    let repeat = options.repeat;
    println!(
        "sync benchmarks: creates of {creates} records, incremental and JSONL with {large} \
(memory check at {}/{small}), {PAGE} per page, {IN_FLIGHT} writes in flight; each figure the \
median of {repeat} runs (peak RSS: the highest); sandbox on loopback in the parent process",
        creates / 10
    );
    let mut rows: Vec<Row> = Vec::new();
    let mut verdicts: Vec<Verdict> = Vec::new();
    let mut bare_post_rate = f64::NAN;

    if options.wants("create") || options.wants("create-idem") {
        let bare = median(repeat, || measure_bare_post(creates));
        bare_post_rate = bare.rate();
        rows.push(bare);
    }
    if options.wants("create") {
        let smaller = median(repeat, || measure_creates(options, creates / 10, false));
        let mut row = median(repeat, || measure_creates(options, creates, false));
        let ratio = row.rate() / bare_post_rate;
        row.note = format!("{ratio:.2}x bare (goal >= {CREATE_RATIO:.1}x)");
        verdicts.push(Verdict {
            goal: format!("creates >= {CREATE_RATIO:.1}x the bare POST loop"),
            figure: format!(
                "{ratio:.2}x ({:.0} vs {bare_post_rate:.0} records/s)",
                row.rate()
            ),
            met: ratio >= CREATE_RATIO,
        });
        verdicts.push(rss_verdict("creates", &smaller, &row));
        rows.push(row);
        rows.push(smaller);
    }
    if options.wants("create-idem") {
        let mut row = median(repeat, || measure_creates(options, creates, true));
        let ratio = row.rate() / bare_post_rate;
        row.note = format!("{ratio:.2}x bare (goal >= {CREATE_RATIO:.1}x)");
        verdicts.push(Verdict {
            goal: format!("creates with Idempotency-Key >= {CREATE_RATIO:.1}x the bare POST loop"),
            figure: format!("{ratio:.2}x ({:.0} records/s)", row.rate()),
            met: ratio >= CREATE_RATIO,
        });
        rows.push(row);
    }
    if options.wants("incremental") {
        let [small_first, small_steady] = measure_incremental(options, small);
        let [first, steady] = measure_incremental(options, large);
        for row in [&first, &steady] {
            verdicts.push(Verdict {
                goal: format!(
                    "incremental, {CHANGED} of {large} changed, {} < {INCREMENTAL_SECONDS:.0} s",
                    row.name.trim_start_matches("runner apply: incremental, ")
                ),
                figure: format!("{:.2} s", row.seconds),
                met: row.seconds < INCREMENTAL_SECONDS,
            });
        }
        verdicts.push(rss_verdict("incremental", &small_first, &first));
        rows.extend([first, steady, small_first, small_steady]);
    }
    if options.wants("jsonl") {
        let bare = median(repeat, || measure_bare_pull(large));
        let smaller = median(repeat, || measure_jsonl(options, small));
        let mut row = median(repeat, || measure_jsonl(options, large));
        let ratio = row.rate() / bare.rate();
        row.note = format!("{ratio:.2}x bare (goal >= {JSONL_RATIO:.1}x)");
        verdicts.push(Verdict {
            goal: format!("API -> JSONL >= {JSONL_RATIO:.1}x the bare pull loop"),
            figure: format!(
                "{ratio:.2}x ({:.0} vs {:.0} records/s)",
                row.rate(),
                bare.rate()
            ),
            met: ratio >= JSONL_RATIO,
        });
        verdicts.push(rss_verdict("JSONL export", &smaller, &row));
        rows.extend([bare, row, smaller]);
    }

    if options.wants("two-way") {
        // Figures only: no goal is set for two-way streams.
        rows.extend(measure_two_way(options, creates / 10));
    }

    println!();
    println!("{}", header());
    for row in &rows {
        println!("{}", format_row(row));
        if !row.detail.is_empty() {
            println!("    {}", row.detail);
        }
    }
    println!();
    for verdict in &verdicts {
        println!(
            "{:<7} {}: {}",
            if verdict.met { "met" } else { "MISSED" },
            verdict.goal,
            verdict.figure
        );
    }
}

/// Runs a measurement `repeat` times: the run with the median seconds, with the
/// highest peak RSS of all.
fn median(repeat: usize, mut measure: impl FnMut() -> Row) -> Row {
    let mut rows: Vec<Row> = (0..repeat.max(1))
        .map(|_| {
            let row = measure();
            println!("  {}", format_row(&row));
            let _ = std::io::stdout().flush();
            row
        })
        .collect();
    let peak_kib = rows.iter().map(|r| r.peak_kib).max().unwrap_or(0);
    let all: Vec<String> = rows.iter().map(|r| format!("{:.2}", r.seconds)).collect();
    rows.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let mut row = rows.swap_remove(rows.len() / 2);
    row.peak_kib = peak_kib;
    if all.len() > 1 {
        row.detail = format!("runs: {} s; {}", all.join(" / "), row.detail);
    }
    row
}

/// Peak RSS at most `RSS_MIB` at both sizes, and flat: the large run within 25% (and
/// at least 2 MiB) of the small one.
fn rss_verdict(what: &str, small: &Row, large: &Row) -> Verdict {
    let (s, l) = (small.peak_kib / 1024, large.peak_kib / 1024);
    let flat = large.peak_kib as f64 <= small.peak_kib as f64 * 1.25 + 2048.0;
    Verdict {
        goal: format!("{what}: peak RSS <= {RSS_MIB} MiB and flat"),
        figure: format!(
            "{s} MiB at {} records, {l} MiB at {} records{}",
            small.records,
            large.records,
            if flat { "" } else { " (grows)" }
        ),
        met: l <= RSS_MIB && s <= RSS_MIB && flat,
    }
}

fn header() -> String {
    format!(
        "{:<50} {:>9} {:>8} {:>10} {:>9}  {}",
        "run", "records", "seconds", "records/s", "peak RSS", "vs goal"
    )
}

fn format_row(row: &Row) -> String {
    let rate = if row.rate {
        format!("{:.0}", row.rate())
    } else {
        "-".to_string()
    };
    format!(
        "{:<50} {:>9} {:>8.2} {:>10} {:>5} MiB  {}",
        row.name,
        row.records,
        row.seconds,
        rate,
        row.peak_kib / 1024,
        row.note
    )
}

// --- pipelines -------------------------------------------------------------------

const CRM_SYSTEM: &str = r#"
  crm:
    type: http
    base_url: "{{ env.CRM_URL }}"
    auth:
      type: oauth2
      grant: refresh_token
      token_url: "{{ env.CRM_URL }}/oauth/token"
      client_id: "{{ secret.CRM_CLIENT_ID }}"
      client_secret: "{{ secret.CRM_CLIENT_SECRET }}"
      refresh_token: "{{ secret.CRM_REFRESH_TOKEN }}"
"#;

const SOURCE: &str = r#"
    source_of_truth: crm
    source:
      system: crm
      read:
        path: /contacts
        params: { updated_since: "{{ watermark }}", limit: 1000 }
        records: "$.data[*]"
        paginate: { style: cursor, cursor: "$.next_cursor", param: cursor }
      id: "$.id"
      updated_at: "$.updated_at""#;

/// CRM contacts → billing customers, one POST per new record (no `match_on`: the pure
/// create path), PATCH per changed one.
fn billing_pipeline(idempotency: bool) -> String {
    let idempotency = if idempotency {
        "\n      idempotency_header: Idempotency-Key"
    } else {
        ""
    };
    format!(
        r#"version: 1
name: bench-contacts
state: {{ path: state }}
systems:{CRM_SYSTEM}  billing:
    type: http
    base_url: "{{{{ env.BILLING_URL }}}}"
    auth: {{ type: api_key, name: X-Api-Key, value: "{{{{ secret.BILLING_API_KEY }}}}" }}
    limits: {{ max_in_flight: {IN_FLIGHT} }}
streams:
  {STREAM}:{SOURCE}
    target:
      system: billing
      id: "$.id"
      create: {{ method: POST, path: /customers, id: "$.id" }}
      update: {{ method: PATCH, path: "/customers/{{{{ target_id }}}}" }}{idempotency}
    fields:
      email: {{ from: "$.email" }}
      name: {{ template: "{{{{ record.first_name }}}} {{{{ record.last_name }}}}" }}
      crm_id: {{ from: "$.id" }}
"#
    )
}

/// CRM contacts → a JSON-lines file (the shape of pipelines/contacts-to-jsonl.yaml).
fn jsonl_pipeline() -> String {
    format!(
        r#"version: 1
name: bench-export
state: {{ path: state }}
systems:{CRM_SYSTEM}  export:
    type: jsonl
    path: export/contacts.jsonl
streams:
  {STREAM}:{SOURCE}
    target:
      system: export
    fields:
      id: {{ from: "$.id" }}
      email: {{ from: "$.email" }}
      name: {{ template: "{{{{ record.first_name }}}} {{{{ record.last_name }}}}" }}
      updated_at: {{ from: "$.updated_at" }}
"#
    )
}

/// CRM contacts ↔ billing customers, both ways (the shape of
/// pipelines/two-way-customers.yaml).
fn two_way_pipeline() -> String {
    format!(
        r#"version: 1
name: bench-two-way
state: {{ path: state }}
systems:{CRM_SYSTEM}  billing:
    type: http
    base_url: "{{{{ env.BILLING_URL }}}}"
    auth: {{ type: api_key, name: X-Api-Key, value: "{{{{ secret.BILLING_API_KEY }}}}" }}
    limits: {{ max_in_flight: {IN_FLIGHT} }}
streams:
  customers:
    sync: two_way
    sides:
      a:
        system: crm
        read:
          path: /contacts
          params: {{ updated_since: "{{{{ watermark }}}}", limit: {PAGE} }}
          records: "$.data[*]"
          paginate: {{ style: cursor, cursor: "$.next_cursor", param: cursor }}
        id: "$.id"
        updated_at: "$.updated_at"
        create: {{ method: POST, path: /contacts, id: "$.id" }}
        update: {{ method: PATCH, path: "/contacts/{{{{ target_id }}}}" }}
        idempotency_header: Idempotency-Key
      b:
        system: billing
        read:
          path: /customers
          params: {{ updated_since: "{{{{ watermark }}}}" }}
          records: "$.items[*]"
          paginate: {{ style: page, param: page, size_param: per_page, size: {PAGE} }}
        id: "$.id"
        updated_at: "$.updated_at"
        incremental: {{ filter: inclusive }}
        create: {{ method: POST, path: /customers, id: "$.id" }}
        update: {{ method: PATCH, path: "/customers/{{{{ target_id }}}}" }}
        idempotency_header: Idempotency-Key
    match_on: [email]
    fields:
      email: {{ a: "$.email", b: "$.email", owner: a }}
      plan: {{ a: "$.tier", b: "$.plan", owner: b }}
      notes: {{ a: "$.notes", b: "$.note", conflict: last_write_wins }}
    clock_skew: 1s
"#
    )
}

fn parse_pipeline(text: &str) -> PipelineConfig {
    let checked = check_source("bench.yaml", text);
    let rendered: Vec<String> = checked.diagnostics.iter().map(|d| d.render()).collect();
    checked
        .pipeline
        .unwrap_or_else(|| panic!("bench pipeline invalid:\n{}", rendered.join("\n")))
}

// --- a runner child ----------------------------------------------------------------

/// A sandbox and a directory holding a pipeline file and its state.
struct World {
    sandbox: Sandbox,
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl World {
    fn new(pipeline: &str) -> World {
        let sandbox = Sandbox::start(SandboxConfig::default()).expect("sandbox starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("pipeline.yaml");
        parse_pipeline(pipeline);
        std::fs::write(&file, pipeline).expect("pipeline written");
        World { sandbox, dir, file }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Runs `runner apply FILE` in a child process: (wall seconds, peak RSS KiB).
    fn apply(&self, options: &Options, label: &str) -> (f64, u64) {
        let report = self.dir.path().join("bench-report");
        let own = std::env::current_exe().expect("own path");
        let mut command = match &options.wrap {
            Some(wrap) => {
                let mut words = wrap.split_whitespace();
                let mut command = Command::new(words.next().expect("a wrapper command"));
                command.args(words).arg(own);
                command
            }
            None => Command::new(own),
        };
        // The CRM rotates its refresh token on every use: a run on a restored store
        // (which holds no token) starts from the current one.
        let refresh = self
            .sandbox
            .crm()
            .current_refresh_token()
            .unwrap_or_else(|| sandbox::CRM_REFRESH_TOKEN.to_string());
        command
            .env_clear()
            .current_dir(self.dir.path())
            .env(REPORT_ENV, &report)
            .env("CRM_URL", self.sandbox.crm().base_url())
            .env("BILLING_URL", self.sandbox.billing().base_url())
            .env("CRM_CLIENT_ID", sandbox::CRM_CLIENT_ID)
            .env("CRM_CLIENT_SECRET", sandbox::CRM_CLIENT_SECRET)
            .env("CRM_REFRESH_TOKEN", refresh)
            .env("BILLING_API_KEY", sandbox::BILLING_API_KEY)
            .arg("apply")
            .arg(&self.file);
        if let Some(level) = &options.log {
            command.env("RUNNER_LOG", level);
        }
        let started = Instant::now();
        let output = command.output().expect("runner child starts");
        let seconds = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if options.log.is_some() {
            let log = std::env::temp_dir().join(format!("sync-bench-{label}.log"));
            std::fs::write(&log, stderr.as_bytes()).expect("log written");
            println!("  (log of `{label}`: {})", log.display());
        }
        assert!(
            output.status.success(),
            "runner apply failed ({:?}):\n{}\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            stderr.lines().take(40).collect::<Vec<_>>().join("\n")
        );
        let peak_kib = std::fs::read_to_string(&report)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .expect("the runner child reports its peak RSS");
        (seconds, peak_kib)
    }

    /// The run the child recorded in the store.
    fn last_run(&self) -> RunRecord {
        let store = SledStore::open(&self.state_dir()).expect("store opens");
        store
            .runs(1)
            .expect("runs")
            .into_iter()
            .next()
            .expect("a run was recorded")
    }

    /// A timing split: opening the store alone in a child, (seconds, peak RSS KiB).
    fn open_store_alone(&self) -> (f64, u64) {
        let (_, seconds, peak_kib) =
            child(&["open-store", &self.state_dir().display().to_string()]);
        (seconds, peak_kib)
    }

    /// What the store looks like after a run, for the detail line.
    fn store_detail(&self) -> String {
        let (seconds, peak_kib) = self.open_store_alone();
        format!(
            "store {} MiB on disk, opening it alone {seconds:.2} s / {} MiB",
            dir_size(&self.state_dir()) / (1024 * 1024),
            peak_kib / 1024
        )
    }
}

// --- creates ---------------------------------------------------------------------

/// The bodies the pipeline sends for the contacts of `sandbox`: email, name, crm_id.
fn bodies(sandbox: &Sandbox) -> Vec<Value> {
    sandbox
        .crm()
        .records()
        .into_iter()
        .map(|c| {
            let name = format!(
                "{} {}",
                c["first_name"].as_str().unwrap_or_default(),
                c["last_name"].as_str().unwrap_or_default()
            );
            json!({"email": c["email"], "name": name, "crm_id": c["id"]})
        })
        .collect()
}

fn measure_bare_post(records: usize) -> Row {
    let sandbox = Sandbox::start(SandboxConfig::default()).expect("sandbox starts");
    sandbox.crm().seed(records);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bodies.jsonl");
    let mut text = String::new();
    for body in bodies(&sandbox) {
        text.push_str(&body.to_string());
        text.push('\n');
    }
    std::fs::write(&file, text).expect("bodies written");
    let (count, seconds, peak_kib) = child(&[
        "bare-post",
        &sandbox.billing().base_url(),
        &file.display().to_string(),
    ]);
    assert_eq!(count as usize, records, "bare POST loop lost records");
    assert_eq!(sandbox.billing().stats().creates as usize, records);
    Row {
        name: format!("bare POST loop, {IN_FLIGHT} in flight"),
        records: count,
        seconds,
        peak_kib,
        note: String::new(),
        detail:
            "reqwest + API key, each answer's id parsed; bodies prepared before the clock starts"
                .into(),
        rate: true,
    }
}

fn measure_creates(options: &Options, records: usize, idempotency: bool) -> Row {
    let world = World::new(&billing_pipeline(idempotency));
    world.sandbox.crm().seed(records);
    let label = if idempotency { "create-idem" } else { "create" };
    let (seconds, peak_kib) = world.apply(options, &format!("{label}-{records}"));
    let run = world.last_run();
    let counts = &run.streams[0];
    assert_eq!(counts.created as usize, records, "{run:?}");
    let stats = world.sandbox.billing().stats();
    assert_eq!(stats.creates as usize, records, "{stats:?}");
    assert_eq!(world.sandbox.billing().len(), records);
    Row {
        name: format!(
            "runner apply: creates{}",
            if idempotency {
                " + Idempotency-Key"
            } else {
                ""
            }
        ),
        records: records as u64,
        seconds,
        peak_kib,
        note: String::new(),
        detail: format!("stream {} ms; {}", counts.duration_ms, world.store_detail()),
        rate: true,
    }
}

// --- incremental -----------------------------------------------------------------

/// The billing id a contact is mapped to: "c_000123" → "cus_000123".
fn target_id(contact_id: &str) -> String {
    format!("cus_{}", contact_id.trim_start_matches("c_"))
}

/// `records` contacts, all mapped with their current bases (built directly through
/// `Store::complete`, hashed by the stream's own `Mapper`) and the watermark at the
/// newest — the state a bulk load leaves. Then two incremental runs with `CHANGED`
/// changed contacts each: the first run after the bulk load (its store open replays
/// the log the load wrote; repeated on a copy of that store), and a steady-state run
/// (repeated with another `CHANGED` changes each time).
fn measure_incremental(options: &Options, records: usize) -> [Row; 2] {
    let text = billing_pipeline(false);
    let world = World::new(&text);
    let started = Instant::now();
    world.sandbox.crm().seed(records);
    let seeded = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let pipeline = parse_pipeline(&text);
    let Some(StreamConfig::OneWay(stream)) = pipeline.streams.get(STREAM) else {
        panic!("the bench pipeline has a one-way stream");
    };
    let contacts = world.sandbox.crm().records();
    {
        let store = Arc::new(SledStore::open(&world.state_dir()).expect("store opens"));
        let refs: Arc<dyn Store> = store.clone();
        let mapper = Mapper::new(&stream.fields, refs, json!({})).expect("mapper");
        let newest = contacts
            .last()
            .and_then(|c| c["updated_at"].as_str())
            .expect("contacts have updated_at")
            .to_string();
        for chunk in contacts.chunks(SETUP_BATCH) {
            let completions: Vec<Completion> = chunk
                .iter()
                .map(|contact| {
                    let id = contact["id"].as_str().expect("contact id").to_string();
                    let mapped = mapper.map(contact, "now").expect("maps");
                    Completion {
                        stream: STREAM.to_string(),
                        intent_key: None,
                        outcome: Outcome::Synced {
                            target_id: target_id(&id),
                            base: Base {
                                hash: mapped.hash,
                                fields: mapped.fields,
                                deleted: false,
                            },
                        },
                        source_id: id,
                        may_have_dead_letter: true,
                    }
                })
                .collect();
            store.complete(&completions).expect("mapped state stored");
        }
        store
            .set_watermark(STREAM, &Watermark { value: newest })
            .expect("watermark");
        assert_eq!(store.mapped_count(STREAM).expect("count") as usize, records);
    }
    let stored = started.elapsed().as_secs_f64();
    let bulk = world.dir.path().join("state.bulk");
    copy_dir(&world.state_dir(), &bulk);
    let setup = format!(
        "setup: seed {seeded:.1} s; mapped state {stored:.1} s ({:.0} us per record through Store::complete, {SETUP_BATCH} per transaction)",
        stored * 1e6 / records as f64
    );

    // Contacts to change, spread over the whole set, CHANGED per round; billing holds
    // their customers.
    let step = (records / (CHANGED * (options.repeat + 1))).max(1);
    let mut rounds = contacts
        .into_iter()
        .step_by(step)
        .collect::<Vec<_>>()
        .into_iter();
    let mut change = |round: usize| {
        let mut changed = 0;
        for contact in rounds.by_ref().take(CHANGED) {
            let id = contact["id"].as_str().expect("id").to_string();
            let patch = json!({"last_name": format!("Changed{round}")});
            assert!(world.sandbox.crm().update(&id, patch));
            world.sandbox.billing().insert(json!({
                "id": target_id(&id),
                "email": contact["email"],
                "name": "before the change",
                "crm_id": id,
            }));
            changed += 1;
        }
        changed
    };

    let run = |name: &str, label: String, changed: usize| {
        let updates_before = world.sandbox.billing().stats().updates;
        let (seconds, peak_kib) = world.apply(options, &label);
        let run = world.last_run();
        let counts = &run.streams[0];
        assert_eq!(counts.updated as usize, changed, "{run:?}");
        assert_eq!(counts.created, 0, "{run:?}");
        let updates = world.sandbox.billing().stats().updates - updates_before;
        assert_eq!(updates as usize, changed);
        Row {
            name: format!("runner apply: incremental, {name}"),
            records: records as u64,
            seconds,
            peak_kib,
            note: if records == options.records {
                format!("goal < {INCREMENTAL_SECONDS:.0} s")
            } else {
                "memory check".into()
            },
            detail: format!(
                "{records} mapped, {changed} changed: read {}, updated {}, unchanged {}; stream {} ms; {}",
                counts.read,
                counts.updated,
                counts.unchanged,
                counts.duration_ms,
                world.store_detail()
            ),
            rate: false,
        }
    };

    let changed = change(0);
    let mut attempt = 0;
    let mut first = median(options.repeat, || {
        if attempt > 0 {
            std::fs::remove_dir_all(world.state_dir()).expect("state removed");
            copy_dir(&bulk, &world.state_dir());
        }
        attempt += 1;
        run(
            "first after the load",
            format!("incremental-first-{records}"),
            changed,
        )
    });
    first.detail = format!("{}; {setup}", first.detail);
    let mut round = 0;
    let steady = median(options.repeat, || {
        round += 1;
        let changed = change(round);
        run(
            "steady state",
            format!("incremental-steady-{records}"),
            changed,
        )
    });
    [first, steady]
}

// --- two-way ---------------------------------------------------------------------

/// Two-way runs over `pairs` CRM contacts, half of them already in billing (same
/// email): the first sync (links half, creates half in billing, fills the CRM's plan
/// and notes from billing), the run after it (each side returns the runner's writes:
/// read, recognised, nothing sent), and a run with `CHANGED` edits on each side.
fn measure_two_way(options: &Options, pairs: usize) -> Vec<Row> {
    let world = World::new(&two_way_pipeline());
    world.sandbox.crm().seed(pairs);
    world.sandbox.billing().seed(pairs / 2);
    let writes = |sandbox: &Sandbox| {
        let (crm, billing) = (sandbox.crm().stats(), sandbox.billing().stats());
        crm.creates + crm.updates + billing.creates + billing.updates
    };
    let mut rows = Vec::new();
    let mut row = |name: &str, label: &str, records: usize, rate: bool| {
        let before = writes(&world.sandbox);
        let (seconds, peak_kib) = world.apply(options, label);
        let run = world.last_run();
        let counts = &run.streams[0];
        rows.push(Row {
            name: format!("runner apply: two-way, {name}"),
            records: records as u64,
            seconds,
            peak_kib,
            note: String::new(),
            detail: format!(
                "read {}, linked {}, created {}, updated {}, {} writes sent; stream {} ms",
                counts.read,
                counts.linked,
                counts.created,
                counts.updated,
                writes(&world.sandbox) - before,
                counts.duration_ms
            ),
            rate,
        });
    };
    row("first sync", "two-way-first", pairs, true);
    assert_eq!(
        world.sandbox.billing().len(),
        pairs,
        "every contact has a customer"
    );
    row("its writes read back", "two-way-echo", pairs, false);
    let contacts = world.sandbox.crm().records();
    let customers = world.sandbox.billing().records();
    for (n, (contact, customer)) in contacts.iter().zip(&customers).take(CHANGED).enumerate() {
        let id = |r: &Value| r["id"].as_str().unwrap_or_default().to_string();
        world
            .sandbox
            .crm()
            .update(&id(contact), json!({ "notes": format!("crm edit {n}") }));
        world
            .sandbox
            .billing()
            .update(&id(customer), json!({ "plan": format!("plan {n}") }));
    }
    row(
        &format!("{CHANGED} + {CHANGED} changed"),
        "two-way-changed",
        pairs,
        false,
    );
    rows
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("directory created");
    for entry in std::fs::read_dir(from).expect("directory read").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("file copied");
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

// --- JSONL export ----------------------------------------------------------------

fn measure_bare_pull(records: usize) -> Row {
    let sandbox = Sandbox::start(SandboxConfig::default()).expect("sandbox starts");
    sandbox.crm().set_synthetic(records);
    let (count, seconds, peak_kib) = child(&["bare-pull", &sandbox.crm().base_url()]);
    assert_eq!(count as usize, records, "bare pull loop lost records");
    Row {
        name: "bare pull loop (reqwest + serde_json)".into(),
        records: count,
        seconds,
        peak_kib,
        note: String::new(),
        detail: "as in benches/pull.rs".into(),
        rate: true,
    }
}

fn measure_jsonl(options: &Options, records: usize) -> Row {
    let world = World::new(&jsonl_pipeline());
    world.sandbox.crm().set_synthetic(records);
    let (seconds, peak_kib) = world.apply(options, &format!("jsonl-{records}"));
    let run = world.last_run();
    let counts = &run.streams[0];
    assert_eq!(counts.created as usize, records, "{run:?}");
    let file = world.dir.path().join("export/contacts.jsonl");
    let lines = std::fs::read_to_string(&file)
        .expect("export file")
        .lines()
        .count();
    assert_eq!(lines, records, "lines in {}", file.display());
    Row {
        name: "runner apply: API -> JSONL".into(),
        records: records as u64,
        seconds,
        peak_kib,
        note: String::new(),
        detail: format!("stream {} ms; {}", counts.duration_ms, world.store_detail()),
        rate: true,
    }
}

// --- bare loops (children) -------------------------------------------------------

/// Runs a bare loop in a child process: (records, seconds, peak RSS KiB).
fn child(args: &[&str]) -> (u64, f64, u64) {
    let output = Command::new(std::env::current_exe().expect("own path"))
        .arg("--child")
        .args(args)
        .output()
        .expect("child runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert!(
        output.status.success() && fields.len() == 3,
        "child failed: {text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        fields[0].parse().expect("count"),
        fields[1].parse().expect("seconds"),
        fields[2].parse().expect("rss"),
    )
}

fn bare_child(args: &[String]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (count, seconds) = runtime.block_on(async {
        match args[0].as_str() {
            "bare-post" => bare_post(&args[1], Path::new(&args[2])).await,
            "open-store" => {
                // A timing split of the incremental run: opening its store alone.
                let started = Instant::now();
                let store = SledStore::open(Path::new(&args[1])).expect("store opens");
                store.watermark(STREAM).expect("watermark");
                (0, started.elapsed().as_secs_f64())
            }
            _ => {
                let started = Instant::now();
                let count = common::bare_pull(&args[1]).await;
                (count, started.elapsed().as_secs_f64())
            }
        }
    });
    println!("{count} {seconds} {}", common::peak_rss_kib());
}

/// The limit for creates: 16 concurrent POSTs of prepared bodies, reading each
/// answer's id, nothing else. Timed from the first request.
async fn bare_post(billing_url: &str, bodies: &Path) -> (u64, f64) {
    let text = std::fs::read_to_string(bodies).expect("bodies");
    let bodies: Vec<bytes::Bytes> = text
        .lines()
        .map(|l| bytes::Bytes::from(l.to_string()))
        .collect();
    drop(text);
    let client = reqwest::Client::new();
    let url = format!("{billing_url}/customers");
    let started = Instant::now();
    let created = futures_util::stream::iter(bodies)
        .map(|body| {
            let request = client
                .post(&url)
                .header("X-Api-Key", sandbox::BILLING_API_KEY)
                .header("Content-Type", "application/json")
                .body(body);
            async move {
                let response = request.send().await.expect("POST");
                assert!(response.status().is_success(), "{}", response.status());
                let bytes = response.bytes().await.expect("body");
                let answer: Value = serde_json::from_slice(&bytes).expect("json");
                u64::from(answer.get("id").and_then(Value::as_str).is_some())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .fold(0u64, |sum, n| async move { sum + n })
        .await;
    (created, started.elapsed().as_secs_f64())
}
