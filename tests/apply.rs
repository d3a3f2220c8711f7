//! `runner apply` and `runner plan` as real processes against the sandbox APIs, with
//! real sled stores in temp dirs: incremental sync, linking, dead letters, deletes,
//! exit codes — and the guarantees under faults and crashes (SIGKILL at random points).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use runner::sandbox::{self, FaultKind, Faults, Sandbox, SandboxConfig};
use serde_json::{json, Value};

use crate::support::{code, stderr, stdout};

/// One-way CRM contacts → billing customers, as the tests vary it.
const PIPELINE: &str = concat!(
    r#"
version: 1
name: contacts
state: { path: state }
"#,
    sandbox_systems!(),
    r#"streams:
  contacts:
    source_of_truth: crm
    source:
      system: crm
      read:
        path: /contacts
        params: { updated_since: "{{ watermark }}", limit: 50 }
        records: "$.data[*]"
        paginate: { style: cursor, cursor: "$.next_cursor", param: cursor }
      id: "$.id"
      updated_at: "$.updated_at"
    target:
      system: billing
      id: "$.id"
      match_on: [email]
      lookup:
        path: /customers
        params: { email: "{{ match.email }}" }
        records: "$.items[*]"
      create: { method: POST, path: /customers, id: "$.id" }
      update: { method: PATCH, path: "/customers/{{ target_id }}" }
      delete: { method: DELETE, path: "/customers/{{ target_id }}" }
      idempotency_header: Idempotency-Key
    fields:
      email: { from: "$.email" }
      name: { template: "{{ record.first_name }} {{ record.last_name }}" }
      crm_id: { from: "$.id" }
"#
);

/// A sandbox, a temp dir with a pipeline file, and the runner binary.
pub struct World {
    pub sandbox: Sandbox,
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
}

impl World {
    pub fn new(config: SandboxConfig, pipeline: &str) -> World {
        let sandbox = Sandbox::start(config).expect("sandbox starts");
        // A run killed after the CRM rotated its refresh token but before the runner
        // saved the new one must be able to recover, as with real providers.
        sandbox
            .crm()
            .set_refresh_reuse_interval(Duration::from_secs(60));
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("pipeline.yaml");
        std::fs::write(&file, pipeline).expect("pipeline written");
        World { sandbox, dir, file }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_runner"));
        command
            .env_clear()
            .current_dir(self.dir.path())
            .env("CRM_URL", self.sandbox.crm().base_url())
            .env("BILLING_URL", self.sandbox.billing().base_url())
            .env("CRM_CLIENT_ID", sandbox::CRM_CLIENT_ID)
            .env("CRM_CLIENT_SECRET", sandbox::CRM_CLIENT_SECRET)
            .env("CRM_REFRESH_TOKEN", sandbox::CRM_REFRESH_TOKEN)
            .env("BILLING_API_KEY", sandbox::BILLING_API_KEY)
            .args(args)
            .arg(&self.file);
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("runner starts")
    }

    /// `runner COMMAND FILE rest...`, for commands whose subcommands follow the file.
    pub fn run_on_file(&self, command: &str, rest: &[&str]) -> Output {
        let mut cmd = self.command(&[command]);
        cmd.args(rest);
        cmd.output().expect("runner starts")
    }

