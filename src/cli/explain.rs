//! `wvflow explain CODE|KEY`: the reference entry for a diagnostic code, or what a
//! configuration key takes, its default and its meaning.

use super::exit;
use crate::check::{keys, settings};
use crate::diagnostics::{docs, suggest};
use clap::Args;

#[derive(Args)]
pub struct ExplainArgs {
    /// A code such as E0201 or W0202, or a configuration key such as retries.
    code: String,
}

pub fn run(args: ExplainArgs) -> u8 {
    if let Some(entry) = docs::entry(&args.code) {
        outln!("{}: {}\n\n{}", entry.code, entry.title, entry.body);
        return exit::OK;
    }
    if let Some(text) = settings::explain_key(&args.code) {
        outln!("{text}");
        return exit::OK;
    }
    let codes = docs::entries().map(|e| e.code);
    let hint = suggest::closest(&args.code.to_ascii_uppercase(), codes)
        .or_else(|| suggest::closest(&args.code, keys::all_names()))
        .map(|c| format!(" (did you mean {c}?)"))
        .unwrap_or_default();
    errln!(
        "error: no diagnostic code or configuration key `{}`{hint}; codes look like E0201 or W0202, keys like retries",
        args.code
    );
    exit::USAGE
}
