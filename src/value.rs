//! Values of the language's types, and how they look where they leave wvflow.
//!
//! Inside the embedded database a value is stored in the form SQLite can compute with:
//! booleans as 0/1, durations as milliseconds, dates as `YYYY-MM-DD`, timestamps as RFC 3339
//! text. Its wvflow type travels beside it (declared parameter types, column types), so that
//! an activity receives `true`, `2.0` or `90s` rather than `1`, `2` or `90000`.

use rusqlite::types::Value as SqlValue;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The type of a value, as far as it is known. `Any` renders by what the value holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    String,
    Int,
    Float,
    Boolean,
    Duration,
    Date,
    Timestamp,
    List,
    #[default]
    Any,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Boolean => "boolean",
            ValueType::Duration => "duration",
            ValueType::Date => "date",
            ValueType::Timestamp => "timestamp",
            ValueType::List => "list",
            ValueType::Any => "any",
        }
    }

    /// The declared type of a stage-table column that keeps this type through SQLite: the
    /// word `BLOB` keeps SQLite from converting what is stored. `None` where the stored
    /// value already tells the type (text, integers, reals).
    pub fn column_decl(self) -> Option<&'static str> {
        match self {
            ValueType::Boolean => Some("BOOLEAN BLOB"),
            ValueType::Duration => Some("DURATION BLOB"),
            ValueType::Date => Some("DATE BLOB"),
            ValueType::Timestamp => Some("TIMESTAMP BLOB"),
            _ => None,
        }
    }

    /// The type a column declared by [`ValueType::column_decl`] holds.
    pub fn from_column_decl(decl: Option<&str>) -> ValueType {
        match decl.map(str::to_ascii_uppercase).as_deref() {
            Some("BOOLEAN BLOB") => ValueType::Boolean,
            Some("DURATION BLOB") => ValueType::Duration,
            Some("DATE BLOB") => ValueType::Date,
            Some("TIMESTAMP BLOB") => ValueType::Timestamp,
            _ => ValueType::Any,
        }
    }
}

/// A value as text, for exec arguments and `WV_<NAME>` variables: `true`/`false`, floats
/// with a decimal point (`2.0`), durations as one exact unit (`90s`, `1500ms`, `2h`), dates
/// `YYYY-MM-DD`, timestamps RFC 3339; null is the empty string.
pub fn text(value: &SqlValue, ty: ValueType) -> String {
    match (value, ty) {
        (SqlValue::Null, _) => String::new(),
        (SqlValue::Integer(n), ValueType::Boolean) => (*n != 0).to_string(),
        (SqlValue::Real(x), ValueType::Boolean) => (*x != 0.0).to_string(),
        (SqlValue::Integer(n), ValueType::Float) => float_text(*n as f64),
        (SqlValue::Real(x), _) => float_text(*x),
        (SqlValue::Integer(ms), ValueType::Duration) => duration_text(*ms),
        (SqlValue::Integer(n), _) => n.to_string(),
        (SqlValue::Text(s), _) => s.clone(),
        (SqlValue::Blob(b), _) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// A value as JSON, for input rows (NDJSON) and files: booleans and numbers as JSON's own,
/// durations, dates and timestamps as their text.
pub fn json(value: &SqlValue, ty: ValueType) -> serde_json::Value {
    match (value, ty) {
        (SqlValue::Null, _) => serde_json::Value::Null,
        (SqlValue::Integer(n), ValueType::Boolean) => (*n != 0).into(),
        (SqlValue::Integer(ms), ValueType::Duration) => duration_text(*ms).into(),
        (SqlValue::Integer(n), ValueType::Float) => (*n as f64).into(),
        (SqlValue::Integer(n), _) => (*n).into(),
        (SqlValue::Real(x), _) => (*x).into(),
        (SqlValue::Text(s), ValueType::List) => {
            serde_json::from_str(s).unwrap_or_else(|_| s.clone().into())
        }
        (SqlValue::Text(s), _) => s.clone().into(),
        (SqlValue::Blob(b), _) => String::from_utf8_lossy(b).into_owned().into(),
    }
}

/// `2.0`, `0.5`, `1e300`: always readable back as a float.
fn float_text(x: f64) -> String {
    let text = format!("{x:?}");
    if text.contains(['.', 'e', 'E', 'N', 'i']) {
        text
    } else {
        format!("{text}.0")
    }
}

/// Milliseconds as one exact unit: the largest of `h`, `m`, `s`, `ms` that divides them.
/// Readable by humantime and Go's `time.ParseDuration` alike.
pub fn duration_text(ms: i64) -> String {
    for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms != 0 && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A value in its stored form with its type: what it is written as wherever it leaves
/// wvflow follows from both.
#[derive(Clone, Debug, PartialEq)]
pub struct Typed {
    pub value: SqlValue,
    pub ty: ValueType,
}

impl Typed {
    /// [`json`] of the value.
    pub fn json(&self) -> serde_json::Value {
        json(&self.value, self.ty)
    }

    /// [`literal`] of the value.
    pub fn literal(&self) -> String {
        literal(&self.value, self.ty)
    }
}

/// A value that is not of the type expected: what a value of type `ty` takes is its
/// [`Display`](std::fmt::Display) (`true or false`, `a whole number`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongValue {
    pub ty: ValueType,
}

impl WrongValue {
    /// What a value of the type takes, for messages.
    pub fn takes(self) -> &'static str {
        match self.ty {
            ValueType::Int => "a whole number",
            ValueType::Float => "a number",
            ValueType::Boolean => "true or false",
            ValueType::String => "a string",
            ValueType::Duration => "a duration such as 30s or '1h 30m'",
            ValueType::Date => "a date 'YYYY-MM-DD'",
            ValueType::Timestamp => "a timestamp 'YYYY-MM-DD HH:MM:SS' or RFC 3339",
            ValueType::List => "a list such as [1, 2]",
            ValueType::Any => "a value",
        }
    }
}

impl std::fmt::Display for WrongValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.takes())
    }
}

