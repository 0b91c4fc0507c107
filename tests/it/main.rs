//! Every integration test in one binary: one link step instead of one per file.

mod common;

mod airflow_scheduler;
mod argo_retry;
mod big_flows;
mod check_workspace;
mod chunked;
mod cli;
mod completions;
mod connectors;
mod continue_as_new;
mod data_path;
mod docs;
// Stages on DuckDB: a build with the `duckdb` feature (scripts/test.sh builds one).
#[cfg(feature = "duckdb")]
mod duckdb;
mod examples;
mod export;
mod export_calls;
mod export_jumps;
mod fan_out;
mod format;
mod fuzz;
mod grammar;
mod hardening;
mod layers;
mod loops;
mod lsp;
mod one_run;
mod parse_snapshots;
mod patterns;
mod plan;
mod postgres;
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
mod testing;
mod ui;
