//! `test NAME = { ... }` items: the run a test makes, its mocks and signals, and its
//! expectations. The words of a test (`mock`, `expect`, `returns`, ...) are plain names
//! everywhere else.

use super::errors::Expected;
use super::expr::{arg, expr};
use super::items::flow_call;
use super::recovery::{Resume, skip_to};
use super::{Parse, Span, exact, name, parenthesized, string, unsigned};
use crate::span::Spanned;
use crate::syntax::ast::*;
use crate::syntax::token::Token;
use chumsky::prelude::*;

/// A name written as `text`, where the grammar gives it a meaning.
fn word<'t>(src: &'t str, text: &'static str) -> impl Parse<'t, Ident> {
    name(src).filter(move |n: &Ident| n.name == text)
}

pub fn test<'t>(src: &'t str) -> impl Parse<'t, Test> {
    let statements = statement(src)
        .map(Some)
        .recover_with(via_parser(skip_to(Resume::Member).to(None)))
        .then_ignore(just(Token::Semi).repeated())
        .repeated()
        .collect::<Vec<_>>()
        .map(|s| exact(s.into_iter().flatten().collect::<Vec<_>>()));
    word(src, "test")
        .ignore_then(name(src))
        .then_ignore(just(Token::Eq))
        .then(statements.delimited_by(just(Token::LBrace), just(Token::RBrace)))
        .map_with(|(name, statements), e| Test {
            name,
            statements,
            span: e.span(),
        })
        .boxed()
}

fn statement<'t>(src: &'t str) -> impl Parse<'t, TestStatement> {
    let call = just(Token::Call)
        .ignore_then(flow_call(src))
        .then(word(src, "at").ignore_then(expr(src)).or_not())
        .map_with(|(flow, at), e| TestStatement::Call {
            flow,
            at,
            span: e.span(),
        });
    let signal = just(Token::Signal)
        .ignore_then(name(src))
        .then(just(Token::Eq).ignore_then(expr(src)).or_not())
        .then_ignore(word(src, "at"))
        .then(expr(src))
        .map_with(|((name, value), at), e| TestStatement::Signal {
            name,
            value,
            at,
            span: e.span(),
        });
    let real = word(src, "real")
        .ignore_then(name(src).separated_by(just(Token::Comma)).at_least(1).collect())
        .map_with(|activities, e| TestStatement::Real {
            activities,
            span: e.span(),
        });
    let upstream = word(src, "upstream")
        .ignore_then(name(src))
        .then(name(src))
        .map_with(|(flow, state), e| TestStatement::Upstream {
            flow,
            state,
            span: e.span(),
        });
    choice((
        call,
        mock(src).map(|m| TestStatement::Mock(Box::new(m))),
        signal,
        real,
        upstream,
        expect(src).map(|x| TestStatement::Expect(Box::new(x))),
    ))
    .labelled(Expected::TestStatement)
    .boxed()
}

fn mock<'t>(src: &'t str) -> impl Parse<'t, Mock> {
    let outcome = choice((
        word(src, "returns")
            .ignore_then(rows(src))
            .map(MockOutcome::Returns),
        word(src, "fails")
            .ignore_then(just(Token::With).ignore_then(unsigned(src)).or_not())
            .map(MockOutcome::Fails),
        word(src, "never")
            .then(just(Token::End).or(word(src, "ends").to(Token::End)))
            .to(MockOutcome::NeverEnds),
    ));
    let attempts = just(Token::On)
        .ignore_then(word(src, "attempt").or(word(src, "attempts")))
        .ignore_then(unsigned(src))
        .then(just(Token::To).ignore_then(unsigned(src)).or_not())
        .map(|(first, last): (Spanned<u64>, Option<Spanned<u64>>)| {
            let last = last.unwrap_or_else(|| first.clone());
            (first, last)
        });
    let when = word(src, "when").ignore_then(
        parenthesized(arg(src, expr(src))).map_with(|args, e| (args, e.span())),
    );
    word(src, "mock")
        .ignore_then(name(src))
        .then(when.or_not())
        .then(word(src, "takes").ignore_then(expr(src)).or_not())
        .then(outcome.or_not())
        .then(attempts.or_not())
        .map_with(|((((activity, when), takes), outcome), attempts), e| Mock {
            activity,
            when,
            takes,
            // `mock slow takes 1h`: it takes that long and returns no rows.
            outcome: outcome.unwrap_or(MockOutcome::Returns(TestRows::Inline {
                rows: Vec::new(),
                columns: Vec::new(),
                span: e.span(),
            })),
            attempts,
            span: e.span(),
        })
}

