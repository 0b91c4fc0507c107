//! Large files are cut into runs of whole items ("chunks") at `flow`, `activity` and `run`
//! keywords, which never occur inside an item. Each chunk is lexed and parsed on its own, on
//! as many threads as there are cores, and only one chunk's tokens live at a time per thread.

use super::ast::Item;
use super::lexer::Lexer;
use super::token::Token;
use super::{depth, parser, starts_item};
use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::span::Span;
use std::ops::Range;

/// A chunk holds whole items and at least this many bytes (but the last).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// What one chunk produced.
#[derive(Default)]
pub struct Chunk {
    pub items: Vec<Item>,
    pub lex_errors: Vec<Diagnostic>,
    pub parse_errors: Vec<parser::ParseError>,
}

/// Where one chunk lies in its file: its bytes, and the first token of the next chunk (an
/// error at the end of the chunk names it). Kept, a chunk can be parsed again on its own.
#[derive(Clone, Copy, Debug)]
pub struct ChunkSpec {
    start: u32,
    end: u32,
    follows: Option<(Token, Span)>,
}

impl ChunkSpec {
    pub fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The chunks of `src`, in file order: at least one, even for an empty file. Each holds at
/// least `min_bytes` (but the last).
pub fn plan(src: &str, file: FileId, min_bytes: usize) -> Vec<ChunkSpec> {
    let bounds = boundaries(src, file, min_bytes);
    // The first chunk starts at the top of the file, so comments and malformed text before
    // the first token are lexed (and reported) too; a file with no token is one chunk.
    (0..bounds.len().max(1))
        .map(|i| {
            let start = if i == 0 {
                0
            } else {
                bounds[i].1.start as usize
            };
            let end = bounds
                .get(i + 1)
                .map_or(src.len(), |(_, span)| span.start as usize);
            ChunkSpec {
                start: start as u32,
                end: end as u32,
                follows: bounds.get(i + 1).copied(),
            }
        })
        .collect()
}

/// Lexes and parses one chunk of `src` as [`plan`] laid it out.
pub fn parse_one(src: &str, spec: &ChunkSpec, file: FileId) -> Chunk {
    parse_chunk(src, spec.range(), spec.follows, file)
}

/// Parses every chunk of `src`, in parallel when there are several; results come in file order.
pub fn parse_chunks(src: &str, file: FileId) -> Vec<Chunk> {
    map_chunks(src, file, |chunk| chunk)
}

/// `f` of each chunk of `src`, parsed as [`parse_chunks`] does; only what `f` keeps of a chunk
/// outlives it, so a file can be looked over with the trees of a few chunks in memory.
pub fn map_chunks<R: Send>(src: &str, file: FileId, f: impl Fn(Chunk) -> R + Sync) -> Vec<R> {
    let specs = plan(src, file, CHUNK_BYTES);
    crate::parallel::map_indexed(specs.len(), |i| f(parse_one(src, &specs[i], file)))
}

/// The first token of each chunk. A quick lexing pass that keeps nothing else.
fn boundaries(src: &str, file: FileId, min_bytes: usize) -> Vec<(Token, Span)> {
    let mut bounds = Vec::new();
    let mut previous: Option<(Token, Span)> = None;
    let mut chunk_start: Option<u32> = None;
    for (token, span) in Lexer::new(src, file) {
        // `run flow` starts at its `run`; a `run` no `flow` follows is part of an item.
        let item = match (previous, token) {
            (Some((Token::Run, run)), Token::Flow) => Some((Token::Run, run)),
            (Some((Token::Run, _)), _) => None,
            (_, Token::Flow | Token::Activity) => Some((token, span)),
            _ => None,
        };
        match (chunk_start, item) {
            (None, _) => {
                bounds.push((token, span));
                chunk_start = Some(span.start);
            }
            (Some(start), Some(item)) if (item.1.start - start) as usize >= min_bytes => {
                bounds.push(item);
                chunk_start = Some(item.1.start);
            }
            _ => {}
        }
        previous = Some((token, span));
    }
    bounds
}

/// Lexes and parses one chunk. `follows` is the first token of the next chunk, if any.
fn parse_chunk(
    src: &str,
    range: Range<usize>,
    follows: Option<(Token, Span)>,
    file: FileId,
) -> Chunk {
    // Each thread keeps one token buffer for all its chunks: allocating and freeing one per
    // chunk fragments the heap that the syntax tree grows in.
    thread_local! {
        static TOKENS: std::cell::RefCell<Vec<(Token, Span)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    TOKENS.with(|buffer| {
        let mut tokens = buffer.take();
        tokens.clear();
        let chunk = parse_tokens(src, range, follows, file, &mut tokens);
        buffer.replace(tokens);
        chunk
    })
}

fn parse_tokens(
    src: &str,
    range: Range<usize>,
    follows: Option<(Token, Span)>,
    file: FileId,
    tokens: &mut Vec<(Token, Span)>,
) -> Chunk {
    let mut lexer = Lexer::for_range(src, range, file);
    tokens.extend(lexer.by_ref());
    let mut chunk = Chunk {
        lex_errors: lexer.diagnostics,
        ..Chunk::default()
    };
    // An item nested too deeply is reported and skipped; the items around it are parsed.
    let mut rest = &tokens[..];
    while !rest.is_empty() {
        let (parse_to, resume) = match depth::check(rest, file) {
            Ok(()) => (rest.len(), None),
            Err((at, too_deep)) => {
                chunk.parse_errors.push(parser::ParseError {
                    stopped_at: too_deep.primary.span.start,
                    diagnostic: *too_deep,
                });
                let item = (0..=at).rev().find(|&i| starts_item(rest, i)).unwrap_or(0);
                let after = (at + 1..rest.len()).find(|&i| starts_item(rest, i));
                (item, Some(after.unwrap_or(rest.len())))
            }
        };
        if parse_to > 0 {
            let next = rest.get(parse_to).copied().or(follows);
            let (ast, errors) = parser::parse(src, &rest[..parse_to], next, file);
            chunk.items.extend(ast.items);
            chunk.parse_errors.extend(errors);
        }
        match resume {
            Some(at) => rest = &rest[at..],
            None => break,
        }
    }
    chunk
}
