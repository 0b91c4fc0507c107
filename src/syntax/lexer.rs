//! Runs the `logos` lexer over a file and reports malformed input as diagnostics.
//! The lexer never stops early: a bad character becomes one diagnostic and lexing goes on.

use super::token::Token;
use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::span::Span;
use logos::Logos;

/// The tokens of a file, one at a time; problems collect in `diagnostics` as they are met.
pub struct Lexer<'s> {
    src: &'s str,
    file: FileId,
    inner: logos::SpannedIter<'s, Token>,
    /// Where `inner` started in `src`: its spans are relative to this.
    offset: usize,
    lookahead: Option<(Token, Span)>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'s> Lexer<'s> {
    pub fn new(src: &'s str, file: FileId) -> Self {
        Lexer::for_range(src, 0..src.len(), file)
    }

    /// Lexes `src[range]` only; `range` must start at a token boundary. Spans stay absolute.
    pub fn for_range(src: &'s str, range: std::ops::Range<usize>, file: FileId) -> Self {
        Lexer {
            src,
            file,
            offset: range.start,
            inner: Token::lexer(&src[range]).spanned(),
            lookahead: None,
            diagnostics: Vec::new(),
        }
    }

    fn raw_next(&mut self) -> Option<(Token, Span)> {
        self.inner.next().map(|(result, range)| {
            let span = Span::new(range.start + self.offset, range.end + self.offset);
            (result.unwrap_or(Token::Unknown), span)
        })
    }
}

impl Iterator for Lexer<'_> {
    type Item = (Token, Span);

    fn next(&mut self) -> Option<(Token, Span)> {
        loop {
            let (token, span) = match self.lookahead.take() {
                Some(next) => next,
                None => self.raw_next()?,
            };
            if token == Token::Unknown {
                // A run of stray characters (a binary blob, say) is one token and one
                // diagnostic, not thousands. It is kept, so the parser stops there rather than
                // misreading around it.
                let mut run = span;
                loop {
                    match self.raw_next() {
                        Some((Token::Unknown, next)) if next.start == run.end => {
                            run = run.join(next)
                        }
                        other => {
                            self.lookahead = other;
                            break;
                        }
                    }
                }
                self.diagnostics
                    .push(unknown_characters(self.src, self.file, run));
                return Some((Token::Unknown, run));
            }
            if let Some(d) = malformed(token, self.src, self.file, span) {
                self.diagnostics.push(d);
            }
            // An unterminated comment hides the rest of the file; the parser never sees it.
            if token != Token::UnterminatedComment {
                return Some((token, span));
            }
        }
    }
}

/// Every token of a file at once, with the lexer's diagnostics.
pub fn lex(src: &str, file: FileId) -> (Vec<(Token, Span)>, Vec<Diagnostic>) {
    let mut lexer = Lexer::new(src, file);
    let tokens = lexer.by_ref().collect();
    (tokens, lexer.diagnostics)
}

/// Whether the string starting at `start` directly follows a closing `"""`: a `"` written
/// right before the closing quotes, as in `"""say "x""""`, is read as the first of them, and
/// the last quote is left over to start a new string.
pub fn follows_triple_quotes(src: &str, start: usize) -> bool {
    src[..start].ends_with("\"\"\"") && src[start..].starts_with('"')
}

pub const QUOTE_BEFORE_TRIPLE_CLOSE_HELP: &str = "a `\"` directly before the closing `\"\"\"` ends \
     the string early, as the first three of the four quotes close it; put a space or a line \
     break before the closing `\"\"\"`, or use single quotes ('...'), in which `\"` needs no escape";

/// The span of the `"""` that closed the string before `start`.
pub fn closing_triple_quotes(start: u32) -> Span {
    Span::new((start as usize).saturating_sub(3), start as usize)
}

fn unknown_characters(src: &str, file: FileId, span: Span) -> Diagnostic {
    let text = &src[span.range()];
    let shown: String = text.chars().take(12).collect();
    let message = if text.chars().count() == 1 {
        format!("unexpected character `{}`", shown.escape_debug())
    } else {
        format!("unexpected characters `{}`", shown.escape_debug())
    };
    Diagnostic::error(Code::E0001, file, span, message)
        .with_label("not part of any token")
        .with_help("names are ASCII letters, digits and `_`; other text belongs in quotes")
}

