//! The command line driven as a real process: exit codes, output, formats.

use std::fs;

use crate::support::{code, repo, run, stderr, stdout};

#[test]
fn a_valid_pipeline_exits_0_with_a_one_line_summary() {
    let out = run(&repo(), &["validate", "pipelines/crm-to-billing.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "pipelines/crm-to-billing.yaml: valid — pipeline `crm-contacts-to-billing`, 2 systems, 1 stream\n"
    );
}

#[test]
fn an_invalid_pipeline_exits_2_with_positioned_errors_and_carets() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("p.yaml"),
        "version: 1\nname: p\nsystems:\n  crm: { type: http, base_ur: x }\nstreams: {}\n",
    )
    .unwrap();
    let out = run(dir.path(), &["validate", "p.yaml"]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stdout(&out),
        "p.yaml:4:22: error: unknown key `base_ur` in `systems.crm`\n \
         4 |   crm: { type: http, base_ur: x }\n   \
         |                      ^^^^^^^ did you mean `base_url`?\n\
         \n\
         p.yaml: invalid — 1 error\n"
    );
}

#[test]
fn several_files_are_all_checked_and_any_error_means_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bad.yaml"), "version: 1\nname: BAD\n").unwrap();
    let good = repo().join("pipelines/two-way-customers.yaml");
    let out = run(
        dir.path(),
        &["validate", good.to_str().unwrap(), "bad.yaml"],
    );
    assert_eq!(code(&out), 2);
    let text = stdout(&out);
    assert!(text.contains("two-way-customers.yaml: valid"), "{text}");
    assert!(
        text.contains("bad.yaml:2:7: error: `BAD` is not a valid pipeline name"),
        "{text}"
    );
    assert!(
        text.contains("bad.yaml:1:1: error: missing required key `systems` at the top level"),
        "{text}"
    );
    assert!(text.contains("bad.yaml: invalid — 3 errors"), "{text}");
}

#[test]
fn json_format_reports_the_same_diagnostics_for_scripts() {
    let out = run(
        &repo(),
        &[
            "validate",
            "--format",
            "json",
            "tests/invalid/13-undefined-system.yaml",
            "pipelines/contacts-to-jsonl.yaml",
        ],
    );
    assert_eq!(code(&out), 2);
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    let files = report.as_array().expect("one entry per file");
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["valid"], false);
    assert_eq!(files[0]["errors"], 1);
    let diagnostic = &files[0]["diagnostics"][0];
    assert_eq!(diagnostic["line"], 15);
    assert_eq!(diagnostic["column"], 15);
    assert_eq!(diagnostic["severity"], "error");
    assert_eq!(diagnostic["message"], "unknown system `biling`");
    assert_eq!(diagnostic["hint"], "did you mean `billing`?");
    assert_eq!(files[1]["valid"], true);
    assert_eq!(files[1]["diagnostics"].as_array().unwrap().len(), 0);
}

#[test]
fn warnings_are_shown_but_do_not_fail_validation() {
    let dir = tempfile::tempdir().unwrap();
    // A create that cannot be made safe: no idempotency header, no lookup.
    fs::write(
        dir.path().join("p.yaml"),
        r#"version: 1
name: p
systems:
  crm: { type: http, base_url: "http://crm" }
  billing: { type: http, base_url: "http://billing" }
streams:
  contacts:
    source_of_truth: crm
    source: { system: crm, read: { path: /c, records: "$[*]" }, id: "$.id" }
    target:
      system: billing
      create: { method: POST, path: /customers, id: "$.id" }
      update: { method: PATCH, path: "/customers/{{ target_id }}" }
    fields: { email: { from: "$.email" } }
"#,
    )
    .unwrap();
    let out = run(dir.path(), &["validate", "p.yaml"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("p.yaml:12:7: warning: an in-doubt create on this system cannot be resolved"),
        "{text}"
    );
    assert!(
        text.contains("p.yaml: valid — pipeline `p`, 2 systems, 1 stream, 1 warning"),
        "{text}"
    );
}

#[test]
fn a_missing_file_is_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["validate", "nope.yaml"]);
    assert_eq!(code(&out), 2);
    assert!(
        stdout(&out).starts_with("nope.yaml:1:1: error: cannot read the pipeline file:"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_committed_schema_is_what_runner_schema_prints() {
    let out = run(&repo(), &["schema"]);
    assert_eq!(code(&out), 0);
    let committed = fs::read_to_string(repo().join("schema/pipeline.schema.json")).unwrap();
    assert!(
        stdout(&out) == committed,
        "schema/pipeline.schema.json is stale: run `cargo run -- schema > schema/pipeline.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

const COMMANDS: &[&str] = &[
    "validate",
    "schema",
    "plan",
    "apply",
    "serve",
    "reconcile",
    "status",
    "history",
    "dead-letters",
    "mappings",
    "conflicts",
    "secrets",
    "demo",
    "sandbox",
];

#[test]
fn every_command_is_listed_and_has_help() {
    let out = run(&repo(), &["--help"]);
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    for command in COMMANDS {
        assert!(
            help.contains(&format!("  {command} ")),
            "`{command}` missing from --help:\n{help}"
        );
        let out = run(&repo(), &[command, "--help"]);
        assert_eq!(code(&out), 0, "runner {command} --help failed");
        assert!(stdout(&out).contains("Usage: runner"), "{}", stdout(&out));
    }
}

#[test]
fn commands_not_built_yet_say_so_and_exit_1() {
    let file = "pipelines/crm-to-billing.yaml";
    let cases: &[&[&str]] = &[
        &["serve", file],
        &["reconcile", file],
        &["secrets", file, "set", "X"],
    ];
    for args in cases {
        let out = run(&repo(), args);
        assert_eq!(code(&out), 1, "runner {args:?}");
        assert!(stderr(&out).contains("not built yet"), "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(code(&run(&repo(), &["validate"])), 2);
    assert_eq!(code(&run(&repo(), &["frobnicate"])), 2);
    assert_eq!(
        code(&run(&repo(), &["validate", "--format", "xml", "x.yaml"])),
        2
    );
}
