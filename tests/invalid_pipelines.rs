//! The table of invalid pipelines: every file in `tests/invalid/` ends with
//! `# expect: LINE:COL: SEVERITY: MESSAGE` lines, the exact diagnostics `validate`
//! must produce for it, no more and no fewer.

use std::fs;

use runner::config::check_file;

use crate::support::repo;

#[test]
fn every_invalid_pipeline_gets_exactly_its_diagnostics() {
    let dir = repo().join("tests/invalid");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("tests/invalid exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "the table holds {} cases", files.len());

    let mut failures = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).expect("readable case");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} pins no diagnostic",
            file.display()
        );
        let checked = check_file(file);
        let actual: Vec<String> = checked
            .diagnostics
            .iter()
            .map(|d| format!("{}:{}: {}: {}", d.line, d.column, d.severity, d.message))
            .collect();
        if actual != expected {
            failures.push(format!(
                "{}\n  expected:\n    {}\n  actual:\n    {}",
                file.display(),
                expected.join("\n    "),
                actual.join("\n    ")
            ));
        }
        assert!(
            checked.pipeline.is_none(),
            "{} has errors yet produced a pipeline",
            file.display()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
