//! The embedded engine: SQLite. The workspace database (`.wvflow/workspace.db`) holds tables
//! that outlive runs (`save to`); each run attaches its own schema `run`, where every stage's
//! rows are kept in one rows table under a catalog ([`layout`]), and every file source is
//! materialized as a table.

use super::input::{Input, NdjsonFile};
use super::output::{Data, Output};
use crate::value::{self, ValueType};
use rusqlite::config::DbConfig;
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

mod items;
mod layout;
mod rewrite;
mod run_view;
mod saved;
mod stream;
mod temps;
pub use stream::{Shape, Storage};
pub use run_view::RunView;

pub use items::{Gathered, ItemTable};
pub use layout::table_names;

/// Why the run's data could not be read or written. `Display` gives the message users see.
#[derive(Debug)]
pub enum Error {
    /// SQLite refused: its primary and extended result codes (none when the refusal is
    /// rusqlite's own, such as a value of another type than asked), and what it said.
    Sqlite {
        code: Option<rusqlite::ErrorCode>,
        extended: Option<std::ffi::c_int>,
        message: String,
    },
    /// A folder or database file that could not be made, opened or written.
    Path {
        access: Access,
        path: PathBuf,
        message: String,
    },
    /// The temporary file of an activity's input could not be made.
    TempFile(std::io::Error),
    /// An activity's input could not be written to its temporary file.
    Write(std::io::Error),
    /// Rows that could not be turned into JSON.
    Json(serde_json::Error),
    /// A table the SQL reads is neither in the databases nor a file beside the flow.
    NoSuchTable { table: String },
    /// Another run's database is not there any more.
    RunGone { run_db: PathBuf },
    /// The table a stage saved (in the run database, or in `file`) is not there.
    NoSavedTable {
        table: String,
        file: Option<PathBuf>,
        message: String,
    },
    /// A saved table's definition is not a `CREATE TABLE`.
    NotCreateTable { table: String },
    /// A query's rows would have two columns of one name.
    TwoColumns { column: String },
    /// A `:name` parameter that neither the run nor the stage gives.
    NoParameter { name: String },
    /// A data file (CSV, JSON, NDJSON) that cannot be read.
    File(super::files::Error),
    /// An activity's spooled output that cannot be read back.
    Output(super::output::Error),
    /// The run store's schema (migration, journal mode).
    Schema(super::runs::schema::Error),
}

/// What could not be done to a path of a [`Error::Path`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Create,
    Open,
    Write,
}

