//! Why a stage on a DuckDB connector failed. Every message names the connector and says what
//! DuckDB said.

use crate::runtime::store;
use std::time::Duration;

#[derive(Debug)]
pub enum Error {
    /// `wvflow.toml` is not found, unreadable, or no longer declares the connector as a
    /// DuckDB one (it changed since the workspace was checked).
    NotDeclared { connector: String, why: String },
    /// This build of wvflow has no DuckDB (the `duckdb` feature).
    NotBuilt { connector: String },
    /// The database file could not be opened (a missing folder, a file of another kind, a
    /// lock held by another process).
    Open { connector: String, message: String },
    /// A statement failed (a missing table, a type error, a CSV file that cannot be read).
    Database { connector: String, message: String },
    /// The stage's `timeout` passed: its query was interrupted.
    TimedOut { connector: String, after: Duration },
    /// The run was cancelled: the query was interrupted.
    Cancelled,
    /// A step a stage on a connector does not run (the checker refuses it: E0710).
    Step { connector: String, step: &'static str },
    /// The run database, reading what is shipped in or writing what comes back.
    Store(store::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotDeclared { connector, why } => write!(f, "connector `{connector}`: {why}"),
            Error::NotBuilt { connector } => write!(
                f,
                "connector `{connector}`: this build of wvflow has no DuckDB (built without the `duckdb` feature)"
            ),
            Error::Open { connector, message } => {
                write!(f, "connector `{connector}`: cannot open its database: {message}")
            }
            Error::Database { connector, message } => write!(f, "connector `{connector}`: {message}"),
            Error::TimedOut { connector, after } => write!(
                f,
                "connector `{connector}`: the stage's timeout of {} passed; its query was interrupted",
                crate::human::duration(*after)
            ),
            Error::Cancelled => f.write_str("cancelled"),
            Error::Step { connector, step } => {
                write!(f, "connector `{connector}`: cannot run {step}")
            }
            Error::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        Error::Store(e)
    }
}
