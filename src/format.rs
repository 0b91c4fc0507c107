//! `wvflow fmt`: one canonical layout. Spacing and indentation are wvflow's; where lines break
//! is the author's (blank lines collapse to one). Comments stay where they were written.
//! Formatting works on the token stream, so the formatted file has the same tokens in the
//! same order, which is why it parses to the same tree. The rules: `docs/format.md`.

use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::syntax::lexer::Lexer;
use crate::syntax::token::Token;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::ops::ControlFlow;

/// Indentation per level.
const INDENT: &str = "  ";

/// The file in the canonical layout; a file with syntax errors is not formatted (its
/// diagnostics are returned), so nothing a user wrote is lost.
pub fn format(src: &str, file: FileId) -> Result<String, Vec<Diagnostic>> {
    let formatter = Formatter::new(src, file)?;
    let mut out = String::with_capacity(src.len() + src.len() / 8);
    let _ = formatter.print(|text| {
        out.push_str(text);
        ControlFlow::<()>::Continue(())
    });
    Ok(out)
}

/// A file that parses, ready to be printed in the canonical layout piece by piece: what
/// `wvflow fmt` uses, so that neither the file's syntax tree nor its formatted text is held
/// whole (`docs/performance.md`).
pub struct Formatter<'s> {
    src: &'s str,
    file: FileId,
}

impl<'s> Formatter<'s> {
    /// The syntax diagnostics when `src` has a syntax error. The check keeps the syntax tree
    /// of a few chunks of the file at a time.
    pub fn new(src: &'s str, file: FileId) -> Result<Self, Vec<Diagnostic>> {
        if crate::syntax::has_errors(src, file) {
            return Err(crate::syntax::parse(src, file).diagnostics);
        }
        Ok(Formatter { src, file })
    }

    /// Whether the file is in the canonical layout already; stops at the first difference.
    pub fn is_formatted(&self) -> bool {
        let mut rest = self.src.as_bytes();
        let same = self.print(|text| match rest.strip_prefix(text.as_bytes()) {
            Some(after) => {
                rest = after;
                ControlFlow::Continue(())
            }
            None => ControlFlow::Break(()),
        });
        same.is_continue() && rest.is_empty()
    }

    /// Writes the file in the canonical layout to `out` (buffer it: the text comes in small
    /// pieces).
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        match self.print(|text| match out.write_all(text.as_bytes()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(e) => Err(e),
        }
    }

    /// Prints the formatted text to `sink`, a few bytes at a time, until it breaks.
    fn print<B>(&self, sink: impl FnMut(&str) -> ControlFlow<B>) -> ControlFlow<B> {
        let pieces = Pieces {
            src: self.src,
            tokens: Lexer::new(self.src, self.file),
            at: 0,
            queue: VecDeque::new(),
            done: false,
        };
        Printer::new(sink).print(pieces)
    }
}

/// A token or a comment, with the line breaks before it (0, 1 or 2: a blank line).
#[derive(Clone, Copy)]
struct Piece<'s> {
    kind: Kind,
    text: &'s str,
    breaks: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Token(Token),
    LineComment,
    BlockComment,
}

/// The tokens of a file and, from the gaps between them, the comments, in file order.
struct Pieces<'s> {
    src: &'s str,
    tokens: Lexer<'s>,
    /// Where the gap after the last token read starts.
    at: usize,
    /// The comments of the last gap read, then the token after it.
    queue: VecDeque<Piece<'s>>,
    /// The gap after the last token has been read.
    done: bool,
}

impl<'s> Iterator for Pieces<'s> {
    type Item = Piece<'s>;

    fn next(&mut self) -> Option<Piece<'s>> {
        if self.queue.is_empty() && !self.done {
            match self.tokens.next() {
                Some((token, span)) => {
                    let start = span.start as usize;
                    let breaks = gap_pieces(&self.src[self.at..start], &mut self.queue);
                    self.queue.push_back(Piece {
                        kind: Kind::Token(token),
                        text: &self.src[start..span.end as usize],
                        breaks: breaks.min(2),
                    });
                    self.at = span.end as usize;
                }
                None => {
                    gap_pieces(&self.src[self.at..], &mut self.queue);
                    self.done = true;
                }
            }
        }
        self.queue.pop_front()
    }
}

