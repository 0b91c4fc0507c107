//! wvflow: a compiler and local runtime for a wvlet-style flow language.
//!
//! The pipeline, one module per step: [`syntax`] (tokens, parser, AST) ->
//! [`diagnostics`] (the problems found, rendered) -> [`workspace`] (files of a folder).
//! The command line in [`cli`] is a thin layer over this library.

pub mod check;
pub mod cli;
pub mod diagnostics;
pub mod format;
pub mod lsp;
mod parallel;
pub mod plan;
pub mod runtime;
pub mod source;
pub mod syntax;
pub mod value;
pub mod workspace;
