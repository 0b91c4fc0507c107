//! Every integration test in one binary: one link step instead of one per file.

mod common;

mod airflow_scheduler;
mod big_flows;
mod check_workspace;
mod chunked;
mod cli;
mod completions;
mod data_path;
mod docs;
mod examples;
mod export;
mod fan_out;
mod format;
mod fuzz;
mod grammar;
mod hardening;
mod layers;
mod lsp;
mod one_run;
mod parse_snapshots;
mod patterns;
mod plan;
mod routes;
mod rules;
mod run_cli;
mod runs_cli;
mod runtime;
mod schedule_cli;
mod semantics;
mod session;
mod signals;
mod syntax_errors;
mod task_copies;
mod terminal;
mod ui;
