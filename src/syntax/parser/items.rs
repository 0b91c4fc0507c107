//! Top-level items (flows, activities, `run flow`) and the pieces they share with stages:
//! parameters, config blocks, conditions over states, and flow calls.

use super::errors::{Expected, SyntaxError};
use super::expr::{arg, expr};
use super::recovery::{Resume, skip_to};
use super::stage::member;
use super::{Parse, Span, comma_list, exact, name, parenthesized, string, unsigned};
use crate::diagnostics::Code;
use crate::span::Spanned;
use crate::syntax::ast::*;
use crate::syntax::token::Token;
use chumsky::pratt::{infix, left, prefix};
use chumsky::prelude::*;

pub fn file<'t>(src: &'t str) -> impl Parse<'t, File> {
    let item = choice((
        flow(src).map(|f| Item::Flow(Box::new(f))),
        activity(src).map(|a| Item::Activity(Box::new(a))),
        run_flow(src).map(|r| Item::Run(Box::new(r))),
        pool(src).map(|p| Item::Pool(Box::new(p))),
        super::test::test(src).map(|t| Item::Test(Box::new(t))),
    ))
    .labelled(Expected::Item)
    .map(Some)
    .recover_with(via_parser(skip_to(Resume::Item).to(None)))
    .then_ignore(just(Token::Semi).repeated());
    just(Token::Semi)
        .repeated()
        .ignore_then(item.repeated().collect::<Vec<_>>().map(exact))
        .then_ignore(end())
        .map(|items| File {
            items: exact(items.into_iter().flatten().collect()),
        })
}

fn flow<'t>(src: &'t str) -> impl Parse<'t, Flow> {
    let depends_on = just(Token::Depends)
        .ignore_then(just(Token::On))
        .ignore_then(comma_list(name(src)));
    let members = member(src)
        .map(Some)
        .recover_with(via_parser(skip_to(Resume::Member).to(None)))
        .then_ignore(just(Token::Semi).repeated())
        .repeated()
        .collect::<Vec<_>>()
        .map(exact)
        .map(|members| exact(members.into_iter().flatten().collect::<Vec<_>>()));
    // A missing `}` right before the next item is reported without losing the flow.
    let close = just(Token::RBrace).ignored().recover_with(via_parser(
        choice((
            one_of([Token::Flow, Token::Activity, Token::Run]).ignored(),
            end(),
        ))
        .rewind(),
    ));
    just(Token::Flow)
        .ignore_then(name(src))
        .then(version(src).or_not())
        .then(params(src).or_not())
        .then(depends_on.or_not())
        .then(just(Token::If).ignore_then(condition(src)).or_not())
        .then(config_block(src).or_not())
        .then_ignore(just(Token::Eq))
        .then(members.delimited_by(just(Token::LBrace), close))
        .map_with(
            |((((((name, version), params), depends_on), condition), config), members), e| Flow {
                name,
                version,
                params: params.unwrap_or_default(),
                depends_on: depends_on.unwrap_or_default(),
                condition,
                config,
                members,
                span: e.span(),
            },
        )
        .boxed()
}

fn activity<'t>(src: &'t str) -> impl Parse<'t, Activity> {
    let exec = just(Token::Exec)
        .ignore_then(parenthesized(expr(src)))
        .map(Command::Exec);
    let sh = just(Token::Sh)
        .ignore_then(string(src).delimited_by(just(Token::LParen), just(Token::RParen)))
        .map(Command::Sh);
    just(Token::Activity)
        .ignore_then(name(src))
        .then(params(src).or_not())
        .then(config_block(src).or_not())
        .then_ignore(just(Token::Eq).labelled(Expected::ActivityBody))
        .then(exec.or(sh).labelled(Expected::Command))
        .map_with(|(((name, params), config), command), e| Activity {
            name,
            params: params.unwrap_or_default(),
            config,
            command,
            span: e.span(),
        })
        .boxed()
}

fn run_flow<'t>(src: &'t str) -> impl Parse<'t, RunFlow> {
    just(Token::Run)
        .ignore_then(just(Token::Flow))
        .ignore_then(flow_call(src))
        .map_with(|call, e| RunFlow {
            call,
            span: e.span(),
        })
}

/// `pool NAME with { slots: N }`
fn pool<'t>(src: &'t str) -> impl Parse<'t, Pool> {
    just(Token::Pool)
        .ignore_then(name(src))
        .then(config_block(src))
        .map_with(|(name, config), e| Pool {
            name,
            config,
            span: e.span(),
        })
}

/// `@version(2)`
fn version<'t>(src: &'t str) -> impl Parse<'t, Spanned<u32>> {
    just(Token::At)
        .ignore_then(just(Token::Version))
        .ignore_then(unsigned(src).delimited_by(just(Token::LParen), just(Token::RParen)))
        .validate(|n, _, emitter| {
            let value = u32::try_from(n.value).unwrap_or_else(|_| {
                emitter.emit(SyntaxError::out_of_range(
                    n.span,
                    "version",
                    u32::MAX as u64,
                ));
                0
            });
            Spanned::new(value, n.span)
        })
}

