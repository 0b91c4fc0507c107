//! Rows between the run database and a DuckDB database: a stage's rows appended (DuckDB's
//! Appender) into a temporary table of the stage's connection, and a query's rows read back
//! into a table of the run database's connection. Both go a row at a time.

use super::Error;
use super::open::Session;
use crate::plan::ir::ShipIn;
use crate::plan::sql::quote_ident;
use crate::runtime::store::{Storage, Store, Table};
use crate::value::ValueType;
use duckdb::types::{Value as Duck, ValueRef};
use rusqlite::types::Value;
use std::collections::BTreeMap;

/// What a shipped column is in DuckDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    Boolean,
    Bigint,
    Double,
    Varchar,
    Blob,
}

impl Column {
    fn sql(self) -> &'static str {
        match self {
            Column::Boolean => "BOOLEAN",
            Column::Bigint => "BIGINT",
            Column::Double => "DOUBLE",
            Column::Varchar => "VARCHAR",
            Column::Blob => "BLOB",
        }
    }
}

/// DuckDB's column for a column of the run database: its declared kind, else what its values
/// are (text if any is; a number column of integers or reals; text when all are null).
fn column(ty: ValueType, storage: Storage) -> Column {
    match ty {
        ValueType::Boolean => Column::Boolean,
        ValueType::Duration => Column::Bigint,
        _ if storage.text => Column::Varchar,
        _ if storage.blob && !(storage.real || storage.integer) => Column::Blob,
        _ if storage.blob => Column::Varchar,
        _ if storage.real => Column::Double,
        _ if storage.integer => Column::Bigint,
        _ => Column::Varchar,
    }
}

