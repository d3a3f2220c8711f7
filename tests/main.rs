//! Integration tests: one binary with a module per area (as ripgrep and just do), each
//! driving the real `runner` executable or the library against real files.

#[macro_use]
mod support;
mod apply;
mod cli;
mod demo;
mod examples;
mod http;
mod invalid_pipelines;
mod sandbox;
mod state_cli;
mod sync_features;
mod two_way;