    pub fn apply(&self) -> Output {
        self.run(&["apply"])
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

fn with_env_report(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    )
}

/// Asserts the billing side mirrors the CRM: one customer per contact, with the mapped
/// fields, and no duplicates.
pub fn assert_mirrored(sandbox: &Sandbox) {
    let contacts = sandbox.crm().records();
    let customers = sandbox.billing().records();
    let mut by_crm_id: HashMap<String, Vec<&Value>> = HashMap::new();
    for customer in &customers {
        if let Some(id) = customer["crm_id"].as_str() {
            by_crm_id.entry(id.to_string()).or_default().push(customer);
        }
    }
    for contact in &contacts {
        let id = contact["id"].as_str().unwrap();
        let matches = by_crm_id.get(id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            matches.len(),
            1,
            "contact {id} has {} customers",
            matches.len()
        );
        let customer = matches[0];
        assert_eq!(customer["email"], contact["email"], "{id}");
        let name = format!(
            "{} {}",
            contact["first_name"].as_str().unwrap(),
            contact["last_name"].as_str().unwrap()
        );
        assert_eq!(customer["name"], json!(name), "{id}");
    }
    assert_eq!(
        by_crm_id.len(),
        contacts.len(),
        "customers without a contact"
    );
}

fn writes(sandbox: &Sandbox) -> Vec<(String, String)> {
    sandbox
        .journal()
        .into_iter()
        .filter(|e| e.app == "billing" && e.method != "GET")
        .map(|e| (e.method, e.path))
        .collect()
}

#[test]
fn an_initial_load_then_incremental_runs_write_only_what_changed() {
    let world = World::new(SandboxConfig::default(), PIPELINE);
    world.sandbox.crm().seed(120);
    let first = world.apply();
    assert_eq!(code(&first), 0, "{}", with_env_report(&first));
    assert_mirrored(&world.sandbox);
    assert_eq!(writes(&world.sandbox).len(), 120);
    assert!(stdout(&first).contains("contacts"), "{}", stdout(&first));

    world.sandbox.clear_journal();
    let second = world.apply();
    assert_eq!(code(&second), 0, "{}", with_env_report(&second));
    assert!(
        writes(&world.sandbox).is_empty(),
        "a run without changes wrote: {:?}",
        writes(&world.sandbox)
    );

    let ids: Vec<String> = world
        .sandbox
        .crm()
        .records()
        .iter()
        .take(3)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        world
            .sandbox
            .crm()
            .update(id, json!({"last_name": "Changed"}));
    }
    world.sandbox.clear_journal();
    let third = world.apply();
    assert_eq!(code(&third), 0, "{}", with_env_report(&third));
    let written = writes(&world.sandbox);
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(
        written.iter().all(|(method, _)| method == "PATCH"),
        "{written:?}"
    );
    assert_mirrored(&world.sandbox);
    // Incremental: the third run asked only for what changed since the watermark.
    let listing = world
        .sandbox
        .journal()
        .into_iter()
        .find(|e| e.app == "crm" && e.path.ends_with("/contacts"))
        .unwrap();
    assert!(listing.query.unwrap_or_default().contains("updated_since="));
}

#[test]
fn existing_target_records_are_linked_not_duplicated() {
    let world = World::new(SandboxConfig::default(), PIPELINE);
    world.sandbox.crm().seed(20);
    // Half of the contacts already exist in billing (same email, other name).
    for contact in world.sandbox.crm().records().iter().take(10) {
        world
            .sandbox
            .billing()
            .insert(json!({"email": contact["email"], "name": "Legacy"}));
    }
    let output = world.apply();
    assert_eq!(code(&output), 0, "{}", with_env_report(&output));
    assert_eq!(
        world.sandbox.billing().len(),
        20,
        "linked records were created again"
    );
    assert_mirrored(&world.sandbox);
    let creates = writes(&world.sandbox)
        .iter()
        .filter(|(m, _)| m == "POST")
        .count();
    assert_eq!(creates, 10);
}

