//! The state commands (`status`, `history`, `dead-letters`, `mappings`, `state reset`)
//! driven as a real process, against a store seeded through the library.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use runner::store::{
    Base, Completion, DeadLetter, Exchange, Intent, Operation, Outcome, RunStatus, SledStore,
    Store, StoreError, StreamCounts, Watermark,
};

use crate::support::{code, repo, run, stderr, stdout};

/// A valid pipeline with one-way streams of the shape of `crm-to-billing.yaml`, its
/// state in `state/` beside it.
fn pipeline(dir: &Path, streams: &[&str]) {
    let mut text = String::from(
        r#"version: 1
name: contacts-sync
state: { path: state }
systems:
  crm: { type: http, base_url: "http://crm.invalid" }
  billing: { type: http, base_url: "http://billing.invalid" }
streams:
"#,
    );
    for stream in streams {
        text.push_str(&format!(
            r#"  {stream}:
    source_of_truth: crm
    source:
      system: crm
      read: {{ path: /v1/{stream}, records: "$.data[*]" }}
      id: "$.id"
      updated_at: "$.updated_at"
    target:
      system: billing
      match_on: [email]
      lookup: {{ path: /{stream}, params: {{ email: "{{{{ match.email }}}}" }}, records: "$.items[*]" }}
      create: {{ method: POST, path: /{stream}, id: "$.id" }}
      update: {{ method: PATCH, path: "/{stream}/{{{{ target_id }}}}" }}
      idempotency_header: Idempotency-Key
    fields:
      email: {{ from: "$.email" }}
"#
        ));
    }
    fs::write(dir.join("p.yaml"), text).unwrap();
}

/// Opens the store of the pipeline in `dir`. sled's background threads may hold the
/// lock of a store this process just dropped for a moment longer, so a refusal is
/// retried for a while rather than failing the test.
fn open_store(dir: &Path) -> SledStore {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match SledStore::open(&dir.join("state")) {
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
}

/// Seeds the store of the pipeline in `dir`, then closes it: sled holds a lock the
/// binary would be refused by. Reopening (without writing) proves the seeding handle
/// let go of it.
fn seed(dir: &Path, fill: impl FnOnce(&SledStore)) {
    fill(&open_store(dir));
    drop(open_store(dir));
}

fn synced(store: &SledStore, stream: &str, source_id: &str, target_id: &str) {
    store
        .complete(&[Completion {
            stream: stream.into(),
            source_id: source_id.into(),
            intent_key: None,
            outcome: Outcome::Synced {
                target_id: target_id.into(),
                base: Base {
                    hash: "h".into(),
                    fields: json!({"email": format!("{source_id}@example.com")}),
                    deleted: false,
                },
            },
            may_have_dead_letter: true,
        }])
        .unwrap();
}

fn pending(store: &SledStore, stream: &str, source_id: &str) {
    store
        .record_intents(&[Intent {
            key: format!("key-{source_id}"),
            stream: stream.into(),
            source_id: source_id.into(),
            op: Operation::Create,
            target_id: None,
            path: "/contacts".into(),
            fields: json!({"email": "x@example.com"}),
            hash: "h".into(),
            record: json!({"id": source_id}),
            created_at: "2026-05-01T10:00:01Z".into(),
            two_way: None,
        }])
        .unwrap();
}

fn letter(stream: &str, source_id: &str, in_doubt: bool) -> DeadLetter {
    DeadLetter {
        stream: stream.into(),
        source_id: source_id.into(),
        reason: "billing refused the record: 422".into(),
        in_doubt,
        exchange: Some(Exchange {
            method: "POST".into(),
            url: "http://billing.invalid/contacts".into(),
            body: json!({"email": "not-an-email"}),
            status: Some(422),
            response: Some("{\n  \"error\": \"email is invalid\"\n}".into()),
        }),
        attempts: 3,
        first_at: "2026-05-01T10:00:02.123456Z".into(),
        last_at: "2026-05-01T11:00:02Z".into(),
        record: json!({"id": source_id, "email": "not-an-email"}),
    }
}

fn dead_letter(store: &SledStore, letter: DeadLetter) {
    store
        .complete(&[Completion {
            stream: letter.stream.clone(),
            source_id: letter.source_id.clone(),
            intent_key: None,
            outcome: Outcome::DeadLettered(Box::new(letter)),
            may_have_dead_letter: true,
        }])
        .unwrap();
}

/// A finished run with fixed times, so the output is the same on every machine.
fn finished_run(store: &SledStore, status: RunStatus, counts: Vec<StreamCounts>) -> u64 {
    let mut run = store.start_run("apply").unwrap();
    run.started_at = "2026-05-01T10:00:00Z".into();
    run.ended_at = Some("2026-05-01T10:00:04.250Z".into());
    run.status = status;
    run.streams = counts;
    store.finish_run(&run).unwrap();
    run.id
}

fn counts(stream: &str, created: u64, dead_lettered: u64) -> StreamCounts {
    StreamCounts {
        stream: stream.into(),
        read: created + dead_lettered + 5,
        created,
        unchanged: 5,
        dead_lettered,
        ..StreamCounts::default()
    }
}

/// A pipeline with one stream, `contacts`, and a store holding a bit of everything.
fn seeded() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &["contacts"]);
    seed(dir.path(), |store| {
        synced(store, "contacts", "c1", "t1");
        synced(store, "contacts", "c2", "t2");
        pending(store, "contacts", "c3");
        dead_letter(store, letter("contacts", "c4", true));
        store.defer("contacts", "c5", &json!({"id": "c5"})).unwrap();
        store
            .set_watermark(
                "contacts",
                &Watermark {
                    value: "2026-05-01T09:59:00Z".into(),
                },
            )
            .unwrap();
        finished_run(
            store,
            RunStatus::DeadLettered,
            vec![counts("contacts", 2, 1)],
        );
    });
    dir
}

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(output)).expect("valid JSON")
}

