//! Expressions, with the precedence of docs/language.md:
//! or < and < not < comparison < additive < multiplicative < unary.

use super::errors::{Expected, SyntaxError};
use super::{Parse, Span, exact, name, parenthesized, string};
use crate::syntax::ast::{Arg, BinaryOp, Call, Expr, ExprKind, Field, Ident, Type, UnaryOp};
use crate::syntax::literal::duration_parts;
use crate::syntax::token::Token;
use chumsky::pratt::{infix, left, none, postfix, prefix};
use chumsky::prelude::*;

pub fn expr<'t>(src: &'t str) -> impl Parse<'t, Expr> {
    recursive(move |expr| with_operators(atom(src, expr.clone()), expr).boxed())
}

/// An operand of the operators: a literal, a name, call or field, `*`, a list, or an
/// expression in brackets.
fn atom<'t>(src: &'t str, expr: impl Parse<'t, Expr>) -> impl Parse<'t, Expr> {
    choice((
        literal(src),
        time(src),
        named(src, expr.clone().boxed()),
        just(Token::Star).to(ExprKind::Star),
        activate(src, expr.clone().boxed()),
        list(expr.clone()),
    ))
    .map_with(|kind, e| Expr {
        kind,
        span: e.span(),
    })
    .or(bracketed(expr))
    .labelled(Expected::Expression)
    .boxed()
}

/// A name, then maybe `(args)` (a call) or `.name` (a field): the name is read once.
fn named<'t>(src: &'t str, expr: impl Parse<'t, Expr>) -> impl Parse<'t, ExprKind> {
    name(src)
        .then(
            choice((
                parenthesized(arg(src, expr)).map(Ok),
                just(Token::Dot).ignore_then(name(src)).map(Err),
            ))
            .or_not(),
        )
        .map_with(|(name, suffix), e| match suffix {
            None => ExprKind::Name(name),
            Some(Ok(args)) => ExprKind::Call(Box::new(Call {
                name,
                args,
                span: e.span(),
            })),
            Some(Err(field)) => ExprKind::Field(Box::new(Field { base: name, field })),
        })
}

/// `activate(...)` may stand as a value: a flow hook such as `on_failure: activate('log')`.
fn activate<'t>(src: &'t str, expr: impl Parse<'t, Expr>) -> impl Parse<'t, ExprKind> {
    just(Token::Activate)
        .map_with(|_, e| Ident {
            name: "activate".into(),
            span: e.span(),
        })
        .then(parenthesized(arg(src, expr)))
        .map_with(|(name, args), e| {
            ExprKind::Call(Box::new(Call {
                name,
                args,
                span: e.span(),
            }))
        })
}

/// `[a, b, ...]`.
fn list<'t>(expr: impl Parse<'t, Expr>) -> impl Parse<'t, ExprKind> {
    expr.separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .map(exact)
        .delimited_by(just(Token::LBracket), just(Token::RBracket))
        .map(ExprKind::List)
}

/// `date '...'` and `timestamp '...'`: a typed literal, checked where it is written.
fn time<'t>(src: &'t str) -> impl Parse<'t, ExprKind> {
    name(src)
        .filter(|n: &Ident| matches!(n.name.as_str(), "date" | "timestamp"))
        .then(string(src))
        .validate(|(ty, text), e, emitter| {
            let ty = Type::from_name(&ty.name).unwrap_or(Type::Timestamp);
            let stored = match ty {
                Type::Date => crate::value::date(&text.value),
                _ => crate::value::timestamp(&text.value),
            };
            match stored {
                Some(value) => ExprKind::Time {
                    ty,
                    value: value.into(),
                },
                _ => {
                    emitter.emit(SyntaxError::bad_time(e.span(), ty, &text.value));
                    ExprKind::Error
                }
            }
        })
}

/// `(expr)`: the inner expression, spanning the brackets.
fn bracketed<'t>(expr: impl Parse<'t, Expr>) -> impl Parse<'t, Expr> {
    expr.delimited_by(just(Token::LParen), just(Token::RParen))
        .map_with(|inner: Expr, e| Expr {
            kind: inner.kind,
            span: e.span(),
        })
}

