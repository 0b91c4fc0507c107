//! Reading typed values out of config expressions: durations, numbers, words.

use crate::syntax::ast::{Expr, ExprKind};
use std::time::Duration;

/// A duration from a literal (`30s`) or a humantime string (`'1h 30m'`, `'7 days'`).
pub fn duration(expr: &Expr) -> Result<Duration, NotADuration> {
    match &expr.kind {
        ExprKind::Duration { millis, .. } => Ok(Duration::from_millis(*millis)),
        ExprKind::Str(text) => {
            humantime::parse_duration(text).map_err(|e| NotADuration::Text(text.to_string(), e))
        }
        ExprKind::Int(_) | ExprKind::Float(_) => Err(NotADuration::BareNumber),
        _ => Err(NotADuration::Other),
    }
}

/// Why a config value is not a duration; its text ends the diagnostic's message.
#[derive(Debug, PartialEq)]
pub enum NotADuration {
    /// Quoted text humantime does not read.
    Text(String, humantime::DurationError),
    BareNumber,
    Other,
}

impl std::fmt::Display for NotADuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotADuration::Text(text, e) => write!(f, "`'{text}'` is not a duration: {e}"),
            NotADuration::BareNumber => f.write_str(
                "a bare number is not a duration: add a unit, as in `30s`, `5m` or `100ms`",
            ),
            NotADuration::Other => f.write_str("expected a duration such as `30s`, `5m` or '1h 30m'"),
        }
    }
}

pub fn int(expr: &Expr) -> Option<i64> {
    match expr.kind {
        ExprKind::Int(n) => Some(n),
        _ => None,
    }
}

pub fn number(expr: &Expr) -> Option<f64> {
    match expr.kind {
        ExprKind::Int(n) => Some(n as f64),
        ExprKind::Float(x) => Some(x),
        _ => None,
    }
}

pub fn boolean(expr: &Expr) -> Option<bool> {
    match expr.kind {
        ExprKind::Bool(b) => Some(b),
        _ => None,
    }
}

/// A word written as a name (`exponential`) or a string (`'exponential'`).
pub fn word(expr: &Expr) -> Option<&str> {
    match &expr.kind {
        ExprKind::Name(n) => Some(&n.name),
        ExprKind::Str(s) => Some(s),
        _ => None,
    }
}

/// `5m`, `1h 30m`, `250ms`: the way durations read in messages.
pub use crate::human::duration as show;

/// What an expression is, for "expected X, found Y" messages.
pub fn describe(expr: &Expr) -> &'static str {
    match expr.kind {
        ExprKind::Int(_) => "an integer",
        ExprKind::Float(_) => "a number",
        ExprKind::Str(_) => "a string",
        ExprKind::Duration { .. } => "a duration",
        ExprKind::Time {
            ty: crate::syntax::ast::Type::Date,
            ..
        } => "a date",
        ExprKind::Time { .. } => "a timestamp",
        ExprKind::Bool(_) => "a boolean",
        ExprKind::Null => "null",
        ExprKind::Name(_) => "a name",
        ExprKind::Field(_) => "a column reference",
        ExprKind::Call(_) => "a call",
        ExprKind::List(_) => "a list",
        _ => "an expression",
    }
}

/// A literal's value as stored and its type (`-3` too): the values a test writes in rows,
/// signals and arguments. `None` for anything that is not a literal.
pub fn literal_value(expr: &Expr) -> Option<(rusqlite::types::Value, crate::value::ValueType)> {
    use crate::syntax::ast::{Type, UnaryOp};
    use crate::value::ValueType;
    use rusqlite::types::Value;
    Some(match &expr.kind {
        ExprKind::Int(n) => (Value::Integer(*n), ValueType::Int),
        ExprKind::Float(x) => (Value::Real(*x), ValueType::Float),
        ExprKind::Str(s) => (Value::Text(s.to_string()), ValueType::String),
        ExprKind::Bool(b) => (Value::Integer(i64::from(*b)), ValueType::Boolean),
        ExprKind::Null => (Value::Null, ValueType::Any),
        ExprKind::Duration { millis, .. } => {
            (Value::Integer(i64::try_from(*millis).ok()?), ValueType::Duration)
        }
        ExprKind::Time { ty, value } => (
            Value::Text(value.to_string()),
            if *ty == Type::Date {
                ValueType::Date
            } else {
                ValueType::Timestamp
            },
        ),
        ExprKind::Unary {
            op: UnaryOp::Neg,
            operand,
        } => match literal_value(operand)? {
            (Value::Integer(n), ty) => (Value::Integer(n.checked_neg()?), ty),
            (Value::Real(x), ty) => (Value::Real(-x), ty),
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    fn value(src: &str) -> Expr {
        let parsed = crate::syntax::parse(
            &format!("flow f with {{ x: {src} }} = {{ stage s = from t }}"),
            FileId(0),
        );
        let crate::syntax::ast::Item::Flow(flow) = &parsed.ast.items[0] else {
            panic!()
        };
        flow.config.as_ref().unwrap().entries[0].value.clone()
    }

    #[test]
    fn durations_come_from_literals_and_humantime_strings() {
        assert_eq!(duration(&value("90s")), Ok(Duration::from_secs(90)));
        assert_eq!(duration(&value("'1h 30m'")), Ok(Duration::from_secs(5400)));
        assert_eq!(
            duration(&value("'7 days'")),
            Ok(Duration::from_secs(7 * 86400))
        );
        assert!(duration(&value("'soon'")).is_err());
        assert!(duration(&value("30")).unwrap_err().to_string().contains("add a unit"));
        assert_eq!(show(Duration::from_secs(5400)), "1h 30m");
    }
}
