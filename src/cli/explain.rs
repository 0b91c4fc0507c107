//! `wvflow explain CODE|KEY`: the reference entry for a diagnostic code, or what a
//! configuration key takes, its default and its meaning; `wvflow explain wvflow.toml` and its
//! connector keys (`connectors.url`).

use super::exit;
use crate::check::{keys, settings};
use crate::diagnostics::{docs, suggest};
use clap::Args;

#[derive(Args)]
pub struct ExplainArgs {
    /// A code such as E0201 or W0202, a configuration key such as retries, or wvflow.toml
    /// and its keys (connectors.url).
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
    if let Some(text) = crate::connectors::explain(&args.code) {
        outln!("{text}");
        return exit::OK;
    }
    let codes = docs::entries().map(|e| e.code);
    let hint = suggest::closest(&args.code.to_ascii_uppercase(), codes)
        .or_else(|| suggest::closest(&args.code, keys::all_names()))
        .or_else(|| suggest::closest(&args.code, connector_words()))
        .map(|c| format!(" (did you mean {c}?)"))
        .unwrap_or_default();
    errln!(
        "error: no diagnostic code or configuration key `{}`{hint}; codes look like E0201 or W0202, keys like retries (or wvflow.toml, connectors.url)",
        args.code
    );
    exit::USAGE
}

/// `wvflow.toml` and its keys, as `explain` takes them.
fn connector_words() -> impl Iterator<Item = &'static str> {
    const KEYS: [&str; 3] = ["connectors.kind", "connectors.url", "connectors.path"];
    std::iter::once(crate::connectors::FILE_NAME).chain(KEYS)
}
