//! The `chumsky` parser: tokens to [`ast::File`], with recovery at item, member, operator and
//! config-entry boundaries so one run reports every independent syntax error.

mod errors;
mod expr;
mod items;
mod recovery;
mod stage;
mod test;
mod unclosed;

use super::ast::{self, Ident, StrLit};
use super::token::Token;
use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::span::{Span, Spanned};
use chumsky::input::MappedInput;
use chumsky::prelude::*;
use errors::{Expected, SyntaxError};

pub(super) type In<'t> = MappedInput<'t, Token, Span, &'t [(Token, Span)]>;
pub(super) type Extra<'t> = extra::Err<errors::SyntaxError>;

/// Every parser of this module: over our token input, with rich errors.
pub(super) trait Parse<'t, O>: Parser<'t, In<'t>, O, Extra<'t>> + Clone + 't {}
impl<'t, O, P: Parser<'t, In<'t>, O, Extra<'t>> + Clone + 't> Parse<'t, O> for P {}

/// A syntax error with the offset of the token the parser stopped at. The report may point
/// elsewhere (at a bracket never closed); two errors from one place are still one report.
pub struct ParseError {
    pub stopped_at: u32,
    pub diagnostic: Diagnostic,
}

/// Parses one run of whole items. `next` is the token that follows the run (the first of the
/// next run), or `None` at the end of the file; errors at the end of the run name it.
pub fn parse(
    src: &str,
    tokens: &[(Token, Span)],
    next: Option<(Token, Span)>,
    file: FileId,
) -> (ast::File, Vec<ParseError>) {
    let end = next.map_or(Span::at(src.len()), |(_, span)| {
        Span::at(span.start as usize)
    });
    let input = tokens.split_token_span(end);
    let (output, errors) = items::file(src).parse(input).into_output_errors();
    // Matching brackets takes a pass over the tokens; a clean parse needs none.
    let brackets = if errors.is_empty() {
        unclosed::Brackets::default()
    } else {
        unclosed::Brackets::match_up(src, tokens)
    };
    let diagnostics = errors
        .into_iter()
        .map(|e| ParseError {
            stopped_at: e.span().start,
            diagnostic: errors::to_diagnostic(e, src, file, next, &brackets),
        })
        .collect();
    (output.unwrap_or_default(), diagnostics)
}

/// A name: a plain identifier, a back-quoted one, or a soft keyword.
pub(super) fn name<'t>(src: &'t str) -> impl Parse<'t, Ident> {
    any()
        .filter(|t: &Token| {
            matches!(
                t,
                Token::Ident | Token::QuotedIdent | Token::UnterminatedQuotedIdent
            ) || t.is_soft_keyword()
        })
        .map_with(move |t, e| {
            let span: Span = e.span();
            let text = &src[span.range()];
            let name = match t {
                Token::QuotedIdent => &text[1..text.len() - 1],
                Token::UnterminatedQuotedIdent => &text[1..],
                _ => text,
            };
            Ident {
                name: name.into(),
                span,
            }
        })
        .labelled(Expected::Name)
}

pub(super) fn is_name_token(t: Token) -> bool {
    matches!(
        t,
        Token::Ident | Token::QuotedIdent | Token::UnterminatedQuotedIdent
    ) || t.is_soft_keyword()
}

pub(super) fn is_string(t: Token) -> bool {
    matches!(
        t,
        Token::SingleQuoted
            | Token::DoubleQuoted
            | Token::TripleQuoted
            | Token::UnterminatedSingle
            | Token::UnterminatedDouble
            | Token::UnterminatedTriple
    )
}

/// A string literal with its escapes resolved; a bad escape is reported and the text kept.
pub(super) fn string<'t>(src: &'t str) -> impl Parse<'t, StrLit> {
    any()
        .filter(|t: &Token| is_string(*t))
        .validate(move |t, e, emitter| {
            let span: Span = e.span();
            let text = &src[span.range()];
            let value = super::literal::string_value(t, text).unwrap_or_else(|(at, len)| {
                let at = span.start as usize + at;
                emitter.emit(SyntaxError::custom(
                    Code::E0006,
                    Span::new(at, at + len),
                    format!("unknown escape `{}` in a string", &src[at..at + len]),
                    "unknown escape",
                    "known escapes are \\\\, \\', \\\", \\n and \\t; in a \"\"\"triple-quoted\"\"\" string backslashes are plain text",
                ));
                text.to_string()
            });
            // Programs take their arguments, and SQLite its text, up to a NUL: it would cut
            // the value short far from here.
            if let Some(at) = text.find('\0') {
                let at = span.start as usize + at;
                emitter.emit(SyntaxError::custom(
                    Code::E0014,
                    Span::new(at, at + 1),
                    "a NUL character in a string".to_string(),
                    "NUL character",
                    "remove it: programs and the embedded database end text at a NUL",
                ));
            }
            StrLit {
                value: value.into(),
                span,
            }
        })
        .labelled(Expected::String)
}

/// A non-negative integer literal that fits in `u64`.
pub(super) fn unsigned<'t>(src: &'t str) -> impl Parse<'t, Spanned<u64>> {
    just(Token::Int)
        .validate(move |_, e, emitter| {
            let span: Span = e.span();
            let value = src[span.range()].parse().unwrap_or_else(|_| {
                emitter.emit(SyntaxError::out_of_range(span, "integer", u64::MAX));
                0
            });
            Spanned::new(value, span)
        })
        .labelled(Expected::Integer)
}

/// `( item, item, ... )` with an optional trailing comma.
pub(super) fn parenthesized<'t, O: 't>(item: impl Parse<'t, O>) -> impl Parse<'t, Vec<O>> {
    item.separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .map(exact)
        .delimited_by(just(Token::LParen), just(Token::RParen))
}

/// `item, item, ...`: at least one.
pub(super) fn comma_list<'t, O: 't>(item: impl Parse<'t, O>) -> impl Parse<'t, Vec<O>> {
    item.separated_by(just(Token::Comma))
        .at_least(1)
        .collect::<Vec<_>>()
        .map(exact)
}

/// Lists are collected one element at a time, so their capacity overshoots; syntax trees are
/// kept for the whole run, so trim them.
pub(super) fn exact<T>(mut items: Vec<T>) -> Vec<T> {
    items.shrink_to_fit();
    items
}
