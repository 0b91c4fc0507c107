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
    let unit = DurationUnit::from_suffix(&text[digits..])?;
    let millis = amount.checked_mul(unit.millis())?;
    Some((amount, unit, millis))
}

/// A number with a fraction written before a duration unit, as in `1.5h`: duration literals
/// take a whole number of their unit.
#[derive(Debug, PartialEq, Eq)]
pub struct FractionalDuration {
    pub unit: DurationUnit,
    /// The same duration as a whole number of that unit or of the longest smaller one that
    /// fits (`1.5h` is 90 `m`, `1.0h` is 1 `h`); `None` below a millisecond or out of range.
    pub whole: Option<(u64, DurationUnit)>,
}

/// `Some` when `text` is a decimal number followed by a known duration unit (`1.5h`).
pub fn fractional_duration(text: &str) -> Option<FractionalDuration> {
    let number_end = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (number, suffix) = text.split_at(number_end);
    let unit = DurationUnit::from_suffix(suffix)?;
    let (whole_part, fraction) = number.split_once('.')?;
    let whole = exact_millis(whole_part, fraction, unit).and_then(|ms| whole_duration(ms, unit));
    Some(FractionalDuration { unit, whole })
}

/// `whole_part.fraction` units in milliseconds, when that is a whole number of them and fits.
fn exact_millis(whole_part: &str, fraction: &str, unit: DurationUnit) -> Option<u64> {
    let fraction = fraction.trim_end_matches('0');
    let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let whole_part: u128 = whole_part.parse().ok()?;
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let scaled_millis = whole_part
        .checked_mul(scale)?
        .checked_add(fraction)?
        .checked_mul(u128::from(unit.millis()))?;
    if !scaled_millis.is_multiple_of(scale) {
        return None;
    }
    u64::try_from(scaled_millis / scale).ok()
}

/// `millis` written in `unit` when it is a whole number of it, else in the longest smaller
/// unit that divides it (a longer one would rewrite what the author chose: `24.0h` stays `24h`).
fn whole_duration(millis: u64, unit: DurationUnit) -> Option<(u64, DurationUnit)> {
    DurationUnit::LONGEST_FIRST
        .into_iter()
        .filter(|u| u.millis() <= unit.millis())
        .find(|u| millis.is_multiple_of(u.millis()))
        .map(|u| (millis / u.millis(), u))
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

    #[test]
    fn a_fractional_duration_is_rewritten_in_whole_units() {
        let whole = |text: &str| {
            fractional_duration(text)
                .and_then(|f| f.whole)
                .map(|(amount, unit)| format!("{amount}{}", unit.suffix()))
        };
        assert_eq!(whole("1.5h").as_deref(), Some("90m"));
        assert_eq!(whole("0.5s").as_deref(), Some("500ms"));
        assert_eq!(whole("1.5d").as_deref(), Some("36h"));
        assert_eq!(whole("2.25h").as_deref(), Some("135m"));
        assert_eq!(whole("1.0h").as_deref(), Some("1h"));
        assert_eq!(whole("24.000h").as_deref(), Some("24h"));
        assert_eq!(whole("0.0s").as_deref(), Some("0s"));
        // Below a millisecond, or out of range: no whole equivalent, and no panic.
        assert_eq!(whole("0.0005s"), None);
        assert_eq!(whole("99999999999999999999.5d"), None);
        assert_eq!(whole(&format!("1.{}1h", "0".repeat(60))), None);
        assert_eq!(
            fractional_duration("1.5h").map(|f| f.unit),
            Some(DurationUnit::H)
        );
        // Not a fraction, or not a unit: another problem.
        assert_eq!(fractional_duration("15h"), None);
        assert_eq!(fractional_duration("1.5min"), None);
    }
}
