//! `runner demo --fast` as a person runs it: a real process with nothing set up, whose
//! report must show every unhappy path taken and a target without duplicates — and
//! whose state the state commands can read afterwards.

use std::time::{Duration, Instant};

use crate::support::{code, run, stderr, stdout};

/// The number on the report line that starts with `label` (after the indentation).
fn figure(report: &str, label: &str) -> u64 {
    let line = report
        .lines()
        .find(|line| line.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in the report:\n{report}"));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number on `{line}`"))
}

#[test]
fn the_fast_demo_survives_every_unhappy_path_without_duplicates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let demo_dir = dir.path().join("demo");
    let started = Instant::now();
    let output = run(
        dir.path(),
        &[
            "demo",
            "--fast",
            "--dir",
            demo_dir.to_str().expect("utf-8 path"),
        ],
    );
    let took = started.elapsed();
    let report = stdout(&output);
    let shown = format!("stdout:\n{report}\nstderr:\n{}", stderr(&output));
    assert_eq!(code(&output), 0, "{shown}");
    assert!(
        took < Duration::from_secs(90),
        "the fast demo took {took:?}"
    );

    assert_eq!(figure(&report, "duplicates"), 0, "{shown}");
    assert_eq!(figure(&report, "missing contacts"), 0, "{shown}");
    let contacts = figure(&report, "contacts in the CRM");
    let refused = figure(&report, "dead letters");
    assert_eq!(refused, 2, "the two contacts without an email: {shown}");
    assert_eq!(
        figure(&report, "records synced"),
        contacts - refused,
        "{shown}"
    );
    assert_eq!(figure(&report, "customers in billing"), contacts - refused);
    assert_eq!(figure(&report, "no-op writes skipped"), contacts - refused);
    assert!(figure(&report, "linked, not duplicated") > 0, "{shown}");
    assert!(figure(&report, "crash resumed") > 0, "{shown}");
    assert!(report.contains("killed (SIGKILL) after"), "{shown}");
    assert!(figure(&report, "tokens refreshed") > 0, "{shown}");
    assert!(figure(&report, "429s honoured") > 0, "{shown}");
    assert!(report.contains("\nOK: "), "{shown}");

    // Part two: a two-way stream edited on both sides.
    let pairs = figure(&report, "pairs in sync");
    assert_eq!(figure(&report, "CRM contacts"), pairs, "{shown}");
    assert_eq!(figure(&report, "billing customers"), pairs, "{shown}");
    assert_eq!(figure(&report, "owner's changes copied"), 5, "{shown}");
    assert_eq!(figure(&report, "changes rejected"), 3, "{shown}");
    assert_eq!(figure(&report, "conflicts settled"), 4, "{shown}");
    assert_eq!(figure(&report, "writes after the sync"), 0, "{shown}");
    assert!(
        report.contains("[conflict: last_write_wins (b newer)]")
            && report.contains("[reverted: owner a]"),
        "the plan shows each rule: {shown}"
    );

    let pipeline = demo_dir.join("pipeline.yaml");
    let pipeline = pipeline.to_str().expect("utf-8 path");
    assert!(
        report.contains(&format!("runner status {pipeline}")),
        "{shown}"
    );
    let status = run(dir.path(), &["status", pipeline]);
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    assert!(stdout(&status).contains("contacts"), "{}", stdout(&status));
    let history = run(dir.path(), &["history", pipeline]);
    assert_eq!(code(&history), 0, "{}", stderr(&history));
    let validate = run(dir.path(), &["validate", pipeline]);
    assert_eq!(code(&validate), 0, "{}", stderr(&validate));
    let two_way = demo_dir.join("two-way.yaml");
    let two_way = two_way.to_str().expect("utf-8 path");
    let conflicts = run(dir.path(), &["conflicts", two_way, "--format", "json"]);
    assert_eq!(code(&conflicts), 0, "{}", stderr(&conflicts));
    let logged: serde_json::Value =
        serde_json::from_str(&stdout(&conflicts)).expect("conflicts as JSON");
    assert_eq!(logged.as_array().map(Vec::len), Some(7), "{logged}");
}

#[test]
fn the_demo_refuses_a_folder_that_is_not_empty() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("pipeline.yaml"), "old").expect("written");
    let output = run(
        dir.path(),
        &[
            "demo",
            "--fast",
            "--dir",
            dir.path().to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(code(&output), 1);
    assert!(stderr(&output).contains("not empty"), "{}", stderr(&output));
}