#[test]
fn plan_shows_the_changes_and_writes_nothing() {
    let world = World::new(SandboxConfig::default(), PIPELINE);
    world.sandbox.crm().seed(5);
    assert_eq!(code(&world.apply()), 0);
    let id = world.sandbox.crm().records()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    world
        .sandbox
        .crm()
        .update(&id, json!({"first_name": "Grace"}));
    world
        .sandbox
        .crm()
        .insert(json!({"email": "new@example.com", "first_name": "New", "last_name": "Person"}));
    let state_before = state_summary(&world);
    world.sandbox.clear_journal();

    let plan = world.run(&["plan"]);
    assert_eq!(code(&plan), 0, "{}", with_env_report(&plan));
    let text = stdout(&plan);
    assert!(text.contains(&format!("~ update {id} → ")), "{text}");
    assert!(text.contains("name: \""), "{text}");
    assert!(text.contains("+ create c_"), "{text}");
    assert!(
        text.contains("Plan: 1 to create, 1 to update, 0 to delete"),
        "{text}"
    );
    // Only reads — and the token request every new process makes.
    for entry in world.sandbox.journal() {
        assert!(
            entry.method == "GET" || entry.path.ends_with("/oauth/token"),
            "plan sent {} {}",
            entry.method,
            entry.path
        );
    }
    // Nothing changed in the store: no run, no watermark, no outbox item, no mapping.
    assert_eq!(state_before, state_summary(&world));

    let json_plan = world.run(&["plan", "--format", "json"]);
    let plans: Value = serde_json::from_str(&stdout(&json_plan)).unwrap();
    assert_eq!(plans[0]["updates"][0]["source_id"], json!(id));
    assert_eq!(plans[0]["creates"].as_array().unwrap().len(), 1);
}

/// What the store says about the stream: (runs, watermark, pending, mapped).
fn state_summary(world: &World) -> (usize, Option<String>, u64, u64) {
    use runner::store::Store;
    let store = runner::store::SledStore::open(&world.state_dir()).unwrap();
    (
        store.runs(100).unwrap().len(),
        store.watermark("contacts").unwrap().map(|w| w.value),
        store.pending_count("contacts").unwrap(),
        store.mapped_count("contacts").unwrap(),
    )
}

/// File names of a directory tree.
fn snapshot(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn refused_records_are_dead_lettered_and_can_be_retried_after_the_fix() {
    let world = World::new(SandboxConfig::default(), PIPELINE);
    world.sandbox.crm().seed(6);
    // A contact without an email: billing refuses it (422).
    let bad = world
        .sandbox
        .crm()
        .insert(json!({"first_name": "No", "last_name": "Email"}));
    let output = world.apply();
    assert_eq!(code(&output), 4, "{}", with_env_report(&output));
    assert!(
        stdout(&output).contains("1 records dead-lettered"),
        "{}",
        stdout(&output)
    );

    let store = runner::store::SledStore::open(&world.state_dir()).unwrap();
    let letters = runner::store::Store::dead_letters(&store, None).unwrap();
    drop(store);
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.source_id, bad);
    let exchange = letter.exchange.as_ref().expect("the request is kept");
    assert_eq!(
        (exchange.method.as_str(), exchange.status),
        ("POST", Some(422))
    );
    assert!(
        exchange.url.ends_with("/billing/customers"),
        "{}",
        exchange.url
    );
    assert!(exchange
        .response
        .as_deref()
        .unwrap_or_default()
        .contains("email"));
    assert_eq!(exchange.body["name"], "No Email");

    // The cause is fixed at the source; the next run syncs it and clears the letter.
    world
        .sandbox
        .crm()
        .update(&bad, json!({"email": "fixed@example.com"}));
    let output = world.apply();
    assert_eq!(code(&output), 0, "{}", with_env_report(&output));
    assert_mirrored(&world.sandbox);
    let store = runner::store::SledStore::open(&world.state_dir()).unwrap();
    assert!(runner::store::Store::dead_letters(&store, None)
        .unwrap()
        .is_empty());
}