/// The stored form of a value given for a parameter of type `ty`, or what it should have
/// been. Accepts what the language's literals and the command line give: `true`, `2`, `30s`
/// or '1h 30m', '2026-01-31', '2026-01-31 09:30:00' or RFC 3339.
pub fn stored(value: SqlValue, ty: ValueType) -> Result<SqlValue, WrongValue> {
    let text = match &value {
        SqlValue::Text(t) => Some(t.as_str()),
        _ => None,
    };
    let stored = match (ty, &value) {
        (_, SqlValue::Null) => Some(SqlValue::Null),
        (ValueType::Int, SqlValue::Integer(_)) => Some(value.clone()),
        (ValueType::Float, SqlValue::Integer(n)) => Some(SqlValue::Real(*n as f64)),
        (ValueType::Float, SqlValue::Real(_)) => Some(value.clone()),
        (ValueType::Boolean, SqlValue::Integer(0 | 1)) => Some(value.clone()),
        (ValueType::String, SqlValue::Text(_)) => Some(value.clone()),
        (ValueType::Duration, SqlValue::Integer(_)) => Some(value.clone()),
        (ValueType::Duration, _) => text.and_then(duration_millis).map(SqlValue::Integer),
        (ValueType::Date, _) => text.and_then(date).map(SqlValue::Text),
        (ValueType::Timestamp, _) => text.and_then(timestamp).map(SqlValue::Text),
        (ValueType::Any | ValueType::List, _) => Some(value.clone()),
        _ => None,
    };
    stored.ok_or(WrongValue { ty })
}

/// A duration in humantime's syntax (`30s`, `1h 30m`, `250ms`) as milliseconds.
fn duration_millis(text: &str) -> Option<i64> {
    humantime::parse_duration(text.trim())
        .ok()
        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
}

/// The stored form of a value of type `ty` written as text: a command-line argument of a
/// flow (`wvflow stage init --arg`) or a signal's value (`wvflow runs signal`). `null` is
/// null; a JSON-quoted text (`"2s"`) is read without its quotes; a boolean is `true` or
/// `false`; a duration `2s` or `1h 30m`; a date `YYYY-MM-DD`; a timestamp RFC 3339 or
/// `YYYY-MM-DD HH:MM:SS` (UTC). A value of no known type is read as JSON, else as text.
pub fn parse(text: &str, ty: ValueType) -> Result<SqlValue, WrongValue> {
    let trimmed = text.trim();
    if trimmed == "null" {
        return Ok(SqlValue::Null);
    }
    let unquoted = trimmed
        .starts_with('"')
        .then(|| serde_json::from_str::<String>(trimmed).ok())
        .flatten();
    match (ty, unquoted) {
        (ValueType::Any | ValueType::List, None) => {
            let json = serde_json::from_str::<serde_json::Value>(trimmed);
            match (ty, json) {
                (ValueType::List, Ok(list @ serde_json::Value::Array(_))) => {
                    Ok(SqlValue::Text(list.to_string()))
                }
                (ValueType::List, _) => Err(WrongValue { ty }),
                (_, Ok(json)) => from_json_as(&json, ty),
                (_, Err(_)) => Ok(SqlValue::Text(text.to_string())),
            }
        }
        (_, Some(content)) => parse_unquoted(&content, ty),
        (_, None) => parse_unquoted(text, ty),
    }
}

