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
    recursive(move |expr| {
        // A name, then maybe `(args)` (a call) or `.name` (a field): the name is read once.
        let named = name(src)
            .then(
                choice((
                    parenthesized(arg(src, expr.clone().boxed())).map(Ok),
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
            });
        let literal = literal(src);
        // `activate(...)` may stand as a value: a flow hook such as `on_failure: activate('log')`.
        let activate = just(Token::Activate)
            .map_with(|_, e| Ident {
                name: "activate".into(),
                span: e.span(),
            })
            .then(parenthesized(arg(src, expr.clone().boxed())))
            .map_with(|(name, args), e| {
                ExprKind::Call(Box::new(Call {
                    name,
                    args,
                    span: e.span(),
                }))
            });
        let list = expr
            .clone()
            .separated_by(just(Token::Comma))
            .allow_trailing()
            .collect::<Vec<_>>()
            .map(exact)
            .delimited_by(just(Token::LBracket), just(Token::RBracket))
            .map(ExprKind::List);
        // `date '...'` and `timestamp '...'`: a typed literal, checked where it is written.
        let time = name(src)
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
            });
        let atom = choice((
            literal,
            time,
            named,
            just(Token::Star).to(ExprKind::Star),
            activate,
            list,
        ))
        .map_with(|kind, e| Expr {
            kind,
            span: e.span(),
        })
        .or(expr
            .clone()
            .delimited_by(just(Token::LParen), just(Token::RParen))
            .map_with(|inner: Expr, e| Expr {
                kind: inner.kind,
                span: e.span(),
            }))
        .labelled(Expected::Expression)
        .boxed();

        // One `select!` per precedence level: a failed operator costs one token test.
        let comparison = select! {
            Token::Eq => BinaryOp::Eq,
            Token::EqEq => BinaryOp::Eq,
            Token::NotEq => BinaryOp::NotEq,
            Token::LtGt => BinaryOp::NotEq,
            Token::Le => BinaryOp::Le,
            Token::Lt => BinaryOp::Lt,
            Token::Ge => BinaryOp::Ge,
            Token::Gt => BinaryOp::Gt,
        };
        let additive = select! {
            Token::Plus => BinaryOp::Add,
            Token::Minus => BinaryOp::Sub,
            Token::Concat => BinaryOp::Concat,
        };
        let multiplicative = select! {
            Token::Star => BinaryOp::Mul,
            Token::Slash => BinaryOp::Div,
            Token::Percent => BinaryOp::Rem,
        };
        let negated = just(Token::Not).or_not().map(|n| n.is_some());
        let is_null = just(Token::Is)
            .ignore_then(negated)
            .then_ignore(just(Token::Null))
            .map_with(|negated, e| (negated, e.span()));
        let in_list = negated
            .then_ignore(just(Token::In))
            .then(parenthesized(expr.clone()))
            .map_with(|(negated, list), e| (negated, list, e.span()));
        let like = negated.then_ignore(just(Token::Like));

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
            infix(none(4), comparison, |lhs, op, rhs, _| binary(op, lhs, rhs)),
            infix(none(4), like, |lhs: Expr, negated, rhs: Expr, _| {
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
            }),
            postfix(
                4,
                is_null,
                |operand: Expr, (negated, end): (bool, Span), _| {
                    let span = operand.span.join(end);
                    Expr {
                        kind: ExprKind::IsNull {
                            operand: Box::new(operand),
                            negated,
                        },
                        span,
                    }
                },
            ),
            postfix(
                4,
                in_list,
                |operand: Expr, (negated, list, end): (bool, Vec<Expr>, Span), _| {
                    let span = operand.span.join(end);
                    Expr {
                        kind: ExprKind::InList {
                            operand: Box::new(operand),
                            list,
                            negated,
                        },
                        span,
                    }
                },
            ),
            infix(left(5), additive, |lhs, op, rhs, _| binary(op, lhs, rhs)),
            infix(left(6), multiplicative, |lhs, op, rhs, _| {
                binary(op, lhs, rhs)
            }),
            prefix(7, just(Token::Minus), |_, operand, e| {
                unary(UnaryOp::Neg, e.span(), operand)
            }),
        ))
        .boxed()
    })
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
