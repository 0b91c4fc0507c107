//! `wvflow fmt`: one canonical layout. Spacing and indentation are wvflow's; where lines break
//! is the author's (blank lines collapse to one). Comments stay where they were written.
//! Formatting works on the token stream, so the formatted file has the same tokens in the
//! same order, which is why it parses to the same tree. The rules: `docs/format.md`.

use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::syntax::Span;
use crate::syntax::lexer::Lexer;
use crate::syntax::token::Token;

/// Indentation per level.
const INDENT: &str = "  ";

/// The file in the canonical layout; a file with syntax errors is not formatted (its
/// diagnostics are returned), so nothing a user wrote is lost.
pub fn format(src: &str, file: FileId) -> Result<String, Vec<Diagnostic>> {
    let parsed = crate::syntax::parse(src, file);
    if parsed.diagnostics.iter().any(Diagnostic::is_error) {
        return Err(parsed.diagnostics);
    }
    let tokens: Vec<(Token, Span)> = Lexer::new(src, file).collect();
    Ok(Printer::new(src).print(&pieces(src, &tokens)))
}

/// A token or a comment, with the line breaks before it (0, 1 or 2: a blank line).
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

/// The tokens and, from the gaps between them, the comments.
fn pieces<'s>(src: &'s str, tokens: &[(Token, Span)]) -> Vec<Piece<'s>> {
    let mut out = Vec::new();
    let mut at = 0;
    let gap_pieces = |gap: &'s str, out: &mut Vec<Piece<'s>>| -> usize {
        // Comments in the gap, each with the newlines before it; returns the newlines after.
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
            out.push(Piece {
                kind,
                text: rest[..len].trim_end(),
                breaks: breaks.min(2),
            });
            breaks = 0;
            rest = &rest[len..];
        }
    };
    for &(token, span) in tokens {
        let start = span.start as usize;
        let breaks = gap_pieces(&src[at..start], &mut out);
        out.push(Piece {
            kind: Kind::Token(token),
            text: &src[start..span.end as usize],
            breaks: breaks.min(2),
        });
        at = span.end as usize;
    }
    gap_pieces(&src[at..], &mut out);
    out
}

/// What a bracket opened: a block of members or stages, a `with { }` config, or `(`/`[`.
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Block,
    Config,
    Bracket,
}

struct Printer {
    out: String,
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

impl Printer {
    fn new(src: &str) -> Self {
        Printer {
            out: String::with_capacity(src.len() + src.len() / 8),
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

    fn print(mut self, pieces: &[Piece]) -> String {
        let mut previous: Option<&Piece> = None;
        for piece in pieces {
            let new_line = previous.is_some() && (piece.breaks > 0 || was_line_comment(previous));
            if new_line {
                self.out.push('\n');
                self.line += 1;
                if piece.breaks > 1 {
                    self.out.push('\n');
                }
            }
            if new_line || previous.is_none() {
                let (level, continued) = self.level(piece);
                for _ in 0..level {
                    self.out.push_str(INDENT);
                }
                self.previous_level = level;
                self.previous_continued = continued;
            } else if let Some(prev) = previous
                && self.space_between(prev, piece)
            {
                self.out.push(' ');
            }
            self.out.push_str(piece.text);
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
        self.out.push('\n');
        self.out
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
            // `@version(2) (params)`: the version is a unit of its own.
            let after_version = p == Token::RParen && self.last(3) == Some(Token::Version);
            return after_version || !calls(p);
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
