//! Rows a test writes (inline or in a data file), as a program's output would carry them,
//! and rows compared the way a reader means them: `true` is 1 of a boolean column, `90s` is
//! 90000 ms of a duration column, `2` equals `2.0`.

use crate::check::values::literal_value;
use crate::runtime::files::DataFile;
use crate::runtime::store::Rows;
use crate::syntax::ast::TestRows;
use crate::value::ValueType;
use rusqlite::types::Value;
use std::path::Path;

/// The rows with their types. A data file's path is relative to the test's file.
pub fn rows(given: &TestRows, base: &Path) -> Result<Rows, String> {
    match given {
        TestRows::Inline { rows, columns, .. } => {
            let mut types = vec![ValueType::Any; columns.len()];
            let mut values = Vec::with_capacity(rows.len());
            for row in rows {
                let mut out = Vec::with_capacity(row.len());
                for (i, e) in row.iter().enumerate() {
                    let (v, ty) = literal_value(e).ok_or("a row's value is not a literal")?;
                    if ty != ValueType::Any && types.get(i) == Some(&ValueType::Any) {
                        types[i] = ty;
                    }
                    out.push(v);
                }
                values.push(out);
            }
            Ok(Rows {
                columns: columns.iter().map(|c| c.name.to_string()).collect(),
                values,
                types,
            })
        }
        TestRows::File(path) => {
            let path = base.join(path.value.as_str());
            let file = DataFile::scan(&path).map_err(|e| e.to_string())?;
            let mut values = Vec::new();
            file.for_each_row(|row| {
                values.push(row.to_vec());
                Ok::<_, crate::runtime::files::Error>(())
            })
            .map_err(|e| e.to_string())?;
            Ok(Rows {
                columns: file.columns.clone(),
                values,
                types: file.types.clone(),
            })
        }
    }
}

/// The rows as NDJSON lines, each value in its type's JSON form (what a mocked activity
/// prints).
pub fn ndjson(given: &TestRows, base: &Path) -> Result<Vec<u8>, String> {
    let rows = rows(given, base)?;
    let mut out = Vec::new();
    for row in &rows.values {
        let object: serde_json::Map<String, serde_json::Value> = rows
            .columns
            .iter()
            .zip(row)
            .enumerate()
            .map(|(i, (c, v))| (c.clone(), crate::value::json(v, rows.types[i])))
            .collect();
        out.extend(serde_json::Value::Object(object).to_string().into_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// Whether `actual` is the value `expected` means, each in its type.
pub fn same(expected: (&Value, ValueType), actual: (&Value, ValueType)) -> bool {
    use Value::*;
    match (expected, actual) {
        ((Null, _), (Null, _)) => true,
        ((Null, _), _) | (_, (Null, _)) => false,
        ((Integer(b), ValueType::Boolean), (a, _)) => truth(a) == Some(*b != 0),
        ((Integer(ms), ValueType::Duration), (Text(t), _)) => {
            humantime::parse_duration(t).is_ok_and(|d| d.as_millis() == u128::from(ms.unsigned_abs()))
        }
        ((Text(e), ValueType::Timestamp | ValueType::Date), (Text(a), _)) => {
            crate::value::timestamp(e).is_some_and(|e| crate::value::timestamp(a).as_ref() == Some(&e))
                || e == a
        }
        ((Text(e), _), (Text(a), _)) => e == a,
        ((e, _), (a, _)) => match (number(e), number(a)) {
            (Some(e), Some(a)) => e == a || (e - a).abs() <= 1e-9 * e.abs().max(a.abs()),
            _ => false,
        },
    }
}

fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Integer(i) => Some(*i != 0),
        Value::Text(t) if t == "true" => Some(true),
        Value::Text(t) if t == "false" => Some(false),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Real(x) => Some(*x),
        _ => None,
    }
}

/// Whether `actual` holds the rows of `expected` on `expected`'s columns: the same number,
/// matched in order when `ordered`, else each to a different row in any order. Columns the
/// expectation does not name are not compared. `Err` names a column `actual` lacks.
pub fn matches(expected: &Rows, actual: &Rows, ordered: bool) -> Result<bool, String> {
    let mut at = Vec::with_capacity(expected.columns.len());
    for column in &expected.columns {
        match actual.columns.iter().position(|c| c == column) {
            Some(i) => at.push(i),
            None => {
                return Err(format!(
                    "no column `{column}` (the columns are {})",
                    list(&actual.columns)
                ));
            }
        }
    }
    if expected.len() != actual.len() {
        return Ok(false);
    }
    let row_is = |e: &[Value], a: &[Value]| {
        at.iter().enumerate().all(|(i, &j)| {
            let ety = expected.types.get(i).copied().unwrap_or_default();
            let aty = actual.types.get(j).copied().unwrap_or_default();
            same((&e[i], ety), (&a[j], aty))
        })
    };
    if ordered {
        return Ok(expected
            .values
            .iter()
            .zip(&actual.values)
            .all(|(e, a)| row_is(e, a)));
    }
    let mut taken = vec![false; actual.len()];
    for e in &expected.values {
        let Some(j) = (0..actual.len()).find(|&j| !taken[j] && row_is(e, &actual.values[j])) else {
            return Ok(false);
        };
        taken[j] = true;
    }
    Ok(true)
}

fn list(columns: &[String]) -> String {
    if columns.is_empty() {
        return "none".to_string();
    }
    columns
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
