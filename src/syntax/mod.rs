//! The front end: tokens, parser, syntax tree and spans.
//!
//! [`parse`] is the entry point: source text in, a syntax tree and syntax diagnostics out.
//! It never panics and never recurses without bound, whatever the input.

pub mod ast;
mod chunks;
mod depth;
pub mod lexer;
pub mod literal;
mod parser;
pub mod sexpr;
pub mod token;

// Spans live below the front end and the diagnostics (`crate::span`); re-exported here for
// the tree's users.
pub use crate::span::{Span, Spanned};

use crate::diagnostics::{self, Code, Diagnostic};
use crate::source::FileId;
use std::collections::HashSet;
use token::Token;

/// Spans are `u32` offsets, so a file may hold at most this many bytes.
pub const MAX_SOURCE_LEN: usize = u32::MAX as usize;

/// How deep brackets and operator chains may nest before the parser refuses the item.
pub const MAX_NESTING: usize = 1000;

/// What parsing one file produced: the tree of everything that parsed, and every syntax error.
#[derive(Debug)]
pub struct Parsed {
    pub ast: ast::File,
    pub diagnostics: Vec<Diagnostic>,
}

/// Whether `tokens[index]` begins a top-level item (`flow`, `activity` or `run`; the `flow` of
/// `run flow` does not).
fn starts_item(tokens: &[(Token, Span)], index: usize) -> bool {
    matches!(tokens[index].0, Token::Flow | Token::Activity | Token::Run)
        && (index == 0 || tokens[index - 1].0 != Token::Run)
}

/// Whether `src` has a syntax error: exactly when [`parse`] reports one (every syntax
/// diagnostic is an error), but only a chunk's tree at a time is kept, not the file's.
pub fn has_errors(src: &str, file: FileId) -> bool {
    src.len() > MAX_SOURCE_LEN
        || chunks::map_chunks(src, file, |chunk| {
            !chunk.lex_errors.is_empty() || !chunk.parse_errors.is_empty()
        })
        .into_iter()
        .any(|failed| failed)
}

pub fn parse(src: &str, file: FileId) -> Parsed {
    if src.len() > MAX_SOURCE_LEN {
        let d = Diagnostic::error(Code::E0013, file, Span::at(0), "file too large")
            .with_label(format!(
                "wvflow reads files of up to {MAX_SOURCE_LEN} bytes"
            ))
            .with_help("split the workspace into several files");
        return Parsed {
            ast: ast::File::default(),
            diagnostics: vec![d],
        };
    }
    let mut items = Vec::new();
    let mut diagnostics = Vec::new();
    let mut parse_errors = Vec::new();
    for chunk in chunks::parse_chunks(src, file) {
        items.extend(chunk.items);
        diagnostics.extend(chunk.lex_errors);
        parse_errors.extend(chunk.parse_errors);
    }
    // One report per place: a parse error where the lexer already reported one (at a stray
    // character, say), or a second one at the same token or bracket, is a consequence.
    let mut reported: HashSet<u32> = diagnostics.iter().map(|d| d.primary.span.start).collect();
    diagnostics.extend(
        parse_errors
            .into_iter()
            .filter(|e| {
                let place = e.diagnostic.primary.span.start;
                let fresh = !reported.contains(&e.stopped_at) && !reported.contains(&place);
                reported.extend([e.stopped_at, place]);
                fresh
            })
            .map(|e| e.diagnostic),
    );
    diagnostics::normalize(&mut diagnostics);
    Parsed {
        ast: ast::File { items },
        diagnostics,
    }
}