/// [`parse`] of a text that is the value itself: neither `null` nor quoted.
fn parse_unquoted(text: &str, ty: ValueType) -> Result<SqlValue, WrongValue> {
    let word = text.trim();
    let parsed = match ty {
        ValueType::String | ValueType::Any => Some(SqlValue::Text(text.to_string())),
        ValueType::Int => word.parse::<i64>().ok().map(SqlValue::Integer),
        ValueType::Float => word
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(SqlValue::Real),
        ValueType::Boolean => match word {
            "true" => Some(SqlValue::Integer(1)),
            "false" => Some(SqlValue::Integer(0)),
            _ => None,
        },
        ValueType::Duration => duration_millis(word).map(SqlValue::Integer),
        ValueType::Date | ValueType::Timestamp => {
            return stored(SqlValue::Text(word.to_string()), ty);
        }
        ValueType::List => None,
    };
    parsed.ok_or(WrongValue { ty })
}

/// The stored form of a JSON value given for a value of type `ty` (the dashboard's
/// arguments and signals, an exported task's `--args`): JSON's own booleans, numbers and
/// null; a text read as [`parse`] reads it; a duration also as milliseconds.
pub fn from_json_as(json: &serde_json::Value, ty: ValueType) -> Result<SqlValue, WrongValue> {
    use serde_json::Value as Json;
    match (json, ty) {
        (Json::Null, _) => Ok(SqlValue::Null),
        (Json::String(s), ValueType::String | ValueType::Any) => Ok(SqlValue::Text(s.clone())),
        (Json::String(s), _) => parse_unquoted(s, ty),
        (Json::Bool(b), ValueType::Boolean | ValueType::Any) => Ok(SqlValue::Integer(*b as i64)),
        (
            Json::Number(n),
            ValueType::Int | ValueType::Float | ValueType::Duration | ValueType::Any,
        ) => {
            let value = n.as_i64().map_or_else(
                || SqlValue::Real(n.as_f64().unwrap_or(0.0)),
                SqlValue::Integer,
            );
            stored(value, ty)
        }
        (Json::Array(_) | Json::Object(_), ValueType::Any) | (Json::Array(_), ValueType::List) => {
            Ok(SqlValue::Text(json.to_string()))
        }
        _ => Err(WrongValue { ty }),
    }
}

/// A value as it is written back on a command line and in messages: [`text`], except that
/// null is `null` and a text of type string (or of no known type) is JSON-quoted, so that
/// [`parse`] reads it back as the same value.
pub fn literal(value: &SqlValue, ty: ValueType) -> String {
    match (value, ty) {
        (SqlValue::Null, _) => "null".to_string(),
        (SqlValue::Text(s), ValueType::String | ValueType::Any) => {
            serde_json::Value::String(s.clone()).to_string()
        }
        _ => text(value, ty),
    }
}