#[test]
fn dead_letters_are_retried_with_the_fixed_pipeline() {
    let world = World::new(SandboxConfig::default(), PIPELINE);
    world.sandbox.crm().seed(3);
    let bad = world
        .sandbox
        .crm()
        .insert(json!({"first_name": "No", "last_name": "Email"}));
    assert_eq!(code(&world.apply()), 4);
    // Retrying before the fix fails the same way and keeps the letter.
    let again = world.run_on_file("dead-letters", &["retry"]);
    assert_eq!(code(&again), 4, "{}", with_env_report(&again));
    // The fix: the pipeline gives contacts without an email a placeholder.
    let fixed = PIPELINE.replace(
        r#"email: { from: "$.email" }"#,
        r#"email: { from: "$.email", default: "unknown@example.com" }"#,
    );
    std::fs::write(&world.file, fixed).unwrap();
    let retried = world.run_on_file("dead-letters", &["retry", &format!("contacts/{bad}")]);
    assert_eq!(code(&retried), 0, "{}", with_env_report(&retried));
    assert!(
        stdout(&retried).contains("retried 1; 0 dead letters left"),
        "{}",
        stdout(&retried)
    );
    let customer = world
        .sandbox
        .billing()
        .records()
        .into_iter()
        .find(|c| c["crm_id"] == json!(bad))
        .expect("the retried record was created");
    assert_eq!(customer["email"], "unknown@example.com");
    let listed = world.run_on_file("dead-letters", &["list"]);
    assert!(!stdout(&listed).contains(&bad), "{}", stdout(&listed));
}

#[test]
fn a_revoked_refresh_token_stops_with_reconnect_and_exit_3() {
    let world = World::new(SandboxConfig::default(), PIPELINE);
    world.sandbox.crm().seed(3);
    world.sandbox.crm().revoke_refresh_tokens();
    let output = world.apply();
    assert_eq!(code(&output), 3, "{}", with_env_report(&output));
    assert!(
        stdout(&output).contains("reconnect crm: "),
        "{}",
        stdout(&output)
    );
    assert_eq!(world.sandbox.billing().len(), 0);
}

#[test]
fn deletes_need_a_complete_listing_and_respect_the_mass_delete_guard() {
    let pipeline = PIPELINE.replace(
        "crm_id: { from: \"$.id\" }",
        "crm_id: { from: \"$.id\" }\n    deletes: hard",
    );
    let world = World::new(SandboxConfig::default(), &pipeline);
    let ids = world.sandbox.crm().seed(30);
    assert_eq!(code(&world.apply()), 0);
    assert_eq!(world.sandbox.billing().len(), 30);

    // One contact goes: an incremental run cannot know, a full one can.
    world.sandbox.crm().delete(&ids[0]);
    assert_eq!(code(&world.apply()), 0);
    assert_eq!(
        world.sandbox.billing().len(),
        30,
        "an incremental run deleted"
    );
    let output = world.run(&["apply", "--full"]);
    assert_eq!(code(&output), 0, "{}", with_env_report(&output));
    assert_eq!(world.sandbox.billing().len(), 29);

    // Ten go at once: more than 10% — the run stops before deleting anything.
    for id in &ids[1..11] {
        world.sandbox.crm().delete(id);
    }
    let output = world.run(&["apply", "--full"]);
    assert_eq!(code(&output), 1, "{}", with_env_report(&output));
    assert!(
        stdout(&output).contains("--allow-mass-delete"),
        "{}",
        stdout(&output)
    );
    assert_eq!(world.sandbox.billing().len(), 29);
    let output = world.run(&["apply", "--full", "--allow-mass-delete"]);
    assert_eq!(code(&output), 0, "{}", with_env_report(&output));
    assert_eq!(world.sandbox.billing().len(), 19);
    assert_mirrored(&world.sandbox);
}

#[test]
fn a_failed_listing_never_deletes() {
    let pipeline = PIPELINE.replace(
        "crm_id: { from: \"$.id\" }",
        "crm_id: { from: \"$.id\" }\n    deletes: hard",
    );
    let world = World::new(SandboxConfig::default(), &pipeline);
    let ids = world.sandbox.crm().seed(120);
    assert_eq!(code(&world.apply()), 0);
    // One contact is really gone, but the listing breaks after its first page (the
    // API starts repeating its cursor): nothing may be deleted on a partial listing.
    world.sandbox.crm().delete(&ids[100]);
    world.sandbox.crm().set_repeat_cursor(true);
    let output = world.run(&["apply", "--full"]);
    assert_eq!(code(&output), 1, "{}", with_env_report(&output));
    assert!(
        stdout(&output).contains("pagination loop"),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        world.sandbox.billing().len(),
        120,
        "records were deleted after a failed listing"
    );
    world.sandbox.crm().set_repeat_cursor(false);
    let output = world.run(&["apply", "--full"]);
    assert_eq!(code(&output), 0, "{}", with_env_report(&output));
    assert_eq!(world.sandbox.billing().len(), 119);
}