fn malformed(token: Token, src: &str, file: FileId, span: Span) -> Option<Diagnostic> {
    let start = Span::at(span.start as usize);
    let text = &src[span.range()];
    Some(match token {
        Token::UnterminatedDouble if follows_triple_quotes(src, span.start as usize) => {
            Diagnostic::error(Code::E0002, file, span, "unterminated string")
                .with_label("this `\"` starts a new string, which is never closed")
                .with_secondary(
                    file,
                    closing_triple_quotes(span.start),
                    "the triple-quoted string ends here",
                )
                .with_help(QUOTE_BEFORE_TRIPLE_CLOSE_HELP)
        }
        Token::UnterminatedSingle | Token::UnterminatedDouble => {
            let quote = &text[..1];
            Diagnostic::error(Code::E0002, file, span, "unterminated string")
                .with_label("this string has no closing quote on its line")
                .with_help(format!(
                    "close it with `{quote}`; for text over several lines use a \"\"\"triple-quoted\"\"\" string"
                ))
        }
        Token::UnterminatedTriple => Diagnostic::error(
            Code::E0002,
            file,
            start.join(Span::at(start.start as usize + 3)),
            "unterminated triple-quoted string",
        )
        .with_label("this string is never closed")
        .with_help("close it with `\"\"\"`"),
        Token::UnterminatedQuotedIdent => {
            Diagnostic::error(Code::E0003, file, span, "unterminated quoted name")
                .with_label("no closing back-quote on this line")
                .with_help("close the name with `` ` ``")
        }
        Token::UnterminatedComment => Diagnostic::error(
            Code::E0004,
            file,
            Span::new(span.start as usize, span.start as usize + 2),
            "unterminated block comment",
        )
        .with_label("this comment runs to the end of the file")
        .with_help("close it with `*/`"),
        Token::BadNumber => {
            if let Some(fraction) = super::literal::fractional_duration(text) {
                return Some(fractional_duration(file, span, text, fraction));
            }
            let digits = text
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(text.len());
            Diagnostic::error(Code::E0005, file, span, format!("`{text}` is not a number or a duration"))
                .with_label(format!("unknown unit `{}`", &text[digits..]))
                .with_help("duration units are `ms`, `s`, `m`, `h` and `d` (`90s`, `5m`); write longer ones as a string such as '7 days'")
        }
        _ => return None,
    })
}

/// `1.5h`: the unit is right, the number is not whole.
fn fractional_duration(
    file: FileId,
    span: Span,
    text: &str,
    fraction: super::literal::FractionalDuration,
) -> Diagnostic {
    let help = match fraction.whole {
        Some((amount, unit)) => format!(
            "write `{amount}{}`, the same duration in whole {}",
            unit.suffix(),
            unit.plural_name()
        ),
        None => "no whole number of a unit equals it: durations count whole milliseconds at the finest".to_string(),
    };
    Diagnostic::error(
        Code::E0005,
        file,
        span,
        format!("`{text}` is not a duration: a duration literal takes a whole number of its unit"),
    )
    .with_label(format!("a decimal number of {}", fraction.unit.plural_name()))
    .with_help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Token> {
        lex(src, FileId(0)).0.into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn durations_win_over_integers_and_comments_are_skipped() {
        use Token::*;
        assert_eq!(
            kinds("30s 100ms 5 -- note\n2.5 /* x */ a->b"),
            vec![Duration, Duration, Int, Float, Ident, Arrow, Ident]
        );
        assert_eq!(
            kinds("'it''s' \"q\" \"\"\"raw\"\"\""),
            vec![SingleQuoted, DoubleQuoted, TripleQuoted]
        );
        assert_eq!(
            kinds("stage `from` version"),
            vec![Stage, QuotedIdent, Version]
        );
    }

    #[test]
    fn malformed_input_is_reported_once_per_run() {
        let (_, diagnostics) = lex("a \u{1}\u{2}\u{3} b 'open\n5min /* never", FileId(0));
        let codes: Vec<_> = diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            vec![Code::E0001, Code::E0002, Code::E0005, Code::E0004]
        );
    }
}
