//! `wvflow explain CODE`: the reference entry for a diagnostic code.

use super::exit;
use crate::diagnostics::{docs, suggest};
use clap::Args;

#[derive(Args)]
pub struct ExplainArgs {
    /// A code such as E0201 or W0202.
    code: String,
}

pub fn run(args: ExplainArgs) -> u8 {
    match docs::entry(&args.code) {
        Some(entry) => {
            outln!("{}: {}\n\n{}", entry.code, entry.title, entry.body);
            exit::OK
        }
        None => {
            let codes: Vec<&str> = docs::entries().map(|e| e.code).collect();
            let hint = suggest::closest(&args.code.to_ascii_uppercase(), codes.iter().copied())
                .map(|c| format!(" (did you mean {c}?)"))
                .unwrap_or_default();
            eprintln!(
                "error: no diagnostic code `{}`{hint}; codes look like E0201 or W0202",
                args.code
            );
            exit::USAGE
        }
    }
}
