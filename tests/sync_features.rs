//! Sync features beyond the basic one-way HTTP → HTTP stream, through the real binary:
//! JSON-lines targets and sources, references between streams, tombstones and soft
//! deletes, resuming an interrupted listing, structured logs.

use rand::{Rng, SeedableRng};
use runner::sandbox::{SandboxConfig, Scripted};
use serde_json::{json, Value};

use crate::apply::World;
use crate::support::{code, stderr, stdout};

const CRM: &str = r#"
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
    retry: { max_attempts: 4, initial_backoff: 5ms, max_backoff: 20ms, max_wait: 1m }
  billing:
    type: http
    base_url: "{{ env.BILLING_URL }}"
    auth: { type: api_key, name: X-Api-Key, value: "{{ secret.BILLING_API_KEY }}" }
"#;

const CONTACTS_SOURCE: &str = r#"
    source:
      system: crm
      read:
        path: /contacts
        params: { updated_since: "{{ watermark }}", limit: 10 }
        records: "$.data[*]"
        paginate: { style: cursor, cursor: "$.next_cursor", param: cursor }
      id: "$.id"
      updated_at: "$.updated_at""#;

fn pipeline(systems: &str, streams: &str) -> String {
    format!("version: 1\nname: features\nstate: {{ path: state }}\nsystems:{CRM}{systems}\nstreams:\n{streams}")
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

fn export_pipeline() -> String {
    pipeline(
        "  export: { type: jsonl, path: out/contacts.jsonl }\n",
        &format!(
            "  contacts:\n    source_of_truth: crm{CONTACTS_SOURCE}\n    target: {{ system: export }}\n    fields:\n      id: {{ from: \"$.id\" }}\n      email: {{ from: \"$.email\" }}\n"
        ),
    )
}

#[test]
fn a_jsonl_export_appends_each_change_exactly_once() {
    let world = World::new(SandboxConfig::default(), &export_pipeline());
    world.sandbox.crm().seed(25);
    let file = world.dir.path().join("out/contacts.jsonl");
    assert_eq!(code(&world.apply()), 0);
    assert_eq!(lines(&file).len(), 25);
    assert_eq!(code(&world.apply()), 0);
    assert_eq!(
        lines(&file).len(),
        25,
        "an unchanged record was written again"
    );

    let id = world.sandbox.crm().records()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    world
        .sandbox
        .crm()
        .update(&id, json!({"email": "changed@example.com"}));
    assert_eq!(code(&world.apply()), 0);
    let written = lines(&file);
    assert_eq!(written.len(), 26);
    assert_eq!(
        written[25],
        json!({"id": id, "email": "changed@example.com"})
    );
}

#[test]
fn lines_an_interrupted_run_wrote_but_never_committed_are_cut() {
    let world = World::new(SandboxConfig::default(), &export_pipeline());
    world.sandbox.crm().seed(10);
    let file = world.dir.path().join("out/contacts.jsonl");
    assert_eq!(code(&world.apply()), 0);
    // A run that died after appending lines but before committing them left these.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"id\": \"half-written\"}\n{\"id\": \"and-this\"");
    std::fs::write(&file, text).unwrap();
    let id = world.sandbox.crm().records()[3]["id"]
        .as_str()
        .unwrap()
        .to_string();
    world
        .sandbox
        .crm()
        .update(&id, json!({"email": "again@example.com"}));
    assert_eq!(code(&world.apply()), 0);
    let written = lines(&file);
    assert_eq!(written.len(), 11, "{written:?}");
    assert!(written.iter().all(|l| l["id"] != "half-written"));
}

#[test]
fn an_export_killed_at_random_moments_holds_each_change_exactly_once() {
    let world = World::new(SandboxConfig::default(), &export_pipeline());
    // Ten records a page and slow pages: many commits, and kills land between them.
    world
        .sandbox
        .crm()
        .set_latency(std::time::Duration::from_millis(4));
    world.sandbox.crm().seed(400);
    let file = world.dir.path().join("out/contacts.jsonl");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (mut killed, mut round) = (0, 0);
    while killed < 20 && round < 80 {
        round += 1;
        // Most records change every round, so that most pages append and commit.
        for (n, contact) in world.sandbox.crm().records().iter().enumerate() {
            if rng.random_bool(0.8) {
                let id = contact["id"].as_str().unwrap_or_default();
                world
                    .sandbox
                    .crm()
                    .update(id, json!({"email": format!("r{round}-{n}@example.com")}));
            }
        }
        // Every third run reads everything again, the others what changed.
        let args: &[&str] = if round % 3 == 0 {
            &["apply", "--full"]
        } else {
            &["apply"]
        };
        let mut child = world
            .command(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("runner starts");
        std::thread::sleep(std::time::Duration::from_millis(rng.random_range(60..300)));
        if child.try_wait().expect("child status").is_none() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
            killed += 1;
        }
    }
    assert!(killed >= 15, "only {killed} kills in {round} rounds");
    eprintln!("{killed} kills in {round} rounds");
    let finished = (0..5).any(|_| code(&world.apply()) == 0);
    assert!(finished, "no clean run after the kills");

    // Every line is whole JSON (`lines` insists); per record, the last line is its
    // current state and no change was appended twice (two equal lines in a row).
    let mut by_id: std::collections::HashMap<String, Vec<Value>> = Default::default();
    for line in lines(&file) {
        let id = line["id"].as_str().unwrap_or_default().to_string();
        by_id.entry(id).or_default().push(line);
    }
    let contacts = world.sandbox.crm().records();
    assert_eq!(
        by_id.len(),
        contacts.len(),
        "a record is missing or unknown"
    );
    for contact in &contacts {
        let id = contact["id"].as_str().unwrap_or_default();
        let versions = &by_id[id];
        assert_eq!(
            versions.last(),
            Some(&json!({"id": id, "email": contact["email"]})),
            "{id}: the file does not end with its current state"
        );
        assert!(
            versions.windows(2).all(|w| w[0] != w[1]),
            "{id}: a change was appended twice: {versions:?}"
        );
    }
}

#[test]
fn a_jsonl_source_dead_letters_broken_lines_and_syncs_the_rest() {
    let systems = "  archive: { type: jsonl, path: archive.jsonl }\n";
    let streams = r#"  customers:
    source_of_truth: archive
    source: { system: archive, id: "$.number" }
    target:
      system: billing
      create: { method: POST, path: /customers, id: "$.id" }
      update: { method: PATCH, path: "/customers/{{ target_id }}" }
      idempotency_header: Idempotency-Key
    fields:
      email: { from: "$.email" }
      name: { from: "$.name" }
"#;
    let world = World::new(SandboxConfig::default(), &pipeline(systems, streams));
    let archive = (1..=5)
        .map(|n| json!({"number": format!("A{n}"), "email": format!("a{n}@example.com"), "name": format!("Archived {n}")}).to_string())
        .chain(["{not json".to_string()])
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(world.dir.path().join("archive.jsonl"), archive).unwrap();
    let output = world.apply();
    assert_eq!(code(&output), 4, "{}\n{}", stdout(&output), stderr(&output));
    assert_eq!(world.sandbox.billing().len(), 5);
    let letters = world.run_on_file("dead-letters", &["list"]);
    assert!(
        stdout(&letters).contains("customers/line-6"),
        "{}",
        stdout(&letters)
    );
    assert!(
        stdout(&letters).contains("not valid JSON"),
        "{}",
        stdout(&letters)
    );
    // Unchanged lines are not written again.
    world.sandbox.clear_journal();
    world.apply();
    assert!(world.sandbox.journal().iter().all(|e| e.method == "GET"));
}

#[test]
fn a_record_referring_to_an_unmapped_record_waits_and_is_never_written_with_a_dangling_id() {
    let systems = "  invoices_in: { type: jsonl, path: invoices.jsonl }\n  invoices_out: { type: jsonl, path: invoices-out.jsonl }\n";
    // Declared before the stream it refers to: it runs after it all the same.
    let streams = format!(
        r#"  invoices:
    source_of_truth: invoices_in
    source: {{ system: invoices_in, id: "$.number" }}
    target: {{ system: invoices_out }}
    fields:
      number: {{ from: "$.number" }}
      customer: {{ template: "{{{{ ref('contacts', record.contact) }}}}" }}
  contacts:
    source_of_truth: crm{CONTACTS_SOURCE}
    target:
      system: billing
      create: {{ method: POST, path: /customers, id: "$.id" }}
      update: {{ method: PATCH, path: "/customers/{{{{ target_id }}}}" }}
      idempotency_header: Idempotency-Key
    fields:
      email: {{ from: "$.email" }}
"#
    );
    let world = World::new(SandboxConfig::default(), &pipeline(systems, &streams));
    let ids = world.sandbox.crm().seed(2);
    let invoices = [
        json!({"number": "I1", "contact": ids[0]}),
        json!({"number": "I2", "contact": "c_later"}),
    ];
    let text: Vec<String> = invoices.iter().map(Value::to_string).collect();
    std::fs::write(world.dir.path().join("invoices.jsonl"), text.join("\n")).unwrap();

    let output = world.apply();
    assert_eq!(code(&output), 0, "{}\n{}", stdout(&output), stderr(&output));
    assert!(
        stdout(&output).contains("1 record waits for a reference"),
        "{}",
        stdout(&output)
    );
    let out_file = world.dir.path().join("invoices-out.jsonl");
    let written = lines(&out_file);
    assert_eq!(written.len(), 1, "{written:?}");
    // Creates run concurrently: find the customer by the contact's email.
    let email = world.sandbox.crm().get(&ids[0]).unwrap()["email"].clone();
    let customer = world
        .sandbox
        .billing()
        .records()
        .into_iter()
        .find(|c| c["email"] == email)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(written[0], json!({"number": "I1", "customer": customer}));

    // The referenced contact appears; the next run maps it, then writes the invoice.
    world.sandbox.crm().insert(json!({"id": "c_later", "email": "later@example.com", "first_name": "L", "last_name": "Ater"}));
    assert_eq!(code(&world.apply()), 0);
    let written = lines(&out_file);
    assert_eq!(written.len(), 2, "{written:?}");
    let later = world
        .sandbox
        .billing()
        .records()
        .into_iter()
        .find(|c| c["email"] == "later@example.com")
        .unwrap();
    assert_eq!(written[1], json!({"number": "I2", "customer": later["id"]}));
}

#[test]
fn a_tombstone_soft_deletes_the_target_record_once() {
    let streams = format!(
        r#"  contacts:
    source_of_truth: crm{CONTACTS_SOURCE}
      tombstone: "$.archived"
    target:
      system: billing
      create: {{ method: POST, path: /customers, id: "$.id" }}
      update: {{ method: PATCH, path: "/customers/{{{{ target_id }}}}" }}
      idempotency_header: Idempotency-Key
      soft_delete: {{ archived: true }}
    fields:
      email: {{ from: "$.email" }}
    deletes: soft
"#
    );
    let world = World::new(SandboxConfig::default(), &pipeline("", &streams));
    // 1 of 20: under the 10% mass-delete guard.
    let ids = world.sandbox.crm().seed(20);
    assert_eq!(code(&world.apply()), 0);
    world
        .sandbox
        .crm()
        .update(&ids[2], json!({"archived": true}));
    let output = world.apply();
    assert_eq!(code(&output), 0, "{}\n{}", stdout(&output), stderr(&output));
    let archived: Vec<Value> = world
        .sandbox
        .billing()
        .records()
        .into_iter()
        .filter(|c| c["archived"] == true)
        .collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(
        world.sandbox.billing().len(),
        20,
        "soft delete removed the record"
    );
    world.sandbox.clear_journal();
    assert_eq!(code(&world.apply()), 0);
    assert!(
        world
            .sandbox
            .journal()
            .iter()
            .all(|e| e.app != "billing" || e.method == "GET"),
        "the soft delete was sent again"
    );
}

#[test]
fn a_listing_paused_by_a_long_retry_after_resumes_where_it_stopped() {
    let streams = format!(
        r#"  contacts:
    source_of_truth: crm{CONTACTS_SOURCE}
    target:
      system: billing
      create: {{ method: POST, path: /customers, id: "$.id" }}
      update: {{ method: PATCH, path: "/customers/{{{{ target_id }}}}" }}
      idempotency_header: Idempotency-Key
    fields:
      email: {{ from: "$.email" }}
"#
    );
    let world = World::new(SandboxConfig::default(), &pipeline("", &streams));
    world.sandbox.crm().seed(35);
    // Token, page 1, page 2 — then the CRM asks to wait an hour (more than max_wait).
    world.sandbox.crm().script(vec![
        Scripted::Pass,
        Scripted::Pass,
        Scripted::Pass,
        Scripted::Status {
            status: 429,
            headers: vec![("Retry-After".into(), "3600".into())],
            body: "{}".into(),
        },
    ]);
    let output = world.apply();
    assert_eq!(code(&output), 0, "{}\n{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).contains("paused"), "{}", stdout(&output));
    assert_eq!(
        world.sandbox.billing().len(),
        20,
        "the two pages before the pause are synced"
    );

    world.sandbox.clear_journal();
    assert_eq!(code(&world.apply()), 0);
    assert_eq!(world.sandbox.billing().len(), 35);
    let first_listing = world
        .sandbox
        .journal()
        .into_iter()
        .find(|e| e.app == "crm" && e.path.ends_with("/contacts"))
        .unwrap();
    assert!(
        first_listing.query.unwrap_or_default().contains("cursor="),
        "the second run started over"
    );
}

#[test]
fn structured_logs_are_json_lines() {
    let world = World::new(SandboxConfig::default(), &export_pipeline());
    world.sandbox.crm().seed(3);
    let output = world.run(&["--log-format", "json", "--log-level", "debug", "apply"]);
    assert_eq!(code(&output), 0);
    let logs = stderr(&output);
    let mut count = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            event.get("level").is_some() && event.get("fields").is_some(),
            "{line}"
        );
        count += 1;
    }
    assert!(count > 0, "no log lines");
}