/// `name @version(n)? (args)?`: the target of `->`, `call` and `run flow`.
pub fn flow_call<'t>(src: &'t str) -> impl Parse<'t, FlowCall> {
    name(src)
        .then(version(src).or_not())
        .then(parenthesized(arg(src, expr(src))).or_not())
        .map_with(|((name, version), args), e| FlowCall {
            name,
            version,
            args,
            span: e.span(),
        })
}

/// `(name: type = default, ...)`
fn params<'t>(src: &'t str) -> impl Parse<'t, Vec<Param>> {
    let ty = name(src).validate(|ty, _, emitter| {
        let value = Type::from_name(&ty.name).unwrap_or_else(|| {
            let names: Vec<&str> = Type::ALL.iter().map(|(n, _)| *n).collect();
            let help = match crate::diagnostics::suggest::closest(&ty.name, names.iter().copied()) {
                Some(best) => format!("did you mean `{best}`? the types are {}", names.join(", ")),
                None => format!("the types are {}", names.join(", ")),
            };
            emitter.emit(SyntaxError::custom(
                Code::E0008,
                ty.span,
                format!("unknown type `{}`", ty.name),
                "not a type",
                &help,
            ));
            Type::String
        });
        Spanned::new(value, ty.span)
    });
    let param = name(src)
        .then_ignore(just(Token::Colon))
        .then(ty)
        .then(just(Token::Eq).ignore_then(expr(src)).or_not())
        .map_with(|((name, ty), default), e| Param {
            name,
            ty,
            default,
            span: e.span(),
        });
    parenthesized(param)
}

/// A formula over `name.state` atoms with `and`, `or`, `not` and parentheses.
pub fn condition<'t>(src: &'t str) -> impl Parse<'t, Condition> {
    recursive(move |condition| {
        let state = name(src)
            .then_ignore(just(Token::Dot))
            .then(name(src))
            .map(|(target, state)| Condition::State { target, state })
            .labelled(Expected::StageState);
        let atom = state.or(condition.delimited_by(just(Token::LParen), just(Token::RParen)));
        atom.pratt((
            infix(left(1), just(Token::Or), |a, _, b, _| {
                Condition::Or(Box::new(a), Box::new(b))
            }),
            infix(left(2), just(Token::And), |a, _, b, _| {
                Condition::And(Box::new(a), Box::new(b))
            }),
            prefix(3, just(Token::Not), |_, c, e| {
                Condition::Not(Box::new(c), e.span())
            }),
        ))
        .boxed()
    })
}

fn entry<'t>(src: &'t str) -> impl Parse<'t, ConfigEntry> {
    name(src)
        .then_ignore(just(Token::Colon))
        .then(expr(src))
        .map(|(key, value)| ConfigEntry { key, value })
        .labelled(Expected::ConfigEntry)
}

/// `with { key: value ... }`: entries on their own lines or separated by commas.
pub fn config_block<'t>(src: &'t str) -> impl Parse<'t, Config> {
    let entries = entry(src)
        .map(Some)
        .recover_with(via_parser(skip_to(Resume::Entry).to(None)))
        .then_ignore(just(Token::Comma).or_not())
        .repeated()
        .collect::<Vec<_>>()
        .map(exact)
        .map(|entries| exact(entries.into_iter().flatten().collect::<Vec<_>>()))
        .validate(move |entries: Vec<ConfigEntry>, _, emitter| {
            for pair in entries.windows(2) {
                let between = &src[pair[0].span().end as usize..pair[1].span().start as usize];
                if !between.contains([',', '\n']) {
                    emitter.emit(SyntaxError::custom(
                        Code::E0009,
                        Span::at(pair[1].span().start as usize),
                        format!(
                            "config entry `{}` must start on a new line or after a comma",
                            pair[1].key.name
                        ),
                        "missing `,` before this entry",
                        "put a line break or `,` between config entries",
                    ));
                }
            }
            entries
        });
    just(Token::With)
        .ignore_then(entries.delimited_by(just(Token::LBrace), just(Token::RBrace)))
        .map_with(|entries, e| Config {
            style: ConfigStyle::Block,
            entries,
            span: e.span(),
        })
        .boxed()
}

/// `[key: value, ...]`
pub fn inline_config<'t>(src: &'t str) -> impl Parse<'t, Config> {
    entry(src)
        .separated_by(just(Token::Comma))
        .allow_trailing()
        .at_least(1)
        .collect::<Vec<_>>()
        .map(exact)
        .delimited_by(just(Token::LBracket), just(Token::RBracket))
        .map_with(|entries, e| Config {
            style: ConfigStyle::Inline,
            entries,
            span: e.span(),
        })
}
