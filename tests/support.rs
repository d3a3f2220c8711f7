//! Helpers shared by the integration tests.

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
