//! The run's values as PostgreSQL reads them: written into a query in place of its `:name`
//! parameters (the plan's SQL names them as SQLite does), and as fields of CSV for `COPY`.

use crate::plan::sql::quote_str;
use rusqlite::types::Value;
use std::collections::BTreeMap;

/// `sql` with each `:name` outside quotes replaced by the literal of its value; a name
/// without a value is left for the server to refuse (the checker resolved every one).
pub fn inline_params(sql: &str, params: &BTreeMap<String, Value>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    while let Some((at, c)) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            // `::` is a cast, not a parameter.
            None if c == ':' && previous != ':' => {
                let rest = &sql[at + 1..];
                let len = rest
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .unwrap_or(rest.len());
                let name = &rest[..len];
                match params.get(name) {
                    Some(value) if rest.starts_with(|ch: char| ch.is_ascii_alphabetic() || ch == '_') => {
                        out.push_str(&literal(value));
                        for _ in 0..name.chars().count() {
                            chars.next();
                        }
                    }
                    _ => out.push(c),
                }
            }
            None => out.push(c),
        }
        previous = c;
    }
    out
}

/// A value as a PostgreSQL literal.
pub fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) if x.is_finite() => format!("{x:?}"),
        Value::Real(x) => format!("CAST('{}' AS double precision)", float_word(*x)),
        Value::Text(s) => quote_str(s),
        Value::Blob(bytes) => format!("decode('{}', 'hex')", hex(bytes)),
    }
}

fn float_word(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a shipped column is on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Boolean,
    Bigint,
    Double,
    Text,
    Bytea,
}

impl Column {
    pub fn sql(self) -> &'static str {
        match self {
            Column::Boolean => "boolean",
            Column::Bigint => "bigint",
            Column::Double => "double precision",
            Column::Text => "text",
            Column::Bytea => "bytea",
        }
    }
}

/// One field of a CSV line for `COPY ... FROM STDIN (FORMAT csv)`: null is an empty field,
/// text is always quoted (an empty string is `""`).
pub fn csv_field(out: &mut String, value: &Value, column: Column) {
    match (value, column) {
        (Value::Null, _) => {}
        (Value::Integer(n), Column::Boolean) => out.push_str(if *n != 0 { "true" } else { "false" }),
        (Value::Real(x), Column::Boolean) => out.push_str(if *x != 0.0 { "true" } else { "false" }),
        (Value::Integer(n), _) => out.push_str(&n.to_string()),
        (Value::Real(x), _) if x.is_finite() => out.push_str(&format!("{x:?}")),
        (Value::Real(x), _) => out.push_str(float_word(*x)),
        (Value::Text(s), _) => quoted(out, s),
        (Value::Blob(bytes), Column::Bytea) => quoted(out, &format!("\\x{}", hex(bytes))),
        (Value::Blob(bytes), _) => quoted(out, &hex(bytes)),
    }
}

fn quoted(out: &mut String, text: &str) {
    out.push('"');
    out.push_str(&text.replace('"', "\"\""));
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_outside_quotes_become_literals() {
        let params: BTreeMap<String, Value> = [
            ("day".to_string(), Value::Text("it's".into())),
            ("n".to_string(), Value::Integer(3)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            inline_params("SELECT ':day', \":n\", :day, x::text, :n, :other FROM t", &params),
            "SELECT ':day', \":n\", 'it''s', x::text, 3, :other FROM t"
        );
    }

    #[test]
    fn csv_fields_keep_null_apart_from_empty_text() {
        let mut line = String::new();
        for (v, c) in [
            (Value::Null, Column::Text),
            (Value::Text(String::new()), Column::Text),
            (Value::Text("a\"b,c".into()), Column::Text),
            (Value::Integer(1), Column::Boolean),
            (Value::Real(1.5), Column::Double),
        ] {
            csv_field(&mut line, &v, c);
            line.push(',');
        }
        assert_eq!(line, ",\"\",\"a\"\"b,c\",true,1.5,");
    }
}
