//! The parser's error type and its conversion to diagnostics.
//!
//! chumsky records an error for every alternative that fails, so the error type is on the hot
//! path of every parse, valid or not. [`SyntaxError`] keeps what was expected as bit sets
//! (tokens and [`Expected`] labels) that merge with an OR and never allocate.

use super::Span;
use super::unclosed::{Brackets, closer_of};
use crate::diagnostics::Code;
use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::syntax::lexer::{
    QUOTE_BEFORE_TRIPLE_CLOSE_HELP, closing_triple_quotes, follows_triple_quotes,
};
use crate::syntax::token::Token;
use chumsky::DefaultExpected;
use chumsky::error::{Error, LabelError};
use chumsky::util::MaybeRef;

/// Names for groups of tokens, used with `.labelled(...)` so messages say "a name" rather
/// than listing every token a name may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    Name,
    String,
    Integer,
    Expression,
    Operator,
    Item,
    Member,
    Source,
    SourceRef,
    StageState,
    ConfigEntry,
    Command,
    ActivityBody,
    PipelineOp,
    TestStatement,
}

impl Expected {
    const ALL: [Expected; 15] = [
        Expected::Name,
        Expected::String,
        Expected::Integer,
        Expected::Expression,
        Expected::Operator,
        Expected::Item,
        Expected::Member,
        Expected::Source,
        Expected::SourceRef,
        Expected::StageState,
        Expected::ConfigEntry,
        Expected::Command,
        Expected::ActivityBody,
        Expected::PipelineOp,
        Expected::TestStatement,
    ];

    fn describe(self) -> &'static str {
        match self {
            Expected::Name => "a name",
            Expected::String => "a string",
            Expected::Integer => "an integer",
            Expected::Expression => "an expression",
            Expected::Operator => "an operator",
            Expected::Item => "`flow`, `activity` or `run`",
            Expected::Member => "a `stage`, `signal` or `query`",
            Expected::Source => "a source (`from`, `merge`, `call`, `->` or an activity call)",
            Expected::SourceRef => "a stage, table, file or inline rows",
            Expected::StageState => "`stage.state`",
            Expected::ConfigEntry => "a config entry `key: value`",
            Expected::Command => "`exec(...)` or `sh(...)`",
            Expected::ActivityBody => "`= exec(...)` or `= sh(...)`",
            Expected::TestStatement => "`call`, `mock`, `signal`, `real`, `upstream` or `expect`",
            Expected::PipelineOp => {
                "an operator such as `where`, `select`, `each` or an activity call"
            }
        }
    }
}

/// A problem the parser found, carrying our own code where the parser raises it on purpose.
#[derive(Clone, Debug)]
pub struct SyntaxError {
    span: Span,
    found: Option<Token>,
    tokens: u128,
    labels: u16,
    end_of_input: bool,
    custom: Option<Box<Custom>>,
}

#[derive(Clone, Debug)]
struct Custom {
    code: Code,
    message: String,
    label: String,
    help: String,
}

impl SyntaxError {
    /// An error with its own code, message, label and help.
    pub fn custom(code: Code, span: Span, message: String, label: &str, help: &str) -> Self {
        SyntaxError {
            span,
            found: None,
            tokens: 0,
            labels: 0,
            end_of_input: false,
            custom: Some(Box::new(Custom {
                code,
                message,
                label: label.to_string(),
                help: help.to_string(),
            })),
        }
    }

    pub fn out_of_range(span: Span, what: &str, max: u64) -> Self {
        SyntaxError::custom(
            Code::E0007,
            span,
            format!("{what} out of range"),
            &format!("larger than {max}"),
            "use a smaller value",
        )
    }

    /// `date '...'` or `timestamp '...'` whose text is not one.
    pub fn bad_time(span: Span, ty: crate::syntax::ast::Type, text: &str) -> Self {
        let (what, forms) = match ty {
            crate::syntax::ast::Type::Date => ("a date", "'YYYY-MM-DD', as in date '2026-12-01'"),
            _ => (
                "a timestamp",
                "'YYYY-MM-DD HH:MM:SS' (UTC) or RFC 3339, as in timestamp '2026-12-01T09:00:00Z'",
            ),
        };
        SyntaxError::custom(
            Code::E0015,
            span,
            format!("'{text}' is not {what}"),
            &format!("not {what}"),
            &format!("write {forms}"),
        )
    }

