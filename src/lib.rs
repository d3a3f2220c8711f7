//! `runner` keeps two systems in sync without breaking either.
//!
//! A pipeline file (YAML) declares the systems, the streams between them, the source of
//! truth and field ownership; the interpreter runs it with the unhappy paths handled.
//!
//! Modules, in the order data flows through them:
//! - [`config`]: the pipeline language — model, JSON schema, validation with
//!   `file:line:col` diagnostics.
//! - [`template`]: the minijinja environment and static analysis of templates.
//! - [`vars`]: the values of `env` and `secret` at run time, and rendering with them.
//! - [`jsonpath`]: compiled JSONPath expressions (fast path for plain paths).
//! - [`http`]: one client per system — auth, paging, retries, limits, redaction.
//! - [`store`]: the state store — watermarks, mappings, bases, outbox, dead letters,
//!   runs, encrypted tokens.
//! - [`sync`]: the interpreter — read, map, decide, outbox, write, commit; `apply` and
//!   `plan`.
//! - [`demo`]: `runner demo` — a scenario against the sandbox, a crash, and the check.
//! - [`sandbox`]: fake SaaS APIs on loopback for the demo, tests and benchmarks.
//! - [`cli`]: the `runner` command line; the binary only calls [`cli::main`].
//! - [`exit`]: exit codes, part of the interface.

pub mod cli;
pub mod config;
pub mod demo;
pub mod exit;
pub mod http;
pub mod jsonpath;
pub mod sandbox;
pub mod store;
pub mod sync;
pub mod template;
pub mod vars;
pub mod words;
