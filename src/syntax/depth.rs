//! A guard run before parsing: refuses input that nests deeper than [`MAX_NESTING`], so that
//! neither the recursive parser nor any later pass over the tree can exhaust the stack.

use super::token::Token;
use super::{MAX_NESTING, starts_item};
use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::span::Span;

/// Operator precedence tiers, lowest first: a chain of one tier is one path down the tree.
const TIERS: usize = 6;

fn tier(token: Token) -> Option<usize> {
    use Token::*;
    Some(match token {
        Or => 0,
        And => 1,
        Not => 2,
        Is | In | Like | Eq | EqEq | NotEq | LtGt | Lt | Le | Gt | Ge => 3,
        Plus | Minus | Concat => 4,
        Star | Slash | Percent => 5,
        _ => return None,
    })
}

/// The operators of one bracket level of one expression. The tree they build is at most as
/// deep as the sum, over the tiers, of the longest run of that tier's operators between
/// operators of a lower tier: `a = 1 or b = 2 or ...` is one `or` per term deep, not two.
#[derive(Default)]
struct Level {
    runs: [usize; TIERS],
    longest: [usize; TIERS],
    /// The sum of `longest`: what this level adds to the depth.
    counted: usize,
}

impl Level {
    /// Counts an operator; whether it made the tree deeper.
    fn operator(&mut self, tier: usize) -> bool {
        self.runs[tier] += 1;
        self.runs[tier + 1..].iter_mut().for_each(|r| *r = 0);
        if self.runs[tier] > self.longest[tier] {
            self.longest[tier] = self.runs[tier];
            self.counted += 1;
            return true;
        }
        false
    }
}

/// Nesting counts open brackets plus the depth the operators at each bracket level add to the
/// tree ([`Level`]); a token that ends an expression resets its level, and each item starts
/// afresh. On failure, returns the index of the token where it is exceeded.
pub fn check(tokens: &[(Token, Span)], file: FileId) -> Result<(), (usize, Box<Diagnostic>)> {
    let mut levels: Vec<Level> = vec![Level::default()];
    let mut depth = 0usize;
    for (index, &(token, span)) in tokens.iter().enumerate() {
        use Token::*;
        if starts_item(tokens, index) {
            levels = vec![Level::default()];
            depth = 0;
        }
        match token {
            LParen | LBracket | LBrace => {
                levels.push(Level::default());
                depth += 1;
            }
            RParen | RBracket | RBrace => {
                if levels.len() > 1 {
                    depth -= 1 + levels.pop().map_or(0, |l| l.counted);
                }
            }
            _ if tier(token).is_some() => {
                if let (Some(level), Some(t)) = (levels.last_mut(), tier(token))
                    && level.operator(t)
                {
                    depth += 1;
                }
            }
            Ident | QuotedIdent | Int | Float | Duration | SingleQuoted | DoubleQuoted
            | TripleQuoted | Null | True | False | Version | To | Until | End | Asc | Desc
            | Exec | Sh | Signal | Query | Dot => {}
            _ => {
                if let Some(level) = levels.last_mut() {
                    depth -= level.counted;
                    *level = Level::default();
                }
            }
        }
        if depth > MAX_NESTING {
            return Err((index, Box::new(Diagnostic::error(
                Code::E0012,
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
