//! `runner demo`: a one-way sync against the sandbox APIs with the unhappy paths on.

use std::path::PathBuf;

use clap::Args;

use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo pipeline and its state (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// A smaller, quicker demo (under a minute).
    #[arg(long)]
    pub fast: bool,
}

pub fn run(_args: &DemoArgs) -> Exit {
    super::not_built("demo", "issue #4 (first demo)")
}
