//! The rows of a fan-out (`each`) as they stream: its items read from a table of the engine a
//! slice at a time, and the items' rows gathered into another as they end, in item order
//! whatever order they end in. Neither is ever whole in memory: a million items cost what a
//! slice costs.

use super::{Error, NO_COLUMNS, Rows, Store, Table, quote};
use crate::runtime::output::Data;
use crate::value::ValueType;
use rusqlite::params_from_iter;
use rusqlite::types::Value;
use std::collections::{BTreeMap, HashMap};

/// How a table's row id is read when none of `columns` shadows one of its names; `None` when
/// every name is a column's.
pub(super) fn row_id_alias(columns: &[String]) -> Option<&'static str> {
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|alias| !columns.iter().any(|c| c.eq_ignore_ascii_case(alias)))
}

/// A fan-out's input: a table of the connection's `temp`, read in insertion order.
pub struct ItemTable {
    table: Table,
    /// How a row's position is read: the hidden row id under a name no column shadows;
    /// `None` when every name is a column's (then slices are read by offset).
    position: Option<&'static str>,
}

impl ItemTable {
    pub fn len(&self) -> usize {
        self.table.rows
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn columns(&self) -> &[String] {
        &self.table.columns
    }

    pub fn types(&self) -> &[ValueType] {
        &self.table.types
    }
}

impl Store {
    /// A step's rows as a fan-out's input, without reading them into memory: a query's
    /// table as it is, an activity's output written into a new table.
    pub fn item_table(&mut self, data: Data) -> Result<ItemTable, Error> {
        let table = match data {
            Data::Table(table) => table,
            Data::Output(output) => {
                let name = self.temp_name();
                self.write_output("temp", &name, &output)?;
                let (columns, types) = match &output {
                    crate::runtime::output::Output::Rows(rows) => {
                        (rows.columns.clone(), rows.types.clone())
                    }
                    crate::runtime::output::Output::Spooled(spooled) => {
                        (spooled.columns.clone(), spooled.types.clone())
                    }
                };
                Table {
                    name,
                    rows: output.len(),
                    columns,
                    types,
                }
            }
        };
        // Rows are inserted once, in order, into a table with no key of its own: the row id
        // counts them from 1.
        let position = row_id_alias(&table.columns);
        Ok(ItemTable { table, position })
    }

    /// Items `from..from + count` (fewer at the end), with the table's columns and types.
    pub fn item_slice(&self, items: &ItemTable, from: usize, count: usize) -> Result<Rows, Error> {
        let name = format!("temp.{}", quote(&items.table.name));
        let sql = match items.position {
            Some(id) => format!(
                "SELECT * FROM {name} WHERE {id} > {from} AND {id} <= {} ORDER BY {id}",
                from + count
            ),
            None => format!("SELECT * FROM {name} LIMIT {count} OFFSET {from}"),
        };
        let mut statement = self.conn.prepare(&sql)?;
        let width = items.table.columns.len();
        let mut rows = statement.raw_query();
        let mut values = Vec::with_capacity(count.min(items.len()));
        while let Some(row) = rows.next()? {
            values.push(
                (0..width)
                    .map(|i| row.get::<_, Value>(i).unwrap_or(Value::Null))
                    .collect(),
            );
        }
        Ok(Rows {
            columns: items.table.columns.clone(),
            values,
            types: items.table.types.clone(),
        })
    }

    /// Done with a fan-out's input.
    pub fn drop_items(&self, items: ItemTable) -> Result<(), Error> {
        self.drop_table("temp", &items.table.name)
    }

    /// The rows of the `each` items `items` of a stage's step that succeeded in an earlier
    /// execution of this run (before a crash), by item; empty in a new run.
    pub fn finished_items(
        &mut self,
        stage: &str,
        step: usize,
        items: std::ops::Range<usize>,
    ) -> Result<BTreeMap<usize, Rows>, Error> {
        let (from, to) = (items.start as i64, items.end as i64);
        let mut found = BTreeMap::new();
        if self.layout {
            let mut statement = self.conn.prepare_cached(
                "SELECT item, rows FROM run.wv_items
                 WHERE stage = ?1 AND step = ?2 AND item >= ?3 AND item < ?4",
            )?;
            let rows = statement.query(rusqlite::params![stage, step as i64, from, to])?;
            found.extend(read_items(rows)?);
        }
        // A run begun before the rows table kept each stage's items in a table of their own.
        let table = legacy_items_table(stage, step);
        if self.exists("run", &table)? {
            let mut statement = self.conn.prepare_cached(&format!(
                "SELECT item, rows FROM run.{} WHERE item >= ?1 AND item < ?2",
                quote(&table)
            ))?;
            found.extend(read_items(statement.query([from, to])?)?);
        }
        Ok(found)
    }

