//! Turns the text of literal tokens into values: strings with their escapes, numbers, durations.

use super::ast::DurationUnit;
use super::token::Token;

/// The value of a string token. `Err` carries the byte offset (within `text`) and length of a bad
/// escape; the caller reports it. Unterminated strings give what is there (the lexer reported them).
pub fn string_value(token: Token, text: &str) -> Result<String, (usize, usize)> {
    match token {
        Token::TripleQuoted => Ok(text[3..text.len() - 3].to_string()),
        Token::UnterminatedTriple => Ok(text[3..].to_string()),
        Token::SingleQuoted | Token::DoubleQuoted => {
            unescape(&text[1..text.len() - 1], text.as_bytes()[0] as char)
                .map_err(|(at, len)| (at + 1, len))
        }
        _ => unescape(&text[1..], text.as_bytes()[0] as char).map_err(|(at, len)| (at + 1, len)),
    }
}

fn unescape(body: &str, quote: char) -> Result<String, (usize, usize)> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c == quote {
            // The lexer only lets a quote through when it is doubled.
            chars.next();
            out.push(quote);
        } else if c == '\\' {
            match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '\'')) => out.push('\''),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, other)) => return Err((at, 1 + other.len_utf8())),
                None => return Err((at, 1)),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Splits `30s` into amount and unit. `None` when the number overflows or the unit is unknown.
pub fn duration_parts(text: &str) -> Option<(u64, DurationUnit, u64)> {
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let amount: u64 = text[..digits].parse().ok()?;
    let unit = match &text[digits..] {
        "ms" => DurationUnit::Ms,
        "s" => DurationUnit::S,
        "m" => DurationUnit::M,
        "h" => DurationUnit::H,
        "d" => DurationUnit::D,
        _ => return None,
    };
    let millis = amount.checked_mul(unit.millis())?;
    Some((amount, unit, millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_take_escapes_and_doubled_quotes_but_triple_strings_are_raw() {
        assert_eq!(
            string_value(Token::SingleQuoted, r"'it''s\n'"),
            Ok("it's\n".into())
        );
        assert_eq!(
            string_value(Token::DoubleQuoted, r#""a\"b\\""#),
            Ok("a\"b\\".into())
        );
        assert_eq!(
            string_value(Token::TripleQuoted, r#""""echo '{"ok": 1}' \n""""#),
            Ok(r#"echo '{"ok": 1}' \n"#.into())
        );
        assert_eq!(string_value(Token::SingleQuoted, r"'a\qb'"), Err((2, 2)));
    }

    #[test]
    fn durations_convert_to_milliseconds_and_refuse_overflow() {
        assert_eq!(duration_parts("100ms"), Some((100, DurationUnit::Ms, 100)));
        assert_eq!(duration_parts("2h"), Some((2, DurationUnit::H, 7_200_000)));
        assert_eq!(duration_parts("99999999999999999d"), None);
        assert_eq!(duration_parts("5min"), None);
    }
}