impl Error {
    /// SQLite's primary result code, when SQLite refused.
    pub fn code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            Error::Sqlite { code, .. } => *code,
            _ => None,
        }
    }

    /// What SQLite said when it refused with SQLITE_ERROR, the code of any error in a
    /// statement (a missing table or column, a table that exists, ...): only its message
    /// tells them apart.
    fn statement_error(&self) -> Option<&str> {
        match self {
            Error::Sqlite {
                extended: Some(extended),
                message,
                ..
            } if extended & 0xff == rusqlite::ffi::SQLITE_ERROR => Some(message),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        let (code, extended) = match &e {
            rusqlite::Error::SqliteFailure(failure, _)
            | rusqlite::Error::SqlInputError { error: failure, .. } => {
                (Some(failure.code), Some(failure.extended_code))
            }
            _ => (None, None),
        };
        Error::Sqlite {
            code,
            extended,
            message: e.to_string(),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

impl Error {
    /// A data file's error naming the file as the flow wrote it ([`files::Error::named`]).
    ///
    /// [`files::Error::named`]: super::files::Error::named
    fn naming_file(self, written: &Path) -> Self {
        match self {
            Error::File(e) => Error::File(e.named(written)),
            other => other,
        }
    }
}

impl From<super::files::Error> for Error {
    fn from(e: super::files::Error) -> Self {
        Error::File(e)
    }
}

impl From<super::output::Error> for Error {
    fn from(e: super::output::Error) -> Self {
        Error::Output(e)
    }
}

impl From<super::runs::schema::Error> for Error {
    fn from(e: super::runs::schema::Error) -> Self {
        Error::Schema(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Sqlite { message, .. } => f.write_str(message),
            Error::Path {
                access,
                path,
                message,
            } => {
                let verb = match access {
                    Access::Create => "create",
                    Access::Open => "open",
                    Access::Write => "write",
                };
                write!(f, "cannot {verb} {}: {message}", path.display())
            }
            Error::TempFile(e) => write!(f, "cannot make a temporary file: {e}"),
            Error::Write(e) => write!(f, "{e}"),
            Error::Json(e) => write!(f, "{e}"),
            Error::NoSuchTable { table } => write!(
                f,
                "no table `{table}`: save it with `save to {table}` in an earlier run, or put `{table}.csv`, `.json` or `.ndjson` beside the flow"
            ),
            Error::RunGone { run_db } => {
                write!(f, "the run's database {} is gone", run_db.display())
            }
            Error::NoSavedTable {
                table,
                file: None,
                message,
            } => write!(f, "no table `{table}` in the run database: {message}"),
            Error::NoSavedTable {
                table,
                file: Some(file),
                message,
            } => write!(f, "no table `{table}` in {}: {message}", file.display()),
            Error::NotCreateTable { table } => {
                write!(f, "table `{table}` was not made by CREATE TABLE")
            }
            Error::TwoColumns { column } => write!(
                f,
                "the rows would have two columns named `{column}` (a join of inputs that share column names, whose columns are not known before running): `select` the columns to keep, renaming one with `as`"
            ),
            Error::NoParameter { name } => write!(f, "no value for parameter `{name}`"),
            Error::File(e) => write!(f, "{e}"),
            Error::Output(e) => write!(f, "{e}"),
            Error::Schema(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}


/// A query's result left in the engine: a table of the connection that ran the query, in its
/// `temp` schema, gone when the connection's next stage starts. Queries write there, not into
/// the run's database, so that stages running side by side do not wait for each other's
/// queries, only for the copy of their results.
#[derive(Debug)]
pub struct Table {
    name: String,
    pub rows: usize,
    pub columns: Vec<String>,
    pub types: Vec<ValueType>,
}

/// The one column of a table made for rows without columns (SQLite tables need one): an
/// upstream stage that did not succeed. Such a table contributes nothing to a union.
pub const NO_COLUMNS: &str = "_";

/// Rows as they cross process boundaries: column names and values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub values: Vec<Vec<Value>>,
    /// The wvflow type of each column where SQLite's storage does not tell it (booleans,
    /// durations); missing or `Any` renders by what the value holds.
    pub types: Vec<ValueType>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Rows with no type known for any column.
    pub fn untyped(columns: Vec<String>, values: Vec<Vec<Value>>) -> Rows {
        Rows {
            columns,
            values,
            types: Vec::new(),
        }
    }

    /// The first column of the first row: what a one-value query (`SELECT expr`) gave.
    pub fn first_value(&self) -> Option<&Value> {
        self.values.first().and_then(|row| row.first())
    }

    /// Row `i` alone (none when there is no such row), with the same columns and types.
    pub fn row(&self, i: usize) -> Rows {
        Rows {
            columns: self.columns.clone(),
            values: self.values.get(i).cloned().into_iter().collect(),
            types: self.types.clone(),
        }
    }

    pub fn type_of(&self, column: usize) -> ValueType {
        self.types.get(column).copied().unwrap_or_default()
    }

    /// Each row as a JSON object, in column order, each value as its type's JSON.
    pub fn to_json_objects(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        (0..self.len()).map(|i| self.json_object(i)).collect()
    }

    /// Row `i` as a JSON object ([`Rows::to_json_objects`]).
    pub fn json_object(&self, i: usize) -> serde_json::Map<String, serde_json::Value> {
        self.columns
            .iter()
            .cloned()
            .zip(
                self.values[i]
                    .iter()
                    .enumerate()
                    .map(|(c, v)| value::json(v, self.type_of(c))),
            )
            .collect()
    }

    /// Rows from JSON objects; columns in order of first appearance. A column whose values
    /// are all JSON booleans (or null) is boolean.
    pub fn from_json_objects(objects: &[serde_json::Map<String, serde_json::Value>]) -> Rows {
        let mut learned = super::files::ColumnsSeen::default();
        objects.iter().for_each(|o| learned.learn(o));
        let (columns, types) = learned.finish();
        let values = objects
            .iter()
            .map(|o| {
                columns
                    .iter()
                    .map(|c| o.get(c).map_or(Value::Null, from_json))
                    .collect()
            })
            .collect();
        Rows {
            columns,
            values,
            types,
        }
    }

    /// The rows of several inputs together, by column name: every name in the order first
    /// seen, null where an input lacks the column.
    pub fn union_by_name(inputs: Vec<Rows>) -> Rows {
        let inputs: Vec<Rows> = inputs
            .into_iter()
            .filter(|r| !(r.is_empty() && r.columns == [NO_COLUMNS]))
            .collect();
        let mut out = Rows::default();
        let mut index: std::collections::HashMap<String, usize> = Default::default();
        for input in &inputs {
            for (i, c) in input.columns.iter().enumerate() {
                match index.get(c) {
                    Some(&at) => {
                        if out.types[at] != input.type_of(i) {
                            out.types[at] = ValueType::Any;
                        }
                    }
                    None => {
                        index.insert(c.clone(), out.columns.len());
                        out.columns.push(c.clone());
                        out.types.push(input.type_of(i));
                    }
                }
            }
        }
        for input in inputs {
            let at: Vec<usize> = input.columns.iter().map(|c| index[c]).collect();
            for row in input.values {
                let mut full = vec![Value::Null; out.columns.len()];
                for (v, &to) in row.into_iter().zip(&at) {
                    full[to] = v;
                }
                out.values.push(full);
            }
        }
        out
    }
}

pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(n) => (*n).into(),
        Value::Real(x) => (*x).into(),
        Value::Text(s) => s.clone().into(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned().into(),
    }
}

pub fn from_json(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Integer(*b as i64),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Real(n.as_f64().unwrap_or(0.0)), Value::Integer),
        serde_json::Value::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

/// Inserts one row of a table being written ([`Store::write_output`]).
type InsertRow<'a> = dyn FnMut(&[Value]) -> Result<(), Error> + 'a;

/// Where a run's data lives: the workspace database and the run's own database file. Each
/// stage that runs at the same time opens its own connection; both files are in WAL mode.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub workspace_db: PathBuf,
    pub run_db: PathBuf,
    /// Relative file paths resolve against this folder (the `.wv` file's folder).
    pub base: PathBuf,
}

/// Connections of one run, kept for reuse: opening one costs more than a small stage.
#[derive(Default)]
pub struct Pool {
    idle: std::sync::Mutex<Vec<Store>>,
}

impl Pool {
    /// An idle connection, or a new one.
    pub fn take(&self, config: &StoreConfig) -> Result<Store, Error> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(store) => Ok(store),
            None => config.connect(),
        }
    }

    pub fn give_back(&self, store: Store) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(store);
        }
    }
}

impl StoreConfig {
    pub fn connect(&self) -> Result<Store, Error> {
        for db in [&self.workspace_db, &self.run_db] {
            if let Some(parent) = db.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::Path {
                    access: Access::Create,
                    path: parent.to_path_buf(),
                    message: e.to_string(),
                })?;
            }
        }
        let conn = Connection::open(&self.workspace_db).map_err(|e| Error::Path {
            access: Access::Open,
            path: self.workspace_db.clone(),
            message: e.to_string(),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            ?;
        let store = Store::with_connection(conn, &self.run_db.to_string_lossy(), &self.base)?;
        for schema in ["main", "run"] {
            super::runs::schema::use_wal(&store.conn, schema)?;
        }
        store.with_layout()
    }
}

