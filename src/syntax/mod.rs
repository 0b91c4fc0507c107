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

/// Whether `tokens[index]` begins a top-level item (`flow`, `activity` or `run flow`; the
/// `flow` of `run flow` does not, nor a `run` that no `flow` follows, as in a test's
/// `expect run failed`).
fn starts_item(tokens: &[(Token, Span)], index: usize) -> bool {
    match tokens[index].0 {
        Token::Flow | Token::Activity => index == 0 || tokens[index - 1].0 != Token::Run,
        Token::Run => tokens.get(index + 1).is_none_or(|(t, _)| *t == Token::Flow),
        _ => false,
    }
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

pub use chunks::{Chunk, ChunkSpec};

/// The chunks of `src`, in file order (runs of whole items of at least 64 KiB): each can be
/// parsed on its own with [`parse_chunk`], again and again, with the same result.
pub fn chunk_plan(src: &str, file: FileId) -> Vec<ChunkSpec> {
    chunks::plan(src, file, chunks::CHUNK_BYTES)
}

/// [`chunk_plan`] with chunks of at least `min_bytes`: tests cut small inputs into many.
#[doc(hidden)]
pub fn chunk_plan_sized(src: &str, file: FileId, min_bytes: usize) -> Vec<ChunkSpec> {
    chunks::plan(src, file, min_bytes)
}

/// One chunk's items and syntax errors; [`FileErrors`] turns the errors of a file's chunks
/// into its diagnostics.
pub fn parse_chunk(src: &str, spec: &ChunkSpec, file: FileId) -> Chunk {
    chunks::parse_one(src, spec, file)
}

/// The diagnostic of a file over [`MAX_SOURCE_LEN`], which is not parsed.
pub fn too_large(src: &str, file: FileId) -> Option<Diagnostic> {
    (src.len() > MAX_SOURCE_LEN).then(|| {
        Diagnostic::error(Code::E0013, file, Span::at(0), "file too large")
            .with_label(format!(
                "wvflow reads files of up to {MAX_SOURCE_LEN} bytes"
            ))
            .with_help("split the workspace into several files")
    })
}

/// The syntax errors of one file's chunks, taken in file order.
#[derive(Default)]
pub struct FileErrors {
    lex: Vec<Diagnostic>,
    parse: Vec<parser::ParseError>,
}

impl FileErrors {
    /// Takes the errors out of the file's next chunk.
    pub fn add(&mut self, chunk: &mut Chunk) {
        self.lex.append(&mut chunk.lex_errors);
        self.parse.append(&mut chunk.parse_errors);
    }

    /// The file's syntax diagnostics, sorted.
    pub fn finish(self) -> Vec<Diagnostic> {
        let mut diagnostics = self.lex;
        // One report per place: a parse error where the lexer already reported one (at a
        // stray character, say), or a second one at the same token or bracket, is a
        // consequence.
        let mut reported: HashSet<u32> =
            diagnostics.iter().map(|d| d.primary.span.start).collect();
        diagnostics.extend(
            self.parse
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
        diagnostics
    }
}

pub fn parse(src: &str, file: FileId) -> Parsed {
    if let Some(d) = too_large(src, file) {
        return Parsed {
            ast: ast::File::default(),
            diagnostics: vec![d],
        };
    }
    let mut items = Vec::new();
    let mut errors = FileErrors::default();
    for mut chunk in chunks::parse_chunks(src, file) {
        errors.add(&mut chunk);
        items.extend(chunk.items);
    }
    Parsed {
        ast: ast::File { items },
        diagnostics: errors.finish(),
    }
}
