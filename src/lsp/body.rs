//! A message body read into a JSON-RPC message without copying its large strings.
//!
//! `serde_json` unescapes a string into a growing scratch buffer and then copies it into the
//! `String` of the value, so the 50 MB document of a `didOpen` would be held three times at
//! once (the body, the scratch buffer, the string). Here the strings of [`LARGE`] bytes or
//! more are checked as `serde_json` checks them, the rest of the body, with a short
//! placeholder in place of each, is parsed as usual, and then the first large string is
//! unescaped in place, in the body's own memory, which becomes its `String` (any other one is
//! unescaped into a string of its size), and moved into the value. Any surprise (an escape
//! `serde_json` would refuse, a placeholder found where none was put) falls back to parsing
//! the body as it came, before anything is changed: the result is always `serde_json`'s.

use lsp_server::Message;
use serde_json::Value;
use std::ops::Range;

/// Strings shorter than this are left to `serde_json`.
const LARGE: usize = 64 * 1024;

/// What every placeholder starts with: a NUL, which a document's text does not hold.
const MARK: &str = "\u{0}wvflow-large-string:";

/// The message in `body`, as `serde_json::from_slice` reads it.
pub fn parse(body: Vec<u8>) -> serde_json::Result<Message> {
    if body.len() < LARGE {
        return serde_json::from_slice(&body);
    }
    let literals = large_strings(&body);
    match prepare(&body, &literals) {
        Some(message) => Ok(finish(message, body, &literals)),
        None => serde_json::from_slice(&body),
    }
}

/// The message with placeholders in place of the large strings, once every check passed.
fn prepare(body: &[u8], literals: &[Range<usize>]) -> Option<Message> {
    if literals.is_empty() || !literals.iter().all(|r| valid(&body[inside(r)])) {
        return None;
    }
    let mut compact = Vec::with_capacity((1 << 20).min(body.len()));
    let mut copied = 0;
    for (k, range) in literals.iter().enumerate() {
        compact.extend_from_slice(&body[copied..range.start]);
        compact.extend_from_slice(format!("\"\\u0000{}{k}\"", &MARK[1..]).as_bytes());
        copied = range.end;
    }
    compact.extend_from_slice(&body[copied..]);
    let message: Message = serde_json::from_slice(&compact).ok()?;
    let value = match &message {
        Message::Request(r) => &r.params,
        Message::Notification(n) => &n.params,
        Message::Response(_) => return None,
    };
    let mut seen = vec![false; literals.len()];
    placeholders(value, &mut seen)?;
    seen.iter().all(|&s| s).then_some(message)
}

/// The bytes between a literal's quotes.
fn inside(literal: &Range<usize>) -> Range<usize> {
    literal.start + 1..literal.end - 1
}

/// Puts the large strings in place of their placeholders; [`prepare`] made sure it can.
fn finish(mut message: Message, mut body: Vec<u8>, literals: &[Range<usize>]) -> Message {
    let mut strings: Vec<Option<String>> = vec![None; literals.len()];
    // The others first, while the body is whole; then the first one in the body itself.
    for (k, range) in literals.iter().enumerate().skip(1) {
        strings[k] = Some(unescape(&body[inside(range)]));
    }
    let first = inside(&literals[0]);
    let len = unescape_in_place(&mut body[first.clone()]);
    body.truncate(first.start + len);
    body.drain(..first.start);
    body.shrink_to_fit();
    // The bytes were checked to be UTF-8, and escapes decode to whole characters.
    strings[0] = Some(String::from_utf8(body).unwrap_or_default());
    match &mut message {
        Message::Request(r) => put_back(&mut r.params, &mut strings),
        Message::Notification(n) => put_back(&mut n.params, &mut strings),
        // `prepare` takes no response.
        Message::Response(_) => {}
    }
    message
}

/// The byte ranges (quotes included) of the string literals of [`LARGE`] bytes or more.
fn large_strings(body: &[u8]) -> Vec<Range<usize>> {
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

/// Whether `serde_json` reads a string literal's inside: UTF-8 with no control character,
/// and only escapes it knows (no lone surrogate).
fn valid(raw: &[u8]) -> bool {
    if std::str::from_utf8(raw).is_err() {
        return false;
    }
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\\' => match escape(raw, i) {
                Some((_, used)) => i += used,
                None => return false,
            },
            b if b < 0x20 => return false,
            _ => i += 1,
        }
    }
    true
}

