//! The state commands: `status`, `history`, `dead-letters`, `mappings`, `state reset`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct DeadLettersArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(subcommand)]
    pub action: DeadLetterAction,
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterAction {
    /// List dead letters with their reason.
    List,
    /// Send dead letters again (all, or the one with this id).
    Retry {
        /// Id of the dead letter.
        id: Option<String>,
    },
    /// Drop dead letters (all, or the one with this id).
    Discard {
        /// Id of the dead letter.
        id: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct MappingsArgs {
    /// The pipeline file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// Show the mapping of this source id.
    #[arg(long, conflicts_with = "target_id")]
    pub source_id: Option<String>,
    /// Show the mapping of this target id.
    #[arg(long)]
    pub target_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub action: StateAction,
}

#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Forget a stream's state (watermark, mappings, bases, outbox, dead letters), so
    /// its next run reads everything and links records again.
    Reset {
        /// The pipeline file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The stream to reset.
        #[arg(long)]
        stream: String,
        /// Confirm: without it nothing is changed.
        #[arg(long)]
        yes: bool,
    },
}

pub fn status(_args: &StatusArgs) -> Exit {
    super::not_built("status", "issue #4 (state store)")
}

pub fn history(_args: &HistoryArgs) -> Exit {
    super::not_built("history", "issue #4 (state store)")
}

pub fn dead_letters(_args: &DeadLettersArgs) -> Exit {
    super::not_built("dead-letters", "issue #4 (state store)")
}

pub fn mappings(_args: &MappingsArgs) -> Exit {
    super::not_built("mappings", "issue #4 (state store)")
}

pub fn state(_args: &StateArgs) -> Exit {
    super::not_built("state", "issue #4 (state store)")
}
