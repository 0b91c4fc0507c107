//! A message body read into a JSON-RPC message without copying its large strings twice.
//!
//! `serde_json` unescapes a string into a growing scratch buffer and then copies it into the
//! `String` of the value, so the 50 MB document of a `didOpen` would be held three times at
//! once (the body, the scratch buffer, the string). Here each string of [`LARGE`] bytes or more
//! is unescaped once, straight into a string of its size; the rest of the body, with a short
//! placeholder in its place, is parsed as usual, and the string is moved into the value. Any
//! surprise (an escape `serde_json` would refuse, a placeholder found where none was put)
//! falls back to parsing the body as it came, so the result is always `serde_json`'s.

use lsp_server::Message;
use serde_json::Value;

/// Strings shorter than this are left to `serde_json`.
const LARGE: usize = 64 * 1024;

/// What every placeholder starts with: a NUL, which a document's text does not hold.
const MARK: &str = "\u{0}wvflow-large-string:";

/// The message in `body`, as `serde_json::from_slice` reads it.
pub fn parse(body: &[u8]) -> serde_json::Result<Message> {
    if body.len() < LARGE {
        return serde_json::from_slice(body);
    }
    match parse_large(body) {
        Some(message) => Ok(message),
        None => serde_json::from_slice(body),
    }
}

fn parse_large(body: &[u8]) -> Option<Message> {
    let literals = large_strings(body);
    if literals.is_empty() {
        return None;
    }
    let mut strings = Vec::with_capacity(literals.len());
    let mut compact = Vec::with_capacity(body.len().min(1 << 20));
    let mut copied = 0;
    for (k, range) in literals.iter().enumerate() {
        strings.push(Some(unescape(&body[range.start + 1..range.end - 1])?));
        compact.extend_from_slice(&body[copied..range.start]);
        compact.extend_from_slice(format!("\"\\u0000{}{k}\"", &MARK[1..]).as_bytes());
        copied = range.end;
    }
    compact.extend_from_slice(&body[copied..]);
    let mut message: Message = serde_json::from_slice(&compact).ok()?;
    drop(compact);
    let value = match &mut message {
        Message::Request(r) => &mut r.params,
        Message::Notification(n) => &mut n.params,
        Message::Response(_) => return None,
    };
    put_back(value, &mut strings)?;
    strings.iter().all(Option::is_none).then_some(message)
}

/// The byte ranges (quotes included) of the string literals of [`LARGE`] bytes or more.
fn large_strings(body: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < body.len() && body[i] != b'"' {
            // An escape: the next byte is part of it, even a quote.
            i += if body[i] == b'\\' { 2 } else { 1 };
        }
        if i >= body.len() {
            break;
        }
        i += 1;
        if i - start >= LARGE {
            found.push(start..i);
        }
    }
    found
}

/// The text of a string literal's inside, or `None` where `serde_json` would refuse it (a
/// control character, a bad escape, a lone surrogate, bytes that are not UTF-8).
fn unescape(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let run = raw[i..]
            .iter()
            .position(|&b| b == b'\\' || b < 0x20)
            .map_or(raw.len(), |n| i + n);
        out.extend_from_slice(&raw[i..run]);
        i = run;
        if i == raw.len() {
            break;
        }
        if raw[i] != b'\\' {
            return None;
        }
        let escape = *raw.get(i + 1)?;
        i += 2;
        let c = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = hex4(raw.get(i..i + 4)?)?;
                i += 4;
                if (0xDC00..0xE000).contains(&first) {
                    return None;
                }
                if (0xD800..0xDC00).contains(&first) {
                    if raw.get(i..i + 2)? != b"\\u" {
                        return None;
                    }
                    let second = hex4(raw.get(i + 2..i + 6)?)?;
                    i += 6;
                    if !(0xDC00..0xE000).contains(&second) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))?
                } else {
                    char::from_u32(first)?
                }
            }
            _ => return None,
        };
        let mut utf8 = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
    let mut text = String::from_utf8(out).ok()?;
    text.shrink_to_fit();
    Some(text)
}

fn hex4(digits: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(digits).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// Moves each large string into the place of its placeholder; `None` when a placeholder is
/// not one that was put (or comes twice).
fn put_back(value: &mut Value, strings: &mut [Option<String>]) -> Option<()> {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => {
                if let Some(k) = s.strip_prefix(MARK) {
                    let k: usize = k.parse().ok()?;
                    *s = strings.get_mut(k)?.take()?;
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => {
                // A key that looks like a placeholder was written by the client itself.
                if map.keys().any(|key| key.starts_with(MARK)) {
                    return None;
                }
                stack.extend(map.values_mut());
            }
            _ => {}
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn did_open(text_json: &str) -> Vec<u8> {
        format!(
            r#"{{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{{"textDocument":{{"uri":"file:///a.wv","text":{text_json},"version":1}}}}}}"#
        )
        .into_bytes()
    }

    fn same_as_serde(body: &[u8]) {
        let ours = parse(body).map(|m| serde_json::to_value(&m).unwrap());
        let theirs = serde_json::from_slice::<Message>(body).map(|m| serde_json::to_value(&m).unwrap());
        match (ours, theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("ours {a:?}, serde_json's {b:?}"),
        }
    }

    #[test]
    fn large_strings_read_as_serde_json_reads_them() {
        let line = "flow f = { stage s = from t | where x > 'a\"b' } -- \u{1F600} é\t\n";
        let text = line.repeat(LARGE / line.len() + 10);
        let body = did_open(&serde_json::to_string(&text).unwrap());
        assert!(parse_large(&body).is_some(), "read without serde_json's copies");
        same_as_serde(&body);
        // Every escape form, a surrogate pair, `\/`.
        let escaped = format!(
            "\"{}\\ud83d\\ude00\\/\\b\\f\\r\\u00e9\"",
            "ab\\n\\\"\\\\".repeat(LARGE)
        );
        assert!(parse_large(&did_open(&escaped)).is_some());
        same_as_serde(&did_open(&escaped));
        // Refused alike: a lone surrogate, a bad escape, a raw control character.
        for bad in ["\\ud83d", "\\ude00x", "\\x", "\u{1}", "\\u12"] {
            same_as_serde(&did_open(&format!("\"{}{bad}\"", "a".repeat(LARGE))));
        }
        // A placeholder the client wrote itself stays its own text.
        let own = format!("\"\\u0000{}0\"", &MARK[1..]);
        let body = format!(
            r#"{{"jsonrpc":"2.0","method":"x","params":[{own},"{}"]}}"#,
            "a".repeat(LARGE)
        );
        same_as_serde(body.as_bytes());
        // Large, but not a message; a body cut inside the string.
        same_as_serde(format!("[\"{}\"]", "a".repeat(LARGE)).as_bytes());
        let cut = did_open(&format!("\"{}\"", "a".repeat(LARGE)));
        same_as_serde(&cut[..cut.len() - 10]);
    }
}
