//! Flow members: stages with their sources and operators, signals and queries.

use super::errors::Expected;
use super::expr::{call_with, expr};
use super::items::{condition, config_block, flow_call, inline_config};
use super::recovery::{Resume, skip_to};
use super::{Parse, comma_list, exact, name, parenthesized, string, unsigned};
use crate::syntax::ast::*;
use crate::syntax::token::Token;
use chumsky::prelude::*;

pub fn member<'t>(src: &'t str) -> impl Parse<'t, Member> {
    let named_expr = |keyword| {
        just(keyword)
            .ignore_then(name(src))
            .then_ignore(just(Token::Eq))
            .then(expr(src))
            .map_with(|(name, value), e| NamedExpr {
                name,
                value,
                span: e.span(),
            })
    };
    choice((
        stage(src).map(Member::Stage),
        named_expr(Token::Signal).map(Member::Signal),
        named_expr(Token::Query).map(Member::Query),
    ))
    .labelled(Expected::Member)
}

fn stage<'t>(src: &'t str) -> impl Parse<'t, Stage> {
    recursive(move |stage| {
        let header = just(Token::Stage)
            .ignore_then(name(src))
            .then(just(Token::If).ignore_then(condition(src)).or_not())
            .then(config_block(src).or(inline_config(src)).or_not())
            .then(just(Token::On).ignore_then(name(src)).or_not())
            .then_ignore(just(Token::Eq));
        let fork = just(Token::Fork)
            .ignore_then(
                stage
                    .then_ignore(just(Token::Semi).repeated())
                    .repeated()
                    .at_least(1)
                    .collect::<Vec<_>>()
                    .map(exact)
                    .delimited_by(just(Token::LBrace), just(Token::RBrace)),
            )
            .map(OpKind::Fork);
        let op = op(src)
            .or(fork)
            .labelled(Expected::PipelineOp)
            .map_with(|kind, e| {
                Some(Op {
                    kind,
                    span: e.span(),
                })
            })
            .recover_with(via_parser(skip_to(Resume::Op).to(None)));
        let body = source(src)
            .then(
                just(Token::Pipe)
                    .ignore_then(op)
                    .repeated()
                    .collect::<Vec<_>>()
                    .map(exact),
            )
            .map(|(source, ops)| Body {
                source,
                ops: exact(ops.into_iter().flatten().collect()),
            });
        header
            .then(body)
            .map_with(|((((name, trigger), config), connector), body), e| Stage {
                name,
                trigger: trigger.map(Box::new),
                config: config.map(Box::new),
                connector: connector.map(Box::new),
                body,
                span: e.span(),
            })
            .boxed()
    })
}

fn source<'t>(src: &'t str) -> impl Parse<'t, Source> {
    choice((
        just(Token::From)
            .ignore_then(comma_list(source_ref(src)))
            .map(SourceKind::From),
        just(Token::Merge)
            .ignore_then(comma_list(name(src)))
            .map(SourceKind::Merge),
        just(Token::Call)
            .ignore_then(flow_call(src))
            .map(|f| SourceKind::CallFlow(Box::new(f))),
        just(Token::Arrow)
            .ignore_then(flow_call(src))
            .map(|f| SourceKind::Jump(Box::new(f))),
        just(Token::Wait).ignore_then(choice((
            just(Token::Until)
                .ignore_then(expr(src))
                .map(SourceKind::WaitUntil),
            expr(src)
                .delimited_by(just(Token::LParen), just(Token::RParen))
                .map(SourceKind::Wait),
        ))),
        call_with(src, expr(src)).map(|c| SourceKind::Activity(Box::new(c))),
    ))
    .labelled(Expected::Source)
    .map_with(|kind, e| Source {
        kind,
        span: e.span(),
    })
}

/// Inline rows `[[1, 'a'], [2, 'b']]`: at least `min` of them (a stage's source, a test's).
pub(super) fn inline_rows<'t>(src: &'t str, min: usize) -> impl Parse<'t, Vec<Vec<Expr>>> {
    let row = expr(src)
        .separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .map(exact)
        .delimited_by(just(Token::LBracket), just(Token::RBracket));
    row.separated_by(just(Token::Comma))
        .allow_trailing()
        .at_least(min)
        .collect::<Vec<_>>()
        .map(exact)
        .delimited_by(just(Token::LBracket), just(Token::RBracket))
}

/// A stage or table name, a file path, or inline rows `[[...], ...] as t(a, b)`.
fn source_ref<'t>(src: &'t str) -> impl Parse<'t, SourceRef> {
    let alias = just(Token::As)
        .ignore_then(name(src))
        .then(parenthesized(name(src)))
        .map(|(table, columns)| ValuesAlias { table, columns });
    let values = inline_rows(src, 1)
        .then(alias.or_not())
        .map_with(|(rows, alias), e| SourceRef::Values {
            rows,
            alias: alias.map(Box::new),
            span: e.span(),
        });
    let failed = name(src)
        .filter(|n: &Ident| n.name == "failed")
        .ignore_then(name(src).delimited_by(just(Token::LParen), just(Token::RParen)))
        .map(SourceRef::Failed);
    let table = name(src)
        .then_ignore(just(Token::Dot))
        .then(name(src))
        .map(|(schema, table)| SourceRef::Table { schema, table });
    choice((
        failed,
        table,
        name(src).map(SourceRef::Name),
        string(src).map(SourceRef::File),
        values,
    ))
    .labelled(Expected::SourceRef)
}

