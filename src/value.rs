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

impl From<crate::syntax::ast::Type> for ValueType {
    fn from(ty: crate::syntax::ast::Type) -> Self {
        use crate::syntax::ast::Type;
        match ty {
            Type::String => ValueType::String,
            Type::Int => ValueType::Int,
            Type::Float => ValueType::Float,
            Type::Boolean => ValueType::Boolean,
            Type::Duration => ValueType::Duration,
            Type::Date => ValueType::Date,
            Type::Timestamp => ValueType::Timestamp,
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

/// The stored form of a value given for a parameter of type `ty`, or what it should have
/// been. Accepts what the language's literals and the command line give: `true`, `2`, `30s`
/// or '1h 30m', '2026-01-31', '2026-01-31 09:30:00' or RFC 3339.
pub fn stored(value: SqlValue, ty: ValueType) -> Result<SqlValue, &'static str> {
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
        (ValueType::Duration, _) => text
            .and_then(|t| humantime::parse_duration(t).ok())
            .map(|d| SqlValue::Integer(d.as_millis() as i64)),
        (ValueType::Date, _) => text
            .and_then(|t| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
            .map(|d| SqlValue::Text(d.format("%Y-%m-%d").to_string())),
        (ValueType::Timestamp, _) => text.and_then(timestamp).map(SqlValue::Text),
        (ValueType::Any | ValueType::List, _) => Some(value.clone()),
        _ => None,
    };
    stored.ok_or(match ty {
        ValueType::Int => "a whole number",
        ValueType::Float => "a number",
        ValueType::Boolean => "true or false",
        ValueType::String => "a string",
        ValueType::Duration => "a duration such as 30s",
        ValueType::Date => "a date 'YYYY-MM-DD'",
        _ => "a timestamp 'YYYY-MM-DD HH:MM:SS' or RFC 3339",
    })
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
}
