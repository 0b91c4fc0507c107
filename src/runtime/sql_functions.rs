//! The functions wvflow adds to the embedded engine: `wv_hash` (for `route by hash(...)`),
//! `wv_now` (`now()`, on the run's clock) and `wv_add`/`wv_sub` (`+` and `-` where a
//! timestamp or a duration takes part: the lowering writes them only there).

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::Value;
use rusqlite::{Connection, Error};
use std::sync::{Arc, Mutex};

/// The time `now()` gives, set by the executor from its clock before each step (and each
/// poll of `wait until`); unset, the machine's time.
#[derive(Clone, Default)]
pub struct Now(Arc<Mutex<Option<DateTime<Utc>>>>);

impl Now {
    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut now) = self.0.lock() {
            *now = Some(at);
        }
    }

    fn get(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .ok()
            .and_then(|now| *now)
            .unwrap_or_else(super::schedule::utc_now)
    }
}

/// A timestamp as wvflow stores it: RFC 3339 in UTC, to the second unless it has a fraction.
pub fn timestamp_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The iteration `iteration()` gives: set by a `while` loop before it decides each iteration
/// and kept while the iteration runs; 0 outside a loop.
#[derive(Clone, Default)]
pub struct Iteration(Arc<std::sync::atomic::AtomicI64>);

