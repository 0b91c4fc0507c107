//! The tables of a connection's `temp` schema that hold a query's rows for the step after
//! it, kept once emptied for a later query of the same columns. Creating and dropping a
//! table a stage changes the connection's schema, and any change expires every statement
//! the connection prepared, which SQLite then compiles again: a chain of stages of one shape
//! made no table at all after its first.

use super::{Error, NO_COLUMNS, Store, quote};
use crate::value::ValueType;
use std::collections::HashMap;

/// Emptied tables kept at most (each a line of the connection's `temp` schema).
const KEPT: usize = 16;

#[derive(Default)]
pub(super) struct Temps {
    /// Empty tables: the definition of their columns, and their name; the latest last.
    free: Vec<(String, String)>,
    /// Tables holding rows of a step: name, and the definition of their columns.
    used: HashMap<String, String>,
}

impl Temps {
    /// Whether `name` is an emptied table kept for later.
    pub fn keeps(&self, name: &str) -> bool {
        self.free.iter().any(|(_, n)| n == name)
    }

    /// The tables holding rows of a step.
    pub fn used(&self) -> Vec<String> {
        self.used.keys().cloned().collect()
    }
}

/// The columns of a `CREATE TABLE`, with the declared types that keep booleans, durations,
/// dates and timestamps; a table of no columns has one placeholder column.
pub(super) fn column_defs(columns: &[String], types: &[ValueType]) -> String {
    if columns.is_empty() {
        return quote(NO_COLUMNS);
    }
    let defs: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ty = types.get(i).copied().unwrap_or_default();
            match ty.column_decl() {
                Some(decl) => format!("{} {decl}", quote(c)),
                None => quote(c),
            }
        })
        .collect();
    defs.join(", ")
}

impl Store {
    /// An empty table of `temp` with these columns: one emptied before, or a new one.
    pub(super) fn take_temp(
        &mut self,
        columns: &[String],
        types: &[ValueType],
    ) -> Result<String, Error> {
        let defs = column_defs(columns, types);
        let kept = {
            let mut temps = self.temps.borrow_mut();
            let at = temps.free.iter().rposition(|(d, _)| *d == defs);
            at.map(|at| temps.free.remove(at).1)
        };
        let name = match kept {
            Some(name) => name,
            None => {
                let name = self.temp_name();
                self.conn
                    .execute_batch(&format!("CREATE TABLE temp.{} ({defs})", quote(&name)))?;
                name
            }
        };
        self.temps.borrow_mut().used.insert(name.clone(), defs);
        Ok(name)
    }

    /// Done with table `name` of `temp`: emptied and kept for a later query of its columns,
    /// or dropped. `false` when [`Store::take_temp`] did not give it.
    pub(super) fn release_temp(&self, name: &str) -> Result<bool, Error> {
        let Some(defs) = self.temps.borrow_mut().used.remove(name) else {
            return Ok(false);
        };
        let table = format!("temp.{}", quote(name));
        // A table whose first column is the placeholder may have been given more columns
        // (`Store::widen_empty_tables`); one renamed `_input` or dropped is not there.
        let emptied = !defs.starts_with(&quote(NO_COLUMNS))
            && self
                .conn
                .execute_batch(&format!("DELETE FROM {table}"))
                .is_ok();
        if !emptied {
            self.conn
                .execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
            return Ok(true);
        }
        let oldest = {
            let mut temps = self.temps.borrow_mut();
            temps.free.push((defs, name.to_string()));
            (temps.free.len() > KEPT).then(|| temps.free.remove(0).1)
        };
        if let Some(oldest) = oldest {
            self.conn
                .execute_batch(&format!("DROP TABLE IF EXISTS temp.{}", quote(&oldest)))?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Rows;
    use super::*;
    use crate::runtime::output::Data;
    use rusqlite::types::Value;
    use std::collections::BTreeMap;

    fn temp_tables(store: &Store) -> i64 {
        store
            .conn
            .query_row(
                "SELECT count(*) FROM temp.sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Stage after stage of the same columns, the connection makes its table once, and each
    /// query's rows are its own.
    #[test]
    fn a_query_of_the_same_columns_takes_the_table_an_earlier_one_left() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::in_memory(dir.path()).unwrap();
        let params = BTreeMap::new();
        for n in 1..=3_i64 {
            let sql = format!("SELECT {n} AS n UNION ALL SELECT {n} + 10");
            let table = store.query_to_table(&sql, &params, &[]).unwrap();
            store
                .write_data("run", &format!("s{n}"), &Data::Table(table))
                .unwrap();
            store.drop_step_tables().unwrap();
            assert_eq!(temp_tables(&store), 1, "stage {n}");
        }
        let s3 = store.stage_rows("s3").unwrap();
        assert_eq!(s3.values, [[Value::Integer(3)], [Value::Integer(13)]]);
        // Read into memory, a table is emptied for the next; other columns make another.
        let table = store.query_to_table("SELECT 5 AS n", &params, &[]).unwrap();
        let rows = store.rows(Data::Table(table)).unwrap();
        assert_eq!(rows.values, [[Value::Integer(5)]]);
        let table = store
            .query_to_table("SELECT 1 AS m, TRUE AS ok", &params, &[ValueType::Int, ValueType::Boolean])
            .unwrap();
        assert_eq!(store.rows(Data::Table(table)).unwrap(), Rows {
            columns: vec!["m".into(), "ok".into()],
            values: vec![vec![Value::Integer(1), Value::Integer(1)]],
            types: vec![ValueType::Int, ValueType::Boolean],
        });
        assert_eq!(temp_tables(&store), 2);
    }
}