/// The operators over `atom`, by precedence (docs/language.md).
fn with_operators<'t>(
    atom: impl Parse<'t, Expr>,
    expr: impl Parse<'t, Expr>,
) -> impl Parse<'t, Expr> {
    atom.pratt((
        infix(left(1), just(Token::Or).to(BinaryOp::Or), |l, op, r, _| {
            binary(op, l, r)
        }),
        infix(
            left(2),
            just(Token::And).to(BinaryOp::And),
            |l, op, r, _| binary(op, l, r),
        ),
        prefix(3, just(Token::Not), |_, operand, e| {
            unary(UnaryOp::Not, e.span(), operand)
        }),
        infix(none(4), comparison_op(), |lhs, op, rhs, _| {
            binary(op, lhs, rhs)
        }),
        infix(none(4), like_op(), |lhs, negated, rhs, _| {
            like(lhs, negated, rhs)
        }),
        postfix(
            4,
            is_null_suffix(),
            |operand, (negated, end): (bool, Span), _| is_null(operand, negated, end),
        ),
        postfix(
            4,
            in_list_suffix(expr),
            |operand, (negated, list, end): (bool, Vec<Expr>, Span), _| {
                in_list(operand, negated, list, end)
            },
        ),
        infix(left(5), additive_op(), |lhs, op, rhs, _| binary(op, lhs, rhs)),
        infix(left(6), multiplicative_op(), |lhs, op, rhs, _| {
            binary(op, lhs, rhs)
        }),
        prefix(7, just(Token::Minus), |_, operand, e| {
            unary(UnaryOp::Neg, e.span(), operand)
        }),
    ))
}

// One `select!` per precedence level: a failed operator costs one token test.

fn comparison_op<'t>() -> impl Parse<'t, BinaryOp> {
    select! {
        Token::Eq => BinaryOp::Eq,
        Token::EqEq => BinaryOp::Eq,
        Token::NotEq => BinaryOp::NotEq,
        Token::LtGt => BinaryOp::NotEq,
        Token::Le => BinaryOp::Le,
        Token::Lt => BinaryOp::Lt,
        Token::Ge => BinaryOp::Ge,
        Token::Gt => BinaryOp::Gt,
    }
}

fn additive_op<'t>() -> impl Parse<'t, BinaryOp> {
    select! {
        Token::Plus => BinaryOp::Add,
        Token::Minus => BinaryOp::Sub,
        Token::Concat => BinaryOp::Concat,
    }
}

fn multiplicative_op<'t>() -> impl Parse<'t, BinaryOp> {
    select! {
        Token::Star => BinaryOp::Mul,
        Token::Slash => BinaryOp::Div,
        Token::Percent => BinaryOp::Rem,
    }
}

/// An optional `not`: whether it is there.
fn negated<'t>() -> impl Parse<'t, bool> {
    just(Token::Not).or_not().map(|n| n.is_some())
}

/// `is [not] null`: whether negated, and the span of the suffix.
fn is_null_suffix<'t>() -> impl Parse<'t, (bool, Span)> {
    just(Token::Is)
        .ignore_then(negated())
        .then_ignore(just(Token::Null))
        .map_with(|negated, e| (negated, e.span()))
}

/// `[not] in (a, b, ...)`: whether negated, the list, and the span of the suffix.
fn in_list_suffix<'t>(expr: impl Parse<'t, Expr>) -> impl Parse<'t, (bool, Vec<Expr>, Span)> {
    negated()
        .then_ignore(just(Token::In))
        .then(parenthesized(expr))
        .map_with(|(negated, list), e| (negated, list, e.span()))
}

/// `[not] like`: whether negated.
fn like_op<'t>() -> impl Parse<'t, bool> {
    negated().then_ignore(just(Token::Like))
}