/// The comments in a gap between tokens, each with the newlines before it; returns the
/// newlines after the last.
fn gap_pieces<'s>(gap: &'s str, out: &mut VecDeque<Piece<'s>>) -> usize {
    let mut rest = gap;
    let mut breaks = 0;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n', '\x0c']);
        breaks += rest[..rest.len() - trimmed.len()].matches('\n').count();
        rest = trimmed;
        let (kind, len) = if rest.starts_with("--") {
            (Kind::LineComment, rest.find('\n').unwrap_or(rest.len()))
        } else if let Some(body) = rest.strip_prefix("/*") {
            // The end is searched after the opening: `/*/ x */` is one comment.
            (
                Kind::BlockComment,
                body.find("*/").map_or(rest.len(), |e| e + 4),
            )
        } else {
            return breaks;
        };
        out.push_back(Piece {
            kind,
            text: rest[..len].trim_end(),
            breaks: breaks.min(2),
        });
        breaks = 0;
        rest = &rest[len..];
    }
}

/// What a bracket opened: a block of members or stages, a `with { }` config, or `(`/`[`.
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Block,
    Config,
    Bracket,
}

struct Printer<S> {
    /// Where the text goes.
    sink: S,
    /// Brackets open at this point, innermost last, with the line each was opened on.
    open: Vec<(Open, usize)>,
    /// The last tokens printed, newest last.
    history: Vec<Token>,
    line: usize,
    /// The indentation level of the line before, and whether it went on with a list or an
    /// expression of the line before it.
    previous_level: usize,
    previous_continued: bool,
}

impl<B, S: FnMut(&str) -> ControlFlow<B>> Printer<S> {
    fn new(sink: S) -> Self {
        Printer {
            sink,
            open: Vec::new(),
            history: Vec::new(),
            line: 0,
            previous_level: 0,
            previous_continued: false,
        }
    }

    fn last(&self, back: usize) -> Option<Token> {
        self.history.iter().rev().nth(back).copied()
    }

    /// The indentation level of a line that starts with `first`, and whether it goes on with a
    /// list or an expression of the line before.
    fn level(&self, first: &Piece) -> (usize, bool) {
        let depth = self.open.len();
        let token = match first.kind {
            Kind::Token(t) => Some(t),
            _ => None,
        };
        if matches!(token, Some(Token::RBrace | Token::RParen | Token::RBracket)) {
            return (depth.saturating_sub(1), false);
        }
        // A line that starts with an operator, or follows a line ending in `=`, continues the
        // statement: one level deeper than the block.
        let leads = matches!(
            token,
            Some(Token::Pipe | Token::Eq | Token::And | Token::Or | Token::Arrow)
        );
        if leads || self.last(0) == Some(Token::Eq) {
            return (depth + 1, false);
        }
        // A list or an expression that goes on after a `,` or an operator, directly in a block
        // (a `select` list, say): one level deeper than the line it continues.
        let in_block_opened_before = self
            .open
            .last()
            .is_some_and(|&(kind, line)| kind == Open::Block && line < self.line.saturating_sub(1));
        if token.is_some() && in_block_opened_before && self.last(0).is_some_and(continues) {
            // Further lines of the same list line up with its second line.
            let level = if self.previous_continued {
                self.previous_level
            } else {
                self.previous_level + 1
            };
            return (level.max(depth + 1), true);
        }
        (depth, false)
    }

