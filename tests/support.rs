//! Helpers shared by the integration tests.

/// The sandbox CRM (OAuth2) and billing (API key) as a pipeline's `systems:`, with
/// quick retries: a macro so that pipelines can be `concat!`-ed constants.
macro_rules! sandbox_systems {
    () => {
        r#"systems:
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
    limits: { max_in_flight: 8 }
    retry: { max_attempts: 10, initial_backoff: 5ms, max_backoff: 50ms }
    timeouts: { request: 2s }
  billing:
    type: http
    base_url: "{{ env.BILLING_URL }}"
    auth: { type: api_key, name: X-Api-Key, value: "{{ secret.BILLING_API_KEY }}" }
    limits: { max_in_flight: 8 }
    retry: { max_attempts: 10, initial_backoff: 5ms, max_backoff: 50ms }
    timeouts: { request: 2s }
"#
    };
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where Cargo.toml is).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `runner` command with a cleared environment, run from `dir`, so a test sees
/// only what it sets itself.
pub fn runner(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runner"));
    command.env_clear().current_dir(dir);
    command
}

/// Runs `runner args...` in `dir`.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    runner(dir)
        .args(args)
        .output()
        .expect("the runner binary starts")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn code(output: &Output) -> i32 {
    output.status.code().expect("runner exited, not killed")
}