impl Iteration {
    pub fn set(&self, n: i64) {
        self.0.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

pub fn register(conn: &Connection, now: &Now, iteration: &Iteration) -> Result<(), Error> {
    let counted = iteration.clone();
    conn.create_scalar_function("wv_iteration", 0, FunctionFlags::SQLITE_UTF8, move |_| {
        Ok(counted.get())
    })?;
    let deterministic = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    // A stable hash for `route by hash(...)`: FNV-1a over the value's text.
    conn.create_scalar_function("wv_hash", 1, deterministic, |ctx| {
        let text = match ctx.get::<Value>(0)? {
            Value::Null => String::new(),
            Value::Integer(n) => n.to_string(),
            Value::Real(x) => x.to_string(),
            Value::Text(s) => s,
            Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
        };
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in text.bytes() {
            hash ^= byte as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Ok((hash >> 1) as i64)
    })?;
    // A duration joined into text (`'wait ' || d`) reads as `90s`, not milliseconds.
    conn.create_scalar_function("wv_duration_text", 1, deterministic, |ctx| {
        Ok(match ctx.get::<Value>(0)? {
            Value::Integer(ms) => Value::Text(crate::value::duration_text(ms)),
            Value::Real(ms) => Value::Text(crate::value::duration_text(ms.round() as i64)),
            other => other,
        })
    })?;
    let now = now.clone();
    // To the second, as `run_time` and timestamp literals usually are: timestamps compare
    // as text, and `...:05.250Z` sorts before `...:05Z`.
    conn.create_scalar_function("wv_now", 0, FunctionFlags::SQLITE_UTF8, move |_| {
        let at = now.get();
        Ok(timestamp_text(at.with_nanosecond(0).unwrap_or(at)))
    })?;
    conn.create_scalar_function("wv_add", 2, deterministic, |ctx| arithmetic(ctx, 1))?;
    conn.create_scalar_function("wv_sub", 2, deterministic, |ctx| arithmetic(ctx, -1))?;
    Ok(())
}

/// `a + b` (`sign` 1) or `a - b` (`sign` -1) where durations are milliseconds and timestamps
/// and dates are text: timestamp ± duration is a timestamp, timestamp - timestamp a duration,
/// numbers add as numbers. Anything else is an error, not a guess.
fn arithmetic(ctx: &Context, sign: i64) -> rusqlite::Result<Value> {
    let (a, b) = (ctx.get::<Value>(0)?, ctx.get::<Value>(1)?);
    let time = |v: &Value| match v {
        Value::Text(t) => crate::value::timestamp(t)
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    };
    let shifted = |at: DateTime<Utc>, ms: i64| {
        ms.checked_mul(sign)
            .map(chrono::Duration::milliseconds)
            .and_then(|d| at.checked_add_signed(d))
            .map(|t| Value::Text(timestamp_text(t)))
            .ok_or_else(|| failure("the time is out of range"))
    };
    match (&a, &b) {
        (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
        (Value::Integer(x), Value::Integer(y)) => Ok(Value::Integer(x.wrapping_add(sign * y))),
        (Value::Integer(_) | Value::Real(_), Value::Integer(_) | Value::Real(_)) => {
            let number = |v: &Value| match v {
                Value::Integer(n) => *n as f64,
                Value::Real(x) => *x,
                _ => 0.0,
            };
            Ok(Value::Real(number(&a) + sign as f64 * number(&b)))
        }
        (Value::Text(_), Value::Integer(ms)) => match time(&a) {
            Some(at) => shifted(at, *ms),
            None => Err(not_a_time(&a)),
        },
        (Value::Integer(ms), Value::Text(_)) if sign == 1 => match time(&b) {
            Some(at) => shifted(at, *ms),
            None => Err(not_a_time(&b)),
        },
        (Value::Text(_), Value::Text(_)) if sign == -1 => match (time(&a), time(&b)) {
            (Some(x), Some(y)) => Ok(Value::Integer((x - y).num_milliseconds())),
            (None, _) => Err(not_a_time(&a)),
            (_, None) => Err(not_a_time(&b)),
        },
        _ => Err(failure(&format!(
            "cannot {} {} and {}",
            if sign == 1 { "add" } else { "subtract" },
            kind(&a),
            kind(&b)
        ))),
    }
}

fn kind(v: &Value) -> String {
    match v {
        Value::Text(t) => format!("'{t}'"),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Blob(_) => "bytes".into(),
        Value::Null => "null".into(),
    }
}

fn not_a_time(v: &Value) -> Error {
    failure(&format!(
        "{} is not a timestamp: durations add to timestamps and dates",
        kind(v)
    ))
}

fn failure(message: &str) -> Error {
    Error::UserFunctionError(message.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(sql: &str) -> rusqlite::Result<Value> {
        let conn = Connection::open_in_memory().unwrap();
        let now = Now::default();
        now.set(
            DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
        register(&conn, &now, &Iteration::default()).unwrap();
        conn.query_row(sql, [], |r| r.get::<_, Value>(0))
    }

    #[test]
    fn time_arithmetic_is_typed_and_refuses_what_it_cannot_read() {
        let text = |t: &str| Ok(Value::Text(t.to_string()));
        assert_eq!(eval("SELECT wv_now()"), text("2026-12-01T09:00:00Z"));
        assert_eq!(
            eval("SELECT wv_add(wv_now(), 90000)"),
            text("2026-12-01T09:01:30Z")
        );
        assert_eq!(
            eval("SELECT wv_sub('2026-12-01', 1000)"),
            text("2026-11-30T23:59:59Z")
        );
        assert_eq!(
            eval("SELECT wv_add(1500, '2026-12-01T00:00:00Z')"),
            text("2026-12-01T00:00:01.500Z")
        );
        assert_eq!(
            eval("SELECT wv_sub('2026-12-01T09:00:00Z', '2026-12-01T08:00:00+00:00')"),
            Ok(Value::Integer(3_600_000))
        );
        assert_eq!(eval("SELECT wv_add(2, 3)"), Ok(Value::Integer(5)));
        assert_eq!(eval("SELECT wv_add(NULL, 3)"), Ok(Value::Null));
        let error = eval("SELECT wv_add('soon', 1000)").unwrap_err().to_string();
        assert!(error.contains("'soon' is not a timestamp"), "{error}");
        let error = eval("SELECT wv_add('2026-12-01', '2026-12-02')")
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot add"), "{error}");
        assert!(eval("SELECT wv_add('9999-12-31T23:59:59Z', 9223372036854775807)").is_err());
    }
}