fn converges(world: &World, max_runs: usize) -> Vec<i32> {
    let mut codes = Vec::new();
    for _ in 0..max_runs {
        let output = world.apply();
        codes.push(code(&output));
        if code(&output) == 0 {
            return codes;
        }
    }
    panic!("no clean run after {max_runs} runs: exit codes {codes:?}");
}

fn all_faults(rate: f64) -> Faults {
    Faults {
        rate,
        kinds: vec![
            FaultKind::Status500,
            FaultKind::Status502,
            FaultKind::Status503,
            FaultKind::Slow,
            FaultKind::Reset,
            FaultKind::Truncated,
        ],
        slow_for: Duration::from_millis(400),
    }
}

const FAST_TIMEOUTS: (&str, &str) = ("timeouts: { request: 2s }", "timeouts: { request: 200ms }");

#[test]
fn twenty_percent_faults_converge_without_duplicates_with_idempotency_keys() {
    let world = World::new(
        SandboxConfig::default(),
        &PIPELINE.replace(FAST_TIMEOUTS.0, FAST_TIMEOUTS.1),
    );
    world.sandbox.crm().seed(150);
    world.sandbox.crm().set_faults(all_faults(0.2));
    world.sandbox.billing().set_faults(all_faults(0.2));
    converges(&world, 12);
    world.sandbox.billing().set_faults(Faults::default());
    assert_mirrored(&world.sandbox);
    assert!(world.sandbox.billing().stats().faults > 0);
}

#[test]
fn twenty_percent_faults_converge_without_duplicates_without_idempotency_keys() {
    let pipeline = PIPELINE
        .replace(FAST_TIMEOUTS.0, FAST_TIMEOUTS.1)
        .replace("      idempotency_header: Idempotency-Key\n", "");
    let world = World::new(SandboxConfig::default(), &pipeline);
    world.sandbox.billing().set_idempotency(false);
    world.sandbox.crm().seed(150);
    world.sandbox.crm().set_faults(all_faults(0.2));
    world.sandbox.billing().set_faults(all_faults(0.2));
    converges(&world, 12);
    world.sandbox.billing().set_faults(Faults::default());
    assert_mirrored(&world.sandbox);
}

