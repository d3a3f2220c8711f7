//! Every example a person may copy must be valid: the pipelines in `pipelines/` and
//! every YAML block of the README.

use std::fs;

use runner::config::{check_file, check_source, Checked};

use crate::support::repo;

fn assert_clean(checked: &Checked) {
    let shown: Vec<String> = checked.diagnostics.iter().map(|d| d.render()).collect();
    assert!(
        checked.diagnostics.is_empty(),
        "{} is not clean:\n{}",
        checked.file,
        shown.join("\n")
    );
    assert!(
        checked.pipeline.is_some(),
        "{} gave no pipeline",
        checked.file
    );
}

#[test]
fn every_example_pipeline_is_valid_and_points_editors_at_the_schema() {
    let mut count = 0;
    for entry in fs::read_dir(repo().join("pipelines")).expect("pipelines/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        count += 1;
        assert_clean(&check_file(&path));
        let text = fs::read_to_string(&path).expect("readable pipeline");
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/pipeline.schema.json"),
            "{} does not start with the schema comment",
            path.display()
        );
    }
    assert!(count >= 4, "only {count} example pipelines");
}

/// The YAML blocks of a Markdown text.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start().starts_with("```yaml") => current = Some(String::new()),
            Some(block) if line.trim_start().starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_yaml_block_in_the_readme_is_a_valid_pipeline() {
    let readme = fs::read_to_string(repo().join("README.md")).expect("README.md exists");
    let blocks = yaml_blocks(&readme);
    assert!(!blocks.is_empty(), "the README shows no pipeline");
    for (i, block) in blocks.iter().enumerate() {
        assert_clean(&check_source(
            &format!("README.md yaml block {}", i + 1),
            block,
        ));
    }
}