fn op<'t>(src: &'t str) -> impl Parse<'t, OpKind> {
    choice((
        just(Token::Where).ignore_then(expr(src)).map(OpKind::Where),
        select(src),
        join(src),
        just(Token::Group)
            .ignore_then(just(Token::By))
            .ignore_then(comma_list(expr(src)))
            .map(OpKind::GroupBy),
        order_by(src),
        just(Token::Limit)
            .ignore_then(unsigned(src))
            .map(OpKind::Limit),
        save_to(src),
        route(src),
        each(src),
        wait(src),
        activate(src),
        just(Token::Arrow)
            .ignore_then(flow_call(src))
            .map(|f| OpKind::Jump(Box::new(f))),
        end_flow(),
        just(Token::While).ignore_then(expr(src)).map(OpKind::While),
        just(Token::Call)
            .ignore_then(flow_call(src))
            .map(|f| OpKind::CallFlow(Box::new(f))),
        call_with(src, expr(src)).map(|c| OpKind::Activity(Box::new(c))),
    ))
    .boxed()
}

/// `select expr [as name], ...`.
fn select<'t>(src: &'t str) -> impl Parse<'t, OpKind> {
    let select_item = expr(src)
        .then(just(Token::As).ignore_then(name(src)).or_not())
        .map(|(expr, alias)| SelectItem { expr, alias });
    just(Token::Select)
        .ignore_then(comma_list(select_item))
        .map(OpKind::Select)
}

/// `join source on condition`.
fn join<'t>(src: &'t str) -> impl Parse<'t, OpKind> {
    just(Token::Join)
        .ignore_then(source_ref(src))
        .then_ignore(just(Token::On))
        .then(expr(src))
        .map(|(source, on)| OpKind::Join(Box::new(Join { source, on })))
}

/// `order by expr [asc | desc], ...`.
fn order_by<'t>(src: &'t str) -> impl Parse<'t, OpKind> {
    let order_key = expr(src)
        .then(choice((just(Token::Asc).to(false), just(Token::Desc).to(true))).or_not())
        .map_with(|(expr, desc), e| OrderKey {
            expr,
            descending: desc.unwrap_or(false),
            span: e.span(),
        });
    just(Token::Order)
        .ignore_then(just(Token::By))
        .ignore_then(comma_list(order_key))
        .map(OpKind::OrderBy)
}

/// `save to name.name...`.
fn save_to<'t>(src: &'t str) -> impl Parse<'t, OpKind> {
    just(Token::Save)
        .ignore_then(just(Token::To))
        .ignore_then(
            name(src)
                .separated_by(just(Token::Dot))
                .at_least(1)
                .collect::<Vec<_>>()
                .map(exact),
        )
        .map(OpKind::SaveTo)
}

/// `route [by expr] { case expr -> stage, ... [else -> stage] }`.
fn route<'t>(src: &'t str) -> impl Parse<'t, OpKind> {
    let case = just(Token::Case)
        .ignore_then(expr(src))
        .then_ignore(just(Token::Arrow))
        .then(name(src))
        .map_with(|(when, target), e| RouteCase {
            when,
            target,
            span: e.span(),
        });
    let otherwise = just(Token::Else)
        .ignore_then(just(Token::Arrow))
        .ignore_then(name(src));
    just(Token::Route)
        .ignore_then(just(Token::By).ignore_then(expr(src)).or_not())
        .then(
            case.then_ignore(just(Token::Comma).or_not())
                .repeated()
                .at_least(1)
                .collect::<Vec<_>>()
                .map(exact)
                .then(otherwise.then_ignore(just(Token::Comma).or_not()).or_not())
                .delimited_by(just(Token::LBrace), just(Token::RBrace)),
        )
        .map(|(by, (cases, otherwise))| {
            OpKind::Route(Box::new(Route {
                by,
                cases,
                otherwise,
            }))
        })
}

/// `each call flow(...)` or `each activity(...)`.
fn each<'t>(src: &'t str) -> impl Parse<'t, OpKind> {
    just(Token::Each).ignore_then(choice((
        just(Token::Call)
            .ignore_then(flow_call(src))
            .map(|f| OpKind::EachCall(Box::new(f))),
        call_with(src, expr(src)).map(|c| OpKind::Each(Box::new(c))),
    )))
}

/// `wait until condition` or `wait (duration)`.
fn wait<'t>(src: &'t str) -> impl Parse<'t, OpKind> {
    just(Token::Wait).ignore_then(choice((
        just(Token::Until)
            .ignore_then(expr(src))
            .map(OpKind::WaitUntil),
        expr(src)
            .delimited_by(just(Token::LParen), just(Token::RParen))
            .map(OpKind::Wait),
    )))
}

/// `activate('target', name: value, ...)`.
fn activate<'t>(src: &'t str) -> impl Parse<'t, OpKind> {
    let activate_options = just(Token::Comma)
        .ignore_then(
            name(src)
                .then_ignore(one_of([Token::Colon, Token::Eq]))
                .then(expr(src))
                .map(|(name, value)| Arg {
                    name: Some(name),
                    value,
                })
                .separated_by(just(Token::Comma))
                .allow_trailing()
                .collect::<Vec<_>>()
                .map(exact),
        )
        .or_not();
    just(Token::Activate)
        .ignore_then(
            string(src)
                .then(activate_options)
                .delimited_by(just(Token::LParen), just(Token::RParen)),
        )
        .map(|(target, options)| {
            OpKind::Activate(Box::new(Activate {
                target,
                options: options.unwrap_or_default(),
            }))
        })
}

/// `end()`.
fn end_flow<'t>() -> impl Parse<'t, OpKind> {
    just(Token::End)
        .then(just(Token::LParen))
        .then(just(Token::RParen))
        .to(OpKind::End)
}