/// Kills `runner apply` at random moments, `kills` times, then lets it finish, and
/// checks the target mirrors the source exactly.
pub fn crash_loop(world: &World, kills: usize, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut killed = 0;
    while killed < kills {
        let mut child = world
            .command(&["apply"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("runner starts");
        let after = Duration::from_millis(rng.random_range(20..400));
        std::thread::sleep(after);
        match child.try_wait().expect("child status") {
            Some(_) => {
                // Finished before the kill: change a few records so there is work again.
                for record in world
                    .sandbox
                    .crm()
                    .records()
                    .iter()
                    .take(rng.random_range(1..20))
                {
                    let id = record["id"].as_str().unwrap();
                    world.sandbox.crm().update(
                        id,
                        json!({"last_name": format!("Gen{killed}-{}", rng.random_range(0..1000))}),
                    );
                }
                if rng.random_bool(0.3) {
                    world.sandbox.crm().insert(json!({"email": format!("new{killed}@example.com"), "first_name": "New", "last_name": "One"}));
                }
            }
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reaped");
                killed += 1;
            }
        }
    }
    converges(world, 10);
    assert_mirrored(&world.sandbox);
}

#[test]
fn killed_at_random_moments_the_next_run_restores_a_consistent_target() {
    let world = World::new(SandboxConfig::default(), PIPELINE);
    // Slow creates widen the window between sending a write and recording it.
    world
        .sandbox
        .billing()
        .set_latency(Duration::from_millis(15));
    world.sandbox.crm().seed(300);
    crash_loop(&world, 20, 7);
    // Some kills landed after a create was sent and before its answer was recorded:
    // the next run sent it again with the same idempotency key and billing replayed
    // its first answer instead of creating a second customer.
    assert!(
        world.sandbox.billing().stats().idempotent_replays > 0,
        "no kill landed between sending a create and recording it"
    );
}

#[test]
fn killed_at_random_moments_without_idempotency_keys_nothing_is_duplicated() {
    let world = World::new(
        SandboxConfig::default(),
        &PIPELINE.replace("      idempotency_header: Idempotency-Key\n", ""),
    );
    world.sandbox.billing().set_idempotency(false);
    world
        .sandbox
        .billing()
        .set_latency(Duration::from_millis(15));
    world.sandbox.crm().seed(300);
    crash_loop(&world, 20, 11);
    // Some creates were sent by a run that was killed before recording the answer: the
    // next run looked them up (by email) after they were sent — and found them, since
    // nothing is duplicated.
    assert!(
        looked_up_after_create(&world.sandbox) > 0,
        "no kill landed between sending a create and recording it"
    );
}

/// Creates that a later lookup went looking for: in-doubt creates being resolved.
fn looked_up_after_create(sandbox: &Sandbox) -> usize {
    let journal = sandbox.journal();
    let mut resolved = 0;
    for (i, entry) in journal.iter().enumerate() {
        if entry.app != "billing" || entry.method != "POST" {
            continue;
        }
        let Ok(body) = serde_json::from_str::<Value>(&entry.body) else {
            continue;
        };
        let Some(email) = body["email"].as_str() else {
            continue;
        };
        let encoded = email.replace('@', "%40");
        let later_lookup = journal[i + 1..].iter().any(|e| {
            e.method == "GET"
                && e.query.as_deref().is_some_and(|q| {
                    q.contains(&format!("email={encoded}")) || q.contains(&format!("email={email}"))
                })
        });
        resolved += usize::from(later_lookup);
    }
    resolved
}

/// The long soak: `RUNNER_SOAK_KILLS=200 cargo test --test integration soak -- --ignored`.
#[test]
#[ignore = "soak test: set RUNNER_SOAK_KILLS (default 200) and run with --ignored"]
fn soak_crash_loop() {
    let kills = std::env::var("RUNNER_SOAK_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(200);
    let world = World::new(
        SandboxConfig::default(),
        &PIPELINE.replace(FAST_TIMEOUTS.0, FAST_TIMEOUTS.1),
    );
    world
        .sandbox
        .billing()
        .set_latency(Duration::from_millis(10));
    world.sandbox.crm().seed(1000);
    world.sandbox.billing().set_faults(all_faults(0.05));
    crash_loop(&world, kills, 2026);
}

#[test]
fn no_secret_reaches_the_store_logs_or_plan() {
    let world = World::new(SandboxConfig::default(), PIPELINE);
    world.sandbox.crm().seed(40);
    world.sandbox.crm().set_faults(all_faults(0.1));
    let apply = world.run(&["--log-level", "trace", "apply"]);
    world.sandbox.crm().set_faults(Faults::default());
    world.sandbox.crm().expire_access_tokens();
    let plan = world.run(&["--log-level", "trace", "plan"]);
    let mut secrets = vec![
        sandbox::CRM_CLIENT_SECRET.to_string(),
        sandbox::CRM_REFRESH_TOKEN.to_string(),
        sandbox::BILLING_API_KEY.to_string(),
    ];
    for entry in world.sandbox.journal() {
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
    if let Some(rotated) = world.sandbox.crm().current_refresh_token() {
        secrets.push(rotated);
    }
    let outputs = [stdout(&apply), stderr(&apply), stdout(&plan), stderr(&plan)].join("\n");
    assert!(
        outputs.contains("TRACE") || outputs.contains("DEBUG"),
        "no logs captured"
    );
    for secret in &secrets {
        assert!(
            !outputs.contains(secret.as_str()),
            "a secret reached the output"
        );
        for file in snapshot(&world.state_dir()) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a secret in clear text",
                file.display()
            );
        }
    }
}