    pub fn span(&self) -> Span {
        self.span
    }

    fn empty(span: Span, found: Option<Token>) -> Self {
        SyntaxError {
            span,
            found,
            tokens: 0,
            labels: 0,
            end_of_input: false,
            custom: None,
        }
    }

    fn expect(&mut self, expected: DefaultExpected<'_, Token>) {
        match expected {
            DefaultExpected::Token(t) => self.tokens |= 1 << (*t as u8),
            DefaultExpected::EndOfInput => self.end_of_input = true,
            _ => {}
        }
    }
}

impl<'t> Error<'t, super::In<'t>> for SyntaxError {
    fn merge(mut self, other: Self) -> Self {
        if self.custom.is_none() {
            if other.custom.is_some() {
                return other;
            }
            self.tokens |= other.tokens;
            self.labels |= other.labels;
            self.end_of_input |= other.end_of_input;
            self.found = self.found.or(other.found);
        }
        self
    }
}

impl<'t> LabelError<'t, super::In<'t>, DefaultExpected<'t, Token>> for SyntaxError {
    fn expected_found<E: IntoIterator<Item = DefaultExpected<'t, Token>>>(
        expected: E,
        found: Option<MaybeRef<'t, Token>>,
        span: Span,
    ) -> Self {
        let mut error = SyntaxError::empty(span, found.map(|t| *t));
        expected.into_iter().for_each(|e| error.expect(e));
        error
    }

    fn merge_expected_found<E: IntoIterator<Item = DefaultExpected<'t, Token>>>(
        mut self,
        expected: E,
        found: Option<MaybeRef<'t, Token>>,
        _span: Span,
    ) -> Self {
        if self.custom.is_none() {
            expected.into_iter().for_each(|e| self.expect(e));
            self.found = self.found.or(found.map(|t| *t));
        }
        self
    }
}

impl<'t> LabelError<'t, super::In<'t>, Expected> for SyntaxError {
    fn expected_found<E: IntoIterator<Item = Expected>>(
        expected: E,
        found: Option<MaybeRef<'t, Token>>,
        span: Span,
    ) -> Self {
        let mut error = SyntaxError::empty(span, found.map(|t| *t));
        for label in expected {
            error.labels |= 1 << label as u16;
        }
        error
    }

    fn label_with(&mut self, label: Expected) {
        if self.custom.is_none() {
            self.tokens = 0;
            self.end_of_input = false;
            self.labels = 1 << label as u16;
        }
    }
}

const ALL_TOKENS: [Token; 90] = {
    use Token::*;
    [
        Flow,
        Stage,
        Activity,
        Run,
        From,
        Merge,
        With,
        If,
        And,
        Or,
        Not,
        Is,
        Null,
        In,
        Like,
        True,
        False,
        As,
        On,
        By,
        Case,
        Else,
        Where,
        Select,
        Join,
        Group,
        Order,
        Limit,
        Save,
        Route,
        Fork,
        Each,
        Wait,
        Activate,
        Call,
        Depends,
        While,
        Version,
        To,
        Until,
        End,
        Asc,
        Desc,
        Exec,
        Sh,
        Signal,
        Pool,
        Query,
        Ident,
        QuotedIdent,
        Int,
        Float,
        Duration,
        SingleQuoted,
        DoubleQuoted,
        TripleQuoted,
        LParen,
        RParen,
        LBracket,
        RBracket,
        LBrace,
        RBrace,
        Comma,
        Colon,
        Semi,
        Dot,
        At,
        Pipe,
        Arrow,
        Eq,
        EqEq,
        NotEq,
        LtGt,
        Lt,
        Le,
        Gt,
        Ge,
        Plus,
        Minus,
        Star,
        Slash,
        Percent,
        Concat,
        UnterminatedSingle,
        UnterminatedDouble,
        UnterminatedTriple,
        UnterminatedQuotedIdent,
        UnterminatedComment,
        BadNumber,
        Unknown,
    ]
};

