//! Brackets opened and never closed. The parser only notices a missing `}` where it runs out of
//! input, often far from the bracket; this pass finds the bracket itself, so that the report
//! can point there.

use super::Span;
use crate::syntax::starts_item;
use crate::syntax::token::Token;

/// The brackets of a run of items, matched item by item.
#[derive(Default)]
pub struct Brackets {
    /// Every opening bracket, in source order.
    openers: Vec<Opener>,
    /// The openers never closed, in source order.
    unclosed: Vec<usize>,
    /// For each token: where it starts and the innermost opener still open before it.
    innermost: Vec<(u32, Option<usize>)>,
    item_starts: Vec<u32>,
    /// Unterminated strings and names: each may have swallowed a closer.
    unterminated: Vec<u32>,
}

struct Opener {
    token: Token,
    span: Span,
    /// The opener this one was opened inside.
    enclosing: Option<usize>,
    item_start: u32,
    /// The indentation of the line it is on.
    indent: usize,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closed,
    /// Left open: at the closer (of an enclosing bracket) at this offset, or at the end of
    /// its item when `None`.
    LeftOpen(Option<u32>),
}

/// How many brackets of a kind a closer at the start of a line looks through for one whose
/// line is indented like its own.
const ALIGNED_SEARCH_DEPTH: usize = 16;

/// The brackets open at a point, innermost last, with the places of each kind in the stack
/// so that a closer finds its opener without walking over brackets of other kinds.
#[derive(Default)]
struct OpenStack {
    /// Indices into `Brackets::openers`.
    stack: Vec<usize>,
    /// For `(`, `[` and `{`: their places in `stack`, in order.
    by_kind: [Vec<usize>; 3],
}

fn kind_index(opener: Token) -> usize {
    match opener {
        Token::LParen => 0,
        Token::LBracket => 1,
        _ => 2,
    }
}

impl OpenStack {
    fn innermost(&self) -> Option<usize> {
        self.stack.last().copied()
    }

    fn of_kind(&self, opener: Token) -> &[usize] {
        &self.by_kind[kind_index(opener)]
    }

    fn push(&mut self, opener: usize, token: Token) {
        self.by_kind[kind_index(token)].push(self.stack.len());
        self.stack.push(opener);
    }

    /// Takes the brackets from place `at` of the stack on off it.
    fn take_from(&mut self, at: usize) -> Vec<usize> {
        for places in &mut self.by_kind {
            while places.last().is_some_and(|&place| place >= at) {
                places.pop();
            }
        }
        self.stack.split_off(at.min(self.stack.len()))
    }
}

/// An unclosed bracket a syntax error comes from.
pub struct Blame {
    pub opener: Token,
    pub span: Span,
    /// The unclosed bracket around it, when that one is still open at the error too.
    pub enclosing: Option<(Token, Span)>,
}

pub fn closer_of(opener: Token) -> Token {
    match opener {
        Token::LParen => Token::RParen,
        Token::LBracket => Token::RBracket,
        _ => Token::RBrace,
    }
}

fn opener_of(closer: Token) -> Token {
    match closer {
        Token::RParen => Token::LParen,
        Token::RBracket => Token::LBracket,
        _ => Token::LBrace,
    }
}

impl Brackets {
    pub fn match_up(src: &str, tokens: &[(Token, Span)]) -> Self {
        let mut brackets = Brackets::default();
        let mut open = OpenStack::default();
        let mut item_start = 0;
        let mut line_indent = 0;
        let mut previous_end = 0;
        for (index, &(token, span)) in tokens.iter().enumerate() {
            let start = span.start as usize;
            let first_on_line = index == 0 || src[previous_end..start].contains('\n');
            if first_on_line {
                line_indent = start - src[..start].rfind('\n').map_or(0, |at| at + 1);
            }
            previous_end = span.end as usize;
            brackets.innermost.push((span.start, open.innermost()));
            if starts_item(tokens, index) {
                brackets.leave_open(open.take_from(0), None);
                item_start = span.start;
                brackets.item_starts.push(item_start);
            }
            match token {
                Token::LParen | Token::LBracket | Token::LBrace => {
                    brackets.openers.push(Opener {
                        token,
                        span,
                        enclosing: open.innermost(),
                        item_start,
                        indent: line_indent,
                        state: State::Open,
                    });
                    open.push(brackets.openers.len() - 1, token);
                }
                Token::RParen | Token::RBracket | Token::RBrace => {
                    let openers = &brackets.openers;
                    let same_kind = open.of_kind(opener_of(token));
                    let innermost = same_kind.last().copied();
                    // A closer that starts its line closes the bracket on a line indented like
                    // its own: the brackets opened inside that one were left open. Blocks
                    // nest a few deep, so a few are searched.
                    let aligned = if first_on_line {
                        same_kind
                            .iter()
                            .rev()
                            .take(ALIGNED_SEARCH_DEPTH)
                            .find(|&&at| openers[open.stack[at]].indent == line_indent)
                            .copied()
                    } else {
                        None
                    };
                    // A closer of no open bracket is a stray one, which the parser reports.
                    if let Some(at) = aligned.or(innermost) {
                        let left_open = open.take_from(at + 1);
                        brackets.leave_open(left_open, Some(span.start));
                        for closed in open.take_from(at) {
                            brackets.openers[closed].state = State::Closed;
                        }
                    }
                }
                Token::UnterminatedSingle
                | Token::UnterminatedDouble
                | Token::UnterminatedTriple
                | Token::UnterminatedQuotedIdent => brackets.unterminated.push(span.start),
                _ => {}
            }
        }
        brackets.leave_open(open.take_from(0), None);
        brackets.unclosed.sort_unstable();
        brackets
    }

