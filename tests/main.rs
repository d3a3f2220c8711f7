//! Integration tests: one binary with a module per area (as ripgrep and just do), each
//! driving the real `runner` executable or the library against real files.

mod apply;
mod cli;
mod demo;
mod examples;
mod http;
mod invalid_pipelines;
mod sandbox;
mod state_cli;
mod support;
mod sync_features;
mod two_way;