    /// Records one succeeded `each` item's rows in the run's database as soon as it ends, so
    /// that a resumed run does not call it again.
    pub fn finish_item(
        &mut self,
        stage: &str,
        step: usize,
        item: usize,
        rows: &Rows,
    ) -> Result<(), Error> {
        let text = serde_json::to_string(&rows.to_json_objects())?;
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO run.wv_items (stage, step, item, rows)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(rusqlite::params![stage, step as i64, item as i64, text])?;
        Ok(())
    }
}

/// Items' rows by item, from rows of `(item, rows as JSON)`.
fn read_items(mut rows: rusqlite::Rows) -> Result<Vec<(usize, Rows)>, Error> {
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let (item, text) = (row.get::<_, i64>(0)?, row.get::<_, String>(1)?);
        let objects: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(&text).unwrap_or_default();
        found.push((item as usize, Rows::from_json_objects(&objects)));
    }
    Ok(found)
}

/// The table of a stage step's finished `each` items in a run database of the layout before
/// the rows table (`:` is in no stage name).
fn legacy_items_table(stage: &str, step: usize) -> String {
    format!("{stage}:items:{step}")
}

/// One column of [`Gathered`]: where its values are, its type, and where it was first seen.
struct Column {
    name: String,
    ty: ValueType,
    /// The first item that has it, and its place among that item's columns: the union's
    /// columns are in the order a union in item order would first see them.
    first: (usize, usize),
}

/// Every item's rows together by column name (as [`Rows::union_by_name`] of the items in
/// order), gathered in a table of the connection's `temp` as items end, in any order.
pub struct Gathered {
    table: String,
    columns: Vec<Column>,
    by_name: HashMap<String, usize>,
    created: bool,
    /// Rows gathered, when no item had a column (the rows have none to store).
    rows: usize,
}

impl Gathered {
    pub fn new(store: &mut Store) -> Gathered {
        Gathered {
            table: store.temp_name(),
            columns: Vec::new(),
            by_name: HashMap::new(),
            created: false,
            rows: 0,
        }
    }

    /// Item `item`'s rows. An item's columns count even when it has no rows, as in a union;
    /// rows of no columns at all (what did not run) add nothing.
    pub fn add(&mut self, store: &Store, item: usize, rows: &Rows) -> Result<(), Error> {
        if rows.is_empty() && rows.columns == [NO_COLUMNS] {
            return Ok(());
        }
        self.create(store)?;
        let mut at = Vec::with_capacity(rows.columns.len());
        for (place, name) in rows.columns.iter().enumerate() {
            at.push(self.column(store, name, rows.type_of(place), (item, place))?);
        }
        self.rows += rows.len();
        if rows.is_empty() || at.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = at.iter().map(|&c| format!("c{c}")).collect();
        let marks: Vec<String> = (0..at.len() + 2).map(|i| format!("?{}", i + 1)).collect();
        let mut insert = store
            .conn
            .prepare_cached(&format!(
                "INSERT INTO temp.{} (item, seq, {}) VALUES ({})",
                quote(&self.table),
                names.join(", "),
                marks.join(", ")
            ))
            ?;
        for (seq, row) in rows.values.iter().enumerate() {
            let head = [Value::Integer(item as i64), Value::Integer(seq as i64)];
            insert
                .execute(params_from_iter(head.iter().chain(row)))
                ?;
        }
        Ok(())
    }

    /// The table, keyed by item and a row's place in it: read back in item order with no
    /// sort. Its columns are numbered, so no item's column name can clash with them.
    fn create(&mut self, store: &Store) -> Result<(), Error> {
        if !self.created {
            store
                .conn
                .execute_batch(&format!(
                    "CREATE TABLE temp.{} (item INTEGER, seq INTEGER, PRIMARY KEY (item, seq)) WITHOUT ROWID",
                    quote(&self.table)
                ))
                ?;
            self.created = true;
        }
        Ok(())
    }