/// `[[1, 'a'], ...] as (id, name)` (a table name before the columns is allowed), `[]`, or a
/// data file's path.
fn rows<'t>(src: &'t str) -> impl Parse<'t, TestRows> {
    let columns = just(Token::As)
        .ignore_then(name(src).or_not())
        .ignore_then(parenthesized(name(src)));
    let inline = super::stage::inline_rows(src, 0)
        .then(columns.or_not())
        .map_with(|(rows, columns), e| TestRows::Inline {
            rows,
            columns: columns.unwrap_or_default(),
            span: e.span(),
        });
    choice((inline, string(src).map(TestRows::File)))
}

/// `N`, or `[rows] as (...)`, or `in order [rows] as (...)`.
fn rows_expect<'t>(src: &'t str) -> impl Parse<'t, RowsExpect> {
    choice((
        unsigned(src).map(RowsExpect::Count),
        just(Token::In)
            .ignore_then(just(Token::Order))
            .or_not()
            .then(rows(src))
            .map(|(ordered, rows)| RowsExpect::Exactly {
                rows,
                ordered: ordered.is_some(),
            }),
    ))
}

/// A table's name as `save to` writes it: `name` or `schema.name`, one name here.
fn table_name<'t>(src: &'t str) -> impl Parse<'t, Ident> {
    name(src)
        .then(just(Token::Dot).ignore_then(name(src)).or_not())
        .map(|(first, second)| match second {
            None => first,
            Some(second) => Ident {
                name: format!("{}.{}", first.name, second.name).into(),
                span: first.span.join(second.span),
            },
        })
}

fn name_list<'t>(src: &'t str) -> impl Parse<'t, (Vec<Ident>, Span)> {
    name(src)
        .separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LBracket), just(Token::RBracket))
        .map_with(|names, e| (names, e.span()))
}

fn expect<'t>(src: &'t str) -> impl Parse<'t, Expect> {
    let count = unsigned(src).then_ignore(word(src, "times").or(word(src, "time")).or_not());
    let called = name(src)
        .then_ignore(word(src, "called"))
        .then(choice((
            just(Token::With)
                .ignore_then(word(src, "rows"))
                .ignore_then(rows_expect(src))
                .map(CallFact::Rows),
            just(Token::With)
                .ignore_then(parenthesized(arg(src, expr(src))).map_with(|a, e| (a, e.span())))
                .map(|(args, span)| CallFact::With(args, span)),
            count.map(CallFact::Times),
        )))
        .map(|(activity, fact)| Expectation::Called { activity, fact });
    let stage_fact = choice((
        word(src, "attempts")
            .or(word(src, "attempt"))
            .ignore_then(unsigned(src))
            .map(StageFact::Attempts),
        word(src, "rows")
            .ignore_then(rows_expect(src))
            .map(StageFact::Rows),
        name(src).map(StageFact::State),
    ));
    let what = choice((
        just(Token::Run)
            .ignore_then(name(src))
            .map(Expectation::Run),
        word(src, "exit")
            .ignore_then(unsigned(src))
            .map(Expectation::Exit),
        word(src, "compensations")
            .ignore_then(name_list(src))
            .map(|(names, span)| Expectation::Compensations(names, span)),
        word(src, "hooks")
            .ignore_then(name_list(src))
            .map(|(names, span)| Expectation::Hooks(names, span)),
        word(src, "elapsed")
            .ignore_then(expr(src))
            .map(Expectation::Elapsed),
        word(src, "table")
            .ignore_then(table_name(src))
            .then_ignore(word(src, "rows"))
            .then(rows_expect(src))
            .map(|(table, rows)| Expectation::Table { table, rows }),
        called,
        name(src)
            .then(stage_fact)
            .map(|(stage, fact)| Expectation::Stage { stage, fact }),
    ));
    word(src, "expect")
        .ignore_then(what)
        .map_with(|what, e| Expect {
            what,
            span: e.span(),
        })
}
