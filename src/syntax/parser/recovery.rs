//! Recovery: after a syntax error, skip to the next place where parsing can sensibly resume,
//! keeping brackets balanced, so that later stages and flows are still read and checked.

use super::errors::SyntaxError;
use super::{Parse, Span};
use crate::diagnostics::Code;
use crate::syntax::token::Token;
use chumsky::prelude::*;

/// Where parsing resumes after an error.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// At the next `flow`, `activity` or `run`.
    Item,
    /// At the next `stage`, `signal` or `query`, or the `}` closing the flow.
    Member,
    /// At the next `|` of the stage body, or the end of the stage.
    Op,
    /// At the next `key:` of a config block, or its closing bracket.
    Entry,
}

fn starts_item(t: Token) -> bool {
    matches!(t, Token::Flow | Token::Activity | Token::Run)
}

fn starts_member(t: Token) -> bool {
    matches!(t, Token::Stage | Token::Signal | Token::Query) || starts_item(t)
}

fn is_name(t: Token) -> bool {
    matches!(t, Token::Ident | Token::QuotedIdent) || t.is_soft_keyword()
}

/// Skips at least one token up to the place `resume` names. Fails, consuming nothing, when the
/// next token already closes the enclosing block or (but for item recovery) starts the next
/// item, so the enclosing parser can take it.
pub fn skip_to<'t>(resume: Resume) -> impl Parse<'t, ()> {
    custom(move |inp| {
        let start = inp.cursor();
        // Open brackets since the error; a closer that matches none of them closes an
        // enclosing block, so skipping stops there.
        let mut open: Vec<Token> = Vec::new();
        let mut consumed = 0usize;
        while let Some(token) = inp.peek() {
            // Item keywords never appear inside a flow: stop there even inside open brackets.
            // Only item recovery may skip one first; elsewhere that would swallow the next item.
            let item = starts_item(token) && (token != Token::Run || next_is(inp, Token::Flow));
            if item && (consumed > 0 || resume != Resume::Item) {
                break;
            }
            if let Some(opener) = opener_of(token) {
                match open.iter().rposition(|&t| t == opener) {
                    Some(at) => open.truncate(at + 1),
                    None if resume == Resume::Item => open.push(opener),
                    None => break,
                }
            }
            if consumed > 0 && open.is_empty() {
                let at_boundary = match resume {
                    Resume::Item => false,
                    Resume::Member => starts_member(token),
                    Resume::Op => token == Token::Pipe || starts_member(token),
                    Resume::Entry => token == Token::Comma || is_name(token) && next_is_colon(inp),
                };
                if at_boundary {
                    break;
                }
            }
            match token {
                Token::LParen | Token::LBracket | Token::LBrace => open.push(token),
                Token::RParen | Token::RBracket | Token::RBrace => {
                    open.pop();
                }
                _ => {}
            }
            inp.skip();
            consumed += 1;
        }
        if consumed == 0 {
            let span: Span = inp.span_since(&start);
            return Err(SyntaxError::custom(
                Code::E0010,
                span,
                String::new(),
                "",
                "",
            ));
        }
        Ok(())
    })
}

fn opener_of(t: Token) -> Option<Token> {
    match t {
        Token::RParen => Some(Token::LParen),
        Token::RBracket => Some(Token::LBracket),
        Token::RBrace => Some(Token::LBrace),
        _ => None,
    }
}

fn next_is_colon<'t>(
    inp: &mut chumsky::input::InputRef<'t, '_, super::In<'t>, super::Extra<'t>>,
) -> bool {
    next_is(inp, Token::Colon)
}

/// Whether the token after the current one is `expected`.
fn next_is<'t>(
    inp: &mut chumsky::input::InputRef<'t, '_, super::In<'t>, super::Extra<'t>>,
    expected: Token,
) -> bool {
    let checkpoint = inp.save();
    inp.skip();
    let found = inp.peek() == Some(expected);
    inp.rewind(checkpoint);
    found
}
