//! The demo pipeline: the README's tour pipeline, pointed at the sandbox paths and
//! with limits that make the unhappy paths show.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{check_file, PipelineConfig, Severity};

/// File name of the pipeline inside the demo folder.
pub const FILE_NAME: &str = "pipeline.yaml";
/// The stream the demo syncs (the key under `streams`).
pub const STREAM: &str = "contacts";

/// The sandbox's CRM and billing as the demo's pipelines declare them: a macro so that
/// each pipeline stays one constant (`concat!`) and a file that stands on its own.
macro_rules! systems {
    () => {
        r#"systems:
  crm:
    type: http
    base_url: "{{ env.CRM_URL }}"
    auth:                              # access tokens live 2 s in the demo
      type: oauth2
      grant: refresh_token
      token_url: "{{ env.CRM_URL }}/oauth/token"
      client_id: "{{ secret.CRM_CLIENT_ID }}"
      client_secret: "{{ secret.CRM_CLIENT_SECRET }}"
      refresh_token: "{{ secret.CRM_REFRESH_TOKEN }}"
  billing:
    type: http
    base_url: "{{ env.BILLING_URL }}"
    auth: { type: api_key, name: X-Api-Key, value: "{{ secret.BILLING_API_KEY }}" }
    # Billing allows 300 requests/s: asking for 330 meets 429s, and runner slows down.
    limits: { requests_per_second: 330, max_in_flight: 8 }
    retry: { max_attempts: 8, initial_backoff: 20ms, max_backoff: 2s }
    timeouts: { request: 10s }

"#
    };
}
pub(super) use systems;

/// One-way CRM contacts → billing customers. Its state lives in `state/` beside it, so
/// `runner status|history|dead-letters <dir>/pipeline.yaml` work after the demo.
pub const PIPELINE: &str = concat!(
    r#"# Written by `runner demo`: CRM contacts mirrored into billing customers.
#
# The sandbox APIs it ran against are gone when the demo ends; the state below stays,
# so `runner status`, `history`, `dead-letters` and `mappings` work on this file.
version: 1
name: demo-contacts-to-billing
description: Every CRM contact has exactly one billing customer.
state: { path: state }

"#,
    systems!(),
    r#"streams:
  contacts:
    source_of_truth: crm               # billing mirrors the CRM, never the other way
    source:
      system: crm
      read:
        path: /contacts
        params: { updated_since: "{{ watermark }}", limit: 250 }
        records: "$.data[*]"
        paginate: { style: cursor, cursor: "$.next_cursor", param: cursor }
      id: "$.id"
      updated_at: "$.updated_at"
    target:
      system: billing
      id: "$.id"
      match_on: [email]                # link customers that already exist, once
      lookup:
        path: /customers
        params: { email: "{{ match.email }}" }
        records: "$.items[*]"
      create: { method: POST, path: /customers, id: "$.id" }
      update: { method: PATCH, path: "/customers/{{ target_id }}" }
      idempotency_header: Idempotency-Key   # a create cut off by the crash is resent safely
    fields:                            # billing field <- CRM value
      email: { from: "$.email" }
      name: { template: "{{ record.first_name }} {{ record.last_name }}" }
      crm_id: { from: "$.id" }
"#
);

/// The pipeline file as written, and as `runner` reads it.
#[derive(Debug)]
pub struct Written {
    pub file: PathBuf,
    pub pipeline: PipelineConfig,
}

/// Writes the pipeline into `dir` and checks it as `runner validate` does. Returns
/// it, or every diagnostic if it does not validate (a bug in the demo).
pub fn write(dir: &Path) -> anyhow::Result<Written> {
    write_file(dir, FILE_NAME, PIPELINE)
}

/// Writes `text` as `dir/name` and checks it as `runner validate` does.
pub fn write_file(dir: &Path, name: &str, text: &str) -> anyhow::Result<Written> {
    let file = dir.join(name);
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    let checked = check_file(&file);
    let problems: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.render())
        .collect();
    match checked.pipeline {
        Some(pipeline) if problems.is_empty() => Ok(Written { file, pipeline }),
        _ => anyhow::bail!(
            "the demo pipeline does not validate:\n{}",
            problems.join("\n")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_pipeline_validates_without_warnings() {
        let checked = crate::config::check_source("demo.yaml", PIPELINE);
        let shown: Vec<String> = checked.diagnostics.iter().map(|d| d.render()).collect();
        assert!(shown.is_empty(), "{}", shown.join("\n"));
        assert!(checked.pipeline.is_some());
    }
}
