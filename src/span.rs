//! Byte ranges into one source file, small enough to put on every token and AST node.

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A half-open byte range `start..end` into a source file.
///
/// Offsets are `u32` so a token with its span stays small; files over 4 GiB are refused
/// before lexing (see [`crate::syntax::MAX_SOURCE_LEN`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// An empty span at `offset`, for things that are missing (an expected `}` at end of file).
    pub fn at(offset: usize) -> Self {
        Span::new(offset, offset)
    }

    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

impl From<Range<usize>> for Span {
    fn from(range: Range<usize>) -> Self {
        Span::new(range.start, range.end)
    }
}

impl chumsky::span::Span for Span {
    type Context = ();
    type Offset = u32;

    fn new(_context: (), range: Range<u32>) -> Self {
        Span {
            start: range.start,
            end: range.end,
        }
    }

    fn context(&self) {}

    fn start(&self) -> u32 {
        self.start
    }

    fn end(&self) -> u32 {
        self.end
    }
}

/// A value with the span it was written at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}