/// A date as `YYYY-MM-DD`.
pub fn date(text: &str) -> Option<String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// A timestamp as RFC 3339 in UTC (`2026-01-31T09:30:00Z`); a time without a zone is UTC.
pub fn timestamp(text: &str) -> Option<String> {
    let utc = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"]
                .iter()
                .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
                .or_else(|| {
                    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                        .ok()
                        .map(|d| d.and_time(chrono::NaiveTime::MIN))
                })
                .map(|t| t.and_utc())
        })?;
    Some(utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_renders_as_documented_in_text_and_json() {
        let cases = [
            (
                SqlValue::Integer(1),
                ValueType::Boolean,
                "true",
                serde_json::json!(true),
            ),
            (
                SqlValue::Integer(0),
                ValueType::Boolean,
                "false",
                serde_json::json!(false),
            ),
            (
                SqlValue::Integer(2),
                ValueType::Float,
                "2.0",
                serde_json::json!(2.0),
            ),
            (
                SqlValue::Real(2.5),
                ValueType::Any,
                "2.5",
                serde_json::json!(2.5),
            ),
            (
                SqlValue::Integer(7),
                ValueType::Int,
                "7",
                serde_json::json!(7),
            ),
            (
                SqlValue::Integer(90_000),
                ValueType::Duration,
                "90s",
                serde_json::json!("90s"),
            ),
            (
                SqlValue::Integer(1_500),
                ValueType::Duration,
                "1500ms",
                serde_json::json!("1500ms"),
            ),
            (
                SqlValue::Integer(7_200_000),
                ValueType::Duration,
                "2h",
                serde_json::json!("2h"),
            ),
            (
                SqlValue::Integer(0),
                ValueType::Duration,
                "0ms",
                serde_json::json!("0ms"),
            ),
            (
                SqlValue::Text("2026-01-31".into()),
                ValueType::Date,
                "2026-01-31",
                serde_json::json!("2026-01-31"),
            ),
            (
                SqlValue::Null,
                ValueType::String,
                "",
                serde_json::Value::Null,
            ),
            (
                SqlValue::Text("[1,2]".into()),
                ValueType::List,
                "[1,2]",
                serde_json::json!([1, 2]),
            ),
        ];
        for (value, ty, as_text, as_json) in cases {
            assert_eq!(text(&value, ty), as_text, "{value:?} as {ty:?}");
            assert_eq!(json(&value, ty), as_json, "{value:?} as {ty:?}");
        }
    }

    #[test]
    fn parameters_are_stored_in_one_form_per_type() {
        assert_eq!(
            stored(SqlValue::Text("1h 30m".into()), ValueType::Duration),
            Ok(SqlValue::Integer(5_400_000))
        );
        assert_eq!(
            stored(
                SqlValue::Text("2026-01-31 09:30:00".into()),
                ValueType::Timestamp
            ),
            Ok(SqlValue::Text("2026-01-31T09:30:00Z".into()))
        );
        assert_eq!(
            stored(SqlValue::Integer(2), ValueType::Float),
            Ok(SqlValue::Real(2.0))
        );
        assert!(stored(SqlValue::Integer(2), ValueType::Boolean).is_err());
        assert!(stored(SqlValue::Text("soon".into()), ValueType::Duration).is_err());
        assert!(stored(SqlValue::Real(1.5), ValueType::Int).is_err());
    }

    #[test]
    fn text_is_read_by_type_in_one_way() {
        use ValueType as T;
        let ok = |text: &str, ty: T| parse(text, ty).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(ok("true", T::Boolean), SqlValue::Integer(1));
        assert_eq!(ok("\"false\"", T::Boolean), SqlValue::Integer(0));
        assert_eq!(ok("2s", T::Duration), SqlValue::Integer(2_000));
        assert_eq!(ok("\"2s\"", T::Duration), SqlValue::Integer(2_000));
        assert_eq!(ok("1h 30m", T::Duration), SqlValue::Integer(5_400_000));
        assert_eq!(ok(" 42 ", T::Int), SqlValue::Integer(42));
        assert_eq!(ok("2", T::Float), SqlValue::Real(2.0));
        assert_eq!(
            ok("\"a \\\"b\\\"\"", T::String),
            SqlValue::Text("a \"b\"".into())
        );
        assert_eq!(ok(" as is ", T::String), SqlValue::Text(" as is ".into()));
        assert_eq!(ok("null", T::Int), SqlValue::Null);
        assert_eq!(
            ok("2026-02-03", T::Date),
            SqlValue::Text("2026-02-03".into())
        );
        assert_eq!(
            ok("2026-02-03 04:05:06", T::Timestamp),
            SqlValue::Text("2026-02-03T04:05:06Z".into())
        );
        assert_eq!(ok("[1, 2]", T::List), SqlValue::Text("[1,2]".into()));
        assert_eq!(ok("7", T::Any), SqlValue::Integer(7));
        assert_eq!(ok("words", T::Any), SqlValue::Text("words".into()));
        for (text, ty) in [
            ("1", T::Boolean),
            ("yes", T::Boolean),
            ("2000", T::Duration),
            ("2.5", T::Int),
            ("NaN", T::Float),
            ("inf", T::Float),
            ("2026-13-01", T::Date),
            ("soon", T::Timestamp),
            ("3", T::List),
        ] {
            assert_eq!(parse(text, ty), Err(WrongValue { ty }), "{text}");
        }
    }

    #[test]
    fn json_is_read_by_type() {
        use ValueType as T;
        use serde_json::json;
        assert_eq!(
            from_json_as(&json!(true), T::Boolean),
            Ok(SqlValue::Integer(1))
        );
        assert!(from_json_as(&json!(1), T::Boolean).is_err());
        assert_eq!(
            from_json_as(&json!("90s"), T::Duration),
            Ok(SqlValue::Integer(90_000))
        );
        assert_eq!(
            from_json_as(&json!(500), T::Duration),
            Ok(SqlValue::Integer(500))
        );
        assert_eq!(
            from_json_as(&json!("true"), T::String),
            Ok(SqlValue::Text("true".into()))
        );
        assert!(from_json_as(&json!([1]), T::Int).is_err());
        assert_eq!(from_json_as(&json!(null), T::Date), Ok(SqlValue::Null));
    }

    #[test]
    fn a_literal_reads_back_as_the_same_value() {
        use ValueType as T;
        for (value, ty) in [
            (SqlValue::Integer(1), T::Boolean),
            (SqlValue::Integer(90_000), T::Duration),
            (SqlValue::Real(2.0), T::Float),
            (SqlValue::Text("say \"hi\"".into()), T::String),
            (SqlValue::Text("null".into()), T::String),
            (SqlValue::Null, T::String),
            (SqlValue::Text("2026-01-31T09:30:00Z".into()), T::Timestamp),
        ] {
            assert_eq!(
                parse(&literal(&value, ty), ty),
                Ok(value.clone()),
                "{value:?}"
            );
        }
    }
}
