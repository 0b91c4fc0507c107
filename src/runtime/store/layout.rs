//! Where the tables the engine writes into the run database live: every stage's rows (and a
//! fan-out's failed items) is a range of one rows table, `run.wv_rows`, named by a line of an
//! ordinary catalog table, `run.wv_tables` (its columns' names and declared types). A table
//! per stage made the run's schema grow with its stages, and each `CREATE TABLE` costs the
//! size of the schema, which every other connection then parses again (issue 32): quadratic
//! in the stages, twice. This schema does not grow with the stages; it changes only when a
//! stage is wider than any before it (a column added to the rows table).
//!
//! SQL still names a stage as `run."stage"`: [`Store::prepare_plan`] reads it as a subquery
//! over its range of the rows table ([`Entry::select`]). Data files stay tables of their own:
//! there are as many as the flow names files, not stages.
//!
//! [`Store::prepare_plan`]: super::Store

use super::{Error, Store, quote};
use crate::value::ValueType;
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

/// Table `id`'s rows have the row ids `id * SPAN + 1 ..= id * SPAN + SPAN - 1`: a range of
/// the rows table's own key, read in the order written, with no index to keep.
const SPAN: i64 = 1 << 32;

/// The run database's tables of this layout.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS run.wv_rows (id INTEGER PRIMARY KEY);
    CREATE TABLE IF NOT EXISTS run.wv_tables (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        columns TEXT NOT NULL,
        kinds TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS run.wv_items (
        stage TEXT NOT NULL,
        step INTEGER NOT NULL,
        item INTEGER NOT NULL,
        rows TEXT NOT NULL,
        PRIMARY KEY (stage, step, item)
    );";

/// What a column of the rows table is declared as: the declared type is what keeps a
/// boolean, a duration, a date or a timestamp one when SQL reads it (see
/// [`ValueType::column_decl`]), so each kind has columns of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Plain,
    Boolean,
    Duration,
    Date,
    Timestamp,
}

const KINDS: [Kind; 5] = [
    Kind::Plain,
    Kind::Boolean,
    Kind::Duration,
    Kind::Date,
    Kind::Timestamp,
];

impl Kind {
    fn of(ty: ValueType) -> Kind {
        match ty {
            ValueType::Boolean => Kind::Boolean,
            ValueType::Duration => Kind::Duration,
            ValueType::Date => Kind::Date,
            ValueType::Timestamp => Kind::Timestamp,
            _ => Kind::Plain,
        }
    }

    /// The first letter of its columns' names (`a0`, `b3`), and its code in the catalog.
    fn letter(self) -> char {
        match self {
            Kind::Plain => 'a',
            Kind::Boolean => 'b',
            Kind::Duration => 'u',
            Kind::Date => 'd',
            Kind::Timestamp => 't',
        }
    }

