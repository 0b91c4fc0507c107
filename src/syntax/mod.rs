//! The front end: tokens, parser, syntax tree and spans.
//!
//! [`parse`] is the entry point: source text in, a syntax tree and syntax diagnostics out.
//! It never panics and never recurses without bound, whatever the input.

pub mod ast;
mod depth;
pub mod lexer;
pub mod literal;
mod parser;
pub mod sexpr;
pub mod span;
pub mod token;

pub use span::{Span, Spanned};

use crate::diagnostics::{self, Diagnostic};
use crate::source::FileId;
use std::collections::HashSet;
use token::Token;

/// Spans are `u32` offsets, so a file may hold at most this many bytes.
pub const MAX_SOURCE_LEN: usize = u32::MAX as usize;

/// Files are lexed and parsed in runs of whole items of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

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

pub fn parse(src: &str, file: FileId) -> Parsed {
    if src.len() > MAX_SOURCE_LEN {
        let d = Diagnostic::error("E0013", file, Span::at(0), "file too large")
            .with_label(format!(
                "wvflow reads files of up to {MAX_SOURCE_LEN} bytes"
            ))
            .with_help("split the workspace into several files");
        return Parsed {
            ast: ast::File::default(),
            diagnostics: vec![d],
        };
    }
    let mut lexer = lexer::Lexer::new(src, file);
    let mut items = Vec::new();
    let mut parse_errors = Vec::new();
    let mut chunk: Vec<(Token, Span)> = Vec::new();
    let mut next = lexer.next();
    while let Some(first) = next {
        // Lex up to the next item that starts at least CHUNK_BYTES further on, parse that run,
        // and let its tokens go: memory for tokens stays small whatever the file's size.
        chunk.clear();
        chunk.push(first);
        next = None;
        for (token, span) in lexer.by_ref() {
            chunk.push((token, span));
            let at = chunk.len() - 1;
            if starts_item(&chunk, at) && (span.start - first.1.start) as usize >= CHUNK_BYTES {
                next = chunk.pop();
                break;
            }
        }
        // An item nested too deeply is reported and skipped; the items around it are parsed.
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let (parse_to, resume) = match depth::check(rest, file) {
                Ok(()) => (rest.len(), None),
                Err((at, too_deep)) => {
                    parse_errors.push(*too_deep);
                    let item = (0..=at).rev().find(|&i| starts_item(rest, i)).unwrap_or(0);
                    let after = (at + 1..rest.len()).find(|&i| starts_item(rest, i));
                    (item, Some(after.unwrap_or(rest.len())))
                }
            };
            if parse_to > 0 {
                let follows = rest.get(parse_to).copied().or(next);
                let (ast, errors) = parser::parse(src, &rest[..parse_to], follows, file);
                items.extend(ast.items);
                parse_errors.extend(errors);
            }
            match resume {
                Some(at) => rest = &rest[at..],
                None => break,
            }
        }
    }
    let mut diagnostics = lexer.diagnostics;
    // One report per place: a parse error where the lexer already reported one (at a stray
    // character, say), or a second one at the same token, is a consequence.
    let mut reported: HashSet<u32> = diagnostics.iter().map(|d| d.primary.span.start).collect();
    diagnostics.extend(
        parse_errors
            .into_iter()
            .filter(|d| reported.insert(d.primary.span.start)),
    );
    let ast = ast::File { items };
    diagnostics::normalize(&mut diagnostics);
    Parsed { ast, diagnostics }
}
