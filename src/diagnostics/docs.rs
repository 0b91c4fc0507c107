//! The error reference, `docs/errors.md`, compiled into the binary: `wvflow explain CODE`
//! prints an entry, and tests hold the checker and the reference to each other.

const REFERENCE: &str = include_str!("../../docs/errors.md");

/// One documented code: its title and the whole entry (without its `## ` heading line).
pub struct Entry {
    pub code: &'static str,
    pub title: &'static str,
    pub body: &'static str,
}

/// Every entry of the reference, in order.
pub fn entries() -> impl Iterator<Item = Entry> {
    REFERENCE.split("\n## ").skip(1).filter_map(|section| {
        let (heading, body) = section.split_once('\n')?;
        let (code, title) = heading.split_once(':')?;
        Some(Entry {
            code: code.trim(),
            title: title.trim(),
            body: body.trim_matches('\n'),
        })
    })
}

pub fn entry(code: &str) -> Option<Entry> {
    entries().find(|e| e.code.eq_ignore_ascii_case(code.trim()))
}
