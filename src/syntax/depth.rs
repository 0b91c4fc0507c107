//! A guard run before parsing: refuses input that nests deeper than [`MAX_NESTING`], so that
//! neither the recursive parser nor any later pass over the tree can exhaust the stack.

use super::MAX_NESTING;
use super::span::Span;
use super::token::Token;
use crate::diagnostics::Diagnostic;
use crate::source::FileId;

/// Nesting counts open brackets plus operators chained at each bracket level (each operator
/// adds a level to the tree); a token that ends an expression resets its level's chain.
pub fn check(tokens: &[(Token, Span)], file: FileId) -> Result<(), Diagnostic> {
    let mut chains: Vec<usize> = vec![0];
    let mut depth = 0usize;
    for &(token, span) in tokens {
        use Token::*;
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
            return Err(Diagnostic::error(
                "E0012",
                file,
                span,
                format!("nesting deeper than {MAX_NESTING} levels"),
            )
            .with_label("too deep from here on")
            .with_help("split the expression into smaller parts or stages; wvflow stops reading this file here"));
        }
    }
    Ok(())
}
