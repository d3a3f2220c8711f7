//! The top of a pipeline file.

use std::path::PathBuf;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::stream::StreamConfig;
use super::system::SystemConfig;
use super::values::Template;

/// A runner pipeline: the systems it connects and the streams it keeps in sync.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "runner pipeline")]
pub struct PipelineConfig {
    /// Version of the pipeline language; 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Name of the pipeline. It names the default state store and appears in logs and
    /// history: lowercase letters, digits, `-` and `_`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"), length(max = 64))]
    pub name: String,
    /// What the pipeline is for, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Where the runner keeps state (watermarks, id mappings, outbox, dead letters,
    /// run history, tokens). Default: a sled store at `.runner/<name>`.
    #[serde(default)]
    pub state: Option<StateConfig>,
    /// The systems streams read from and write to, by name.
    pub systems: IndexMap<String, SystemConfig>,
    /// What is kept in sync, by name. A stream that refers to another (`ref()`) runs
    /// after it.
    pub streams: IndexMap<String, StreamConfig>,
}

/// Where state is kept: an embedded sled store (`path`) or a shared PostgreSQL
/// database (`url`) for several runners.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of the embedded store, relative to the pipeline file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// PostgreSQL URL of a shared store, e.g. "{{ secret.STATE_DATABASE_URL }}".
    #[serde(default)]
    pub url: Option<Template>,
}