fn like(lhs: Expr, negated: bool, rhs: Expr) -> Expr {
    let span = lhs.span.join(rhs.span);
    let (operand, pattern) = (Box::new(lhs), Box::new(rhs));
    Expr {
        kind: ExprKind::Like {
            operand,
            pattern,
            negated,
        },
        span,
    }
}

fn is_null(operand: Expr, negated: bool, end: Span) -> Expr {
    let span = operand.span.join(end);
    Expr {
        kind: ExprKind::IsNull {
            operand: Box::new(operand),
            negated,
        },
        span,
    }
}

fn in_list(operand: Expr, negated: bool, list: Vec<Expr>, end: Span) -> Expr {
    let span = operand.span.join(end);
    Expr {
        kind: ExprKind::InList {
            operand: Box::new(operand),
            list,
            negated,
        },
        span,
    }
}

fn binary(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
    let span = lhs.span.join(rhs.span);
    Expr {
        kind: ExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        span,
    }
}

/// `-` before a number literal folds into the literal, so `-1` is the integer -1.
fn unary(op: UnaryOp, span: Span, operand: Expr) -> Expr {
    let kind = match (op, operand.kind) {
        (UnaryOp::Neg, ExprKind::Int(n)) => ExprKind::Int(-n),
        (UnaryOp::Neg, ExprKind::Float(x)) => ExprKind::Float(-x),
        (op, kind) => ExprKind::Unary {
            op,
            operand: Box::new(Expr {
                kind,
                span: operand.span,
            }),
        },
    };
    Expr { kind, span }
}

fn literal<'t>(src: &'t str) -> impl Parse<'t, ExprKind> {
    let number = any()
        .filter(|t: &Token| {
            matches!(
                t,
                Token::Int | Token::Float | Token::Duration | Token::BadNumber
            )
        })
        .validate(move |t, e, emitter| {
            let span: Span = e.span();
            let text = &src[span.range()];
            match t {
                Token::Int => text.parse().map(ExprKind::Int).unwrap_or_else(|_| {
                    emitter.emit(SyntaxError::out_of_range(span, "integer", i64::MAX as u64));
                    ExprKind::Error
                }),
                Token::Float => text.parse().map(ExprKind::Float).unwrap_or(ExprKind::Error),
                Token::Duration => match duration_parts(text) {
                    Some((amount, unit, millis)) => ExprKind::Duration {
                        amount,
                        unit,
                        millis,
                    },
                    None => {
                        emitter.emit(SyntaxError::out_of_range(span, "duration", u64::MAX));
                        ExprKind::Error
                    }
                },
                // Already reported by the lexer.
                _ => ExprKind::Error,
            }
        });
    choice((
        number,
        string(src).map(|s| ExprKind::Str(s.value)),
        just(Token::True).to(ExprKind::Bool(true)),
        just(Token::False).to(ExprKind::Bool(false)),
        just(Token::Null).to(ExprKind::Null),
    ))
}

/// One argument: `name: value`, `name = value`, or a positional value.
pub fn arg<'t>(src: &'t str, expr: impl Parse<'t, Expr>) -> impl Parse<'t, Arg> {
    // Look ahead for `name:` / `name =` before building anything.
    let name_then_binder = any()
        .filter(|t: &Token| super::is_name_token(*t))
        .then(one_of([Token::Colon, Token::Eq]))
        .rewind();
    let named = name_then_binder
        .ignore_then(name(src))
        .then_ignore(one_of([Token::Colon, Token::Eq]))
        .then(expr.clone())
        .map(|(name, value)| Arg {
            name: Some(name),
            value,
        });
    named.or(expr.map(|value| Arg { name: None, value }))
}

/// `name(args)`: an activity or function call.
pub fn call_with<'t>(src: &'t str, expr: impl Parse<'t, Expr>) -> impl Parse<'t, Call> {
    name(src)
        .then(parenthesized(arg(src, expr)))
        .map_with(|(name, args), e| Call {
            name,
            args,
            span: e.span(),
        })
}
