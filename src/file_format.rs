//! A data file's format, by its name: what the checker reads a CSV header for and the
//! runtime loads by. Below both.

use std::path::Path;

/// The formats a data file may have, by its extension.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    /// A header row, then one row per record; fields are integers, reals or text.
    Csv,
    /// An array of objects (or one object).
    Json,
    /// One object per line; blank lines are skipped.
    Ndjson,
}

impl Format {
    /// By the file's extension, in any case; anything else is CSV.
    pub fn of(path: &Path) -> Format {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        match extension.as_str() {
            "json" => Format::Json,
            "ndjson" | "jsonl" => Format::Ndjson,
            _ => Format::Csv,
        }
    }
}