    fn from_letter(letter: char) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.letter() == letter)
    }

    fn value_type(self) -> ValueType {
        match self {
            Kind::Plain => ValueType::Any,
            Kind::Boolean => ValueType::Boolean,
            Kind::Duration => ValueType::Duration,
            Kind::Date => ValueType::Date,
            Kind::Timestamp => ValueType::Timestamp,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many columns of each kind the rows table has (at least: another connection may have
/// added some since).
pub(super) type Widths = [usize; 5];

/// A table of the catalog: its number and its columns.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Entry {
    id: i64,
    pub columns: Vec<String>,
    kinds: Vec<Kind>,
}

impl Entry {
    /// A table of these columns (one placeholder column when there are none, as a table of
    /// its own had).
    fn new(id: i64, columns: &[String], types: &[ValueType]) -> Entry {
        if columns.is_empty() {
            return Entry {
                id,
                columns: vec![super::NO_COLUMNS.to_string()],
                kinds: vec![Kind::Plain],
            };
        }
        let kinds = (0..columns.len())
            .map(|i| Kind::of(types.get(i).copied().unwrap_or_default()))
            .collect();
        Entry {
            id,
            columns: columns.to_vec(),
            kinds,
        }
    }

    /// What SQL reading the table tells of each column's type.
    pub fn types(&self) -> Vec<ValueType> {
        self.kinds.iter().map(|k| k.value_type()).collect()
    }

    /// The rows table's column that holds each column: the n-th column of a kind is that
    /// kind's n-th.
    fn slots(&self) -> Vec<String> {
        let mut seen = [0; 5];
        self.kinds
            .iter()
            .map(|k| {
                seen[k.index()] += 1;
                format!("{}{}", k.letter(), seen[k.index()] - 1)
            })
            .collect()
    }

    fn widths(&self) -> Widths {
        let mut widths = [0; 5];
        self.kinds.iter().for_each(|k| widths[k.index()] += 1);
        widths
    }

    /// The row id before the table's first.
    fn base(&self) -> i64 {
        self.id * SPAN
    }

    fn range(&self) -> String {
        format!("id > {} AND id < {}", self.base(), self.base() + SPAN)
    }

    /// The table as SQL reads it: its rows in the order written, each column under its name
    /// and with its declared type.
    pub fn select(&self) -> String {
        let columns: Vec<String> = self
            .slots()
            .iter()
            .zip(&self.columns)
            .map(|(slot, name)| format!("{slot} AS {}", quote(name)))
            .collect();
        format!(
            "(SELECT {} FROM run.wv_rows WHERE {})",
            columns.join(", "),
            self.range()
        )
    }

    fn kinds_code(&self) -> String {
        self.kinds.iter().map(|k| k.letter()).collect()
    }
}

/// The names of the tables a run database holds, in either layout: `conn` is opened on the
/// run database alone (its schema `main`).
pub fn table_names(conn: &Connection) -> rusqlite::Result<std::collections::BTreeSet<String>> {
    let mut names: std::collections::BTreeSet<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if names.contains("wv_tables") && names.contains("wv_rows") {
        let mut catalog = conn.prepare("SELECT name FROM wv_tables")?;
        for name in catalog.query_map([], |r| r.get::<_, String>(0))? {
            names.insert(name?);
        }
    }
    Ok(names)
}

/// Makes the layout's tables in a new run database.
pub(super) fn create(conn: &Connection) -> Result<(), Error> {
    if !present(conn)? {
        conn.execute_batch(SCHEMA)?;
    }
    Ok(())
}

/// Whether the run database has this layout (a run recorded before it has a table per
/// stage, which SQL then reads as it is).
pub(super) fn present(conn: &Connection) -> Result<bool, Error> {
    Ok(conn.query_row(
        "SELECT count(*) = 3 FROM run.sqlite_master WHERE type = 'table'
           AND name IN ('wv_rows', 'wv_tables', 'wv_items')",
        [],
        |r| r.get(0),
    )?)
}

/// The catalog's line for `name`, if any.
pub(super) fn lookup(conn: &Connection, name: &str) -> Result<Option<Entry>, Error> {
    let mut statement =
        conn.prepare_cached("SELECT id, columns, kinds FROM run.wv_tables WHERE name = ?1")?;
    let found = statement
        .query_map([name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .next()
        .transpose()?;
    let Some((id, columns, kinds)) = found else {
        return Ok(None);
    };
    let columns: Vec<String> = serde_json::from_str(&columns)?;
    let kinds: Vec<Kind> = kinds.chars().filter_map(Kind::from_letter).collect();
    Ok((kinds.len() == columns.len()).then_some(Entry { id, columns, kinds }))
}

/// Names `name` in the catalog with these columns, as the first write of the open
/// transaction (so that it takes the run database's write lock before reading anything);
/// a new name gets the next number (the catalog's row id).
fn name(conn: &Connection, name: &str, entry: &Entry) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO run.wv_tables (name, columns, kinds) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET columns = excluded.columns, kinds = excluded.kinds
         RETURNING id",
    )?
    .query_row(
        rusqlite::params![
            name,
            serde_json::to_string(&entry.columns).unwrap_or_default(),
            entry.kinds_code()
        ],
        |r| r.get(0),
    )
}

impl Store {
    /// Opens the transaction that replaces table `name` of the run database with an empty
    /// one of these columns: its catalog line written, its rows deleted, the rows table
    /// wide enough. Readers see the old rows or the new, never none.
    pub(super) fn begin_rows(
        &self,
        table: &str,
        columns: &[String],
        types: &[ValueType],
    ) -> Result<(rusqlite::Transaction<'_>, Entry), Error> {
        let mut entry = Entry::new(0, columns, types);
        let (tx, id) = self.begin_writing(|conn| name(conn, table, &entry))?;
        entry.id = id;
        tx.execute(
            &format!("DELETE FROM run.wv_rows WHERE {}", entry.range()),
            [],
        )?;
        self.widen_rows(&tx, entry.widths())?;
        Ok((tx, entry))
    }

    /// Adds the columns the rows table lacks for a table of `need` columns of each kind, in
    /// the open write transaction.
    fn widen_rows(&self, conn: &Connection, need: Widths) -> Result<(), Error> {
        if need.iter().zip(self.widths.get()).all(|(n, have)| *n <= have) {
            return Ok(());
        }
        let mut have: Widths = [0; 5];
        {
            let mut statement =
                conn.prepare("SELECT name FROM pragma_table_info('wv_rows', 'run')")?;
            let names = statement.query_map([], |r| r.get::<_, String>(0))?;
            for name in names {
                if let Some(kind) = name?.chars().next().and_then(Kind::from_letter) {
                    have[kind.index()] += 1;
                }
            }
        }
        for kind in KINDS {
            for n in have[kind.index()]..need[kind.index()] {
                let decl = kind.value_type().column_decl().unwrap_or("");
                conn.execute_batch(&format!(
                    "ALTER TABLE run.wv_rows ADD COLUMN {}{n} {decl}",
                    kind.letter()
                ))?;
            }
            have[kind.index()] = have[kind.index()].max(need[kind.index()]);
        }
        self.widths.set(have);
        Ok(())
    }

    /// Inserts the rows `fill` gives as table `entry`'s, in the open transaction.
    pub(super) fn insert_entry_rows(
        &self,
        tx: &rusqlite::Transaction,
        entry: &Entry,
        width: usize,
        fill: &mut dyn FnMut(&mut super::InsertRow) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if width == 0 {
            return Ok(());
        }
        let marks: Vec<String> = (2..=width + 1).map(|i| format!("?{i}")).collect();
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO run.wv_rows (id, {}) VALUES (?1, {})",
            entry.slots().join(", "),
            marks.join(", ")
        ))?;
        let mut id = entry.base();
        fill(&mut |row| {
            id += 1;
            let id = Value::Integer(id);
            insert
                .execute(params_from_iter(std::iter::once(&id).chain(row)))
                .map(|_| ())
                .map_err(Error::from)
        })
    }

    /// Copies the rows of `from` (a table of any schema, in the order of its row ids) into
    /// table `entry`, in the open transaction. `columns` are `from`'s, in order.
    pub(super) fn copy_into_entry(
        &self,
        tx: &rusqlite::Transaction,
        entry: &Entry,
        from: &str,
        columns: &[String],
    ) -> Result<usize, Error> {
        let picked: Vec<String> = if columns.is_empty() {
            vec![quote(super::NO_COLUMNS)]
        } else {
            columns.iter().map(|c| quote(c)).collect()
        };
        let position = match super::items::row_id_alias(columns) {
            Some(alias) => format!("{} + {alias}", entry.base()),
            // Every alias of the row id is a column's: count the rows as they are read.
            None => format!("{} + row_number() OVER ()", entry.base()),
        };
        let copied = tx.execute(
            &format!(
                "INSERT INTO run.wv_rows (id, {}) SELECT {position}, {} FROM {from}",
                entry.slots().join(", "),
                picked.join(", ")
            ),
            [],
        )?;
        Ok(copied)
    }

    /// Adds `column` to table `entry` (of no rows: see `Store::widen_empty_tables`), unless
    /// another connection changed the table first.
    pub(super) fn add_entry_column(
        &self,
        table: &str,
        entry: &Entry,
        column: &str,
    ) -> Result<(), Error> {
        let mut wider = entry.clone();
        wider.columns.push(column.to_string());
        wider.kinds.push(Kind::Plain);
        let (tx, _) = self.begin_writing(|conn| {
            conn.execute(
                "UPDATE run.wv_tables SET columns = ?2, kinds = ?3 WHERE name = ?1 AND columns = ?4",
                rusqlite::params![
                    table,
                    serde_json::to_string(&wider.columns).unwrap_or_default(),
                    wider.kinds_code(),
                    serde_json::to_string(&entry.columns).unwrap_or_default(),
                ],
            )
        })?;
        self.widen_rows(&tx, wider.widths())?;
        tx.commit()?;
        Ok(())
    }

    /// Whether table `entry` has any row.
    pub(super) fn entry_has_rows(&self, entry: &Entry) -> Result<bool, Error> {
        Ok(self.conn.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM run.wv_rows WHERE {})",
                entry.range()
            ),
            [],
            |r| r.get(0),
        )?)
    }

    /// Removes table `table` of the catalog and its rows; `false` when there is none.
    pub(super) fn drop_entry(&self, table: &str) -> Result<bool, Error> {
        let Some(entry) = lookup(&self.conn, table)? else {
            return Ok(false);
        };
        let (tx, _) = self.begin_writing(|conn| {
            conn.execute("DELETE FROM run.wv_tables WHERE name = ?1", [table])
        })?;
        tx.execute(
            &format!("DELETE FROM run.wv_rows WHERE {}", entry.range()),
            [],
        )?;
        tx.commit()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Rows;
    use super::*;
    use crate::runtime::output::Data;
    use std::collections::BTreeMap;

    /// Rows of every type, and a row of nulls.
    fn typed() -> Rows {
        use ValueType as T;
        Rows {
            columns: ["n", "ok", "wait", "at", "day", "x", "s"].map(String::from).to_vec(),
            values: vec![
                vec![
                    Value::Integer(1),
                    Value::Integer(1),
                    Value::Integer(90_000),
                    Value::Text("2026-01-01T00:00:00Z".into()),
                    Value::Text("2026-01-01".into()),
                    Value::Real(1.5),
                    Value::Text("a".into()),
                ],
                vec![Value::Null; 7],
            ],
            types: vec![T::Int, T::Boolean, T::Duration, T::Timestamp, T::Date, T::Float, T::String],
        }
    }

    /// What SQL reading a stage's table tells of its types: what the declared types of a
    /// table of its own told.
    fn declared(types: &[ValueType]) -> Vec<ValueType> {
        types
            .iter()
            .map(|t| ValueType::from_column_decl(t.column_decl()))
            .collect()
    }

    #[test]
    fn a_stage_read_by_name_has_its_rows_in_order_its_columns_and_their_types() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::in_memory(dir.path()).unwrap();
        let rows = typed();
        store.write_table("run", "t", &rows).unwrap();
        let back = store.stage_rows("t").unwrap();
        assert_eq!((&back.columns, &back.values), (&rows.columns, &rows.values));
        assert_eq!(back.types, declared(&rows.types));
        // A query's rows copied inside the engine, under a name the SQL quotes.
        let sql = r#"SELECT "s"."ok", "wait" AS "w" FROM run."t" AS "s" WHERE "n" = 1"#;
        let table = store.query_to_table(sql, &BTreeMap::new(), &[]).unwrap();
        store.write_data("run", "a \"b\"", &Data::Table(table)).unwrap();
        let copied = store.stage_rows("a \"b\"").unwrap();
        assert_eq!(copied.columns, ["ok", "w"]);
        assert_eq!(copied.values, [[Value::Integer(1), Value::Integer(90_000)]]);
        assert_eq!(copied.types, [ValueType::Boolean, ValueType::Duration]);
        // A wider table widens the rows table; the others read as before.
        let wide = Rows::untyped((0..40).map(|i| format!("c{i}")).collect(), vec![vec![Value::Integer(7); 40]]);
        store.write_table("run", "wide", &wide).unwrap();
        assert_eq!(store.stage_rows("wide").unwrap().values, wide.values);
        assert_eq!(store.stage_rows("t").unwrap().values, rows.values);
        // Written again: the new rows only.
        store.write_table("run", "t", &rows.row(1)).unwrap();
        assert_eq!(store.stage_rows("t").unwrap().values, [vec![Value::Null; 7]]);
        assert!(store.exists("run", "t").unwrap());
        store.drop_table("run", "t").unwrap();
        assert!(!store.exists("run", "t").unwrap());
    }

    #[test]
    fn a_stage_table_saved_to_a_file_is_a_table_of_its_own_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::in_memory(dir.path()).unwrap();
        let rows = typed();
        store.write_table("run", "t", &rows).unwrap();
        let file = dir.path().join("stages/t.db");
        store.save_stage_table("t", &file).unwrap();
        let saved = Connection::open(&file).unwrap();
        let decls: Vec<String> = saved
            .prepare("SELECT type FROM pragma_table_info('t')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(decls, ["", "BOOLEAN BLOB", "DURATION BLOB", "TIMESTAMP BLOB", "DATE BLOB", "", ""]);
        let mut other = Store::in_memory(dir.path()).unwrap();
        other.load_stage_table("t", &file).unwrap();
        let back = other.stage_rows("t").unwrap();
        assert_eq!((&back.columns, &back.values), (&rows.columns, &rows.values));
        assert_eq!(back.types, declared(&rows.types));
    }

    #[test]
    fn rows_without_columns_read_as_no_rows_of_any_column_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::in_memory(dir.path()).unwrap();
        store
            .write_table("run", "none", &Rows::untyped(Vec::new(), Vec::new()))
            .unwrap();
        let sql = r#"SELECT count(*) FROM run."none" WHERE "x" > 1 AND "y" IS NULL"#;
        let counted = store.query(sql, &BTreeMap::new(), None).unwrap();
        assert_eq!(counted.first_value(), Some(&Value::Integer(0)));
    }

    #[test]
    fn a_run_recorded_with_a_table_per_stage_is_read_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("old.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch(r#"CREATE TABLE "s" (n, ok BOOLEAN BLOB); INSERT INTO "s" VALUES (1, 1), (2, 0);"#)
            .unwrap();
        let rows = Store::stage_rows_of_run(&db, "s", Some(1)).unwrap();
        assert_eq!(rows.values, [[Value::Integer(1), Value::Integer(1)]]);
        assert_eq!(rows.types, [ValueType::Any, ValueType::Boolean]);
        assert_eq!(Store::rows_of_run(&db, &["s".into()]).unwrap().len(), 2);
        // Reading it wrote nothing into it.
        let tables: i64 = Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1);
    }

    #[test]
    fn each_kind_of_column_has_columns_of_its_own_in_order() {
        let entry = Entry::new(
            3,
            &["a".into(), "ok".into(), "b".into(), "at".into(), "yes".into()],
            &[
                ValueType::Int,
                ValueType::Boolean,
                ValueType::String,
                ValueType::Timestamp,
                ValueType::Boolean,
            ],
        );
        assert_eq!(entry.slots(), ["a0", "b0", "a1", "t0", "b1"]);
        assert_eq!(entry.widths(), [2, 2, 0, 0, 1]);
        assert_eq!(entry.kinds_code(), "abatb");
        assert_eq!(
            entry.select(),
            format!(
                r#"(SELECT a0 AS "a", b0 AS "ok", a1 AS "b", t0 AS "at", b1 AS "yes" FROM run.wv_rows WHERE id > {} AND id < {})"#,
                3 * SPAN,
                4 * SPAN
            )
        );
        // No columns: the placeholder, as a table of its own had.
        assert_eq!(Entry::new(1, &[], &[]).columns, [super::super::NO_COLUMNS]);
    }
}
