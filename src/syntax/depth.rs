//! A guard run before parsing: refuses input that nests deeper than [`MAX_NESTING`], so that
//! neither the recursive parser nor any later pass over the tree can exhaust the stack.

use super::span::Span;
use super::token::Token;
use super::{MAX_NESTING, starts_item};
use crate::diagnostics::Diagnostic;
use crate::source::FileId;

/// Nesting counts open brackets plus operators chained at each bracket level (each operator
/// adds a level to the tree); a token that ends an expression resets its level's chain, and
/// each item starts afresh. On failure, returns the index of the token where it is exceeded.
pub fn check(tokens: &[(Token, Span)], file: FileId) -> Result<(), (usize, Box<Diagnostic>)> {
    let mut chains: Vec<usize> = vec![0];
    let mut depth = 0usize;
    for (index, &(token, span)) in tokens.iter().enumerate() {
        use Token::*;
        if starts_item(tokens, index) {
            chains = vec![0];
            depth = 0;
        }
        match token {
            LParen | LBracket | LBrace => {
                chains.push(0);
                depth += 1;
            }
            RParen | RBracket | RBrace => {
                if chains.len() > 1 {
                    depth -= 1 + chains.pop().unwrap_or(0);
                }
            }
            Or | And | Not | Is | In | Like | Eq | EqEq | NotEq | LtGt | Lt | Le | Gt | Ge
            | Plus | Minus | Star | Slash | Percent | Concat => {
                if let Some(chain) = chains.last_mut() {
                    *chain += 1;
                }
                depth += 1;
            }
            Ident | QuotedIdent | Int | Float | Duration | SingleQuoted | DoubleQuoted
            | TripleQuoted | Null | True | False | Version | To | Until | End | Asc | Desc
            | Exec | Sh | Signal | Query | Dot => {}
            _ => {
                if let Some(chain) = chains.last_mut() {
                    depth -= *chain;
                    *chain = 0;
                }
            }
        }
        if depth > MAX_NESTING {
            return Err((index, Box::new(Diagnostic::error(
                "E0012",
                file,
                span,
                format!("nesting deeper than {MAX_NESTING} levels"),
            )
            .with_label("too deep from here on")
            .with_help("split the expression into smaller parts or stages; wvflow skips the rest of this item"))));
        }
    }
    Ok(())
}
