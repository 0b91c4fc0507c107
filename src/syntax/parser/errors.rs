//! Turns chumsky's errors into diagnostics with codes, messages that say what was expected and
//! found, and help where a fix is likely.

use super::Span;
use crate::diagnostics::Diagnostic;
use crate::source::FileId;
use crate::syntax::token::Token;
use chumsky::error::{Rich, RichPattern, RichReason};

/// Separates the parts of a coded custom error inside chumsky's `String` reason.
const SEP: char = '\u{1f}';

/// A custom parse error with our own code, message, label and help.
pub fn custom<'t>(
    code: &str,
    span: Span,
    message: String,
    label: &str,
    help: &str,
) -> Rich<'t, Token, Span> {
    Rich::custom(span, format!("{code}{SEP}{message}{SEP}{label}{SEP}{help}"))
}

pub fn out_of_range<'t>(span: Span, what: &str, max: u64) -> Rich<'t, Token, Span> {
    custom(
        "E0007",
        span,
        format!("{what} out of range"),
        &format!("larger than {max}"),
        "use a smaller value",
    )
}

pub fn to_diagnostic(error: Rich<'_, Token, Span>, src: &str, file: FileId) -> Diagnostic {
    let span = *error.span();
    match error.reason() {
        RichReason::Custom(text) => {
            let mut parts = text.splitn(4, SEP);
            let code = parts.next().unwrap_or_default();
            let message = parts.next().unwrap_or_default();
            let label = parts.next().unwrap_or_default();
            let help = parts.next().unwrap_or_default();
            let mut d = Diagnostic::error(static_code(code), file, span, message).with_label(label);
            if !help.is_empty() {
                d = d.with_help(help);
            }
            d
        }
        RichReason::ExpectedFound { expected, found } => {
            let found = found.as_deref().copied();
            expected_found(expected, found, span, src, file)
        }
    }
}

/// Codes are `&'static str` in diagnostics; custom errors only ever carry codes from this list.
fn static_code(code: &str) -> &'static str {
    ["E0006", "E0007", "E0008", "E0009", "E0012", "E0013"]
        .into_iter()
        .find(|c| *c == code)
        .unwrap_or("E0010")
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
    expected: &[RichPattern<'_, Token>],
    found: Option<Token>,
    span: Span,
    src: &str,
    file: FileId,
) -> Diagnostic {
    let mut wanted: Vec<String> = expected
        .iter()
        .filter_map(|p| match p {
            RichPattern::Token(t) => Some(t.describe().to_string()),
            RichPattern::Label(l) => Some(l.to_string()),
            RichPattern::EndOfInput => Some("end of file".to_string()),
            RichPattern::Identifier(i) => Some(format!("`{i}`")),
            RichPattern::Any => Some("more input".to_string()),
            _ => None,
        })
        .collect();
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
    let code = if found.is_none() { "E0011" } else { "E0010" };
    let mut d = Diagnostic::error(code, file, span, message).with_label(label);
    match found {
        Some(Token::Stage) if wanted.iter().any(|w| w.contains("`flow`")) => {
            d = d.with_help("stages belong inside a flow: `flow name = { stage ... }`");
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
    let prefix_only = wanted.iter().any(|w| w == "an expression");
    let count = wanted
        .iter()
        .filter(|w| operators.contains(&w.as_str()))
        .count();
    if count >= 3 || prefix_only && count > 0 {
        wanted.retain(|w| !operators.contains(&w.as_str()));
        if !prefix_only {
            wanted.push("an operator".to_string());
        }
    }
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