pub struct Store {
    conn: Connection,
    /// Relative file paths resolve against this folder (the `.wv` file's folder).
    base: PathBuf,
    next_temp: usize,
    /// The tables named up to `_step_{dropped_temp}` are dropped, or kept in `temps`.
    dropped_temp: usize,
    /// Tables of `temp` holding a query's rows, and those kept emptied for later queries.
    temps: std::cell::RefCell<temps::Temps>,
    /// The run database keeps the engine's tables in one rows table ([`layout`]); a run
    /// recorded before that layout has a table per stage, read as it is.
    layout: bool,
    /// The rows table's columns of each kind, as this connection last saw them.
    widths: std::cell::Cell<layout::Widths>,
    /// What `now()` reads.
    pub now: super::sql_functions::Now,
    /// What `iteration()` reads.
    pub iteration: super::sql_functions::Iteration,
    /// Values of the stage being run that are not the run's: the first upstream to succeed
    /// (`@first_success`).
    pub stage_params: BTreeMap<String, Value>,
}

fn quote(name: &str) -> String {
    crate::plan::sql::quote_ident(name)
}

impl Store {
    /// The rows of `stages` of another run (its database at `run_db`), together by column
    /// name: a child run's final rows.
    pub fn rows_of_run(run_db: &Path, stages: &[String]) -> Result<Rows, Error> {
        let mut store = Store::with_connection(
            Connection::open_in_memory()?,
            &run_db.to_string_lossy(),
            Path::new("."),
        )?;
        let parts = stages
            .iter()
            .map(|stage| store.stage_rows(stage))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rows::union_by_name(parts))
    }

    /// At most `limit` rows of stage `stage` of another run (its database at `run_db`), with
    /// their types: what `wvflow runs rows` prints.
    pub fn stage_rows_of_run(
        run_db: &Path,
        stage: &str,
        limit: Option<u64>,
    ) -> Result<Rows, Error> {
        if !run_db.exists() {
            return Err(Error::RunGone {
                run_db: run_db.to_path_buf(),
            });
        }
        let mut store = Store::with_connection(
            Connection::open_in_memory()?,
            &run_db.to_string_lossy(),
            Path::new("."),
        )?;
        let limit = limit.map_or(String::new(), |n| format!(" LIMIT {n}"));
        store.query(
            &format!("SELECT * FROM run.{}{limit}", quote(stage)),
            &BTreeMap::new(),
            None,
        )
    }

    /// A store entirely in memory, on one connection (tests).
    pub fn in_memory(base: &Path) -> Result<Store, Error> {
        Store::with_connection(
            Connection::open_in_memory()?,
            ":memory:",
            base,
        )?
        .with_layout()
    }

    fn with_connection(conn: Connection, run_db: &str, base: &Path) -> Result<Store, Error> {
        // The run store's tables: idempotency records, and signals that queries read.
        super::runs::schema::migrate(&conn)?;
        conn.execute("ATTACH DATABASE ?1 AS run", [run_db])
            ?;
        // A double-quoted name that is no column is an error, not the text of the name: SQLite
        // otherwise turns a misspelled column into a string and returns it as data.
        for config in [
            DbConfig::SQLITE_DBCONFIG_DQS_DML,
            DbConfig::SQLITE_DBCONFIG_DQS_DDL,
        ] {
            conn.set_db_config(config, false)
                ?;
        }
        let now = super::sql_functions::Now::default();
        let iteration = super::sql_functions::Iteration::default();
        super::sql_functions::register(&conn, &now, &iteration)?;
        let layout = layout::present(&conn)?;
        Ok(Store {
            conn,
            base: base.to_path_buf(),
            next_temp: 0,
            dropped_temp: 0,
            temps: Default::default(),
            layout,
            widths: Default::default(),
            now,
            iteration,
            stage_params: BTreeMap::new(),
        })
    }

    /// Makes the rows table and its catalog in the run database, if it has none yet: a
    /// store that writes the run's tables.
    fn with_layout(mut self) -> Result<Store, Error> {
        if !self.layout {
            layout::create(&self.conn)?;
            self.layout = true;
        }
        Ok(self)
    }

    /// Makes `run."file:path"` from a CSV (header row), JSON (array of objects) or NDJSON file.
    pub fn load_file(&self, path: &str) -> Result<(), Error> {
        let table = format!("file:{path}");
        if self.exists("run", &table)? {
            return Ok(());
        }
        self.load_data_file("run", &table, &self.base.join(path))
            .map_err(|e| e.naming_file(Path::new(path)))
    }

    /// Loads a data file into `temp.table` afresh, replacing what was loaded before: what a
    /// `wait until` reads at each poll. A file that is not there (yet) is a table of no rows,
    /// whose columns are any the SQL names.
    pub fn reload_file(&mut self, table: &str, path: &str) -> Result<(), Error> {
        self.reload_from(table, &self.base.join(path))
            .map_err(|e| e.naming_file(Path::new(path)))
    }

    fn reload_from(&mut self, table: &str, full: &Path) -> Result<(), Error> {
        if !full.exists() {
            return self.write_table("temp", table, &Rows::untyped(Vec::new(), Vec::new()));
        }
        let file = super::files::DataFile::scan(full)?;
        let name = format!("temp.{}", quote(table));
        again_on_schema_change(|| {
            let tx = self.begin_replacing(&name, &file.columns, &file.types)?;
            insert_rows(&tx, &name, file.columns.len(), &mut |insert| {
                file.for_each_row(|row| insert(row))
            })?;
            tx.commit().map_err(Error::from)
        })
    }

    /// Drops `schema.table` if it is there.
    pub fn drop_table(&self, schema: &str, table: &str) -> Result<(), Error> {
        if self.in_layout(schema) && self.drop_entry(table)? {
            return Ok(());
        }
        if schema == "temp" && self.release_temp(table)? {
            return Ok(());
        }
        self.conn
            .execute_batch(&format!("DROP TABLE IF EXISTS {schema}.{}", quote(table)))
            .map_err(Error::from)
    }

    /// Streams a data file into `schema.table`, one row at a time.
    fn load_data_file(&self, schema: &str, table: &str, path: &Path) -> Result<(), Error> {
        let file = super::files::DataFile::scan(path)?;
        let name = format!("{schema}.{}", quote(table));
        again_on_schema_change(|| {
            // Stages running side by side may load the same file: the first to create the
            // table fills it, and the others read what it loaded.
            let Some(tx) = self.begin_creating(schema, table, &file.columns, &file.types)? else {
                return Ok(());
            };
            insert_rows(&tx, &name, file.columns.len(), &mut |insert| {
                file.for_each_row(|row| insert(row))
            })?;
            tx.commit().map_err(Error::from)
        })
    }

    /// Loads the file a missing table stands for, on first use: `run."file:path"` is a file
    /// source; a bare `NAME` the workspace database lacks is `NAME.csv`, `NAME.json` or
    /// `NAME.ndjson` from the flow's folder, loaded as `run."NAME"` (which unqualified names
    /// find). `false` when there is no such file.
    fn load_table_file(&self, table: &str) -> Result<bool, Error> {
        if let Some(path) = table.strip_prefix("run.file:") {
            self.load_file(path)?;
            return Ok(true);
        }
        for extension in ["csv", "json", "ndjson"] {
            let path = self.base.join(format!("{table}.{extension}"));
            if path.is_file() {
                self.load_data_file("run", table, &path)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether tables of `schema` are kept in the rows table: the run database's, when it
    /// has that layout.
    fn in_layout(&self, schema: &str) -> bool {
        self.layout && schema == "run"
    }

    /// Whether a table exists in a schema.
    pub fn exists(&self, schema: &str, table: &str) -> Result<bool, Error> {
        if self.in_layout(schema) && layout::lookup(&self.conn, table)?.is_some() {
            return Ok(true);
        }
        let sql = format!(
            "SELECT count(*) FROM {schema}.sqlite_master WHERE type IN ('table', 'view') AND name = ?1"
        );
        self.conn
            .query_row(&sql, [table], |r| r.get::<_, i64>(0))
            .map(|n| n > 0)
            .map_err(Error::from)
    }

    /// Replaces `schema.table` with the rows.
    pub fn write_table(&mut self, schema: &str, table: &str, rows: &Rows) -> Result<(), Error> {
        again_on_schema_change(|| {
            self.replace_table(schema, table, &rows.columns, &rows.types, &mut |insert| {
                rows.values.iter().try_for_each(|row| insert(row))
            })
        })
    }

    /// Replaces `schema.table` with an activity's output; spooled rows are read from their
    /// file one at a time, never all in memory.
    pub fn write_output(
        &mut self,
        schema: &str,
        table: &str,
        output: &Output,
    ) -> Result<(), Error> {
        match output {
            Output::Rows(rows) => self.write_table(schema, table, rows),
            Output::Spooled(spooled) => again_on_schema_change(|| {
                self.replace_table(
                    schema,
                    table,
                    &spooled.columns,
                    &spooled.types,
                    &mut |insert| spooled.for_each_row(|row| insert(&row)),
                )
            }),
        }
    }

    /// Replaces `schema.table` with a step's rows, wherever they are: a query's table is
    /// copied inside the engine.
    pub fn write_data(&mut self, schema: &str, table: &str, data: &Data) -> Result<(), Error> {
        match data {
            Data::Output(output) => self.write_output(schema, table, output),
            Data::Table(from) => self.copy_table(from, schema, table),
        }
    }

    /// Replaces `schema.table` with a copy of a table of this connection's `temp`, inside
    /// the engine.
    fn copy_table(&self, from: &Table, schema: &str, table: &str) -> Result<(), Error> {
        let name = format!("{schema}.{}", quote(table));
        again_on_schema_change(|| {
            if self.in_layout(schema) {
                let (tx, entry) = self.begin_rows(table, &from.columns, &from.types)?;
                let source = format!("temp.{}", quote(&from.name));
                self.copy_into_entry(&tx, &entry, &source, &from.columns)?;
                return tx.commit().map_err(Error::from);
            }
            let tx = self.begin_replacing(&name, &from.columns, &from.types)?;
            tx.execute_batch(&format!(
                "INSERT INTO {name} SELECT * FROM temp.{}",
                quote(&from.name)
            ))
            ?;
            tx.commit().map_err(Error::from)
        })
    }

    /// Opens the transaction that replaces `name` with an empty table of typed columns: the
    /// drop and the create in one, so that another stage reading it never finds it missing.
    fn begin_replacing(
        &self,
        name: &str,
        columns: &[String],
        types: &[ValueType],
    ) -> Result<rusqlite::Transaction<'_>, Error> {
        let sql = format!(
            "DROP TABLE IF EXISTS {name}; {}",
            create_table(name, columns, types)
        );
        self.begin_writing(|conn| conn.execute_batch(&sql))
            .map(|(tx, ())| tx)
            .map_err(Error::from)
    }

    /// The transaction that creates `schema.table` with typed columns, or `None` when the
    /// table exists already (another stage made it first).
    fn begin_creating(
        &self,
        schema: &str,
        table: &str,
        columns: &[String],
        types: &[ValueType],
    ) -> Result<Option<rusqlite::Transaction<'_>>, Error> {
        let name = format!("{schema}.{}", quote(table));
        let sql = create_table(&name, columns, types);
        match self.begin_writing(|conn| conn.execute_batch(&sql)) {
            Ok((tx, ())) => Ok(Some(tx)),
            // SQLITE_ERROR is any error of the statement: asked whether the table is there
            // now, SQLite tells an existing table from the rest.
            Err(e) => {
                let e = Error::from(e);
                if e.statement_error().is_some() && self.exists(schema, table)? {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// A transaction that begins with the statements `first`, which write one database.
    ///
    /// It is deferred, so it locks only the database those statements write. `BEGIN
    /// IMMEDIATE` would lock every attached database, the workspace database the run's
    /// journal writes too, for as long as a big file takes to load. A deferred transaction
    /// that reads before it writes is refused at once (not after a wait) when another
    /// connection is writing or has written meanwhile: nothing is written yet then, so it
    /// is begun again, until the busy timeout.
    fn begin_writing<T>(
        &self,
        mut first: impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<(rusqlite::Transaction<'_>, T)> {
        let started = std::time::Instant::now();
        loop {
            let tx = rusqlite::Transaction::new_unchecked(
                &self.conn,
                rusqlite::TransactionBehavior::Deferred,
            )?;
            match first(&tx) {
                Ok(done) => return Ok((tx, done)),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && started.elapsed() < super::runs::schema::busy_timeout() =>
                {
                    drop(tx);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes a step's rows the `_input` table the next query reads. A query's table is
    /// renamed, not copied.
    pub fn set_input(&mut self, data: Data) -> Result<(), Error> {
        match data {
            Data::Output(output) => self.write_output("temp", "_input", &output),
            Data::Table(from) => self
                .conn
                .execute_batch(&format!(
                    "DROP TABLE IF EXISTS temp._input; ALTER TABLE temp.{} RENAME TO _input;",
                    quote(&from.name)
                ))
                .map_err(Error::from),
        }
    }

    /// A step's rows in memory, for a step that needs them as values.
    pub fn rows(&mut self, data: Data) -> Result<Rows, Error> {
        match data {
            Data::Output(output) => Ok(output.into_rows()?),
            Data::Table(table) => self.table_rows(table),
        }
    }

    /// Drops and creates `schema.table` with typed columns, then inserts what `fill` gives,
    /// in one transaction.
    fn replace_table(
        &self,
        schema: &str,
        table: &str,
        columns: &[String],
        types: &[ValueType],
        fill: &mut dyn FnMut(&mut InsertRow) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if self.in_layout(schema) {
            let (tx, entry) = self.begin_rows(table, columns, types)?;
            self.insert_entry_rows(&tx, &entry, columns.len(), fill)?;
            return tx.commit().map_err(Error::from);
        }
        let name = format!("{schema}.{}", quote(table));
        let tx = self.begin_replacing(&name, columns, types)?;
        insert_rows(&tx, &name, columns.len(), fill)?;
        tx.commit().map_err(Error::from)
    }

    /// Runs a query of the plan. `input` (the rows of the step before) is the table `_input`;
    /// `params` binds `:name` parameters.
    pub fn query(
        &mut self,
        sql: &str,
        params: &BTreeMap<String, Value>,
        input: Option<&Rows>,
    ) -> Result<Rows, Error> {
        if let Some(rows) = input {
            self.write_table("temp", "_input", rows)?;
        }
        again_on_schema_change(|| self.query_once(sql, params))
    }

    fn query_once(&mut self, sql: &str, params: &BTreeMap<String, Value>) -> Result<Rows, Error> {
        let (mut statement, _) = self.prepare_plan(sql)?;
        bind_named(&mut statement, params, &self.stage_params)?;
        let (columns, types) = shape_of(&statement)?;
        let mut rows = statement.raw_query();
        let mut values = Vec::new();
        while let Some(row) = rows.next()? {
            values.push(
                (0..columns.len())
                    .map(|i| row.get::<_, Value>(i).unwrap_or(Value::Null))
                    .collect(),
            );
        }
        Ok(Rows {
            columns,
            values,
            types,
        })
    }

    /// Runs a query of the plan inside the engine: its rows go into a new table of this
    /// connection and never cross into Rust. A column the engine does not know the type of
    /// takes the one in `known` (what the checker inferred), as [`Store::query`]'s rows do.
    pub fn query_to_table(
        &mut self,
        sql: &str,
        params: &BTreeMap<String, Value>,
        known: &[ValueType],
    ) -> Result<Table, Error> {
        again_on_schema_change(|| {
            let (statement, sql) = self.prepare_plan(sql)?;
            let (columns, mut types) = shape_of(&statement)?;
            drop(statement);
            for (have, known) in types.iter_mut().zip(known) {
                if *have == ValueType::Any {
                    *have = *known;
                }
            }
            // It writes only the connection's own `temp`: no other stage waits for it.
            let name = self.take_temp(&columns, &types)?;
            let rows = {
                let mut insert = self
                    .conn
                    .prepare(&format!("INSERT INTO temp.{} {sql}", quote(&name)))
                    .map_err(|e| missing_table(e.into()))?;
                bind_named(&mut insert, params, &self.stage_params)?;
                insert.raw_execute()?
            };
            Ok(Table {
                name,
                rows,
                columns,
                types,
            })
        })
    }

    /// A query's table as an activity's input: its NDJSON written to a temporary file a
    /// row at a time, each value in its type's JSON. The table is dropped: the file holds
    /// its rows now.
    pub fn table_input(&mut self, table: Table) -> Result<Input, Error> {
        let file =
            tempfile::tempfile().map_err(Error::TempFile)?;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, &file);
        let mut count = 0;
        self.each_row(&table, |row| {
            let object: serde_json::Map<String, serde_json::Value> = table
                .columns
                .iter()
                .zip(row)
                .enumerate()
                .map(|(i, (c, v))| {
                    let ty = table.types.get(i).copied().unwrap_or_default();
                    (c.clone(), value::json(&v, ty))
                })
                .collect();
            serde_json::to_writer(&mut out, &object)?;
            out.write_all(b"\n").map_err(Error::Write)?;
            count += 1;
            Ok(())
        })?;
        out.flush().map_err(Error::Write)?;
        drop(out);
        Ok(Input::Ndjson(std::sync::Arc::new(NdjsonFile {
            file,
            rows: count,
        })))
    }

    /// The rows of a table a query left in the engine, read into memory; the table is
    /// dropped.
    fn table_rows(&mut self, table: Table) -> Result<Rows, Error> {
        let mut values = Vec::with_capacity(table.rows);
        self.each_row(&table, |row| {
            values.push(row);
            Ok(())
        })?;
        Ok(Rows {
            columns: table.columns,
            values,
            types: table.types,
        })
    }

    /// Each row of a table a query left in the engine, in column order; then the table is
    /// dropped: whoever reads it holds its rows now.
    fn each_row(
        &self,
        table: &Table,
        mut each: impl FnMut(Vec<Value>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let name = format!("temp.{}", quote(&table.name));
        {
            let mut statement = self
                .conn
                .prepare(&format!("SELECT * FROM {name}"))
                ?;
            let mut rows = statement.raw_query();
            while let Some(row) = rows.next()? {
                each(
                    (0..table.columns.len())
                        .map(|i| row.get::<_, Value>(i).unwrap_or(Value::Null))
                        .collect(),
                )?;
            }
        }
        if self.release_temp(&table.name)? {
            return Ok(());
        }
        self.conn
            .execute_batch(&format!("DROP TABLE {name}"))
            .map_err(Error::from)
    }

    /// Empties (to be taken again, [`temps`]) or drops the tables queries left in this
    /// connection: a stage's last result once it is stored, and whatever a stage that failed
    /// left ([`super::engine`] calls it when a stage ends).
    pub fn drop_step_tables(&mut self) -> Result<(), Error> {
        let used = self.temps.borrow().used();
        for name in used {
            self.release_temp(&name)?;
        }
        // Every other such table has a name `temp_name` gave since the last call: no need to
        // ask the schema which are there.
        for n in self.dropped_temp + 1..=self.next_temp {
            let name = format!("_step_{n}");
            if !self.temps.borrow().keeps(&name) {
                self.conn
                    .execute_batch(&format!("DROP TABLE IF EXISTS temp.{}", quote(&name)))?;
            }
            self.dropped_temp = n;
        }
        Ok(())
    }

    /// A query of the plan, compiled against the schema as it is now. Not from the statement
    /// cache: a cached statement keeps the columns of the tables it was compiled for until
    /// it next runs, and `_input` is another table at every step. A table the SQL names
    /// that the workspace database does not have may be a file beside the flow: `orders`
    /// reads `orders.csv`, `orders.json` or `orders.ndjson`, loaded here.
    ///
    /// Rows an activity printed none of have no columns: their table holds only the
    /// placeholder column. A column the SQL names is added to such tables, null on no rows,
    /// so that the query reads no rows (and `count(*)` counts 0) rather than failing.
    ///
    /// A table of the run database that the catalog holds is read from the rows table: the
    /// statement is of the SQL so rewritten, which is given with it.
    fn prepare_plan(&self, sql: &str) -> Result<(rusqlite::Statement<'_>, String), Error> {
        let named = if self.layout && contains_run(sql) {
            rewrite::run_tables(sql)
        } else {
            Vec::new()
        };
        let mut tried = Vec::new();
        loop {
            let (text, entries) = self.read_layout(sql, &named)?;
            let error = match self.conn.prepare(&text) {
                Ok(statement) => return Ok((statement, text)),
                Err(e) => Error::from(e),
            };
            // Which table or column is missing SQLite says only in its message.
            let message = error.statement_error().unwrap_or_default();
            let fixed = if let Some(table) = message.strip_prefix("no such table: ") {
                let table = table.to_string();
                !tried.contains(&table) && self.load_table_file(&table)? && {
                    tried.push(table);
                    true
                }
            } else if let Some(column) = missing_column(message) {
                !tried.contains(&column) && self.widen_empty_tables(&column, &entries)? && {
                    tried.push(column);
                    true
                }
            } else {
                false
            };
            if !fixed {
                return Err(missing_table(error));
            }
        }
    }

    /// `sql` with each table of the run database that the catalog holds (of `named`, what
    /// it names) read from the rows table, and those tables.
    fn read_layout(
        &self,
        sql: &str,
        named: &[rewrite::Named],
    ) -> Result<(String, Vec<(String, layout::Entry)>), Error> {
        if named.is_empty() {
            return Ok((sql.to_string(), Vec::new()));
        }
        let mut entries = Vec::new();
        let mut replaced = Vec::new();
        for n in named {
            if let Some(entry) = layout::lookup(&self.conn, &n.name)? {
                replaced.push((n, entry.select()));
                entries.push((n.name.clone(), entry));
            }
        }
        Ok((rewrite::replace(sql, &replaced), entries))
    }

    /// Adds `column` to the tables of rows without columns, the placeholder column first and
    /// no rows (see [`Store::prepare_plan`]); `false` when there is none. Of the rows
    /// table's, those in `entries` (the tables the SQL reads).
    fn widen_empty_tables(
        &self,
        column: &str,
        entries: &[(String, layout::Entry)],
    ) -> Result<bool, Error> {
        let mut widened = false;
        for (table, entry) in entries {
            if entry.columns.first().map(String::as_str) == Some(NO_COLUMNS)
                && !entry.columns.iter().any(|c| c.eq_ignore_ascii_case(column))
                && !self.entry_has_rows(entry)?
            {
                // Another stage reading the same rows may have added it first: either way
                // the table has it now.
                self.add_entry_column(table, entry, column)?;
                widened = true;
            }
        }
        let schemas: &[&str] = if self.layout { &["temp"] } else { &["temp", "run"] };
        for &schema in schemas {
            let empty: Vec<String> = {
                let mut statement = self
                    .conn
                    .prepare(&format!(
                        "SELECT m.name FROM {schema}.sqlite_master AS m WHERE m.type = 'table'
                           AND (SELECT c.name FROM pragma_table_info(m.name, '{schema}') AS c
                                WHERE c.cid = 0) = ?1"
                    ))
                    ?;
                statement
                    .query_map([NO_COLUMNS], |r| r.get(0))
                    ?
                    .collect::<Result<_, _>>()
                    ?
            };
            for table in empty {
                let has_rows: bool = self
                    .conn
                    .query_row(
                        &format!("SELECT EXISTS (SELECT 1 FROM {schema}.{})", quote(&table)),
                        [],
                        |r| r.get(0),
                    )
                    ?;
                if has_rows {
                    continue;
                }
                let added = self.conn.execute_batch(&format!(
                    "ALTER TABLE {schema}.{} ADD COLUMN {}",
                    quote(&table),
                    quote(column)
                ));
                // Another stage reading the same rows may have added it first: SQLITE_ERROR
                // says no more than that the statement failed, so SQLite is asked whether the
                // column is there now.
                if let Err(e) = added
                    && !self.has_column(schema, &table, column)?
                {
                    return Err(e.into());
                }
                widened = true;
            }
        }
        Ok(widened)
    }

    /// Whether `schema.table` has a column `column` (in any case of ASCII letters, as SQLite
    /// names go).
    fn has_column(&self, schema: &str, table: &str, column: &str) -> Result<bool, Error> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1, ?2) WHERE name = ?3 COLLATE NOCASE)",
            [table, schema, column],
            |r| r.get(0),
        )?)
    }

    /// All rows of a stage's table.
    pub fn stage_rows(&mut self, stage: &str) -> Result<Rows, Error> {
        self.query(
            &format!("SELECT * FROM run.{}", quote(stage)),
            &BTreeMap::new(),
            None,
        )
    }

    /// The rows recorded for an idempotency key that succeeded before, if any.
    pub fn recorded(&mut self, flow: &str, stage: &str, key: &str) -> Result<Option<Rows>, Error> {
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT rows FROM wvflow_idempotency WHERE flow = ?1 AND stage = ?2 AND key = ?3",
                [flow, stage, key],
                |r| r.get(0),
            )
            .ok();
        Ok(found.map(|text| {
            let objects: Vec<serde_json::Map<String, serde_json::Value>> =
                serde_json::from_str(&text).unwrap_or_default();
            Rows::from_json_objects(&objects)
        }))
    }

    /// Records a key's successful rows.
    pub fn record(&mut self, flow: &str, stage: &str, key: &str, rows: &Rows) -> Result<(), Error> {
        let text = serde_json::to_string(&rows.to_json_objects())?;
        self.conn
            .execute("INSERT OR REPLACE INTO wvflow_idempotency (flow, stage, key, rows) VALUES (?1, ?2, ?3, ?4)", [flow, stage, key, &text])
            .map(|_| ())
            .map_err(Error::from)
    }

    /// A name no table uses yet, for intermediate results.
    pub fn temp_name(&mut self) -> String {
        self.next_temp += 1;
        format!("_step_{}", self.next_temp)
    }
}

/// The columns of a prepared query and their declared types. Two columns of one name are an
/// error: a table cannot hold them, and a row object would keep only one.
fn shape_of(statement: &rusqlite::Statement) -> Result<(Vec<String>, Vec<ValueType>), Error> {
    let columns: Vec<String> = statement.column_names().map(str::to_string).collect();
    // SQLite's names are the same in any case of ASCII letters.
    if let Some(twice) = columns
        .iter()
        .enumerate()
        .find(|(i, c)| columns[..*i].iter().any(|d| d.eq_ignore_ascii_case(c)))
        .map(|(_, c)| c)
    {
        return Err(Error::TwoColumns {
            column: twice.clone(),
        });
    }
    let types = statement
        .columns()
        .map(|c| ValueType::from_column_decl(c.decl_type()))
        .collect();
    Ok((columns, types))
}

/// Binds each `:name` parameter of a statement: a value of the run's, or of the stage's.
fn bind_named(
    statement: &mut rusqlite::Statement,
    params: &BTreeMap<String, Value>,
    stage_params: &BTreeMap<String, Value>,
) -> Result<(), Error> {
    for i in 1..=statement.parameter_count() {
        let Some(name) = statement
            .parameter_name(i)
            .map(|n| n.trim_start_matches(':').to_string())
        else {
            continue;
        };
        let value = params
            .get(&name)
            .or_else(|| stage_params.get(&name))
            .cloned()
            .ok_or_else(|| Error::NoParameter { name: name.clone() })?;
        statement
            .raw_bind_parameter(i, value)
            ?;
    }
    Ok(())
}

/// Inserts into `name` (of `width` columns) the rows `fill` gives, in the open transaction.
fn insert_rows(
    tx: &rusqlite::Transaction,
    name: &str,
    width: usize,
    fill: &mut dyn FnMut(&mut InsertRow) -> Result<(), Error>,
) -> Result<(), Error> {
    if width == 0 {
        return Ok(());
    }
    let marks: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
    let mut insert = tx
        .prepare(&format!("INSERT INTO {name} VALUES ({})", marks.join(", ")))
        ?;
    fill(&mut |row| {
        insert
            .execute(params_from_iter(row.iter()))
            .map(|_| ())
            .map_err(Error::from)
    })
}

/// `CREATE TABLE` of typed columns; a table of no columns has one placeholder column.
fn create_table(name: &str, columns: &[String], types: &[ValueType]) -> String {
    format!("CREATE TABLE {name} ({})", temps::column_defs(columns, types))
}

/// Runs `f` again (up to 20 times) when SQLite reports that the schema changed under it:
/// parallel stages create tables in the same run database, and a statement that keeps
/// meeting new tables gives up with SQLITE_SCHEMA after its own retries.
fn again_on_schema_change<T>(mut f: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    let mut tries = 0;
    loop {
        match f() {
            Err(e) if e.code() == Some(rusqlite::ErrorCode::SchemaChanged) && tries < 20 => {
                tries += 1
            }
            other => return other,
        }
    }
}

/// Whether the SQL may name a table of schema `run` (a quick look before a closer one).
fn contains_run(sql: &str) -> bool {
    sql.as_bytes().windows(4).any(|w| {
        w[..3].eq_ignore_ascii_case(b"run") && (w[3] == b'.' || w[3].is_ascii_whitespace())
    })
}

/// The column SQLite says is missing (`no such column: "ok" - ...`, `no such column: t.ok in
/// ...`), without its table.
fn missing_column(error: &str) -> Option<String> {
    let rest = error.strip_prefix("no such column: ")?;
    let name = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split(' ').next()?,
    };
    let name = name.rsplit('.').next()?.trim_matches('"');
    (!name.is_empty()).then(|| name.to_string())
}

/// SQLite says "no such table: run.file:x"; say what the user can do about it.
fn missing_table(error: Error) -> Error {
    let table = error
        .statement_error()
        .and_then(|message| message.split_once("no such table: "))
        .map(|(_, table)| table);
    match table {
        Some(table) => Error::NoSuchTable {
            table: table.to_string(),
        },
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn a_table_or_column_another_stage_made_first_is_found_by_asking_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "x\n1\n").unwrap();
        let store = Store::in_memory(dir.path()).unwrap();
        // Made first by "another stage": creating it again is not an error, and nothing is
        // loaded twice.
        store
            .conn
            .execute_batch(r#"CREATE TABLE run."file:a.csv" (x)"#)
            .unwrap();
        store
            .load_data_file("run", "file:a.csv", &dir.path().join("a.csv"))
            .unwrap();
        let rows: i64 = store
            .conn
            .query_row(r#"SELECT count(*) FROM run."file:a.csv""#, [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        // Any other error of the statement stays one, with SQLite's code.
        let Err(error) =
            store.begin_creating("nowhere", "t", &["x".to_string()], &[ValueType::Any])
        else {
            panic!("no schema `nowhere`");
        };
        assert_eq!(error.code(), Some(rusqlite::ErrorCode::Unknown));
        assert!(error.to_string().contains("nowhere"), "{error}");
        // A column of an empty table added by another stage first.
        store
            .conn
            .execute_batch(&format!("CREATE TABLE temp.e ({NO_COLUMNS}, ok)"))
            .unwrap();
        assert!(store.has_column("temp", "e", "OK").unwrap());
        assert!(!store.has_column("temp", "e", "missing").unwrap());
    }

    #[test]
    fn a_changed_schema_is_tried_again_by_its_code() {
        let changed = || Error::Sqlite {
            code: Some(rusqlite::ErrorCode::SchemaChanged),
            extended: Some(rusqlite::ffi::SQLITE_SCHEMA),
            message: "anything".into(),
        };
        let mut tries = 0;
        let done = again_on_schema_change(|| {
            tries += 1;
            if tries < 3 { Err(changed()) } else { Ok(tries) }
        });
        assert_eq!(done.unwrap(), 3);
        // The same words with another code are not retried.
        let mut tries = 0;
        let done: Result<(), Error> = again_on_schema_change(|| {
            tries += 1;
            Err(Error::Sqlite {
                code: Some(rusqlite::ErrorCode::Unknown),
                extended: Some(rusqlite::ffi::SQLITE_ERROR),
                message: "database schema has changed".into(),
            })
        });
        assert!(done.is_err());
        assert_eq!(tries, 1);
    }

    #[test]
    fn files_load_as_typed_tables_and_queries_bind_parameters() {
        let dir = std::env::temp_dir().join(format!("wvflow-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("orders.csv"),
            "id,amount,status\n1,120.5,paid\n2,42,open\n3,,paid\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("people.ndjson"),
            "{\"id\": 1, \"name\": \"Ada\"}\n\n{\"id\": 2, \"name\": \"Bo\", \"vip\": true}\n",
        )
        .unwrap();
        let mut store = Store::in_memory(&dir).unwrap();
        store.load_file("orders.csv").unwrap();
        store.load_file("people.ndjson").unwrap();
        let rows = store
            .query(
                r#"SELECT "id", "amount" FROM run."file:orders.csv" AS o WHERE "status" = :status ORDER BY "id""#,
                &params(&[("status", Value::Text("paid".into()))]),
                None,
            )
            .unwrap();
        assert_eq!(rows.columns, ["id", "amount"]);
        assert_eq!(
            rows.values,
            [
                vec![Value::Integer(1), Value::Real(120.5)],
                vec![Value::Integer(3), Value::Null]
            ]
        );
        let people = store
            .query(
                r#"SELECT "name", "vip" FROM run."file:people.ndjson" ORDER BY "id""#,
                &BTreeMap::new(),
                None,
            )
            .unwrap();
        assert_eq!(
            people.values[1],
            [Value::Text("Bo".into()), Value::Integer(1)]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn writing_a_table_of_the_run_leaves_the_workspace_database_free() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            workspace_db: dir.path().join("workspace.db"),
            run_db: dir.path().join("run.db"),
            base: dir.path().to_path_buf(),
        };
        let mut store = config.connect().unwrap();
        // Another process's journal, say: it may not wait at all.
        let other = |db: &Path| {
            let conn = Connection::open(db).unwrap();
            conn.busy_timeout(std::time::Duration::ZERO).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS probe (x); COMMIT")
        };
        let mut seen = Vec::new();
        store
            .replace_table(
                "run",
                "loaded",
                &["n".to_string()],
                &[ValueType::Any],
                &mut |insert| {
                    insert(&[Value::Integer(1)])?;
                    seen.push(other(&config.workspace_db).is_ok());
                    seen.push(other(&config.run_db).is_ok());
                    insert(&[Value::Integer(2)])
                },
            )
            .unwrap();
        assert_eq!(
            seen,
            [true, false],
            "while rows go into the run's database, the workspace database takes writes; the run's does not"
        );
        assert_eq!(store.stage_rows("loaded").unwrap().len(), 2);
    }

    #[test]
    fn input_rows_and_stage_tables_and_a_stable_hash() {
        let mut store = Store::in_memory(Path::new(".")).unwrap();
        let rows = Rows::untyped(
            vec!["user".into()],
            (0..100)
                .map(|i| vec![Value::Text(format!("u{i}"))])
                .collect(),
        );
        store.write_table("run", "users", &rows).unwrap();
        let split = store
            .query(
                "SELECT count(*) FROM _input WHERE ((wv_hash(\"user\") % 100) + 100) % 100 < 50",
                &BTreeMap::new(),
                Some(&rows),
            )
            .unwrap();
        let Value::Integer(half) = split.values[0][0] else {
            panic!()
        };
        assert!((30..=70).contains(&half), "{half}");
        let again = store.query("SELECT count(*) FROM run.\"users\" WHERE ((wv_hash(\"user\") % 100) + 100) % 100 < 50", &BTreeMap::new(), None).unwrap();
        assert_eq!(
            again.values[0][0],
            Value::Integer(half),
            "the hash is deterministic"
        );
        let missing = store
            .query("SELECT * FROM \"nowhere\"", &BTreeMap::new(), None)
            .unwrap_err();
        assert!(missing.to_string().starts_with("no table `nowhere`"), "{missing}");
    }
}
