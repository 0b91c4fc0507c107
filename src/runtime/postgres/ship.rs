//! Rows between the run database and a server: a stage's rows shipped in with `COPY` into a
//! temporary table of the session, and a query's rows streamed back into a table of the run
//! database's connection. Both go a row at a time.

use super::Error;
use super::literal::{Column, csv_field};
use super::open::Server;
use crate::plan::ir::ShipIn;
use crate::plan::sql::quote_ident;
use crate::runtime::store::{Storage, Store, Table};
use crate::value::ValueType;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use rusqlite::types::Value;
use std::collections::BTreeMap;
use std::io::Write;

/// How many bytes of CSV are gathered before they are written to the server.
const CHUNK: usize = 64 * 1024;

/// The rows `ship.sql` gives in the run database, as the session's temporary table
/// `ship.table` (dropped when the transaction ends).
pub fn ship_in(
    server: &mut Server,
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
    let defs: Vec<String> = shape
        .columns
        .iter()
        .zip(&columns)
        .map(|(name, c)| format!("{} {}", quote_ident(name), c.sql()))
        .collect();
    let table = format!("pg_temp.{}", quote_ident(&ship.table));
    server.execute(&format!(
        "CREATE TEMPORARY TABLE {table} ({}) ON COMMIT DROP",
        defs.join(", ")
    ))?;
    if shape.columns.is_empty() {
        return Ok(());
    }
    let copy = format!("COPY {table} FROM STDIN WITH (FORMAT csv)");
    let fail = server.fail();
    let mut writer = server.client.copy_in(&copy).map_err(|e| fail(&e))?;
    let mut chunk = String::with_capacity(CHUNK + 1024);
    let connector = server.connector.clone();
    let io = |e: std::io::Error| Error::Server {
        connector: connector.clone(),
        message: format!("cannot send rows: {e}"),
    };
    store.each_query_row(&ship.sql.text, params, |row| {
        for (i, (value, c)) in row.iter().zip(&columns).enumerate() {
            if i > 0 {
                chunk.push(',');
            }
            csv_field(&mut chunk, value, *c);
        }
        chunk.push('\n');
        if chunk.len() >= CHUNK {
            writer.write_all(chunk.as_bytes()).map_err(io)?;
            chunk.clear();
        }
        Ok::<_, Error>(())
    })?;
    writer.write_all(chunk.as_bytes()).map_err(io)?;
    writer.finish().map_err(|e| fail(&e))?;
    Ok(())
}

/// The server's column for a column of the run database: its declared kind, else what its
/// values are (text if any is; a number column of integers or reals; text when all are null).
fn column(ty: ValueType, storage: Storage) -> Column {
    match ty {
        ValueType::Boolean => Column::Boolean,
        ValueType::Duration => Column::Bigint,
        _ if storage.text => Column::Text,
        _ if storage.blob && !(storage.real || storage.integer) => Column::Bytea,
        _ if storage.blob => Column::Text,
        _ if storage.real => Column::Double,
        _ if storage.integer => Column::Bigint,
        _ => Column::Text,
    }
}

/// How a column of the server's rows is read.
#[derive(Clone, Copy)]
enum Read {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Text,
    /// A number the server writes as text (`numeric`): an integer when it is one.
    Number,
}

/// What the client reads a type as; any other type is asked as text.
fn read_of(ty: &Type) -> Option<Read> {
    Some(match *ty {
        Type::BOOL => Read::Bool,
        Type::INT2 => Read::I16,
        Type::INT4 => Read::I32,
        Type::INT8 => Read::I64,
        Type::FLOAT4 => Read::F32,
        Type::FLOAT8 => Read::F64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Read::Text,
        _ => return None,
    })
}

/// The rows of `sql` on the server, streamed into a table of the run database's connection.
/// `known`: the column types the checker knows, for what the server's types do not say.
pub fn ship_out(
    server: &mut Server,
    store: &mut Store,
    sql: &str,
    known: &[ValueType],
) -> Result<Table, Error> {
    let statement = server.client.prepare(sql).map_err(|e| server.failed(&e))?;
    let columns: Vec<String> = statement.columns().iter().map(|c| c.name().to_string()).collect();
    let server_types: Vec<Type> = statement.columns().iter().map(|c| c.type_().clone()).collect();
    if let Some(twice) = columns
        .iter()
        .enumerate()
        .find(|(i, c)| columns[..*i].contains(c))
        .map(|(_, c)| c)
    {
        return Err(Error::Server {
            connector: server.connector.clone(),
            message: format!("the stage's rows have two columns named `{twice}`"),
        });
    }
    let reads: Vec<Read> = server_types
        .iter()
        .map(|t| match read_of(t) {
            Some(read) => read,
            None if *t == Type::NUMERIC => Read::Number,
            None => Read::Text,
        })
        .collect();
    // Types the client does not read are written as text by the server itself.
    let sql = if server_types.iter().all(|t| read_of(t).is_some()) {
        sql.to_string()
    } else {
        let items: Vec<String> = columns
            .iter()
            .zip(&server_types)
            .map(|(c, t)| match read_of(t) {
                Some(_) => format!("_wv_out.{}", quote_ident(c)),
                None => format!("CAST(_wv_out.{0} AS text) AS {0}", quote_ident(c)),
            })
            .collect();
        format!("SELECT {} FROM ({sql}) AS _wv_out", items.join(", "))
    };
    let types: Vec<ValueType> = reads
        .iter()
        .enumerate()
        .map(|(i, read)| match read {
            Read::Bool => ValueType::Boolean,
            _ => known.get(i).copied().unwrap_or_default(),
        })
        .collect();
    let fail = server.fail();
    let mut rows = server
        .client
        .query_raw(sql.as_str(), std::iter::empty::<i32>())
        .map_err(|e| fail(&e))?;
    store.table_of_rows(columns, types, |insert| {
        let mut values = Vec::with_capacity(reads.len());
        while let Some(row) = rows.next().map_err(|e| fail(&e))? {
            values.clear();
            for (i, read) in reads.iter().enumerate() {
                values.push(value(&row, i, *read).map_err(|e| fail(&e))?);
            }
            insert(&values)?;
        }
        Ok::<_, Error>(())
    })
}

/// Column `i` of a row as the run database keeps it: booleans as 1 and 0, as SQLite does.
fn value(row: &postgres::Row, i: usize, read: Read) -> Result<Value, postgres::Error> {
    let int = |n: Option<i64>| n.map_or(Value::Null, Value::Integer);
    let real = |x: Option<f64>| x.map_or(Value::Null, Value::Real);
    Ok(match read {
        Read::Bool => int(row.try_get::<_, Option<bool>>(i)?.map(i64::from)),
        Read::I16 => int(row.try_get::<_, Option<i16>>(i)?.map(i64::from)),
        Read::I32 => int(row.try_get::<_, Option<i32>>(i)?.map(i64::from)),
        Read::I64 => int(row.try_get::<_, Option<i64>>(i)?),
        Read::F32 => real(row.try_get::<_, Option<f32>>(i)?.map(f64::from)),
        Read::F64 => real(row.try_get::<_, Option<f64>>(i)?),
        Read::Text => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
        Read::Number => match row.try_get::<_, Option<String>>(i)? {
            None => Value::Null,
            Some(text) => match text.parse::<i64>() {
                Ok(n) => Value::Integer(n),
                Err(_) => text.parse::<f64>().map_or(Value::Text(text), Value::Real),
            },
        },
    })
}