/// A value of the run database as DuckDB's, for a column of `column`.
fn duck(value: &Value, column: Column) -> Duck {
    match (value, column) {
        (Value::Null, _) => Duck::Null,
        (Value::Integer(n), Column::Boolean) => Duck::Boolean(*n != 0),
        (Value::Real(x), Column::Boolean) => Duck::Boolean(*x != 0.0),
        (Value::Integer(n), Column::Double) => Duck::Double(*n as f64),
        (Value::Integer(n), Column::Varchar) => Duck::Text(n.to_string()),
        (Value::Integer(n), _) => Duck::BigInt(*n),
        (Value::Real(x), Column::Varchar) => Duck::Text(format!("{x:?}")),
        (Value::Real(x), _) => Duck::Double(*x),
        (Value::Text(s), _) => Duck::Text(s.clone()),
        (Value::Blob(bytes), Column::Blob) => Duck::Blob(bytes.clone()),
        (Value::Blob(bytes), _) => Duck::Text(bytes.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

/// The rows `ship.sql` gives in the run database, as the connection's temporary table
/// `ship.table` (gone when the connection closes).
pub fn ship_in(
    session: &Session,
    store: &mut Store,
    ship: &ShipIn,
    params: &BTreeMap<String, Value>,
) -> Result<(), Error> {
    let shape = store.query_shape(&ship.sql.text, params)?;
    let columns: Vec<Column> = shape
        .types
        .iter()
        .zip(&shape.storage)
        .map(|(ty, storage)| column(*ty, *storage))
        .collect();
    if shape.columns.is_empty() {
        // A table of no columns is nothing DuckDB can hold: a stage read with none has none.
        return session.execute(&format!(
            "CREATE OR REPLACE TEMPORARY TABLE {} AS SELECT 1 AS \"_\" WHERE false",
            quote_ident(&ship.table)
        ));
    }
    let defs: Vec<String> = shape
        .columns
        .iter()
        .zip(&columns)
        .map(|(name, c)| format!("{} {}", quote_ident(name), c.sql()))
        .collect();
    session.execute(&format!(
        "CREATE OR REPLACE TEMPORARY TABLE {} ({})",
        quote_ident(&ship.table),
        defs.join(", ")
    ))?;
    let failed = |e: duckdb::Error| session.failed(&e);
    let mut appender = session
        .conn
        .appender_to_catalog_and_db(&ship.table, "temp", "main")
        .map_err(failed)?;
    let mut values: Vec<Duck> = Vec::with_capacity(columns.len());
    store.each_query_row(&ship.sql.text, params, |row| {
        values.clear();
        values.extend(row.iter().zip(&columns).map(|(v, c)| duck(v, *c)));
        appender
            .append_row(duckdb::appender_params_from_iter(values.iter()))
            .map_err(failed)
    })?;
    appender.flush().map_err(failed)?;
    Ok(())
}

/// How a column of DuckDB's rows is read: as it is, or cast by the query.
fn read_as(ty: &str) -> Option<&'static str> {
    let base = ty.split('(').next().unwrap_or(ty).trim();
    match base {
        "BOOLEAN" | "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "HUGEINT" | "UTINYINT"
        | "USMALLINT" | "UINTEGER" | "UBIGINT" | "UHUGEINT" | "FLOAT" | "DOUBLE" | "VARCHAR"
        | "BLOB" => None,
        // A decimal (`1.5 * x`, `sum` of decimals) comes back as a real, as on SQLite.
        "DECIMAL" => Some("DOUBLE"),
        // Dates, times, intervals, lists...: their text.
        _ => Some("VARCHAR"),
    }
}

/// The rows of `sql`, read into a table of the run database's connection. `known`: the
/// column types the checker knows, for what DuckDB's types do not say.
pub fn ship_out(
    session: &Session,
    store: &mut Store,
    sql: &str,
    known: &[ValueType],
) -> Result<Table, Error> {
    let failed = |e: duckdb::Error| session.failed(&e);
    // The result is made once, into a temporary table whose columns' types are then read from
    // the catalog: describing the query instead would plan it twice (and read a CSV file's
    // start twice to learn its columns).
    session.execute(&format!("CREATE OR REPLACE TEMPORARY TABLE _wv_out AS {sql}"))?;
    let described: Vec<(String, String)> = {
        let mut describe = session
            .conn
            .prepare("DESCRIBE temp._wv_out")
            .map_err(failed)?;
        let rows = describe
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)?
    };
    let columns: Vec<String> = described.iter().map(|(c, _)| c.clone()).collect();
    if let Some(twice) = columns
        .iter()
        .enumerate()
        .find(|(i, c)| columns[..*i].contains(c))
        .map(|(_, c)| c)
    {
        return Err(Error::Database {
            connector: session.connector.clone(),
            message: format!("the stage's rows have two columns named `{twice}`"),
        });
    }
    let types: Vec<ValueType> = described
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| match ty.as_str() {
            "BOOLEAN" => ValueType::Boolean,
            _ => known.get(i).copied().unwrap_or_default(),
        })
        .collect();
    let items: Vec<String> = described
        .iter()
        .map(|(c, ty)| match read_as(ty) {
            None => format!("_wv_out.{}", quote_ident(c)),
            Some(cast) => format!("CAST(_wv_out.{0} AS {cast}) AS {0}", quote_ident(c)),
        })
        .collect();
    let sql = match items.is_empty() {
        true => "SELECT * FROM temp._wv_out".to_string(),
        false => format!("SELECT {} FROM temp._wv_out AS _wv_out", items.join(", ")),
    };
    let width = columns.len();
    let mut statement = session.conn.prepare(&sql).map_err(failed)?;
    let mut rows = statement.query([]).map_err(failed)?;
    store.table_of_rows(columns, types, |insert| {
        let mut values = Vec::with_capacity(width);
        while let Some(row) = rows.next().map_err(failed)? {
            values.clear();
            for i in 0..width {
                values.push(value(row.get_ref(i).map_err(failed)?));
            }
            insert(&values)?;
        }
        Ok::<_, Error>(())
    })
}

/// A DuckDB value as the run database keeps it: booleans as 1 and 0, as SQLite does; an
/// integer too large for 64 bits as a real.
fn value(v: ValueRef<'_>) -> Value {
    let wide = |n: i128| i64::try_from(n).map_or(Value::Real(n as f64), Value::Integer);
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Boolean(b) => Value::Integer(i64::from(b)),
        ValueRef::TinyInt(n) => Value::Integer(n.into()),
        ValueRef::SmallInt(n) => Value::Integer(n.into()),
        ValueRef::Int(n) => Value::Integer(n.into()),
        ValueRef::BigInt(n) => Value::Integer(n),
        ValueRef::HugeInt(n) => wide(n),
        ValueRef::UTinyInt(n) => Value::Integer(n.into()),
        ValueRef::USmallInt(n) => Value::Integer(n.into()),
        ValueRef::UInt(n) => Value::Integer(n.into()),
        ValueRef::UBigInt(n) => wide(n.into()),
        ValueRef::UHugeInt(n) => i128::try_from(n).map_or(Value::Real(n as f64), wide),
        ValueRef::Float(x) => Value::Real(x.into()),
        ValueRef::Double(x) => Value::Real(x),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        other => Value::Text(format!("{other:?}")),
    }
}