/// The character of the escape at `raw[at]` (a backslash) and how many bytes it takes.
fn escape(raw: &[u8], at: usize) -> Option<(char, usize)> {
    let c = match *raw.get(at + 1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let first = hex4(raw.get(at + 2..at + 6)?)?;
            if (0xDC00..0xE000).contains(&first) {
                return None;
            }
            if !(0xD800..0xDC00).contains(&first) {
                return Some((char::from_u32(first)?, 6));
            }
            if raw.get(at + 6..at + 8)? != b"\\u" {
                return None;
            }
            let second = hex4(raw.get(at + 8..at + 12)?)?;
            if !(0xDC00..0xE000).contains(&second) {
                return None;
            }
            let c = char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))?;
            return Some((c, 12));
        }
        _ => return None,
    };
    Some((c, 2))
}

fn hex4(digits: &[u8]) -> Option<u32> {
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
}

/// The text of a [`valid`] literal's inside, in a string of its size.
fn unescape(raw: &[u8]) -> String {
    let mut copy = raw.to_vec();
    let len = unescape_in_place(&mut copy);
    copy.truncate(len);
    copy.shrink_to_fit();
    String::from_utf8(copy).unwrap_or_default()
}

/// Unescapes a [`valid`] literal's inside where it lies (the text is never longer than its
/// escaped form), and returns the text's length.
fn unescape_in_place(raw: &mut [u8]) -> usize {
    let (mut read, mut write) = (0, 0);
    while read < raw.len() {
        let run = raw[read..]
            .iter()
            .position(|&b| b == b'\\')
            .map_or(raw.len(), |n| read + n);
        raw.copy_within(read..run, write);
        write += run - read;
        read = run;
        if read == raw.len() {
            break;
        }
        let Some((c, used)) = escape(raw, read) else {
            break;
        };
        let mut utf8 = [0; 4];
        let bytes = c.encode_utf8(&mut utf8).as_bytes();
        raw[write..write + bytes.len()].copy_from_slice(bytes);
        write += bytes.len();
        read += used;
    }
    write
}

/// Marks each placeholder found; `None` when one is not one that was put (or comes twice).
fn placeholders(value: &Value, seen: &mut [bool]) -> Option<()> {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => {
                if let Some(k) = s.strip_prefix(MARK) {
                    let k: usize = k.parse().ok()?;
                    if std::mem::replace(seen.get_mut(k)?, true) {
                        return None;
                    }
                }
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                // A key that looks like a placeholder was written by the client itself.
                if map.keys().any(|key| key.starts_with(MARK)) {
                    return None;
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    Some(())
}

/// Moves each large string into the place of its placeholder.
fn put_back(value: &mut Value, strings: &mut [Option<String>]) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => {
                if let Some(string) = s
                    .strip_prefix(MARK)
                    .and_then(|k| k.parse::<usize>().ok())
                    .and_then(|k| strings.get_mut(k)?.take())
                {
                    *s = string;
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            Value::Object(map) => stack.extend(map.values_mut()),
            _ => {}
        }
    }
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
        let ours = parse(body.to_vec()).map(|m| serde_json::to_value(&m).unwrap());
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
        let literals = large_strings(&body);
        assert!(prepare(&body, &literals).is_some(), "read without serde_json's copies");
        same_as_serde(&body);
        // Every escape form, a surrogate pair, `\/`.
        let escaped = format!(
            "\"{}\\ud83d\\ude00\\/\\b\\f\\r\\u00e9\"",
            "ab\\n\\\"\\\\".repeat(LARGE)
        );
        let body = did_open(&escaped);
        assert!(prepare(&body, &large_strings(&body)).is_some());
        same_as_serde(&did_open(&escaped));
        // Refused alike: a lone surrogate, a bad escape, a raw control character.
        for bad in ["\\ud83d", "\\ude00x", "\\x", "\u{1}", "\\u12"] {
            same_as_serde(&did_open(&format!("\"{}{bad}\"", "a".repeat(LARGE))));
        }
        // Two large strings: the first in place, the second copied.
        let two = format!(
            r#"{{"jsonrpc":"2.0","method":"x","params":["{}","b{}"]}}"#,
            "a\\n".repeat(LARGE),
            "c\\t".repeat(LARGE)
        );
        assert!(prepare(two.as_bytes(), &large_strings(two.as_bytes())).is_some());
        same_as_serde(two.as_bytes());
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