    fn print<'s>(mut self, pieces: impl Iterator<Item = Piece<'s>>) -> ControlFlow<B> {
        let mut previous: Option<Piece> = None;
        for piece in pieces {
            let new_line =
                previous.is_some() && (piece.breaks > 0 || was_line_comment(previous.as_ref()));
            if new_line {
                (self.sink)(if piece.breaks > 1 { "\n\n" } else { "\n" })?;
                self.line += 1;
            }
            if new_line || previous.is_none() {
                let (level, continued) = self.level(&piece);
                for _ in 0..level {
                    (self.sink)(INDENT)?;
                }
                self.previous_level = level;
                self.previous_continued = continued;
            } else if let Some(prev) = &previous
                && self.space_between(prev, &piece)
            {
                (self.sink)(" ")?;
            }
            (self.sink)(piece.text)?;
            self.line += piece.text.matches('\n').count();
            if let Kind::Token(token) = piece.kind {
                match token {
                    Token::LBrace => {
                        let kind = if self.last(0) == Some(Token::With) {
                            Open::Config
                        } else {
                            Open::Block
                        };
                        self.open.push((kind, self.line));
                    }
                    Token::LParen | Token::LBracket => self.open.push((Open::Bracket, self.line)),
                    Token::RBrace | Token::RParen | Token::RBracket => {
                        self.open.pop();
                    }
                    _ => {}
                }
                self.history.push(token);
                if self.history.len() > 4 {
                    self.history.remove(0);
                }
            }
            previous = Some(piece);
        }
        (self.sink)("\n")
    }

    /// Whether one space goes between two pieces on the same line (`next` not yet printed).
    fn space_between(&self, prev: &Piece, next: &Piece) -> bool {
        let (Kind::Token(p), Kind::Token(n)) = (prev.kind, next.kind) else {
            return true; // comments keep a space on both sides
        };
        if matches!(
            n,
            Token::Comma
                | Token::RParen
                | Token::RBracket
                | Token::Dot
                | Token::Semi
                | Token::Colon
        ) {
            return false;
        }
        if matches!(p, Token::LParen | Token::LBracket | Token::Dot | Token::At) {
            return false;
        }
        if n == Token::LParen {
            // `@version(2) (params)`: the version is a unit of its own; so is a test mock's
            // `when (p = v)`, which is no call.
            let after_version = p == Token::RParen && self.last(3) == Some(Token::Version);
            return after_version || prev.text == "when" || !calls(p);
        }
        // Two minus signs never touch: `--` would start a comment.
        if p == Token::Minus && n == Token::Minus {
            return true;
        }
        // A sign sticks to its operand: `-1`, `(-x)`.
        !(p == Token::Minus && expects_operand(self.last(1)))
    }
}

/// Tokens at the end of a line after which the statement goes on.
fn continues(token: Token) -> bool {
    matches!(
        token,
        Token::Comma
            | Token::Concat
            | Token::Plus
            | Token::Minus
            | Token::Star
            | Token::Slash
            | Token::Percent
            | Token::And
            | Token::Or
            | Token::EqEq
            | Token::NotEq
            | Token::LtGt
            | Token::Lt
            | Token::Le
            | Token::Gt
            | Token::Ge
    )
}

fn was_line_comment(piece: Option<&Piece>) -> bool {
    piece.is_some_and(|p| p.kind == Kind::LineComment)
}

/// Tokens after which a `(` belongs to a call or a parameter list: no space between.
fn calls(token: Token) -> bool {
    matches!(
        token,
        Token::Ident
            | Token::QuotedIdent
            | Token::Version
            | Token::End
            | Token::Exec
            | Token::Sh
            | Token::Wait
            | Token::Activate
            | Token::RParen
    )
}

/// Tokens after which a `-` or `not` is a sign, not an operator between two operands.
fn expects_operand(token: Option<Token>) -> bool {
    match token {
        None => true,
        Some(t) => {
            !matches!(
                t,
                Token::Ident
                    | Token::QuotedIdent
                    | Token::Int
                    | Token::Float
                    | Token::Duration
                    | Token::SingleQuoted
                    | Token::DoubleQuoted
                    | Token::TripleQuoted
                    | Token::RParen
                    | Token::RBracket
                    | Token::True
                    | Token::False
                    | Token::Null
            ) && !(t.is_soft_keyword())
        }
    }
}
