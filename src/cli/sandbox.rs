//! `runner sandbox`: the sandbox APIs as a long-running server for people.

use clap::Args;

use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Port to listen on (127.0.0.1); 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

pub fn run(_args: &SandboxArgs) -> Exit {
    super::not_built("sandbox", "issue #3")
}
