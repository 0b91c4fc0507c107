//! wvflow: a compiler and local runtime for a wvlet-style flow language.
//!
//! The pipeline, one module per step: [`workspace`] (the files of a folder) -> [`syntax`]
//! (tokens, parser, syntax tree with spans) -> [`check`] (every rule, and the binder that
//! resolves each name of each expression) -> [`plan`] (lowering to the execution plan) ->
//! [`runtime`] (the executor on SQLite, the run store, the scheduler). A [`session`] loads,
//! checks and plans a workspace for every caller, and tells a reporter what it finds and how
//! the work goes. [`diagnostics`] renders
//! the problems found; [`value`] says how typed values look where they leave wvflow;
//! [`retry_rule`] is the one delay rule of retries; [`connectors`] reads `wvflow.toml`;
//! [`format`] and [`lsp`] serve editors on the same front end; [`ui`] is the local dashboard. The command line in [`cli`] is
//! a thin layer over this library.

#![warn(clippy::print_stdout, clippy::print_stderr)]

/// `eprintln!` that never panics: a write that fails is kept ([`terminal::write_failure`]),
/// and the command says so at its end where it still can.
macro_rules! errln {
    ($($arg:tt)*) => {{
        let _ = $crate::terminal::write_stderr(format_args!("{}\n", format_args!($($arg)*)));
    }};
}

/// `eprint!` that never panics ([`errln!`]).
macro_rules! err {
    ($($arg:tt)*) => {{
        let _ = $crate::terminal::write_stderr(format_args!($($arg)*));
    }};
}

// wvflow supervises processes with Linux calls (pidfds, clone, prctl), so it is Linux only
// (README.md, Install). Elsewhere a build prints this one error, not one per Linux call:
// the modules below are left out.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "wvflow runs on Linux only: it supervises activities with pidfds, clone and prctl. \
     Build it on Linux, or in a Linux container or VM (see README.md, Install)."
);

/// The items, on Linux only.
macro_rules! on_linux {
    ($($item:item)*) => { $( #[cfg(target_os = "linux")] $item )* };
}

on_linux! {
    pub mod arguments;
    pub mod check;
    pub mod cli;
    pub mod connectors;
    pub mod cron;
    pub mod diagnostics;
    pub mod export;
    pub mod format;
    pub mod human;
    pub mod lsp;
    pub mod file_format;
    mod parallel;
    pub mod policy;
    pub mod plan;
    pub mod retry_rule;
    pub mod runtime;
    pub mod session;
    pub mod source;
    pub mod span;
    pub mod syntax;
    pub mod terminal;
    pub mod testing;
    pub mod ui;
    pub mod value;
    mod vocabulary;
    pub mod workspace;
}