#[test]
fn status_of_a_pipeline_never_synced_shows_empty_streams_and_creates_no_state() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &["contacts"]);
    let out = run(dir.path(), &["status", "p.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "pipeline `contacts-sync` — never run: no state yet (it will live in state)\n\
         \n\
         STREAM    KIND                   WATERMARK  MAPPED  PENDING  DEAD LETTERS  DEFERRED  LAST RUN\n\
         contacts  one-way crm → billing  —               0        0             0         0  —\n"
    );
    assert!(
        !dir.path().join("state").exists(),
        "a read must not create a store"
    );
}

#[test]
fn status_counts_what_the_store_holds_and_says_what_needs_attention() {
    let dir = seeded();
    let out = run(dir.path(), &["status", "p.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "pipeline `contacts-sync` — state in state\n\
         \n\
         STREAM    KIND                   WATERMARK             MAPPED  PENDING  DEAD LETTERS  DEFERRED  LAST RUN\n\
         contacts  one-way crm → billing  2026-05-01T09:59:00Z       2        1             1         1  #1 dead letters, ended 2026-05-01T10:00:04Z\n\
         \n\
         contacts: 1 write pending from an interrupted run: the next `runner apply p.yaml` resolves them\n\
         contacts: 1 dead letter: `runner dead-letters p.yaml list`\n\
         contacts: 1 record waiting for a reference to another stream: written once it is mapped\n"
    );
}

#[test]
fn status_names_a_two_way_stream_by_its_sides() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        repo().join("pipelines/two-way-customers.yaml"),
        dir.path().join("p.yaml"),
    )
    .unwrap();
    let out = run(dir.path(), &["status", "p.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\ncustomers  two-way crm ↔ billing  —"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn status_json_has_the_same_data_for_scripts() {
    let dir = seeded();
    let out = run(dir.path(), &["status", "p.yaml", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["pipeline"], "contacts-sync");
    assert_eq!(report["has_state"], true);
    let stream = &report["streams"][0];
    assert_eq!(stream["stream"], "contacts");
    assert_eq!(stream["sync"], "one_way");
    assert_eq!(stream["systems"], json!(["crm", "billing"]));
    assert_eq!(stream["watermark"], "2026-05-01T09:59:00Z");
    assert_eq!(stream["mapped"], 2);
    assert_eq!(stream["pending"], 1);
    assert_eq!(stream["dead_letters"], 1);
    assert_eq!(stream["deferred"], 1);
    assert_eq!(report["last_run"]["id"], 1);
    assert_eq!(report["last_run"]["status"], "dead_lettered");
    assert_eq!(report["hints"].as_array().unwrap().len(), 3);
}

#[test]
fn status_reports_a_run_left_running_as_crashed() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &["contacts"]);
    seed(dir.path(), |store| {
        store.start_run("apply").unwrap();
    });
    let out = run(dir.path(), &["status", "p.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("#1 crashed, started "), "{text}");
    assert!(
        text.contains(
            "last run #1 crashed: the next `runner apply p.yaml` picks up where it stopped"
        ),
        "{text}"
    );
}

#[test]
fn history_lists_runs_newest_first_with_their_counts() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &["contacts"]);
    seed(dir.path(), |store| {
        finished_run(store, RunStatus::Succeeded, vec![counts("contacts", 10, 0)]);
        let mut failed = counts("contacts", 1, 2);
        failed.error = Some("billing answered 500 five times".into());
        finished_run(store, RunStatus::Failed, vec![failed]);
    });
    let out = run(dir.path(), &["history", "p.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "#2  apply  failed  started 2026-05-01T10:00:00Z, took 4.2s\n    \
         contacts: read 8, created 1, updated 0, unchanged 5, deleted 0, dead-lettered 2\n    \
         contacts: stopped early: billing answered 500 five times\n\
         \n\
         #1  apply  succeeded  started 2026-05-01T10:00:00Z, took 4.2s\n    \
         contacts: read 15, created 10, updated 0, unchanged 5, deleted 0, dead-lettered 0\n"
    );

    let out = run(
        dir.path(),
        &["history", "p.yaml", "--limit", "1", "--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let runs = json_of(&out);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["id"], 2);
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["duration_ms"], 4250);
    assert_eq!(runs[0]["streams"][0]["dead_lettered"], 2);
}

#[test]
fn history_shows_a_run_left_running_as_crashed_once_another_run_started() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &["contacts"]);
    seed(dir.path(), |store| {
        store.start_run("apply").unwrap();
        store.start_run("apply --full").unwrap();
    });
    let out = run(dir.path(), &["history", "p.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("#2  apply --full  crashed  started "),
        "{text}"
    );
    assert!(lines[0].ends_with(", did not finish"), "{text}");
    assert!(
        lines[2].starts_with("#1  apply  crashed  started "),
        "{text}"
    );
    assert!(
        text.contains("    error: the process stopped before the run finished"),
        "{text}"
    );
}

#[test]
fn history_of_a_pipeline_never_run_says_so() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &["contacts"]);
    let out = run(dir.path(), &["history", "p.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "no runs yet\n");
}

#[test]
fn dead_letters_list_shows_the_exchange_and_the_in_doubt_marker() {
    let dir = seeded();
    let out = run(dir.path(), &["dead-letters", "p.yaml", "list"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "contacts/c4 (stream contacts)\n  \
         reason:    billing refused the record: 422\n  \
         attempts:  3 (first 2026-05-01T10:00:02Z, last 2026-05-01T11:00:02Z)\n  \
         in doubt — check the target: the write may have been applied\n  \
         request:   POST http://billing.invalid/contacts {\"email\":\"not-an-email\"}\n  \
         response:  422 { \"error\": \"email is invalid\" }\n\
         \n\
         1 dead letter. Once the cause is fixed: `runner dead-letters p.yaml retry [ID]`; \
         to drop one: `runner dead-letters p.yaml discard ID`\n"
    );

    let out = run(
        dir.path(),
        &["dead-letters", "p.yaml", "list", "--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let letters = json_of(&out);
    assert_eq!(letters[0]["id"], "contacts/c4");
    assert_eq!(letters[0]["in_doubt"], true);
    assert_eq!(letters[0]["exchange"]["status"], 422);
    assert_eq!(letters[0]["record"]["email"], "not-an-email");
}

#[test]
fn dead_letters_are_discarded_one_by_id_or_all_with_yes() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &["contacts"]);
    seed(dir.path(), |store| {
        for id in ["c1", "c2", "c3"] {
            dead_letter(store, letter("contacts", id, false));
        }
    });
    let list = |dir: &Path| stdout(&run(dir, &["dead-letters", "p.yaml", "list"]));

    let out = run(
        dir.path(),
        &["dead-letters", "p.yaml", "discard", "contacts/c2"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "discarded contacts/c2\n");
    assert!(!list(dir.path()).contains("contacts/c2"));

    let out = run(
        dir.path(),
        &["dead-letters", "p.yaml", "discard", "contacts/nope"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("there is no dead letter `contacts/nope`"),
        "{}",
        stderr(&out)
    );

    let out = run(dir.path(), &["dead-letters", "p.yaml", "discard"]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stdout(&out),
        "would discard 2 dead letters:\n  \
         contacts/c1  billing refused the record: 422\n  \
         contacts/c3  billing refused the record: 422\n"
    );
    assert!(stderr(&out).contains("needs --yes; nothing was changed"));
    assert!(list(dir.path()).starts_with("contacts/c1"));

    let out = run(dir.path(), &["dead-letters", "p.yaml", "discard", "--yes"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "discarded contacts/c1\ndiscarded contacts/c3\ndiscarded 2 dead letters\n"
    );
    assert_eq!(list(dir.path()), "no dead letters\n");
}

#[test]
fn retrying_an_unknown_dead_letter_says_so() {
    let dir = seeded();
    let out = run(
        dir.path(),
        &["dead-letters", "p.yaml", "retry", "contacts/nope"],
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("there is no dead letter `contacts/nope`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mappings_are_listed_and_looked_up_by_either_id() {
    let dir = tempfile::tempdir().unwrap();
    pipeline(dir.path(), &["contacts", "companies"]);
    seed(dir.path(), |store| {
        synced(store, "contacts", "c1", "t1");
        synced(store, "contacts", "c2", "t2");
        synced(store, "companies", "k1", "b1");
    });
    let out = run(dir.path(), &["mappings", "p.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "contacts   c1 → t1\ncontacts   c2 → t2\ncompanies  k1 → b1\n"
    );

    let out = run(dir.path(), &["mappings", "p.yaml", "--stream", "companies"]);
    assert_eq!(stdout(&out), "companies  k1 → b1\n");

    let out = run(
        dir.path(),
        &[
            "mappings",
            "p.yaml",
            "--stream",
            "contacts",
            "--source-id",
            "c2",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "contacts  c2 → t2\n");

    let out = run(
        dir.path(),
        &[
            "mappings",
            "p.yaml",
            "--stream",
            "contacts",
            "--target-id",
            "t1",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        json_of(&out),
        json!({"stream": "contacts", "source_id": "c1", "target_id": "t1"})
    );

    let out = run(
        dir.path(),
        &[
            "mappings",
            "p.yaml",
            "--stream",
            "contacts",
            "--source-id",
            "c9",
        ],
    );
    assert_eq!(code(&out), 1);
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("source id `c9` is not mapped in stream `contacts`"),
        "{}",
        stderr(&out)
    );

    // Two streams: an id alone does not say which one it belongs to.
    let out = run(dir.path(), &["mappings", "p.yaml", "--source-id", "c1"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--stream"), "{}", stderr(&out));
}

#[test]
fn mappings_json_is_one_object_per_line() {
    let dir = seeded();
    let out = run(dir.path(), &["mappings", "p.yaml", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["target_id"], "t2");
}

#[test]
fn a_lookup_in_a_single_stream_pipeline_needs_no_stream() {
    let dir = seeded();
    let out = run(dir.path(), &["mappings", "p.yaml", "--target-id", "t2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "contacts  c2 → t2\n");
}

#[test]
fn state_reset_explains_without_yes_and_empties_the_stream_with_it() {
    let dir = seeded();
    let out = run(
        dir.path(),
        &["state", "reset", "p.yaml", "--stream", "contacts"],
    );
    assert_eq!(code(&out), 2);
    assert_eq!(
        stdout(&out),
        "resetting stream `contacts` would forget:\n  \
         watermark 2026-05-01T09:59:00Z\n  \
         2 mappings and their bases\n  \
         1 pending write\n  \
         1 dead letter\n  \
         1 record waiting for a reference\n\
         Its next run would read the source in full and link target records again.\n"
    );
    assert!(stderr(&out).contains("nothing was changed"));
    let status = json_of(&run(dir.path(), &["status", "p.yaml", "--format", "json"]));
    assert_eq!(status["streams"][0]["mapped"], 2);

    let out = run(
        dir.path(),
        &["state", "reset", "p.yaml", "--stream", "contacts", "--yes"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out)
            .starts_with("reset stream `contacts`; forgot:\n  watermark 2026-05-01T09:59:00Z\n"),
        "{}",
        stdout(&out)
    );
    let status = json_of(&run(dir.path(), &["status", "p.yaml", "--format", "json"]));
    let stream = &status["streams"][0];
    assert_eq!(stream["mapped"], 0);
    assert_eq!(stream["pending"], 0);
    assert_eq!(stream["dead_letters"], 0);
    assert_eq!(stream["deferred"], 0);
    assert_eq!(stream["watermark"], Value::Null);
    // The run history is the pipeline's, not the stream's: it stays.
    assert_eq!(status["last_run"]["id"], 1);
}

#[test]
fn an_unknown_stream_is_refused_with_exit_2() {
    let dir = seeded();
    for args in [
        &["state", "reset", "p.yaml", "--stream", "contcts", "--yes"][..],
        &["mappings", "p.yaml", "--stream", "contcts"],
        &["dead-letters", "p.yaml", "list", "--stream", "contcts"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(code(&out), 2, "runner {args:?}");
        assert!(
            stderr(&out).contains("has no stream `contcts` (streams: contacts)"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_store_held_by_another_process_is_a_clear_error_with_exit_1() {
    let dir = seeded();
    let _held = open_store(dir.path());
    for args in [
        &["status", "p.yaml"][..],
        &["history", "p.yaml"],
        &["dead-letters", "p.yaml", "list"],
        &["mappings", "p.yaml"],
        &["state", "reset", "p.yaml", "--stream", "contacts", "--yes"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(code(&out), 1, "runner {args:?}");
        assert!(stdout(&out).is_empty());
        assert!(
            stderr(&out).contains("is in use by another runner"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn an_invalid_pipeline_gives_exit_2_before_any_state_is_read() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("p.yaml"), "version: 1\nname: p\n").unwrap();
    for args in [
        &["status", "p.yaml"][..],
        &["history", "p.yaml"],
        &["dead-letters", "p.yaml", "list"],
        &["dead-letters", "p.yaml", "discard", "--yes"],
        &["mappings", "p.yaml"],
        &["state", "reset", "p.yaml", "--stream", "contacts", "--yes"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(code(&out), 2, "runner {args:?}");
        assert!(stderr(&out).contains("p.yaml: invalid"), "{}", stderr(&out));
    }
}