    /// The number of the column `name`, added when first seen; two items that give it
    /// different types make it of any type, as a union does.
    fn column(
        &mut self,
        store: &Store,
        name: &str,
        ty: ValueType,
        seen: (usize, usize),
    ) -> Result<usize, Error> {
        if let Some(&at) = self.by_name.get(name) {
            let column = &mut self.columns[at];
            if column.ty != ty {
                column.ty = ValueType::Any;
            }
            column.first = column.first.min(seen);
            return Ok(at);
        }
        let at = self.columns.len();
        store
            .conn
            .execute_batch(&format!(
                "ALTER TABLE temp.{} ADD COLUMN c{at}",
                quote(&self.table)
            ))
            ?;
        self.by_name.insert(name.to_string(), at);
        self.columns.push(Column {
            name: name.to_string(),
            ty,
            first: seen,
        });
        Ok(at)
    }

    /// The gathered rows, in item order, as a table of the engine (no rows in memory); the
    /// gathering table is dropped.
    pub fn finish(mut self, store: &mut Store) -> Result<Data, Error> {
        if self.columns.is_empty() {
            let _ = self.drop(store);
            return Ok(Rows {
                values: vec![Vec::new(); self.rows],
                ..Rows::default()
            }
            .into());
        }
        let mut order: Vec<usize> = (0..self.columns.len()).collect();
        order.sort_by_key(|&c| self.columns[c].first);
        let select: Vec<String> = order
            .iter()
            .map(|&c| format!("c{c} AS {}", quote(&self.columns[c].name)))
            .collect();
        let types: Vec<ValueType> = order.iter().map(|&c| self.columns[c].ty).collect();
        let sql = format!(
            "SELECT {} FROM temp.{} ORDER BY item, seq",
            select.join(", "),
            quote(&self.table)
        );
        let table = store.query_to_table(&sql, &Default::default(), &types);
        let dropped = self.drop(store);
        let mut table = table?;
        dropped?;
        // The engine knows no type of the gathering's untyped columns: the items' are
        // theirs.
        table.types = types;
        Ok(Data::Table(table))
    }

    fn drop(&mut self, store: &Store) -> Result<(), Error> {
        if std::mem::take(&mut self.created) {
            store.drop_table("temp", &self.table)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(columns: &[&str], values: Vec<Vec<Value>>) -> Rows {
        Rows::untyped(columns.iter().map(|c| c.to_string()).collect(), values)
    }

    /// Items that end in any order are gathered as a union of the items in order: the same
    /// columns in the same order, the same rows.
    #[test]
    fn gathered_out_of_order_is_the_union_in_item_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::in_memory(dir.path()).unwrap();
        let items = [
            rows(&["a"], vec![vec![Value::Integer(1)]]),
            rows(&["b", "a"], vec![vec![Value::Text("x".into()), Value::Integer(2)]]),
            rows(&["c"], vec![]),
            rows(
                &["a"],
                vec![vec![Value::Integer(3)], vec![Value::Integer(4)]],
            ),
        ];
        let mut gathered = Gathered::new(&mut store);
        for i in [3, 1, 2, 0] {
            gathered.add(&store, i, &items[i]).unwrap();
        }
        let data = gathered.finish(&mut store).unwrap();
        let got = store.rows(data).unwrap();
        let want = Rows::union_by_name(items.to_vec());
        assert_eq!(got.columns, want.columns);
        assert_eq!(got.values, want.values);
    }

    /// A slice is the items at those places, whatever the columns are called.
    #[test]
    fn slices_read_items_in_order_even_when_a_column_is_called_rowid() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::in_memory(dir.path()).unwrap();
        for columns in [["n", "m", "k"], ["rowid", "_rowid_", "oid"]] {
            let values = (0..10)
                .map(|i| vec![Value::Integer(i), Value::Integer(-i), Value::Null])
                .collect();
            let items = store
                .item_table(rows(&columns, values).into())
                .unwrap();
            let slice = store.item_slice(&items, 4, 3).unwrap();
            let firsts: Vec<&Value> = slice.values.iter().map(|r| &r[0]).collect();
            assert_eq!(
                firsts,
                [&Value::Integer(4), &Value::Integer(5), &Value::Integer(6)]
            );
            assert_eq!(store.item_slice(&items, 9, 3).unwrap().len(), 1);
            store.drop_items(items).unwrap();
        }
    }
}