    fn leave_open(&mut self, openers: Vec<usize>, at: Option<u32>) {
        for opener in openers {
            self.openers[opener].state = State::LeftOpen(at);
            self.unclosed.push(opener);
        }
    }

    /// The unclosed bracket to blame for a syntax error at `at`, if the parser wanted its
    /// closer there. At the end of an item (`at_end`) that is the last bracket the item left
    /// open, also when the parser wanted something else because a closer further on was taken
    /// for this bracket's; elsewhere, the innermost bracket open at `at`.
    pub fn blame(&self, at: u32, at_end: bool, wanted: impl Fn(Token) -> bool) -> Option<Blame> {
        let blamed = if at_end {
            // The item before `at`: at the first token of an item, the parser left the one
            // before.
            let item = self.item_starts.partition_point(|&start| start < at);
            let item_start = *self.item_starts.get(item.checked_sub(1)?)?;
            let before = self
                .unclosed
                .partition_point(|&o| self.openers[o].span.start < at);
            let last = self.unclosed[before.checked_sub(1)?];
            let opener = &self.openers[last];
            let left_at_closer = matches!(opener.state, State::LeftOpen(Some(_)));
            (opener.item_start == item_start && (left_at_closer || wanted(closer_of(opener.token))))
                .then_some(last)?
        } else {
            let token = self.innermost.partition_point(|&(start, _)| start < at);
            let innermost = self.innermost.get(token)?.1?;
            let opener = &self.openers[innermost];
            (opener.state != State::Closed && wanted(closer_of(opener.token)))
                .then_some(innermost)?
        };
        let opener = &self.openers[blamed];
        // A closer inside an unterminated string or name is not missing: the lexer reported
        // the string, and this error follows from it.
        let after = self
            .unterminated
            .partition_point(|&u| u < opener.span.start);
        if self.unterminated.get(after).is_some_and(|&u| u < at) {
            return None;
        }
        let enclosing = opener
            .enclosing
            .map(|o| &self.openers[o])
            .filter(|o| match o.state {
                State::Open | State::Closed => false,
                State::LeftOpen(at_closer) => at_closer.is_none_or(|closer| closer >= at),
            })
            .map(|o| (o.token, o.span));
        Some(Blame {
            opener: opener.token,
            span: opener.span,
            enclosing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Brackets;
    use crate::source::FileId;
    use crate::syntax::lexer::lex;

    /// Where the bracket blamed for running out of input opens.
    fn blamed_at_end(src: &str) -> Option<usize> {
        let (tokens, _) = lex(src, FileId(0));
        let brackets = Brackets::match_up(src, &tokens);
        let blame = brackets.blame(src.len() as u32, true, |_| true)?;
        Some(blame.span.start as usize)
    }

    #[test]
    fn a_closer_aligned_with_an_outer_block_leaves_the_inner_one_open() {
        let src = "flow f = {\n  stage a with {\n    retries: 2\n  = from t\n}\n";
        assert_eq!(blamed_at_end(src), src.find("{\n    retries"));
    }

    #[test]
    fn a_closer_aligned_with_no_block_closes_the_innermost() {
        let src = "flow f = {\n  stage a with {\n    retries: 2\n      }\n  = from t\n";
        assert_eq!(blamed_at_end(src), src.find('{'));
    }

    #[test]
    fn a_closer_on_the_line_of_other_tokens_closes_the_innermost() {
        let src = "flow f = {\n  stage a with { retries: 2 } = from t\n";
        assert_eq!(blamed_at_end(src), src.find('{'));
    }

    #[test]
    fn a_closer_swallowed_by_an_unterminated_name_is_not_missing() {
        assert_eq!(blamed_at_end("flow f = { stage s = from `odd }\n"), None);
    }

    #[test]
    fn an_item_that_closes_its_brackets_is_not_blamed_for_the_next() {
        let src = "flow f = { stage s = from t }\nactivity x(a: int)\n";
        assert_eq!(blamed_at_end(src), None);
    }
}
