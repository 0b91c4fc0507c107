//! Rows crossing to or from another database (a stage on a server, `runtime::postgres`): a
//! query's rows read one at a time, and rows written into a table of this connection one at
//! a time. Neither holds them all in memory.

use super::{Error, Store, Table, bind_named, quote, shape_of};
use crate::value::ValueType;
use rusqlite::params_from_iter;
use rusqlite::types::Value;
use std::collections::BTreeMap;

/// The storage classes SQLite found in a column of a query's rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Storage {
    pub text: bool,
    pub real: bool,
    pub integer: bool,
    pub blob: bool,
}

/// A query's columns: their names, declared types and what they hold.
pub struct Shape {
    pub columns: Vec<String>,
    pub types: Vec<ValueType>,
    pub storage: Vec<Storage>,
}

impl Store {
    /// The shape of `sql`'s rows, with the storage classes of each column: one pass of the
    /// engine over them, no row kept.
    pub fn query_shape(
        &mut self,
        sql: &str,
        params: &BTreeMap<String, Value>,
    ) -> Result<Shape, Error> {
        let (statement, text) = self.prepare_plan(sql)?;
        let (columns, types) = shape_of(&statement)?;
        drop(statement);
        let mut storage = vec![Storage::default(); columns.len()];
        if columns.is_empty() {
            return Ok(Shape {
                columns,
                types,
                storage,
            });
        }
        let classes = ["text", "real", "integer", "blob"];
        let tests: Vec<String> = columns
            .iter()
            .flat_map(|c| {
                classes
                    .iter()
                    .map(move |class| format!("coalesce(max(typeof(q.{}) = '{class}'), 0)", quote(c)))
            })
            .collect();
        let mut statement = self
            .conn
            .prepare(&format!("SELECT {} FROM ({text}) AS q", tests.join(", ")))?;
        bind_named(&mut statement, params, &self.stage_params)?;
        let mut rows = statement.raw_query();
        if let Some(row) = rows.next()? {
            for (i, found) in storage.iter_mut().enumerate() {
                let has = |k: usize| row.get::<_, i64>(i * 4 + k).map(|n| n != 0);
                *found = Storage {
                    text: has(0)?,
                    real: has(1)?,
                    integer: has(2)?,
                    blob: has(3)?,
                };
            }
        }
        Ok(Shape {
            columns,
            types,
            storage,
        })
    }

    /// Each row of `sql`, one at a time, in column order.
    pub fn each_query_row<E: From<Error>>(
        &mut self,
        sql: &str,
        params: &BTreeMap<String, Value>,
        mut each: impl FnMut(&[Value]) -> Result<(), E>,
    ) -> Result<(), E> {
        let (mut statement, _) = self.prepare_plan(sql)?;
        bind_named(&mut statement, params, &self.stage_params)?;
        let width = statement.column_count();
        let mut rows = statement.raw_query();
        let mut values = Vec::with_capacity(width);
        while let Some(row) = rows.next().map_err(Error::from)? {
            values.clear();
            values.extend((0..width).map(|i| row.get::<_, Value>(i).unwrap_or(Value::Null)));
            each(&values)?;
        }
        Ok(())
    }

    /// A table of this connection holding the rows `fill` gives, as a query's result is held
    /// ([`Store::query_to_table`]): the next step or the stage's table reads it in the engine.
    pub fn table_of_rows<E: From<Error>>(
        &mut self,
        columns: Vec<String>,
        types: Vec<ValueType>,
        fill: impl FnOnce(&mut dyn FnMut(&[Value]) -> Result<(), Error>) -> Result<(), E>,
    ) -> Result<Table, E> {
        let name = self.take_temp(&columns, &types)?;
        let mut rows = 0;
        // Rows of no columns are nothing SQLite can hold (a server's table may have none).
        if columns.is_empty() {
            fill(&mut |_| Ok(()))?;
            return Ok(Table {
                name,
                rows: 0,
                columns,
                types,
            });
        }
        let filled = (|| {
            // One transaction of this connection's own `temp`: no other stage waits for it.
            let tx = self.conn.unchecked_transaction().map_err(Error::from)?;
            {
                let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
                let mut insert = tx
                    .prepare(&format!(
                        "INSERT INTO temp.{} VALUES ({})",
                        quote(&name),
                        marks.join(", ")
                    ))
                    .map_err(Error::from)?;
                fill(&mut |row| {
                    insert.execute(params_from_iter(row.iter()))?;
                    rows += 1;
                    Ok(())
                })?;
            }
            tx.commit().map_err(Error::from)?;
            Ok::<_, E>(())
        })();
        match filled {
            Ok(()) => Ok(Table {
                name,
                rows,
                columns,
                types,
            }),
            Err(e) => {
                let _ = self.release_temp(&name);
                Err(e)
            }
        }
    }
}
