//! A DuckDB connector opened for one stage: `wvflow.toml` read where the workspace's is found,
//! its database file opened once in the process (DuckDB lets one process hold a file once:
//! stages running at the same time share it) and a connection of the stage's own to it.

use super::Error;
use crate::connectors::{self, ConnectorKind, Location, Lookup};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The database files open in the process, each with how many stages hold it: the last one
/// to end closes it, so that the file is not held locked after the stages that use it.
static OPEN: Mutex<Option<HashMap<PathBuf, (duckdb::Connection, usize)>>> = Mutex::new(None);

/// One stage's connection to a connector's database. The connection is closed before the
/// database is let go.
pub struct Session {
    pub conn: duckdb::Connection,
    pub connector: String,
    _held: Held,
}

/// A stage's hold on an open database file.
struct Held(PathBuf);

impl Drop for Held {
    fn drop(&mut self) {
        let Ok(mut open) = OPEN.lock() else { return };
        let Some(open) = open.as_mut() else { return };
        if let Some((_, holders)) = open.get_mut(&self.0) {
            *holders -= 1;
            if *holders == 0 {
                open.remove(&self.0);
            }
        }
    }
}

/// Opens the connector `name` of the workspace's `wvflow.toml`, looked for from `cwd` (the
/// `.wv` file's folder) as the checker found it; relative CSV paths are read from `cwd`.
pub fn open(cwd: &Path, name: &str) -> Result<Session, Error> {
    let not_declared = |why: String| Error::NotDeclared {
        connector: name.to_string(),
        why,
    };
    let file = connectors::find(cwd)
        .ok_or_else(|| not_declared(format!("no {} is found", connectors::FILE_NAME)))?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| not_declared(format!("cannot read {}: {e}", file.display())))?;
    let root = file.parent().unwrap_or(Path::new("."));
    let (found, _) = connectors::read(&text, crate::source::FileId(0), root);
    let path = match found.lookup(name) {
        Lookup::Found(c) if c.kind == ConnectorKind::Duckdb => match &c.location {
            Location::Path(path) => path.clone(),
            Location::Url(_) => return Err(not_declared("it has no path".to_string())),
        },
        _ => {
            return Err(not_declared(format!(
                "{} no longer declares it as a duckdb connector",
                file.display()
            )));
        }
    };
    let opened = |e: duckdb::Error| Error::Open {
        connector: name.to_string(),
        message: format!("{}: {}", path.display(), said(&e)),
    };
    let conn = {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        let open = open.get_or_insert_with(HashMap::new);
        if !open.contains_key(&path) {
            let db = duckdb::Connection::open(&path).map_err(opened)?;
            open.insert(path.clone(), (db, 0));
        }
        let (db, holders) = open.get_mut(&path).expect("just opened");
        let conn = db.try_clone().map_err(opened)?;
        *holders += 1;
        conn
    };
    let session = Session {
        conn,
        connector: name.to_string(),
        _held: Held(path),
    };
    // `/` of two integers truncates, as on SQLite and PostgreSQL; CSV paths are the `.wv`
    // file's folder's.
    let folder = std::path::absolute(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    session.execute(&format!(
        "SET integer_division = true; SET file_search_path = {}",
        crate::plan::sql::quote_str(&folder.to_string_lossy())
    ))?;
    Ok(session)
}

/// What DuckDB said.
pub fn said(e: &duckdb::Error) -> String {
    match e {
        duckdb::Error::DuckDBFailure(_, Some(message)) => message.clone(),
        other => other.to_string(),
    }
}

impl Session {
    /// Statements with no rows, in order.
    pub fn execute(&self, sql: &str) -> Result<(), Error> {
        self.conn.execute_batch(sql).map_err(|e| self.failed(&e))
    }

    /// A statement's failure as the stage's error.
    pub fn failed(&self, e: &duckdb::Error) -> Error {
        Error::Database {
            connector: self.connector.clone(),
            message: said(e),
        }
    }
}