pub fn to_diagnostic(
    error: SyntaxError,
    src: &str,
    file: FileId,
    next: Option<(Token, Span)>,
    brackets: &Brackets,
) -> Diagnostic {
    if let Some(custom) = error.custom {
        let mut d = Diagnostic::error(custom.code, file, error.span, custom.message)
            .with_label(custom.label);
        if !custom.help.is_empty() {
            d = d.with_help(custom.help);
        }
        return d;
    }
    let mut wanted: Vec<String> = ALL_TOKENS
        .iter()
        .filter(|&&t| error.tokens & (1 << t as u8) != 0)
        .map(|t| t.describe().to_string())
        .chain(
            Expected::ALL
                .iter()
                .filter(|&&l| error.labels & (1 << l as u16) != 0)
                .map(|l| l.describe().to_string()),
        )
        .collect();
    if error.end_of_input {
        wanted.push("end of file".to_string());
    }
    // The end of a run of items is not the end of the file: what follows is the next item.
    let (found, span) = match (error.found, next) {
        (None, Some((token, span))) if error.span.start == span.start => (Some(token), span),
        _ => (error.found, error.span),
    };
    if let Some(d) = unclosed_bracket(&error, found, span, src, file, brackets) {
        return d;
    }
    if error.labels & (1 << Expected::ActivityBody as u16) != 0 {
        return activity_without_command(found, span, src, file);
    }
    expected_found(wanted, found, span, src, file)
}

/// An activity header with nothing after it: what is missing is a command, not a token.
fn activity_without_command(
    found: Option<Token>,
    span: Span,
    src: &str,
    file: FileId,
) -> Diagnostic {
    let code = if found.is_none() {
        Code::E0011
    } else {
        Code::E0010
    };
    let found_text = describe_found(found, span, src);
    Diagnostic::error(
        code,
        file,
        span,
        format!("expected the activity's command, found {found_text}"),
    )
    .with_label(format!("expected {}", Expected::ActivityBody.describe()))
    .with_help(
        "an activity needs `= exec('program', ...)` or `= sh('...')` to say what it runs, \
         as in `activity greet(name: string) = exec('echo', name)`",
    )
}

/// Reports an error that comes from a bracket never closed at that bracket: the parser only
/// notices where the item runs out, or where it wanted the closer.
fn unclosed_bracket(
    error: &SyntaxError,
    found: Option<Token>,
    span: Span,
    src: &str,
    file: FileId,
    brackets: &Brackets,
) -> Option<Diagnostic> {
    // An item keyword that starts a line begins the next item, so the one before ended there.
    let line_start = src[..span.start as usize]
        .rsplit('\n')
        .next()
        .is_some_and(|before| before.trim().is_empty());
    let next_item = matches!(found, Some(Token::Flow | Token::Activity | Token::Run)) && line_start;
    let at_end = error.found.is_none() || next_item;
    let wanted = |closer: Token| error.tokens & (1 << closer as u8) != 0;
    let blame = brackets.blame(span.start, at_end, wanted)?;
    let (opener, closer) = (blame.opener.describe(), closer_of(blame.opener));
    let code = if found.is_none() {
        Code::E0011
    } else {
        Code::E0010
    };
    let mut d = Diagnostic::error(code, file, blame.span, format!("unclosed {opener}"))
        .with_label(format!("this {opener} is never closed"));
    if let Some((token, enclosing)) = blame.enclosing {
        let label = format!("this {} is never closed either", token.describe());
        d = d.with_secondary(file, enclosing, label);
    }
    let ends = match found {
        None => "the file ends here",
        Some(_) if next_item => "the next item starts here",
        Some(_) => "still open here",
    };
    let help = match closer {
        Token::RParen => "close the parenthesis with `)`",
        Token::RBracket => "close the list with `]`",
        _ => "close the block with `}`",
    };
    Some(d.with_secondary(file, span, ends).with_help(help))
}

fn describe_found(found: Option<Token>, span: Span, src: &str) -> String {
    match found {
        None => "end of file".to_string(),
        Some(
            t @ (Token::Ident | Token::QuotedIdent | Token::Int | Token::Float | Token::Duration),
        ) => {
            format!("{} `{}`", t.describe(), &src[span.range()])
        }
        Some(t) => t.describe().to_string(),
    }
}

