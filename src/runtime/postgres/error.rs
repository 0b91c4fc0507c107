//! Why a stage on a PostgreSQL connector failed. Every message names the connector; what the
//! server or the driver said is kept with the values of the URL's `${NAME}`s replaced by
//! their names ([`super::open::Server::scrub`]) before it is kept at all.

use crate::runtime::store;
use std::time::Duration;

#[derive(Debug)]
pub enum Error {
    /// `wvflow.toml` is not found, unreadable, or no longer declares the connector as a
    /// PostgreSQL one (it changed since the workspace was checked).
    NotDeclared { connector: String, why: String },
    /// A `${NAME}` of the URL is not set.
    Unset { connector: String, variable: String },
    /// The URL, once expanded, is not one the client reads.
    Url { connector: String, message: String },
    /// The server could not be reached or refused the connection (a wrong password).
    Connect { connector: String, message: String },
    /// A statement failed on the server (a missing table, a type error).
    Server { connector: String, message: String },
    /// The stage's `timeout` passed: its query was cancelled on the server.
    TimedOut { connector: String, after: Duration },
    /// The run was cancelled: the query was cancelled on the server.
    Cancelled,
    /// A step a stage on a server does not run (the checker refuses it: E0710).
    Step { connector: String, step: &'static str },
    /// The run database, reading what is shipped in or writing what comes back.
    Store(store::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NotDeclared { connector, why } => {
                write!(f, "connector `{connector}`: {why}")
            }
            Error::Unset {
                connector,
                variable,
            } => write!(
                f,
                "connector `{connector}`: the environment variable `{variable}` its url reads is not set"
            ),
            Error::Url { connector, message } => {
                write!(f, "connector `{connector}`: its url cannot be read: {message}")
            }
            Error::Connect { connector, message } => {
                write!(f, "connector `{connector}`: cannot connect: {message}")
            }
            Error::Server { connector, message } => {
                write!(f, "connector `{connector}`: {message}")
            }
            Error::TimedOut { connector, after } => write!(
                f,
                "connector `{connector}`: the stage's timeout of {} passed; its query was cancelled on the server",
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