fn expected_found(
    mut wanted: Vec<String>,
    found: Option<Token>,
    span: Span,
    src: &str,
    file: FileId,
) -> Diagnostic {
    group_operators(&mut wanted);
    // `;` may end anything; listing it only adds noise.
    if wanted.len() > 1 {
        wanted.retain(|w| w != Token::Semi.describe());
    }
    wanted.sort();
    wanted.dedup();
    let found_text = describe_found(found, span, src);
    let message = match wanted.as_slice() {
        [] => format!("unexpected {found_text}"),
        [one] => format!("expected {one}, found {found_text}"),
        [init @ .., last] => format!("expected {} or {last}, found {found_text}", init.join(", ")),
    };
    let label = match wanted.len() {
        1..=3 => format!("expected {}", wanted.join(" or ")),
        _ => "not expected here".to_string(),
    };
    let code = if found.is_none() {
        Code::E0011
    } else {
        Code::E0010
    };
    if chained_comparison(&wanted, found) {
        return Diagnostic::error(code, file, span, "comparisons do not chain")
            .with_label("a second comparison")
            .with_help("write `a < b and b < c`, or add parentheses");
    }
    let mut d = Diagnostic::error(code, file, span, message).with_label(label);
    match found {
        Some(Token::Stage) if wanted.iter().any(|w| w.contains("`flow`")) => {
            d = d.with_help("stages belong inside a flow: `flow name = { stage ... }`");
        }
        Some(Token::DoubleQuoted) if follows_triple_quotes(src, span.start as usize) => {
            d = d
                .with_secondary(
                    file,
                    closing_triple_quotes(span.start),
                    "the triple-quoted string ends here",
                )
                .with_help(QUOTE_BEFORE_TRIPLE_CLOSE_HELP);
        }
        Some(t) if t.is_keyword() && wanted.iter().any(|w| w == "a name") => {
            let word = &src[span.range()];
            d = d.with_help(format!(
                "`{word}` is a keyword; back-quote it (`` `{word}` ``) to use it as a name"
            ));
        }
        _ => {
            if let Some(help) = likely_fix(&wanted, found) {
                d = d.with_help(help);
            }
        }
    }
    d
}

/// After an operand every operator could follow; listing twenty of them hides what matters.
fn group_operators(wanted: &mut Vec<String>) {
    use Token::*;
    let operators = [
        Or, And, Not, Is, In, Like, Eq, EqEq, NotEq, LtGt, Lt, Le, Gt, Ge, Plus, Minus, Star,
        Slash, Percent, Concat,
    ]
    .map(Token::describe);
    let prefix_only = wanted.iter().any(|w| w == Expected::Expression.describe());
    let count = wanted
        .iter()
        .filter(|w| operators.contains(&w.as_str()))
        .count();
    if count >= 3 || prefix_only && count > 0 {
        wanted.retain(|w| !operators.contains(&w.as_str()));
        if !prefix_only {
            wanted.push(Expected::Operator.describe().to_string());
        }
    }
}

/// A comparison is refused after an operand only when one comparison already precedes it.
fn chained_comparison(wanted: &[String], found: Option<Token>) -> bool {
    use Token::*;
    matches!(
        found,
        Some(Eq | EqEq | NotEq | LtGt | Lt | Le | Gt | Ge | Like | Is | In)
    ) && wanted.iter().any(|w| w == Expected::Operator.describe())
}

/// Help for the common slips: a missing `=`, `->`, `}`, `)` or `:`.
fn likely_fix(wanted: &[String], found: Option<Token>) -> Option<&'static str> {
    let wants = |t: Token| wanted.iter().any(|w| w == t.describe());
    if found == Some(Token::Eq) && wants(Token::Colon) {
        return Some("config entries and named arguments are written `key: value`");
    }

    let fixes = [
        (
            Token::Eq,
            "a definition needs `=` before its body: `stage name = from source`",
        ),
        (
            Token::Arrow,
            "route cases read `case <condition> -> <stage>`",
        ),
        (Token::Colon, "config entries read `key: value`"),
        (
            Token::RBrace,
            "a block opened with `{` must be closed with `}`",
        ),
        (Token::RParen, "close the parenthesis with `)`"),
        (Token::RBracket, "close the list with `]`"),
    ];
    fixes
        .into_iter()
        .find(|(t, _)| wants(*t))
        .map(|(_, help)| help)
}

#[cfg(test)]
mod tests {
    use super::ALL_TOKENS;

    #[test]
    fn every_token_fits_the_bit_set_and_is_listed_once() {
        for (i, t) in ALL_TOKENS.iter().enumerate() {
            assert_eq!(*t as usize, i, "{t:?} out of order");
        }
        assert!(ALL_TOKENS.len() <= 128);
    }
}
